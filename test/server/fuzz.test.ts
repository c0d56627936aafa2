/**
 * Fuzz: a few hundred malformed or hostile requests, generated from tables of case generators
 * (bad JSON, deep nesting, wrong types and ranges for every field, huge strings, bad and huge
 * base64, image bombs, animated, 16-bit and truncated images made with sharp, thousands of
 * images, max_tokens beyond the context, invalid UTF-8, unknown roles, conflicting parameters,
 * malformed HTTP). Every refused case is a 4xx in OpenAI's error shape with no stack trace or
 * file path in it; the few hostile-but-valid cases (the documented accepted ones) are a 200.
 * No case is a 5xx. Afterwards the server is healthy, a normal completion succeeds, its log has
 * no error line, and its resident memory is back near where it started.
 *
 * The server runs in its own process (server/main.ts), so its memory is its own.
 */
import t, { type Test } from 'tap';
import net from 'node:net';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { assertOpenAIError, dataUrl, http, imagePart, metric, MODEL, screenshotPng, spawnServer, type HttpResult } from '../helpers/server.ts';

const MAX_MODEL_LEN = 512;
const MAX_IMAGES = 4;
const MAX_IMAGE_BYTES = 1024 * 1024;
const MAX_IMAGE_PIXELS = 4_000_000;
const BODY_MIB = 4;
const SLOTS = 2;

const server = await spawnServer(t, [
  '--max-model-len', String(MAX_MODEL_LEN),
  '--max-num-seqs', String(SLOTS),
  '--queue-size', '8',
  '--max-images', String(MAX_IMAGES),
  '--max-image-bytes', String(MAX_IMAGE_BYTES),
  '--max-image-pixels', String(MAX_IMAGE_PIXELS),
  '--max-body-mib', String(BODY_MIB),
  '--drain-seconds', '1',
]);
const CHAT = `${server.url}/v1/chat/completions`;
const TOKENIZE = `${server.url}/tokenize`;

// ---------------------------------------------------------------------------------------------
// Building blocks

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Body = { [k: string]: Json };

const good = (): Body => ({ model: MODEL, messages: [{ role: 'user', content: 'Click OK.' }], max_tokens: 1, temperature: 0 });
const withContent = (content: Json, extra: Body = {}): Body => ({ ...good(), ...extra, messages: [{ role: 'user', content }] });
const withImages = (urls: string[], extra: Body = {}): Body =>
  withContent([...urls.map((u) => imagePart(u) as unknown as Json), { type: 'text', text: 'What is on the screen?' }], extra);

const JSON_HEADERS = { 'content-type': 'application/json' };
const post = (url: string, body: Body | string | Buffer, headers: Record<string, string> = JSON_HEADERS) => () => http(url, 'POST', body, headers);

/**
 * Sends raw bytes on a fresh connection, then `more` pieces one at a time for as long as no
 * answer has come; reads the first response (the server closes the connection).
 */
