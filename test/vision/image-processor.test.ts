import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PreprocessorConfig } from '../../server/model/checkpoint/types.ts';
import { patchifyResized, preprocessImage } from '../../server/model/qwen2-vl/image-processor.ts';
import { decodeImage } from '../../server/vision/decode.ts';
import type { RgbImage } from '../../server/vision/rgb.ts';
import { resolveResize } from '../../server/vision/smart-resize.ts';
import { hfPreprocessRef, HERE, pilUnavailableReason } from './pyref.ts';
import { renderScreenshot } from './screenshots.ts';

// Qwen2-VL / UI-TARS-2B preprocessor_config.json
const CFG: PreprocessorConfig = {
  minPixels: 3136,
  maxPixels: 12845056,
  patchSize: 14,
  temporalPatchSize: 2,
  mergeSize: 2,
  imageMean: [0.48145466, 0.4578275, 0.40821073],
  imageStd: [0.26862954, 0.26130258, 0.27577711],
  rescaleFactor: 0.00392156862745098,
};

t.test('patch tensor of a 56x28 gradient, from the formula', async (t) => {
  const W = 56;
  const H = 28;
  const pix = (row: number, col: number, ch: number) => (row * 7 + col * 3 + ch * 50) % 256;
  const data = new Uint8Array(W * H * 3);
  for (let r = 0; r < H; r++) for (let c = 0; c < W; c++) for (let ch = 0; ch < 3; ch++) data[(r * W + c) * 3 + ch] = pix(r, c, ch);
  const out = preprocessImage({ data, width: W, height: H }, W, H, CFG);
  t.same(out.gridThw, [1, 2, 4]);
  t.equal(out.numPatches, 8);
  t.equal(out.patchDim, 1176);
  t.equal(out.numImageTokens, 2);
  t.equal(out.patches.length, 8 * 1176);

  // Independent index arithmetic: patch k = merge group g (row-major over the 1x2 groups), then
  // 2x2 inside the group; column j = (channel, temporal, y, x).
  let maxErr = 0;
  let exactMismatch = 0;
  const f = Math.fround;
  for (let k = 0; k < 8; k++) {
    const group = Math.floor(k / 4);
    const inGroup = k % 4;
    const groupRow = Math.floor(group / 2); // gw/2 = 2 groups per row
    const groupCol = group % 2;
    const patchRow = groupRow * 2 + Math.floor(inGroup / 2);
    const patchCol = groupCol * 2 + (inGroup % 2);
    for (let j = 0; j < 1176; j++) {
      const ch = Math.floor(j / 392);
      const y = Math.floor((j % 196) / 14);
      const x = j % 14;
      const v = pix(patchRow * 14 + y, patchCol * 14 + x, ch);
      const ideal = (v / 255 - CFG.imageMean[ch]!) / CFG.imageStd[ch]!;
      const numpyF32 = f(f(f(v * CFG.rescaleFactor) - f(CFG.imageMean[ch]!)) / f(CFG.imageStd[ch]!));
      const got = out.patches[k * 1176 + j]!;
      maxErr = Math.max(maxErr, Math.abs(got - ideal));
      if (got !== numpyF32) exactMismatch++;
    }
  }
  t.ok(maxErr < 1e-6, `max |got - exact formula| = ${maxErr.toExponential(2)}`);
  t.equal(exactMismatch, 0, 'equal to numpy float32 rounding');
  // the two temporal copies are identical
  for (let k = 0; k < 8; k++) {
    for (let ch = 0; ch < 3; ch++) {
      const a = out.patches.subarray(k * 1176 + ch * 392, k * 1176 + ch * 392 + 196);
      const b = out.patches.subarray(k * 1176 + ch * 392 + 196, k * 1176 + ch * 392 + 392);
      if (!a.every((v, i) => v === b[i])) t.fail(`temporal copies differ at patch ${k} channel ${ch}`);
    }
  }
});

t.test('rejects sizes that are not multiples of 28', async (t) => {
  const img: RgbImage = { data: new Uint8Array(42 * 28 * 3), width: 42, height: 28 };
  t.throws(() => patchifyResized(img, CFG), /multiple of 28/);
});

t.test('equals the HF reference (PIL + numpy) end to end', { skip: pilUnavailableReason() ?? false }, async (t) => {
  const fixture = await decodeImage(readFileSync(join(HERE, '../fixtures/images/screenshot-desktop-1920x1080.png')));
  const doc = await renderScreenshot('document', 4);
  const odd: RgbImage = (() => {
    const w = 211;
    const h = 97;
    const data = new Uint8Array(w * h * 3);
    let s = 1;
    for (let i = 0; i < data.length; i++) data[i] = (s = (s * 1103515245 + 12345) & 0x7fffffff) >> 23;
    return { data, width: w, height: h };
  })();
  const cases: [string, RgbImage, { kind: 'smart'; minPixels: number; maxPixels: number } | { kind: 'fixed'; width: number; height: number }][] = [
    ['fixture 1920x1080, smart_resize -> 1932x1092', fixture, { kind: 'smart', minPixels: CFG.minPixels, maxPixels: CFG.maxPixels }],
    ['document 1920x1080, fixed 800x450 -> 812x448', doc, { kind: 'fixed', width: 800, height: 450 }],
    ['random 211x97, smart_resize', odd, { kind: 'smart', minPixels: CFG.minPixels, maxPixels: CFG.maxPixels }],
  ];
  for (const [name, img, policy] of cases) {
    const { width, height } = resolveResize(img.width, img.height, policy);
    const ours = preprocessImage(img, width, height, CFG);
    const ref = hfPreprocessRef(img, policy.kind === 'fixed'
        ? ['--size', String(width), String(height)]
        : ['--min-pixels', String(policy.minPixels), '--max-pixels', String(policy.maxPixels)]);
    t.same(ref.resized, [width, height], `${name}: same target size`);
    t.same(ours.gridThw, ref.gridThw, `${name}: grid_thw ${ref.gridThw.join('x')}`);
    t.same([ours.numPatches, ours.patchDim], ref.shape, `${name}: shape`);
    let maxDiff = 0;
    let bitDiffs = 0;
    for (let i = 0; i < ref.patches.length; i++) {
      const d = Math.abs(ours.patches[i]! - ref.patches[i]!);
      if (d > maxDiff) maxDiff = d;
      if (d !== 0) bitDiffs++;
    }
    t.comment(`${name}: max abs diff ${maxDiff}, differing values ${bitDiffs} of ${ref.patches.length}`);
    t.ok(maxDiff < 1e-5, `${name}: max abs diff ${maxDiff} < 1e-5`);
  }
});
