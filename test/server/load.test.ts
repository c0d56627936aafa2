/**
 * Load: 64 concurrent clients against a small bounded queue (2 running, 4 waiting). Every
 * answer is a 200 or a 429 in OpenAI's shape with a Retry-After; nothing else, no collapse.
 * Clients that honour Retry-After all get served. Afterwards the server is healthy, nothing is
 * left in flight, and its resident memory stayed bounded during the load and came back near its
 * start. The server runs in its own process (its memory is its own).
 */
import t from 'tap';
import { assertOpenAIError, dataUrl, http, imagePart, metric, MODEL, screenshotPng, sseData, spawnServer, type HttpResult } from '../helpers/server.ts';

const CLIENTS = 64;
const SLOTS = 2;
const QUEUE = 4;
const server = await spawnServer(t, ['--max-num-seqs', String(SLOTS), '--queue-size', String(QUEUE), '--max-model-len', '2048', '--drain-seconds', '1']);
const CHAT = `${server.url}/v1/chat/completions`;
const rss = () => metric(server.url, 'uitars_process_resident_memory_bytes');
const screenshots = await Promise.all([1, 2, 3, 4].map((seed) => screenshotPng(100 + seed, 448, 252)));

/** Request i: text, an image, or a stream, in turn. */
function body(i: number): Record<string, unknown> {
  const base = { model: MODEL, max_tokens: 8, temperature: 1, seed: i };
  if (i % 3 === 0) return { ...base, messages: [{ role: 'user', content: `Step ${i}: click the OK button.` }] };
  if (i % 3 === 1) return { ...base, messages: [{ role: 'user', content: [imagePart(dataUrl(screenshots[i % 4]!)), { type: 'text', text: `Step ${i}: what is on the screen?` }] }] };
  return { ...base, stream: true, messages: [{ role: 'user', content: `Step ${i}: describe the screen.` }] };
}

interface Tally {
  ok: number;
  busy: number;
  other: string[];
  retryAfter: number[];
}

function record(tally: Tally, res: HttpResult, i: number): void {
  if (res.status === 200) {
    tally.ok++;
    if (i % 3 === 2 && sseData(res.text).at(-1) !== '[DONE]') tally.other.push(`stream ${i} did not end with [DONE]`);
  } else if (res.status === 429) {
    tally.busy++;
    tally.retryAfter.push(Number(res.headers['retry-after']));
  } else {
    tally.other.push(`HTTP ${res.status}: ${res.text.slice(0, 200)}`);
  }
}

let rssStart = 0;
let rssPeak = 0;
let sampling = true;
t.teardown(() => {
  sampling = false;
});
const sampler = (async () => {
  while (sampling) {
    rssPeak = Math.max(rssPeak, await rss().catch(() => 0));
    await new Promise((r) => setTimeout(r, 200));
  }
})();

t.test('warm-up', async (t) => {
  for (let i = 0; i < 3; i++) t.equal((await http(CHAT, 'POST', body(i))).status, 200);
  rssStart = await rss();
});

t.test(`${CLIENTS} clients at once, 3 requests each: 200 or 429 with Retry-After, nothing else`, async (t) => {
  const tally: Tally = { ok: 0, busy: 0, other: [], retryAfter: [] };
  const busyShapes: HttpResult[] = [];
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      for (let k = 0; k < 3; k++) {
        const i = c * 3 + k;
        const res = await http(CHAT, 'POST', body(i));
        record(tally, res, i);
        if (res.status === 429 && busyShapes.length < 3) busyShapes.push(res);
      }
    }),
  );
  t.same(tally.other, [], 'no answer other than 200 and 429');
  t.equal(tally.ok + tally.busy, CLIENTS * 3, 'every request was answered');
  t.ok(tally.ok >= SLOTS, `${tally.ok} served`);
  t.ok(tally.busy > 0, `${tally.busy} turned away with 429`);
  t.ok(tally.retryAfter.every((s) => Number.isInteger(s) && s >= 1 && s <= 60), 'every 429 has a Retry-After of 1 to 60 seconds');
  for (const res of busyShapes) {
    const err = assertOpenAIError(t, res, 429, '429');
    t.equal(err.type, 'rate_limit_error');
    t.equal(err.code, 'server_busy');
  }
  t.comment(`wave 1: ${tally.ok} served, ${tally.busy} got 429`);
});

t.test(`${CLIENTS} clients that honour Retry-After are all served`, async (t) => {
  const attempts: number[] = [];
  const results = await Promise.all(
    Array.from({ length: CLIENTS }, async (_, c) => {
      for (let attempt = 1; attempt <= 40; attempt++) {
        const res = await http(CHAT, 'POST', body(1000 + c));
        if (res.status !== 429) {
          attempts.push(attempt);
          return res.status;
        }
        // Wait what the server asked, plus jitter so the retries spread out.
        const wait = Number(res.headers['retry-after']) * 1000 * (1 + Math.random());
        await new Promise((r) => setTimeout(r, wait));
      }
      return 429;
    }),
  );
  t.same(results, Array.from({ length: CLIENTS }, () => 200), 'every client got its answer');
  t.comment(`attempts per client: max ${Math.max(...attempts)}, mean ${(attempts.reduce((a, b) => a + b, 0) / attempts.length).toFixed(1)}`);
});

t.test('afterwards: healthy, nothing in flight, memory bounded and back near the start', async (t) => {
  t.equal((await http(`${server.url}/health`, 'GET')).status, 200, '/health is 200');
  t.equal(await metric(server.url, 'uitars_running_sequences'), 0, 'nothing running');
  t.equal(await metric(server.url, 'uitars_queue_depth'), 0, 'nothing queued');
  const burst = await Promise.all(Array.from({ length: SLOTS + QUEUE }, (_, i) => http(CHAT, 'POST', body(3 * i))));
  t.same(burst.map((r) => r.status), Array.from({ length: SLOTS + QUEUE }, () => 200), `a burst of ${SLOTS + QUEUE} (running + waiting room) is all served`);
  sampling = false;
  await sampler;
  const rssEnd = await rss();
  const mib = (b: number) => Math.round(b / 2 ** 20);
  t.comment(`RSS: ${mib(rssStart)} MiB at the start, peak ${mib(rssPeak)} MiB, ${mib(rssEnd)} MiB at the end`);
  t.ok(rssPeak - rssStart < 512 * 2 ** 20, `the peak stayed within 512 MiB of the start (+${mib(rssPeak - rssStart)} MiB)`);
  t.ok(rssEnd - rssStart < 256 * 2 ** 20, `the end is within 256 MiB of the start (+${mib(rssEnd - rssStart)} MiB)`);
  const metrics = (await http(`${server.url}/metrics`, 'GET')).text;
  t.notMatch(metrics, /uitars_requests_total\{status="5(?!03)\d\d"\}/, 'no 5xx');
});
