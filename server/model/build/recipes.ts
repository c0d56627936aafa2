/**
 * Which kernel each phase runs, per weight format: the one place these choices live.
 * The measurements behind them are in docs/performance.md ("Kernels per phase", bench/kernels.ts):
 * - many rows (vision: 1856 patches; prefill: a whole prompt): int8 GEMMs run faster than MatMulNBits
 *   (which dequantizes blocks as it goes) and than fp32. The decoder quantizes activations per row
 *   (int8-row), so a row's result does not depend on the other rows of its run: prompt chunks, the
 *   prefix cache and batches give exactly what one sequence alone gives (an int8 prompt and decode
 *   step ran as fast as with DynamicQuantizeMatMul's one scale per tensor);
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
// The vision encoder runs one image at a time, so one activation scale per tensor (the faster of
// the two) keeps an image's embedding independent of anything else; decoder runs hold rows of
// several sequences or chunks, which need a scale per row.
const INT8_IMAGE: LinearKernel = { kind: 'dqmm' };
const INT8_ROWS: LinearKernel = { kind: 'int8-row' };
const INT4: LinearKernel = { kind: 'nbits', bits: 4, blockSize: 32, accuracyLevel: 4 };

export function graphRecipe(format: WeightFormat): GraphRecipe {
  if (format === 'f32') return { vision: F32, prefill: { layers: F32, lmHead: F32, embeddings: 'f32' }, decode: null };
  if (format === 'int8') return { vision: INT8_IMAGE, prefill: { layers: INT8_ROWS, lmHead: INT8_ROWS, embeddings: 'int8' }, decode: null };
  // Prefill needs logits for one row per sequence: the lm_head runs the decode kernel there too.
  return {
    vision: INT8_IMAGE,
    prefill: { layers: INT8_ROWS, lmHead: INT4, embeddings: 'int8' },
    decode: { layers: INT4, lmHead: INT4, embeddings: 'int8' },
  };
}
