/**
 * Qwen2-VL vision encoder graph (= HF Qwen2VisionTransformerPretrainedModel) for ONE image per run,
 * so full attention over the run's patches is exactly HF's block-diagonal attention.
 *
 * Inputs:  pixel_patches f32 [N, C*T*P*P] (1176: HF patch order, merge groups contiguous)
 *          rotary_cos    f32 [N, headDim]   (visionRotary(): cat(freqs, freqs))
 *          rotary_sin    f32 [N, headDim]
 * Output:  image_embeds  f32 [N/4, outHiddenSize]
 */
import type { Qwen2VLConfig, WeightSource } from '../checkpoint/types.ts';
import { GraphBuilder, MS_DOMAIN, attr, type BuiltGraph } from './onnx-graph.ts';
import { layerNorm, linear, readChecked, rotary, rotaryTables, transpose2d, type LinearKernel } from './layers.ts';

export const VISION_LN_EPS = 1e-6;

export function buildVisionEncoder(
  config: Qwen2VLConfig,
  weights: WeightSource,
  modelPath: string,
  lo: LinearKernel,
): BuiltGraph {
  const v = config.vision;
  const E = v.embedDim;
  const H = v.numHeads;
  const D = E / H;
  if (!Number.isInteger(D) || D % 2 !== 0) throw new Error(`vision embedDim ${E} / heads ${H} must be an even integer`);
  const patchDim = v.inChannels * v.temporalPatchSize * v.patchSize * v.patchSize;
  const mlp = Math.round(E * v.mlpRatio);
  const merge = v.spatialMergeSize * v.spatialMergeSize;
  const mergedDim = E * merge;
  const out = v.outHiddenSize;
  const dataPath = `${modelPath}.data`;
  const g = new GraphBuilder({ name: 'qwen2_vl_vision', externalDataPath: dataPath });
  try {
    const pixels = g.input('pixel_patches', 'float32', ['num_patches', patchDim]);
    const cosIn = g.input('rotary_cos', 'float32', ['num_patches', D]);
    const sinIn = g.input('rotary_sin', 'float32', ['num_patches', D]);
    g.output('image_embeds', 'float32', ['num_image_tokens', out]);

    // Patch embedding: Conv3d with stride = kernel over one patch == MatMul with the flattened kernel.
    const pw = readChecked(weights, 'visual.patch_embed.proj.weight', [E, patchDim]);
    g.initializer('vision.patch_embed.weight', transpose2d(pw, E, patchDim), [patchDim, E]);
    let x = g.op('MatMul', [pixels, 'vision.patch_embed.weight'], {}, { name: '/vision/patch_embed/MatMul' });

    const shape1NE = g.constInt64([1, -1, E]);
    const rope = rotaryTables(g, '/vision/rotary', cosIn, sinIn, D, g.constInt64([1, -1]));
    const shapeNE = g.constInt64([-1, E]);
    const split3 = g.constInt64([E, E, E]);

    for (let i = 0; i < v.depth; i++) {
      const p = `visual.blocks.${i}`;
      const s = `/vision/blocks.${i}`;
      const ln1 = layerNorm(g, x, `${s}/norm1`, readChecked(weights, `${p}.norm1.weight`, [E]), readChecked(weights, `${p}.norm1.bias`, [E]), VISION_LN_EPS);
      const qkv = linear(g, ln1, `${s}/attn/qkv`, readChecked(weights, `${p}.attn.qkv.weight`, [3 * E, E]), 3 * E, E, readChecked(weights, `${p}.attn.qkv.bias`, [3 * E]), lo);
      const [q0, k0, v0] = g.node('Split', [qkv, split3], { axis: -1 }, { name: `${s}/attn/qkv/Split`, outputs: 3 });
      // [1, N, E]: one sequence of patches, as RotaryEmbedding and MultiHeadAttention take it
      const q3 = rotary(g, g.op('Reshape', [q0!, shape1NE], {}, { name: `${s}/attn/q/Reshape` }), rope, `${s}/attn/q_rotary`);
      const k3 = rotary(g, g.op('Reshape', [k0!, shape1NE], {}, { name: `${s}/attn/k/Reshape` }), rope, `${s}/attn/k_rotary`);
      const v3 = g.op('Reshape', [v0!, shape1NE], {}, { name: `${s}/attn/v/Reshape` });
      const att = g.op('MultiHeadAttention', [q3, k3, v3], { num_heads: H, scale: attr.float(1 / Math.sqrt(D)) }, {
        name: `${s}/attn/MultiHeadAttention`,
        domain: MS_DOMAIN,
      });
      const att2 = g.op('Reshape', [att, shapeNE], {}, { name: `${s}/attn/Reshape` });
      const proj = linear(g, att2, `${s}/attn/proj`, readChecked(weights, `${p}.attn.proj.weight`, [E, E]), E, E, readChecked(weights, `${p}.attn.proj.bias`, [E]), lo);
      x = g.op('Add', [x, proj], {}, { name: `${s}/attn/residual/Add` });

      const ln2 = layerNorm(g, x, `${s}/norm2`, readChecked(weights, `${p}.norm2.weight`, [E]), readChecked(weights, `${p}.norm2.bias`, [E]), VISION_LN_EPS);
      const fc1 = linear(g, ln2, `${s}/mlp/fc1`, readChecked(weights, `${p}.mlp.fc1.weight`, [mlp, E]), mlp, E, readChecked(weights, `${p}.mlp.fc1.bias`, [mlp]), lo);
      const act = activation(g, fc1, v.hiddenAct, `${s}/mlp/act`);
      const fc2 = linear(g, act, `${s}/mlp/fc2`, readChecked(weights, `${p}.mlp.fc2.weight`, [E, mlp]), E, mlp, readChecked(weights, `${p}.mlp.fc2.bias`, [E]), lo);
      x = g.op('Add', [x, fc2], {}, { name: `${s}/mlp/residual/Add` });
    }

    // Patch merger: LN over embed, group each 2x2 merge block (consecutive rows), MLP with exact GELU.
    const lnq = layerNorm(g, x, '/vision/merger/ln_q', readChecked(weights, 'visual.merger.ln_q.weight', [E]), readChecked(weights, 'visual.merger.ln_q.bias', [E]), VISION_LN_EPS);
    const grouped = g.op('Reshape', [lnq, g.constInt64([-1, mergedDim])], {}, { name: '/vision/merger/Reshape' });
    const m0 = linear(g, grouped, '/vision/merger/mlp.0', readChecked(weights, 'visual.merger.mlp.0.weight', [mergedDim, mergedDim]), mergedDim, mergedDim, readChecked(weights, 'visual.merger.mlp.0.bias', [mergedDim]), lo);
    const gelu = g.op('Gelu', [m0], {}, { name: '/vision/merger/Gelu', domain: MS_DOMAIN });
    const m2 = linear(g, gelu, '/vision/merger/mlp.2', readChecked(weights, 'visual.merger.mlp.2.weight', [out, mergedDim]), out, mergedDim, readChecked(weights, 'visual.merger.mlp.2.bias', [out]), lo);
    g.node('Identity', [m2], {}, { name: '/vision/output/Identity', outputs: ['image_embeds'] });
    g.save(modelPath);
  } catch (e) {
    g.abort();
    throw e;
  }
  return { modelPath, dataPath, externalBytes: g.externalBytes, inputs: g.inputNames, outputs: g.outputNames };
}

function activation(g: GraphBuilder, x: string, act: string, scope: string): string {
  switch (act) {
    case 'quick_gelu':
      return g.op('QuickGelu', [x], { alpha: attr.float(1.702) }, { name: `${scope}/QuickGelu`, domain: MS_DOMAIN });
    case 'gelu':
      return g.op('Gelu', [x], {}, { name: `${scope}/Gelu`, domain: MS_DOMAIN });
    default:
      throw new Error(`unsupported vision hidden_act ${act}`);
  }
}
