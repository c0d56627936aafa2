// Shared helpers of the run-multienv reliability tests (kill/resume, env death, model outage):
// real processes found through /proc, result folders checked file by file.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { REPO_ROOT } from '../../../server/model/checkpoint/tiny.ts';

export const LOCAL = path.join(REPO_ROOT, 'evaluation_examples/local');
export const ORACLES = path.join(LOCAL, 'oracles');
export const RUN_BIN = path.join(REPO_ROOT, 'bin/run-multienv.mjs');
export const ENV_SERVER_BIN = path.join(REPO_ROOT, 'bin/env-server.mjs');

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `pred` every 25 ms until it is true (then true) or `timeoutMs` passed (then false). */
export async function waitFor(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (pred()) return true;
    await sleep(25);
  }
  return pred();
}

/** Every file under `dir` (recursive), [] when it does not exist. */
export function walk(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** Writes a task list {domain: ids} into dir and returns its path. */
export function taskList(dir: string, tasks: Record<string, string[]>): string {
  const file = path.join(dir, 'list.json');
  fs.writeFileSync(file, JSON.stringify(tasks));
  return file;
}

/** The run-multienv flags every reliability test uses (replay agent unless told otherwise). */
export function runArgs(resultDir: string, list: string, extra: string[] = []): string[] {
  return [
    '--test_config_base_dir', LOCAL, '--test_all_meta_path', list, '--result_dir', resultDir,
    '--sleep_after_execution', '0.5', '--settle-seconds', '0.5', '--no-record', ...extra,
  ];
}

export const trialOf = (resultDir: string, model = 'ui-tars'): string => path.join(resultDir, 'pyautogui/screenshot', model, '0');

/** Parsed traj.jsonl lines (throws on a line that is not JSON). */
export function trajLines(taskDir: string): Record<string, unknown>[] {
  const file = path.join(taskDir, 'traj.jsonl');
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The highest step_num in a task's traj.jsonl so far (-1: none); tolerant of a line being written. */
export function lastStep(taskDir: string): number {
  try {
    let n = -1;
    for (const l of fs.readFileSync(path.join(taskDir, 'traj.jsonl'), 'utf8').split('\n')) {
      const m = /"step_num":(\d+)/.exec(l);
      if (m) n = Math.max(n, Number(m[1]));
    }
    return n;
  } catch {
    return -1;
  }
}

export function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

/**
 * Problems with the files of a trial: temporary files, traj.jsonl lines that are not JSON,
 * PNGs that do not decode, a result.txt that is not a number. [] when all is well.
 */
export async function badFiles(trial: string): Promise<string[]> {
  const bad: string[] = [];
  for (const f of walk(trial)) {
    const base = path.basename(f);
    if (/\.tmp-/.test(base)) bad.push(`${f}: temporary file`);
    else if (base === 'traj.jsonl') {
      fs.readFileSync(f, 'utf8').split('\n').forEach((l, i, all) => {
        if (l === '' && i === all.length - 1) return;
        try {
          JSON.parse(l);
        } catch {
          bad.push(`${f}:${i + 1}: not JSON: ${l.slice(0, 80)}`);
        }
      });
    } else if (base.endsWith('.png')) {
      try {
        const img = await sharp(f).raw().toBuffer({ resolveWithObject: true });
        if (img.info.width < 1 || img.data.length === 0) bad.push(`${f}: empty PNG`);
      } catch (err) {
        bad.push(`${f}: PNG does not decode: ${(err as Error).message}`);
      }
    } else if (base === 'result.txt' && !/^-?\d+(\.\d+)?(e-?\d+)?\n$/.test(fs.readFileSync(f, 'utf8'))) {
      bad.push(`${f}: result.txt is not a number`);
    } else if (base.endsWith('.json')) {
      try {
        JSON.parse(fs.readFileSync(f, 'utf8'));
      } catch {
        bad.push(`${f}: not JSON`);
      }
    }
  }
  return bad;
}

interface ProcInfo {
  pid: number;
  cmdline: string;
}

/** Live (non-zombie) processes whose environment has OSW_ENV_ID starting with `envIdPrefix`. */
export function envProcesses(envIdPrefix: string): ProcInfo[] {
  const marker = Buffer.from(`OSW_ENV_ID=${envIdPrefix}`);
  const out: ProcInfo[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const st = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (st.slice(st.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (!fs.readFileSync(`/proc/${d}/environ`).includes(marker)) continue;
      out.push({ pid: Number(d), cmdline: fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ').trim() });
    } catch {
      /* gone */
    }
  }
  return out;
}

export function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    /* gone */
  }
}

/** A real harness process; its stdout and stderr together. */
export function runProcess(args: string[]): { child: ChildProcess; out: () => string; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn(process.execPath, [RUN_BIN, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return { child, out: () => out, exit };
}
