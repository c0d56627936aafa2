/**
 * One task in one env, as OSWorld's run_single_example does it: reset and set up the env,
 * screenshot, then up to maxSteps predictions, each action executed with a pause and followed
 * by a screenshot, then the evaluation; every step lands in the OSWorld result layout.
 * DONE and FAIL end the episode, WAIT pauses; result.txt is written last.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Agent } from '../agent/agent.ts';
import type { EnvHandle } from '../env/provider.ts';
import { InfrastructureError } from '../env/setup/errors.ts';
import type { FileCache } from '../env/setup/file-cache.ts';
import { runSetup } from '../env/setup/setup-controller.ts';
import { evaluateTask } from '../eval/evaluate.ts';
import { osworldTimestamp } from '../results/layout.ts';
import { evalScratchPrefix } from './cleanup.ts';
import type { TaskResultWriter } from '../results/writer.ts';
import type { LoadedTask } from '../tasks/load-tasks.ts';

export interface TaskRunOptions {
  maxSteps: number;
  /** Pause after each action (OSWorld's --sleep_after_execution). */
  sleepAfterExecutionMs: number;
  /** Pause after setup before the first screenshot (OSWorld: 5 s). */
  settleMs: number;
  record: boolean;
  /** How many identical actions on an unchanged screen make a loop (default 3). */
  loopRepeats?: number;
  /** Run-level log (warnings such as a likely coordinate-mode mismatch). */
  log?: (line: string) => void;
  /** Called just before result.txt is written (the status file goes first: result.txt marks the end). */
  beforeResult?: (outcome: TaskOutcome) => void;
  /** Errors of this task's earlier attempts (infrastructure), written at the top of runtime.log. */
  previousErrors?: string[];
}

/**
 * The env's desktop died during the task (Xvfb or its supervisor exited, or a remote env stopped
 * answering): the provider may have restarted it, but with a fresh HOME and no app open, so
 * nothing the task did is there any more. Never scored: the runner retries the task.
 */
export class EnvLostError extends InfrastructureError {
  override name = 'EnvLostError';
}

/** Stops a run that its caller gave up on (timeout): no further step, no result written. */
export class TaskAbortedError extends Error {
  override name = 'TaskAbortedError';
}

export interface TaskOutcome {
  score: number;
  steps: number;
  lastAction: string | null;
  /** The agent gave up ("client error") on its last step: parse failures, or 4xx from the model. */
  gaveUp?: 'parse' | 'model';
  /** traj.jsonl lines flagged as a loop. */
  loops: number;
  /** Model calls that had to be retried (server unreachable, 429, 5xx): retries in all. */
  modelRetries: number;
}

/**
 * Flags repeated identical actions on an unchanged screen: the n-th time in a row the same
 * action runs on the same screenshot (byte-identical PNG) is a loop. Recorded only.
 */
export class LoopDetector {
  private last: string | null = null;
  private run = 0;

  constructor(private readonly repeats = 3) {}

