/**
 * Qwen2-VL's `smart_resize` (Hugging Face transformers, image_processing_qwen2_vl.py) and the
 * resize policies built on it. Arithmetic mirrors the Python: true division in float64,
 * Python's round() (round half to even), math.floor / math.ceil / math.sqrt.
 */

export const DEFAULT_FACTOR = 28; // patch_size (14) * merge_size (2)
export const MAX_ASPECT_RATIO = 200;

export class ResizeError extends Error {
  readonly code = 'invalid_image_size' as const;
  constructor(message: string) {
    super(message);
    this.name = 'ResizeError';
  }
}

/** Python 3's round(x) for a float: ties go to the even integer. */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact for |x| < 2^52
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * HF `smart_resize(height, width, factor, min_pixels, max_pixels)`; returns [height, width].
 * Both sides become multiples of `factor`, the pixel count stays within [minPixels, maxPixels]
 * (up to rounding), and the aspect ratio is kept as closely as possible.
 * Throws ResizeError for non-positive sizes or an aspect ratio above 200.
 * The result is never below `factor` per side (HF's floor branch clamps; the round branch can
 * only give 0 when minPixels <= 0, which we clamp too).
 */
export function smartResize(
  height: number,
  width: number,
  factor: number = DEFAULT_FACTOR,
  minPixels: number = 56 * 56,
  maxPixels: number = 14 * 14 * 4 * 1280,
): [number, number] {
  if (!Number.isInteger(height) || !Number.isInteger(width) || height <= 0 || width <= 0) {
    throw new ResizeError(`image size must be positive integers, got ${width}x${height}`);
  }
  if (!Number.isInteger(factor) || factor <= 0) throw new ResizeError(`bad factor ${factor}`);
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > MAX_ASPECT_RATIO) {
    throw new ResizeError(`absolute aspect ratio must be smaller than ${MAX_ASPECT_RATIO}, got ${ratio}`);
  }
  let hBar = pyRound(height / factor) * factor;
  let wBar = pyRound(width / factor) * factor;
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  return [Math.max(factor, hBar), Math.max(factor, wBar)];
}

export type ResizePolicy =
  | { kind: 'smart'; minPixels: number; maxPixels: number; factor?: number }
  | {
      kind: 'fixed';
      /** target box, e.g. 800x450 (the seed's); rounded with smart_resize, e.g. to 812x448 */
      width: number;
      height: number;
      /**
       * 'fill' (default, the seed's behaviour): the target box is used as is, the input's aspect
       * ratio is not kept. 'contain': the input is first scaled to fit inside the box keeping its
       * aspect ratio (rounded to whole pixels), then rounded with smart_resize.
       */
      fit?: 'fill' | 'contain';
      /** pixel bounds for the rounding step; default: unbounded (the box decides) */
      minPixels?: number;
      maxPixels?: number;
      factor?: number;
    };

/** Final resize target for an input of width x height under a policy. */
export function resolveResize(width: number, height: number, policy: ResizePolicy): { width: number; height: number } {
  const factor = policy.factor ?? DEFAULT_FACTOR;
  if (policy.kind === 'smart') {
    const [h, w] = smartResize(height, width, factor, policy.minPixels, policy.maxPixels);
    return { width: w, height: h };
  }
  // validate the input too (aspect ratio limits apply to what the client sent)
  smartResize(height, width, factor, 0, Number.POSITIVE_INFINITY);
  let tw = policy.width;
  let th = policy.height;
  if (policy.fit === 'contain') {
    const s = Math.min(policy.width / width, policy.height / height);
    tw = Math.max(1, Math.round(width * s));
    th = Math.max(1, Math.round(height * s));
  }
  const [h, w] = smartResize(th, tw, factor, policy.minPixels ?? 0, policy.maxPixels ?? Number.POSITIVE_INFINITY);
  return { width: w, height: h };
}

/** Image tokens the LM sees for a resized image: (h/14)*(w/14)/4. */
export function imageTokenCount(width: number, height: number, patchSize = 14, mergeSize = 2): number {
  return (width / patchSize) * (height / patchSize) / (mergeSize * mergeSize);
}
