/**
 * POST /v1/chat/completions: validate (schema), prepare (images, template, caps), hand the
 * request to the engine, answer with one JSON body or an SSE stream ending in `data: [DONE]`.
 * A client that disconnects aborts its request, which frees its sequence slot at once.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { prepareChat, type PreparedChat } from '../../chat/prepare-request.ts';
import { EngineBusyError } from '../../engine/worker/engine-client.ts';
import type { DoneEvent, EngineEvent, TokenEvent } from '../../engine/request.ts';
import { serverLimits } from '../admission.ts';
import type { AppDeps } from '../app.ts';
import { ApiError, invalidRequest, modelNotFound, modelNotReady, notReady, overloaded, serverError } from '../errors.ts';
import {
  ChatCompletionRequestSchema,
  ChatCompletionResponseSchema,
  type ChatCompletionRequest,
  type ChatCompletionResponse,
  type ChoiceLogprobs,
  type Usage,
} from '../schemas/chat-completions.ts';
import { ErrorResponseSchema } from '../schemas/errors.ts';

export function chatCompletionsRoute(app: FastifyInstance, deps: AppDeps): void {
  app.post<{ Body: ChatCompletionRequest }>(
    '/v1/chat/completions',
    {
      schema: {
        summary: 'Chat completion (OpenAI-compatible; text and image inputs)',
        body: ChatCompletionRequestSchema,
        response: { 200: ChatCompletionResponseSchema, '4xx': ErrorResponseSchema, '5xx': ErrorResponseSchema },
      },
    },
    (request, reply) => handle(deps, request, reply),
  );
}

async function handle(deps: AppDeps, request: FastifyRequest<{ Body: ChatCompletionRequest }>, reply: FastifyReply): Promise<unknown> {
  const body = request.body;
  const started = performance.now();
  if (body.model !== deps.config.servedModelName) throw modelNotFound(body.model);
  const ctx = deps.serving();
  if (!ctx) throw modelNotReady(deps.engine.loadError);
  // The engine worker died after loading (its error is kept as loadError): 503, not a hang.
  if (deps.engine.loadError) throw notReady('the engine stopped; restart the server');
  checkParameters(deps, body);

  const controller = new AbortController();
  deps.requests?.add(controller);
  reply.raw.on('close', () => {
    deps.requests?.delete(controller);
    if (!reply.raw.writableFinished) controller.abort();
  });
  const prepared = await prepareChat(ctx, body, controller.signal, serverLimits(deps).decodeImages);
  const m = deps.metrics;
  m.imagesResized.inc(prepared.images.length);
  m.imagesDropped.inc(prepared.imagesDropped);
  m.phaseSeconds.observe({ phase: 'image' }, prepared.timing.imageMs / 1000);
  m.phaseSeconds.observe({ phase: 'template' }, prepared.timing.templateMs / 1000);

  // A request still preparing when shutdown began does not start in the engine.
  if (deps.closing?.()) throw shuttingDown();
  let events: AsyncIterable<EngineEvent>;
  try {
    events = deps.engine.generate(prepared.engineRequest);
  } catch (err) {
    if (err instanceof EngineBusyError) throw overloaded(err.retryAfterSeconds);
    throw err;
  }
  const meta: ResponseMeta = {
    id: `chatcmpl-${randomUUID().replace(/-/g, '')}`,
    created: Math.floor(Date.now() / 1000),
    model: deps.config.servedModelName,
    prepared,
    started,
  };
  reply.header('x-images-dropped', String(prepared.imagesDropped));
  if (body.stream) return stream(deps, request, reply, events, meta, body.stream_options?.include_usage ?? false);

  const choices = new Map<number, { text: string; logprobs: ChoiceLogprobs['content']; done?: DoneEvent }>();
  const choice = (i: number) => choices.get(i) ?? choices.set(i, { text: '', logprobs: [] }).get(i)!;
  for await (const ev of events) {
    const c = choice(ev.index);
    if (ev.type === 'token') {
      if (body.logprobs) c.logprobs.push(tokenLogprob(deps, ev));
    } else {
      c.done = ev;
      c.text = ev.text;
    }
  }
  const done = [...choices.values()].map((c) => c.done!);
  const failure = done.find((d) => d.finishReason === 'error' || d.finishReason === 'abort');
  // The client is gone (499, nginx's "client closed request"); nobody reads this answer.
  if (failure?.finishReason === 'abort') {
    // Aborted with the client still connected: the server stopped it (shutdown past --drain-seconds).
    if (!controller.signal.aborted || deps.closing?.()) throw shuttingDown();
    observe(deps, request, meta, done, 'cancelled');
    return reply.code(499).send(new ApiError(499, 'client closed the request', 'invalid_request_error', 'client_closed').toBody());
  }
  if (failure) {
    // Stopped by the shutdown (the engine worker ended): a retryable 503, not a fault.
    if (deps.closing?.()) throw shuttingDown();
    request.log.error({ err: failure.error }, 'engine error');
    throw serverError();
  }
  observe(deps, request, meta, done);
  const response: ChatCompletionResponse = {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [...choices.entries()]
      .sort(([a], [b]) => a - b)
      .map(([index, c]) => ({
        index,
        message: { role: 'assistant' as const, content: c.text },
        logprobs: body.logprobs ? { content: c.logprobs } : null,
        finish_reason: c.done!.finishReason,
      })),
    usage: usage(meta.prepared, done),
    images: imageReport(meta.prepared),
    images_dropped: meta.prepared.imagesDropped,
  };
  return response;
}

/** Parameters that are each valid but cannot be served together (the engine would fail them). */
function checkParameters(deps: AppDeps, body: ChatCompletionRequest): void {
  const slots = deps.engine.info?.slots;
  const n = body.n ?? 1;
  if (slots !== undefined && n > slots) {
    throw invalidRequest(`n=${n} exceeds the ${slots} sequences this server decodes at once (--max-num-seqs)`, 'n');
  }
  if (body.stream_options && !body.stream) throw invalidRequest('stream_options is only allowed when stream is true', 'stream_options');
}

