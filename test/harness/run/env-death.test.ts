/**
 * An env that dies in the middle of a task, on real desktops (replay agent, the hello-file task:
 * click into xterm, type the command, finished):
 * - its Xvfb killed, or its supervisor (the process every app and /execute runs under) killed:
 *   the local provider restarts the desktop empty on the same URL, so the attempt is thrown away
 *   (never evaluated on the empty desktop, which would score 0) and the task is retried on a
 *   fresh env; status.json, runtime.log and summary.json say so;
 * - a remote env server process (bin/env-server.mjs) killed: the task ends as an infrastructure
 *   error without result.txt once the retries are spent; the killed server's desktop does not
 *   outlive it; with the server back on the same port, a rerun finishes the task.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import t, { type Test } from 'tap';
import { main } from '../../../harness/cli/run-multienv.ts';
import type { TaskStatusFile } from '../../../harness/results/status.ts';
import type { TrialSummary } from '../../../harness/results/summary.ts';
import { freePorts } from '../../helpers/server.ts';
import { skipReason } from '../env/desktop-helpers.ts';
import { ENV_SERVER_BIN, ORACLES, badFiles, envProcesses, killPid, lastStep, readJson, runArgs, taskList, trajLines, trialOf, waitFor } from './run-helpers.ts';

const HELLO = 'local-os-hello-file';
const skip = skipReason('xterm');

/** Runs the hello task in-process; when the first attempt reaches `step`, calls `kill`. */
async function runWithKill(t: Test, step: number, kill: () => number | null): Promise<{ code: number; task: string; trial: string; killed: number | null }> {
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const trial = trialOf(results);
  const task = path.join(trial, 'os', HELLO);
  const args = runArgs(results, taskList(dir, { os: [HELLO] }), ['--agent', 'replay', '--replay-dir', ORACLES, '--max-retries', '1']);
  const run = main(args);
  let killed: number | null = null;
  const reached = await waitFor(() => lastStep(task) >= step, 60_000);
  t.ok(reached, `the first attempt reached step ${step}`);
  if (reached) killed = kill();
  const code = await run;
  return { code, task, trial, killed };
}

function checkRetried(t: Test, r: { code: number; task: string; trial: string }, error: RegExp): void {
  t.equal(r.code, 0, 'the run completes');
  t.equal(fs.readFileSync(path.join(r.task, 'result.txt'), 'utf8'), '1\n', 'scored on the retry, not 0 on the emptied desktop');
  const st = readJson<TaskStatusFile>(path.join(r.task, 'status.json'));
  t.match(st, { status: 'success', score: 1, attempts: 2 });
  t.equal(st.attemptErrors?.length, 1);
  t.match(st.attemptErrors?.[0], error, 'the first attempt\'s error is recorded');
  const traj = trajLines(r.task);
  t.equal(traj[0]?.action, 'reset', 'traj.jsonl is the retry\'s alone');
  t.equal(traj.filter((l) => l.action === 'reset').length, 1);
  t.match(fs.readFileSync(path.join(r.task, 'runtime.log'), 'utf8'), /attempt 1 failed \(infrastructure, retried on a fresh env\): .*desktop died/);
  const summary = readJson<TrialSummary>(path.join(r.trial, 'summary.json'));
  t.equal(summary.successRate, 1);
  t.match(summary.recovered, { taskRetries: 1, tasks: [{ id: HELLO, attempts: 2, errors: [error] }] });
  const logs = fs.readdirSync(path.join(r.trial, 'logs')).map((f) => fs.readFileSync(path.join(r.trial, 'logs', f), 'utf8')).join('');
  t.match(logs, /infrastructure error \(attempt 1\/2\): .*desktop died/);
  t.match(logs, /attempt 2 of 2 after infrastructure errors/);
}

t.test('Xvfb killed mid-task: the attempt is dropped and the task retried on a fresh env', { skip }, async (t) => {
  const r = await runWithKill(t, 1, () => {
    const x = envProcesses(`env0-${process.pid}-`).find((p) => /^Xvfb /.test(p.cmdline));
    if (x) killPid(x.pid);
    return x?.pid ?? null;
  });
  t.ok(r.killed, `killed Xvfb ${r.killed}`);
  checkRetried(t, r, /desktop died .*Xvfb exited/);
  t.same(await badFiles(r.trial), []);
  t.same(envProcesses(`env0-${process.pid}-`), [], 'no env process left');
});

