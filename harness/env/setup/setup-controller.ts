/**
 * OSWorld's setup steps (task `config` and evaluator `postconfig`) against any env speaking
 * the in-VM protocol. Each step type is one function in STEPS, the table the coverage report
 * reads. Google Drive and account logins cannot work here and are reported as unsupported.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { EnvHandle } from '../provider.ts';
import { openChromeTabs, closeChromeTabs, updateBrowseHistory } from './chrome.ts';
import { InfrastructureError, UnsupportedError } from './errors.ts';
import type { FileCache } from './file-cache.ts';

export interface SetupContext {
  env: EnvHandle;
  cache: FileCache;
  /** Folder of local files named by upload_file steps (relative paths). */
  localBase: string;
}

type Params = Record<string, unknown>;
type StepFn = (ctx: SetupContext, p: Params) => Promise<void>;

const str = (p: Params, key: string): string => {
  const v = p[key];
  if (typeof v !== 'string' || v === '') throw new InfrastructureError(`setup step needs a string "${key}"`);
  return v;
};
const command = (p: Params): string | string[] => {
  const c = p.command;
  if (typeof c === 'string' || (Array.isArray(c) && c.every((x) => typeof x === 'string'))) return c as string | string[];
  throw new InfrastructureError('setup step needs a "command" string or list');
};
const shell = (p: Params): boolean => p.shell === true || p.shell === 'true';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function execute(ctx: SetupContext, p: Params): Promise<void> {
  const until = (p.until ?? null) as { returncode?: number; stdout?: string; stderr?: string } | null;
  // OSWorld retries a command with `until` until its output matches (up to 10 times, 5 s apart).
  for (let attempt = 0; attempt < (until ? 10 : 1); attempt++) {
    const r = await ctx.env.client.setupExecute(command(p), shell(p));
    if (r.status === 'error') throw new InfrastructureError(`setup command failed: ${r.message}`);
    if (!until) return;
    const ok =
      (until.returncode === undefined || r.returncode === until.returncode) &&
      (until.stdout === undefined || r.output.includes(until.stdout)) &&
      (until.stderr === undefined || r.error.includes(until.stderr));
    if (ok) return;
    await sleep(5000);
  }
  throw new InfrastructureError(`setup command did not reach its "until" condition: ${JSON.stringify(p.command)}`);
}

export const STEPS: Record<string, StepFn> = {
  async download(ctx, p) {
    const files = p.files as { url?: unknown; path?: unknown }[] | undefined;
    if (!Array.isArray(files)) throw new InfrastructureError('download needs "files"');
    for (const f of files) {
      if (typeof f.url !== 'string' || typeof f.path !== 'string') throw new InfrastructureError('download entry needs url and path');
      await ctx.env.client.upload(f.path, ctx.cache.read(f.url), path.basename(f.path));
    }
  },
  async upload_file(ctx, p) {
    const files = (p.files as { local_path?: unknown; path?: unknown }[] | undefined) ?? [p as { local_path?: unknown; path?: unknown }];
    for (const f of files) {
      if (typeof f.local_path !== 'string' || typeof f.path !== 'string') throw new InfrastructureError('upload_file needs local_path and path');
      const local = path.resolve(ctx.localBase, f.local_path);
      await ctx.env.client.upload(f.path, ctx.cache.read(pathToFileURL(local).href), path.basename(f.path));
    }
  },
  async open(ctx, p) {
    await ctx.env.client.openFile(str(p, 'path'));
  },
  async launch(ctx, p) {
    const cmd = command(p);
    // OSWorld's VM forwards port 9222 to Chrome's debugging port with socat; our envs expose
    // Chromium's debugging port directly (EnvHandle.ports.chromium), so that plumbing is skipped.
    const program = Array.isArray(cmd) ? cmd[0] : cmd.trim().split(/\s+/)[0];
    if (program === 'socat') return;
    await ctx.env.client.launch(cmd, shell(p));
  },
  execute,
  command: execute,
  async sleep(_ctx, p) {
    const s = Number(p.seconds);
    if (!Number.isFinite(s) || s < 0) throw new InfrastructureError('sleep needs "seconds"');
    await sleep(s * 1000);
  },
  async activate_window(ctx, p) {
    await ctx.env.client.activateWindow(str(p, 'window_name'), { strict: p.strict === true, by_class: p.by_class === true });
  },
  async close_window(ctx, p) {
    await ctx.env.client.closeWindow(str(p, 'window_name'), { strict: p.strict === true, by_class: p.by_class === true });
  },
  async change_wallpaper(ctx, p) {
    await ctx.env.client.changeWallpaper(str(p, 'path'));
  },
  async chrome_open_tabs(ctx, p) {
    await openChromeTabs(ctx.env, (p.urls_to_open as string[] | undefined) ?? []);
  },
  async chrome_close_tabs(ctx, p) {
    await closeChromeTabs(ctx.env, (p.urls_to_close as string[] | undefined) ?? []);
  },
  async update_browse_history(ctx, p) {
    await updateBrowseHistory(ctx.env, (p.history as { url: string; title: string; visit_time_from_now_in_seconds: number }[] | undefined) ?? []);
  },
  async googledrive() {
    throw new UnsupportedError('googledrive setup needs a Google account and the network');
  },
  async login() {
    throw new UnsupportedError('login setup needs an online account');
  },
};

export function isSupportedStep(type: string): boolean {
  return type in STEPS && type !== 'googledrive' && type !== 'login';
}

export async function runSetup(ctx: SetupContext, steps: readonly { type: string; parameters?: Params }[]): Promise<void> {
  for (const step of steps) {
    const fn = STEPS[step.type];
    if (!fn) throw new UnsupportedError(`setup step "${step.type}" is not implemented`);
    try {
      await fn(ctx, step.parameters ?? {});
    } catch (err) {
      if (err instanceof InfrastructureError) throw err;
      throw new InfrastructureError(`setup step ${step.type} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
