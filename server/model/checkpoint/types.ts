/**
 * The model facts every part of the engine agrees on, read once from a Hugging Face
 * checkpoint folder (config.json, preprocessor_config.json, generation_config.json).
 * Names are camelCase here; the snake_case wire names live only in the reader.
 */

export interface VisionConfig {
  depth: number; // transformer blocks (32 for UI-TARS-2B)
  embedDim: number; // 1280
  numHeads: number; // 16
  mlpRatio: number; // 4 -> MLP width embedDim * mlpRatio
  inChannels: number; // 3
  outHiddenSize: number; // merger output = LM hidden size (1536)
  patchSize: number; // 14
  spatialMergeSize: number; // 2
  temporalPatchSize: number; // 2
  hiddenAct: string; // "quick_gelu"
}

export interface TextConfig {
  vocabSize: number; // 151936
  hiddenSize: number; // 1536
  intermediateSize: number; // 8960
  numHiddenLayers: number; // 28
  numAttentionHeads: number; // 12
  numKeyValueHeads: number; // 2
  headDim: number; // hiddenSize / numAttentionHeads = 128
  rmsNormEps: number; // 1e-6
  ropeTheta: number; // 1e6
  mropeSection: [number, number, number]; // [16, 24, 24], sums to headDim / 2
  maxPositionEmbeddings: number; // 32768
  tieWordEmbeddings: boolean;
  hiddenAct: string; // "silu"
}

export interface SpecialTokenIds {
  bos?: number;
  eos: number[]; // from generation_config.json (falls back to config.json)
  pad?: number;
  visionStart: number;
  visionEnd: number;
  imagePad: number; // <|image_pad|>, config key image_token_id
  videoPad: number;
}

export interface PreprocessorConfig {
  minPixels: number;
  maxPixels: number;
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  rescaleFactor: number; // 1/255
}

export interface GenerationDefaults {
  temperature?: number;
  topP?: number;
  topK?: number;
  repetitionPenalty?: number;
}

export interface Qwen2VLConfig {
  modelType: 'qwen2_vl';
  text: TextConfig;
  vision: VisionConfig;
  tokens: SpecialTokenIds;
  preprocessor: PreprocessorConfig;
  generation: GenerationDefaults;
}

/** Storage dtypes a checkpoint may use; every reader converts to float32. */
export type StoredDType = 'F32' | 'F16' | 'BF16';

/**
 * Read access to a checkpoint's tensors by their canonical Hugging Face name
 * (the classic layout: `model.layers.0.self_attn.q_proj.weight`, `visual.blocks.0.attn.qkv.weight`).
 * Tensors are read one at a time from disk, so the caller controls peak memory.
 */
export interface WeightSource {
  has(name: string): boolean;
  shape(name: string): number[];
  /** Reads one tensor from disk and returns it as float32 (bf16/f16 are widened). */
  readFloat32(name: string): Float32Array;
  names(): string[];
}
