/**
 * npm run bench:engine — the engine on a full-size random-weight UI-TARS-2B checkpoint at the
 * seed's agent-step shape (one 800x450 screenshot, 786 prompt tokens, 95 generated tokens), for
 * each weight format, next to this machine's measured limits (ONNX Runtime GEMM throughput and
 * DRAM bandwidth, measured in the same run).
 *
 *   npm run bench:engine -- [--formats f32,int8,int4] [--model DIR] [--out docs/benchmarks/engine.md]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { generateCheckpoint } from '../server/model/checkpoint/generate.ts';
import { readQwen2VLConfig } from '../server/model/checkpoint/hf-config.ts';
import { REPO_ROOT } from '../server/model/checkpoint/tiny.ts';
import type { Qwen2VLConfig } from '../server/model/checkpoint/types.ts';
import { measureRoofline, type Roofline } from './roofline.ts';

interface StepResult {
  format: string;
  buildSeconds: number;
  sessionSeconds: number;
  loadSeconds: number;
  peakRssGiB: number;
  imageTokens: number;
  promptTokens: number;
  completionTokens: number;
  visionSeconds: number;
  prefillSeconds: number;
  decodeSeconds: number;
  stepSeconds: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

const o = new Command()
  .option('--formats <list>', 'weight formats', 'f32,int8,int4')
  .option('--model <dir>', 'full-size checkpoint (generated when missing)', path.join(REPO_ROOT, '.cache/checkpoints/full-bf16'))
  .option('--steps <n>', 'measured steps per format (median reported)', '1')
  .option('--out <file>', 'markdown report', path.join(REPO_ROOT, 'docs/benchmarks/engine.md'))
  .parse()
  .opts<{ formats: string; model: string; steps: string; out: string }>();

/** Parameters of the LM's linear layers (all decoder layers) and of the vision tower's, from the config. */
function work(cfg: Qwen2VLConfig, imageTokens: number) {
  const t = cfg.text;
  const kvDim = t.numKeyValueHeads * t.headDim;
  const lmLayerParams = t.numHiddenLayers * (2 * t.hiddenSize * t.hiddenSize + 2 * t.hiddenSize * kvDim + 3 * t.hiddenSize * t.intermediateSize);
  const v = cfg.vision;
  const mlp = v.embedDim * v.mlpRatio;
  const patches = imageTokens * v.spatialMergeSize ** 2;
  const visionLinear = v.depth * (4 * v.embedDim * v.embedDim + 2 * v.embedDim * mlp);
  const merged = v.embedDim * v.spatialMergeSize ** 2;
  const visionFlop =
    2 * visionLinear * patches +
    v.depth * 2 * 2 * patches * patches * v.embedDim + // QK^T and PV
    2 * (merged * merged + merged * v.outHiddenSize) * imageTokens +
    2 * 1176 * v.embedDim * patches;
  return { lmLayerParams, lmHeadParams: t.vocabSize * t.hiddenSize, visionFlop };
}

/** Bytes of weight read per parameter in each format (MatMulNBits stores a float scale per 32 values). */
const BYTES_PER_PARAM: Record<string, number> = { f32: 4, int8: 1 + 4 / 32, int4: 0.5 + 4 / 32 };

if (!fs.existsSync(path.join(o.model, 'config.json'))) {
  console.error(`bench: generating the full-size random checkpoint into ${o.model} (~4.4 GB, about a minute)`);
  await generateCheckpoint({ out: o.model, size: 'full', seed: 0, dtype: 'bf16', shards: 1 });
}
const cfg = readQwen2VLConfig(o.model);

console.error('bench: measuring this machine (ONNX Runtime GEMM and DRAM bandwidth)');
const roof: Roofline = await measureRoofline();
console.error(`bench: ${JSON.stringify(roof)}`);

const results: StepResult[] = [];
for (const format of o.formats.split(',')) {
  console.error(`bench: ${format}: build/load and run (${o.steps} measured step(s))`);
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', path.join(REPO_ROOT, 'bench/engine-step.ts'), '--model', o.model, '--format', format, '--steps', o.steps],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 },
  );
  if (r.status !== 0) {
    console.error(`bench: ${format} failed (exit ${r.status})`);
    continue;
  }
  const line = r.stdout.trim().split('\n').pop()!;
  results.push(JSON.parse(line) as StepResult);
  console.error(`bench: ${line}`);
}

