/**
 * Part 1 of `npm run bench:server`: what the server does for one chat request apart from the
 * model, for one 1920x1080 PNG screenshot sent as a base64 data URL, under both image policies.
 *
 * Piece by piece (the functions the route calls, called directly): JSON parse, schema validation
 * (ajv with the route's schema and Fastify's options, and a Fastify inject into a stub route that
 * answers at once), data URL -> bytes, PNG decode (sharp), resize (PIL-compatible bicubic),
 * patchify, chat template, tokenising, all of prepareChat, and the copy of the patches to the
 * engine worker (structuredClone, which is what postMessage does to them).
 *
 * End to end: a Fastify inject into the real app (startServer on the tiny checkpoint) with
 * max_tokens 1, minus the time the engine itself reports in the request's log line
 * (queue + vision + prefill + decode).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import Fastify from 'fastify';
import { Ajv } from 'ajv';
import { prepareChat, type ServingContext } from '../server/chat/prepare-request.ts';
import { imageBytesFromUrl } from '../server/chat/data-url.ts';
import { normalizeMessages } from '../server/chat/normalize-messages.ts';
import { defaultServerConfig, resizePolicyFor, type ServerConfig } from '../server/config.ts';
import { ChatCompletionRequestSchema, type ChatCompletionRequest } from '../server/api/schemas/chat-completions.ts';
import { openCheckpoint } from '../server/model/checkpoint/checkpoint.ts';
import { ensureTinyCheckpoint, REPO_ROOT } from '../server/model/checkpoint/tiny.ts';
import { patchifyResized, preprocessImage } from '../server/model/qwen2-vl/image-processor.ts';
import { ChatTokenizer } from '../server/model/tokenizer.ts';
import { startServer } from '../server/server.ts';
import { decodeImage } from '../server/vision/decode.ts';
import { pilResizeBicubic } from '../server/vision/pil-resize.ts';
import { resolveResize } from '../server/vision/smart-resize.ts';
import { median, spread, timeRuns, type Spread, collectRequestLogs } from './server-stats.ts';
import { PreparedImageCache } from '../server/vision/prepare-image.ts';

export const SCREENSHOT = path.join(REPO_ROOT, 'test/fixtures/images/screenshot-desktop-1920x1080.png');

/** The two policies the brief compares: the checkpoint's smart_resize, and the ARPO seed's fixed box. */
export const POLICIES = [
  { key: 'smart', policy: 'smart' },
  { key: 'fixed', policy: '800x450' },
] as const;
export type PolicyKey = (typeof POLICIES)[number]['key'];

/** A UI-TARS-style computer-use instruction (our own wording, of the usual length). */
const INSTRUCTION = [
  'You are a GUI agent. You are given a task and your action history, with screenshots. You need to perform the next action to complete the task.',
  '',
  '## Output Format',
  '```',
  'Thought: ...',
  'Action: ...',
  '```',
  '',
  '## Action Space',
  "click(start_box='<|box_start|>(x1,y1)<|box_end|>')",
  "left_double(start_box='<|box_start|>(x1,y1)<|box_end|>')",
  "right_single(start_box='<|box_start|>(x1,y1)<|box_end|>')",
  "drag(start_box='<|box_start|>(x1,y1)<|box_end|>', end_box='<|box_start|>(x3,y3)<|box_end|>')",
  "hotkey(key='')",
  "type(content='') # If you want to submit your input, use \"\\n\" at the end of `content`.",
  "scroll(start_box='<|box_start|>(x1,y1)<|box_end|>', direction='down or up or right or left')",
  'wait() # Sleep for 5s and take a screenshot to check for any changes.',
  'finished()',
  "call_user() # Submit the task and call the user when the task is unsolvable, or when you need the user's help.",
  '',
  '## Note',
  '- Use English in `Thought` part.',
  '- Summarize your next action (with its target element) in one sentence in `Thought` part.',
  '',
  '## User Instruction',
  'Open the Settings application, go to Displays and set the screen resolution to 1920x1080, then close the window.',
].join('\n');

export function chatBody(dataUrl: string, maxTokens: number): ChatCompletionRequest {
  return {
    model: 'ui-tars',
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: INSTRUCTION },
          { type: 'image_url', image_url: { url: dataUrl } },
        ],
      },
    ],
    max_tokens: maxTokens,
    temperature: 0,
  };
}

export interface OverheadRow {
  key: string;
  label: string;
  values: Record<PolicyKey, Spread>;
}

export interface PolicyFacts {
  resized: [number, number];
  imageTokens: number;
  promptTokens: number;
  patchesMiB: number;
}

export interface OverheadResult {
  runs: number;
  pngBytes: number;
  bodyBytes: number;
  tokenizerFrom: string;
  facts: Record<PolicyKey, PolicyFacts>;
  /** Pieces called directly. */
  pieces: OverheadRow[];
  /** End to end through the real app on the tiny checkpoint. */
  endToEnd: OverheadRow[];
}


