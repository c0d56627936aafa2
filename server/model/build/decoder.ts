/**
 * Qwen2 language model graph (the Qwen2-VL decoder) with a KV cache, batched.
 *
 * Inputs:
 *   input_ids                  int64 [B, S]
 *   image_embeds               f32   [M, hidden]   (M may be 0)
 *   image_token_index          int64 [M]           flat row in B*S replaced by image_embeds[m]
 *   rope_cos, rope_sin         f32   [B, S, headDim]  M-RoPE resolved host-side (HF layout: cat(freqs, freqs))
 *   seqlens_k                  int32 [B]           per row: total valid length after this step - 1
 *   total_sequence_length      int32 []            max over rows of total length (past + new)
 *   past_key_values.{i}.key    f32   [B, kvHeads, maxLen, headDim]   (and .value)
 *   logits_index               int64 [L]           flat rows of B*S whose logits are computed
 * Outputs:
 *   logits                     f32   [L, vocab]
 *   key_rows.{i} / value_rows.{i}  f32  [B, S, kvHeads*headDim]  this run's new K (after rotary) and V rows,
 *                              which the engine appends to its pool (attention.ts: why no present output)
 */
import { concatFloat32 } from '../../common/concat.ts';
import type { Qwen2VLConfig, WeightSource } from '../checkpoint/types.ts';
import { attentionContext, layerAttention, type DecoderRole } from './attention.ts';
import { GraphBuilder, type BuiltGraph } from './onnx-graph.ts';
import { linear, readChecked, rmsNorm, rotary, rotaryTables } from './layers.ts';
import { quantizePerRowInt8 } from './quantize.ts';
import type { DecoderKernels } from './recipes.ts';

export const DECODER_INPUTS = {
  inputIds: 'input_ids',
  imageEmbeds: 'image_embeds',
  imageTokenIndex: 'image_token_index',
  ropeCos: 'rope_cos',
  ropeSin: 'rope_sin',
  seqlensK: 'seqlens_k',
  totalSequenceLength: 'total_sequence_length',
  logitsIndex: 'logits_index',
} as const;

export const pastKeyName = (i: number): string => `past_key_values.${i}.key`;
export const pastValueName = (i: number): string => `past_key_values.${i}.value`;
export const keyRowsName = (i: number): string => `key_rows.${i}`;
export const valueRowsName = (i: number): string => `value_rows.${i}`;

