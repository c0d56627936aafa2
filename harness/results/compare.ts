/**
 * Two result folders (trials) side by side, per task: score and status in each, number of
 * actions, the first action where the two trajectories part (with the screenshots the model saw
 * there), and the differences between the runs' recorded configs (config.json: model, sampling,
 * coordinates, steps, history, image size, task set, harness commit). For "why do I get 21% where
 * the paper says 27%": which tasks changed, where the agent first did something else, and what was
 * configured differently.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TaskRef } from '../tasks/load-tasks.ts';
import { textTable } from './pass-at-n.ts';
import { scanTasks } from './report.ts';
import { readTaskStatus, type TaskStatus } from './status.ts';
import { describeAction, normaliseAction, readTrajectory } from './trajectory.ts';

export interface TaskSide {
  score: number | null;
  status: TaskStatus | 'not_run';
  /** actions executed (traj.jsonl lines after the reset) */
  steps: number;
  error: string | null;
}

export type Change = 'improved' | 'regressed' | 'both_pass' | 'both_fail' | 'only_a' | 'only_b' | 'no_result';

export interface Divergence {
  /** 1-based action index where the trajectories first differ */
  step: number;
  /** described actions at that index (null: that trajectory had ended) */
  a: string | null;
  b: string | null;
  /** the screenshots the model saw before that action (relative to each trial dir) */
  aScreenshot: string | null;
  bScreenshot: string | null;
}

export interface TaskDiff {
  domain: string;
  id: string;
  a: TaskSide;
  b: TaskSide;
  change: Change;
  /** null: the two trajectories ran the same actions (comments and pauses ignored) */
  divergence: Divergence | null;
}

export interface ConfigDiff {
  key: string;
  a: unknown;
  b: unknown;
  /** the difference can change what the model sees or does, or how tasks are scored */
  matters: boolean;
}

export interface RunInfo {
  dir: string;
  /** config.json found */
  config: boolean;
  /** model as recorded (model.id, or the replay dir), null without config.json */
  model: string | null;
  tasks: number;
  scored: number;
  success: number;
  meanScore: number;
}

export interface Comparison {
  a: RunInfo;
  b: RunInfo;
  /** tasks that have a result in both runs, and how many each solved among them */
  common: { tasks: number; a: number; b: number };
  counts: Record<Change, number>;
  /** tasks that ran different actions at some step */
  divergent: number;
  configDiff: ConfigDiff[];
  domains: Record<string, { tasks: number; a: number; b: number; aScored: number; bScored: number }>;
  tasks: TaskDiff[];
}

const IGNORED = [/^startedAt$/, /^argv$/, /^trial\./, /^version$/];
/** Config keys whose difference can change what the model sees or does, or the scoring. */
const MATTERS = [/^model\.(id|root|agent|replayDir|maxModelLen)$/, /^agent\./, /^sampling\./, /^image\./, /^taskSet\.(hash|count|domain|excludedTags|excluded)/, /^run\.(provider|sleepAfterExecutionS|settleS)$/, /^harness\.(commit|dirty)$/];

/** Leaf values of parsed JSON as dotted keys; arrays are leaves. */
export function flatten(v: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = v;
  }
  return out;
}

export function diffConfigs(a: Record<string, unknown> | null, b: Record<string, unknown> | null): ConfigDiff[] {
  if (!a || !b) return [];
  const fa = flatten(a);
  const fb = flatten(b);
  const keys = [...new Set([...Object.keys(fa), ...Object.keys(fb)])].filter((k) => !IGNORED.some((r) => r.test(k)));
  const diffs = keys
    .filter((k) => JSON.stringify(fa[k] ?? null) !== JSON.stringify(fb[k] ?? null))
    .map((k) => ({ key: k, a: fa[k] ?? null, b: fb[k] ?? null, matters: MATTERS.some((r) => r.test(k)) }));
  return diffs.sort((x, y) => Number(y.matters) - Number(x.matters) || x.key.localeCompare(y.key));
}

function readConfig(dir: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function looksLikeTrial(d: string): boolean {
  if (['config.json', 'summary.json'].some((f) => fs.existsSync(path.join(d, f)))) return true;
  return scanTasks(d).length > 0;
}

/**
 * The trial folder named by `dir`: the folder itself when it holds results, else its only
 * subfolder, and so on down (result_dir -> action_space -> ... -> trial). Several candidates: an error.
 */
export function resolveTrialDir(dir: string): string {
  let d = path.resolve(dir);
  for (let depth = 0; depth < 8; depth++) {
    if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) throw new Error(`cannot read ${dir}: no such result folder`);
    if (looksLikeTrial(d)) return d;
    const subs = fs.readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory() && e.name !== 'logs').map((e) => e.name).sort();
    if (subs.length === 1) {
      d = path.join(d, subs[0]!);
      continue;
    }
    if (subs.length === 0) break;
    throw new Error(`${d} holds several result folders (${subs.slice(0, 6).join(', ')}${subs.length > 6 ? ', ...' : ''}): name one of them`);
  }
  throw new Error(`${dir}: no task results found`);
}

