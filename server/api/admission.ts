/**
 * Bounds on the work the HTTP layer accepts, so that overload is answered 429 early instead of
 * piling up memory:
 * - a gate per route: at most max-num-seqs + queue-size requests are inside the server at
 *   once, from the moment their headers arrive (before the body is read) until their response
 *   ends or their client goes away; one more is 429 with Retry-After at once;
 * - a decoding limit: at most a few images are decoded and resized at the same time (each may
 *   take up to --max-image-pixels), the rest wait their turn; fetching remote images does not
 *   wait for it.
 * One set of bounds per server process: every port shares it, as every port shares the engine.
 */

import type { AppDeps } from './app.ts';

/** Counts requests inside; refuses one more than `capacity()` (null: no bound yet). */
export class Gate {
  private active = 0;
  private recentSeconds: number[] = [];

  constructor(private readonly capacity: () => number | null) {}

  get inside(): number {
    return this.active;
  }

  tryEnter(): boolean {
    const cap = this.capacity();
    if (cap !== null && this.active >= cap) return false;
    this.active++;
    return true;
  }

  /** A request left; `seconds` is its duration when it was served (feeds Retry-After). */
  leave(seconds?: number): void {
    this.active = Math.max(0, this.active - 1);
    if (seconds !== undefined) this.recentSeconds = [...this.recentSeconds.slice(-19), seconds];
  }

  /** Seconds a refused client should wait: about one recent request's duration, 1 to 60. */
  retryAfter(): number {
    if (this.recentSeconds.length === 0) return 1;
    const mean = this.recentSeconds.reduce((a, b) => a + b, 0) / this.recentSeconds.length;
    return Math.min(60, Math.max(1, Math.ceil(mean)));
  }
}

/** At most `limit` tasks run at once; the others wait in arrival order. */
export class Semaphore {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/** Images decoded at the same time. */
export const DECODE_CONCURRENCY = 2;

export interface Limits {
  chat: Gate;
  tokenize: Gate;
  decodeImages: Semaphore;
}

const byServer = new WeakMap<object, Limits>();

/** The limits of one server (keyed by its shared dependencies object), made on first use. */
export function limitsFor(key: object, capacity: () => number | null): Limits {
  let limits = byServer.get(key);
  if (!limits) {
    limits = { chat: new Gate(capacity), tokenize: new Gate(capacity), decodeImages: new Semaphore(DECODE_CONCURRENCY) };
    byServer.set(key, limits);
  }
  return limits;
}

/** The limits of the server `deps` belongs to: capacity max-num-seqs (as loaded) + queue-size. */
export function serverLimits(deps: AppDeps): Limits {
  return limitsFor(deps, () => (deps.engine.info ? deps.engine.info.slots + deps.config.queueSize : null));
}
