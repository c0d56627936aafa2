/**
 * OSWorld/ARPO's pass_at_n.py over several trials of one model:
 *   root = {result_dir}/{action_space}/{observation_type}/{model}; trials = its numeric subdirs.
 * A task's result in a trial needs traj.jsonl and result.txt ("true" 1, "false" 0, else a float;
 * unreadable 0). With filterFail, a result is 0 when the last traj line's action is FAIL and the
 * trajectory has >= 16 lines (the step cap turned into FAIL).
 *   acc         tasks with any trial > 0.5, over tasks with at least one result (pass@n)
 *   accOverAll  the same over every task of the list
 *   domains     per domain: pass@n over its valid tasks; valid / total
 *   trials      per trial: sum of scores over every task of the list (missing = 0); valid / total
 *   meanAcc     mean of the per-trial accs
 * Ours on top, for comparing trials side by side (formatPassAtNTable):
 *   passHatN    pass^n: tasks with a result > 0.5 in every trial (a missing result is no pass),
 *               over tasks with at least one result; passHatNOverAll over every task of the list
 *   trialSuccess / domainTrials   per trial (and per domain and trial): tasks > 0.5 and results
 *   flaky       tasks solved (> 0.5) in some trials but not in all
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TaskRef } from '../tasks/load-tasks.ts';
import { readScore } from './layout.ts';

export interface PassAtNOptions {
  root: string;
  tasks: TaskRef[];
  trials?: string[];
  filterFail?: boolean;
}

export interface PassAtN {
  root: string;
  trials: string[];
  tasks: number;
  valid: number;
  passed: number;
  acc: number;
  accOverAll: number;
  domains: Record<string, { acc: number; passed: number; valid: number; total: number }>;
  trialAcc: Record<string, { acc: number; valid: number; total: number }>;
  meanAcc: number;
  /** per task: its score in each trial (null: no result) */
  detail: { domain: string; id: string; scores: (number | null)[]; passed: boolean }[];
  /** tasks solved (> 0.5) in every trial */
  allPassed: number;
  /** pass^n: allPassed over tasks with at least one result */
  passHatN: number;
  /** allPassed over every task of the list */
  passHatNOverAll: number;
  /** per trial: tasks solved (> 0.5) */
  trialSuccess: Record<string, number>;
  /** per domain: solved tasks and results per trial (in trial order), and pass^n */
  domainTrials: Record<string, { success: number[]; valid: number[]; allPassed: number; passHatN: number; flaky: number }>;
  /** tasks solved in some trials but not in all (scores per trial; null: no result) */
  flaky: { domain: string; id: string; scores: (number | null)[]; solved: number }[];
}

/** The numeric subdirectories of root, in numeric order (pass_at_n.py's default --trials). */
export function listTrials(root: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    throw new Error(`cannot read ${root}: no such result folder`);
  }
  return names.filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(a) - Number(b));
}

export function loadResult(dir: string, filterFail = false): number | null {
  const traj = path.join(dir, 'traj.jsonl');
  const result = path.join(dir, 'result.txt');
  if (!fs.existsSync(traj) || !fs.existsSync(result)) return null;
  let score = readScore(result);
  if (filterFail) {
    const lines = fs.readFileSync(traj, 'utf8').split('\n').filter((l) => l.trim());
    try {
      const last = JSON.parse(lines.at(-1) ?? '{}') as { action?: unknown };
      if (last.action === 'FAIL' && lines.length >= 16) score = 0;
    } catch {
      /* a torn line: leave the score */
    }
  }
  return score;
}

export function passAtN(o: PassAtNOptions): PassAtN {
  const trials = o.trials?.length ? o.trials : listTrials(o.root);
  const domains: PassAtN['domains'] = {};
  const trialAcc: PassAtN['trialAcc'] = Object.fromEntries(trials.map((t) => [t, { acc: 0, valid: 0, total: o.tasks.length }]));
  const detail: PassAtN['detail'] = [];
  const trialSuccess: PassAtN['trialSuccess'] = Object.fromEntries(trials.map((t) => [t, 0]));
  const domainTrials: PassAtN['domainTrials'] = {};
  const flaky: PassAtN['flaky'] = [];
  let valid = 0;
  let passed = 0;
  let allPassed = 0;
  for (const ref of o.tasks) {
    const d = (domains[ref.domain] ??= { acc: 0, passed: 0, valid: 0, total: 0 });
    const dt = (domainTrials[ref.domain] ??= { success: trials.map(() => 0), valid: trials.map(() => 0), allPassed: 0, passHatN: 0, flaky: 0 });
    d.total++;
    const scores = trials.map((t) => loadResult(path.join(o.root, t, ref.domain, ref.id), o.filterFail));
    scores.forEach((s, i) => {
      if (s === null) return;
      const ta = trialAcc[trials[i]!]!;
      ta.valid++;
      ta.acc += s;
      dt.valid[i]!++;
      if (s > 0.5) {
        dt.success[i]!++;
        trialSuccess[trials[i]!]!++;
      }
    });
    const solved = scores.filter((s) => s !== null && s > 0.5).length;
    if (trials.length && solved === trials.length) {
      allPassed++;
      dt.allPassed++;
    } else if (solved > 0) {
      flaky.push({ domain: ref.domain, id: ref.id, scores, solved });
      dt.flaky++;
    }
    const any = scores.some((s) => s !== null);
    const pass = scores.some((s) => s !== null && s > 0.5);
    if (any) {
      valid++;
      d.valid++;
    }
    if (pass) {
      passed++;
      d.passed++;
    }
    detail.push({ domain: ref.domain, id: ref.id, scores, passed: pass });
  }
  for (const d of Object.values(domains)) d.acc = d.valid ? d.passed / d.valid : 0;
  for (const [name, dt] of Object.entries(domainTrials)) dt.passHatN = domains[name]!.valid ? dt.allPassed / domains[name]!.valid : 0;
  for (const t of Object.values(trialAcc)) t.acc = t.total ? t.acc / t.total : 0;
  const accs = Object.values(trialAcc).map((t) => t.acc);
  return {
    root: o.root,
    trials,
    tasks: o.tasks.length,
    valid,
    passed,
    acc: valid ? passed / valid : 0,
    accOverAll: o.tasks.length ? passed / o.tasks.length : 0,
    domains,
    trialAcc,
    meanAcc: accs.length ? accs.reduce((a, b) => a + b, 0) / accs.length : 0,
    detail,
    allPassed,
    passHatN: valid ? allPassed / valid : 0,
    passHatNOverAll: o.tasks.length ? allPassed / o.tasks.length : 0,
    trialSuccess,
    domainTrials,
    flaky,
  };
}

