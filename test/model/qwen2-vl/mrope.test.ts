import t from 'tap';
import { mropeLaneAxes, mropePositions, MropeTables, ropeInverseFrequencies } from '../../../server/model/qwen2-vl/mrope.ts';

const PAD = 9;

t.test('text only: the same position on all axes, no delta', async (t) => {
  const { positions, ropeDelta } = mropePositions([1, 2, 3, 4], PAD, []);
  for (const axis of positions) t.same([...axis], [0, 1, 2, 3]);
  t.equal(ropeDelta, 0);
});

t.test('text, image (merged grid 1x2x3), text: positions worked out by hand', async (t) => {
  // 3 text tokens -> 0,1,2. Image starts at 3: t=3; rows 3..4; cols 3..5, row-major.
  // Text continues from max(position)+1 = 6.
  const ids = [1, 2, 3, PAD, PAD, PAD, PAD, PAD, PAD, 4, 5];
  const { positions, ropeDelta } = mropePositions(ids, PAD, [{ t: 1, h: 2, w: 3 }]);
  t.same([...positions[0]], [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7]);
  t.same([...positions[1]], [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7]);
  t.same([...positions[2]], [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7]);
  // 11 tokens, last position 7: the next token (index 11) sits at position 8 = 11 + delta.
  t.equal(ropeDelta, -3);
});

t.test('two images back to back and a wide one', async (t) => {
  const ids = [1, PAD, PAD, PAD, PAD, 2, PAD, PAD];
  const { positions, ropeDelta } = mropePositions(ids, PAD, [
    { t: 1, h: 2, w: 2 },
    { t: 1, h: 1, w: 2 },
  ]);
  // token 0 -> 0; image A starts at 1: rows 1..2, cols 1..2; text 2 -> 3; image B at 4: row 4, cols 4..5.
  t.same([...positions[0]], [0, 1, 1, 1, 1, 3, 4, 4]);
  t.same([...positions[1]], [0, 1, 1, 2, 2, 3, 4, 4]);
  t.same([...positions[2]], [0, 1, 2, 1, 2, 3, 4, 5]);
  t.equal(ropeDelta, 6 - 8);
});

t.test('a prompt and its grids must agree', async (t) => {
  t.throws(() => mropePositions([1, PAD], PAD, []), /more images than grids/);
  t.throws(() => mropePositions([1, PAD], PAD, [{ t: 1, h: 2, w: 2 }]), /needs 4 tokens/);
  t.throws(() => mropePositions([1], PAD, [{ t: 1, h: 1, w: 1 }]), /0 images, 1 grids/);
});

t.test('lane axes follow mrope_section twice (cat(freqs, freqs))', async (t) => {
  const axes = mropeLaneAxes(16, [2, 3, 3]);
  t.same([...axes], [0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 1, 1, 1, 2, 2, 2]);
  t.throws(() => mropeLaneAxes(16, [2, 2, 2]), /sum to head_dim\/2/);
});

t.test('cos/sin rows: each lane rotates by its axis position times its frequency', async (t) => {
  const text = { headDim: 16, ropeTheta: 10000, mropeSection: [2, 3, 3] as [number, number, number] };
  const tables = new MropeTables(text);
  const inv = ropeInverseFrequencies(16, 10000);
  t.equal(inv[0], 1);
  t.ok(Math.abs(inv[1]! - 1 / Math.pow(10000, 2 / 16)) < 1e-7);
  const positions: [number[], number[], number[]] = [[5], [7], [11]];
  const cos = new Float32Array(16);
  const sin = new Float32Array(16);
  tables.fill(cos, sin, 0, positions, 0, 1);
  const axisPos = [5, 5, 7, 7, 7, 11, 11, 11];
  for (let lane = 0; lane < 16; lane++) {
    const angle = axisPos[lane % 8]! * inv[lane % 8]!;
    t.ok(Math.abs(cos[lane]! - Math.cos(angle)) < 1e-6, `cos lane ${lane}`);
    t.ok(Math.abs(sin[lane]! - Math.sin(angle)) < 1e-6, `sin lane ${lane}`);
  }
  // Text rows equal fill() with the same position on all axes.
  const c2 = new Float32Array(16);
  const s2 = new Float32Array(16);
  tables.fillText(c2, s2, 0, 9, 1);
  tables.fill(cos, sin, 0, [[9], [9], [9]], 0, 1);
  t.same([...c2], [...cos]);
  t.same([...s2], [...sin]);
});
