/**
 * Faults on the real server:
 * - clients that disconnect while their prompt is in prefill, while waiting in the queue, or in
 *   the middle of a stream free their slots: the engine's in-flight count and the running and
 *   queue gauges return to 0, a burst that needs every slot (no waiting room) is all 200, and
 *   uitars_requests_total counts each cut request as status 499;
 * - SIGTERM drains: a running stream finishes, new connections are refused, the process exits
 *   0; with a short --drain-seconds the running request is cut and the process still exits 0;
 * - a request that hits an engine error fails alone: the requests running beside it and the
 *   next one succeed. No HTTP request reaches an engine error any more (the two paths there
 *   were, <|image_pad|> spelled in the text and n above the slots, are 400s now, checked here),
 *   so the failing request is handed to the real engine worker directly.
 */
import t, { type Test } from 'tap';
import nodeHttp from 'node:http';
import net from 'node:net';
import { http, metric, MODEL, sseData, spawnServer, startTestServer, waitFor, withTimeout } from '../helpers/server.ts';
import type { DoneEvent, EngineEvent, EngineRequest } from '../../server/engine/request.ts';
import { GREEDY } from '../../server/engine/sampler.ts';

const SLOTS = 2;

/** A prompt of about `words` distinct words (distinct per seed, so no cache shortens its prefill). */
function longPrompt(seed: number, words: number): string {
  const vocab = ['click', 'the', 'window', 'button', 'menu', 'scroll', 'down', 'open', 'file', 'save', 'close', 'tab', 'icon', 'text', 'field'];
  let s = seed >>> 0 || 1;
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(vocab[s % vocab.length]!);
  }
  return out.join(' ');
}

interface Opened {
  /** Resolves with the bytes received so far once the first response bytes arrive (or the socket closes). */
  firstBytes: Promise<string>;
  destroy(): void;
  closed: Promise<void>;
}

/** A raw POST that the test can cut at any moment (the socket is destroyed, as a client that dies). */
function open(url: string, body: unknown): Opened {
  const u = new URL(url);
  const data = JSON.stringify(body);
  const req = nodeHttp.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } });
  let received = '';
  let resolveFirst: (s: string) => void = () => {};
  const firstBytes = new Promise<string>((r) => (resolveFirst = r));
  const closed = new Promise<void>((resolve) => req.once('close', () => resolve()));
  req.on('response', (res) => {
    res.on('data', (d: Buffer) => {
      received += d.toString();
      resolveFirst(received);
    });
    res.on('error', () => {});
  });
  req.on('error', () => resolveFirst(received));
  req.on('close', () => resolveFirst(received));
  req.end(data);
  return { firstBytes, destroy: () => req.destroy(), closed };
}

async function slotsFree(t: Test, server: Awaited<ReturnType<typeof startTestServer>>, what: string): Promise<void> {
  t.ok(await waitFor(async () => server.engine.inflight === 0, 30_000), `${what}: the engine has nothing in flight`);
  t.ok(
    await waitFor(async () => (await metric(server.url, 'uitars_running_sequences')) === 0 && (await metric(server.url, 'uitars_queue_depth')) === 0, 10_000),
    `${what}: running and queued gauges are 0`,
  );
  // No waiting room: a burst of SLOTS requests is all 200 only if every slot (and every HTTP
  // admission place) was given back.
  const burst = await Promise.all(
    Array.from({ length: SLOTS }, (_, i) =>
      http(`${server.url}/v1/chat/completions`, 'POST', { model: MODEL, messages: [{ role: 'user', content: `Step ${i}: click OK.` }], max_tokens: 8, temperature: 0 }),
    ),
  );
  t.same(burst.map((r) => r.status), Array.from({ length: SLOTS }, () => 200), `${what}: a burst needing all ${SLOTS} slots is served`);
}

