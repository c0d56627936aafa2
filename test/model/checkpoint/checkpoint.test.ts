import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { openCheckpoint, expectedTensors, canonicalTensorName } from '../../../server/model/checkpoint/checkpoint.ts';
import { generateCheckpoint, generatedTensorValues } from '../../../server/model/checkpoint/generate.ts';
import { readSafetensorsHeader } from '../../../server/model/checkpoint/safetensors.ts';
import { float32ToBf16Bits, writeSafetensorsStreaming } from '../../../server/model/checkpoint/safetensors-writer.ts';
import { QWEN2_VL_CHAT_TEMPLATE } from '../../../server/model/checkpoint/qwen2-vl-chat-template.ts';
import { expectCheckpointError } from './helpers.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ckpt-test-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const f32Dir = path.join(tmp, 'f32');
const bf16Dir = path.join(tmp, 'bf16');
const shardedDir = path.join(tmp, 'sharded');
await generateCheckpoint({ out: f32Dir, size: 'tiny', seed: 0, dtype: 'f32' });
await generateCheckpoint({ out: bf16Dir, size: 'tiny', seed: 0, dtype: 'bf16' });
await generateCheckpoint({ out: shardedDir, size: 'tiny', seed: 0, dtype: 'f32', shards: 3 });

/** A copy of the f32 checkpoint's small files (no weights), to break one thing at a time. */
function copyCheckpoint(name: string, withWeights = true): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(f32Dir)) {
    if (!withWeights && f.endsWith('.safetensors')) continue;
    fs.copyFileSync(path.join(f32Dir, f), path.join(dir, f));
  }
  return dir;
}

t.test('tiny f32 checkpoint opens with the chosen config', async (tt) => {
  const ck = await openCheckpoint(f32Dir);
  const c = ck.config;
  tt.equal(ck.dir, f32Dir);
  tt.equal(c.modelType, 'qwen2_vl');
  tt.same(c.text, {
    vocabSize: 768,
    hiddenSize: 64,
    intermediateSize: 128,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    numKeyValueHeads: 2,
    headDim: 16,
    rmsNormEps: 1e-6,
    ropeTheta: 1e6,
    mropeSection: [2, 3, 3],
    maxPositionEmbeddings: 32768,
    tieWordEmbeddings: true,
    hiddenAct: 'silu',
  });
  tt.same(c.vision, {
    depth: 2,
    embedDim: 32,
    numHeads: 2,
    mlpRatio: 4,
    inChannels: 3,
    outHiddenSize: 64,
    patchSize: 14,
    spatialMergeSize: 2,
    temporalPatchSize: 2,
    hiddenAct: 'quick_gelu',
  });
  // 656 BPE tokens, then the 14 specials in Qwen2-VL's order
  tt.same(c.tokens, { eos: [658, 656], bos: 656, pad: 656, visionStart: 665, visionEnd: 666, imagePad: 668, videoPad: 669 });
  tt.same(c.preprocessor.minPixels, 3136);
  tt.same(c.preprocessor.maxPixels, 12845056);
  tt.same([c.preprocessor.patchSize, c.preprocessor.mergeSize, c.preprocessor.temporalPatchSize], [14, 2, 2]);

  const expected = expectedTensors(c);
  tt.same(ck.weights.names().sort(), expected.map((e) => e.name).sort(), 'exactly the expected tensors');
  for (const e of expected) {
    if (JSON.stringify(ck.weights.shape(e.name)) !== JSON.stringify(e.shape)) tt.fail(`${e.name} shape`);
  }
  tt.equal(ck.weights.has('lm_head.weight'), false, 'tied: no lm_head.weight');
  tt.ok(ck.weights.has('model.embed_tokens.weight'));
  tt.same(ck.weights.shape('visual.patch_embed.proj.weight'), [32, 3, 2, 14, 14]);
  tt.same(ck.weights.shape('visual.merger.mlp.0.weight'), [128, 128]);
  tt.same(ck.weights.shape('visual.merger.mlp.2.weight'), [64, 128]);
  tt.same(ck.weights.shape('model.layers.1.self_attn.k_proj.weight'), [32, 64]);

  tt.equal(path.basename(ck.files.tokenizerJson), 'tokenizer.json');
  tt.equal(path.basename(ck.files.tokenizerConfig), 'tokenizer_config.json');
  tt.equal(ck.files.chatTemplateSource, 'tokenizer_config.json');
  tt.equal(ck.files.chatTemplate, QWEN2_VL_CHAT_TEMPLATE);
  tt.same(ck.files.weights.map((f) => path.basename(f)), ['model.safetensors']);

  // values are the generator's stream; norms near 1, others near 0
  for (const name of ['model.embed_tokens.weight', 'model.norm.weight', 'visual.blocks.1.attn.qkv.bias']) {
    const got = ck.weights.readFloat32(name);
    const want = generatedTensorValues(0, { name, shape: ck.weights.shape(name) });
    tt.ok(got.every((v, i) => v === want[i]), `${name} values`);
  }
  const norm = ck.weights.readFloat32('model.norm.weight');
  tt.ok(norm.every((v) => Math.abs(v - 1) < 0.15));
  const emb = ck.weights.readFloat32('model.embed_tokens.weight');
  const std = Math.sqrt(emb.reduce((a, v) => a + v * v, 0) / emb.length);
  tt.ok(Math.abs(std - 0.5) < 0.05, `embedding std ${std}`);
});

