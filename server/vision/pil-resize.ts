/**
 * A bicubic resampler for 8-bit RGB that gives the same bytes as Pillow's
 * `Image.resize((w, h), Image.BICUBIC)` (libImaging/Resample.c, reducing_gap=None):
 *
 * - separable convolution; for a down-scale the filter support (2 for bicubic) is widened by the
 *   scale factor (antialiasing), the kernel argument shrunk by it;
 * - bicubic kernel with a = -0.5, weights normalised to sum 1 per output sample (float64);
 * - weights converted to fixed point with 22 fractional bits, rounded half away from zero;
 * - accumulation in integers starting at 0.5 (1 << 21), result = acc >> 22 clipped to [0, 255];
 * - horizontal pass first (over the source rows the vertical pass needs), the 8-bit result clipped,
 *   then the vertical pass; a pass whose size does not change is skipped.
 * Written from the description of Pillow's algorithm; no Pillow code is used.
 */
import { assertRgb, type RgbImage } from './rgb.ts';

const PRECISION_BITS = 22; // 32 - 8 - 2
const HALF = 1 << (PRECISION_BITS - 1);
const BICUBIC_SUPPORT = 2.0;
const A = -0.5;

function bicubic(x: number): number {
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((A + 2.0) * x - (A + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * A;
  return 0.0;
}

interface Coeffs {
  ksize: number;
  /** per output sample: [first source index, number of taps] */
  bounds: Int32Array;
  /** fixed-point weights, outSize * ksize */
  kk: Int32Array;
}

/** Weights for resampling [in0, in1) of an axis of inSize samples onto outSize samples. */
function precomputeCoeffs(inSize: number, in0: number, in1: number, outSize: number): Coeffs {
  // Pillow's box coordinates are C floats: the subtraction happens in float32.
  const scale = Math.fround(Math.fround(in1) - Math.fround(in0)) / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  const start = Math.fround(in0);
  for (let xx = 0; xx < outSize; xx++) {
    const center = start + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const v = bicubic((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    const base = xx * ksize;
    for (let x = 0; x < xmax; x++) {
      let v = w[x]!;
      if (ww !== 0.0) v /= ww;
      // (int)(±0.5 + v * 2^22): C's conversion truncates toward zero
      kk[base + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(acc: number): number {
  const v = acc >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over source rows [rowOffset, rowOffset + rows). */
function resampleHorizontal(src: RgbImage, outW: number, rowOffset: number, rows: number, c: Coeffs): Uint8Array {
  const out = new Uint8Array(outW * rows * 3);
  const { ksize, bounds, kk } = c;
  const inStride = src.width * 3;
  const s = src.data;
  for (let yy = 0; yy < rows; yy++) {
    const rowBase = (yy + rowOffset) * inStride;
    let o = yy * outW * 3;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = bounds[xx * 2]!;
      const xmax = bounds[xx * 2 + 1]!;
      const kb = xx * ksize;
      let s0 = HALF;
      let s1 = HALF;
      let s2 = HALF;
      let p = rowBase + xmin * 3;
      for (let x = 0; x < xmax; x++) {
        const k = kk[kb + x]!;
        s0 += s[p]! * k;
        s1 += s[p + 1]! * k;
        s2 += s[p + 2]! * k;
        p += 3;
      }
      out[o++] = clip8(s0);
      out[o++] = clip8(s1);
      out[o++] = clip8(s2);
    }
  }
  return out;
}

/** Vertical pass; bounds index rows of `src` directly (already shifted by the caller). */
function resampleVertical(src: Uint8Array, width: number, outH: number, c: Coeffs, shift: number): Uint8Array {
  const stride = width * 3;
  const out = new Uint8Array(stride * outH);
  const { ksize, bounds, kk } = c;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2]! - shift;
    const ymax = bounds[yy * 2 + 1]!;
    const kb = yy * ksize;
    const o = yy * stride;
    for (let i = 0; i < stride; i++) {
      let acc = HALF;
      let p = ymin * stride + i;
      for (let y = 0; y < ymax; y++) {
        acc += src[p]! * kk[kb + y]!;
        p += stride;
      }
      out[o + i] = clip8(acc);
    }
  }
  return out;
}

export interface PilBox {
  /** source region [x0, x1) x [y0, y1) in (float) pixel coordinates, as PIL's `box` */
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

/**
 * `Image.resize((outW, outH), Image.BICUBIC, box)` for an RGB image. Returns a new image; when
 * nothing changes it returns a copy, as PIL does.
 */
export function pilResizeBicubic(img: RgbImage, outW: number, outH: number, box?: PilBox): RgbImage {
  assertRgb(img);
  if (!Number.isInteger(outW) || !Number.isInteger(outH) || outW <= 0 || outH <= 0) {
    throw new RangeError(`bad output size ${outW}x${outH}`);
  }
  const b = box ?? { x0: 0, y0: 0, x1: img.width, y1: img.height };
  if (outW === img.width && outH === img.height && b.x0 === 0 && b.y0 === 0 && b.x1 === img.width && b.y1 === img.height) {
    return { data: img.data.slice(), width: outW, height: outH };
  }
  // Pillow: need_horizontal = xsize != in.xsize || box[0] || box[2] != xsize (same for vertical)
  const needH = outW !== img.width || b.x0 !== 0 || b.x1 !== outW;
  const needV = outH !== img.height || b.y0 !== 0 || b.y1 !== outH;
  const ch = precomputeCoeffs(img.width, b.x0, b.x1, outW);
  const cv = precomputeCoeffs(img.height, b.y0, b.y1, outH);
  const yFirst = cv.bounds[0]!;
  const yLast = cv.bounds[outH * 2 - 2]! + cv.bounds[outH * 2 - 1]!;

  let data = img.data;
  let width = img.width;
  let height = img.height;
  let shift = 0;
  if (needH) {
    data = resampleHorizontal(img, outW, yFirst, yLast - yFirst, ch);
    width = outW;
    height = yLast - yFirst;
    shift = yFirst;
  }
  if (needV) {
    data = resampleVertical(data, width, outH, cv, shift);
    height = outH;
  }
  if (data === img.data) data = img.data.slice();
  return { data, width, height };
}
