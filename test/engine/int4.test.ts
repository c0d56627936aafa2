/**
 * The int4 format through the engine: prompts run the prefill graph (GroupQueryAttention) and decode
 * steps the decode-step graph (MatMulNBits, attention reading the KV cache in place), over one KV pool.
 */
import t from 'tap';
import { collect, FIXTURE_SCREENSHOT, greedyRequest, loadTinyModel, prepareFile, userPrompt } from '../helpers/tiny-model.ts';

const model = await loadTinyModel({ format: 'int4', prefixCacheBytes: 0 });
t.teardown(() => model.runner.release());
const image = await prepareFile(model, FIXTURE_SCREENSHOT, { kind: 'fixed', width: 300, height: 170 });

t.test('int4 generates through its two graphs, deterministically', async (t) => {
  const prompt = userPrompt(model, 'Click the terminal icon.', 1);
  const before = model.engine.stats.decodeSteps;
  const first = await collect(model.engine.generate(greedyRequest(prompt, [image], 8)));
  t.equal(first.tokens.length, 8);
  t.equal(first.done.imageTokens, image.numImageTokens);
  t.equal(model.engine.stats.decodeSteps - before, 7, 'one prefill, then 7 decode steps');
  for (const e of first.tokens) t.ok(e.top.every((a) => Number.isFinite(a.logprob)), `token ${e.token}: finite logprobs`);
  const again = await collect(model.engine.generate(greedyRequest(prompt, [image], 8)));
  t.same(again.tokens.map((e) => e.token), first.tokens.map((e) => e.token), 'same greedy tokens on a second run');
});

t.test('the decode-step graph takes one new token per sequence', async (t) => {
  const { headDim } = model.checkpoint.config.text;
  model.runner.kv.ensureCapacity(8, [0]);
  await t.rejects(
    model.runner.decode({
      firstSlot: 0,
      batch: 1,
      seqLen: 2,
      inputIds: BigInt64Array.of(5n, 6n),
      ropeCos: new Float32Array(2 * headDim).fill(1),
      ropeSin: new Float32Array(2 * headDim),
      seqlensK: Int32Array.of(3),
      imageEmbeds: new Float32Array(0),
      imageTokenIndex: new BigInt64Array(0),
      logitsIndex: BigInt64Array.of(1n),
    }, 'decode'),
    /one new token per sequence, got 2/,
  );
});
