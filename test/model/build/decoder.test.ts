import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import onnxProto from 'onnx-proto';
import type * as ort from 'onnxruntime-node';
import { buildDecoder } from '../../../server/model/build/decoder.ts';
import { graphRecipe } from '../../../server/model/build/recipes.ts';
import { ORT_ENVIRONMENT } from '../../../server/model/runtime/ort-environment.ts';
import {
  makeKv, maxAbs, maxAbsDiff, randomArray, randomWeights, range, refDecoder, rng, ropeTable, runDecoder, session, tinyConfig, tmpDir,
} from './helpers.ts';

const { onnx } = onnxProto;
const cfg = tinyConfig();
const V = cfg.text.vocabSize;
const Hd = cfg.text.hiddenSize;
const D = cfg.text.headDim;
const weights = randomWeights(cfg, 11);
const dir = tmpDir('decoder');
const f32Path = path.join(dir, 'decoder-f32.onnx');
const F32 = graphRecipe('f32').prefill;
buildDecoder(cfg, weights, f32Path, F32);

const r = rng(3);
const seqA = range(0, 40).map(() => Math.floor(r() * 280));
const seqB = range(0, 40).map(() => Math.floor(r() * 280));
/** Reference logits of a whole sequence; row i = logits after token i. */
function refRows(cfg_ = cfg, w = weights, toks: number[], image?: { rows: number[]; embeds: Float32Array }) {
  const tab = ropeTable(range(0, toks.length), D, cfg_.text.ropeTheta);
  const ref = refDecoder(cfg_, w, toks, tab.cos, tab.sin, image);
  return (i: number) => ref.subarray(i * cfg_.text.vocabSize, (i + 1) * cfg_.text.vocabSize);
}
const row = (x: Float32Array, i: number) => x.subarray(i * V, (i + 1) * V);
const refA = refRows(cfg, weights, seqA);
const refB = refRows(cfg, weights, seqB);
const TOL = 1e-4;

/** The first la tokens of seqA and lb < la of seqB as one right-padded batch of two; logits of each last token. */
function prefillPair(s: ort.InferenceSession, la: number, lb: number, kv: ort.Tensor[]) {
  return runDecoder(s, cfg, {
    ids: [seqA.slice(0, la), [...seqB.slice(0, lb), ...new Array(la - lb).fill(0)]],
    positions: [range(0, la), range(0, la)],
    seqlensK: [la - 1, lb - 1],
    totalLen: la,
    logitsIndex: [la - 1, la + lb - 1],
  }, kv);
}

t.test('graph interface', async (t) => {
  const s = await session(f32Path);
  const L = cfg.text.numHiddenLayers;
  t.same(s.inputNames, [
    'input_ids', 'image_embeds', 'image_token_index', 'rope_cos', 'rope_sin', 'seqlens_k', 'total_sequence_length',
    ...range(0, L).flatMap((i) => [`past_key_values.${i}.key`, `past_key_values.${i}.value`]),
    'logits_index',
  ]);
  t.same(s.outputNames, [
    'logits',
    ...range(0, L).flatMap((i) => [`key_rows.${i}`, `value_rows.${i}`]),
  ]);
  // tied lm_head reuses the embedding initializer: exactly one [V, H] tensor
  const m = onnx.ModelProto.decode(fs.readFileSync(f32Path));
  const vh = m.graph!.initializer!.filter((i) => i.dims!.length === 2 && Number(i.dims![0]) === V && Number(i.dims![1]) === Hd);
  t.equal(vh.length, 1, 'one [vocab, hidden] initializer');
  const gemm = m.graph!.node!.find((n) => n.opType === 'Gemm')!;
  t.equal(gemm.input![1], 'model.embed_tokens.weight');
  // attention per layer: If (S == 1) standard operators reading the past in place, else GroupQueryAttention
  const ifs = m.graph!.node!.filter((n) => n.opType === 'If');
  t.equal(ifs.length, L, 'one If per layer');
  const branchOps = (n: (typeof ifs)[number], name: string) => n.attribute!.find((a) => a.name === name)!.g!.node!.map((x) => x.opType);
  t.notOk(branchOps(ifs[0]!, 'then_branch').includes('GroupQueryAttention'), 'decode branch: no GroupQueryAttention');
  t.ok(branchOps(ifs[0]!, 'then_branch').includes('Softmax'), 'decode branch: its own softmax');
  t.same(branchOps(ifs[0]!, 'else_branch'), ['GroupQueryAttention'], 'prompt branch');
  const cond = m.graph!.node!.find((n) => n.output!.includes(ifs[0]!.input![0]!))!;
  t.equal(cond.opType, 'Equal');
  t.equal(m.graph!.node!.filter((n) => n.opType === 'RotaryEmbedding').length, 2 * L, 'rotary of q and k: one kernel each');
  t.notOk(m.graph!.node!.some((n) => n.opType === 'Identity'), 'key/value rows leave as made, not copied');
});

