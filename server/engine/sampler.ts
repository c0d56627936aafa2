/**
 * Next-token choice with vLLM's sampling semantics:
 * - repetition_penalty over prompt and output tokens (divide positive logits, multiply negative);
 * - frequency_penalty / presence_penalty over output tokens only (OpenAI's definition);
 * - temperature below 1e-5 means greedy; otherwise scale, then top_k, top_p, min_p, sample.
 * Reported logprobs are those of the model's raw distribution (before penalties and
 * temperature), which is what parity checks against transformers compare.
 */
import { Rng } from '../common/prng.ts';

export interface SamplingParams {
  temperature: number;
  topP: number;
  topK: number; // 0 or -1: off
  minP: number;
  frequencyPenalty: number;
  presencePenalty: number;
  repetitionPenalty: number;
  seed?: number;
}

export const GREEDY: SamplingParams = {
  temperature: 0,
  topP: 1,
  topK: 0,
  minP: 0,
  frequencyPenalty: 0,
  presencePenalty: 0,
  repetitionPenalty: 1,
};

const SAMPLING_EPS = 1e-5;

export interface TokenLogprob {
  token: number;
  logprob: number;
}

export interface SampledToken extends TokenLogprob {
  top: TokenLogprob[]; // highest raw logprobs, best first (empty unless asked)
}

/** Per-sequence sampler state: its RNG and the token counts the penalties need. */
export class SequenceSampler {
  private readonly rng: Rng;
  private readonly outputCounts = new Map<number, number>();
  private readonly seen: Set<number>;

  constructor(
    readonly params: SamplingParams,
    promptIds: readonly number[],
  ) {
    this.rng = new Rng(params.seed ?? (Math.random() * 2 ** 32) >>> 0);
    this.seen = params.repetitionPenalty !== 1 ? new Set(promptIds) : new Set();
  }

  /** Picks the next token from `logits` (not modified) and records it. */
  sample(logits: Float32Array, topLogprobs: number): SampledToken {
    const token = this.choose(logits);
    const lse = logSumExp(logits);
    const result: SampledToken = { token, logprob: logits[token]! - lse, top: [] };
    if (topLogprobs > 0) {
      result.top = topIndices(logits, topLogprobs).map((t) => ({ token: t, logprob: logits[t]! - lse }));
    }
    this.outputCounts.set(token, (this.outputCounts.get(token) ?? 0) + 1);
    if (this.params.repetitionPenalty !== 1) this.seen.add(token);
    return result;
  }

  private choose(raw: Float32Array): number {
    const p = this.params;
    const needsCopy = p.repetitionPenalty !== 1 || p.frequencyPenalty !== 0 || p.presencePenalty !== 0;
    const logits = needsCopy ? Float32Array.from(raw) : raw;
    if (p.repetitionPenalty !== 1) {
      for (const id of this.seen) {
        const v = logits[id]!;
        logits[id] = v > 0 ? v / p.repetitionPenalty : v * p.repetitionPenalty;
      }
    }
    if (p.frequencyPenalty !== 0 || p.presencePenalty !== 0) {
      for (const [id, count] of this.outputCounts) {
        logits[id] = logits[id]! - p.frequencyPenalty * count - p.presencePenalty;
      }
    }
    if (p.temperature < SAMPLING_EPS) return argmax(logits);
    return this.sampleFiltered(logits);
  }

  private sampleFiltered(logits: Float32Array): number {
    const p = this.params;
    const invT = 1 / p.temperature;
    const max = maxOf(logits);
    // Candidates: tokens whose probability is not negligible, optionally the top k only.
    // exp(-40) relative to the best token cannot change a sample drawn with a float64 RNG.
    let candidates: number[];
    if (p.topK > 0 && p.topK < logits.length) {
      candidates = topIndices(logits, p.topK);
    } else {
      const floor = max - 40 * p.temperature;
      candidates = [];
      for (let i = 0; i < logits.length; i++) if (logits[i]! >= floor) candidates.push(i);
      candidates.sort((a, b) => logits[b]! - logits[a]! || a - b);
    }
    const probs = candidates.map((i) => Math.exp((logits[i]! - max) * invT));
    let total = probs.reduce((a, b) => a + b, 0);
    let keep = candidates.length;
    if (p.topP < 1) {
      // Keep the smallest prefix whose mass reaches top_p (always at least one token).
      let mass = 0;
      for (let k = 0; k < candidates.length; k++) {
        mass += probs[k]! / total;
        if (mass >= p.topP) {
          keep = k + 1;
          break;
        }
      }
    }
    if (p.minP > 0) {
      const threshold = p.minP * (probs[0]! / total);
      let k = 1;
      while (k < keep && probs[k]! / total >= threshold) k++;
      keep = k;
    }
    total = 0;
    for (let k = 0; k < keep; k++) total += probs[k]!;
    let r = this.rng.nextFloat() * total;
    for (let k = 0; k < keep; k++) {
      r -= probs[k]!;
      if (r < 0) return candidates[k]!;
    }
    return candidates[keep - 1]!;
  }
}

export function argmax(values: Float32Array): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < values.length; i++) {
    if (values[i]! > bestValue) {
      bestValue = values[i]!;
      best = i;
    }
  }
  return best;
}

function maxOf(values: Float32Array): number {
  let m = -Infinity;
  for (let i = 0; i < values.length; i++) if (values[i]! > m) m = values[i]!;
  return m;
}

export function logSumExp(values: Float32Array): number {
  const m = maxOf(values);
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += Math.exp(values[i]! - m);
  return m + Math.log(sum);
}

/** Indices of the k largest values, largest first (ties: lower index first). */
export function topIndices(values: Float32Array, k: number): number[] {
  const top: number[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (top.length === k && v <= values[top[k - 1]!]!) continue;
    let pos = top.length < k ? top.length : k - 1;
    while (pos > 0 && values[top[pos - 1]!]! < v) pos--;
    top.splice(pos, 0, i);
    if (top.length > k) top.pop();
  }
  return top;
}
