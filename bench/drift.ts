/**
 * How far the quantized formats drift from f32, on a fixed prompt set at the seed's shape (the
 * UI-TARS prompt with an instruction and one 800x450 screenshot):
 * - greedy agreement: along f32's 16 greedy tokens (teacher forced), how often the format's
 *   top-1 next token equals f32's;
 * - mean KL(f32 || format) of the full next-token distributions at those positions;
 * - click coordinates: after "Action: click(start_box='<|box_start|>(", both decode "x,y)" greedily
 *   (tokens outside that grammar masked); the pixel distance between the two clicks on a 1920x1080
 *   screen (UI-TARS-2B writes 0-1000 relative coordinates).
 * With random weights these say how much the kernels move the model's outputs, not how grounding
 * changes on the real checkpoint. Prints one JSON line.
 *
 *   npx tsx bench/drift.ts --model .cache/checkpoints/full-bf16 --formats int8,int4
 */
import { Command } from 'commander';
import { ENGINE_DEFAULTS, parseWeightFormat } from '../server/config.ts';
import { loadModel, type LoadedModel } from '../server/model/load-model.ts';
import { argmax, GREEDY, logSumExp } from '../server/engine/sampler.ts';
import type { EngineRequest, TokenEvent } from '../server/engine/request.ts';
import { prepareImage, type PreparedImage } from '../server/vision/prepare-image.ts';
import { renderUserPrompt, UITARS_SYSTEM_PROMPT } from '../harness/agent/uitars/prompt.ts';
import { screenshot } from './screens.ts';

const o = new Command()
  .requiredOption('--model <dir>')
  .option('--formats <list>', 'formats compared with f32', 'int8,int4')
  .option('--screens <n>', 'screenshots in the prompt set', '3')
  .option('--positions <n>', 'teacher-forced positions per prompt', '16')
  .parse()
  .opts<{ model: string; formats: string; screens: string; positions: string }>();

const INSTRUCTIONS = ['Open the Settings window and turn on dark mode.', 'Save the document as report.pdf on the Desktop.'];
const CLICK_PREFIX = "Thought: I click the target.\nAction: click(start_box='<|box_start|>(";

interface Prompt {
  ids: number[];
  image: PreparedImage;
}

interface Reference {
  /** Per prompt: f32's greedy tokens and the logits before each of them. */
  greedy: number[][];
  logits: Float32Array[][];
  /** Per prompt: the format's own greedy generation (decode path). */
  free: number[][];
  clicks: [number, number][];
}

async function generate(model: LoadedModel, ids: number[], image: PreparedImage, maxTokens: number): Promise<TokenEvent[]> {
  const req: EngineRequest = {
    promptIds: ids,
    images: [{ patches: image.patches, gridThw: image.gridThw }],
    sampling: GREEDY,
    maxTokens,
    stop: [],
    stopTokenIds: [],
    topLogprobs: 0,
    skipSpecialTokens: false,
    returnLogits: maxTokens === 1,
  };
  const tokens: TokenEvent[] = [];
  for await (const ev of model.engine.generate(req)) {
    if (ev.type === 'token') tokens.push(ev);
    else if (ev.finishReason === 'error') throw new Error(ev.error);
  }
  return tokens;
}

/** The next-token event (with its logits) after `ids`. */
const next = async (model: LoadedModel, ids: number[], image: PreparedImage): Promise<TokenEvent> => (await generate(model, ids, image, 1))[0]!;

const argmaxOver = (x: Float32Array, ids: readonly number[]): number => ids.reduce((best, id) => (x[id]! > x[best]! ? id : best), ids[0]!);

interface ClickVocab {
  digits: number[];
  comma: number[];
  close: number[];
}

/**
 * Greedy decoding restricted to the grammar "x,y)" (1-3 digits each): the click's (x, y) in
 * 0-1000 units.
 */
async function click(model: LoadedModel, p: Prompt, v: ClickVocab): Promise<[number, number]> {
  const prefix = [...p.ids, ...model.tokenizer.encode(CLICK_PREFIX)];
  const numbers = [''];
  while (numbers.length < 3) {
    const current = numbers[numbers.length - 1]!;
    const end = numbers.length === 1 ? v.comma : v.close;
    const allowed = current.length === 0 ? v.digits : current.length >= 3 ? end : [...v.digits, ...end];
    const ev = await next(model, prefix, p.image);
    const id = argmaxOver(ev.logits!, allowed);
    prefix.push(id);
    if (end.includes(id)) numbers.push('');
    else numbers[numbers.length - 1] += model.tokenizer.decode([id], false);
  }
  return [Number(numbers[0]), Number(numbers[1])];
}

