/**
 * The decoder's causal self-attention over the engine's KV buffer, one operator choice per kind of run.
 *
 * - Prompt rows (S > 1 new tokens per sequence): com.microsoft GroupQueryAttention. It skips masked
 *   and causal work, 5x faster than the standard operators below on a first prompt.
 * - Decode steps (S == 1): standard operators that only read the past. GroupQueryAttention copies the
 *   whole past into a newly allocated present buffer on every run (its in-place mode needs past and
 *   present to be one buffer, which onnxruntime-node cannot express): at 7,680 cached tokens an int4
 *   decode step took 304 ms with it and 139 ms without.
 * An If node per layer picks one at run time, so one graph serves both phases (the f32 format has one
 * decoder graph). Neither outputs the whole present: the run's new rows leave as key_rows/value_rows and
 * the engine appends them to its pool.
 *
 * The decode path: the query heads that share a KV head (G of them) ride along as extra query rows
 * ([S*G, D] per KV head), which is grouped-query attention without repeating K/V; the past and the
 * run's new rows are scored by separate matmuls and joined in one softmax, so the past is never
 * concatenated. Its masks come from seqlens_k (rows of a batch have the same number S of new tokens;
 * row b has seqlens_k[b] + 1 - S valid past rows; the rest of the buffer is masked, so it must hold
 * finite values, which the pool guarantees: zero-filled, then only ever model outputs).
 */
import { MS_DOMAIN, attr, type Attrs, type GraphBuilder } from './onnx-graph.ts';

