/**
 * The endpoints around chat completions: /v1/models, /health (503 while loading and after a
 * failed load, with a clear message), /tokenize (text and image tokens), /metrics (Prometheus
 * text with the uitars_* series) and /openapi.json (a usable OpenAPI 3 document).
 */
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv from 'ajv';
import { defaultServerConfig } from '../../server/config.ts';
import { ORT_ENVIRONMENT } from '../../server/model/runtime/ort-environment.ts';
import { startServer, type RunningServer } from '../../server/server.ts';
import { dataUrl, http, imagePart, metricValue, MODEL, screenshotPng, startTestServer, withTimeout } from '../helpers/server.ts';

const server = await startTestServer(t);
const small = dataUrl(await screenshotPng(31, 640, 360)); // smart: 644x364 -> 23 x 13 = 299 tokens
const full = dataUrl(await screenshotPng(32)); // 1920x1080 -> 1932x1092 -> 69 x 39 = 2691 tokens
const messages = [
  { role: 'system', content: 'You are a GUI agent.' },
  { role: 'user', content: [imagePart(small), { type: 'text', text: 'Before.' }, imagePart(full), { type: 'text', text: 'After. What changed?' }] },
];

/**
 * Starts a server whose engine worker sees ONNX_CACHE_DIR = `cacheDir` (workers copy the
 * environment when they start), then restores the variable.
 */
async function startWithCacheDir(cacheDir: string): Promise<RunningServer> {
  const saved = process.env.ONNX_CACHE_DIR;
  process.env.ONNX_CACHE_DIR = cacheDir;
  try {
    return await startServer({ ...defaultServerConfig(), ports: [0], drainSeconds: 1 });
  } finally {
    if (saved === undefined) delete process.env.ONNX_CACHE_DIR;
    else process.env.ONNX_CACHE_DIR = saved;
  }
}

t.test('the engine worker started with ONNX Runtime\'s switches in the process environment', async (t) => {
  // a worker's process.env is a copy that ONNX Runtime does not read: the main thread sets them first
  for (const [name, value] of Object.entries(ORT_ENVIRONMENT)) t.equal(process.env[name], value, name);
});

t.test('/v1/models lists the served model with max_model_len', async (t) => {
  const res = await http(`${server.url}/v1/models`, 'GET');
  t.equal(res.status, 200);
  const body = res.json as { object: string; data: { id: string; object: string; max_model_len: number; created: number }[] };
  t.equal(body.object, 'list');
  t.equal(body.data.length, 1);
  t.equal(body.data[0]!.id, MODEL);
  t.equal(body.data[0]!.object, 'model');
  t.equal(body.data[0]!.max_model_len, 32768);
  t.type(body.data[0]!.created, 'number');
});

t.test('/health is 200 once the model is loaded', async (t) => {
  const res = await http(`${server.url}/health`, 'GET');
  t.equal(res.status, 200);
});

t.test('/health is 503 while the model loads, then 200', async (t) => {
  // An empty graph cache: the worker builds the ONNX graphs first, so loading takes a while.
  const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'uitars-onnx-'));
  t.teardown(() => fs.rmSync(cache, { recursive: true, force: true }));
  const loading = await startWithCacheDir(cache);
  t.teardown(() => loading.close());
  const url = loading.urls[0]!;
  const early = await http(`${url}/health`, 'GET');
  t.equal(early.status, 503, 'queried at once: still loading');
  t.same(early.json, { error: { message: 'the model is still loading', type: 'service_unavailable', param: null, code: 'model_not_ready' } });
  const chat = await http(`${url}/v1/chat/completions`, 'POST', { model: MODEL, messages: [{ role: 'user', content: 'hi' }] });
  t.equal(chat.status, 503, 'chat completions wait for the model too');
  await loading.engine.ready;
  t.equal((await http(`${url}/health`, 'GET')).status, 200);
});

