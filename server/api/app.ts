/**
 * The Fastify application: schemas validate with ajv (no type coercion: a wrong type is a 400),
 * every error leaves as OpenAI's error JSON, and the OpenAPI document comes from the same
 * schemas. One app per port; all of them share one engine.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import type { Socket } from 'node:net';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { ServerConfig } from '../config.ts';
import type { ServingContext } from '../chat/prepare-request.ts';
import type { EngineClient } from '../engine/worker/engine-client.ts';
import { serverLimits } from './admission.ts';
import { ApiError, clip, invalidRequest, overloaded, serverError, unauthorized } from './errors.ts';
import type { ServerMetrics } from './metrics.ts';
import { chatCompletionsRoute } from './routes/chat-completions.ts';
import { modelRoutes } from './routes/models.ts';
import { tokenizeRoute } from './routes/tokenize.ts';

export interface AppDeps {
  config: ServerConfig;
  modelPath: string;
  engine: Pick<EngineClient, 'generate' | 'info' | 'loadError' | 'stats'>;
  /** Everything prompt preparation needs, or null while the model loads. */
  serving: () => ServingContext | null;
  /** A token's own text, as logprobs report it. */
  tokenText: (id: number) => string;
  metrics: ServerMetrics;
  /** True once the server is shutting down: requests it cuts short are 503 server_shutting_down. */
  closing?: () => boolean;
  /** Chat requests in progress, aborted when the drain time at shutdown runs out. */
  requests?: Set<AbortController>;
}