t.test('a graph per phase holds only its own attention path', async (t) => {
  const L = cfg.text.numHiddenLayers;
  const rolePath = (role: 'prefill' | 'decode') => path.join(dir, `decoder-role-${role}.onnx`);
  const ops = (role: 'prefill' | 'decode') => {
    buildDecoder(cfg, weights, rolePath(role), F32, role);
    return onnx.ModelProto.decode(fs.readFileSync(rolePath(role))).graph!.node!.map((n) => n.opType);
  };
  const prefill = ops('prefill');
  t.equal(prefill.filter((o) => o === 'GroupQueryAttention').length, L, 'prefill: GroupQueryAttention per layer');
  t.notOk(prefill.includes('If') || prefill.includes('Softmax'), 'prefill: no If, no decode path');
  const decode = ops('decode');
  t.equal(decode.filter((o) => o === 'Softmax').length, L, 'decode: its own softmax per layer');
  t.notOk(decode.includes('If') || decode.includes('GroupQueryAttention'), 'decode: no If, no GroupQueryAttention');

  // a batch of 2 prompts of different lengths through one, then decode steps through the other
  const [pre, dec] = [await session(rolePath('prefill')), await session(rolePath('decode'))];
  const kv = makeKv(cfg, 2, 40);
  const la = 8, lb = 3;
  const first = await runDecoder(pre, cfg, { ids: [seqA.slice(0, la), [...seqB.slice(0, lb), ...new Array(la - lb).fill(0)]], positions: [range(0, la), range(0, la)], seqlensK: [la - 1, lb - 1], totalLen: la, logitsIndex: [la - 1, la + lb - 1] }, kv);
  let worst = Math.max(maxAbsDiff(row(first.logits, 0), refA(la - 1)), maxAbsDiff(row(first.logits, 1), refB(lb - 1)));
  for (let st = 0; st < 8; st++) {
    const pa = la + st, pb = lb + st;
    const out = await runDecoder(dec, cfg, { ids: [[seqA[pa]!], [seqB[pb]!]], positions: [[pa], [pb]], seqlensK: [pa, pb], totalLen: pa + 1, logitsIndex: [0, 1] }, kv);
    worst = Math.max(worst, maxAbsDiff(row(out.logits, 0), refA(pa)), maxAbsDiff(row(out.logits, 1), refB(pb)));
  }
  t.ok(worst < TOL, `prefill graph then decode graph vs reference: ${worst.toExponential(2)}`);
});

t.test('prefill, B=1, empty past (a buffer of exactly the prompt), with image rows', async (t) => {
  const s = await session(f32Path);
  const n = 12;
  const imgRows = [3, 4, 5, 6];
  const embeds = randomArray(imgRows.length * Hd, rng(99), 1);
  const ref = refRows(cfg, weights, seqA.slice(0, n), { rows: imgRows, embeds });
  const out = await runDecoder(s, cfg, { ids: [seqA.slice(0, n)], positions: [range(0, n)], seqlensK: [n - 1], totalLen: n, logitsIndex: range(0, n), image: { rows: imgRows, embeds } }, makeKv(cfg, 1, n));
  t.same(out.present[0]!.dims, [1, cfg.text.numKeyValueHeads, n, D]);
  const d = Math.max(...range(0, n).map((i) => maxAbsDiff(row(out.logits, i), ref(i))));
  t.ok(d < TOL, `all ${n} rows vs reference: ${d.toExponential(2)} (logits up to ${maxAbs(ref(n - 1)).toFixed(1)})`);
});

