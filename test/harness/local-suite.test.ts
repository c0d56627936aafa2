/**
 * The offline task suite (evaluation_examples/local) end to end: every task through run-multienv's
 * main() on real desktops with the replay agent.
 * - static checks: every listed task has its config and oracle, uses only setup steps, getters and
 *   metrics this project implements, and its oracle parses; the fixtures stay small;
 * - the oracles score 1 on every task;
 * - an agent that gives up at once (error_env -> FAIL) scores 0 on every normal task and 1 on every
 *   infeasible one (OSWorld: an infeasible task is solved by answering FAIL).
 * Scores are read from each task's result.txt and from the trial's summary.json.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { main } from '../../harness/cli/run-multienv.ts';
import { responseToActions } from '../../harness/agent/uitars/response-actions.ts';
import { isSupportedStep } from '../../harness/env/setup/setup-controller.ts';
import { GETTERS } from '../../harness/eval/getters/index.ts';
import { METRICS } from '../../harness/eval/metrics/index.ts';
import { skipReason } from './env/desktop-helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LOCAL = path.join(ROOT, 'evaluation_examples/local');
const META = path.join(LOCAL, 'test_local.json');
const ORACLES = path.join(LOCAL, 'oracles');

interface Step {
  type: string;
  parameters?: Record<string, unknown>;
}
interface TaskJson {
  id: string;
  instruction: string;
  config?: Step[];
  evaluator: { func: string | string[]; result?: unknown; expected?: unknown; postconfig?: Step[] };
}
interface Entry {
  domain: string;
  id: string;
  task: TaskJson;
  infeasible: boolean;
}

const meta = JSON.parse(fs.readFileSync(META, 'utf8')) as Record<string, string[]>;
const entries: Entry[] = Object.entries(meta).flatMap(([domain, ids]) =>
  ids.map((id) => {
    const task = JSON.parse(fs.readFileSync(path.join(LOCAL, 'examples', domain, `${id}.json`), 'utf8')) as TaskJson;
    return { domain, id, task, infeasible: task.evaluator.func === 'infeasible' };
  }),
);
const asList = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

t.test('the suite: tasks, oracles, setup steps, getters and metrics that exist, small fixtures', async (t) => {
  t.ok(entries.length >= 30, `${entries.length} tasks`);
  t.ok(entries.filter((e) => e.infeasible).length >= 2, 'at least two infeasible tasks');
  for (const d of ['os', 'calc', 'writer', 'impress', 'chrome', 'gimp', 'vlc', 'thunderbird', 'multi_apps']) {
    t.ok((meta[d]?.length ?? 0) >= 2, `domain ${d} has tasks`);
  }
  t.equal(new Set(entries.map((e) => e.id)).size, entries.length, 'task ids are unique');
  for (const { domain, id, task } of entries) {
    t.equal(task.id, id, `${domain}/${id}: id matches the file name`);
    t.ok(task.instruction.length > 10, `${id}: has an instruction`);
    for (const s of [...(task.config ?? []), ...(task.evaluator.postconfig ?? [])]) t.ok(isSupportedStep(s.type), `${id}: setup step ${s.type} is implemented`);
    for (const s of task.config ?? []) {
      if (s.type !== 'upload_file') continue;
      for (const f of (s.parameters?.files as { local_path: string }[] | undefined) ?? []) {
        t.ok(fs.existsSync(path.join(LOCAL, 'examples', domain, f.local_path)), `${id}: fixture ${f.local_path} exists`);
      }
    }
    for (const f of asList(task.evaluator.func)) t.ok(f === 'infeasible' || f in METRICS, `${id}: metric ${f} is implemented`);
    for (const g of [...asList(task.evaluator.result), ...asList(task.evaluator.expected)] as { type: string }[]) {
      t.ok(g.type in GETTERS, `${id}: getter ${g.type} is implemented`);
    }
    const oracle = JSON.parse(fs.readFileSync(path.join(ORACLES, `${id}.json`), 'utf8')) as { responses: string[] };
    t.ok(oracle.responses.length >= 1 && oracle.responses.length <= 15, `${id}: oracle has 1-15 responses (ARPO's max_steps)`);
    const last = oracle.responses.map((r) => responseToActions(r, { kind: 'relative', factor: 1000 }, { width: 1920, height: 1080 }, () => 'WAIT').actions).at(-1);
    t.same(last, [entries.find((e) => e.id === id)!.infeasible ? 'FAIL' : 'DONE'], `${id}: oracle parses and ends with ${task.evaluator.func === 'infeasible' ? 'FAIL' : 'DONE'}`);
  }
  const files = path.join(LOCAL, 'files');
  const bytes = fs.readdirSync(files).reduce((n, f) => n + fs.statSync(path.join(files, f)).size, 0);
  t.ok(bytes < 2 * 1024 * 1024, `fixtures are ${bytes} bytes (< 2 MB)`);
});

const skip = skipReason('soffice', 'chromium', 'gimp', 'vlc', 'thunderbird', 'xterm', 'mousepad');

function readScores(results: string): { scores: Map<string, number>; summary: { tasks: number; scored: number; successRate: number; unscored: unknown[] } } {
  const trial = path.join(results, 'pyautogui', 'screenshot', 'ui-tars', '0');
  const scores = new Map<string, number>();
  for (const { domain, id } of entries) {
    const file = path.join(trial, domain, id, 'result.txt');
    if (fs.existsSync(file)) scores.set(id, Number(fs.readFileSync(file, 'utf8').trim()));
  }
  return { scores, summary: JSON.parse(fs.readFileSync(path.join(trial, 'summary.json'), 'utf8')) };
}

const runArgs = (results: string, replayDir: string, extra: string[]): string[] => [
  '--test_config_base_dir', LOCAL, '--test_all_meta_path', META, '--result_dir', results,
  '--agent', 'replay', '--replay-dir', replayDir, '--num_envs', '2', '--no-record', ...extra,
];

t.test('end to end on real desktops: oracles score 1, an agent that gives up scores 0 (1 on infeasible tasks)', { skip }, async (t) => {
  // A private folder, not t.testdir(): another tap run in the checkout may clear .tap/fixtures meanwhile.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'local-suite-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

  const t0 = Date.now();
  const oracleResults = path.join(dir, 'oracle');
  t.equal(await main(runArgs(oracleResults, ORACLES, ['--sleep_after_execution', '1', '--settle-seconds', '2'])), 0);
  const oracle = readScores(oracleResults);
  for (const { domain, id } of entries) t.equal(oracle.scores.get(id), 1, `oracle ${domain}/${id} scores 1`);
  t.equal(oracle.summary.tasks, entries.length);
  t.equal(oracle.summary.scored, entries.length, 'every task was scored (no infrastructure errors, nothing unsupported)');
  t.equal(oracle.summary.successRate, 1);
  t.comment(`oracle run: ${entries.length} tasks in ${((Date.now() - t0) / 1000).toFixed(0)} s`);

  const t1 = Date.now();
  const noop = path.join(dir, 'noop-oracles');
  fs.mkdirSync(noop);
  for (const { id } of entries) fs.writeFileSync(path.join(noop, `${id}.json`), JSON.stringify({ responses: ['Thought: I give up.\nAction: error_env()'] }));
  const noopResults = path.join(dir, 'noop');
  t.equal(await main(runArgs(noopResults, noop, ['--sleep_after_execution', '0.3', '--settle-seconds', '0.5'])), 0);
  const giveUp = readScores(noopResults);
  for (const { domain, id, infeasible } of entries) t.equal(giveUp.scores.get(id), infeasible ? 1 : 0, `giving up on ${domain}/${id} scores ${infeasible ? 1 : 0}`);
  t.equal(giveUp.summary.scored, entries.length);
  t.equal(giveUp.summary.successRate, entries.filter((e) => e.infeasible).length / entries.length, 'success rate = share of infeasible tasks');
  t.comment(`give-up run: ${entries.length} tasks in ${((Date.now() - t1) / 1000).toFixed(0)} s`);
});
