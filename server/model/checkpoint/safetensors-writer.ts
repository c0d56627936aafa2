/**
 * Writes safetensors files tensor by tensor (the checkpoint generator's output), so a
 * full-size checkpoint never sits in memory. bf16/f16 conversions round to nearest even.
 */
import fs from 'node:fs';
import { DTYPE_BYTES, numel } from './safetensors.ts';
import type { StoredDType } from './types.ts';

/** float32 -> bf16 bits, round to nearest even (as torch's .to(torch.bfloat16)). */
export function float32ToBf16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) return ((u >>> 16) | 0x40) & 0xffff; // NaN stays NaN
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 -> f16 bits, round to nearest even. */
export function float32ToF16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export interface TensorSpec {
  name: string;
  shape: number[];
}

/**
 * Writes one safetensors file, streaming: the header is computed from the specs, then
 * `fill(spec, emit)` is called once per tensor in order and must emit exactly numel
 * float32 values (in chunks of any size); they are converted to `dtype` as they go.
 */
export function writeSafetensorsStreaming(
  file: string,
  specs: readonly TensorSpec[],
  dtype: StoredDType,
  fill: (spec: TensorSpec, emit: (chunk: Float32Array) => void) => void,
  metadata: Record<string, string> = { format: 'pt' },
): number {
  const elem = DTYPE_BYTES[dtype]!;
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const s of specs) {
    const bytes = numel(s.shape) * elem;
    header[s.name] = { dtype, shape: s.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json, 'utf8') % 8)) % 8;
  json += ' '.repeat(pad);
  const hb = Buffer.from(json, 'utf8');
  const fd = fs.openSync(file, 'w');
  try {
    const lenBuf = Buffer.alloc(8);
    lenBuf.writeBigUInt64LE(BigInt(hb.length));
    writeAll(fd, lenBuf);
    writeAll(fd, hb);
    let scratch = new Uint16Array(0);
    for (const s of specs) {
      const want = numel(s.shape);
      let got = 0;
      fill(s, (chunk) => {
        got += chunk.length;
        if (got > want) throw new Error(`writer: tensor ${s.name} got more than ${want} values`);
        if (dtype === 'F32') {
          writeAll(fd, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          return;
        }
        if (scratch.length < chunk.length) scratch = new Uint16Array(chunk.length);
        const conv = dtype === 'BF16' ? float32ToBf16Bits : float32ToF16Bits;
        for (let i = 0; i < chunk.length; i++) scratch[i] = conv(chunk[i]!);
        writeAll(fd, new Uint8Array(scratch.buffer, 0, chunk.length * 2));
      });
      if (got !== want) throw new Error(`writer: tensor ${s.name} got ${got} values, needs ${want}`);
    }
  } finally {
    fs.closeSync(fd);
  }
  return 8 + hb.length + offset;
}

function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done);
}
