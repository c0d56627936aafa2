/**
 * A small Redis client for BullMQ: RESP2 over one TCP (or TLS, rediss://) socket.
 *
 * BullMQ 6 talks to Redis through a driver it does not ship (ioredis, node-redis or Bun's
 * built-in client, all optional peers), and this project depends on none of them. This class
 * has the shape of Bun's `RedisClient` (`send`, `connected`, `connect`, `close`, `duplicate`,
 * `onconnect` / `onclose`), which BullMQ's own adapter (`createBunRedisClient`) turns into the
 * full client it needs: Lua scripts (EVALSHA with EVAL fallback), pipelines, MULTI/EXEC bursts
 * and reconnection are the adapter's. Here: the socket, AUTH / SELECT, command frames written in
 * call order, replies matched to calls in order, and every pending call failed when the
 * connection closes ("Connection closed...", which the adapter recognises).
 */
import net from 'node:net';
import tls from 'node:tls';
import type { BunRedisRawClient, RedisCommandArgument } from 'bullmq';

export interface RedisTarget {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
  tls: boolean;
}

/** `redis://[user:password@]host[:port][/db]` or `rediss://...` (TLS). */
export function parseRedisUrl(url: string): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`not a Redis URL: "${url}" (expected redis://[user:password@]host[:port][/db])`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`not a Redis URL: "${url}" (expected redis:// or rediss://)`);
  const path = u.pathname.replace(/^\//, '');
  const db = path === '' ? 0 : Number(path);
  if (!Number.isInteger(db) || db < 0) throw new Error(`Redis URL "${redactRedisUrl(url)}": the database must be a number (got "${path}")`);
  return {
    host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db ? { db } : {}),
    tls: u.protocol === 'rediss:',
  };
}

/** The URL without its password (for logs and config.json). */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}

export type RespValue = string | number | null | Error | RespValue[];

/** An error reply of the server (the message is Redis's: "NOSCRIPT ...", "WRONGTYPE ..."). */
export class RedisReplyError extends Error {
  override name = 'RedisReplyError';
}

interface Waiter {
  resolve: (v: RespValue) => void;
  reject: (e: Error) => void;
}

const CRLF = Buffer.from('\r\n');

/** One command as a RESP array of bulk strings. */
export function encodeCommand(command: string, args: readonly RedisCommandArgument[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length + 1}\r\n$${Buffer.byteLength(command)}\r\n${command}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
    parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF);
  }
  return Buffer.concat(parts);
}

/**
 * One reply from `buf` at `pos`: [value, next position], or null when the buffer does not
 * hold the whole reply yet. Error replies become RedisReplyError values (also inside arrays:
 * EXEC's results).
 */
export function parseReply(buf: Buffer, pos: number): [RespValue, number] | null {
  if (pos >= buf.length) return null;
  const eol = buf.indexOf(CRLF, pos);
  if (eol < 0) return null;
  const type = buf[pos];
  const line = buf.toString('utf8', pos + 1, eol);
  const next = eol + 2;
  switch (type) {
    case 0x2b: // +
      return [line, next];
    case 0x2d: // -
      return [new RedisReplyError(line), next];
    case 0x3a: // :
      return [Number(line), next];
    case 0x24: {
      // $
      const n = Number(line);
      if (n < 0) return [null, next];
      if (buf.length < next + n + 2) return null;
      return [buf.toString('utf8', next, next + n), next + n + 2];
    }
    case 0x2a: {
      // *
      const n = Number(line);
      if (n < 0) return [null, next];
      const out: RespValue[] = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, p);
        if (!r) return null;
        out.push(r[0]);
        p = r[1];
      }
      return [out, p];
    }
    default:
      throw new Error(`Redis protocol error: unexpected reply type ${JSON.stringify(String.fromCharCode(type ?? 0))}`);
  }
}

export interface RespClientOptions {
  connectTimeoutMs?: number;
}

export class RespClient implements BunRedisRawClient {
  connected = false;
  onconnect: ((...args: unknown[]) => void) | null = null;
  onclose: ((error?: Error) => void) | null = null;
  onerror: ((error: Error) => void) | null = null;

