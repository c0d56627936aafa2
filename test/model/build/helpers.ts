/**
 * Test helpers for the graph builders: a tiny Qwen2-VL config, a seeded random WeightSource,
 * and straightforward float64 reference implementations of the vision encoder and the decoder.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Qwen2VLConfig, WeightSource } from '../../../server/model/checkpoint/types.ts';

export function tinyConfig(over: { tie?: boolean; textLayers?: number; visionDepth?: number } = {}): Qwen2VLConfig {
  return {
    modelType: 'qwen2_vl',
    text: {
      vocabSize: 300,
      hiddenSize: 64,
      intermediateSize: 160,
      numHiddenLayers: over.textLayers ?? 2,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
      headDim: 16,
      rmsNormEps: 1e-6,
      ropeTheta: 1e6,
      mropeSection: [2, 3, 3],
      maxPositionEmbeddings: 4096,
      tieWordEmbeddings: over.tie ?? true,
      hiddenAct: 'silu',
    },
    vision: {
      depth: over.visionDepth ?? 2,
      embedDim: 32,
      numHeads: 2,
      mlpRatio: 4,
      inChannels: 3,
      outHiddenSize: 64,
      patchSize: 14,
      spatialMergeSize: 2,
      temporalPatchSize: 2,
      hiddenAct: 'quick_gelu',
    },
    tokens: { eos: [1], visionStart: 290, visionEnd: 291, imagePad: 292, videoPad: 293 },
    preprocessor: {
      minPixels: 56 * 56,
      maxPixels: 28 * 28 * 1280,
      patchSize: 14,
      temporalPatchSize: 2,
      mergeSize: 2,
      imageMean: [0.48145466, 0.4578275, 0.40821073],
      imageStd: [0.26862954, 0.26130258, 0.27577711],
      rescaleFactor: 1 / 255,
    },
    generation: {},
  };
}

/** mulberry32 */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomArray(n: number, r: () => number, scale: number, offset = 0): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = offset + (r() * 2 - 1) * scale;
  return out;
}

export class MapWeights implements WeightSource {
  readonly map = new Map<string, { shape: number[]; data: Float32Array }>();
  readCount = 0;
  has(name: string): boolean {
    return this.map.has(name);
  }
  shape(name: string): number[] {
    return [...this.get(name).shape];
  }
  readFloat32(name: string): Float32Array {
    this.readCount++;
    return this.get(name).data.slice();
  }
  names(): string[] {
    return [...this.map.keys()];
  }
  get(name: string): { shape: number[]; data: Float32Array } {
    const t = this.map.get(name);
    if (!t) throw new Error(`no tensor ${name}`);
    return t;
  }
  data(name: string): Float32Array {
    return this.get(name).data;
  }
  set(name: string, shape: number[], data: Float32Array): void {
    this.map.set(name, { shape, data });
  }
}

/** Random weights in the canonical HF layout, scaled so activations stay O(1). */
export function randomWeights(cfg: Qwen2VLConfig, seed = 1): MapWeights {
  const r = rng(seed);
  const w = new MapWeights();
  const lin = (name: string, n: number, k: number, bias: boolean): void => {
    w.set(`${name}.weight`, [n, k], randomArray(n * k, r, 1.7 / Math.sqrt(k)));
    if (bias) w.set(`${name}.bias`, [n], randomArray(n, r, 0.1));
  };
  const norm = (name: string, n: number, bias: boolean): void => {
    w.set(`${name}.weight`, [n], randomArray(n, r, 0.2, 1));
    if (bias) w.set(`${name}.bias`, [n], randomArray(n, r, 0.1));
  };
  const t = cfg.text;
  const hd = t.headDim;
  w.set('model.embed_tokens.weight', [t.vocabSize, t.hiddenSize], randomArray(t.vocabSize * t.hiddenSize, r, 1));
  for (let i = 0; i < t.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    lin(`${p}.self_attn.q_proj`, t.numAttentionHeads * hd, t.hiddenSize, true);
    lin(`${p}.self_attn.k_proj`, t.numKeyValueHeads * hd, t.hiddenSize, true);
    lin(`${p}.self_attn.v_proj`, t.numKeyValueHeads * hd, t.hiddenSize, true);
    lin(`${p}.self_attn.o_proj`, t.hiddenSize, t.numAttentionHeads * hd, false);
    lin(`${p}.mlp.gate_proj`, t.intermediateSize, t.hiddenSize, false);
    lin(`${p}.mlp.up_proj`, t.intermediateSize, t.hiddenSize, false);
    lin(`${p}.mlp.down_proj`, t.hiddenSize, t.intermediateSize, false);
    norm(`${p}.input_layernorm`, t.hiddenSize, false);
    norm(`${p}.post_attention_layernorm`, t.hiddenSize, false);
  }
  norm('model.norm', t.hiddenSize, false);
  if (!t.tieWordEmbeddings) lin('lm_head', t.vocabSize, t.hiddenSize, false);
  const v = cfg.vision;
  const E = v.embedDim;
  const pd = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize;
  w.set('visual.patch_embed.proj.weight', [E, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize], randomArray(E * pd, r, 1.7 / Math.sqrt(pd)));
  for (let i = 0; i < v.depth; i++) {
    const p = `visual.blocks.${i}`;
    norm(`${p}.norm1`, E, true);
    norm(`${p}.norm2`, E, true);
    lin(`${p}.attn.qkv`, 3 * E, E, true);
    lin(`${p}.attn.proj`, E, E, true);
    lin(`${p}.mlp.fc1`, E * v.mlpRatio, E, true);
    lin(`${p}.mlp.fc2`, E, E * v.mlpRatio, true);
  }
  norm('visual.merger.ln_q', E, true);
  lin('visual.merger.mlp.0', 4 * E, 4 * E, true);
  lin('visual.merger.mlp.2', v.outHiddenSize, 4 * E, true);
  return w;
}

