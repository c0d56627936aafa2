/**
 * safetensors reading and writing, one tensor at a time.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * `{"__metadata__": {...}, "<name>": {"dtype", "shape", "data_offsets": [begin, end]}, ...}`
 * (offsets relative to the first byte after the header), then the raw data.
 * Sharded checkpoints add `model.safetensors.index.json` with a `weight_map` name -> file.
 *
 * Reading never loads a whole file: each tensor is read with fs.readSync at its offset
 * and widened to float32 in chunks.
 */
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import type { StoredDType, WeightSource } from './types.ts';

/** Every checkpoint problem the reader reports: one line, naming the file. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

if (os.endianness() !== 'LE') {
  throw new Error('safetensors reader assumes a little-endian host');
}

/** Bytes per element of every dtype the safetensors format defines. */
export const DTYPE_BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};

const FLOAT_DTYPES: ReadonlySet<string> = new Set<StoredDType>(['F32', 'F16', 'BF16']);

export function isStoredDType(dtype: string): dtype is StoredDType {
  return FLOAT_DTYPES.has(dtype);
}

export interface TensorEntry {
  name: string;
  /** dtype string as stored (F32, BF16, ...). */
  dtype: string;
  shape: number[];
  file: string;
  /** Absolute byte offsets in `file`. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  dataStart: number;
  metadata: Record<string, string>;
  tensors: Map<string, TensorEntry>;
}

/** Largest header we accept (the format's own limit is 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function statFile(file: string, what: string): fs.Stats {
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new CheckpointError(`${what} is not a file: ${file}`);
    return st;
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`missing ${what}: ${file}`);
  }
}

function readExactly(fd: number, buf: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < buf.length) {
    const chunk = Math.min(buf.length - done, 1 << 30);
    const n = fs.readSync(fd, buf, done, chunk, position + done);
    if (n <= 0) {
      throw new CheckpointError(
        `truncated safetensors file ${file}: wanted ${buf.length} bytes at offset ${position}, got ${done}`,
      );
    }
    done += n;
  }
}

/** Parses and validates one safetensors file's header (reads only the header bytes). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const st = statFile(file, 'safetensors file');
  const fileSize = st.size;
  if (fileSize < 8) {
    throw new CheckpointError(`truncated safetensors file ${file}: ${fileSize} bytes, no header length`);
  }
  const fd = fs.openSync(file, 'r');
  let headerText: string;
  let len: number;
  try {
    const lenBuf = new Uint8Array(8);
    readExactly(fd, lenBuf, 0, file);
    len = Number(new DataView(lenBuf.buffer).getBigUint64(0, true));
    if (len > MAX_HEADER_BYTES) {
      throw new CheckpointError(`corrupt safetensors header in ${file}: header length ${len} is too large`);
    }
    if (8 + len > fileSize) {
      throw new CheckpointError(
        `truncated safetensors file ${file}: header length ${len} runs past the end of the file (${fileSize} bytes)`,
      );
    }
    const hb = new Uint8Array(len);
    readExactly(fd, hb, 8, file);
    headerText = new TextDecoder('utf-8', { fatal: false }).decode(hb);
  } finally {
    fs.closeSync(fd);
  }
  const dataStart = 8 + len;
  let parsed: unknown;
  try {
    parsed = JSON.parse(headerText);
  } catch (e) {
    throw new CheckpointError(`corrupt safetensors header in ${file}: invalid JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CheckpointError(`corrupt safetensors header in ${file}: header is not a JSON object`);
  }
  const dataSize = fileSize - dataStart;
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw && typeof raw === 'object') metadata = raw as Record<string, string>;
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (
      !info ||
      typeof info.dtype !== 'string' ||
      !Array.isArray(info.shape) ||
      !info.shape.every((d) => Number.isInteger(d) && d >= 0) ||
      !Array.isArray(info.data_offsets) ||
      info.data_offsets.length !== 2 ||
      !info.data_offsets.every((d) => Number.isInteger(d) && d >= 0)
    ) {
      throw new CheckpointError(`corrupt safetensors header in ${file}: bad entry for tensor ${name}`);
    }
    const elem = Object.hasOwn(DTYPE_BYTES, info.dtype) ? DTYPE_BYTES[info.dtype] : undefined;
    if (elem === undefined) {
      throw new CheckpointError(`unsupported dtype ${info.dtype} for tensor ${name} in ${file}`);
    }
    const shape = info.shape as number[];
    const [b, e] = info.data_offsets as [number, number];
    if (e < b) throw new CheckpointError(`corrupt safetensors header in ${file}: tensor ${name} has data_offsets [${b}, ${e}]`);
    if (e > dataSize) {
      throw new CheckpointError(
        `truncated safetensors file ${file}: tensor ${name} data_offsets [${b}, ${e}] run past the end of the data (${dataSize} bytes)`,
      );
    }
    if (e - b !== numel(shape) * elem) {
      throw new CheckpointError(
        `corrupt safetensors header in ${file}: tensor ${name} ${info.dtype}[${shape.join(', ')}] needs ${numel(shape) * elem} bytes, data_offsets give ${e - b}`,
      );
    }
    tensors.set(name, { name, dtype: info.dtype, shape: [...shape], file, begin: dataStart + b, end: dataStart + e });
  }
  return { file, fileSize, dataStart, metadata, tensors };
}

/** f16 bits -> float32 value. */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

let halfTable: Float32Array | undefined;
function halfLookup(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) halfTable[i] = halfToFloat(i);
  }
  return halfTable;
}

