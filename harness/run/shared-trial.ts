/**
 * Processes that share a trial through a queue (--queue) next to the one-run-per-trial lock
 * (trial-lock.ts). Each sharing process is a member: `queue-<host>-<pid>.lock` in the trial dir,
 * touched every 10 s while it runs. A plain run (no --queue) would redo tasks that members are
 * running, so it is refused while a member is live; a member is refused while a plain run holds
 * `run.lock`. A member file is stale when its process is gone (same host) or it was not touched
 * for a minute (another host, seen through a shared file system).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomic } from '../results/writer.ts';
import { ownerGone } from './cleanup.ts';
import { LOCK_FILE, TrialBusyError } from './trial-lock.ts';

const MEMBER = /^queue-(.+)-(\d+)\.lock$/;
const HEARTBEAT_MS = 10_000;
const STALE_MS = 60_000;

interface MemberInfo {
  host: string;
  pid: number;
  startedAt: string;
  queue: string;
}

export function memberFile(dir: string, host = os.hostname(), pid = process.pid): string {
  return path.join(dir, `queue-${host.replace(/[^A-Za-z0-9_.-]/g, '_')}-${pid}.lock`);
}

/** The live members of a trial's queue (their file names), stale files removed. */
export function liveMembers(dir: string, now = Date.now()): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const live: string[] = [];
  for (const name of names) {
    if (!MEMBER.test(name)) continue;
    const file = path.join(dir, name);
    let mtimeMs: number;
    let info: Partial<MemberInfo> = {};
    try {
      mtimeMs = fs.statSync(file).mtimeMs;
      info = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<MemberInfo>;
    } catch {
      continue; // being written or removed
    }
    const sameHost = info.host === os.hostname();
    const stale = sameHost && typeof info.pid === 'number' ? info.pid !== process.pid && ownerGone(info.pid, mtimeMs) : now - mtimeMs > STALE_MS;
    if (stale) fs.rmSync(file, { force: true });
    else if (!(sameHost && info.pid === process.pid)) live.push(name);
  }
  return live;
}

/** Whether a plain run (no --queue) holds the trial's run.lock now (this host only). */
function plainRunHolder(dir: string): { pid: number; startedAt: string } | null {
  const file = path.join(dir, LOCK_FILE);
  try {
    const mtimeMs = fs.statSync(file).mtimeMs;
    const info = JSON.parse(fs.readFileSync(file, 'utf8')) as { pid?: unknown; startedAt?: unknown };
    if (typeof info.pid !== 'number' || info.pid === process.pid || ownerGone(info.pid, mtimeMs)) return null;
    return { pid: info.pid, startedAt: String(info.startedAt ?? '') };
  } catch {
    return null;
  }
}

/**
 * Joins the trial as a member of its queue; returns the function that leaves it. Throws
 * TrialBusyError while a plain run holds the trial.
 */
export function joinSharedTrial(dir: string, queue: string): () => void {
  const file = memberFile(dir);
  liveMembers(dir); // sweeps the files of members that are gone
  const info: MemberInfo = { host: os.hostname(), pid: process.pid, startedAt: new Date().toISOString(), queue };
  writeFileAtomic(file, `${JSON.stringify(info)}\n`);
  // Written first, checked second (a plain run locks first, checks members second): of two that
  // start together, at least one sees the other.
  const holder = plainRunHolder(dir);
  if (holder) {
    fs.rmSync(file, { force: true });
    throw new TrialBusyError(
      `trial dir ${dir} is in use by run-multienv pid ${holder.pid} (started ${holder.startedAt}) without --queue; it would redo the queue's tasks. Wait for it, or stop it`,
    );
  }
  const timer = setInterval(() => {
    const t = new Date();
    try {
      fs.utimesSync(file, t, t);
    } catch {
      try {
        writeFileAtomic(file, `${JSON.stringify(info)}\n`); // removed by someone: say it again
      } catch {
        /* the trial dir is gone */
      }
    }
  }, HEARTBEAT_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    fs.rmSync(file, { force: true });
  };
}

/** For a plain run that holds run.lock: refuse while processes share the trial through a queue. */
export function assertNoQueueMembers(dir: string): void {
  const live = liveMembers(dir);
  if (live.length) {
    throw new TrialBusyError(
      `trial dir ${dir} is shared through a queue by ${live.length} running process(es) (${live.join(', ')}); a run without --queue would redo their tasks. Run with the same --queue, or wait for them`,
    );
  }
}

/** The file in a trial dir that names the trial for a shared queue (sharedTrialToken). */
export const TRIAL_TOKEN_FILE = 'shared-trial.json';

/**
 * This trial folder's identity for a shared queue: a random token made by the first process (the
 * file is linked into place, so it appears whole and only once), read by every later one. Processes
 * that share the folder (a shared file system, any mount point) agree; unrelated runs whose default
 * queue names collide (same model and trial id, other --result_dir) do not.
 */
export function sharedTrialToken(dir: string): string {
  const file = path.join(dir, TRIAL_TOKEN_FILE);
  const read = (): string => {
    const token = (JSON.parse(fs.readFileSync(file, 'utf8')) as { token?: unknown }).token;
    if (typeof token !== 'string' || !token) throw new Error(`${file} has no token: remove it`);
    return token;
  };
  if (fs.existsSync(file)) return read();
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(3).toString('hex')}`;
  writeFileAtomic(tmp, `${JSON.stringify({ token: randomBytes(8).toString('hex'), createdAt: new Date().toISOString() })}\n`);
  try {
    fs.linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // another process made it first
  } finally {
    fs.rmSync(tmp, { force: true });
  }
  return read();
}
