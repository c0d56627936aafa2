/**
 * OSWorld's image metrics (metrics/gimp.py, metrics/vlc.py compare_images) on pixels decoded by
 * sharp. Pillow's conversions are reproduced (L = ITU-R 601 luma in Pillow's fixed point, RGBA ->
 * RGB drops alpha, Pillow's RGB -> HSV), and SSIM is scikit-image's structural_similarity with its
 * defaults (7x7 uniform window, sample covariance, K1 0.01, K2 0.03, data range 255, mean over the
 * window-valid area and over channels). Resizing uses sharp's lanczos3 / cubic kernels where
 * Pillow uses its LANCZOS / BICUBIC filters: values near a threshold may differ slightly.
 */
import fs from 'node:fs';
import sharp from 'sharp';
import type { Metric } from '../types.ts';

export type Mode = 'L' | 'LA' | 'RGB' | 'RGBA' | 'P';
export interface Img {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
  /** the mode Pillow would open the file in */
  mode: Mode;
}

export async function loadImage(file: string): Promise<Img> {
  const s = sharp(file, { failOn: 'none' });
  const meta = await s.metadata();
  const { data, info } = await s.raw().toBuffer({ resolveWithObject: true });
  const palette = meta.isPalette === true;
  const mode: Mode = palette ? 'P' : info.channels === 1 ? 'L' : info.channels === 2 ? 'LA' : info.channels === 3 ? 'RGB' : 'RGBA';
  return { width: info.width, height: info.height, channels: info.channels, data: new Uint8Array(data), mode };
}

const hasAlpha = (img: Img) => img.channels === 2 || img.channels === 4;
const isGray = (img: Img) => img.channels <= 2;

/** Pillow's convert('L'): (R*19595 + G*38470 + B*7471 + 0x8000) >> 16; alpha ignored. */
export function toL(img: Img): Img {
  if (img.channels === 1) return { ...img, mode: 'L' };
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const p = i * img.channels;
    out[i] = isGray(img) ? img.data[p]! : (img.data[p]! * 19595 + img.data[p + 1]! * 38470 + img.data[p + 2]! * 7471 + 0x8000) >> 16;
  }
  return { width: img.width, height: img.height, channels: 1, data: out, mode: 'L' };
}

/** Pillow's convert('RGB'): alpha dropped (not composited), gray replicated. */
export function toRGB(img: Img): Img {
  if (img.channels === 3) return { ...img, mode: 'RGB' };
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const p = i * img.channels;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = isGray(img) ? img.data[p]! : img.data[p + c]!;
  }
  return { width: img.width, height: img.height, channels: 3, data: out, mode: 'RGB' };
}

function toRGBA(img: Img): Img {
  if (img.channels === 4) return { ...img, mode: 'RGBA' };
  const n = img.width * img.height;
  const out = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) {
    const p = i * img.channels;
    for (let c = 0; c < 3; c++) out[i * 4 + c] = isGray(img) ? img.data[p]! : img.data[p + c]!;
    out[i * 4 + 3] = img.channels === 2 ? img.data[p + 1]! : 255;
  }
  return { width: img.width, height: img.height, channels: 4, data: out, mode: 'RGBA' };
}

/** Pillow's convert('HSV') (colorsys-like, each channel scaled to 0..255 and truncated). */
export function toHSV(img: Img): Img {
  const rgb = toRGB(img);
  const n = rgb.width * rgb.height;
  const out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const r = rgb.data[i * 3]!;
    const g = rgb.data[i * 3 + 1]!;
    const b = rgb.data[i * 3 + 2]!;
    const maxc = Math.max(r, g, b);
    const minc = Math.min(r, g, b);
    let h = 0;
    let s = 0;
    if (maxc !== minc) {
      const cr = maxc - minc;
      const fs32 = Math.fround;
      s = fs32(cr / maxc);
      const rc = fs32((maxc - r) / cr);
      const gc = fs32((maxc - g) / cr);
      const bc = fs32((maxc - b) / cr);
      let hh = r === maxc ? bc - gc : g === maxc ? 2 + rc - bc : 4 + gc - rc;
      hh = (hh / 6 + 1) % 1;
      h = Math.min(255, Math.max(0, Math.trunc(hh * 255)));
      s = Math.min(255, Math.max(0, Math.trunc(s * 255)));
    }
    out[i * 3] = h;
    out[i * 3 + 1] = s;
    out[i * 3 + 2] = maxc;
  }
  return { width: rgb.width, height: rgb.height, channels: 3, data: out, mode: 'RGB' };
}

