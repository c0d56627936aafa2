/**
 * Bad input: every case is a 4xx in OpenAI's error shape {"error": {message, type, param, code}},
 * with no stack trace or file path in the message, and the server stays healthy (no 5xx).
 * Too many images is not an error: the oldest are dropped and reported.
 */
import t, { type Test } from 'tap';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { assertOpenAIError, dataUrl, http, imagePart, MODEL, screenshotPng, startTestServer, type HttpResult } from '../helpers/server.ts';

// A small body limit (0.5 MiB) and image cap (2) keep the oversize cases small and fast.
const server = await startTestServer(t, { bodyLimitMiB: 0.5, maxImagesPerRequest: 2, maxModelLen: 1024 });
const chatUrl = `${server.url}/v1/chat/completions`;
const smallPng = await screenshotPng(11, 112, 84);
const good = { model: MODEL, messages: [{ role: 'user', content: 'Click OK.' }], max_tokens: 4 };

const withImage = (url: string) => ({ ...good, messages: [{ role: 'user', content: [imagePart(url), { type: 'text', text: 'Click OK.' }] }] });

/** A valid PNG whose header declares `width` x `height` (the pixel data stays tiny). */
function pngDeclaring(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  // Signature (8), then the IHDR chunk: length (4), "IHDR" (4), width (4), height (4), ..., CRC.
  if (out.toString('latin1', 12, 16) !== 'IHDR') throw new Error('not a PNG');
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

async function healthy(t: Test, what: string): Promise<void> {
  const res = await http(`${server.url}/health`, 'GET');
  t.equal(res.status, 200, `${what}: /health still 200`);
}

const gif = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 0, g: 100, b: 10 } } }).gif().toBuffer();
const huge = pngDeclaring(await sharp({ create: { width: 1, height: 1, channels: 3, background: '#c00' } }).png().toBuffer(), 20000, 20000);

interface Case {
  what: string;
  send: () => Promise<HttpResult>;
  status: number;
  code?: string | null;
  param?: string | null;
  message?: RegExp;
}

const post = (body: unknown, headers?: Record<string, string>) => () => http(chatUrl, 'POST', body, headers);

const cases: Case[] = [
  { what: 'malformed JSON', send: post('{"model": "ui-tars", "messages": [', { 'content-type': 'application/json' }), status: 400, message: /JSON/ },
  { what: 'not JSON at all (text/plain)', send: post('hello', { 'content-type': 'text/plain' }), status: 415 },
  { what: 'missing messages', send: post({ model: MODEL }), status: 400, message: /messages/, param: 'messages' },
  { what: 'missing model', send: post({ messages: good.messages }), status: 400, message: /model/, param: 'model' },
  { what: 'a message without content', send: post({ model: MODEL, messages: [{ role: 'user' }] }), status: 400, param: 'messages[0].content' },
  { what: 'a wrong role in the second message', send: post({ model: MODEL, messages: [good.messages[0], { role: 'robot', content: 'x' }] }), status: 400, param: 'messages[1].role' },
  { what: 'messages is not an array', send: post({ model: MODEL, messages: 'hi' }), status: 400, param: 'messages' },
  { what: 'no messages', send: post({ model: MODEL, messages: [] }), status: 400, param: 'messages' },
  { what: 'unknown role', send: post({ model: MODEL, messages: [{ role: 'tool', content: 'x' }] }), status: 400 },
  { what: 'temperature "hot"', send: post({ ...good, temperature: 'hot' }), status: 400, param: 'temperature' },
  { what: 'max_tokens "10"', send: post({ ...good, max_tokens: '10' }), status: 400, param: 'max_tokens' },
  { what: 'stream "yes"', send: post({ ...good, stream: 'yes' }), status: 400, param: 'stream' },
  { what: 'empty user content', send: post({ ...good, messages: [{ role: 'user', content: '' }] }), status: 400, param: 'messages[0].content' },
  { what: 'empty content array', send: post({ ...good, messages: [{ role: 'user', content: [] }] }), status: 400, param: 'messages[0].content' },
  { what: 'bad base64', send: post(withImage('data:image/png;base64,!!!not*base64!!!')), status: 400, code: 'invalid_base64' },
  { what: 'not a data URL', send: post(withImage('screenshot.png')), status: 400, code: 'invalid_image_url' },
  { what: 'remote image URL', send: post(withImage('http://example.com/a.png')), status: 400, code: 'remote_images_disabled' },
  {
    what: 'non-image bytes as an image',
    send: post(withImage(dataUrl(Buffer.from('this is plain text, certainly not a PNG file'.repeat(4))))),
    status: 400,
    code: 'invalid_image',
  },
  { what: 'truncated PNG', send: post(withImage(dataUrl(smallPng.subarray(0, 120)))), status: 400, code: 'invalid_image' },
  { what: '20000x20000 PNG', send: post(withImage(dataUrl(huge))), status: 400, code: 'image_too_large', message: /exceeds the limit of 40000000 pixels/ },
  { what: 'GIF', send: post(withImage(dataUrl(gif, 'image/gif'))), status: 400, code: 'unsupported_image_type', message: /gif/i },
  { what: 'a PDF data URL', send: post(withImage(`data:application/pdf;base64,${Buffer.from('%PDF-1.4').toString('base64')}`)), status: 400, code: 'unsupported_image_type' },
  { what: 'unknown model', send: post({ ...good, model: 'gpt-4o' }), status: 404, code: 'model_not_found', param: 'model', message: /gpt-4o/ },
  { what: 'n=0', send: post({ ...good, n: 0 }), status: 400, param: 'n' },
  { what: 'max_tokens=-1', send: post({ ...good, max_tokens: -1 }), status: 400, param: 'max_tokens' },
  { what: 'temperature=-1', send: post({ ...good, temperature: -1 }), status: 400, param: 'temperature' },
  { what: 'top_p=0', send: post({ ...good, top_p: 0 }), status: 400, param: 'top_p' },
  { what: 'top_logprobs=30', send: post({ ...good, logprobs: true, top_logprobs: 30 }), status: 400, param: 'top_logprobs' },
  { what: 'top_logprobs without logprobs', send: post({ ...good, top_logprobs: 3 }), status: 400, param: 'top_logprobs' },
  {
    what: 'a body over the size limit',
    send: post({ ...good, padding: 'x'.repeat(700 * 1024) }),
    status: 413,
    code: 'body_too_large',
    message: /0\.5 MiB.*--max-body-mib/,
  },
  {
    what: 'a prompt that cannot fit max_model_len',
    send: post({ ...good, messages: [{ role: 'user', content: 'Click the blue OK button, then scroll down. '.repeat(200) }] }),
    status: 400,
    code: 'context_length_exceeded',
    message: /maximum context length is 1024 tokens/,
  },
  {
    // Each message costs the template's special tokens too: refused before the template is rendered.
    what: 'many one-letter messages that cannot fit max_model_len',
    send: post({ ...good, messages: Array.from({ length: 600 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: 'a' })) }),
    status: 400,
    code: 'context_length_exceeded',
    message: /text alone needs at least/,
  },
  { what: 'unknown route', send: () => http(`${server.url}/v1/completions/nope`, 'GET'), status: 404 },
];

