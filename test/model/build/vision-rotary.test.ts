import t from 'tap';
import { visionInvFreq, visionPatchPositions, visionRotary } from '../../../server/model/qwen2-vl/vision-rotary.ts';
import { tinyConfig, maxAbsDiff } from './helpers.ts';

t.test('patch positions follow the merge-group order', async (t) => {
  // 4x4 grid, merge 2: groups (0,0) (0,1) (1,0) (1,1), each 2x2 row-major
  const pos = visionPatchPositions(4, 4, 2);
  const pairs = Array.from({ length: 16 }, (_, i) => `${pos[2 * i]},${pos[2 * i + 1]}`);
  t.same(pairs.slice(0, 8), ['0,0', '0,1', '1,0', '1,1', '0,2', '0,3', '1,2', '1,3']);
  t.same(pairs.slice(8), ['2,0', '2,1', '3,0', '3,1', '2,2', '2,3', '3,2', '3,3']);
  t.throws(() => visionPatchPositions(3, 4, 2));
});

t.test('inv_freq of the real model (head dim 80)', async (t) => {
  const f = visionInvFreq(80);
  t.equal(f.length, 20);
  t.equal(f[0], 1);
  for (let j = 0; j < 20; j++) t.ok(Math.abs(f[j]! - 1 / Math.pow(10000, (2 * j) / 40)) < 1e-7 * Math.max(1, f[j]!));
});

for (const [cfgName, vision] of [
  ['tiny (head dim 16)', tinyConfig().vision],
  ['UI-TARS-2B (head dim 80)', { ...tinyConfig().vision, embedDim: 1280, numHeads: 16 }],
] as const) {
  t.test(`tables equal the formula: ${cfgName}`, async (t) => {
    const gh = 6, gw = 8;
    const { cos, sin, rows, headDim } = visionRotary(gh, gw, vision);
    const D = vision.embedDim / vision.numHeads;
    t.equal(rows, gh * gw);
    t.equal(headDim, D);
    const ec = new Float64Array(rows * D), es = new Float64Array(rows * D);
    let i = 0;
    for (let bh = 0; bh < gh / 2; bh++)
      for (let bw = 0; bw < gw / 2; bw++)
        for (let ih = 0; ih < 2; ih++)
          for (let iw = 0; iw < 2; iw++, i++) {
            const row = bh * 2 + ih, col = bw * 2 + iw;
            for (let j = 0; j < D / 2; j++) {
              const q = D / 4;
              const p = j < q ? row : col;
              const a = p / Math.pow(10000, (2 * (j % q)) / (D / 2));
              ec[i * D + j] = ec[i * D + D / 2 + j] = Math.cos(a);
              es[i * D + j] = es[i * D + D / 2 + j] = Math.sin(a);
            }
          }
    const dc = maxAbsDiff(cos, ec), ds = maxAbsDiff(sin, es);
    t.ok(dc < 1e-5 && ds < 1e-5, `max diff cos ${dc} sin ${ds}`);
  });
}
