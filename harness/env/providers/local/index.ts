/**
 * The `local` env provider: one env = an Xvfb display (1920x1080x24), a D-Bus session bus, openbox, a
 * private HOME restored from a template at every reset, per-env ports for Chromium's CDP and VLC's HTTP
 * interface, wrappers on the env's PATH (`google-chrome`, `chromium`, `vlc`, `python`), and an env server
 * (env-server.ts) on a free loopback port with a per-env token.
 *
 * Process control: the desktop runs under a python supervisor that is a child subreaper (session.ts), so
 * close/reset kill every process of the env, including double-forked ones; a final /proc sweep (env id in
 * the environment, env dir in the command line) catches anything else. If Xvfb (or the supervisor) dies,
 * the env is restarted (same URL, token and ports; HOME restored).
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { EnvClient } from '../../env-client.ts';
import type { EnvHandle, EnvHealth, EnvPorts, EnvProvider, EnvStartOptions } from '../../provider.ts';
import { buildEnvServer } from './env-server.ts';
import type { DesktopAccess, EnvServer } from './env-server.ts';
import { ensureHomeTemplate, restoreHome } from './home-template.ts';
import { DesktopSession, PYTHON_DIR, SHELL_DIR, SYSTEM_PYTHON } from './session.ts';

export { DesktopSession } from './session.ts';
export { buildEnvServer } from './env-server.ts';

export interface LocalProviderOptions {
  /** where env dirs and the HOME template live; default $OSW_ENV_DIR or <tmp>/osworld-envs */
  baseDir?: string;
  width?: number;
  height?: number;
  depth?: number;
  /** require the per-env token (default true); false lets OSWorld's own clients in */
  auth?: boolean;
  /** restart an env whose Xvfb / supervisor died (default true) */
  autoRestart?: boolean;
  /** /execute timeout (s), default 120 like OSWorld */
  executeTimeoutS?: number;
  /** the env server's port (default: a free one); only for a provider that starts one env (the env-server CLI) */
  serverPort?: number;
  /** the env's token (default: random per env); only for a provider that starts one env (the env-server CLI) */
  token?: string;
  log?: (msg: string) => void;
}

export type EnvState = 'new' | 'starting' | 'ready' | 'resetting' | 'restarting' | 'dead' | 'closed';

/** Roots of the envs that this process has started and not yet closed (the stale-env sweep skips them). */
const liveRoots = new Set<string>();
export function liveEnvRoots(): ReadonlySet<string> {
  return liveRoots;
}

export function defaultBaseDir(): string {
  return process.env.OSW_ENV_DIR ?? path.join(os.tmpdir(), 'osworld-envs');
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Pids (not ours) whose environment names this env or whose command line mentions its dir. */
export function findEnvProcesses(envId: string, root: string): number[] {
  const marker = Buffer.from(`OSW_ENV_ID=${envId}\0`);
  const rootBuf = Buffer.from(root);
  const res: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    if (pid === process.pid) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const state = st.slice(st.lastIndexOf(')') + 2, st.lastIndexOf(')') + 3);
      if (state === 'Z') continue;
      const cmd = readFileSync(`/proc/${d}/cmdline`);
      let hit = cmd.includes(rootBuf);
      if (!hit) {
        const environ = readFileSync(`/proc/${d}/environ`);
        hit = environ.includes(marker);
      }
      if (hit) res.push(pid);
    } catch {
      /* gone, or not readable */
    }
  }
  return res;
}

function openboxConfig(): string {
  const rule =
    '<application class="*" type="normal"><maximized>true</maximized><focus>yes</focus></application>\n';
  try {
    let rc = readFileSync('/etc/xdg/openbox/rc.xml', 'utf8');
    rc = rc.replace(/<number>\d+<\/number>/, '<number>1</number>');
    rc = rc.replace('</applications>', rule + '</applications>');
    return rc;
  } catch {
    return `<?xml version="1.0" encoding="UTF-8"?>
<openbox_config xmlns="http://openbox.org/3.4/rc">
<focus><focusNew>yes</focusNew><followMouse>no</followMouse></focus>
<desktops><number>1</number></desktops>
<mouse><dragThreshold>1</dragThreshold><doubleClickTime>500</doubleClickTime>
<context name="Client"><mousebind button="Left" action="Press"><action name="Focus"/><action name="Raise"/></mousebind></context>
<context name="Titlebar"><mousebind button="Left" action="Drag"><action name="Move"/></mousebind></context>
<context name="Close"><mousebind button="Left" action="Click"><action name="Close"/></mousebind></context>
</mouse>
<applications>${rule}</applications>
</openbox_config>
`;
  }
}

