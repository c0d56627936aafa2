/**
 * Opens a Hugging Face Qwen2-VL checkpoint folder: config, tensors (validated against the
 * config), tokenizer files and chat template. Real weights and generated ones take this path.
 */
import fs from 'node:fs';
import path from 'node:path';
import { readJsonFile, readQwen2VLConfig } from './hf-config.ts';
import { CheckpointError, isStoredDType, openSafetensorsDir, type SafetensorsSource } from './safetensors.ts';
import type { Qwen2VLConfig, WeightSource } from './types.ts';

export { CheckpointError } from './safetensors.ts';

export interface ExpectedTensor {
  name: string;
  shape: number[];
}

/**
 * Every tensor a Qwen2VLForConditionalGeneration checkpoint stores, in the classic layout,
 * with its shape. `lm_head.weight` only when the embeddings are not tied.
 */
export function expectedTensors(config: Qwen2VLConfig): ExpectedTensor[] {
  const t = config.text;
  const v = config.vision;
  const out: ExpectedTensor[] = [];
  const add = (name: string, ...shape: number[]) => out.push({ name, shape });
  const qDim = t.numAttentionHeads * t.headDim;
  const kvDim = t.numKeyValueHeads * t.headDim;

  add('model.embed_tokens.weight', t.vocabSize, t.hiddenSize);
  for (let i = 0; i < t.numHiddenLayers; i++) {
    const p = `model.layers.${i}.`;
    add(`${p}input_layernorm.weight`, t.hiddenSize);
    add(`${p}self_attn.q_proj.weight`, qDim, t.hiddenSize);
    add(`${p}self_attn.q_proj.bias`, qDim);
    add(`${p}self_attn.k_proj.weight`, kvDim, t.hiddenSize);
    add(`${p}self_attn.k_proj.bias`, kvDim);
    add(`${p}self_attn.v_proj.weight`, kvDim, t.hiddenSize);
    add(`${p}self_attn.v_proj.bias`, kvDim);
    add(`${p}self_attn.o_proj.weight`, t.hiddenSize, qDim);
    add(`${p}post_attention_layernorm.weight`, t.hiddenSize);
    add(`${p}mlp.gate_proj.weight`, t.intermediateSize, t.hiddenSize);
    add(`${p}mlp.up_proj.weight`, t.intermediateSize, t.hiddenSize);
    add(`${p}mlp.down_proj.weight`, t.hiddenSize, t.intermediateSize);
  }
  add('model.norm.weight', t.hiddenSize);
  if (!t.tieWordEmbeddings) add('lm_head.weight', t.vocabSize, t.hiddenSize);

  const e = v.embedDim;
  const mlp = Math.round(e * v.mlpRatio);
  const merged = e * v.spatialMergeSize * v.spatialMergeSize;
  add('visual.patch_embed.proj.weight', e, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize);
  for (let i = 0; i < v.depth; i++) {
    const p = `visual.blocks.${i}.`;
    add(`${p}norm1.weight`, e);
    add(`${p}norm1.bias`, e);
    add(`${p}norm2.weight`, e);
    add(`${p}norm2.bias`, e);
    add(`${p}attn.qkv.weight`, 3 * e, e);
    add(`${p}attn.qkv.bias`, 3 * e);
    add(`${p}attn.proj.weight`, e, e);
    add(`${p}attn.proj.bias`, e);
    add(`${p}mlp.fc1.weight`, mlp, e);
    add(`${p}mlp.fc1.bias`, mlp);
    add(`${p}mlp.fc2.weight`, e, mlp);
    add(`${p}mlp.fc2.bias`, e);
  }
  add('visual.merger.ln_q.weight', e);
  add('visual.merger.ln_q.bias', e);
  add('visual.merger.mlp.0.weight', merged, merged);
  add('visual.merger.mlp.0.bias', merged);
  add('visual.merger.mlp.2.weight', v.outHiddenSize, merged);
  add('visual.merger.mlp.2.bias', v.outHiddenSize);
  return out;
}

/**
 * Maps a stored tensor name to the classic layout: transformers >= 4.52 saves
 * `model.language_model.*` and `model.visual.*`; older checkpoints (UI-TARS-2B) `model.*` and `visual.*`.
 */
export function canonicalTensorName(name: string): string {
  if (name.startsWith('model.language_model.')) return 'model.' + name.slice('model.language_model.'.length);
  if (name.startsWith('model.visual.')) return 'visual.' + name.slice('model.visual.'.length);
  return name;
}

/** The checkpoint's tensors by canonical name, plus where and how each is stored. */
export interface CheckpointWeights extends WeightSource {
  /** Stored dtype (F32, F16, BF16 for every expected tensor). */
  dtype(name: string): string;
  /** The safetensors file holding the tensor. */
  file(name: string): string;
}

/** A WeightSource over canonical names, backed by stored names. */
class CanonicalWeights implements CheckpointWeights {
  private readonly byCanonical = new Map<string, string>();

  constructor(private readonly source: SafetensorsSource) {
    for (const stored of source.names()) {
      const canon = canonicalTensorName(stored);
      const prev = this.byCanonical.get(canon);
      if (prev !== undefined) {
        throw new CheckpointError(`tensor ${canon} is stored twice, as ${prev} and ${stored} (${source.entry(stored).file})`);
      }
      this.byCanonical.set(canon, stored);
    }
  }

  private stored(name: string): string {
    const s = this.byCanonical.get(name);
    if (s === undefined) throw new CheckpointError(`tensor ${name} is not in the checkpoint (${this.source.files.join(', ')})`);
    return s;
  }

