/**
 * Multimodal rotary positions (M-RoPE) of Qwen2-VL, computed on the host.
 *
 * Text tokens get the same position on all three axes (t, h, w). The tokens of an
 * image get (t, row, col) of their merged patch, offset by the position where the
 * image starts; text after an image continues from max(position) + 1. Decode steps
 * continue from the sequence's next position, which differs from its token count
 * by `ropeDelta` (Hugging Face's get_rope_index / rope_deltas).
 */
import type { TextConfig } from '../checkpoint/types.ts';

/** An image's grid in merged tokens (what the LM sees), not in 14x14 patches. */
export interface MergedGrid {
  t: number;
  h: number;
  w: number;
}

export interface MropePositions {
  /** positions[axis][i] for axis 0=t, 1=h, 2=w, one entry per prompt token. */
  positions: [Int32Array, Int32Array, Int32Array];
  /** next position = tokenIndex + ropeDelta for every generated token. */
  ropeDelta: number;
}

/**
 * Positions for a prompt whose image tokens are already expanded: every run of
 * `imagePadId` tokens belongs to the next grid in `grids`, in order.
 */
export function mropePositions(ids: ArrayLike<number>, imagePadId: number, grids: MergedGrid[]): MropePositions {
  const n = ids.length;
  const t = new Int32Array(n);
  const h = new Int32Array(n);
  const w = new Int32Array(n);
  let next = 0; // position of the next text token
  let imageIndex = 0;
  let i = 0;
  while (i < n) {
    if (ids[i] !== imagePadId) {
      t[i] = h[i] = w[i] = next++;
      i++;
      continue;
    }
    const grid = grids[imageIndex++];
    if (!grid) throw new Error(`prompt has more images than grids (${grids.length})`);
    const count = grid.t * grid.h * grid.w;
    if (i + count > n) throw new Error(`image ${imageIndex} needs ${count} tokens, prompt has ${n - i} left`);
    const start = next;
    let maxPos = start;
    for (let k = 0; k < count; k++) {
      const col = k % grid.w;
      const row = Math.floor(k / grid.w) % grid.h;
      const frame = Math.floor(k / (grid.w * grid.h));
      t[i + k] = start + frame;
      h[i + k] = start + row;
      w[i + k] = start + col;
      maxPos = Math.max(maxPos, start + frame, start + row, start + col);
    }
    next = maxPos + 1;
    i += count;
  }
  if (imageIndex !== grids.length) throw new Error(`prompt has ${imageIndex} images, ${grids.length} grids given`);
  return { positions: [t, h, w], ropeDelta: next - n };
}

/** inv_freq of the LM rotary embedding, in float32 as torch computes it. */
export function ropeInverseFrequencies(headDim: number, theta: number): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let j = 0; j < half; j++) {
    const exponent = Math.fround(Math.fround(2 * j) / headDim);
    inv[j] = Math.fround(1 / Math.fround(Math.pow(theta, exponent)));
  }
  return inv;
}

/** For each of the headDim rotary lanes, which axis (0=t, 1=h, 2=w) drives it. */
export function mropeLaneAxes(headDim: number, section: readonly [number, number, number]): Uint8Array {
  const half = headDim / 2;
  if (section[0] + section[1] + section[2] !== half) {
    throw new Error(`mrope_section ${section.join(',')} must sum to head_dim/2 = ${half}`);
  }
  const axes = new Uint8Array(headDim);
  let lane = 0;
  for (let copy = 0; copy < 2; copy++) {
    for (let axis = 0; axis < 3; axis++) {
      for (let k = 0; k < section[axis]!; k++) axes[lane++] = axis;
    }
  }
  return axes;
}

/**
 * Writes cos/sin rows [count, headDim] for tokens whose 3-axis positions are given,
 * into `cos`/`sin` starting at row `rowOffset`. Lane d uses frequency inv[d mod half]
 * and the position of the axis that owns lane d (the emb = cat(freqs, freqs) layout).
 */
export class MropeTables {
  private readonly inv: Float32Array;
  private readonly axes: Uint8Array;
  readonly headDim: number;

  constructor(text: Pick<TextConfig, 'headDim' | 'ropeTheta' | 'mropeSection'>) {
    this.headDim = text.headDim;
    this.inv = ropeInverseFrequencies(text.headDim, text.ropeTheta);
    this.axes = mropeLaneAxes(text.headDim, text.mropeSection);
  }

  fill(
    cos: Float32Array,
    sin: Float32Array,
    rowOffset: number,
    positions: readonly [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>],
    from: number,
    count: number,
  ): void {
    const d = this.headDim;
    const half = d / 2;
    for (let r = 0; r < count; r++) {
      const base = (rowOffset + r) * d;
      for (let lane = 0; lane < d; lane++) {
        const pos = positions[this.axes[lane]!]![from + r]!;
        const angle = Math.fround(Math.fround(pos) * this.inv[lane % half]!);
        cos[base + lane] = Math.cos(angle);
        sin[base + lane] = Math.sin(angle);
      }
    }
  }

  /** Rows for text-only positions start, start+1, ... (decode steps, text after the prompt). */
  fillText(cos: Float32Array, sin: Float32Array, rowOffset: number, start: number, count: number): void {
    const d = this.headDim;
    const half = d / 2;
    for (let r = 0; r < count; r++) {
      const base = (rowOffset + r) * d;
      const pos = Math.fround(start + r);
      for (let lane = 0; lane < d; lane++) {
        const angle = Math.fround(pos * this.inv[lane % half]!);
        cos[base + lane] = Math.cos(angle);
        sin[base + lane] = Math.sin(angle);
      }
    }
  }
}