  private socket: net.Socket | null = null;
  private connecting: Promise<void> | null = null;
  /** Calls written to the socket, waiting for their replies (in order). */
  private readonly inFlight: Waiter[] = [];
  /** Calls made while connecting: written, in order, once AUTH / SELECT are through. */
  private queued: { frame: Buffer; waiter: Waiter }[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private closing = false;

  constructor(
    readonly target: RedisTarget,
    private readonly opts: RespClientOptions = {},
  ) {}

  connect(): Promise<void> {
    if (this.connected) return Promise.resolve();
    if (this.connecting) return this.connecting;
    this.closing = false;
    const { host, port } = this.target;
    const connecting = new Promise<void>((resolve, reject) => {
      const socket = this.target.tls ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host }) : net.connect({ host, port });
      this.socket = socket;
      socket.setNoDelay(true);
      socket.setKeepAlive(true, 30_000);
      let opened = false;
      let lastError: Error | undefined;
      const timer = setTimeout(() => socket.destroy(new Error(`connect to ${host}:${port} timed out`)), this.opts.connectTimeoutMs ?? 10_000);
      socket.once(this.target.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        this.handshake(socket).then(
          () => {
            if (this.socket !== socket || socket.destroyed) return;
            opened = true;
            this.connected = true;
            this.connecting = null;
            const queued = this.queued;
            this.queued = [];
            for (const q of queued) {
              this.inFlight.push(q.waiter);
              socket.write(q.frame);
            }
            this.onconnect?.();
            resolve();
          },
          (err: unknown) => socket.destroy(err instanceof Error ? err : new Error(String(err))),
        );
      });
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.on('error', (err: Error) => {
        lastError = err;
      });
      socket.on('close', () => {
        clearTimeout(timer);
        if (this.socket === socket) this.socket = null;
        this.connected = false;
        this.connecting = null;
        this.buf = Buffer.alloc(0);
        const err = new Error(`Connection closed${lastError ? ` (${lastError.message})` : ''}`);
        const waiting = [...this.inFlight.splice(0), ...this.queued.splice(0).map((q) => q.waiter)];
        for (const w of waiting) w.reject(err);
        if (!opened) {
          reject(new Error(`cannot connect to Redis at ${host}:${port}: ${lastError?.message ?? 'connection closed'}`));
          return;
        }
        this.onclose?.(this.closing ? undefined : err);
      });
    });
    this.connecting = connecting;
    return connecting;
  }

  /** AUTH and SELECT, written before anything else on a fresh socket. */
  private async handshake(socket: net.Socket): Promise<void> {
    const { username, password, db } = this.target;
    const direct = (command: string, args: string[]): Promise<RespValue> =>
      new Promise((resolve, reject) => {
        this.inFlight.push({ resolve, reject });
        socket.write(encodeCommand(command, args));
      });
    const check = (v: RespValue): void => {
      if (v instanceof Error) throw v;
    };
    if (password !== undefined) check(await direct('AUTH', username ? [username, password] : [password]));
    if (db) check(await direct('SELECT', [String(db)]));
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let pos = 0;
    for (;;) {
      let r: [RespValue, number] | null;
      try {
        r = parseReply(this.buf, pos);
      } catch (err) {
        this.socket?.destroy(err as Error);
        return;
      }
      if (!r) break;
      pos = r[1];
      const waiter = this.inFlight.shift();
      if (!waiter) continue; // a reply nobody asked for (cannot happen without pub/sub)
      const [value] = r;
      if (value instanceof RedisReplyError) waiter.reject(value);
      else waiter.resolve(value);
    }
    this.buf = pos >= this.buf.length ? Buffer.alloc(0) : this.buf.subarray(pos);
  }

  /**
   * One command; its frame is written synchronously (or queued, in order, while connecting),
   * so calls made back to back reach Redis in that order (BullMQ's MULTI/EXEC relies on it).
   */
  send<T = unknown>(command: string, args: RedisCommandArgument[]): Promise<T> {
    const p = new Promise<RespValue>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject };
      const frame = encodeCommand(command, args);
      if (this.connected && this.socket) {
        this.inFlight.push(waiter);
        this.socket.write(frame);
      } else if (this.connecting) {
        this.queued.push({ frame, waiter });
      } else {
        reject(new Error('Connection is closed.'));
      }
    });
    return p as Promise<unknown> as Promise<T>;
  }

  async get(key: string): Promise<string | null> {
    const v = await this.send<RespValue>('GET', [key]);
    return typeof v === 'string' ? v : null;
  }

  async smembers(key: string): Promise<unknown[]> {
    const v = await this.send<RespValue>('SMEMBERS', [key]);
    return Array.isArray(v) ? v : [];
  }

  async incr(key: string): Promise<number> {
    return Number(await this.send<RespValue>('INCR', [key]));
  }

  close(): void {
    this.closing = true;
    this.connected = false; // calls from now on are refused; those in flight fail on 'close'
    this.socket?.destroy();
  }

  /** A new client for the same server (not connected yet). */
  async duplicate(): Promise<this> {
    return new RespClient(this.target, this.opts) as unknown as this;
  }
}
