/**
 * The Redis task queue (--queue) on a real redis-server (Debian's, started here on a free port):
 * - the RESP client BullMQ runs on: replies in call order, errors, nil, binary-safe values;
 * - the queue's rules, two queue clients standing for two processes: a task key is queued once
 *   (putting it in again is a no-op), each take gets another task, a task that ended without a
 *   result is put back by the next start, a completed one stays done unless its result.txt is
 *   gone, and a claim whose holder stops renewing it (a crash) goes to the other one;
 * - two real harness processes (node bin/run-multienv.mjs, replay agent, os tasks on local
 *   desktops) sharing one trial: each task runs exactly once (one result.txt each, scored 1),
 *   each process's log names the tasks it ran, together they cover the list and no task is in
 *   both; a rerun redoes a removed result, and only that; a run without --queue is refused
 *   while a queue process is on the trial;
 * - a process killed with SIGKILL in the middle of a task: its task goes back to the queue and
 *   the other process runs it to its one result.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { Queue, createBunRedisClient } from 'bullmq';
import type { TrialPath } from '../../../harness/results/layout.ts';
import type { TrialSummary } from '../../../harness/results/summary.ts';
import { defaultQueueName, RedisTaskQueue, type TaskJobData, type TaskJobResult } from '../../../harness/run/redis-queue.ts';
import { parseRedisUrl, redactRedisUrl, RespClient } from '../../../harness/run/resp-client.ts';
import { sharedTrialToken } from '../../../harness/run/shared-trial.ts';
import type { TaskRecord, TaskSource } from '../../../harness/run/run-trial.ts';
import { loadTask, type LoadedTask } from '../../../harness/tasks/load-tasks.ts';
import { skipReason } from '../env/desktop-helpers.ts';
import { redisSkipReason, startRedis } from './redis-helpers.ts';
import { badFiles, killPid, LOCAL, ORACLES, readJson, runArgs, runProcess, taskList, trialOf, waitFor, walk } from './run-helpers.ts';

const noRedis = redisSkipReason();
const noDesktop = noRedis || skipReason('xterm');

const trialPath = (resultDir: string, model: string): TrialPath => ({ resultDir, actionSpace: 'pyautogui', observationType: 'screenshot', model, trialId: '0' });

function loaded(id: string): LoadedTask {
  const l = loadTask(LOCAL, { domain: 'os', id });
  if ('error' in l) throw new Error(l.error);
  return l;
}

const scored = (task: LoadedTask): TaskRecord => ({ domain: task.domain, id: task.id, status: 'scored', outcome: 'success', score: 1, attempts: 1, seconds: 0 });
const errored = (task: LoadedTask): TaskRecord => ({ domain: task.domain, id: task.id, status: 'error', outcome: 'infra_error', error: 'env died', attempts: 1, seconds: 0 });

/** A BullMQ queue handle of the test's own (to look at jobs, pause and resume). */
function inspect(t: Test, url: string, name: string): Queue<TaskJobData, TaskJobResult> {
  const client = createBunRedisClient(new RespClient(parseRedisUrl(url)));
  const q = new Queue<TaskJobData, TaskJobResult>(name, { connection: client });
  t.teardown(async () => {
    await q.close();
    client.disconnect();
  });
  return q;
}

t.test('the RESP client BullMQ runs on', { skip: noRedis }, async (t) => {
  const redis = await startRedis(t);
  t.match(parseRedisUrl('redis://u:p%40ss@example:7000/2'), { host: 'example', port: 7000, username: 'u', password: 'p@ss', db: 2, tls: false });
  t.match(parseRedisUrl('rediss://example'), { port: 6379, tls: true });
  t.throws(() => parseRedisUrl('http://example:6379'), /not a Redis URL/);
  t.equal(redactRedisUrl('redis://u:secret@example:1/0'), 'redis://u:***@example:1/0');

  const c = new RespClient(parseRedisUrl(`${redis.url}/3`));
  await c.connect();
  t.equal(await c.send('SET', ['k', 'v']), 'OK');
  t.equal(await c.get('k'), 'v');
  t.equal(await c.get('absent'), null);
  t.same(await Promise.all([c.incr('n'), c.incr('n'), c.incr('n')]), [1, 2, 3], 'pipelined calls get their own replies, in order');
  await t.rejects(c.send('NOSUCHCOMMAND', []), /unknown command/i, 'an error reply rejects the call');
  const big = `${'x'.repeat(300_000)}é\r\n`;
  await c.send('SET', ['big', Buffer.from(big)]);
  t.equal(await c.get('big'), big, 'a large value with CRLF and UTF-8 round-trips');
  t.same(await c.send('MGET', ['k', 'absent']), ['v', null]);
  const other = new RespClient(parseRedisUrl(redis.url));
  await other.connect();
  t.equal(await other.get('k'), null, 'the /3 of the URL selected database 3');
  other.close();
  c.close();
  await t.rejects(c.send('PING', []), /Connection is closed/);
});

