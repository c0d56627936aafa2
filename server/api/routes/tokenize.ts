/**
 * POST /tokenize (vLLM's route shape): the prompt the server would build for these messages,
 * counted: text tokens, image tokens per image (from the resized grid), and the total.
 */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { prepareChat } from '../../chat/prepare-request.ts';
import { serverLimits } from '../admission.ts';
import type { AppDeps } from '../app.ts';
import { imageReport } from './chat-completions.ts';
import { modelNotFound, modelNotReady } from '../errors.ts';
import { ChatCompletionRequestSchema, ImageReportSchema } from '../schemas/chat-completions.ts';
import { ErrorResponseSchema } from '../schemas/errors.ts';

const TokenizeRequestSchema = Type.Object(
  {
    model: Type.Optional(Type.String()),
    messages: ChatCompletionRequestSchema.properties.messages,
    mm_processor_kwargs: ChatCompletionRequestSchema.properties.mm_processor_kwargs,
  },
  { additionalProperties: true },
);

const TokenizeResponseSchema = Type.Object({
  count: Type.Integer({ description: 'prompt tokens, image tokens expanded' }),
  max_model_len: Type.Integer(),
  tokens: Type.Array(Type.Integer(), { description: 'the prompt ids with one <|image_pad|> per image (before expansion)' }),
  text_tokens: Type.Integer(),
  image_tokens: Type.Integer(),
  images: Type.Array(ImageReportSchema),
  images_dropped: Type.Integer(),
});

export function tokenizeRoute(app: FastifyInstance, deps: AppDeps): void {
  app.post<{ Body: Static<typeof TokenizeRequestSchema> }>(
    '/tokenize',
    { schema: { summary: 'Count the tokens of chat messages (text and images)', body: TokenizeRequestSchema, response: { 200: TokenizeResponseSchema, '4xx': ErrorResponseSchema } } },
    async (request) => {
      const body = request.body;
      if (body.model !== undefined && body.model !== deps.config.servedModelName) throw modelNotFound(body.model);
      const ctx = deps.serving();
      if (!ctx) throw modelNotReady(deps.engine.loadError);
      // Only what shapes the prompt: sampling fields a client copies from its chat request are not checked here.
      const prompt = { model: deps.config.servedModelName, messages: body.messages, ...(body.mm_processor_kwargs ? { mm_processor_kwargs: body.mm_processor_kwargs } : {}) };
      const prepared = await prepareChat(ctx, prompt, undefined, serverLimits(deps).decodeImages);
      return {
        count: prepared.promptTokens,
        max_model_len: ctx.maxModelLen,
        tokens: prepared.engineRequest.promptIds,
        text_tokens: prepared.promptTokens - prepared.imageTokens,
        image_tokens: prepared.imageTokens,
        images: imageReport(prepared),
        images_dropped: prepared.imagesDropped,
      };
    },
  );
}
