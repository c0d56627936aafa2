/** Deterministic test images written to a tap fixture folder. */
import path from 'node:path';
import sharp from 'sharp';
import type { Test } from 'tap';

/** A width x height PNG with a seeded pattern (gradients plus noise), returns its path. */
export async function writeTestImage(t: Test, name: string, width: number, height: number, seed: number): Promise<string> {
  const data = Buffer.alloc(width * height * 3);
  let s = seed >>> 0;
  for (let i = 0; i < width * height; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const x = i % width;
    const y = Math.floor(i / width);
    data[3 * i] = (x * 255) / width;
    data[3 * i + 1] = (y * 255) / height;
    data[3 * i + 2] = s >>> 24;
  }
  const dir = t.testdir({});
  const file = path.join(dir, name);
  await sharp(data, { raw: { width, height, channels: 3 } }).png().toFile(file);
  return file;
}
