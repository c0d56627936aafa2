import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { GraphBuilder, MS_DOMAIN, attr } from '../../../server/model/build/onnx-graph.ts';
import { tmpDir } from './helpers.ts';

const { onnx } = onnxProto;

t.test('external data: aligned, streamed, loads in onnxruntime; small tensors inline', async (t) => {
  const dir = tmpDir('onnx-graph');
  const modelPath = path.join(dir, 'm.onnx');
  const g = new GraphBuilder({ name: 'g', externalDataPath: `${modelPath}.data` });
  const x = g.input('x', 'float32', ['batch', 3]);
  g.output('y', 'float32', ['batch', 5]);
  const w = new Float32Array(15).map((_, i) => i); // 60 bytes: inline
  const big = new Float32Array(5 * 100).map((_, i) => (i % 7) - 3); // 2000 bytes: external
  g.initializer('w', w, [3, 5]);
  g.initializer('big', big, [5, 100]);
  g.initializer('big2', new Float32Array(300).fill(0.5), [300]);
  const h = g.op('MatMul', [x, 'w'], {}, { name: '/model/mm/MatMul' });
  const s = g.op('ReduceSum', ['big', g.constInt64([1])], { keepdims: 0 }, { name: '/model/sum/ReduceSum' });
  const y1 = g.op('Add', [h, s], {}, { name: '/model/add/Add' });
  g.node('QuickGelu', [y1], { alpha: attr.float(1.702) }, { name: '/model/act/QuickGelu', domain: MS_DOMAIN, outputs: ['y'] });
  g.save(modelPath);

  const model = onnx.ModelProto.decode(fs.readFileSync(modelPath));
  t.equal(Number(model.irVersion), 8);
  t.same(model.opsetImport.map((o) => [o.domain, Number(o.version)]), [['', 17], [MS_DOMAIN, 1]]);
  const inits = new Map(model.graph!.initializer!.map((i) => [i.name, i]));
  t.equal(inits.get('w')!.dataLocation ?? 0, 0, 'small initializer inline');
  const ext = (name: string) => Object.fromEntries(inits.get(name)!.externalData!.map((e) => [e.key, e.value]));
  t.same(ext('big'), { location: 'm.onnx.data', offset: '0', length: '2000' });
  t.same(ext('big2'), { location: 'm.onnx.data', offset: '2048', length: '1200' }, '64-byte aligned offset');
  t.equal(fs.statSync(`${modelPath}.data`).size, 2048 + 1200);
  t.equal(model.graph!.input![0]!.type!.tensorType!.shape!.dim![0]!.dimParam, 'batch');
  t.equal(model.graph!.node![0]!.name, '/model/mm/MatMul');

  const sess = await ort.InferenceSession.create(modelPath);
  const out = await sess.run({ x: new ort.Tensor('float32', Float32Array.of(1, 0, 0, 0, 1, 0), [2, 3]) });
  const y = out.y!.data as Float32Array;
  // row 0 = w[0,:] + rowsum(big) ; rowsum(big)[r] = sum over i in [r*100, r*100+100) of (i%7)-3
  const rs = (r: number) => Array.from({ length: 100 }, (_, i) => ((r * 100 + i) % 7) - 3).reduce((a, b) => a + b, 0);
  const qg = (v: number) => v / (1 + Math.exp(-1.702 * v));
  for (let j = 0; j < 5; j++) {
    t.ok(Math.abs(y[j]! - qg(j + rs(j))) < 1e-4);
    t.ok(Math.abs(y[5 + j]! - qg(5 + j + rs(j))) < 1e-4);
  }
});

t.test('duplicate names are rejected', async (t) => {
  const g = new GraphBuilder({ name: 'g' });
  g.input('x', 'float32', [1]);
  t.throws(() => g.input('x', 'float32', [1]));
  g.op('Identity', ['x'], {}, { name: '/a' });
  t.throws(() => g.op('Identity', ['x'], {}, { name: '/a' }));
});

t.test('initializer larger than 2 GiB offsets are written as decimal strings', { skip: process.env.BUILD_BIG_TEST ? false : 'set BUILD_BIG_TEST=1 (writes 2.1 GB)' }, async (t) => {
  const dir = tmpDir('onnx-big');
  const modelPath = path.join(dir, 'big.onnx');
  const g = new GraphBuilder({ name: 'g', externalDataPath: `${modelPath}.data` });
  g.input('x', 'float32', [1]);
  g.output('y', 'float32', [1]);
  const chunk = new Float32Array(64 * 1024 * 1024); // 256 MiB
  for (let i = 0; i < 9; i++) g.initializer(`pad${i}`, chunk, [chunk.length]);
  g.initializer('tail', new Float32Array(1024).fill(2), [1024]);
  const s = g.op('ReduceMax', ['tail'], { keepdims: 1 });
  g.node('Mul', ['x', s], {}, { outputs: ['y'] });
  g.save(modelPath);
  const sess = await ort.InferenceSession.create(modelPath);
  const out = await sess.run({ x: new ort.Tensor('float32', Float32Array.of(3), [1]) });
  t.equal((out.y!.data as Float32Array)[0], 6);
  fs.rmSync(dir, { recursive: true, force: true });
});
