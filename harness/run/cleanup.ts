/**
 * Leftovers of a run that was killed (SIGKILL, OOM, power): temporary files of atomic writes
 * (`*.tmp-<pid>-*`) whose writer is gone, local env dirs (`<base>/envs/<name>-<pid>-<n>-<hex>`)
 * of a harness process that no longer exists, with any process still running in them,
 * half-built HOME templates (`<base>/home-template-*.tmp-<pid>-*`) and evaluation scratch dirs
 * (`<tmp>/osworld-eval-<pid>-*`).
 * A desktop's supervisor already kills its tree when the harness dies (stdin EOF); this catches
 * the rest and frees the disk.
 *
 * "Gone" also covers a pid that was reused: a process with that pid that started after the
 * leftover was last written is not its writer (in a container the harness is often pid 1 on
 * every start, so its own pid is no proof of life either: see `ownerGone`).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findEnvProcesses, liveEnvRoots } from '../env/providers/local/index.ts';

export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let clockTicks: number | undefined;
let bootMs: number | undefined;

/** When process `pid` started (ms since the epoch, to ~1 s), or null when unknown (no /proc, gone). */
export function processStartMs(pid: number): number | null {
  try {
    if (bootMs === undefined) {
      const btime = /^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'));
      if (!btime) return null;
      bootMs = Number(btime[1]) * 1000;
    }
    if (clockTicks === undefined) {
      try {
        clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
      } catch {
        clockTicks = 100; // USER_HZ on every mainstream Linux
      }
    }
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)": state is field 3, starttime field 22.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[19]);
    return Number.isFinite(ticks) ? bootMs + (ticks * 1000) / clockTicks : null;
  } catch {
    return null;
  }
}

/**
 * Whether the process that wrote something at `writtenMs` under pid `pid` is gone: no such
 * process, or the process now holding that pid started after the write (pid reuse, with 2 s of
 * slack for the clock's resolution). This process's own pid counts as alive; callers decide.
 */
export function ownerGone(pid: number, writtenMs: number): boolean {
  if (!pidAlive(pid)) return true;
  const started = processStartMs(pid);
  return started !== null && started > writtenMs + 2000;
}

const TMP = /\.tmp-(\d+)-[a-z0-9]+$/;

/**
 * Removes `*.tmp-<pid>-*` files of dead writers under `dir` (recursively); returns how many.
 * Files named with this process's pid go too: writeFileAtomic is synchronous, so while this
 * (synchronous) sweep runs none of ours can be in flight; such a file is an earlier process's.
 * `minAgeMs`: only files at least that old. For a trial shared with processes on other machines
 * (--queue on a shared file system), whose pids mean nothing here: a write renames its temporary
 * file within moments, so an old one is abandoned whoever wrote it.
 */
export function sweepTempFiles(dir: string, opts: { minAgeMs?: number } = {}): number {
  const now = Date.now();
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
        if (!m) continue;
        const pid = Number(m[1]);
        let mtime: number;
        try {
          mtime = fs.statSync(p).mtimeMs;
        } catch {
          continue;
        }
        if (opts.minAgeMs !== undefined && now - mtime < opts.minAgeMs) continue;
        if (pid === process.pid || ownerGone(pid, mtime)) {
          fs.rmSync(p, { force: true });
          n++;
        }
      }
    }
  };
  walk(dir);
  return n;
}

function mtimeOf(p: string): number {
  try {
    return fs.statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * Kills the processes of, and removes, local env dirs left by dead harness processes (also
 * those named with this process's pid that no LocalEnv of this process owns: a killed earlier
 * process with the same pid). Also removes half-built HOME templates of dead builders.
 */
export function sweepStaleEnvs(baseDir: string, log: (line: string) => void = () => {}): number {
  const envs = path.join(baseDir, 'envs');
  let names: string[] = [];
  try {
    names = fs.readdirSync(envs);
  } catch {
    /* no envs yet */
  }
  const mine = liveEnvRoots();
  let n = 0;
  for (const name of names) {
    const m = /-(\d+)-\d+-[0-9a-f]{6}$/.exec(name);
    if (!m) continue;
    const root = path.join(envs, name);
    const pid = Number(m[1]);
    if (pid === process.pid ? mine.has(root) : !ownerGone(pid, mtimeOf(root))) continue;
    const pids = findEnvProcesses(name, root);
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    fs.rmSync(root, { recursive: true, force: true, maxRetries: 3 });
    log(`removed stale env ${name} of dead process ${pid}${pids.length ? ` (killed ${pids.length} leftover process(es))` : ''}`);
    n++;
  }
  // A HOME template whose build was killed (the builder renames it into place when complete),
  // and a half-written patched VLC (bin/vlc-root.<pid>-<hex>, renamed into place when complete).
  const partial = (dir: string, re: RegExp, what: string): void => {
    let entries: string[] = [];
    try {
      entries = fs.readdirSync(dir);
    } catch {
      return;
    }
    for (const name of entries) {
      const m = re.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      const p = path.join(dir, name);
      // Our own pid: this process may be building it right now (async), so only dead pids.
      if (pid === process.pid || !ownerGone(pid, mtimeOf(p))) continue;
      fs.rmSync(p, { recursive: true, force: true, maxRetries: 3 });
      log(`removed ${what} ${name} of dead process ${pid}`);
    }
  };
  partial(baseDir, /^home-template-.*\.tmp-(\d+)-\d+$/, 'half-built HOME template');
  partial(path.join(baseDir, 'bin'), /^vlc-root\.(\d+)(?:-[0-9a-f]+)?$/, 'half-written');
  return n;
}

/** Prefix of the evaluation scratch dirs of this process (`<tmp>/osworld-eval-<pid>-...`). */
export function evalScratchPrefix(): string {
  return path.join(os.tmpdir(), `osworld-eval-${process.pid}-`);
}

/** Removes evaluation scratch dirs (`<tmp>/osworld-eval-<pid>-*`) of dead processes; returns how many. */
export function sweepEvalScratch(log: (line: string) => void = () => {}): number {
  const dir = os.tmpdir();
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return 0;
  }
  let n = 0;
  for (const name of names) {
    const m = /^osworld-eval-(\d+)-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    const p = path.join(dir, name);
    // Our own pid: an eval of this process may be running (async), so only dead pids.
    if (pid === process.pid || !ownerGone(pid, mtimeOf(p))) continue;
    fs.rmSync(p, { recursive: true, force: true, maxRetries: 3 });
    n++;
  }
  if (n) log(`removed ${n} evaluation scratch dir(s) of killed runs`);
  return n;
}
