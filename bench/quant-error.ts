/**
 * npx tsx bench/quant-error.ts — what quantization choices cost in accuracy. Prints two markdown tables:
 * - a MatMulNBits block size: relative RMS error of the 4-bit weights (server/model/build/quantize.ts)
 *   and of one layer's output, for block sizes 32, 64 and 128, on Gaussian weights with and without
 *   rare large ones (trained LLM weights have such outliers; each block's largest weight sets its
 *   quantization step);
 * - int8 activations with one scale per tensor (DynamicQuantizeMatMul) or per row (int8-row), through
 *   ONNX Runtime on one layer, against fp32, for rows of one size and for rows of different sizes
 *   (hidden states of LLMs have a few tokens with far larger activations).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { linear, type LinearKernel } from '../server/model/build/layers.ts';
import { dequantizeBlockwise, quantizeBlockwise } from '../server/model/build/quantize.ts';
import { buildSession } from './roofline.ts';

const N = 1024;
const K = 1536;

/** Deterministic standard normal samples (Box-Muller over an LCG). */
function gaussian(seed: number): () => number {
  let s = seed >>> 0;
  const uniform = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
}

const relRms = (approx: ArrayLike<number>, exact: ArrayLike<number>): number => {
  let err = 0;
  let norm = 0;
  for (let i = 0; i < exact.length; i++) {
    err += (approx[i]! - exact[i]!) ** 2;
    norm += exact[i]! ** 2;
  }
  return Math.sqrt(err / norm);
};

/** y = W x for W [N, K]. */
function matVec(w: Float32Array, x: Float32Array): Float64Array {
  const y = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    let acc = 0;
    for (let k = 0; k < K; k++) acc += w[n * K + k]! * x[k]!;
    y[n] = acc;
  }
  return y;
}

const lines = ['| weights | block | weight error | output error |', '|---|---|---|---|'];
for (const [label, outlierShare] of [['Gaussian', 0], ['Gaussian, 0.5% of them 8x larger', 0.005]] as const) {
  const g = gaussian(7);
  const pick = gaussian(11);
  const w = Float32Array.from({ length: N * K }, () => 0.02 * g() * (outlierShare > 0 && Math.abs(pick()) > 2.807 ? 8 : 1));
  const x = Float32Array.from({ length: K }, gaussian(13));
  const exact = matVec(w, x);
  for (const blockSize of [32, 64, 128]) {
    const q = dequantizeBlockwise(quantizeBlockwise(w, N, K, 4, blockSize));
    lines.push(`| ${label} | ${blockSize} | ${(100 * relRms(q, w)).toFixed(1)}% | ${(100 * relRms(matVec(q, x), exact)).toFixed(1)}% |`);
  }
}

/** One layer's output through ONNX Runtime for each kernel; error relative to the fp32 MatMul's. */
async function activationErrors(rows: number): Promise<string[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quant-error-'));
  const g = gaussian(17);
  const w = Float32Array.from({ length: N * K }, () => 0.02 * g());
  const uniformRows = Float32Array.from({ length: rows * K }, gaussian(19));
  // every 64th row 30x larger, the others between 0.5x and 2x
  const mixedRows = uniformRows.map((v, i) => {
    const r = Math.floor(i / K);
    return v * (r % 64 === 0 ? 30 : 0.5 + 1.5 * ((r * 37) % 16) / 15);
  });
  const out: string[] = [];
  try {
    const run = async (kernel: LinearKernel, x: Float32Array): Promise<Float32Array> => {
      const s = await buildSession(dir, kernel.kind, (b) => b.output(linear(b, b.input('x', 'float32', ['m', K]), '/l', w, N, K, undefined, kernel), 'float32', ['m', N]));
      const y = (await s.run({ x: new ort.Tensor('float32', x, [rows, K]) }))[s.outputNames[0]!]!.data as Float32Array;
      await s.release();
      return y;
    };
    for (const [label, x] of [['rows of one size', uniformRows], ['rows of different sizes', mixedRows]] as const) {
      const exact = await run({ kind: 'f32' }, x);
      const perTensor = relRms(await run({ kind: 'dqmm' }, x), exact);
      const perRow = relRms(await run({ kind: 'int8-row' }, x), exact);
      out.push(`| ${label} | ${(100 * perTensor).toFixed(2)}% | ${(100 * perRow).toFixed(2)}% |`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

const ROWS = 256;
console.log(lines.join('\n'));
console.log(['', `int8 activations, one layer (${K} -> ${N}, ${ROWS} rows), output error against fp32:`, '',
  '| activations | one scale per tensor | one scale per row |', '|---|---|---|', ...(await activationErrors(ROWS))].join('\n'));
