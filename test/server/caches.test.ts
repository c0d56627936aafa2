/**
 * The agent-loop caches seen through HTTP: a second step that extends the first reports reused
 * prompt tokens in usage.prompt_tokens_details.cached_tokens and in /metrics, and answers what a
 * server without caches answers.
 */
import t from 'tap';
import { dataUrl, http, imagePart, metric, MODEL, screenshotPng, startTestServer } from '../helpers/server.ts';

interface Completion {
  choices: { message: { content: string } }[];
  usage: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number; image_tokens: number } };
}

const cached = await startTestServer(t);
const uncached = await startTestServer(t, { imageCacheMiB: 0, prefixCacheGiB: 0, preparedImageCacheMiB: 0 });
const shots = await Promise.all([screenshotPng(11, 640, 360), screenshotPng(12, 640, 360)]);

/** ARPO's layout: the instruction, then per step a screenshot and the answer to it. */
function step(answers: string[]) {
  const messages: unknown[] = [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'You are a GUI agent. Open the settings.' },
  ];
  answers.forEach((a, i) => messages.push({ role: 'user', content: [imagePart(dataUrl(shots[i]!))] }, { role: 'assistant', content: a }));
  messages.push({ role: 'user', content: [imagePart(dataUrl(shots[answers.length]!))] });
  return { model: MODEL, messages, max_tokens: 12, temperature: 0, logprobs: true };
}

t.test('step 2 reuses step 1', async (t) => {
  const first = await http(`${cached.url}/v1/chat/completions`, 'POST', step([]));
  t.equal(first.status, 200);
  const one = first.json as Completion;
  t.equal(one.usage.prompt_tokens_details.cached_tokens, 0, 'nothing to reuse on the first step');

  const body = step([one.choices[0]!.message.content]);
  const second = await http(`${cached.url}/v1/chat/completions`, 'POST', body);
  const plain = await http(`${uncached.url}/v1/chat/completions`, 'POST', body);
  t.equal(second.status, 200);
  t.equal(plain.status, 200);
  const two = second.json as Completion;
  t.ok(two.usage.prompt_tokens_details.cached_tokens > 0, `${two.usage.prompt_tokens_details.cached_tokens} of ${two.usage.prompt_tokens} prompt tokens reused`);
  t.equal((plain.json as Completion).usage.prompt_tokens_details.cached_tokens, 0, 'caches off: nothing reused');
  t.equal(two.choices[0]!.message.content, (plain.json as Completion).choices[0]!.message.content, 'same answer as without caches');

  t.equal(await metric(cached.url, 'uitars_prefix_cache_hits'), 1);
  t.equal(await metric(cached.url, 'uitars_prefix_cache_tokens'), two.usage.prompt_tokens_details.cached_tokens);
  t.equal(await metric(cached.url, 'uitars_image_cache_misses'), 2, 'each screenshot encoded once');
  t.ok((await metric(cached.url, 'uitars_cache_bytes')) > 0);
  t.equal(await metric(uncached.url, 'uitars_prefix_cache_hits'), 0);
});