t.test('the queue: one job per task key, shared takes, results put back, crashed claims taken over, lost claims, finished tasks not rerun', { skip: noRedis }, async (t) => {
  const redis = await startRedis(t);
  const dir = t.testdir({});
  const trial = trialPath(path.join(dir, 'results'), 'unit');
  const name = defaultQueueName(trial);
  t.equal(name, 'osworld/pyautogui/screenshot/unit/0', "the queue is named after the trial's result path");
  const tasks = ['local-os-hello-file', 'local-os-make-folder', 'local-os-rename-file'].map(loaded);
  const load = (ref: { domain: string; id: string }) => loadTask(LOCAL, ref);
  const resultFile = (task: LoadedTask): string => path.join(trial.resultDir, 'pyautogui/screenshot/unit/0', task.domain, task.id, 'result.txt');
  const writeResult = (task: LoadedTask): void => {
    fs.mkdirSync(path.dirname(resultFile(task)), { recursive: true });
    fs.writeFileSync(resultFile(task), '1\n');
  };
  const logs: string[] = [];
  const make = (id: string, o: { lockMs?: number; hash?: string; queue?: string } = {}): RedisTaskQueue => {
    const q = new RedisTaskQueue({ url: redis.url, name: o.queue ?? name, trial, lockMs: o.lockMs ?? 1000, pollMs: 100, id, taskSetHash: o.hash ?? 'h1', log: (l) => logs.push(`${id} ${l}`) });
    t.teardown(() => q.close());
    return q;
  };
  const jobs = inspect(t, redis.url, name);

  // Two processes join with the same list: the second adds nothing.
  const a = make('A');
  const b = make('B');
  const sa = await a.open([...tasks], load);
  const sb = await b.open([...tasks], load);
  t.equal((await jobs.getJobs(['waiting'])).length, 3, 'three tasks, three jobs');
  t.match(logs.find((l) => l.startsWith('B queue')), /joined as B; 0 task\(s\) added, 0 put back .*, 3 already queued or running/);
  const f = make('F', { hash: 'h2' });
  await t.rejects(f.connect(), /holds 3 task\(s\) of another task set/, 'a process with another task set is refused while the queue has work');
  await f.close();

  const t1 = (await sa.take(0))!;
  const t2 = (await sb.take(0))!;
  const t3 = (await sa.take(1))!;
  t.same([t1, t2, t3].map((x) => x.task.id).sort(), tasks.map((x) => x.id).sort(), 'each take got another task');
  writeResult(t1.task); // result.txt is written before the job completes
  await t1.finished(scored(t1.task));
  await t2.finished(errored(t2.task)); // ended without a result: the job fails
  writeResult(t3.task);
  await t3.finished(scored(t3.task));
  t.equal(await sa.take(0), null, 'nothing left: the take ends');
  t.equal(await sb.take(0), null);
  t.match((await jobs.getJob(`os/${t1.task.id}`))?.returnvalue, { outcome: 'success', score: 1, by: 'A' }, 'the job says who ran it');
  t.equal(await (await jobs.getJob(`os/${t2.task.id}`))?.getState(), 'failed');
  // A and B end.
  await a.close();
  await b.close();

  // A later start: the failed task and the one whose result.txt is gone go back, the finished one stays done.
  fs.rmSync(resultFile(t3.task));
  const c = make('C', { lockMs: 600 });
  const sc = await c.open([...tasks], load);
  t.match(logs.find((l) => l.startsWith('C queue')), /0 task\(s\) added, 2 put back \(ended without a result\), 1 already queued or running/);
  t.equal(await (await jobs.getJob(`os/${t1.task.id}`))?.getState(), 'completed', 'the finished task is not queued again');

  // C takes a task and dies (its claim is no longer renewed): the task goes to D.
  const x = (await sc.take(0))!;
  await c.close();
  const d = make('D', { lockMs: 600 });
  const sd = await d.open([...tasks], load);
  const y = (await sd.take(0))!;
  t.not(y.task.id, x.task.id, 'D first gets the task nobody has');
  writeResult(y.task);
  await y.finished(scored(y.task));
  const x2 = (await sd.take(0))!;
  t.equal(x2.task.id, x.task.id, "then the dead process's task, once its claim expired");
  t.match(logs.join('\n'), new RegExp(`D \\[env 0\\] queue: took os/${x.task.id} \\(back in the queue after 1 stalled run\\(s\\)\\)`));
  writeResult(x2.task);
  await x2.finished(scored(x2.task));
  t.equal(await sd.take(0), null);
  for (const task of tasks) t.equal(await (await jobs.getJob(`os/${task.id}`))?.getState(), 'completed', `${task.id}: completed`);

  // A process whose claim is taken from it (here: its lock removed) is told, and completes nothing.
  fs.rmSync(resultFile(tasks[0]!)); // unfinished, or the taker would complete its job unrun
  const e = make('E', { lockMs: 600, queue: `${name}-lost` });
  const se = await e.open([tasks[0]!], load);
  const z = (await se.take(0))!;
  const meta = new RespClient(parseRedisUrl(redis.url));
  await meta.connect();
  await meta.send('DEL', [`bull:${name}-lost:os/${z.task.id}:lock`]);
  meta.close();
  t.ok(await waitFor(() => z.lost?.aborted === true, 10_000), 'the claim is reported lost');
  t.match(logs.join('\n'), /E \[env 0\] queue: lost os\/local-os-hello-file: its lock was taken over/);
  await z.finished(scored(z.task));
  const lostJobs = inspect(t, redis.url, `${name}-lost`);
  t.not(await (await lostJobs.getJob(`os/${z.task.id}`))?.getState(), 'completed', 'a lost claim does not complete the job');

  // A task whose result.txt was written just before it was handed back: the next taker completes
  // its job and does not run it again (that would clear the finished result).
  fs.rmSync(resultFile(tasks[1]!), { force: true });
  const g = make('G', { queue: `${name}-done` });
  const sg = await g.open([tasks[1]!], load);
  const w = (await sg.take(0))!;
  writeResult(w.task);
  await g.abandon();
  const h = make('H', { queue: `${name}-done` });
  const sh = await h.open([tasks[1]!], load);
  t.equal(await sh.take(0), null, 'nothing is run');
  const doneJobs = inspect(t, redis.url, `${name}-done`);
  t.match((await doneJobs.getJob(`os/${w.task.id}`))?.returnvalue, { outcome: 'success', score: 1, by: 'H' }, 'the job is completed with its result');
  t.match(logs.join('\n'), /H \[env 0\] queue: os\/local-os-make-folder already has its result\.txt; completed without running it again/);
  t.equal(fs.readFileSync(resultFile(w.task), 'utf8'), '1\n', 'the result stays');
});

