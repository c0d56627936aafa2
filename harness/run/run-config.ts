/**
 * What ran: the trial's config.json (model as the server reports it, sampling actually sent,
 * step cap, history, coordinate mode, screen and resized image size, task-set hash, harness
 * version), written atomically in the trial dir and updated when the first responses arrive.
 * Also: asking the server which model it serves, and from that the coordinate mode.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { writeFileAtomic } from '../results/writer.ts';
import { taskFile, type TaskRef } from '../tasks/load-tasks.ts';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface ServedModel {
  id: string;
  root?: string;
  owned_by?: string;
  max_model_len?: number;
}

export interface ModelProbe {
  url: string;
  models: ServedModel[];
}

/** GET {baseUrl}/models; throws with a one-line reason when the server does not answer. */
export async function probeModels(baseUrl: string, timeoutMs = 5000): Promise<ModelProbe> {
  const url = `${baseUrl.replace(/\/$/, '')}/models`;
  let res;
  try {
    res = await request(url, { method: 'GET', headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  } catch (err) {
    const e = err as { code?: string; message?: string };
    throw new Error(`model server ${baseUrl} does not answer (${e.code ?? e.message ?? String(err)})`);
  }
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`model server ${baseUrl}: GET /models answered HTTP ${res.statusCode}`);
  try {
    const json = JSON.parse(text) as { data?: ServedModel[] };
    if (!Array.isArray(json.data)) throw new Error('no data list');
    return { url: baseUrl, models: json.data.filter((m) => m && typeof m.id === 'string') };
  } catch (err) {
    throw new Error(`model server ${baseUrl}: GET /models is not a model list (${(err as Error).message})`);
  }
}

export type CoordinateSource = 'flag' | 'server' | 'default';

/**
 * UI-TARS-2B / UI-TARS v1 (Qwen2-VL) write 0-1000 relative coordinates, UI-TARS-1.5 (Qwen2.5-VL)
 * absolute pixels of the smart-resized screenshot. Our server only runs qwen2_vl.
 */
export function coordinatesFor(model: ServedModel | undefined): { mode: 'relative' | 'absolute'; reason: string } | null {
  if (!model) return null;
  if (model.owned_by === 'uitars-osworld') return { mode: 'relative', reason: 'our server (qwen2_vl, UI-TARS-2B)' };
  const name = `${model.id} ${model.root ?? ''}`;
  if (/ui-?tars-?1\.5|qwen2\.5|qwen2_5|qwen25|ui-?tars-?2(?!b)|seed/i.test(name)) return { mode: 'absolute', reason: `${model.root ?? model.id} is Qwen2.5-VL based` };
  if (/ui-?tars|qwen2-?vl|qwen2_vl/i.test(name)) return { mode: 'relative', reason: `${model.root ?? model.id} is Qwen2-VL based` };
  return null;
}

export function harnessVersion(): { name: string; version: string; commit: string | null; dirty: boolean | null } {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { name: string; version: string };
  let commit: string | null = null;
  let dirty: boolean | null = null;
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    dirty = execFileSync('git', ['status', '--porcelain', '--', 'harness', 'server'], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
  } catch {
    /* not a git checkout */
  }
  return { name: pkg.name, version: pkg.version, commit, dirty };
}

/** sha256 over the task ids in order and each task file's bytes (a missing file hashes as absent). */
export function taskSetHash(baseDir: string, tasks: TaskRef[]): string {
  const h = createHash('sha256');
  for (const ref of tasks) {
    h.update(`${ref.domain}/${ref.id}\n`);
    try {
      h.update(createHash('sha256').update(fs.readFileSync(taskFile(baseDir, ref))).digest('hex'));
    } catch {
      h.update('absent');
    }
    h.update('\n');
  }
  return h.digest('hex');
}

export type RunConfig = Record<string, unknown> & {
  sampling: Record<string, unknown> & { sent: Record<string, unknown>[] };
  image: Record<string, unknown> & { screen: { width: number; height: number }; resized: unknown[] };
};

/** config.json of the trial; `observe` folds in what the model server actually got and reported. */
export class RunConfigFile {
  private readonly seenSent = new Set<string>();
  private readonly seenImages = new Set<string>();

  constructor(
    readonly file: string,
    readonly config: RunConfig,
    private readonly log: (line: string) => void = () => {},
  ) {}

  write(): void {
    fs.mkdirSync(path.dirname(this.file), { recursive: true });
    writeFileAtomic(this.file, `${JSON.stringify(this.config, null, 2)}\n`);
  }

  /** Compares with an earlier run's config.json of the same trial: one warning line per difference that matters. */
  compareWithPrevious(): void {
    let prev: Record<string, unknown>;
    try {
      prev = JSON.parse(fs.readFileSync(this.file, 'utf8')) as Record<string, unknown>;
    } catch {
      return;
    }
    const pick = (c: Record<string, unknown>, k: string): string => JSON.stringify((c as Record<string, Record<string, unknown>>)[k.split('.')[0]!]?.[k.split('.')[1]!] ?? null);
    for (const key of ['model.id', 'model.root', 'taskSet.hash', 'agent.coordinates', 'agent.maxSteps', 'agent.historyN', 'sampling.temperature', 'sampling.max_tokens']) {
      const a = pick(prev, key);
      const b = pick(this.config, key);
      if (a !== b) this.log(`warning: this trial's earlier run had ${key} = ${a}, this run ${b} (results of both end up in the same trial)`);
    }
  }

  /** A model response: the sampling fields sent and the server's image report. */
  observe(sent: Record<string, unknown>, images?: unknown): void {
    let changed = false;
    const s = JSON.stringify(sent);
    if (!this.seenSent.has(s) && this.seenSent.size < 8) {
      this.seenSent.add(s);
      this.config.sampling.sent.push(sent);
      changed = true;
    }
    if (Array.isArray(images)) {
      for (const im of images) {
        const k = JSON.stringify(im && typeof im === 'object' ? { ...(im as Record<string, unknown>), tokens: undefined } : im);
        if (this.seenImages.has(k) || this.seenImages.size >= 4) continue;
        this.seenImages.add(k);
        this.config.image.resized.push(im);
        changed = true;
      }
    }
    if (changed) {
      try {
        this.write();
      } catch (err) {
        this.log(`warning: cannot update ${this.file}: ${(err as Error).message}`);
      }
    }
  }
}
