/**
 * Which kernel each phase runs, per weight format: the one place these choices live.
 * The measurements behind them are in docs/performance.md ("Kernels per phase", bench/kernels.ts):
 * - many rows (vision: 1856 patches; prefill: a whole prompt): int8 GEMMs run faster than MatMulNBits
 *   (which dequantizes blocks as it goes) and than fp32. Activations are quantized per row
 *   (int8-row): as fast as DynamicQuantizeMatMul's one scale per tensor, and a row's result no
 *   longer depends on the other rows of its run, so prompt chunks, the prefix cache and batches
 *   give exactly what one sequence alone gives;
 * - one row per sequence (decode): reading the weights is the cost. int4 needs MatMulNBits (4-bit
 *   blocks, int8 activations), so int4 builds a second decoder graph for decode steps over the same
 *   KV cache. At int8 the int8 GEMM also wins at one row (0.79 ms against 1.96 ms for MatMulNBits
 *   8-bit on the LM's MLP up projection; 1.50 against 5.93 ms at 8 rows), so int8 keeps one graph
 *   for both phases, like f32;
 * - attention picks its operators per phase inside every graph (attention.ts).
 * f32 keeps full precision everywhere (the default: users of quantized UI-TARS builds report worse
 * grounding).
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
const INT8_GEMM: LinearKernel = { kind: 'int8-row' };
const INT4: LinearKernel = { kind: 'nbits', bits: 4, blockSize: 32, accuracyLevel: 4 };

export function graphRecipe(format: WeightFormat): GraphRecipe {
  if (format === 'f32') return { vision: F32, prefill: { layers: F32, lmHead: F32, embeddings: 'f32' }, decode: null };
  if (format === 'int8') return { vision: INT8_GEMM, prefill: { layers: INT8_GEMM, lmHead: INT8_GEMM, embeddings: 'int8' }, decode: null };
  // Prefill needs logits for one row per sequence: the lm_head runs the decode kernel there too.
  return {
    vision: INT8_GEMM,
    prefill: { layers: INT8_GEMM, lmHead: INT4, embeddings: 'int8' },
    decode: { layers: INT4, lmHead: INT4, embeddings: 'int8' },
  };
}
