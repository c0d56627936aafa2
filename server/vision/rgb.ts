/** An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC): data.length = width*height*3. */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export function assertRgb(img: RgbImage): void {
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width <= 0 || img.height <= 0) {
    throw new RangeError(`bad image size ${img.width}x${img.height}`);
  }
  if (img.data.length !== img.width * img.height * 3) {
    throw new RangeError(`RGB buffer has ${img.data.length} bytes, expected ${img.width * img.height * 3}`);
  }
}
