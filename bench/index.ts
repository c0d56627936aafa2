/**
 * npm run bench — the performance figures of docs/performance.md, on the full-size random-weight
 * UI-TARS-2B checkpoint (generated when missing), each next to its bound measured in the same run:
 *  - limits: fp32 and int8 GEMM throughput and DRAM bandwidth through ONNX Runtime (roofline.ts);
 *  - kernels: each candidate kernel at each phase's shape (kernels.ts), the basis of recipes.ts, and the two
 *    prompt-attention kernels (prompt-attention.ts), the basis of ort-environment.ts;
 *  - steps: one agent step at the seed's shape per weight format, split into image processing,
 *    vision, prefill and decode, with peak RSS (engine-step.ts, one process per format);
 *  - context: one decode step and one agent step's prompt at growing context lengths per weight format (context.ts);
 *  - drift: the quantized formats against f32 (drift.ts);
 *  - agents: a 10-step episode through the server, and 1 vs 8 concurrent agents (agents.ts).
 *
 *   npm run bench -- [--parts limits,kernels,steps,context,drift,agents] [--formats f32,int8,int4] [--agent-format int4]
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { generateCheckpoint } from '../server/model/checkpoint/generate.ts';
import { readQwen2VLConfig } from '../server/model/checkpoint/hf-config.ts';
import { REPO_ROOT } from '../server/model/checkpoint/tiny.ts';
import { smartResize } from '../server/vision/smart-resize.ts';
import { decodeWeightBytes, stepBound, work, type StepShape } from './bounds.ts';
import { measureRoofline, type Roofline } from './roofline.ts';

const o = new Command()
  .option('--parts <list>', 'parts to run', 'limits,kernels,steps,context,drift,agents')
  .option('--formats <list>', 'weight formats for the step part', 'f32,int8,int4')
  .option('--agent-format <f>', 'weight format for the agents part', 'int4')
  .option('--agents <n>', 'concurrent agents', '8')
  .option('--model <dir>', 'full-size checkpoint (generated when missing)', path.join(REPO_ROOT, '.cache/checkpoints/full-bf16'))
  .option('--out <file>', 'markdown report', path.join(REPO_ROOT, 'docs/performance.md'))
  .parse()
  .opts<{ parts: string; formats: string; agentFormat: string; agents: string; model: string; out: string }>();

const parts = new Set(o.parts.split(','));
const log = (s: string): void => void process.stderr.write(`bench: ${s}\n`);

interface StepResult {
  format: string;
  /** null: the graphs came from the build cache. */
  buildSeconds: number | null;
  loadSeconds: number;
  peakRssGiB: number;
  imageTokens: number;
  promptTokens: number;
  completionTokens: number;
  imageSeconds: number;
  visionSeconds: number;
  prefillSeconds: number;
  decodeSeconds: number;
  stepSeconds: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

interface DriftRow {
  format: string;
  positions: number;
  greedyAgreement: number;
  freeRunAgreement: number;
  meanKl: number;
  clicks: number;
  clickPixelErrorMean: number;
  clickPixelErrorMax: number;
  clicksIdentical: number;
}

interface AgentsResult {
  format: string;
  single: { seconds: number; promptTokens: number; cachedTokens: number; completionTokens: number; ms: Record<string, number> | null }[];
  stepRatio: number;
  concurrent: {
    agents: number;
    stepsPerAgent: number;
    wallSeconds: number;
    stepsPerMinute: number;
    tokensPerSecond: number;
    oneAgentStepsPerMinute: number;
    oneAgentTokensPerSecond: number;
  };
  engine: { decodeSteps: number; batchedDecodeSteps: number };
  peakRssGiB: number;
}

