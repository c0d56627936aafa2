/**
 * Runs the two ONNX graphs: feeds in, tensors out. No policy lives here; the engine
 * decides what to run. Input names follow server/model/build (see docs/design/graph-build.md).
 */
import * as ort from 'onnxruntime-node';
import type { Qwen2VLConfig } from '../checkpoint/types.ts';
import { visionRotary } from '../qwen2-vl/vision-rotary.ts';
import type { KvPool } from './kv-pool.ts';
import { applyOrtEnvironment } from './ort-environment.ts';
import { keyRowsName, valueRowsName } from '../build/decoder.ts';

export interface SessionOptions {
  /** Threads for ONNX Runtime's intra-op pool (default: all cores). */
  threads?: number;
}

export function sessionOptions(opts: SessionOptions): ort.InferenceSession.SessionOptions {
  applyOrtEnvironment();
  return {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    ...(opts.threads ? { intraOpNumThreads: opts.threads } : {}),
    interOpNumThreads: 1,
    executionMode: 'sequential',
  };
}

/** One decoder run over `batch` sequences of `seqLen` new tokens each, in KV slots [firstSlot, firstSlot+batch). */
export interface DecoderStep {
  firstSlot: number;
  batch: number;
  seqLen: number;
  inputIds: BigInt64Array; // [batch*seqLen]
  ropeCos: Float32Array; // [batch*seqLen*headDim]
  ropeSin: Float32Array;
  /** Per sequence: tokens cached after this step, minus one. */
  seqlensK: Int32Array;
  /** Image features for the image tokens among these rows, in row order, and their flat row indices. */
  imageEmbeds: Float32Array; // [m*hidden]
  imageTokenIndex: BigInt64Array; // [m]
  /** Rows whose logits are returned, in this order. */
  logitsIndex: BigInt64Array;
}

/** Prompt rows (prefill) or one row per running sequence (decode): quantized formats run a graph per phase. */
export type DecoderPhase = 'prefill' | 'decode';

export class ModelRunner {
  constructor(
    readonly config: Qwen2VLConfig,
    private readonly vision: ort.InferenceSession,
    private readonly decoders: Record<DecoderPhase, ort.InferenceSession>,
    readonly kv: KvPool,
  ) {}

  static async create(
    config: Qwen2VLConfig,
    paths: { visionPath: string; decoderPath: string; decodeStepPath: string },
    kv: KvPool,
    opts: SessionOptions,
  ): Promise<ModelRunner> {
    const options = sessionOptions(opts);
    const vision = await ort.InferenceSession.create(paths.visionPath, options);
    const prefill = await ort.InferenceSession.create(paths.decoderPath, options);
    const decode = paths.decodeStepPath === paths.decoderPath ? prefill : await ort.InferenceSession.create(paths.decodeStepPath, options);
    return new ModelRunner(config, vision, { prefill, decode }, kv);
  }

  /** Vision tower for one image: patches [t*h*w, 1176] -> merged features [t*h*w/4, hidden]. */
  async encodeImage(patches: Float32Array, gridThw: readonly [number, number, number]): Promise<Float32Array> {
    const [t, h, w] = gridThw;
    const n = t * h * w;
    const patchDim = patches.length / n;
    if (t !== 1) throw new Error(`images have one temporal patch; got grid t=${t}`);
    const { cos, sin } = visionRotary(h, w, this.config.vision);
    const headDim = cos.length / n;
    const out = await this.vision.run({
      pixel_patches: new ort.Tensor('float32', patches, [n, patchDim]),
      rotary_cos: new ort.Tensor('float32', cos, [n, headDim]),
      rotary_sin: new ort.Tensor('float32', sin, [n, headDim]),
    });
    return out['image_embeds']!.data as Float32Array;
  }

  /** One decoder run; appends its K/V rows to the pool and returns logits [logitsIndex.length, vocab]. */
  async decode(step: DecoderStep, phase: DecoderPhase): Promise<Float32Array> {
    const { hiddenSize, headDim, vocabSize, numHiddenLayers } = this.config.text;
    const { batch, seqLen } = step;
    // a decode-only graph (int4) reads its input as one new token per sequence
    if (phase === 'decode' && seqLen !== 1) throw new Error(`a decode step runs one new token per sequence, got ${seqLen}`);
    const total = Math.max(...step.seqlensK) + 1;
    const m = step.imageTokenIndex.length;
    const fetches: Record<string, null> = { logits: null };
    for (let i = 0; i < numHiddenLayers; i++) {
      fetches[keyRowsName(i)] = null;
      fetches[valueRowsName(i)] = null;
    }
    const out = await this.decoders[phase].run(
      {
        ...this.kv.pastFeeds(step.firstSlot, batch),
        input_ids: new ort.Tensor('int64', step.inputIds, [batch, seqLen]),
        image_embeds: new ort.Tensor('float32', step.imageEmbeds, [m, hiddenSize]),
        image_token_index: new ort.Tensor('int64', step.imageTokenIndex, [m]),
        rope_cos: new ort.Tensor('float32', step.ropeCos, [batch, seqLen, headDim]),
        rope_sin: new ort.Tensor('float32', step.ropeSin, [batch, seqLen, headDim]),
        seqlens_k: new ort.Tensor('int32', step.seqlensK, [batch]),
        total_sequence_length: new ort.Tensor('int32', Int32Array.of(total), []),
        logits_index: new ort.Tensor('int64', step.logitsIndex, [step.logitsIndex.length]),
      },
      fetches,
    );
    const rows = (name: (i: number) => string) => Array.from({ length: numHiddenLayers }, (_, i) => out[name(i)]!.data as Float32Array);
    const starts = Array.from(step.seqlensK, (k) => k + 1 - seqLen);
    this.kv.appendRows(step.firstSlot, seqLen, starts, rows(keyRowsName), rows(valueRowsName));
    const logits = out['logits']!.data as Float32Array;
    if (logits.length !== step.logitsIndex.length * vocabSize) throw new Error(`decoder returned ${logits.length} logits`);
    return logits;
  }

  async release(): Promise<void> {
    await this.vision.release();
    await this.decoders.prefill.release();
    if (this.decoders.decode !== this.decoders.prefill) await this.decoders.decode.release();
  }
}
