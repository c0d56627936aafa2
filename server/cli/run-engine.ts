/**
 * Runs one prompt (text plus image files) through the engine and prints the text,
 * the token ids and their logprobs. Without --model it uses the embedded tiny
 * checkpoint, whose weights are random.
 *
 *   npm run engine -- --prompt "Describe the screen" --image shot.png --max-tokens 32
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ENGINE_DEFAULTS, parseWeightFormat } from '../config.ts';
import { ensureTinyCheckpoint } from '../model/checkpoint/tiny.ts';
import { loadModel } from '../model/load-model.ts';
import type { TemplateMessage, TemplatePart } from '../model/tokenizer.ts';
import type { DoneEvent } from '../engine/request.ts';
import { GREEDY } from '../engine/sampler.ts';
import { checkpointResizePolicy, prepareImage } from '../vision/prepare-image.ts';
import type { ResizePolicy } from '../vision/smart-resize.ts';

interface CliOptions {
  model?: string;
  prompt: string;
  system?: string;
  image: string[];
  resize?: string;
  maxTokens: string;
  temperature: string;
  topP: string;
  topK: string;
  seed?: string;
  topLogprobs: string;
  format: string;
  threads?: string;
  specialTokens: boolean;
  json: boolean;
}

function parseResize(value: string | undefined, fallback: ResizePolicy): ResizePolicy {
  if (!value) return fallback;
  const m = /^(\d+)x(\d+)$/.exec(value);
  if (!m) throw new Error(`--resize takes WIDTHxHEIGHT, e.g. 800x450 (got "${value}")`);
  return { kind: 'fixed', width: Number(m[1]), height: Number(m[2]) };
}

async function main(): Promise<void> {
  const program = new Command()
    .name('run-engine')
    .description('Run one prompt through the Qwen2-VL engine and print text, token ids and logprobs.')
    .option('--model <dir>', 'Hugging Face checkpoint folder (default: the embedded tiny random checkpoint)')
    .requiredOption('--prompt <text>', 'user message text')
    .option('--system <text>', 'system message')
    .option('--image <file>', 'image file (PNG, JPEG, WebP); repeat for several', (v: string, acc: string[]) => [...acc, v], [])
    .option('--resize <WxH>', 'resize every image into WxH, rounded to multiples of 28 (default: smart_resize)')
    .option('--max-tokens <n>', 'tokens to generate', '32')
    .option('--temperature <t>', 'sampling temperature (0: greedy)', '0')
    .option('--top-p <p>', 'nucleus sampling', '1')
    .option('--top-k <k>', 'top-k sampling (0: off)', '0')
    .option('--seed <n>', 'sampling seed')
    .option('--top-logprobs <k>', 'alternatives printed per token', '0')
    .addOption(new Option('--format <f>', 'weight format').choices(['f32', 'int8', 'int4']).default(ENGINE_DEFAULTS.format))
    .option('--threads <n>', 'ONNX Runtime threads')
    .option('--special-tokens', 'keep special tokens in the text', false)
    .option('--json', 'print one JSON object', false);
  program.parse();
  const o = program.opts<CliOptions>();

  const dir = o.model ?? (await ensureTinyCheckpoint());
  if (!o.model) console.error(`run-engine: no --model given; using the embedded tiny checkpoint at ${dir} (RANDOM weights)`);
  const model = await loadModel(dir, {
    ...ENGINE_DEFAULTS,
    format: parseWeightFormat(o.format),
    maxBatch: 1,
    ...(o.threads ? { threads: Number(o.threads) } : {}),
  });
  const { config } = model.checkpoint;
  const policy = parseResize(o.resize, checkpointResizePolicy(config.preprocessor));
  const images = await Promise.all(o.image.map((file) => prepareImage(readFileSync(file), policy, config.preprocessor)));

  const parts: TemplatePart[] = [...images.map((): TemplatePart => ({ type: 'image' })), { type: 'text', text: o.prompt }];
  const messages: TemplateMessage[] = [
    ...(o.system ? [{ role: 'system', content: o.system }] : []),
    { role: 'user', content: parts },
  ];
  const promptIds = model.tokenizer.encode(model.tokenizer.renderChat(messages));
  const tokens: { id: number; logprob: number; top: { token: number; logprob: number }[] }[] = [];
  let done: DoneEvent | undefined;
  for await (const ev of model.engine.generate({
    promptIds,
    images: images.map((im) => ({ patches: im.patches, gridThw: im.gridThw })),
    sampling: {
      ...GREEDY,
      temperature: Number(o.temperature),
      topP: Number(o.topP),
      topK: Number(o.topK),
      ...(o.seed !== undefined ? { seed: Number(o.seed) } : {}),
    },
    maxTokens: Number(o.maxTokens),
    stop: [],
    stopTokenIds: config.tokens.eos,
    topLogprobs: Number(o.topLogprobs),
    skipSpecialTokens: !o.specialTokens,
  })) {
    if (ev.type === 'token') tokens.push({ id: ev.token, logprob: ev.logprob, top: ev.top });
    else done = ev;
  }
  await model.runner.release();
  if (!done) throw new Error('engine ended without a result');
  if (done.finishReason === 'error') throw new Error(done.error ?? 'engine error');
  const result = {
    text: done.text,
    finish_reason: done.finishReason,
    prompt_tokens: done.promptTokens,
    image_tokens: done.imageTokens,
    images: images.map((im) => ({ original: [im.originalWidth, im.originalHeight], resized: [im.width, im.height] })),
    token_ids: tokens.map((t) => t.id),
    logprobs: tokens.map((t) => t.logprob),
    top_logprobs: tokens.map((t) => t.top.map((a) => [a.token, a.logprob])),
    timing_ms: done.timing,
    build_ms: Math.round(model.buildMs),
    load_ms: Math.round(model.loadMs),
  };
  if (o.json) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(`text: ${JSON.stringify(result.text)}`);
  console.log(`finish_reason: ${result.finish_reason}; prompt tokens ${result.prompt_tokens} (${result.image_tokens} image)`);
  console.log(`token ids: ${result.token_ids.join(' ')}`);
  console.log(`logprobs: ${result.logprobs.map((l) => l.toFixed(4)).join(' ')}`);
  const t = done.timing;
  console.log(
    `timing: vision ${t.visionMs.toFixed(0)} ms, prefill ${t.prefillMs.toFixed(0)} ms, decode ${t.decodeMs.toFixed(0)} ms (graphs ${result.build_ms} ms, sessions ${result.load_ms} ms)`,
  );
}

main().catch((err: unknown) => {
  console.error(`run-engine: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