/** Runs a bench script in its own process (its own peak RSS) and parses its last stdout line. */
function child<T>(script: string, args: string[]): T | null {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench', script), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  if (r.status !== 0) {
    log(`${script} ${args.join(' ')} failed (exit ${r.status})`);
    return null;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

if (!fs.existsSync(path.join(o.model, 'config.json'))) {
  log(`generating the full-size random checkpoint into ${o.model} (~4.4 GB, about two minutes)`);
  await generateCheckpoint({ out: o.model, size: 'full', seed: 0, dtype: 'bf16', shards: 1 });
}
const cfg = readQwen2VLConfig(o.model);
const started = new Date();
const loadAtStart = os.loadavg()[0]!;

let roof: Roofline | null = null;
if (['limits', 'steps', 'context', 'agents'].some((p) => parts.has(p))) {
  log('measuring this machine (ONNX Runtime GEMM and DRAM bandwidth)');
  roof = await measureRoofline();
  log(JSON.stringify(roof));
}

/** A bench script's stdout (a markdown table), or null when it failed. */
function table(script: string): string | null {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'bench', script)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return r.status === 0 ? r.stdout.trim() : null;
}

let kernels: string | null = null;
let promptAttention: string | null = null;
if (parts.has('kernels')) {
  log('kernels per phase');
  kernels = table('kernels.ts');
  promptAttention = table('prompt-attention.ts');
}

const steps: StepResult[] = [];
if (parts.has('steps')) {
  for (const format of o.formats.split(',')) {
    log(`${format}: one agent step (build/load, warm-up, measured step)`);
    const r = child<StepResult>('engine-step.ts', ['--model', o.model, '--format', format, '--steps', '1']);
    if (r) steps.push(r);
  }
}

const contexts: { format: string; promptTokens: number; rows: { context: number; ms: number; promptMs: number | null }[] }[] = [];
if (parts.has('context')) {
  for (const format of o.formats.split(',')) {
    log(`${format}: decode steps and prompts at growing context`);
    const r = child<(typeof contexts)[number]>('context.ts', ['--model', o.model, '--format', format]);
    if (r) contexts.push(r);
  }
}

let drift: { prompts: number; rows: DriftRow[] } | null = null;
if (parts.has('drift')) {
  log('drift of the quantized formats from f32');
  drift = child('drift.ts', ['--model', o.model, '--formats', 'int8,int4']);
}

let agents: AgentsResult | null = null;
if (parts.has('agents')) {
  log(`agents through the server (${o.agentFormat})`);
  agents = child('agents.ts', ['--model', o.model, '--format', o.agentFormat, '--steps', '10', '--agents', o.agents]);
}

const pct = (x: number): string => `${(100 * x).toFixed(0)}%`;
const f = (x: number, d = 1): string => x.toFixed(d);
const md: string[] = [
  '# Performance',
  '',
  `Measured ${started.toISOString().slice(0, 10)} on ${os.cpus()[0]?.model ?? 'cpu'} (${os.cpus().length} cores; load average ${f(loadAtStart, 2)} at the start), onnxruntime-node CPU.`,
  'Checkpoint: full-size random-weight UI-TARS-2B (`npm run gen:checkpoint -- --size full --dtype bf16`): compute and memory traffic do not depend on weight values; accuracy figures do (see Drift).',
  '',
  `Command: \`npm run bench -- --parts ${o.parts} --formats ${o.formats} --agent-format ${o.agentFormat}\` (${f((Date.now() - started.getTime()) / 60000, 0)} minutes).`,
  '',
];

if (roof) {
  md.push(
    '## This machine',
    '',
    `Measured in the same run through ONNX Runtime (bench/roofline.ts): fp32 GEMM **${f(roof.f32Gflops, 0)} GFLOP/s**, int8 GEMM (DynamicQuantizeMatMul) **${f(roof.int8Gops, 0)} GOP/s**, DRAM read **${f(roof.bandwidthGBs)} GB/s** (M=1 MatMuls over 440 MB of weights).`,
    '',
  );
}