/** `role`: the runs the graph serves (attention.ts); a 'decode' graph takes one new token per sequence. */
export function buildDecoder(config: Qwen2VLConfig, weights: WeightSource, modelPath: string, kernels: DecoderKernels, role: DecoderRole = 'both'): BuiltGraph {
  const t = config.text;
  const hidden = t.hiddenSize;
  const nH = t.numAttentionHeads;
  const kvH = t.numKeyValueHeads;
  const D = t.headDim;
  const V = t.vocabSize;
  const inter = t.intermediateSize;
  if (t.hiddenAct !== 'silu') throw new Error(`unsupported text hidden_act ${t.hiddenAct}`);
  const lo = kernels.layers;
  const dataPath = `${modelPath}.data`;
  const g = new GraphBuilder({ name: 'qwen2_vl_decoder', externalDataPath: dataPath });
  try {
    const ids = g.input(DECODER_INPUTS.inputIds, 'int64', ['batch_size', 'sequence_length']);
    const imgEmb = g.input(DECODER_INPUTS.imageEmbeds, 'float32', ['num_image_tokens', hidden]);
    const imgIdx = g.input(DECODER_INPUTS.imageTokenIndex, 'int64', ['num_image_tokens']);
    const cosIn = g.input(DECODER_INPUTS.ropeCos, 'float32', ['batch_size', 'sequence_length', D]);
    const sinIn = g.input(DECODER_INPUTS.ropeSin, 'float32', ['batch_size', 'sequence_length', D]);
    const seqlensK = g.input(DECODER_INPUTS.seqlensK, 'int32', ['batch_size']);
    const totalLen = g.input(DECODER_INPUTS.totalSequenceLength, 'int32', []);
    const past: [string, string][] = [];
    for (let i = 0; i < t.numHiddenLayers; i++) {
      past.push([
        g.input(pastKeyName(i), 'float32', ['batch_size', kvH, 'max_sequence_length', D]),
        g.input(pastValueName(i), 'float32', ['batch_size', kvH, 'max_sequence_length', D]),
      ]);
    }
    const logitsIdx = g.input(DECODER_INPUTS.logitsIndex, 'int64', ['num_logits']);
    g.output('logits', 'float32', ['num_logits', V]);
    for (let i = 0; i < t.numHiddenLayers; i++) {
      g.output(keyRowsName(i), 'float32', ['batch_size', 'sequence_length', kvH * D]);
      g.output(valueRowsName(i), 'float32', ['batch_size', 'sequence_length', kvH * D]);
    }

    // Embeddings, with image features scattered over the image-pad rows.
    const embName = 'model.embed_tokens.weight';
    const table = readChecked(weights, embName, [V, hidden]);
    const emb = embedding(g, embName, table, V, hidden, ids, kernels.embeddings);
    const embShape = g.op('Shape', [emb], {}, { name: '/model/embed_tokens/Shape' });
    const flat = g.op('Reshape', [emb, g.constInt64([-1, hidden])], {}, { name: '/model/embed_tokens/Reshape' });
    const idx2 = g.op('Unsqueeze', [imgIdx, g.constInt64([1])], {}, { name: '/model/image_merge/Unsqueeze' });
    const merged = g.op('ScatterND', [flat, idx2, imgEmb], {}, { name: '/model/image_merge/ScatterND' });
    let x = g.op('Reshape', [merged, embShape], {}, { name: '/model/image_merge/Reshape' });

    const rope = rotaryTables(g, '/model/rotary', cosIn, sinIn, D, g.op('Shape', [ids], {}, { name: '/model/rotary/ids/Shape' }));
    const splitQkv = g.constInt64([nH * D, kvH * D, kvH * D]);
    const splitGateUp = g.constInt64([inter, inter]);
    const attn = attentionContext(g, role, ids, seqlensK, totalLen, past[0]![0], { heads: nH, kvHeads: kvH, headDim: D });

    for (let i = 0; i < t.numHiddenLayers; i++) {
      const p = `model.layers.${i}`;
      const s = `/model/layers.${i}`;
      const h = rmsNorm(g, x, `${s}/input_layernorm`, readChecked(weights, `${p}.input_layernorm.weight`, [hidden]), t.rmsNormEps);
      // q, k and v as one matmul (rows stacked), then split: fewer and larger kernels.
      const qkvW = concatFloat32([
        readChecked(weights, `${p}.self_attn.q_proj.weight`, [nH * D, hidden]),
        readChecked(weights, `${p}.self_attn.k_proj.weight`, [kvH * D, hidden]),
        readChecked(weights, `${p}.self_attn.v_proj.weight`, [kvH * D, hidden]),
      ]);
      const qkvB = concatFloat32([
        readChecked(weights, `${p}.self_attn.q_proj.bias`, [nH * D]),
        readChecked(weights, `${p}.self_attn.k_proj.bias`, [kvH * D]),
        readChecked(weights, `${p}.self_attn.v_proj.bias`, [kvH * D]),
      ]);
      const qkv = linear(g, h, `${s}/attn/qkv_proj`, qkvW, (nH + 2 * kvH) * D, hidden, qkvB, lo);
      // the new K (after rotary) and V rows are graph outputs as they are made: no copies for the engine
      const [q, k, v] = g.node('Split', [qkv, splitQkv], { axis: -1 }, {
        name: `${s}/attn/qkv_proj/Split`,
        outputs: [`${s}/attn/q`, `${s}/attn/k`, valueRowsName(i)],
      }) as [string, string, string];
      const qr = rotary(g, q, rope, `${s}/attn/q_rotary`);
      const kr = rotary(g, k, rope, `${s}/attn/k_rotary`, keyRowsName(i));
      const [pk, pv] = past[i]!;
      const att = layerAttention(g, `${s}/attn`, qr, kr, v, pk, pv, attn);
      const o = linear(g, att, `${s}/attn/o_proj`, readChecked(weights, `${p}.self_attn.o_proj.weight`, [hidden, nH * D]), hidden, nH * D, undefined, lo);
      x = g.op('Add', [x, o], {}, { name: `${s}/attn/residual/Add` });

      const h2 = rmsNorm(g, x, `${s}/post_attention_layernorm`, readChecked(weights, `${p}.post_attention_layernorm.weight`, [hidden]), t.rmsNormEps);
      const gateUpW = concatFloat32([
        readChecked(weights, `${p}.mlp.gate_proj.weight`, [inter, hidden]),
        readChecked(weights, `${p}.mlp.up_proj.weight`, [inter, hidden]),
      ]);
      const gateUp = linear(g, h2, `${s}/mlp/gate_up_proj`, gateUpW, 2 * inter, hidden, undefined, lo);
      const [gate, up] = g.node('Split', [gateUp, splitGateUp], { axis: -1 }, { name: `${s}/mlp/gate_up_proj/Split`, outputs: 2 }) as [string, string];
      const sig = g.op('Sigmoid', [gate], {}, { name: `${s}/mlp/act_fn/Sigmoid` });
      const silu = g.op('Mul', [gate, sig], {}, { name: `${s}/mlp/act_fn/Mul` });
      const prod = g.op('Mul', [silu, up], {}, { name: `${s}/mlp/Mul` });
      const down = linear(g, prod, `${s}/mlp/down_proj`, readChecked(weights, `${p}.mlp.down_proj.weight`, [hidden, inter]), hidden, inter, undefined, lo);
      x = g.op('Add', [x, down], {}, { name: `${s}/mlp/residual/Add` });
    }

    const n = rmsNorm(g, x, '/model/norm', readChecked(weights, 'model.norm.weight', [hidden]), t.rmsNormEps);
    const nflat = g.op('Reshape', [n, g.constInt64([-1, hidden])], {}, { name: '/model/norm/Reshape' });
    const sel = g.op('Gather', [nflat, logitsIdx], { axis: 0 }, { name: '/lm_head/Gather' });
    const tied = t.tieWordEmbeddings || !weights.has('lm_head.weight');
    if (kernels.lmHead.kind === 'f32' && tied && kernels.embeddings === 'f32') {
      // reuse the embedding initializer: no second copy of the [vocab, hidden] matrix
      g.node('Gemm', [sel, embName], { transB: 1 }, { name: '/lm_head/Gemm', outputs: ['logits'] });
    } else {
      const w = tied ? table : readChecked(weights, 'lm_head.weight', [V, hidden]);
      const y = linear(g, sel, '/lm_head', w, V, hidden, undefined, kernels.lmHead);
      g.node('Identity', [y], {}, { name: '/lm_head/Identity', outputs: ['logits'] });
    }
    g.save(modelPath);
  } catch (e) {
    g.abort();
    throw e;
  }
  return { modelPath, dataPath, externalBytes: g.externalBytes, inputs: g.inputNames, outputs: g.outputNames };
}

/**
 * Token embeddings [B, S, hidden]. int8: one symmetric scale per row, so a lookup reads
 * hidden bytes + one float and dequantizes only the rows it gathers.
 */
function embedding(g: GraphBuilder, name: string, table: Float32Array, V: number, hidden: number, ids: string, kind: 'f32' | 'int8'): string {
  if (kind === 'f32') {
    g.initializer(name, table, [V, hidden]);
    return g.op('Gather', [name, ids], { axis: 0 }, { name: '/model/embed_tokens/Gather' });
  }
  const { data: q, scales } = quantizePerRowInt8(table, V, hidden);
  g.initializer(`${name}.q8`, q, [V, hidden]);
  g.initializer(`${name}.row_scales`, scales, [V, 1]);
  const rows = g.op('Gather', [`${name}.q8`, ids], { axis: 0 }, { name: '/model/embed_tokens/Gather' });
  const f = g.op('Cast', [rows], { to: 1 }, { name: '/model/embed_tokens/Cast' });
  const s = g.op('Gather', [`${name}.row_scales`, ids], { axis: 0 }, { name: '/model/embed_tokens/scales/Gather' });
  return g.op('Mul', [f, s], {}, { name: '/model/embed_tokens/Mul' });
}