/** A request the server stopped because it is shutting down and --drain-seconds ran out. */
const shuttingDown = (): ApiError =>
  new ApiError(503, 'the server is shutting down and stopped this request; retry on another server or later', 'service_unavailable', 'server_shutting_down');

interface ResponseMeta {
  id: string;
  created: number;
  model: string;
  prepared: PreparedChat;
  started: number;
}

function usage(prepared: PreparedChat, done: DoneEvent[]): Usage {
  const completion = done.reduce((n, d) => n + d.completionTokens, 0);
  return {
    prompt_tokens: prepared.promptTokens,
    completion_tokens: completion,
    total_tokens: prepared.promptTokens + completion,
    prompt_tokens_details: { image_tokens: prepared.imageTokens, cached_tokens: done[0]?.cachedTokens ?? 0 },
  };
}

export function imageReport(prepared: PreparedChat): ChatCompletionResponse['images'] {
  return prepared.images.map((im) => ({
    original: [im.originalWidth, im.originalHeight],
    resized: [im.width, im.height],
    tokens: im.numImageTokens,
  }));
}

function tokenLogprob(deps: AppDeps, ev: TokenEvent): ChoiceLogprobs['content'][number] {
  const entry = (token: number, logprob: number) => {
    const text = deps.tokenText(token);
    return { token: text, logprob, bytes: [...Buffer.from(text, 'utf8')] };
  };
  return { ...entry(ev.token, ev.logprob), top_logprobs: ev.top.map((a) => entry(a.token, a.logprob)) };
}

/**
 * Metrics and the request's log line, once all completions are done, or once the engine has
 * stopped a request whose client went away (counted as status 499, nginx's "client closed
 * request", with the work done so far; latency histograms take completed requests only).
 */
