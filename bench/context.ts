/**
 * What later agent steps pay for their longer history, per weight format, at growing context lengths:
 * one decode step (one sequence, one new token, the decode graph; median of --runs) and one prompt of
 * --prompt-tokens new tokens (an agent step's answer and new screenshot, the prefill graph; one run
 * after a warm-up). Prints one JSON line.
 *
 * ONNX Runtime's switches (server/model/runtime/ort-environment.ts) apply unless the environment sets
 * them: `ORT_GQA_DISABLE_FLASH_ATTENTION=0 npx tsx bench/context.ts ...` times the flash kernel.
 */
import { Command } from 'commander';
import { parseWeightFormat } from '../server/config.ts';
import { buildModelGraphs } from '../server/model/build/build-cache.ts';
import { openCheckpoint } from '../server/model/checkpoint/checkpoint.ts';
import { KvPool } from '../server/model/runtime/kv-pool.ts';
import { ModelRunner, type DecoderPhase, type DecoderStep } from '../server/model/runtime/model-runner.ts';

const o = new Command()
  .requiredOption('--model <dir>')
  .requiredOption('--format <f>')
  .option('--contexts <list>', 'cached tokens before the step', '256,1024,4096,7680')
  .option('--runs <n>', 'measured decode steps per context (median)', '7')
  .option('--prompt-tokens <n>', 'new tokens of the measured prompt (0: no prompt runs)', '710')
  .parse()
  .opts<{ model: string; format: string; contexts: string; runs: string; promptTokens: string }>();

const ck = await openCheckpoint(o.model);
const t = ck.config.text;
const graphs = await buildModelGraphs(o.model, ck.config, ck.weights, { format: parseWeightFormat(o.format) });
const contexts = o.contexts.split(',').map(Number);
const promptTokens = Number(o.promptTokens);
const kv = new KvPool({ layers: t.numHiddenLayers, kvHeads: t.numKeyValueHeads, headDim: t.headDim, maxLen: Math.max(...contexts) + Math.max(1, promptTokens), slots: 1 });
const runner = await ModelRunner.create(ck.config, graphs, kv, {});

/** The engine's own decoder call for `rows` new tokens after `context` cached ones (each run rewrites the same rows). */
function step(context: number, rows: number): DecoderStep {
  kv.shrink();
  kv.ensureCapacity(context + rows, [0]);
  return {
    firstSlot: 0,
    batch: 1,
    seqLen: rows,
    inputIds: new BigInt64Array(rows).fill(1000n),
    ropeCos: new Float32Array(rows * t.headDim).fill(1),
    ropeSin: new Float32Array(rows * t.headDim),
    seqlensK: Int32Array.of(context + rows - 1),
    imageEmbeds: new Float32Array(0),
    imageTokenIndex: new BigInt64Array(0),
    logitsIndex: BigInt64Array.of(BigInt(rows - 1)),
  };
}

/** Median milliseconds of `runs` runs after one warm-up. */
async function time(s: DecoderStep, phase: DecoderPhase, runs: number): Promise<number> {
  await runner.decode(s, phase);
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await runner.decode(s, phase);
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[times.length >> 1]!;
}

const rows: { context: number; ms: number; promptMs: number | null }[] = [];
for (const context of contexts) {
  const ms = await time(step(context, 1), 'decode', Number(o.runs));
  const promptMs = promptTokens > 0 ? await time(step(context, promptTokens), 'prefill', 1) : null;
  rows.push({ context, ms, promptMs });
  process.stderr.write(`context: ${o.format} at ${context} tokens: decode step ${ms.toFixed(1)} ms, ${promptTokens}-token prompt ${promptMs?.toFixed(0) ?? '-'} ms\n`);
}
await runner.release();
console.log(JSON.stringify({ format: o.format, promptTokens, rows }));
