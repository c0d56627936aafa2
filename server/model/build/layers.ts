/**
 * Graph fragments shared by the vision encoder and the decoder: Linear in every weight format,
 * norms, and rotate-half rotary.
 */
import { GraphBuilder, MS_DOMAIN, attr } from './onnx-graph.ts';
import type { WeightSource } from '../checkpoint/types.ts';
import { quantizeBlockwise, quantizePerColumnInt8, type QuantBits } from './quantize.ts';

export type WeightFormat = 'f32' | 'int8' | 'int4';

/**
 * The operator a Linear layer runs as. Which one suits which phase is measured by bench/kernels.ts
 * and decided in recipes.ts.
 * - f32:   MatMul on float32 weights.
 * - dqmm:  DynamicQuantizeMatMul: int8 weights with one scale per output column, activations
 *          quantized per tensor at run time: a row's result depends on the other rows of its run.
 * - int8-row: the same int8 weights and GEMM (MatMulIntegerToFloat), activations quantized per row
 *          (each row's own max |x| / 127), then each output row rescaled: a row's result is the same
 *          whatever other rows share its run (batched sequences, prompt chunks, a cached prefix).
 * - nbits: MatMulNBits: 4- or 8-bit block-quantized weights (one scale per block of K);
 *          accuracyLevel 4 multiplies int8 activations (quantized per block), 0 in fp32.
 */
export type LinearKernel =
  | { kind: 'f32' }
  | { kind: 'dqmm' }
  | { kind: 'int8-row' }
  | { kind: 'nbits'; bits: QuantBits; blockSize: number; accuracyLevel: number };

/** Transposes a row-major [rows, cols] matrix. */
export function transpose2d(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const src = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = w[src + c]!;
  }
  return out;
}

export function readChecked(weights: WeightSource, name: string, shape: readonly number[]): Float32Array {
  if (!weights.has(name)) throw new Error(`checkpoint has no tensor ${name}`);
  const got = weights.shape(name);
  const want = shape.reduce((a, b) => a * b, 1);
  const have = got.reduce((a, b) => a * b, 1);
  if (have !== want) throw new Error(`tensor ${name}: shape [${got}] but expected [${shape}]`);
  const data = weights.readFloat32(name);
  if (data.length !== want) throw new Error(`tensor ${name}: read ${data.length} values, expected ${want}`);
  return data;
}

/**
 * y = x W^T (+ b) for an HF Linear weight W [n, k]. `scope` is the node-name prefix,
 * e.g. `/model/layers.0/attn/q_proj`. Returns the output value name.
 */