function rawHttp(bytes: string | Buffer, more: string[] = []): Promise<HttpResult> {
  return new Promise((resolve) => {
    const sock = net.connect(server.port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => sock.end(), 5000);
    sock.on('data', (d: Buffer) => chunks.push(d));
    // The server may answer and close before all of a large request is written (EPIPE, reset):
    // what it answered is still read.
    sock.on('error', () => {});
    sock.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('utf8');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      const head = text.slice(0, Math.max(0, text.indexOf('\r\n\r\n')));
      const payload = text.slice(text.indexOf('\r\n\r\n') + 4);
      const headers: Record<string, string> = {};
      for (const line of head.split('\r\n').slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      let json: unknown = null;
      try {
        json = JSON.parse(payload);
      } catch {
        // not JSON: the assertion reports it
      }
      resolve({ status, headers, text: payload, json });
    });
    sock.write(bytes);
    void (async () => {
      for (const piece of more) {
        if (chunks.length > 0 || sock.destroyed) return;
        if (!sock.write(piece)) await new Promise((r) => sock.once('drain', r));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
  });
}

const goodJson = JSON.stringify(good());
const rawPost = (headers: string, body = goodJson) =>
  `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers}\r\n${body}`;

/** A copy of `png` whose IHDR declares width x height (the pixel data stays tiny). */
function pngDeclaring(png: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

/** A copy of `jpeg` whose first SOF marker declares width x height. */
function jpegDeclaring(jpeg: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  for (let i = 2; i < out.length - 9; i++) {
    if (out[i] === 0xff && out[i + 1]! >= 0xc0 && out[i + 1]! <= 0xc2) {
      out.writeUInt16BE(height, i + 5);
      out.writeUInt16BE(width, i + 7);
      return out;
    }
  }
  throw new Error('no SOF marker');
}

/** A copy of an extended (VP8X) WebP whose canvas is width x height. */
function webpCanvas(webp: Buffer, width: number, height: number): Buffer {
  if (webp.toString('latin1', 12, 16) !== 'VP8X') throw new Error('not an extended WebP');
  const out = Buffer.from(webp);
  out.writeUIntLE(width - 1, 24, 3);
  out.writeUIntLE(height - 1, 27, 3);
  return out;
}

function frames(w: number, h: number, count: number): Buffer {
  const raw = Buffer.alloc(w * h * count * 4);
  for (let f = 0; f < count; f++) {
    for (let i = 0; i < w * h; i++) {
      const o = (f * w * h + i) * 4;
      raw[o] = f * 70;
      raw[o + 1] = (i * 7) & 255;
      raw[o + 2] = 90;
      raw[o + 3] = 255;
    }
  }
  return raw;
}

const png = await screenshotPng(5, 112, 84);
const tinyPng = await screenshotPng(6, 56, 56);
const solid = (w: number, h: number, channels: 3 | 4 = 3) => sharp({ create: { width: w, height: h, channels, background: { r: 20, g: 120, b: 200, alpha: 0.5 } } });
const jpeg = await solid(96, 64).jpeg().toBuffer();
const animatedWebp = await sharp(frames(48, 32, 3), { raw: { width: 48, height: 96, channels: 4, pageHeight: 32 } }).webp({ loop: 0, delay: [80, 80, 80] }).toBuffer();
const animatedGif = await sharp(frames(48, 32, 3), { raw: { width: 48, height: 96, channels: 4, pageHeight: 32 } }).gif({ loop: 0 }).toBuffer();
const png16 = await sharp(Buffer.alloc(64 * 48 * 3, 90), { raw: { width: 64, height: 48, channels: 3 } }).toColourspace('rgb16').png().toBuffer();
const grey16 = await sharp(Buffer.alloc(64 * 48, 90), { raw: { width: 64, height: 48, channels: 1 } }).toColourspace('grey16').png().toBuffer();
// A real decompression bomb: 9 megapixels of black in a few KB, over the 4-megapixel limit.
const realBomb = await solid(3000, 3000).png({ compressionLevel: 9 }).toBuffer();
const onePixel = await solid(1, 1).png().toBuffer();

// ---------------------------------------------------------------------------------------------
// The cases

interface Case {
  group: string;
  what: string;
  send: () => Promise<HttpResult>;
  /** The expected status: a 4xx (refused) or 200 (hostile but valid, documented as accepted). */
  status: number;
  /** Expected error code(s) for a refusal. */
  code?: string | null | readonly string[];
  param?: string | null;
  /** The error's param names this field or something inside it (stop.0, mm_processor_kwargs.size). */
  paramPrefix?: string;
  /** Extra checks on an accepted answer. */
  check?: (t: Test, res: HttpResult) => void;
}

const cases: Case[] = [];
const add = (group: string, c: Omit<Case, 'group'>) => cases.push({ group, ...c });

// 1. Bad JSON: every proper prefix of a JSON object is invalid, plus a table of syntax errors.
for (const at of [0, 1, 2, 5, 10, 20, 30, 40, 50, goodJson.length - 2, goodJson.length - 1]) {
  add('bad JSON', { what: `truncated at byte ${at}`, send: post(CHAT, goodJson.slice(0, at) || ' '), status: 400, code: 'invalid_json' });
}
for (const [what, text] of [
  ['trailing garbage', `${goodJson}x`],
  ['two objects', `${goodJson}${goodJson}`],
  ['extra closing brace', `${goodJson}}`],
  ['single quotes', goodJson.replace(/"/g, "'")],
  ['unquoted keys', goodJson.replace(/"(\w+)":/g, '$1:')],
  ['trailing comma', goodJson.replace(/}$/, ',}')],
  ['a comment', `/* hi */${goodJson}`],
  ['NaN literal', goodJson.replace('"temperature":0', '"temperature":NaN')],
  ['Infinity literal', goodJson.replace('"temperature":0', '"temperature":Infinity')],
  ['hex number', goodJson.replace('"max_tokens":1', '"max_tokens":0x10')],
  ['raw newline in a string', goodJson.replace('Click OK.', 'Click\nOK.')],
  ['raw tab in a string', goodJson.replace('Click OK.', 'Click\tOK.')],
  ['invalid escape \\x', goodJson.replace('Click OK.', 'Click \\x41')],
  ['short \\u escape', goodJson.replace('Click OK.', 'Click \\u12')],
  ['only whitespace', '   \n\t  '],
  ['a lone string', '"hello'],
  ['__proto__ key', goodJson.replace('{', '{"__proto__":{"polluted":true},')],
  ['constructor.prototype key', goodJson.replace('{', '{"constructor":{"prototype":{"polluted":true}},')],
] as const) {
  add('bad JSON', { what, send: post(CHAT, text), status: 400, code: 'invalid_json' });
}
add('bad JSON', { what: 'a byte order mark before the JSON (skipped, as RFC 8259 allows: accepted)', send: post(CHAT, `\ufeff${goodJson}`), status: 200 });
add('bad JSON', { what: 'empty body', send: post(CHAT, ''), status: 400, code: 'invalid_json' });
for (const [what, text] of [['null', 'null'], ['an array', '[]'], ['a number', '42'], ['a string', '"hi"'], ['true', 'true']] as const) {
  add('bad JSON', { what: `the body is ${what}`, send: post(CHAT, text), status: 400 });
}

// 2. Deep nesting, in every known field.
const nested = (depth: number, leaf: string) => `${'['.repeat(depth)}${leaf}${']'.repeat(depth)}`;
const nestedObject = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
for (const depth of [64, 5000, 200_000]) {
  for (const [field, template] of [
    ['messages', `{"model":"${MODEL}","messages":@}`],
    ['content', `{"model":"${MODEL}","messages":[{"role":"user","content":@}]}`],
    ['a content part', `{"model":"${MODEL}","messages":[{"role":"user","content":[@]}]}`],
    ['model', `{"model":@,"messages":[{"role":"user","content":"x"}]}`],
    ['temperature', `{"model":"${MODEL}","messages":[{"role":"user","content":"x"}],"temperature":@}`],
    ['stop', `{"model":"${MODEL}","messages":[{"role":"user","content":"x"}],"stop":@}`],
    ['mm_processor_kwargs', `{"model":"${MODEL}","messages":[{"role":"user","content":"x"}],"mm_processor_kwargs":{"size":@}}`],
  ] as const) {
    add('deep nesting', { what: `${field} nested ${depth} deep`, send: post(CHAT, template.replace('@', nested(depth, '"x"'))), status: 400 });
  }
  add('deep nesting', {
    what: `an object nested ${depth} deep as a message`,
    send: post(CHAT, `{"model":"${MODEL}","messages":[${nestedObject(depth)}]}`),
    status: 400,
  });
}

// 3. Wrong types and out-of-range values, field by field.
const fieldKinds: [string, 'string' | 'integer' | 'number' | 'boolean' | 'object' | 'stop'][] = [
  ['model', 'string'], ['max_tokens', 'integer'], ['max_completion_tokens', 'integer'], ['temperature', 'number'], ['top_p', 'number'],
  ['top_k', 'integer'], ['min_p', 'number'], ['frequency_penalty', 'number'], ['presence_penalty', 'number'], ['repetition_penalty', 'number'],
  ['seed', 'integer'], ['stop', 'stop'], ['n', 'integer'], ['stream', 'boolean'], ['stream_options', 'object'], ['logprobs', 'boolean'],
  ['top_logprobs', 'integer'], ['skip_special_tokens', 'boolean'], ['user', 'string'], ['mm_processor_kwargs', 'object'],
];
const wrongValues: Record<string, Json[]> = {
  string: [42, true, ['x'], { x: 1 }],
  integer: ['5', true, [5], { n: 5 }, 2.5],
  number: ['0.5', false, [0.5], { v: 1 }],
  boolean: ['true', 1, [true], { b: true }],
  object: ['yes', 3, [1, 2], true],
  stop: [5, true, { s: 'x' }, [1, 2]],
};
for (const [field, kind] of fieldKinds) {
  for (const value of wrongValues[kind]!) {
    add('wrong type', { what: `${field} = ${JSON.stringify(value)}`, send: post(CHAT, { ...good(), [field]: value }), status: 400, paramPrefix: field });
  }
}
add('wrong type', { what: 'model = null', send: post(CHAT, { ...good(), model: null }), status: 400, param: 'model' });
for (const [field, value] of [
  ['max_tokens', 0], ['max_tokens', -1], ['max_completion_tokens', 0], ['temperature', -0.1], ['top_p', 0], ['top_p', 1.5], ['top_k', -2],
  ['min_p', -0.5], ['min_p', 1.5], ['frequency_penalty', 2.5], ['frequency_penalty', -3], ['presence_penalty', 9], ['repetition_penalty', 0],
  ['repetition_penalty', -1], ['n', 0], ['n', 17], ['top_logprobs', -1], ['stop', Array.from({ length: 17 }, (_, i) => `s${i}`)],
] as const) {
  add('out of range', { what: `${field} = ${JSON.stringify(value).slice(0, 40)}`, send: post(CHAT, { ...good(), [field]: value as Json }), status: 400, param: field });
}
for (const [what, kwargs] of [
  ['min_pixels below 784', { min_pixels: 10 }],
  ['max_pixels a string', { max_pixels: '1000' }],
  ['size not WxH', { size: 'big' }],
  ['size with a negative side', { size: '-5x10' }],
  ['size with spaces', { size: '800 x 450' }],
] as const) {
  add('out of range', { what: `mm_processor_kwargs ${what}`, send: post(CHAT, { ...good(), mm_processor_kwargs: kwargs as Json }), status: 400 });
}

// 4. Messages and content parts of the wrong shape.
for (const [what, messages] of [
  ['a message that is a string', ['hello']],
  ['a message that is null', [null]],
  ['a message that is an array', [['user', 'hi']]],
  ['a message without role', [{ content: 'hi' }]],
  ['a message without content', [{ role: 'user' }]],
  ['content a number', [{ role: 'user', content: 42 }]],
  ['content an object', [{ role: 'user', content: { text: 'hi' } }]],
  ['content true', [{ role: 'user', content: true }]],
  ['a part without type', [{ role: 'user', content: [{ text: 'hi' }] }]],
  ['a part of unknown type', [{ role: 'user', content: [{ type: 'video', video: 'x' }] }]],
  ['an input_audio part', [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }]],
  ['a text part without text', [{ role: 'user', content: [{ type: 'text' }] }]],
  ['a text part with numeric text', [{ role: 'user', content: [{ type: 'text', text: 5 }] }]],
  ['an image part without image_url', [{ role: 'user', content: [{ type: 'image_url' }] }]],
  ['image_url a string', [{ role: 'user', content: [{ type: 'image_url', image_url: 'data:image/png;base64,AAAA' }] }]],
  ['image_url without url', [{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }]],
  ['image_url.url a number', [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 5 } }] }]],
  ['image_url.detail a number', [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(tinyPng), detail: 3 } }] }]],
  ['name a number', [{ role: 'user', content: 'hi', name: 7 }]],
  ['empty user content', [{ role: 'user', content: '' }]],
  ['null user content', [{ role: 'user', content: null }]],
  ['empty system content', [{ role: 'system', content: [] }]],
  ['no messages', []],
] as const) {
  add('message shape', { what, send: post(CHAT, { ...good(), messages: messages as unknown as Json }), status: 400 });
  add('message shape', { what: `${what} (on /tokenize)`, send: post(TOKENIZE, { messages: messages as unknown as Json }), status: 400 });
}
add('message shape', { what: 'messages an object', send: post(CHAT, { ...good(), messages: { role: 'user', content: 'hi' } }), status: 400, param: 'messages' });