if (steps.length > 0 && roof) {
  md.push(
    '## One agent step at the seed\'s shape',
    '',
    `One 1920x1080 PNG screenshot resized to 800x450 (812x448, ${steps[0]!.imageTokens} image tokens), ${steps[0]!.promptTokens} prompt tokens, ${steps[0]!.completionTokens} generated (greedy); nothing cached (an episode's first step), after one warm-up step.`,
    'Bound: the same work at 100% of the limits above (vision and prefill linear layers at the format\'s GEMM rate, attention at the fp32 rate, decode at DRAM bandwidth over the weights and the KV cache it reads). Target: 16 s per step.',
    '',
    '| format | image s | vision s | prefill s (tok/s) | decode s (tok/s) | **step s** | bound s | prefill of GEMM peak | decode of bandwidth | peak RSS GiB | load s (first build s) |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const r of steps) {
    const w = work(cfg, r.imageTokens);
    const gemm = (r.format === 'f32' ? roof.f32Gflops : roof.int8Gops) * 1e9;
    const shape = { images: 1, newTokens: r.promptTokens, context: 0, generated: r.completionTokens };
    const b = stepBound(cfg, roof, r.format, r.imageTokens, shape);
    const bound = b.compute + b.decode;
    const prefillOfPeak = (2 * w.lmLayerParams * r.promptTokens) / r.prefillSeconds / gemm;
    const decodeBytes = decodeWeightBytes(w, r.format) + w.kvBytesPerToken * (r.promptTokens + r.completionTokens / 2);
    const decodeOfBw = (decodeBytes * r.decodeTokensPerSecond) / (roof.bandwidthGBs * 1e9);
    md.push(
      `| ${r.format} | ${f(r.imageSeconds, 2)} | ${f(r.visionSeconds)} | ${f(r.prefillSeconds)} (${f(r.prefillTokensPerSecond, 0)}) | ${f(r.decodeSeconds)} (${f(r.decodeTokensPerSecond, 2)}) | **${f(r.stepSeconds)}** | ${f(bound)} | ${pct(prefillOfPeak)} | ${pct(decodeOfBw)} | ${f(r.peakRssGiB)} | ${f(r.loadSeconds)} (${r.buildSeconds === null ? 'cached' : f(r.buildSeconds)}) |`,
    );
  }
  md.push('', 'Decode bytes per token: every decoder-layer weight plus the tied lm_head at the decode graph\'s storage size (f32 4 B, int8 1 B, int4 0.625 B per parameter), plus the float32 KV cache of the context (56 KiB per token). The seed took about 60 minutes per step on a laptop CPU; llama.cpp q4_0 took about 32 s on the machine of shared/reference/peer-llamacpp.md.', '');
}

if (contexts.length > 0 && roof) {
  const w = work(cfg, 0);
  const header = contexts[0]!.rows.map((r) => r.context);
  md.push(
    '## Decode step against context',
    '',
    'One sequence, one new token, through the decode graph (bench/context.ts, median of 7): ms per step, and in brackets the share of DRAM bandwidth it reaches reading the weights and the float32 KV cache of the context.',
    '',
    `| format | ${header.map((c) => `${c} tokens`).join(' | ')} |`,
    `|---|${header.map(() => '---|').join('')}`,
    ...contexts.map((c) => {
      const cells = c.rows.map((r) => {
        const bytes = decodeWeightBytes(w, c.format) + w.kvBytesPerToken * r.context;
        return `${f(r.ms)} (${pct(bytes / (r.ms / 1000) / (roof!.bandwidthGBs * 1e9))})`;
      });
      return `| ${c.format} | ${cells.join(' | ')} |`;
    }),
    '',
  );
  const prompts = contexts.filter((c) => c.rows.every((r) => r.promptMs !== null));
  if (prompts.length > 0) {
    const n = prompts[0]!.promptTokens;
    md.push(
      '## Prompt against context',
      '',
      `One prompt of ${n} new tokens (an agent step's answer and new screenshot) after the context, through the prefill graph (bench/context.ts, one run after a warm-up): seconds, and in brackets the bound (linear layers at the format's GEMM rate, attention at the fp32 rate).`,
      '',
      `| format | ${header.map((c) => `${c} tokens`).join(' | ')} |`,
      `|---|${header.map(() => '---|').join('')}`,
      ...prompts.map((c) => {
        const cells = c.rows.map((r) => {
          const bound = stepBound(cfg, roof!, c.format, 0, { images: 0, newTokens: c.promptTokens, context: r.context, generated: 1 }).compute;
          return `${f(r.promptMs! / 1000)} (${f(bound)})`;
        });
        return `| ${c.format} | ${cells.join(' | ')} |`;
      }),
      '',
    );
  }
}

