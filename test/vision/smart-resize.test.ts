import t from 'tap';
import { spawnSync } from 'node:child_process';
import { imageTokenCount, pyRound, resolveResize, ResizeError, smartResize } from '../../server/vision/smart-resize.ts';
import { HERE, PYTHON, pilUnavailableReason } from './pyref.ts';

const MIN = 3136; // 56*56, Qwen2-VL preprocessor_config.json
const MAX = 12845056; // 28*28*16384

t.test('pyRound is round-half-to-even like Python 3', async (t) => {
  const cases: [number, number][] = [[0.5, 0], [1.5, 2], [2.5, 2], [3.5, 4], [-0.5, -0], [-1.5, -2], [2.4999, 2], [2.5001, 3], [7, 7]];
  for (const [x, want] of cases) t.equal(pyRound(x), want, `round(${x})`);
});

t.test('smart_resize table (values from HF smart_resize)', async (t) => {
  // [height, width, minPixels, maxPixels] -> [height, width]
  const table: [number, number, number, number, number, number][] = [
    [450, 800, MIN, MAX, 448, 812], // the seed's 800x450: 464 tokens
    [1080, 1920, MIN, MAX, 1092, 1932], // native screenshot: 2691 tokens
    [10, 10, MIN, MAX, 56, 56], // tiny -> ceil branch up to min_pixels
    [20, 30, MIN, MAX, 56, 84],
    [28, 28, MIN, MAX, 56, 56],
    [56, 56, MIN, MAX, 56, 56],
    [1, 200, MIN, MAX, 28, 812], // aspect ratio exactly 200 is allowed
    [10000, 10000, MIN, MAX, 3556, 3556], // huge -> floor branch
    [4000, 3000, MIN, MAX, 4004, 2996],
    [2160, 3840, MIN, MAX, 2156, 3836],
    [1440, 2560, MIN, MAX, 1428, 2548],
    [768, 1366, MIN, MAX, 756, 1372],
    // x.5 ties: 70/28 = 2.5 -> 2, 42/28 = 1.5 -> 2, 630/28 = 22.5 -> 22, 602/28 = 21.5 -> 22, 14/28 = 0.5 -> 0
    [70, 1000, MIN, MAX, 56, 1008],
    [42, 602, MIN, MAX, 56, 616],
    [70, 630, MIN, MAX, 56, 616],
    [14, 1400, MIN, MAX, 28, 560],
    [98, 98, MIN, MAX, 112, 112],
    // smaller max_pixels (token caps)
    [1080, 1920, MIN, 1003520, 728, 1316],
    [1080, 1920, MIN, 401408, 448, 840],
    [100, 100, 200704, 1003520, 448, 448],
  ];
  for (const [h, w, mn, mx, eh, ew] of table) {
    t.same(smartResize(h, w, 28, mn, mx), [eh, ew], `${w}x${h} [${mn}, ${mx}] -> ${ew}x${eh}`);
  }
  t.equal(imageTokenCount(812, 448), 464);
  t.equal(imageTokenCount(1932, 1092), 2691);
});

t.test('errors', async (t) => {
  t.throws(() => smartResize(1, 201, 28, MIN, MAX), ResizeError, 'aspect ratio 201 rejected');
  t.throws(() => smartResize(201, 1, 28, MIN, MAX), /aspect ratio/, 'both orientations');
  t.throws(() => smartResize(0, 10, 28, MIN, MAX), ResizeError);
  t.throws(() => smartResize(10.5, 10, 28, MIN, MAX), ResizeError);
  t.throws(() => resolveResize(2010, 10, { kind: 'smart', minPixels: MIN, maxPixels: MAX }), /aspect ratio/);
});

t.test('never below factor, always multiples of 28, within bounds', async (t) => {
  let s = 7;
  const rnd = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff), s / 0x7fffffff);
  let bad = 0;
  for (let i = 0; i < 5000; i++) {
    const h = 1 + Math.floor(rnd() * 5000);
    const w = Math.max(1, Math.min(Math.floor(h * 200), Math.floor(h * Math.exp((rnd() - 0.5) * 10))));
    const [rh, rw] = smartResize(h, w, 28, MIN, MAX);
    if (rh < 28 || rw < 28 || rh % 28 || rw % 28 || rh * rw > MAX) bad++;
  }
  t.equal(bad, 0);
});

t.test('resolveResize policies', async (t) => {
  const smart = { kind: 'smart', minPixels: MIN, maxPixels: MAX } as const;
  t.same(resolveResize(1920, 1080, smart), { width: 1932, height: 1092 });
  t.same(resolveResize(800, 450, smart), { width: 812, height: 448 });
  const fixed = { kind: 'fixed', width: 800, height: 450 } as const;
  t.same(resolveResize(1920, 1080, fixed), { width: 812, height: 448 }, 'seed policy: 464 tokens');
  t.same(resolveResize(800, 450, fixed), { width: 812, height: 448 });
  t.same(resolveResize(1280, 1024, fixed), { width: 812, height: 448 }, "fill ignores the input's aspect");
  t.same(resolveResize(1280, 1024, { ...fixed, fit: 'contain' }), { width: 560, height: 448 }, 'contain keeps it (563x450 -> 560x448)');
  t.same(resolveResize(1920, 1080, { kind: 'fixed', width: 1920, height: 1080 }), { width: 1932, height: 1092 });
});

t.test('agrees with Python smart_resize on random sizes', { skip: pilUnavailableReason() ?? false }, async (t) => {
  const sizes: [number, number, number, number][] = [];
  let s = 99;
  const rnd = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff), s / 0x7fffffff);
  for (let i = 0; i < 3000; i++) {
    const h = 1 + Math.floor(rnd() * (i % 3 === 0 ? 200 : 8000));
    const w = Math.max(1, Math.min(h * 200, Math.floor(h * Math.exp((rnd() - 0.5) * 8))));
    const mn = [3136, 200704, 0][i % 3]!;
    const mx = [MAX, 1003520, 401408][i % 3]!;
    if (Math.max(h, w) / Math.min(h, w) > 200) continue;
    sizes.push([h, w, mn, mx]);
  }
  const code = `import sys, json
sys.path.insert(0, ${JSON.stringify(HERE)})
from hf_qwen2vl_preprocess import smart_resize
print(json.dumps([list(smart_resize(h, w, 28, mn, mx)) for h, w, mn, mx in json.load(sys.stdin)]))`;
  const r = spawnSync(PYTHON, ['-c', code], { input: JSON.stringify(sizes), encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr || 'python ran');
  const want = JSON.parse(r.stdout) as [number, number][];
  let mismatches = 0;
  sizes.forEach(([h, w, mn, mx], i) => {
    const got = smartResize(h, w, 28, mn, mx);
    const [eh, ew] = want[i]!;
    // Python's version can return 0 per side when min_pixels is 0; ours clamps to 28
    if (got[0] !== Math.max(28, eh) || got[1] !== Math.max(28, ew)) mismatches++;
  });
  t.equal(mismatches, 0, `${sizes.length} sizes`);
});
