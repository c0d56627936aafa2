/** Image bytes from a `data:image/...;base64,...` URL. Remote URLs are refused (no SSRF by default). */
import { invalidRequest } from '../api/errors.ts';

const DATA_URL = /^data:([a-z0-9.+-]+\/[a-z0-9.+-]+)?((?:;[a-z0-9-]+=[^;,]*)*);base64,/i;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function imageBytesFromUrl(url: string, param: string): Uint8Array {
  if (/^https?:/i.test(url)) {
    throw invalidRequest('remote image URLs are disabled on this server; send the image as a base64 data URL', param, 'remote_images_disabled');
  }
  const m = DATA_URL.exec(url);
  if (!m) throw invalidRequest('image_url.url must be a base64 data URL (data:image/png;base64,...)', param, 'invalid_image_url');
  const mime = (m[1] ?? '').toLowerCase();
  if (mime && !mime.startsWith('image/')) throw invalidRequest(`unsupported media type ${mime}; send an image`, param, 'unsupported_image_type');
  const payload = url.slice(m[0].length).replace(/\s+/g, '');
  if (payload.length === 0 || payload.length % 4 !== 0 || !BASE64.test(payload)) {
    throw invalidRequest('the image data URL is not valid base64', param, 'invalid_base64');
  }
  return Buffer.from(payload, 'base64');
}
