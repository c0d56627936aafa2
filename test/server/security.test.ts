/**
 * Security settings on the real server:
 * - it binds 127.0.0.1 unless told otherwise;
 * - an optional API key (--api-key / API_KEY): every /v1/* route, /tokenize and unknown routes
 *   need "Authorization: Bearer <key>" (401 in OpenAI's shape otherwise, before the body is
 *   read); /health, /metrics and the API docs stay open;
 * - remote image URLs: refused by default; with --allowed-image-hosts, fetched from a real local
 *   HTTP server under host, address, size, redirect and time limits. Loopback must be allowed
 *   explicitly (--image-fetch-allow-private); without it, loopback in any spelling is refused
 *   without a connection being made, and a redirect to a host off the list is refused; a slow
 *   image host delays only the requests that wait for it;
 * - the body size limit.
 */
import t, { type Test } from 'tap';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import os from 'node:os';
import OpenAI from 'openai';
import { defaultServerConfig, parseImageHosts, resolveServerConfig } from '../../server/config.ts';
import { hostAllowed, isPublicAddress } from '../../server/chat/remote-image.ts';
import { DECODE_CONCURRENCY } from '../../server/api/admission.ts';
import { assertOpenAIError, dataUrl, http as request, imagePart, MODEL, screenshotPng, startTestServer } from '../helpers/server.ts';

const png = await screenshotPng(41, 112, 84);
const chatBody = (urls: string[]) => ({
  model: MODEL,
  max_tokens: 2,
  temperature: 0,
  messages: [{ role: 'user', content: [...urls.map((u) => imagePart(u)), { type: 'text', text: 'What is on the screen?' }] }],
});

t.test('binds 127.0.0.1 unless told otherwise', async (t) => {
  t.equal(defaultServerConfig().host, '127.0.0.1', 'the default host');
  t.equal(resolveServerConfig({}, {}).host, '127.0.0.1', 'no flag, no HOST: loopback');
  const server = await startTestServer(t);
  const address = server.apps[0]!.server.address() as net.AddressInfo;
  t.equal(address.address, '127.0.0.1', 'the listening socket is on loopback');
  // Where the machine has another address, nothing answers there.
  const external = Object.values(os.networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal);
  if (external) {
    const refused = await new Promise<boolean>((resolve) => {
      const sock = net.connect(address.port, external.address);
      sock.once('connect', () => {
        sock.destroy();
        resolve(false);
      });
      sock.once('error', () => resolve(true));
    });
    t.ok(refused, `${external.address}:${address.port} refuses connections`);
  } else {
    t.comment('no non-loopback IPv4 address on this machine: the external check is skipped');
  }
});

