/**
 * The env server of one local desktop env: a Fastify app speaking the OSWorld in-VM protocol
 * (vm-protocol.ts) with the same request/response shapes and status codes as OSWorld's Flask server,
 * bound to 127.0.0.1, with a per-env token. Differences from OSWorld (documented in docs/desktop-envs.md):
 * - the token (401 without it);
 * - paths of /file, /setup/upload, /list_directory, /setup/open_file, /setup/change_wallpaper and
 *   /setup/download_file must lie in the env's HOME or its tmp dir (403 otherwise), and `/home/user` (the
 *   OSWorld VM's HOME) is mapped to the env's HOME there and in /execute and /setup/launch arguments;
 * - bad input answers 400 with a message where Flask would crash with 500.
 */
import Fastify from 'fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { execFile } from 'node:child_process';
import { timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, realpath, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { FormData, Response, fetch } from 'undici';
import { ROUTES, TOKEN_HEADER, EXECUTE_TIMEOUT_S, shlexSplit } from '../../vm-protocol.ts';
import type { ExecuteResponse, DirectoryNode } from '../../vm-protocol.ts';
import { PYTHON_DIR, SYSTEM_PYTHON } from './session.ts';
import type { DesktopSession } from './session.ts';

/** What the server needs from its env (implemented by LocalEnv). */
export interface DesktopAccess {
  readonly id: string;
  readonly home: string;
  readonly tmpDir: string;
  readonly runDir: string;
  readonly width: number;
  readonly height: number;
  /** the running desktop session; waits while the env (re)starts; throws when it is not coming */
  desktop(timeoutMs?: number): Promise<DesktopSession>;
}

export interface EnvServerOptions {
  /** null: no auth (e.g. to let OSWorld's own Python clients in) */
  token: string | null;
  /** /execute timeout, seconds (OSWorld: 120) */
  executeTimeoutS?: number;
  /** /accessibility walk budget, seconds */
  a11yTimeoutS?: number;
  /** max upload size (bytes) */
  bodyLimit?: number;
  logger?: boolean;
}

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly payload: unknown,
  ) {
    super(typeof payload === 'string' ? payload : JSON.stringify(payload));
  }
}

interface RunResult {
  stdout: Buffer;
  stderr: string;
  code: number;
}

function runFile(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
  maxBuffer = 256 * 1024 * 1024,
): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { env, timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'buffer', maxBuffer },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
        resolve({ stdout: stdout ?? Buffer.alloc(0), stderr: (stderr ?? Buffer.alloc(0)).toString('utf8'), code });
      },
    );
  });
}

