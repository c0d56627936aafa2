/**
 * Several model servers (--model-url repeated): real HTTP servers on loopback that implement
 * /v1/models and /v1/chat/completions, one of them stopped in the middle of the run.
 * - least busy first: concurrent calls are spread over both servers, neither ever holding more
 *   than its share of this process's calls in flight;
 * - one server stopped mid-run: every call still succeeds (the calls it dropped or refused go at
 *   once, without backoff, to the other server), it is marked down, and it gets calls again once
 *   it is back and its down time is over;
 * - all of them down: the call fails as an outage (ModelUnavailableError) after its retries;
 * - run-multienv end to end with the live UI-TARS agent on local desktops: two servers that answer
 *   with the os tasks' known solutions, one stopped mid-run: every task is solved (scored 1), none
 *   retried, and both servers had served requests.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import { ModelClient, ModelUnavailableError, type Completion } from '../../../harness/agent/model-client.ts';
import { ModelPool, type ModelServer } from '../../../harness/agent/model-pool.ts';
import { buildProgram, main, modelUrls, normaliseArgv } from '../../../harness/cli/run-multienv.ts';
import type { TaskStatusFile } from '../../../harness/results/status.ts';
import { skipReason } from '../env/desktop-helpers.ts';
import { LOCAL, ORACLES, badFiles, readJson, runArgs, taskList, trajLines, trialOf } from '../run/run-helpers.ts';

interface FakeServer {
  url: string;
  port: number;
  /** Chat requests received / answered; the most in flight at once. */
  received: number;
  answered: number;
  inFlight: number;
  maxInFlight: number;
  stopped: boolean;
  stop(): Promise<void>;
  start(): Promise<void>;
}

type Reply = (body: { messages?: { role: string; content: string | { type: string; text?: string }[] }[] }) => string;

/** A real HTTP server speaking the two routes the harness uses; `onRequest` runs as a chat request arrives. */
async function fakeServer(o: { delayMs: number; reply?: Reply; onRequest?: (s: FakeServer) => void }): Promise<FakeServer> {
  const reply: Reply = o.reply ?? (() => "Thought: ok\nAction: finished(content='ok')");
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/v1/models') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ object: 'list', data: [{ id: 'ui-tars', object: 'model', root: 'test/UI-TARS-2B-SFT' }] }));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.statusCode = 404;
      res.end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      fake.received++;
      fake.inFlight++;
      fake.maxInFlight = Math.max(fake.maxInFlight, fake.inFlight);
      o.onRequest?.(fake);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Parameters<Reply>[0];
      setTimeout(() => {
        fake.inFlight--;
        if (res.destroyed) return;
        fake.answered++;
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: reply(body) }, finish_reason: 'stop' }], usage: { prompt_tokens: 10, completion_tokens: 5 } }));
      }, o.delayMs);
    });
  });
  const fake: FakeServer = {
    url: '',
    port: 0,
    received: 0,
    answered: 0,
    inFlight: 0,
    maxInFlight: 0,
    stopped: false,
    stop: () =>
      new Promise<void>((r) => {
        fake.stopped = true;
        server.close(() => r());
        server.closeAllConnections(); // the requests in flight are dropped, as by a crash
      }),
    start: () =>
      new Promise<void>((r) => {
        fake.stopped = false;
        server.listen(fake.port, '127.0.0.1', () => r());
      }),
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  fake.port = (server.address() as { port: number }).port;
  fake.url = `http://127.0.0.1:${fake.port}/v1`;
  t.teardown(() => (fake.stopped ? undefined : fake.stop()));
  return fake;
}

const MESSAGES = [{ role: 'user', content: 'hello' }];
const SAMPLING = { temperature: 0, maxTokens: 16 };

/** `loops` concurrent callers (one ModelClient each, one shared pool), `calls` calls each. */
async function load(pool: ModelPool, loops: number, calls: number, extra: Partial<ConstructorParameters<typeof ModelClient>[0]> = {}): Promise<Completion[]> {
  const done: Completion[] = [];
  await Promise.all(
    Array.from({ length: loops }, async () => {
      const client = new ModelClient({ pool, model: 'ui-tars', retries: 2, timeoutMs: 10_000, backoffMs: 60_000, ...extra });
      for (let i = 0; i < calls; i++) done.push(await client.chat(MESSAGES, SAMPLING));
    }),
  );
  return done;
}

