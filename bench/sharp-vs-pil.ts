/**
 * Measurement (not a test): how far sharp's cubic resize is from PIL's BICUBIC (which Hugging
 * Face's Qwen2VLImageProcessor uses) on screenshot-like 1920x1080 images, and how long each
 * resampler takes. PIL's output is computed with server/vision/pil-resize.ts, which the tests
 * check byte for byte against PIL itself.
 *
 *   npx tsx bench/sharp-vs-pil.ts [--runs N] [--no-python] [--image real-screenshot.png ...]
 */
import sharp from 'sharp';
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import { pilResizeBicubic } from '../server/vision/pil-resize.ts';
import { resizeRgb } from '../server/vision/resize.ts';
import { basename } from 'node:path';
import { decodeImage } from '../server/vision/decode.ts';
import type { RgbImage } from '../server/vision/rgb.ts';
import { renderScreenshot, SCREENSHOT_KINDS } from '../test/vision/screenshots.ts';

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] ?? 5) || 5;
const usePython = !args.includes('--no-python');
const TARGETS: [number, number][] = [
  [812, 448],
  [1932, 1092],
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function time(fn: () => unknown): Promise<number> {
  await fn(); // warm-up
  const ts: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

function compare(a: Uint8Array, b: Uint8Array) {
  let max = 0;
  let sum = 0;
  let pxOver1 = 0;
  let pxAny = 0;
  for (let p = 0; p < a.length; p += 3) {
    let m = 0;
    for (let c = 0; c < 3; c++) {
      const d = Math.abs(a[p + c]! - b[p + c]!);
      sum += d;
      if (d > m) m = d;
    }
    if (m > max) max = m;
    if (m > 1) pxOver1++;
    if (m > 0) pxAny++;
  }
  const n = a.length / 3;
  return { max, mean: sum / a.length, over1: (100 * pxOver1) / n, any: (100 * pxAny) / n };
}

function pythonPilTime(img: RgbImage, w: number, h: number): number | null {
  const code = `import sys, time
from PIL import Image
im = Image.frombytes('RGB', (${img.width}, ${img.height}), sys.stdin.buffer.read())
im.resize((${w}, ${h}), Image.BICUBIC)
ts = []
for _ in range(${runs}):
    t0 = time.perf_counter(); im.resize((${w}, ${h}), Image.BICUBIC); ts.append(time.perf_counter() - t0)
ts.sort(); print(ts[len(ts)//2] * 1000)`;
  const r = spawnSync('/usr/bin/python3', ['-c', code], { input: img.data, encoding: 'utf8', maxBuffer: 1 << 28 });
  return r.status === 0 ? Number(r.stdout.trim()) : null;
}

const images: [string, RgbImage][] = [];
for (const k of SCREENSHOT_KINDS) images.push([k, await renderScreenshot(k, 1)]);
images.push(['fixture png', await decodeImage(readFileSync(new URL('../test/fixtures/images/screenshot-desktop-1920x1080.png', import.meta.url)))]);
// Real screenshots (e.g. of an Xvfb desktop taken with scrot) given on the command line.
const files = args.flatMap((a, i) => (a === '--image' && args[i + 1] ? [args[i + 1]!] : []));
for (const file of files) images.push([`file ${basename(file)}`, await decodeImage(readFileSync(file))]);

console.log(`# sharp ${sharp.versions.sharp} (libvips ${sharp.versions.vips}), node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model}), median of ${runs} runs`);
console.log('| image | target | kernel | max abs | mean abs | px > 1/255 | px != | sharp ms | pil-resize.ts ms | PIL (C) ms |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const [name, img] of images) {
  for (const [w, h] of TARGETS) {
    const ref = pilResizeBicubic(img, w, h);
    const tPil = await time(() => pilResizeBicubic(img, w, h));
    const tPy = usePython ? pythonPilTime(img, w, h) : null;
    for (const kernel of ['cubic', 'lanczos3'] as const) {
      const run = async () => {
        const { data } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
          .resize(w, h, { fit: 'fill', kernel })
          .raw()
          .toBuffer({ resolveWithObject: true });
        return data;
      };
      const out = kernel === 'cubic' ? (await resizeRgb(img, w, h, { method: 'sharp' })).data : new Uint8Array(await run());
      const c = compare(out, ref.data);
      const tSharp = await time(run);
      console.log(
        `| ${name} | ${w}x${h} | ${kernel} | ${c.max} | ${c.mean.toFixed(3)} | ${c.over1.toFixed(2)}% | ${c.any.toFixed(2)}% | ${tSharp.toFixed(1)} | ${tPil.toFixed(1)} | ${tPy === null ? 'n/a' : tPy.toFixed(1)} |`,
      );
    }
  }
}
