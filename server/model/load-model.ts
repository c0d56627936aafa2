/**
 * From a checkpoint folder to a running engine: open and validate the checkpoint,
 * build (or reuse) the ONNX graphs, create the sessions, size the KV cache.
 */
import { buildModelGraphs } from './build/build-cache.ts';
import type { WeightFormat } from './build/layers.ts';
import { openCheckpoint, type Checkpoint } from './checkpoint/checkpoint.ts';
import type { TextConfig } from './checkpoint/types.ts';
import { KvPool } from './runtime/kv-pool.ts';
import { ModelRunner } from './runtime/model-runner.ts';
import { ChatTokenizer } from './tokenizer.ts';
import { Engine } from '../engine/engine.ts';

export interface ModelOptions {
  format: WeightFormat;
  /** ONNX Runtime intra-op threads (default: all cores). */
  threads?: number;
  /** Longest sequence (prompt + output); default and upper bound: the checkpoint's max_position_embeddings. */
  maxModelLen?: number;
  /** Sequences decoded together (KV slots). */
  maxBatch: number;
  /** Upper bound for the KV cache; fewer slots are allocated when maxBatch slots would not fit. */
  kvCacheBytes: number;
  prefillChunk: number;
  /** Memory for vision-encoder outputs kept by image content (0: off). */
  imageCacheBytes: number;
  /** Memory for prompt KV kept for prompts that extend it (0: off). */
  prefixCacheBytes: number;
}

export interface LoadedModel {
  checkpoint: Checkpoint;
  tokenizer: ChatTokenizer;
  engine: Engine;
  runner: ModelRunner;
  maxModelLen: number;
  buildMs: number;
  /** True when the ONNX graphs came from the build cache (buildMs is then only the cache lookup). */
  graphsCached: boolean;
  loadMs: number;
}

/** Bytes of K and V one cached token takes across all layers (float32). */
export function kvBytesPerToken(text: TextConfig): number {
  return 2 * text.numHiddenLayers * text.numKeyValueHeads * text.headDim * 4;
}

export async function loadModel(dir: string, opts: ModelOptions): Promise<LoadedModel> {
  const checkpoint = await openCheckpoint(dir);
  const { config } = checkpoint;
  const t0 = performance.now();
  const graphs = await buildModelGraphs(dir, config, checkpoint.weights, { format: opts.format });
  const t1 = performance.now();
  const maxModelLen = Math.min(opts.maxModelLen ?? config.text.maxPositionEmbeddings, config.text.maxPositionEmbeddings);
  const perSlot = maxModelLen * kvBytesPerToken(config.text);
  const slots = Math.max(1, Math.min(opts.maxBatch, Math.floor(opts.kvCacheBytes / perSlot)));
  const kv = new KvPool({
    layers: config.text.numHiddenLayers,
    kvHeads: config.text.numKeyValueHeads,
    headDim: config.text.headDim,
    maxLen: maxModelLen,
    slots,
  });
  const runner = await ModelRunner.create(config, graphs, kv, opts.threads ? { threads: opts.threads } : {});
  const tokenizer = ChatTokenizer.fromFiles(checkpoint.files);
  const engine = new Engine(runner, tokenizer, opts);
  return { checkpoint, tokenizer, engine, runner, maxModelLen, buildMs: t1 - t0, graphsCached: graphs.cached, loadMs: performance.now() - t1 };
}
