/**
 * A bounded queue: with one sequence slot and no waiting room, a second concurrent request is
 * answered 429 with Retry-After (never queued without bound, never a 5xx), and the server
 * serves again as soon as the slot is free.
 */
import net from 'node:net';
import t from 'tap';
import { http, MODEL, startTestServer } from '../helpers/server.ts';

t.test('full queue -> 429 with Retry-After, then service resumes', async (t) => {
  const server = await startTestServer(t, { maxBatch: 1, queueSize: 0 });
  const chat = `${server.url}/v1/chat/completions`;
  const long = { model: MODEL, messages: [{ role: 'user', content: 'Describe every icon on the desktop.' }], max_tokens: 400, temperature: 1, seed: 3 };
  const first = http(chat, 'POST', long);
  // Wait until the first request holds the only slot.
  for (let i = 0; i < 200 && server.engine.inflight === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(server.engine.inflight, 1);
  const second = await http(chat, 'POST', { ...long, max_tokens: 4 });
  t.equal(second.status, 429);
  t.match(second.json, { error: { type: 'rate_limit_error', code: 'server_busy' } });
  const retryAfter = Number(second.headers['retry-after']);
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After: ${retryAfter}`);
  t.equal((await first).status, 200, 'the running request is unaffected');
  const third = await http(chat, 'POST', { ...long, max_tokens: 4 });
  t.equal(third.status, 200, 'served again once the slot is free');
});

t.test('a client that stalls mid-body is answered 408 and its place is freed', async (t) => {
  const server = await startTestServer(t, { maxBatch: 1, queueSize: 0, requestTimeoutSeconds: 1 });
  const chat = `${server.url}/v1/chat/completions`;
  const { hostname, port } = new URL(server.url);
  const socket = net.connect(Number(port), hostname);
  t.teardown(() => socket.destroy());
  let answer = '';
  socket.on('data', (d: Buffer) => (answer += d.toString('utf8')));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
  // Headers and half the body, then nothing.
  socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 20)}`);
  await new Promise((r) => setTimeout(r, 200));
  const small = { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 };
  t.equal((await http(chat, 'POST', small)).status, 429, 'the stalled request holds the only place');
  const cut = await Promise.race([closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 15_000))]);
  t.ok(cut, 'the server closes the stalled connection');
  t.match(answer, /^HTTP\/1\.1 408 /, 'the stalled client gets 408');
  t.match(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)), { error: { code: 'request_timeout' } });
  t.equal((await http(chat, 'POST', small)).status, 200, 'its place is free again');
});
