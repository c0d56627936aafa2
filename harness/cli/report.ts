/**
 * run-multienv report: writes a trial's trajectory report (report.html in the trial folder, next to
 * summary.json) from its result folder; run-multienv writes it at the end of every trial too.
 *
 *   run-multienv report --result_dir ./results [--model ui-tars] [--trial-id 0|all]
 *   run-multienv report --trial-dir results/pyautogui/screenshot/ui-tars/0 [--meta_path list.json] [--out file.html]
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { resolveTrialDir } from '../results/compare.ts';
import { listTrials } from '../results/pass-at-n.ts';
import { REPORT_FILE, writeReport } from '../results/report.ts';
import { writeFileAtomic } from '../results/writer.ts';
import { loadTaskList, type TaskRef } from '../tasks/load-tasks.ts';
import { normaliseArgv, pathComponentFlag } from './argv.ts';

export function buildReportProgram(): Command {
  return new Command()
    .name('run-multienv report')
    .description("Write a trial's trajectory report (report.html next to summary.json): per task the instruction, score and every step's screenshot with the action drawn on it, thought, action and latency (_ or - both work)")
    .option('--trial-dir <dir>', 'the trial folder (or a folder above it holding one trial); overrides the path flags below')
    .option('--result-dir <dir>', 'result root', './results')
    .option('--action-space <s>', 'action space (result path component)', pathComponentFlag('--action-space'), 'pyautogui')
    .option('--observation-type <t>', 'observation type (result path component)', pathComponentFlag('--observation-type'), 'screenshot')
    .option('--model <name>', 'model name in the result path', pathComponentFlag('--model'), 'ui-tars')
    .option('--trial-id <id>', 'trial id, or "all" for every trial of the model', pathComponentFlag('--trial-id'), '0')
    .option('--meta-path <file>', 'task list {domain: [ids]}: tasks without a folder show as not run (default: the task folders found)')
    .option('--domain <d>', 'with --meta-path: one domain or "all"', 'all')
    .option('--out <file>', 'where to write (default: <trial>/report.html; screenshot links are relative to it)');
}

interface ReportFlags {
  trialDir?: string;
  resultDir: string;
  actionSpace: string;
  observationType: string;
  model: string;
  trialId: string;
  metaPath?: string;
  domain: string;
  out?: string;
}

/** Records the report's path (relative to the trial) in summary.json, when the trial has one. */
export function linkReportInSummary(trial: string, report: string): void {
  const file = path.join(trial, 'summary.json');
  let summary: unknown;
  try {
    summary = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return;
  }
  if (!summary || typeof summary !== 'object' || Array.isArray(summary)) return;
  const rel = path.relative(trial, report);
  if ((summary as Record<string, unknown>).report === rel) return;
  writeFileAtomic(file, `${JSON.stringify({ ...summary, report: rel }, null, 2)}\n`);
}

export function reportMain(argv: string[]): number {
  const p = buildReportProgram();
  p.parse(normaliseArgv(argv), { from: 'user' });
  const o = p.opts<ReportFlags>();
  let trials: string[];
  if (o.trialDir) {
    trials = [resolveTrialDir(o.trialDir)];
  } else {
    const root = path.join(o.resultDir, o.actionSpace, o.observationType, o.model);
    trials = o.trialId === 'all' ? listTrials(root).map((t) => path.join(root, t)) : [path.join(root, o.trialId)];
    if (!trials.length) throw new Error(`no trial folders under ${root}`);
    for (const t of trials) if (!fs.existsSync(t)) throw new Error(`cannot read ${t}: no such trial folder`);
  }
  if (o.out && trials.length > 1) throw new Error('--out names one file: give one trial');
  const tasks: TaskRef[] | undefined = o.metaPath ? loadTaskList(o.metaPath, o.domain) : undefined;
  for (const trial of trials) {
    const file = writeReport({ dir: trial, ...(tasks ? { tasks } : {}), ...(o.out ? { out: o.out } : {}) });
    if (!o.out || path.resolve(o.out) === path.resolve(trial, REPORT_FILE)) linkReportInSummary(trial, file);
    console.log(`report: ${file}`);
  }
  return 0;
}
