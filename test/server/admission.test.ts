/**
 * A bounded queue: with one sequence slot and no waiting room, a second concurrent request is
 * answered 429 with Retry-After (never queued without bound, never a 5xx), and the server
 * serves again as soon as the slot is free.
 */
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
