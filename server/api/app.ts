/**
 * The Fastify application: schemas validate with ajv (no type coercion: a wrong type is a 400),
 * every error leaves as OpenAI's error JSON, and the OpenAPI document comes from the same
 * schemas. One app per port; all of them share one engine.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { ServerConfig } from '../config.ts';
import type { ServingContext } from '../chat/prepare-request.ts';
import type { EngineClient } from '../engine/worker/engine-client.ts';
import { ApiError, invalidRequest, serverError } from './errors.ts';
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
}

export async function buildApp(deps: AppDeps, logger: FastifyServerOptions['logger'] = false): Promise<FastifyInstance> {
  const bodyLimit = Math.floor(deps.config.bodyLimitMiB * 1024 * 1024);
  const app = Fastify({
    logger,
    bodyLimit,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
  });
  // JSON only: Fastify's default text/plain parser would hand the schema a string, answered
  // with a puzzling "body must be object"; without it a wrong content type is a clear 415.
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const apiError = toApiError(err, bodyLimit);
    deps.metrics.errors.inc({ code: apiError.code ?? apiError.type });
    deps.metrics.requests.inc({ status: String(apiError.status) });
    if (apiError.status >= 500 && apiError.status !== 503) request.log.error({ err }, 'request failed');
    void reply.status(apiError.status).headers(apiError.headers).send(apiError.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send(new ApiError(404, `no route for ${request.method} ${request.url}`, 'NotFoundError', 'not_found').toBody());
  });
  app.addHook('onResponse', async (request, reply) => {
    if (request.url.startsWith('/v1/chat/completions') && reply.statusCode < 400) deps.metrics.requests.inc({ status: String(reply.statusCode) });
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

/** Fastify's own errors (validation, JSON parsing, body size) in OpenAI's shape; no internals leak. */
function toApiError(err: FastifyError, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  if (err.validation) {
    const first = err.validation[0];
    const where = first?.instancePath ? first.instancePath.slice(1).replace(/\//g, '.') : null;
    return invalidRequest(`${err.validationContext ?? 'body'}${where ? `.${where}` : ''} ${first?.message ?? 'is invalid'}`, where);
  }
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
  if (status >= 400 && status < 500) return new ApiError(status, err.message.split('\n')[0]!, 'invalid_request_error', err.code ?? null);
  return serverError();
}

/** 128 -> "128", 0.5 -> "0.5": fractional limits are allowed, so rounding would misstate them. */
function formatMiB(bytes: number): string {
  return String(Number((bytes / 1024 / 1024).toFixed(3)));
}
