/**
 * Decode untrusted image bytes (PNG, JPEG, WebP) into 8-bit RGB with sharp, the way PIL's
 * `Image.open(...).convert("RGB")` sees them:
 * - alpha is dropped (not composited onto a background), as PIL's RGBA->RGB / LA->RGB does;
 * - grayscale is replicated to R=G=B; palette images are expanded;
 * - embedded ICC profiles are ignored (PIL does not apply them); EXIF orientation is not applied
 *   (PIL's Image.open does not rotate);
 * - 16-bit samples keep their high byte (PIL does this for 16-bit RGB PNGs; for 16-bit grayscale
 *   PIL clips to 255 instead, which we deliberately do not copy);
 * - only the first frame of an animated image (WebP/APNG) is decoded.
 * Guards: input byte limit, input pixel limit (checked from the header before decoding, and
 * sharp's limitInputPixels), magic-byte allow-list so no other libvips loader (SVG, PDF, TIFF,
 * GIF, HEIF, ...) ever sees client bytes, and failOn 'error' so truncated/corrupt data is rejected.
 */
import sharp, { type Metadata } from 'sharp';

export type ImageErrorCode = 'invalid_image' | 'image_too_large' | 'unsupported_image_type';

export class ImageError extends Error {
  readonly code: ImageErrorCode;
  constructor(code: ImageErrorCode, message: string) {
    super(message.replace(/\s*\n\s*/g, ' ').trim());
    this.name = 'ImageError';
    this.code = code;
  }
}

export type ImageFormat = 'png' | 'jpeg' | 'webp';

export interface DecodedImage {
  /** HWC, RGB, 8 bits per sample; length = width * height * 3 */
  data: Uint8Array;
  width: number;
  height: number;
  format: ImageFormat;
}

export interface DecodeLimits {
  /** maximum encoded size in bytes (default 20 MiB) */
  maxBytes?: number;
  /** maximum width*height of the decoded image (default 40 megapixels) */
  maxPixels?: number;
}

export const DEFAULT_MAX_BYTES = 20 * 1024 * 1024;
export const DEFAULT_MAX_PIXELS = 40_000_000;

/** Identify the container by its magic bytes; null when unknown. */
export function sniffImageType(b: Uint8Array): string | null {
  const at = (i: number) => b[i] ?? -1;
  const ascii = (i: number, s: string) => [...s].every((c, j) => at(i + j) === c.charCodeAt(0));
  if (at(0) === 0x89 && ascii(1, 'PNG') && at(4) === 0x0d && at(5) === 0x0a && at(6) === 0x1a && at(7) === 0x0a) return 'png';
  if (at(0) === 0xff && at(1) === 0xd8 && at(2) === 0xff) return 'jpeg';
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'webp';
  if (ascii(0, 'GIF87a') || ascii(0, 'GIF89a')) return 'gif';
  if (ascii(0, 'BM')) return 'bmp';
  if ((ascii(0, 'II') && at(2) === 42 && at(3) === 0) || (ascii(0, 'MM') && at(2) === 0 && at(3) === 42)) return 'tiff';
  if (ascii(4, 'ftyp')) return 'heif/avif';
  if (at(0) === 0xff && at(1) === 0x0a) return 'jxl';
  if (ascii(0, '%PDF')) return 'pdf';
  if (at(0) === 0x00 && at(1) === 0x00 && at(2) === 0x01 && at(3) === 0x00) return 'ico';
  const head = new TextDecoder('latin1').decode(b.subarray(0, 256)).trimStart().toLowerCase();
  if (head.startsWith('<svg') || head.startsWith('<?xml')) return 'svg';
  return null;
}

const ACCEPTED: ReadonlySet<string> = new Set(['png', 'jpeg', 'webp']);

function decodeFailure(err: unknown, maxPixels: number): ImageError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/exceeds pixel limit/i.test(msg)) return new ImageError('image_too_large', `image exceeds the limit of ${maxPixels} pixels`);
  const first = (msg.split('\n').find((l) => l.trim() !== '') ?? 'decode failed').trim().replace(/:$/, '');
  return new ImageError('invalid_image', `cannot decode image: ${first.slice(0, 200)}`);
}

export async function decodeImage(bytes: Uint8Array, limits: DecodeLimits = {}): Promise<DecodedImage> {
  const maxBytes = limits.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxPixels = limits.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new ImageError('invalid_image', 'empty image data');
  if (bytes.length > maxBytes) {
    throw new ImageError('image_too_large', `image is ${bytes.length} bytes, the limit is ${maxBytes}`);
  }
  const kind = sniffImageType(bytes);
  if (kind === null) throw new ImageError('invalid_image', 'not a PNG, JPEG or WebP image');
  if (!ACCEPTED.has(kind)) throw new ImageError('unsupported_image_type', `unsupported image type ${kind}; use PNG, JPEG or WebP`);

  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const options = {
    limitInputPixels: maxPixels,
    failOn: 'error' as const,
    pages: 1,
    page: 0,
    animated: false,
    ignoreIcc: true,
    autoOrient: false,
    sequentialRead: true,
  };

  let meta: Metadata;
  try {
    meta = await sharp(input, options).metadata();
  } catch (err) {
    throw decodeFailure(err, maxPixels);
  }
  if (meta.format !== kind) {
    throw new ImageError('invalid_image', `image data does not decode as ${kind}`);
  }
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (!(w > 0 && h > 0)) throw new ImageError('invalid_image', 'image has no size');
  if (w * h > maxPixels) {
    throw new ImageError('image_too_large', `image is ${w}x${h} pixels, the limit is ${maxPixels} pixels`);
  }

  try {
    let pipe = sharp(input, options);
    if (meta.hasAlpha) pipe = pipe.removeAlpha();
    // grayscale -> sRGB replicates the band; 16-bit -> 8-bit keeps the high byte
    pipe = pipe.toColourspace('srgb');
    const { data, info } = await pipe.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || info.width !== w || info.height !== h || data.length !== w * h * 3) {
      throw new Error(`unexpected decode result ${info.width}x${info.height}x${info.channels}`);
    }
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: w, height: h, format: kind as ImageFormat };
  } catch (err) {
    throw decodeFailure(err, maxPixels);
  }
}