const rows = results.map((r) => {
  const w = work(cfg, r.imageTokens);
  const prefillFlops = (2 * w.lmLayerParams * r.promptTokens) / r.prefillSeconds;
  const visionFlops = w.visionFlop / r.visionSeconds;
  const decodeBytes = (w.lmLayerParams + w.lmHeadParams) * BYTES_PER_PARAM[r.format]! * r.decodeTokensPerSecond;
  // f32 runs fp32 GEMMs; int8/int4 (MatMulNBits, accuracy level 4) multiply int8 activations.
  const peak = r.format === 'f32' ? roof.f32Gflops : roof.int8Gops;
  return {
    ...r,
    visionOfPeak: visionFlops / 1e9 / peak,
    prefillOfPeak: prefillFlops / 1e9 / peak,
    decodeOfBandwidth: decodeBytes / 1e9 / roof.bandwidthGBs,
    visionGflops: visionFlops / 1e9,
    prefillGflops: prefillFlops / 1e9,
    decodeGBs: decodeBytes / 1e9,
  };
});

const pct = (x: number): string => `${(100 * x).toFixed(0)}%`;
const f = (x: number, d = 1): string => x.toFixed(d);
const md = [
  '# Engine benchmark',
  '',
  `Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus()[0]?.model ?? 'cpu'} (${os.cpus().length} cores), onnxruntime-node CPU, all cores.`,
  'Checkpoint: full-size random-weight UI-TARS-2B (`npm run gen:checkpoint -- --size full --dtype bf16`); compute does not depend on weight values.',
  `Step shape: one 800x450 screenshot (812x448, ${results[0]?.imageTokens ?? 464} image tokens), ${results[0]?.promptTokens ?? 786} prompt tokens, ${results[0]?.completionTokens ?? 95} generated (greedy), after one warm-up step.`,
  '',
  `Command: \`npm run bench:engine -- --formats ${o.formats} --steps ${o.steps}\``,
  '',
  `This machine, measured in the same run with ONNX Runtime: fp32 GEMM ${f(roof.f32Gflops, 0)} GFLOP/s, int8 GEMM (DynamicQuantizeMatMul) ${f(roof.int8Gops, 0)} GOP/s, DRAM read ${f(roof.bandwidthGBs)} GB/s (M=1 MatMul over 440 MB of weights).`,
  '',
  '| format | load s (build s) | peak RSS GiB | vision s | prefill tok/s | decode tok/s | s/step | vision of peak | prefill of peak | decode of bandwidth |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.format} | ${f(r.loadSeconds)} (${f(r.buildSeconds)}) | ${f(r.peakRssGiB)} | ${f(r.visionSeconds)} | ${f(r.prefillTokensPerSecond)} | ${f(r.decodeTokensPerSecond, 2)} | ${f(r.stepSeconds)} | ${pct(r.visionOfPeak)} (${f(r.visionGflops, 0)} GFLOP/s) | ${pct(r.prefillOfPeak)} (${f(r.prefillGflops, 0)} GFLOP/s) | ${pct(r.decodeOfBandwidth)} (${f(r.decodeGBs)} GB/s) |`,
  ),
  '',
  'Peaks: f32 rows against the fp32 GEMM figure; int8/int4 rows (MatMulNBits with int8 activations) against the int8 GEMM figure.',
  'Decode bytes per token: every decoder-layer weight plus the tied lm_head, at the format\'s storage size (f32 4 B, int8 1.125 B, int4 0.625 B per parameter).',
  'Load time includes building the ONNX graphs when they were not cached yet (the build column); a second start reuses them.',
  'For reference, the seed\'s PyTorch run on a laptop CPU took about 60 minutes per step; llama.cpp q4_0 on this machine about 32 s (shared/reference/peer-llamacpp.md).',
  '',
];
fs.mkdirSync(path.dirname(o.out), { recursive: true });
fs.writeFileSync(o.out, md.join('\n'));
console.log(md.join('\n'));