if (drift) {
  md.push(
    '## Drift from f32',
    '',
    `${drift.prompts} prompts (the UI-TARS prompt with an instruction and one 800x450 screenshot), 16 teacher-forced positions each along f32's greedy continuation. Greedy agreement: the format's top-1 equals f32's. Free run: the share of the format's own 16 greedy tokens before its first difference from f32's. KL: mean KL(f32 || format) over the full vocabulary. Click: after \`Action: click(start_box='<|box_start|>(\` both decode \`x,y)\` greedily (other tokens masked); pixel distance on a 1920x1080 screen. Random weights: these measure how much the kernels move the outputs, not grounding quality on the real checkpoint.`,
    '',
    '| format | greedy agreement | free run | mean KL (nats) | click error px, mean (max) | identical clicks |',
    '|---|---|---|---|---|---|',
    ...drift.rows.map(
      (r) => `| ${r.format} | ${pct(r.greedyAgreement)} | ${pct(r.freeRunAgreement)} | ${r.meanKl.toExponential(2)} | ${f(r.clickPixelErrorMean, 0)} (${f(r.clickPixelErrorMax, 0)}) | ${r.clicksIdentical}/${r.clicks} |`,
    ),
    '',
  );
}

if (agents && roof) {
  const c = agents.concurrent;
  // every request encodes one new screenshot (the 800x450 policy) and prefills what the prefix cache lacks
  const [h, w] = smartResize(450, 800);
  const imageTokens = (h * w) / 28 ** 2;
  const shapeOf = (s: AgentsResult['single'][number]): StepShape => ({ images: 1, newTokens: s.promptTokens - s.cachedTokens, context: s.cachedTokens, generated: s.completionTokens });
  const bounds = agents.single.map((s) => stepBound(cfg, roof!, agents.format, imageTokens, shapeOf(s)));
  const total = (b: { compute: number; decode: number }) => b.compute + b.decode;
  const ratioBound = total(bounds[bounds.length - 1]!) / total(bounds[0]!);
  // N agents at the bound: compute-bound work does not overlap on these cores; decode steps read the weights once for all
  const first = agents.single.slice(0, c.stepsPerAgent);
  const oneAgent = bounds.slice(0, c.stepsPerAgent).reduce((a, b) => a + total(b), 0);
  const together = first.reduce((a, s) => {
    const b = stepBound(cfg, roof!, agents.format, imageTokens, shapeOf(s), c.agents);
    return a + c.agents * b.compute + b.decode;
  }, 0);
  const concurrencyBound = (c.agents * oneAgent) / together;
  md.push(
    `## Agents through the server (${agents.format})`,
    '',
    'ARPO\'s requests (every earlier screenshot and answer, historyN 15), 800x450 image policy, greedy, max_tokens 95, distinct screenshots per step. Bound: the step\'s work at 100% of the limits above (one new image, the prompt tokens the prefix cache lacked, attention over the cached ones, decode reading the weights and the growing KV cache).',
    '',
    '| step | seconds | bound s | prompt tokens | from prefix cache | generated | image ms | vision ms | prefill ms | decode ms |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...agents.single.map(
      (s, i) =>
        `| ${i + 1} | ${f(s.seconds)} | ${f(total(bounds[i]!))} | ${s.promptTokens} | ${s.cachedTokens} | ${s.completionTokens} | ${s.ms?.['image'] ?? ''} | ${s.ms?.['vision'] ?? ''} | ${s.ms?.['prefill'] ?? ''} | ${s.ms?.['decode'] ?? ''} |`,
    ),
    '',
    `Step ${agents.single.length} / step 1: **${f(agents.stepRatio, 2)}**; at the bound ${f(ratioBound, 2)} (target <= 1.3).`,
    '',
    `${c.agents} agents at once, ${c.stepsPerAgent} steps each: ${f(c.stepsPerMinute, 2)} agent steps/min and ${f(c.tokensPerSecond, 2)} generated tokens/s, against one agent's ${f(c.oneAgentStepsPerMinute, 2)} steps/min and ${f(c.oneAgentTokensPerSecond, 2)} tokens/s (its first ${c.stepsPerAgent} steps above): **${f(c.stepsPerMinute / c.oneAgentStepsPerMinute, 2)}x** in steps, ${f(c.tokensPerSecond / c.oneAgentTokensPerSecond, 2)}x in tokens; at the bound ${f(concurrencyBound, 2)}x (target >= 4). Decode steps that advanced several sequences: ${agents.engine.batchedDecodeSteps} of ${agents.engine.decodeSteps}. Peak RSS of the server process: ${f(agents.peakRssGiB)} GiB.`,
    '',
  );
}

