/**
 * `run-multienv doctor`: checks before a long run, one actionable line per problem:
 *   - the model server answers GET /v1/models and lists the served model name
 *   - the env provider: binaries the local desktops and the task list's apps need, and a desktop
 *     that starts, answers the OSWorld protocol (screenshot, screen size) and closes
 *   - free disk under --result_dir, and memory for --num-envs (~350 MiB per env with an office app)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EnvProvider } from '../env/provider.ts';
import { probeModels } from './run-config.ts';

export interface DoctorOptions {
  modelUrls: string[] | null; // null: agent needs no model (replay)
  servedModelName: string;
  provider: EnvProvider;
  providerKind: 'local' | 'remote';
  domains: string[];
  /** extra binaries to require (--require-apps) */
  requireApps: string[];
  record: boolean;
  resultDir: string;
  numEnvs: number;
  tasks: number;
  envBaseDir?: string;
  /** PATH to search (default $PATH) */
  searchPath?: string;
  desktopTimeoutMs?: number;
}

export interface DoctorReport {
  ok: string[];
  problems: string[];
}

export const MIB = 1024 * 1024;
export const ENV_MEMORY_MIB = 350;
export const TASK_DISK_MIB = 30;

/** The apps the tasks of a domain start (OSWorld's and the local suite's domain names). */
const DOMAIN_APPS: Record<string, string[]> = {
  calc: ['soffice'], writer: ['soffice'], impress: ['soffice'],
  libreoffice_calc: ['soffice'], libreoffice_writer: ['soffice'], libreoffice_impress: ['soffice'],
  chrome: ['chromium|chromium-browser|google-chrome'],
  gimp: ['gimp'], vlc: ['vlc'], thunderbird: ['thunderbird'], vs_code: ['code'],
  multi_apps: ['soffice', 'chromium|chromium-browser|google-chrome', 'gimp', 'vlc', 'thunderbird'],
};
const DESKTOP_BINS = ['Xvfb', 'openbox', 'dbus-daemon', 'xdotool', 'xsetroot', 'python3'];

export function which(name: string, searchPath = process.env.PATH ?? ''): string | null {
  for (const dir of searchPath.split(':').filter(Boolean)) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* not here */
    }
  }
  return null;
}

function existingAncestor(p: string): string {
  let d = path.resolve(p);
  while (!fs.existsSync(d) && path.dirname(d) !== d) d = path.dirname(d);
  return d;
}

function freeBytes(dir: string): number {
  const s = fs.statfsSync(existingAncestor(dir));
  return s.bavail * s.bsize;
}

export function availableMemory(): number {
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    /* not Linux */
  }
  return os.freemem();
}

