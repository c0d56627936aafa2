/**
 * Resume after SIGKILL: `node bin/run-multienv.mjs` on the two os tasks (replay agent, one env)
 * is killed at several points, then rerun to completion. Every task ends with exactly one
 * result.txt, finished tasks are not touched again, no temporary file is left, and the killed
 * runs' desktops neither survive nor get in the way.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { REPO_ROOT } from '../../../server/model/checkpoint/tiny.ts';

const LOCAL = path.join(REPO_ROOT, 'evaluation_examples/local');
const BIN = path.join(REPO_ROOT, 'bin/run-multienv.mjs');
const IDS = ['local-os-hello-file', 'local-os-infeasible-printer'];

function walk(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** Pids whose environment names an env of harness process `pid`. */
function envProcessesOf(pid: number): number[] {
  const marker = Buffer.from(`OSW_ENV_ID=env0-${pid}-`);
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/environ`).includes(marker)) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

t.test('killed with SIGKILL at random points, a rerun finishes every task exactly once', async (t) => {
  const dir = t.testdir({});
  const list = path.join(dir, 'list.json');
  fs.writeFileSync(list, JSON.stringify({ os: IDS }));
  const results = path.join(dir, 'results');
  const trial = path.join(results, 'pyautogui/screenshot/ui-tars/0');
  const args = [
    BIN, '--test_config_base_dir', LOCAL, '--test_all_meta_path', list, '--result_dir', results,
    '--agent', 'replay', '--replay-dir', path.join(LOCAL, 'oracles'), '--num_envs', '1',
    '--sleep_after_execution', '0.3', '--settle-seconds', '0.5', '--no-record',
  ];
  const finished = new Map<string, number>(); // result.txt -> mtime when first seen
  const killedPids: number[] = [];
  const checkFinished = (): void => {
    for (const id of IDS) {
      const f = path.join(trial, 'os', id, 'result.txt');
      if (!fs.existsSync(f)) continue;
      const m = fs.statSync(f).mtimeMs;
      if (finished.has(f)) t.equal(m, finished.get(f), `${id}: a finished task is left alone`);
      else finished.set(f, m);
    }
  };
  const firstResult = path.join(trial, 'os', IDS[0]!, 'result.txt');
  // Two kills at fixed points (start-up, setup or the first steps), then one a random moment
  // after the first task finished (during the second task or at its end).
  const plans: (() => Promise<void>)[] = [1000, 3000].map((ms) => () => new Promise((r) => setTimeout(r, ms + Math.floor(Math.random() * 700))));
  plans.push(async () => {
    const deadline = Date.now() + 60_000;
    while (!fs.existsSync(firstResult) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 1500)));
  });
  for (const wait of plans) {
    const started = Date.now();
    const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: 'ignore' });
    killedPids.push(child.pid!);
    const exited = new Promise((r) => child.once('exit', r));
    await wait();
    child.kill('SIGKILL');
    await exited;
    checkFinished();
    t.comment(`killed after ${Date.now() - started} ms: ${finished.size} task(s) finished`);
  }
  t.ok(finished.size >= 1, 'the last killed run had finished a task');
  const last = spawnSync(process.execPath, args, { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000 });
  t.equal(last.status, 0, `the rerun completes${last.status ? `: ${last.stderr}` : ''}`);
  checkFinished();

  const files = walk(trial);
  const resultFiles = files.filter((f) => path.basename(f) === 'result.txt').sort();
  t.same(resultFiles, IDS.map((id) => path.join(trial, 'os', id, 'result.txt')).sort(), 'exactly one result.txt per task');
  for (const f of resultFiles) t.equal(fs.readFileSync(f, 'utf8'), '1\n');
  t.same(walk(results).filter((f) => /\.tmp-/.test(f)), [], 'no temporary file left');
  for (const id of IDS) t.match(JSON.parse(fs.readFileSync(path.join(trial, 'os', id, 'status.json'), 'utf8')), { status: 'success', score: 1 });
  const summary = JSON.parse(fs.readFileSync(path.join(trial, 'summary.json'), 'utf8')) as { successRate: number; statuses: Record<string, number> };
  t.equal(summary.successRate, 1);
  t.equal(summary.statuses.success, 2);
  t.ok(fs.readdirSync(path.join(trial, 'logs')).length >= 1, 'run logs in the trial dir');
  // The killed runs' desktops: gone, and their env dirs swept by the rerun.
  const envBase = process.env.OSW_ENV_DIR ?? path.join((await import('node:os')).tmpdir(), 'osworld-envs');
  for (const pid of killedPids) {
    t.same(envProcessesOf(pid), [], `no process left from killed run ${pid}`);
    const stale = fs.existsSync(path.join(envBase, 'envs')) ? fs.readdirSync(path.join(envBase, 'envs')).filter((n) => n.startsWith(`env0-${pid}-`)) : [];
    t.same(stale, [], `no env dir left from killed run ${pid}`);
  }
});
