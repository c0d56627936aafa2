/**
 * One decode step (one sequence, one new token) of a format's decode graph at growing context lengths:
 * how much later agent steps pay for their longer history. Prints one JSON line.
 */
import * as ort from 'onnxruntime-node';
import { Command } from 'commander';
import { parseWeightFormat } from '../server/config.ts';
import { buildModelGraphs } from '../server/model/build/build-cache.ts';
import { openCheckpoint } from '../server/model/checkpoint/checkpoint.ts';
import { KvPool } from '../server/model/runtime/kv-pool.ts';
import { sessionOptions } from '../server/model/runtime/model-runner.ts';

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
const session = await ort.InferenceSession.create(graphs.decodeStepPath, sessionOptions({}));
const fetches: Record<string, null> = { logits: null };
for (let i = 0; i < t.numHiddenLayers; i++) fetches[`key_rows.${i}`] = fetches[`value_rows.${i}`] = null;

const rows: { context: number; ms: number }[] = [];
for (const context of o.contexts.split(',').map(Number)) {
  const kv = new KvPool({ layers: t.numHiddenLayers, kvHeads: t.numKeyValueHeads, headDim: t.headDim, maxLen: context + 1, slots: 1 });
  kv.ensureCapacity(context + 1, [0]);
  const feeds = {
    ...kv.pastFeeds(0, 1),
    input_ids: new ort.Tensor('int64', BigInt64Array.of(1000n), [1, 1]),
    image_embeds: new ort.Tensor('float32', new Float32Array(0), [0, t.hiddenSize]),
    image_token_index: new ort.Tensor('int64', new BigInt64Array(0), [0]),
    rope_cos: new ort.Tensor('float32', new Float32Array(t.headDim).fill(1), [1, 1, t.headDim]),
    rope_sin: new ort.Tensor('float32', new Float32Array(t.headDim), [1, 1, t.headDim]),
    seqlens_k: new ort.Tensor('int32', Int32Array.of(context), [1]),
    total_sequence_length: new ort.Tensor('int32', Int32Array.of(context + 1), []),
    logits_index: new ort.Tensor('int64', BigInt64Array.of(0n), [1]),
  };
  await session.run(feeds, fetches); // warm-up
  const times: number[] = [];
  for (let r = 0; r < Number(o.runs); r++) {
    const t0 = performance.now();
    await session.run(feeds, fetches);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  rows.push({ context, ms: times[times.length >> 1]! });
  process.stderr.write(`decode-context: ${o.format} context ${context}: ${rows.at(-1)!.ms.toFixed(1)} ms\n`);
}
await session.release();
console.log(JSON.stringify({ format: o.format, rows }));
