/**
 * What the engine accepts and emits. Requests arrive validated and in native types
 * (token ids, preprocessed image patches, sampling params); the HTTP layer owns JSON.
 */
import type { SamplingParams, TokenLogprob } from './sampler.ts';

/** One preprocessed image: HF-ordered patches [t*h*w, 1176] and its grid in 14x14 patches. */
export interface ImageInput {
  patches: Float32Array;
  gridThw: [number, number, number];
}

export interface EngineRequest {
  /** The templated prompt, tokenised, with ONE <|image_pad|> per image (expanded by the engine). */
  promptIds: number[];
  images: ImageInput[];
  sampling: SamplingParams;
  maxTokens: number;
  stop: string[];
  /** Token ids that end generation (the checkpoint's EOS ids plus the request's). */
  stopTokenIds: number[];
  /** Number of alternatives per generated token (0: none). */
  topLogprobs: number;
  skipSpecialTokens: boolean;
  /** Attach the raw next-token logits to each token event (drift measurements; not exposed over HTTP). */
  returnLogits?: boolean;
  /** Completions to generate from the prompt; they share one prefill (default 1). */
  n?: number;
  signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length' | 'abort' | 'error';

export interface RequestTiming {
  queuedMs: number;
  visionMs: number;
  prefillMs: number;
  decodeMs: number;
  firstTokenMs: number;
}

export interface TokenEvent {
  type: 'token';
  /** Which of the request's n completions. */
  index: number;
  token: number;
  logprob: number;
  top: TokenLogprob[];
  /** Text that became final with this token (may be empty while a character or stop string is pending). */
  text: string;
  /** The logits this token was sampled from, when the request asked for them. */
  logits?: Float32Array;
}

export interface DoneEvent {
  type: 'done';
  index: number;
  finishReason: FinishReason;
  /** Error message when finishReason is 'error'. */
  error?: string;
  /** Text released only now (held back earlier for a pending character or stop string). */
  finalText: string;
  /** The whole generated text. */
  text: string;
  promptTokens: number;
  imageTokens: number;
  /** Prompt tokens served from the prefix cache. */
  cachedTokens: number;
  completionTokens: number;
  timing: RequestTiming;
}

export type EngineEvent = TokenEvent | DoneEvent;