export function linear(
  g: GraphBuilder,
  x: string,
  scope: string,
  w: Float32Array,
  n: number,
  k: number,
  bias: Float32Array | undefined,
  kernel: LinearKernel,
): string {
  const base = scope.slice(1).replace(/\//g, '.');
  const wname = `${base}.weight`;
  const bname = `${base}.bias`;
  if (bias) g.initializer(bname, bias, [n]);
  if (kernel.kind === 'f32') {
    g.initializer(wname, transpose2d(w, n, k), [k, n]);
    const y = g.op('MatMul', [x, wname], {}, { name: `${scope}/MatMul` });
    // ORT fuses MatMul + Add into one Gemm where it can
    return bias ? g.op('Add', [y, bname], {}, { name: `${scope}/Add` }) : y;
  }
  // DynamicQuantizeMatMul and MatMulNBits add the bias as they write their output: no second pass over it
  if (kernel.kind === 'dqmm' || kernel.kind === 'int8-row') {
    const q = quantizePerColumnInt8(w, n, k);
    g.initializer(`${wname}.q8`, q.data, [k, n]);
    g.initializer(`${wname}.scales`, q.scales, [n]);
    if (kernel.kind === 'int8-row') return int8RowLinear(g, x, scope, `${wname}.q8`, `${wname}.scales`, bias ? bname : undefined);
    const inputs = [x, `${wname}.q8`, `${wname}.scales`, ...(bias ? ['', bname] : [])]; // '': no zero point
    return g.op('DynamicQuantizeMatMul', inputs, {}, { name: `${scope}/DynamicQuantizeMatMul`, domain: MS_DOMAIN });
  }
  const { bits, blockSize, accuracyLevel } = kernel;
  const q = quantizeBlockwise(w, n, k, bits, blockSize);
  const qname = `${wname}.q${bits}`;
  const sname = `${wname}.scales`;
  g.initializer(qname, q.data, [n, q.blocksPerRow, q.blobSize]);
  g.initializer(sname, q.scales, [n * q.blocksPerRow]);
  const inputs = [x, qname, sname, ...(bias ? ['', '', bname] : [])]; // '': no zero points, no g_idx
  return g.op('MatMulNBits', inputs, { K: k, N: n, bits, block_size: blockSize, accuracy_level: accuracyLevel }, {
    name: `${scope}/MatMulNBits`,
    domain: MS_DOMAIN,
  });
}

/**
 * x quantized per row, symmetric: s = max|x| / 127 per row, q = round(x / s) + 128 as uint8, then
 * y = s * (q - 128) W8 (+ b). The GEMM's output scale is one number, so each row's scale is applied
 * as its own pass over the output.
 */
function int8RowLinear(g: GraphBuilder, x: string, scope: string, q8: string, scales: string, bias: string | undefined): string {
  const zeroPoint = g.constUint8(128);
  const absMax = g.op('ReduceMax', [g.op('Abs', [x], {}, { name: `${scope}/rows/Abs` })], { axes: attr.ints([-1]), keepdims: 1 }, {
    name: `${scope}/rows/ReduceMax`,
  });
  // an all-zero row keeps a tiny scale instead of dividing by zero
  const scale = g.op('Max', [g.op('Div', [absMax, g.constFloat(127)], {}, { name: `${scope}/rows/Div` }), g.constFloat(1e-30)], {}, {
    name: `${scope}/rows/Max`,
  });
  const unit = g.op('Div', [x, scale], {}, { name: `${scope}/rows/normalize/Div` });
  const quantized = g.op('QuantizeLinear', [unit, g.constFloat(1), zeroPoint], {}, { name: `${scope}/rows/QuantizeLinear` });
  const y = g.op('MatMulIntegerToFloat', [quantized, q8, g.constFloat(1), scales, zeroPoint], {}, {
    name: `${scope}/MatMulIntegerToFloat`,
    domain: MS_DOMAIN,
  });
  const scaled = g.op('Mul', [y, scale], {}, { name: `${scope}/rows/rescale/Mul` });
  return bias ? g.op('Add', [scaled, bias], {}, { name: `${scope}/Add` }) : scaled;
}

export function layerNorm(g: GraphBuilder, x: string, scope: string, weight: Float32Array, bias: Float32Array, eps: number): string {
  const base = scope.slice(1).replace(/\//g, '.');
  g.initializer(`${base}.weight`, weight, [weight.length]);
  g.initializer(`${base}.bias`, bias, [bias.length]);
  return g.op('LayerNormalization', [x, `${base}.weight`, `${base}.bias`], { axis: -1, epsilon: attr.float(eps) }, {
    name: `${scope}/LayerNorm`,
  });
}

export function rmsNorm(g: GraphBuilder, x: string, scope: string, weight: Float32Array, eps: number): string {
  const base = scope.slice(1).replace(/\//g, '.');
  g.initializer(`${base}.weight`, weight, [weight.length]);
  // SimplifiedLayerNormalization is registered by ORT in the default (ai.onnx) domain.
  return g.op('SimplifiedLayerNormalization', [x, `${base}.weight`], { axis: -1, epsilon: attr.float(eps) }, {
    name: `${scope}/SimplifiedLayerNorm`,
  });
}

/** Per-token rotary tables for com.microsoft RotaryEmbedding, built once per graph (see rotaryTables). */
export interface RotaryTables {
  /** int64 [B, S]: 0 .. B*S-1, token i reads row i of the tables. */
  positions: string;
  /** [B*S, headDim/2] */
  cos: string;
  sin: string;
}

/**
 * RotaryEmbedding looks rows up by position id in a [positions, headDim/2] table. Positions here are
 * resolved host-side into per-token cos/sin ([..., headDim] in HF layout cat(f, f), so the two halves
 * are equal; M-RoPE in the decoder, 2-D patch positions in the vision encoder): the table gets one row
 * per token, and token i's position id is i, shaped `positionsShape` (int64 [2]: the rotated input's
 * [batch, sequence]).
 */
export function rotaryTables(g: GraphBuilder, scope: string, cos: string, sin: string, headDim: number, positionsShape: string): RotaryTables {
  const half = headDim / 2;
  const table = (x: string, name: string) =>
    g.op('Reshape', [
      g.op('Slice', [x, g.constInt64([0]), g.constInt64([half]), g.constInt64([-1])], {}, { name: `${scope}/${name}/Slice` }),
      g.constInt64([-1, half]),
    ], {}, { name: `${scope}/${name}/Reshape` });
  const cosTable = table(cos, 'cos');
  const rows = g.op('Gather', [g.op('Shape', [cosTable], {}, { name: `${scope}/rows/Shape` }), g.constInt64([0], true)], { axis: 0 }, { name: `${scope}/rows/Gather` });
  const flat = g.op('Range', [g.constInt64([0], true), rows, g.constInt64([1], true)], {}, { name: `${scope}/positions/Range` });
  const positions = g.op('Reshape', [flat, positionsShape], {}, { name: `${scope}/positions/Reshape` });
  return { positions, cos: cosTable, sin: table(sin, 'sin') };
}

/** Rotate-half rotary of `x` [B, S, heads*headDim] by its tokens' rows of `t`, in one kernel (ORT's contrib op). */
export function rotary(g: GraphBuilder, x: string, t: RotaryTables, scope: string, output?: string): string {
  return g.node('RotaryEmbedding', [x, t.positions, t.cos, t.sin], {}, {
    name: `${scope}/RotaryEmbedding`,
    domain: MS_DOMAIN,
    ...(output ? { outputs: [output] } : {}),
  })[0]!;
}
