/**
 * npx tsx bench/prompt-attention.ts — ONNX Runtime's two GroupQueryAttention CPU kernels (tiled "flash"
 * and full score matrix) on one UI-TARS-2B decoder layer's prompt attention (12 query heads, 2 KV heads of
 * 128), at the prompts an agent sends: a first prompt with no history, and a step's answer and new
 * screenshot over a growing history. ONNX Runtime reads ORT_GQA_DISABLE_FLASH_ATTENTION when it creates
 * a session, so each kernel gets its own session. Prints a markdown table (fastest of 7 runs after a warm-up).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { MS_DOMAIN, attr, type GraphBuilder } from '../server/model/build/onnx-graph.ts';
import { buildSession, randomArray, timeRuns } from './roofline.ts';

const HEADS = 12;
const KV_HEADS = 2;
const HEAD_DIM = 128;
/** [new tokens, cached tokens] */
const SHAPES: [number, number][] = [[786, 0], [472, 438], [710, 1620], [710, 3811], [710, 6676]];
const KERNELS = [['tiled (flash)', '0'], ['full matrix', '1']] as const;

/** One GroupQueryAttention over the past buffer, as in the decoder's prefill graph. */
function build(g: GraphBuilder): void {
  const inputs = [
    g.input('query', 'float32', [1, 's', HEADS * HEAD_DIM]),
    g.input('key', 'float32', [1, 's', KV_HEADS * HEAD_DIM]),
    g.input('value', 'float32', [1, 's', KV_HEADS * HEAD_DIM]),
    g.input('past_key', 'float32', [1, KV_HEADS, 'l', HEAD_DIM]),
    g.input('past_value', 'float32', [1, KV_HEADS, 'l', HEAD_DIM]),
    g.input('seqlens_k', 'int32', [1]),
    g.input('total_sequence_length', 'int32', []),
  ];
  const [out] = g.node('GroupQueryAttention', inputs, { num_heads: HEADS, kv_num_heads: KV_HEADS, scale: attr.float(1 / Math.sqrt(HEAD_DIM)) }, {
    name: 'GroupQueryAttention',
    domain: MS_DOMAIN,
    outputs: 3,
  });
  g.output(out!, 'float32', [1, 's', HEADS * HEAD_DIM]);
}

const t = (dims: number[], seed: number): ort.Tensor => new ort.Tensor('float32', randomArray(dims.reduce((a, b) => a * b), seed), dims);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prompt-attention-'));
const saved = process.env.ORT_GQA_DISABLE_FLASH_ATTENTION;
const ms: number[][] = SHAPES.map(() => []);
try {
  for (const [, value] of KERNELS) {
    process.env.ORT_GQA_DISABLE_FLASH_ATTENTION = value;
    const session = await buildSession(dir, 'gqa', build);
    for (const [i, [s, p]] of SHAPES.entries()) {
      // the engine's buffer: the cached rows plus this prompt's, in steps of 256 tokens
      const buffer = Math.ceil((p + s) / 256) * 256;
      const feeds = {
        query: t([1, s, HEADS * HEAD_DIM], 1),
        key: t([1, s, KV_HEADS * HEAD_DIM], 2),
        value: t([1, s, KV_HEADS * HEAD_DIM], 3),
        past_key: t([1, KV_HEADS, buffer, HEAD_DIM], 4),
        past_value: t([1, KV_HEADS, buffer, HEAD_DIM], 5),
        seqlens_k: new ort.Tensor('int32', Int32Array.of(p + s - 1), [1]),
        total_sequence_length: new ort.Tensor('int32', Int32Array.of(p + s), []),
      };
      ms[i]!.push(1000 * (await timeRuns(session, feeds, 7)));
    }
    await session.release();
  }
} finally {
  if (saved === undefined) delete process.env.ORT_GQA_DISABLE_FLASH_ATTENTION;
  else process.env.ORT_GQA_DISABLE_FLASH_ATTENTION = saved;
  fs.rmSync(dir, { recursive: true, force: true });
}
console.log(
  [
    `| new tokens | cached tokens | ${KERNELS.map(([label]) => `${label} ms`).join(' | ')} |`,
    `|---|---|${KERNELS.map(() => '---|').join('')}`,
    ...SHAPES.map(([s, p], i) => `| ${s} | ${p} | ${ms[i]!.map((x) => x.toFixed(1)).join(' | ')} |`),
  ].join('\n'),
);
