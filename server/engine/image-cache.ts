/**
 * Vision-encoder outputs by image content. An agent re-sends every earlier screenshot at each
 * step; with this cache only the new one is encoded.
 *
 * The key hashes the model input itself: the patch tensor (the pixels after resize and
 * normalisation) and its grid. Two requests with identical text but different screenshots never
 * share an entry, and the same screenshot under another resize policy is another entry.
 */
import crypto from 'node:crypto';
import type { ImageInput } from './request.ts';
import { ByteLru } from '../common/byte-lru.ts';

export function imageKey(image: ImageInput): string {
  const h = crypto.createHash('sha256');
  h.update(Int32Array.from(image.gridThw));
  h.update(new Uint8Array(image.patches.buffer, image.patches.byteOffset, image.patches.byteLength));
  return h.digest('hex');
}

export class ImageEmbeddingCache extends ByteLru<Float32Array> {
  getOrEncode(key: string, encode: () => Promise<Float32Array>): Promise<Float32Array> {
    return this.getOrCompute(key, encode, (e) => e.byteLength);
  }
}
