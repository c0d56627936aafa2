import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import * as ort from 'onnxruntime-node';
import { openCheckpoint } from '../../../server/model/checkpoint/checkpoint.ts';
import { ensureTinyCheckpoint } from '../../../server/model/checkpoint/tiny.ts';
import { buildModelGraphs, checkpointContentKey, defaultCacheRoot, GRAPH_BUILDER_VERSION } from '../../../server/model/build/build-cache.ts';
import { graphRecipe } from '../../../server/model/build/recipes.ts';
import { tmpDir } from './helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const tiny = await ensureTinyCheckpoint();
const ck = await openCheckpoint(tiny);

t.test('default cache root is <repo>/.cache/onnx unless ONNX_CACHE_DIR', async (t) => {
  const saved = process.env.ONNX_CACHE_DIR;
  delete process.env.ONNX_CACHE_DIR;
  t.equal(defaultCacheRoot(), path.resolve(here, '../../../.cache/onnx'));
  process.env.ONNX_CACHE_DIR = '/tmp/x-onnx';
  t.equal(defaultCacheRoot(), '/tmp/x-onnx');
  if (saved === undefined) delete process.env.ONNX_CACHE_DIR;
  else process.env.ONNX_CACHE_DIR = saved;
});

t.test('reuses, and rebuilds when options change', async (t) => {
  const root = tmpDir('onnx-cache');
  const a = await buildModelGraphs(tiny, ck.config, ck.weights, { format: 'f32', cacheRoot: root });
  t.equal(a.cached, false);
  t.ok(fs.existsSync(a.visionPath) && fs.existsSync(a.decoderPath) && fs.existsSync(`${a.decoderPath}.data`));
  t.equal(a.meta.builderVersion, GRAPH_BUILDER_VERSION);
  const b = await buildModelGraphs(tiny, ck.config, ck.weights, { format: 'f32', cacheRoot: root });
  t.equal(b.cached, true);
  t.equal(b.dir, a.dir);
  const explicit = await buildModelGraphs(tiny, ck.config, ck.weights, { format: 'f32', recipe: graphRecipe('f32'), cacheRoot: root });
  t.equal(explicit.dir, a.dir, 'the default recipe, passed explicitly, is the same build');
  t.equal(a.decodeStepPath, a.decoderPath, 'f32: one decoder graph for both phases');
  const q8 = await buildModelGraphs(tiny, ck.config, ck.weights, { format: 'int8', cacheRoot: root });
  t.equal(q8.cached, false);
  t.not(q8.dir, a.dir);
  t.equal(q8.decodeStepPath, q8.decoderPath, 'int8: one decoder graph for both phases');
  const q4 = await buildModelGraphs(tiny, ck.config, ck.weights, { format: 'int4', cacheRoot: root });
  t.not(q4.decodeStepPath, q4.decoderPath, 'int4: a decode-step graph beside the prefill graph');
  const otherVision = await buildModelGraphs(tiny, ck.config, ck.weights, {
    format: 'int8',
    recipe: { ...graphRecipe('int8'), vision: { kind: 'f32' } },
    cacheRoot: root,
  });
  t.equal(otherVision.cached, false);
  t.not(otherVision.dir, q8.dir, 'another recipe is another build');
  t.same(fs.readdirSync(root).filter((n) => n.includes('.tmp-') || n.endsWith('.lock')), [], 'no temp dirs or locks left');
  for (const r of [a, q8]) {
    for (const file of [r.decoderPath, r.decodeStepPath]) {
      const s = await ort.InferenceSession.create(file);
      t.same(s.outputNames, r.meta.decoder.outputs);
      t.same(s.inputNames, r.meta.decoder.inputs);
    }
    const v = await ort.InferenceSession.create(r.visionPath);
    t.same(v.inputNames, r.meta.vision.inputs);
  }
});

t.test('rebuilds when the checkpoint changes', async (t) => {
  const root = tmpDir('onnx-cache');
  const copy = tmpDir('ckpt-copy');
  for (const f of fs.readdirSync(tiny)) fs.copyFileSync(path.join(tiny, f), path.join(copy, f));
  const k0 = checkpointContentKey(copy);
  const a = await buildModelGraphs(copy, ck.config, ck.weights, { format: 'f32', cacheRoot: root });
  // a weight byte at the start of the tensor data (a sampled spot)
  const st = fs.readdirSync(copy).find((f) => f.endsWith('.safetensors'))!;
  const fd = fs.openSync(path.join(copy, st), 'r+');
  const lenBuf = Buffer.alloc(8);
  fs.readSync(fd, lenBuf, 0, 8, 0);
  const dataStart = 8 + Number(lenBuf.readBigUInt64LE(0));
  const byte = Buffer.alloc(1);
  fs.readSync(fd, byte, 0, 1, dataStart);
  byte[0] = byte[0]! ^ 0xff;
  fs.writeSync(fd, byte, 0, 1, dataStart);
  fs.closeSync(fd);
  const k1 = checkpointContentKey(copy);
  t.not(k1, k0, 'weight change changes the key');
  const b = await buildModelGraphs(copy, ck.config, ck.weights, { format: 'f32', cacheRoot: root });
  t.equal(b.cached, false);
  t.not(b.dir, a.dir);
  // a config/tokenizer file change
  fs.appendFileSync(path.join(copy, 'generation_config.json'), '\n');
  t.not(checkpointContentKey(copy), k1, 'json change changes the key');
  const c = await buildModelGraphs(copy, ck.config, ck.weights, { format: 'f32', cacheRoot: root });
  t.equal(c.cached, false);
});

t.test('concurrent builders of the same key in two processes', async (t) => {
  const root = tmpDir('onnx-cache');
  const run = () =>
    promisify(execFile)(process.execPath, ['--import=tsx', path.join(here, 'fixtures/build-worker.ts'), tiny, root, 'int4'], { cwd: path.resolve(here, '../../..') });
  const outs = await Promise.all([run(), run(), run()]);
  const res = outs.map((o) => JSON.parse(o.stdout.trim()) as { dir: string; cached: boolean });
  t.equal(new Set(res.map((r) => r.dir)).size, 1, 'same dir');
  t.equal(res.filter((r) => !r.cached).length, 1, 'built once');
  t.same(fs.readdirSync(root).sort(), [path.basename(res[0]!.dir)], 'no temp dirs or locks left');
  const s = await ort.InferenceSession.create(path.join(res[0]!.dir, 'decoder.onnx'));
  t.ok(s.outputNames.includes('logits'));
});

t.test('a stale lock from a dead process is taken over', async (t) => {
  const root = tmpDir('onnx-cache');
  const first = await buildModelGraphs(tiny, ck.config, ck.weights, { format: 'int4', cacheRoot: root });
  fs.rmSync(first.dir, { recursive: true });
  fs.writeFileSync(`${first.dir}.lock`, JSON.stringify({ pid: 999999999, host: (await import('node:os')).hostname() }));
  const again = await buildModelGraphs(tiny, ck.config, ck.weights, { format: 'int4', cacheRoot: root });
  t.equal(again.cached, false);
  t.equal(again.dir, first.dir);
  t.notOk(fs.existsSync(`${first.dir}.lock`));
});
