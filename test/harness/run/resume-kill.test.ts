/**
 * Resume after SIGKILL: `node bin/run-multienv.mjs` (a real child process; replay agent, three
 * os tasks, two envs) is killed with SIGKILL four times at seeded-random points (start-up,
 * setup, steps, evaluation, between tasks), then rerun to completion. Checked:
 * - every task ends with exactly one result (one folder per task, one result.txt each, scored 1);
 * - a task finished before a kill is never touched again (result.txt and traj.jsonl keep their
 *   bytes and mtimes through every later run);
 * - no half-written file anywhere: no temporary file, every traj.jsonl line is JSON, every PNG
 *   decodes, every .json parses;
 * - the killed runs' desktops: every process gone within seconds of the kill, before any rerun
 *   (each desktop's supervisor sees the harness's pipe close), and their env dirs, evaluation
 *   scratch dirs and lock swept by the next run;
 * - a second run started on the same trial while one is running is refused.
 * KILL_SEED=<n> replays a given sequence of kill points (the seed is printed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { main } from '../../../harness/cli/run-multienv.ts';
import { defaultBaseDir } from '../../../harness/env/providers/local/index.ts';
import type { TrialSummary } from '../../../harness/results/summary.ts';
import { LOCK_FILE } from '../../../harness/run/trial-lock.ts';
import { REPO_ROOT } from '../../../server/model/checkpoint/tiny.ts';
import { skipReason } from '../env/desktop-helpers.ts';
import { ORACLES, RUN_BIN, badFiles, envProcesses, readJson, runArgs, sleep, taskList, trialOf, waitFor, walk } from './run-helpers.ts';

const IDS = ['local-os-hello-file', 'local-os-infeasible-printer', 'local-os-make-folder'];
const SEED = Number(process.env.KILL_SEED ?? 20261207);

/** mulberry32: a small seeded PRNG, so a failing sequence of kill points can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface Snapshot {
  mtimes: string;
  hash: string;
}

function snapshot(taskDir: string): Snapshot {
  const files = ['result.txt', 'traj.jsonl', 'status.json'].map((f) => path.join(taskDir, f));
  return {
    mtimes: files.map((f) => fs.statSync(f).mtimeMs).join(','),
    hash: createHash('sha256').update(Buffer.concat(files.map((f) => fs.readFileSync(f)))).digest('hex'),
  };
}

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => r({ code, signal }));
  });
}

t.test('killed with SIGKILL at seeded-random points, a rerun finishes every task exactly once', { skip: skipReason('xterm') }, async (t) => {
  const random = rng(SEED);
  t.comment(`KILL_SEED=${SEED}`);
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const trial = trialOf(results);
  const args = [RUN_BIN, ...runArgs(results, taskList(dir, { os: IDS }), ['--agent', 'replay', '--replay-dir', ORACLES, '--num_envs', '2'])];
  const resultOf = (id: string): string => path.join(trial, 'os', id, 'result.txt');
  const finished = new Map<string, Snapshot>();
  const checkFinished = (when: string): void => {
    for (const id of IDS) {
      if (!fs.existsSync(resultOf(id))) continue;
      const now = snapshot(path.join(trial, 'os', id));
      const before = finished.get(id);
      if (before) t.same(now, before, `${id}: finished earlier, untouched ${when}`);
      else finished.set(id, now);
    }
  };

  // Writes of a run: step PNGs and result.txt files newer than its start.
  const writesSince = (ms: number): number =>
    walk(trial).filter((f) => /\.png$|result\.txt$/.test(f) && (() => {
      try {
        return fs.statSync(f).mtimeMs >= ms;
      } catch {
        return false;
      }
    })()).length;
  // Run 1 is killed early (start-up, first env start) once a second run was refused; runs 2-4 after a
  // seeded number of their own writes (a screenshot, a result) plus a seeded delay.
  const plans: { writes: number; delayMs: number }[] = [
    { writes: 0, delayMs: Math.floor(random() * 1500) },
    { writes: 1 + Math.floor(random() * 3), delayMs: Math.floor(random() * 1000) },
    { writes: 2 + Math.floor(random() * 4), delayMs: Math.floor(random() * 1000) },
    { writes: 3 + Math.floor(random() * 5), delayMs: Math.floor(random() * 800) },
  ];
  const killed: number[] = [];
  for (const [k, plan] of plans.entries()) {
    const started = Date.now();
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: 'ignore' });
    const exited = exitOf(child);
    killed.push(child.pid!);
    if (k === 0) {
      // A second run on the same trial while this one holds it: refused before it touches anything.
      t.ok(await waitFor(() => fs.existsSync(path.join(trial, LOCK_FILE)), 30_000), 'the run locks its trial');
      await t.rejects(main(args.slice(1)), new RegExp(`trial dir .* is in use by run-multienv pid ${child.pid}`), 'a second run on the same trial is refused');
    }
    await Promise.race([waitFor(() => writesSince(started) >= plan.writes, 90_000), exited]);
    await Promise.race([sleep(plan.delayMs), exited]);
    child.kill('SIGKILL');
    const how = await exited;
    checkFinished(`by killed run ${k + 1}`);
    t.comment(`run ${k + 1} (pid ${child.pid}) ${how.signal === 'SIGKILL' ? 'killed' : `had exited ${how.code}`} after ${Date.now() - started} ms, ${writesSince(started)} write(s); ${finished.size}/${IDS.length} finished`);
    // Without any rerun: the killed run's desktops tear themselves down.
    t.ok(await waitFor(() => envProcesses(`env0-${child.pid}-`).length + envProcesses(`env1-${child.pid}-`).length === 0, 20_000), `run ${k + 1}: no desktop process outlives the kill`);
  }

  const last = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  last.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const r = await exitOf(last);
  t.equal(r.code, 0, `the rerun completes${r.code ? `: ${stderr}` : ''}`);
  checkFinished('by the final run');

  // Exactly one folder and one result per task, all scored.
  t.same(fs.readdirSync(path.join(trial, 'os')).sort(), [...IDS].sort(), 'one folder per task, no other');
  const resultFiles = walk(trial).filter((f) => path.basename(f) === 'result.txt').sort();
  t.same(resultFiles, IDS.map(resultOf).sort(), 'exactly one result.txt per task');
  for (const f of resultFiles) t.equal(fs.readFileSync(f, 'utf8'), '1\n');
  for (const id of IDS) t.match(readJson(path.join(trial, 'os', id, 'status.json')), { status: 'success', score: 1 });
  t.same(await badFiles(results), [], 'no temporary file, torn traj line, broken PNG or JSON');
  const summary = readJson<TrialSummary>(path.join(trial, 'summary.json'));
  t.match(summary, { successRate: 1, statuses: { success: IDS.length, not_run: 0 } });
  t.notOk(fs.existsSync(path.join(trial, LOCK_FILE)), 'the lock is released');
  t.ok(fs.readdirSync(path.join(trial, 'logs')).length >= 2, 'a log per run that got past its startup checks');

  // What the killed runs left outside the trial: swept.
  const envs = path.join(defaultBaseDir(), 'envs');
  const leftDirs = fs.existsSync(envs) ? fs.readdirSync(envs).filter((n) => killed.some((pid) => n.includes(`-${pid}-`))) : [];
  t.same(leftDirs, [], 'no env dir of a killed run');
  t.same(fs.readdirSync(os.tmpdir()).filter((n) => killed.some((pid) => n.startsWith(`osworld-eval-${pid}-`))), [], 'no evaluation scratch dir of a killed run');
  for (const pid of killed) t.same([...envProcesses(`env0-${pid}-`), ...envProcesses(`env1-${pid}-`)], [], `no process of killed run ${pid}`);
});
