/**
 * Coverage of the OSWorld tasks by this harness:
 *   npx tsx harness/cli/coverage.ts [--json] [--meta evaluation_examples/test_all.json] [--base evaluation_examples]
 * Bad input (a missing list, an unknown flag, a flag without its value) is one line on stderr, exit 1.
 * For each task: the setup step types (config + postconfig), getters, metrics (and compare_table
 * rule types) it uses that are not implemented; whether it needs a Google account (googledrive /
 * login setup, googledrive_file getter: unsupported); whether its apps can be installed here
 * (vs_code cannot: not in Debian); whether it needs files from the download cache (download
 * setup steps, cloud_file / cache_file getters). "implemented" = no Google account and nothing
 * missing. The tables are read from the code (STEPS, GETTERS, METRICS), so they cannot drift.
 */
import path from 'node:path';
import { Command } from 'commander';
import { isSupportedStep } from '../env/setup/setup-controller.ts';
import { GETTERS } from '../eval/getters/index.ts';
import { METRICS } from '../eval/metrics/index.ts';
import { TABLE_RULES } from '../eval/metrics/table.ts';
import { loadTask, loadTaskList } from '../tasks/load-tasks.ts';
import { normaliseArgv } from './argv.ts';

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

export function buildCoverageProgram(): Command {
  return new Command()
    .name('coverage')
    .description('Which OSWorld tasks this harness implements: per-domain table and what is missing (_ or - both work)')
    .option('--meta <file>', 'task list {domain: [ids]}', 'evaluation_examples/test_all.json')
    .option('--base <dir>', 'folder with examples/<domain>/<id>.json (default: the folder of --meta)')
    .option('--json', 'print the result as JSON', false);
}

export function coverageMain(argv: string[]): number {
  const p = buildCoverageProgram();
  p.parse(normaliseArgv(argv), { from: 'user' });
  const { meta, base = path.dirname(meta), json } = p.opts<{ meta: string; base?: string; json: boolean }>();
  const rows: TaskCoverage[] = loadTaskList(meta).map((ref) => {
    const t = loadTask(base, ref);
    if ('error' in t) return { domain: ref.domain, id: ref.id, implemented: false, needsGoogle: false, appsAvailable: true, unavailableApps: [], needsCachedFiles: false, missing: ['invalid task'], error: t.error };
    return coverTask(ref.domain, ref.id, t.task as unknown as Record<string, unknown>);
  });
  const summary = summarise(rows);
  if (json) {
    process.stdout.write(`${JSON.stringify({ meta, ...summary, tasks: rows }, null, 2)}\n`);
    return 0;
  }
  const head = ['domain', 'tasks', 'google', 'no google', 'implemented', 'app unavailable', 'runnable', 'needs cached files'];
  const line = (name: string, t: DomainTotals) => [name, t.tasks, t.needsGoogle, t.noGoogle, t.implemented, t.appsUnavailable, t.runnable, t.needsCachedFiles];
  const table = [...Object.entries(summary.domains).map(([d, t]) => line(d, t)), line('**total**', summary.total)];
  const out = [`| ${head.join(' | ')} |`, `|${head.map((_, i) => (i ? '---:' : '---')).join('|')}|`, ...table.map((r) => `| ${r.join(' | ')} |`)];
  out.push('', `implemented: ${summary.total.implemented} of ${summary.total.noGoogle} tasks that need no Google account (${summary.total.tasks} in ${meta})`);
  out.push('', 'missing (tasks that need it):');
  for (const [m, n] of Object.entries(summary.missing)) out.push(`  ${String(n).padStart(3)}  ${m}`);
  process.stdout.write(`${out.join('\n')}\n`);
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('coverage.ts')) {
  try {
    process.exitCode = coverageMain(process.argv.slice(2));
  } catch (err) {
    console.error(`coverage: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}