export async function buildApp(deps: AppDeps, logger: FastifyServerOptions['logger'] = false): Promise<FastifyInstance> {
  const bodyLimit = Math.floor(deps.config.bodyLimitMiB * 1024 * 1024);
  const requestTimeoutMs = Math.round(deps.config.requestTimeoutSeconds * 1000);
  const app = Fastify({
    logger,
    bodyLimit,
    // Node's own clock for receiving a request: without it a client that sends headers and then
    // stalls would hold its admission place forever (Fastify's default is no limit).
    requestTimeout: requestTimeoutMs,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    clientErrorHandler,
    // Errors Fastify raises before routing (a malformed URL escape): OpenAI's shape too.
    frameworkErrors: (err, _request, reply) => {
      const known = FASTIFY_CODES[err.code];
      const apiError = new ApiError(400, known?.[1] ?? 'the request is invalid', 'invalid_request_error', known?.[0] ?? 'invalid_request');
      deps.metrics.errors.inc({ code: apiError.code ?? apiError.type });
      void (reply as FastifyReply).status(400).send(apiError.toBody());
    },
    // A request without Host is answered by the hook below, in OpenAI's shape, not by Node.
    // Node checks that clock every connectionsCheckingInterval (30 s by default), and uses the
    // larger of it and headersTimeout (60 s by default), so both are kept within it.
    http: {
      requireHostHeader: false,
      headersTimeout: Math.min(60_000, requestTimeoutMs),
      connectionsCheckingInterval: Math.min(30_000, Math.max(100, requestTimeoutMs / 4)),
    },
  });
  app.addHook('onRequest', async (request) => {
    if (request.raw.httpVersion === '1.1' && !request.headers.host) throw invalidRequest('an HTTP/1.1 request needs a Host header', null, 'invalid_http');
  });
  // JSON only: Fastify's default text/plain parser would hand the schema a string, answered
  // with a puzzling "body must be object"; without it a wrong content type is a clear 415.
  app.removeContentTypeParser('text/plain');
  // JSON is UTF-8 (RFC 8259): another declared charset is a 415, and bytes that are not UTF-8
  // are a 400 instead of being decoded into replacement characters and answered as if fine.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    // Bodies are never decompressed: a compressed body (or a decompression bomb) is refused as is.
    const encoding = request.headers['content-encoding']?.trim().toLowerCase();
    if (encoding && encoding !== 'identity') {
      done(new ApiError(415, `Content-Encoding ${clip(encoding, 40)} is not accepted; send the JSON uncompressed`, 'invalid_request_error', 'unsupported_content_encoding'), undefined);
      return;
    }
    const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(request.headers['content-type'] ?? '')?.[1]?.toLowerCase();
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      done(new ApiError(415, `send JSON as UTF-8 (charset ${clip(charset, 40)} is not accepted)`, 'invalid_request_error', 'unsupported_media_type'), undefined);
      return;
    }
    const bytes = body as Buffer;
    if (!isUtf8(bytes)) {
      done(invalidRequest('the request body is not valid UTF-8', null, 'invalid_utf8'), undefined);
      return;
    }
    parseJson(request, bytes.toString('utf8'), done);
  });

  // Optional API key: every route but the open ones needs "Authorization: Bearer <key>".
  // Checked before the body is read, so an unauthenticated client cannot make the server
  // parse a large body. The comparison is over fixed-length SHA-256 digests in constant time.
  const apiKey = deps.config.apiKey;
  if (apiKey) {
    const expected = createHash('sha256').update(apiKey, 'utf8').digest();
    app.addHook('onRequest', async (request) => {
      if (isOpenRoute(request)) return;
      const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(request.headers.authorization ?? '');
      const given = createHash('sha256').update(m?.[1] ?? '', 'utf8').digest();
      if (!(timingSafeEqual(given, expected) && m !== null)) throw unauthorized();
    });
  }

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const apiError = toApiError(err, bodyLimit);
    deps.metrics.errors.inc({ code: apiError.code ?? apiError.type });
    if (apiError.status >= 500 && apiError.status !== 503) request.log.error({ err }, 'request failed');
    void reply.status(apiError.status).headers(apiError.headers).send(apiError.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    // A known path with another method is 405 with Allow, as vLLM (FastAPI) answers.
    const path = request.url.split('?')[0]!;
    const allowed = ['GET', 'HEAD', 'POST'].filter((method) => app.hasRoute({ method, url: path }));
    if (allowed.length > 0) {
      const err = new ApiError(405, `${clip(request.method)} is not allowed on ${clip(path)}; use ${allowed.join(' or ')}`, 'invalid_request_error', 'method_not_allowed');
      void reply.status(405).header('allow', allowed.join(', ')).send(err.toBody());
      return;
    }
    void reply.status(404).send(new ApiError(404, `no route for ${request.method} ${clip(request.url)}`, 'NotFoundError', 'not_found').toBody());
  });
  // Admission: at most max-num-seqs + queue-size requests per route are inside the server;
  // one more is 429 before its body is read.
  const limits = serverLimits(deps);
  app.addHook('onRequest', async (request, reply) => {
    if (request.method !== 'POST') return;
    const route = request.routeOptions.url;
    const gate = route === '/v1/chat/completions' ? limits.chat : route === '/tokenize' ? limits.tokenize : null;
    if (!gate) return;
    if (!gate.tryEnter()) throw overloaded(gate.retryAfter());
    const started = performance.now();
    reply.raw.once('close', () => gate.leave(reply.raw.statusCode < 400 ? (performance.now() - started) / 1000 : undefined));
  });
  // Every answer of the chat route, errors included, counted once when it has been sent (a client
  // that goes away first is counted by the route itself, as 499).
  app.addHook('onResponse', async (request, reply) => {
    if (request.routeOptions.url === '/v1/chat/completions') deps.metrics.requests.inc({ status: String(reply.statusCode) });
  });

  await app.register(swagger, {
    openapi: {
      info: { title: 'uitars-osworld server', description: 'OpenAI-compatible API for UI-TARS (Qwen2-VL) on ONNX Runtime', version: '0.1.0' },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  chatCompletionsRoute(app, deps);
  modelRoutes(app, deps);
  tokenizeRoute(app, deps);
  return app;
}

/**
 * Routes that stay open when an API key is set: health and metrics (for load balancers and
 * Prometheus, which carry no secrets and reveal no prompts) and the API documentation. Matched
 * on the route the request was routed to, so no spelling of a URL reaches a model route.
 */
const OPEN_ROUTES: ReadonlySet<string> = new Set(['/health', '/metrics', '/openapi.json']);
function isOpenRoute(request: FastifyRequest): boolean {
  const route = request.routeOptions.url;
  if (route === undefined) return false; // no route: 404, which needs the key too
  return OPEN_ROUTES.has(route) || route === '/docs' || route.startsWith('/docs/');
}

interface ValidationIssue {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}

/**
 * One sentence for an ajv failure. A union (anyOf) reports every branch's complaint; the most
 * specific one (deepest path) is what the client got wrong, and several complaints at the same
 * place are merged ("must be one of system, user, assistant", "must be string or null").
 */
function describeValidation(issues: readonly ValidationIssue[], context: string): ApiError {
  const specific = issues.filter((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf');
  const pool = specific.length > 0 ? specific : issues;
  const depth = (e: ValidationIssue) => (e.instancePath === '' ? 0 : e.instancePath.split('/').length);
  const deepest = Math.max(...pool.map(depth));
  const here = pool.filter((e) => depth(e) === deepest);
  const first = here[0];
  let message: string;
  if (here.length > 1 && here.every((e) => e.keyword === 'const')) {
    message = `must be one of ${here.map((e) => JSON.stringify(e.params.allowedValue)).join(', ')}`;
  } else if (here.length > 1 && here.every((e) => e.keyword === 'type')) {
    message = `must be ${[...new Set(here.map((e) => String(e.params.type)))].join(' or ')}`;
  } else {
    message = [...new Set(here.map((e) => e.message ?? 'is invalid'))].join(', or ');
  }
  const where = paramOf(first?.instancePath ?? '', first?.keyword === 'required' ? first.params.missingProperty : undefined);
  return invalidRequest(`${context}${where ? `.${where}` : ''} ${message}`, where);
}

/** An ajv instance path as OpenAI writes a param (/messages/0/content -> messages[0].content), a missing property included. */
function paramOf(instancePath: string, missing: unknown): string | null {
  const parts = instancePath.split('/').slice(1);
  if (typeof missing === 'string') parts.push(missing);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  return out || null;
}

/** Fastify's own 4xx errors by code: OpenAI-style codes and messages without Fastify's internals. */
const FASTIFY_CODES: Readonly<Record<string, [string, string]>> = {
  FST_ERR_CTP_INVALID_JSON_BODY: ['invalid_json', 'the request body is not valid JSON (keys named __proto__ or constructor.prototype are refused too)'],
  FST_ERR_CTP_EMPTY_JSON_BODY: ['invalid_json', 'the request body is empty; send a JSON object'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ['invalid_content_length', 'the request body does not match its Content-Length'],
  FST_ERR_BAD_URL: ['invalid_url', 'the request URL is malformed'],
  // The client went away while its body was being read: nobody reads this answer.
  ECONNRESET: ['client_closed', 'the client closed the connection before the request was read'],
  ECONNABORTED: ['client_closed', 'the client closed the connection before the request was read'],
};

/** Fastify's own errors (validation, JSON parsing, body size) in OpenAI's shape; no internals leak. */
function toApiError(err: FastifyError, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  if (err.validation) return describeValidation(err.validation as ValidationIssue[], err.validationContext ?? 'body');
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new ApiError(
      413,
      `request body is larger than the server's limit of ${formatMiB(bodyLimit)} MiB (raise it with --max-body-mib or MAX_BODY_MIB)`,
      'invalid_request_error',
      'body_too_large',
    );
  }
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ApiError(415, 'send the request as application/json', 'invalid_request_error', 'unsupported_media_type');
  const status = err.statusCode ?? 500;
  const known = err.code ? FASTIFY_CODES[err.code] : undefined;
  if (known && status >= 400 && status < 500) return new ApiError(status, known[1], 'invalid_request_error', known[0]);
  if (status >= 400 && status < 500) return new ApiError(status, err.message.split('\n')[0]!, 'invalid_request_error', err.code ?? null);
  return serverError();
}

/**
 * HTTP that does not parse (a bad request line, headers over Node's size limit, a request that
 * never finishes): answered by Node's parser before any route, in OpenAI's error shape too.
 */
function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, message, code] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'the request headers are too large', 'headers_too_large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'the request was not received in time', 'request_timeout']
        : [400, 'Bad Request', 'the request is not valid HTTP', 'invalid_http'];
  const body = JSON.stringify(new ApiError(status, message, 'invalid_request_error', code).toBody());
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${reason}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}

/** 128 -> "128", 0.5 -> "0.5": fractional limits are allowed, so rounding would misstate them. */
function formatMiB(bytes: number): string {
  return String(Number((bytes / 1024 / 1024).toFixed(3)));
}
