/**
 * Engine settings and their defaults, in one place. The CLI and (later) the server read
 * these; measurements behind the numbers are in docs/.
 */
import type { WeightFormat } from './model/build/layers.ts';
import type { ModelOptions } from './model/load-model.ts';

export const WEIGHT_FORMATS: readonly WeightFormat[] = ['f32', 'int8', 'int4'];

export const ENGINE_DEFAULTS: ModelOptions = {
  // Full precision by default: users of quantized UI-TARS builds report worse grounding.
  format: 'f32',
  maxBatch: 8,
  // 4 GiB of KV cache holds ~73k tokens of UI-TARS-2B (57 KiB per token in float32).
  kvCacheBytes: 4 * 1024 ** 3,
  // One chunk holds a whole agent step's prompt at the seed's image size (786 tokens).
  prefillChunk: 1024,
};

export function parseWeightFormat(value: string): WeightFormat {
  if ((WEIGHT_FORMATS as readonly string[]).includes(value)) return value as WeightFormat;
  throw new Error(`unknown weight format "${value}" (expected one of ${WEIGHT_FORMATS.join(', ')})`);
}
