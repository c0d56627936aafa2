/**
 * The wire format of POST /v1/chat/completions, as vLLM's OpenAI server accepts it. One schema
 * gives ajv validation, the TypeScript request type and the OpenAPI document. Fields OpenAI
 * does not define (vLLM's extras and ours) carry a description. Unknown fields are ignored,
 * as vLLM ignores them; a known field with the wrong type is a 400.
 */
import { Type, type Static } from 'typebox';

export const TextPartSchema = Type.Object({ type: Type.Literal('text'), text: Type.String() });
export const ImageUrlPartSchema = Type.Object({
  type: Type.Literal('image_url'),
  image_url: Type.Object({
    url: Type.String({ description: 'a data URL: data:image/png|jpeg|webp;base64,... (or an http(s) URL on a host the server allows with --allowed-image-hosts)' }),
    detail: Type.Optional(Type.String()),
  }),
});
export const ContentPartSchema = Type.Union([TextPartSchema, ImageUrlPartSchema]);

export const MessageSchema = Type.Object({
  role: Type.Union([Type.Literal('system'), Type.Literal('user'), Type.Literal('assistant')]),
  content: Type.Union([Type.String(), Type.Array(ContentPartSchema), Type.Null()]),
  name: Type.Optional(Type.String()),
});

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Optional(Type.Union([t, Type.Null()]));

export const ChatCompletionRequestSchema = Type.Object(
  {
    model: Type.String(),
    messages: Type.Array(MessageSchema, { minItems: 1 }),
    max_tokens: Nullable(Type.Integer({ minimum: 1 })),
    max_completion_tokens: Nullable(Type.Integer({ minimum: 1 })),
    temperature: Nullable(Type.Number({ minimum: 0 })),
    top_p: Nullable(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
    top_k: Nullable(Type.Integer({ minimum: -1, description: 'vLLM: keep the k most likely tokens (-1 or 0: off)' })),
    min_p: Nullable(Type.Number({ minimum: 0, maximum: 1, description: 'vLLM: drop tokens below min_p times the top probability' })),
    frequency_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
    presence_penalty: Nullable(Type.Number({ minimum: -2, maximum: 2 })),
    repetition_penalty: Nullable(Type.Number({ exclusiveMinimum: 0, description: 'vLLM: >1 discourages tokens of the prompt and output' })),
    seed: Nullable(Type.Integer()),
    stop: Nullable(Type.Union([Type.String(), Type.Array(Type.String(), { maxItems: 16 })])),
    n: Nullable(Type.Integer({ minimum: 1, maximum: 16 })),
    stream: Nullable(Type.Boolean()),
    stream_options: Nullable(Type.Object({ include_usage: Type.Optional(Type.Boolean()) })),
    logprobs: Nullable(Type.Boolean()),
    top_logprobs: Nullable(Type.Integer({ minimum: 0, maximum: 20 })),
    skip_special_tokens: Type.Optional(
      Type.Boolean({ description: "vLLM: drop special tokens (<|box_start|>, ...) from the text; default true, which UI-TARS clients rely on" }),
    ),
    user: Nullable(Type.String()),
    mm_processor_kwargs: Type.Optional(
      Type.Object(
        {
          min_pixels: Type.Optional(Type.Integer({ minimum: 784 })),
          max_pixels: Type.Optional(Type.Integer({ minimum: 784 })),
          size: Type.Optional(
            Type.String({ pattern: '^(smart|[0-9]+x[0-9]+)$', description: 'ours: "smart" or a fixed box WIDTHxHEIGHT such as 800x450' }),
          ),
        },
        { description: "vLLM: per-request image processor options (smart_resize pixel bounds); overrides the server's image policy" },
      ),
    ),
  },
  { additionalProperties: true },
);
export type ChatCompletionRequest = Static<typeof ChatCompletionRequestSchema>;
export type ChatMessage = Static<typeof MessageSchema>;

const TopLogprobSchema = Type.Object({ token: Type.String(), logprob: Type.Number(), bytes: Type.Array(Type.Integer()) });
const TokenLogprobSchema = Type.Object({
  token: Type.String(),
  logprob: Type.Number(),
  bytes: Type.Array(Type.Integer()),
  top_logprobs: Type.Array(TopLogprobSchema),
});
export const LogprobsSchema = Type.Object({ content: Type.Array(TokenLogprobSchema) });
export type ChoiceLogprobs = Static<typeof LogprobsSchema>;

export const UsageSchema = Type.Object({
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  total_tokens: Type.Integer(),
  prompt_tokens_details: Type.Object({ image_tokens: Type.Integer(), cached_tokens: Type.Integer() }),
});
export type Usage = Static<typeof UsageSchema>;

export const ImageReportSchema = Type.Object(
  {
    original: Type.Array(Type.Integer(), { description: '[width, height] as sent' }),
    resized: Type.Array(Type.Integer(), { description: '[width, height] the model saw' }),
    tokens: Type.Integer(),
  },
  { description: 'ours: each image the model saw, in prompt order' },
);

export const ChatCompletionResponseSchema = Type.Object({
  id: Type.String(),
  object: Type.Literal('chat.completion'),
  created: Type.Integer(),
  model: Type.String(),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      message: Type.Object({ role: Type.Literal('assistant'), content: Type.String() }),
      logprobs: Type.Union([LogprobsSchema, Type.Null()]),
      finish_reason: Type.String(),
    }),
  ),
  usage: UsageSchema,
  images: Type.Array(ImageReportSchema),
  images_dropped: Type.Integer({ description: 'ours: images removed by the token cap (oldest first); also the x-images-dropped header' }),
});
export type ChatCompletionResponse = Static<typeof ChatCompletionResponseSchema>;
