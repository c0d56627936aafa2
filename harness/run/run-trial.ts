/**
 * A trial: the unfinished tasks of a task list, run by `numEnvs` workers that share one
 * dynamic queue (not ARPO's static chunks), each worker owning one env and one agent.
 * A task that fails for infrastructure reasons (env, setup, model server) is retried on a
 * fresh env up to `maxRetries` times, then recorded as an error (traj.jsonl "Error" line, no
 * result.txt: a later run retries it) — never as a score of 0.
 */
import pLimit from 'p-limit';
import type { Agent } from '../agent/agent.ts';
import { ModelUnavailableError } from '../agent/model-client.ts';
import { EnvHttpError } from '../env/env-client.ts';
import type { EnvHandle, EnvProvider } from '../env/provider.ts';
import { InfrastructureError, UnsupportedError } from '../env/setup/errors.ts';
import type { FileCache } from '../env/setup/file-cache.ts';
import { isFinished, taskDir, type TrialPath } from '../results/layout.ts';
import { statusOfScore, writeTaskStatus, type TaskStatus } from '../results/status.ts';
import { TaskResultWriter } from '../results/writer.ts';
import { loadTask, type InvalidTask, type LoadedTask, type TaskRef } from '../tasks/load-tasks.ts';
import { runTask, type TaskRunOptions } from './run-task.ts';

export interface TrialOptions extends TaskRunOptions {
  trial: TrialPath;
  baseDir: string;
  tasks: TaskRef[];
  numEnvs: number;
  maxRetries: number;
  taskTimeoutMs: number;
  provider: EnvProvider;
  /** The agent of worker i (e.g. talking to model endpoint i mod k). */
  makeAgent: (worker: number) => Agent;
  cache: FileCache;
  log: (line: string) => void;
  /** Called once per task of this run when it ends (progress). */
  onTaskEnd?: (record: TaskRecord) => void;
  /** Called once the queue is known. */
  onQueue?: (info: { toRun: number; alreadyFinished: number; invalid: number }) => void;
  /** Tags per task (status.json). */
  tagsOf?: (ref: TaskRef) => string[];
  /** Tasks already loaded and validated by the caller (skips loading them again). */
  loaded?: Map<string, LoadedTask | InvalidTask>;
}

export interface TaskRecord extends TaskRef {
  status: 'scored' | 'error' | 'skipped';
  /** How the task ended (results/status.ts). */
  outcome: TaskStatus;
  score?: number;
  error?: string;
  attempts: number;
  seconds: number;
  loops?: number;
}

export interface TrialResult {
  records: TaskRecord[];
  invalid: InvalidTask[];
  alreadyFinished: number;
}

export class TaskTimeoutError extends InfrastructureError {
  override name = 'TaskTimeoutError';
}

/** Errors that are not the agent's doing: retry the task, and never score it on them. */
export function isInfrastructureError(err: unknown): boolean {
  return (
    err instanceof InfrastructureError ||
    err instanceof ModelUnavailableError ||
    err instanceof EnvHttpError ||
    (err instanceof Error && /ECONNREFUSED|ECONNRESET|EPIPE|socket|UND_ERR/i.test(`${(err as { code?: string }).code ?? ''} ${err.message}`))
  );
}

/** Runs `fn` with a deadline; on timeout its signal aborts so it stops at its next step. */
function withTimeout<T>(fn: (signal: AbortSignal) => Promise<T>, ms: number, what: string): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new TaskTimeoutError(`${what} exceeded the task timeout of ${ms / 1000} s`));
    }, ms);
  });
  const run = fn(controller.signal);
  run.catch(() => {}); // after a timeout its own failure is expected
  return Promise.race([run, timeout]).finally(() => clearTimeout(timer));
}

