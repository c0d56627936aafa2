/**
 * Comparing runs, over result folders the harness wrote itself (fixture.ts: three trials of four
 * tasks with known outcomes): pass-at-n's side-by-side view (pass@n, pass^n, per-domain success
 * per trial, flaky tasks) through the module and the CLI, and compare-runs between two trials
 * (per-task scores and steps, the first action where they part, config.json differences), text
 * and --json, plus folders above a trial and results without config.json (OSWorld/ARPO's).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { compareRunsMain } from '../../../harness/cli/compare-runs.ts';
import { passAtNMain } from '../../../harness/cli/pass-at-n.ts';
import { compareRuns, diffConfigs, resolveTrialDir, type Comparison } from '../../../harness/results/compare.ts';
import { passAtN } from '../../../harness/results/pass-at-n.ts';
import { loadTaskList } from '../../../harness/tasks/load-tasks.ts';
import { REPO_ROOT } from '../../../server/model/checkpoint/tiny.ts';
import { buildResults, type Results } from './fixture.ts';

let results: Results;
t.before(async () => {
  results = await buildResults(t.testdir({}));
});

/** A package bin as a process (one call per bin: the wiring; the rest runs in-process, faster). */
const bin = (name: string, ...args: string[]) => spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin', name), ...args], { encoding: 'utf8' });

/** A CLI main in this process, its console.log output captured. */
function cli(main: (argv: string[]) => number, ...args: string[]): { status: number; stdout: string } {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]): void => {
    lines.push(a.map(String).join(' '));
  };
  try {
    const status = main(args);
    return { status, stdout: `${lines.join('\n')}\n` };
  } finally {
    console.log = log;
  }
}

t.test('pass@n, pass^n, per-domain success per trial and flaky tasks over three trials', async (t) => {
  // type-hello 1 0 1, open-menu 0 1 0, select-range 1 1 1, needs-drive: no result in any trial
  const r = passAtN({ root: results.modelRoot, tasks: loadTaskList(results.meta) });
  t.same(r.trials, ['0', '1', '2']);
  t.match(r, { tasks: 4, valid: 3, passed: 3, acc: 1, accOverAll: 3 / 4, allPassed: 1, passHatN: 1 / 3, passHatNOverAll: 1 / 4 });
  t.same(r.trialSuccess, { 0: 2, 1: 2, 2: 2 });
  t.same(r.domainTrials, {
    os: { success: [1, 1, 1], valid: [2, 2, 2], allPassed: 0, passHatN: 0, flaky: 2 },
    calc: { success: [1, 1, 1], valid: [1, 1, 1], allPassed: 1, passHatN: 1, flaky: 0 },
  });
  t.same(r.flaky, [
    { domain: 'os', id: 'type-hello', scores: [1, 0, 1], solved: 2 },
    { domain: 'os', id: 'open-menu', scores: [0, 1, 0], solved: 1 },
  ]);
  const two = passAtN({ root: results.modelRoot, tasks: loadTaskList(results.meta), trials: ['0', '2'] });
  t.match(two, { passed: 2, allPassed: 2, passHatN: 2 / 3 });
  t.same(two.flaky, [], 'trials 0 and 2 agree on every task');

  const table = bin('pass-at-n.mjs', '--root_path', results.modelRoot, '--meta_path', results.meta, '--table');
  t.equal(table.status, 0, table.stderr);
  t.match(table.stdout, /^domain +tasks +trial 0 +trial 1 +trial 2 +pass@3 +pass\^3 +flaky$/m);
  t.match(table.stdout, /^os +2 +1\/2 50\.0% +1\/2 50\.0% +1\/2 50\.0% +2\/2 100\.0% +0\/2 0\.0% +2$/m);
  t.match(table.stdout, /^calc +2 +1\/2 50\.0% +1\/2 50\.0% +1\/2 50\.0% +1\/1 100\.0% +1\/1 100\.0% +0$/m);
  t.match(table.stdout, /^all +4 +2\/4 50\.0% +2\/4 50\.0% +2\/4 50\.0% +3\/3 100\.0% +1\/3 33\.3% +2$/m);
  t.match(table.stdout, /^flaky: 2 task\(s\) solved in some trials only/m);
  t.match(table.stdout, /^os\/type-hello +1 +0 +1$/m);
  t.match(table.stdout, /^os\/open-menu +0 +1 +0$/m);

  const text = cli(passAtNMain, '--root_path', results.modelRoot, '--meta_path', results.meta);
  t.equal(text.status, 0);
  t.match(text.stdout, /^Acc: 1\.0000 \(3\/3 tasks with a result\)$/m, "pass_at_n.py's lines stay");
  t.match(text.stdout, /^Pass\^n: 0\.3333 \(1\/3 tasks solved in every trial; over all 0\.2500\)$/m);
  t.match(text.stdout, /^Flaky: 2 task\(s\) solved in some trials only$/m);
  const json = cli(passAtNMain, '--root_path', results.modelRoot, '--meta_path', results.meta, '--json');
  t.equal(json.status, 0);
  t.match(JSON.parse(json.stdout), { passHatN: 1 / 3, allPassed: 1, flaky: [{ id: 'type-hello' }, { id: 'open-menu' }] });
});

