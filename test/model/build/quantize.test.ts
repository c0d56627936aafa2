import t from 'tap';
import { dequantizeBlockwise, quantizeBlockwise } from '../../../server/model/build/quantize.ts';
import { randomArray, rng } from './helpers.ts';

for (const bits of [4, 8] as const) {
  for (const [n, k] of [[5, 64], [3, 100], [1, 32], [7, 17]] as const) {
    t.test(`${bits}-bit round trip [${n}, ${k}]`, async (t) => {
      const w = randomArray(n * k, rng(n * 1000 + k + bits), 2);
      w[3] = 0; // zeros and an all-zero block must survive
      const q = quantizeBlockwise(w, n, k, bits, 32);
      const blocks = Math.ceil(k / 32);
      t.same([q.blocksPerRow, q.blobSize, q.data.length, q.scales.length], [blocks, bits * 4, n * blocks * bits * 4, n * blocks]);
      const d = dequantizeBlockwise(q);
      let worstRatio = 0;
      for (let r = 0; r < n; r++)
        for (let j = 0; j < k; j++) {
          const scale = q.scales[r * blocks + Math.floor(j / 32)]!;
          const err = Math.abs(d[r * k + j]! - w[r * k + j]!);
          worstRatio = Math.max(worstRatio, scale === 0 ? err : err / scale);
        }
      t.ok(worstRatio <= 0.5 + 1e-5, `max error / scale = ${worstRatio.toFixed(4)} <= 0.5`);
    });
  }
}

t.test('4-bit layout: low nibble = even k, zero point 8', async (t) => {
  const w = new Float32Array(32);
  w[0] = 7; // absmax 7 -> scale 1
  w[1] = -3;
  w[2] = 2;
  w[3] = -7;
  const q = quantizeBlockwise(w, 1, 32, 4, 32);
  t.equal(q.scales[0], 1);
  t.equal(q.data[0], (7 + 8) | ((-3 + 8) << 4));
  t.equal(q.data[1], (2 + 8) | ((-7 + 8) << 4));
  t.equal(q.data[2], 8 | (8 << 4));
});

t.test('8-bit layout: one byte per k, zero point 128', async (t) => {
  const w = new Float32Array(32);
  w[0] = 127;
  w[5] = -64;
  const q = quantizeBlockwise(w, 1, 32, 8, 32);
  t.equal(q.scales[0], 1);
  t.equal(q.data[0], 255);
  t.equal(q.data[5], 64);
  t.equal(q.data[1], 128);
});

t.test('all-zero weights give zero scales and exact zeros', async (t) => {
  const q = quantizeBlockwise(new Float32Array(64), 2, 32, 4);
  t.same([...q.scales], [0, 0]);
  t.same([...dequantizeBlockwise(q)], new Array(64).fill(0));
});
