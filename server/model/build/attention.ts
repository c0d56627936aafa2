/**
 * The decoder's causal self-attention over the engine's KV buffer, one operator choice per kind of run.
 *
 * - Prompt rows (S > 1 new tokens per sequence): com.microsoft GroupQueryAttention, 4-5x faster than
 *   standard operators on a first prompt (docs/performance.md, "Attention per phase").
 * - Decode steps (S == 1): standard operators that only read the past. GroupQueryAttention copies the
 *   whole past into a newly allocated present buffer on every run (its in-place mode needs past and
 *   present to be one buffer, which onnxruntime-node cannot express): at 7,680 cached tokens an int4
 *   decode step took 304 ms with it and 139 ms without.
 * A graph built for one phase holds that phase's path only (int4 builds a graph per phase); a graph that
 * serves both (f32, int8) picks per run with an If node per layer, which costs ~0.2 ms per layer and
 * run. Neither path outputs the whole present: the run's new rows leave as key_rows/value_rows and the
 * engine appends them to its pool.
 *
 * The decode path: the G query heads that share a KV head ride along as G query rows ([G, D] per KV
 * head: with one new token per sequence that is a reshape), which is grouped-query attention without
 * repeating K/V; the past and the new row are scored by separate matmuls and joined in one softmax, so
 * the past is never concatenated. Row b has seqlens_k[b] valid past rows; the rest of the buffer is
 * masked, so it must hold finite values, which the pool guarantees: zero-filled, then only ever model
 * outputs.
 */
import { MS_DOMAIN, attr, type Attrs, type GraphBuilder } from './onnx-graph.ts';

/** Which runs a decoder graph serves: one graph for both, or one per phase. */
export type DecoderRole = 'both' | 'prefill' | 'decode';

/** Values every layer's attention reads, computed once per graph; the decode path's only where it runs. */
export type AttentionContext = {
  dims: AttentionDims;
  seqlensK: string;
  totalLen: string;
} & (
  | { role: 'prefill' }
  | { role: 'decode'; masks: DecodeMasks }
  | {
      role: 'both';
      masks: DecodeMasks;
      /** bool scalar: S == 1, a decode step. */
      decoding: string;
    }
);

/** What the decode path reads besides its layer's tensors. */
interface DecodeMasks {
  /** Additive mask [B, 1, 1, L]: 0 where past row l of sequence b is valid, a large negative where not. */
  past: string;
  /** Split sizes [L, 1] along the key axis of the joint scores. */
  split: string;
}

export interface AttentionDims {
  heads: number;
  kvHeads: number;
  headDim: number;
}

const HIDDEN = -1e30;

/**
 * `ids` is input_ids [B, S], `seqlensK` int32 [B], `totalLen` int32 [] (GroupQueryAttention's inputs),
 * `pastKey` any layer's past key [B, kvH, L, D].
 */
export function attentionContext(g: GraphBuilder, role: DecoderRole, ids: string, seqlensK: string, totalLen: string, pastKey: string, dims: AttentionDims): AttentionContext {
  const base = { dims, seqlensK, totalLen };
  if (role === 'prefill') return { ...base, role };
  const s = '/model/attn_mask';
  const squeeze = (x: string, name: string) => g.op('Squeeze', [x, g.constInt64([0])], {}, { name: `${s}/${name}/Squeeze` });
  const dimOf = (x: string, axis: number, name: string) =>
    g.op('Slice', [g.op('Shape', [x], {}, { name: `${s}/${name}/Shape` }), g.constInt64([axis]), g.constInt64([axis + 1])], {}, { name: `${s}/${name}/Slice` });
  const one = g.constInt64([1], true);

  // valid past rows of a decode step: l < seqlens_k
  const L1 = dimOf(pastKey, 2, 'past_len'); // [1]
  const seq = g.op('Cast', [seqlensK], { to: 7 }, { name: `${s}/seqlens/Cast` });
  const rows = g.op('Range', [g.constInt64([0], true), squeeze(L1, 'past_len'), one], {}, { name: `${s}/past_rows/Range` }); // [L]
  const validPast = g.op('Less', [
    g.op('Unsqueeze', [rows, g.constInt64([0])], {}, { name: `${s}/past_rows/Unsqueeze` }),
    g.op('Unsqueeze', [seq, g.constInt64([1])], {}, { name: `${s}/seqlens/Unsqueeze` }),
  ], {}, { name: `${s}/past/Less` }); // [B, L]
  const pastBias = g.op('Where', [validPast, g.constFloat(0), g.constFloat(HIDDEN)], {}, { name: `${s}/past/Where` });
  const masks: DecodeMasks = {
    past: g.op('Unsqueeze', [pastBias, g.constInt64([1, 2])], {}, { name: `${s}/past/Unsqueeze` }),
    split: g.op('Concat', [L1, g.constInt64([1])], { axis: 0 }, { name: `${s}/split/Concat` }),
  };
  if (role === 'decode') return { ...base, role, masks };
  const decoding = g.op('Equal', [squeeze(dimOf(ids, 1, 'new_len'), 'new_len'), one], {}, { name: `${s}/decoding/Equal` });
  return { ...base, role, masks, decoding };
}