t.test('two unrelated trials whose queue names collide: the second is refused; one trial folder seen through two paths is one trial', { skip: noRedis }, async (t) => {
  const redis = await startRedis(t);
  const dir = t.testdir({ one: {}, other: {} });
  const trialA = trialPath(path.join(dir, 'one', 'results'), 'same');
  const trialB = trialPath(path.join(dir, 'other', 'results'), 'same');
  const name = defaultQueueName(trialA);
  t.equal(defaultQueueName(trialB), name, 'the default names collide');
  const make = (trial: TrialPath, id: string): RedisTaskQueue => {
    const trialDir = path.join(trial.resultDir, 'pyautogui/screenshot/same/0');
    fs.mkdirSync(trialDir, { recursive: true });
    const q = new RedisTaskQueue({ url: redis.url, name, trial, lockMs: 1000, pollMs: 100, id, taskSetHash: 'h', trialToken: sharedTrialToken(trialDir), log: () => {} });
    t.teardown(() => q.close());
    return q;
  };
  const a = make(trialA, 'A');
  await a.open([loaded('local-os-hello-file')], (ref) => loadTask(LOCAL, ref));
  const b = make(trialB, 'B');
  await t.rejects(b.connect(), /holds 1 task\(s\) of another trial folder .*give another --queue-name/, 'an unrelated run is refused while the queue has work');
  // Another machine mounts the same results elsewhere: here, a symlink to the same folder.
  fs.symlinkSync(path.join(dir, 'one'), path.join(dir, 'mount'));
  const c = make(trialPath(path.join(dir, 'mount', 'results'), 'same'), 'C');
  await c.connect();
  t.pass('a process on the same trial folder through another path joins');
});

