/**
 * Coverage of the OSWorld tasks by this harness:
 *   npx tsx harness/cli/coverage.ts [--json] [--meta evaluation_examples/test_all.json] [--base evaluation_examples]
 * For each task: the setup step types (config + postconfig), getters, metrics (and compare_table
 * rule types) it uses that are not implemented; whether it needs a Google account (googledrive /
 * login setup, googledrive_file getter: unsupported); whether its apps can be installed here
 * (vs_code cannot: not in Debian); whether it needs files from the download cache (download
 * setup steps, cloud_file / cache_file getters). "implemented" = no Google account and nothing
 * missing. The tables are read from the code (STEPS, GETTERS, METRICS), so they cannot drift.
 */
import path from 'node:path';
import { isSupportedStep } from '../env/setup/setup-controller.ts';
import { GETTERS } from '../eval/getters/index.ts';
import { METRICS } from '../eval/metrics/index.ts';
import { TABLE_RULES } from '../eval/metrics/table.ts';
import { loadTask, loadTaskList } from '../tasks/load-tasks.ts';

const UNAVAILABLE_APPS = new Set(['vs_code', 'vscode']);
const GOOGLE_STEPS = new Set(['googledrive', 'login']);
const GOOGLE_GETTERS = new Set(['googledrive_file']);
const CACHE_STEPS = new Set(['download']);
const CACHE_GETTERS = new Set(['cloud_file', 'cache_file']);

export interface TaskCoverage {
  domain: string;
  id: string;
  implemented: boolean;
  needsGoogle: boolean;
  appsAvailable: boolean;
  unavailableApps: string[];
  needsCachedFiles: boolean;
  missing: string[];
  error?: string;
}

const asList = <T>(v: T | T[] | undefined | null): T[] => (v === undefined || v === null ? [] : Array.isArray(v) ? v : [v]);

export function coverTask(domain: string, id: string, task: Record<string, unknown>): TaskCoverage {
  const ev = (task.evaluator ?? {}) as Record<string, unknown>;
  const steps = [...asList(task.config as { type: string }[]), ...asList(ev.postconfig as { type: string }[])].map((s) => s.type);
  const getters = [...asList(ev.result as ({ type: string } | null)[]), ...asList(ev.expected as ({ type: string } | null)[])].filter((g): g is { type: string } => !!g).map((g) => g.type);
  const funcs = asList(ev.func as string | string[]);
  const options = funcs.length > 1 ? asList(ev.options as Record<string, unknown>[]) : [ev.options as Record<string, unknown> | undefined];
  const missing = new Set<string>();
  for (const s of steps) if (!GOOGLE_STEPS.has(s) && !isSupportedStep(s)) missing.add(`setup:${s}`);
  for (const g of getters) if (!GOOGLE_GETTERS.has(g) && !(g in GETTERS)) missing.add(`getter:${g}`);
  funcs.forEach((f, i) => {
    if (f !== 'infeasible' && !(f in METRICS)) missing.add(`metric:${f}`);
    if (f === 'compare_table') for (const r of asList(options[i]?.rules as { type: string }[])) if (!TABLE_RULES.has(r.type)) missing.add(`compare_table rule:${r.type}`);
  });
  const needsGoogle = steps.some((s) => GOOGLE_STEPS.has(s)) || getters.some((g) => GOOGLE_GETTERS.has(g));
  const unavailableApps = asList(task.related_apps as string[]).filter((a) => UNAVAILABLE_APPS.has(a));
  return {
    domain,
    id,
    implemented: !needsGoogle && missing.size === 0,
    needsGoogle,
    appsAvailable: unavailableApps.length === 0,
    unavailableApps,
    needsCachedFiles: steps.some((s) => CACHE_STEPS.has(s)) || getters.some((g) => CACHE_GETTERS.has(g)),
    missing: [...missing].sort(),
  };
}

export interface DomainTotals {
  tasks: number;
  needsGoogle: number;
  noGoogle: number;
  implemented: number;
  appsUnavailable: number;
  runnable: number;
  needsCachedFiles: number;
}

export function summarise(rows: TaskCoverage[]): { domains: Record<string, DomainTotals>; total: DomainTotals; missing: Record<string, number> } {
  const empty = (): DomainTotals => ({ tasks: 0, needsGoogle: 0, noGoogle: 0, implemented: 0, appsUnavailable: 0, runnable: 0, needsCachedFiles: 0 });
  const domains: Record<string, DomainTotals> = {};
  const total = empty();
  const missing: Record<string, number> = {};
  for (const r of rows) {
    const d = (domains[r.domain] ??= empty());
    for (const t of [d, total]) {
      t.tasks++;
      if (r.needsGoogle) t.needsGoogle++;
      else t.noGoogle++;
      if (r.implemented) t.implemented++;
      if (!r.appsAvailable) t.appsUnavailable++;
      if (r.implemented && r.appsAvailable) t.runnable++;
      if (r.needsCachedFiles) t.needsCachedFiles++;
    }
    for (const m of r.missing) missing[m] = (missing[m] ?? 0) + 1;
  }
  return { domains, total, missing: Object.fromEntries(Object.entries(missing).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))) };
}

function main(argv: string[]): void {
  const json = argv.includes('--json');
  const arg = (name: string, def: string) => {
    const i = argv.indexOf(name);
    return i >= 0 && argv[i + 1] ? argv[i + 1]! : def;
  };
  const meta = arg('--meta', 'evaluation_examples/test_all.json');
  const base = arg('--base', path.dirname(meta));
  const rows: TaskCoverage[] = loadTaskList(meta).map((ref) => {
    const t = loadTask(base, ref);
    if ('error' in t) return { domain: ref.domain, id: ref.id, implemented: false, needsGoogle: false, appsAvailable: true, unavailableApps: [], needsCachedFiles: false, missing: ['invalid task'], error: t.error };
    return coverTask(ref.domain, ref.id, t.task as unknown as Record<string, unknown>);
  });
  const summary = summarise(rows);
  if (json) {
    process.stdout.write(`${JSON.stringify({ meta, ...summary, tasks: rows }, null, 2)}\n`);
    return;
  }
  const head = ['domain', 'tasks', 'google', 'no google', 'implemented', 'app unavailable', 'runnable', 'needs cached files'];
  const line = (name: string, t: DomainTotals) => [name, t.tasks, t.needsGoogle, t.noGoogle, t.implemented, t.appsUnavailable, t.runnable, t.needsCachedFiles];
  const table = [...Object.entries(summary.domains).map(([d, t]) => line(d, t)), line('**total**', summary.total)];
  const out = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i ? '---:' : '---')).join('|')}|`, ...table.map((r) => `| ${r.join(' | ')} |`)];
  out.push('', `implemented: ${summary.total.implemented} of ${summary.total.noGoogle} tasks that need no Google account (${summary.total.tasks} in ${meta})`);
  out.push('', 'missing (tasks that need it):');
  for (const [m, n] of Object.entries(summary.missing)) out.push(`  ${String(n).padStart(3)}  ${m}`);
  process.stdout.write(`${out.join('\n')}\n`);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('coverage.ts')) main(process.argv.slice(2));
