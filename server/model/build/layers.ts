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
 *          quantized per tensor at run time (fast int8 GEMM for many rows).
 * - nbits: MatMulNBits: 4- or 8-bit block-quantized weights (one scale per block of K);
 *          accuracyLevel 4 multiplies int8 activations (quantized per block), 0 in fp32.
 */
export type LinearKernel =
  | { kind: 'f32' }
  | { kind: 'dqmm' }
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
  const wname = `${scope.slice(1).replace(/\//g, '.')}.weight`;
  let y: string;
  if (kernel.kind === 'f32') {
    g.initializer(wname, transpose2d(w, n, k), [k, n]);
    y = g.op('MatMul', [x, wname], {}, { name: `${scope}/MatMul` });
  } else if (kernel.kind === 'dqmm') {
    const q = quantizePerColumnInt8(w, n, k);
    g.initializer(`${wname}.q8`, q.data, [k, n]);
    g.initializer(`${wname}.scales`, q.scales, [n]);
    y = g.op('DynamicQuantizeMatMul', [x, `${wname}.q8`, `${wname}.scales`], {}, { name: `${scope}/DynamicQuantizeMatMul`, domain: MS_DOMAIN });
  } else {
    const { bits, blockSize, accuracyLevel } = kernel;
    const q = quantizeBlockwise(w, n, k, bits, blockSize);
    const qname = `${wname}.q${bits}`;
    const sname = `${wname}.scales`;
    g.initializer(qname, q.data, [n, q.blocksPerRow, q.blobSize]);
    g.initializer(sname, q.scales, [n * q.blocksPerRow]);
    y = g.op(
      'MatMulNBits',
      [x, qname, sname],
      { K: k, N: n, bits, block_size: blockSize, accuracy_level: accuracyLevel },
      { name: `${scope}/MatMulNBits`, domain: MS_DOMAIN },
    );
  }
  if (bias) {
    const bname = `${scope.slice(1).replace(/\//g, '.')}.bias`;
    g.initializer(bname, bias, [n]);
    y = g.op('Add', [y, bname], {}, { name: `${scope}/Add` });
  }
  return y;
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

/**
 * x*cos + rotate_half(x)*sin over the last axis of `x` ([..., heads, headDim]);
 * cos/sin broadcast (already shaped [..., 1, headDim]).
 * rotate_half(x) = concat(-x[..., half:], x[..., :half]).
 */
export function applyRotary(g: GraphBuilder, x: string, cos: string, sin: string, headDim: number, scope: string): string {
  const half = headDim / 2;
  const halves = g.constInt64([half, half]);
  const [x1, x2] = g.node('Split', [x, halves], { axis: -1 }, { name: `${scope}/Split`, outputs: 2 });
  const neg = g.op('Neg', [x2!], {}, { name: `${scope}/Neg` });
  const rot = g.op('Concat', [neg, x1!], { axis: -1 }, { name: `${scope}/Concat` });
  const a = g.op('Mul', [x, cos], {}, { name: `${scope}/Mul_cos` });
  const b = g.op('Mul', [rot, sin], {}, { name: `${scope}/Mul_sin` });
  return g.op('Add', [a, b], {}, { name: `${scope}/Add` });
}
