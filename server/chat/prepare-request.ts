/**
 * A validated chat request -> an engine request: normalise the messages, cap the images
 * (count, then context length; oldest dropped first), decode and resize the images that
 * remain, render the chat template, tokenise, and clamp max_tokens to what the context has
 * left. The one place where wire parameters become engine parameters.
 */
import { contextLengthExceeded, invalidRequest } from '../api/errors.ts';
import type { ChatCompletionRequest } from '../api/schemas/chat-completions.ts';
import { resizePolicyFor, type ServerConfig } from '../config.ts';
import type { EngineRequest } from '../engine/request.ts';
import type { SamplingParams } from '../engine/sampler.ts';
import type { Qwen2VLConfig } from '../model/checkpoint/types.ts';
import type { ChatTokenizer, TemplateMessage } from '../model/tokenizer.ts';
import { ImageError } from '../vision/decode.ts';
import type { PreparedImage, PreparedImageCache } from '../vision/prepare-image.ts';
import { ResizeError } from '../vision/smart-resize.ts';
import { imageBytes } from './data-url.ts';
import type { RemoteImagePolicy } from './remote-image.ts';
import { dropOldestImages, normalizeMessages, type NormalizedChat } from './normalize-messages.ts';

export interface ServingContext {
  config: ServerConfig;
  model: Qwen2VLConfig;
  tokenizer: ChatTokenizer;
  maxModelLen: number;
  /** Decoded and resized images by content (agents re-send their earlier screenshots). */
  images: PreparedImageCache;
  /**
   * The most input bytes one token can stand for (the longest vocabulary entry). With it, a
   * prompt whose text alone needs more tokens than the context holds is refused before it is
   * tokenised: tokenising megabytes of text would block the HTTP thread for seconds to minutes.
   */
  maxTokenBytes?: number;
  /** Special tokens the chat template puts around every message (so many tiny messages count too). */
  specialTokensPerMessage?: number;
}

/** The longest token of a tokenizer.json, in input bytes (byte-level BPE: one character per byte). */
export function maxTokenBytesOf(tokenizerJson: { model?: { vocab?: Record<string, number> | [string, number][] }; added_tokens?: { content: string }[] }): number {
  let longest = 1;
  const vocab = tokenizerJson.model?.vocab;
  const tokens = Array.isArray(vocab) ? vocab.map(([t]) => t) : Object.keys(vocab ?? {});
  for (const t of tokens) longest = Math.max(longest, Buffer.byteLength(t, 'utf8'));
  for (const t of tokenizerJson.added_tokens ?? []) longest = Math.max(longest, Buffer.byteLength(t.content, 'utf8'));
  return longest;
}

/**
 * The fewest special tokens the chat template wraps one message in (<|im_start|>, <|im_end|> for
 * Qwen2-VL): special tokens never merge with text, so this many per message is a true lower bound.
 */
export function specialTokensPerMessage(tokenizer: ChatTokenizer): number {
  const specials = (messages: TemplateMessage[]): number =>
    tokenizer.encode(tokenizer.renderChat(messages, false)).filter((id) => tokenizer.isSpecial(id)).length;
  try {
    const one: TemplateMessage[] = [{ role: 'user', content: 'a' }];
    const base = specials(one);
    return Math.max(0, Math.min(...['assistant', 'user'].map((role) => specials([...one, { role, content: 'a' }]) - base)));
  } catch {
    return 0; // a template that refuses these turns: no bound from it
  }
}

/** UTF-8 bytes of every text the messages carry. */
function textBytes(chat: NormalizedChat): number {
  let n = 0;
  for (const m of chat.messages) {
    n += Buffer.byteLength(m.role, 'utf8');
    if (typeof m.content === 'string') n += Buffer.byteLength(m.content, 'utf8');
    else for (const p of m.content) if (p.type === 'text') n += Buffer.byteLength(p.text, 'utf8');
  }
  return n;
}