t.test('KV cache (rows appended in place): prefill + 22 decode steps == full recompute == reference', async (t) => {
  const s = await session(f32Path);
  const maxLen = 32;
  const kv = makeKv(cfg, 1, maxLen);
  const n0 = 5;
  const prefill = await runDecoder(s, cfg, { ids: [seqA.slice(0, n0)], positions: [range(0, n0)], seqlensK: [n0 - 1], totalLen: n0, logitsIndex: [n0 - 1] }, kv);
  t.equal(prefill.present, kv);
  // in place: K rows 0..n0-1 of the buffer are now written, the rest still zero
  const k0 = kv[0]!.data as Float32Array;
  t.ok(maxAbs(k0.subarray(0, n0 * D)) > 0, 'past buffer written in place');
  t.equal(maxAbs(k0.subarray(n0 * D, maxLen * D)), 0, 'rows past the sequence untouched');
  let worstRef = maxAbsDiff(prefill.logits, refA(n0 - 1));
  let worstRecompute = 0;
  for (let p = n0; p < n0 + 22; p++) {
    const step = await runDecoder(s, cfg, { ids: [[seqA[p]!]], positions: [[p]], seqlensK: [p], totalLen: p + 1, logitsIndex: [0] }, kv);
    worstRef = Math.max(worstRef, maxAbsDiff(step.logits, refA(p)));
    if (p % 7 === 0 || p === n0 + 21) {
      const full = await runDecoder(s, cfg, { ids: [seqA.slice(0, p + 1)], positions: [range(0, p + 1)], seqlensK: [p], totalLen: p + 1, logitsIndex: [p] }, makeKv(cfg, 1, p + 1));
      worstRecompute = Math.max(worstRecompute, maxAbsDiff(step.logits, full.logits));
    }
  }
  t.ok(worstRef < TOL, `decode vs reference: ${worstRef.toExponential(2)}`);
  t.ok(worstRecompute < TOL, `decode vs full recompute: ${worstRecompute.toExponential(2)}`);
});

t.test('chunked prefill: S>1 on a non-empty past (B=1)', async (t) => {
  const s = await session(f32Path);
  const kv = makeKv(cfg, 1, 40);
  await runDecoder(s, cfg, { ids: [seqA.slice(0, 6)], positions: [range(0, 6)], seqlensK: [5], totalLen: 6, logitsIndex: [5] }, kv);
  const c1 = await runDecoder(s, cfg, { ids: [seqA.slice(6, 13)], positions: [range(6, 13)], seqlensK: [12], totalLen: 13, logitsIndex: range(0, 7) }, kv);
  const c2 = await runDecoder(s, cfg, { ids: [seqA.slice(13, 16)], positions: [range(13, 16)], seqlensK: [15], totalLen: 16, logitsIndex: range(0, 3) }, kv);
  const d1 = Math.max(...range(0, 7).map((i) => maxAbsDiff(row(c1.logits, i), refA(6 + i))));
  const d2 = Math.max(...range(0, 3).map((i) => maxAbsDiff(row(c2.logits, i), refA(13 + i))));
  t.ok(d1 < TOL && d2 < TOL, `chunk rows vs reference: ${d1.toExponential(2)}, ${d2.toExponential(2)}`);
});

t.test('prompt attention: ONNX Runtime\'s flash and full-matrix GroupQueryAttention kernels both match the reference', async (t) => {
  // ORT_ENVIRONMENT picks the full-matrix kernel; ONNX Runtime reads the switch when a session is created.
  const saved = process.env.ORT_GQA_DISABLE_FLASH_ATTENTION;
  t.teardown(() => (saved === undefined ? delete process.env.ORT_GQA_DISABLE_FLASH_ATTENTION : (process.env.ORT_GQA_DISABLE_FLASH_ATTENTION = saved)));
  const logits: Float32Array[] = [];
  for (const value of ['0', ORT_ENVIRONMENT.ORT_GQA_DISABLE_FLASH_ATTENTION]) {
    process.env.ORT_GQA_DISABLE_FLASH_ATTENTION = value;
    const s = await session(f32Path);
    const kv = makeKv(cfg, 1, 40);
    await runDecoder(s, cfg, { ids: [seqA.slice(0, 30)], positions: [range(0, 30)], seqlensK: [29], totalLen: 30, logitsIndex: [29] }, kv);
    const chunk = await runDecoder(s, cfg, { ids: [seqA.slice(30, 38)], positions: [range(30, 38)], seqlensK: [37], totalLen: 38, logitsIndex: range(0, 8) }, kv);
    const d = Math.max(...range(0, 8).map((i) => maxAbsDiff(row(chunk.logits, i), refA(30 + i))));
    t.ok(d < TOL, `ORT_GQA_DISABLE_FLASH_ATTENTION=${value}: 8 rows over 30 cached vs reference: ${d.toExponential(2)}`);
    logits.push(chunk.logits);
    await s.release();
  }
  t.ok(maxAbsDiff(logits[0]!, logits[1]!) > 0, 'the switch reaches ONNX Runtime: the two kernels round differently');
});