export function formatPassAtN(r: PassAtN, detail = false): string {
  const f = (x: number): string => x.toFixed(4);
  const lines: string[] = [];
  if (detail) {
    for (const t of r.detail) lines.push(`${t.domain}/${t.id}: ${t.scores.map((s) => (s === null ? '-' : String(s))).join(' ')}${t.passed ? '  pass' : ''}`);
    lines.push('');
  }
  lines.push(`Acc: ${f(r.acc)} (${r.passed}/${r.valid} tasks with a result)`);
  lines.push(`Acc over all: ${f(r.accOverAll)} (${r.passed}/${r.tasks})`);
  for (const [name, d] of Object.entries(r.domains)) lines.push(`${name} acc: ${f(d.acc)} num tasks: ${d.valid}/${d.total}`);
  for (const t of r.trials) {
    const a = r.trialAcc[t]!;
    lines.push(`Trial ${t} acc: ${f(a.acc)} num valid: ${a.valid}/${a.total}`);
  }
  lines.push(`Mean acc: ${f(r.meanAcc)} over ${r.trials.length} trial(s)`);
  lines.push(`Pass^n: ${f(r.passHatN)} (${r.allPassed}/${r.valid} tasks solved in every trial; over all ${f(r.passHatNOverAll)})`);
  lines.push(`Flaky: ${r.flaky.length} task(s) solved in some trials only`);
  return lines.join('\n');
}

const scoreCell = (s: number | null): string => (s === null ? '-' : String(Math.round(s * 100) / 100));

/** Text columns; `align` per column ('l' / 'r'), default: the first left, the others right. */
export function textTable(rows: string[][], align: ('l' | 'r')[] = []): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const left = (c: number): boolean => (align[c] ?? (c === 0 ? 'l' : 'r')) === 'l';
  return rows.map((r) => r.map((cell, c) => (left(c) ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd()).join('\n');
}

/**
 * The trials side by side: per domain, tasks solved in each trial (of the domain's tasks), pass@n
 * and pass^n (of the tasks with a result) and how many tasks are flaky; then the flaky tasks with
 * their score per trial.
 */
export function formatPassAtNTable(r: PassAtN): string {
  const n = r.trials.length;
  const p = (a: number, b: number): string => `${a}/${b} ${b ? `${((100 * a) / b).toFixed(1)}%` : '-'}`;
  const rows: string[][] = [['domain', 'tasks', ...r.trials.map((t) => `trial ${t}`), `pass@${n}`, `pass^${n}`, 'flaky']];
  for (const [name, d] of Object.entries(r.domains)) {
    const dt = r.domainTrials[name]!;
    rows.push([name, String(d.total), ...dt.success.map((s) => p(s, d.total)), p(d.passed, d.valid), p(dt.allPassed, d.valid), String(dt.flaky)]);
  }
  rows.push(['all', String(r.tasks), ...r.trials.map((t) => p(r.trialSuccess[t]!, r.tasks)), p(r.passed, r.valid), p(r.allPassed, r.valid), String(r.flaky.length)]);
  const lines = [textTable(rows)];
  lines.push('', `trials: solved tasks over the domain's tasks (missing results count as unsolved); pass@${n} and pass^${n}: over tasks with a result in some trial`);
  if (r.flaky.length) {
    lines.push('', `flaky: ${r.flaky.length} task(s) solved in some trials only (score per trial; - = no result)`);
    lines.push(textTable([['task', ...r.trials.map((t) => `trial ${t}`)], ...r.flaky.map((f) => [`${f.domain}/${f.id}`, ...f.scores.map(scoreCell)])]));
  }
  return lines.join('\n');
}
