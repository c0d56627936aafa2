/**
 * Writes a random-weight Qwen2-VL checkpoint in exactly the Hugging Face layout UI-TARS-2B
 * ships (classic tensor names, tied embeddings so no lm_head.weight, config.json keys of
 * Qwen2-VL-2B-Instruct, byte-level BPE tokenizer.json with Qwen2-VL's special tokens,
 * chat template, preprocessor and generation configs).
 *
 * Weights come from a seeded PRNG, one stream per tensor name, so values do not depend on
 * dtype, sharding or write order. Tensors are generated and written in chunks, so even the
 * full-size f32 checkpoint (~8.9 GB) never sits in memory.
 */
import fs from 'node:fs';
import path from 'node:path';
import { expectedTensors, type ExpectedTensor } from './checkpoint.ts';
import { parseQwen2VLConfig, CLIP_MEAN, CLIP_STD } from './hf-config.ts';
import { Rng } from '../../common/prng.ts';
import { QWEN2_VL_CHAT_TEMPLATE } from './qwen2-vl-chat-template.ts';
import { writeSafetensorsStreaming, type TensorSpec } from './safetensors-writer.ts';
import {
  BPE_CORPUS,
  buildTokenizerFiles,
  QWEN2_BASE_VOCAB,
  trainBpe,
  type TokenizerFiles,
} from './tokenizer-gen.ts';
import type { Qwen2VLConfig, StoredDType } from './types.ts';

export type CheckpointSize = 'tiny' | 'full';
export type GenerateDType = 'f32' | 'bf16';

export interface GenerateOptions {
  out: string;
  size?: CheckpointSize; // default tiny
  seed?: number; // default 0
  dtype?: GenerateDType; // default f32
  shards?: number; // default 1 (model.safetensors); N > 1 writes an index
  /** Replace an existing checkpoint folder at `out`. */
  force?: boolean;
  onProgress?: (message: string) => void;
}

export interface GeneratedCheckpoint {
  dir: string;
  config: Qwen2VLConfig;
  tensors: ExpectedTensor[];
  /** Bytes of tensor data written (the index's total_size). */
  totalBytes: number;
  files: string[];
}

/** Bumped whenever the generator's output changes for the same options. */
export const GENERATOR_VERSION = 2;
export const GENERATOR_MARKER = 'generator.json';

/** Sizes of each model size (text + vision). */
interface SizeSpec {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  mropeSection: [number, number, number];
  visionDepth: number;
  visionEmbed: number;
  visionHeads: number;
  /** BPE merges (base vocab = 256 + merges). */
  merges: number;
  /** vocab_size in config.json (>= tokenizer size, padded like the real model). */
  vocabSize: (totalTokens: number) => number;
}

const SIZES: Record<CheckpointSize, SizeSpec> = {
  full: {
    hidden: 1536,
    layers: 28,
    heads: 12,
    kvHeads: 2,
    intermediate: 8960,
    mropeSection: [16, 24, 24],
    visionDepth: 32,
    visionEmbed: 1280,
    visionHeads: 16,
    merges: QWEN2_BASE_VOCAB - 256,
    vocabSize: () => 151936,
  },
  tiny: {
    hidden: 64,
    layers: 2,
    heads: 4,
    kvHeads: 2,
    intermediate: 128,
    mropeSection: [2, 3, 3],
    visionDepth: 2,
    visionEmbed: 32,
    visionHeads: 2,
    merges: 400,
    vocabSize: (total) => Math.ceil(total / 128) * 128,
  },
};

const tokenizerCache = new Map<CheckpointSize, TokenizerFiles>();

/** The tokenizer files of a generated checkpoint (deterministic; cached per size). */
export function generatedTokenizer(size: CheckpointSize): TokenizerFiles {
  let t = tokenizerCache.get(size);
  if (!t) {
    const spec = SIZES[size];
    t = buildTokenizerFiles(trainBpe(BPE_CORPUS, spec.merges));
    tokenizerCache.set(size, t);
  }
  return t;
}

export interface GeneratedConfigFiles {
  config: Record<string, unknown>;
  generationConfig: Record<string, unknown>;
  preprocessorConfig: Record<string, unknown>;
  tokenizer: TokenizerFiles;
}

