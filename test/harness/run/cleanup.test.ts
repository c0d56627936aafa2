/**
 * What a killed run leaves and who removes it (harness/run/cleanup.ts, trial-lock.ts), on real
 * files and real processes: temp files of dead writers (also a reused pid: this process's own,
 * or a live process younger than the file), stale env dirs with a process still running in
 * them, half-built HOME templates, evaluation scratch dirs; the trial lock; task lists with a
 * task named twice.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ownerGone, processStartMs, sweepEvalScratch, sweepStaleEnvs, sweepTempFiles } from '../../../harness/run/cleanup.ts';
import { acquireTrialLock, LOCK_FILE, TrialBusyError } from '../../../harness/run/trial-lock.ts';
import { loadTaskList } from '../../../harness/tasks/load-tasks.ts';
import { sleep, waitFor } from './run-helpers.ts';

/** A pid that is certainly not running (a child that has exited). */
async function deadPid(): Promise<number> {
  const c = spawn('true');
  await new Promise((r) => c.once('exit', r));
  return c.pid!;
}

const OLD = new Date('2001-01-01T00:00:00Z');

t.test('process start times and owners', async (t) => {
  const start = processStartMs(process.pid);
  t.ok(start !== null && start <= Date.now() && start > Date.now() - 3600_000, 'this process started within the hour');
  t.notOk(ownerGone(process.ppid, Date.now()), 'a live process older than the write owns it');
  t.ok(ownerGone(process.ppid, OLD.getTime()), 'a live process younger than the write is a reused pid');
  t.ok(ownerGone(await deadPid(), Date.now()), 'a dead pid');
});

t.test('temp files: dead writers, reused pids and this process\'s own pid are swept', async (t) => {
  const dead = await deadPid();
  const dir = t.testdir({
    a: {
      [`x.png.tmp-${dead}-abc123`]: 'x',
      [`y.png.tmp-${process.pid}-abc123`]: 'y',
      [`z.png.tmp-${process.ppid}-abc123`]: 'z',
      [`old.png.tmp-${process.ppid}-abc123`]: 'o',
      'keep.png': 'k',
    },
  });
  fs.utimesSync(path.join(dir, 'a', `old.png.tmp-${process.ppid}-abc123`), OLD, OLD);
  t.equal(sweepTempFiles(dir), 3);
  t.same(fs.readdirSync(path.join(dir, 'a')).sort(), ['keep.png', `z.png.tmp-${process.ppid}-abc123`], 'only the live, older writer\'s file stays');
});

