/**
 * The whole engine path (chat template, tokenizer, image preprocessing, vision encoder,
 * M-RoPE, KV-cached decoding, sampler) against the independent PyTorch reference of
 * Hugging Face's Qwen2-VL (test/reference), f32, greedy: 16 tokens identical, logprobs
 * and top-5 alternatives within 1e-3, for zero, one and two images whose sizes are not
 * multiples of 28.
 */
import t from 'tap';
import { writeTestImage } from '../helpers/images.ts';
import { runReference, torchUnavailable, type ReferenceImage } from '../helpers/python.ts';
import { collect, FIXTURE_SCREENSHOT, greedyRequest, loadTinyModel, prepareFile, userPrompt } from '../helpers/tiny-model.ts';

const skip = torchUnavailable();
const STEPS = 16;
const PIXELS = { minPixels: 56 * 56, maxPixels: 300 * 28 * 28 };

t.test('engine vs PyTorch reference', { skip: skip ?? false }, async (t) => {
  const model = await loadTinyModel();
  t.teardown(() => model.runner.release());
  const files = [FIXTURE_SCREENSHOT, await writeTestImage(t, 'odd.png', 211, 97, 3)];
  const cases = [
    { name: 'text only', images: [] as string[], text: 'Where is the start menu?' },
    { name: 'one screenshot (1920x1080, smart-resized)', images: [files[0]!], text: 'Click the OK button.' },
    { name: 'two images (1920x1080 and 211x97)', images: [files[0]!, files[1]!], text: 'What changed between these?' },
  ];
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const prompt = userPrompt(model, c.text, c.images.length, 'You are a GUI agent.');
      const prepared = await Promise.all(c.images.map((f) => prepareFile(model, f, { kind: 'smart', ...PIXELS })));
      const ours = await collect(model.engine.generate(greedyRequest(prompt, prepared, STEPS)));
      const ref = runReference({
        checkpoint: model.checkpoint.dir,
        input_ids: prompt,
        images: c.images.map((path): ReferenceImage => ({ path, min_pixels: PIXELS.minPixels, max_pixels: PIXELS.maxPixels })),
        max_new_tokens: STEPS,
        top_logprobs: 5,
      });
      t.same(prepared.map((p) => p.gridThw), ref.image_grid_thw, 'same image grids');
      t.equal(ours.done.promptTokens, ref.expanded_input_ids.length, 'same expanded prompt length');
      t.same(ours.tokens.map((e) => e.token), ref.tokens, 'greedy tokens identical');
      let worst = 0;
      ours.tokens.forEach((e, i) => {
        worst = Math.max(worst, Math.abs(e.logprob - ref.logprobs[i]!));
        e.top.forEach((a, j) => {
          const [id, lp] = ref.top_logprobs[i]![j]!;
          if (a.token === id) worst = Math.max(worst, Math.abs(a.logprob - lp));
          else t.fail(`step ${i}: alternative ${j} is ${a.token}, reference ${id}`);
        });
      });
      t.comment(`max |logprob - reference| = ${worst.toExponential(2)}; tokens ${ours.tokens.map((e) => e.token).join(' ')}`);
      t.ok(worst < 1e-3, 'logprobs within 1e-3');
    });
  }
});
