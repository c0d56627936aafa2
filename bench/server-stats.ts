/** Small helpers shared by the server benchmark's parts: timing loops and order statistics. */

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** The q-quantile (0..1) of xs, nearest rank on the sorted values. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))]!;
}

export const median = (xs: readonly number[]): number => quantile(xs, 0.5);

export function spread(xs: readonly number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

/**
 * Runs fn `warmup` times unmeasured, then `runs` times, and returns each run's milliseconds.
 * fn may return a promise; its resolution is part of the run.
 */
export async function timeRuns(runs: number, warmup: number, fn: () => unknown): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

/** Gives the event loop (and pending worker messages) a moment. */
export const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The per-request log line the chat route writes ("chat completion"), as the benches read it. */
export interface RequestLogLine {
  msg?: string;
  completion_id?: string;
  ms?: { image: number; template: number; queue: number; vision: number; prefill: number; decode: number; total: number };
}

/** A Fastify logger option that keeps every request log line in `lines` (and prints nothing). */
export function collectRequestLogs(): { logger: { level: string; stream: { write(line: string): void } }; lines: RequestLogLine[] } {
  const lines: RequestLogLine[] = [];
  const logger = {
    level: 'info',
    stream: {
      write: (line: string): void => {
        const entry = JSON.parse(line) as RequestLogLine;
        if (entry.msg === 'chat completion') lines.push(entry);
      },
    },
  };
  return { logger, lines };
}
