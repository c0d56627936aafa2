/**
 * Symmetric block quantisation in com.microsoft MatMulNBits layout (no zero_points input, so ORT's
 * default zero point applies: 8 for 4 bits, 128 for 8 bits).
 *
 * A Linear weight W is [N, K] (HF layout: out_features x in_features). For each output row n and
 * block b of `blockSize` consecutive k: scale = max|w| / qmax (qmax 7 or 127), q = clamp(round(w/scale))
 * + zeroPoint. Stored:
 *   data   uint8 [N, ceil(K/blockSize), blobSize]  blobSize = blockSize*bits/8;
 *          4 bits: byte j holds k = 2j in the low nibble and k = 2j+1 in the high nibble.
 *   scales float32 [N * ceil(K/blockSize)]
 * K not a multiple of blockSize is padded with zeros (MatMulNBits reads K from its attribute).
 * Round-trip error per element is at most scale/2 of its block.
 */
export type QuantBits = 4 | 8;

export interface QuantizedWeight {
  bits: QuantBits;
  blockSize: number;
  n: number;
  k: number;
  blocksPerRow: number;
  blobSize: number;
  data: Uint8Array;
  scales: Float32Array;
}

export function quantizeBlockwise(w: Float32Array, n: number, k: number, bits: QuantBits, blockSize = 32): QuantizedWeight {
  if (w.length !== n * k) throw new Error(`quantize: ${w.length} values for [${n}, ${k}]`);
  if (blockSize < 16 || (blockSize & (blockSize - 1)) !== 0) throw new Error(`block size ${blockSize} must be a power of 2 >= 16`);
  const blocksPerRow = Math.ceil(k / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const data = new Uint8Array(n * blocksPerRow * blobSize);
  const scales = new Float32Array(n * blocksPerRow);
  const qmax = bits === 4 ? 7 : 127;
  const zp = bits === 4 ? 8 : 128;
  const q = new Int32Array(blockSize);
  for (let row = 0; row < n; row++) {
    const rowOff = row * k;
    for (let b = 0; b < blocksPerRow; b++) {
      const k0 = b * blockSize;
      const k1 = Math.min(k, k0 + blockSize);
      let amax = 0;
      for (let j = k0; j < k1; j++) {
        const a = Math.abs(w[rowOff + j]!);
        if (a > amax) amax = a;
      }
      const scale = Math.fround(amax / qmax);
      const inv = scale === 0 ? 0 : 1 / scale;
      for (let j = 0; j < blockSize; j++) {
        const kk = k0 + j;
        let v = kk < k1 ? Math.round(w[rowOff + kk]! * inv) : 0;
        if (v > qmax) v = qmax;
        if (v < -qmax) v = -qmax;
        q[j] = v + zp;
      }
      const si = row * blocksPerRow + b;
      scales[si] = scale;
      const base = si * blobSize;
      if (bits === 8) {
        for (let j = 0; j < blockSize; j++) data[base + j] = q[j]!;
      } else {
        for (let j = 0; j < blobSize; j++) data[base + j] = (q[2 * j]! & 0xf) | ((q[2 * j + 1]! & 0xf) << 4);
      }
    }
  }
  return { bits, blockSize, n, k, blocksPerRow, blobSize, data, scales };
}

/** Inverse of quantizeBlockwise: float32 [N, K]. */
export function dequantizeBlockwise(qw: QuantizedWeight): Float32Array {
  const { n, k, bits, blockSize, blocksPerRow, blobSize, data, scales } = qw;
  const out = new Float32Array(n * k);
  const zp = bits === 4 ? 8 : 128;
  for (let row = 0; row < n; row++) {
    for (let b = 0; b < blocksPerRow; b++) {
      const si = row * blocksPerRow + b;
      const scale = scales[si]!;
      const base = si * blobSize;
      for (let j = 0; j < blockSize; j++) {
        const kk = b * blockSize + j;
        if (kk >= k) break;
        let v: number;
        if (bits === 8) v = data[base + j]!;
        else {
          const byte = data[base + (j >> 1)]!;
          v = j & 1 ? byte >> 4 : byte & 0xf;
        }
        out[row * k + kk] = (v - zp) * scale;
      }
    }
  }
  return out;
}

/**
 * The int8 GEMM's weight layout (MatMulIntegerToFloat, DynamicQuantizeMatMul): int8 B [K, N] (the
 * transposed Linear weight) with one symmetric scale per output column n: scale = max_k |W[n, k]| / 63, zero point 0.
 * 7-bit range, as ONNX Runtime's own quantizer does (reduce_range): without AVX-512 VNNI the int8
 * GEMM multiplies u8 x s8 pairs into saturating 16-bit sums (255 * 127 * 2 overflows), which gave
 * a 34% error on a random layer here; with |q| <= 63 the sum fits and the error is 0.9%.
 */
const QMAX = 63;
export function quantizePerColumnInt8(w: Float32Array, n: number, k: number): { data: Int8Array; scales: Float32Array } {
  if (w.length !== n * k) throw new Error(`quantize: ${w.length} values for [${n}, ${k}]`);
  const data = new Int8Array(k * n);
  const scales = new Float32Array(n);
  for (let row = 0; row < n; row++) {
    const off = row * k;
    let amax = 0;
    for (let j = 0; j < k; j++) amax = Math.max(amax, Math.abs(w[off + j]!));
    const scale = Math.fround(amax / QMAX);
    const inv = scale === 0 ? 0 : 1 / scale;
    scales[row] = scale;
    for (let j = 0; j < k; j++) data[j * n + row] = Math.max(-QMAX, Math.min(QMAX, Math.round(w[off + j]! * inv)));
  }
  return { data, scales };
}

/** Row-major int8 [rows, cols] with one symmetric scale per row (max |w| / 127): the embedding table's layout. */
export function quantizePerRowInt8(w: Float32Array, rows: number, cols: number): { data: Int8Array; scales: Float32Array } {
  const data = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let amax = 0;
    for (let j = 0; j < cols; j++) amax = Math.max(amax, Math.abs(w[r * cols + j]!));
    const scale = Math.fround(amax / 127);
    scales[r] = scale;
    const inv = scale === 0 ? 0 : 1 / scale;
    for (let j = 0; j < cols; j++) data[r * cols + j] = Math.round(w[r * cols + j]! * inv);
  }
  return { data, scales };
}