/**
 * Measures everything above. `tokenizerDir` is the checkpoint whose tokenizer and
 * preprocessor_config the direct pieces use (the full-size one when present: its 151k-token
 * vocabulary is the real tokenising cost); the end-to-end part always runs the tiny checkpoint.
 */
export async function measureOverhead(opts: { runs: number; tokenizerDir: string | null; log: (s: string) => void }): Promise<OverheadResult> {
  const { runs, log } = opts;
  const warmup = 2;
  const png = readFileSync(SCREENSHOT);
  const dataUrl = `data:image/png;base64,${png.toString('base64')}`;
  const body = chatBody(dataUrl, 1);
  const bodyText = JSON.stringify(body);

  const tinyDir = await ensureTinyCheckpoint();
  const cpDir = opts.tokenizerDir ?? tinyDir;
  const cp = await openCheckpoint(cpDir);
  const tokenizer = ChatTokenizer.fromFiles(cp.files);
  const tinyCp = await openCheckpoint(tinyDir);
  const tinyTokenizer = ChatTokenizer.fromFiles(tinyCp.files);
  const pre = cp.config.preprocessor;

  // Validation as the route does it: the route's schema, compiled with Fastify's ajv options
  // (@fastify/ajv-compiler's defaults, then the app's customOptions).
  const ajv = new Ajv({ coerceTypes: false, useDefaults: true, removeAdditional: false, allErrors: false, addUsedSchema: false });
  const validate = ajv.compile(ChatCompletionRequestSchema);
  const stub = Fastify({
    logger: false,
    bodyLimit: 128 * 1024 * 1024,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  });
  stub.post('/v1/chat/completions', { schema: { body: ChatCompletionRequestSchema } }, async () => ({ ok: true }));
  await stub.ready();

  const rows = new Map<string, OverheadRow>();
  const put = (key: string, label: string, policy: PolicyKey, ms: number[]): void => {
    const row = rows.get(key) ?? { key, label, values: {} as Record<PolicyKey, Spread> };
    row.values[policy] = spread(ms);
    rows.set(key, row);
  };
  const facts = {} as Record<PolicyKey, PolicyFacts>;

  for (const { key, policy } of POLICIES) {
    log(`bench: overhead, ${key} policy: pieces (${runs} runs each)`);
    const config: ServerConfig = { ...defaultServerConfig(), imagePolicy: policy };
    // No prepared-image cache: every run measures the decode and resize.
    const ctx: ServingContext = { config, model: cp.config, tokenizer, maxModelLen: 32768, images: new PreparedImageCache(0) };
    const tinyCtx: ServingContext = { ...ctx, model: tinyCp.config, tokenizer: tinyTokenizer };
    const capPixels = config.maxImageTokens * 28 * 28;
    const resizePolicy = resizePolicyFor(policy, pre.minPixels, Math.min(pre.maxPixels, capPixels));
    const limits = { maxBytes: config.maxImageBytes, maxPixels: config.maxImagePixels };

    const parsed = JSON.parse(bodyText) as ChatCompletionRequest;
    const bytes = imageBytesFromUrl(dataUrl, 'image 1');
    const decoded = await decodeImage(bytes, limits);
    const rgb = { data: decoded.data, width: decoded.width, height: decoded.height };
    const target = resolveResize(decoded.width, decoded.height, resizePolicy);
    const resized = pilResizeBicubic(rgb, target.width, target.height);
    const image = preprocessImage(rgb, target.width, target.height, pre);
    const chat = normalizeMessages(parsed.messages);
    const text = tokenizer.renderChat(chat.messages, true);
    const prepared = await prepareChat(ctx, parsed);
    facts[key] = {
      resized: [image.width, image.height],
      imageTokens: image.numImageTokens,
      promptTokens: prepared.promptTokens,
      patchesMiB: image.patches.byteLength / 1024 ** 2,
    };

    put('json', 'JSON.parse of the body', key, await timeRuns(runs, warmup, () => JSON.parse(bodyText)));
    put('ajv', "schema validation (ajv, the route's schema)", key, await timeRuns(runs, warmup, () => {
      if (!validate(parsed)) throw new Error(`invalid: ${ajv.errorsText(validate.errors)}`);
    }));
    put('inject', 'Fastify inject, stub route (read + parse + validate + reply)', key, await timeRuns(runs, warmup, async () => {
      const res = await stub.inject({ method: 'POST', url: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, payload: bodyText });
      if (res.statusCode !== 200) throw new Error(`stub answered ${res.statusCode}: ${res.body}`);
    }));
    put('base64', 'data URL -> bytes (base64 check + decode)', key, await timeRuns(runs, warmup, () => imageBytesFromUrl(dataUrl, 'image 1')));
    put('decode', 'PNG decode (sharp -> RGB)', key, await timeRuns(runs, warmup, () => decodeImage(bytes, limits)));
    put('resize', `resize (PIL-compatible bicubic)`, key, await timeRuns(runs, warmup, () => pilResizeBicubic(rgb, target.width, target.height)));
    put('patchify', 'patchify (normalise, 1176-value patches)', key, await timeRuns(runs, warmup, () => patchifyResized(resized, pre)));
    put('preprocess', 'resize + patchify (preprocessImage)', key, await timeRuns(runs, warmup, () => preprocessImage(rgb, target.width, target.height, pre)));
    put('template', 'chat template (normalise messages + Jinja)', key, await timeRuns(runs, warmup, () =>
      tokenizer.renderChat(normalizeMessages(parsed.messages).messages, true)));
    put('tokenise', 'tokenise (full-size tokenizer, 151k vocab)', key, await timeRuns(runs, warmup, () => tokenizer.encode(text)));
    put('prepare', 'prepareChat total (data URL -> engine request)', key, await timeRuns(runs, warmup, () => prepareChat(ctx, parsed)));
    put('prepare-tiny', 'prepareChat total, tiny checkpoint (as end to end)', key, await timeRuns(runs, warmup, () => prepareChat(tinyCtx, parsed)));
    put('clone', 'patches to the engine worker (structuredClone)', key, await timeRuns(runs, warmup, () => structuredClone(image.patches)));
  }
  await stub.close();
  if (cpDir === tinyDir) {
    const row = rows.get('tokenise');
    if (row) row.label = 'tokenise (tiny tokenizer: the full-size checkpoint was not found)';
  }

  // End to end: the real app on the tiny checkpoint, one server per policy (the server's setting).
  const e2e = new Map<string, OverheadRow>();
  const putE2e = (key: string, label: string, policy: PolicyKey, ms: number[]): void => {
    const row = e2e.get(key) ?? { key, label, values: {} as Record<PolicyKey, Spread> };
    row.values[policy] = spread(ms);
    e2e.set(key, row);
  };
  for (const { key, policy } of POLICIES) {
    log(`bench: overhead, ${key} policy: end to end (tiny checkpoint, max_tokens 1, ${runs} runs)`);
    const { logger, lines } = collectRequestLogs();
    // No prepared-image cache: every request measures the decode and resize.
    const config: ServerConfig = { ...defaultServerConfig(), ports: [0], imagePolicy: policy, drainSeconds: 5, preparedImageCacheMiB: 0 };
    const server = await startServer(config, logger);
    try {
      await server.engine.ready;
      const app = server.apps[0]!;
      const wall: number[] = [];
      const engineMs: number[] = [];
      const overhead: number[] = [];
      const prepMs: number[] = [];
      const handlerMs: number[] = [];
      for (let i = 0; i < runs + warmup; i++) {
        const before = lines.length;
        const t0 = performance.now();
        const res = await app.inject({ method: 'POST', url: '/v1/chat/completions', headers: { 'content-type': 'application/json' }, payload: bodyText });
        const ms = performance.now() - t0;
        if (res.statusCode !== 200) throw new Error(`end to end: ${res.statusCode} ${res.body}`);
        const answer = JSON.parse(res.body) as { images: { resized: [number, number]; tokens: number }[] };
        if (answer.images[0]?.tokens !== facts[key].imageTokens) throw new Error(`end to end: ${JSON.stringify(answer.images)} (expected ${facts[key].imageTokens} tokens)`);
        const entry = lines[before]?.ms;
        if (!entry) throw new Error('end to end: no request log line');
        if (i < warmup) continue;
        const engine = entry.queue + entry.vision + entry.prefill + entry.decode;
        wall.push(ms);
        engineMs.push(engine);
        overhead.push(ms - engine);
        prepMs.push(entry.image + entry.template);
        handlerMs.push(entry.total);
      }
      putE2e('wall', 'inject wall time (tiny checkpoint, max_tokens 1)', key, wall);
      putE2e('engine', "engine's reported time (queue + vision + prefill + decode)", key, engineMs);
      putE2e('overhead', '**server overhead** = wall - engine', key, overhead);
      putE2e('prep', 'of which image + template, as the route logs them', key, prepMs);
      putE2e('outside', 'of which outside the handler (body read, parse, validate, reply)', key, wall.map((w, i) => w - handlerMs[i]!));
      log(`bench: ${key}: wall ${median(wall).toFixed(1)} ms, engine ${median(engineMs).toFixed(1)} ms, overhead ${median(overhead).toFixed(1)} ms`);
    } finally {
      await server.close();
    }
  }

  return {
    runs,
    pngBytes: png.length,
    bodyBytes: Buffer.byteLength(bodyText),
    tokenizerFrom: cpDir,
    facts,
    pieces: [...rows.values()],
    endToEnd: [...e2e.values()],
  };
}
