/**
 * The engine on the generated tiny checkpoint, real ONNX Runtime sessions:
 * KV-cached decoding equals recomputation, batching equals running alone.
 */
import t, { type Test } from 'tap';
import type { LoadedModel } from '../../server/model/load-model.ts';
import { collect, FIXTURE_SCREENSHOT, greedyRequest, loadTinyModel, prepareFile, userPrompt, type Collected } from '../helpers/tiny-model.ts';
import { writeTestImage } from '../helpers/images.ts';

const model = await loadTinyModel({ prefixCacheBytes: 0 }); // each request recomputes its prompt (caches.test.ts covers reuse)
t.teardown(() => model.runner.release());
const imagePad = model.checkpoint.config.tokens.imagePad;

// Two images whose sizes are not multiples of 28 (smart_resize rounds them).
const imageA = await prepareFile(model, FIXTURE_SCREENSHOT, { kind: 'fixed', width: 300, height: 170 });
const imageB = await prepareFile(model, await writeTestImage(t, 'b.png', 131, 97, 7), {
  kind: 'smart',
  minPixels: 56 * 56,
  maxPixels: 200 * 28 * 28,
});

t.test('decoding with the KV cache equals recomputing the whole sequence (two images, 24 steps)', async (t) => {
  const prompt = userPrompt(model, 'Compare the two screens and click the difference.', 2);
  const steps = 24;
  const run = await collect(model.engine.generate(greedyRequest(prompt, [imageA, imageB], steps)));
  t.equal(run.tokens.length, steps);
  t.equal(run.done.imageTokens, imageA.numImageTokens + imageB.numImageTokens);
  const generated = run.tokens.map((e) => e.token);
  t.notOk(generated.includes(imagePad), 'no image token generated (the check below re-expands prompts)');
  let worst = 0;
  for (const k of [0, 1, 5, 11, 17, 23]) {
    // Recompute: prefill prompt + the first k generated tokens in one pass, then one token.
    const again = await collect(model.engine.generate(greedyRequest([...prompt, ...generated.slice(0, k)], [imageA, imageB], 1)));
    const cached = run.tokens[k]!;
    const fresh = again.tokens[0]!;
    t.equal(fresh.token, cached.token, `step ${k}: same token`);
    t.same(fresh.top.map((a) => a.token), cached.top.map((a) => a.token), `step ${k}: same top-5`);
    for (let i = 0; i < fresh.top.length; i++) worst = Math.max(worst, Math.abs(fresh.top[i]!.logprob - cached.top[i]!.logprob));
  }
  t.comment(`max |logprob(cached) - logprob(recomputed)| over top-5 = ${worst.toExponential(2)}`);
  t.ok(worst < 1e-4, 'top-5 logprobs within 1e-4');
});

/** Three requests run one after another, then at once: the same tokens and logprobs. */
async function batchEqualsAlone(t: Test, m: LoadedModel): Promise<void> {
  const requests = [
    greedyRequest(userPrompt(m, 'Open the terminal.', 1), [imageA], 20),
    greedyRequest(userPrompt(m, 'What is on the screen? Answer in detail, please.', 0), [], 9),
    greedyRequest(userPrompt(m, 'Drag the file to the trash.', 2, 'You are a GUI agent.'), [imageB, imageA], 14),
  ];
  const alone: Collected[] = [];
  for (const r of requests) alone.push(await collect(m.engine.generate(r)));
  const before = m.engine.stats.batchedDecodeSteps;
  const together = await Promise.all(requests.map((r) => collect(m.engine.generate(r))));
  t.ok(m.engine.stats.batchedDecodeSteps > before, 'decode steps were shared');
  for (let i = 0; i < requests.length; i++) {
    t.same(
      together[i]!.tokens.map((e) => e.token),
      alone[i]!.tokens.map((e) => e.token),
      `request ${i}: same tokens`,
    );
    const diff = Math.max(...together[i]!.tokens.map((e, j) => Math.abs(e.logprob - alone[i]!.tokens[j]!.logprob)));
    t.ok(diff < 1e-4, `request ${i}: logprobs within 1e-4 (${diff.toExponential(2)})`);
    t.equal(together[i]!.done.text, alone[i]!.done.text);
  }
}