t.test('disconnects free their slots', async (t) => {
  const server = await startTestServer(t, { maxBatch: SLOTS, queueSize: 0, maxModelLen: 16384 });
  const chat = `${server.url}/v1/chat/completions`;

  await t.test('mid-prefill', async (t) => {
    // A long prompt: the disconnect lands while it is in the engine and before any token left.
    const req = open(chat, { model: MODEL, messages: [{ role: 'user', content: longPrompt(1, 9000) }], max_tokens: 50, stream: true });
    t.ok(await waitFor(async () => server.engine.inflight === 1, 30_000), 'the request reached the engine');
    const before = await withTimeout(req.firstBytes, 1, 'nothing yet');
    req.destroy();
    await req.closed;
    t.comment(before === 'nothing yet' ? 'cut before the first byte of the answer (in prefill)' : 'the answer had begun when cut');
    await slotsFree(t, server, 'after a disconnect in prefill');
  });

  const cancelled = () => metric(server.url, 'uitars_requests_total', '{status="499"}').catch(() => 0);
  await t.test('mid-stream', async (t) => {
    const before = await cancelled();
    const req = open(chat, { model: MODEL, messages: [{ role: 'user', content: 'Describe the desktop.' }], max_tokens: 5000, temperature: 1, seed: 5, stream: true });
    const first = await req.firstBytes;
    t.match(first, /data: /, 'the stream had started');
    req.destroy();
    await req.closed;
    await slotsFree(t, server, 'after a disconnect mid-stream');
    t.equal(await cancelled(), before + 1, 'counted as a 499 (client closed request)');
  });

  await t.test('both slots cut at once, one in prefill and one streaming', async (t) => {
    // A long stream (up to the context), so it is still running when the second request arrives on a busy machine.
    const streaming = open(chat, { model: MODEL, messages: [{ role: 'user', content: 'Describe the desktop.' }], max_tokens: 16000, temperature: 1, seed: 6, stream: true });
    t.match(await streaming.firstBytes, /data: /, 'the stream had started');
    const prefill = open(chat, { model: MODEL, messages: [{ role: 'user', content: longPrompt(2, 9000) }], max_tokens: 50, stream: true });
    t.ok(await waitFor(async () => server.engine.inflight === 2, 30_000), 'both reached the engine');
    prefill.destroy();
    streaming.destroy();
    await Promise.all([prefill.closed, streaming.closed]);
    await slotsFree(t, server, 'after two disconnects');
  });

  await t.test('a non-streaming request cut while it runs', async (t) => {
    const before = await cancelled();
    const req = open(chat, { model: MODEL, messages: [{ role: 'user', content: longPrompt(3, 3000) }], max_tokens: 5000, temperature: 1, seed: 7 });
    t.ok(await waitFor(async () => server.engine.inflight === 1, 30_000), 'the request reached the engine');
    req.destroy();
    await req.closed;
    await slotsFree(t, server, 'after a non-streaming disconnect');
    t.equal(await cancelled(), before + 1, 'counted as a 499');
  });
});

t.test('a disconnect while queued frees the queue place', async (t) => {
  const server = await startTestServer(t, { maxBatch: 1, queueSize: 1, maxModelLen: 8192 });
  const chat = `${server.url}/v1/chat/completions`;
  const running = http(chat, 'POST', { model: MODEL, messages: [{ role: 'user', content: 'Describe the desktop.' }], max_tokens: 300, temperature: 1, seed: 8 });
  t.ok(await waitFor(async () => server.engine.inflight === 1, 30_000), 'the first request runs');
  const queued = open(chat, { model: MODEL, messages: [{ role: 'user', content: 'Click OK.' }], max_tokens: 4, stream: true });
  t.ok(await waitFor(async () => server.engine.inflight === 2, 30_000), 'the second one waits in the queue');
  queued.destroy();
  await queued.closed;
  t.equal((await running).status, 200, 'the running request is unaffected');
  t.ok(await waitFor(async () => server.engine.inflight === 0, 30_000), 'nothing in flight');
  const burst = await Promise.all([0, 1].map((i) => http(chat, 'POST', { model: MODEL, messages: [{ role: 'user', content: `Click ${i}.` }], max_tokens: 4 })));
  t.same(burst.map((r) => r.status), [200, 200], 'a running slot and the queue place serve two at once again');
});

