/**
 * One desktop session of a local env: the python supervisor (python/helpers/envinit.py) with Xvfb, the D-Bus
 * session bus and openbox under it. The supervisor is a child subreaper, so every process started through
 * it (apps, /execute code, ffmpeg) and everything those fork stays in its tree and is killed at shutdown.
 * Talks JSON lines over the supervisor's stdin/stdout.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ASSET_DIR = path.dirname(fileURLToPath(import.meta.url));
export const PYTHON_DIR = path.join(ASSET_DIR, 'python');
export const SHELL_DIR = path.join(ASSET_DIR, 'shell');
/** system python: pyatspi / Xlib / PIL / uno come from apt (a pyenv python3 on PATH has none of them) */
export const SYSTEM_PYTHON = '/usr/bin/python3';

export interface SessionConfig {
  runDir: string;
  /** full environment of the env's processes (DISPLAY and DBUS_SESSION_BUS_ADDRESS are added) */
  env: Record<string, string>;
  width: number;
  height: number;
  depth: number;
  /** window manager argv; [] for none */
  wm: string[];
  /** commands run once the display is up (e.g. xsetroot) */
  init?: string[][];
  startTimeoutMs?: number;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** file paths; default /dev/null */
  stdout?: string;
  stderr?: string;
}

export interface Tracked {
  id: string;
  pid: number;
  /** resolves with the exit code (negative: killed by that signal) */
  exited: Promise<number>;
}

interface Event {
  event: string;
  id?: string;
  pid?: number;
  code?: number;
  message?: string;
  display?: number;
  ms?: number;
  xvfb?: number;
  reason?: string;
}

let seq = 0;

export class DesktopSession extends EventEmitter {
  private proc: ChildProcess | null = null;
  display: number | null = null;
  supervisorPid: number | null = null;
  xvfbPid: number | null = null;
  startMs = 0;
  private pending = new Map<
    string,
    { resolveSpawn: (pid: number) => void; rejectSpawn: (e: Error) => void; resolveExit: (c: number) => void }
  >();
  private exitCodes = new Map<string, number>();
  private ended = false;
  private endedPromise: Promise<void> | null = null;
  /** env of this session (with DISPLAY / DBUS) once ready */
  env: Record<string, string> = {};

  constructor(private readonly cfg: SessionConfig) {
    super();
  }

  get alive(): boolean {
    return this.proc !== null && !this.ended;
  }

  async start(): Promise<void> {
    const cfgPath = path.join(this.cfg.runDir, 'envinit.json');
    writeFileSync(
      cfgPath,
      JSON.stringify({
        env: this.cfg.env,
        runDir: this.cfg.runDir,
        width: this.cfg.width,
        height: this.cfg.height,
        depth: this.cfg.depth,
        wm: this.cfg.wm,
        init: this.cfg.init ?? [],
      }),
    );
    const proc = spawn(SYSTEM_PYTHON, [path.join(PYTHON_DIR, 'helpers', 'envinit.py'), cfgPath], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true, // own session + process group: a ^C to the harness does not hit the desktop directly
      env: this.cfg.env,
    });
    this.proc = proc;
    this.supervisorPid = proc.pid ?? null;
    let stderrTail = '';
    proc.stderr?.on('data', (d: Buffer) => {
      stderrTail = (stderrTail + d.toString('utf8')).slice(-4000);
    });
    proc.stdin?.on('error', () => {});
    this.endedPromise = new Promise<void>((resolve) => {
      proc.on('exit', (code, sig) => {
        this.ended = true;
        for (const [id, p] of this.pending) {
          p.rejectSpawn(new Error('desktop session ended'));
          p.resolveExit(-9);
          this.pending.delete(id);
        }
        this.emit('ended', { code, signal: sig, stderr: stderrTail });
        resolve();
      });
    });
    const ready = new Promise<void>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`desktop did not start in time; supervisor stderr: ${stderrTail}`)),
        this.cfg.startTimeoutMs ?? 20_000,
      );
      const rl = createInterface({ input: proc.stdout! });
      rl.on('line', (line) => {
        let ev: Event;
        try {
          ev = JSON.parse(line) as Event;
        } catch {
          return;
        }
        if (ev.event === 'ready') {
          clearTimeout(t);
          this.display = ev.display ?? null;
          this.startMs = ev.ms ?? 0;
          this.xvfbPid = ev.xvfb ?? null;
          this.env = {
            ...this.cfg.env,
            DISPLAY: `:${this.display}`,
            DBUS_SESSION_BUS_ADDRESS: `unix:path=${path.join(this.cfg.runDir, 'bus')}`,
          };
          resolve();
        } else if (ev.event === 'error' && this.display === null) {
          clearTimeout(t);
          reject(new Error(`desktop failed to start: ${ev.message}`));
        } else {
          this.onEvent(ev);
        }
      });
      proc.on('exit', () => {
        clearTimeout(t);
        reject(new Error(`desktop supervisor exited during start; stderr: ${stderrTail}`));
      });
    });
    await ready;
  }

  private onEvent(ev: Event): void {
    const id = ev.id ?? '';
    const p = this.pending.get(id);
    if (ev.event === 'spawned' && p && ev.pid !== undefined) p.resolveSpawn(ev.pid);
    else if (ev.event === 'spawn-error' && p) {
      p.rejectSpawn(new Error(ev.message ?? 'spawn failed'));
      this.pending.delete(id);
    } else if (ev.event === 'exit') {
      if (p) {
        p.resolveExit(ev.code ?? -1);
        this.pending.delete(id);
      } else {
        this.exitCodes.set(id, ev.code ?? -1);
      }
      this.emit('child-exit', { id, code: ev.code, pid: ev.pid });
    }
  }

  private send(obj: unknown): void {
    if (!this.proc || this.ended) throw new Error('desktop session is not running');
    this.proc.stdin!.write(JSON.stringify(obj) + '\n');
  }

  /** Starts argv inside the env (as a descendant of the supervisor). Rejects if exec fails. */
  async spawn(argv: string[], opts: SpawnOptions = {}): Promise<Tracked> {
    const id = `p${++seq}`;
    let resolveSpawn!: (pid: number) => void;
    let rejectSpawn!: (e: Error) => void;
    let resolveExit!: (c: number) => void;
    const spawned = new Promise<number>((res, rej) => {
      resolveSpawn = res;
      rejectSpawn = rej;
    });
    const exited = new Promise<number>((res) => {
      resolveExit = res;
    });
    this.pending.set(id, { resolveSpawn, rejectSpawn, resolveExit });
    this.send({ op: 'spawn', id, argv, env: opts.env, cwd: opts.cwd, stdout: opts.stdout, stderr: opts.stderr });
    const pid = await spawned;
    return { id, pid, exited };
  }

  /** Signals a spawned process (and, with tree, all its descendants). */
  signal(id: string, signal: NodeJS.Signals = 'SIGTERM', tree = true): void {
    if (!this.alive) return;
    this.send({ op: 'signal', id, signal, tree });
  }

  /** Kills every process of the session; resolves when the supervisor is gone. */
  async shutdown(timeoutMs = 8000): Promise<void> {
    if (!this.proc) return;
    if (!this.ended) {
      try {
        this.send({ op: 'shutdown' });
      } catch {
        /* already gone */
      }
      const t = setTimeout(() => {
        try {
          if (this.supervisorPid) process.kill(-this.supervisorPid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }, timeoutMs);
      await this.endedPromise;
      clearTimeout(t);
    }
  }
}
