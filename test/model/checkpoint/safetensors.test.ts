import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { expectCheckpointError } from './helpers.ts';
import {
  openSafetensorsDir,
  openSafetensorsFile,
  openSafetensorsIndex,
  readSafetensorsHeader,
  halfToFloat,
} from '../../../server/model/checkpoint/safetensors.ts';
import { float32ToBf16Bits, float32ToF16Bits, writeSafetensorsStreaming } from '../../../server/model/checkpoint/safetensors-writer.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'st-test-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const A = Float32Array.from([1, -2.5, 0.1, 3.14159, 65504, 1e-7, -0, 1 / 3]);
const B = Float32Array.from({ length: 24 }, (_, i) => Math.sin(i) * 10);

function write(file: string, dtype: 'F32' | 'BF16' | 'F16'): void {
  const data: Record<string, Float32Array> = { a: A, 'b.weight': B };
  writeSafetensorsStreaming(
    file,
    [
      { name: 'a', shape: [8] },
      { name: 'b.weight', shape: [2, 3, 4] },
    ],
    dtype,
    (spec, emit) => {
      const v = data[spec.name]!;
      emit(v.subarray(0, 5));
      emit(v.subarray(5));
    },
    { format: 'pt', note: 'test' },
  );
}

/** Builds a raw safetensors file from a header object and a data size. */
function rawFile(file: string, header: unknown, dataBytes: number, headerLenOverride?: number): void {
  const hb = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerLenOverride ?? hb.length));
  fs.writeFileSync(file, Buffer.concat([len, hb, Buffer.alloc(dataBytes)]));
}

t.test('f32 round trip, header layout, metadata', async (tt) => {
  const f = path.join(tmp, 'f32.safetensors');
  write(f, 'F32');
  const h = readSafetensorsHeader(f);
  tt.equal(h.dataStart % 8, 0, 'header padded to 8 bytes');
  tt.same(h.metadata, { format: 'pt', note: 'test' });
  tt.same([...h.tensors.keys()], ['a', 'b.weight']);
  tt.equal(fs.statSync(f).size, h.dataStart + 8 * 4 + 24 * 4);
  const src = openSafetensorsFile(f);
  tt.same(src.shape('b.weight'), [2, 3, 4]);
  tt.same(Array.from(src.readFloat32('a')), Array.from(A));
  tt.same(Array.from(src.readFloat32('b.weight')), Array.from(B));
  tt.same(src.names(), ['a', 'b.weight']);
  tt.equal(src.has('nope'), false);
});

t.test('bf16 and f16 are widened to the rounded float32 values', async (tt) => {
  for (const dtype of ['BF16', 'F16'] as const) {
    const f = path.join(tmp, `${dtype}.safetensors`);
    write(f, dtype);
    const src = openSafetensorsFile(f);
    tt.equal(src.dtype('a'), dtype);
    const got = src.readFloat32('b.weight');
    const buf = new Float32Array(1);
    const bits = new Uint32Array(buf.buffer);
    B.forEach((x, i) => {
      let want: number;
      if (dtype === 'BF16') {
        bits[0] = float32ToBf16Bits(x) << 16;
        want = buf[0]!;
      } else {
        want = halfToFloat(float32ToF16Bits(x));
      }
      if (got[i] !== want) tt.fail(`${dtype} ${i}: ${got[i]} != ${want}`);
    });
    const a = src.readFloat32('a');
    tt.equal(a[0], 1);
    tt.equal(a[1], -2.5);
    if (dtype === 'F16') tt.equal(a[4], 65504, 'f16 max');
    if (dtype === 'BF16') tt.ok(Math.abs(a[3]! - 3.14159) < 0.02);
  }
});