const tmpDirs: string[] = [];
process.on('exit', () => {
  if (process.env.KEEP_TEST_TMP) return;
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A fresh temp dir, removed when the process exits (unless KEEP_TEST_TMP is set). */
export function tmpDir(prefix: string): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  tmpDirs.push(d);
  return d;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export async function session(modelPath: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(modelPath, { intraOpNumThreads: 2, graphOptimizationLevel: 'all' });
}

// ---------------------------------------------------------------- float64 reference math

type F = Float64Array;
/** y[m, n] = x[m, k] W[n, k]^T + b */
export function refLinear(x: ArrayLike<number>, m: number, k: number, w: ArrayLike<number>, n: number, b?: ArrayLike<number>): F {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = b ? b[j]! : 0;
      for (let l = 0; l < k; l++) s += x[i * k + l]! * w[j * k + l]!;
      y[i * n + j] = s;
    }
  return y;
}

export function refLayerNorm(x: F, m: number, n: number, w: ArrayLike<number>, b: ArrayLike<number>, eps: number): F {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    let mean = 0;
    for (let j = 0; j < n; j++) mean += x[i * n + j]!;
    mean /= n;
    let v = 0;
    for (let j = 0; j < n; j++) v += (x[i * n + j]! - mean) ** 2;
    v /= n;
    const inv = 1 / Math.sqrt(v + eps);
    for (let j = 0; j < n; j++) y[i * n + j] = (x[i * n + j]! - mean) * inv * w[j]! + b[j]!;
  }
  return y;
}

export function refRmsNorm(x: F, m: number, n: number, w: ArrayLike<number>, eps: number): F {
  const y = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    let v = 0;
    for (let j = 0; j < n; j++) v += x[i * n + j]! ** 2;
    const inv = 1 / Math.sqrt(v / n + eps);
    for (let j = 0; j < n; j++) y[i * n + j] = x[i * n + j]! * inv * w[j]!;
  }
  return y;
}

/** In place: rows of [rows, heads, d] rotated with cos/sin [rows, d]. */
function refRotary(x: F, rows: number, heads: number, d: number, cos: ArrayLike<number>, sin: ArrayLike<number>): void {
  const half = d / 2;
  const tmp = new Float64Array(d);
  for (let r = 0; r < rows; r++)
    for (let h = 0; h < heads; h++) {
      const o = (r * heads + h) * d;
      for (let j = 0; j < d; j++) {
        const rot = j < half ? -x[o + j + half]! : x[o + j - half]!;
        tmp[j] = x[o + j]! * cos[r * d + j]! + rot * sin[r * d + j]!;
      }
      for (let j = 0; j < d; j++) x[o + j] = tmp[j]!;
    }
}

