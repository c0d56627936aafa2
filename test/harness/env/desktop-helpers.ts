// Shared helpers of the local desktop env tests (real Xvfb desktops; needs scripts/install-desktop.sh).
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { readdirSync, readFileSync } from 'node:fs';
import type { EnvClient } from '../../../harness/env/env-client.ts';

export const execFileP = promisify(execFile);

export function have(...bins: string[]): boolean {
  return bins.every((b) => {
    try {
      execFileSync('sh', ['-c', `command -v ${b}`], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  });
}

/** why the desktop tests cannot run here, or false */
export function skipReason(...extra: string[]): string | false {
  const need = ['Xvfb', 'xdotool', 'openbox', 'scrot', 'wmctrl', 'dbus-daemon', '/usr/bin/python3', ...extra];
  const missing = need.filter((b) => !have(b));
  return missing.length ? `missing ${missing.join(', ')} (run scripts/install-desktop.sh)` : false;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** waits until `wmctrl -l` in the env lists a window whose title matches */
export async function waitWindow(c: EnvClient, re: RegExp, timeoutMs = 30_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < end) {
    const r = await c.execute(['wmctrl', '-l']);
    if (r.status === 'success') {
      last = r.output;
      const line = r.output.split('\n').find((l) => re.test(l));
      if (line) return line;
    }
    await sleep(300);
  }
  throw new Error(`no window matching ${re} after ${timeoutMs} ms; windows:\n${last}`);
}

/** waits until a file in the env has content matching `re` */
export async function waitFile(c: EnvClient, path: string, re: RegExp, timeoutMs = 15_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < end) {
    const b = await c.getFile(path);
    if (b) {
      last = b.toString('utf8');
      if (re.test(last)) return last;
    }
    await sleep(250);
  }
  throw new Error(`${path} never matched ${re}; last content: ${JSON.stringify(last)}`);
}

/** live (non-zombie) pids whose environ carries OSW_ENV_ID=<id> or whose cmdline names <root> */
export function leftovers(id: string, root: string): number[] {
  const res: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (st.slice(st.lastIndexOf(')') + 2).startsWith('Z')) continue;
      const cmd = readFileSync(`/proc/${d}/cmdline`);
      let env = Buffer.alloc(0);
      try {
        env = readFileSync(`/proc/${d}/environ`);
      } catch {
        /* unreadable */
      }
      if (cmd.includes(root) || env.includes(`OSW_ENV_ID=${id}\0`)) res.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return res;
}

export function pidAlive(pid: number | null | undefined): boolean {
  if (!pid) return false;
  try {
    const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !st.slice(st.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/** decodes a PNG to raw RGB with sharp */
export async function rgb(png: Buffer): Promise<{ data: Buffer; width: number; height: number }> {
  const sharp = (await import('sharp')).default;
  const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

/** bounding box of the pixels that differ between two same-size screenshots, or null */
export async function diffBox(
  a: Buffer,
  b: Buffer,
): Promise<{ x0: number; y0: number; x1: number; y1: number; count: number } | null> {
  const A = await rgb(a);
  const B = await rgb(b);
  if (A.width !== B.width || A.height !== B.height) throw new Error('size mismatch');
  let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1, count = 0;
  for (let y = 0; y < A.height; y++) {
    for (let x = 0; x < A.width; x++) {
      const i = (y * A.width + x) * 3;
      if (A.data[i] !== B.data[i] || A.data[i + 1] !== B.data[i + 1] || A.data[i + 2] !== B.data[i + 2]) {
        count++;
        if (x < x0) x0 = x;
        if (y < y0) y0 = y;
        if (x > x1) x1 = x;
        if (y > y1) y1 = y;
      }
    }
  }
  return count ? { x0, y0, x1, y1, count } : null;
}
