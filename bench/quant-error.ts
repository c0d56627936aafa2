/**
 * npx tsx bench/quant-error.ts — what a MatMulNBits block size costs in accuracy: relative RMS error of
 * the 4-bit weights (server/model/build/quantize.ts) and of one layer's output, for block sizes 32, 64
 * and 128, on Gaussian weights with and without rare large ones (trained LLM weights have such
 * outliers; each block's largest weight sets its quantization step). Prints a markdown table.
 */
import { dequantizeBlockwise, quantizeBlockwise } from '../server/model/build/quantize.ts';

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
console.log(lines.join('\n'));
