/**
 * One decode step (one sequence, one new token) of a format's decode graph at growing context lengths:
 * how much later agent steps pay for their longer history. Prints one JSON line.
 */
import { Command } from 'commander';
import { parseWeightFormat } from '../server/config.ts';
import { buildModelGraphs } from '../server/model/build/build-cache.ts';
import { openCheckpoint } from '../server/model/checkpoint/checkpoint.ts';
import { KvPool } from '../server/model/runtime/kv-pool.ts';
import { ModelRunner, type DecoderStep } from '../server/model/runtime/model-runner.ts';

const o = new Command()
  .requiredOption('--model <dir>')
  .requiredOption('--format <f>')
  .option('--contexts <list>', 'cached tokens before the step', '256,1024,4096,7680')
  .option('--runs <n>', 'measured runs per context (median)', '7')
  .parse()
  .opts<{ model: string; format: string; contexts: string; runs: string }>();

const ck = await openCheckpoint(o.model);
const t = ck.config.text;
const graphs = await buildModelGraphs(o.model, ck.config, ck.weights, { format: parseWeightFormat(o.format) });
const contexts = o.contexts.split(',').map(Number);
const kv = new KvPool({ layers: t.numHiddenLayers, kvHeads: t.numKeyValueHeads, headDim: t.headDim, maxLen: Math.max(...contexts) + 1, slots: 1 });
const runner = await ModelRunner.create(ck.config, graphs, kv, {});

const rows: { context: number; ms: number }[] = [];
for (const context of contexts) {
  kv.shrink();
  kv.ensureCapacity(context + 1, [0]);
  // the engine's own decode call (fetch and append the new rows); each run rewrites the same row
  const step: DecoderStep = {
    firstSlot: 0,
    batch: 1,
    seqLen: 1,
    inputIds: BigInt64Array.of(1000n),
    ropeCos: new Float32Array(t.headDim).fill(1),
    ropeSin: new Float32Array(t.headDim),
    seqlensK: Int32Array.of(context),
    imageEmbeds: new Float32Array(0),
    imageTokenIndex: new BigInt64Array(0),
    logitsIndex: BigInt64Array.of(0n),
  };
  await runner.decode(step, 'decode'); // warm-up
  const times: number[] = [];
  for (let r = 0; r < Number(o.runs); r++) {
    const t0 = performance.now();
    await runner.decode(step, 'decode');
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  rows.push({ context, ms: times[times.length >> 1]! });
  process.stderr.write(`decode-context: ${o.format} context ${context}: ${rows.at(-1)!.ms.toFixed(1)} ms\n`);
}
await runner.release();
console.log(JSON.stringify({ format: o.format, rows }));