t.test('/health stays 503 with the reason when the model fails to load; close() still returns', async (t) => {
  // The graph cache cannot be created (its parent is a file): the worker's load fails.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'uitars-broken-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'file'), 'not a folder');
  const broken = await startWithCacheDir(path.join(dir, 'file', 'onnx'));
  await t.rejects(broken.engine.ready, 'the load fails');
  for (let i = 0; i < 2; i++) {
    const res = await http(`${broken.urls[0]}/health`, 'GET');
    t.equal(res.status, 503);
    t.match((res.json as { error: { message: string } }).error.message, /^the model failed to load: ENOTDIR/);
  }
  for (const [route, body] of [['/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }] }], ['/tokenize', { messages: [{ role: 'user', content: 'hi' }] }]] as const) {
    const res = await http(`${broken.urls[0]}${route}`, 'POST', body);
    t.equal(res.status, 503, `${route}: 503`);
    t.match((res.json as { error: { message: string } }).error.message, /^the model failed to load/, `${route}: says why`);
  }
  // Shutting down a server whose worker thread already ended (it ends once its load fails) must not hang.
  await new Promise((r) => setTimeout(r, 500));
  const closed = await withTimeout(broken.close().then(() => true), 10_000, false);
  t.ok(closed, 'close() returns');
});

t.test('/tokenize counts text and image tokens', async (t) => {
  const text = await http(`${server.url}/tokenize`, 'POST', { model: MODEL, messages: [{ role: 'user', content: 'Click the OK button.' }] });
  t.equal(text.status, 200);
  const tt = text.json as { count: number; tokens: number[]; text_tokens: number; image_tokens: number; images: unknown[]; images_dropped: number };
  t.equal(tt.image_tokens, 0);
  t.same(tt.images, []);
  t.equal(tt.count, tt.text_tokens);
  t.equal(tt.tokens.length, tt.count);

  const res = await http(`${server.url}/tokenize`, 'POST', { messages });
  t.equal(res.status, 200);
  const tok = res.json as { count: number; tokens: number[]; text_tokens: number; image_tokens: number; max_model_len: number; images: unknown[]; images_dropped: number };
  t.same(tok.images, [
    { original: [640, 360], resized: [644, 364], tokens: 299 },
    { original: [1920, 1080], resized: [1932, 1092], tokens: 2691 },
  ]);
  t.equal(tok.image_tokens, 299 + 2691);
  t.equal(tok.count, tok.text_tokens + tok.image_tokens);
  t.equal(tok.tokens.length, tok.text_tokens + 2, 'one <|image_pad|> per image before expansion');
  t.equal(tok.images_dropped, 0);
  t.equal(tok.max_model_len, 32768);

  // The chat completion for the same messages reports the same prompt.
  const chat = await http(`${server.url}/v1/chat/completions`, 'POST', { model: MODEL, messages, max_tokens: 2 });
  const usage = (chat.json as { usage: { prompt_tokens: number; prompt_tokens_details: { image_tokens: number } } }).usage;
  t.equal(usage.prompt_tokens, tok.count);
  t.equal(usage.prompt_tokens_details.image_tokens, tok.image_tokens);
});

t.test('/metrics is Prometheus text with the uitars_* series, counting what was served', async (t) => {
  const before = (await http(`${server.url}/metrics`, 'GET')).text;
  const chat = await http(`${server.url}/v1/chat/completions`, 'POST', { model: MODEL, messages, max_tokens: 3 });
  t.equal(chat.status, 200);
  const usage = (chat.json as { usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { image_tokens: number } } }).usage;
  const res = await http(`${server.url}/metrics`, 'GET');
  t.equal(res.status, 200);
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const after = res.text;
  for (const name of [
    'uitars_queue_depth',
    'uitars_running_sequences',
    'uitars_decode_steps',
    'uitars_batched_decode_steps',
    'uitars_requests_total',
    'uitars_errors_total',
    'uitars_prompt_tokens_total',
    'uitars_image_tokens_total',
    'uitars_generation_tokens_total',
    'uitars_images_resized_total',
    'uitars_images_dropped_total',
    'uitars_time_to_first_token_seconds',
    'uitars_request_duration_seconds',
    'uitars_phase_seconds',
  ]) {
    t.match(after, new RegExp(`^# HELP ${name} .+$`, 'm'), `${name} has HELP`);
    t.match(after, new RegExp(`^# TYPE ${name} (gauge|counter|histogram)$`, 'm'), `${name} has TYPE`);
  }
  // A labelled series appears only once observed: absent before means 0.
  const delta = (name: string, labels = '') => metricValue(after, name, labels) - (before.includes(`\n${name}${labels} `) ? metricValue(before, name, labels) : 0);
  t.equal(delta('uitars_requests_total', '{status="200"}'), 1);
  t.equal(delta('uitars_prompt_tokens_total'), usage.prompt_tokens);
  t.equal(delta('uitars_image_tokens_total'), usage.prompt_tokens_details.image_tokens);
  t.equal(delta('uitars_generation_tokens_total'), usage.completion_tokens);
  t.equal(delta('uitars_images_resized_total'), 2);
  t.equal(delta('uitars_request_duration_seconds_count'), 1);
  for (const phase of ['image', 'template', 'queue', 'vision', 'prefill', 'decode']) {
    t.equal(delta('uitars_phase_seconds_count', `{phase="${phase}"}`), 1, `phase ${phase} observed`);
  }
  // uitars_requests_total counts the chat route's answers only, each once, streamed ones and errors too.
  const count = async (status: string) => metricValue((await http(`${server.url}/metrics`, 'GET')).text, 'uitars_requests_total', `{status="${status}"}`);
  const [ok0, bad0] = [await count('200'), await count('400').catch(() => 0)];
  t.equal((await http(`${server.url}/tokenize`, 'POST', { messages: [] })).status, 400);
  t.equal((await http(`${server.url}/v1/nope`, 'GET')).status, 404);
  t.equal((await http(`${server.url}/health`, 'GET')).status, 200);
  t.equal((await count('400').catch(() => 0)), bad0, 'other routes are not counted');
  t.equal((await http(`${server.url}/v1/chat/completions`, 'POST', { model: MODEL, messages: [] })).status, 400);
  t.equal((await http(`${server.url}/v1/chat/completions`, 'POST', { model: MODEL, messages, max_tokens: 2, stream: true })).status, 200);
  t.same([await count('200'), await count('400')], [ok0 + 1, bad0 + 1], 'a streamed answer and a chat error count once each');
  for (const line of after.split('\n').filter((l) => l && !l.startsWith('#'))) {
    t.match(line, /^uitars_[a-z_]+(\{[^}]*\})? -?[\d.e+-]+$|^uitars_[a-z_]+(\{[^}]*\})? \+Inf$/, `a sample line: ${line}`);
  }
});

