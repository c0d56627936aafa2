/**
 * npm run bench:server — the OpenAI-compatible server around the engine:
 *  1. per-request server work apart from the model, for one 1920x1080 PNG screenshot in a chat
 *     request, under both image policies (smart: 1932x1092, 2,691 image tokens; fixed 800x450:
 *     812x448, 464 image tokens): piece by piece, and end to end through the real app on the tiny
 *     checkpoint minus the engine's own reported time (bench/server-overhead.ts);
 *  2. aggregate generated tokens/s and per-request latency with 1, 4 and 8 concurrent clients
 *     against the real server, per checkpoint, each checkpoint in its own child process
 *     (bench/server-load.ts).
 * Prints a markdown report and writes it to docs/benchmarks/server.md.
 *
 *   npm run bench:server -- [--checkpoints tiny,full] [--concurrency 1,4,8] [--runs 9] [--out FILE]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { REPO_ROOT } from '../server/model/checkpoint/tiny.ts';
import type { LoadResult } from './server-load.ts';
import { measureOverhead, POLICIES, type OverheadResult, type OverheadRow } from './server-overhead.ts';

const o = new Command()
  .option('--checkpoints <list>', 'checkpoints for the throughput part: tiny, full', 'tiny,full')
  .option('--concurrency <list>', 'concurrent clients', '1,4,8')
  .option('--runs <n>', 'measured runs per overhead figure (median reported)', '15')
  .option('--no-overhead', 'skip part 1 (per-request server overhead)')
  .option('--full-model <dir>', 'full-size checkpoint', path.join(REPO_ROOT, '.cache/checkpoints/full-bf16'))
  .option('--tiny-requests <n>', 'tiny: requests per concurrency level', '64')
  .option('--full-requests <n>', 'full: requests per concurrency level', '6')
  .option('--tiny-max-tokens <n>', 'tiny: max_tokens per request', '64')
  .option('--full-max-tokens <n>', 'full: max_tokens per request', '32')
  .option('--out <file>', 'markdown report', path.join(REPO_ROOT, 'docs/benchmarks/server.md'))
  .parse()
  .opts<{
    checkpoints: string;
    concurrency: string;
    runs: string;
    overhead: boolean;
    fullModel: string;
    tinyRequests: string;
    fullRequests: string;
    tinyMaxTokens: string;
    fullMaxTokens: string;
    out: string;
  }>();

const log = (s: string): void => void process.stderr.write(`${s}\n`);
const started = performance.now();
const loadAtStart = os.loadavg()[0]!;
const checkpoints = o.checkpoints.split(',').map((s) => s.trim()).filter(Boolean);
for (const c of checkpoints) if (c !== 'tiny' && c !== 'full') throw new Error(`--checkpoints takes tiny and/or full (got "${c}")`);
const fullPresent = fs.existsSync(path.join(o.fullModel, 'config.json'));

// Part 1, in this process (the tiny model and the image work are small).
let overhead: OverheadResult | null = null;
if (o.overhead) {
  overhead = await measureOverhead({ runs: Number(o.runs), tokenizerDir: fullPresent ? o.fullModel : null, log });
}

// Part 2, one child process per checkpoint.
const loads: LoadResult[] = [];
const failures: string[] = [];
for (const name of checkpoints) {
  if (name === 'full' && !fullPresent) {
    failures.push(`full: no checkpoint at ${o.fullModel} (generate it with \`npm run gen:checkpoint -- --size full --dtype bf16 --out ${o.fullModel}\`)`);
    log(`bench: ${failures.at(-1)}`);
    continue;
  }
  const args = [
    '--import', 'tsx', path.join(REPO_ROOT, 'bench/server-load.ts'),
    '--checkpoint', name,
    '--concurrency', o.concurrency,
    '--max-model-len', '4096',
    '--max-batch', '8',
    ...(name === 'full'
      ? ['--model', o.fullModel, '--requests', o.fullRequests, '--max-tokens', o.fullMaxTokens]
      : ['--requests', o.tinyRequests, '--max-tokens', o.tinyMaxTokens]),
  ];
  log(`bench: throughput on the ${name} checkpoint (child process)`);
  const r = spawnSync(process.execPath, args, {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 24,
    timeout: (name === 'full' ? 12 : 5) * 60_000,
    killSignal: 'SIGKILL',
  });
  if (r.status !== 0) {
    failures.push(`${name}: the child process ${r.signal ? `was killed (${r.signal}, timeout?)` : `exited with ${r.status}`}`);
    log(`bench: ${failures.at(-1)}`);
    continue;
  }
  loads.push(JSON.parse(r.stdout.trim().split('\n').pop()!) as LoadResult);
}

// The report.
const fx = (x: number): string => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1) : x.toFixed(2));
const cell = (row: OverheadRow, key: (typeof POLICIES)[number]['key']): string => {
  const v = row.values[key];
  return v ? `${fx(v.median)} (${fx(v.min)}-${fx(v.max)})` : '-';
};
const cpus = os.cpus();
const md: string[] = [
  '# Server benchmark',
  '',
  `Measured ${new Date().toISOString().slice(0, 10)} on ${cpus[0]?.model ?? 'cpu'} (${cpus.length} cores, ${(os.totalmem() / 1024 ** 3).toFixed(0)} GiB), Node ${process.version}, onnxruntime-node CPU with all cores.`,
  `The machine is shared with other work, so figures are medians and single runs can be off by tens of percent; 1-minute load average ${loadAtStart.toFixed(1)} at the start of this run, ${os.loadavg()[0]!.toFixed(1)} at its end (${cpus.length} cores).`,
  '',
  `Command: \`npm run bench:server -- --checkpoints ${checkpoints.join(',')} --concurrency ${o.concurrency}\` (total ${((performance.now() - started) / 60_000).toFixed(1)} min)`,
  '',
];

if (overhead) {
  const f = overhead.facts;
  md.push(
    '## 1. Per-request server work apart from the model',
    '',
    `One 1920x1080 PNG screenshot (\`test/fixtures/images/screenshot-desktop-1920x1080.png\`, ${(overhead.pngBytes / 1024).toFixed(0)} KiB) as a base64 data URL after a UI-TARS computer-use instruction, in a ${(overhead.bodyBytes / 1024).toFixed(0)} KiB JSON body.`,
    `Milliseconds, median of ${overhead.runs} runs after 2 warm-up runs (min-max in parentheses). Pieces are the server's own functions called directly, with the ${overhead.tokenizerFrom.endsWith('tiny') ? 'tiny' : 'full-size'} checkpoint's tokenizer and preprocessor_config;`,
    'the end-to-end rows go through the real app (`startServer`, Fastify `inject`) on the tiny checkpoint with max_tokens 1, and subtract the time the engine reports in the request log line (whole milliseconds).',
    '',
    `| step | smart: ${f.smart.resized.join('x')}, ${f.smart.imageTokens.toLocaleString('en-US')} image tokens, ${f.smart.promptTokens.toLocaleString('en-US')} prompt tokens | fixed 800x450: ${f.fixed.resized.join('x')}, ${f.fixed.imageTokens} image tokens, ${f.fixed.promptTokens} prompt tokens |`,
    '|---|---|---|',
    ...overhead.pieces.map((r) => `| ${r.label} | ${cell(r, 'smart')} | ${cell(r, 'fixed')} |`),
    `| *end to end* | | |`,
    ...overhead.endToEnd.map((r) => `| ${r.label} | ${cell(r, 'smart')} | ${cell(r, 'fixed')} |`),
    '',
    `The patches are float32: ${fx(f.smart.patchesMiB)} MiB (smart) and ${fx(f.fixed.patchesMiB)} MiB (fixed); the structuredClone row is the copy that postMessage makes of them on the way to the engine worker.`,
    '',
  );
}

if (loads.length > 0) {
  md.push(
    '## 2. Generation throughput with concurrent clients',
    '',
    'The real server (`startServer` on a free port, `--max-model-len 4096 --max-num-seqs 8`), C clients (undici, one keep-alive connection each) each sending',
    'text-only chat requests one after another (greedy, temperature 0, no ignore_eos). Aggregate tok/s = completion tokens actually generated / wall time of the level;',
    'latency is per request, as the client sees it. Mean decode batch = decode tokens / decode steps (engine stats): how many sequences a decode step advanced.',
    'Engine medians come from the request log lines: queue (waiting for a slot or for other prefills), prefill (vision + prefill), decode (all decode steps the request took part in).',
    '',
    '| checkpoint | clients | requests | prompt tok | max_tokens | completion tokens (finish) | wall s | aggregate tok/s | vs 1 client | p50 latency s (max) | mean decode batch | p50 queue / prefill / decode s |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const l of loads) {
    const base = l.rows.find((r) => r.concurrency === 1)?.tokensPerSecond;
    for (const r of l.rows) {
      const finish = Object.entries(r.finish).map(([k, n]) => `${n} ${k}`).join(', ');
      md.push(
        `| ${l.checkpoint} | ${r.concurrency} | ${r.requests} | ${r.promptTokens} | ${l.maxTokens} | ${r.completionTokens} (${finish}) | ${fx(r.wallSeconds)} | ${fx(r.tokensPerSecond)} | ${base ? `${(r.tokensPerSecond / base).toFixed(2)}x` : '-'} | ${fx(r.latencyP50Seconds)} (${fx(r.latencyMaxSeconds)}) | ${r.meanDecodeBatch.toFixed(2)} | ${fx(r.queueP50Seconds)} / ${fx(r.prefillP50Seconds)} / ${fx(r.decodeP50Seconds)} |`,
      );
    }
  }
  md.push('');
  for (const l of loads) {
    md.push(`- ${l.checkpoint}: loaded in ${l.loadSeconds.toFixed(1)} s (graph build ${l.buildSeconds.toFixed(1)} s), ${l.slots} sequence slots, peak RSS of its process ${l.peakRssGiB.toFixed(1)} GiB.`);
  }
  md.push('');
}
for (const f of failures) md.push(`Not measured: ${f}`, '');

const body = md.join('\n');
fs.mkdirSync(path.dirname(o.out), { recursive: true });
// Keep the hand-written reading notes (everything from "## How to read" on) across runs.
const notesMarker = '## How to read';
const previous = fs.existsSync(o.out) ? fs.readFileSync(o.out, 'utf8') : '';
const notes = previous.includes(notesMarker) ? previous.slice(previous.indexOf(notesMarker)) : '';
fs.writeFileSync(o.out, notes ? `${body}\n${notes}` : body);
console.log(body);
log(`bench: wrote ${o.out} (${((performance.now() - started) / 60_000).toFixed(1)} min)`);
process.exit(failures.length > 0 ? 1 : 0);