t.test('batch of 2: right-padded prefill of different lengths, then decode with different past lengths', async (t) => {
  const s = await session(f32Path);
  const kv = makeKv(cfg, 2, 40);
  const la = 9, lb = 4;
  const pre = await prefillPair(s, la, lb, kv);
  const dPre = Math.max(maxAbsDiff(row(pre.logits, 0), refA(la - 1)), maxAbsDiff(row(pre.logits, 1), refB(lb - 1)));
  t.ok(dPre < TOL, `right-padded prefill vs reference: ${dPre.toExponential(2)}`);

  // the same sequences alone (B=1) through the same graph
  const aloneA = makeKv(cfg, 1, 40), aloneB = makeKv(cfg, 1, 40);
  await runDecoder(s, cfg, { ids: [seqA.slice(0, la)], positions: [range(0, la)], seqlensK: [la - 1], totalLen: la, logitsIndex: [0] }, aloneA);
  await runDecoder(s, cfg, { ids: [seqB.slice(0, lb)], positions: [range(0, lb)], seqlensK: [lb - 1], totalLen: lb, logitsIndex: [0] }, aloneB);
  let worstRef = 0, worstAlone = 0;
  for (let st = 0; st < 20; st++) {
    const pa = la + st, pb = lb + st;
    const both = await runDecoder(s, cfg, { ids: [[seqA[pa]!], [seqB[pb]!]], positions: [[pa], [pb]], seqlensK: [pa, pb], totalLen: Math.max(pa, pb) + 1, logitsIndex: [0, 1] }, kv);
    const a = await runDecoder(s, cfg, { ids: [[seqA[pa]!]], positions: [[pa]], seqlensK: [pa], totalLen: pa + 1, logitsIndex: [0] }, aloneA);
    const b = await runDecoder(s, cfg, { ids: [[seqB[pb]!]], positions: [[pb]], seqlensK: [pb], totalLen: pb + 1, logitsIndex: [0] }, aloneB);
    worstAlone = Math.max(worstAlone, maxAbsDiff(row(both.logits, 0), a.logits), maxAbsDiff(row(both.logits, 1), b.logits));
    worstRef = Math.max(worstRef, maxAbsDiff(row(both.logits, 0), refA(pa)), maxAbsDiff(row(both.logits, 1), refB(pb)));
  }
  t.ok(worstAlone < 1e-5, `batched decode vs each alone: ${worstAlone.toExponential(2)}`);
  t.ok(worstRef < TOL, `batched decode vs reference: ${worstRef.toExponential(2)}`);
});

t.test('decode steps ignore whatever the buffer holds past each sequence (batch of 2, different lengths)', async (t) => {
  const s = await session(f32Path);
  const kv = makeKv(cfg, 2, 40);
  for (const x of kv) (x.data as Float32Array).fill(1e3);
  const la = 7, lb = 3;
  await runDecoder(s, cfg, { ids: [seqA.slice(0, la), [...seqB.slice(0, lb), ...new Array(la - lb).fill(0)]], positions: [range(0, la), range(0, la)], seqlensK: [la - 1, lb - 1], totalLen: la, logitsIndex: [0] }, kv);
  let worst = 0;
  for (let st = 0; st < 5; st++) {
    const pa = la + st, pb = lb + st;
    const out = await runDecoder(s, cfg, { ids: [[seqA[pa]!], [seqB[pb]!]], positions: [[pa], [pb]], seqlensK: [pa, pb], totalLen: pa + 1, logitsIndex: [0, 1] }, kv);
    worst = Math.max(worst, maxAbsDiff(row(out.logits, 0), refA(pa)), maxAbsDiff(row(out.logits, 1), refB(pb)));
  }
  t.ok(worst < TOL, `decode over a buffer full of 1e3 past each length vs reference: ${worst.toExponential(2)}`);
});