t.test('API key', async (t) => {
  const key = 'sk-test-0123456789abcdef';
  t.equal(resolveServerConfig({ API_KEY: key }, {}).apiKey, key, 'API_KEY sets it');
  t.equal(resolveServerConfig({ API_KEY: '' }, {}).apiKey, null, 'an empty API_KEY is no key');
  t.equal(defaultServerConfig().apiKey, null, 'no key by default');
  t.throws(() => resolveServerConfig({}, { apiKey: 'has space' }), /spaces/, 'a key with a space is refused at start');

  // A small body limit too: an unauthenticated client gets 401 even for a body over it.
  const server = await startTestServer(t, { apiKey: key, bodyLimitMiB: 0.25 });
  const url = server.url;
  const auth = (k: string) => ({ authorization: `Bearer ${k}` });
  const small = { model: MODEL, messages: [{ role: 'user', content: 'Click OK.' }], max_tokens: 2 };

  for (const [what, headers] of [
    ['no Authorization header', {}],
    ['a wrong key of the same length', auth(key.replace(/.$/, 'x'))],
    ['a longer key with the right prefix', auth(`${key}0`)],
    ['a prefix of the key', auth(key.slice(0, 8))],
    ['an empty bearer token', { authorization: 'Bearer ' }],
    ['Basic auth', { authorization: `Basic ${Buffer.from(`user:${key}`).toString('base64')}` }],
    ['the key without the Bearer scheme', { authorization: key }],
    ['the key in x-api-key', { 'x-api-key': key }],
  ] as const) {
    for (const [method, path, body] of [
      ['GET', '/v1/models', undefined],
      ['POST', '/v1/chat/completions', small],
      ['POST', '/tokenize', { messages: small.messages }],
      ['GET', '/v1/nope', undefined],
    ] as const) {
      const res = await request(`${url}${path}`, method, body, headers);
      const err = assertOpenAIError(t, res, 401, `${what}: ${method} ${path}`);
      t.equal(err.code, 'invalid_api_key');
      t.equal(res.headers['www-authenticate'], 'Bearer');
      t.notMatch(res.text, key, 'the key is not echoed');
    }
  }
  const big = await request(`${url}/v1/chat/completions`, 'POST', { ...small, padding: 'x'.repeat(200 * 1024) });
  assertOpenAIError(t, big, 401, 'an unauthenticated body under the limit is not parsed');

  t.equal((await request(`${url}/v1/models`, 'GET', undefined, auth(key))).status, 200, 'the key opens /v1/models');
  t.equal((await request(`${url}/v1/models`, 'GET', undefined, { authorization: `bearer  ${key}` })).status, 200, 'the scheme is case-insensitive');
  const chat = await request(`${url}/v1/chat/completions`, 'POST', small, auth(key));
  t.equal(chat.status, 200, 'the key opens chat completions');
  t.equal((await request(`${url}/tokenize`, 'POST', { messages: small.messages }, auth(key))).status, 200, 'and /tokenize');
  assertOpenAIError(t, await request(`${url}/v1/nope`, 'GET', undefined, auth(key)), 404, 'with the key, an unknown route is a 404');
  const tooBig = await request(`${url}/v1/chat/completions`, 'POST', { ...small, padding: 'x'.repeat(300 * 1024) }, auth(key));
  t.equal(assertOpenAIError(t, tooBig, 413, 'with the key, a body over the limit').code, 'body_too_large');

  for (const path of ['/health', '/metrics', '/openapi.json']) {
    t.equal((await request(`${url}${path}`, 'GET')).status, 200, `${path} stays open without a key`);
  }
  const docs = await request(`${url}/docs`, 'GET');
  t.ok(docs.status < 400, `/docs stays open (${docs.status})`);

  // The OpenAI client, as users send the key.
  const good = new OpenAI({ baseURL: `${url}/v1`, apiKey: key, maxRetries: 0 });
  t.equal((await good.models.list()).data[0]!.id, MODEL, 'the OpenAI client with the key lists the model');
  const bad = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
  const failure = await bad.models.list().then(() => null, (err: unknown) => err);
  t.ok(failure instanceof OpenAI.AuthenticationError, 'a wrong key is an AuthenticationError (401)');
});

t.test('body size limit', async (t) => {
  const server = await startTestServer(t, { bodyLimitMiB: 0.25 });
  const small = { model: MODEL, messages: [{ role: 'user', content: 'Click OK.' }], max_tokens: 2 };
  for (const path of ['/v1/chat/completions', '/tokenize']) {
    const over = await request(`${server.url}${path}`, 'POST', { ...small, padding: 'x'.repeat(300 * 1024) });
    const err = assertOpenAIError(t, over, 413, `${path}: a 300 KB body over a 0.25 MiB limit`);
    t.equal(err.code, 'body_too_large');
    t.match(err.message, /0\.25 MiB/);
    const under = await request(`${server.url}${path}`, 'POST', { ...small, padding: 'x'.repeat(200 * 1024) });
    t.equal(under.status, 200, `${path}: a 200 KB body under the limit is served`);
  }
  t.equal(defaultServerConfig().bodyLimitMiB, 128, 'the default limit');
});