t.test('stale env dirs: their processes killed, the dirs removed; live ones kept', async (t) => {
  const base = t.testdir({});
  const envs = path.join(base, 'envs');
  const dead = await deadPid();
  const stale = path.join(envs, `env0-${dead}-1-abcdef`);
  const mineGone = path.join(envs, `env0-${process.pid}-99-abcdef`); // our pid, no LocalEnv of ours: an earlier process's
  const live = path.join(envs, `env0-${process.ppid}-1-abcdef`);
  for (const d of [stale, mineGone, live]) fs.mkdirSync(path.join(d, 'home'), { recursive: true });
  // A process of the stale env still running (as an app of a killed run would be).
  const orphan = spawn('sleep', ['300'], { env: { ...process.env, OSW_ENV_ID: `env0-${dead}-1-abcdef` }, stdio: 'ignore', detached: true });
  t.teardown(() => {
    try {
      process.kill(orphan.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  const orphanExit = new Promise((r) => orphan.once('exit', r));
  // Half-built HOME template and VLC copy of a dead builder.
  fs.mkdirSync(path.join(base, `home-template-v1.tmp-${dead}-123`, 'home'), { recursive: true });
  fs.mkdirSync(path.join(base, 'bin'));
  fs.writeFileSync(path.join(base, 'bin', `vlc-root.${dead}-abc123`), 'half');
  fs.writeFileSync(path.join(base, 'bin', 'vlc-root'), 'whole');
  const lines: string[] = [];
  t.equal(sweepStaleEnvs(base, (l) => lines.push(l)), 2);
  t.same(fs.readdirSync(envs), [path.basename(live)], 'the live process\'s env stays');
  await orphanExit;
  t.pass('the stale env\'s process was killed');
  t.same(fs.readdirSync(base).sort(), ['bin', 'envs']);
  t.same(fs.readdirSync(path.join(base, 'bin')), ['vlc-root']);
  t.match(lines.join('\n'), /removed stale env env0-\d+-1-abcdef of dead process \d+ \(killed 1 leftover process/);
});

t.test('evaluation scratch dirs of dead processes are removed', async (t) => {
  const dead = await deadPid();
  const gone = fs.mkdtempSync(path.join(os.tmpdir(), `osworld-eval-${dead}-task-`));
  const ours = fs.mkdtempSync(path.join(os.tmpdir(), `osworld-eval-${process.pid}-task-`));
  t.teardown(() => fs.rmSync(ours, { recursive: true, force: true }));
  t.ok(sweepEvalScratch() >= 1);
  t.notOk(fs.existsSync(gone));
  t.ok(fs.existsSync(ours), 'this process\'s (an evaluation may be running) stays');
});

t.test('the trial lock: one run per trial; a killed run\'s lock is taken over', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, LOCK_FILE);
  const release = acquireTrialLock(dir, ['--x']);
  t.match(JSON.parse(fs.readFileSync(file, 'utf8')), { pid: process.pid, argv: ['--x'] });
  t.throws(() => acquireTrialLock(dir), TrialBusyError, 'a second run in this process');
  release();
  t.notOk(fs.existsSync(file), 'released');

  // Held by a live process that started before the lock was written: refused, with its pid.
  const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.teardown(() => holder.kill('SIGKILL'));
  await sleep(50);
  await waitFor(() => processStartMs(holder.pid!) !== null, 5000);
  fs.writeFileSync(file, JSON.stringify({ pid: holder.pid, startedAt: 'then' }));
  t.throws(() => acquireTrialLock(dir), new RegExp(`in use by run-multienv pid ${holder.pid} \\(started then\\)`));
  // The same pid, but the lock is older than the process: the pid was reused, the lock is stale.
  fs.utimesSync(file, OLD, OLD);
  const lines: string[] = [];
  acquireTrialLock(dir, [], (l) => lines.push(l))();
  t.match(lines[0], /taking over the lock of a run that is gone/);
  // A dead pid, a torn lock, and this process's own pid (an earlier process that had it).
  for (const content of [JSON.stringify({ pid: await deadPid() }), '{"pid": 12', JSON.stringify({ pid: process.pid })]) {
    fs.writeFileSync(file, content);
    const r = acquireTrialLock(dir);
    t.equal((JSON.parse(fs.readFileSync(file, 'utf8')) as { pid: number }).pid, process.pid, `taken over from ${content}`);
    r();
  }
});

t.test('a task named twice in a list runs once; ids that are not folder names are refused', async (t) => {
  const dir = t.testdir({
    'dup.json': JSON.stringify({ os: ['a', 'b', 'a'], calc: ['a'] }),
    'bad.json': JSON.stringify({ os: ['../../etc'] }),
    'baddomain.json': JSON.stringify({ '..': ['a'] }),
  });
  const dups: string[] = [];
  t.same(loadTaskList(path.join(dir, 'dup.json'), 'all', (r) => dups.push(`${r.domain}/${r.id}`)), [
    { domain: 'os', id: 'a' },
    { domain: 'os', id: 'b' },
    { domain: 'calc', id: 'a' },
  ]);
  t.same(dups, ['os/a']);
  t.throws(() => loadTaskList(path.join(dir, 'bad.json')), /invalid task id "..\/..\/etc"/);
  t.throws(() => loadTaskList(path.join(dir, 'baddomain.json')), /invalid domain name "\.\."/);
});