export interface PreparedChat {
  engineRequest: EngineRequest;
  images: PreparedImage[];
  imagesDropped: number;
  promptTokens: number;
  imageTokens: number;
  /** Image decode + resize + patchify, and template + tokenise, in milliseconds. */
  timing: { imageMs: number; templateMs: number };
}

const IMAGE_PATCH_PIXELS = 28 * 28; // one merged image token covers 28x28 pixels

export function samplingParams(req: ChatCompletionRequest): SamplingParams {
  const topK = req.top_k ?? 0;
  return {
    temperature: req.temperature ?? 1,
    topP: req.top_p ?? 1,
    topK: topK < 0 ? 0 : topK,
    minP: req.min_p ?? 0,
    frequencyPenalty: req.frequency_penalty ?? 0,
    presencePenalty: req.presence_penalty ?? 0,
    repetitionPenalty: req.repetition_penalty ?? 1,
    ...(req.seed !== undefined && req.seed !== null ? { seed: req.seed } : {}),
  };
}

function mapImageError(err: unknown, param: string): never {
  if (err instanceof ImageError) throw invalidRequest(`${param}: ${err.message}`, param, err.code);
  if (err instanceof ResizeError) throw invalidRequest(`${param}: ${err.message}`, param, 'invalid_image_size');
  throw err;
}

/** The remote-image policy of a configuration; null when remote image URLs are refused. */
export function remoteImagePolicy(config: ServerConfig): RemoteImagePolicy | null {
  if (!config.allowedImageHosts || config.allowedImageHosts.length === 0) return null;
  return {
    allowedHosts: config.allowedImageHosts,
    allowPrivate: config.imageFetchAllowPrivate,
    timeoutMs: config.imageFetchTimeoutMs,
    maxRedirects: config.imageFetchMaxRedirects,
    maxBytes: config.maxImageBytes,
  };
}

function render(ctx: ServingContext, chat: NormalizedChat): number[] {
  return ctx.tokenizer.encode(ctx.tokenizer.renderChat(chat.messages, true));
}

/** Runs a task when a slot is free (the server's bound on images decoded at once). */
export interface TaskLimit {
  run<T>(task: () => Promise<T>): Promise<T>;
}

const UNLIMITED: TaskLimit = { run: (task) => task() };

/**
 * `decodeLimit` bounds only the decoding of images (memory for one decoded image per slot):
 * fetching a remote image waits on the network, not on a slot, so a slow image host cannot
 * hold up other requests.
 */