t.test('address classification (what "private" means)', async (t) => {
  const cases: [string, boolean][] = [
    ['8.8.8.8', true], ['1.1.1.1', true], ['172.32.0.1', true], ['2606:4700::1111', true], ['::ffff:8.8.8.8', true], ['64:ff9b::808:808', true],
    ['127.0.0.1', false], ['127.255.255.254', false], ['10.1.2.3', false], ['172.16.0.1', false], ['172.31.255.255', false], ['192.168.1.1', false],
    ['169.254.169.254', false], ['100.64.0.1', false], ['0.0.0.0', false], ['255.255.255.255', false], ['224.0.0.1', false], ['192.0.2.1', false],
    ['::1', false], ['::', false], ['fe80::1', false], ['fe80::1%eth0', false], ['fd00::1', false], ['fc00::1', false], ['ff02::1', false],
    ['::ffff:127.0.0.1', false], ['::ffff:7f00:1', false], ['::ffff:10.0.0.1', false], ['::ffff:169.254.169.254', false], ['::127.0.0.1', false],
    ['64:ff9b::7f00:1', false], ['2002:7f00:1::', false], ['2002:a9fe:a9fe::1', false], ['2001::1', false], ['2001:db8::1', false],
    ['not an address', false],
  ];
  for (const [address, isPublic] of cases) t.equal(isPublicAddress(address), isPublic, `${address} is ${isPublic ? 'public' : 'not public'}`);

  t.same(parseImageHosts('Images.Example.COM, *.cdn.example.com,127.0.0.1,::1,[::ffff:127.0.0.1]'), [
    'images.example.com',
    '*.cdn.example.com',
    '127.0.0.1',
    '[::1]',
    '[::ffff:7f00:1]',
  ]);
  t.throws(() => parseImageHosts('a/b'), /not a host name/);
  t.throws(() => parseImageHosts(' , '), /comma-separated/);
  t.ok(hostAllowed('a.cdn.example.com', ['*.cdn.example.com']), 'a subdomain matches *.');
  t.notOk(hostAllowed('cdn.example.com', ['*.cdn.example.com']), '*. does not match the bare domain');
  t.notOk(hostAllowed('evilcdn.example.com', ['*.cdn.example.com']), 'nor a name that merely ends the same');
  t.notOk(hostAllowed('images.example.com.evil.net', ['images.example.com']), 'nor a longer name');
});