/** config.json, generation_config.json and preprocessor_config.json as Qwen2-VL-2B-Instruct writes them. */
export function generatedConfigFiles(size: CheckpointSize, dtype: GenerateDType = 'f32'): GeneratedConfigFiles {
  const s = SIZES[size];
  const tok = generatedTokenizer(size);
  const id = tok.specialIds;
  const config = {
    architectures: ['Qwen2VLForConditionalGeneration'],
    attention_dropout: 0.0,
    bos_token_id: id['<|endoftext|>'],
    eos_token_id: id['<|im_end|>'],
    vision_start_token_id: id['<|vision_start|>'],
    vision_end_token_id: id['<|vision_end|>'],
    vision_token_id: id['<|vision_pad|>'],
    image_token_id: id['<|image_pad|>'],
    video_token_id: id['<|video_pad|>'],
    hidden_act: 'silu',
    hidden_size: s.hidden,
    initializer_range: 0.02,
    intermediate_size: s.intermediate,
    max_position_embeddings: 32768,
    max_window_layers: s.layers,
    model_type: 'qwen2_vl',
    num_attention_heads: s.heads,
    num_hidden_layers: s.layers,
    num_key_value_heads: s.kvHeads,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    sliding_window: 32768,
    tie_word_embeddings: true,
    torch_dtype: dtype === 'bf16' ? 'bfloat16' : 'float32',
    transformers_version: '4.45.0',
    use_cache: true,
    use_sliding_window: false,
    vision_config: {
      depth: s.visionDepth,
      embed_dim: s.visionEmbed,
      mlp_ratio: 4,
      num_heads: s.visionHeads,
      in_chans: 3,
      hidden_size: s.hidden,
      patch_size: 14,
      spatial_merge_size: 2,
      spatial_patch_size: 14,
      temporal_patch_size: 2,
    },
    rope_scaling: { type: 'mrope', mrope_section: [...s.mropeSection] },
    vocab_size: s.vocabSize(tok.totalTokens),
  };
  const generationConfig = {
    bos_token_id: id['<|endoftext|>'],
    pad_token_id: id['<|endoftext|>'],
    do_sample: true,
    eos_token_id: [id['<|im_end|>'], id['<|endoftext|>']],
    repetition_penalty: 1.0,
    temperature: 0.01,
    top_p: 0.001,
    top_k: 1,
    transformers_version: '4.45.0',
  };
  const preprocessorConfig = {
    min_pixels: 3136,
    max_pixels: 12845056,
    patch_size: 14,
    temporal_patch_size: 2,
    merge_size: 2,
    image_mean: [...CLIP_MEAN],
    image_std: [...CLIP_STD],
    image_processor_type: 'Qwen2VLImageProcessor',
    processor_class: 'Qwen2VLProcessor',
  };
  return { config, generationConfig, preprocessorConfig, tokenizer: tok };
}

/**
 * How a tensor's random values are drawn. Matrices get std 2/sqrt(fan_in), so activations
 * keep their scale through the layers and the (tied) output logits are far from uniform:
 * a near-uniform model would make greedy-token comparisons in tests meaningless.
 */
function initFor(spec: TensorSpec): { mean: number; std: number } {
  const { name, shape } = spec;
  if (/(layernorm|norm1|norm2|ln_q|model\.norm)\.weight$/.test(name)) return { mean: 1, std: 0.02 };
  if (name.endsWith('.bias')) return { mean: 0, std: 0.02 };
  if (name.endsWith('embed_tokens.weight')) return { mean: 0, std: 0.5 };
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  return { mean: 0, std: 2 / Math.sqrt(fanIn) };
}

const CHUNK = 1 << 20;

/** Emits a tensor's values in chunks (same values whatever the dtype or shard). */
function fillTensor(seed: number, spec: TensorSpec, emit: (chunk: Float32Array) => void): void {
  const rng = Rng.forName(seed, spec.name);
  const { mean, std } = initFor(spec);
  let n = spec.shape.reduce((a, b) => a * b, 1);
  const buf = new Float32Array(Math.min(n, CHUNK));
  while (n > 0) {
    const k = Math.min(n, CHUNK);
    const view = buf.subarray(0, k);
    rng.fillNormal(view, mean, std);
    emit(view);
    n -= k;
  }
}

/** The float32 values the generator writes for one tensor (for tests). */
export function generatedTensorValues(seed: number, spec: TensorSpec): Float32Array {
  const out = new Float32Array(spec.shape.reduce((a, b) => a * b, 1));
  let off = 0;
  fillTensor(seed, spec, (c) => {
    out.set(c, off);
    off += c.length;
  });
  return out;
}

function bytesOf(spec: TensorSpec, dtype: StoredDType): number {
  return spec.shape.reduce((a, b) => a * b, 1) * (dtype === 'F32' ? 4 : 2);
}

/** Splits tensors (in order) into `n` non-empty groups of roughly equal bytes. */
function splitShards(specs: ExpectedTensor[], n: number, dtype: StoredDType): ExpectedTensor[][] {
  const total = specs.reduce((a, s) => a + bytesOf(s, dtype), 0);
  const target = total / n;
  const groups: ExpectedTensor[][] = [[]];
  let acc = 0;
  specs.forEach((s, i) => {
    const cur = groups[groups.length - 1]!;
    const remainingTensors = specs.length - i;
    const shardsAfter = n - groups.length;
    if (cur.length > 0 && shardsAfter > 0 && (acc >= target || remainingTensors <= shardsAfter)) {
      groups.push([]);
      acc = 0;
    }
    groups[groups.length - 1]!.push(s);
    acc += bytesOf(s, dtype);
  });
  return groups;
}

