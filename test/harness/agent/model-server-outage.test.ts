/**
 * The model server going away during a run (the real server, server/main.ts on the tiny
 * checkpoint, as a child process killed with SIGKILL; the live UI-TARS agent on a real desktop):
 * - back on the same port within the retry budget: the model call is retried with backoff and
 *   succeeds, the task is evaluated, and the retries are reported in traj.jsonl (model_calls),
 *   runtime.log, status.json, the run log and summary.json;
 * - gone for longer than the budget: the task is retried on a fresh env, then recorded as an
 *   infrastructure error without result.txt (never scored), and summary.json says why.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { main } from '../../../harness/cli/run-multienv.ts';
import type { TaskStatusFile } from '../../../harness/results/status.ts';
import type { TrialSummary } from '../../../harness/results/summary.ts';
import { REPO_ROOT } from '../../../server/model/checkpoint/tiny.ts';
import { freePorts } from '../../helpers/server.ts';
import { skipReason } from '../env/desktop-helpers.ts';
import { badFiles, killPid, lastStep, readJson, runArgs, sleep, taskList, trajLines, trialOf, waitFor } from '../run/run-helpers.ts';

const HELLO = 'local-os-hello-file';

async function healthy(url: string): Promise<boolean> {
  try {
    const r = await request(`${url}/health`, { headersTimeout: 2000, bodyTimeout: 2000 });
    await r.body.text();
    return r.statusCode === 200;
  } catch {
    return false;
  }
}

/** The real server as a child process on `port`; resolves once /health answers 200. */
async function startServer(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', '--port', String(port)], {
    cwd: REPO_ROOT,
    env: { ...process.env, MODEL_PATH: '' }, // the embedded tiny checkpoint
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const end = Date.now() + 120_000;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`the server exited ${child.exitCode}: ${stderr}`);
    if (await healthy(`http://127.0.0.1:${port}`)) return child;
    await sleep(200);
  }
  child.kill('SIGKILL');
  throw new Error(`the server did not come up: ${stderr}`);
}

async function crash(child: ChildProcess): Promise<void> {
  const gone = new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r)));
  killPid(child.pid!);
  await gone;
}

t.test('the model server killed and restarted on the same port', { skip: skipReason('xterm') }, async (t) => {
  const [port] = await freePorts(1);
  const url = `http://127.0.0.1:${port}/v1`;
  let server = await startServer(port!);
  t.teardown(() => killPid(server.pid!));
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const list = taskList(dir, { os: [HELLO] });
  const live = ['--model-urls', url, '--max-tokens', '16', '--max-steps', '1'];

  await t.test('back within the retry budget: retried with backoff, evaluated, reported', async (t) => {
    const trial = trialOf(results, 'back');
    const task = path.join(trial, 'os', HELLO);
    // 0.5 s doubling, 8 retries: about two minutes of patience in all.
    const run = main(runArgs(results, list, [...live, '--model', 'back', '--model-retries', '8', '--model-backoff', '0.5', '--max-retries', '0']));
    // The startup check has asked /v1/models when config.json appears; the first model call
    // comes after the env start and the task's setup: the server is down by then.
    t.ok(await waitFor(() => fs.existsSync(path.join(trial, 'config.json')), 60_000), 'the run started');
    await crash(server);
    t.ok(await waitFor(() => lastStep(task) >= 0, 60_000), 'the task reached its first model call');
    await sleep(2000);
    server = await startServer(port!);
    t.equal(await run, 0);

    t.ok(fs.existsSync(path.join(task, 'result.txt')), 'the task was evaluated after the outage');
    const st = readJson<TaskStatusFile>(path.join(task, 'status.json'));
    // The random-weight model's answers do not parse: "client error" -> DONE, as ARPO; not an infrastructure error.
    t.match(st, { status: 'parse_error', attempts: 1 });
    t.ok((st.modelRetries ?? 0) >= 1, `status.json: ${st.modelRetries} model call retries`);
    const step = trajLines(task)[1]!;
    const calls = step.model_calls as { retries?: number; retryWaitMs?: number; retryError?: string }[];
    t.ok((calls[0]?.retries ?? 0) >= 1, 'traj.jsonl: the first call of step 1 was retried');
    t.ok((calls[0]?.retryWaitMs ?? 0) >= 500, 'with backoff');
    t.match(calls[0]?.retryError, /ECONNREFUSED|other side closed|socket/i);
    t.match(fs.readFileSync(path.join(task, 'runtime.log'), 'utf8'), /model server: a call succeeded after \d+ retr(y|ies) \([\d.]+ s of backoff; last error: .*\)/);
    const logs = fs.readdirSync(path.join(trial, 'logs')).map((f) => fs.readFileSync(path.join(trial, 'logs', f), 'utf8')).join('');
    t.match(logs, new RegExp(`model server ${url.replace(/[.]/g, '\\.')}: .*; retry 1/8 in 0\\.5 s`));
    t.match(logs, /1 model call retr(y|ies)|\d+ model call retries/);
    const summary = readJson<TrialSummary>(path.join(trial, 'summary.json'));
    t.ok(summary.recovered.modelRetries >= 1, 'summary.json: model retries counted');
    t.match(summary.recovered.tasks, [{ id: HELLO, status: 'parse_error', attempts: 1 }]);
    t.same(await badFiles(trial), []);
  });

  await t.test('gone for longer than the budget: an infrastructure error, never a score', async (t) => {
    const trial = trialOf(results, 'gone');
    const task = path.join(trial, 'os', HELLO);
    const run = main(runArgs(results, list, [...live, '--model', 'gone', '--model-retries', '1', '--model-backoff', '0.2', '--max-retries', '1']));
    t.ok(await waitFor(() => fs.existsSync(path.join(trial, 'config.json')), 60_000), 'the run started');
    await crash(server);
    t.equal(await run, 0);
    t.notOk(fs.existsSync(path.join(task, 'result.txt')), 'no result.txt');
    const st = readJson<TaskStatusFile>(path.join(task, 'status.json'));
    t.match(st, { status: 'infra_error', score: null, attempts: 2, error: /model server .* unavailable after 2 attempts/ });
    t.equal(st.attemptErrors?.length, 2);
    t.match(trajLines(task).at(-1), { Error: /^Infrastructure error in os\/local-os-hello-file: model server .* unavailable .*\(2 attempts; earlier: / });
    const summary = readJson<TrialSummary>(path.join(trial, 'summary.json'));
    t.match(summary, { scored: 0, statuses: { infra_error: 1 }, unscored: [{ id: HELLO, status: 'infra_error', error: /unavailable/ }], recovered: { taskRetries: 1 } });
    const logs = fs.readdirSync(path.join(trial, 'logs')).map((f) => fs.readFileSync(path.join(trial, 'logs', f), 'utf8')).join('');
    t.match(logs, /retry 1\/1 in 0\.2 s/);
    t.match(logs, /infrastructure error \(attempt 2\/2\): model server/);
    t.same(await badFiles(trial), []);
  });
});