for (const c of cases) {
  t.test(c.what, async (t) => {
    const res = await c.send();
    const err = assertOpenAIError(t, res, c.status, c.what);
    if (c.code !== undefined) t.equal(err.code, c.code, 'code');
    if (c.param !== undefined) t.equal(err.param, c.param, 'param');
    if (c.message) t.match(err.message, c.message, 'message');
    await healthy(t, c.what);
  });
}

t.test('the same bad input on /tokenize is a 4xx too', async (t) => {
  const res = await http(`${server.url}/tokenize`, 'POST', withImage(dataUrl(gif, 'image/gif')));
  const err = assertOpenAIError(t, res, 400, 'GIF on /tokenize');
  t.equal(err.code, 'unsupported_image_type');
  const bad = await http(`${server.url}/tokenize`, 'POST', { messages: 'hi' });
  assertOpenAIError(t, bad, 400, 'wrong type on /tokenize');
});

t.test('/tokenize takes a chat request as it is: sampling fields are not checked there', async (t) => {
  const res = await http(`${server.url}/tokenize`, 'POST', { ...good, top_logprobs: 3, n: 2 });
  t.equal(res.status, 200, res.text);
});

t.test('a known path with another method is 405 with Allow', async (t) => {
  for (const [method, url, allow] of [['DELETE', '/v1/chat/completions', 'POST'], ['PUT', '/v1/models', 'GET, HEAD'], ['GET', '/tokenize', 'POST']] as const) {
    const res = await http(`${server.url}${url}`, method);
    const err = assertOpenAIError(t, res, 405, `${method} ${url}`);
    t.equal(err.code, 'method_not_allowed');
    t.equal(res.headers.allow, allow, `${method} ${url}: Allow ${allow}`);
  }
  assertOpenAIError(t, await http(`${server.url}/v1/nope`, 'DELETE'), 404, 'an unknown path stays 404');
});

t.test('too many images is not an error: the oldest are dropped and reported', async (t) => {
  const pngs = await Promise.all([21, 22, 23, 24].map((seed) => screenshotPng(seed, 56 * (seed - 19), 56)));
  const res = await http(chatUrl, 'POST', { ...good, messages: [{ role: 'user', content: [...pngs.map((p) => imagePart(dataUrl(p))), { type: 'text', text: 'Which is newest?' }] }] });
  t.equal(res.status, 200);
  t.equal(res.headers['x-images-dropped'], '2');
  const body = res.json as { images_dropped: number; images: { original: number[] }[] };
  t.equal(body.images_dropped, 2);
  // Widths 112, 168, 224, 280 in prompt order: the newest two are the ones kept.
  t.same(body.images.map((im) => im.original), [[56 * 4, 56], [56 * 5, 56]]);
});

t.test('after all of that: a good request succeeds and no 5xx was ever answered', async (t) => {
  const res = await http(chatUrl, 'POST', good);
  t.equal(res.status, 200);
  t.equal((res.json as { object: string }).object, 'chat.completion');
  const metrics = (await http(`${server.url}/metrics`, 'GET')).text;
  t.notMatch(metrics, /uitars_requests_total\{status="5\d\d"\}/, 'no 5xx counted');
  t.match(metrics, /uitars_errors_total\{code="invalid_base64"\} 1/, 'errors are counted by code');
  t.match(metrics, /uitars_requests_total\{status="400"\} \d+/);
});
