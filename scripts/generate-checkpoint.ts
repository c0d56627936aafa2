#!/usr/bin/env -S npx tsx
/**
 * Writes a random-weight Qwen2-VL checkpoint in Hugging Face's layout.
 *   npx tsx scripts/generate-checkpoint.ts --size tiny --out .cache/checkpoints/tiny
 *   npx tsx scripts/generate-checkpoint.ts --size full --dtype bf16 --shards 2 --out models/uitars-2b-random
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { generateCheckpoint, type CheckpointSize, type GenerateDType } from '../server/model/checkpoint/generate.ts';

function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${name} must be an integer in [${min}, ${max}]`);
    }
    return n;
  };
}

const program = new Command()
  .name('generate-checkpoint')
  .description('Write a random-weight Qwen2-VL (UI-TARS-2B layout) checkpoint for tests and benchmarks')
  .addOption(new Option('--size <size>', 'tiny (tests) or full (UI-TARS-2B shapes)').choices(['tiny', 'full']).default('tiny'))
  .option('--seed <n>', 'PRNG seed', intArg('--seed', 0, 0xffffffff), 0)
  .addOption(new Option('--dtype <dtype>', 'stored weight dtype').choices(['f32', 'bf16']).default('f32'))
  .option('--shards <n>', 'number of safetensors files (>1 writes model.safetensors.index.json)', intArg('--shards', 1, 10000), 1)
  .requiredOption('--out <dir>', 'output folder')
  .option('--force', 'replace an existing checkpoint in --out', false)
  .option('--quiet', 'no progress output', false);

program.parse();
const o = program.opts<{
  size: CheckpointSize;
  seed: number;
  dtype: GenerateDType;
  shards: number;
  out: string;
  force: boolean;
  quiet: boolean;
}>();

const started = Date.now();
let last = 0;
try {
  const r = await generateCheckpoint({
    out: o.out,
    size: o.size,
    seed: o.seed,
    dtype: o.dtype,
    shards: o.shards,
    force: o.force,
    onProgress: (msg) => {
      if (o.quiet) return;
      const now = Date.now();
      if (now - last >= 1000) {
        last = now;
        process.stderr.write(`  ${msg}\n`);
      }
    },
  });
  const gb = (r.totalBytes / 1e9).toFixed(3);
  console.log(
    `wrote ${o.size} checkpoint to ${r.dir}: ${r.tensors.length} tensors, ${gb} GB of ${o.dtype} weights in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
} catch (e) {
  console.error(`generate-checkpoint: ${(e as Error).message}`);
  process.exit(1);
}