t.test('SIGTERM drains a running stream, refuses new connections, exits 0', async (t) => {
  const server = await spawnServer(t, ['--max-model-len', '4096', '--drain-seconds', '30']);
  const streaming = http(`${server.url}/v1/chat/completions`, 'POST', {
    model: MODEL,
    messages: [{ role: 'user', content: 'Describe every icon.' }],
    max_tokens: 3000,
    temperature: 1,
    seed: 9,
    stream: true,
  });
  t.ok(await waitFor(async () => (await metric(server.url, 'uitars_running_sequences')) === 1, 30_000), 'the stream runs');
  process.kill(server.pid, 'SIGTERM');
  t.ok(await waitFor(async () => /SIGTERM: draining/.test(server.output()), 10_000), 'the server logs the drain');
  const during = await new Promise<string>((resolve) => {
    const sock = net.connect(server.port, '127.0.0.1');
    sock.once('connect', () => {
      sock.destroy();
      resolve('connected');
    });
    sock.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  t.equal(during, 'ECONNREFUSED', 'a new connection during the drain is refused');
  const res = await streaming;
  t.equal(res.status, 200);
  const events = sseData(res.text);
  t.equal(events.at(-1), '[DONE]', 'the running stream finished with [DONE]');
  const finish = events
    .filter((e): e is { choices: { finish_reason: string | null }[] } => typeof e === 'object' && e !== null && 'choices' in e)
    .flatMap((e) => e.choices.map((c) => c.finish_reason))
    .filter((r) => r !== null);
  t.equal(finish.length, 1, 'one finish');
  t.ok(finish[0] === 'length' || finish[0] === 'stop', `it finished normally (${finish[0]}), not cut`);
  t.equal(await withTimeout(server.exited, 30_000, 'still running'), 0, 'exit code 0');
});

t.test('SIGTERM with a request longer than --drain-seconds: cut with a 503, and still exit 0', async (t) => {
  const server = await spawnServer(t, ['--max-model-len', '32768', '--drain-seconds', '0.5']);
  // A prompt whose prefill takes seconds, far longer than the drain allows.
  const streaming = http(`${server.url}/v1/chat/completions`, 'POST', {
    model: MODEL,
    messages: [{ role: 'user', content: longPrompt(12, 10_000) }],
    max_tokens: 20,
    stream: true,
  }).then(
    (r) => r.text,
    () => 'connection ended',
  );
  t.ok(await waitFor(async () => /"url":"\/v1\/chat\/completions"[^\n]*"incoming request"/.test(server.output()), 30_000), 'the request arrived');
  process.kill(server.pid, 'SIGTERM');
  const code = await withTimeout(server.exited, 30_000, 'still running');
  t.equal(code, 0, 'exit code 0 after the drain time');
  if (code !== 0) t.comment(server.output().slice(-2500));
  const text = await streaming;
  t.notMatch(text, /"finish_reason":"(length|stop)"/, 'the request did not finish');
  t.match(text, /"code":"server_shutting_down"/, 'the stream says the server stopped it (a retryable 503, not a 500)');
});

t.test('an engine error fails alone', async (t) => {
  const server = await startTestServer(t, { maxBatch: SLOTS, queueSize: 4 });
  const chat = `${server.url}/v1/chat/completions`;
  const tokenize = await http(`${server.url}/tokenize`, 'POST', { messages: [{ role: 'user', content: 'Click OK.' }] });
  const promptIds = (tokenize.json as { tokens: number[] }).tokens;
  const imagePad = 151655; // the tiny checkpoint keeps Qwen2-VL's <|image_pad|> id

  // The HTTP paths that used to reach this engine error are refused up front now.
  const spelled = await http(chat, 'POST', { model: MODEL, messages: [{ role: 'user', content: 'Click <|image_pad|> OK.' }], max_tokens: 2 });
  t.equal(spelled.status, 400, '<|image_pad|> in the text: 400, not an engine error');
  t.equal((spelled.json as { error: { code: string } }).error.code, 'invalid_prompt');
  const tooMany = await http(chat, 'POST', { model: MODEL, messages: [{ role: 'user', content: 'Click OK.' }], max_tokens: 2, n: SLOTS + 1 });
  t.equal(tooMany.status, 400, `n=${SLOTS + 1} over ${SLOTS} slots: 400, not an engine error`);

  // A long stream beside the failing requests.
  const beside = http(chat, 'POST', { model: MODEL, messages: [{ role: 'user', content: 'Describe the desktop.' }], max_tokens: 200, temperature: 1, seed: 11, stream: true });
  t.ok(await waitFor(async () => server.engine.inflight === 1, 30_000), 'the stream runs');

  const bad = (extra: Partial<EngineRequest>): EngineRequest => ({
    promptIds,
    images: [],
    sampling: GREEDY,
    maxTokens: 4,
    stop: [],
    stopTokenIds: [],
    topLogprobs: 0,
    skipSpecialTokens: true,
    ...extra,
  });
  const collect = async (events: AsyncIterable<EngineEvent>): Promise<DoneEvent[]> => {
    const done: DoneEvent[] = [];
    for await (const ev of events) if (ev.type === 'done') done.push(ev);
    return done;
  };
  // A placeholder with no image (what <|image_pad|> in the text made), and n over the slots.
  const placeholder = await collect(server.engine.generate(bad({ promptIds: [...promptIds.slice(0, 3), imagePad, ...promptIds.slice(3)] })));
  t.same(placeholder.map((d) => d.finishReason), ['error'], 'a prompt with a placeholder and no image fails in the engine');
  t.comment(`the engine's error: ${placeholder[0]?.error ?? ''}`);
  const overN = await collect(server.engine.generate(bad({ n: SLOTS + 1 })));
  t.same(overN.map((d) => d.finishReason), Array.from({ length: SLOTS + 1 }, () => 'error'), 'n over the slots fails in the engine');

  const res = await beside;
  t.equal(res.status, 200, 'the stream beside them is unaffected');
  t.equal(sseData(res.text).at(-1), '[DONE]');
  t.notMatch(res.text, /"error"/, 'and carries no error');
  const next = await http(chat, 'POST', { model: MODEL, messages: [{ role: 'user', content: 'Click OK.' }], max_tokens: 4 });
  t.equal(next.status, 200, 'the next request succeeds');
  t.equal((await http(`${server.url}/health`, 'GET')).status, 200, 'healthy');
  t.ok(await waitFor(async () => server.engine.inflight === 0, 10_000), 'nothing left in flight');
});
