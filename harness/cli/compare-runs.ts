/**
 * compare-runs: two result folders (trials) side by side, per task: score and status in each,
 * actions taken, the first action where they part, and the differences between the recorded
 * configs (config.json). A folder above a trial works when it holds only one trial.
 *
 *   compare-runs results/pyautogui/screenshot/ui-tars/0 other-results/pyautogui/screenshot/ui-tars/0 [--meta_path list.json] [--domain D] [--all] [--json]
 */
import { Command } from 'commander';
import { compareRuns, formatComparison } from '../results/compare.ts';
import { loadTaskList } from '../tasks/load-tasks.ts';
import { normaliseArgv } from './argv.ts';

export function buildCompareProgram(): Command {
  return new Command()
    .name('compare-runs')
    .description('Compare two result folders (trials) per task: scores, steps, first different action, config differences (_ or - both work)')
    .argument('<a>', 'trial folder A: {result_dir}/{action_space}/{observation_type}/{model}/{trial_id} (or a folder above it holding one trial)')
    .argument('<b>', 'trial folder B')
    .option('--meta-path <file>', 'task list {domain: [ids]} (default: every task folder in either run)')
    .option('--domain <d>', 'one domain or "all"', 'all')
    .option('--all', 'list every task, not only those whose outcome differs', false)
    .option('--json', 'print the comparison as JSON (every task)', false);
}

export function compareRunsMain(argv: string[]): number {
  const p = buildCompareProgram();
  p.parse(normaliseArgv(argv), { from: 'user' });
  const [a, b] = p.processedArgs as [string, string];
  const o = p.opts<{ metaPath?: string; domain: string; all: boolean; json: boolean }>();
  const tasks = o.metaPath ? loadTaskList(o.metaPath, o.domain) : undefined;
  const c = compareRuns(a, b, tasks ? { tasks } : { domain: o.domain });
  console.log(o.json ? JSON.stringify(c, null, 2) : formatComparison(c, { all: o.all }));
  return 0;
}
