/**
 * The image-embedding and prefix-KV caches on the tiny checkpoint (real ONNX sessions): an agent
 * episode served with the caches gives the same tokens and logprobs as without them, while
 * encoding each screenshot once and prefilling only what is new; a different screenshot behind
 * identical text never hits.
 */
import t, { type Test } from 'tap';
import type { LoadedModel } from '../../server/model/load-model.ts';
import type { TemplateMessage, TemplatePart } from '../../server/model/tokenizer.ts';
import { imageKey } from '../../server/engine/image-cache.ts';
import { ByteLru } from '../../server/common/byte-lru.ts';
import { PrefixCache, sharedPrefix } from '../../server/engine/prefix-cache.ts';
import { writeTestImage } from '../helpers/images.ts';
import { collect, FIXTURE_SCREENSHOT, greedyRequest, loadTinyModel, prepareFile, type Collected } from '../helpers/tiny-model.ts';
import type { PreparedImage } from '../../server/vision/prepare-image.ts';

const cached = await loadTinyModel();
const uncached = await loadTinyModel({ imageCacheBytes: 0, prefixCacheBytes: 0 });
t.teardown(async () => {
  await cached.runner.release();
  await uncached.runner.release();
});

const policy = { kind: 'smart', minPixels: 56 * 56, maxPixels: 120 * 28 * 28 } as const;
const screenshots: PreparedImage[] = [];
for (let i = 0; i < 4; i++) screenshots.push(await prepareFile(cached, await writeTestImage(t, `s${i}.png`, 160 + 8 * i, 100, 40 + i), policy));

/** ARPO's message layout: instruction, then per step a screenshot and (for earlier steps) the answer. */
function episodePrompt(model: LoadedModel, answers: readonly string[]): number[] {
  const messages: TemplateMessage[] = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'You are a GUI agent. Open the settings menu.' },
  ];
  const image: TemplatePart[] = [{ type: 'image' }];
  answers.forEach((a) => messages.push({ role: 'user', content: image }, { role: 'assistant', content: a }));
  messages.push({ role: 'user', content: image });
  return model.tokenizer.encode(model.tokenizer.renderChat(messages));
}

function sameOutput(t: Test, got: Collected, want: Collected, what: string): void {
  t.same(got.tokens.map((e) => e.token), want.tokens.map((e) => e.token), `${what}: same tokens`);
  let worst = 0;
  got.tokens.forEach((e, i) => (worst = Math.max(worst, Math.abs(e.logprob - want.tokens[i]!.logprob))));
  t.ok(worst < 1e-4, `${what}: logprobs within 1e-4 (max diff ${worst.toExponential(2)})`);
}

/** Runs the episode through both models; each step's outputs must match and reuse only the earlier prompt. */
async function episode(t: Test, withCaches: LoadedModel, without: LoadedModel): Promise<void> {
  const answers: string[] = [];
  for (let step = 0; step < screenshots.length; step++) {
    const prompt = episodePrompt(withCaches, answers);
    const images = screenshots.slice(0, step + 1);
    const got = await collect(withCaches.engine.generate(greedyRequest(prompt, images, 12)));
    const want = await collect(without.engine.generate(greedyRequest(prompt, images, 12)));
    sameOutput(t, got, want, `step ${step + 1}`);
    t.equal(want.done.cachedTokens, 0, `step ${step + 1}: caches off reuse nothing`);
    if (step > 0) {
      // Everything up to the previous step's generation prompt is reused; its answer and the new screenshot are not.
      const newRows = got.done.promptTokens - got.done.cachedTokens;
      t.ok(got.done.cachedTokens > 0, `step ${step + 1}: ${got.done.cachedTokens} prompt tokens from the prefix cache`);
      t.ok(newRows <= screenshots[step]!.numImageTokens + 40, `step ${step + 1}: ${newRows} rows prefilled (new screenshot ${screenshots[step]!.numImageTokens} + answer and template)`);
    }
    answers.push(withCaches.tokenizer.decode(got.tokens.map((e) => e.token), true));
  }
}

t.test('a 4-step episode: same outputs as without caches, one encode per screenshot, only new rows prefilled', async (t) => {
  const before = { ...cached.engine.stats };
  await episode(t, cached, uncached);
  const s = cached.engine.stats;
  t.equal(s.imageCacheMisses - before.imageCacheMisses, screenshots.length, 'each screenshot encoded once');
  t.equal(s.prefixCacheHits - before.prefixCacheHits, screenshots.length - 1, 'steps 2..4 hit the prefix cache');
});