t.test('config.json keys match what the generator promises', async (tt) => {
  const cfg = JSON.parse(fs.readFileSync(path.join(f32Dir, 'config.json'), 'utf8'));
  tt.same(cfg.architectures, ['Qwen2VLForConditionalGeneration']);
  tt.equal(cfg.model_type, 'qwen2_vl');
  tt.equal(cfg.torch_dtype, 'float32');
  tt.same(cfg.rope_scaling, { type: 'mrope', mrope_section: [2, 3, 3] });
  const gen = JSON.parse(fs.readFileSync(path.join(f32Dir, 'generation_config.json'), 'utf8'));
  tt.same(gen.eos_token_id, [658, 656]);
  const pp = JSON.parse(fs.readFileSync(path.join(f32Dir, 'preprocessor_config.json'), 'utf8'));
  tt.equal(pp.image_processor_type, 'Qwen2VLImageProcessor');
  const bfCfg = JSON.parse(fs.readFileSync(path.join(bf16Dir, 'config.json'), 'utf8'));
  tt.equal(bfCfg.torch_dtype, 'bfloat16');
});

t.test('bf16 values are the f32 values rounded to bf16', async (tt) => {
  const a = await openCheckpoint(f32Dir);
  const b = await openCheckpoint(bf16Dir);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  let checked = 0;
  for (const name of a.weights.names()) {
    const x = a.weights.readFloat32(name);
    const y = b.weights.readFloat32(name);
    for (let i = 0; i < x.length; i++) {
      u[0] = float32ToBf16Bits(x[i]!) << 16;
      if (y[i] !== f[0]) {
        tt.fail(`${name}[${i}]: ${y[i]} != bf16(${x[i]})`);
        return;
      }
      // independent check: within bf16's half-ulp (2^-9 relative)
      if (Math.abs(y[i]! - x[i]!) > Math.abs(x[i]!) * 2 ** -8) {
        tt.fail(`${name}[${i}] off by more than a bf16 ulp`);
        return;
      }
    }
    checked += x.length;
  }
  tt.ok(checked > 100000, `${checked} values compared`);
  const header = readSafetensorsHeader(path.join(bf16Dir, 'model.safetensors'));
  tt.ok([...header.tensors.values()].every((e) => e.dtype === 'BF16'), 'stored as BF16');
});

t.test('sharded equals unsharded', async (tt) => {
  const a = await openCheckpoint(f32Dir);
  const s = await openCheckpoint(shardedDir);
  tt.same(
    s.files.weights.map((f) => path.basename(f)),
    ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'],
  );
  tt.notOk(fs.existsSync(path.join(shardedDir, 'model.safetensors')));
  const index = JSON.parse(fs.readFileSync(path.join(shardedDir, 'model.safetensors.index.json'), 'utf8'));
  tt.equal(index.metadata.total_size, fs.statSync(path.join(f32Dir, 'model.safetensors')).size - readSafetensorsHeader(path.join(f32Dir, 'model.safetensors')).dataStart);
  tt.same(s.weights.names().sort(), a.weights.names().sort());
  for (const name of a.weights.names()) {
    const x = a.weights.readFloat32(name);
    const y = s.weights.readFloat32(name);
    if (x.length !== y.length || !x.every((v, i) => v === y[i])) tt.fail(`${name} differs`);
  }
  tt.same(s.config, a.config);
});

t.test('different seeds give different weights', async (tt) => {
  const x = generatedTensorValues(0, { name: 'model.norm.weight', shape: [64] });
  const y = generatedTensorValues(1, { name: 'model.norm.weight', shape: [64] });
  const z = generatedTensorValues(0, { name: 'model.norm.weight', shape: [64] });
  tt.notSame(Array.from(x), Array.from(y));
  tt.same(Array.from(x), Array.from(z));
});

