/**
 * Qwen2-VL image preprocessing, equal to Hugging Face's (slow, PIL-based) Qwen2VLImageProcessor:
 *   resize (PIL BICUBIC) -> rescale (uint8 * rescale_factor in float64, cast to float32)
 *   -> normalize ((x - mean) / std in float32) -> repeat the frame to temporal_patch_size
 *   -> reshape (gt, tp, C, gh/m, m, p, gw/m, m, p), transpose (0,3,6,4,7,2,1,5,8)
 *   -> flatten to [gt*gh*gw, C*tp*p*p].
 * Each float32 operation is rounded the way numpy rounds it, so values are bit-identical to HF's.
 */
import type { PreprocessorConfig } from '../checkpoint/types.ts';
import { pilResizeBicubic } from '../../vision/pil-resize.ts';
import { assertRgb, type RgbImage } from '../../vision/rgb.ts';

export interface PreprocessedImage {
  /** [numPatches, C * temporalPatchSize * patchSize * patchSize] row-major (1176 columns for Qwen2-VL) */
  patches: Float32Array;
  numPatches: number;
  patchDim: number;
  /** [t, h/patch, w/patch] */
  gridThw: [number, number, number];
  /** LM placeholder tokens for this image: patches / mergeSize^2 */
  numImageTokens: number;
  width: number;
  height: number;
}

/** Per-channel table uint8 -> normalised float32, computed with numpy's float32 rounding. */
export function normalizationTable(cfg: PreprocessorConfig): Float32Array[] {
  const f = Math.fround;
  return [0, 1, 2].map((c) => {
    const mean = f(cfg.imageMean[c]!);
    const std = f(cfg.imageStd[c]!);
    const t = new Float32Array(256);
    for (let v = 0; v < 256; v++) {
      const scaled = f(v * cfg.rescaleFactor); // float64 multiply, astype(float32)
      t[v] = f(f(scaled - mean) / std); // float32 subtract, float32 divide
    }
    return t;
  });
}

/** Patchify an RGB image already at its target size (multiples of patchSize * mergeSize). */
export function patchifyResized(rgb: RgbImage, cfg: PreprocessorConfig): PreprocessedImage {
  assertRgb(rgb);
  const p = cfg.patchSize;
  const m = cfg.mergeSize;
  const tp = cfg.temporalPatchSize;
  const C = 3;
  const { width: W, height: H } = rgb;
  if (W % (p * m) !== 0 || H % (p * m) !== 0) {
    throw new RangeError(`image ${W}x${H} is not a multiple of ${p * m} per side`);
  }
  const gh = H / p;
  const gw = W / p;
  const numPatches = gh * gw; // grid_t = 1: one image, its frame repeated tp times
  const patchDim = C * tp * p * p;
  const out = new Float32Array(numPatches * patchDim);
  const lut = normalizationTable(cfg);
  const src = rgb.data;
  let o = 0;
  for (let bh = 0; bh < gh / m; bh++) {
    for (let bw = 0; bw < gw / m; bw++) {
      for (let mh = 0; mh < m; mh++) {
        for (let mw = 0; mw < m; mw++) {
          const row0 = (bh * m + mh) * p;
          const col0 = (bw * m + mw) * p;
          for (let c = 0; c < C; c++) {
            const t = lut[c]!;
            // the first temporal copy, then duplicate it tp-1 times
            const start = o;
            for (let y = 0; y < p; y++) {
              let s = ((row0 + y) * W + col0) * 3 + c;
              for (let x = 0; x < p; x++) {
                out[o++] = t[src[s]!]!;
                s += 3;
              }
            }
            const len = o - start;
            for (let k = 1; k < tp; k++) {
              out.copyWithin(o, start, start + len);
              o += len;
            }
          }
        }
      }
    }
  }
  return {
    patches: out,
    numPatches,
    patchDim,
    gridThw: [1, gh, gw],
    numImageTokens: numPatches / (m * m),
    width: W,
    height: H,
  };
}

/**
 * Resize (PIL-compatible bicubic, as HF does; HF resizes even when the size is unchanged, which
 * is a copy) and patchify. targetW/targetH come from smart_resize / resolveResize.
 */
export function preprocessImage(rgb: RgbImage, targetW: number, targetH: number, cfg: PreprocessorConfig): PreprocessedImage {
  const resized = rgb.width === targetW && rgb.height === targetH ? rgb : pilResizeBicubic(rgb, targetW, targetH);
  return patchifyResized(resized, cfg);
}
