/**
 * Prometheus metrics (GET /metrics). Names follow Prometheus conventions: units in the name,
 * `_total` for counters. Engine gauges are read from the engine's latest stats at scrape time.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineStats } from '../engine/engine.ts';

const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 120, 300, 600];

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'status'>;
  readonly errors: Counter<'code'>;
  readonly promptTokens: Counter;
  readonly imageTokens: Counter;
  readonly generatedTokens: Counter;
  readonly imagesResized: Counter;
  readonly imagesDropped: Counter;
  readonly timeToFirstToken: Histogram;
  readonly requestSeconds: Histogram;
  readonly phaseSeconds: Histogram<'phase'>;

  constructor(stats: () => EngineStats) {
    const r = this.registry;
    const prefix = 'uitars_';
    new Gauge({ name: `${prefix}queue_depth`, help: 'Requests waiting for a sequence slot', registers: [r], collect() { this.set(stats().waiting); } });
    new Gauge({ name: `${prefix}running_sequences`, help: 'Sequences in the running batch', registers: [r], collect() { this.set(stats().running); } });
    new Gauge({ name: `${prefix}decode_steps`, help: 'Decode steps run since start', registers: [r], collect() { this.set(stats().decodeSteps); } });
    new Gauge({
      name: `${prefix}batched_decode_steps`,
      help: 'Decode steps that advanced more than one sequence',
      registers: [r],
      collect() {
        this.set(stats().batchedDecodeSteps);
      },
    });
    const fromStats = (name: string, help: string, read: (s: EngineStats) => number): void => {
      new Gauge({ name: `${prefix}${name}`, help, registers: [r], collect() { this.set(read(stats())); } });
    };
    fromStats('image_cache_hits', 'Images whose vision-encoder output came from the image cache', (s) => s.imageCacheHits);
    fromStats('image_cache_misses', 'Images encoded (not found in the image cache)', (s) => s.imageCacheMisses);
    fromStats('prefix_cache_hits', 'Prompts that reused cached KV rows of an earlier prompt', (s) => s.prefixCacheHits);
    fromStats('prefix_cache_misses', 'Prompts that found no cached prefix', (s) => s.prefixCacheMisses);
    fromStats('prefix_cache_tokens', 'Prompt tokens served from the prefix cache instead of prefill', (s) => s.cachedPromptTokens);
    fromStats('cache_bytes', 'Bytes held by the image and prefix caches', (s) => s.cacheBytes);
    new Gauge({
      name: `${prefix}process_resident_memory_bytes`,
      help: 'Resident memory of the server process (HTTP thread and engine worker together)',
      registers: [r],
      collect() {
        this.set(process.memoryUsage.rss());
      },
    });
    this.requests = new Counter({ name: `${prefix}requests_total`, help: 'Chat completion requests by HTTP status', labelNames: ['status'], registers: [r] });
    this.errors = new Counter({ name: `${prefix}errors_total`, help: 'Failed requests by error code', labelNames: ['code'], registers: [r] });
    this.promptTokens = new Counter({ name: `${prefix}prompt_tokens_total`, help: 'Prompt tokens processed (image tokens included)', registers: [r] });
    this.imageTokens = new Counter({ name: `${prefix}image_tokens_total`, help: 'Image tokens processed', registers: [r] });
    this.generatedTokens = new Counter({ name: `${prefix}generation_tokens_total`, help: 'Tokens generated', registers: [r] });
    this.imagesResized = new Counter({ name: `${prefix}images_resized_total`, help: 'Images decoded and resized', registers: [r] });
    this.imagesDropped = new Counter({ name: `${prefix}images_dropped_total`, help: 'Images dropped by the per-request image cap or the context length', registers: [r] });
    this.timeToFirstToken = new Histogram({ name: `${prefix}time_to_first_token_seconds`, help: 'Time from request to first token', buckets: LATENCY_BUCKETS, registers: [r] });
    this.requestSeconds = new Histogram({ name: `${prefix}request_duration_seconds`, help: 'Time from request to last token', buckets: LATENCY_BUCKETS, registers: [r] });
    this.phaseSeconds = new Histogram({
      name: `${prefix}phase_seconds`,
      help: 'Per-request time by phase: image (decode, resize, patchify), template, queue, vision, prefill, decode',
      labelNames: ['phase'],
      buckets: LATENCY_BUCKETS,
      registers: [r],
    });
  }
}