function kl(p: Float32Array, q: Float32Array): number {
  const lseP = logSumExp(p);
  const lseQ = logSumExp(q);
  let d = 0;
  for (let i = 0; i < p.length; i++) {
    const lp = p[i]! - lseP;
    d += Math.exp(lp) * (lp - (q[i]! - lseQ));
  }
  return d;
}


async function load(format: string): Promise<LoadedModel> {
  return loadModel(o.model, { ...ENGINE_DEFAULTS, format: parseWeightFormat(format), maxBatch: 1, maxModelLen: 2048 });
}

const f32 = await load('f32');
const { config } = f32.checkpoint;
const prompts: Prompt[] = [];
for (let s = 0; s < Number(o.screens); s++) {
  const image = await prepareImage(await screenshot(100 + s), { kind: 'fixed', width: 800, height: 450 }, config.preprocessor);
  for (const instruction of INSTRUCTIONS) {
    const text = f32.tokenizer.renderChat([
      { role: 'system', content: UITARS_SYSTEM_PROMPT },
      { role: 'user', content: renderUserPrompt(instruction) },
      { role: 'user', content: [{ type: 'image' }] },
    ]);
    prompts.push({ ids: f32.tokenizer.encode(text), image });
  }
}
const vocab = config.text.vocabSize;
const clickVocab: ClickVocab = { digits: [], comma: [], close: [] };
for (let id = 0; id < vocab; id++) {
  const text = f32.tokenizer.decode([id], false);
  if (/^\d$/.test(text)) clickVocab.digits.push(id);
  else if (text === ',') clickVocab.comma.push(id);
  else if (text === ')') clickVocab.close.push(id);
}

async function trace(model: LoadedModel, greedy: number[][] | null): Promise<Reference> {
  const ref: Reference = { greedy: [], logits: [], free: [], clicks: [] };
  for (const [i, p] of prompts.entries()) {
    const tokens: number[] = [];
    const logits: Float32Array[] = [];
    for (let j = 0; j < Number(o.positions); j++) {
      const forced = greedy ? greedy[i]!.slice(0, j) : tokens;
      const ev = await next(model, [...p.ids, ...forced], p.image);
      logits.push(ev.logits!);
      tokens.push(argmax(ev.logits!));
    }
    ref.greedy.push(tokens);
    ref.logits.push(logits);
    ref.free.push((await generate(model, p.ids, p.image, Number(o.positions))).map((e) => e.token));
    ref.clicks.push(await click(model, p, clickVocab));
    process.stderr.write(`drift: prompt ${i + 1}/${prompts.length} done\n`);
  }
  return ref;
}

process.stderr.write(`drift: f32 reference over ${prompts.length} prompts\n`);
const base = await trace(f32, null);
await f32.runner.release();

const rows = [];
for (const format of o.formats.split(',')) {
  const model = await load(format);
  process.stderr.write(`drift: ${format}\n`);
  const got = await trace(model, base.greedy);
  await model.runner.release();
  let agree = 0;
  let klSum = 0;
  let n = 0;
  const pixel: number[] = [];
  // Free-running greedy generation: the share of tokens before the first difference from f32's.
  const freeRun =
    got.free.reduce((sum, toks, i) => {
      let k = 0;
      while (k < toks.length && toks[k] === base.free[i]![k]) k++;
      return sum + k / toks.length;
    }, 0) / got.free.length;
  got.logits.forEach((perPrompt, i) =>
    perPrompt.forEach((l, j) => {
      if (argmax(l) === base.greedy[i]![j]) agree++;
      klSum += kl(base.logits[i]![j]!, l);
      n++;
    }),
  );
  got.clicks.forEach((c, i) => {
    const b = base.clicks[i]!;
    pixel.push(Math.hypot(((c[0] - b[0]) * 1920) / 1000, ((c[1] - b[1]) * 1080) / 1000));
  });
  rows.push({
    format,
    positions: n,
    greedyAgreement: agree / n,
    freeRunAgreement: freeRun,
    meanKl: klSum / n,
    clicks: pixel.length,
    clickPixelErrorMean: pixel.reduce((a, b) => a + b, 0) / Math.max(1, pixel.length),
    clickPixelErrorMax: Math.max(0, ...pixel),
    clicksIdentical: pixel.filter((d) => d === 0).length,
  });
}
console.log(JSON.stringify({ prompts: prompts.length, f32Clicks: base.clicks, rows }));