export class LocalEnv extends EventEmitter implements EnvHandle, DesktopAccess {
  readonly id: string;
  readonly root: string;
  readonly home: string;
  readonly tmpDir: string;
  readonly runDir: string;
  readonly binDir: string;
  readonly width: number;
  readonly height: number;
  readonly depth: number;
  readonly host = '127.0.0.1';
  readonly token: string | null;
  ports: EnvPorts = { server: 0, chromium: null, vlc: null, vnc: null };
  baseUrl = '';
  client!: EnvClient;
  state: EnvState = 'new';
  restarts = 0;
  /** why the desktop last died (Xvfb or supervisor exited), null if it never did */
  lastDeath: string | null = null;
  /** ms of the last start / reset */
  lastStartMs = 0;

  private session: DesktopSession | null = null;
  private server: EnvServer | null = null;
  private template = '';
  private op: Promise<unknown> = Promise.resolve();
  private readonly log: (m: string) => void;

  constructor(
    id: string,
    private readonly opts: LocalProviderOptions,
    private readonly baseDir: string,
  ) {
    super();
    this.id = id;
    this.root = path.join(baseDir, 'envs', id);
    this.home = path.join(this.root, 'home');
    this.tmpDir = path.join(this.root, 'tmp');
    this.runDir = path.join(this.root, 'run');
    this.binDir = path.join(this.root, 'bin');
    this.width = opts.width ?? 1920;
    this.height = opts.height ?? 1080;
    this.depth = opts.depth ?? 24;
    this.token = opts.auth === false ? null : (opts.token ?? randomBytes(24).toString('base64url'));
    this.log = opts.log ?? (() => {});
  }