const gib = (b: number): string => `${(b / 1024 ** 3).toFixed(1)} GiB`;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what} took over ${ms / 1000} s`)), ms)))]).finally(() => clearTimeout(t));
}

export async function runDoctor(o: DoctorOptions): Promise<DoctorReport> {
  const ok: string[] = [];
  const problems: string[] = [];

  // Model server(s)
  if (o.modelUrls) {
    for (const url of [...new Set(o.modelUrls)]) {
      try {
        const probe = await probeModels(url);
        const ids = probe.models.map((m) => m.id);
        if (ids.includes(o.servedModelName)) ok.push(`model server ${url} serves "${o.servedModelName}"`);
        else problems.push(`model server ${url} serves ${ids.length ? ids.map((i) => `"${i}"`).join(', ') : 'no model'}, not "${o.servedModelName}": pass --served-model-name ${ids[0] ?? '<name>'} (or start the server with --served-model-name ${o.servedModelName})`);
      } catch (err) {
        problems.push(`${(err as Error).message}: start it (nohup bash start_server.sh &) or point --model-urls / --server-ip --server-port at it`);
      }
    }
  } else {
    ok.push('model server: not needed (replay agent)');
  }

  // Binaries
  const need = new Map<string, string[]>(); // alternatives -> who needs it
  const add = (bin: string, why: string): void => {
    need.set(bin, [...(need.get(bin) ?? []), why]);
  };
  if (o.providerKind === 'local') {
    for (const b of DESKTOP_BINS) add(b, 'the local desktops');
    if (o.record) add('ffmpeg', 'recording.mp4 (or pass --no-record)');
    for (const d of o.domains) for (const b of DOMAIN_APPS[d] ?? []) add(b, `${d} tasks`);
  }
  for (const b of o.requireApps) add(b, '--require-apps');
  const missing: string[] = [];
  for (const [alts, why] of need) {
    const found = alts.split('|').map((a) => which(a, o.searchPath)).find(Boolean);
    if (found) continue;
    missing.push(alts);
    problems.push(`missing ${alts.split('|').join(' or ')} (needed by ${[...new Set(why)].join(', ')}): install it (bash scripts/install-desktop.sh) or leave those tasks out (--domain, --exclude-tag)`);
  }
  if (need.size && !missing.length) ok.push(`binaries: ${[...need.keys()].map((k) => k.split('|')[0]).join(', ')}`);

  // A desktop that starts and answers
  if (o.providerKind === 'local' && missing.some((m) => DESKTOP_BINS.includes(m))) {
    problems.push('desktop env not tried: its binaries are missing (see above)');
  } else {
    const t0 = Date.now();
    let env: Awaited<ReturnType<EnvProvider['start']>> | null = null;
    try {
      env = await withTimeout(o.provider.start({ name: 'doctor' }), o.desktopTimeoutMs ?? 60_000, 'starting a desktop env');
      const png = await withTimeout(env.client.screenshot(), 20_000, 'a screenshot');
      if (png.length < 8 || png.readUInt32BE(0) !== 0x89504e47) throw new Error('the screenshot is not a PNG');
      const size = await withTimeout(env.client.screenSize(), 20_000, 'the screen size');
      ok.push(`desktop env (${o.providerKind}) started and answered in ${((Date.now() - t0) / 1000).toFixed(1)} s (${size.width}x${size.height})`);
    } catch (err) {
      problems.push(`desktop env (${o.providerKind}) failed: ${(err as Error).message.split('\n')[0]}: ${o.providerKind === 'local' ? 'run bash scripts/install-desktop.sh (see docs/desktop-envs.md)' : 'check --env-urls and --env-token'}`);
    } finally {
      await env?.close().catch(() => {});
      await o.provider.closeAll().catch(() => {});
    }
  }

  // Disk
  const needDisk = Math.max(1024, o.tasks * TASK_DISK_MIB) * MIB;
  const free = freeBytes(o.resultDir);
  if (free < needDisk) problems.push(`disk: ${gib(free)} free under ${path.resolve(o.resultDir)}, ${o.tasks} task(s) need about ${gib(needDisk)} (~${TASK_DISK_MIB} MiB each): free space or pick another --result_dir`);
  else ok.push(`disk: ${gib(free)} free under ${path.resolve(o.resultDir)} (need about ${gib(needDisk)})`);
  if (o.providerKind === 'local' && o.envBaseDir) {
    const needEnv = (512 + 100 * o.numEnvs) * MIB;
    const freeEnv = freeBytes(o.envBaseDir);
    if (freeEnv < needEnv) problems.push(`disk: ${gib(freeEnv)} free under ${o.envBaseDir} (env HOMEs), ${o.numEnvs} env(s) need about ${gib(needEnv)}: free space or set OSW_ENV_DIR`);
  }

  // Memory
  if (o.providerKind === 'local') {
    const needMem = o.numEnvs * ENV_MEMORY_MIB * MIB;
    const avail = availableMemory();
    if (avail < needMem) {
      const fit = Math.max(0, Math.floor(avail / (ENV_MEMORY_MIB * MIB)));
      problems.push(`memory: ${o.numEnvs} env(s) need about ${gib(needMem)} (${ENV_MEMORY_MIB} MiB each with an office app open), ${gib(avail)} available: use --num-envs ${fit}${fit ? ' or fewer' : ' (free memory first)'}`);
    } else {
      ok.push(`memory: ${gib(avail)} available for ${o.numEnvs} env(s) (need about ${gib(needMem)})`);
    }
  }
  return { ok, problems };
}