/** One prompt through a model that prefills it in one pass and one that prefills it in chunks of 37 tokens. */
async function chunksEqualOnePass(t: Test, onePass: LoadedModel, chunked: LoadedModel): Promise<void> {
  const prompt = userPrompt(onePass, 'Type hello into the search box.', 2);
  const a = await collect(onePass.engine.generate(greedyRequest(prompt, [imageA, imageB], 8)));
  const b = await collect(chunked.engine.generate(greedyRequest(prompt, [imageA, imageB], 8)));
  t.same(b.tokens.map((e) => e.token), a.tokens.map((e) => e.token));
  const diff = Math.max(...b.tokens.map((e, j) => Math.abs(e.logprob - a.tokens[j]!.logprob)));
  t.ok(diff < 1e-4, `logprobs within 1e-4 (${diff.toExponential(2)})`);
}

t.test('a batch of sequences of different lengths equals each run alone', (t) => batchEqualsAlone(t, model));

t.test('prefill in chunks equals one-pass prefill', async (t) => {
  const chunked = await loadTinyModel({ prefillChunk: 37, prefixCacheBytes: 0 });
  t.teardown(() => chunked.runner.release());
  await chunksEqualOnePass(t, model, chunked);
});

// int8 quantizes each row's activations on its own (server/model/build/layers.ts, int8-row), so it
// keeps both properties; int4's decode kernel differs in the last bits between one row and several.
t.test('int8: a batch equals each run alone, and chunked prefill equals one pass', async (t) => {
  const int8 = await loadTinyModel({ format: 'int8', prefixCacheBytes: 0 });
  const chunked = await loadTinyModel({ format: 'int8', prefillChunk: 37, prefixCacheBytes: 0 });
  t.teardown(async () => {
    await int8.runner.release();
    await chunked.runner.release();
  });
  await batchEqualsAlone(t, int8);
  await chunksEqualOnePass(t, int8, chunked);
});

t.test('stop tokens, max tokens, the context limit and aborts end a sequence', async (t) => {
  const prompt = userPrompt(model, 'Scroll down.', 0);
  const free = await collect(model.engine.generate(greedyRequest(prompt, [], 6)));
  t.equal(free.done.finishReason, 'length');
  t.equal(free.done.completionTokens, 6);
  const third = free.tokens[2]!.token;
  const stopped = await collect(model.engine.generate(greedyRequest(prompt, [], 6, { stopTokenIds: [third] })));
  t.equal(stopped.done.finishReason, 'stop');
  const firstAt = free.tokens.findIndex((e) => e.token === third);
  t.equal(stopped.tokens.length, firstAt + 1, 'the first stop token is the last event');

  const small = await loadTinyModel({ maxModelLen: prompt.length + 4 });
  t.teardown(() => small.runner.release());
  const clipped = await collect(small.engine.generate(greedyRequest(prompt, [], 50)));
  t.equal(clipped.done.finishReason, 'length');
  t.equal(clipped.done.promptTokens + clipped.done.completionTokens, prompt.length + 4);
  const withImage = userPrompt(model, 'Scroll down.', 1);
  const tooLong = await collect(small.engine.generate(greedyRequest(withImage, [imageA], 5)));
  t.equal(tooLong.done.finishReason, 'error');
  t.match(tooLong.done.error, /does not fit/);

  const controller = new AbortController();
  const events = model.engine.generate(greedyRequest(prompt, [], 1000, { signal: controller.signal }));
  let seen = 0;
  let reason = '';
  for await (const ev of events) {
    if (ev.type === 'token' && ++seen === 3) controller.abort();
    if (ev.type === 'done') reason = ev.finishReason;
  }
  t.equal(reason, 'abort');
  t.ok(seen < 10, 'stopped soon after the abort');
  await model.engine.idle();
  t.equal(model.engine.stats.running, 0, 'slot freed');
});