t.test('flags: --model-url repeated or comma-separated, with --model-urls, deduplicated', async (t) => {
  const p = buildProgram().exitOverride();
  p.parse(normaliseArgv(['--model-url', 'http://a:1/v1', '--model_url', 'http://b:2/v1,http://c:3/v1/', '--model-urls', 'http://a:1/v1', '--model-down-seconds', '5']), { from: 'user' });
  const o = p.opts<Parameters<typeof modelUrls>[0] & { modelDownSeconds: number }>();
  t.same(modelUrls(o), ['http://a:1/v1', 'http://b:2/v1', 'http://c:3/v1']);
  t.equal(o.modelDownSeconds, 5);
  t.same(modelUrls({ serverIp: 'http://127.0.0.1', serverPort: 9000, serverPorts: 2 }), ['http://127.0.0.1:9000/v1', 'http://127.0.0.1:9001/v1'], 'without them: the ARPO port layout');
});

t.test('least busy first: concurrent calls spread over both servers', async (t) => {
  const a = await fakeServer({ delayMs: 20 });
  const b = await fakeServer({ delayMs: 20 });
  const pool = new ModelPool({ urls: [a.url, b.url], downMs: 60_000 });
  const done = await load(pool, 4, 10);
  t.equal(done.length, 40, 'every call answered');
  t.ok(a.answered > 0 && b.answered > 0, `both served: ${a.answered} + ${b.answered}`);
  t.equal(a.answered + b.answered, 40, 'no call was sent twice');
  // 4 callers, least busy first: a server is picked only when it has no more in flight than the
  // other, so neither ever holds more than 2 of the 4 at once.
  t.ok(a.maxInFlight <= 2 && b.maxInFlight <= 2, `most in flight at once: ${a.maxInFlight}, ${b.maxInFlight}`);
  t.same(done.map((c) => c.retries).filter((r) => r > 0), [], 'no retries');
  t.same(pool.stats().map((s) => s.failures), [0, 0]);
});

t.test('one server stopped mid-run: every call succeeds, it is marked down, and used again once back', async (t) => {
  let aAtStop = -1;
  const a = await fakeServer({ delayMs: 15 });
  const b = await fakeServer({
    delayMs: 15,
    onRequest: (s) => {
      if (s.received === 6) {
        aAtStop = a.received;
        void s.stop(); // with this request and any other in flight
      }
    },
  });
  const downs: { url: string; reason: string }[] = [];
  const ups: string[] = [];
  const failovers: string[] = [];
  const pool = new ModelPool({ urls: [a.url, b.url], downMs: 60_000, onDown: (s: ModelServer, reason) => downs.push({ url: s.url, reason }), onUp: (s) => ups.push(s.url) });
  const done = await load(pool, 4, 15, { onFailover: (f) => failovers.push(f.from) });
  t.equal(done.length, 60, 'all 60 calls succeeded');
  t.ok(aAtStop > 0, `both servers had calls while both were up (a: ${aAtStop}, b: 6)`);
  t.ok(b.answered >= 1 && b.answered <= 5, `b answered ${b.answered}, then was stopped with its 6th call in flight`);
  t.equal(a.answered + b.answered, 60, 'a answered the rest: the dropped calls were sent again, none answered twice');
  t.same([...new Set(downs.map((d) => d.url))], [b.url], 'b was marked down');
  t.ok(failovers.length >= 1 && failovers.every((u) => u === b.url), `${failovers.length} call(s) moved from b to a`);
  const retried = done.filter((c) => c.retries > 0);
  t.ok(retried.length >= 1, 'the calls b dropped or refused report a retry');
  t.same(retried.map((c) => c.server), retried.map(() => a.url), 'answered by a');
  t.same(done.map((c) => c.retryWaitMs).filter((w) => w > 0), [], 'without any backoff wait: another server was up');
  t.match(pool.stats(), [{ url: a.url, up: true }, { url: b.url, up: false }]);

  // b comes back: once its down time is over it gets calls again.
  const pool2 = new ModelPool({ urls: [a.url, b.url], downMs: 200, onUp: (s) => ups.push(s.url) });
  pool2.markDown(b.url, 'down at the start');
  await b.start();
  const before = b.answered;
  for (let round = 0; round < 100 && b.answered === before; round++) await load(pool2, 2, 2);
  t.ok(b.answered > before, 'b served calls again after its down time');
  t.same(ups, [b.url], 'and was reported up');
});