t.test('GQA limitation: B>1 with S>1 on a non-empty past is rejected by ORT 1.30', async (t) => {
  const s = await session(f32Path);
  const kv = makeKv(cfg, 2, 40);
  await runDecoder(s, cfg, { ids: [seqA.slice(0, 4), seqB.slice(0, 4)], positions: [range(0, 4), range(0, 4)], seqlensK: [3, 3], totalLen: 4, logitsIndex: [3] }, kv);
  await t.rejects(
    runDecoder(s, cfg, { ids: [seqA.slice(4, 7), seqB.slice(4, 7)], positions: [range(4, 7), range(4, 7)], seqlensK: [6, 6], totalLen: 7, logitsIndex: [0] }, kv),
    /batch_size must be 1 when sequence_length > 1 and past context is given/,
  );
});

t.test('untied lm_head', async (t) => {
  const c2 = tinyConfig({ tie: false, textLayers: 1 });
  const w2 = randomWeights(c2, 5);
  const p = path.join(dir, 'decoder-untied.onnx');
  buildDecoder(c2, w2, p, F32);
  const s = await session(p);
  const ref = refRows(c2, w2, seqA.slice(0, 6));
  const out = await runDecoder(s, c2, { ids: [seqA.slice(0, 6)], positions: [range(0, 6)], seqlensK: [5], totalLen: 6, logitsIndex: [2, 5] }, makeKv(c2, 1, 6));
  const d = Math.max(maxAbsDiff(row(out.logits, 0), ref(2)), maxAbsDiff(row(out.logits, 1), ref(5)));
  t.ok(d < TOL, `untied vs reference: ${d.toExponential(2)}`);
});

t.test('quantized prompts: a row gets the same values whatever rows share its run (chunks, batches)', async (t) => {
  // Activations are quantized per row (layers.ts, int8-row), so a prompt prefilled whole equals the
  // same prompt in chunks (what the prefix cache reuses) and a batch equals each sequence alone.
  for (const format of ['int8', 'int4'] as const) {
    const recipe = graphRecipe(format);
    const p = path.join(dir, `rows-${format}.onnx`);
    buildDecoder(cfg, weights, p, recipe.prefill, recipe.decode ? 'prefill' : 'both');
    const s = await session(p);
    const whole = makeKv(cfg, 1, 40);
    const w = await runDecoder(s, cfg, { ids: [seqA.slice(0, 16)], positions: [range(0, 16)], seqlensK: [15], totalLen: 16, logitsIndex: range(6, 16) }, whole);
    const chunked = makeKv(cfg, 1, 40);
    await runDecoder(s, cfg, { ids: [seqA.slice(0, 6)], positions: [range(0, 6)], seqlensK: [5], totalLen: 6, logitsIndex: [5] }, chunked);
    const c = await runDecoder(s, cfg, { ids: [seqA.slice(6, 16)], positions: [range(6, 16)], seqlensK: [15], totalLen: 16, logitsIndex: range(0, 10) }, chunked);
    t.equal(maxAbsDiff(c.logits, w.logits), 0, `${format}: a prompt in two chunks gives the logits of the whole prompt`);
    t.equal(Math.max(...whole.map((kv, i) => maxAbsDiff(kv.data as Float32Array, chunked[i]!.data as Float32Array))), 0, `${format}: and the same KV rows`);

    const la = 9, lb = 4;
    const both = makeKv(cfg, 2, 40);
    const pre = await prefillPair(s, la, lb, both);
    const aloneA = makeKv(cfg, 1, 40), aloneB = makeKv(cfg, 1, 40);
    const a = await runDecoder(s, cfg, { ids: [seqA.slice(0, la)], positions: [range(0, la)], seqlensK: [la - 1], totalLen: la, logitsIndex: [la - 1] }, aloneA);
    const b = await runDecoder(s, cfg, { ids: [seqB.slice(0, lb)], positions: [range(0, lb)], seqlensK: [lb - 1], totalLen: lb, logitsIndex: [lb - 1] }, aloneB);
    const batchDiff = Math.max(maxAbsDiff(row(pre.logits, 0), a.logits), maxAbsDiff(row(pre.logits, 1), b.logits));
    if (format === 'int8') {
      t.equal(batchDiff, 0, 'int8: a batch of two prompts gives each prompt\'s logits alone');
      // int8 decodes through the same graph; int4's decode kernel (MatMulNBits) takes another path
      // for one row than for several, which differs in the last bits (README, weight formats).
      const d = await runDecoder(s, cfg, { ids: [[seqA[la]!], [seqB[lb]!]], positions: [[la], [lb]], seqlensK: [la, lb], totalLen: la + 1, logitsIndex: [0, 1] }, both);
      const da = await runDecoder(s, cfg, { ids: [[seqA[la]!]], positions: [[la]], seqlensK: [la], totalLen: la + 1, logitsIndex: [0] }, aloneA);
      const db = await runDecoder(s, cfg, { ids: [[seqB[lb]!]], positions: [[lb]], seqlensK: [lb], totalLen: lb + 1, logitsIndex: [0] }, aloneB);
      t.equal(Math.max(maxAbsDiff(row(d.logits, 0), da.logits), maxAbsDiff(row(d.logits, 1), db.logits)), 0, 'int8: a batched decode step gives each sequence\'s step alone');
    } else {
      // int4's lm_head runs MatMulNBits, whose one-row path differs from its several-row path in the last bits
      t.ok(batchDiff <= 1e-6 * maxAbs(a.logits), `int4: a batch of two prompts gives each prompt's logits alone to the last bits (${batchDiff.toExponential(2)})`);
    }
    const rowsA = Math.max(...aloneA.map((kv, i) => maxAbsDiff(kv.data as Float32Array, (both[i]!.data as Float32Array).subarray(0, kv.data.length))));
    t.equal(rowsA, 0, `${format}: the batch's KV rows of a sequence are its KV rows alone`);
  }
});

