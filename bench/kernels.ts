/**
 * npx tsx bench/kernels.ts — which ONNX Runtime kernel suits each phase, measured on this machine.
 *
 * One linear layer at the shapes the model runs (LM MLP 1536x8960, vision MLP 1280x5120) and the
 * row counts of each phase (decode 1 and 8 rows, prefill 786 rows, vision 1856 patches), for each
 * kernel the graph builder can emit: fp32 MatMul, int8 weights with per-column scales and activations
 * quantized per tensor (DynamicQuantizeMatMul) or per row (MatMulIntegerToFloat), and MatMulNBits
 * (4 or 8 bits, block 32 or 128, int8 activations = accuracy level 4, or fp32 = level 0). Prints a
 * markdown table; the choices in server/model/build/recipes.ts cite it (docs/performance.md).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../server/model/build/onnx-graph.ts';
import { linear, type LinearKernel } from '../server/model/build/layers.ts';
import { sessionOptions } from '../server/model/runtime/model-runner.ts';
import { randomArray, timeRuns } from './roofline.ts';

interface Shape {
  name: string;
  k: number;
  n: number;
  rows: number[];
}

const SHAPES: Shape[] = [
  { name: 'LM MLP up (1536 -> 8960)', k: 1536, n: 8960, rows: [1, 8] },
  { name: 'LM MLP up (1536 -> 8960)', k: 1536, n: 8960, rows: [786] },
  { name: 'vision MLP fc1 (1280 -> 5120)', k: 1280, n: 5120, rows: [1856] },
];

const KERNELS: { label: string; kernel: LinearKernel }[] = [
  { label: 'fp32 MatMul', kernel: { kind: 'f32' } },
  { label: 'int8 DynamicQuantizeMatMul', kernel: { kind: 'dqmm' } },
  { label: 'int8 per-row MatMulIntegerToFloat', kernel: { kind: 'int8-row' } },
  { label: 'MatMulNBits 8-bit b32 acc4', kernel: { kind: 'nbits', bits: 8, blockSize: 32, accuracyLevel: 4 } },
  { label: 'MatMulNBits 4-bit b32 acc4', kernel: { kind: 'nbits', bits: 4, blockSize: 32, accuracyLevel: 4 } },
  { label: 'MatMulNBits 4-bit b128 acc4', kernel: { kind: 'nbits', bits: 4, blockSize: 128, accuracyLevel: 4 } },
  { label: 'MatMulNBits 4-bit b32 acc0', kernel: { kind: 'nbits', bits: 4, blockSize: 32, accuracyLevel: 0 } },
];

const STREAM_BYTES = 128 * 1024 ** 2;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kernels-'));

/** Milliseconds per layer run for each row count, and the layer's weight bytes. */
async function measure(shape: Shape, kernel: LinearKernel, rows: readonly number[], threads?: number): Promise<{ ms: number[]; bytes: number }> {
  // Few rows read weights, so those runs chain enough copies of the layer to stream from DRAM
  // (4x the last-level cache) instead of timing a cache-resident matrix. The copies hold
  // different values: ONNX Runtime shares identical prepacked weights.
  const streaming = Math.min(...rows) <= 8;
  const w = randomArray(shape.k * shape.n, 3);
  const file = path.join(dir, 'k.onnx');
  const g = new GraphBuilder({ name: 'k', externalDataPath: `${file}.data` });
  const x = g.input('x', 'float32', ['m', shape.k]);
  let copies = 0;
  do {
    const y = linear(g, x, `/k${copies}`, copies === 0 ? w : randomArray(w.length, copies + 3), shape.n, shape.k, undefined, kernel);
    g.output(y, 'float32', ['m', shape.n]);
    copies++;
  } while (streaming && g.externalBytes < STREAM_BYTES);
  g.save(file);
  const s = await ort.InferenceSession.create(file, sessionOptions(threads ? { threads } : {}));
  const ms: number[] = [];
  for (const m of rows) {
    const sec = await timeRuns(s, { x: new ort.Tensor('float32', randomArray(m * shape.k, 5), [m, shape.k]) }, m > 100 ? 5 : 20);
    ms.push((sec * 1000) / copies);
  }
  await s.release();
  return { ms, bytes: g.externalBytes / copies };
}

const gops = (shape: Shape, m: number, ms: number): number => (2 * m * shape.k * shape.n) / ms / 1e6;
const lines = ['| layer | kernel | rows | ms | GOP/s | weight GB/s |', '|---|---|---|---|---|---|'];
const threadLines = ['| layer | kernel | rows | 1 thread ms | 2 threads ms |', '|---|---|---|---|---|'];
try {
  for (const shape of SHAPES) {
    for (const { label, kernel } of KERNELS) {
      const { ms, bytes } = await measure(shape, kernel, shape.rows);
      shape.rows.forEach((m, i) => {
        const line = `| ${shape.name} | ${label} | ${m} | ${ms[i]!.toFixed(2)} | ${gops(shape, m, ms[i]!).toFixed(0)} | ${(bytes / ms[i]! / 1e6).toFixed(1)} |`;
        lines.push(line);
        console.error(line);
      });
    }
  }
  // The chosen kernel of each phase on one core and on two.
  for (const [shape, label, m] of [
    [SHAPES[0]!, 'MatMulNBits 4-bit b32 acc4', 1],
    [SHAPES[1]!, 'int8 per-row MatMulIntegerToFloat', 786],
  ] as const) {
    const kernel = KERNELS.find((k) => k.label === label)!.kernel;
    const one = (await measure(shape, kernel, [m], 1)).ms[0]!;
    const two = (await measure(shape, kernel, [m], 2)).ms[0]!;
    threadLines.push(`| ${shape.name} | ${label} | ${m} | ${one.toFixed(2)} | ${two.toFixed(2)} |`);
    console.error(threadLines.at(-1));
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log([...lines, '', 'Threads (ONNX Runtime intra-op pool):', '', ...threadLines].join('\n'));