  has(name: string): boolean {
    return this.byCanonical.has(name);
  }

  shape(name: string): number[] {
    return this.source.shape(this.stored(name));
  }

  dtype(name: string): string {
    return this.source.dtype(this.stored(name));
  }

  /** The file holding a tensor (for cache keys and messages). */
  file(name: string): string {
    return this.source.entry(this.stored(name)).file;
  }

  readFloat32(name: string): Float32Array {
    return this.source.readFloat32(this.stored(name));
  }

  names(): string[] {
    return [...this.byCanonical.keys()];
  }
}

export type ChatTemplateSource = 'tokenizer_config.json' | 'chat_template.json' | 'chat_template.jinja';

export interface CheckpointFiles {
  /** tokenizer.json path. */
  tokenizerJson: string;
  /** tokenizer_config.json path. */
  tokenizerConfig: string;
  /** The file the chat template came from. */
  chatTemplatePath: string;
  chatTemplateSource: ChatTemplateSource;
  /** The jinja source of the chat template. */
  chatTemplate: string;
  /** The safetensors files holding the weights. */
  weights: string[];
}

export interface Checkpoint {
  dir: string;
  config: Qwen2VLConfig;
  weights: CheckpointWeights;
  files: CheckpointFiles;
}

function requireFile(file: string): string {
  if (!fs.existsSync(file)) throw new CheckpointError(`missing ${path.basename(file)}: ${file}`);
  return file;
}

/** tokenizer_config.json `chat_template` (string, or a list of {name, template}: "default"). */
function templateFrom(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value as { name?: unknown; template?: unknown }[];
    const def = named.find((t) => t && t.name === 'default') ?? named[0];
    if (def && typeof def.template === 'string') return def.template;
  }
  return undefined;
}

function findChatTemplate(dir: string, tokenizerConfig: Record<string, unknown>): {
  template: string;
  source: ChatTemplateSource;
  path: string;
} {
  const fromTok = templateFrom(tokenizerConfig.chat_template);
  if (fromTok !== undefined) {
    return { template: fromTok, source: 'tokenizer_config.json', path: path.join(dir, 'tokenizer_config.json') };
  }
  const jsonFile = path.join(dir, 'chat_template.json');
  const j = readJsonFile(jsonFile, true);
  if (j) {
    const tpl = templateFrom(j.chat_template);
    if (tpl === undefined) throw new CheckpointError(`corrupt chat_template.json: no chat_template string in ${jsonFile}`);
    return { template: tpl, source: 'chat_template.json', path: jsonFile };
  }
  const jinjaFile = path.join(dir, 'chat_template.jinja');
  if (fs.existsSync(jinjaFile)) {
    return { template: fs.readFileSync(jinjaFile, 'utf8'), source: 'chat_template.jinja', path: jinjaFile };
  }
  throw new CheckpointError(
    `missing chat template: no chat_template in ${path.join(dir, 'tokenizer_config.json')}, no chat_template.json or chat_template.jinja`,
  );
}

/** Checks every expected tensor is present, a float dtype, and has the config's shape. */
export function validateWeights(config: Qwen2VLConfig, weights: WeightSource & { dtype?(name: string): string }): void {
  for (const exp of expectedTensors(config)) {
    if (!weights.has(exp.name)) {
      throw new CheckpointError(`missing tensor ${exp.name} (expected shape [${exp.shape.join(', ')}] from config.json)`);
    }
    const actual = weights.shape(exp.name);
    if (actual.length !== exp.shape.length || actual.some((d, i) => d !== exp.shape[i])) {
      throw new CheckpointError(
        `tensor ${exp.name} has shape [${actual.join(', ')}], config.json expects [${exp.shape.join(', ')}]`,
      );
    }
    const dt = weights.dtype?.(exp.name);
    if (dt !== undefined && !isStoredDType(dt)) {
      throw new CheckpointError(`unsupported dtype ${dt} for tensor ${exp.name} (need F32, F16 or BF16)`);
    }
  }
  if (weights.has('lm_head.weight')) {
    const s = weights.shape('lm_head.weight');
    const want = [config.text.vocabSize, config.text.hiddenSize];
    if (s.length !== 2 || s[0] !== want[0] || s[1] !== want[1]) {
      throw new CheckpointError(`tensor lm_head.weight has shape [${s.join(', ')}], config.json expects [${want.join(', ')}]`);
    }
  }
}

/** Opens and validates a checkpoint folder. Throws CheckpointError with a one-line message. */
export async function openCheckpoint(dir: string): Promise<Checkpoint> {
  const abs = path.resolve(dir);
  if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) {
    throw new CheckpointError(`missing checkpoint folder: ${abs}`);
  }
  const config = readQwen2VLConfig(abs);
  const source = openSafetensorsDir(abs);
  const weights = new CanonicalWeights(source);
  validateWeights(config, weights);

  const tokenizerJson = requireFile(path.join(abs, 'tokenizer.json'));
  const tokenizerConfig = requireFile(path.join(abs, 'tokenizer_config.json'));
  const tokCfg = readJsonFile(tokenizerConfig);
  const tpl = findChatTemplate(abs, tokCfg);
  return {
    dir: abs,
    config,
    weights,
    files: {
      tokenizerJson,
      tokenizerConfig,
      chatTemplatePath: tpl.path,
      chatTemplateSource: tpl.source,
      chatTemplate: tpl.template,
      weights: [...source.files],
    },
  };
}