/** softmax attention; q [sq, nH, d], k/v [sk, kvH, d]; causal offset: query i sees keys <= i + (sk - sq). */
function refAttention(q: F, k: F, v: F, sq: number, sk: number, nH: number, kvH: number, d: number, causal: boolean): F {
  const out = new Float64Array(sq * nH * d);
  const grp = nH / kvH;
  const scale = 1 / Math.sqrt(d);
  const sc = new Float64Array(sk);
  for (let h = 0; h < nH; h++) {
    const kh = Math.floor(h / grp);
    for (let i = 0; i < sq; i++) {
      const lim = causal ? i + (sk - sq) : sk - 1;
      let mx = -Infinity;
      for (let j = 0; j <= lim; j++) {
        let s = 0;
        for (let l = 0; l < d; l++) s += q[(i * nH + h) * d + l]! * k[(j * kvH + kh) * d + l]!;
        sc[j] = s * scale;
        mx = Math.max(mx, sc[j]!);
      }
      let z = 0;
      for (let j = 0; j <= lim; j++) {
        sc[j] = Math.exp(sc[j]! - mx);
        z += sc[j]!;
      }
      for (let j = 0; j <= lim; j++) {
        const p = sc[j]! / z;
        for (let l = 0; l < d; l++) out[(i * nH + h) * d + l] = out[(i * nH + h) * d + l]! + p * v[(j * kvH + kh) * d + l]!;
      }
    }
  }
  return out;
}