function writeJson(file: string, value: unknown): void {
  fs.writeFileSync(file, JSON.stringify(value, null, 2) + '\n');
}

/** Empties `out` for writing, refusing to delete a folder that is not a checkpoint. */
function prepareOut(out: string, force: boolean): void {
  if (fs.existsSync(out)) {
    if (!fs.statSync(out).isDirectory()) throw new Error(`--out ${out} exists and is not a folder`);
    const entries = fs.readdirSync(out);
    if (entries.length > 0) {
      if (!force) throw new Error(`${out} is not empty (use --force to replace the checkpoint there)`);
      if (!entries.includes('config.json') && !entries.includes(GENERATOR_MARKER)) {
        throw new Error(`${out} is not empty and holds no checkpoint; refusing to delete it even with --force`);
      }
      fs.rmSync(out, { recursive: true, force: true });
    }
  }
  fs.mkdirSync(out, { recursive: true });
}

/** Writes a checkpoint folder. */
export async function generateCheckpoint(opts: GenerateOptions): Promise<GeneratedCheckpoint> {
  const size = opts.size ?? 'tiny';
  const seed = opts.seed ?? 0;
  const dtype = opts.dtype ?? 'f32';
  const shards = opts.shards ?? 1;
  if (!(size in SIZES)) throw new Error(`unknown size ${size} (tiny or full)`);
  if (dtype !== 'f32' && dtype !== 'bf16') throw new Error(`unknown dtype ${dtype} (f32 or bf16)`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`seed must be an integer in [0, 2^32)`);
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`shards must be a positive integer`);
  const progress = opts.onProgress ?? (() => {});
  const out = path.resolve(opts.out);
  prepareOut(out, opts.force ?? false);

  const files = generatedConfigFiles(size, dtype);
  const config = parseQwen2VLConfig({
    config: files.config,
    preprocessor: files.preprocessorConfig,
    generation: files.generationConfig,
  });
  const tensors = expectedTensors(config);
  if (shards > tensors.length) throw new Error(`shards ${shards} exceeds the ${tensors.length} tensors`);
  const stDtype: StoredDType = dtype === 'bf16' ? 'BF16' : 'F32';
  const written: string[] = [];
  const put = (name: string, value: unknown) => {
    writeJson(path.join(out, name), value);
    written.push(name);
  };

  put('config.json', files.config);
  put('generation_config.json', files.generationConfig);
  put('preprocessor_config.json', files.preprocessorConfig);
  put('tokenizer.json', files.tokenizer.tokenizerJson);
  put('tokenizer_config.json', files.tokenizer.tokenizerConfig);
  put('chat_template.json', { chat_template: QWEN2_VL_CHAT_TEMPLATE });

  const totalBytes = tensors.reduce((a, s) => a + bytesOf(s, stDtype), 0);
  let done = 0;
  const fill = (spec: TensorSpec, emit: (c: Float32Array) => void) => {
    fillTensor(seed, spec, emit);
    done += bytesOf(spec, stDtype);
    progress(`${spec.name} [${spec.shape.join(', ')}] ${((100 * done) / totalBytes).toFixed(1)}%`);
  };
  const metadata = { format: 'pt' };
  if (shards === 1) {
    writeSafetensorsStreaming(path.join(out, 'model.safetensors'), tensors, stDtype, fill, metadata);
    written.push('model.safetensors');
  } else {
    const groups = splitShards(tensors, shards, stDtype);
    const weightMap: Record<string, string> = {};
    const width = 5;
    groups.forEach((g, i) => {
      const name = `model-${String(i + 1).padStart(width, '0')}-of-${String(groups.length).padStart(width, '0')}.safetensors`;
      writeSafetensorsStreaming(path.join(out, name), g, stDtype, fill, metadata);
      for (const t of g) weightMap[t.name] = name;
      written.push(name);
    });
    const sorted: Record<string, string> = {};
    for (const k of Object.keys(weightMap).sort()) sorted[k] = weightMap[k]!;
    put('model.safetensors.index.json', { metadata: { total_size: totalBytes }, weight_map: sorted });
  }
  put(GENERATOR_MARKER, {
    generator: 'uitars-osworld generate-checkpoint',
    version: GENERATOR_VERSION,
    size,
    seed,
    dtype,
    shards,
    note: 'random weights: for tests and benchmarks only',
  });
  return { dir: out, config, tensors, totalBytes, files: written };
}
