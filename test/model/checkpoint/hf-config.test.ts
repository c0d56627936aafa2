import t from 'tap';
import { parseQwen2VLConfig, DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, CLIP_MEAN } from '../../../server/model/checkpoint/hf-config.ts';
import { generatedConfigFiles } from '../../../server/model/checkpoint/generate.ts';
import { expectCheckpointError } from './helpers.ts';

/** Qwen2-VL-2B-Instruct's config.json (classic layout, as UI-TARS-2B ships it). */
const classic = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  vision_token_id: 151654,
  image_token_id: 151655,
  video_token_id: 151656,
  hidden_act: 'silu',
  hidden_size: 1536,
  initializer_range: 0.02,
  intermediate_size: 8960,
  max_position_embeddings: 32768,
  max_window_layers: 28,
  model_type: 'qwen2_vl',
  num_attention_heads: 12,
  num_hidden_layers: 28,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.41.2',
  use_cache: true,
  use_sliding_window: false,
  vision_config: {
    depth: 32,
    embed_dim: 1280,
    mlp_ratio: 4,
    num_heads: 16,
    in_chans: 3,
    hidden_size: 1536,
    patch_size: 14,
    spatial_merge_size: 2,
    spatial_patch_size: 14,
    temporal_patch_size: 2,
  },
  rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
  vocab_size: 151936,
};

/** The same model as transformers >= 4.52 writes it (text_config nested). */
const newer = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  model_type: 'qwen2_vl',
  image_token_id: 151655,
  video_token_id: 151656,
  vision_start_token_id: 151652,
  vision_end_token_id: 151653,
  tie_word_embeddings: true,
  text_config: {
    model_type: 'qwen2_vl_text',
    bos_token_id: 151643,
    eos_token_id: 151645,
    hidden_act: 'silu',
    hidden_size: 1536,
    intermediate_size: 8960,
    max_position_embeddings: 32768,
    num_attention_heads: 12,
    num_hidden_layers: 28,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-6,
    rope_scaling: { type: 'mrope', rope_type: 'default', mrope_section: [16, 24, 24] },
    rope_theta: 1000000.0,
    vocab_size: 151936,
  },
  vision_config: {
    model_type: 'qwen2_vl',
    depth: 32,
    embed_dim: 1280,
    hidden_act: 'quick_gelu',
    hidden_size: 1536,
    in_channels: 3,
    mlp_ratio: 4,
    num_heads: 16,
    patch_size: 14,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
  },
};

const generation = {
  bos_token_id: 151643,
  pad_token_id: 151643,
  do_sample: true,
  eos_token_id: [151645, 151643],
  repetition_penalty: 1.05,
  temperature: 0.1,
  top_p: 0.001,
  top_k: 1,
};

const preprocessor = {
  min_pixels: 3136,
  max_pixels: 12845056,
  patch_size: 14,
  temporal_patch_size: 2,
  merge_size: 2,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
  image_processor_type: 'Qwen2VLImageProcessor',
  processor_class: 'Qwen2VLProcessor',
};

t.test('classic layout: UI-TARS-2B values', async (tt) => {
  const c = parseQwen2VLConfig({ config: classic, preprocessor, generation });
  tt.same(c.text, {
    vocabSize: 151936,
    hiddenSize: 1536,
    intermediateSize: 8960,
    numHiddenLayers: 28,
    numAttentionHeads: 12,
    numKeyValueHeads: 2,
    headDim: 128,
    rmsNormEps: 1e-6,
    ropeTheta: 1e6,
    mropeSection: [16, 24, 24],
    maxPositionEmbeddings: 32768,
    tieWordEmbeddings: true,
    hiddenAct: 'silu',
  });
  tt.same(c.vision, {
    depth: 32,
    embedDim: 1280,
    numHeads: 16,
    mlpRatio: 4,
    inChannels: 3,
    outHiddenSize: 1536,
    patchSize: 14,
    spatialMergeSize: 2,
    temporalPatchSize: 2,
    hiddenAct: 'quick_gelu',
  });
  tt.same(c.tokens, {
    eos: [151645, 151643],
    bos: 151643,
    pad: 151643,
    visionStart: 151652,
    visionEnd: 151653,
    imagePad: 151655,
    videoPad: 151656,
  });
  tt.same(c.preprocessor.minPixels, 3136);
  tt.same(c.preprocessor.maxPixels, 12845056);
  tt.equal(c.preprocessor.rescaleFactor, 1 / 255);
  tt.same(c.generation, { temperature: 0.1, topP: 0.001, topK: 1, repetitionPenalty: 1.05 });
});

t.test('newer layout (text_config) gives the same config', async (tt) => {
  const a = parseQwen2VLConfig({ config: classic, preprocessor, generation });
  const b = parseQwen2VLConfig({ config: newer, preprocessor, generation });
  tt.same(b, a);
  // rope_parameters (transformers v5 style) instead of rope_scaling + rope_theta
  const v5 = structuredClone(newer) as Record<string, any>;
  delete v5.text_config.rope_scaling;
  delete v5.text_config.rope_theta;
  v5.text_config.rope_parameters = { rope_type: 'default', rope_theta: 1000000.0, mrope_section: [16, 24, 24] };
  tt.same(parseQwen2VLConfig({ config: v5, preprocessor, generation }), a);
});

