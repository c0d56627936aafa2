import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeImage } from '../../server/vision/decode.ts';
import { pilResizeBicubic } from '../../server/vision/pil-resize.ts';
import { resizeRgb } from '../../server/vision/resize.ts';
import type { RgbImage } from '../../server/vision/rgb.ts';
import { HERE, pilResizeRef, pilUnavailableReason } from './pyref.ts';
import { renderScreenshot } from './screenshots.ts';

function noise(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    // mix of hard noise and smooth ramps, so both overshoot clipping and plain interpolation occur
    data[i] = (i >> 4) % 3 === 0 ? (s >> 16) & 255 : ((i / 3) * 7 + (i % 3) * 60) & 255;
  }
  return { data, width, height };
}

function firstDiff(a: Uint8Array, b: Uint8Array): string {
  if (a.length !== b.length) return `length ${a.length} vs ${b.length}`;
  let n = 0;
  let first = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      n++;
      if (first < 0) first = i;
    }
  }
  return n === 0 ? 'identical' : `${n} bytes differ, first at ${first}: ${a[first]} vs ${b[first]}`;
}

const why = pilUnavailableReason();

t.test('basic properties (no python)', async (t) => {
  const img = noise(31, 17, 3);
  const same = pilResizeBicubic(img, 31, 17);
  t.same(same.data, img.data, 'same size is a copy');
  t.not(same.data, img.data, 'a new buffer');
  const flat: RgbImage = { data: new Uint8Array(40 * 30 * 3).fill(77), width: 40, height: 30 };
  for (const [w, h] of [[13, 7], [97, 61], [40, 5], [1, 1]] as const) {
    const r = pilResizeBicubic(flat, w, h);
    t.ok(r.data.every((v) => v === 77), `flat image stays flat at ${w}x${h}`);
  }
  t.throws(() => pilResizeBicubic(img, 0, 5));
  t.throws(() => pilResizeBicubic({ data: new Uint8Array(5), width: 2, height: 2 }, 3, 3));
});

t.test('byte-identical to PIL Image.resize(BICUBIC)', { skip: why ?? false }, async (t) => {
  const fixture = await decodeImage(readFileSync(join(HERE, '../fixtures/images/screenshot-desktop-1920x1080.png')));
  const terminal = await renderScreenshot('terminal', 3);
  const sheet = await renderScreenshot('spreadsheet', 5);
  const small = noise(173, 97, 11);
  const tiny = noise(3, 2, 5);
  const cases: [string, RgbImage, number, number][] = [
    ['fixture png 1920x1080 -> 812x448 (seed policy)', fixture, 812, 448],
    ['fixture png 1920x1080 -> 1932x1092 (smart_resize)', fixture, 1932, 1092],
    ['terminal 1920x1080 -> 812x448', terminal, 812, 448],
    ['spreadsheet 1920x1080 -> 1932x1092', sheet, 1932, 1092],
    ['spreadsheet 1920x1080 -> 1316x728', sheet, 1316, 728],
    ['fixture -> odd 333x187', fixture, 333, 187],
    ['fixture -> horizontal only 1001x1080', fixture, 1001, 1080],
    ['fixture -> vertical only 1920x541', fixture, 1920, 541],
    ['fixture -> extreme downscale 28x28', fixture, 28, 28],
    ['noise 173x97 -> upscale 812x448', small, 812, 448],
    ['noise 173x97 -> 300x201 (up) ', small, 300, 201],
    ['noise 173x97 -> 50x300 (down x, up y)', small, 50, 300],
    ['noise 173x97 -> 172x98 (off by one)', small, 172, 98],
    ['noise 3x2 -> 56x56', tiny, 56, 56],
    ['noise 3x2 -> 1x1', tiny, 1, 1],
  ];
  for (const [name, img, w, h] of cases) {
    const ours = pilResizeBicubic(img, w, h);
    const ref = pilResizeRef(img, w, h);
    t.equal(firstDiff(ours.data, ref), 'identical', name);
  }
  const viaResize = await resizeRgb(small, 812, 448, { method: 'pil' });
  t.equal(firstDiff(viaResize.data, pilResizeRef(small, 812, 448)), 'identical', "resizeRgb method 'pil'");
});

t.test("resizeRgb method 'sharp' gives the right size and is close", async (t) => {
  const img = await renderScreenshot('webpage', 2);
  const s = await resizeRgb(img, 812, 448, { method: 'sharp' });
  t.equal(s.width, 812);
  t.equal(s.height, 448);
  t.equal(s.data.length, 812 * 448 * 3);
  const p = pilResizeBicubic(img, 812, 448);
  let sum = 0;
  for (let i = 0; i < p.data.length; i++) sum += Math.abs(p.data[i]! - s.data[i]!);
  t.ok(sum / p.data.length < 8, `mean abs diff vs PIL ${(sum / p.data.length).toFixed(3)}`);
});
