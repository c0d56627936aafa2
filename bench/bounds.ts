/**
 * What the machine allows: the seconds a step's work takes at 100% of the limits roofline.ts measures,
 * from the model's shapes. The bench prints each figure next to these.
 */
import type { Qwen2VLConfig } from '../server/model/checkpoint/types.ts';
import type { Roofline } from './roofline.ts';

/**
 * Weight bytes a decode step reads per parameter (recipes.ts): int8 DynamicQuantizeMatMul has one scale
 * per output column (negligible), int4 MatMulNBits one float scale per 32 values.
 */
const BYTES_PER_PARAM: Record<string, number> = { f32: 4, int8: 1, int4: 0.5 + 4 / 32 };

/** The work of one step, from the config: LM layer and lm_head parameters, vision FLOPs (linear and attention). */
export function work(cfg: Qwen2VLConfig, imageTokens: number) {
  const t = cfg.text;
  const kvDim = t.numKeyValueHeads * t.headDim;
  const lmLayerParams = t.numHiddenLayers * (2 * t.hiddenSize * t.hiddenSize + 2 * t.hiddenSize * kvDim + 3 * t.hiddenSize * t.intermediateSize);
  const v = cfg.vision;
  const patches = imageTokens * v.spatialMergeSize ** 2;
  const merged = v.embedDim * v.spatialMergeSize ** 2;
  const visionLinearFlop =
    2 * v.depth * (4 * v.embedDim * v.embedDim + 2 * v.embedDim * v.embedDim * v.mlpRatio) * patches +
    2 * (merged * merged + merged * v.outHiddenSize) * imageTokens +
    2 * 1176 * v.embedDim * patches;
  const visionAttentionFlop = v.depth * 2 * 2 * patches * patches * v.embedDim; // QK^T and PV, fp32 in every format
  return {
    lmLayerParams,
    lmHeadParams: t.vocabSize * t.hiddenSize,
    visionLinearFlop,
    visionAttentionFlop,
    /** LM attention FLOPs per (query, key) pair: QK^T and PV over every head of every layer. */
    attentionFlopPerPair: 2 * 2 * t.numHiddenLayers * t.numAttentionHeads * t.headDim,
    /** float32 K and V of one token in every layer. */
    kvBytesPerToken: 2 * t.numHiddenLayers * kvDim * 4,
  };
}

/** One request: `images` images encoded, `newTokens` prefilled after `context` cached ones, `generated` decoded. */
export interface StepShape {
  images: number;
  newTokens: number;
  context: number;
  generated: number;
}

/**
 * Seconds a step takes at 100% of the measured limits: compute (vision, prefill linear layers at the
 * format's GEMM rate, attention at the fp32 rate) and decode (weights plus each sequence's KV cache read
 * per token, at DRAM bandwidth; `sequences` decoding together read the weights once).
 */
export function stepBound(cfg: Qwen2VLConfig, roof: Roofline, format: string, imageTokens: number, s: StepShape, sequences = 1): { compute: number; decode: number } {
  const w = work(cfg, imageTokens);
  const gemm = (format === 'f32' ? roof.f32Gflops : roof.int8Gops) * 1e9;
  const fp32 = roof.f32Gflops * 1e9;
  const vision = s.images * (w.visionLinearFlop / gemm + w.visionAttentionFlop / fp32);
  const prefill = (2 * w.lmLayerParams * s.newTokens) / gemm + (w.attentionFlopPerPair * s.newTokens * (s.context + (s.newTokens + 1) / 2)) / fp32;
  const meanContext = s.context + s.newTokens + s.generated / 2;
  const perToken = decodeWeightBytes(w, format) + sequences * w.kvBytesPerToken * meanContext;
  return { compute: vision + prefill, decode: ((s.generated - 1) * perToken) / (roof.bandwidthGBs * 1e9) };
}

export const decodeWeightBytes = (w: ReturnType<typeof work>, format: string): number => (w.lmLayerParams + w.lmHeadParams) * BYTES_PER_PARAM[format]!;
