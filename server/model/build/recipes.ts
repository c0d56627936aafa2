/**
 * Which kernel each phase runs, per weight format: the one place these choices live.
 * The measurements behind them are in docs/performance.md (bench/kernels.ts on this project's
 * 2-core AMX Xeon):
 * - many rows (vision: 1856 patches; prefill: a whole prompt): int8 DynamicQuantizeMatMul runs
 *   int8 GEMMs several times faster than MatMulNBits (which dequantizes blocks as it goes);
 * - one row per sequence (decode): reading the weights is the cost, so the fewest bytes win:
 *   MatMulNBits 4-bit with int8 activations;
 * - so a quantized format builds two decoder graphs over the same KV cache, one per phase
 *   (attention picks its operators per phase inside every graph: attention.ts).
 * f32 keeps one graph and full-precision everything (the default: users of quantized UI-TARS builds
 * report worse grounding).
 */
import type { LinearKernel, WeightFormat } from './layers.ts';

export interface DecoderKernels {
  /** The decoder layers' linear layers. */
  layers: LinearKernel;
  /** The output projection (tied to the embeddings in UI-TARS-2B). */
  lmHead: LinearKernel;
  /** Embedding table: float32, or int8 with one scale per row (read one row per token). */
  embeddings: 'f32' | 'int8';
}

export interface GraphRecipe {
  vision: LinearKernel;
  /** Decoder graph for prompt prefill. */
  prefill: DecoderKernels;
  /** Decoder graph for decode steps; null: the prefill graph serves both phases. */
  decode: DecoderKernels | null;
}

const F32: LinearKernel = { kind: 'f32' };
const INT8_GEMM: LinearKernel = { kind: 'dqmm' };
const nbits = (bits: 4 | 8): LinearKernel => ({ kind: 'nbits', bits, blockSize: 32, accuracyLevel: 4 });

export function graphRecipe(format: WeightFormat): GraphRecipe {
  if (format === 'f32') return { vision: F32, prefill: { layers: F32, lmHead: F32, embeddings: 'f32' }, decode: null };
  const bits = format === 'int8' ? 8 : 4;
  // Prefill needs logits for one row per sequence: the lm_head runs the decode kernel there too.
  return {
    vision: INT8_GEMM,
    prefill: { layers: INT8_GEMM, lmHead: nbits(bits), embeddings: 'int8' },
    decode: { layers: nbits(bits), lmHead: nbits(bits), embeddings: 'int8' },
  };
}
