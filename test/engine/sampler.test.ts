import t from 'tap';
import { GREEDY, SequenceSampler, logSumExp, topIndices, type SamplingParams } from '../../server/engine/sampler.ts';

const logits = Float32Array.from([0.5, 2.0, -1.0, 1.5, 0.0, 3.0, 2.5, -2.0]);

t.test('greedy picks the argmax and reports raw logprobs with alternatives', async (t) => {
  const s = new SequenceSampler(GREEDY, []);
  const out = s.sample(logits, 3);
  t.equal(out.token, 5);
  const lse = logSumExp(logits);
  t.ok(Math.abs(out.logprob - (3.0 - lse)) < 1e-9);
  t.same(out.top.map((x) => x.token), [5, 6, 1]);
  t.same(topIndices(logits, 8), [5, 6, 1, 3, 0, 4, 2, 7]);
});

t.test('repetition penalty over prompt tokens, frequency/presence over output tokens', async (t) => {
  // Token 5 (3.0) divided by 2 -> 1.5 loses to token 6 (2.5).
  const rep = new SequenceSampler({ ...GREEDY, repetitionPenalty: 2 }, [5]);
  t.equal(rep.sample(logits, 0).token, 6);
  // frequency_penalty 1: after emitting 5 once, 3.0 - 1 = 2.0 < 2.5.
  const freq = new SequenceSampler({ ...GREEDY, frequencyPenalty: 1 }, [5]);
  t.equal(freq.sample(logits, 0).token, 5, 'prompt tokens are not penalised by frequency_penalty');
  t.equal(freq.sample(logits, 0).token, 6);
  const pres = new SequenceSampler({ ...GREEDY, presencePenalty: 0.4 }, []);
  t.equal(pres.sample(logits, 0).token, 5);
  t.equal(pres.sample(logits, 0).token, 5, '3.0 - 0.4 still beats 2.5');
  t.equal(logits[5], 3.0, 'the caller\'s logits are not modified');
});

t.test('a seed reproduces the samples; top_k and top_p restrict the support', async (t) => {
  const params: SamplingParams = { ...GREEDY, temperature: 1, seed: 1234 };
  const draw = (p: SamplingParams, n: number): number[] => {
    const s = new SequenceSampler(p, []);
    return Array.from({ length: n }, () => s.sample(logits, 0).token);
  };
  const a = draw(params, 200);
  t.same(draw(params, 200), a, 'same seed, same tokens');
  t.notSame(draw({ ...params, seed: 99 }, 200), a, 'another seed, other tokens');
  t.ok(new Set(a).size > 3, 'temperature 1 explores several tokens');
  t.same(new Set(draw({ ...params, topK: 2 }, 200)), new Set([5, 6]));
  // Probabilities sorted: 5 (0.425), 6 (0.257), 1 (0.156)... top_p 0.65 keeps the first two.
  t.same(new Set(draw({ ...params, topP: 0.65 }, 300)), new Set([5, 6]));
  // min_p 0.5 keeps p >= 0.5 * p_max: 5 and 6 (0.257/0.425 = 0.61), not 1 (0.37).
  t.same(new Set(draw({ ...params, minP: 0.5 }, 300)), new Set([5, 6]));
  // A tiny temperature behaves as greedy.
  t.same(new Set(draw({ ...params, temperature: 1e-6 }, 20)), new Set([5]));
});
