/**
 * The decoder's KV cache: one preallocated buffer per layer for K and for V, shaped
 * [slots, kvHeads, maxLen, headDim]. A running sequence owns one slot; running
 * sequences always occupy slots 0..n-1, so a decode step over n sequences passes
 * the first n slots as one contiguous tensor. GroupQueryAttention writes the new
 * K/V rows in place (the same tensor is passed as past input and present output).
 */
import * as ort from 'onnxruntime-node';

export interface KvShape {
  layers: number;
  kvHeads: number;
  headDim: number;
  maxLen: number; // tokens per slot
  slots: number;
}

export class KvPool {
  private readonly keys: Float32Array[] = [];
  private readonly values: Float32Array[] = [];
  readonly slotSize: number;

  constructor(readonly shape: KvShape) {
    this.slotSize = shape.kvHeads * shape.maxLen * shape.headDim;
    for (let i = 0; i < shape.layers; i++) {
      this.keys.push(new Float32Array(shape.slots * this.slotSize));
      this.values.push(new Float32Array(shape.slots * this.slotSize));
    }
  }

  get bytes(): number {
    return 2 * this.shape.layers * this.shape.slots * this.slotSize * 4;
  }

  /**
   * Feeds for slots [first, first+count): `past_key_values.i.key/value` and the same
   * tensors as `present.i.key/value` fetches, so the run appends in place.
   */
  tensors(first: number, count: number): { feeds: Record<string, ort.Tensor>; fetches: Record<string, ort.Tensor> } {
    const { kvHeads, maxLen, headDim } = this.shape;
    const dims = [count, kvHeads, maxLen, headDim];
    const from = first * this.slotSize;
    const to = from + count * this.slotSize;
    const feeds: Record<string, ort.Tensor> = {};
    const fetches: Record<string, ort.Tensor> = {};
    for (let i = 0; i < this.shape.layers; i++) {
      const k = new ort.Tensor('float32', this.keys[i]!.subarray(from, to), dims);
      const v = new ort.Tensor('float32', this.values[i]!.subarray(from, to), dims);
      feeds[`past_key_values.${i}.key`] = k;
      feeds[`past_key_values.${i}.value`] = v;
      fetches[`present.${i}.key`] = k;
      fetches[`present.${i}.value`] = v;
    }
    return { feeds, fetches };
  }

  /** Copies the first `length` cached tokens of slot `from` into slot `to` (compaction; n > 1 sharing a prefill). */
  copy(from: number, to: number, length: number): void {
    if (from === to) return;
    const { kvHeads, maxLen, headDim } = this.shape;
    const values = length * headDim;
    for (const buffers of [this.keys, this.values]) {
      for (const buf of buffers) {
        for (let h = 0; h < kvHeads; h++) {
          const src = from * this.slotSize + h * maxLen * headDim;
          const dst = to * this.slotSize + h * maxLen * headDim;
          buf.copyWithin(dst, src, src + values);
        }
      }
    }
  }
}