t.test('/openapi.json is an OpenAPI 3 document with the chat completions request schema', async (t) => {
  const res = await http(`${server.url}/openapi.json`, 'GET');
  t.equal(res.status, 200);
  const doc = res.json as {
    openapi: string;
    info: { title: string; version: string };
    paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: Record<string, unknown> }> }; responses: Record<string, unknown> }>>;
    components?: { schemas?: Record<string, unknown> };
  };
  t.match(doc.openapi, /^3\.\d+\.\d+$/);
  t.type(doc.info.title, 'string');
  t.type(doc.info.version, 'string');
  for (const p of ['/v1/chat/completions', '/v1/models', '/health', '/metrics', '/tokenize']) t.ok(doc.paths[p], `documents ${p}`);
  t.notOk(doc.paths['/openapi.json'], 'the document itself is hidden');
  const op = doc.paths['/v1/chat/completions']!.post!;
  t.ok(op.responses['200'] && op.responses['4XX'], 'documents the 200 answer and the error answers');
  const schema = op.requestBody!.content['application/json']!.schema as { required: string[]; properties: Record<string, unknown> };
  t.same([...schema.required].sort(), ['messages', 'model']);
  for (const field of ['model', 'messages', 'max_tokens', 'temperature', 'top_p', 'seed', 'stop', 'n', 'stream', 'logprobs', 'top_logprobs', 'frequency_penalty', 'mm_processor_kwargs']) {
    t.ok(schema.properties[field], `request schema has ${field}`);
  }
  // Every $ref points into the document.
  const refs = [...res.text.matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]!);
  for (const ref of refs) {
    t.match(ref, /^#\/components\/schemas\//);
    t.ok(doc.components?.schemas?.[ref.split('/').pop()!], `${ref} resolves`);
  }
  // The request schema is a working JSON schema: a good request passes, a bad one fails.
  const ajv = new Ajv.default({ strict: false });
  const validate = ajv.compile(schema);
  t.ok(validate({ model: MODEL, messages: [{ role: 'user', content: [imagePart('data:image/png;base64,AAAA'), { type: 'text', text: 'x' }] }], max_tokens: 5 }), 'a good request validates');
  t.notOk(validate({ model: MODEL, messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }), 'a bad one does not');
  t.notOk(validate({ model: MODEL }), 'nor one without messages');

  const docs = await http(`${server.url}/docs/`, 'GET');
  t.equal(docs.status, 200, 'the Swagger UI is served');
  t.match(docs.headers['content-type'], /text\/html/);
});
