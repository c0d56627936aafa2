/**
 * The server as clients call it: the official `openai` npm package, and raw HTTP (undici) with
 * the bodies curl would send. Real server, real port, real engine worker, tiny checkpoint.
 */
import t from 'tap';
import OpenAI from 'openai';
import { dataUrl, http, imagePart, MODEL, screenshotPng, sseData, startTestServer } from '../helpers/server.ts';

const server = await startTestServer(t);
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 });
const screenshot = dataUrl(await screenshotPng(1, 640, 360));
const messages: OpenAI.ChatCompletionMessageParam[] = [
  { role: 'system', content: 'You are a GUI agent.' },
  { role: 'user', content: [imagePart(screenshot), { type: 'text', text: 'Click the OK button.' }] },
];

t.test('openai: chat completion', async (t) => {
  const res = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 8, temperature: 0 });
  t.equal(res.object, 'chat.completion');
  t.equal(res.model, MODEL);
  t.match(res.id, /^chatcmpl-/);
  t.equal(res.choices.length, 1);
  const choice = res.choices[0]!;
  t.equal(choice.message.role, 'assistant');
  t.type(choice.message.content, 'string');
  t.ok(['stop', 'length'].includes(choice.finish_reason), `finish_reason ${choice.finish_reason}`);
  t.ok(res.usage!.completion_tokens >= 1 && res.usage!.completion_tokens <= 8);
  t.equal(res.usage!.total_tokens, res.usage!.prompt_tokens + res.usage!.completion_tokens);
  // image_tokens is vLLM's (and our) extra, outside the client's types.
  const details = res.usage!.prompt_tokens_details as { image_tokens?: number } | undefined;
  t.ok(details?.image_tokens !== undefined && details.image_tokens > 0, 'the screenshot counts as image tokens');
});

t.test('openai: models.list and models.retrieve', async (t) => {
  const list = await client.models.list();
  t.same(list.data.map((m) => m.id), [MODEL]);
  const one = await client.models.retrieve(MODEL);
  t.equal(one.id, MODEL);
  t.equal(one.object, 'model');
  const refused = await client.models.retrieve('gpt-4o').then(() => null, (err: unknown) => err);
  t.equal((refused as { status?: number } | null)?.status, 404, 'another id is 404');
  const missing = await http(`${server.url}/v1/models/org%2Fother`, 'GET');
  t.equal((missing.json as { error: { code: string } }).error.code, 'model_not_found');
});

t.test('openai: streaming deltas add up to the non-streamed text (same seed)', async (t) => {
  const params = { model: MODEL, messages, max_tokens: 12, temperature: 1, seed: 7 };
  const whole = await client.chat.completions.create(params);
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish: string | null = null;
  let chunks = 0;
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    chunks++;
    t.equal(chunk.object, 'chat.completion.chunk');
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  t.ok(chunks >= 3, `several chunks (${chunks})`);
  t.equal(text, whole.choices[0]!.message.content, 'same text as without streaming');
  t.equal(finish, whole.choices[0]!.finish_reason);
  t.same(usage, whole.usage, 'include_usage sends the same usage');
});

t.test('openai: logprobs and top_logprobs', async (t) => {
  const res = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 });
  const content = res.choices[0]!.logprobs!.content!;
  t.equal(content.length, res.usage!.completion_tokens, 'one entry per generated token');
  let joined = '';
  for (const entry of content) {
    joined += entry.token;
    t.ok(entry.logprob <= 0, 'a log-probability');
    t.same(entry.bytes, [...Buffer.from(entry.token, 'utf8')]);
    t.equal(entry.top_logprobs.length, 3);
    const tops = entry.top_logprobs.map((a) => a.logprob);
    t.same(tops, [...tops].sort((a, b) => b - a), 'alternatives in descending order');
    // Greedy: the chosen token is the most likely alternative.
    t.equal(entry.top_logprobs[0]!.token, entry.token);
    t.ok(Math.abs(entry.top_logprobs[0]!.logprob - entry.logprob) < 1e-6);
  }
  // Random-weight text may hold partial UTF-8 characters per token; ASCII output must match exactly.
  if (/^[\x20-\x7e]*$/.test(joined)) t.equal(joined, res.choices[0]!.message.content);
});

t.test('openai: n=2 gives two choices', async (t) => {
  const res = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 10, temperature: 1, seed: 3, n: 2 });
  t.same(res.choices.map((c) => c.index), [0, 1]);
  for (const c of res.choices) t.type(c.message.content, 'string');
  t.ok(res.usage!.completion_tokens >= 2, 'completion tokens of both choices are counted');
  t.not(res.choices[0]!.message.content, res.choices[1]!.message.content, 'the two samples differ');
});

