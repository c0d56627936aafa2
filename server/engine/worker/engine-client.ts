/**
 * The HTTP thread's handle on the engine worker: admission (a bounded number of requests in
 * flight), one event stream per request, cancellation, the latest stats, and a bounded drain
 * at shutdown.
 */
import { Worker } from 'node:worker_threads';
import type { ModelOptions } from '../../model/load-model.ts';
import { applyOrtEnvironment } from '../../model/runtime/ort-environment.ts';
import { AsyncChannel } from '../async-channel.ts';
import { EMPTY_STATS, type EngineStats } from '../engine.ts';
import type { EngineEvent, EngineRequest } from '../request.ts';
import type { FromWorker, ModelInfo, ToWorker, WorkerInit } from './protocol.ts';

/** The queue is full: the HTTP layer answers 429 with Retry-After. */
export class EngineBusyError extends Error {
  constructor(readonly retryAfterSeconds: number) {
    super('the server is at capacity; retry later');
  }
}

export interface EngineClientOptions {
  /** Requests that may wait for a free sequence slot, beyond those running. */
  maxQueued: number;
}

export class EngineClient {
  private readonly worker: Worker;
  /** Requests in flight: their event stream, completions still running, start time. */
  private readonly streams = new Map<number, { channel: AsyncChannel<EngineEvent>; open: number; started: number }>();
  private nextId = 1;
  private recentSeconds: number[] = [];
  info: ModelInfo | null = null;
  loadError: string | null = null;
  stats: EngineStats = { ...EMPTY_STATS };
  readonly ready: Promise<ModelInfo>;
  /** Settles when the worker thread ends; it ends on its own when the model fails to load. */
  private readonly exited: Promise<void>;

  constructor(checkpointDir: string, modelOptions: ModelOptions, private readonly options: EngineClientOptions) {
    const init: WorkerInit = { checkpointDir, options: modelOptions };
    // The worker is TypeScript like the rest of the project. Node 20 does not apply the loader
    // hooks to a worker's entry file, so a two-line bootstrap registers tsx, then imports it.
    const entry = new URL('./engine-worker.ts', import.meta.url).href;
    const tsxApi = import.meta.resolve('tsx/esm/api');
    const bootstrap = `import(${JSON.stringify(tsxApi)}).then((api) => { api.register(); return import(${JSON.stringify(entry)}); });`;
    applyOrtEnvironment(); // before the worker starts: its process.env is a copy ONNX Runtime does not read
    this.worker = new Worker(bootstrap, { eval: true, workerData: init });
    // Listened for from the start: a worker whose load failed has exited long before shutdown().
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.ready = new Promise((resolve, reject) => {
      this.worker.on('message', (msg: FromWorker) => {
        if (msg.type === 'ready') {
          this.info = msg.info;
          resolve(msg.info);
        } else if (msg.type === 'load-error') {
          this.loadError = msg.message;
          reject(new Error(msg.message));
        } else if (msg.type === 'stats') {
          this.stats = msg.stats;
        } else {
          this.deliver(msg.id, msg.event);
        }
      });
      this.worker.on('error', (err) => {
        this.loadError ??= err.message;
        reject(err);
        this.failAll(`engine worker failed: ${err.message}`);
      });
      this.worker.on('exit', () => this.failAll('engine worker exited'));
    });
    this.ready.catch(() => {}); // observed through loadError / health
  }

  get inflight(): number {
    return this.streams.size;
  }

  /** Starts a request; throws EngineBusyError when the queue is full. */
  generate(request: EngineRequest): AsyncIterable<EngineEvent> {
    if (!this.info) throw new Error('the model is not loaded yet');
    if (this.streams.size >= this.info.slots + this.options.maxQueued) throw new EngineBusyError(this.retryAfter());
    const id = this.nextId++;
    const channel = new AsyncChannel<EngineEvent>();
    this.streams.set(id, { channel, open: request.n ?? 1, started: performance.now() });
    const { signal, ...rest } = request;
    if (signal) {
      if (signal.aborted) this.post({ type: 'abort', id });
      else signal.addEventListener('abort', () => this.post({ type: 'abort', id }), { once: true });
    }
    this.post({ type: 'generate', id, request: rest });
    return channel;
  }

  private deliver(id: number, event: EngineEvent): void {
    const entry = this.streams.get(id);
    if (!entry) return;
    entry.channel.push(event);
    if (event.type === 'done' && --entry.open === 0) {
      this.streams.delete(id);
      this.recentSeconds = [...this.recentSeconds.slice(-19), (performance.now() - entry.started) / 1000];
      entry.channel.close();
    }
  }

  private failAll(message: string): void {
    for (const [id, { channel }] of this.streams) {
      channel.push({
        type: 'done',
        index: 0,
        finishReason: 'error',
        error: message,
        finalText: '',
        text: '',
        promptTokens: 0,
        imageTokens: 0,
        cachedTokens: 0,
        completionTokens: 0,
        timing: { queuedMs: 0, visionMs: 0, prefillMs: 0, decodeMs: 0, firstTokenMs: 0 },
      });
      channel.close();
      this.streams.delete(id);
    }
  }

  /** Seconds a client should wait before retrying: about one recent request's duration. */
  private retryAfter(): number {
    if (this.recentSeconds.length === 0) return 1;
    const mean = this.recentSeconds.reduce((a, b) => a + b, 0) / this.recentSeconds.length;
    return Math.min(60, Math.max(1, Math.ceil(mean)));
  }

  private post(msg: ToWorker): void {
    this.worker.postMessage(msg);
  }

  /** Lets running requests finish for up to `timeoutMs`, then stops the worker. */
  async shutdown(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.streams.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const id of this.streams.keys()) this.post({ type: 'abort', id });
    if (this.info) this.post({ type: 'shutdown' });
    const timer = setTimeout(() => void this.worker.terminate(), Math.max(1000, deadline - Date.now()));
    if (!this.info) await this.worker.terminate();
    await this.exited;
    clearTimeout(timer);
  }
}