// 5. Unknown roles.
for (const role of ['tool', 'function', 'developer', 'System', 'USER', '', ' user', 'user\u0000', 'assistant ', 'root', null, 1, ['user'], { r: 'user' }] as Json[]) {
  add('unknown role', { what: `role ${JSON.stringify(role)}`, send: post(CHAT, { ...good(), messages: [{ role, content: 'hi' }] }), status: 400 });
}

// 6. Huge strings.
add('huge string', { what: 'a 1 MB model name', send: post(CHAT, { ...good(), model: 'm'.repeat(1 << 20) }), status: 404, code: 'model_not_found',
  check: (t, res) => t.ok(res.text.length < 2000, 'the unknown model name is not echoed back whole') });
add('huge string', { what: 'a 3 MB prompt of spaces (over the context; never tokenised)', send: post(CHAT, withContent(' '.repeat(3 << 20))), status: 400, code: 'context_length_exceeded' });
add('huge string', { what: 'a 3 MB prompt of one letter', send: post(CHAT, withContent('x'.repeat(3 << 20))), status: 400, code: 'context_length_exceeded' });
add('huge string', { what: 'a 1 MB prompt of emoji', send: post(CHAT, withContent('🙂'.repeat(1 << 18))), status: 400, code: 'context_length_exceeded' });
add('huge string', { what: 'a 3 MB prompt on /tokenize', send: post(TOKENIZE, { messages: [{ role: 'user', content: 'word '.repeat(600_000) }] }), status: 400, code: 'context_length_exceeded' });
add('huge string', { what: 'a prompt just over the context', send: post(CHAT, withContent('Click the OK button. '.repeat(200))), status: 400, code: 'context_length_exceeded' });
add('huge string', { what: 'a 1 MB role', send: post(CHAT, { ...good(), messages: [{ role: 'u'.repeat(1 << 20), content: 'hi' }] }), status: 400 });
add('huge string', { what: 'a 1 MB size string', send: post(CHAT, { ...good(), mm_processor_kwargs: { size: '9'.repeat(1 << 20) } }), status: 400 });
add('huge string', { what: 'a 2 MB non-data image URL', send: post(CHAT, withImages(['x'.repeat(2 << 20)])), status: 400, code: 'invalid_image_url' });
// Chunked, so the server can only tell by counting; written a chunk at a time until it answers
// (as a client would: it answers 413 and closes without reading the rest).
add('huge string', {
  what: 'a chunked body that grows over the limit',
  send: () => {
    const body = JSON.stringify({ ...good(), padding: 'x'.repeat((BODY_MIB << 20) + 10) });
    const size = 256 * 1024;
    const chunks = Array.from({ length: Math.ceil(body.length / size) }, (_, i) => body.slice(i * size, (i + 1) * size));
    return rawHttp(rawPost('Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n', ''), [
      ...chunks.map((c) => `${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n`),
      '0\r\n\r\n',
    ]);
  },
  status: 413,
  code: 'body_too_large',
});
add('huge string', { what: 'a 1 MB URL path', send: () => http(`${server.url}/v1/${'a'.repeat(8000)}`, 'GET'), status: 404 });