t.test('every server down: the call fails as an outage after its retries', async (t) => {
  const a = await fakeServer({ delayMs: 1 });
  const b = await fakeServer({ delayMs: 1 });
  await a.stop();
  await b.stop();
  const retries: string[] = [];
  const client = new ModelClient({ pool: new ModelPool({ urls: [a.url, b.url], downMs: 1000 }), model: 'ui-tars', retries: 1, timeoutMs: 2000, backoffMs: 10, onRetry: (r) => retries.push(r.url) });
  const err = await client.chat(MESSAGES, SAMPLING).then(() => null, (e: unknown) => e);
  t.ok(err instanceof ModelUnavailableError, 'an outage (the runner retries the task, never scores it)');
  await t.rejects(client.chat(MESSAGES, SAMPLING), /model servers .* unavailable after 2 rounds \(\d+ tries\)/);
  const single = new ModelClient({ baseUrl: a.url, model: 'ui-tars', retries: 1, timeoutMs: 2000, backoffMs: 10 });
  await t.rejects(single.chat(MESSAGES, SAMPLING), new RegExp(`model server ${a.url.replace(/[.]/g, '\\.')} unavailable after 2 attempts`), 'one server: the message as before');
  t.ok(retries.length >= 1);
});

t.test('run-multienv with two model servers, one stopped mid-run', { skip: skipReason('xterm') }, async (t) => {
  const IDS = ['local-os-hello-file', 'local-os-make-folder', 'local-os-rename-file', 'local-os-make-executable'];
  // The servers answer with each task's known solution: the step is the number of assistant turns.
  const tasks = IDS.map((id) => ({
    instruction: (JSON.parse(fs.readFileSync(path.join(LOCAL, 'examples/os', `${id}.json`), 'utf8')) as { instruction: string }).instruction,
    responses: (JSON.parse(fs.readFileSync(path.join(ORACLES, `${id}.json`), 'utf8')) as { responses: string[] }).responses,
  }));
  const oracle: Reply = (body) => {
    const messages = body.messages ?? [];
    const text = messages.flatMap((m) => (typeof m.content === 'string' ? [m.content] : m.content.map((c) => c.text ?? ''))).join('\n');
    const task = tasks.find((x) => text.includes(x.instruction));
    const step = messages.filter((m) => m.role === 'assistant').length;
    return task?.responses[step] ?? "Thought: done\nAction: finished(content='done')";
  };
  const a = await fakeServer({ delayMs: 50, reply: oracle });
  let aAtStop = -1;
  const b = await fakeServer({
    delayMs: 50,
    reply: oracle,
    onRequest: (s) => {
      if (s.received === 3) {
        aAtStop = a.received;
        void s.stop();
      }
    },
  });
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const args = runArgs(results, taskList(dir, { os: IDS }), ['--model-url', a.url, '--model-url', b.url, '--num_envs', '2', '--model', 'two-servers', '--max-retries', '0', '--model-retries', '0', '--max-steps', '5']);
  t.equal(await main(args), 0);
  t.ok(aAtStop > 0, `both servers had requests while both were up (a: ${aAtStop}, b: 3)`);
  t.ok(b.stopped, 'b was stopped mid-run');
  const trial = trialOf(results, 'two-servers');
  for (const id of IDS) {
    const task = path.join(trial, 'os', id);
    t.equal(fs.readFileSync(path.join(task, 'result.txt'), 'utf8'), '1\n', `${id}: solved`);
    t.match(readJson<TaskStatusFile>(path.join(task, 'status.json')), { status: 'success', attempts: 1 });
    const calls = trajLines(task).flatMap((l) => (l.model_calls as { error?: string }[] | undefined) ?? []);
    t.same(calls.filter((c) => c.error), [], `${id}: no model call failed`);
  }
  const logs = fs.readdirSync(path.join(trial, 'logs')).map((f) => fs.readFileSync(path.join(trial, 'logs', f), 'utf8')).join('');
  t.match(logs, new RegExp(`model server ${b.url.replace(/[.]/g, '\\.')} marked down for 30\\.0 s`));
  t.match(logs, /model servers: .* ok; .*, down/);
  t.same(await badFiles(trial), []);
});