export function channel(img: Img, c: number): Img {
  const n = img.width * img.height;
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = img.data[i * img.channels + c]!;
  return { width: img.width, height: img.height, channels: 1, data: out, mode: 'L' };
}

export async function resize(img: Img, width: number, height: number, kernel: 'lanczos3' | 'cubic' = 'lanczos3'): Promise<Img> {
  if (img.width === width && img.height === height) return img;
  const { data, info } = await sharp(Buffer.from(img.data), { raw: { width: img.width, height: img.height, channels: img.channels as 1 | 2 | 3 | 4 } })
    .resize(width, height, { fit: 'fill', kernel })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, channels: info.channels, data: new Uint8Array(data), mode: img.mode };
}

const mean = (img: Img) => img.data.reduce((a, b) => a + b, 0) / img.data.length;

/**
 * scikit-image's structural_similarity for uint8 images (channel_axis=2 when several channels):
 * uniform win x win window, sample covariance, mean over the pixels whose window is inside.
 */
export function ssim(a: Img, b: Img, win = 7): number {
  if (a.width !== b.width || a.height !== b.height || a.channels !== b.channels) throw new Error('ssim: images differ in shape');
  const { width: w, height: h, channels: ch } = a;
  if (w < win || h < win) throw new Error('ssim: image smaller than the window');
  const C1 = (0.01 * 255) ** 2;
  const C2 = (0.03 * 255) ** 2;
  const np = win * win;
  const covNorm = np / (np - 1);
  let total = 0;
  for (let c = 0; c < ch; c++) {
    // integral images of x, y, x^2, y^2, xy
    const W = w + 1;
    const sx = new Float64Array(W * (h + 1));
    const sy = new Float64Array(W * (h + 1));
    const sxx = new Float64Array(W * (h + 1));
    const syy = new Float64Array(W * (h + 1));
    const sxy = new Float64Array(W * (h + 1));
    for (let y = 0; y < h; y++) {
      let rx = 0;
      let ry = 0;
      let rxx = 0;
      let ryy = 0;
      let rxy = 0;
      for (let x = 0; x < w; x++) {
        const i = (y * w + x) * ch + c;
        const X = a.data[i]!;
        const Y = b.data[i]!;
        rx += X;
        ry += Y;
        rxx += X * X;
        ryy += Y * Y;
        rxy += X * Y;
        const o = (y + 1) * W + x + 1;
        const u = y * W + x + 1;
        sx[o] = sx[u]! + rx;
        sy[o] = sy[u]! + ry;
        sxx[o] = sxx[u]! + rxx;
        syy[o] = syy[u]! + ryy;
        sxy[o] = sxy[u]! + rxy;
      }
    }
    const box = (s: Float64Array, x0: number, y0: number) => s[(y0 + win) * W + x0 + win]! - s[y0 * W + x0 + win]! - s[(y0 + win) * W + x0]! + s[y0 * W + x0]!;
    let sum = 0;
    let count = 0;
    for (let y = 0; y + win <= h; y++) {
      for (let x = 0; x + win <= w; x++) {
        const ux = box(sx, x, y) / np;
        const uy = box(sy, x, y) / np;
        const vx = covNorm * (box(sxx, x, y) / np - ux * ux);
        const vy = covNorm * (box(syy, x, y) / np - uy * uy);
        const vxy = covNorm * (box(sxy, x, y) / np - ux * uy);
        sum += ((2 * ux * uy + C1) * (2 * vxy + C2)) / ((ux * ux + uy * uy + C1) * (vx + vy + C2));
        count++;
      }
    }
    total += sum / count;
  }
  return total / ch;
}

/** OSWorld's structure_check_by_ssim: RGB, same size, SSIM (window 7, smaller odd for tiny images) >= threshold. */
export function structureCheckBySsim(a: Img, b: Img, threshold = 0.9): boolean {
  if (a.width < 7 || a.height < 7 || b.width < 7 || b.height < 7) return false;
  if (a.width !== b.width || a.height !== b.height) return false;
  try {
    return ssim(toRGB(a), toRGB(b), 7) >= threshold;
  } catch {
    return false;
  }
}

/** OSWorld's structure_check_by_mse: img1 resized (LANCZOS) to img2, RGB, mean squared difference of [0,1] values < threshold. */
export async function structureCheckByMse(a: Img, b: Img, threshold = 0.03): Promise<boolean> {
  const x = toRGB(await resize(a, b.width, b.height, 'lanczos3'));
  const y = toRGB(b);
  let s = 0;
  for (let i = 0; i < x.data.length; i++) {
    const d = x.data[i]! / 255 - y.data[i]! / 255;
    s += d * d;
  }
  return s / x.data.length < threshold;
}