t.test('newer tensor layout and chat template fallbacks', async (tt) => {
  tt.equal(canonicalTensorName('model.language_model.layers.3.mlp.up_proj.weight'), 'model.layers.3.mlp.up_proj.weight');
  tt.equal(canonicalTensorName('model.language_model.embed_tokens.weight'), 'model.embed_tokens.weight');
  tt.equal(canonicalTensorName('model.visual.blocks.0.attn.qkv.weight'), 'visual.blocks.0.attn.qkv.weight');
  tt.equal(canonicalTensorName('lm_head.weight'), 'lm_head.weight');
  tt.equal(canonicalTensorName('visual.merger.ln_q.weight'), 'visual.merger.ln_q.weight');

  const src = await openCheckpoint(f32Dir);
  const dir = copyCheckpoint('newer', false);
  const renamed = (n: string) =>
    n.startsWith('visual.') ? 'model.' + n : n.startsWith('model.') ? n.replace(/^model\./, 'model.language_model.') : n;
  const specs = src.weights.names().map((n) => ({ name: renamed(n), shape: src.weights.shape(n), from: n }));
  // untie, as some newer exports do: lm_head.weight present
  const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  cfg.tie_word_embeddings = false;
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  specs.push({ name: 'lm_head.weight', shape: src.weights.shape('model.embed_tokens.weight'), from: 'model.embed_tokens.weight' });
  writeSafetensorsStreaming(path.join(dir, 'model.safetensors'), specs, 'BF16', (s, emit) =>
    emit(src.weights.readFloat32((s as (typeof specs)[number]).from)),
  );
  // chat template only in chat_template.json
  const tokCfg = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8'));
  delete tokCfg.chat_template;
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tokCfg));
  const ck = await openCheckpoint(dir);
  tt.ok(ck.weights.has('model.layers.0.self_attn.q_proj.weight'));
  tt.ok(ck.weights.has('visual.patch_embed.proj.weight'));
  tt.ok(ck.weights.has('lm_head.weight'));
  tt.notOk(ck.weights.names().some((n) => n.includes('language_model') || n.startsWith('model.visual')));
  tt.equal(ck.files.chatTemplateSource, 'chat_template.json');
  tt.equal(ck.files.chatTemplate, QWEN2_VL_CHAT_TEMPLATE);
  const q = ck.weights.readFloat32('model.layers.1.self_attn.q_proj.weight');
  const q0 = src.weights.readFloat32('model.layers.1.self_attn.q_proj.weight');
  tt.ok(q.every((v, i) => Math.abs(v - q0[i]!) <= Math.abs(q0[i]!) * 2 ** -8), 'bf16 copy of the values');

  // then chat_template.jinja
  fs.rmSync(path.join(dir, 'chat_template.json'));
  fs.writeFileSync(path.join(dir, 'chat_template.jinja'), '{{ messages[0].content }}');
  const ck2 = await openCheckpoint(dir);
  tt.equal(ck2.files.chatTemplateSource, 'chat_template.jinja');
  tt.equal(ck2.files.chatTemplate, '{{ messages[0].content }}');
  fs.rmSync(path.join(dir, 'chat_template.jinja'));
  await expectCheckpointError(tt, () => openCheckpoint(dir), /missing chat template/);

  // untied config without lm_head.weight is an error
  const dir2 = copyCheckpoint('untied-no-head');
  fs.writeFileSync(path.join(dir2, 'config.json'), JSON.stringify(cfg));
  await expectCheckpointError(tt, () => openCheckpoint(dir2), /missing tensor lm_head.weight \(expected shape \[768, 64\]/);
});

