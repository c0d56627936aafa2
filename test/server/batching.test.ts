/**
 * The engine behind HTTP: streaming and non-streaming give the same text for a seed; two
 * concurrent requests give what each gives alone while sharing decode steps (continuous
 * batching, seen in /metrics); a client that disconnects mid-stream frees its slot at once; the
 * queue and running gauges count a request before its first token.
 */
import t from 'tap';
import { fetch } from 'undici';
import { dataUrl, http, imagePart, metric, MODEL, screenshotPng, sseData, startTestServer, waitFor } from '../helpers/server.ts';

const server = await startTestServer(t);
const chatUrl = `${server.url}/v1/chat/completions`;
const screenshot = dataUrl(await screenshotPng(7, 800, 450));

interface Answer {
  choices: { message: { content: string }; finish_reason: string }[];
  usage: { completion_tokens: number };
}

const requests = [
  {
    model: MODEL,
    messages: [{ role: 'user', content: [imagePart(screenshot), { type: 'text', text: 'Open the settings menu.' }] }],
    max_tokens: 400,
    temperature: 1,
    seed: 11,
  },
  {
    model: MODEL,
    messages: [
      { role: 'system', content: 'You are a GUI agent.' },
      { role: 'user', content: 'Scroll down to the bottom of the page and click Save.' },
    ],
    max_tokens: 400,
    temperature: 0.8,
    top_p: 0.95,
    seed: 12,
  },
];

async function complete(body: unknown): Promise<Answer> {
  const res = await http(chatUrl, 'POST', body);
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.text}`);
  return res.json as Answer;
}

async function completeStreamed(body: object): Promise<{ text: string; finish: string | null }> {
  const res = await http(chatUrl, 'POST', { ...body, stream: true });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${res.text}`);
  const chunks = sseData(res.text).slice(0, -1) as { choices: { delta: { content?: string }; finish_reason: string | null }[] }[];
  return {
    text: chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''),
    finish: chunks.at(-1)?.choices[0]?.finish_reason ?? null,
  };
}

t.test('streaming and non-streaming return the same text for the same seed', async (t) => {
  for (const body of requests) {
    const whole = await complete(body);
    const streamed = await completeStreamed(body);
    t.equal(streamed.text, whole.choices[0]!.message.content);
    t.equal(streamed.finish, whole.choices[0]!.finish_reason);
  }
});

t.test('two concurrent requests: the same outputs as one after the other, decode steps shared', async (t) => {
  const alone: Answer[] = [];
  for (const body of requests) alone.push(await complete(body));
  const before = await metric(server.url, 'uitars_batched_decode_steps');
  const together = await Promise.all(requests.map(complete));
  const after = await metric(server.url, 'uitars_batched_decode_steps');
  for (let i = 0; i < requests.length; i++) {
    t.equal(together[i]!.choices[0]!.message.content, alone[i]!.choices[0]!.message.content, `request ${i}: same text`);
    t.equal(together[i]!.usage.completion_tokens, alone[i]!.usage.completion_tokens, `request ${i}: same token count`);
  }
  t.ok(after > before, `uitars_batched_decode_steps increased (${before} -> ${after})`);
});

t.test('disconnecting mid-stream frees the slot', async (t) => {
  // Run to completion first: this greedy request generates a few hundred tokens before EOS.
  // Aborted after its first chunk, it must stop far earlier than that.
  const body = { model: MODEL, messages: [{ role: 'user', content: 'What is on the screen?' }], max_tokens: 1500, temperature: 0, frequency_penalty: 1 };
  const full = await complete(body);
  const fullTokens = full.usage.completion_tokens;
  t.ok(fullTokens >= 200, `the request runs ${fullTokens} tokens when left alone`);

  const stepsBefore = await metric(server.url, 'uitars_decode_steps');
  const controller = new AbortController();
  const res = await fetch(chatUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
    signal: controller.signal,
  });
  t.equal(res.status, 200);
  const reader = res.body!.getReader();
  const first = await reader.read();
  t.notOk(first.done, 'a first chunk arrived');
  t.match(Buffer.from(first.value!).toString('utf8'), /^data: \{/);
  // The engine publishes its counts once per step, so the gauge catches up a step after the first token.
  t.ok(await waitFor(async () => (await metric(server.url, 'uitars_running_sequences')) === 1, 2000), 'the request is running');
  controller.abort();
  await reader.cancel().catch(() => {});

  t.ok(await waitFor(async () => (await metric(server.url, 'uitars_running_sequences')) === 0, 5000), 'uitars_running_sequences returns to 0');
  await new Promise((r) => setTimeout(r, 300));
  const stepsAfter = await metric(server.url, 'uitars_decode_steps');
  t.ok(stepsAfter - stepsBefore < fullTokens / 2, `generation stopped early (${stepsAfter - stepsBefore} decode steps of ${fullTokens})`);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await metric(server.url, 'uitars_decode_steps'), stepsAfter, 'and stays stopped');
  t.equal(await metric(server.url, 'uitars_queue_depth'), 0);

  const next = await complete({ ...body, max_tokens: 5 });
  t.equal(next.usage.completion_tokens, 5, 'a following request succeeds');
  t.equal(next.choices[0]!.message.content, full.choices[0]!.message.content.slice(0, next.choices[0]!.message.content.length));
});

t.test('the gauges count a request while it waits and while its prompt is prefilled', async (t) => {
  const one = await startTestServer(t, { maxBatch: 1, maxModelLen: 32768 });
  const url = `${one.url}/v1/chat/completions`;
  // A prompt long enough that its prefill takes seconds on the tiny model.
  const long = { model: MODEL, messages: [{ role: 'user', content: 'ab '.repeat(9000) }], max_tokens: 1, stream: true };
  let firstBytes = 0;
  const first = fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(long) }).then(async (res) => {
    for await (const chunk of res.body!) firstBytes += (chunk as Uint8Array).length;
  });
  t.ok(await waitFor(async () => (await metric(one.url, 'uitars_running_sequences')) === 1, 10_000), 'prefilling counts as running');
  t.equal(firstBytes, 0, 'seen before its first token');
  const second = http(url, 'POST', { ...long, stream: false });
  t.ok(await waitFor(async () => (await metric(one.url, 'uitars_queue_depth')) === 1, 10_000), 'a second request waits in the queue');
  t.equal(firstBytes, 0, 'while the first still prefills');
  await first;
  t.equal((await second).status, 200);
  t.ok(await waitFor(async () => (await metric(one.url, 'uitars_running_sequences')) === 0, 5000), 'and both gauges return to 0');
  t.equal(await metric(one.url, 'uitars_queue_depth'), 0);
});
