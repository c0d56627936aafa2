/**
 * OSWorld's compare_audios (metrics/vlc.py): librosa MFCCs of both files (22050 Hz mono,
 * n_fft 2048, hop 512, 128 Slaney mel bands, power in dB with top_db 80, orthonormal DCT-II,
 * 20 coefficients), each coefficient row normalised by its max |value|, aligned by fastdtw
 * (radius 1) with cosine distance; score exp(-distance / path length). Audio is decoded and
 * resampled by ffmpeg (librosa uses soxr): scores match OSWorld's closely, not bit for bit.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Metric } from '../types.ts';

const execFileP = promisify(execFile);
const SR = 22050;
const N_FFT = 2048;
const HOP = 512;
const N_MELS = 128;
const N_MFCC = 20;

/** Mono float samples at 22050 Hz (null when ffmpeg cannot decode the file). */
export async function decodeAudio(file: string): Promise<Float32Array | null> {
  try {
    const { stdout } = await execFileP('ffmpeg', ['-v', 'error', '-nostdin', '-i', file, '-vn', '-ac', '1', '-ar', String(SR), '-f', 'f32le', '-'], {
      encoding: 'buffer',
      maxBuffer: 1 << 30,
    });
    const buf = stdout as Buffer;
    return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + (buf.length - (buf.length % 4))));
  } catch {
    return null;
  }
}

/** In-place radix-2 FFT. */
function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < len / 2; k++) {
        const wr = Math.cos(ang * k);
        const wi = Math.sin(ang * k);
        const a = i + k;
        const b = a + len / 2;
        const xr = re[b]! * wr - im[b]! * wi;
        const xi = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - xr;
        im[b] = im[a]! - xi;
        re[a] = re[a]! + xr;
        im[a] = im[a]! + xi;
      }
    }
  }
}

const hzToMel = (f: number) => (f >= 1000 ? 15 + Math.log(f / 1000) / (Math.log(6.4) / 27) : f / (200 / 3));
const melToHz = (m: number) => (m >= 15 ? 1000 * Math.exp((Math.log(6.4) / 27) * (m - 15)) : (200 / 3) * m);

let melBasis: Float64Array[] | null = null;
function mel(): Float64Array[] {
  if (melBasis) return melBasis;
  const nBins = N_FFT / 2 + 1;
  const fft = Array.from({ length: nBins }, (_, i) => (i * SR) / 2 / (nBins - 1));
  const lo = hzToMel(0);
  const hi = hzToMel(SR / 2);
  const melF = Array.from({ length: N_MELS + 2 }, (_, i) => melToHz(lo + ((hi - lo) * i) / (N_MELS + 1)));
  melBasis = [];
  for (let m = 0; m < N_MELS; m++) {
    const w = new Float64Array(nBins);
    const enorm = 2 / (melF[m + 2]! - melF[m]!);
    for (let k = 0; k < nBins; k++) {
      const lower = -(melF[m]! - fft[k]!) / (melF[m + 1]! - melF[m]!);
      const upper = (melF[m + 2]! - fft[k]!) / (melF[m + 2]! - melF[m + 1]!);
      w[k] = Math.fround(Math.max(0, Math.min(lower, upper)) * enorm);
    }
    melBasis.push(w);
  }
  return melBasis;
}

/** librosa.feature.mfcc(y, sr=22050) then librosa.util.normalize(axis=1): [frame][coef]. */
export function mfcc(y: Float32Array): Float64Array[] {
  const pad = N_FFT / 2;
  const frames = 1 + Math.floor(y.length / HOP);
  const win = Float64Array.from({ length: N_FFT }, (_, n) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / N_FFT));
  const basis = mel();
  const nBins = N_FFT / 2 + 1;
  const melSpec: Float64Array[] = [];
  let maxDb = -Infinity;
  for (let t = 0; t < frames; t++) {
    const re = new Float64Array(N_FFT);
    const im = new Float64Array(N_FFT);
    for (let n = 0; n < N_FFT; n++) {
      const idx = t * HOP + n - pad;
      re[n] = idx >= 0 && idx < y.length ? y[idx]! * win[n]! : 0;
    }
    fft(re, im);
    const power = new Float64Array(nBins);
    for (let k = 0; k < nBins; k++) power[k] = re[k]! * re[k]! + im[k]! * im[k]!;
    const row = new Float64Array(N_MELS);
    for (let m = 0; m < N_MELS; m++) {
      let s = 0;
      const w = basis[m]!;
      for (let k = 0; k < nBins; k++) s += w[k]! * power[k]!;
      row[m] = 10 * Math.log10(Math.max(1e-10, s));
      maxDb = Math.max(maxDb, row[m]!);
    }
    melSpec.push(row);
  }
  const out: Float64Array[] = [];
  for (const row of melSpec) {
    for (let m = 0; m < N_MELS; m++) row[m] = Math.max(row[m]!, maxDb - 80);
    const c = new Float64Array(N_MFCC);
    for (let k = 0; k < N_MFCC; k++) {
      let s = 0;
      for (let n = 0; n < N_MELS; n++) s += row[n]! * Math.cos((Math.PI * k * (2 * n + 1)) / (2 * N_MELS));
      c[k] = s * Math.sqrt((k === 0 ? 1 : 2) / N_MELS);
    }
    out.push(c);
  }
  for (let k = 0; k < N_MFCC; k++) {
    let m = 0;
    for (const c of out) m = Math.max(m, Math.abs(c[k]!));
    if (m < 1.1754944e-38) m = 1;
    for (const c of out) c[k] = c[k]! / m;
  }
  return out;
}