export async function runTrial(o: TrialOptions): Promise<TrialResult> {
  const invalid: InvalidTask[] = [];
  const queue: LoadedTask[] = [];
  let alreadyFinished = 0;
  for (const ref of o.tasks) {
    if (isFinished(o.trial, ref)) {
      alreadyFinished++;
      continue;
    }
    const loaded = o.loaded?.get(`${ref.domain}/${ref.id}`) ?? loadTask(o.baseDir, ref);
    if ('error' in loaded) {
      invalid.push(loaded);
      o.log(`invalid task ${loaded.file}: ${loaded.error}`);
    } else {
      queue.push(loaded);
    }
  }
  o.log(`${queue.length} task(s) to run, ${alreadyFinished} already finished, ${invalid.length} invalid`);
  o.onQueue?.({ toRun: queue.length, alreadyFinished, invalid: invalid.length });
  const records: TaskRecord[] = [];
  // Starting desktops is CPU-heavy: at most two start at a time on this kind of machine.
  const startLimit = pLimit(2);

  const worker = async (w: number): Promise<void> => {
    if (queue.length === 0) return;
    const agent = o.makeAgent(w);
    // The worker's env; replaced when it dies or after an infrastructure error.
    const slot: { env: EnvHandle | null } = { env: null };
    const dropEnv = async (): Promise<void> => {
      const e = slot.env;
      slot.env = null;
      if (e) await e.close().catch(() => {});
    };
    const liveEnv = async (): Promise<EnvHandle> => {
      if (slot.env?.isAlive()) return slot.env;
      await dropEnv();
      slot.env = await startLimit(() => o.provider.start({ name: `env${w}` }));
      return slot.env;
    };
    try {
      for (let task = queue.shift(); task; task = queue.shift()) {
        const started = performance.now();
        const record: TaskRecord = { domain: task.domain, id: task.id, status: 'error', outcome: 'infra_error', attempts: 0, seconds: 0 };
        const dir = taskDir(o.trial, task);
        const writer = new TaskResultWriter(dir);
        const tags = o.tagsOf?.(task) ?? [];
        const statusFile = (extra: { score: number | null; steps?: number; loops?: number }): void =>
          writeTaskStatus(dir, {
            status: record.outcome,
            ...extra,
            ...(record.error !== undefined ? { error: record.error } : {}),
            attempts: record.attempts,
            seconds: Math.round((performance.now() - started) / 10) / 100,
            ...(tags.length ? { tags } : {}),
            finishedAt: new Date().toISOString(),
          });
        for (let attempt = 0; attempt <= o.maxRetries; attempt++) {
          record.attempts = attempt + 1;
          try {
            const env = await liveEnv();
            const outcome = await withTimeout(
              (signal) =>
                runTask(env, agent, task, writer, o.cache, {
                  ...o,
                  beforeResult: (out) => {
                    // status.json goes before result.txt, which marks the task finished.
                    record.outcome = out.gaveUp === 'parse' ? 'parse_error' : out.gaveUp === 'model' ? 'model_error' : statusOfScore(out.score);
                    statusFile({ score: out.score, steps: out.steps, loops: out.loops });
                  },
                }, signal),
              o.taskTimeoutMs,
              `${task.domain}/${task.id}`,
            );
            Object.assign(record, { status: 'scored', score: outcome.score, loops: outcome.loops });
            delete record.error;
            o.log(`[env ${w}] ${task.domain}/${task.id}: ${outcome.score} ${record.outcome} (${outcome.steps} steps, last ${outcome.lastAction ?? 'none'}${outcome.loops ? `, ${outcome.loops} loop step(s)` : ''})`);
            break;
          } catch (err) {
            const message = err instanceof Error ? err.message : String(err);
            record.error = message;
            record.outcome = err instanceof TaskTimeoutError ? 'timeout' : 'infra_error';
            if (err instanceof UnsupportedError) {
              record.status = 'skipped';
              break;
            }
            if (!isInfrastructureError(err)) {
              // A bug of ours or of the task: no retry on a fresh env would change it.
              o.log(`[env ${w}] ${task.domain}/${task.id}: error: ${message}`);
              break;
            }
            o.log(`[env ${w}] ${task.domain}/${task.id}: ${record.outcome === 'timeout' ? 'timeout' : 'infrastructure error'} (attempt ${attempt + 1}/${o.maxRetries + 1}): ${message}`);
            // The env may be broken: the next attempt gets a fresh one.
            await dropEnv();
          }
        }
        if (record.status !== 'scored') {
          writer.trajectory({ Error: `${record.status === 'skipped' ? 'Unsupported' : record.outcome === 'timeout' ? 'Time limit exceeded' : 'Infrastructure error'} in ${task.domain}/${task.id}: ${record.error}` });
          statusFile({ score: null });
        }
        record.seconds = (performance.now() - started) / 1000;
        records.push(record);
        o.onTaskEnd?.(record);
      }
    } finally {
      await dropEnv();
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.numEnvs, queue.length) }, (_, w) => worker(w)));
  return { records, invalid, alreadyFinished };
}
