/** GET /v1/models (vLLM's shape, with max_model_len) and GET /health (503 until the model is loaded). */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../app.ts';
import { modelNotReady, notReady } from '../errors.ts';
import { ErrorResponseSchema } from '../schemas/errors.ts';

const ModelListSchema = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(
    Type.Object({
      id: Type.String(),
      object: Type.Literal('model'),
      created: Type.Integer(),
      owned_by: Type.String(),
      root: Type.String(),
      max_model_len: Type.Integer(),
    }),
  ),
});

export function modelRoutes(app: FastifyInstance, deps: AppDeps): void {
  const created = Math.floor(Date.now() / 1000);
  app.get('/v1/models', { schema: { summary: 'The served model', response: { 200: ModelListSchema } } }, async () => ({
    object: 'list' as const,
    data: [
      {
        id: deps.config.servedModelName,
        object: 'model' as const,
        created,
        owned_by: 'uitars-osworld',
        root: deps.modelPath,
        max_model_len: deps.serving()?.maxModelLen ?? 0,
      },
    ],
  }));
  app.get('/health', { schema: { summary: '200 when the model is loaded, 503 before', response: { 503: ErrorResponseSchema } } }, async () => {
    if (!deps.serving()) throw modelNotReady(deps.engine.loadError);
    if (deps.engine.loadError) throw notReady('the engine stopped; restart the server');
    return {};
  });
  app.get('/metrics', { schema: { summary: 'Prometheus metrics', hide: false } }, async (_req, reply) => {
    reply.header('content-type', deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
}