const brightness = (img: Img) => mean(toL(img));

/** Pillow's point(): every band (alpha too) through min(255, max(0, int(x * factor))). */
function normalizeBrightness(img: Img, target: number): Img {
  const factor = target / brightness(img);
  const lut = new Uint8Array(256).map((_, x) => Math.min(255, Math.max(0, Math.trunc(x * factor))));
  return { ...img, data: img.data.map((v) => lut[v]!) };
}

/** np.std of every value of the image as Pillow opened it (all bands). */
function contrast(img: Img): number {
  const m = mean(img);
  let s = 0;
  for (const v of img.data) s += (v - m) ** 2;
  return Math.sqrt(s / img.data.length);
}

const paths = (a: unknown, b: unknown): [string, string] | null => (typeof a === 'string' && typeof b === 'string' && fs.existsSync(a) && fs.existsSync(b) ? [a, b] : null);
const safe =
  (fn: (a: string, b: string, opts: Record<string, unknown>) => Promise<number>): Metric =>
  async (a, b, opts) => {
    const p = paths(a, b);
    if (!p) return 0;
    return fn(p[0], p[1], opts);
  };

export const checkStructureSim: Metric = safe(async (src, tgt) => {
  try {
    const a = await loadImage(src);
    const b = await loadImage(tgt);
    if (a.width !== b.width || a.height !== b.height) return 0;
    return structureCheckBySsim(a, b) ? 1 : 0;
  } catch {
    return 0;
  }
});

export const checkBrightnessDecreaseAndStructureSim: Metric = safe(async (src, tgt, opts) => {
  const a = await loadImage(src);
  const b = await loadImage(tgt);
  const reduced = brightness(b) > brightness(a);
  const same = await structureCheckByMse(normalizeBrightness(a, 128), normalizeBrightness(b, 128), Number(opts.threshold ?? 0.03));
  return reduced && same ? 1 : 0;
});

export const checkSaturationIncreaseAndStructureSim: Metric = safe(async (src, tgt) => {
  const a = toHSV(await loadImage(src));
  const b = toHSV(await loadImage(tgt));
  const increased = mean(channel(b, 1)) < mean(channel(a, 1));
  const same = structureCheckBySsim(channel(a, 0), channel(b, 0)) && structureCheckBySsim(channel(a, 2), channel(b, 2));
  return increased && same ? 1 : 0;
});

export const checkFileExistsAndStructureSim: Metric = safe(async (src, tgt) => (structureCheckBySsim(await loadImage(src), await loadImage(tgt)) ? 1 : 0));

export const checkContrastIncreaseAndStructureSim: Metric = safe(async (src, tgt) => {
  const a = await loadImage(src);
  const b = await loadImage(tgt);
  return contrast(b) < contrast(a) && structureCheckBySsim(a, b, 0.65) ? 1 : 0;
});

/** The alpha bounding box (Pillow's getbbox of the alpha band), or null when fully transparent. */
function alphaBox(img: Img): [number, number, number, number] | null {
  const ai = img.channels - 1;
  let x0 = img.width;
  let y0 = img.height;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < img.width; x++)
      if (img.data[(y * img.width + x) * img.channels + ai]! !== 0) {
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x);
        y1 = Math.max(y1, y);
      }
  return x1 < 0 ? null : [x0, y0, x1 + 1, y1 + 1];
}

function crop(img: Img, [x0, y0, x1, y1]: [number, number, number, number]): Img {
  const w = x1 - x0;
  const h = y1 - y0;
  const out = new Uint8Array(w * h * img.channels);
  for (let y = 0; y < h; y++) out.set(img.data.subarray(((y0 + y) * img.width + x0) * img.channels, ((y0 + y) * img.width + x1) * img.channels), y * w * img.channels);
  return { ...img, width: w, height: h, data: out };
}

export const checkStructureSimResized: Metric = safe(async (src, tgt) => {
  let a = await loadImage(src);
  const b = await loadImage(tgt);
  if (hasAlpha(a)) {
    const box = alphaBox(toRGBA(a));
    if (!box) return 0;
    a = toRGB(crop(toRGBA(a), box));
    a = await resize(a, b.width, b.height, 'cubic');
  } else a = await resize(a, b.width, b.height, 'cubic'); // Pillow's resize() default: BICUBIC
  return structureCheckBySsim(a, toRGB(b)) ? 1 : 0;
});