interface Side {
  side: TaskSide;
  actions: string[];
  shots: (string | null)[];
}

function readSide(trial: string, ref: TaskRef): Side {
  const dir = path.join(trial, ref.domain, ref.id);
  const st = readTaskStatus(dir);
  const traj = readTrajectory(dir);
  const rel = (f: string | null): string | null => (f ? path.join(ref.domain, ref.id, f) : null);
  return {
    side: { score: st?.score ?? null, status: st?.status ?? 'not_run', steps: traj.steps.length, error: st?.error ?? traj.error },
    actions: traj.steps.map((s) => s.action),
    shots: [rel(traj.resetScreenshot), ...traj.steps.map((s) => rel(s.screenshot))],
  };
}

function divergence(a: Side, b: Side): Divergence | null {
  const n = Math.max(a.actions.length, b.actions.length);
  for (let i = 0; i < n; i++) {
    const x = a.actions[i];
    const y = b.actions[i];
    if (x !== undefined && y !== undefined && normaliseAction(x) === normaliseAction(y)) continue;
    return {
      step: i + 1,
      a: x === undefined ? null : describeAction(x),
      b: y === undefined ? null : describeAction(y),
      aScreenshot: x === undefined ? null : (a.shots[i] ?? null),
      bScreenshot: y === undefined ? null : (b.shots[i] ?? null),
    };
  }
  return null;
}

function change(a: number | null, b: number | null): Change {
  if (a === null && b === null) return 'no_result';
  if (b === null) return 'only_a';
  if (a === null) return 'only_b';
  if (a > 0.5 && b > 0.5) return 'both_pass';
  if (a > 0.5) return 'regressed';
  if (b > 0.5) return 'improved';
  return 'both_fail';
}

function modelOf(config: Record<string, unknown> | null): string | null {
  if (!config) return null;
  const m = config.model as Record<string, unknown> | undefined;
  if (!m) return null;
  if (m.agent === 'replay') return `replay ${String(m.replayDir ?? '')}`;
  return [m.id, m.root].filter((x) => typeof x === 'string' && x).join(' ') || (typeof m.servedName === 'string' ? m.servedName : null);
}

export interface CompareOptions {
  /** task list; default: every task folder in either run */
  tasks?: TaskRef[];
  /** only this domain ("all": every one) */
  domain?: string;
}

export function compareRuns(dirA: string, dirB: string, o: CompareOptions = {}): Comparison {
  const a = resolveTrialDir(dirA);
  const b = resolveTrialDir(dirB);
  let refs = o.tasks;
  if (!refs) {
    const seen = new Map<string, TaskRef>();
    for (const r of [...scanTasks(a), ...scanTasks(b)]) seen.set(`${r.domain}/${r.id}`, r);
    refs = [...seen.values()].sort((x, y) => x.domain.localeCompare(y.domain) || x.id.localeCompare(y.id));
  }
  if (o.domain && o.domain !== 'all') {
    const known = [...new Set(refs.map((r) => r.domain))];
    // As run-multienv and pass-at-n do: an unknown domain is a mistake, not an empty comparison.
    if (!known.includes(o.domain)) throw new Error(`domain "${o.domain}" is in neither run (they have ${known.join(', ') || 'no task'})`);
    refs = refs.filter((r) => r.domain === o.domain);
  }
  const counts: Record<Change, number> = { improved: 0, regressed: 0, both_pass: 0, both_fail: 0, only_a: 0, only_b: 0, no_result: 0 };
  const domains: Comparison['domains'] = {};
  const tasks: TaskDiff[] = [];
  const common = { tasks: 0, a: 0, b: 0 };
  const totals = { a: { scored: 0, success: 0, sum: 0 }, b: { scored: 0, success: 0, sum: 0 } };
  for (const ref of refs) {
    const sa = readSide(a, ref);
    const sb = readSide(b, ref);
    const c = change(sa.side.score, sb.side.score);
    counts[c]++;
    const d = (domains[ref.domain] ??= { tasks: 0, a: 0, b: 0, aScored: 0, bScored: 0 });
    d.tasks++;
    for (const [k, s] of [['a', sa.side], ['b', sb.side]] as const) {
      if (s.score === null) continue;
      totals[k].scored++;
      totals[k].sum += s.score;
      if (k === 'a') d.aScored++;
      else d.bScored++;
      if (s.score > 0.5) {
        totals[k].success++;
        d[k]++;
      }
    }
    if (sa.side.score !== null && sb.side.score !== null) {
      common.tasks++;
      if (sa.side.score > 0.5) common.a++;
      if (sb.side.score > 0.5) common.b++;
    }
    tasks.push({ domain: ref.domain, id: ref.id, a: sa.side, b: sb.side, change: c, divergence: sa.actions.length || sb.actions.length ? divergence(sa, sb) : null });
  }
  const ca = readConfig(a);
  const cb = readConfig(b);
  const info = (dir: string, config: Record<string, unknown> | null, t: { scored: number; success: number; sum: number }): RunInfo => ({
    dir,
    config: config !== null,
    model: modelOf(config),
    tasks: refs.length,
    scored: t.scored,
    success: t.success,
    meanScore: refs.length ? t.sum / refs.length : 0,
  });
  return {
    a: info(a, ca, totals.a),
    b: info(b, cb, totals.b),
    common,
    counts,
    divergent: tasks.filter((t) => t.divergence).length,
    configDiff: diffConfigs(ca, cb),
    domains,
    tasks,
  };
}