// 7. Bad and huge base64, and URLs that are not data URLs.
const b64 = (b: Buffer) => b.toString('base64');
for (const [what, url, code] of [
  ['invalid characters', 'data:image/png;base64,!!!not*base64!!!', 'invalid_base64'],
  ['padding only', 'data:image/png;base64,====', 'invalid_base64'],
  ['length not a multiple of 4', `data:image/png;base64,${b64(png).slice(0, -1)}`, 'invalid_base64'],
  ['padding in the middle', `data:image/png;base64,AA==${b64(png)}`, 'invalid_base64'],
  ['url-safe alphabet', `data:image/png;base64,${b64(png).replace(/\+/g, '-').replace(/\//g, '_')}`, 'invalid_base64'],
  ['percent-encoded', `data:image/png;base64,${encodeURIComponent(b64(png))}`, 'invalid_base64'],
  ['an empty payload', 'data:image/png;base64,', 'invalid_base64'],
  ['no base64 marker', `data:image/png,${b64(png)}`, 'invalid_image_url'],
  ['no comma', `data:image/png;base64${b64(png)}`, 'invalid_image_url'],
  ['a bare path', 'screenshot.png', 'invalid_image_url'],
  ['an empty URL', '', 'invalid_image_url'],
  ['file://', 'file:///etc/passwd', 'invalid_image_url'],
  ['ftp://', 'ftp://example.com/a.png', 'invalid_image_url'],
  ['javascript:', 'javascript:alert(1)', 'invalid_image_url'],
  ['http:// to the metadata address', 'http://169.254.169.254/latest/meta-data/', 'remote_images_disabled'],
  ['https:// to localhost', 'https://localhost/a.png', 'remote_images_disabled'],
  ['HTTP:// in capitals', 'HTTP://EXAMPLE.COM/a.png', 'remote_images_disabled'],
  ['text/html mime', `data:text/html;base64,${b64(Buffer.from('<script>alert(1)</script>'))}`, 'unsupported_image_type'],
  ['application/pdf mime', `data:application/pdf;base64,${b64(Buffer.from('%PDF-1.4 hello'))}`, 'unsupported_image_type'],
  ['a 2 MB payload (over --max-image-bytes)', `data:image/png;base64,${'A'.repeat(2 << 20)}`, 'image_too_large'],
  ['a 3.5 MB payload of a real PNG header', `data:image/png;base64,${b64(Buffer.concat([png, Buffer.alloc(2_600_000)]))}`, 'image_too_large'],
] as const) {
  add('bad base64 / URL', { what, send: post(CHAT, withImages([url])), status: 400, code });
}

