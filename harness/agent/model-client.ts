/**
 * Chat completions against one or more OpenAI-compatible endpoints (our server, vLLM, ...).
 * Transient failures (connection refused or reset, timeouts, 429, 5xx) are retried with
 * exponential backoff, honouring Retry-After; when an endpoint stays unreachable the call
 * fails with ModelUnavailableError, which the runner records as an infrastructure error,
 * never as a task score. A 4xx other than 429 is the request's fault: ModelRequestError.
 */
import { Agent, request } from 'undici';

export class ModelUnavailableError extends Error {}
export class ModelRequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface SamplingOptions {
  temperature: number;
  topP?: number;
  maxTokens: number;
  frequencyPenalty?: number;
  seed?: number;
}

export interface ModelClientOptions {
  baseUrl: string; // e.g. http://127.0.0.1:9000/v1
  model: string;
  retries: number;
  timeoutMs: number;
  /** First backoff; doubles each retry. */
  backoffMs: number;
  apiKey?: string;
  /** Called after each successful response with the sampling fields actually sent and the server's extras. */
  observer?: (info: ResponseInfo) => void;
}

export interface ResponseInfo {
  /** The request body without messages (model and sampling fields as sent). */
  sent: Record<string, unknown>;
  /** Our server's per-image report ({original, resized, tokens}[]), when the server gives one. */
  images?: unknown;
}

export interface Completion {
  content: string;
  finishReason: string;
  promptTokens: number;
  completionTokens: number;
  latencyMs: number;
}

const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 64 });

export class ModelClient {
  constructor(readonly options: ModelClientOptions) {}

  async chat(messages: unknown[], sampling: SamplingOptions): Promise<Completion> {
    const { baseUrl, model, retries, timeoutMs, backoffMs, apiKey } = this.options;
    const sent = {
      model,
      temperature: sampling.temperature,
      max_tokens: sampling.maxTokens,
      ...(sampling.topP !== undefined ? { top_p: sampling.topP } : {}),
      ...(sampling.frequencyPenalty !== undefined ? { frequency_penalty: sampling.frequencyPenalty } : {}),
      ...(sampling.seed !== undefined ? { seed: sampling.seed } : {}),
    };
    const body = JSON.stringify({ ...sent, messages });
    let lastError = '';
    for (let attempt = 0; attempt <= retries; attempt++) {
      const started = performance.now();
      let waitMs = backoffMs * 2 ** attempt;
      try {
        const res = await request(`${baseUrl.replace(/\/$/, '')}/chat/completions`, {
          method: 'POST',
          dispatcher,
          headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
          body,
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
        const text = await res.body.text();
        if (res.statusCode === 200) {
          const json = JSON.parse(text) as {
            choices: { message: { content: string | null }; finish_reason: string }[];
            usage?: { prompt_tokens: number; completion_tokens: number };
            images?: unknown;
          };
          const choice = json.choices[0];
          if (!choice) throw new ModelRequestError('response without choices', 200);
          this.options.observer?.({ sent, ...(json.images !== undefined ? { images: json.images } : {}) });
          return {
            content: choice.message.content ?? '',
            finishReason: choice.finish_reason,
            promptTokens: json.usage?.prompt_tokens ?? 0,
            completionTokens: json.usage?.completion_tokens ?? 0,
            latencyMs: performance.now() - started,
          };
        }
        lastError = `HTTP ${res.statusCode}: ${errorMessage(text)}`;
        if (res.statusCode === 429 || res.statusCode >= 500) {
          const retryAfter = Number(res.headers['retry-after']);
          if (Number.isFinite(retryAfter) && retryAfter > 0) waitMs = Math.max(waitMs, retryAfter * 1000);
        } else {
          throw new ModelRequestError(lastError, res.statusCode);
        }
      } catch (err) {
        if (err instanceof ModelRequestError) throw err;
        lastError = err instanceof Error ? err.message : String(err);
      }
      if (attempt < retries) await new Promise((r) => setTimeout(r, waitMs));
    }
    throw new ModelUnavailableError(`model server ${baseUrl} unavailable after ${retries + 1} attempts: ${lastError}`);
  }
}

function errorMessage(body: string): string {
  try {
    const j = JSON.parse(body) as { error?: { message?: string } };
    return j.error?.message ?? body.slice(0, 200);
  } catch {
    return body.slice(0, 200);
  }
}