t.test('compare-runs between two trials: what changed, where the agent first acted differently, what was configured differently', async (t) => {
  const c = compareRuns(results.trial('0'), results.trial('1'));
  t.match(c.a, { dir: results.trial('0'), config: true, model: 'ui-tars /models/UI-TARS-2B-SFT', tasks: 4, scored: 3, success: 2 });
  t.match(c.b, { dir: results.trial('1'), tasks: 4, scored: 3, success: 2 });
  t.same(c.common, { tasks: 3, a: 2, b: 2 });
  t.same(c.counts, { improved: 1, regressed: 1, both_pass: 1, both_fail: 0, only_a: 0, only_b: 0, no_result: 1 });
  t.equal(c.divergent, 2);
  const task = (id: string): Comparison['tasks'][number] => c.tasks.find((x) => x.id === id)!;
  t.match(task('type-hello'), {
    change: 'regressed',
    a: { score: 1, status: 'success', steps: 3 },
    b: { score: 0, status: 'fail', steps: 3 },
    divergence: { step: 2, a: 'type "hello"', b: 'type "helo"', aScreenshot: /^os\/type-hello\/step_1_.*\.png$/, bScreenshot: /^os\/type-hello\/step_1_.*\.png$/ },
  });
  const d = task('type-hello').divergence!;
  t.ok(fs.existsSync(path.join(results.trial('0'), d.aScreenshot!)), 'the screen A saw there');
  t.match(task('open-menu'), { change: 'improved', a: { steps: 3 }, b: { steps: 3 }, divergence: { step: 2, a: 'scroll down 5 at (640, 360)', b: 'click (153.6, 115.2)' } });
  t.match(task('select-range'), { change: 'both_pass', divergence: null });
  t.match(task('needs-drive'), { change: 'no_result', a: { score: null, status: 'infra_error', error: /no_such_setup_step/ }, divergence: null });
  t.same(c.domains, { os: { tasks: 2, a: 1, b: 1, aScored: 2, bScored: 2 }, calc: { tasks: 2, a: 1, b: 1, aScored: 1, bScored: 1 } });
  const keys = c.configDiff.map((x) => x.key);
  t.same(keys.slice(0, 3), ['agent.historyN', 'sampling.sent', 'sampling.temperature'], 'differences that matter first');
  t.match(c.configDiff.find((x) => x.key === 'sampling.temperature'), { a: 0, b: 1, matters: true });
  t.notOk(keys.some((k) => k === 'startedAt' || k === 'argv' || k.startsWith('trial.')), 'start time, argv and trial paths are not differences');

  const text = bin('compare-runs.mjs', results.trial('0'), results.trial('1'));
  t.equal(text.status, 0, text.stderr);
  const out = text.stdout;
  t.match(out, new RegExp(`^A: ${results.trial('0')}  \\(ui-tars /models/UI-TARS-2B-SFT\\)$`, 'm'));
  t.match(out, /^success: A 2\/4 \(50\.0%\), B 2\/4 \(50\.0%\) over the 4 task\(s\) of either run/m);
  t.match(out, /^tasks: 1 solved in B only, 1 solved in A only, 1 solved in both, 1 no result in either; 2 ran different actions$/m);
  t.match(out, /^ {2}\* sampling\.temperature +0 +1$/m);
  t.match(out, /^ {2}\* agent\.historyN +15 +5$/m);
  t.match(out, /^ {2}os +2 +1 50\.0% +1 50\.0% +\+0$/m);
  t.match(out, /^tasks whose outcome differs \(2; --all lists all 4\):$/m);
  t.match(out, /^ {2}os\/type-hello +1 +0 +success +fail +3 +3 +#2: type "hello" \| type "helo"$/m);
  t.match(out, /^ {2}os\/open-menu +0 +1 +fail +success +3 +3 +#2: scroll down 5 at \(640, 360\) \| click \(153\.6, 115\.2\)$/m);
  t.notMatch(out, /select-range/);
  const all = cli(compareRunsMain, results.trial('0'), results.trial('1'), '--all', '--domain', 'calc');
  t.equal(all.status, 0);
  t.match(all.stdout, /^ {2}calc\/select-range +1 +1 +success +success +2 +2 +same actions$/m);
  t.match(all.stdout, /^ {2}calc\/needs-drive +- +- +infra_error +infra_error +0 +0 +-$/m);
  t.notMatch(all.stdout, /type-hello/);
  const json = cli(compareRunsMain, results.trial('0'), results.trial('2'), '--json', '--meta_path', results.meta);
  t.equal(json.status, 0);
  const j = JSON.parse(json.stdout) as Comparison;
  t.same(j.counts, { improved: 0, regressed: 0, both_pass: 2, both_fail: 1, only_a: 0, only_b: 0, no_result: 1 });
  t.match(j.tasks.find((x) => x.id === 'type-hello'), { divergence: { step: 1, a: 'click (640, 216)', b: 'double-click (640, 216)' } });
  t.same(j.configDiff, [], 'trials 0 and 2 ran with the same config');
});

t.test('folders above a trial, results without config.json, errors', async (t) => {
  const dir = t.testdir({});
  // A folder holding one trial resolves to it, however deep.
  const single = path.join(dir, 'single', 'pyautogui', 'screenshot', 'ui-tars');
  fs.mkdirSync(single, { recursive: true });
  fs.cpSync(results.trial('1'), path.join(single, '1'), { recursive: true });
  t.equal(resolveTrialDir(path.join(dir, 'single')), path.join(single, '1'));
  t.throws(() => resolveTrialDir(results.modelRoot), /holds several result folders \(0, 1, 2\): name one of them/);
  t.throws(() => resolveTrialDir(path.join(dir, 'nope')), /cannot read .*nope: no such result folder/);
  // OSWorld's / ARPO's results: "response" instead of "prediction", no status.json, no config.json.
  const arpo = path.join(dir, 'arpo', 'os', 'type-hello');
  fs.mkdirSync(arpo, { recursive: true });
  const lines = [
    { step_num: 1, action_timestamp: '20250101@000000', action: "import pyautogui\npyautogui.click(640.0, 216.0, button='left')", response: "Thought: click\nAction: click(start_box='(500,300)')", reward: 0, done: false, info: {}, screenshot_file: 'step_1_20250101@000000.png' },
    { step_num: 2, action_timestamp: '20250101@000001', action: 'DONE', response: "Thought: done\nAction: finished(content='')", reward: 0, done: true, info: { done: true }, screenshot_file: 'step_2_20250101@000001.png' },
  ];
  fs.writeFileSync(path.join(arpo, 'traj.jsonl'), lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
  fs.writeFileSync(path.join(arpo, 'result.txt'), '0.0\n');
  const c = compareRuns(results.trial('0'), path.join(dir, 'arpo'));
  t.equal(c.b.config, false);
  t.same(c.configDiff, []);
  t.match(c.tasks.find((x) => x.id === 'type-hello'), { change: 'regressed', b: { score: 0, status: 'fail', steps: 2 }, divergence: { step: 2, a: 'type "hello"', b: 'DONE' } });
  t.match(c.tasks.find((x) => x.id === 'open-menu'), { change: 'only_a', b: { score: null, status: 'not_run', steps: 0 } });
  const text = cli(compareRunsMain, results.trial('0'), path.join(dir, 'arpo'));
  t.equal(text.status, 0);
  t.match(text.stdout, /^B: .*arpo {2}\(no config\.json\)$/m);
  t.match(text.stdout, /^config: B has no config\.json: configs not compared$/m);
  t.match(text.stdout, /^ {2}os\/open-menu +0 +- +fail +not_run +3 +0 +#1: click \(102\.4, 28\.8\) \| \(ended\)$/m);
  t.throws(() => compareRunsMain([results.modelRoot, results.trial('0')]), /ui-tars holds several result folders \(0, 1, 2\): name one of them$/);
  // config differences: nested keys, arrays as values, missing keys
  t.same(diffConfigs({ a: { b: 1, c: [1, 2] }, run: { numEnvs: 8 } }, { a: { b: 1, c: [1, 3] }, run: { numEnvs: 2 }, x: true }), [
    { key: 'a.c', a: [1, 2], b: [1, 3], matters: false },
    { key: 'run.numEnvs', a: 8, b: 2, matters: false },
    { key: 'x', a: null, b: true, matters: false },
  ]);
});

t.test('bad input to compare-runs, pass-at-n and coverage: one line, exit 1', async (t) => {
  t.throws(() => compareRunsMain([results.trial('0'), results.trial('1'), '--domain', 'nope']), /^domain "nope" is in neither run \(they have calc, os\)$/);
  t.equal(cli(compareRunsMain, results.trial('0'), results.trial('1'), '--domain', 'os').status, 0, 'a known domain is fine');
  t.throws(() => passAtNMain(['--root_path', path.join(results.modelRoot, 'nope'), '--meta_path', results.meta, '--trials', '0']), /^cannot read .*nope: no such result folder$/);
  t.throws(() => passAtNMain(['--root_path', results.modelRoot, '--meta_path', results.meta, '--trials', '0', '5']), /^no trial 5 under .* \(it has 0, 1, 2\)$/);
  const compare = bin('compare-runs.mjs', results.trial('0'), results.trial('1'), '--domain', 'nope');
  t.equal(compare.status, 1);
  t.equal(compare.stderr.trim(), 'compare-runs: domain "nope" is in neither run (they have calc, os)');
  const coverage = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'harness/cli/coverage.ts'), ...args], { encoding: 'utf8', cwd: REPO_ROOT });
  const missing = coverage('--meta', path.join(results.modelRoot, 'missing.json'));
  t.equal(missing.status, 1);
  t.match(missing.stderr.trim(), /^coverage: cannot read task list .*missing\.json: ENOENT[^\n]*$/, 'a missing list: one line, no stack trace');
  const unknown = coverage('--bogus');
  t.equal(unknown.status, 1);
  t.match(unknown.stderr.trim(), /^error: unknown option '--bogus'$/);
  const noValue = coverage('--meta');
  t.equal(noValue.status, 1);
  t.match(noValue.stderr.trim(), /^error: option '--meta <file>' argument missing$/);
  const ok = coverage('--json', '--meta', results.meta);
  t.equal(ok.status, 0, ok.stderr);
  t.match(JSON.parse(ok.stdout), { meta: results.meta, total: { tasks: 4 } });
});
