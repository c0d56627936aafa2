/**
 * Distinct 1920x1080 screenshots for the benchmarks: the desktop fixture with a window-sized
 * coloured panel at a position and colour that depend on the index, so every agent step sends a
 * new image (no accidental image-cache hits) of the seed's kind.
 */
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { REPO_ROOT } from '../server/model/checkpoint/tiny.ts';

const BASE = readFileSync(`${REPO_ROOT}/test/fixtures/images/screenshot-desktop-1920x1080.png`);

export async function screenshot(index: number): Promise<Buffer> {
  const w = 480;
  const h = 300;
  const panel = await sharp({
    create: { width: w, height: h, channels: 3, background: { r: (index * 53) % 256, g: (index * 97) % 256, b: (index * 31 + 80) % 256 } },
  })
    .png()
    .toBuffer();
  const left = 60 + ((index * 137) % (1920 - w - 120));
  const top = 60 + ((index * 89) % (1080 - h - 120));
  return sharp(BASE).composite([{ input: panel, left, top }]).png().toBuffer();
}