t.test('defaults as Hugging Face', async (tt) => {
  const c = parseQwen2VLConfig({ config: classic });
  tt.same(c.tokens.eos, [151645], 'eos from config.json when generation_config.json is absent');
  tt.equal(c.tokens.bos, 151643);
  tt.equal(c.tokens.pad, undefined);
  tt.equal(c.preprocessor.minPixels, DEFAULT_MIN_PIXELS);
  tt.equal(c.preprocessor.maxPixels, DEFAULT_MAX_PIXELS);
  tt.equal(DEFAULT_MIN_PIXELS, 56 * 56);
  tt.equal(DEFAULT_MAX_PIXELS, 28 * 28 * 1280);
  tt.same(c.preprocessor.imageMean, CLIP_MEAN);
  tt.same(c.generation, {});
  const eosNumber = parseQwen2VLConfig({ config: classic, generation: { eos_token_id: 151643 } });
  tt.same(eosNumber.tokens.eos, [151643], 'a single eos id becomes a list');
  // newer preprocessor layout: size.shortest_edge / longest_edge
  const sized = parseQwen2VLConfig({ config: classic, preprocessor: { size: { shortest_edge: 1000, longest_edge: 2000 } } });
  tt.equal(sized.preprocessor.minPixels, 1000);
  tt.equal(sized.preprocessor.maxPixels, 2000);
  const noRms = structuredClone(classic) as Record<string, unknown>;
  delete noRms.rms_norm_eps;
  delete noRms.tie_word_embeddings;
  const d = parseQwen2VLConfig({ config: noRms });
  tt.equal(d.text.rmsNormEps, 1e-5);
  tt.equal(d.text.tieWordEmbeddings, false);
});

t.test('errors', async (tt) => {
  await expectCheckpointError(
    tt,
    () => parseQwen2VLConfig({ config: { ...classic, model_type: 'llama', architectures: ['LlamaForCausalLM'] } }),
    /unsupported model_type "llama".*LlamaForCausalLM.*qwen2_vl/,
    'config.json',
  );
  await expectCheckpointError(tt, () => parseQwen2VLConfig({ config: { ...classic, model_type: undefined } }), /unsupported model_type null/);
  for (const key of ['hidden_size', 'num_hidden_layers', 'vocab_size', 'intermediate_size', 'num_attention_heads']) {
    const c = structuredClone(classic) as Record<string, unknown>;
    delete c[key];
    await expectCheckpointError(tt, () => parseQwen2VLConfig({ config: c }), new RegExp(`missing required key ${key}`));
  }
  const noVision = structuredClone(classic) as Record<string, unknown>;
  delete noVision.vision_config;
  await expectCheckpointError(tt, () => parseQwen2VLConfig({ config: noVision }), /missing required key vision_config/);
  const noRope = structuredClone(classic) as Record<string, unknown>;
  delete noRope.rope_scaling;
  await expectCheckpointError(tt, () => parseQwen2VLConfig({ config: noRope }), /missing required key rope_scaling.mrope_section/);
  await expectCheckpointError(
    tt,
    () => parseQwen2VLConfig({ config: { ...classic, rope_scaling: { type: 'mrope', mrope_section: [16, 24, 23] } } }),
    /mrope_section \[16,24,23\] must be positive integers summing to head_dim\/2 = 64/,
  );
  const noEos = structuredClone(classic) as Record<string, unknown>;
  delete noEos.eos_token_id;
  await expectCheckpointError(tt, () => parseQwen2VLConfig({ config: noEos }), /missing required key eos_token_id/);
  await expectCheckpointError(tt, () => parseQwen2VLConfig({ config: { ...classic, hidden_size: '1536' } }), /hidden_size must be a number/);
  await expectCheckpointError(
    tt,
    () => parseQwen2VLConfig({ config: newer, preprocessor: { ...preprocessor, patch_size: 16 } }),
    /disagree with config.json/,
  );
});

t.test('generated configs parse', async (tt) => {
  for (const size of ['tiny', 'full'] as const) {
    const f = generatedConfigFiles(size);
    const c = parseQwen2VLConfig({ config: f.config, preprocessor: f.preprocessorConfig, generation: f.generationConfig });
    tt.equal(c.text.mropeSection.reduce((a, b) => a + b, 0), c.text.headDim / 2);
    if (size === 'full') {
      const real = parseQwen2VLConfig({ config: classic, preprocessor, generation });
      tt.same(c.text, real.text, 'full text config = UI-TARS-2B');
      tt.same(c.vision, real.vision, 'full vision config = UI-TARS-2B');
      tt.same(c.tokens, real.tokens, 'full special ids = Qwen2-VL');
      tt.same(Object.keys(f.config).sort(), Object.keys(classic).sort(), 'same config.json keys as Qwen2-VL-2B-Instruct');
      tt.same(Object.keys(f.config.vision_config as object).sort(), Object.keys(classic.vision_config).sort());
    }
  }
});
