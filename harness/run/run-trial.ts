/**
 * A trial: the unfinished tasks of a task list, run by `numEnvs` workers that share one
 * dynamic queue (not ARPO's static chunks), each worker owning one env and one agent. The queue
 * is this process's own list, or (`shared`, e.g. redis-queue.ts) one that several processes on
 * several machines take tasks from.
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
  /**
   * A queue shared with other processes (--queue): the unfinished tasks are put into it and the
   * workers take their tasks from it, each process with its own envs. Without it the workers
   * share this process's list.
   */
  shared?: SharedQueue;
  /**
   * Aborts on SIGINT / SIGTERM: no task is taken any more, running tasks stop at once and write
   * nothing more (the shared queue gets them back), and runTrial resolves with `interrupted`.
   */
  stop?: AbortSignal;
}

/** Where the workers take their tasks from. */
export interface TaskSource {
  /** The next task for worker `worker`, or null when none is left for this process. */
  take(worker: number): Promise<TakenTask | null>;
  /** Stops handing out tasks and gives the running ones back (e.g. to the shared queue); resolves once they are back. */
  abandon?(): Promise<void>;
}

export interface TakenTask {
  task: LoadedTask;
  /**
   * Aborts when this process no longer owns the task (its claim in a shared queue was lost, so
   * another process may run it now): the task stops at its next step and writes nothing more.
   */
  lost?: AbortSignal;
  /** The task ended (its files are written); `record` says how. */
  finished(record: TaskRecord): Promise<void>;
}

export interface SharedQueue {
  /**
   * Joins the shared queue with this process's unfinished tasks (`pending`: put into the queue
   * unless already there) and returns the source the workers take from. `load` reads a task that
   * the queue hands out (normally one of `pending`).
   */
  open(pending: LoadedTask[], load: (ref: TaskRef) => LoadedTask | InvalidTask): Promise<TaskSource>;
}

/** The task was taken back by the shared queue (another process may be running it). */
export class TaskLostError extends Error {
  override name = 'TaskLostError';
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
  /** Errors of the attempts that failed for infrastructure reasons (the task was retried). */
  attemptErrors?: string[];
  /** Model calls retried (server unreachable, 429, 5xx) in the attempt that counted. */
  modelRetries?: number;
}

export interface TrialResult {
  records: TaskRecord[];
  invalid: InvalidTask[];
  alreadyFinished: number;
  /** The run was stopped (`stop`) before its queue was done. */
  interrupted: boolean;
}

export class TaskTimeoutError extends InfrastructureError {
  override name = 'TaskTimeoutError';
}

/** The run is stopping (SIGINT / SIGTERM): the task is dropped unfinished, for a later run. */
export class TaskInterruptedError extends Error {
  override name = 'TaskInterruptedError';
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

/**
 * Runs `fn` with a deadline; on timeout its signal aborts so it stops at its next step. `lost`
 * (the task was taken back by a shared queue) ends it the same way, with TaskLostError.
 */
function withTimeout<T>(fn: (signal: AbortSignal) => Promise<T>, ms: number, what: string, lost?: AbortSignal, stop?: AbortSignal): Promise<T> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const unlisten: (() => void)[] = [];
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort();
      reject(new TaskTimeoutError(`${what} exceeded the task timeout of ${ms / 1000} s`));
    }, ms);
    const on = (signal: AbortSignal | undefined, error: () => Error): void => {
      if (!signal) return;
      const end = (): void => {
        controller.abort();
        reject(error());
      };
      if (signal.aborted) return end();
      signal.addEventListener('abort', end, { once: true });
      unlisten.push(() => signal.removeEventListener('abort', end));
    };
    on(stop, () => new TaskInterruptedError(`${what} was interrupted (the run is stopping)`));
    on(lost, () => new TaskLostError(`${what} was taken back by the queue: ${String(lost?.reason ?? 'claim lost')}`));
  });
  const run = fn(controller.signal);
  run.catch(() => {}); // after a timeout its own failure is expected
  return Promise.race([run, timeout]).finally(() => {
    clearTimeout(timer);
    for (const u of unlisten) u();
  });
}

