/**
 * The tiny generated checkpoint that tests and the server's embedded default use:
 * size tiny, seed 0, f32, one file, under `.cache/checkpoints/tiny` in the repository.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateCheckpoint, GENERATOR_MARKER, GENERATOR_VERSION } from './generate.ts';

/** The repository root (three folders above this file). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const DEFAULT_TINY_DIR = path.join(REPO_ROOT, '.cache', 'checkpoints', 'tiny');

function isCurrent(dir: string): boolean {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(dir, GENERATOR_MARKER), 'utf8')) as Record<string, unknown>;
    return m.version === GENERATOR_VERSION && m.size === 'tiny' && m.seed === 0 && m.dtype === 'f32' && m.shards === 1;
  } catch {
    return false;
  }
}

/**
 * Generates the tiny checkpoint into `dir` unless a current one is there, and returns its path.
 * Written into a temporary sibling folder and renamed into place, so concurrent callers and
 * interrupted runs never see a half-written checkpoint.
 */
export async function ensureTinyCheckpoint(dir: string = DEFAULT_TINY_DIR): Promise<string> {
  const target = path.resolve(dir);
  if (isCurrent(target)) return target;
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  try {
    await generateCheckpoint({ out: tmp, size: 'tiny', seed: 0, dtype: 'f32', shards: 1 });
    if (fs.existsSync(target)) {
      if (isCurrent(target)) return target; // another process won the race
      // A stale checkpoint from an older generator: move it aside, then replace.
      const old = `${target}.old-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
      fs.renameSync(target, old);
      fs.rmSync(old, { recursive: true, force: true });
    }
    try {
      fs.renameSync(tmp, target);
    } catch (e) {
      if (!isCurrent(target)) throw e; // someone else renamed theirs in first: fine if current
    }
    return target;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
