/**
 * Run output: every log line goes to the run's log file (logs/run-<timestamp>.log in the trial
 * dir) and to the console; on a TTY a live bar (tasks done / total, successes, errors, ETA)
 * stays on the last line, elsewhere a plain progress line follows each finished task.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { TaskStatus } from '../results/status.ts';

/** `run-<timestamp>.log`; `tag` (e.g. `<host>-<pid>` of a process sharing the trial) goes before `.log`. */
export function runLogName(d = new Date(), tag?: string): string {
  return `run-${d.toISOString().replace(/[:.]/g, '-')}${tag ? `-${tag.replace(/[^A-Za-z0-9_.-]/g, '_')}` : ''}.log`;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

export interface ProgressOptions {
  logFile: string;
  /** Live bar on this stream when it is a TTY; plain lines otherwise. */
  stream?: NodeJS.WriteStream;
  now?: () => number;
}

export class RunProgress {
  total = 0;
  done = 0;
  success = 0;
  errors = 0;
  private started: number;
  private readonly fd: number;
  private readonly tty: boolean;
  private readonly stream: NodeJS.WriteStream;
  private readonly now: () => number;
  private barShown = false;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(o: ProgressOptions) {
    fs.mkdirSync(path.dirname(o.logFile), { recursive: true });
    this.fd = fs.openSync(o.logFile, 'a');
    this.stream = o.stream ?? process.stdout;
    this.tty = Boolean(this.stream.isTTY) && process.env.TERM !== 'dumb';
    this.now = o.now ?? (() => Date.now());
    this.started = this.now();
  }

  /** A timestamped line to the log file and the console (above the bar). */
  log = (line: string): void => {
    const text = `${new Date().toISOString()} ${line}`;
    this.toFile(`${text}\n`);
    this.clearBar();
    this.stream.write(`${text}\n`);
    this.drawBar();
  };

  /** Text that goes to the console and the log file without a timestamp (the summary). */
  print(text: string): void {
    this.toFile(`${text}\n`);
    this.clearBar();
    this.stream.write(`${text}\n`);
    this.drawBar();
  }

  /** A line that comes after close() (a late task ending) still reaches the console, never a closed fd. */
  private toFile(text: string): void {
    if (!this.closed) fs.writeSync(this.fd, text);
  }

  start(total: number): void {
    this.total = total;
    this.started = this.now();
    if (this.tty && total > 0) {
      this.timer = setInterval(() => this.drawBar(), 1000);
      this.timer.unref();
    }
    this.drawBar();
  }

  taskEnded(outcome: TaskStatus): void {
    this.done++;
    if (outcome === 'success') this.success++;
    if (outcome === 'infra_error' || outcome === 'timeout' || outcome === 'model_error' || outcome === 'parse_error') this.errors++;
    if (this.tty) this.drawBar();
    else this.log(`progress ${this.line()}`);
  }

  eta(): number {
    if (this.done === 0) return Number.NaN;
    const elapsed = (this.now() - this.started) / 1000;
    return (elapsed / this.done) * (this.total - this.done);
  }

  line(): string {
    const eta = this.done >= this.total ? 'done' : `ETA ${formatDuration(this.eta())}`;
    return `${this.done}/${this.total} tasks, ${this.success} success, ${this.errors} error(s), ${eta}`;
  }

  private clearBar(): void {
    if (!this.tty || !this.barShown) return;
    this.stream.write('\r\x1b[2K');
    this.barShown = false;
  }

  private drawBar(): void {
    if (!this.tty || this.total === 0) return;
    const width = 24;
    const filled = Math.round((width * this.done) / this.total);
    const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${this.line()}`;
    this.stream.write(`\r\x1b[2K${bar.slice(0, Math.max(20, (this.stream.columns || 120) - 1))}`);
    this.barShown = true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.barShown) this.stream.write('\n');
    this.barShown = false;
    try {
      fs.closeSync(this.fd);
    } catch {
      /* closed */
    }
  }
}
