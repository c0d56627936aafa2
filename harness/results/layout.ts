/**
 * OSWorld's result layout, so OSWorld's own scripts read our results:
 *   {resultDir}/{actionSpace}/{observationType}/{model}/{trialId}/{domain}/{taskId}/
 *     step_reset_{ts}.png  step_{n}_{ts}.png  traj.jsonl  result.txt  recording.mp4  runtime.log
 * A task is finished when its result.txt exists; a folder without one is redone (its files
 * are removed first, as OSWorld's runner does).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TaskRef } from '../tasks/load-tasks.ts';

export interface TrialPath {
  resultDir: string;
  actionSpace: string;
  observationType: string;
  model: string;
  trialId: string;
}

export function trialDir(p: TrialPath): string {
  return path.join(p.resultDir, p.actionSpace, p.observationType, p.model, p.trialId);
}

export function taskDir(p: TrialPath, ref: TaskRef): string {
  return path.join(trialDir(p), ref.domain, ref.id);
}

/** OSWorld's timestamp: %Y%m%d@%H%M%S (local time, one-second resolution). */
export function osworldTimestamp(d = new Date()): string {
  const z = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}${z(d.getMonth() + 1)}${z(d.getDate())}@${z(d.getHours())}${z(d.getMinutes())}${z(d.getSeconds())}`;
}

export function isFinished(p: TrialPath, ref: TaskRef): boolean {
  return fs.existsSync(path.join(taskDir(p, ref), 'result.txt'));
}

/** Score in result.txt as OSWorld's tools read it ("true"/"false" or a float; unreadable counts 0). */
export function readScore(file: string): number {
  const text = fs.readFileSync(file, 'utf8').trim();
  if (text === 'true') return 1;
  if (text === 'false') return 0;
  const n = Number.parseFloat(text);
  return Number.isFinite(n) ? n : 0;
}
