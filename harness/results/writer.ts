/**
 * Writes one task's results. Every whole file is written to a temporary name and renamed,
 * so a killed run never leaves half a file; result.txt is written last, so its presence
 * means the task is complete.
 */
import fs from 'node:fs';
import path from 'node:path';

export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const fd = fs.openSync(tmp, 'w');
  try {
    try {
      fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (err) {
    // e.g. `file` is a folder: no temporary file is left behind.
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

function fsyncPath(p: string): void {
  let fd: number;
  try {
    fd = fs.openSync(p, 'r');
  } catch {
    return; // absent
  }
  try {
    fs.fsyncSync(fd);
  } catch {
    /* a file system without fsync on directories */
  } finally {
    fs.closeSync(fd);
  }
}

export class TaskResultWriter {
  private readonly traj: string;

  constructor(readonly dir: string) {
    this.traj = path.join(dir, 'traj.jsonl');
  }

  /** Starts the task afresh: an unfinished earlier attempt's files are removed. */
  begin(): void {
    fs.mkdirSync(this.dir, { recursive: true });
    for (const name of fs.readdirSync(this.dir)) fs.rmSync(path.join(this.dir, name), { recursive: true, force: true });
    fs.writeFileSync(path.join(this.dir, 'runtime.log'), '');
  }

  screenshot(name: string, png: Uint8Array): void {
    writeFileAtomic(path.join(this.dir, name), png);
  }

  /** One traj.jsonl line, appended in a single write (whole lines survive a kill). */
  trajectory(entry: Record<string, unknown>): void {
    fs.appendFileSync(this.traj, `${JSON.stringify(entry)}\n`);
  }

  log(line: string): void {
    fs.appendFileSync(path.join(this.dir, 'runtime.log'), `${new Date().toISOString()} ${line}\n`);
  }

  file(name: string, data: Uint8Array): void {
    writeFileAtomic(path.join(this.dir, name), data);
  }

  /**
   * The score, last: from here on the task counts as finished. traj.jsonl (appended, not renamed)
   * is flushed to disk first and the folder after, so that after a crash of the machine too a
   * result.txt never stands next to a shorter trajectory.
   */
  result(score: number): void {
    fsyncPath(this.traj);
    writeFileAtomic(path.join(this.dir, 'result.txt'), `${score}\n`);
    fsyncPath(this.dir);
  }
}
