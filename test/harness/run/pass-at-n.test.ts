/**
 * pass-at-n over result folders built here (three trials, known scores), as OSWorld/ARPO's
 * pass_at_n.py computes it: pass@n over tasks with a result and over all, per domain, per
 * trial (all tasks in the denominator), mean; --trials, --filter_fail, --detail, --json.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { passAtN } from '../../../harness/results/pass-at-n.ts';
import { REPO_ROOT } from '../../../server/model/checkpoint/tiny.ts';

const META = { a: ['t1', 't2', 't3', 't4'], b: ['u1', 'u2'] };
const TASKS = Object.entries(META).flatMap(([domain, ids]) => ids.map((id) => ({ domain, id })));

function task(root: string, trial: string, domain: string, id: string, result: string | null, traj: string[] | null = ['{"step_num":0}']): void {
  const dir = path.join(root, trial, domain, id);
  fs.mkdirSync(dir, { recursive: true });
  if (result !== null) fs.writeFileSync(path.join(dir, 'result.txt'), result);
  if (traj) fs.writeFileSync(path.join(dir, 'traj.jsonl'), traj.map((l) => `${l}\n`).join(''));
}

function fixture(dir: string): string {
  const root = path.join(dir, 'pyautogui/screenshot/ui-tars');
  // trial 0: t1 1, t2 0, u1 0.5 (not > 0.5); t3, t4, u2 missing
  task(root, '0', 'a', 't1', '1\n');
  task(root, '0', 'a', 't2', '0\n');
  task(root, '0', 'b', 'u1', '0.5\n');
  task(root, '0', 'b', 'u2', null); // a folder without result.txt (errored task)
  // trial 1: t1 0, t2 1, t3 0, u1 0, u2 1 reached through the step cap (16 lines, last FAIL)
  task(root, '1', 'a', 't1', '0.0\n');
  task(root, '1', 'a', 't2', '1\n');
  task(root, '1', 'a', 't3', 'false\n');
  task(root, '1', 'b', 'u1', '0\n');
  task(root, '1', 'b', 'u2', '1\n', [...Array.from({ length: 15 }, (_, i) => JSON.stringify({ step_num: i, action: 'x' })), JSON.stringify({ step_num: 15, action: 'FAIL' })]);
  // trial 2: t1 has no traj.jsonl (not a result), t2 "true"
  task(root, '2', 'a', 't1', '1\n', null);
  task(root, '2', 'a', 't2', 'true\n');
  fs.mkdirSync(path.join(root, 'notes')); // not a trial
  return root;
}

t.test('the numbers of pass_at_n.py', async (t) => {
  const root = fixture(t.testdir({}));
  const r = passAtN({ root, tasks: TASKS });
  t.same(r.trials, ['0', '1', '2']);
  t.equal(r.valid, 5, 't4 has no result in any trial');
  t.equal(r.passed, 3, 't1, t2, u2');
  t.equal(r.acc, 3 / 5);
  t.equal(r.accOverAll, 3 / 6);
  t.same(r.domains, { a: { acc: 2 / 3, passed: 2, valid: 3, total: 4 }, b: { acc: 1 / 2, passed: 1, valid: 2, total: 2 } });
  t.same(r.trialAcc, { 0: { acc: 1.5 / 6, valid: 3, total: 6 }, 1: { acc: 2 / 6, valid: 5, total: 6 }, 2: { acc: 1 / 6, valid: 1, total: 6 } });
  t.equal(r.meanAcc, (1.5 / 6 + 2 / 6 + 1 / 6) / 3);
  t.same(r.detail.find((d) => d.id === 't1')!.scores, [1, 0, null]);

  const filtered = passAtN({ root, tasks: TASKS, filterFail: true });
  t.equal(filtered.passed, 2, 'u2 ran into the step cap: 0 with --filter_fail');
  t.equal(filtered.acc, 2 / 5);
  t.equal(filtered.trialAcc['1']!.acc, 1 / 6);

  const two = passAtN({ root, tasks: TASKS, trials: ['0', '2'] });
  t.equal(two.valid, 3);
  t.equal(two.passed, 2);
  t.equal(two.meanAcc, (1.5 / 6 + 1 / 6) / 2);
});

t.test('the CLI: text, --detail, --json, --trials, errors', async (t) => {
  const dir = t.testdir({});
  const root = fixture(dir);
  const meta = path.join(dir, 'meta.json');
  fs.writeFileSync(meta, JSON.stringify(META));
  const run = (...args: string[]) => spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin/pass-at-n.mjs'), '--root_path', root, '--meta_path', meta, ...args], { encoding: 'utf8' });
  const text = run('--detail');
  t.equal(text.status, 0, text.stderr);
  t.match(text.stdout, /^a\/t1: 1 0 -  pass$/m);
  t.match(text.stdout, /^Acc: 0\.6000 \(3\/5 tasks with a result\)$/m);
  t.match(text.stdout, /^Acc over all: 0\.5000 \(3\/6\)$/m);
  t.match(text.stdout, /^a acc: 0\.6667 num tasks: 3\/4$/m);
  t.match(text.stdout, /^Trial 1 acc: 0\.3333 num valid: 5\/6$/m);
  t.match(text.stdout, /^Mean acc: 0\.2500 over 3 trial\(s\)$/m);
  const json = run('--json', '--trials', '0', '1', '--filter_fail');
  t.equal(json.status, 0, json.stderr);
  const r = JSON.parse(json.stdout) as { trials: string[]; passed: number; acc: number; detail?: unknown };
  t.same(r.trials, ['0', '1']);
  t.equal(r.passed, 2, 'trials 0 and 1 with --filter_fail: t1 and t2 (u2 filtered)');
  t.notOk('detail' in r, 'per-task detail only with --detail');
  const missing = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin/pass-at-n.mjs'), '--root_path', path.join(dir, 'nope'), '--meta_path', meta], { encoding: 'utf8' });
  t.equal(missing.status, 1);
  t.match(missing.stderr.trim(), /^pass-at-n: cannot read .*nope: no such result folder$/);
});