/**
 * The image (or, with ignore_transparent, its non-transparent content) has rule.width / rule.height.
 * OSWorld's condition reads `ignore_transparent and mode in (RGBA, LA) or 'transparency' in info`.
 */
export const checkImageSize: Metric = async (src, rule) => {
  if (typeof src !== 'string' || !fs.existsSync(src)) return 0;
  const r = (rule ?? {}) as Record<string, unknown>;
  const img = await loadImage(src);
  let w = img.width;
  let h = img.height;
  if ((r.ignore_transparent && hasAlpha(img) && img.mode !== 'P') || (img.mode === 'P' && hasAlpha(img))) {
    const box = alphaBox(toRGBA(img));
    [w, h] = box ? [box[2] - box[0], box[3] - box[1]] : [0, 0];
  }
  const okH = r.height === undefined || r.height === null || h === r.height;
  const okW = r.width === undefined || r.width === null || w === r.width;
  return okH && okW ? 1 : 0;
};

export const checkPaletteAndStructureSim: Metric = safe(async (src, tgt) => {
  if (fs.statSync(src).size === 0) return 0;
  try {
    const a = await loadImage(src);
    const b = await loadImage(tgt);
    return a.mode === 'P' && structureCheckBySsim(toRGB(a), b) ? 1 : 0;
  } catch {
    return 0;
  }
});

/** The file is smaller than rule.max_size bytes. */
export const checkImageFileSize: Metric = (src, rule) => {
  if (typeof src !== 'string' || !fs.existsSync(src)) return 0;
  return fs.statSync(src).size < Number(((rule ?? {}) as Record<string, unknown>).max_size) ? 1 : 0;
};

/** The source mirrored left-right matches the target (SSIM >= 0.99). */
export const checkImageMirror: Metric = safe(async (src, tgt) => {
  const a = await loadImage(src);
  const m = new Uint8Array(a.data.length);
  for (let y = 0; y < a.height; y++)
    for (let x = 0; x < a.width; x++) {
      const s = (y * a.width + x) * a.channels;
      const d = (y * a.width + (a.width - 1 - x)) * a.channels;
      for (let c = 0; c < a.channels; c++) m[d + c] = a.data[s + c]!;
    }
  return structureCheckBySsim({ ...a, data: m }, await loadImage(tgt), 0.99) ? 1 : 0;
});

/**
 * OSWorld's compare_images (metrics/vlc.py): grayscale, both resized (LANCZOS) to the smaller
 * size (Python's min() of (w, h) tuples), SSIM; with reference_base_result, the gain over it.
 */
export const compareImages: Metric = async (a, b, options) => {
  if (!a || !b || typeof a !== 'string' || typeof b !== 'string') return 0;
  const x = toL(await loadImage(a));
  const y = toL(await loadImage(b));
  const [w, h] = x.width < y.width || (x.width === y.width && x.height <= y.height) ? [x.width, x.height] : [y.width, y.height];
  const s = ssim(await resize(x, w, h), await resize(y, w, h));
  const base = options.reference_base_result as number | undefined;
  if (base === undefined || base === null) return s;
  return s >= base + 0.01 ? (s - base) / (1 - base) : 0;
};

/**
 * OSWorld's compare_image_list: every pair identical after resizing the prediction to the gold
 * size and converting it to the gold's mode (Pillow's getbbox of the difference: for images with
 * alpha only the alpha band counts, as in Pillow).
 */
export const compareImageList: Metric = async (pred, gold) => {
  const ps = Array.isArray(pred) ? pred : [pred];
  const gs = Array.isArray(pred) ? (gold as unknown[]) : [gold];
  for (let i = 0; i < Math.min(ps.length, gs.length); i++) {
    const p = ps[i];
    const g = gs[i];
    if (!p || !g || typeof p !== 'string' || typeof g !== 'string') return 0;
    const gi = await loadImage(g);
    let pi = await loadImage(p);
    if (pi.width !== gi.width || pi.height !== gi.height) pi = await resize(pi, gi.width, gi.height, 'lanczos3');
    const conv = (img: Img): Img => (gi.channels === 1 ? toL(img) : gi.channels === 3 ? toRGB(img) : gi.channels === 4 ? toRGBA(img) : toRGBA(img));
    const x = conv(pi);
    const y = conv(gi);
    const alphaOnly = hasAlpha(gi);
    for (let j = 0; j < x.data.length; j++) {
      if (alphaOnly && j % x.channels !== x.channels - 1) continue;
      if (x.data[j] !== y.data[j]) return 0;
    }
  }
  return 1;
};