t.test('bf16 rounding is round-to-nearest-even', async (tt) => {
  // 1 + 2^-8 is exactly half-way between bf16 1 and 1 + 2^-7: ties go to even (1).
  tt.equal(float32ToBf16Bits(1 + 2 ** -8), 0x3f80);
  // 1 + 3 * 2^-8 is half-way between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
  tt.equal(float32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
  tt.equal(float32ToBf16Bits(-2), 0xc000);
  tt.equal(float32ToF16Bits(1), 0x3c00);
  tt.equal(float32ToF16Bits(-2), 0xc000);
  tt.equal(float32ToF16Bits(2 ** -24), 0x0001);
});


t.test('errors are one-line CheckpointErrors naming the file', async (tt) => {
  const missing = path.join(tmp, 'missing.safetensors');
  await expectCheckpointError(tt, () => openSafetensorsFile(missing), /missing safetensors file/, missing);

  const tiny = path.join(tmp, 'tiny.safetensors');
  fs.writeFileSync(tiny, Buffer.alloc(5));
  await expectCheckpointError(tt, () => openSafetensorsFile(tiny), /truncated/, tiny);

  const longHeader = path.join(tmp, 'long-header.safetensors');
  rawFile(longHeader, { a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4, 5000);
  await expectCheckpointError(tt, () => openSafetensorsFile(longHeader), /truncated.*header length 5000/, longHeader);

  const shortData = path.join(tmp, 'short-data.safetensors');
  rawFile(shortData, { a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8);
  await expectCheckpointError(tt, () => openSafetensorsFile(shortData), /truncated.*tensor a data_offsets \[0, 16\]/, shortData);

  const badJson = path.join(tmp, 'bad-json.safetensors');
  rawFile(badJson, '{"a": {"dtype": "F32", "shape": [1], ', 4);
  await expectCheckpointError(tt, () => openSafetensorsFile(badJson), /corrupt safetensors header.*invalid JSON/, badJson);

  const badDtype = path.join(tmp, 'bad-dtype.safetensors');
  rawFile(badDtype, { a: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } }, 16);
  await expectCheckpointError(tt, () => openSafetensorsFile(badDtype), /unsupported dtype F128 for tensor a/, badDtype);

  const intDtype = path.join(tmp, 'int-dtype.safetensors');
  rawFile(intDtype, { a: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, 16);
  const src = openSafetensorsFile(intDtype);
  await expectCheckpointError(tt, () => src.readFloat32('a'), /unsupported dtype I64 for tensor a/, intDtype);

  const wrongSize = path.join(tmp, 'wrong-size.safetensors');
  rawFile(wrongSize, { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8);
  await expectCheckpointError(tt, () => openSafetensorsFile(wrongSize), /needs 12 bytes/, wrongSize);

  const emptyDir = fs.mkdtempSync(path.join(tmp, 'empty-'));
  await expectCheckpointError(tt, () => openSafetensorsDir(emptyDir), /missing safetensors/, emptyDir);
});

t.test('sharded index', async (tt) => {
  const dir = fs.mkdtempSync(path.join(tmp, 'sharded-'));
  write(path.join(dir, 'model-00001-of-00002.safetensors'), 'F32');
  writeSafetensorsStreaming(path.join(dir, 'model-00002-of-00002.safetensors'), [{ name: 'c', shape: [2] }], 'F32', (_s, emit) =>
    emit(Float32Array.from([7, 8])),
  );
  const index = path.join(dir, 'model.safetensors.index.json');
  fs.writeFileSync(
    index,
    JSON.stringify({
      metadata: { total_size: 136 },
      weight_map: { a: 'model-00001-of-00002.safetensors', 'b.weight': 'model-00001-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' },
    }),
  );
  const src = openSafetensorsDir(dir);
  tt.same(src.names().sort(), ['a', 'b.weight', 'c']);
  tt.same(Array.from(src.readFloat32('c')), [7, 8]);
  tt.same(Array.from(src.readFloat32('a')), Array.from(A));
  tt.equal(src.files.length, 2);

  const badIndex = path.join(dir, 'bad.index.json');
  fs.writeFileSync(badIndex, JSON.stringify({ weight_map: { zzz: 'model-00002-of-00002.safetensors' } }));
  await expectCheckpointError(
    tt,
    () => openSafetensorsIndex(badIndex),
    /tensor zzz is listed in bad.index.json but missing from shard/,
    'model-00002-of-00002.safetensors',
  );
  const missingShard = path.join(dir, 'missing-shard.index.json');
  fs.writeFileSync(missingShard, JSON.stringify({ weight_map: { a: 'model-00009-of-00009.safetensors' } }));
  await expectCheckpointError(tt, () => openSafetensorsIndex(missingShard), /missing safetensors file/, 'model-00009-of-00009.safetensors');
  const corruptIndex = path.join(dir, 'corrupt.index.json');
  fs.writeFileSync(corruptIndex, '{"weight_map": ');
  await expectCheckpointError(tt, () => openSafetensorsIndex(corruptIndex), /corrupt safetensors index/, corruptIndex);
});

t.test('header parses with python stdlib (struct + json) too', async (tt) => {
  const py = '/usr/bin/python3';
  if (!fs.existsSync(py)) {
    tt.pass('skipped: no /usr/bin/python3');
    return;
  }
  const { execFileSync } = await import('node:child_process');
  const f = path.join(tmp, 'f32.safetensors');
  const out = execFileSync(py, [
    '-c',
    'import json,struct,sys,array\nf=open(sys.argv[1],"rb")\nn=struct.unpack("<Q",f.read(8))[0]\nh=json.loads(f.read(n))\nb=h["b.weight"]\nf.seek(8+n+b["data_offsets"][0])\na=array.array("f");a.frombytes(f.read(b["data_offsets"][1]-b["data_offsets"][0]))\nprint(json.dumps({"n":n,"shape":b["shape"],"v":list(a)[:3]}))',
    f,
  ]).toString();
  const r = JSON.parse(out) as { n: number; shape: number[]; v: number[] };
  tt.equal(r.n % 8, 0);
  tt.same(r.shape, [2, 3, 4]);
  tt.same(r.v, Array.from(B.subarray(0, 3)));
});