const CONVERT_CHUNK_BYTES = 16 << 20;

/** Reads one tensor from disk as float32 (F32 read in place; BF16/F16 widened chunk by chunk). */
export function readTensorFloat32(t: TensorEntry): Float32Array {
  if (!isStoredDType(t.dtype)) {
    throw new CheckpointError(`unsupported dtype ${t.dtype} for tensor ${t.name} in ${t.file} (need F32, F16 or BF16)`);
  }
  const n = numel(t.shape);
  const fd = openForRead(t.file);
  try {
    if (t.dtype === 'F32') {
      const out = new Float32Array(n);
      readExactly(fd, new Uint8Array(out.buffer), t.begin, t.file);
      return out;
    }
    const out = new Float32Array(n);
    const outBits = new Uint32Array(out.buffer);
    const chunkElems = CONVERT_CHUNK_BYTES / 2;
    const buf = new Uint16Array(Math.min(n, chunkElems));
    const table = t.dtype === 'F16' ? halfLookup() : undefined;
    for (let start = 0; start < n; start += chunkElems) {
      const count = Math.min(chunkElems, n - start);
      const view = buf.subarray(0, count);
      readExactly(fd, new Uint8Array(view.buffer, 0, count * 2), t.begin + start * 2, t.file);
      if (table) {
        for (let i = 0; i < count; i++) out[start + i] = table[view[i]!]!;
      } else {
        for (let i = 0; i < count; i++) outBits[start + i] = view[i]! << 16;
      }
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

function openForRead(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch {
    throw new CheckpointError(`missing safetensors file: ${file}`);
  }
}

/** A set of tensors spread over one or more safetensors files, read lazily. */
export class SafetensorsSource implements WeightSource {
  readonly entries: ReadonlyMap<string, TensorEntry>;
  /** The files it reads, in order. */
  readonly files: readonly string[];

  constructor(entries: Map<string, TensorEntry>, files: string[]) {
    this.entries = entries;
    this.files = files;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  entry(name: string): TensorEntry {
    const e = this.entries.get(name);
    if (!e) throw new CheckpointError(`tensor ${name} is not in the checkpoint (${this.files.map((f) => path.basename(f)).join(', ')})`);
    return e;
  }

  shape(name: string): number[] {
    return [...this.entry(name).shape];
  }

  dtype(name: string): string {
    return this.entry(name).dtype;
  }

  readFloat32(name: string): Float32Array {
    return readTensorFloat32(this.entry(name));
  }

  names(): string[] {
    return [...this.entries.keys()];
  }
}

/** One safetensors file. */
export function openSafetensorsFile(file: string): SafetensorsSource {
  const h = readSafetensorsHeader(file);
  return new SafetensorsSource(h.tensors, [file]);
}

/** A sharded checkpoint from its `model.safetensors.index.json`. */
export function openSafetensorsIndex(indexFile: string): SafetensorsSource {
  statFile(indexFile, 'safetensors index');
  let index: unknown;
  try {
    index = JSON.parse(fs.readFileSync(indexFile, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`corrupt safetensors index ${indexFile}: invalid JSON (${(e as Error).message})`);
  }
  const weightMap = (index as { weight_map?: unknown } | null)?.weight_map;
  if (!weightMap || typeof weightMap !== 'object' || Array.isArray(weightMap)) {
    throw new CheckpointError(`corrupt safetensors index ${indexFile}: no weight_map object`);
  }
  const dir = path.dirname(indexFile);
  const headers = new Map<string, SafetensorsHeader>();
  const entries = new Map<string, TensorEntry>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) {
      throw new CheckpointError(`corrupt safetensors index ${indexFile}: bad shard name for tensor ${name}`);
    }
    let h = headers.get(shard);
    if (!h) {
      h = readSafetensorsHeader(path.join(dir, shard));
      headers.set(shard, h);
    }
    const e = h.tensors.get(name);
    if (!e) {
      throw new CheckpointError(`tensor ${name} is listed in ${path.basename(indexFile)} but missing from shard ${h.file}`);
    }
    entries.set(name, e);
  }
  return new SafetensorsSource(entries, [...headers.values()].map((h) => h.file));
}

/**
 * The tensors of a checkpoint folder: `model.safetensors.index.json` if present, else
 * `model.safetensors`, else every `*.safetensors` file in the folder.
 */
export function openSafetensorsDir(dir: string): SafetensorsSource {
  const index = path.join(dir, 'model.safetensors.index.json');
  if (fs.existsSync(index)) return openSafetensorsIndex(index);
  const single = path.join(dir, 'model.safetensors');
  if (fs.existsSync(single)) return openSafetensorsFile(single);
  let files: string[] = [];
  try {
    files = fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors')).sort();
  } catch {
    throw new CheckpointError(`missing checkpoint folder: ${dir}`);
  }
  if (files.length === 0) {
    throw new CheckpointError(`missing safetensors: no model.safetensors or model.safetensors.index.json in ${dir}`);
  }
  const entries = new Map<string, TensorEntry>();
  const paths: string[] = [];
  for (const f of files) {
    const p = path.join(dir, f);
    paths.push(p);
    for (const [name, e] of readSafetensorsHeader(p).tensors) {
      if (entries.has(name)) throw new CheckpointError(`tensor ${name} is stored twice: in ${entries.get(name)!.file} and ${p}`);
      entries.set(name, e);
    }
  }
  return new SafetensorsSource(entries, paths);
}
