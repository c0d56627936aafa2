/**
 * Reads a Qwen2-VL checkpoint's config.json, preprocessor_config.json and
 * generation_config.json into `Qwen2VLConfig`. The snake_case wire names live only here.
 *
 * Accepts both config.json layouts:
 * - classic (transformers < 4.52, as Qwen2-VL-2B and UI-TARS-2B ship): text keys at the top
 *   level, `vision_config` nested, `rope_scaling: {type: "mrope", mrope_section}`;
 * - newer: text keys in `text_config` (rope in `rope_scaling` or `rope_parameters`).
 * Defaults follow Hugging Face's Qwen2VLConfig / Qwen2VLImageProcessor where a key is optional.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CheckpointError } from './safetensors.ts';
import type {
  GenerationDefaults,
  PreprocessorConfig,
  Qwen2VLConfig,
  SpecialTokenIds,
  TextConfig,
  VisionConfig,
} from './types.ts';

type Json = Record<string, unknown>;

/** CLIP's normalisation, Qwen2VLImageProcessor's default. */
export const CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
export const CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];
export const DEFAULT_MIN_PIXELS = 56 * 56;
export const DEFAULT_MAX_PIXELS = 28 * 28 * 1280;

function isObject(v: unknown): v is Json {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Reads a JSON object file; `undefined` when absent and optional. */
export function readJsonFile(file: string, optional: true): Json | undefined;
export function readJsonFile(file: string, optional?: false): Json;
export function readJsonFile(file: string, optional = false): Json | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    if (optional) return undefined;
    throw new CheckpointError(`missing ${path.basename(file)}: ${file}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`corrupt ${path.basename(file)}: invalid JSON in ${file} (${(e as Error).message})`);
  }
  if (!isObject(v)) throw new CheckpointError(`corrupt ${path.basename(file)}: ${file} is not a JSON object`);
  return v;
}

class KeyReader {
  constructor(
    private readonly file: string,
    private readonly scopes: { prefix: string; obj: Json }[],
  ) {}

  private find(key: string): { value: unknown; where: string } | undefined {
    for (const s of this.scopes) {
      if (s.obj[key] !== undefined && s.obj[key] !== null) return { value: s.obj[key], where: s.prefix + key };
    }
    return undefined;
  }

  private label(key: string): string {
    return this.scopes.map((s) => s.prefix + key).join(' or ');
  }

  num(key: string, def?: number, opts: { int?: boolean; positive?: boolean } = {}): number {
    const f = this.find(key);
    if (!f) {
      if (def === undefined) throw new CheckpointError(`${this.file}: missing required key ${this.label(key)}`);
      return def;
    }
    const v = f.value;
    if (typeof v !== 'number' || !Number.isFinite(v)) {
      throw new CheckpointError(`${this.file}: key ${f.where} must be a number, found ${JSON.stringify(v)}`);
    }
    if (opts.int && !Number.isInteger(v)) throw new CheckpointError(`${this.file}: key ${f.where} must be an integer, found ${v}`);
    if (opts.positive && !(v > 0)) throw new CheckpointError(`${this.file}: key ${f.where} must be positive, found ${v}`);
    return v;
  }

  int(key: string, def?: number): number {
    return this.num(key, def, { int: true, positive: true });
  }

  optInt(key: string): number | undefined {
    const f = this.find(key);
    if (!f) return undefined;
    if (typeof f.value !== 'number' || !Number.isInteger(f.value)) {
      throw new CheckpointError(`${this.file}: key ${f.where} must be an integer, found ${JSON.stringify(f.value)}`);
    }
    return f.value;
  }

  str(key: string, def: string): string {
    const f = this.find(key);
    if (!f) return def;
    if (typeof f.value !== 'string') throw new CheckpointError(`${this.file}: key ${f.where} must be a string`);
    return f.value;
  }

  bool(key: string, def: boolean): boolean {
    const f = this.find(key);
    if (!f) return def;
    if (typeof f.value !== 'boolean') throw new CheckpointError(`${this.file}: key ${f.where} must be true or false`);
    return f.value;
  }

  obj(key: string): Json | undefined {
    const f = this.find(key);
    if (!f) return undefined;
    if (!isObject(f.value)) throw new CheckpointError(`${this.file}: key ${f.where} must be an object`);
    return f.value;
  }

  /** A number or a list of numbers (eos_token_id). */
  ids(key: string): number[] | undefined {
    const f = this.find(key);
    if (!f) return undefined;
    const v = f.value;
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0)) {
      throw new CheckpointError(`${this.file}: key ${f.where} must be a token id or a list of them, found ${JSON.stringify(v)}`);
    }
    return list as number[];
  }

  triple(key: string, def: [number, number, number]): [number, number, number] {
    const f = this.find(key);
    if (!f) return def;
    const v = f.value;
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) {
      throw new CheckpointError(`${this.file}: key ${f.where} must be a list of 3 numbers, found ${JSON.stringify(v)}`);
    }
    return [v[0], v[1], v[2]];
  }
}

export interface ConfigSources {
  /** config.json contents. */
  config: unknown;
  preprocessor?: unknown;
  generation?: unknown;
  /** Names used in error messages (default: the file names). */
  configName?: string;
  preprocessorName?: string;
  generationName?: string;
}

/** Pure: builds `Qwen2VLConfig` from the parsed JSON files. Throws CheckpointError. */
export function parseQwen2VLConfig(src: ConfigSources): Qwen2VLConfig {
  const cfgName = src.configName ?? 'config.json';
  if (!isObject(src.config)) throw new CheckpointError(`${cfgName}: not a JSON object`);
  const cfg = src.config;
  const modelType = cfg.model_type;
  if (modelType !== 'qwen2_vl') {
    throw new CheckpointError(
      `${cfgName}: unsupported model_type ${JSON.stringify(modelType ?? null)} (architectures ${JSON.stringify(cfg.architectures ?? null)}); this server runs qwen2_vl (Qwen2VLForConditionalGeneration, e.g. UI-TARS-2B)`,
    );
  }
  const top = new KeyReader(cfgName, [{ prefix: '', obj: cfg }]);
  const textCfg = top.obj('text_config');
  // Newer layout: text keys in text_config, falling back to the top level; classic: top level.
  const textScopes = textCfg ? [{ prefix: 'text_config.', obj: textCfg }, { prefix: '', obj: cfg }] : [{ prefix: '', obj: cfg }];
  const t = new KeyReader(cfgName, textScopes);

  const hiddenSize = t.int('hidden_size');
  const numAttentionHeads = t.int('num_attention_heads');
  const numKeyValueHeads = t.int('num_key_value_heads', numAttentionHeads);
  if (hiddenSize % numAttentionHeads !== 0) {
    throw new CheckpointError(`${cfgName}: hidden_size ${hiddenSize} is not a multiple of num_attention_heads ${numAttentionHeads}`);
  }
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    throw new CheckpointError(
      `${cfgName}: num_attention_heads ${numAttentionHeads} is not a multiple of num_key_value_heads ${numKeyValueHeads}`,
    );
  }
  const headDim = t.int('head_dim', hiddenSize / numAttentionHeads);

  const ropeScaling = t.obj('rope_scaling');
  const ropeParams = t.obj('rope_parameters');
  const ropeReaders: { prefix: string; obj: Json }[] = [];
  const textPrefix = textCfg ? 'text_config.' : '';
  if (ropeScaling) ropeReaders.push({ prefix: `${textPrefix}rope_scaling.`, obj: ropeScaling });
  if (ropeParams) ropeReaders.push({ prefix: `${textPrefix}rope_parameters.`, obj: ropeParams });
  if (ropeReaders.length === 0) {
    throw new CheckpointError(`${cfgName}: missing required key rope_scaling.mrope_section (M-RoPE sections)`);
  }
  const rope = new KeyReader(cfgName, ropeReaders);
  const mrope = rope.triple('mrope_section', [-1, -1, -1]);
  if (mrope[0] < 0) throw new CheckpointError(`${cfgName}: missing required key rope_scaling.mrope_section (M-RoPE sections)`);
  if (!mrope.every((x) => Number.isInteger(x) && x > 0) || mrope[0] + mrope[1] + mrope[2] !== headDim / 2) {
    throw new CheckpointError(
      `${cfgName}: mrope_section ${JSON.stringify(mrope)} must be positive integers summing to head_dim/2 = ${headDim / 2}`,
    );
  }
  const ropeTheta = ropeParams?.rope_theta !== undefined ? rope.num('rope_theta', 1e6) : t.num('rope_theta', 1e6);

  const text: TextConfig = {
    vocabSize: t.int('vocab_size'),
    hiddenSize,
    intermediateSize: t.int('intermediate_size'),
    numHiddenLayers: t.int('num_hidden_layers'),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: t.num('rms_norm_eps', 1e-5, { positive: true }),
    ropeTheta,
    mropeSection: mrope,
    maxPositionEmbeddings: t.int('max_position_embeddings', 32768),
    // tie_word_embeddings sits at the top level in both layouts; HF's default is false.
    tieWordEmbeddings: new KeyReader(cfgName, [{ prefix: '', obj: cfg }, ...(textCfg ? [{ prefix: 'text_config.', obj: textCfg }] : [])]).bool(
      'tie_word_embeddings',
      false,
    ),
    hiddenAct: t.str('hidden_act', 'silu'),
  };

  const vcfg = top.obj('vision_config');
  if (!vcfg) throw new CheckpointError(`${cfgName}: missing required key vision_config`);
  const v = new KeyReader(cfgName, [{ prefix: 'vision_config.', obj: vcfg }]);
  const embedDim = v.int('embed_dim', 1280);
  const numHeads = v.int('num_heads', 16);
  if (embedDim % numHeads !== 0) {
    throw new CheckpointError(`${cfgName}: vision_config.embed_dim ${embedDim} is not a multiple of vision_config.num_heads ${numHeads}`);
  }
  const vision: VisionConfig = {
    depth: v.int('depth', 32),
    embedDim,
    numHeads,
    mlpRatio: v.num('mlp_ratio', 4, { positive: true }),
    inChannels: vcfg.in_channels !== undefined ? v.int('in_channels') : v.int('in_chans', 3),
    outHiddenSize: v.int('hidden_size', hiddenSize),
    patchSize: v.int('patch_size', 14),
    spatialMergeSize: v.int('spatial_merge_size', 2),
    temporalPatchSize: v.int('temporal_patch_size', 2),
    hiddenAct: v.str('hidden_act', 'quick_gelu'),
  };
  if (!Number.isInteger(embedDim * vision.mlpRatio)) {
    throw new CheckpointError(`${cfgName}: vision_config.embed_dim * mlp_ratio must be an integer`);
  }
  if (vision.outHiddenSize !== hiddenSize) {
    throw new CheckpointError(
      `${cfgName}: vision_config.hidden_size ${vision.outHiddenSize} must equal the language model's hidden_size ${hiddenSize}`,
    );
  }

  // Token ids: generation_config.json first (what generate() uses), then config.json.
  const genName = src.generationName ?? 'generation_config.json';
  const gen = isObject(src.generation) ? src.generation : {};
  if (src.generation !== undefined && !isObject(src.generation)) throw new CheckpointError(`${genName}: not a JSON object`);
  const g = new KeyReader(genName, [{ prefix: '', obj: gen }]);
  const eos = g.ids('eos_token_id') ?? t.ids('eos_token_id');
  if (!eos || eos.length === 0) {
    throw new CheckpointError(`${cfgName}: missing required key eos_token_id (in generation_config.json or config.json)`);
  }
  const tokens: SpecialTokenIds = {
    eos,
    visionStart: top.optInt('vision_start_token_id') ?? 151652,
    visionEnd: top.optInt('vision_end_token_id') ?? 151653,
    imagePad: top.optInt('image_token_id') ?? 151655,
    videoPad: top.optInt('video_token_id') ?? 151656,
  };
  const bos = g.optInt('bos_token_id') ?? t.optInt('bos_token_id');
  if (bos !== undefined) tokens.bos = bos;
  const pad = g.optInt('pad_token_id') ?? t.optInt('pad_token_id');
  if (pad !== undefined) tokens.pad = pad;
  for (const [k, id] of Object.entries(tokens) as [string, number | number[] | undefined][]) {
    for (const x of Array.isArray(id) ? id : id === undefined ? [] : [id]) {
      if (x >= text.vocabSize) throw new CheckpointError(`${cfgName}: token id ${k}=${x} is outside vocab_size ${text.vocabSize}`);
    }
  }

  const generation: GenerationDefaults = {};
  const temp = g.num('temperature', NaN);
  if (!Number.isNaN(temp)) generation.temperature = temp;
  const topP = g.num('top_p', NaN);
  if (!Number.isNaN(topP)) generation.topP = topP;
  const topK = g.num('top_k', NaN);
  if (!Number.isNaN(topK)) generation.topK = topK;
  const rep = g.num('repetition_penalty', NaN);
  if (!Number.isNaN(rep)) generation.repetitionPenalty = rep;

  const ppName = src.preprocessorName ?? 'preprocessor_config.json';
  if (src.preprocessor !== undefined && !isObject(src.preprocessor)) throw new CheckpointError(`${ppName}: not a JSON object`);
  const ppObj = isObject(src.preprocessor) ? src.preprocessor : {};
  const sizeObj = isObject(ppObj.size) ? ppObj.size : {};
  const pp = new KeyReader(ppName, [{ prefix: '', obj: ppObj }]);
  const size = new KeyReader(ppName, [{ prefix: 'size.', obj: sizeObj }]);
  const minPixels = pp.optInt('min_pixels') ?? size.optInt('min_pixels') ?? size.optInt('shortest_edge') ?? DEFAULT_MIN_PIXELS;
  const maxPixels = pp.optInt('max_pixels') ?? size.optInt('max_pixels') ?? size.optInt('longest_edge') ?? DEFAULT_MAX_PIXELS;
  if (!(minPixels > 0 && maxPixels >= minPixels)) {
    throw new CheckpointError(`${ppName}: need 0 < min_pixels <= max_pixels, found ${minPixels}, ${maxPixels}`);
  }
  const preprocessor: PreprocessorConfig = {
    minPixels,
    maxPixels,
    patchSize: pp.int('patch_size', vision.patchSize),
    temporalPatchSize: pp.int('temporal_patch_size', vision.temporalPatchSize),
    mergeSize: pp.int('merge_size', vision.spatialMergeSize),
    imageMean: pp.triple('image_mean', CLIP_MEAN),
    imageStd: pp.triple('image_std', CLIP_STD),
    rescaleFactor: pp.num('rescale_factor', 1 / 255, { positive: true }),
  };
  if (
    preprocessor.patchSize !== vision.patchSize ||
    preprocessor.temporalPatchSize !== vision.temporalPatchSize ||
    preprocessor.mergeSize !== vision.spatialMergeSize
  ) {
    throw new CheckpointError(
      `${ppName}: patch_size/temporal_patch_size/merge_size ${preprocessor.patchSize}/${preprocessor.temporalPatchSize}/${preprocessor.mergeSize} disagree with config.json vision_config ${vision.patchSize}/${vision.temporalPatchSize}/${vision.spatialMergeSize}`,
    );
  }

  return { modelType: 'qwen2_vl', text, vision, tokens, preprocessor, generation };
}

/** Reads the three config files of a checkpoint folder (config.json required, the others optional). */
export function readQwen2VLConfig(dir: string): Qwen2VLConfig {
  const configFile = path.join(dir, 'config.json');
  const config = readJsonFile(configFile);
  const preprocessor = readJsonFile(path.join(dir, 'preprocessor_config.json'), true);
  const generation = readJsonFile(path.join(dir, 'generation_config.json'), true);
  return parseQwen2VLConfig({
    config,
    preprocessor,
    generation,
    configName: configFile,
    preprocessorName: path.join(dir, 'preprocessor_config.json'),
    generationName: path.join(dir, 'generation_config.json'),
  });
}