t.test('openai: a seed gives the same text twice at temperature 1; another seed differs', async (t) => {
  const params = { model: MODEL, messages, max_tokens: 16, temperature: 1, seed: 1234 };
  const a = await client.chat.completions.create(params);
  const b = await client.chat.completions.create(params);
  const c = await client.chat.completions.create({ ...params, seed: 4321 });
  t.equal(a.choices[0]!.message.content, b.choices[0]!.message.content);
  t.not(a.choices[0]!.message.content, c.choices[0]!.message.content);
});

t.test('openai: a stop string ends the text before it, finish_reason stop', async (t) => {
  const params = { model: MODEL, messages, max_tokens: 24, temperature: 1, seed: 99 };
  const full = (await client.chat.completions.create(params)).choices[0]!.message.content!;
  // A stop string taken from the middle of the text the same seed produces.
  const stop = pickStop(full);
  t.ok(stop, `text long enough to pick a stop string from: ${JSON.stringify(full)}`);
  const res = await client.chat.completions.create({ ...params, stop: [stop!] });
  const choice = res.choices[0]!;
  t.equal(choice.finish_reason, 'stop');
  t.notOk(choice.message.content!.includes(stop!), 'the stop string is not in the text');
  t.equal(choice.message.content, full.slice(0, full.indexOf(stop!)), 'the text up to the stop string');
  const streamed = await client.chat.completions.create({ ...params, stop: stop!, stream: true });
  let text = '';
  let finish: string | null = null;
  for await (const chunk of streamed) {
    text += chunk.choices[0]?.delta.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
  }
  t.equal(text, choice.message.content, 'streaming stops at the same place');
  t.equal(finish, 'stop');
});

/** Three printable characters from the second half of the text (where the first occurrence is). */
function pickStop(text: string): string | null {
  for (let i = Math.floor(text.length / 2); i + 3 <= text.length; i++) {
    const s = text.slice(i, i + 3);
    if (/^[\x21-\x7e]{3}$/.test(s) && text.indexOf(s) > 0) return s;
  }
  return null;
}

t.test('raw HTTP (undici): the same calls as curl', async (t) => {
  const url = `${server.url}/v1/chat/completions`;
  const body = { model: MODEL, messages, max_tokens: 8, temperature: 1, seed: 5, logprobs: true, top_logprobs: 2 };
  const res = await http(url, 'POST', body);
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  t.equal(res.headers['x-images-dropped'], '0');
  const json = res.json as OpenAI.ChatCompletion & { images: unknown[]; images_dropped: number };
  t.equal(json.object, 'chat.completion');
  t.equal(json.images.length, 1);
  t.equal(json.images_dropped, 0);
  t.equal(json.choices[0]!.logprobs!.content!.length, json.usage!.completion_tokens);
  t.ok(json.choices[0]!.logprobs!.content!.every((e) => e.top_logprobs.length === 2));

  const sse = await http(url, 'POST', { ...body, stream: true });
  t.equal(sse.status, 200);
  t.match(sse.headers['content-type'], /^text\/event-stream/);
  t.ok(sse.text.endsWith('data: [DONE]\n\n'), 'the stream ends with data: [DONE]');
  const events = sseData(sse.text);
  t.equal(events.at(-1), '[DONE]');
  const chunks = events.slice(0, -1) as OpenAI.ChatCompletionChunk[];
  t.equal(chunks[0]!.choices[0]!.delta.role, 'assistant', 'the first chunk carries the role');
  t.ok(chunks.every((c) => c.id === chunks[0]!.id), 'one id for the whole stream');
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  t.equal(text, json.choices[0]!.message.content, 'streamed text equals the JSON answer (same seed)');
  const tokenChunks = chunks.filter((c) => c.choices[0]?.logprobs);
  t.equal(tokenChunks.length, json.usage!.completion_tokens, 'one logprobs entry per token when streaming');
  t.equal(chunks.at(-1)!.choices[0]!.finish_reason, json.choices[0]!.finish_reason);

  // n=2 and a stop string, raw.
  const plain = { model: MODEL, messages, max_tokens: 24, temperature: 1, seed: 99 };
  const two = await http(url, 'POST', { ...plain, n: 2 });
  t.equal(two.status, 200);
  t.same((two.json as OpenAI.ChatCompletion).choices.map((c) => c.index), [0, 1], 'two choices');
  const full = ((await http(url, 'POST', plain)).json as OpenAI.ChatCompletion).choices[0]!.message.content!;
  const stop = pickStop(full);
  t.ok(stop, 'a stop string to pick');
  const stopped = await http(url, 'POST', { ...plain, stop });
  const c = (stopped.json as OpenAI.ChatCompletion).choices[0]!;
  t.equal(c.finish_reason, 'stop');
  t.equal(c.message.content, full.slice(0, full.indexOf(stop!)), 'cut at the stop string');

  const models = await http(`${server.url}/v1/models`, 'GET');
  t.equal(models.status, 200);
  t.equal((models.json as { data: { id: string }[] }).data[0]!.id, MODEL);
});