export async function prepareChat(
  ctx: ServingContext,
  req: ChatCompletionRequest,
  signal?: AbortSignal,
  decodeLimit: TaskLimit = UNLIMITED,
): Promise<PreparedChat> {
  const { config } = ctx;
  let chat = normalizeMessages(req.messages);
  if (ctx.maxTokenBytes) {
    const atLeast = Math.ceil(textBytes(chat) / ctx.maxTokenBytes) + chat.messages.length * (ctx.specialTokensPerMessage ?? 0);
    if (atLeast + 1 > ctx.maxModelLen) {
      throw contextLengthExceeded(
        `This model's maximum context length is ${ctx.maxModelLen} tokens. However, your messages' text alone needs at least ${atLeast} tokens. Please reduce the length of the messages.`,
      );
    }
  }
  // 1. At most maxImagesPerRequest images: the oldest go first, as the agent's own history does.
  let dropped = Math.max(0, chat.imageUrls.length - config.maxImagesPerRequest);
  chat = dropOldestImages(chat, dropped);

  // 2. Decode and resize what is left. Per-request mm_processor_kwargs override the server's policy;
  //    the per-image token cap bounds the pixels either way.
  const mm = req.mm_processor_kwargs ?? {};
  const pre = ctx.model.preprocessor;
  const capPixels = config.maxImageTokens * IMAGE_PATCH_PIXELS;
  const minPixels = mm.min_pixels ?? pre.minPixels;
  const maxPixels = Math.min(mm.max_pixels ?? pre.maxPixels, capPixels);
  if (minPixels > maxPixels) throw invalidRequest(`min_pixels ${minPixels} exceeds max_pixels ${maxPixels}`, 'mm_processor_kwargs');
  const policy = resizePolicyFor(mm.size ?? config.imagePolicy, minPixels, maxPixels);
  const images: PreparedImage[] = [];
  const remote = remoteImagePolicy(config);
  let imageMs = 0;
  for (let i = 0; i < chat.imageUrls.length; i++) {
    if (signal?.aborted) throw invalidRequest('the client went away');
    const param = `image ${dropped + i + 1}`;
    const t0 = performance.now();
    const bytes = await imageBytes(chat.imageUrls[i]!, param, config.maxImageBytes, remote, signal);
    try {
      const limits = { maxBytes: config.maxImageBytes, maxPixels: config.maxImagePixels };
      images.push(await decodeLimit.run(() => ctx.images.prepare(bytes, policy, pre, limits)));
    } catch (err) {
      mapImageError(err, param);
    }
    imageMs += performance.now() - t0;
    if (images.at(-1)!.numImageTokens > config.maxImageTokens) {
      // A fixed box larger than the cap: the cap wins.
      throw invalidRequest(`image policy gives ${images.at(-1)!.numImageTokens} tokens per image, over --max-image-tokens ${config.maxImageTokens}`, 'mm_processor_kwargs');
    }
  }

  // 3. Template and tokens; drop the oldest images while the prompt does not fit.
  const t1 = performance.now();
  let ids = render(ctx, chat);
  // Text that spells <|image_pad|> is tokenised as the placeholder itself: the prompt would
  // then hold more placeholders than images, which the engine cannot expand.
  const placeholders = ids.reduce((n, id) => n + (id === ctx.model.tokens.imagePad ? 1 : 0), 0);
  if (placeholders !== images.length) {
    throw invalidRequest(
      `the messages' text contains the image placeholder token <|image_pad|> (${placeholders - images.length} time(s)); send images as image_url parts`,
      'messages',
      'invalid_prompt',
    );
  }
  const promptLength = (textIds: number[], kept: PreparedImage[]): number =>
    textIds.length - kept.length + kept.reduce((n, im) => n + im.numImageTokens, 0);
  let kept = images;
  while (promptLength(ids, kept) + 1 > ctx.maxModelLen && kept.length > 0) {
    chat = dropOldestImages(chat, 1);
    kept = kept.slice(1);
    dropped++;
    ids = render(ctx, chat);
  }
  const promptTokens = promptLength(ids, kept);
  const templateMs = performance.now() - t1;
  if (promptTokens + 1 > ctx.maxModelLen) {
    throw contextLengthExceeded(
      `This model's maximum context length is ${ctx.maxModelLen} tokens. However, your messages resulted in ${promptTokens} tokens${dropped ? ` after dropping ${dropped} image(s)` : ''}. Please reduce the length of the messages.`,
    );
  }
  const room = ctx.maxModelLen - promptTokens;
  const requested = req.max_completion_tokens ?? req.max_tokens ?? room;
  const stop = req.stop === undefined || req.stop === null ? [] : typeof req.stop === 'string' ? [req.stop] : req.stop;
  const topLogprobs = req.logprobs ? (req.top_logprobs ?? 0) : 0;
  if (!req.logprobs && req.top_logprobs) throw invalidRequest('top_logprobs requires logprobs=true', 'top_logprobs');

  return {
    engineRequest: {
      promptIds: ids,
      images: kept.map((im) => ({ patches: im.patches, gridThw: im.gridThw })),
      sampling: samplingParams(req),
      maxTokens: Math.min(requested, room),
      stop,
      stopTokenIds: ctx.model.tokens.eos,
      topLogprobs,
      skipSpecialTokens: req.skip_special_tokens ?? true,
      n: req.n ?? 1,
      ...(signal ? { signal } : {}),
    },
    images: kept,
    imagesDropped: dropped,
    promptTokens,
    imageTokens: kept.reduce((n, im) => n + im.numImageTokens, 0),
    timing: { imageMs, templateMs },
  };
}