  /** The repeat count when this action completes a loop (>= repeats), else 0. */
  observe(screenshot: Uint8Array, action: string): number {
    const key = `${createHash('sha1').update(screenshot).digest('hex')}\n${action}`;
    this.run = key === this.last ? this.run + 1 : 1;
    this.last = key;
    return this.run >= this.repeats ? this.run : 0;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function screenshot(env: EnvHandle): Promise<Uint8Array> {
  const png = await env.client.screenshot();
  if (!png || png.length === 0) throw new InfrastructureError('the env returned no screenshot');
  return png;
}

export async function runTask(
  env: EnvHandle,
  agent: Agent,
  loaded: LoadedTask,
  writer: TaskResultWriter,
  cache: FileCache,
  opts: TaskRunOptions,
  signal?: AbortSignal,
): Promise<TaskOutcome> {
  const check = (): void => {
    if (signal?.aborted) throw new TaskAbortedError('task abandoned');
  };
  const { task } = loaded;
  const taskBase = path.resolve(path.dirname(loaded.file));
  writer.begin();
  writer.log(`task ${loaded.domain}/${loaded.id}: ${task.instruction}`);
  opts.previousErrors?.forEach((e, i) => writer.log(`attempt ${i + 1} failed (infrastructure, retried on a fresh env): ${e}`));
  // The env's generation: a restart after its desktop died (local envs restart themselves and
  // keep serving on the same URL) wipes what the task did, so it must not be evaluated.
  const restartsAtStart = env.restarts ?? 0;
  const intact = (where: string): void => {
    const restarted = (env.restarts ?? 0) !== restartsAtStart;
    if (restarted || !env.isAlive()) {
      throw new EnvLostError(`the env's desktop died ${where}${env.lastDeath ? ` (${env.lastDeath})` : ''}${restarted ? ' and was restarted empty' : ''}: the task's state is lost`);
    }
  };
  await env.reset();
  await runSetup({ env, cache, localBase: taskBase }, (task.config ?? []) as { type: string; parameters?: Record<string, unknown> }[]);
  await sleep(opts.settleMs);
  let obs = await screenshot(env);
  intact('during setup');
  let ts = osworldTimestamp();
  writer.screenshot(`step_reset_${ts}.png`, obs);
  writer.trajectory({ step_num: 0, instruction: task.instruction, action_timestamp: ts, action: 'reset', reward: 0, done: false, info: {}, screenshot_file: `step_reset_${ts}.png` });
  if (opts.record) await env.client.startRecording();
  agent.reset(loaded.id);

  let done = false;
  let step = 0;
  let lastAction: string | null = null;
  let gaveUp: TaskOutcome['gaveUp'];
  let loops = 0;
  let modelRetries = 0;
  const loopDetector = new LoopDetector(opts.loopRepeats ?? 3);
  while (!done && step < opts.maxSteps) {
    check();
    const pred = await agent.predict(task.instruction, obs);
    check();
    gaveUp = pred.gaveUp;
    for (const c of pred.calls ?? []) {
      if (!c.retries) continue;
      modelRetries += c.retries;
      const note = `model server: a call succeeded after ${c.retries} retr${c.retries === 1 ? 'y' : 'ies'} (${((c.retryWaitMs ?? 0) / 1000).toFixed(1)} s of backoff; last error: ${c.retryError ?? '?'})`;
      writer.log(note);
      opts.log?.(`${loaded.domain}/${loaded.id} step ${step + 1}: ${note}`);
    }
    for (const w of pred.warnings ?? []) {
      writer.log(`warning: ${w}`);
      opts.log?.(`${loaded.domain}/${loaded.id} step ${step + 1}: ${w}`);
    }
    for (const action of pred.actions) {
      const info: Record<string, boolean> = {};
      const loop = action === 'DONE' || action === 'FAIL' ? 0 : loopDetector.observe(obs, action);
      if (loop) {
        loops++;
        writer.log(`loop: the same action ${loop} times on an unchanged screen`);
      }
      if (action === 'DONE') {
        done = info.done = true;
      } else if (action === 'FAIL') {
        done = info.fail = true;
      } else if (action === 'WAIT') {
        await sleep(opts.sleepAfterExecutionMs); // OSWorld sleeps twice for WAIT
      } else {
        const r = await env.client.executePython(action);
        if (r.status === 'error') writer.log(`execute error: ${r.message}`);
        else if (r.returncode !== 0) writer.log(`action exited ${r.returncode}: ${r.error.trim().split('\n').pop() ?? ''}`);
      }
      lastAction = action;
      await sleep(opts.sleepAfterExecutionMs);
      obs = await screenshot(env);
      intact(`at step ${step + 1}`);
      ts = osworldTimestamp();
      const file = `step_${step + 1}_${ts}.png`;
      writer.screenshot(file, obs);
      writer.trajectory({
        step_num: step + 1,
        prediction: pred.prediction,
        action_timestamp: ts,
        action,
        reward: 0,
        done,
        info,
        screenshot_file: file,
        ...(pred.calls ? { model_calls: pred.calls } : {}),
        ...(pred.warnings?.length ? { warnings: pred.warnings } : {}),
        ...(pred.gaveUp ? { gave_up: pred.gaveUp } : {}),
        ...(loop ? { loop: { repeats: loop } } : {}),
      });
      if (done) break;
    }
    step++;
  }
  intact('before the evaluation');
  // Files the getters fetch live in a scratch folder, not in the result layout (named by our pid,
  // so a later run removes it if this one is killed: cleanup.ts).
  const evalDir = fs.mkdtempSync(`${evalScratchPrefix()}${loaded.id.slice(0, 40)}-`);
  let score: number;
  try {
    score = await evaluateTask({ env, cache, workDir: evalDir, taskBase }, task, lastAction);
  } finally {
    fs.rmSync(evalDir, { recursive: true, force: true });
  }
  check();
  if (opts.record) writer.file('recording.mp4', await env.client.endRecording());
  check();
  // Getters read what they find; one that found a dead or emptied env would score it 0.
  const health = await env.health().catch((err: unknown) => ({ alive: false, state: String(err) }));
  if (!health.alive) throw new EnvLostError(`the env stopped answering during the evaluation (${health.state}): the score is not trusted`);
  intact('during the evaluation');
  writer.log(`result ${score}`);
  const outcome: TaskOutcome = { score, steps: step, lastAction, loops, modelRetries, ...(gaveUp ? { gaveUp } : {}) };
  opts.beforeResult?.(outcome);
  writer.result(score);
  return outcome;
}
