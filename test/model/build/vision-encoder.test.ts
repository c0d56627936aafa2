import path from 'node:path';
import t from 'tap';
import * as ort from 'onnxruntime-node';
import { buildVisionEncoder } from '../../../server/model/build/vision-encoder.ts';
import { visionRotary } from '../../../server/model/qwen2-vl/vision-rotary.ts';
import { maxAbs, maxAbsDiff, randomArray, randomWeights, refVision, rng, session, tinyConfig, tmpDir } from './helpers.ts';

const cfg = tinyConfig();
const weights = randomWeights(cfg, 7);
const dir = tmpDir('vision');
const D = cfg.vision.embedDim / cfg.vision.numHeads;

async function run(sess: ort.InferenceSession, gh: number, gw: number, seed: number) {
  const { cos, sin, rows } = visionRotary(gh, gw, cfg.vision);
  const px = randomArray(rows * 1176, rng(seed), 1);
  const out = await sess.run({
    pixel_patches: new ort.Tensor('float32', px, [rows, 1176]),
    rotary_cos: new ort.Tensor('float32', cos, [rows, D]),
    rotary_sin: new ort.Tensor('float32', sin, [rows, D]),
  });
  return { out: out.image_embeds!, ref: refVision(cfg, weights, px, cos, sin) };
}

t.test('f32 vision encoder equals the float64 reference', async (t) => {
  const p = path.join(dir, 'vision-f32.onnx');
  buildVisionEncoder(cfg, weights, p, { kind: 'f32' });
  const sess = await session(p);
  t.same(sess.inputNames, ['pixel_patches', 'rotary_cos', 'rotary_sin']);
  t.same(sess.outputNames, ['image_embeds']);
  for (const [gh, gw] of [[4, 6], [2, 2], [6, 4]] as const) {
    const { out, ref } = await run(sess, gh, gw, gh * 10 + gw);
    t.same(out.dims, [(gh * gw) / 4, cfg.vision.outHiddenSize]);
    const d = maxAbsDiff(out.data as Float32Array, ref);
    t.ok(d < 1e-4, `grid ${gh}x${gw}: max abs diff ${d.toExponential(2)} (outputs up to ${maxAbs(ref).toFixed(2)})`);
  }
});

t.test('int8 / int4 vision drift vs the reference', async (t) => {
  const kernels = [
    ['int8 per-row activations', { kind: 'int8-row' }, 0.05],
    ['int8 DynamicQuantizeMatMul', { kind: 'dqmm' }, 0.05],
    ['MatMulNBits 8-bit', { kind: 'nbits', bits: 8, blockSize: 32, accuracyLevel: 4 }, 0.05],
    ['MatMulNBits 4-bit', { kind: 'nbits', bits: 4, blockSize: 32, accuracyLevel: 4 }, 0.3],
  ] as const;
  for (const [label, kernel, bound] of kernels) {
    const p = path.join(dir, `vision-${kernel.kind}-${'bits' in kernel ? kernel.bits : 8}.onnx`);
    buildVisionEncoder(cfg, weights, p, kernel);
    const sess = await session(p);
    const { out, ref } = await run(sess, 4, 6, 46);
    const rel = maxAbsDiff(out.data as Float32Array, ref) / maxAbs(ref);
    t.comment(`vision ${label}: max abs diff / max |ref| = ${rel.toExponential(2)}`);
    t.ok(rel < bound, `${label} relative drift ${rel.toExponential(2)} < ${bound}`);
  }
});