if (kernels) md.push('## Kernels per phase', '', 'bench/kernels.ts: one linear layer per shape and kernel; the few-row rows stream distinct weights from DRAM. server/model/build/recipes.ts picks from this.', '', kernels, '');
if (kernels && promptAttention) {
  md.push(
    'Prompt attention: ONNX Runtime\'s two GroupQueryAttention kernels on one decoder layer (bench/prompt-attention.ts; server/model/runtime/ort-environment.ts picks from this):',
    '',
    promptAttention,
    '',
  );
}

fs.mkdirSync(path.dirname(o.out), { recursive: true });
// Keep hand-written notes below the generated part, and the tables of parts this command did not run.
const MARK = '<!-- end of generated figures -->';
const previous = fs.existsSync(o.out) ? fs.readFileSync(o.out, 'utf8') : '';
const cut = previous.indexOf(MARK);
const notes = cut >= 0 ? previous.slice(cut) : `${MARK}\n`;
const body = mergeSections(md.join('\n'), cut >= 0 ? previous.slice(0, cut) : '');
fs.writeFileSync(o.out, `${body}\n${notes}`);
console.log(body);

/**
 * The new page's sections, in page order, plus any section of the previous page this run did not
 * produce (a partial run such as `--parts context` keeps the other tables, marked as earlier runs').
 */
function mergeSections(fresh: string, old: string): string {
  const split = (text: string) => text.split(/^(?=## )/m);
  const [head, ...now] = split(fresh);
  const order = ['## This machine', '## One agent step', '## Decode step', '## Prompt against', '## Drift', '## Agents', '## Kernels'];
  const rank = (section: string) => order.findIndex((prefix) => section.startsWith(prefix));
  const kept = split(old).slice(1).filter((section) => rank(section) >= 0 && !now.some((n) => rank(n) === rank(section)));
  const EARLIER = '_From an earlier run of `npm run bench`, with that run\'s limits for its bounds (the command above did not run this part)._';
  const marked = kept.map((section) => (section.includes(EARLIER) ? section : section.replace(/\n/, `\n\n${EARLIER}\n`)));
  return [head, ...[...now, ...marked].sort((a, b) => rank(a) - rank(b))].map((section) => `${section!.trimEnd()}\n\n`).join('').trimEnd() + '\n';
}
