/**
 * Several model servers behind one harness process: each request goes to the least busy server
 * (fewest requests of this process in flight; on a tie the server this env used last, whose
 * prefix cache holds its conversation, then the one least recently picked), and a server that
 * fails (refused, reset, timed out, 429, 5xx) is marked down for `downMs`: requests skip it and
 * go to the others until then, after which it gets requests again (one success marks it up).
 * When every server is down, a request still goes to the one that comes back first: the client's
 * backoff (model-client.ts) paces those tries.
 */

export interface ModelServer {
  /** Base URL ending in /v1. */
  readonly url: string;
  /** Requests of this process now in flight. */
  inFlight: number;
  /** Requests sent, successes, failures (this process). */
  requests: number;
  ok: number;
  failures: number;
  /** Skipped until then (ms since the epoch); 0: up. */
  downUntil: number;
  lastError?: string;
  /** Order of the last pick (ties go to the least recently picked). */
  lastPick: number;
}

export interface ModelPoolOptions {
  urls: string[];
  /** How long a server that failed is skipped (ms). */
  downMs: number;
  now?: () => number;
  /** A server was marked down (it was up). */
  onDown?: (server: ModelServer, reason: string, forMs: number) => void;
  /** A server that was marked down answered again. */
  onUp?: (server: ModelServer) => void;
}

export class ModelPool {
  readonly servers: ModelServer[];
  private picks = 0;
  private readonly now: () => number;

  constructor(readonly options: ModelPoolOptions) {
    const urls = [...new Set(options.urls.map((u) => u.replace(/\/$/, '')))];
    if (urls.length === 0) throw new Error('a model pool needs at least one server URL');
    this.servers = urls.map((url) => ({ url, inFlight: 0, requests: 0, ok: 0, failures: 0, downUntil: 0, lastPick: 0 }));
    this.now = options.now ?? Date.now;
  }

  get urls(): string[] {
    return this.servers.map((s) => s.url);
  }

  isUp(s: ModelServer): boolean {
    return s.downUntil <= this.now();
  }

  /**
   * The server for the next request: the least busy of the servers that are up and not in
   * `exclude` (tie: `prefer`, then the least recently picked). When none of those is up and
   * `exclude` is empty, the one whose down time ends first; else null.
   */
  pick(prefer?: string, exclude: ReadonlySet<ModelServer> = new Set()): ModelServer | null {
    const candidates = this.servers.filter((s) => !exclude.has(s) && this.isUp(s));
    let best: ModelServer | undefined;
    for (const s of candidates) {
      if (!best || s.inFlight < best.inFlight) best = s;
      else if (s.inFlight === best.inFlight) {
        const sPref = s.url === prefer;
        const bPref = best.url === prefer;
        if ((sPref && !bPref) || (sPref === bPref && s.lastPick < best.lastPick)) best = s;
      }
    }
    if (!best && exclude.size === 0) best = [...this.servers].sort((a, b) => a.downUntil - b.downUntil || a.inFlight - b.inFlight)[0];
    if (!best) return null;
    best.lastPick = ++this.picks;
    return best;
  }

  /** Whether a server other than those in `exclude` is up now. */
  hasOtherUp(exclude: ReadonlySet<ModelServer>): boolean {
    return this.servers.some((s) => !exclude.has(s) && this.isUp(s));
  }

  /** A request starts on `s`. */
  begin(s: ModelServer): void {
    s.inFlight++;
    s.requests++;
  }

  /** The request on `s` got an answer from the server (any status that is not the server's fault). */
  succeeded(s: ModelServer): void {
    s.inFlight = Math.max(0, s.inFlight - 1);
    s.ok++;
    if (s.downUntil !== 0) {
      s.downUntil = 0;
      this.options.onUp?.(s);
    }
  }

  /** The request on `s` failed because of the server: skip it for `downMs` (or `forMs`, e.g. Retry-After, when longer). */
  failed(s: ModelServer, reason: string, forMs = 0): void {
    s.inFlight = Math.max(0, s.inFlight - 1);
    s.failures++;
    s.lastError = reason;
    const ms = Math.max(this.options.downMs, forMs);
    const wasUp = this.isUp(s);
    s.downUntil = Math.max(s.downUntil, this.now() + ms);
    if (wasUp && ms > 0) this.options.onDown?.(s, reason, ms);
  }

  /** Marks a server down without a request (e.g. it did not answer the startup check). */
  markDown(url: string, reason: string): void {
    const s = this.servers.find((x) => x.url === url.replace(/\/$/, ''));
    if (!s) return;
    s.failures++;
    s.lastError = reason;
    s.downUntil = this.now() + this.options.downMs;
  }

  /** Per server: url, requests, ok, failures, up (for logs). */
  stats(): { url: string; requests: number; ok: number; failures: number; up: boolean }[] {
    return this.servers.map((s) => ({ url: s.url, requests: s.requests, ok: s.ok, failures: s.failures, up: this.isUp(s) }));
  }
}