function within(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

const OFFICE_EXT = new Set([
  'xlsx', 'xls', 'xlsm', 'ods', 'csv', 'docx', 'doc', 'odt', 'rtf', 'pptx', 'ppt', 'odp', 'odg', 'odf',
]);
const TEXT_EXT = new Set(['txt', 'md', 'py', 'json', 'sh', 'log', 'xml', 'c', 'h', 'cpp', 'js', 'ts', 'java', 'yaml', 'yml', 'ini', 'cfg', 'conf', 'tex', 'srt']);
const MEDIA_EXT = new Set(['mp4', 'mkv', 'avi', 'mov', 'webm', 'mp3', 'wav', 'ogg', 'flac', 'm4a', 'mpg', 'mpeg']);
const IMAGE_EXT = new Set(['png', 'jpg', 'jpeg', 'gif', 'bmp', 'tif', 'tiff', 'xcf', 'webp', 'svg', 'ico']);
const WEB_EXT = new Set(['html', 'htm', 'pdf']);

/** The app that opens a file (OSWorld's VM uses xdg-open with GNOME's defaults). */
export function openerFor(file: string, isDir: boolean): string[] | null {
  if (isDir) return null;
  const ext = path.extname(file).slice(1).toLowerCase();
  if (OFFICE_EXT.has(ext)) return ['soffice', '--norestore', file];
  if (TEXT_EXT.has(ext)) return ['mousepad', file];
  if (MEDIA_EXT.has(ext)) return ['vlc', file];
  if (IMAGE_EXT.has(ext)) return ['gimp', file];
  if (WEB_EXT.has(ext)) return ['google-chrome', file];
  return ['xdg-open', file];
}

export interface EnvServer {
  app: FastifyInstance;
  /** the desktop was reset or restarted: forget per-desktop state (recording) */
  onDesktopReset(): void;
}

export function buildEnvServer(env: DesktopAccess, opts: EnvServerOptions): EnvServer {
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: opts.bodyLimit ?? 1024 * 1024 * 1024,
    requestTimeout: 0,
  });
  const executeTimeoutS = opts.executeTimeoutS ?? EXECUTE_TIMEOUT_S;
  const a11yTimeoutS = opts.a11yTimeoutS ?? 25;
  const tokenBuf = opts.token ? Buffer.from(opts.token) : null;
  let recording: { id: string; file: string; exited: Promise<number> } | null = null;
  let execSeq = 0;
  let shotSeq = 0;

  // ---- body parsers: urlencoded forms and multipart (Fastify has JSON built in) ----
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, Object.fromEntries(new URLSearchParams(body as string)));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  app.addContentTypeParser('multipart/form-data', { parseAs: 'buffer' }, async (req: FastifyRequest, body: Buffer) => {
    const ct = String(req.headers['content-type'] ?? '');
    try {
      return await new Response(body, { headers: { 'content-type': ct } }).formData();
    } catch (e) {
      throw new HttpError(400, { error: `bad multipart body: ${(e as Error).message}` });
    }
  });

  // ---- auth ----
  app.addHook('onRequest', async (req, reply) => {
    if (!tokenBuf) return;
    let given = req.headers[TOKEN_HEADER];
    if (Array.isArray(given)) given = given[0];
    if (!given) {
      const auth = req.headers.authorization;
      if (auth?.startsWith('Bearer ')) given = auth.slice(7);
    }
    const g = Buffer.from(String(given ?? ''));
    if (g.length !== tokenBuf.length || !timingSafeEqual(g, tokenBuf)) {
      await reply.code(401).send({ error: 'missing or wrong env token (X-Env-Token header)' });
    }
  });

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof HttpError) {
      void reply.code(err.statusCode).send(err.payload);
      return;
    }
    const e = err as { statusCode?: number; message?: string };
    const status = e.statusCode && e.statusCode >= 400 && e.statusCode < 600 ? e.statusCode : 500;
    void reply.code(status).send({ status: 'error', message: e.message ?? String(err) });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no route ${req.method} ${req.url}` });
  });

  // ---- helpers ----
  const HOME_USER = /\/home\/user(?=[/'"\s:;,)\]}]|$)/g;
  const mapArg = (a: string): string => {
    let s = a;
    if (s === '~') s = env.home;
    else if (s.startsWith('~/')) s = env.home + s.slice(1);
    return s.replace(HOME_USER, env.home);
  };
  /** a client path -> an absolute path in the env (403 outside HOME / tmp) */
  const envPath = async (p: unknown, field: string, mustExist = false): Promise<string> => {
    if (typeof p !== 'string' || p.trim() === '') throw new HttpError(400, { error: `${field} is required` });
    let s = p.trim();
    s = s.replace(/\$\{HOME\}|\$HOME(?![A-Za-z0-9_])/g, env.home);
    s = mapArg(s);
    let abs = path.resolve(env.home, s);
    try {
      abs = await realpath(abs);
    } catch {
      try {
        abs = path.join(await realpath(path.dirname(abs)), path.basename(abs));
      } catch {
        /* parent missing: keep the resolved path */
      }
    }
    const roots = [env.home, env.tmpDir];
    if (!roots.some((r) => within(abs, r))) {
      throw new HttpError(403, { error: `path outside the env (allowed: ${roots.join(', ')}): ${p}` });
    }
    if (mustExist && !existsSync(abs)) throw new HttpError(404, { error: 'File not found' });
    return abs;
  };
  const jsonBody = (req: FastifyRequest): Record<string, unknown> => {
    const b = req.body;
    if (b === undefined || b === null) return {};
    if (typeof b !== 'object' || Array.isArray(b) || b instanceof FormData) {
      throw new HttpError(400, { status: 'error', message: 'expected a JSON object body' });
    }
    return b as Record<string, unknown>;
  };
  const formBody = (req: FastifyRequest): Record<string, unknown> => {
    const b = req.body;
    if (b && typeof b === 'object' && !Array.isArray(b) && !(b instanceof FormData)) return b as Record<string, unknown>;
    return {};
  };
  const desktop = async (): Promise<DesktopSession> => {
    try {
      return await env.desktop(60_000);
    } catch (e) {
      throw new HttpError(503, { status: 'error', message: `desktop not available: ${(e as Error).message}` });
    }
  };
  const x = async (cmd: string, args: string[], timeoutMs = 15_000): Promise<RunResult> =>
    runFile(cmd, args, (await desktop()).env, timeoutMs);

  const commandArgv = (body: Record<string, unknown>): string[] => {
    const shell = body.shell === true;
    const command = body.command;
    if (command === undefined || command === null || command === '' || (Array.isArray(command) && command.length === 0)) {
      throw new HttpError(400, { status: 'error', message: 'command is required' });
    }
    let argv: string[];
    if (typeof command === 'string') {
      if (shell) return ['/bin/sh', '-c', mapArg(command)];
      try {
        argv = shlexSplit(command);
      } catch (e) {
        throw new HttpError(400, { status: 'error', message: `cannot split command: ${(e as Error).message}` });
      }
    } else if (Array.isArray(command) && command.every((c) => typeof c === 'string')) {
      argv = command as string[];
      if (shell) return ['/bin/sh', '-c', ...argv.map(mapArg)];
    } else {
      throw new HttpError(400, { status: 'error', message: 'command must be a string or a list of strings' });
    }
    if (argv.length === 0) throw new HttpError(400, { status: 'error', message: 'command is empty' });
    return argv.map(mapArg);
  };

  const execute = async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const argv = commandArgv(jsonBody(req));
    const d = await desktop();
    const n = ++execSeq;
    const out = path.join(env.runDir, `exec-${n}.out`);
    const err = path.join(env.runDir, `exec-${n}.err`);
    let tracked;
    try {
      tracked = await d.spawn(argv, { stdout: out, stderr: err, cwd: env.home });
    } catch (e) {
      // Python's subprocess raises (FileNotFoundError ...) -> Flask answers 500 {status:error}
      await reply.code(500).send({ status: 'error', message: (e as Error).message } satisfies ExecuteResponse);
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), executeTimeoutS * 1000);
    });
    const code = await Promise.race([tracked.exited, timedOut]);
    clearTimeout(timer);
    if (code === 'timeout') {
      d.signal(tracked.id, 'SIGKILL', true);
      await tracked.exited;
      await rm(out, { force: true });
      await rm(err, { force: true });
      await reply.code(500).send({
        status: 'error',
        message: `Command '${JSON.stringify(argv)}' timed out after ${executeTimeoutS} seconds`,
      } satisfies ExecuteResponse);
      return;
    }
    const [o, e] = await Promise.all([readFile(out, 'utf8').catch(() => ''), readFile(err, 'utf8').catch(() => '')]);
    await rm(out, { force: true });
    await rm(err, { force: true });
    await reply.send({ status: 'success', output: o, error: e, returncode: code } satisfies ExecuteResponse);
  };

  const windows = async (): Promise<Array<{ id: string; cls: string; title: string; w: number; h: number }>> => {
    const r = await x('wmctrl', ['-l', '-x', '-G']);
    const res = [];
    for (const line of r.stdout.toString('utf8').split('\n')) {
      const m = /^(0x[0-9a-f]+)\s+-?\d+\s+-?\d+\s+-?\d+\s+(\d+)\s+(\d+)\s+(\S+)\s+\S+\s?(.*)$/i.exec(line);
      if (m) res.push({ id: m[1]!, w: Number(m[2]), h: Number(m[3]), cls: m[4]!, title: m[5] ?? '' });
    }
    return res;
  };

  // ---- routes ----
  app.post(ROUTES.execute.path, execute);
  app.post(ROUTES.setupExecute.path, execute);

  app.post(ROUTES.setupLaunch.path, async (req, reply) => {
    const body = jsonBody(req);
    const argv = commandArgv(body);
    const d = await desktop();
    try {
      await d.spawn(argv, { cwd: env.home });
    } catch (e) {
      return reply.code(500).send({ status: 'error', message: (e as Error).message });
    }
    const shown = body.shell === true ? JSON.stringify(body.command) : argv.join(' ');
    return reply.type('text/html; charset=utf-8').send(`${shown} launched successfully`);
  });

  app.get(ROUTES.screenshot.path, async (_req, reply) => {
    // scrot cannot write to a socket stdout (what Node gives a child), so go through a file
    const file = path.join(env.runDir, `shot-${++shotSeq}.png`);
    const r = await x('scrot', ['-p', '-o', '-z', file], 20_000);
    const png = await readFile(file).catch(() => null);
    await rm(file, { force: true });
    if (r.code !== 0 || !png || png.length < 8) {
      return reply.code(500).send({ status: 'error', message: `screenshot failed: ${r.stderr.trim()}` });
    }
    return reply.type('image/png').send(png);
  });

  app.get(ROUTES.accessibility.path, async (_req, reply) => {
    const d = await desktop();
    const r = await runFile(
      SYSTEM_PYTHON,
      [path.join(PYTHON_DIR, 'helpers', 'a11y.py'), 'tree', String(a11yTimeoutS)],
      d.env,
      (a11yTimeoutS + 20) * 1000,
    );
    if (r.code !== 0) {
      return reply.code(500).send({ status: 'error', message: `accessibility tree failed: ${r.stderr.slice(-2000)}` });
    }
    return reply.send({ AT: r.stdout.toString('utf8') });
  });

  app.get(ROUTES.terminal.path, async (_req, reply) => {
    const d = await desktop();
    const r = await runFile(SYSTEM_PYTHON, [path.join(PYTHON_DIR, 'helpers', 'a11y.py'), 'terminal'], d.env, 30_000);
    if (r.code !== 0) return reply.code(500).send({ status: 'error', message: r.stderr.slice(-2000) });
    try {
      const o = JSON.parse(r.stdout.toString('utf8')) as { output: string | null };
      return reply.send({ output: o.output, status: 'success' });
    } catch (e) {
      return reply.code(500).send({ status: 'error', message: (e as Error).message });
    }
  });

  app.post(ROUTES.screenSize.path, async (_req, reply) => {
    const r = await x('xdotool', ['getdisplaygeometry']);
    const [w, h] = r.stdout.toString('utf8').trim().split(/\s+/).map(Number);
    if (r.code !== 0 || !w || !h) return reply.send({ width: env.width, height: env.height });
    return reply.send({ width: w, height: h });
  });

  app.post(ROUTES.windowSize.path, async (req, reply) => {
    const name = formBody(req).app_class_name;
    if (typeof name !== 'string' || !name) return reply.code(400).send({ error: 'app_class_name is required' });
    const want = name.toLowerCase();
    for (const w of await windows()) {
      if (w.cls.toLowerCase().split('.').includes(want)) return reply.send({ width: w.w, height: w.h });
    }
    // Flask returns None here (a 500); a 404 with a message says the same more clearly
    return reply.code(404).send({ error: `no window of class ${name}` });
  });

  app.post(ROUTES.desktopPath.path, async (_req, reply) => {
    const p = path.join(env.home, 'Desktop');
    if (!existsSync(p)) return reply.code(404).send({ error: 'Unsupported operating system or desktop path not found' });
    return reply.send({ desktop_path: p });
  });

  const wallpaperRecord = () => path.join(env.home, '.config', 'osworld-local', 'wallpaper');
  app.post(ROUTES.wallpaper.path, async (_req, reply) => {
    let file: string | null = null;
    const g = await x('gsettings', ['get', 'org.gnome.desktop.background', 'picture-uri']);
    if (g.code === 0) {
      const v = g.stdout.toString('utf8').trim().replace(/^'|'$/g, '').replace(/^file:\/\//, '');
      if (v && existsSync(v)) file = v;
    }
    if (!file) {
      const rec = await readFile(wallpaperRecord(), 'utf8').catch(() => '');
      if (rec && existsSync(rec.trim())) file = rec.trim();
    }
    if (!file) return reply.code(404).send({ error: 'Wallpaper file not found' });
    return reply.type('image/png').send(await readFile(file));
  });

  app.post(ROUTES.listDirectory.path, async (req, reply) => {
    const body = jsonBody(req);
    if (!('path' in body)) return reply.code(400).send({ error: "Missing 'path' parameter" });
    const start = await envPath(body.path, 'path');
    const st = await stat(start).catch(() => null);
    if (!st?.isDirectory()) return reply.code(400).send({ error: 'The provided path is not a directory' });
    let budget = 20_000;
    const walk = async (dir: string, depth: number): Promise<DirectoryNode> => {
      const node = { type: 'directory' as const, name: path.basename(dir), children: [] as DirectoryNode[] };
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (e) {
        return { error: String((e as Error).message) };
      }
      for (const ent of entries) {
        if (--budget < 0) break;
        const full = path.join(dir, ent.name);
        if (ent.isDirectory() && depth < 32) node.children.push(await walk(full, depth + 1));
        else node.children.push({ type: 'file', name: ent.name });
      }
      return node;
    };
    return reply.send({ directory_tree: await walk(start, 0) });
  });

  app.post(ROUTES.file.path, async (req, reply) => {
    const f = formBody(req).file_path;
    if (typeof f !== 'string' || !f) return reply.code(400).send({ error: 'file_path is required' });
    const p = await envPath(f, 'file_path');
    const st = await stat(p).catch(() => null);
    if (!st) return reply.code(404).send({ error: 'File not found' });
    if (!st.isFile()) return reply.code(400).send({ error: 'file_path is not a regular file' });
    const data = await readFile(p);
    return reply
      .type('application/octet-stream')
      .header('content-disposition', `attachment; filename="${path.basename(p).replace(/[^\x20-\x7e]|"/g, '_')}"`)
      .send(data);
  });

  app.post(ROUTES.setupUpload.path, async (req, reply) => {
    const fd = req.body;
    if (!(fd instanceof FormData)) return reply.code(400).send({ error: 'file_path and file_data are required' });
    const fp = fd.get('file_path');
    const file = fd.get('file_data');
    if (typeof fp !== 'string' || !fp || file === null || typeof file === 'string') {
      return reply.code(400).send({ error: 'file_path and file_data are required' });
    }
    const p = await envPath(fp, 'file_path');
    const data = Buffer.from(await (file as Blob).arrayBuffer());
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, data);
    return reply.type('text/html; charset=utf-8').send(`File Uploaded: ${data.length} bytes`);
  });

  app.get(ROUTES.platform.path, async (_req, reply) => reply.type('text/html; charset=utf-8').send('Linux'));

  app.get(ROUTES.cursorPosition.path, async (_req, reply) => {
    const r = await x('xdotool', ['getmouselocation', '--shell']);
    const kv = Object.fromEntries(
      r.stdout.toString('utf8').split('\n').filter((l) => l.includes('=')).map((l) => l.split('=') as [string, string]),
    );
    if (r.code !== 0) return reply.code(500).send({ status: 'error', message: r.stderr });
    return reply.send([Number(kv.X ?? 0), Number(kv.Y ?? 0)]);
  });

  app.post(ROUTES.setupChangeWallpaper.path, async (req, reply) => {
    const body = jsonBody(req);
    if (!body.path) return reply.code(400).type('text/html').send('Path not supplied!');
    const p = await envPath(body.path, 'path');
    if (!existsSync(p)) return reply.code(404).type('text/html').send(`File not found: ${p}`);
    await mkdir(path.dirname(wallpaperRecord()), { recursive: true });
    await writeFile(wallpaperRecord(), p);
    await x('gsettings', ['set', 'org.gnome.desktop.background', 'picture-uri', `file://${p}`]);
    // paint it on the root window too (no GNOME here)
    await x('display', ['-window', 'root', '-resize', `${env.width}x${env.height}!`, p], 20_000);
    return reply.type('text/html').send('Wallpaper changed successfully');
  });

  app.post(ROUTES.setupDownloadFile.path, async (req, reply) => {
    const body = jsonBody(req);
    if (!body.url || !body.path || typeof body.url !== 'string') {
      return reply.code(400).type('text/html').send('Path or URL not supplied!');
    }
    const p = await envPath(body.path, 'path');
    await mkdir(path.dirname(p), { recursive: true });
    let lastErr = '';
    for (let i = 0; i < 3; i++) {
      try {
        const res = await fetch(body.url, { signal: AbortSignal.timeout(300_000) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const buf = Buffer.from(await res.arrayBuffer());
        await writeFile(p, buf);
        return reply.type('text/html').send('File downloaded successfully');
      } catch (e) {
        lastErr = (e as Error).message;
        await rm(p, { force: true });
      }
    }
    return reply.code(500).type('text/html').send(`Failed to download ${body.url}. No retries left. Error: ${lastErr}`);
  });

  app.post(ROUTES.setupOpenFile.path, async (req, reply) => {
    const body = jsonBody(req);
    if (!body.path || typeof body.path !== 'string') return reply.code(400).type('text/html').send('Path not supplied!');
    const timeoutS = body.timeout_seconds === undefined ? 60 : Number(body.timeout_seconds);
    if (!Number.isFinite(timeoutS) || timeoutS < 0) {
      return reply.code(400).type('text/html').send(`Invalid timeout_seconds: ${String(body.timeout_seconds)}`);
    }
    const d = await desktop();
    const raw = body.path;
    let argv: string[] | null;
    let candidates: string[];
    const mapped = mapArg(raw);
    if (existsSync(path.resolve(env.home, mapped))) {
      const p = await envPath(raw, 'path', true);
      const st = await stat(p);
      argv = openerFor(p, st.isDirectory());
      if (!argv) return reply.code(500).type('text/html').send(`No app to open the directory ${p} (no file manager)`);
      const base = path.basename(p);
      candidates = [base, base.replace(/\.[^.]+$/, '')];
    } else {
      const which = await runFile('/bin/sh', ['-c', 'command -v "$1"', 'sh', raw], d.env, 5000);
      if (which.code !== 0) return reply.code(404).type('text/html').send(`Application/file not found: ${raw}`);
      argv = [raw];
      candidates = [raw];
    }
    if (typeof body.window_name === 'string' && body.window_name) candidates = [body.window_name];
    try {
      await d.spawn(argv, { cwd: env.home });
    } catch (e) {
      return reply.code(500).type('text/html').send(`Failed to open ${raw}. Error: ${(e as Error).message}`);
    }
    const deadline = Date.now() + timeoutS * 1000;
    while (Date.now() <= deadline) {
      const w = (await windows()).find((win) => candidates.some((c) => c && win.title.includes(c)));
      if (w) {
        await x('wmctrl', ['-i', '-a', w.id]);
        return reply.type('text/html').send('File opened successfully');
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    return reply
      .code(500)
      .type('text/html')
      .send(`Failed to find window for ${JSON.stringify(candidates)} within ${timeoutS} seconds.`);
  });

  const wmctrlWindow = (op: 'a' | 'c') => async (req: FastifyRequest, reply: FastifyReply) => {
    const body = jsonBody(req);
    if (!body.window_name || typeof body.window_name !== 'string') {
      return reply.code(400).type('text/html').send('window_name required');
    }
    const flags = `-${body.by_class === true ? 'x' : ''}${body.strict === true ? 'F' : ''}${op}`;
    await x('wmctrl', [flags, body.window_name]);
    return reply.type('text/html').send(op === 'a' ? 'Window activated successfully' : 'Window closed successfully.');
  };
  app.post(ROUTES.setupActivateWindow.path, wmctrlWindow('a'));
  app.post(ROUTES.setupCloseWindow.path, wmctrlWindow('c'));

  app.post(ROUTES.startRecording.path, async (_req, reply) => {
    if (recording) return reply.code(400).send({ status: 'error', message: 'Recording is already in progress.' });
    const d = await desktop();
    const file = path.join(env.runDir, 'recording.mp4');
    await rm(file, { force: true });
    const argv = [
      'ffmpeg', '-y', '-loglevel', 'error', '-f', 'x11grab', '-draw_mouse', '1', '-framerate', '10',
      '-video_size', `${env.width}x${env.height}`, '-i', String(d.env.DISPLAY),
      '-c:v', 'libx264', '-preset', 'ultrafast', '-crf', '30', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', file,
    ];
    let t;
    try {
      t = await d.spawn(argv, { stdout: path.join(env.runDir, 'ffmpeg.log'), stderr: path.join(env.runDir, 'ffmpeg.log') });
    } catch (e) {
      return reply.code(500).send({ status: 'error', message: `Failed to start recording: ${(e as Error).message}` });
    }
    let t1: NodeJS.Timeout | undefined;
    const early = await Promise.race([t.exited, new Promise<null>((r) => (t1 = setTimeout(() => r(null), 500)))]);
    clearTimeout(t1);
    if (early !== null) {
      const log = await readFile(path.join(env.runDir, 'ffmpeg.log'), 'utf8').catch(() => '');
      return reply.code(500).send({ status: 'error', message: `Failed to start recording. ffmpeg exited: ${log}` });
    }
    recording = { id: t.id, file, exited: t.exited };
    return reply.send({ status: 'success', message: 'Started recording.' });
  });

  app.post(ROUTES.endRecording.path, async (_req, reply) => {
    const rec = recording;
    if (!rec) return reply.code(400).send({ status: 'error', message: 'No recording in progress to stop.' });
    recording = null;
    const d = await desktop();
    d.signal(rec.id, 'SIGINT', false);
    let t2: NodeJS.Timeout | undefined;
    const code = await Promise.race([rec.exited, new Promise<null>((r) => (t2 = setTimeout(() => r(null), 15_000)))]);
    clearTimeout(t2);
    if (code === null) {
      d.signal(rec.id, 'SIGKILL', true);
      return reply.code(500).send({ status: 'error', message: 'Recording process was unresponsive and had to be killed.' });
    }
    const st = await stat(rec.file).catch(() => null);
    if (!st || st.size === 0) {
      return reply.code(404).send({ status: 'error', message: 'Recording failed: the output file is missing or empty.' });
    }
    return reply
      .type('video/mp4')
      .header('content-disposition', 'attachment; filename="recording.mp4"')
      .send(await readFile(rec.file));
  });

  return {
    app,
    onDesktopReset: () => {
      recording = null;
    },
  };
}