// Quantized prompts quantize each row's activations on its own, so the rows a prompt reuses equal
// the rows its uncached prefill computes (server/model/build/layers.ts, int8-row).
for (const format of ['int8', 'int4'] as const) {
  t.test(`${format}: the same episode gives the same outputs with and without caches`, async (t) => {
    const withCaches = await loadTinyModel({ format });
    const without = await loadTinyModel({ format, imageCacheBytes: 0, prefixCacheBytes: 0 });
    t.teardown(async () => {
      await withCaches.runner.release();
      await without.runner.release();
    });
    await episode(t, withCaches, without);
  });
}

t.test('identical text with a different screenshot never reuses the other image', async (t) => {
  const prompt = episodePrompt(cached, []);
  const fresh = await prepareFile(cached, await writeTestImage(t, 'fresh.png', 160, 100, 99), policy);
  const a = await collect(cached.engine.generate(greedyRequest(prompt, [screenshots[0]!], 8)));
  const misses = cached.engine.stats.imageCacheMisses;
  const b = await collect(cached.engine.generate(greedyRequest(prompt, [fresh], 8)));
  const bAlone = await collect(uncached.engine.generate(greedyRequest(prompt, [fresh], 8)));
  sameOutput(t, b, bAlone, 'other screenshot');
  t.equal(cached.engine.stats.imageCacheMisses, misses + 1, 'the other screenshot is encoded');
  const imageStart = prompt.indexOf(cached.checkpoint.config.tokens.imagePad);
  t.ok(b.done.cachedTokens <= imageStart, `reuse stops at the image (${b.done.cachedTokens} <= ${imageStart})`);
  t.not(
    b.tokens.map((e) => e.logprob).join(),
    a.tokens.map((e) => e.logprob).join(),
    'the two screenshots give different outputs (the check above is not vacuous)',
  );
});

t.test('image keys follow the pixels after resize', async (t) => {
  const small = await prepareFile(cached, FIXTURE_SCREENSHOT, { kind: 'fixed', width: 200, height: 112 });
  const again = await prepareFile(cached, FIXTURE_SCREENSHOT, { kind: 'fixed', width: 200, height: 112 });
  const other = await prepareFile(cached, FIXTURE_SCREENSHOT, { kind: 'fixed', width: 300, height: 170 });
  t.equal(imageKey(small), imageKey(again), 'same file, same policy: same key');
  t.not(imageKey(small), imageKey(other), 'another resize policy: another key');
  const flipped = { ...small, patches: small.patches.slice() };
  flipped.patches[flipped.patches.length - 1] = -flipped.patches[flipped.patches.length - 1]! + 0.5;
  t.not(imageKey(small), imageKey(flipped), 'one value changed: another key');
});

t.test('byte-bounded LRU', async (t) => {
  const lru = new ByteLru<string>(10);
  lru.set('a', 'A', 4);
  lru.set('b', 'B', 4);
  t.equal(lru.get('a'), 'A', 'a is now the most recent');
  lru.set('c', 'C', 4); // 12 > 10: evicts the least recent (b)
  t.equal(lru.get('b'), undefined);
  t.equal(lru.get('a'), 'A');
  t.equal(lru.get('c'), 'C');
  t.match(lru.counters, { entries: 2, bytes: 8, evictions: 1, hits: 3, misses: 1 });
  lru.set('huge', 'H', 11);
  t.equal(lru.get('huge'), undefined, 'larger than the budget: not kept');
  t.equal(lru.counters.bytes, 8);
});

t.test('prefix matching compares images, keeps one row to prefill, and drops extended entries', async (t) => {
  const rows = { length: 6, keys: [], values: [] };
  const entry = { ids: [1, 2, 9, 9, 9, 3], imageKeys: ['x'], imageStarts: [2] };
  t.equal(sharedPrefix(entry, { ids: [1, 2, 9, 9, 9, 3, 4], imageKeys: ['x'], imageStarts: [2] }), 6);
  t.equal(sharedPrefix(entry, { ids: [1, 2, 9, 9, 9, 3, 4], imageKeys: ['y'], imageStarts: [2] }), 2, 'another image: up to its first row');
  t.equal(sharedPrefix(entry, { ids: [1, 5], imageKeys: [], imageStarts: [] }), 1);
  const cache = new PrefixCache(1000);
  cache.store(entry, rows, 100);
  t.equal(cache.lookup(entry)?.rows, 5, 'the same prompt reuses all rows but the last');
  cache.store({ ids: [...entry.ids, 4, 5], imageKeys: ['x'], imageStarts: [2] }, { ...rows, length: 8 }, 100);
  t.equal(cache.counters.entries, 1, 'the entry the new prompt extends is dropped');
  t.equal(cache.lookup({ ids: [7, 7], imageKeys: [], imageStarts: [] }), null);
  t.match(cache.counters, { hits: 1, misses: 1 });
});
