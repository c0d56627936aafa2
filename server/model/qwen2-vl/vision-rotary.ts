/**
 * Host-side 2D rotary tables for the Qwen2-VL vision encoder, as HF's
 * Qwen2VisionTransformerPretrainedModel.rot_pos_emb computes them (float32 throughout):
 *
 *   dim = headDim / 2;  inv_freq[j] = 1 / 10000^(2j / dim)  for j < dim / 2   (float32)
 *   each patch's (row, col), taken in merge-group order: hpos/wpos reshaped (h/m, m, w/m, m),
 *   permuted (0, 2, 1, 3), flattened (m = spatialMergeSize)
 *   freqs = [row * inv_freq, col * inv_freq]  (headDim/2 values, float32 products)
 *   emb = cat(freqs, freqs);  cos = cos(emb), sin = sin(emb)   -> [N, headDim]
 *
 * The row order matches the patch order of the HF image processor (and of `pixel_patches`).
 */
import type { VisionConfig } from '../checkpoint/types.ts';

export interface RotaryTables {
  cos: Float32Array;
  sin: Float32Array;
  /** Rows (= patches, gridH * gridW) and columns (= headDim). */
  rows: number;
  headDim: number;
}

const f32 = Math.fround;

/** inv_freq as torch computes it: 1.0 / (theta ** (arange(0, dim, 2, float32) / dim)), float32. */
export function visionInvFreq(headDim: number, theta = 10000): Float32Array {
  const dim = headDim / 2;
  const n = Math.ceil(dim / 2);
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    const exponent = f32(f32(2 * j) / dim);
    out[j] = f32(1 / f32(Math.pow(theta, exponent)));
  }
  return out;
}

/** (row, col) of every patch in HF's merge-group order: [N][2]. */
export function visionPatchPositions(gridH: number, gridW: number, mergeSize: number): Int32Array {
  if (gridH % mergeSize !== 0 || gridW % mergeSize !== 0) {
    throw new Error(`grid ${gridH}x${gridW} is not a multiple of the merge size ${mergeSize}`);
  }
  const out = new Int32Array(gridH * gridW * 2);
  let i = 0;
  for (let bh = 0; bh < gridH / mergeSize; bh++) {
    for (let bw = 0; bw < gridW / mergeSize; bw++) {
      for (let ih = 0; ih < mergeSize; ih++) {
        for (let iw = 0; iw < mergeSize; iw++) {
          out[i++] = bh * mergeSize + ih;
          out[i++] = bw * mergeSize + iw;
        }
      }
    }
  }
  return out;
}

export function visionRotary(gridH: number, gridW: number, cfg: VisionConfig): RotaryTables {
  const headDim = cfg.embedDim / cfg.numHeads;
  if (!Number.isInteger(headDim) || headDim % 4 !== 0) throw new Error(`vision head dim ${headDim} must be a multiple of 4`);
  const invFreq = visionInvFreq(headDim);
  const quarter = invFreq.length; // headDim / 4
  const halfDim = headDim / 2;
  const pos = visionPatchPositions(gridH, gridW, cfg.spatialMergeSize);
  const rows = gridH * gridW;
  const cos = new Float32Array(rows * headDim);
  const sin = new Float32Array(rows * headDim);
  for (let r = 0; r < rows; r++) {
    const row = pos[2 * r]!;
    const col = pos[2 * r + 1]!;
    const base = r * headDim;
    for (let j = 0; j < halfDim; j++) {
      const p = j < quarter ? row : col;
      const angle = f32(p * invFreq[j % quarter]!);
      const c = Math.cos(angle);
      const s = Math.sin(angle);
      cos[base + j] = c;
      cos[base + halfDim + j] = c;
      sin[base + j] = s;
      sin[base + halfDim + j] = s;
    }
  }
  return { cos, sin, rows, headDim };
}
