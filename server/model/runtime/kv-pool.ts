/**
 * The decoder's KV cache: per layer one buffer for K and one for V, shaped
 * [slots, kvHeads, capacity, headDim]. A running sequence owns one slot; running sequences
 * always occupy slots 0..n-1, so a decode step over n sequences passes the first n slots as one
 * contiguous tensor. A run reads the slots as its past (onnxruntime-node passes input buffers
 * without copying) and returns only its new K/V rows, which are appended here (fetched outputs
 * are copied, so the whole present never crosses back; see server/model/build/attention.ts).
 *
 * The capacity (tokens per slot) grows with the longest running sequence, in steps of
 * CAPACITY_STEP up to maxLen, and shrinks back when the engine is idle: the cost of a step
 * follows the buffer's size (measured: with the tiny model a decode step took 0.6 ms at
 * capacity 1024 and 12 ms at 32768), so it must follow the context in use, not the largest
 * context allowed.
 */
import * as ort from 'onnxruntime-node';

export interface KvShape {
  layers: number;
  kvHeads: number;
  headDim: number;
  maxLen: number; // the largest capacity a slot may reach (max_model_len)
  slots: number;
}

export const CAPACITY_STEP = 256;

/** The first rows of one slot, outside the pool: per layer K and V, each [kvHeads, rows, headDim]. */
export interface KvRows {
  length: number;
  keys: Float32Array[];
  values: Float32Array[];
}

export class KvPool {
  private keys: Float32Array[] = [];
  private values: Float32Array[] = [];
  private cap = 0;

  constructor(readonly shape: KvShape) {
    this.allocate(Math.min(CAPACITY_STEP, shape.maxLen));
  }

  /** Tokens each slot can hold right now. */
  get capacity(): number {
    return this.cap;
  }

  /** Bytes the cache would take with every slot at maxLen (the budget the loader checks). */
  get maxBytes(): number {
    const { layers, slots, kvHeads, maxLen, headDim } = this.shape;
    return 2 * layers * slots * kvHeads * maxLen * headDim * 4;
  }

  private slotSize(cap = this.cap): number {
    return this.shape.kvHeads * cap * this.shape.headDim;
  }

  /**
   * Makes every slot hold at least `tokens` tokens, keeping the first `keep[i]` rows of slot i.
   * Re-laying out the buffers costs one copy of the live rows, once per CAPACITY_STEP of growth.
   */
  ensureCapacity(tokens: number, keep: readonly number[]): void {
    if (tokens > this.shape.maxLen) throw new Error(`KV cache: ${tokens} tokens exceed max_model_len ${this.shape.maxLen}`);
    if (tokens <= this.cap) return;
    const next = Math.min(this.shape.maxLen, Math.ceil(tokens / CAPACITY_STEP) * CAPACITY_STEP);
    this.relayout(next, keep);
  }

  /** Back to the smallest capacity (the engine is idle: nothing to keep). */
  shrink(): void {
    const small = Math.min(CAPACITY_STEP, this.shape.maxLen);
    if (this.cap > small) this.allocate(small);
  }

  private allocate(cap: number): void {
    const size = this.shape.slots * this.slotSize(cap);
    this.keys = Array.from({ length: this.shape.layers }, () => new Float32Array(size));
    this.values = Array.from({ length: this.shape.layers }, () => new Float32Array(size));
    this.cap = cap;
  }

  private relayout(cap: number, keep: readonly number[]): void {
    const { kvHeads, headDim } = this.shape;
    const oldCap = this.cap;
    const oldKeys = this.keys;
    const oldValues = this.values;
    this.allocate(cap);
    for (const [olds, news] of [
      [oldKeys, this.keys],
      [oldValues, this.values],
    ] as const) {
      for (let l = 0; l < olds.length; l++) {
        const src = olds[l]!;
        const dst = news[l]!;
        keep.forEach((rows, slot) => {
          for (let h = 0; h < kvHeads; h++) {
            const from = (slot * kvHeads + h) * oldCap * headDim;
            const to = (slot * kvHeads + h) * cap * headDim;
            dst.set(src.subarray(from, from + rows * headDim), to);
          }
        });
      }
    }
  }

