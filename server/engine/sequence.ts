/**
 * One request's life inside the engine: its prompt (image tokens expanded), M-RoPE
 * positions, cache length, sampler, detokenizer and stop matcher. Pure bookkeeping;
 * the engine runs the model.
 */
import { AsyncChannel } from './async-channel.ts';
import { IncrementalDetokenizer, type Decoder } from './detokenizer.ts';
import type { EngineEvent, EngineRequest, FinishReason, RequestTiming } from './request.ts';
import { SequenceSampler, type SampledToken } from './sampler.ts';
import { StopStringMatcher } from './stop-strings.ts';

/** The n sequences of one request share one event stream, closed when the last one ends. */
export class SequenceGroup {
  readonly events = new AsyncChannel<EngineEvent>();
  private open: number;

  constructor(readonly size: number) {
    this.open = size;
  }

  ended(): void {
    if (--this.open === 0) this.events.close();
  }
}

export class Sequence {
  readonly sampler: SequenceSampler;
  private readonly detokenizer: IncrementalDetokenizer;
  private readonly stopMatcher: StopStringMatcher;
  private readonly stopIds: Set<number>;
  readonly enqueuedAt = performance.now();
  readonly timing: RequestTiming = { queuedMs: 0, visionMs: 0, prefillMs: 0, decodeMs: 0, firstTokenMs: 0 };

  /** Prompt with image tokens expanded, set at prefill. */
  promptIds: number[] = [];
  imageTokens = 0;
  /** Tokens held in the KV cache. */
  cachedLength = 0;
  /** Prompt tokens whose KV came from the prefix cache. */
  cachedTokens = 0;
  /** M-RoPE position of the next token. */
  nextPosition = 0;
  /** The last sampled token, fed to the next decode step. */
  lastToken = -1;
  completionTokens = 0;
  finished: FinishReason | null = null;

  constructor(
    readonly request: EngineRequest,
    decoder: Decoder,
    readonly group: SequenceGroup,
    readonly index: number,
  ) {
    // Each of the n completions draws its own samples; a seed stays reproducible per index.
    const seed = request.sampling.seed;
    const sampling = seed === undefined ? request.sampling : { ...request.sampling, seed: seed + index };
    this.sampler = new SequenceSampler(sampling, request.promptIds);
    this.detokenizer = new IncrementalDetokenizer(decoder, request.skipSpecialTokens);
    this.stopMatcher = new StopStringMatcher(request.stop);
    this.stopIds = new Set(request.stopTokenIds);
  }

  get aborted(): boolean {
    return this.request.signal?.aborted ?? false;
  }

  /** Records a sampled token, emits its event, and decides whether the sequence ends. */
  accept(sampled: SampledToken, maxLen: number, logits: Float32Array): void {
    if (this.completionTokens === 0) this.timing.firstTokenMs = performance.now() - this.enqueuedAt;
    this.completionTokens++;
    this.lastToken = sampled.token;
    let text = '';
    let reason: FinishReason | null = null;
    if (this.stopIds.has(sampled.token)) {
      reason = 'stop';
    } else {
      const { emit, stopped } = this.stopMatcher.push(this.detokenizer.push(sampled.token));
      text = emit;
      if (stopped) reason = 'stop';
    }
    if (!reason && this.completionTokens >= this.request.maxTokens) reason = 'length';
    // The next decode step needs one more cache row.
    if (!reason && this.cachedLength + 1 >= maxLen) reason = 'length';
    this.group.events.push({
      type: 'token',
      index: this.index,
      token: sampled.token,
      logprob: sampled.logprob,
      top: sampled.top,
      text,
      ...(this.request.returnLogits ? { logits: logits.slice() } : {}),
    });
    if (reason) this.finish(reason);
  }

  finish(reason: FinishReason, error?: string): void {
    if (this.finished) return;
    this.finished = reason;
    let tail = '';
    if (reason !== 'stop' && reason !== 'error') tail = this.stopMatcher.push(this.detokenizer.flush()).emit;
    tail += this.stopMatcher.finish();
    this.group.events.push({
      type: 'done',
      index: this.index,
      finishReason: reason,
      finalText: tail,
      ...(error ? { error } : {}),
      text: this.stopMatcher.fullText,
      promptTokens: this.promptIds.length || this.request.promptIds.length,
      imageTokens: this.imageTokens,
      cachedTokens: this.cachedTokens,
      completionTokens: this.completionTokens,
      timing: this.timing,
    });
    this.group.ended();
  }

  /** Takes over a sibling's prefill: same prompt, cache contents (copied by the engine) and positions. */
  adoptPrefill(from: Sequence): void {
    this.promptIds = from.promptIds;
    this.imageTokens = from.imageTokens;
    this.cachedLength = from.cachedLength;
    this.cachedTokens = from.cachedTokens;
    this.nextPosition = from.nextPosition;
    this.timing.queuedMs = from.timing.queuedMs;
    this.timing.visionMs = from.timing.visionMs;
    this.timing.prefillMs = from.timing.prefillMs;
  }
}
