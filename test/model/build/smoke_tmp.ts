import * as ort from 'onnxruntime-node';
import path from 'node:path';
import { tinyConfig, randomWeights, tmpDir, session, refVision, maxAbsDiff, randomArray, rng } from './helpers.ts';
import { buildVisionEncoder } from '../../../server/model/build/vision-encoder.ts';
import { buildDecoder } from '../../../server/model/build/decoder.ts';
import { visionRotary } from '../../../server/model/qwen2-vl/vision-rotary.ts';
const cfg = tinyConfig();
const w = randomWeights(cfg);
const dir = tmpDir('smoke');
for (const format of ['f32', 'int8', 'int4'] as const) {
  const vp = path.join(dir, `vision-${format}.onnx`);
  buildVisionEncoder(cfg, w, vp, { format });
  const s = await session(vp);
  const { cos, sin, rows } = visionRotary(4, 6, cfg.vision);
  const px = randomArray(rows * 1176, rng(5), 1);
  const out = await s.run({ pixel_patches: new ort.Tensor('float32', px, [rows, 1176]), rotary_cos: new ort.Tensor('float32', cos, [rows, 16]), rotary_sin: new ort.Tensor('float32', sin, [rows, 16]) });
  const ref = refVision(cfg, w, px, cos, sin);
  console.log(format, out.image_embeds!.dims, maxAbsDiff(out.image_embeds!.data as Float32Array, ref));
  const dp = path.join(dir, `decoder-${format}.onnx`);
  buildDecoder(cfg, w, dp, { format });
  const d = await session(dp);
  console.log(d.inputNames, d.outputNames);
}