t.test('a stop string ends the text before it, streamed deltas included', async (t) => {
  const prompt = userPrompt(model, 'Describe what you see.', 1);
  const free = await collect(model.engine.generate(greedyRequest(prompt, [imageA], 24)));
  const text = free.done.text;
  t.ok(text.length >= 8, `greedy text is long enough to cut (${JSON.stringify(text)})`);
  const stop = text.slice(4, 7);
  const cutAt = text.indexOf(stop);
  const stopped = await collect(model.engine.generate(greedyRequest(prompt, [imageA], 24, { stop: [stop] })));
  t.equal(stopped.done.finishReason, 'stop');
  t.equal(stopped.done.text, text.slice(0, cutAt));
  t.equal(stopped.tokens.map((e) => e.text).join('') + stopped.done.finalText, text.slice(0, cutAt), 'deltas hold back the stop string');
});

t.test('n=2 shares one prefill; each completion equals its own single run', async (t) => {
  const prompt = userPrompt(model, 'Pick an icon.', 1);
  const sampling = { ...greedyRequest(prompt, [imageA], 10).sampling, temperature: 0.9, seed: 42 };
  const both = model.engine.generate(greedyRequest(prompt, [imageA], 10, { sampling, n: 2 }));
  const byIndex: number[][] = [[], []];
  const done: number[] = [];
  for await (const ev of both) {
    if (ev.type === 'token') byIndex[ev.index]!.push(ev.token);
    else done.push(ev.index);
  }
  t.same(done.sort(), [0, 1], 'one done event per completion');
  const single0 = await collect(model.engine.generate(greedyRequest(prompt, [imageA], 10, { sampling })));
  const single1 = await collect(model.engine.generate(greedyRequest(prompt, [imageA], 10, { sampling: { ...sampling, seed: 43 } })));
  t.same(byIndex[0], single0.tokens.map((e) => e.token), 'completion 0 = seed 42 alone');
  t.same(byIndex[1], single1.tokens.map((e) => e.token), 'completion 1 = seed 43 alone');
  t.notSame(byIndex[0], byIndex[1], 'the two completions differ');
  const tooMany = await collect(model.engine.generate(greedyRequest(prompt, [], 3, { n: 99 })));
  t.equal(tooMany.done.finishReason, 'error');
});

t.test('a request aborted during its prefill stops before its remaining images', async (t) => {
  const images = [];
  for (const seed of [1, 2, 3, 4, 5]) {
    images.push(await prepareFile(model, await writeTestImage(t, `abort-${seed}.png`, 90 + seed, 70, seed), { kind: 'smart', minPixels: 56 * 56, maxPixels: 60 * 28 * 28 }));
  }
  const encodedBefore = model.engine.stats.imageCacheMisses;
  const controller = new AbortController();
  const events = model.engine.generate(greedyRequest(userPrompt(model, 'Compare them.', images.length), images, 8, { signal: controller.signal }));
  // The prefill has started (it awaits its first image's encoder run); abort now.
  controller.abort();
  const run = await collect(events);
  t.equal(run.done.finishReason, 'abort');
  t.equal(run.tokens.length, 0, 'no token generated');
  t.ok(model.engine.stats.imageCacheMisses - encodedBefore < images.length, `stopped after ${model.engine.stats.imageCacheMisses - encodedBefore} of ${images.length} images`);
  const after = await collect(model.engine.generate(greedyRequest(userPrompt(model, 'Next.', 1), [imageA], 3)));
  t.equal(after.tokens.length, 3, 'the engine serves the next request');
});