/** The "this process ran" line of a run: its id (host-pid) and tasks. */
function ranBy(out: string): { id: string; tasks: string[] } {
  const m = /queue \S+: this process \((\S+)\) ran (\d+) task\(s\)(?:: (.*))?$/m.exec(out);
  if (!m) return { id: '', tasks: [] };
  return { id: m[1]!, tasks: m[3] ? m[3].trim().split(', ') : [] };
}

const joined = /queue \S+ at redis:\/\/\S+: joined as /;

t.test('two harness processes share one trial through the queue: every task runs once', { skip: noDesktop }, async (t) => {
  const redis = await startRedis(t);
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const IDS = ['local-os-hello-file', 'local-os-make-folder', 'local-os-rename-file', 'local-os-copy-to-documents', 'local-os-count-rows', 'local-os-make-executable', 'local-os-delete-logs', 'local-os-infeasible-printer'];
  const KEYS = IDS.map((id) => `os/${id}`);
  const list = taskList(dir, { os: IDS });
  const trial = trialOf(results, 'shared');
  const jobs = inspect(t, redis.url, defaultQueueName(trialPath(results, 'shared')));
  const args = (envs: number): string[] => runArgs(results, list, ['--agent', 'replay', '--replay-dir', ORACLES, '--model', 'shared', '--num_envs', String(envs), '--queue', redis.url]);

  // The queue is paused until both processes are in, so that both get tasks.
  await jobs.pause();
  const a = runProcess(args(2));
  const b = runProcess(args(1));
  t.teardown(() => {
    killPid(a.child.pid!);
    killPid(b.child.pid!);
  });
  t.ok(await waitFor(() => joined.test(a.out()) && joined.test(b.out()), 90_000), 'both processes joined the queue');
  t.match(a.out() + b.out(), /8 task\(s\) added/, 'the first one put the eight tasks in');
  t.match(a.out() + b.out(), /0 task\(s\) added, 0 put back .*, 8 already queued or running/, 'the second one added none');
  await jobs.resume();
  const [ra, rb] = await Promise.all([a.exit, b.exit]);
  t.equal(ra.code, 0, 'process A exits 0');
  t.equal(rb.code, 0, 'process B exits 0');
  if (ra.code !== 0 || rb.code !== 0) t.comment(`A:\n${a.out()}\nB:\n${b.out()}`);

  const A = ranBy(a.out());
  const B = ranBy(b.out());
  t.ok(A.id && B.id && A.id !== B.id, `two processes: ${A.id}, ${B.id}`);
  t.ok(A.tasks.length > 0 && B.tasks.length > 0, `both ran tasks: A ${A.tasks.length}, B ${B.tasks.length}`);
  t.same(A.tasks.filter((k) => B.tasks.includes(k)), [], 'no task ran in both');
  t.same([...A.tasks, ...B.tasks].sort(), [...KEYS].sort(), 'together they ran every task, each once');
  // Each process's own log file names the tasks it took and ran (and no other).
  const logFiles = fs.readdirSync(path.join(trial, 'logs'));
  t.equal(logFiles.length, 2, 'one log per process');
  for (const p of [A, B]) {
    const file = logFiles.find((f) => f.endsWith(`-${p.id}.log`));
    t.ok(file, `${p.id} has its log`);
    const text = fs.readFileSync(path.join(trial, 'logs', file!), 'utf8');
    const took = [...text.matchAll(/\] queue: took (\S+)/g)].map((m) => m[1]!);
    t.same(took.sort(), [...p.tasks].sort(), `${p.id}'s log: the tasks it took are the tasks it ran`);
    for (const k of p.tasks) t.match(text, new RegExp(`\\[env \\d\\] ${k}: 1 success`), `${p.id}'s log: ${k} scored`);
  }

  // One result per task, scored 1; in Redis every job completed after one run, by the process that logged it.
  const resultFiles = walk(trial).filter((f) => path.basename(f) === 'result.txt').sort();
  t.same(resultFiles, KEYS.map((k) => path.join(trial, k, 'result.txt')).sort(), 'exactly one result.txt per task');
  for (const f of resultFiles) t.equal(fs.readFileSync(f, 'utf8'), '1\n');
  for (const k of KEYS) {
    const job = await jobs.getJob(k);
    t.equal(await job?.getState(), 'completed', `${k}: job completed`);
    t.equal(job?.attemptsStarted, 1, `${k}: taken once`);
    t.equal(job?.returnvalue.by, A.tasks.includes(k) ? A.id : B.id, `${k}: completed by the process that ran it`);
  }
  const summary = readJson<TrialSummary>(path.join(trial, 'summary.json'));
  t.match(summary, { successRate: 1, statuses: { success: IDS.length, not_run: 0 } });
  t.same(await badFiles(trial), [], 'no temporary file, torn traj line, broken PNG or JSON');
  t.same(fs.readdirSync(trial).filter((f) => /^queue-|^run\.lock$/.test(f)), [], 'no membership or lock file left');

  // A rerun with one result removed redoes that task only.
  fs.rmSync(path.join(trial, KEYS[0]!, 'result.txt'));
  const d = runProcess(args(2));
  t.equal((await d.exit).code, 0);
  t.match(d.out(), /0 task\(s\) added, 1 put back/);
  t.same(ranBy(d.out()).tasks, [KEYS[0]], 'the task without result.txt is redone, alone (the finished ones are not queued again)');
  t.equal(fs.readFileSync(path.join(trial, KEYS[0]!, 'result.txt'), 'utf8'), '1\n');
  t.equal((await jobs.getJob(KEYS[0]!))?.attemptsStarted, 2);

  // A run without --queue is refused while a queue process works on the trial (here: waiting on the paused queue).
  fs.rmSync(path.join(trial, KEYS[1]!, 'result.txt'));
  await jobs.pause();
  const e = runProcess(args(1));
  t.teardown(() => killPid(e.child.pid!));
  t.ok(await waitFor(() => joined.test(e.out()), 90_000), 'a queue process is on the trial');
  const plain = runProcess(runArgs(results, list, ['--agent', 'replay', '--replay-dir', ORACLES, '--model', 'shared']));
  t.equal((await plain.exit).code, 1, 'a plain run is refused while the trial is shared');
  t.match(plain.out(), /is shared through a queue by 1 running process/);
  await jobs.resume();
  t.equal((await e.exit).code, 0);
  t.same(ranBy(e.out()).tasks, [KEYS[1]]);
});

