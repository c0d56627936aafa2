/**
 * Errors as OpenAI (and vLLM) return them: {"error": {"message", "type", "param", "code"}}
 * with the HTTP status. Every failure the API can report is an ApiError; anything else is a
 * server fault, answered 500 without internals.
 */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null): ApiError =>
  new ApiError(400, message, 'invalid_request_error', code, param);

export const modelNotFound = (model: string): ApiError =>
  new ApiError(404, `The model \`${clip(model)}\` does not exist.`, 'NotFoundError', 'model_not_found', 'model');

/** Client text echoed in a message: at most 200 characters, on one line. */
export function clip(text: string, max = 200): string {
  const line = text.replace(/[\r\n\t]+/g, ' ');
  return line.length > max ? `${line.slice(0, max)}...(${line.length} characters)` : line;
}

export const contextLengthExceeded = (message: string): ApiError =>
  new ApiError(400, message, 'invalid_request_error', 'context_length_exceeded', 'messages');

export const overloaded = (retryAfterSeconds: number): ApiError =>
  new ApiError(429, 'The server is at capacity; retry later.', 'rate_limit_error', 'server_busy', null, {
    'retry-after': String(retryAfterSeconds),
  });

export const notReady = (message: string): ApiError => new ApiError(503, message, 'service_unavailable', 'model_not_ready');

/** 503 while the model loads, or for good once it failed to load (then with the reason, for the operator). */
export const modelNotReady = (loadError: string | null): ApiError =>
  notReady(loadError ? `the model failed to load: ${loadError}` : 'the model is still loading');

/** 401 when an API key is configured and the request does not carry it. */
export const unauthorized = (): ApiError =>
  new ApiError(401, 'missing or incorrect API key: send "Authorization: Bearer <key>"', 'invalid_request_error', 'invalid_api_key', null, {
    'www-authenticate': 'Bearer',
  });

export const serverError = (): ApiError => new ApiError(500, 'The server had an error while processing the request.', 'server_error', 'internal_error');
