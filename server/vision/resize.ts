/**
 * Resize an RGB image to an exact size with one of two resamplers:
 * - 'pil' (default): byte-identical to Pillow's BICUBIC, which Hugging Face's Qwen2VLImageProcessor
 *   uses; choose it wherever parity with the reference model matters.
 * - 'sharp': libvips' cubic (Catmull-Rom) kernel through sharp; faster, but not byte-identical to
 *   PIL (see docs/image-preprocessing.md for the measured difference).
 */
import sharp from 'sharp';
import { pilResizeBicubic } from './pil-resize.ts';
import { assertRgb, type RgbImage } from './rgb.ts';

export type ResizeMethod = 'pil' | 'sharp';

export interface ResizeOptions {
  method?: ResizeMethod;
}

export async function resizeRgb(img: RgbImage, width: number, height: number, opts: ResizeOptions = {}): Promise<RgbImage> {
  const method = opts.method ?? 'pil';
  if (method === 'pil') return pilResizeBicubic(img, width, height);
  assertRgb(img);
  if (width === img.width && height === img.height) return { data: img.data.slice(), width, height };
  const { data, info } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { fit: 'fill', kernel: 'cubic' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== width || info.height !== height || info.channels !== 3) {
    throw new Error(`sharp resize gave ${info.width}x${info.height}x${info.channels}, expected ${width}x${height}x3`);
  }
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width, height };
}
