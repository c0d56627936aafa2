/**
 * A trial's summary from its result folder (the durable record): per domain, how many tasks
 * are scored, their mean score, how each task ended (status.ts), and which tasks have no result
 * (errors or not run yet). Written as summary.json next to the domains, and printed.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TaskRef } from '../tasks/load-tasks.ts';
import { taskDir, trialDir, type TrialPath } from './layout.ts';
import { isClean, readTaskStatus, TASK_STATUSES, type TaskStatus } from './status.ts';
import { writeFileAtomic } from './writer.ts';

export interface DomainSummary {
  tasks: number;
  scored: number;
  success: number;
  /** Sum of scores / tasks scored. */
  meanScore: number;
}

/** not_run: no result and no status yet; invalid: its config did not read (never run). */
export type StatusCounts = Record<TaskStatus | 'not_run' | 'invalid', number>;

export interface TrialSummary {
  version: 2;
  trial: TrialPath;
  tasks: number;
  scored: number;
  /** Mean score over all tasks of the list (missing results count 0, as OSWorld's pass@n does). */
  successRate: number;
  /** Mean score over scored tasks only (OSWorld's runner prints this). */
  scoredSuccessRate: number;
  /** Tasks that finished cleanly (status success or fail), and their mean score. */
  clean: number;
  cleanSuccessRate: number;
  /** How many tasks ended in each status; not_run: no result and no status yet. */
  statuses: StatusCounts;
  domains: Record<string, DomainSummary>;
  unscored: { domain: string; id: string; status: TaskStatus | 'not_run' | 'invalid'; error: string | null }[];
  /** Scored tasks that did not finish cleanly (parse_error, model_error). */
  unclean: { domain: string; id: string; status: TaskStatus; score: number | null }[];
  /** Task configs that could not be read (path and reason). */
  invalid?: { domain: string; id: string; file: string; error: string }[];
  /** The run that wrote this summary was stopped by a signal before its tasks were done. */
  interrupted?: { signal: string; at: string };
  /** The trial's trajectory report (report.ts), relative to the trial folder: report.html. */
  report?: string;
  /**
   * What the run recovered from: tasks retried after infrastructure errors (env died, model
   * server down, ...) and model calls retried with backoff, per task (status.json).
   */
  recovered: {
    /** attempts beyond the first, over all tasks */
    taskRetries: number;
    /** model-call retries, over all scored tasks */
    modelRetries: number;
    tasks: { domain: string; id: string; status: TaskStatus; attempts: number; modelRetries: number; errors: string[] }[];
  };
}

function lastError(dir: string): string | null {
  const traj = path.join(dir, 'traj.jsonl');
  if (!fs.existsSync(traj)) return null;
  const lines = fs.readFileSync(traj, 'utf8').trim().split('\n').reverse();
  for (const line of lines) {
    try {
      const entry = JSON.parse(line) as { Error?: string };
      if (entry.Error) return entry.Error;
    } catch {
      // a torn last line from a killed run: ignore it
    }
  }
  return null;
}

export function summarizeTrial(trial: TrialPath, tasks: TaskRef[], invalid: TrialSummary['invalid'] = []): TrialSummary {
  const domains: Record<string, DomainSummary> = {};
  const unscored: TrialSummary['unscored'] = [];
  const unclean: TrialSummary['unclean'] = [];
  const statuses = Object.fromEntries([...TASK_STATUSES, 'not_run', 'invalid'].map((s) => [s, 0])) as StatusCounts;
  const invalidError = new Map(invalid.map((i) => [`${i.domain}/${i.id}`, i.error]));
  let scored = 0;
  let total = 0;
  let clean = 0;
  let cleanTotal = 0;
  const recovered: TrialSummary['recovered'] = { taskRetries: 0, modelRetries: 0, tasks: [] };
  for (const ref of tasks) {
    const d = (domains[ref.domain] ??= { tasks: 0, scored: 0, success: 0, meanScore: 0 });
    d.tasks++;
    const dir = taskDir(trial, ref);
    const st = readTaskStatus(dir);
    const bad = invalidError.get(`${ref.domain}/${ref.id}`);
    // A config that does not read never runs: 'invalid', unless an earlier run left a status.
    const status = st?.status ?? (bad !== undefined ? 'invalid' : 'not_run');
    statuses[status]++;
    if (st && (st.attempts > 1 || st.modelRetries)) {
      recovered.taskRetries += Math.max(0, st.attempts - 1);
      recovered.modelRetries += st.modelRetries ?? 0;
      recovered.tasks.push({ domain: ref.domain, id: ref.id, status: st.status, attempts: st.attempts, modelRetries: st.modelRetries ?? 0, errors: st.attemptErrors ?? [] });
    }
    if (!st || st.score === null) {
      unscored.push({ domain: ref.domain, id: ref.id, status, error: st?.error ?? bad ?? lastError(dir) });
      continue;
    }
    const score = st.score;
    d.scored++;
    d.meanScore += score;
    if (score > 0.5) d.success++;
    scored++;
    total += score;
    if (isClean(st.status)) {
      clean++;
      cleanTotal += score;
    } else {
      unclean.push({ domain: ref.domain, id: ref.id, status: st.status, score });
    }
  }
  for (const d of Object.values(domains)) d.meanScore = d.scored ? d.meanScore / d.scored : 0;
  return {
    version: 2,
    trial,
    tasks: tasks.length,
    scored,
    successRate: tasks.length ? total / tasks.length : 0,
    scoredSuccessRate: scored ? total / scored : 0,
    clean,
    cleanSuccessRate: clean ? cleanTotal / clean : 0,
    statuses,
    domains,
    unscored,
    unclean,
    ...(invalid.length ? { invalid } : {}),
    recovered,
  };
}

export function writeSummary(summary: TrialSummary): string {
  const file = path.join(trialDir(summary.trial), 'summary.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeFileAtomic(file, `${JSON.stringify(summary, null, 2)}\n`);
  return file;
}

export function formatSummary(s: TrialSummary): string {
  const pct = (x: number): string => `${(100 * x).toFixed(1)}%`;
  const lines = Object.entries(s.domains).map(
    ([name, d]) => `  ${name.padEnd(20)} ${String(d.success).padStart(3)}/${d.tasks} succeeded (${d.scored} scored, mean ${d.meanScore.toFixed(3)})`,
  );
  const counts = Object.entries(s.statuses)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  return [
    `trial ${s.trial.trialId}: ${pct(s.successRate)} over ${s.tasks} tasks (${s.scored} scored; ${pct(s.scoredSuccessRate)} of scored; ${pct(s.cleanSuccessRate)} of ${s.clean} cleanly finished)`,
    ...(s.interrupted ? [`  interrupted by ${s.interrupted.signal} at ${s.interrupted.at}: tasks without a result are left for a later run`] : []),
    `  statuses: ${counts || 'none'}`,
    ...lines,
    ...(s.unscored.length ? [`  ${s.unscored.length} task(s) without a result (see summary.json)`] : []),
    ...(s.recovered.tasks.length
      ? [`  recovered: ${s.recovered.taskRetries} task retr${s.recovered.taskRetries === 1 ? 'y' : 'ies'} after infrastructure errors, ${s.recovered.modelRetries} model call retr${s.recovered.modelRetries === 1 ? 'y' : 'ies'} (${s.recovered.tasks.length} task(s); see summary.json)`]
      : []),
  ].join('\n');
}