t.test('the env supervisor killed after the command ran: retried, not scored 0 on the restored HOME', { skip }, async (t) => {
  // Step 2 typed the command: hello.txt exists. The restarted desktop has a fresh HOME without it.
  const r = await runWithKill(t, 2, () => {
    const sup = envProcesses(`env0-${process.pid}-`).find((p) => /envinit\.py/.test(p.cmdline));
    if (sup) killPid(sup.pid);
    return sup?.pid ?? null;
  });
  t.ok(r.killed, `killed the supervisor ${r.killed}`);
  checkRetried(t, r, /desktop died .*supervisor exited/);
  t.same(await badFiles(r.trial), []);
  t.same(envProcesses(`env0-${process.pid}-`), [], 'no env process left');
});

/** Starts bin/env-server.mjs; resolves with its child process once it prints its URL. */
async function startEnvServer(port: number, token: string): Promise<{ child: ChildProcess; url: string; id: string }> {
  const child = spawn(process.execPath, [ENV_SERVER_BIN, '--port', String(port), '--token', token, '--name', 'remote'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`env-server exited ${code}: ${stderr}`)));
  });
  const info = JSON.parse(line) as { url: string; id: string };
  return { child, url: info.url, id: info.id };
}

t.test('a remote env server killed mid-task: an infrastructure error, never a score; a rerun finishes', { skip }, async (t) => {
  const [port] = await freePorts(1);
  const token = 'test-token-0123456789';
  let server = await startEnvServer(port!, token);
  t.teardown(() => {
    killPid(server.child.pid!, 'SIGTERM');
  });
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const trial = trialOf(results);
  const task = path.join(trial, 'os', HELLO);
  const args = runArgs(results, taskList(dir, { os: [HELLO] }), [
    '--agent', 'replay', '--replay-dir', ORACLES, '--max-retries', '1',
    '--provider', 'remote', '--env-urls', `http://127.0.0.1:${port}`, '--env-token', token,
  ]);
  const run = main(args);
  t.ok(await waitFor(() => lastStep(task) >= 1, 60_000), 'the task reached step 1');
  const exited = new Promise((r) => server.child.once('exit', r));
  killPid(server.child.pid!);
  await exited;
  t.equal(await run, 0, 'the run completes');
  t.notOk(fs.existsSync(path.join(task, 'result.txt')), 'no result.txt: never scored');
  const st = readJson<TaskStatusFile>(path.join(task, 'status.json'));
  t.match(st, { status: 'infra_error', score: null, attempts: 2, error: /ECONNREFUSED|socket|other side closed/ });
  t.match(trajLines(task).at(-1), { Error: /^Infrastructure error in os\/local-os-hello-file: .*\(2 attempts; earlier: / });
  const summary = readJson<TrialSummary>(path.join(trial, 'summary.json'));
  t.match(summary, { scored: 0, statuses: { infra_error: 1 }, unscored: [{ id: HELLO, status: 'infra_error' }], recovered: { taskRetries: 1 } });
  // The killed server's desktop went with it (its supervisor saw the pipe close).
  t.ok(await waitFor(() => envProcesses(server.id).length === 0, 15_000), 'the killed env server left no desktop process');

  server = await startEnvServer(port!, token);
  t.equal(await main(args), 0);
  t.equal(fs.readFileSync(path.join(task, 'result.txt'), 'utf8'), '1\n', 'the rerun finished the task');
  t.match(readJson<TaskStatusFile>(path.join(task, 'status.json')), { status: 'success', attempts: 1 });
  t.same(await badFiles(trial), []);
  const closed = new Promise((r) => server.child.once('exit', r));
  killPid(server.child.pid!, 'SIGTERM');
  await closed;
  t.same(envProcesses(server.id), [], 'SIGTERM closed its desktop');
});
