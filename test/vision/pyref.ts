/** Helpers to run the Python/PIL references (Debian's /usr/bin/python3 with PIL + numpy). */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RgbImage } from '../../server/vision/rgb.ts';

export { PYTHON } from '../helpers/python.ts';
import { PYTHON } from '../helpers/python.ts';
export const HERE = dirname(fileURLToPath(import.meta.url));
export const HF_SCRIPT = join(HERE, 'hf_qwen2vl_preprocess.py');

let cached: string | false | undefined;
/** null when PIL + numpy are usable, otherwise the reason they are not. */
export function pilUnavailableReason(): string | null {
  if (cached === undefined) {
    const r = spawnSync(PYTHON, ['-c', 'import PIL, numpy; print(PIL.__version__)'], { encoding: 'utf8' });
    cached = r.status === 0 ? false : `${PYTHON} with PIL and numpy is not available (${(r.stderr || String(r.error)).trim().split('\n').pop()})`;
  }
  return cached === false ? null : cached;
}

export function withTmp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'vision-test-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** PIL: Image.frombytes('RGB', ...).resize((w, h), Image.BICUBIC) */
export function pilResizeRef(img: RgbImage, w: number, h: number): Uint8Array {
  return withTmp((dir) => {
    const p = join(dir, 'in.raw');
    writeFileSync(p, img.data);
    const code = `import sys
from PIL import Image
im = Image.frombytes('RGB', (${img.width}, ${img.height}), open(sys.argv[1], 'rb').read())
sys.stdout.buffer.write(im.resize((${w}, ${h}), Image.BICUBIC).tobytes())`;
    const out = execFileSync(PYTHON, ['-c', code, p], { maxBuffer: 1 << 30 });
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  });
}

/** PIL: Image.open(path).convert('RGB') -> [bytes, width, height] */
export function pilDecodeRef(bytes: Uint8Array): { data: Uint8Array; width: number; height: number; mode: string } {
  return withTmp((dir) => {
    const p = join(dir, 'img');
    writeFileSync(p, bytes);
    const code = `import sys, warnings
warnings.simplefilter('ignore')
from PIL import Image
im = Image.open(sys.argv[1]); mode = im.mode
rgb = im.convert('RGB')
sys.stderr.write('%s %d %d' % (mode, rgb.width, rgb.height))
sys.stdout.buffer.write(rgb.tobytes())`;
    const r = spawnSync(PYTHON, ['-c', code, p], { maxBuffer: 1 << 30 });
    if (r.status !== 0) throw new Error(`PIL failed: ${r.stderr.toString()}`);
    const [mode, w, h] = r.stderr.toString().trim().split(' ');
    return { data: new Uint8Array(r.stdout), width: Number(w), height: Number(h), mode: mode! };
  });
}

/** Run a python snippet that writes an image file to sys.argv[1]; returns its bytes. */
export function pilMakeImage(code: string): Uint8Array {
  return withTmp((dir) => {
    const p = join(dir, 'out');
    execFileSync(PYTHON, ['-c', `import sys\nimport numpy as np\nfrom PIL import Image\n${code}`, p]);
    return new Uint8Array(readFileSync(p));
  });
}

/** The HF reference preprocessing (hf_qwen2vl_preprocess.py) of a raw RGB image. */
export function hfPreprocessRef(
  img: RgbImage,
  args: string[] = [],
): { patches: Float32Array; gridThw: number[]; shape: number[]; resized: number[] } {
  return withTmp((dir) => {
    const inp = join(dir, 'in.raw');
    const out = join(dir, 'out.f32');
    writeFileSync(inp, img.data);
    const stdout = execFileSync(PYTHON, [HF_SCRIPT, inp, out, '--raw', String(img.width), String(img.height), ...args], {
      encoding: 'utf8',
    });
    const meta = JSON.parse(stdout.trim().split('\n').pop()!) as { grid_thw: number[]; shape: number[]; resized: number[] };
    const buf = readFileSync(out);
    const patches = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    return { patches, gridThw: meta.grid_thw, shape: meta.shape, resized: meta.resized };
  });
}
