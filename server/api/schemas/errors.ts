/** OpenAI's error body, for the OpenAPI document (server/api/errors.ts builds it). */
import { Type } from 'typebox';

export const ErrorResponseSchema = Type.Object({
  error: Type.Object({
    message: Type.String(),
    type: Type.String(),
    param: Type.Union([Type.String(), Type.Null()]),
    code: Type.Union([Type.String(), Type.Null()]),
  }),
});
