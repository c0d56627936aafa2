/**
 * This machine's limits as ONNX Runtime sees them, measured with tiny graphs:
 * - DRAM read bandwidth: M=1 MatMuls over 8 distinct 1536x8960 float32 matrices (440 MB per run);
 * - float32 GEMM throughput at the LM's prefill shape (786x1536 @ 1536x8960);
 * - int8 GEMM throughput (DynamicQuantizeMatMul, VNNI) at the same shape.
 * The engine benchmark divides its own figures by these.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { GraphBuilder, MS_DOMAIN } from '../server/model/build/onnx-graph.ts';
import { sessionOptions } from '../server/model/runtime/model-runner.ts';

export interface Roofline {
  bandwidthGBs: number;
  f32Gflops: number;
  int8Gops: number;
}

const K = 1536;
const N = 8960;
const M = 786;

export function randomArray(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32 - 0.5) * 0.1;
  }
  return a;
}

/** A session over the graph `build` writes, saved as `name`.onnx in `dir`. */
export async function buildSession(dir: string, name: string, build: (g: GraphBuilder) => void, threads?: number): Promise<ort.InferenceSession> {
  const file = path.join(dir, `${name}.onnx`);
  const g = new GraphBuilder({ name, externalDataPath: `${file}.data` });
  build(g);
  g.save(file);
  return ort.InferenceSession.create(file, sessionOptions(threads ? { threads } : {}));
}

/** Fastest of `runs` timed runs after one warm-up: the machine's capability, not its noise (the host is shared). */
export async function timeRuns(s: ort.InferenceSession, feeds: Record<string, ort.Tensor>, runs: number): Promise<number> {
  await s.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    times.push((performance.now() - t0) / 1000);
  }
  return Math.min(...times);
}

export async function measureRoofline(threads?: number): Promise<Roofline> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'roofline-'));
  try {
    const matrices = 8;
    const bw = await buildSession(dir, 'bandwidth', (g) => {
      const x = g.input('x', 'float32', [1, K]);
      for (let i = 0; i < matrices; i++) {
        const w = g.initializer(`w${i}`, randomArray(K * N, i + 1), [K, N]);
        g.output(g.op('MatMul', [x, w], {}, { outputs: [`y${i}`] }), 'float32', [1, N]);
      }
    }, threads);
    const bwSeconds = await timeRuns(bw, { x: new ort.Tensor('float32', randomArray(K, 99), [1, K]) }, 30);
    await bw.release();

    const w = randomArray(K * N, 7);
    const xs = new ort.Tensor('float32', randomArray(M * K, 98), [M, K]);
    const f32 = await buildSession(dir, 'gemm-f32', (g) => {
      const x = g.input('x', 'float32', [M, K]);
      g.output(g.op('MatMul', [x, g.initializer('w', w, [K, N])], {}, { outputs: ['y'] }), 'float32', [M, N]);
    }, threads);
    const f32Seconds = await timeRuns(f32, { x: xs }, 12);
    await f32.release();

    const int8 = await buildSession(dir, 'gemm-int8', (g) => {
      const x = g.input('x', 'float32', [M, K]);
      const q = new Int8Array(K * N);
      for (let i = 0; i < q.length; i++) q[i] = Math.round(w[i]! * 2540);
      const scale = new Float32Array(N).fill(1 / 2540);
      g.output(
        g.op(
          'DynamicQuantizeMatMul',
          [x, g.initializer('wq', q, [K, N]), g.initializer('scale', scale, [N])],
          {},
          { domain: MS_DOMAIN, outputs: ['y'] },
        ),
        'float32',
        [M, N],
      );
    }, threads);
    const int8Seconds = await timeRuns(int8, { x: xs }, 12);
    await int8.release();

    const flop = 2 * M * K * N;
    return {
      bandwidthGBs: (matrices * K * N * 4) / bwSeconds / 1e9,
      f32Gflops: flop / f32Seconds / 1e9,
      int8Gops: flop / int8Seconds / 1e9,
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await measureRoofline();
  console.log(JSON.stringify(r));
}
