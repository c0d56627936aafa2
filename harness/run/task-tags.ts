/**
 * Task tags, from the task config, to leave out tasks this machine cannot run:
 *   needs_network  downloads (download / cloud_file setup or getters) or a browser task that opens
 *                  http(s) URLs that are not local (chrome_open_tabs, launch/open of a URL)
 *   needs_google   Google Drive or a login (googledrive / login setup, googledrive getters)
 *   infeasible     evaluator.func == "infeasible" (the right answer is FAIL)
 * `--exclude-tag needs_network,needs_google` drops such tasks from the run and from the summary.
 */
import type { Task } from '../tasks/task-schema.ts';

export const TASK_TAGS = ['needs_network', 'needs_google', 'infeasible'] as const;
export type TaskTag = (typeof TASK_TAGS)[number];

interface Step {
  type?: unknown;
  parameters?: unknown;
}

const LOCAL_URL = /^https?:\/\/(localhost|127\.|0\.0\.0\.0|\[::1\])/i;

function strings(v: unknown, out: string[] = []): string[] {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const x of v) strings(x, out);
  else if (v && typeof v === 'object') for (const x of Object.values(v)) strings(x, out);
  return out;
}

const remoteUrl = (s: string): boolean => /^https?:\/\//i.test(s.trim()) && !LOCAL_URL.test(s.trim());

function getters(evaluator: Record<string, unknown>): Step[] {
  const out: Step[] = [];
  for (const key of ['result', 'expected']) {
    const v = evaluator[key];
    for (const g of Array.isArray(v) ? v : v ? [v] : []) if (g && typeof g === 'object') out.push(g as Step);
  }
  return out;
}

export function taskTags(task: Task, domain: string): TaskTag[] {
  const t = task as unknown as { config?: Step[]; evaluator?: Record<string, unknown>; related_apps?: unknown };
  const config = Array.isArray(t.config) ? t.config : [];
  const evaluator = t.evaluator && typeof t.evaluator === 'object' ? t.evaluator : {};
  const steps = [...config, ...getters(evaluator), ...(Array.isArray(evaluator.postconfig) ? (evaluator.postconfig as Step[]) : [])];
  const types = steps.map((s) => String(s.type ?? ''));
  const tags = new Set<TaskTag>();
  if (types.some((x) => x === 'download' || x === 'cloud_file')) tags.add('needs_network');
  const browser = domain === 'chrome' || (Array.isArray(t.related_apps) && t.related_apps.some((a) => /chrome/i.test(String(a))));
  if (browser) {
    for (const s of config) {
      const type = String(s.type ?? '');
      if (!['chrome_open_tabs', 'launch', 'open', 'execute', 'command'].includes(type)) continue;
      if (strings(s.parameters).some((x) => x.split(/\s+/).some(remoteUrl))) tags.add('needs_network');
    }
  }
  if (types.some((x) => x === 'googledrive' || x === 'login' || x.startsWith('googledrive'))) tags.add('needs_google');
  const func = evaluator.func;
  if (func === 'infeasible' || (Array.isArray(func) && func.includes('infeasible'))) tags.add('infeasible');
  return TASK_TAGS.filter((x) => tags.has(x));
}

/** `--exclude-tag a,b --exclude-tag c` -> [a, b, c], checked. */
export function parseTags(values: string[]): TaskTag[] {
  const out = values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const tag of out) {
    if (!(TASK_TAGS as readonly string[]).includes(tag)) throw new Error(`unknown tag "${tag}" (known: ${TASK_TAGS.join(', ')})`);
  }
  return [...new Set(out)] as TaskTag[];
}
