/**
 * GET /v1/models (vLLM's shape, with max_model_len), GET /v1/models/{id} (OpenAI's retrieve) and
 * GET /health (503 until the model is loaded).
 */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { AppDeps } from '../app.ts';
import { modelNotFound, modelNotReady, notReady } from '../errors.ts';
import { ErrorResponseSchema } from '../schemas/errors.ts';

const ModelSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('model'),
  created: Type.Integer(),
  owned_by: Type.String(),
  root: Type.String(),
  max_model_len: Type.Integer(),
});

const ModelListSchema = Type.Object({ object: Type.Literal('list'), data: Type.Array(ModelSchema) });

export function modelRoutes(app: FastifyInstance, deps: AppDeps): void {
  const created = Math.floor(Date.now() / 1000);
  const card = () => ({
    id: deps.config.servedModelName,
    object: 'model' as const,
    created,
    owned_by: 'uitars-osworld',
    root: deps.modelPath,
    max_model_len: deps.serving()?.maxModelLen ?? 0,
  });
  app.get('/v1/models', { schema: { summary: 'The served model', response: { 200: ModelListSchema } } }, async () => ({ object: 'list' as const, data: [card()] }));
  // A wildcard, so a served name with a slash (org/model) is found whether or not the client encoded it.
  app.get<{ Params: { '*': string } }>(
    '/v1/models/*',
    { schema: { summary: 'One model by id (404 model_not_found for any other id)', response: { 200: ModelSchema, 404: ErrorResponseSchema } } },
    async (request) => {
      const raw = request.params['*'];
      let id = raw;
      try {
        id = decodeURIComponent(raw);
      } catch {
        // not percent-encoding: compare as sent
      }
      if (id !== deps.config.servedModelName) throw modelNotFound(id);
      return card();
    },
  );
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
