/**
 * One run per trial dir at a time: two runs on one trial would take the same unfinished tasks,
 * each clearing the other's files (a task could end with the other run's screenshots, or be
 * scored twice). `run.lock` in the trial dir names the run that holds it; a lock whose process is
 * gone (killed, even with SIGKILL) or whose pid now belongs to a process started after the lock
 * was written is stale and taken over.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ownerGone } from './cleanup.ts';

export const LOCK_FILE = 'run.lock';

export class TrialBusyError extends Error {
  override name = 'TrialBusyError';
}

interface LockInfo {
  pid: number;
  startedAt: string;
  argv?: string[];
}

/** Locks held by this process (a second main() in the same process is refused too). */
const held = new Set<string>();

function readLock(file: string): { info: LockInfo | null; mtimeMs: number } | null {
  try {
    const mtimeMs = fs.statSync(file).mtimeMs;
    let info: LockInfo | null = null;
    try {
      const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<LockInfo>;
      if (typeof raw.pid === 'number') info = { pid: raw.pid, startedAt: String(raw.startedAt ?? '') };
    } catch {
      /* torn or empty: stale */
    }
    return { info, mtimeMs };
  } catch {
    return null;
  }
}

/**
 * Takes the trial dir's lock or throws TrialBusyError naming the run that holds it. Returns a
 * function that releases it (only if it is still ours).
 */
export function acquireTrialLock(dir: string, argv: string[] = [], log: (line: string) => void = () => {}): () => void {
  const file = path.join(dir, LOCK_FILE);
  if (held.has(file)) throw new TrialBusyError(`trial dir ${dir} is in use by another run in this process`);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      try {
        fs.writeSync(fd, `${JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), argv } satisfies LockInfo)}\n`);
      } finally {
        fs.closeSync(fd);
      }
      held.add(file);
      return () => {
        held.delete(file);
        const cur = readLock(file);
        if (cur?.info?.pid === process.pid) fs.rmSync(file, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const cur = readLock(file);
    if (!cur) continue; // released meanwhile
    const { info, mtimeMs } = cur;
    // Our own pid in the file (and not held by this process): an earlier process that had our pid.
    if (info && info.pid !== process.pid && !ownerGone(info.pid, mtimeMs)) {
      throw new TrialBusyError(
        `trial dir ${dir} is in use by run-multienv pid ${info.pid} (started ${info.startedAt}); two runs on one trial would redo each other's tasks. Wait for it, or stop it (a killed run's lock is taken over)`,
      );
    }
    log(`taking over the lock of a run that is gone${info ? ` (pid ${info.pid}, started ${info.startedAt})` : ''}`);
    fs.rmSync(file, { force: true });
  }
  throw new TrialBusyError(`could not lock trial dir ${dir} (another run keeps taking it)`);
}