t.test('int8 / int4 logits drift vs f32 (same input, 20 decode steps)', async (t) => {
  // prompt rows through one graph, decode steps through another (the same one for f32 and int8)
  const runSeq = async (prefillPath: string, decodePath: string) => {
    const prefill = await session(prefillPath);
    const decode = decodePath === prefillPath ? prefill : await session(decodePath);
    const kv = makeKv(cfg, 1, 32);
    const rows: Float32Array[] = [];
    const pre = await runDecoder(prefill, cfg, { ids: [seqA.slice(0, 6)], positions: [range(0, 6)], seqlensK: [5], totalLen: 6, logitsIndex: [5] }, kv);
    rows.push(pre.logits.slice());
    for (let q = 6; q < 26; q++) rows.push((await runDecoder(decode, cfg, { ids: [[seqA[q]!]], positions: [[q]], seqlensK: [q], totalLen: q + 1, logitsIndex: [0] }, kv)).logits.slice());
    return rows;
  };
  const argmax = (x: Float32Array) => x.reduce((bi, v, i, a) => (v > a[bi]! ? i : bi), 0);
  const base = await runSeq(f32Path, f32Path);
  for (const [format, bound] of [['int8', 0.05], ['int4', 0.35]] as const) {
    const recipe = graphRecipe(format);
    const prefillPath = path.join(dir, `decoder-${format}.onnx`);
    buildDecoder(cfg, weights, prefillPath, recipe.prefill, recipe.decode ? 'prefill' : 'both');
    const decodePath = recipe.decode ? path.join(dir, `decoder-${format}-step.onnx`) : prefillPath;
    if (recipe.decode) buildDecoder(cfg, weights, decodePath, recipe.decode, 'decode');
    const got = await runSeq(prefillPath, decodePath);
    let rel = 0, agree = 0;
    got.forEach((g, i) => {
      rel = Math.max(rel, maxAbsDiff(g, base[i]!) / maxAbs(base[i]!));
      if (argmax(g) === argmax(base[i]!)) agree++;
    });
    t.comment(`decoder ${format}: max |logit diff| / max |logit| = ${rel.toExponential(2)}, argmax agrees ${agree}/${got.length}`);
    t.ok(rel < bound, `${format} drift ${rel.toExponential(2)} < ${bound}`);
  }
});