const erf = (x: number): number => {
  // Abramowitz-Stegun 7.1.26 is too coarse; use a series/continued fraction good to ~1e-12.
  const t = Math.abs(x);
  if (t < 2.5) {
    let sum = t, term = t;
    for (let n = 1; n < 60; n++) {
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction
  let f = 0;
  for (let n = 60; n >= 1; n--) f = (n / 2) / (t + f);
  const erfc = Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f);
  return Math.sign(x) * (1 - erfc);
};

export function refVision(cfg: Qwen2VLConfig, w: MapWeights, pixels: Float32Array, cos: Float32Array, sin: Float32Array): F {
  const v = cfg.vision;
  const E = v.embedDim, H = v.numHeads, D = E / H, M = E * v.mlpRatio;
  const pd = pixels.length / (cos.length / D);
  const N = cos.length / D;
  let x = refLinear(pixels, N, pd, w.data('visual.patch_embed.proj.weight'), E);
  for (let i = 0; i < v.depth; i++) {
    const p = `visual.blocks.${i}`;
    const h = refLayerNorm(x, N, E, w.data(`${p}.norm1.weight`), w.data(`${p}.norm1.bias`), 1e-6);
    const qkv = refLinear(h, N, E, w.data(`${p}.attn.qkv.weight`), 3 * E, w.data(`${p}.attn.qkv.bias`));
    const q = new Float64Array(N * E), k = new Float64Array(N * E), vv = new Float64Array(N * E);
    for (let r = 0; r < N; r++)
      for (let j = 0; j < E; j++) {
        q[r * E + j] = qkv[r * 3 * E + j]!;
        k[r * E + j] = qkv[r * 3 * E + E + j]!;
        vv[r * E + j] = qkv[r * 3 * E + 2 * E + j]!;
      }
    refRotary(q, N, H, D, cos, sin);
    refRotary(k, N, H, D, cos, sin);
    const att = refAttention(q, k, vv, N, N, H, H, D, false);
    const proj = refLinear(att, N, E, w.data(`${p}.attn.proj.weight`), E, w.data(`${p}.attn.proj.bias`));
    x = x.map((a, j) => a + proj[j]!);
    const h2 = refLayerNorm(x, N, E, w.data(`${p}.norm2.weight`), w.data(`${p}.norm2.bias`), 1e-6);
    const f1 = refLinear(h2, N, E, w.data(`${p}.mlp.fc1.weight`), M, w.data(`${p}.mlp.fc1.bias`));
    const act = f1.map((a) => a / (1 + Math.exp(-1.702 * a)));
    const f2 = refLinear(act, N, M, w.data(`${p}.mlp.fc2.weight`), E, w.data(`${p}.mlp.fc2.bias`));
    x = x.map((a, j) => a + f2[j]!);
  }
  const ln = refLayerNorm(x, N, E, w.data('visual.merger.ln_q.weight'), w.data('visual.merger.ln_q.bias'), 1e-6);
  const m0 = refLinear(ln, N / 4, 4 * E, w.data('visual.merger.mlp.0.weight'), 4 * E, w.data('visual.merger.mlp.0.bias'));
  const g = m0.map((a) => 0.5 * a * (1 + erf(a / Math.SQRT2)));
  return refLinear(g, N / 4, 4 * E, w.data('visual.merger.mlp.2.weight'), v.outHiddenSize, w.data('visual.merger.mlp.2.bias'));
}

/** Plain text RoPE table (all three M-RoPE axes equal): rows = positions, [S, headDim]. */
export function ropeTable(positions: readonly number[], headDim: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const cos = new Float32Array(positions.length * headDim), sin = new Float32Array(positions.length * headDim);
  const half = headDim / 2;
  positions.forEach((p, r) => {
    for (let j = 0; j < half; j++) {
      const a = p / Math.pow(theta, (2 * j) / headDim);
      cos[r * headDim + j] = cos[r * headDim + half + j] = Math.cos(a);
      sin[r * headDim + j] = sin[r * headDim + half + j] = Math.sin(a);
    }
  });
  return { cos, sin };
}

/** Full-sequence float64 forward of one sequence; returns logits [S, vocab]. */
export function refDecoder(
  cfg: Qwen2VLConfig,
  w: MapWeights,
  ids: readonly number[],
  cos: Float32Array,
  sin: Float32Array,
  image?: { rows: readonly number[]; embeds: Float32Array },
): F {
  const t = cfg.text;
  const S = ids.length, Hd = t.hiddenSize, nH = t.numAttentionHeads, kvH = t.numKeyValueHeads, D = t.headDim, I = t.intermediateSize;
  const emb = w.data('model.embed_tokens.weight');
  let x = new Float64Array(S * Hd);
  ids.forEach((id, r) => {
    for (let j = 0; j < Hd; j++) x[r * Hd + j] = emb[id * Hd + j]!;
  });
  image?.rows.forEach((row, m) => {
    for (let j = 0; j < Hd; j++) x[row * Hd + j] = image.embeds[m * Hd + j]!;
  });
  for (let i = 0; i < t.numHiddenLayers; i++) {
    const p = `model.layers.${i}`;
    const h = refRmsNorm(x, S, Hd, w.data(`${p}.input_layernorm.weight`), t.rmsNormEps);
    const q = refLinear(h, S, Hd, w.data(`${p}.self_attn.q_proj.weight`), nH * D, w.data(`${p}.self_attn.q_proj.bias`));
    const k = refLinear(h, S, Hd, w.data(`${p}.self_attn.k_proj.weight`), kvH * D, w.data(`${p}.self_attn.k_proj.bias`));
    const v = refLinear(h, S, Hd, w.data(`${p}.self_attn.v_proj.weight`), kvH * D, w.data(`${p}.self_attn.v_proj.bias`));
    refRotary(q, S, nH, D, cos, sin);
    refRotary(k, S, kvH, D, cos, sin);
    const att = refAttention(q, k, v, S, S, nH, kvH, D, true);
    const o = refLinear(att, S, nH * D, w.data(`${p}.self_attn.o_proj.weight`), Hd);
    x = x.map((a, j) => a + o[j]!);
    const h2 = refRmsNorm(x, S, Hd, w.data(`${p}.post_attention_layernorm.weight`), t.rmsNormEps);
    const gate = refLinear(h2, S, Hd, w.data(`${p}.mlp.gate_proj.weight`), I);
    const up = refLinear(h2, S, Hd, w.data(`${p}.mlp.up_proj.weight`), I);
    const prod = gate.map((g, j) => (g / (1 + Math.exp(-g))) * up[j]!);
    const down = refLinear(prod, S, I, w.data(`${p}.mlp.down_proj.weight`), Hd);
    x = x.map((a, j) => a + down[j]!);
  }
  const n = refRmsNorm(x, S, Hd, w.data('model.norm.weight'), t.rmsNormEps);
  const lm = w.has('lm_head.weight') && !t.tieWordEmbeddings ? w.data('lm_head.weight') : emb;
  return refLinear(n, S, Hd, lm, t.vocabSize);
}

// ---------------------------------------------------------------- decoder runner

export interface DecoderStep {
  /** [B][S] token ids. */
  ids: number[][];
  /** Positions [B][S] used to build the rope tables (text-only RoPE). */
  positions: number[][];
  seqlensK: number[];
  totalLen: number;
  logitsIndex: number[];
  image?: { rows: number[]; embeds: Float32Array };
}

/** Per-layer K and V tensors [B, kvH, maxLen, D]. */
export function makeKv(cfg: Qwen2VLConfig, batch: number, maxLen: number): ort.Tensor[] {
  const t = cfg.text;
  const out: ort.Tensor[] = [];
  for (let i = 0; i < 2 * t.numHiddenLayers; i++) {
    const dims = [batch, t.numKeyValueHeads, maxLen, t.headDim];
    out.push(new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims));
  }
  return out;
}

