/**
 * On-disk cache of the built ONNX graphs, keyed by checkpoint content + build options + builder version.
 *
 * Layout: <root>/<format>-<key24>/{vision.onnx, vision.onnx.data, decoder.onnx, decoder.onnx.data, meta.json}
 * root = $ONNX_CACHE_DIR or <repo>/.cache/onnx.
 *
 * A build goes to a private temp dir next to the final one and is renamed into place, so a cache dir
 * that exists is complete. A lock file (<dir>.lock, O_EXCL, holding pid) lets concurrent builders of the
 * same key wait for one build instead of duplicating it; a lock whose pid is gone is stale and taken over.
 * Even without the lock the rename keeps the cache consistent: the loser discards its copy.
 * See docs/design/graph-build.md for the content-key choice.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Qwen2VLConfig, WeightSource } from '../checkpoint/types.ts';
import type { WeightFormat } from './layers.ts';
import { buildDecoder } from './decoder.ts';
import type { BuiltGraph } from './onnx-graph.ts';
import { graphRecipe, type GraphRecipe } from './recipes.ts';
import { buildVisionEncoder } from './vision-encoder.ts';

/** Bump whenever the graphs the builders emit change. */
export const GRAPH_BUILDER_VERSION = 7;

export interface BuildModelOptions {
  format: WeightFormat;
  /** Kernels per phase (default: graphRecipe(format)). */
  recipe?: GraphRecipe;
  /** Cache root override (default $ONNX_CACHE_DIR or <repo>/.cache/onnx). */
  cacheRoot?: string;
  /** Progress messages (build start/finish, waits on another builder). */
  log?: (msg: string) => void;
}

export interface GraphMeta {
  builderVersion: number;
  key: string;
  checkpointKey: string;
  format: WeightFormat;
  recipe: GraphRecipe;
  createdAt: string;
  buildSeconds: number;
  vision: GraphFileMeta;
  /** The decoder graph for prefill (and for decode steps when decodeStep is absent). */
  decoder: GraphFileMeta & { numLayers: number };
  /** int4: a second decoder graph with the decode kernels (same inputs and outputs). */
  decodeStep?: GraphFileMeta;
}

interface GraphFileMeta {
  file: string;
  externalBytes: number;
  inputs: string[];
  outputs: string[];
}

export interface BuiltModelGraphs {
  dir: string;
  visionPath: string;
  decoderPath: string;
  /** The decode-step graph; equals decoderPath when one graph serves both phases. */
  decodeStepPath: string;
  meta: GraphMeta;
  /** True when the graphs came from the cache, false when built by this call. */
  cached: boolean;
}

export function repoRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
}

export function defaultCacheRoot(): string {
  return process.env.ONNX_CACHE_DIR || path.join(repoRoot(), '.cache', 'onnx');
}

const SMALL_FILE_LIMIT = 64 * 1024 * 1024;
const SAMPLE_COUNT = 16;
const SAMPLE_BYTES = 4096;

function readAt(fd: number, pos: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = fs.readSync(fd, buf, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/**
 * Content key of a checkpoint folder (top level files): full bytes of every small file (config,
 * tokenizer, templates), and for each large file (safetensors): its size, its whole header, and
 * SAMPLE_COUNT evenly spaced 4 KiB samples of the data plus its last 4 KiB. Milliseconds for 9 GB.
 */
export function checkpointContentKey(dir: string): string {
  const h = crypto.createHash('sha256');
  const files = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() || e.isSymbolicLink())
    .map((e) => e.name)
    .filter((n) => !n.startsWith('.'))
    .sort();
  for (const name of files) {
    const full = path.join(dir, name);
    const st = fs.statSync(full);
    if (!st.isFile()) continue;
    h.update(`file\0${name}\0${st.size}\0`);
    if (st.size <= SMALL_FILE_LIMIT && !name.endsWith('.safetensors')) {
      h.update(fs.readFileSync(full));
      continue;
    }
    const fd = fs.openSync(full, 'r');
    try {
      let dataStart = 0;
      if (name.endsWith('.safetensors') && st.size >= 8) {
        const headerLen = Number(readAt(fd, 0, 8).readBigUInt64LE(0));
        dataStart = 8 + headerLen;
        h.update(readAt(fd, 0, Math.min(dataStart, st.size)));
      }
      const span = Math.max(0, st.size - dataStart);
      for (let i = 0; i < SAMPLE_COUNT; i++) {
        const pos = dataStart + Math.floor((span * i) / SAMPLE_COUNT);
        h.update(readAt(fd, pos, Math.min(SAMPLE_BYTES, st.size - pos)));
      }
      h.update(readAt(fd, Math.max(dataStart, st.size - SAMPLE_BYTES), SAMPLE_BYTES));
    } finally {
      fs.closeSync(fd);
    }
  }
  return h.digest('hex');
}

export function graphCacheKey(checkpointKey: string, format: WeightFormat, recipe: GraphRecipe): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify({ v: GRAPH_BUILDER_VERSION, checkpointKey, format, recipe }));
  return h.digest('hex');
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Tries to take the lock; false when a live builder holds it. Stale locks (dead pid) are taken over. */
function tryLock(lockPath: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = fs.openSync(lockPath, 'wx');
      fs.writeSync(fd, JSON.stringify({ pid: process.pid, host: os.hostname(), at: new Date().toISOString() }));
      fs.closeSync(fd);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let holder: { pid?: number; host?: string } = {};
      try {
        holder = JSON.parse(fs.readFileSync(lockPath, 'utf8')) as { pid?: number; host?: string };
      } catch {
        // being written right now, or garbage: treat as held unless it is old
        const age = Date.now() - (fs.statSync(lockPath, { throwIfNoEntry: false })?.mtimeMs ?? 0);
        if (age < 60_000) return false;
      }
      const stale = holder.host === os.hostname() && typeof holder.pid === 'number' ? !pidAlive(holder.pid) : holder.pid === undefined;
      if (!stale) return false;
      fs.rmSync(lockPath, { force: true });
    }
  }
  return false;
}

