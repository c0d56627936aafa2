/**
 * Ctrl-C / SIGTERM in the middle of a task (a real `node bin/run-multienv.mjs`, replay agent, a
 * long pause after each action so the signal lands mid-task):
 * - without a queue: exit 130, an "interrupted" line in the run log, summary.json of this run
 *   (marked interrupted; an earlier invocation's summary does not stay), no result for the
 *   interrupted task and no stack trace;
 * - with --queue (a real redis-server): exit 130, no EBADF, and the running task is back in the
 *   queue (waiting, not active with a live lock) as soon as the process has exited.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { Queue, createBunRedisClient } from 'bullmq';
import type { TrialSummary } from '../../../harness/results/summary.ts';
import { defaultQueueName, type TaskJobData, type TaskJobResult } from '../../../harness/run/redis-queue.ts';
import { parseRedisUrl, RespClient } from '../../../harness/run/resp-client.ts';
import { skipReason } from '../env/desktop-helpers.ts';
import { redisSkipReason, startRedis } from './redis-helpers.ts';
import { killPid, ORACLES, readJson, runArgs, runProcess, taskList, trialOf, waitFor } from './run-helpers.ts';

const IDS = ['local-os-hello-file', 'local-os-make-folder'];

/** The first task folder of the trial with a step screenshot (the task is under way). */
const midTask = (trial: string): boolean =>
  IDS.some((id) => {
    const dir = path.join(trial, 'os', id);
    return fs.existsSync(dir) && fs.readdirSync(dir).some((f) => /^step_\d+_/.test(f));
  });

t.test('SIGTERM without a queue: exit 130, the summary of this run marked interrupted, a log line', { skip: skipReason('xterm') }, async (t) => {
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const trial = trialOf(results, 'int');
  fs.mkdirSync(trial, { recursive: true });
  fs.writeFileSync(path.join(trial, 'summary.json'), '{"stale": true}\n');
  const a = runProcess(runArgs(results, taskList(dir, { os: IDS }), ['--agent', 'replay', '--replay-dir', ORACLES, '--model', 'int', '--sleep_after_execution', '5']));
  t.teardown(() => killPid(a.child.pid!));
  t.ok(await waitFor(() => midTask(trial), 90_000), 'a task is under way');
  a.child.kill('SIGTERM');
  const r = await a.exit;
  t.equal(r.code, 130, 'exit 130');
  t.notMatch(a.out(), /EBADF|\n\s+at /, 'no error, no stack trace');
  const summary = readJson<TrialSummary & { stale?: boolean }>(path.join(trial, 'summary.json'));
  t.notOk(summary.stale, 'the earlier summary was replaced');
  t.match(summary, { version: 2, tasks: 2, interrupted: { signal: 'SIGTERM' } });
  t.equal(summary.scored, 0, 'the interrupted task has no result');
  const logs = fs.readdirSync(path.join(trial, 'logs'));
  t.equal(logs.length, 1);
  t.match(fs.readFileSync(path.join(trial, 'logs', logs[0]!), 'utf8'), /SIGTERM: interrupted[^\n]*\n(.*\n)*.*interrupted by SIGTERM/, 'the run log says so');
  t.notOk(fs.existsSync(path.join(trial, 'run.lock')), 'the lock is released');
});

t.test('SIGINT with --queue: exit 130 and the running task is back in the queue at once', { skip: redisSkipReason() || skipReason('xterm') }, async (t) => {
  const redis = await startRedis(t);
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const trial = trialOf(results, 'qint');
  const client = createBunRedisClient(new RespClient(parseRedisUrl(redis.url)));
  const jobs = new Queue<TaskJobData, TaskJobResult>(defaultQueueName({ resultDir: results, actionSpace: 'pyautogui', observationType: 'screenshot', model: 'qint', trialId: '0' }), { connection: client });
  t.teardown(async () => {
    await jobs.close();
    client.disconnect();
  });
  const a = runProcess(
    runArgs(results, taskList(dir, { os: IDS }), ['--agent', 'replay', '--replay-dir', ORACLES, '--model', 'qint', '--sleep_after_execution', '5', '--queue', redis.url, '--queue-lock-seconds', '30']),
  );
  t.teardown(() => killPid(a.child.pid!));
  t.ok(await waitFor(() => midTask(trial), 90_000), 'a task is under way');
  a.child.kill('SIGINT');
  const r = await a.exit;
  t.equal(r.code, 130, 'exit 130');
  t.notMatch(a.out(), /EBADF|\n\s+at /, 'no error, no stack trace');
  t.match(a.out(), /handed 1 running task\(s\) back/);
  t.equal((await jobs.getJobs(['active'])).length, 0, 'no task is left claimed by the stopped process');
  t.equal((await jobs.getJobs(['waiting'])).length, 2, 'both tasks wait for another process');
  t.match(readJson<TrialSummary>(path.join(trial, 'summary.json')), { interrupted: { signal: 'SIGINT' } });
  t.same(fs.readdirSync(trial).filter((f) => /^queue-|^run\.lock$/.test(f)), [], 'no membership file left');
});