t.test('a process killed with SIGKILL in the middle of a task: the other process takes the task over', { skip: noDesktop }, async (t) => {
  const redis = await startRedis(t);
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const IDS = ['local-os-hello-file', 'local-os-make-folder', 'local-os-rename-file'];
  const list = taskList(dir, { os: IDS });
  const trial = trialOf(results, 'crash');
  const jobs = inspect(t, redis.url, defaultQueueName(trialPath(results, 'crash')));
  const args = runArgs(results, list, ['--agent', 'replay', '--replay-dir', ORACLES, '--model', 'crash', '--num_envs', '1', '--queue', redis.url, '--queue-lock-seconds', '2']);

  const a = runProcess(args);
  t.teardown(() => killPid(a.child.pid!));
  // Killed once its first task has written its first screenshot (the task is under way, far from its result).
  let victim = '';
  t.ok(
    await waitFor(() => {
      const m = /\] queue: took (\S+)/.exec(a.out());
      if (!m) return false;
      victim = m[1]!;
      return fs.existsSync(path.join(trial, victim)) && fs.readdirSync(path.join(trial, victim)).some((f) => f.startsWith('step_reset_'));
    }, 90_000),
    'process A is in the middle of a task',
  );
  a.child.kill('SIGKILL');
  await a.exit;
  t.notOk(fs.existsSync(path.join(trial, victim, 'result.txt')), `${victim}: killed before its result`);
  t.equal(await (await jobs.getJob(victim))?.getState(), 'active', 'its job is still claimed by the dead process');

  const b = runProcess(args);
  t.teardown(() => killPid(b.child.pid!));
  const rb = await b.exit;
  t.equal(rb.code, 0, 'process B exits 0');
  if (rb.code !== 0) t.comment(b.out());
  const B = ranBy(b.out());
  t.match(b.out(), new RegExp(`queue: took ${victim} \\(back in the queue after 1 stalled run\\(s\\)\\)`), "B took over the dead process's task");
  t.ok(B.tasks.includes(victim), `B ran ${victim}`);
  const resultFiles = walk(trial).filter((f) => path.basename(f) === 'result.txt').sort();
  t.same(resultFiles, IDS.map((id) => path.join(trial, 'os', id, 'result.txt')).sort(), 'exactly one result.txt per task');
  for (const f of resultFiles) t.equal(fs.readFileSync(f, 'utf8'), '1\n');
  const job = await jobs.getJob(victim);
  t.equal(job?.attemptsStarted, 2, `${victim}: run twice, once to its result`);
  t.equal(job?.returnvalue.by, B.id);
  t.same(await badFiles(trial), [], "no file of the killed run's attempt is left half-written");
  t.same(fs.readdirSync(trial).filter((f) => f.startsWith('queue-')), [], "the dead process's membership file was swept");
});