  /** Feeds for slots [first, first+count): `past_key_values.i.key/value` over the slots' buffers. */
  pastFeeds(first: number, count: number): Record<string, ort.Tensor> {
    const { kvHeads, headDim } = this.shape;
    const dims = [count, kvHeads, this.cap, headDim];
    const from = first * this.slotSize();
    const to = from + count * this.slotSize();
    const feeds: Record<string, ort.Tensor> = {};
    for (let i = 0; i < this.shape.layers; i++) {
      feeds[`past_key_values.${i}.key`] = new ort.Tensor('float32', this.keys[i]!.subarray(from, to), dims);
      feeds[`past_key_values.${i}.value`] = new ort.Tensor('float32', this.values[i]!.subarray(from, to), dims);
    }
    return feeds;
  }

  /**
   * Appends a run's new rows: `keyRows[l]` / `valueRows[l]` are [count, seqLen, kvHeads*headDim];
   * sequence b's rows go to slot first+b from row starts[b].
   */
  appendRows(first: number, seqLen: number, starts: ArrayLike<number>, keyRows: Float32Array[], valueRows: Float32Array[]): void {
    const { kvHeads, headDim } = this.shape;
    const width = kvHeads * headDim;
    for (const [pool, rows] of [
      [this.keys, keyRows],
      [this.values, valueRows],
    ] as const) {
      pool.forEach((buf, l) => {
        const src = rows[l]!;
        for (let b = 0; b < starts.length; b++) {
          if (starts[b]! + seqLen > this.cap) throw new Error(`KV cache: rows ${starts[b]}..${starts[b]! + seqLen} exceed capacity ${this.cap}`);
          for (let r = 0; r < seqLen; r++) {
            const from = (b * seqLen + r) * width;
            for (let h = 0; h < kvHeads; h++) {
              const to = (((first + b) * kvHeads + h) * this.cap + starts[b]! + r) * headDim;
              buf.set(src.subarray(from + h * headDim, from + (h + 1) * headDim), to);
            }
          }
        }
      });
    }
  }

  /** Bytes that `rows` cached tokens of one slot take. */
  rowBytes(rows: number): number {
    return 2 * this.shape.layers * this.shape.kvHeads * rows * this.shape.headDim * 4;
  }

  /** A copy of the first `length` rows of `slot`. */
  readRows(slot: number, length: number): KvRows {
    const { kvHeads, headDim } = this.shape;
    const take = (buf: Float32Array): Float32Array => {
      const out = new Float32Array(kvHeads * length * headDim);
      for (let h = 0; h < kvHeads; h++) {
        const src = (slot * kvHeads + h) * this.cap * headDim;
        out.set(buf.subarray(src, src + length * headDim), h * length * headDim);
      }
      return out;
    };
    return { length, keys: this.keys.map(take), values: this.values.map(take) };
  }

  /** Writes the first `length` rows of `rows` into `slot` (capacity must already hold them). */
  writeRows(slot: number, rows: KvRows, length: number): void {
    if (length > this.cap || length > rows.length) throw new Error(`KV cache: cannot write ${length} rows (capacity ${this.cap}, have ${rows.length})`);
    const { kvHeads, headDim } = this.shape;
    const put = (dst: Float32Array, src: Float32Array): void => {
      for (let h = 0; h < kvHeads; h++) {
        const from = h * rows.length * headDim;
        dst.set(src.subarray(from, from + length * headDim), (slot * kvHeads + h) * this.cap * headDim);
      }
    };
    this.keys.forEach((buf, l) => put(buf, rows.keys[l]!));
    this.values.forEach((buf, l) => put(buf, rows.values[l]!));
  }

  /** Copies the first `length` cached tokens of slot `from` into slot `to` (compaction; n > 1 sharing a prefill). */
  copy(from: number, to: number, length: number): void {
    if (from === to) return;
    const { kvHeads, headDim } = this.shape;
    const rows = length * headDim;
    for (const buffers of [this.keys, this.values]) {
      for (const buf of buffers) {
        for (let h = 0; h < kvHeads; h++) {
          const src = (from * kvHeads + h) * this.cap * headDim;
          const dst = (to * kvHeads + h) * this.cap * headDim;
          buf.copyWithin(dst, src, src + rows);
        }
      }
    }
  }
}
