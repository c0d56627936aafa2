/**
 * Image bytes from an image_url: a `data:image/...;base64,...` URL, or (only when the operator
 * allows remote images with --allowed-image-hosts) an http(s) URL fetched under the limits of
 * remote-image.ts. Remote URLs are refused by default (no SSRF by default).
 */
import { clip, invalidRequest } from '../api/errors.ts';
import { fetchRemoteImage, type RemoteImagePolicy } from './remote-image.ts';

const DATA_URL = /^data:([a-z0-9.+-]+\/[a-z0-9.+-]+)?((?:;[a-z0-9-]+=[^;,]*)*);base64,/i;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function imageBytesFromUrl(url: string, param: string, maxBytes = Infinity): Uint8Array {
  if (/^https?:/i.test(url)) {
    throw invalidRequest('remote image URLs are disabled on this server; send the image as a base64 data URL', param, 'remote_images_disabled');
  }
  const m = DATA_URL.exec(url);
  if (!m) throw invalidRequest('image_url.url must be a base64 data URL (data:image/png;base64,...)', param, 'invalid_image_url');
  const mime = (m[1] ?? '').toLowerCase();
  if (mime && !mime.startsWith('image/')) throw invalidRequest(`unsupported media type ${clip(mime, 100)}; send an image`, param, 'unsupported_image_type');
  const payload = url.slice(m[0].length).replace(/\s+/g, '');
  if (payload.length === 0 || payload.length % 4 !== 0 || !BASE64.test(payload)) {
    throw invalidRequest('the image data URL is not valid base64', param, 'invalid_base64');
  }
  // Checked before decoding: an oversized payload is never materialised.
  const bytes = (payload.length / 4) * 3 - (payload.endsWith('==') ? 2 : payload.endsWith('=') ? 1 : 0);
  if (bytes > maxBytes) throw invalidRequest(`${param}: image is ${bytes} bytes, the limit is ${maxBytes}`, param, 'image_too_large');
  return Buffer.from(payload, 'base64');
}

/** Data URLs always; http(s) URLs only under a remote policy (null: refused as before). */
export async function imageBytes(url: string, param: string, maxBytes: number, remote: RemoteImagePolicy | null, signal?: AbortSignal): Promise<Uint8Array> {
  if (remote && /^https?:/i.test(url)) return fetchRemoteImage(url, remote, param, signal);
  return imageBytesFromUrl(url, param, maxBytes);
}
