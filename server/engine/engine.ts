/**
 * The step loop: the single owner of engine state. Requests wait in a queue; each
 * iteration admits waiting requests into free KV slots (prefill: vision encoder, then
 * the prompt in chunks), then runs ONE decode step over every running sequence
 * (continuous batching: sequences join and leave between decode steps).
 *
 *   generate(req) ──► waiting ──admit──► prefill(seq) ──► running[0..n) ──decode step──► events
 *                                                           ▲                   │
 *                                                           └── finished: slot compacted
 */
import { concatFloat32 } from '../common/concat.ts';
import type { Qwen2VLConfig } from '../model/checkpoint/types.ts';
import { mropePositions, MropeTables, type MergedGrid } from '../model/qwen2-vl/mrope.ts';
import type { ModelRunner } from '../model/runtime/model-runner.ts';
import type { Decoder } from './detokenizer.ts';
import { ImageEmbeddingCache, imageKey } from './image-cache.ts';
import { PrefixCache, type PromptKey } from './prefix-cache.ts';
import type { EngineEvent, EngineRequest } from './request.ts';
import { Sequence, SequenceGroup } from './sequence.ts';

export interface EngineOptions {
  /** Prompt tokens per prefill run (bounds activation memory for long prompts). */
  prefillChunk: number;
  /** Memory for vision-encoder outputs kept by image content (0: off). */
  imageCacheBytes: number;
  /** Memory for prompt KV rows kept for reuse by later prompts that extend them (0: off). */
  prefixCacheBytes: number;
}

export interface EngineStats {
  waiting: number;
  running: number;
  decodeSteps: number;
  /** Decode steps that advanced more than one sequence. */
  batchedDecodeSteps: number;
  promptTokens: number;
  generatedTokens: number;
  imageCacheHits: number;
  imageCacheMisses: number;
  prefixCacheHits: number;
  prefixCacheMisses: number;
  /** Prompt tokens whose KV came from the prefix cache instead of prefill. */
  cachedPromptTokens: number;
  /** Bytes held by the image and prefix caches. */
  cacheBytes: number;
}

export const EMPTY_STATS: EngineStats = {
  waiting: 0,
  running: 0,
  decodeSteps: 0,
  batchedDecodeSteps: 0,
  promptTokens: 0,
  generatedTokens: 0,
  imageCacheHits: 0,
  imageCacheMisses: 0,
  prefixCacheHits: 0,
  prefixCacheMisses: 0,
  cachedPromptTokens: 0,
  cacheBytes: 0,
};

export class EngineError extends Error {}

/** The client went away during its prefill: stop between images and chunks, not at the end. */
class PrefillAborted extends Error {}

export class Engine {
  private readonly waiting: Sequence[][] = [];
  private readonly running: Sequence[] = [];
  /** Sequences whose prompt is being prefilled (neither waiting nor yet running). */
  private prefilling = 0;
  private readonly rope: MropeTables;
  private readonly config: Qwen2VLConfig;
  private loop: Promise<void> | null = null;
  private readonly imageCache: ImageEmbeddingCache;
  private readonly prefixCache: PrefixCache;
  readonly stats: EngineStats = { ...EMPTY_STATS };

  constructor(
    private readonly runner: ModelRunner,
    private readonly decoder: Decoder,
    private readonly options: EngineOptions,
  ) {
    this.config = runner.config;
    this.rope = new MropeTables(this.config.text);
    this.imageCache = new ImageEmbeddingCache(options.imageCacheBytes);
    this.prefixCache = new PrefixCache(options.prefixCacheBytes);
  }

  get maxLen(): number {
    return this.runner.kv.shape.maxLen;
  }

