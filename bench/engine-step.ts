/**
 * One weight format, one process (so peak RSS is this format's own): load the model,
 * then run agent steps at the seed's shape: one 800x450 screenshot (812x448 after
 * rounding, 464 image tokens), a 786-token prompt, 95 generated tokens.
 * Prints one JSON line.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { ENGINE_DEFAULTS, parseWeightFormat } from '../server/config.ts';
import { REPO_ROOT } from '../server/model/checkpoint/tiny.ts';
import { loadModel } from '../server/model/load-model.ts';
import { GREEDY } from '../server/engine/sampler.ts';
import type { DoneEvent } from '../server/engine/request.ts';
import { prepareImage } from '../server/vision/prepare-image.ts';

const o = new Command()
  .requiredOption('--model <dir>')
  .requiredOption('--format <f>')
  .option('--prompt-tokens <n>', 'prompt length', '786')
  .option('--gen-tokens <n>', 'generated tokens', '95')
  .option('--steps <n>', 'measured steps', '1')
  .option('--threads <n>')
  .parse()
  .opts<{ model: string; format: string; promptTokens: string; genTokens: string; steps: string; threads?: string }>();

const t0 = performance.now();
const model = await loadModel(o.model, {
  ...ENGINE_DEFAULTS,
  format: parseWeightFormat(o.format),
  maxBatch: 1,
  maxModelLen: 4096,
  // An agent's first step: nothing cached (the warm-up step runs the same prompt).
  imageCacheBytes: 0,
  prefixCacheBytes: 0,
  ...(o.threads ? { threads: Number(o.threads) } : {}),
});
const loadSeconds = (performance.now() - t0) / 1000;
const { config } = model.checkpoint;
const screenshot = readFileSync(`${REPO_ROOT}/test/fixtures/images/screenshot-desktop-1920x1080.png`);
// Image processing (PNG decode, PIL-exact resize, patchify): the median of 5 runs after a warm-up.
const prepare = () => prepareImage(screenshot, { kind: 'fixed', width: 800, height: 450 }, config.preprocessor);
const image = await prepare();
const imageRuns: number[] = [];
for (let i = 0; i < 5; i++) {
  const i0 = performance.now();
  await prepare();
  imageRuns.push((performance.now() - i0) / 1000);
}
const imageSeconds = imageRuns.sort((a, b) => a - b)[2]!;

// The templated prompt with text filler inserted before the end of the user turn, so that the
// prompt (image tokens expanded) is exactly --prompt-tokens long.
const base = model.tokenizer.encode(
  model.tokenizer.renderChat([
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'You are a GUI agent.' }] },
  ]),
);
const imEnd = model.tokenizer.tokenId('<|im_end|>')!;
const cut = base.lastIndexOf(imEnd, base.length - 2);
const filler = model.tokenizer.encode(' Thought: find the button and click it.');
const need = Number(o.promptTokens) - (base.length - 1 + image.numImageTokens);
if (need < 0) throw new Error(`prompt shape: template + image already take ${base.length - 1 + image.numImageTokens} tokens`);
const fill = Array.from({ length: need }, (_, i) => filler[i % filler.length]!);
const promptIds = [...base.slice(0, cut), ...fill, ...base.slice(cut)];

async function step(maxTokens: number): Promise<DoneEvent> {
  let done: DoneEvent | undefined;
  for await (const ev of model.engine.generate({
    promptIds,
    images: [{ patches: image.patches, gridThw: image.gridThw }],
    sampling: GREEDY,
    maxTokens,
    stop: [],
    stopTokenIds: [], // always generate the full count
    topLogprobs: 0,
    skipSpecialTokens: true,
  })) {
    if (ev.type === 'done') done = ev;
  }
  if (!done || done.finishReason === 'error') throw new Error(done?.error ?? 'no result');
  return done;
}

await step(2); // warm-up: first-run allocations, kernel selection
const gen = Number(o.genTokens);
const runs = [];
for (let i = 0; i < Number(o.steps); i++) {
  const s0 = performance.now();
  const d = await step(gen);
  runs.push({ totalMs: performance.now() - s0, ...d.timing, promptTokens: d.promptTokens, completionTokens: d.completionTokens });
}
runs.sort((a, b) => a.totalMs - b.totalMs);
const r = runs[Math.floor(runs.length / 2)]!;
console.log(
  JSON.stringify({
    format: o.format,
    buildSeconds: model.graphsCached ? null : model.buildMs / 1000,
    sessionSeconds: model.loadMs / 1000,
    loadSeconds,
    peakRssGiB: process.resourceUsage().maxRSS / 1024 ** 2,
    imageTokens: image.numImageTokens,
    imageSeconds,
    promptTokens: r.promptTokens,
    completionTokens: r.completionTokens,
    visionSeconds: r.visionMs / 1000,
    prefillSeconds: r.prefillMs / 1000,
    decodeSeconds: r.decodeMs / 1000,
    stepSeconds: imageSeconds + r.totalMs / 1000,
    prefillTokensPerSecond: r.promptTokens / (r.prefillMs / 1000),
    decodeTokensPerSecond: (r.completionTokens - 1) / (r.decodeMs / 1000),
  }),
);
await model.runner.release();