/**
 * q [B, S, heads*D] and k, v [B, S, kvHeads*D] (rotary already applied to q and k); pastK/pastV
 * [B, kvHeads, L, D]. Returns [B, S, heads*D], heads in HF order (head h reads KV head h / G).
 */
export function layerAttention(g: GraphBuilder, scope: string, q: string, k: string, v: string, pastK: string, pastV: string, ctx: AttentionContext): string {
  const { heads, kvHeads, headDim } = ctx.dims;
  const prompt = (name: string) =>
    g.node('GroupQueryAttention', [q, k, v, pastK, pastV, ctx.seqlensK, ctx.totalLen], { num_heads: heads, kv_num_heads: kvHeads, scale: attr.float(1 / Math.sqrt(headDim)) }, {
      name: `${name}/GroupQueryAttention`,
      domain: MS_DOMAIN,
      outputs: 3, // output, present key, present value (the last two unused)
    })[0]!;
  if (ctx.role === 'prefill') return prompt(scope);
  if (ctx.role === 'decode') return pastInPlace(g, scope, q, k, v, pastK, pastV, ctx.dims, ctx.masks);
  const { masks } = ctx;
  const decode = g.subgraph(`${scope}/decode_rows`, 'float32', () => [pastInPlace(g, `${scope}/decode_rows`, q, k, v, pastK, pastV, ctx.dims, masks)]);
  const promptRows = g.subgraph(`${scope}/prompt_rows`, 'float32', () => [prompt(`${scope}/prompt_rows`)]);
  return g.op('If', [ctx.decoding], { then_branch: decode, else_branch: promptRows }, { name: `${scope}/If` });
}

/** The decode path (see the top of the file): one new token per sequence. */
function pastInPlace(g: GraphBuilder, scope: string, q: string, k: string, v: string, pastK: string, pastV: string, dims: AttentionDims, masks: DecodeMasks): string {
  const { kvHeads, headDim: D } = dims;
  const G = dims.heads / kvHeads;
  const n = (op: string, inputs: string[], name: string, attrs: Attrs = {}) => g.op(op, inputs, attrs, { name: `${scope}/${name}` });
  // with S == 1, [B, 1, heads*D] is [B, kvH, G, D] in memory (heads in HF order), and k/v are [B, kvH, 1, D]
  const qRows = n('Reshape', [q, g.constInt64([0, kvHeads, G, D])], 'q/Reshape');
  const kNew = n('Reshape', [k, g.constInt64([0, kvHeads, 1, D])], 'k/Reshape');
  const vNew = n('Reshape', [v, g.constInt64([0, kvHeads, 1, D])], 'v/Reshape');

  const scale = { transB: 1, alpha: attr.float(1 / Math.sqrt(D)) };
  const scores = (keys: string, name: string) => g.op('FusedMatMul', [qRows, keys], scale, { name: `${scope}/${name}/FusedMatMul`, domain: MS_DOMAIN });
  const pastScores = n('Add', [scores(pastK, 'scores_past'), masks.past], 'scores_past/Add');
  const joint = n('Concat', [pastScores, scores(kNew, 'scores_new')], 'scores/Concat', { axis: -1 });
  const probs = n('Softmax', [joint], 'Softmax', { axis: -1 }); // [B, kvH, G, L+1]
  const [pPast, pNew] = g.node('Split', [probs, masks.split], { axis: -1 }, { name: `${scope}/probs/Split`, outputs: 2 }) as [string, string];
  const o = n('Add', [n('MatMul', [pPast, pastV], 'out_past/MatMul'), n('MatMul', [pNew, vNew], 'out_new/MatMul')], 'out/Add'); // [B, kvH, G, D]
  return n('Reshape', [o, g.constInt64([0, 1, -1])], 'out/Reshape');
}