/**
 * One decoder run. Like the engine's KvPool, writes the run's key_rows/value_rows into `past`
 * ([B, kvH, maxLen, D] per layer, maxLen >= totalLen) at each row's position, so `past` is the
 * cache for the next run; it is also returned as `present`.
 */
export async function runDecoder(
  sess: ort.InferenceSession,
  cfg: Qwen2VLConfig,
  step: DecoderStep,
  past: ort.Tensor[],
): Promise<{ logits: Float32Array; present: ort.Tensor[] }> {
  const t = cfg.text;
  const B = step.ids.length;
  const S = step.ids[0]!.length;
  const D = t.headDim;
  const kvH = t.numKeyValueHeads;
  const cos = new Float32Array(B * S * D), sin = new Float32Array(B * S * D);
  step.positions.forEach((row, b) => {
    const tab = ropeTable(row, D, t.ropeTheta);
    cos.set(tab.cos, b * S * D);
    sin.set(tab.sin, b * S * D);
  });
  const M = step.image?.rows.length ?? 0;
  const feeds: Record<string, ort.Tensor> = {
    input_ids: new ort.Tensor('int64', BigInt64Array.from(step.ids.flat().map(BigInt)), [B, S]),
    image_embeds: new ort.Tensor('float32', step.image?.embeds ?? new Float32Array(0), [M, t.hiddenSize]),
    image_token_index: new ort.Tensor('int64', BigInt64Array.from((step.image?.rows ?? []).map(BigInt)), [M]),
    rope_cos: new ort.Tensor('float32', cos, [B, S, D]),
    rope_sin: new ort.Tensor('float32', sin, [B, S, D]),
    seqlens_k: new ort.Tensor('int32', Int32Array.from(step.seqlensK), [B]),
    total_sequence_length: new ort.Tensor('int32', Int32Array.of(step.totalLen), []),
    logits_index: new ort.Tensor('int64', BigInt64Array.from(step.logitsIndex.map(BigInt)), [step.logitsIndex.length]),
  };
  for (let i = 0; i < t.numHiddenLayers; i++) {
    feeds[`past_key_values.${i}.key`] = past[2 * i]!;
    feeds[`past_key_values.${i}.value`] = past[2 * i + 1]!;
  }
  const fetches = decoderFetches(cfg);
  const out = await sess.run(feeds, fetches);
  appendRows(cfg, past, out, step.seqlensK, S);
  return { logits: out.logits!.data as Float32Array, present: past };
}

/** logits plus the run's new K/V rows (what the engine fetches). */
export function decoderFetches(cfg: Qwen2VLConfig): Record<string, null> {
  const fetches: Record<string, null> = { logits: null };
  for (let i = 0; i < cfg.text.numHiddenLayers; i++) fetches[`key_rows.${i}`] = fetches[`value_rows.${i}`] = null;
  return fetches;
}

/** Writes a run's key_rows/value_rows into the cache tensors `past` at each row's position (as KvPool does). */
export function appendRows(cfg: Qwen2VLConfig, past: ort.Tensor[], out: ort.InferenceSession.ReturnType, seqlensK: readonly number[], S: number): void {
  const kvH = cfg.text.numKeyValueHeads;
  const D = cfg.text.headDim;
  for (let i = 0; i < past.length; i++) {
    const cache = past[i]!;
    const maxLen = cache.dims[2]!;
    const rows = out[`${i % 2 ? 'value' : 'key'}_rows.${i >> 1}`]!.data as Float32Array; // [B, S, kvH*D]
    const dst = cache.data as Float32Array;
    seqlensK.forEach((k, b) => {
      const start = Math.max(0, k + 1 - S); // 0: a right-padded first prompt
      if (start + S > maxLen) throw new Error(`KV buffer of ${maxLen} cannot hold ${start + S} tokens`);
      for (let s = 0; s < S; s++) {
        for (let h = 0; h < kvH; h++) {
          const from = ((b * S + s) * kvH + h) * D;
          dst.set(rows.subarray(from, from + D), ((b * kvH + h) * maxLen + start + s) * D);
        }
      }
    });
  }
}

export const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
