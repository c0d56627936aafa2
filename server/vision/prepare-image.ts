/**
 * Encoded image bytes -> what the vision tower takes: decode (sharp, with limits),
 * choose the size (resize policy), resize as Hugging Face does (PIL bicubic), patchify.
 */
import crypto from 'node:crypto';
import { ByteLru } from '../common/byte-lru.ts';
import type { PreprocessorConfig } from '../model/checkpoint/types.ts';
import { preprocessImage, type PreprocessedImage } from '../model/qwen2-vl/image-processor.ts';
import { decodeImage, type DecodeLimits } from './decode.ts';
import { resolveResize, type ResizePolicy } from './smart-resize.ts';

export interface PreparedImage extends PreprocessedImage {
  originalWidth: number;
  originalHeight: number;
}

/** The checkpoint's own policy: smart_resize within preprocessor_config's pixel bounds. */
export function checkpointResizePolicy(cfg: PreprocessorConfig): ResizePolicy {
  return { kind: 'smart', minPixels: cfg.minPixels, maxPixels: cfg.maxPixels };
}

export async function prepareImage(
  bytes: Uint8Array,
  policy: ResizePolicy,
  cfg: PreprocessorConfig,
  limits: DecodeLimits = {},
): Promise<PreparedImage> {
  const decoded = await decodeImage(bytes, limits);
  const { width, height } = resolveResize(decoded.width, decoded.height, policy);
  const rgb = { data: decoded.data, width: decoded.width, height: decoded.height };
  return { ...preprocessImage(rgb, width, height, cfg), originalWidth: decoded.width, originalHeight: decoded.height };
}

/**
 * Prepared images by encoded bytes and resize policy. An agent re-sends every earlier screenshot
 * at each step; decoding and resizing them again cost ~100-250 ms each on the HTTP thread.
 */
export class PreparedImageCache extends ByteLru<PreparedImage> {
  prepare(bytes: Uint8Array, policy: ResizePolicy, cfg: PreprocessorConfig, limits: DecodeLimits = {}): Promise<PreparedImage> {
    const key = crypto.createHash('sha256').update(JSON.stringify(policy)).update(bytes).digest('hex');
    return this.getOrCompute(key, () => prepareImage(bytes, policy, cfg, limits), (im) => im.patches.byteLength);
  }
}