const pct = (a: number, b: number): string => (b ? `${((100 * a) / b).toFixed(1)}%` : '-');
const score = (s: number | null): string => (s === null ? '-' : String(Math.round(s * 1000) / 1000));
const clip = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const value = (v: unknown): string => clip(v === null || v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v), 60);

const CHANGE_LABEL: Record<Change, string> = {
  improved: 'solved in B only',
  regressed: 'solved in A only',
  both_pass: 'solved in both',
  both_fail: 'failed in both',
  only_a: 'result in A only',
  only_b: 'result in B only',
  no_result: 'no result in either',
};

/** The comparison as text: headline, config differences, per-domain table, then the tasks. */
export function formatComparison(c: Comparison, o: { all?: boolean } = {}): string {
  const lines: string[] = [];
  lines.push(`A: ${c.a.dir}${c.a.model ? `  (${c.a.model})` : ''}${c.a.config ? '' : '  (no config.json)'}`);
  lines.push(`B: ${c.b.dir}${c.b.model ? `  (${c.b.model})` : ''}${c.b.config ? '' : '  (no config.json)'}`);
  const n = c.a.tasks;
  lines.push(
    `success: A ${c.a.success}/${n} (${pct(c.a.success, n)}), B ${c.b.success}/${n} (${pct(c.b.success, n)}) over the ${n} task(s) of either run (no result counts as unsolved); scored: A ${c.a.scored}, B ${c.b.scored}`,
  );
  lines.push(`on the ${c.common.tasks} task(s) scored in both: A ${c.common.a} (${pct(c.common.a, c.common.tasks)}), B ${c.common.b} (${pct(c.common.b, c.common.tasks)})`);
  lines.push(
    `tasks: ${(Object.keys(CHANGE_LABEL) as Change[]).filter((k) => c.counts[k]).map((k) => `${c.counts[k]} ${CHANGE_LABEL[k]}`).join(', ') || 'none'}; ${c.divergent} ran different actions`,
  );
  lines.push('');
  if (!c.a.config || !c.b.config) {
    lines.push(`config: ${[!c.a.config ? 'A' : '', !c.b.config ? 'B' : ''].filter(Boolean).join(' and ')} has no config.json: configs not compared`);
  } else if (!c.configDiff.length) {
    lines.push('config: no differences (start time, argv and paths of the trial aside)');
  } else {
    lines.push(`config differences (* can change what the model sees or does, or the scoring):`);
    lines.push(textTable([['    key', 'A', 'B'], ...c.configDiff.map((d) => [`  ${d.matters ? '* ' : '  '}${d.key}`, value(d.a), value(d.b)])], ['l', 'l', 'l']));
  }
  lines.push('');
  lines.push('per domain (solved / tasks):');
  lines.push(
    textTable([
      ['  domain', 'tasks', 'A', 'B', 'B - A'],
      ...Object.entries(c.domains).map(([name, d]) => [`  ${name}`, String(d.tasks), `${d.a} ${pct(d.a, d.tasks)}`, `${d.b} ${pct(d.b, d.tasks)}`, `${d.b - d.a >= 0 ? '+' : ''}${d.b - d.a}`]),
    ]),
  );
  lines.push('');
  const shown = o.all ? c.tasks : c.tasks.filter((t) => t.change === 'improved' || t.change === 'regressed' || t.change === 'only_a' || t.change === 'only_b');
  lines.push(o.all ? 'tasks:' : `tasks whose outcome differs (${shown.length}; --all lists all ${c.tasks.length}):`);
  if (shown.length) {
    const div = (t: TaskDiff): string => (t.divergence ? `#${t.divergence.step}: ${clip(t.divergence.a ?? '(ended)', 40)} | ${clip(t.divergence.b ?? '(ended)', 40)}` : t.a.steps || t.b.steps ? 'same actions' : '-');
    lines.push(
      textTable([
        ['  task', 'A', 'B', 'status A', 'status B', 'steps A', 'steps B', 'first different action: A | B'],
        ...shown.map((t) => [`  ${t.domain}/${t.id}`, score(t.a.score), score(t.b.score), t.a.status, t.b.status, String(t.a.steps), String(t.b.steps), div(t)]),
      ], ['l', 'r', 'r', 'l', 'l', 'r', 'r', 'l']),
    );
  } else {
    lines.push('  none');
  }
  return lines.join('\n');
}