function fileMeta(file: string, built: BuiltGraph): GraphFileMeta {
  return { file, externalBytes: built.externalBytes, inputs: built.inputs, outputs: built.outputs };
}

function readMeta(dir: string): GraphMeta | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, 'meta.json'), 'utf8')) as GraphMeta;
  } catch {
    return undefined;
  }
}

function result(dir: string, meta: GraphMeta, cached: boolean): BuiltModelGraphs {
  const decoderPath = path.join(dir, meta.decoder.file);
  const decodeStepPath = meta.decodeStep ? path.join(dir, meta.decodeStep.file) : decoderPath;
  return { dir, visionPath: path.join(dir, meta.vision.file), decoderPath, decodeStepPath, meta, cached };
}

/**
 * Returns the vision and decoder graphs for this checkpoint and options, building them into the
 * cache when absent.
 */
export async function buildModelGraphs(
  checkpointDir: string,
  config: Qwen2VLConfig,
  weights: WeightSource,
  options: BuildModelOptions,
): Promise<BuiltModelGraphs> {
  const format = options.format;
  const recipe = options.recipe ?? graphRecipe(format);
  const log = options.log ?? (() => {});
  const root = options.cacheRoot ?? defaultCacheRoot();
  fs.mkdirSync(root, { recursive: true });
  const checkpointKey = checkpointContentKey(checkpointDir);
  const key = graphCacheKey(checkpointKey, format, recipe);
  const finalDir = path.join(root, `${format}-${key.slice(0, 24)}`);
  const lockPath = `${finalDir}.lock`;

  for (;;) {
    const existing = readMeta(finalDir);
    if (existing) return result(finalDir, existing, true);
    if (tryLock(lockPath)) break;
    log(`waiting for another builder of ${finalDir}`);
    await new Promise((r) => setTimeout(r, 250));
  }

  try {
    const again = readMeta(finalDir); // finished while we took the lock
    if (again) return result(finalDir, again, true);
    const tmp = fs.mkdtempSync(`${finalDir}.tmp-`);
    try {
      const t0 = Date.now();
      log(`building ${format} ONNX graphs into ${finalDir}`);
      const vis = buildVisionEncoder(config, weights, path.join(tmp, 'vision.onnx'), recipe.vision);
      // with a graph per phase, each holds its own phase's attention only (no If per layer)
      const dec = buildDecoder(config, weights, path.join(tmp, 'decoder.onnx'), recipe.prefill, recipe.decode ? 'prefill' : 'both');
      const step = recipe.decode ? buildDecoder(config, weights, path.join(tmp, 'decoder-step.onnx'), recipe.decode, 'decode') : null;
      const meta: GraphMeta = {
        builderVersion: GRAPH_BUILDER_VERSION,
        key,
        checkpointKey,
        format,
        recipe,
        createdAt: new Date().toISOString(),
        buildSeconds: (Date.now() - t0) / 1000,
        vision: fileMeta('vision.onnx', vis),
        decoder: { ...fileMeta('decoder.onnx', dec), numLayers: config.text.numHiddenLayers },
        ...(step ? { decodeStep: fileMeta('decoder-step.onnx', step) } : {}),
      };
      fs.writeFileSync(path.join(tmp, 'meta.json'), JSON.stringify(meta, null, 2));
      // a dir without meta.json is not a finished build (left by hand or by an old builder): replace it
      if (fs.existsSync(finalDir) && !readMeta(finalDir)) fs.rmSync(finalDir, { recursive: true, force: true });
      try {
        fs.renameSync(tmp, finalDir);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
        // someone else (without our lock) finished first: theirs is complete, drop ours
        fs.rmSync(tmp, { recursive: true, force: true });
        const theirs = readMeta(finalDir);
        if (theirs) return result(finalDir, theirs, true);
        throw e;
      }
      log(`built ${format} ONNX graphs in ${meta.buildSeconds.toFixed(1)} s`);
      return result(finalDir, meta, false);
    } catch (e) {
      fs.rmSync(tmp, { recursive: true, force: true });
      throw e;
    }
  } finally {
    fs.rmSync(lockPath, { force: true });
  }
}