function observe(deps: AppDeps, request: FastifyRequest, meta: ResponseMeta, done: DoneEvent[], outcome: 'completed' | 'cancelled' = 'completed'): void {
  const m = deps.metrics;
  const t = done[0]!.timing;
  const completion = done.reduce((n, d) => n + d.completionTokens, 0);
  m.promptTokens.inc(meta.prepared.promptTokens);
  m.imageTokens.inc(meta.prepared.imageTokens);
  m.generatedTokens.inc(completion);
  if (outcome === 'cancelled') {
    m.requests.inc({ status: '499' });
    m.errors.inc({ code: 'client_closed' });
  } else {
    // Preparation on this thread, then the engine's own enqueue-to-first-token time.
    const prepMs = meta.prepared.timing.imageMs + meta.prepared.timing.templateMs;
    m.timeToFirstToken.observe((prepMs + t.firstTokenMs) / 1000);
    m.requestSeconds.observe((performance.now() - meta.started) / 1000);
    for (const [phase, ms] of [['queue', t.queuedMs], ['vision', t.visionMs], ['prefill', t.prefillMs], ['decode', t.decodeMs]] as const) {
      m.phaseSeconds.observe({ phase }, ms / 1000);
    }
  }
  request.log.info(
    {
      completion_id: meta.id,
      prompt_tokens: meta.prepared.promptTokens,
      image_tokens: meta.prepared.imageTokens,
      cached_tokens: done[0]!.cachedTokens,
      images_dropped: meta.prepared.imagesDropped,
      completion_tokens: completion,
      finish_reasons: done.map((d) => d.finishReason),
      ms: {
        image: Math.round(meta.prepared.timing.imageMs),
        template: Math.round(meta.prepared.timing.templateMs),
        queue: Math.round(t.queuedMs),
        vision: Math.round(t.visionMs),
        prefill: Math.round(t.prefillMs),
        decode: Math.round(t.decodeMs),
        total: Math.round(performance.now() - meta.started),
      },
    },
    outcome === 'completed' ? 'chat completion' : 'chat completion cancelled: the client went away',
  );
}

/** Server-sent events: a role delta, content deltas, a finish chunk per choice, optional usage, [DONE]. */
async function stream(
  deps: AppDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  events: AsyncIterable<EngineEvent>,
  meta: ResponseMeta,
  includeUsage: boolean,
): Promise<FastifyReply> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
    'x-images-dropped': String(meta.prepared.imagesDropped),
  });
  const send = (data: unknown): void => {
    if (!res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
  };
  const chunk = (index: number, delta: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: meta.model,
    choices: [{ index, delta, logprobs: null, finish_reason: null, ...extra }],
  });
  const body = request.body as ChatCompletionRequest;
  const started = new Set<number>();
  const done: DoneEvent[] = [];
  for await (const ev of events) {
    if (!started.has(ev.index)) {
      started.add(ev.index);
      send(chunk(ev.index, { role: 'assistant', content: '' }));
    }
    if (ev.type === 'token') {
      if (ev.text || body.logprobs) {
        send(chunk(ev.index, { content: ev.text }, body.logprobs ? { logprobs: { content: [tokenLogprob(deps, ev)] } } : {}));
      }
    } else {
      done.push(ev);
      if (ev.finishReason === 'error') {
        if (deps.closing?.()) {
          send(shuttingDown().toBody());
          continue;
        }
        request.log.error({ err: ev.error }, 'engine error');
        send(serverError().toBody());
        continue;
      }
      if (ev.finishReason === 'abort') {
        // The client is gone (nothing to send), or the server stopped the request at shutdown.
        if (!res.destroyed) send(shuttingDown().toBody());
        continue;
      }
      send(chunk(ev.index, ev.finalText ? { content: ev.finalText } : {}, { finish_reason: ev.finishReason }));
    }
  }
  if (done.every((d) => d.finishReason !== 'error' && d.finishReason !== 'abort')) {
    observe(deps, request, meta, done);
    if (includeUsage) {
      send({ id: meta.id, object: 'chat.completion.chunk', created: meta.created, model: meta.model, choices: [], usage: usage(meta.prepared, done) });
    }
  } else if (res.destroyed && !deps.closing?.() && done.some((d) => d.finishReason === 'abort')) {
    observe(deps, request, meta, done, 'cancelled');
  }
  if (!res.destroyed) res.end('data: [DONE]\n\n');
  return reply;
}