/** Values every layer's attention reads, computed once per graph. */
export interface AttentionContext {
  dims: AttentionDims;
  seqlensK: string;
  totalLen: string;
  /** bool scalar: S == 1, a decode step. */
  decoding: string;
  // additive masks of the decode path: 0 where a key is visible, a large negative where not
  /** [B, 1, 1, L]: past row l of sequence b is valid. */
  past: string;
  /** [S*G, S]: new key j is visible to query row r = s*G + g when j <= s. */
  causal: string;
  /** Split sizes [L, S] along the key axis of the joint scores. */
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
export function attentionContext(g: GraphBuilder, ids: string, seqlensK: string, totalLen: string, pastKey: string, dims: AttentionDims): AttentionContext {
  const s = '/model/attn_mask';
  const group = dims.heads / dims.kvHeads;
  const zero = g.constFloat(0);
  const hidden = g.constFloat(HIDDEN);
  const scalar = (x: string, name: string) => g.op('Squeeze', [x, g.constInt64([0])], {}, { name: `${s}/${name}/Squeeze` });
  const dimOf = (x: string, axis: number, name: string) =>
    g.op('Slice', [g.op('Shape', [x], {}, { name: `${s}/${name}/Shape` }), g.constInt64([axis]), g.constInt64([axis + 1])], {}, { name: `${s}/${name}/Slice` });
  const S1 = dimOf(ids, 1, 'new_len'); // [1]
  const L1 = dimOf(pastKey, 2, 'past_len'); // [1]
  const S = scalar(S1, 'new_len');
  const L = scalar(L1, 'past_len');
  const i0 = g.constInt64([0], true);
  const i1 = g.constInt64([1], true);

  // past: valid rows l < seqlens_k + 1 - S
  const seq = g.op('Cast', [seqlensK], { to: 7 }, { name: `${s}/seqlens/Cast` });
  const pastLen = g.op('Sub', [g.op('Add', [seq, i1], {}, { name: `${s}/total/Add` }), S], {}, { name: `${s}/past_valid/Sub` }); // [B]
  const rows = g.op('Range', [i0, L, i1], {}, { name: `${s}/past_rows/Range` }); // [L]
  const validPast = g.op('Less', [
    g.op('Unsqueeze', [rows, g.constInt64([0])], {}, { name: `${s}/past_rows/Unsqueeze` }),
    g.op('Unsqueeze', [pastLen, g.constInt64([1])], {}, { name: `${s}/past_valid/Unsqueeze` }),
  ], {}, { name: `${s}/past/Less` }); // [B, L]
  const pastBias = g.op('Where', [validPast, zero, hidden], {}, { name: `${s}/past/Where` });
  const past = g.op('Unsqueeze', [pastBias, g.constInt64([1, 2])], {}, { name: `${s}/past/Unsqueeze` });

  // causal among the new rows: key j visible to query row r (token r / G) when j * G <= r
  const keys = g.op('Mul', [g.op('Range', [i0, S, i1], {}, { name: `${s}/new_keys/Range` }), g.constInt64([group], true)], {}, { name: `${s}/new_keys/Mul` });
  const queries = g.op('Range', [i0, g.op('Mul', [S, g.constInt64([group], true)], {}, { name: `${s}/queries/Mul` }), i1], {}, { name: `${s}/queries/Range` });
  const visible = g.op('LessOrEqual', [
    g.op('Unsqueeze', [keys, g.constInt64([0])], {}, { name: `${s}/new_keys/Unsqueeze` }),
    g.op('Unsqueeze', [queries, g.constInt64([1])], {}, { name: `${s}/queries/Unsqueeze` }),
  ], {}, { name: `${s}/causal/LessOrEqual` }); // [S*G, S]
  const causal = g.op('Where', [visible, zero, hidden], {}, { name: `${s}/causal/Where` });

  const split = g.op('Concat', [L1, S1], { axis: 0 }, { name: `${s}/split/Concat` });
  const decoding = g.op('Equal', [S, i1], {}, { name: `${s}/decoding/Equal` });
  return { dims, seqlensK, totalLen, decoding, past, causal, split };
}

/**
 * q [B, S, heads*D] and k, v [B, S, kvHeads*D] (rotary already applied to q and k); pastK/pastV
 * [B, kvHeads, L, D]. Returns [B, S, heads*D], heads in HF order (head h reads KV head h / G).
 */
export function layerAttention(g: GraphBuilder, scope: string, q: string, k: string, v: string, pastK: string, pastV: string, ctx: AttentionContext): string {
  const { heads, kvHeads, headDim } = ctx.dims;
  const decode = g.subgraph(`${scope}/decode_rows`, 'float32', () => [pastInPlace(g, `${scope}/decode_rows`, q, k, v, pastK, pastV, ctx)]);
  const prompt = g.subgraph(`${scope}/prompt_rows`, 'float32', () => [
    g.node('GroupQueryAttention', [q, k, v, pastK, pastV, ctx.seqlensK, ctx.totalLen], { num_heads: heads, kv_num_heads: kvHeads, scale: attr.float(1 / Math.sqrt(headDim)) }, {
      name: `${scope}/prompt_rows/GroupQueryAttention`,
      domain: MS_DOMAIN,
      outputs: 3, // output, present key, present value (the last two unused)
    })[0]!,
  ]);
  return g.op('If', [ctx.decoding], { then_branch: decode, else_branch: prompt }, { name: `${scope}/If` });
}

/** The decode path (see the top of the file); any S works, it is chosen for S == 1. */
function pastInPlace(g: GraphBuilder, scope: string, q: string, k: string, v: string, pastK: string, pastV: string, ctx: AttentionContext): string {
  const { kvHeads, headDim: D } = ctx.dims;
  const G = ctx.dims.heads / kvHeads;
  const n = (op: string, inputs: string[], attrs: Attrs, name: string) => g.op(op, inputs, attrs, { name: `${scope}/${name}` });

  // query rows per KV head: [B, kvH, S*G, D]
  const q5 = n('Reshape', [q, g.constInt64([0, 0, kvHeads, G, D])], {}, 'q/Reshape');
  const qRows = n('Reshape', [n('Transpose', [q5], { perm: [0, 2, 1, 3, 4] }, 'q/Transpose'), g.constInt64([0, 0, -1, D])], {}, 'q/Reshape_1');
  const heads = (x: string, name: string) =>
    n('Transpose', [n('Reshape', [x, g.constInt64([0, 0, kvHeads, D])], {}, `${name}/Reshape`)], { perm: [0, 2, 1, 3] }, `${name}/Transpose`);
  const kNew = heads(k, 'k'); // [B, kvH, S, D]
  const vNew = heads(v, 'v');

  const scale = { transB: 1, alpha: attr.float(1 / Math.sqrt(D)) };
  const scores = (keys: string, mask: string, name: string) =>
    n('Add', [g.op('FusedMatMul', [qRows, keys], scale, { name: `${scope}/${name}/FusedMatMul`, domain: MS_DOMAIN }), mask], {}, `${name}/Add`);
  const joint = n('Concat', [scores(pastK, ctx.past, 'scores_past'), scores(kNew, ctx.causal, 'scores_new')], { axis: -1 }, 'scores/Concat');
  const probs = n('Softmax', [joint], { axis: -1 }, 'Softmax'); // [B, kvH, S*G, L+S]
  const [pPast, pNew] = g.node('Split', [probs, ctx.split], { axis: -1 }, { name: `${scope}/probs/Split`, outputs: 2 }) as [string, string];
  const o = n('Add', [n('MatMul', [pPast, pastV], {}, 'out_past/MatMul'), n('MatMul', [pNew, vNew], {}, 'out_new/MatMul')], {}, 'out/Add'); // [B, kvH, S*G, D]
  const o5 = n('Reshape', [o, g.constInt64([0, 0, -1, G, D])], {}, 'out/Reshape'); // [B, kvH, S, G, D]
  return n('Reshape', [n('Transpose', [o5], { perm: [0, 2, 1, 3, 4] }, 'out/Transpose'), g.constInt64([0, 0, -1])], {}, 'out/Reshape_1');
}