t.test('bad checkpoints give one-line errors', async (tt) => {
  await expectCheckpointError(tt, () => openCheckpoint(path.join(tmp, 'nope')), /missing checkpoint folder/, 'nope');

  const noConfig = copyCheckpoint('no-config');
  fs.rmSync(path.join(noConfig, 'config.json'));
  await expectCheckpointError(tt, () => openCheckpoint(noConfig), /missing config.json/, path.join(noConfig, 'config.json'));

  const noWeights = copyCheckpoint('no-weights', false);
  await expectCheckpointError(tt, () => openCheckpoint(noWeights), /missing safetensors/, noWeights);

  const truncated = copyCheckpoint('truncated');
  const tf = path.join(truncated, 'model.safetensors');
  fs.truncateSync(tf, fs.statSync(tf).size - 100);
  await expectCheckpointError(tt, () => openCheckpoint(truncated), /truncated safetensors file.*data_offsets/, tf);

  const truncatedHeader = copyCheckpoint('truncated-header');
  const th = path.join(truncatedHeader, 'model.safetensors');
  fs.truncateSync(th, 200);
  await expectCheckpointError(tt, () => openCheckpoint(truncatedHeader), /truncated safetensors file.*header length/, th);

  const corrupt = copyCheckpoint('corrupt-header');
  const cf = path.join(corrupt, 'model.safetensors');
  const fd = fs.openSync(cf, 'r+');
  fs.writeSync(fd, Buffer.from('{{{{{{'), 0, 6, 8);
  fs.closeSync(fd);
  await expectCheckpointError(tt, () => openCheckpoint(corrupt), /corrupt safetensors header.*invalid JSON/, cf);

  const llama = copyCheckpoint('llama');
  const lcfg = JSON.parse(fs.readFileSync(path.join(llama, 'config.json'), 'utf8'));
  lcfg.model_type = 'llama';
  lcfg.architectures = ['LlamaForCausalLM'];
  fs.writeFileSync(path.join(llama, 'config.json'), JSON.stringify(lcfg));
  await expectCheckpointError(tt, () => openCheckpoint(llama), /unsupported model_type "llama"/, path.join(llama, 'config.json'));

  const missingKey = copyCheckpoint('missing-key');
  const mcfg = JSON.parse(fs.readFileSync(path.join(missingKey, 'config.json'), 'utf8'));
  delete mcfg.num_hidden_layers;
  fs.writeFileSync(path.join(missingKey, 'config.json'), JSON.stringify(mcfg));
  await expectCheckpointError(tt, () => openCheckpoint(missingKey), /missing required key num_hidden_layers/);

  // config says 3 KV heads... no: keep the config, store one tensor with a wrong shape
  const wrongShape = copyCheckpoint('wrong-shape', false);
  const src = await openCheckpoint(f32Dir);
  const specs = src.weights.names().map((n) => ({
    name: n,
    shape: n === 'model.layers.1.mlp.up_proj.weight' ? [64, 128] : src.weights.shape(n),
  }));
  writeSafetensorsStreaming(path.join(wrongShape, 'model.safetensors'), specs, 'F32', (s, emit) => emit(src.weights.readFloat32(s.name)));
  await expectCheckpointError(
    tt,
    () => openCheckpoint(wrongShape),
    /^tensor model.layers.1.mlp.up_proj.weight has shape \[64, 128\], config.json expects \[128, 64\]$/,
  );

  // config.json bigger than the weights: every tensor checked against the config
  const biggerCfg = copyCheckpoint('bigger-config');
  const bcfg = JSON.parse(fs.readFileSync(path.join(biggerCfg, 'config.json'), 'utf8'));
  bcfg.num_hidden_layers = 3;
  bcfg.max_window_layers = 3;
  fs.writeFileSync(path.join(biggerCfg, 'config.json'), JSON.stringify(bcfg));
  await expectCheckpointError(tt, () => openCheckpoint(biggerCfg), /missing tensor model.layers.2.input_layernorm.weight \(expected shape \[64\]/);

  // index naming a tensor its shard lacks
  const badIndex = path.join(tmp, 'bad-index');
  fs.cpSync(shardedDir, badIndex, { recursive: true });
  const ip = path.join(badIndex, 'model.safetensors.index.json');
  const index = JSON.parse(fs.readFileSync(ip, 'utf8'));
  index.weight_map['model.layers.9.mlp.up_proj.weight'] = 'model-00002-of-00003.safetensors';
  fs.writeFileSync(ip, JSON.stringify(index));
  await expectCheckpointError(
    tt,
    () => openCheckpoint(badIndex),
    /tensor model.layers.9.mlp.up_proj.weight is listed in model.safetensors.index.json but missing from shard/,
    'model-00002-of-00003.safetensors',
  );

  // a shard file missing
  const missingShard = path.join(tmp, 'missing-shard');
  fs.cpSync(shardedDir, missingShard, { recursive: true });
  fs.rmSync(path.join(missingShard, 'model-00003-of-00003.safetensors'));
  await expectCheckpointError(tt, () => openCheckpoint(missingShard), /missing safetensors file/, 'model-00003-of-00003.safetensors');

  const noTokenizer = copyCheckpoint('no-tokenizer');
  fs.rmSync(path.join(noTokenizer, 'tokenizer.json'));
  await expectCheckpointError(tt, () => openCheckpoint(noTokenizer), /missing tokenizer.json/);
});

t.test('generator refuses to overwrite without --force, and never deletes a non-checkpoint folder', async (tt) => {
  await tt.rejects(generateCheckpoint({ out: f32Dir }), /not empty.*--force/);
  const other = path.join(tmp, 'precious');
  fs.mkdirSync(other);
  fs.writeFileSync(path.join(other, 'notes.txt'), 'keep me');
  await tt.rejects(generateCheckpoint({ out: other, force: true }), /refusing to delete/);
  tt.ok(fs.existsSync(path.join(other, 'notes.txt')));
  const again = path.join(tmp, 'again');
  await generateCheckpoint({ out: again, seed: 5 });
  await generateCheckpoint({ out: again, seed: 0, force: true });
  const a = fs.readFileSync(path.join(again, 'model.safetensors'));
  const b = fs.readFileSync(path.join(f32Dir, 'model.safetensors'));
  tt.ok(a.equals(b), 'deterministic: same seed gives byte-identical weights');
});
