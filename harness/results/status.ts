/**
 * How each task ended, in a small per-task file next to OSWorld's (status.json; OSWorld's
 * scripts read only traj.jsonl and result.txt, so they ignore it):
 *   success      evaluated, score > 0.5
 *   fail         evaluated, score <= 0.5
 *   parse_error  the agent gave up after unparsable answers ("client error"), then evaluated
 *   model_error  the model server answered 4xx to every try ("client error"), then evaluated
 *   timeout      the task ran past --task-timeout (no result.txt: a rerun redoes it)
 *   infra_error  env, setup, model server down, unsupported setup, or a bug (no result.txt)
 * attempts > 1 with attemptErrors: the task was retried after infrastructure errors;
 * modelRetries: model calls that needed retries with backoff. Both also land in summary.json.
 * "Cleanly finished" = success or fail. A task with result.txt but no status.json (an older
 * run, or ARPO's results) counts as success/fail from its score.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readScore } from './layout.ts';
import { writeFileAtomic } from './writer.ts';

export const TASK_STATUSES = ['success', 'fail', 'infra_error', 'timeout', 'parse_error', 'model_error'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const STATUS_FILE = 'status.json';

export interface TaskStatusFile {
  status: TaskStatus;
  score: number | null;
  error?: string;
  attempts: number;
  seconds: number;
  steps?: number;
  /** traj.jsonl steps flagged as a loop (same action on an unchanged screen) */
  loops?: number;
  tags?: string[];
  /** Errors of attempts that failed for infrastructure reasons (env died, model server down, ...); the task was retried. */
  attemptErrors?: string[];
  /** Model calls retried with backoff (server unreachable, 429, 5xx) in the attempt that counted. */
  modelRetries?: number;
  finishedAt: string;
}

export const isClean = (s: TaskStatus): boolean => s === 'success' || s === 'fail';
export const statusOfScore = (score: number): TaskStatus => (score > 0.5 ? 'success' : 'fail');

export function writeTaskStatus(dir: string, s: TaskStatusFile): void {
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(path.join(dir, STATUS_FILE), `${JSON.stringify(s)}\n`);
}

/** The task's status from its folder, or null when it has neither a status nor a result. */
export function readTaskStatus(dir: string): TaskStatusFile | null {
  const result = path.join(dir, 'result.txt');
  const hasResult = fs.existsSync(result);
  let file: TaskStatusFile | null = null;
  try {
    const raw = JSON.parse(fs.readFileSync(path.join(dir, STATUS_FILE), 'utf8')) as TaskStatusFile;
    if (raw && (TASK_STATUSES as readonly string[]).includes(raw.status)) file = raw;
  } catch {
    /* absent or torn */
  }
  if (hasResult) {
    const score = readScore(result);
    // result.txt is the durable record: a status that says "no result" is stale.
    if (file && file.score !== null) return { ...file, score };
    return { status: statusOfScore(score), score, attempts: file?.attempts ?? 1, seconds: file?.seconds ?? 0, finishedAt: file?.finishedAt ?? '' };
  }
  if (file && file.score === null) return file;
  return null;
}
