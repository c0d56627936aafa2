/**
 * Chat completions against one or more OpenAI-compatible endpoints (our server, vLLM, ...).
 * With several (a ModelPool shared by the process's clients), each call goes to the least busy
 * server that is up, and a call that fails on one server (connection refused or reset, timeout,
 * 429, 5xx) is sent at once to another that is up; the failed server is skipped for a while
 * (model-pool.ts). When no other server is up, the call is retried with exponential backoff,
 * honouring Retry-After: `retries` rounds after the first. When they run out the call fails with
 * ModelUnavailableError, which the runner records as an infrastructure error, never as a task
 * score. A 4xx other than 429 is the request's fault: ModelRequestError (no other server tried).
 */
import { Agent, request } from 'undici';
import { ModelPool, type ModelServer } from './model-pool.ts';
import { MAX_TIMER_MS } from '../common/timers.ts';

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
  /** One endpoint, e.g. http://127.0.0.1:9000/v1 (ignored when `pool` is given). */
  baseUrl?: string;
  /** Several endpoints, shared with the process's other clients (in-flight counts, servers marked down). */
  pool?: ModelPool;
  model: string;
  retries: number;
  timeoutMs: number;
  /** First backoff; doubles each retry. */
  backoffMs: number;
  apiKey?: string;
  /** Called after each successful response with the sampling fields actually sent and the server's extras. */
  observer?: (info: ResponseInfo) => void;
  /** Called before each backoff wait (server unreachable, 429, 5xx). */
  onRetry?: (info: RetryInfo) => void;
  /** Called when a failed call goes on at once to another server (several endpoints). */
  onFailover?: (info: FailoverInfo) => void;
}

export interface RetryInfo {
  /** 1 for the first retry */
  retry: number;
  of: number;
  waitMs: number;
  error: string;
  /** The server of the last failed try. */
  url: string;
}

export interface FailoverInfo {
  from: string;
  error: string;
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
  /** Of the successful request (backoff waits not included). */
  latencyMs: number;
  /** Retries this call needed (server unreachable, 429, 5xx), the backoff they waited, the last error. */
  retries: number;
  retryWaitMs: number;
  retryError?: string;
  /** The server that answered. */
  server: string;
}

const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 64 });

/** A try that failed because of the server: try another one, or back off. */
class ServerFailure extends Error {
  constructor(
    message: string,
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

export class ModelClient {
  readonly pool: ModelPool;
  /** The server of this client's last call (preferred on a tie: its prefix cache has the conversation). */
  private lastUrl: string | undefined;

  constructor(readonly options: ModelClientOptions) {
    if (options.pool) this.pool = options.pool;
    else if (options.baseUrl) this.pool = new ModelPool({ urls: [options.baseUrl], downMs: 0 });
    else throw new Error('ModelClient needs baseUrl or pool');
  }

  async chat(messages: unknown[], sampling: SamplingOptions): Promise<Completion> {
    const { model, retries, backoffMs } = this.options;
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
    let lastUrl = '';
    let waited = 0;
    let failedTries = 0;
    for (let round = 0; round <= retries; round++) {
      let waitMs = backoffMs * 2 ** round;
      const tried = new Set<ModelServer>();
      for (;;) {
        const server = this.pool.pick(this.lastUrl, tried);
        if (!server) break;
        tried.add(server);
        try {
          const done = await this.once(server, body, sent);
          this.lastUrl = server.url;
          return {
            ...done,
            retries: failedTries,
            retryWaitMs: waited,
            ...(failedTries > 0 ? { retryError: lastError } : {}),
            server: server.url,
          };
        } catch (err) {
          if (!(err instanceof ServerFailure)) throw err;
          lastError = err.message;
          lastUrl = server.url;
          failedTries++;
          if (err.retryAfterMs) waitMs = Math.max(waitMs, err.retryAfterMs);
        }
        if (!this.pool.hasOtherUp(tried)) break;
        this.options.onFailover?.({ from: lastUrl, error: lastError });
      }
      if (round < retries) {
        this.options.onRetry?.({ retry: round + 1, of: retries, waitMs, error: lastError, url: lastUrl });
        // Doubling (or a huge Retry-After) past setTimeout's limit would fire at once.
        waitMs = Math.min(waitMs, MAX_TIMER_MS);
        await new Promise((r) => setTimeout(r, waitMs));
        waited += waitMs;
      }
    }
    const urls = this.pool.urls;
    throw new ModelUnavailableError(
      urls.length === 1
        ? `model server ${urls[0]} unavailable after ${retries + 1} attempts: ${lastError}`
        : `model servers ${urls.join(', ')} unavailable after ${retries + 1} rounds (${failedTries} tries): ${lastUrl}: ${lastError}`,
    );
  }

  /** One try on one server: the completion, ModelRequestError (4xx), or ServerFailure. */
  private async once(server: ModelServer, body: string, sent: Record<string, unknown>): Promise<Omit<Completion, 'retries' | 'retryWaitMs' | 'retryError' | 'server'>> {
    const { timeoutMs, apiKey } = this.options;
    const started = performance.now();
    this.pool.begin(server);
    let settled = false;
    const fail = (message: string, retryAfterMs = 0): ServerFailure => {
      if (!settled) this.pool.failed(server, message, retryAfterMs);
      settled = true;
      return new ServerFailure(message, retryAfterMs);
    };
    const ok = (): void => {
      if (!settled) this.pool.succeeded(server);
      settled = true;
    };
    try {
      const res = await request(`${server.url}/chat/completions`, {
        method: 'POST',
        dispatcher,
        headers: { 'content-type': 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}) },
        body,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const text = await res.body.text();
      if (res.statusCode === 200) {
        let json: {
          choices: { message: { content: string | null }; finish_reason: string }[];
          usage?: { prompt_tokens: number; completion_tokens: number };
          images?: unknown;
        };
        try {
          json = JSON.parse(text) as typeof json;
        } catch (err) {
          throw fail(`HTTP 200 with a body that is not JSON (${(err as Error).message})`);
        }
        ok();
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
      const error = `HTTP ${res.statusCode}: ${errorMessage(text)}`;
      if (res.statusCode === 429 || res.statusCode >= 500) {
        const retryAfter = Number(res.headers['retry-after']);
        throw fail(error, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : 0);
      }
      ok(); // the server answered: the request is at fault
      throw new ModelRequestError(error, res.statusCode);
    } catch (err) {
      if (err instanceof ServerFailure || err instanceof ModelRequestError || settled) throw err;
      throw fail(err instanceof Error ? err.message : String(err));
    }
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