// 8. Image bytes that are not a usable image.
const magic = (...bytes: (number | string)[]) => Buffer.concat(bytes.map((b) => (typeof b === 'string' ? Buffer.from(b, 'latin1') : Buffer.of(b))));
for (const [what, bytes, code] of [
  ['plain text', Buffer.from('this is plain text, certainly not an image file'.repeat(3)), 'invalid_image'],
  ['random bytes', Buffer.from(Array.from({ length: 400 }, (_, i) => (i * 2654435761) >>> 24)), 'invalid_image'],
  ['a PNG signature only', png.subarray(0, 8), 'invalid_image'],
  ['a JPEG SOI only', magic(0xff, 0xd8, 0xff), 'invalid_image'],
  ['a WebP header only', magic('RIFF', 0, 0, 0, 0, 'WEBP'), 'invalid_image'],
  ['a static GIF', await solid(40, 30).gif().toBuffer(), 'unsupported_image_type'],
  ['an animated GIF', animatedGif, 'unsupported_image_type'],
  ['a BMP header', magic('BM', ...Array.from({ length: 60 }, () => 0)), 'unsupported_image_type'],
  ['a TIFF', await solid(40, 30).tiff().toBuffer(), 'unsupported_image_type'],
  ['an AVIF/HEIF box', magic(0, 0, 0, 0x1c, 'ftypavif', ...Array.from({ length: 40 }, () => 0)), 'unsupported_image_type'],
  ['a JPEG XL codestream', magic(0xff, 0x0a, ...Array.from({ length: 40 }, () => 0)), 'unsupported_image_type'],
  ['an ICO header', magic(0, 0, 1, 0, ...Array.from({ length: 40 }, () => 0)), 'unsupported_image_type'],
  ['an SVG', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="99999" height="99999"><rect/></svg>'), 'unsupported_image_type'],
  ['an XML bomb', Buffer.from(`<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "${'a'.repeat(100)}">]><svg>&a;&a;</svg>`), 'unsupported_image_type'],
  ['a PDF', Buffer.from('%PDF-1.7\n1 0 obj << >> endobj\n'), 'unsupported_image_type'],
  ['a PNG that is JPEG inside', Buffer.concat([png.subarray(0, 8), jpeg.subarray(2)]), 'invalid_image'],
  ['a PNG with a corrupted IDAT', (() => { const b = Buffer.from(png); for (let i = 60; i < 90; i++) b[i] = b[i]! ^ 0x5a; return b; })(), 'invalid_image'],
  ['a PNG with a bad IHDR CRC', (() => { const b = Buffer.from(png); b[29] = b[29]! ^ 0xff; return b; })(), 'invalid_image'],
  ['a PNG declaring 20000x20000 (header bomb)', pngDeclaring(onePixel, 20000, 20000), 'image_too_large'],
  ['a PNG declaring 2^31-1 x 2^31-1', pngDeclaring(onePixel, 0x7fffffff, 0x7fffffff), ['image_too_large', 'invalid_image']],
  ['a PNG declaring 0x0', pngDeclaring(onePixel, 0, 0), 'invalid_image'],
  ['a real 3000x3000 PNG in a few KB (decompression bomb)', realBomb, 'image_too_large'],
  ['a JPEG declaring 65000x65000', jpegDeclaring(jpeg, 65000, 65000), ['image_too_large', 'invalid_image']],
  ['a WebP canvas of 16M x 16M', webpCanvas(animatedWebp, 1 << 24, 1 << 24), ['image_too_large', 'invalid_image']],
  ['a 1x300 PNG (aspect ratio over 200)', await solid(1, 300).png().toBuffer(), 'invalid_image_size'],
  ['a 4000x1 PNG (aspect ratio over 200)', await solid(4000, 1).png().toBuffer(), 'invalid_image_size'],
] as const) {
  add('bad image', { what, send: post(CHAT, withImages([dataUrl(bytes as Buffer)])), status: 400, code: code as string | readonly string[] });
}
// Truncated files, cut at several places.
for (const [kind, bytes, mime] of [['PNG', png, 'image/png'], ['JPEG', jpeg, 'image/jpeg'], ['WebP', animatedWebp, 'image/webp']] as const) {
  for (const fraction of [0.1, 0.3, 0.5, 0.8]) {
    const cut = bytes.subarray(0, Math.max(12, Math.floor(bytes.length * fraction)));
    add('truncated image', { what: `${kind} cut at ${Math.round(fraction * 100)}%`, send: post(CHAT, withImages([dataUrl(cut, mime)])), status: 400, code: 'invalid_image' });
  }
}
// The same bad images on /tokenize.
for (const [what, bytes] of [['GIF', animatedGif], ['bomb', realBomb], ['truncated PNG', png.subarray(0, 100)]] as const) {
  add('bad image', { what: `${what} on /tokenize`, send: post(TOKENIZE, { messages: (withImages([dataUrl(bytes)]) as { messages: Json }).messages }), status: 400 });
}

// 9. Hostile but valid images: accepted, as documented (first frame, high byte, and so on).
const imageReport = (res: HttpResult) => (res.json as { images: { original: number[]; resized: number[] }[] }).images;
for (const [what, bytes, size] of [
  ['an animated WebP (first frame only)', animatedWebp, [48, 32]],
  ['a 16-bit RGB PNG', png16, [64, 48]],
  ['a 16-bit grayscale PNG', grey16, [64, 48]],
  ['an RGBA PNG', await solid(40, 30, 4).png().toBuffer(), [40, 30]],
  ['a palette PNG', await solid(40, 30).png({ palette: true }).toBuffer(), [40, 30]],
  ['a 1x1 PNG', onePixel, [1, 1]],
  ['a CMYK JPEG', await solid(40, 30).toColourspace('cmyk').jpeg().toBuffer(), [40, 30]],
  ['a progressive JPEG', await solid(40, 30).jpeg({ progressive: true }).toBuffer(), [40, 30]],
  ['a JPEG with EXIF rotation (not applied, as PIL)', await solid(40, 30).withMetadata({ orientation: 6 }).jpeg().toBuffer(), [40, 30]],
  ['a PNG sent as image/jpeg', png, [112, 84]],
] as const) {
  add('accepted image', {
    what,
    send: post(CHAT, withImages([dataUrl(bytes as Buffer, 'image/jpeg')])),
    status: 200,
    check: (t, res) => t.same(imageReport(res)[0]?.original, size, 'the size the server read'),
  });
}

// 10. Thousands of images.
const tiny = dataUrl(tinyPng);
add('many images', {
  what: '3000 images (all but the newest 4 dropped before decoding)',
  send: post(CHAT, withImages(Array.from({ length: 3000 }, () => tiny))),
  status: 200,
  check: (t, res) => t.equal((res.json as { images_dropped: number }).images_dropped, 3000 - MAX_IMAGES),
});
add('many images', {
  what: '3000 images, an old one broken (dropped, never decoded)',
  send: post(CHAT, withImages([dataUrl(Buffer.from('broken')), ...Array.from({ length: 2999 }, () => tiny)])),
  status: 200,
});
add('many images', { what: '3000 images, the newest broken', send: post(CHAT, withImages([...Array.from({ length: 2999 }, () => tiny), 'data:image/png;base64,@@@@'])), status: 400, code: 'invalid_base64' });
add('many images', {
  what: '100 messages of one image each, the newest a GIF',
  send: post(CHAT, { ...good(), messages: [...Array.from({ length: 99 }, () => ({ role: 'user', content: [imagePart(tiny) as unknown as Json] })), { role: 'user', content: [imagePart(dataUrl(animatedGif)) as unknown as Json] }] }),
  status: 400,
  code: 'unsupported_image_type',
});
add('many images', {
  // Each message costs the template's special tokens: 2000 of them cannot fit whatever images are dropped.
  what: '2000 messages of one image each',
  send: post(CHAT, { ...good(), messages: Array.from({ length: 2000 }, () => ({ role: 'user', content: [imagePart(tiny) as unknown as Json] })) }),
  status: 400,
  code: 'context_length_exceeded',
});
add('many images', { what: '3000 remote URLs', send: post(CHAT, withImages(Array.from({ length: 3000 }, (_, i) => `http://10.0.0.${i % 250}/a.png`))), status: 400, code: 'remote_images_disabled' });

// 11. max_tokens beyond the context: clamped to what the context has left (documented).
for (const [field, value] of [['max_tokens', 1_000_000], ['max_completion_tokens', 2 ** 31], ['max_tokens', Number.MAX_SAFE_INTEGER]] as const) {
  add('max_tokens beyond the context', {
    what: `${field} = ${value}`,
    send: post(CHAT, { ...good(), [field]: value }),
    status: 200,
    check: (t, res) => {
      const u = (res.json as { usage: { total_tokens: number } }).usage;
      t.ok(u.total_tokens <= MAX_MODEL_LEN, `prompt + completion ${u.total_tokens} <= ${MAX_MODEL_LEN}`);
    },
  });
}
add('max_tokens beyond the context', { what: 'a full context and max_tokens 10', send: post(CHAT, withContent('Click the OK button. '.repeat(120), { max_tokens: 10 })), status: 400, code: 'context_length_exceeded' });

// 12. Invalid UTF-8 (raw bytes spliced into the JSON text).
const splice = (bytes: number[], where: 'content' | 'model' | 'key') => {
  const [before, after] = where === 'content' ? goodJson.split('Click OK.') : where === 'model' ? goodJson.split(MODEL) : ['{"', `x":1,${goodJson.slice(1)}`];
  return Buffer.concat([Buffer.from(before!), Buffer.from(bytes), Buffer.from(after!)]);
};
for (const [what, bytes] of [
  ['0xff', [0xff]], ['0xfe 0xff', [0xfe, 0xff]], ['a lone continuation byte', [0x80]], ['an overlong slash', [0xc0, 0xaf]],
  ['a UTF-8-encoded surrogate', [0xed, 0xa0, 0x80]], ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ['a truncated 3-byte sequence', [0xe2, 0x82]], ['Latin-1 é', [0xe9]],
] as const) {
  for (const where of ['content', 'model', 'key'] as const) {
    add('invalid UTF-8', { what: `${what} in ${where}`, send: post(CHAT, splice([...bytes], where)), status: 400, code: 'invalid_utf8' });
  }
}
add('invalid UTF-8', {
  what: 'a lone surrogate escape (\\ud800, valid JSON: accepted)',
  send: post(CHAT, goodJson.replace('Click OK.', 'Click \\ud800 OK.')),
  status: 200,
});

// 13. Conflicting parameters.
for (const [what, extra, param] of [
  [`n = ${SLOTS + 1}, more than the sequences decoded at once`, { n: SLOTS + 1 }, 'n'],
  ['n = 16 with stream', { n: 16, stream: true }, 'n'],
  ['stream_options without stream', { stream_options: { include_usage: true } }, 'stream_options'],
  ['stream_options with stream false', { stream: false, stream_options: { include_usage: true } }, 'stream_options'],
  ['top_logprobs without logprobs', { top_logprobs: 3 }, 'top_logprobs'],
  ['top_logprobs with logprobs false', { logprobs: false, top_logprobs: 5 }, 'top_logprobs'],
  ['top_logprobs 21 with logprobs', { logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
  ['min_pixels over max_pixels', { mm_processor_kwargs: { min_pixels: 200_000, max_pixels: 100_000 } }, 'mm_processor_kwargs'],
] as const) {
  add('conflicting parameters', { what, send: post(CHAT, { ...good(), ...(extra as Body) }), status: 400, param });
}
add('conflicting parameters', { what: 'text that spells <|image_pad|>', send: post(CHAT, withContent('look at <|image_pad|> here')), status: 400, code: 'invalid_prompt' });
add('conflicting parameters', {
  what: 'an image and text that spells <|image_pad|> twice',
  send: post(CHAT, withContent([imagePart(tiny) as unknown as Json, { type: 'text', text: '<|vision_start|><|image_pad|><|vision_end|> and <|image_pad|>' }])),
  status: 400,
  code: 'invalid_prompt',
});
add('conflicting parameters', { what: 'an image with size 0x0', send: post(CHAT, withImages([tiny], { mm_processor_kwargs: { size: '0x0' } })), status: 400, code: 'invalid_image_size' });

// 14. Content types, encodings, methods, routes.
for (const [what, headers, status] of [
  ['text/plain', { 'content-type': 'text/plain' }, 415],
  ['form-urlencoded', { 'content-type': 'application/x-www-form-urlencoded' }, 415],
  ['multipart', { 'content-type': 'multipart/form-data; boundary=x' }, 415],
  ['no content type', { 'content-type': '' }, 415],
  ['application/xml', { 'content-type': 'application/xml' }, 415],
  ['charset=latin1', { 'content-type': 'application/json; charset=latin1' }, 415],
  ['charset=utf-16', { 'content-type': 'application/json; charset=utf-16' }, 415],
  ['gzip content encoding', { 'content-type': 'application/json', 'content-encoding': 'gzip' }, 415],
  ['br content encoding', { 'content-type': 'application/json', 'content-encoding': 'br' }, 415],
  ['deflate, gzip content encoding', { 'content-type': 'application/json', 'content-encoding': 'deflate, gzip' }, 415],
] as const) {
  add('content type', { what, send: post(CHAT, goodJson, headers as Record<string, string>), status });
}
for (const [what, send, status] of [
  ['GET on the chat route', () => http(CHAT, 'GET'), 405],
  ['an unknown /v1 route', () => http(`${server.url}/v1/completions`, 'POST', good()), 404],
  ['a path with ..', () => http(`${server.url}/v1/../health/../v1/models/x`, 'GET'), 404],
  ['POST on /v1/models', () => http(`${server.url}/v1/models`, 'POST', good()), 405],
] as const) {
  add('routes', { what, send, status });
}

// 15. Malformed HTTP (answered before any route).
for (const [what, bytes, status] of [
  ['a garbage request line', 'HELLO WORLD\r\n\r\n', 400],
  ['an HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400],
  ['HTTP/3.0', 'GET /health HTTP/3.0\r\nHost: x\r\n\r\n', 400],
  ['a NUL in the path', 'GET /v1/mo\0dels HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400],
  ['headers over 16 KB', rawPost(`X-Big: ${'a'.repeat(20_000)}\r\nContent-Type: application/json\r\nContent-Length: ${goodJson.length}\r\n`), 431],
  ['a header name with a space', rawPost(`Bad Header: x\r\nContent-Type: application/json\r\nContent-Length: ${goodJson.length}\r\n`), 400],
  ['Content-Length and Transfer-Encoding (smuggling)', rawPost(`Content-Type: application/json\r\nContent-Length: ${goodJson.length}\r\nTransfer-Encoding: chunked\r\n`), 400],
  ['two Content-Lengths', rawPost(`Content-Type: application/json\r\nContent-Length: ${goodJson.length}\r\nContent-Length: 3\r\n`), 400],
  ['a bad chunk size', rawPost('Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n', 'zz\r\nabc\r\n0\r\n\r\n'), 400],
  ['a Content-Length of 10^20', rawPost('Content-Type: application/json\r\nContent-Length: 99999999999999999999\r\n'), 400],
  ['a negative Content-Length', rawPost('Content-Type: application/json\r\nContent-Length: -5\r\n'), 400],
  ['a Content-Length over the body limit', rawPost(`Content-Type: application/json\r\nContent-Length: ${(BODY_MIB + 1) << 20}\r\n`, ''), 413],
  ['a Content-Length shorter than the body', rawPost('Content-Type: application/json\r\nContent-Length: 10\r\n'), 400],
  ['an obsolete folded header', rawPost(`Content-Type: application/json\r\nX-A: a\r\n b\r\nContent-Length: ${goodJson.length}\r\n`), 400],
  ['a malformed percent escape in the path', 'GET /v1/models%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400],
  ['no Host header', `POST /v1/chat/completions HTTP/1.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${goodJson.length}\r\n\r\n${goodJson}`, 400],
] as const) {
  add('malformed HTTP', { what, send: () => rawHttp(bytes), status });
}

// ---------------------------------------------------------------------------------------------
// Running them

const rss = () => metric(server.url, 'uitars_process_resident_memory_bytes');
const normalCompletion = async (t: Test, what: string) => {
  const res = await http(CHAT, 'POST', withImages([dataUrl(png)], { max_tokens: 3 }));
  t.equal(res.status, 200, `${what}: a normal completion with an image succeeds`);
};

// Warm up the paths the cases take (image decode, template, engine), then take the baseline.
let rssBefore = 0;
let loading503 = 0;
const count503 = (metrics: string) => Number(/uitars_requests_total\{status="503"\} (\d+)/.exec(metrics)?.[1] ?? 0);
t.test('warm-up and baseline', async (t) => {
  t.ok(cases.length >= 200, `${cases.length} generated cases`);
  await normalCompletion(t, 'warm-up');
  t.equal((await http(CHAT, 'POST', good())).status, 200, 'a text completion succeeds');
  rssBefore = await rss();
  loading503 = count503((await http(`${server.url}/metrics`, 'GET')).text);
});
const counts = new Map<string, { tried: number; refused: number; accepted: number }>();

for (const c of cases) {
  t.test(`${c.group}: ${c.what}`, async (t) => {
    const res = await c.send();
    t.ok(res.status < 500, `no 5xx (got ${res.status})`);
    t.notMatch(res.text, /\n\s+at [^\n]*\(|node_modules|\/work\/|file:\/\//, 'no stack trace or file path in the body');
    const row = counts.get(c.group) ?? { tried: 0, refused: 0, accepted: 0 };
    row.tried++;
    if (c.status === 200) {
      t.equal(res.status, 200, `accepted (${res.text.slice(0, 200)})`);
      if (res.status === 200) row.accepted++;
    } else {
      const err = assertOpenAIError(t, res, c.status, c.what);
      if (res.status === c.status) row.refused++;
      if (c.code !== undefined) {
        if (Array.isArray(c.code)) t.ok(c.code.includes(err.code), `code ${err.code} is one of ${c.code.join(', ')}`);
        else t.equal(err.code, c.code, 'code');
      }
      if (c.param !== undefined) t.equal(err.param, c.param, 'param');
      if (c.paramPrefix !== undefined) {
        const inside = err.param?.startsWith(`${c.paramPrefix}.`) || err.param?.startsWith(`${c.paramPrefix}[`);
        t.ok(err.param === c.paramPrefix || inside, `param ${err.param} is ${c.paramPrefix} or inside it`);
      }
    }
    c.check?.(t, res);
    counts.set(c.group, row);
  });
}

t.test('afterwards: healthy, serving, no 5xx, no error logged, memory back near the start', async (t) => {
  t.equal((await http(`${server.url}/health`, 'GET')).status, 200, '/health is 200');
  await normalCompletion(t, 'after the fuzz');
  const stream = await http(CHAT, 'POST', { ...good(), stream: true, max_tokens: 3 });
  t.equal(stream.status, 200, 'a streamed completion succeeds');
  t.match(stream.text, /data: \[DONE\]/);

  const metrics = (await http(`${server.url}/metrics`, 'GET')).text;
  // The 503s counted are /health's answers while the model loaded, before the first case.
  t.notMatch(metrics, /uitars_requests_total\{status="5(?!03)\d\d"\}/, 'no 5xx was counted');
  t.equal(count503(metrics), loading503, 'no 503 since the model loaded');
  const errorLines = server.output().split('\n').filter((l) => /"level":(50|60)/.test(l));
  t.same(errorLines, [], 'the server logged no error');

  const rssAfter = await rss();
  const grewMiB = (rssAfter - rssBefore) / 2 ** 20;
  t.comment(`RSS ${Math.round(rssBefore / 2 ** 20)} MiB before, ${Math.round(rssAfter / 2 ** 20)} MiB after ${cases.length} cases`);
  t.ok(grewMiB < 256, `RSS grew by ${grewMiB.toFixed(0)} MiB (< 256 MiB)`);

  const table = [...counts.entries()].map(([g, r]) => `${g}: ${r.tried} tried, ${r.refused} refused as expected, ${r.accepted} accepted as documented`);
  t.comment(`cases by group:\n${table.join('\n')}`);
});
