/**
 * Leftovers of a run that was killed (SIGKILL, OOM, power): temporary files of atomic writes
 * (`*.tmp-<pid>-*`) whose writer is gone, and local env dirs (`<base>/envs/<name>-<pid>-<n>-<hex>`)
 * of a harness process that no longer exists, with any process still running in them.
 * A desktop's supervisor already kills its tree when the harness dies (stdin EOF); this catches
 * the rest and frees the disk.
 */
import fs from 'node:fs';
import path from 'node:path';
import { findEnvProcesses } from '../env/providers/local/index.ts';

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const TMP = /\.tmp-(\d+)-[a-z0-9]+$/;

/** Removes `*.tmp-<pid>-*` files of dead writers under `dir` (recursively); returns how many. */
export function sweepTempFiles(dir: string): number {
  let n = 0;
  const walk = (d: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const m = TMP.exec(e.name);
        if (m && !pidAlive(Number(m[1]))) {
          fs.rmSync(p, { force: true });
          n++;
        }
      }
    }
  };
  walk(dir);
  return n;
}

/** Kills the processes of, and removes, local env dirs left by dead harness processes. */
export function sweepStaleEnvs(baseDir: string, log: (line: string) => void = () => {}): number {
  const envs = path.join(baseDir, 'envs');
  let names: string[];
  try {
    names = fs.readdirSync(envs);
  } catch {
    return 0;
  }
  let n = 0;
  for (const name of names) {
    const m = /-(\d+)-\d+-[0-9a-f]{6}$/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    const root = path.join(envs, name);
    const pids = findEnvProcesses(name, root);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    fs.rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    log(`removed stale env ${name} of dead process ${m[1]}${pids.length ? ` (killed ${pids.length} leftover process(es))` : ''}`);
    n++;
  }
  return n;
}