  /** serializes start / reset / restart / close */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.op.then(fn, fn);
    this.op = p.catch(() => {});
    return p;
  }

  private processEnv(): Record<string, string> {
    return {
      HOME: this.home,
      USER: process.env.USER ?? 'root',
      LOGNAME: process.env.LOGNAME ?? process.env.USER ?? 'root',
      SHELL: '/bin/bash',
      TERM: 'xterm-256color',
      LANG: 'C.UTF-8',
      PATH: `${this.binDir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      PYTHONPATH: PYTHON_DIR,
      PYTHONDONTWRITEBYTECODE: '1', // keep __pycache__ out of the repo's python/ dir
      TMPDIR: this.tmpDir,
      XDG_CONFIG_HOME: path.join(this.home, '.config'),
      XDG_CACHE_HOME: path.join(this.home, '.cache'),
      XDG_DATA_HOME: path.join(this.home, '.local', 'share'),
      XDG_RUNTIME_DIR: path.join(this.runDir, 'xdg'),
      XDG_SESSION_TYPE: 'x11',
      SAL_USE_VCLPLUGIN: 'gtk3',
      GNOME_ACCESSIBILITY: '1',
      QT_ACCESSIBILITY: '1',
      LIBGL_ALWAYS_SOFTWARE: '1',
      NO_AT_BRIDGE: '0',
      OSW_ENV_ID: this.id,
      OSW_CDP_PORT: String(this.ports.chromium ?? 9222),
      OSW_VLC_PORT: String(this.ports.vlc ?? 8080),
      ...(existsSync(path.join(this.baseDir, 'bin', 'vlc-root')) && process.getuid?.() === 0
        ? { OSW_VLC_BIN: path.join(this.baseDir, 'bin', 'vlc-root') }
        : {}),
    };
  }

  private async prepareDirs(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await mkdir(this.binDir, { recursive: true });
    const links: Array<[string, string]> = [
      ['python', SYSTEM_PYTHON],
      ['python3', SYSTEM_PYTHON],
      ['google-chrome', path.join(SHELL_DIR, 'google-chrome')],
      ['google-chrome-stable', path.join(SHELL_DIR, 'google-chrome')],
      ['chrome', path.join(SHELL_DIR, 'google-chrome')],
      ['chromium', path.join(SHELL_DIR, 'google-chrome')],
      ['chromium-browser', path.join(SHELL_DIR, 'google-chrome')],
      ['vlc', path.join(SHELL_DIR, 'vlc')],
    ];
    for (const [name, target] of links) {
      await rm(path.join(this.binDir, name), { force: true });
      await symlink(target, path.join(this.binDir, name));
    }
    // Debian's vlc refuses root: a patched copy shared by all envs
    const vlcRoot = path.join(this.baseDir, 'bin', 'vlc-root');
    if (process.getuid?.() === 0 && existsSync('/usr/bin/vlc') && !existsSync(vlcRoot)) {
      await mkdir(path.dirname(vlcRoot), { recursive: true });
      const bin = readFileSync('/usr/bin/vlc');
      const a = Buffer.from('geteuid');
      const b = Buffer.from('getppid');
      let i = bin.indexOf(a);
      while (i >= 0) {
        b.copy(bin, i);
        i = bin.indexOf(a, i + 1);
      }
      // Written under a temporary name and renamed: a kill mid-write must not leave a truncated
      // vlc-root that every later env would take for the real one (cleanup.ts sweeps the temp file).
      const tmp = `${vlcRoot}.${process.pid}-${randomBytes(3).toString('hex')}`;
      await writeFile(tmp, bin);
      await chmod(tmp, 0o755);
      await rename(tmp, vlcRoot);
    }
  }

  private async freshDirs(): Promise<void> {
    await restoreHome(this.template, this.home);
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
    await rm(this.runDir, { recursive: true, force: true });
    await mkdir(path.join(this.runDir, 'xdg'), { recursive: true, mode: 0o700 });
    await writeFile(path.join(this.runDir, 'openbox-rc.xml'), openboxConfig());
  }

  private async startDesktop(): Promise<void> {
    const t0 = Date.now();
    await this.freshDirs();
    const s = new DesktopSession({
      runDir: this.runDir,
      env: this.processEnv(),
      width: this.width,
      height: this.height,
      depth: this.depth,
      wm: ['openbox', '--config-file', path.join(this.runDir, 'openbox-rc.xml')],
      init: [['xsetroot', '-solid', '#2f3b4c', '-cursor_name', 'left_ptr']],
    });
    s.on('child-exit', (ev: { id: string }) => {
      if (ev.id === 'xvfb' && this.session === s) this.onDesktopDied('Xvfb exited');
    });
    s.on('ended', () => {
      if (this.session === s) this.onDesktopDied('supervisor exited');
    });
    this.session = s;
    await s.start();
    this.lastStartMs = Date.now() - t0;
    this.log(`env ${this.id}: desktop :${s.display} up in ${this.lastStartMs} ms`);
  }

  private async stopDesktop(): Promise<void> {
    const s = this.session;
    this.session = null;
    this.server?.onDesktopReset();
    if (s) await s.shutdown();
    const left = findEnvProcesses(this.id, this.root);
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    if (left.length) this.log(`env ${this.id}: swept ${left.length} leftover processes`);
  }

  private onDesktopDied(why: string): void {
    if (this.state !== 'ready') return;
    this.log(`env ${this.id}: ${why}`);
    this.state = 'dead';
    this.lastDeath = why;
    this.emit('died', why);
    if (this.opts.autoRestart === false) return;
    void this.serial(async () => {
      if (this.state !== 'dead') return;
      this.state = 'restarting';
      try {
        await this.stopDesktop();
        await this.startDesktop();
        this.restarts++;
        this.state = 'ready';
        this.emit('ready');
        this.emit('restarted', why);
      } catch (e) {
        this.state = 'dead';
        this.log(`env ${this.id}: restart failed: ${(e as Error).message}`);
        this.emit('restart-failed', e);
      }
    });
  }

  start(): Promise<void> {
    return this.serial(async () => {
      if (this.state !== 'new') throw new Error(`env ${this.id} already started`);
      this.state = 'starting';
      liveRoots.add(this.root);
      try {
        this.template = await ensureHomeTemplate(this.baseDir, this.log);
        await this.prepareDirs();
        this.ports.chromium = await freePort();
        this.ports.vlc = await freePort();
        await this.startDesktop();
        this.server = buildEnvServer(this, {
          token: this.token,
          ...(this.opts.executeTimeoutS !== undefined ? { executeTimeoutS: this.opts.executeTimeoutS } : {}),
        });
        await this.server.app.listen({ host: '127.0.0.1', port: this.opts.serverPort ?? 0 });
        const addr = this.server.app.server.address();
        this.ports.server = typeof addr === 'object' && addr ? addr.port : 0;
        this.baseUrl = `http://127.0.0.1:${this.ports.server}`;
        this.client = new EnvClient(this.baseUrl, { token: this.token });
        this.state = 'ready';
        this.emit('ready');
      } catch (e) {
        this.state = 'closed';
        await this.server?.app.close().catch(() => {});
        await this.stopDesktop().catch(() => {});
        await rm(this.root, { recursive: true, force: true }).catch(() => {});
        liveRoots.delete(this.root);
        throw e;
      }
    });
  }

  reset(): Promise<void> {
    return this.serial(async () => {
      if (this.state === 'closed' || this.state === 'new') throw new Error(`env ${this.id} is ${this.state}`);
      this.state = 'resetting';
      try {
        await this.stopDesktop();
        await this.startDesktop();
        this.state = 'ready';
        this.emit('ready');
      } catch (e) {
        this.state = 'dead';
        throw e;
      }
    });
  }

  close(): Promise<void> {
    return this.serial(async () => {
      if (this.state === 'closed') return;
      this.state = 'closed';
      this.emit('closed');
      await this.server?.app.close().catch(() => {});
      await this.stopDesktop();
      await rm(this.root, { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
      liveRoots.delete(this.root);
    });
  }

  isAlive(): boolean {
    if (this.state !== 'ready' || !this.session?.alive) return false;
    const xpid = this.session.xvfbPid;
    if (xpid) {
      try {
        process.kill(xpid, 0);
      } catch {
        return false;
      }
    }
    return true;
  }

  async health(): Promise<EnvHealth> {
    return {
      alive: this.isAlive(),
      state: this.state,
      restarts: this.restarts,
      detail: {
        display: this.session?.display ?? null,
        supervisorPid: this.session?.supervisorPid ?? null,
        xvfbPid: this.session?.xvfbPid ?? null,
        baseUrl: this.baseUrl,
        root: this.root,
        lastStartMs: this.lastStartMs,
      },
    };
  }

  /** DesktopAccess: the running session, waiting while the env (re)starts */
  async desktop(timeoutMs = 60_000): Promise<DesktopSession> {
    const ok = () => this.state === 'ready' && this.session?.alive;
    if (ok()) return this.session!;
    if (this.state === 'closed') throw new Error('env is closed');
    return new Promise<DesktopSession>((resolve, reject) => {
      const done = () => {
        clearTimeout(t);
        this.off('ready', onReady);
        this.off('closed', onClosed);
        this.off('restart-failed', onFailed);
      };
      const onReady = () => {
        if (ok()) {
          done();
          resolve(this.session!);
        }
      };
      const onClosed = () => {
        done();
        reject(new Error('env is closed'));
      };
      const onFailed = (e: Error) => {
        done();
        reject(e);
      };
      const t = setTimeout(() => {
        done();
        reject(new Error(`env not ready after ${timeoutMs} ms (state ${this.state})`));
      }, timeoutMs);
      this.on('ready', onReady);
      this.on('closed', onClosed);
      this.on('restart-failed', onFailed);
    });
  }

  /** pids of the env's processes (supervisor tree + sweep), for tests and diagnostics */
  processes(): number[] {
    return findEnvProcesses(this.id, this.root);
  }

  /** the env's full environment (DISPLAY, HOME, DBUS...), for host-side tools */
  get env(): Record<string, string> {
    return this.session?.env ?? this.processEnv();
  }

  get display(): string | null {
    return this.session?.display != null ? `:${this.session.display}` : null;
  }
}

let envSeq = 0;

export class LocalProvider implements EnvProvider {
  readonly kind = 'local';
  readonly baseDir: string;
  private readonly envs = new Set<LocalEnv>();

  constructor(private readonly opts: LocalProviderOptions = {}) {
    this.baseDir = opts.baseDir ?? defaultBaseDir();
  }

  /** Builds the HOME template now (otherwise the first start() does). */
  async prepare(): Promise<void> {
    await mkdir(this.baseDir, { recursive: true });
    await ensureHomeTemplate(this.baseDir, this.opts.log);
  }

  async start(opts: EnvStartOptions = {}): Promise<LocalEnv> {
    const id = `${opts.name ?? 'env'}-${process.pid}-${++envSeq}-${randomBytes(3).toString('hex')}`;
    const env = new LocalEnv(id, this.opts, this.baseDir);
    this.envs.add(env);
    env.on('closed', () => this.envs.delete(env));
    try {
      await env.start();
    } catch (e) {
      this.envs.delete(env);
      throw e;
    }
    return env;
  }

  list(): LocalEnv[] {
    return [...this.envs];
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.envs].map((e) => e.close()));
  }
}

/** read a whole file if it exists (small helper for tests/bench) */
export async function readIfExists(p: string): Promise<Buffer | null> {
  return readFile(p).catch(() => null);
}
