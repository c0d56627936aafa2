/**
 * pass-at-n: OSWorld/ARPO's pass_at_n.py over the trials of one model.
 *
 *   pass-at-n --root_path results/pyautogui/screenshot/ui-tars --meta_path evaluation_examples/test_all.json [--trials 0 1 2] [--detail] [--filter_fail] [--json]
 *   pass-at-n --root_path ... --table      the trials side by side: per domain, pass@n, pass^n, flaky tasks
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { formatPassAtN, formatPassAtNTable, listTrials, passAtN } from '../results/pass-at-n.ts';
import { loadTaskList } from '../tasks/load-tasks.ts';
import { normaliseArgv } from './argv.ts';

export function buildPassAtNProgram(): Command {
  return new Command()
    .name('pass-at-n')
    .description("pass@n over trials, as OSWorld/ARPO's pass_at_n.py (_ or - both work)")
    .requiredOption('--root-path <dir>', 'the model folder: {result_dir}/{action_space}/{observation_type}/{model}')
    .option('--meta-path <file>', 'task list {domain: [ids]}', './evaluation_examples/test_all.json')
    .option('--domain <d>', 'one domain or "all"', 'all')
    .option('--trials <ids...>', 'trial folders to use (default: every numeric subfolder); space or comma separated')
    .option('--detail', 'print each task with its score per trial', false)
    .option('--filter-fail', 'a result counts 0 when the trajectory ran into the step cap (last action FAIL, >= 16 traj lines)', false)
    .option('--table', 'the trials side by side: per domain solved tasks per trial, pass@n, pass^n (solved in every trial), flaky tasks (solved in some trials only)', false)
    .option('--json', 'print the result as JSON', false);
}

export function passAtNMain(argv: string[]): number {
  const p = buildPassAtNProgram();
  p.parse(normaliseArgv(argv), { from: 'user' });
  const o = p.opts<{ rootPath: string; metaPath: string; domain: string; trials?: string[]; detail: boolean; filterFail: boolean; table: boolean; json: boolean }>();
  const tasks = loadTaskList(o.metaPath, o.domain);
  const trials = o.trials?.flatMap((t) => t.split(',')).map((t) => t.trim()).filter(Boolean);
  const found = listTrials(o.rootPath); // also: a missing root is an error
  const missing = trials?.filter((t) => !fs.statSync(path.join(o.rootPath, t), { throwIfNoEntry: false })?.isDirectory());
  if (missing?.length) throw new Error(`no trial ${missing.join(', ')} under ${o.rootPath} (it has ${found.join(', ') || 'none'})`);
  const r = passAtN({ root: o.rootPath, tasks, ...(trials ? { trials } : {}), filterFail: o.filterFail });
  if (!r.trials.length) throw new Error(`no trial folders under ${o.rootPath}`);
  if (o.json) {
    const { detail, ...rest } = r;
    console.log(JSON.stringify(o.detail ? r : rest, null, 2));
    void detail;
  } else if (o.table) {
    console.log(formatPassAtNTable(r));
  } else {
    console.log(formatPassAtN(r, o.detail));
  }
  return 0;
}