/** scipy's cosine distance. */
function cosine(u: Float64Array, v: Float64Array): number {
  let uv = 0;
  let uu = 0;
  let vv = 0;
  for (let i = 0; i < u.length; i++) {
    uv += u[i]! * v[i]!;
    uu += u[i]! * u[i]!;
    vv += v[i]! * v[i]!;
  }
  return 1 - uv / Math.sqrt(uu * vv);
}

type Path = [number, number][];

function dtw(x: Float64Array[], y: Float64Array[], window: Path | null): [number, Path] {
  const lx = x.length;
  const ly = y.length;
  const D = new Map<number, [number, number, number]>();
  const key = (i: number, j: number) => i * (ly + 1) + j;
  const get = (i: number, j: number) => D.get(key(i, j)) ?? [Infinity, 0, 0];
  D.set(key(0, 0), [0, 0, 0]);
  const cells: Path = window ?? Array.from({ length: lx * ly }, (_, n) => [Math.floor(n / ly), n % ly] as [number, number]);
  for (const [i0, j0] of cells) {
    const i = i0 + 1;
    const j = j0 + 1;
    const dt = cosine(x[i - 1]!, y[j - 1]!);
    const cands: [number, number, number][] = [
      [get(i - 1, j)[0] + dt, i - 1, j],
      [get(i, j - 1)[0] + dt, i, j - 1],
      [get(i - 1, j - 1)[0] + dt, i - 1, j - 1],
    ];
    let best = cands[0]!;
    for (const c of cands.slice(1)) if (c[0] < best[0]) best = c; // Python's min keeps the first of equals
    D.set(key(i, j), best);
  }
  const path: Path = [];
  let i = lx;
  let j = ly;
  while (!(i === 0 && j === 0)) {
    path.push([i - 1, j - 1]);
    const d = get(i, j);
    [i, j] = [d[1], d[2]];
    if (!Number.isFinite(d[0])) break;
  }
  path.reverse();
  return [get(lx, ly)[0], path];
}

const half = (x: Float64Array[]) => {
  const out: Float64Array[] = [];
  for (let i = 0; i + 1 < x.length; i += 2) out.push(x[i]!.map((v, k) => (v + x[i + 1]![k]!) / 2));
  return out;
};

function expandWindow(path: Path, lx: number, ly: number, radius: number): Path {
  const near = new Set<string>();
  for (const [i, j] of path) for (let a = -radius; a <= radius; a++) for (let b = -radius; b <= radius; b++) near.add(`${i + a},${j + b}`);
  const win = new Set<string>();
  for (const s of near) {
    const [i, j] = s.split(',').map(Number) as [number, number];
    for (const [a, b] of [
      [i * 2, j * 2],
      [i * 2, j * 2 + 1],
      [i * 2 + 1, j * 2],
      [i * 2 + 1, j * 2 + 1],
    ])
      win.add(`${a},${b}`);
  }
  const out: Path = [];
  let startJ = 0;
  for (let i = 0; i < lx; i++) {
    let newStart: number | null = null;
    for (let j = startJ; j < ly; j++) {
      if (win.has(`${i},${j}`)) {
        out.push([i, j]);
        if (newStart === null) newStart = j;
      } else if (newStart !== null) break;
    }
    startJ = newStart ?? startJ;
  }
  return out;
}

/** The fastdtw package's algorithm (coarsen by halves, DTW inside the projected window). */
export function fastdtw(x: Float64Array[], y: Float64Array[], radius = 1): [number, Path] {
  if (x.length < radius + 2 || y.length < radius + 2) return dtw(x, y, null);
  const [, path] = fastdtw(half(x), half(y), radius);
  return dtw(x, y, expandWindow(path, x.length, y.length, radius));
}

export const compareAudios: Metric = async (a, b) => {
  if (!a || !b || typeof a !== 'string' || typeof b !== 'string') return 0;
  const y1 = await decodeAudio(a);
  const y2 = await decodeAudio(b);
  const bad1 = !y1 || y1.length === 0;
  const bad2 = !y2 || y2.length === 0;
  if (bad1 && bad2) return 1;
  if (bad1 || bad2) return 0;
  const [distance, path] = fastdtw(mfcc(y1!), mfcc(y2!));
  return path.length ? Math.exp(-distance / path.length) : 0;
};