/** This process's own list: each task goes to the first worker that asks. */
function localSource(pending: LoadedTask[]): TaskSource {
  return {
    take: async () => {
      const task = pending.shift();
      return task ? { task, finished: async () => {} } : null;
    },
  };
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
  o.log(`${queue.length} task(s) to run${o.shared ? ' (shared queue)' : ''}, ${alreadyFinished} already finished, ${invalid.length} invalid`);
  const workers = o.shared ? o.numEnvs : Math.min(o.numEnvs, queue.length);
  const source = o.shared ? await o.shared.open([...queue], (ref) => o.loaded?.get(`${ref.domain}/${ref.id}`) ?? loadTask(o.baseDir, ref)) : localSource(queue);
  o.onQueue?.({ toRun: queue.length, alreadyFinished, invalid: invalid.length });
  const records: TaskRecord[] = [];
  // Starting desktops is CPU-heavy: at most two start at a time on this kind of machine.
  const startLimit = pLimit(2);
  // Stopping: the source gives its running tasks back first (before the workers see the stop).
  let abandoned: Promise<void> = Promise.resolve();
  const onStop = (): void => {
    abandoned = (source.abandon?.() ?? Promise.resolve()).catch((err: unknown) => o.log(`could not hand the running tasks back: ${err instanceof Error ? err.message : String(err)}`));
  };
  if (o.stop?.aborted) onStop();
  else o.stop?.addEventListener('abort', onStop, { once: true });
  const take = async (w: number): Promise<TakenTask | null> => (o.stop?.aborted ? null : source.take(w));

  const worker = async (w: number): Promise<void> => {
    let taken = await take(w);
    if (!taken) return;
    let agent = o.makeAgent(w);
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
      for (; taken; taken = await take(w)) {
        const { task, lost } = taken;
        const started = performance.now();
        const record: TaskRecord = { domain: task.domain, id: task.id, status: 'error', outcome: 'infra_error', attempts: 0, seconds: 0 };
        const dir = taskDir(o.trial, task);
        const writer = new TaskResultWriter(dir);
        const tags = o.tagsOf?.(task) ?? [];
        const attemptErrors: string[] = [];
        const statusFile = (extra: { score: number | null; steps?: number; loops?: number; modelRetries?: number }): void =>
          writeTaskStatus(dir, {
            status: record.outcome,
            ...extra,
            ...(record.error !== undefined ? { error: record.error } : {}),
            attempts: record.attempts,
            ...(attemptErrors.length ? { attemptErrors: [...attemptErrors] } : {}),
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
                  previousErrors: [...attemptErrors],
                  beforeResult: (out) => {
                    // Never a result for a task that another process may be running now.
                    if (lost?.aborted) throw new TaskLostError(`${task.domain}/${task.id} was taken back by the queue before its result`);
                    // status.json goes before result.txt, which marks the task finished.
                    record.outcome = out.gaveUp === 'parse' ? 'parse_error' : out.gaveUp === 'model' ? 'model_error' : statusOfScore(out.score);
                    statusFile({ score: out.score, steps: out.steps, loops: out.loops, ...(out.modelRetries ? { modelRetries: out.modelRetries } : {}) });
                  },
                }, signal),
              o.taskTimeoutMs,
              `${task.domain}/${task.id}`,
              lost,
              o.stop,
            );
            Object.assign(record, { status: 'scored', score: outcome.score, loops: outcome.loops });
            if (outcome.modelRetries) record.modelRetries = outcome.modelRetries;
            if (attemptErrors.length) record.attemptErrors = [...attemptErrors];
            delete record.error;
            const notes = [
              outcome.loops ? `${outcome.loops} loop step(s)` : '',
              outcome.modelRetries ? `${outcome.modelRetries} model call retr${outcome.modelRetries === 1 ? 'y' : 'ies'}` : '',
              attemptErrors.length ? `attempt ${record.attempts} of ${o.maxRetries + 1} after infrastructure errors` : '',
            ].filter(Boolean);
            o.log(`[env ${w}] ${task.domain}/${task.id}: ${outcome.score} ${record.outcome} (${outcome.steps} steps, last ${outcome.lastAction ?? 'none'}${notes.map((n) => `, ${n}`).join('')})`);
            break;
          } catch (err) {
            const message = err instanceof Error ? err.message : String(err);
            record.error = message;
            record.outcome = err instanceof TaskTimeoutError ? 'timeout' : 'infra_error';
            if (err instanceof TaskInterruptedError || o.stop?.aborted) {
              // Left unfinished (no result.txt): the next run, or another queue process, redoes it.
              o.log(`[env ${w}] ${task.domain}/${task.id}: interrupted; left for a later run`);
              break;
            }
            if (err instanceof UnsupportedError) {
              record.status = 'skipped';
              break;
            }
            if (err instanceof TaskLostError || lost?.aborted) {
              // Another process may be writing this task's folder now: leave it alone.
              o.log(`[env ${w}] ${task.domain}/${task.id}: ${message}; left to the process that has it now`);
              await dropEnv();
              agent = o.makeAgent(w);
              break;
            }
            if (!isInfrastructureError(err)) {
              // A bug of ours or of the task: no retry on a fresh env would change it.
              o.log(`[env ${w}] ${task.domain}/${task.id}: error: ${message}`);
              break;
            }
            attemptErrors.push(message);
            o.log(`[env ${w}] ${task.domain}/${task.id}: ${record.outcome === 'timeout' ? 'timeout' : 'infrastructure error'} (attempt ${attempt + 1}/${o.maxRetries + 1}): ${message}`);
            // The env may be broken: the next attempt gets a fresh one.
            await dropEnv();
            // A run abandoned at its timeout may still be waiting on the model: the next attempt
            // gets an agent of its own, so a late answer cannot land in the new episode's history.
            if (err instanceof TaskTimeoutError) agent = o.makeAgent(w);
          }
        }
        // Interrupted: nothing more is written, and no further task is taken.
        if (record.status !== 'scored' && o.stop?.aborted) break;
        // Taken back by the queue before it ended: another process may be writing its folder now.
        const gone = record.status !== 'scored' && lost?.aborted === true;
        if (record.status !== 'scored' && !gone) {
          if (attemptErrors.length) record.attemptErrors = [...attemptErrors];
          const earlier = attemptErrors.length > 1 ? ` (${attemptErrors.length} attempts; earlier: ${attemptErrors.slice(0, -1).join(' | ')})` : '';
          try {
            writer.trajectory({ Error: `${record.status === 'skipped' ? 'Unsupported' : record.outcome === 'timeout' ? 'Time limit exceeded' : 'Infrastructure error'} in ${task.domain}/${task.id}: ${record.error}${earlier}` });
            statusFile({ score: null });
          } catch (err) {
            // Its folder cannot be written (e.g. a file stands where it should be): this task's
            // error stays in the log and this run's records; the other tasks go on.
            const message = err instanceof Error ? err.message : String(err);
            record.error = `${record.error ?? 'error'}; its error could not be written either: ${message}`;
            o.log(`[env ${w}] ${task.domain}/${task.id}: cannot write its error into ${dir}: ${message}`);
          }
        }
        record.seconds = (performance.now() - started) / 1000;
        await taken.finished(record);
        if (gone) continue; // not this process's task any more: neither its record nor its progress
        records.push(record);
        o.onTaskEnd?.(record);
      }
    } finally {
      await dropEnv();
    }
  };
  try {
    await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  } finally {
    o.stop?.removeEventListener('abort', onStop);
    await abandoned;
  }
  return { records, invalid, alreadyFinished, interrupted: o.stop?.aborted === true };
}
