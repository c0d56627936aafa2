/**
 * OSWorld's DesktopEnv.evaluate():
 * 1. postconfig steps (e.g. save the document, close the app);
 * 2. func "infeasible": 1 if the agent's last action was FAIL, else 0; for every other task a
 *    last action FAIL scores 0;
 * 3. one metric, or a list combined with conj "and" (any 0 ends at 0, else the mean) or "or"
 *    (any 1 ends at 1, else the max); a result getter that finds no file scores 0 (with "and").
 * A getter or metric this project lacks is an UnsupportedError: the task is not scored.
 */
import { runSetup } from '../env/setup/setup-controller.ts';
import { UnsupportedError } from '../env/setup/errors.ts';
import type { Task } from '../tasks/task-schema.ts';
import { GETTERS } from './getters/index.ts';
import { METRICS } from './metrics/index.ts';
import type { EvalContext, GetterConfig } from './types.ts';

const asList = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

async function get(ctx: EvalContext, config: GetterConfig | undefined): Promise<unknown> {
  if (!config) return undefined;
  const getter = GETTERS[config.type];
  if (!getter) throw new UnsupportedError(`getter "${config.type}" is not implemented`);
  return getter(ctx, config);
}

export async function evaluateTask(ctx: EvalContext, task: Task, lastAction: string | null): Promise<number> {
  const ev = task.evaluator;
  await runSetup({ env: ctx.env, cache: ctx.cache, localBase: ctx.taskBase }, (ev.postconfig ?? []) as { type: string; parameters?: Record<string, unknown> }[]);
  const funcs = asList(ev.func);
  if (funcs.length === 1 && funcs[0] === 'infeasible') return lastAction === 'FAIL' ? 1 : 0;
  if (lastAction === 'FAIL') return 0;

  const results = asList(ev.result as GetterConfig | GetterConfig[] | undefined);
  const expecteds = asList(ev.expected as GetterConfig | GetterConfig[] | undefined);
  const options = funcs.length > 1 ? asList(ev.options as Record<string, unknown>[] | undefined) : [ev.options as Record<string, unknown> | undefined];
  const conj = ev.conj ?? 'and';
  const scores: number[] = [];
  for (let i = 0; i < funcs.length; i++) {
    const metric = METRICS[funcs[i]!];
    if (!metric) throw new UnsupportedError(`metric "${funcs[i]}" is not implemented`);
    const result = await get(ctx, results[i]);
    if (result === null) {
      // OSWorld: a missing result file means the agent did not produce it.
      if (funcs.length === 1 || conj === 'and') return 0;
      scores.push(0);
      continue;
    }
    const expected = await get(ctx, expecteds[i]);
    const score = Number(await metric(result, expected === undefined ? null : expected, options[i] ?? {}));
    if (funcs.length === 1) return score;
    if (conj === 'and' && score === 0) return 0;
    if (conj === 'or' && score === 1) return 1;
    scores.push(score);
  }
  return conj === 'and' ? scores.reduce((a, b) => a + b, 0) / scores.length : Math.max(...scores);
}