/** A real HTTP server on 127.0.0.1 that serves images, redirects, slow and oversized answers. */
async function imageServer(t: Test): Promise<{ base: string; port: number; hits: () => number; release: () => void }> {
  let hits = 0;
  let base = '';
  let release = (): void => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
    '/ok.png': (_q, res) => res.writeHead(200, { 'content-type': 'image/png' }).end(png),
    '/redirect': (_q, res) => res.writeHead(302, { location: '/ok.png' }).end(),
    '/redirect-absolute': (_q, res) => res.writeHead(301, { location: `${base}/ok.png` }).end(),
    '/redirect-localhost': (_q, res) => res.writeHead(302, { location: base.replace('127.0.0.1', 'localhost') + '/ok.png' }).end(),
    '/redirect-metadata': (_q, res) => res.writeHead(307, { location: 'http://169.254.169.254/latest/meta-data/' }).end(),
    '/redirect-file': (_q, res) => res.writeHead(302, { location: 'file:///etc/passwd' }).end(),
    '/loop': (_q, res) => res.writeHead(302, { location: '/loop' }).end(),
    '/big.png': (_q, res) => res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(2 << 20) }).end(Buffer.alloc(2 << 20)),
    '/big-chunked.png': (_q, res) => {
      res.writeHead(200, { 'content-type': 'image/png' });
      for (let i = 0; i < 32; i++) res.write(Buffer.alloc(64 * 1024));
      res.end();
    },
    '/slow.png': () => {}, // never answers
    '/held.png': (_q, res) => void released.then(() => res.writeHead(200, { 'content-type': 'image/png' }).end(png)), // answers on release()
    '/missing.png': (_q, res) => res.writeHead(404).end('not found'),
    '/page.html': (_q, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hello</html>'),
  };
  const srv = http.createServer((req, res) => {
    hits++;
    const route = routes[(req.url ?? '').split('?')[0]!];
    if (route) route(req, res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    srv.closeAllConnections();
    srv.close();
  });
  const port = (srv.address() as net.AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
  return { base, port, hits: () => hits, release };
}

t.test('remote images: refused by default', async (t) => {
  const server = await startTestServer(t);
  const images = await imageServer(t);
  const res = await request(`${server.url}/v1/chat/completions`, 'POST', chatBody([`${images.base}/ok.png`]));
  t.equal(assertOpenAIError(t, res, 400, 'a remote URL on a default server').code, 'remote_images_disabled');
  t.equal(images.hits(), 0, 'no request was made');
});

t.test('remote images: a slow image host holds up only its own requests', async (t) => {
  const images = await imageServer(t);
  const server = await startTestServer(t, { allowedImageHosts: ['127.0.0.1'], imageFetchAllowPrivate: true, imageFetchTimeoutMs: 60_000 });
  const chat = (urls: string[]) => request(`${server.url}/v1/chat/completions`, 'POST', chatBody(urls));
  // More requests waiting on the image host than images are decoded at once.
  const held = Array.from({ length: DECODE_CONCURRENCY + 1 }, () => chat([`${images.base}/held.png`]));
  for (let i = 0; i < 500 && images.hits() < held.length; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(images.hits(), held.length, 'every held request is fetching');
  t.equal((await chat([])).status, 200, 'a text-only request is served meanwhile');
  t.equal((await chat([dataUrl(png)])).status, 200, 'and so is one with a data-URL image');
  images.release();
  for (const res of await Promise.all(held)) t.equal(res.status, 200, 'the held requests finish once the host answers');
});

t.test('remote images: loopback allowed explicitly', async (t) => {
  const images = await imageServer(t);
  const server = await startTestServer(t, {
    allowedImageHosts: ['127.0.0.1'],
    imageFetchAllowPrivate: true,
    imageFetchTimeoutMs: 800,
    imageFetchMaxRedirects: 2,
    maxImageBytes: 1 << 20,
  });
  const chat = (urls: string[]) => request(`${server.url}/v1/chat/completions`, 'POST', chatBody(urls));

  const ok = await chat([`${images.base}/ok.png`]);
  t.equal(ok.status, 200, 'an allowed host serves the image');
  t.same((ok.json as { images: { original: number[] }[] }).images[0]?.original, [112, 84], 'the fetched image is the one served');
  const mixed = await chat([dataUrl(png), `${images.base}/redirect`, `${images.base}/redirect-absolute`]);
  t.equal(mixed.status, 200, 'data URLs and redirects to the same allowed host mix');
  t.equal((mixed.json as { images: unknown[] }).images.length, 3);
  const tok = await request(`${server.url}/tokenize`, 'POST', { messages: chatBody([`${images.base}/ok.png`]).messages });
  t.equal(tok.status, 200, '/tokenize fetches too');

  for (const [what, url, code] of [
    ['a redirect to a host off the list (localhost)', `${images.base}/redirect-localhost`, 'remote_image_host_not_allowed'],
    ['a redirect to the cloud metadata address', `${images.base}/redirect-metadata`, 'remote_image_host_not_allowed'],
    ['a redirect to file://', `${images.base}/redirect-file`, 'invalid_image_url'],
    ['a redirect loop', `${images.base}/loop`, 'remote_image_too_many_redirects'],
    ['an image over --max-image-bytes (Content-Length)', `${images.base}/big.png`, 'remote_image_too_large'],
    ['an image over --max-image-bytes (chunked)', `${images.base}/big-chunked.png`, 'remote_image_too_large'],
    ['a server that never answers', `${images.base}/slow.png`, 'remote_image_timeout'],
    ['a 404', `${images.base}/missing.png`, 'remote_image_fetch_failed'],
    ['an HTML page', `${images.base}/page.html`, 'invalid_image'],
    ['a host off the list', `http://localhost:${images.port}/ok.png`, 'remote_image_host_not_allowed'],
    ['credentials in the URL', `http://user:pw@127.0.0.1:${images.port}/ok.png`, 'invalid_image_url'],
    ['a closed port', `http://127.0.0.1:1/ok.png`, 'remote_image_fetch_failed'],
  ] as const) {
    const res = await chat([url]);
    const err = assertOpenAIError(t, res, 400, what);
    t.equal(err.code, code, `${what}: ${err.message}`);
  }
  t.equal((await request(`${server.url}/health`, 'GET')).status, 200, 'healthy afterwards');
  t.equal((await chat([`${images.base}/ok.png`])).status, 200, 'and still fetching');
});

t.test('remote images: loopback refused when not allowed, in every spelling, without connecting', async (t) => {
  const images = await imageServer(t);
  const server = await startTestServer(t, {
    allowedImageHosts: parseImageHosts('127.0.0.1,localhost,::1,::ffff:127.0.0.1,127.1,2130706433'),
    imageFetchTimeoutMs: 800,
  });
  const p = images.port;
  for (const url of [
    `http://127.0.0.1:${p}/ok.png`,
    `http://localhost:${p}/ok.png`,
    `http://[::1]:${p}/ok.png`,
    `http://[::ffff:127.0.0.1]:${p}/ok.png`,
    `http://[::ffff:7f00:1]:${p}/ok.png`,
    `http://127.1:${p}/ok.png`,
    `http://2130706433:${p}/ok.png`,
    `http://0x7f.0.0.1:${p}/ok.png`,
  ]) {
    const res = await request(`${server.url}/v1/chat/completions`, 'POST', chatBody([url]));
    const err = assertOpenAIError(t, res, 400, url);
    t.equal(err.code, 'remote_image_address_not_allowed', `${url}: ${err.message}`);
  }
  t.equal(images.hits(), 0, 'the image server never saw a request');
});