  /** Queues a request; events (tagged with the completion index) stream as the step loop produces them. */
  generate(request: EngineRequest): AsyncIterable<EngineEvent> {
    const n = request.n ?? 1;
    const group = new SequenceGroup(n);
    const seqs = Array.from({ length: n }, (_, i) => new Sequence(request, this.decoder, group, i));
    if (n > this.runner.kv.shape.slots) {
      for (const seq of seqs) seq.finish('error', `n=${n} exceeds the ${this.runner.kv.shape.slots} sequences this engine decodes at once`);
    } else {
      this.waiting.push(seqs);
      this.updateCounts();
      this.kick();
    }
    return group.events;
  }

  /** Resolves when every queued and running request has finished. */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  private kick(): void {
    if (this.loop) return;
    this.loop = this.run().finally(() => {
      this.loop = null;
      if (this.waiting.length > 0) this.kick();
    });
  }

  private async run(): Promise<void> {
    while (this.waiting.length > 0 || this.running.length > 0) {
      this.dropAborted();
      const slots = this.runner.kv.shape.slots;
      while (this.waiting.length > 0 && this.running.length + this.waiting[0]!.length <= slots) {
        await this.prefillGuarded(this.waiting.shift()!);
      }
      if (this.running.length > 0) await this.decodeStep();
      if (this.running.length === 0 && this.waiting.length === 0) this.runner.kv.shrink();
      this.updateCounts();
      // Let the event loop deliver events and accept new requests between steps.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    this.updateCounts();
  }

  private updateCounts(): void {
    this.stats.waiting = this.waiting.length;
    this.stats.running = this.running.length + this.prefilling; // as vLLM counts a prefilling request
    const img = this.imageCache.counters;
    const pre = this.prefixCache.counters;
    this.stats.imageCacheHits = img.hits;
    this.stats.imageCacheMisses = img.misses;
    this.stats.prefixCacheHits = pre.hits;
    this.stats.prefixCacheMisses = pre.misses;
    this.stats.cachedPromptTokens = this.prefixCache.reusedTokens;
    this.stats.cacheBytes = img.bytes + pre.bytes;
  }

  private dropAborted(): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      if (this.waiting[i]![0]!.aborted) for (const seq of this.waiting.splice(i, 1)[0]!) seq.finish('abort');
    }
    for (let i = this.running.length - 1; i >= 0; i--) {
      if (this.running[i]!.aborted) {
        this.running[i]!.finish('abort');
        this.release(i);
      }
    }
  }

  /** Frees slot i by moving the last running sequence's cache into it. */
  private release(i: number): void {
    const last = this.running.length - 1;
    if (i !== last) {
      const moved = this.running[last]!;
      this.runner.kv.copy(last, i, moved.cachedLength);
      this.running[i] = moved;
    }
    this.running.pop();
    this.updateCounts();
  }

  private async prefillGuarded(seqs: Sequence[]): Promise<void> {
    let logits: Float32Array;
    this.prefilling = seqs.length;
    this.updateCounts();
    try {
      logits = await this.prefill(seqs[0]!);
    } catch (err) {
      // A failed request fails alone; its slots were never added to `running`.
      if (err instanceof PrefillAborted) for (const seq of seqs) seq.finish('abort');
      else for (const seq of seqs) seq.finish('error', err instanceof Error ? err.message : String(err));
      return;
    } finally {
      this.prefilling = 0;
    }
    // The n completions share the prefill: copy the first one's cache rows into their slots.
    const first = seqs[0]!;
    const firstSlot = this.running.length;
    this.running.push(...seqs);
    this.updateCounts(); // before the first tokens' events leave, so metrics see these sequences
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i]!;
      if (i > 0) {
        this.runner.kv.copy(firstSlot, firstSlot + i, first.cachedLength);
        seq.adoptPrefill(first);
      }
      seq.accept(seq.sampler.sample(logits, seq.request.topLogprobs), this.maxLen, logits);
      this.stats.generatedTokens++;
    }
    for (let b = this.running.length - 1; b >= firstSlot; b--) if (this.running[b]!.finished) this.release(b);
  }

  /**
   * Prompt prefill into the next free slot; returns the last position's logits. Rows shared with
   * a cached prompt are copied from the prefix cache; images are encoded (or found in the image
   * cache) only when some of their rows remain to be prefilled.
   */
  private async prefill(seq: Sequence): Promise<Float32Array> {
    const start = performance.now();
    seq.timing.queuedMs = start - seq.enqueuedAt;
    const { tokens } = this.config;
    const merge = this.config.vision.spatialMergeSize;
    const req = seq.request;
    const grids: MergedGrid[] = req.images.map(({ gridThw: [t, h, w] }) => ({ t, h: h / merge, w: w / merge }));
    const ids = expandImageTokens(req.promptIds, tokens.imagePad, grids);
    seq.promptIds = ids;
    seq.imageTokens = grids.reduce((n, g) => n + g.t * g.h * g.w, 0);
    if (ids.length + 1 > this.maxLen) {
      throw new EngineError(`prompt of ${ids.length} tokens does not fit the ${this.maxLen}-token context`);
    }
    const prompt: PromptKey = { ids, imageKeys: req.images.map(imageKey), imageStarts: imageStartRows(ids, tokens.imagePad, grids) };
    const { positions, ropeDelta } = mropePositions(ids, tokens.imagePad, grids);
    const slot = this.running.length;
    const kv = this.runner.kv;

    let done = 0; // rows in the slot so far
    const hit = this.options.prefixCacheBytes > 0 ? this.prefixCache.lookup(prompt) : null;
    if (hit) {
      kv.ensureCapacity(hit.rows, [...this.running.map((s) => s.cachedLength), 0]);
      kv.writeRows(slot, hit.entry.rows, hit.rows);
      done = hit.rows;
    }
    seq.cachedTokens = done;

    // Vision tower, one image at a time, for the images with rows left to prefill.
    const embeds: (Float32Array | null)[] = [];
    for (let i = 0; i < req.images.length; i++) {
      const rows = grids[i]!.t * grids[i]!.h * grids[i]!.w;
      if (prompt.imageStarts[i]! + rows <= done) {
        embeds.push(null);
        continue;
      }
      if (seq.aborted) throw new PrefillAborted();
      const image = req.images[i]!;
      const encode = () => this.runner.encodeImage(image.patches, image.gridThw);
      embeds.push(this.options.imageCacheBytes > 0 ? await this.imageCache.getOrEncode(prompt.imageKeys[i]!, encode) : await encode());
    }
    seq.timing.visionMs = performance.now() - start;

    const hidden = this.config.text.hiddenSize;
    const headDim = this.config.text.headDim;
    let image = 0; // the image whose rows come next
    let logits: Float32Array | null = null;
    for (let from = done; from < ids.length; from += this.options.prefillChunk) {
      if (seq.aborted) throw new PrefillAborted();
      const count = Math.min(this.options.prefillChunk, ids.length - from);
      const cos = new Float32Array(count * headDim);
      const sin = new Float32Array(count * headDim);
      this.rope.fill(cos, sin, 0, positions, from, count);
      const imageIndex: bigint[] = [];
      const imageRows: Float32Array[] = [];
      for (let r = 0; r < count; r++) {
        const row = from + r;
        if (ids[row] !== tokens.imagePad) continue;
        while (row >= prompt.imageStarts[image]! + grids[image]!.t * grids[image]!.h * grids[image]!.w) image++;
        const offset = row - prompt.imageStarts[image]!;
        imageIndex.push(BigInt(r));
        imageRows.push(embeds[image]!.subarray(offset * hidden, (offset + 1) * hidden));
      }
      kv.ensureCapacity(from + count, [...this.running.map((s) => s.cachedLength), from]);
      logits = await this.runner.decode({
        firstSlot: slot,
        batch: 1,
        seqLen: count,
        inputIds: BigInt64Array.from(ids.slice(from, from + count), BigInt),
        ropeCos: cos,
        ropeSin: sin,
        seqlensK: Int32Array.of(from + count - 1),
        imageEmbeds: concatFloat32(imageRows),
        imageTokenIndex: BigInt64Array.from(imageIndex),
        logitsIndex: BigInt64Array.of(BigInt(count - 1)),
      }, 'prefill');
    }
    if (this.options.prefixCacheBytes > 0) this.prefixCache.store(prompt, kv.readRows(slot, ids.length), kv.rowBytes(ids.length));
    seq.cachedLength = ids.length;
    seq.nextPosition = ids.length + ropeDelta;
    seq.timing.prefillMs = performance.now() - start - seq.timing.visionMs;
    this.stats.promptTokens += ids.length;
    return logits!;
  }

  private async decodeStep(): Promise<void> {
    const n = this.running.length;
    const headDim = this.config.text.headDim;
    const start = performance.now();
    const cos = new Float32Array(n * headDim);
    const sin = new Float32Array(n * headDim);
    const inputIds = new BigInt64Array(n);
    const seqlensK = new Int32Array(n);
    for (let b = 0; b < n; b++) {
      const seq = this.running[b]!;
      inputIds[b] = BigInt(seq.lastToken);
      seqlensK[b] = seq.cachedLength; // cached after this step (cachedLength + 1) minus one
      this.rope.fillText(cos, sin, b, seq.nextPosition, 1);
    }
    const vocab = this.config.text.vocabSize;
    const cached = this.running.map((s) => s.cachedLength);
    this.runner.kv.ensureCapacity(Math.max(...cached) + 1, cached);
    const logits = await this.runner.decode({
      firstSlot: 0,
      batch: n,
      seqLen: 1,
      inputIds,
      ropeCos: cos,
      ropeSin: sin,
      seqlensK,
      imageEmbeds: new Float32Array(0),
      imageTokenIndex: new BigInt64Array(0),
      logitsIndex: BigInt64Array.from({ length: n }, (_, b) => BigInt(b)),
    }, 'decode');
    const elapsed = performance.now() - start;
    this.stats.decodeSteps++;
    if (n > 1) this.stats.batchedDecodeSteps++;
    for (let b = 0; b < n; b++) {
      const seq = this.running[b]!;
      seq.cachedLength++;
      seq.nextPosition++;
      seq.timing.decodeMs += elapsed;
      const row = logits.subarray(b * vocab, (b + 1) * vocab);
      seq.accept(seq.sampler.sample(row, seq.request.topLogprobs), this.maxLen, row);
      this.stats.generatedTokens++;
    }
    for (let b = n - 1; b >= 0; b--) if (this.running[b]!.finished) this.release(b);
  }
}

/** Replaces the i-th <|image_pad|> with as many copies as image i has merged tokens. */
export function expandImageTokens(promptIds: readonly number[], imagePad: number, grids: readonly MergedGrid[]): number[] {
  const out: number[] = [];
  let image = 0;
  for (const id of promptIds) {
    if (id !== imagePad) {
      out.push(id);
      continue;
    }
    const grid = grids[image++];
    if (!grid) throw new EngineError(`prompt has more image placeholders than images (${grids.length})`);
    for (let k = 0; k < grid.t * grid.h * grid.w; k++) out.push(imagePad);
  }
  if (image !== grids.length) throw new EngineError(`prompt has ${image} image placeholders for ${grids.length} images`);
  return out;
}

/** The first row of each image's run of <|image_pad|> rows in an expanded prompt. */
export function imageStartRows(ids: readonly number[], imagePad: number, grids: readonly MergedGrid[]): number[] {
  const starts: number[] = [];
  for (let row = 0; row < ids.length && starts.length < grids.length; ) {
    if (ids[row] !== imagePad) {
      row++;
      continue;
    }
    const g = grids[starts.length]!;
    starts.push(row);
    row += g.t * g.h * g.w;
  }
  return starts;
}
