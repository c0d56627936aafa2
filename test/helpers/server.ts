/**
 * The real server for tests: startServer on free ports with the embedded tiny checkpoint,
 * the real engine worker, real PNG screenshots as data URLs, and small readers for the
 * OpenAI error shape and the Prometheus text.
 */
import net from 'node:net';
import sharp from 'sharp';
import { request } from 'undici';
import type { Test } from 'tap';
import { defaultServerConfig, type ServerConfig } from '../../server/config.ts';
import { startServer, type RunningServer } from '../../server/server.ts';

export const MODEL = 'ui-tars';

/** Starts the server on a free port (unless told otherwise), waits for the model, closes in teardown. */
export async function startTestServer(t: Test, overrides: Partial<ServerConfig> = {}): Promise<RunningServer & { url: string }> {
  const config: ServerConfig = { ...defaultServerConfig(), ports: [0], drainSeconds: 5, ...overrides };
  const server = await startServer(config);
  t.teardown(() => server.close());
  await server.engine.ready;
  return { ...server, url: server.urls[0]! };
}

/** `count` consecutive ports that are free right now (a race with other processes is unlikely). */
export async function freePorts(count: number): Promise<number[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20000 + Math.floor(Math.random() * 40000);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    const free = await Promise.all(ports.map(isFree));
    if (free.every(Boolean)) return ports;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A seeded width x height "screenshot" PNG: flat coloured blocks (windows, buttons) with a
 * seeded fine texture, so every seed gives a distinct image that compresses like a real one
 * (hundreds of KB to a few MB at 1920x1080, depending on `texture`).
 */
export async function screenshotPng(seed: number, width = 1920, height = 1080, texture = 0): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 3);
  let s = (seed * 2654435761) >>> 0 || 1;
  const next = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  const block = 40;
  for (let by = 0; by < height; by += block) {
    for (let bx = 0; bx < width; bx += block) {
      const c = next();
      for (let y = by; y < Math.min(height, by + block); y++) {
        for (let x = bx; x < Math.min(width, bx + block); x++) {
          const i = 3 * (y * width + x);
          const noise = texture ? (next() >>> 24) & (texture - 1) : 0;
          data[i] = (c & 255) ^ noise;
          data[i + 1] = (c >>> 8) & 255;
          data[i + 2] = ((c >>> 16) + x + y) & 255;
        }
      }
    }
  }
  return sharp(data, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

export function dataUrl(bytes: Buffer, mime = 'image/png'): string {
  return `data:${mime};base64,${bytes.toString('base64')}`;
}

export function imagePart(url: string): { type: 'image_url'; image_url: { url: string } } {
  return { type: 'image_url', image_url: { url } };
}

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
}

/** One HTTP call with undici, as curl would make it; the body is JSON unless a string is given. */
export async function http(url: string, method: 'GET' | 'POST' | 'PUT' | 'DELETE', body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult> {
  const res = await request(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) }),
  });
  const text = await res.body.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON (metrics, SSE): the caller reads `text`
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

/** Parses an SSE body into its `data:` payloads (the final `[DONE]` kept as the string). */
export function sseData(text: string): unknown[] {
  return text
    .split('\n\n')
    .map((event) => event.trim())
    .filter((event) => event.startsWith('data: '))
    .map((event) => {
      const payload = event.slice('data: '.length);
      return payload === '[DONE]' ? payload : (JSON.parse(payload) as unknown);
    });
}

/** The value of a Prometheus series (no labels, or the exact label set given). */
export function metricValue(metricsText: string, name: string, labels = ''): number {
  const line = metricsText.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  if (!line) throw new Error(`metric ${name}${labels} not found`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

export async function metric(url: string, name: string, labels = ''): Promise<number> {
  return metricValue((await http(`${url}/metrics`, 'GET')).text, name, labels);
}

/** Polls until `check` holds or `timeoutMs` passes; returns whether it held. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

/** Asserts OpenAI's error shape, with nothing internal (stack frames, file paths) in the message. */
export function assertOpenAIError(t: Test, res: HttpResult, status: number, what: string): { message: string; type: string; param: string | null; code: string | null } {
  t.equal(res.status, status, `${what}: HTTP ${status}`);
  const body = res.json as { error?: Record<string, unknown> } | null;
  t.ok(body && typeof body === 'object' && body.error, `${what}: body is {"error": ...}`);
  const err = (body?.error ?? {}) as { message: string; type: string; param: string | null; code: string | null };
  t.same(Object.keys(err).sort(), ['code', 'message', 'param', 'type'], `${what}: error has message, type, param, code`);
  t.type(err.message, 'string');
  t.type(err.type, 'string');
  t.ok(err.param === null || typeof err.param === 'string', `${what}: param is a string or null`);
  t.ok(err.code === null || typeof err.code === 'string', `${what}: code is a string or null`);
  t.notMatch(err.message, /\n\s+at |\.ts\b|\.js\b|node_modules|\/work\/|\/tmp\/|[A-Za-z]:\\/, `${what}: no stack trace or file path in "${err.message}"`);
  return err;
}

/** `promise`, or `fallback` once `ms` pass (the timer is cleared, so it never holds the process open). */
export async function withTimeout<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<F>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** A server running as its own process (`node --import tsx server/main.ts`), as start_server.sh runs it. */
export interface ChildServer {
  url: string;
  port: number;
  pid: number;
  /** Resolves with the exit code once the process ends. */
  exited: Promise<number | null>;
  /** Everything it wrote to stdout and stderr so far (its JSON log lines). */
  output(): string;
}

/**
 * Starts server/main.ts in a child process on a free port with the embedded tiny checkpoint and
 * `args` as extra flags, waits until /health is 200 (or the process ends), and kills its process
 * group in teardown. Memory figures read from it (its /metrics) are the server's alone.
 */
export async function spawnServer(t: Test, args: string[] = [], env: Record<string, string> = {}): Promise<ChildServer> {
  const { spawn } = await import('node:child_process');
  const { REPO_ROOT } = await import('../../server/model/checkpoint/tiny.ts');
  const [port] = (await freePorts(1)) as [number];
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/main.ts', '--port', String(port), ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, MODEL_PATH: '', ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  let ended = false;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code, signal) => {
    ended = true;
    if (signal) output += `\n[killed by ${signal}]\n`;
    resolve(code);
  }));
  t.teardown(() => {
    if (ended) return;
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  });
  const url = `http://127.0.0.1:${port}`;
  const up = await waitFor(async () => ended || (await http(`${url}/health`, 'GET').catch(() => ({ status: 0 }))).status === 200, 180_000);
  if (!up || ended) throw new Error(`the server did not come up; output:\n${output.slice(-4000)}`);
  return { url, port, pid: child.pid!, exited, output: () => output };
}
