/**
 * Part 2 of `npm run bench:server`, one checkpoint per process (so peak RSS is this checkpoint's
 * own and a 10 GB model is gone when the process is): start the real server (startServer on a
 * free port), then for each concurrency C run C closed-loop clients (undici, one keep-alive
 * connection each) that send text-only chat requests (~100 prompt tokens, greedy, temperature 0)
 * one after another. Prints one JSON line (LoadResult) on stdout, then exits.
 *
 *   npx tsx bench/server-load.ts --checkpoint full --model .cache/checkpoints/full-bf16 --concurrency 1,4,8
 */
import { Command } from 'commander';
import { Client } from 'undici';
import { defaultServerConfig, type ServerConfig } from '../server/config.ts';
import { openCheckpoint } from '../server/model/checkpoint/checkpoint.ts';
import { ensureTinyCheckpoint } from '../server/model/checkpoint/tiny.ts';
import { ChatTokenizer } from '../server/model/tokenizer.ts';
import { startServer } from '../server/server.ts';
import { median, pause, quantile, collectRequestLogs } from './server-stats.ts';

export interface LoadRow {
  concurrency: number;
  requests: number;
  promptTokens: number;
  completionTokens: number;
  /** finish_reason -> count */
  finish: Record<string, number>;
  wallSeconds: number;
  tokensPerSecond: number;
  latencyP50Seconds: number;
  latencyMaxSeconds: number;
  /** Engine-side medians from the request log lines, in seconds. */
  queueP50Seconds: number;
  prefillP50Seconds: number;
  decodeP50Seconds: number;
  /** Decode tokens per decode step: how many sequences a decode step advanced on average. */
  meanDecodeBatch: number;
  decodeSteps: number;
}

export interface LoadResult {
  checkpoint: string;
  modelPath: string;
  loadSeconds: number;
  buildSeconds: number;
  slots: number;
  maxModelLen: number;
  maxTokens: number;
  peakRssGiB: number;
  rows: LoadRow[];
}


interface Completion {
  choices: { finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number };
}

const o = new Command()
  .requiredOption('--checkpoint <name>', 'label: tiny (the embedded default) or full')
  .option('--model <dir>', 'checkpoint folder (default: the tiny checkpoint)')
  .option('--concurrency <list>', 'client counts', '1,4,8')
  .option('--requests <n>', 'requests per concurrency level (rounded up to a multiple of it)', '16')
  .option('--max-tokens <n>', 'max_tokens per request', '32')
  .option('--prompt-tokens <n>', 'prompt length to aim for (chat template included)', '100')
  .option('--max-model-len <n>', 'server --max-model-len', '4096')
  .option('--max-batch <n>', 'server --max-num-seqs', '8')
  .option('--prompt-tries <n>', 'prompts tried in the warm-up for one that is not cut short by EOS', '8')
  .parse()
  .opts<{ checkpoint: string; model?: string; concurrency: string; requests: string; maxTokens: string; promptTokens: string; maxModelLen: string; maxBatch: string; promptTries: string }>();

const log = (s: string): void => void process.stderr.write(`bench[${o.checkpoint}]: ${s}\n`);

const OPENINGS = [
  'Describe the next step.',
  'What should the agent do next?',
  'Plan the next action.',
  'Explain the next move.',
  'Give the next action.',
  'Think about the screen.',
  'Look at the window first.',
  'Read the task again.',
];

/**
 * A user message of about `target` tokens once templated, in this checkpoint's tokenizer;
 * `variant` picks its opening sentence (a greedy model stops at the same place for the same prompt).
 */
function promptText(tokenizer: ChatTokenizer, target: number, variant: number): string {
  const words = (
    'The agent looks at the screen, finds the Settings window and reads the list of options on the left side. ' +
    'It decides which control to use next, writes down a short thought, and then gives exactly one action, such as ' +
    'a click on a button, a hotkey, a scroll, or typing text into a field, with the coordinates of its target.'
  ).split(' ');
  const length = (text: string) => tokenizer.encode(tokenizer.renderChat([{ role: 'user', content: text }], true)).length;
  let text = OPENINGS[variant % OPENINGS.length]!;
  for (let i = 0; length(text) < target && i < 10_000; i++) text += ` ${words[i % words.length]}`;
  return text;
}

async function main(): Promise<LoadResult> {
  const dir = o.model ?? (await ensureTinyCheckpoint());
  const cp = await openCheckpoint(dir);
  const tokenizer = ChatTokenizer.fromFiles(cp.files);
  const maxTokens = Number(o.maxTokens);
  const { logger, lines } = collectRequestLogs();
  const config: ServerConfig = {
    ...defaultServerConfig(),
    modelPath: o.model ?? null, // null: the embedded default, as start_server.sh runs it
    ports: [0],
    maxModelLen: Number(o.maxModelLen),
    maxBatch: Number(o.maxBatch),
    drainSeconds: 5,
  };
  log(`starting the server on ${dir}`);
  const t0 = performance.now();
  const server = await startServer(config, logger);
  try {
    const info = await server.engine.ready;
    const loadSeconds = (performance.now() - t0) / 1000;
    log(`loaded in ${loadSeconds.toFixed(1)} s (${info.slots} sequence slots, max_model_len ${info.maxModelLen}) at ${server.urls[0]}`);
    const origin = server.urls[0]!;
    const body = (text: string) =>
      JSON.stringify({ model: config.servedModelName, messages: [{ role: 'user', content: text }], max_tokens: maxTokens, temperature: 0 });
    const send = async (client: Client, payload: string): Promise<{ seconds: number; answer: Completion }> => {
      const s0 = performance.now();
      const res = await client.request({ path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
      const answer = (await res.body.json()) as Completion;
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${JSON.stringify(answer)}`);
      return { seconds: (performance.now() - s0) / 1000, answer };
    };
    const newClient = () => new Client(origin, { pipelining: 1, headersTimeout: 0, bodyTimeout: 0 });

    // Warm-up (first-run allocations, kernel selection; not measured), which also picks the prompt:
    // greedy decoding stops at the same EOS for the same prompt, so the first opening sentence
    // whose completion runs to max_tokens is used (the longest one when none does).
    const warm = newClient();
    let payload = '';
    let best = -1;
    for (let variant = 0; variant < Number(o.promptTries); variant++) {
      const candidate = body(promptText(tokenizer, Number(o.promptTokens), variant));
      const w = await send(warm, candidate);
      const got = w.answer.usage.completion_tokens;
      log(`warm-up, prompt ${variant}: ${w.seconds.toFixed(2)} s, ${w.answer.usage.prompt_tokens} prompt tokens, ${got} generated (${w.answer.choices[0]?.finish_reason})`);
      if (got > best) {
        best = got;
        payload = candidate;
      }
      if (got >= maxTokens) break;
    }
    await warm.close();

    const rows: LoadRow[] = [];
    for (const c of o.concurrency.split(',').map(Number)) {
      const perClient = Math.max(1, Math.ceil(Number(o.requests) / c));
      const clients = Array.from({ length: c }, newClient);
      await pause(200);
      const before = { ...server.engine.stats };
      const firstLine = lines.length;
      const s0 = performance.now();
      const results = (
        await Promise.all(
          clients.map(async (client) => {
            const out: { seconds: number; answer: Completion }[] = [];
            for (let r = 0; r < perClient; r++) out.push(await send(client, payload));
            return out;
          }),
        )
      ).flat();
      const wallSeconds = (performance.now() - s0) / 1000;
      await Promise.all(clients.map((cl) => cl.close()));
      await pause(300); // the worker's last stats message
      const after = server.engine.stats;
      const mine = lines.slice(firstLine).map((l) => l.ms!);
      const completionTokens = results.reduce((n, r) => n + r.answer.usage.completion_tokens, 0);
      const finish: Record<string, number> = {};
      for (const r of results) for (const ch of r.answer.choices) finish[ch.finish_reason] = (finish[ch.finish_reason] ?? 0) + 1;
      const decodeSteps = after.decodeSteps - before.decodeSteps;
      const decodeTokens = after.generatedTokens - before.generatedTokens - results.length; // the first token comes from prefill
      const lat = results.map((r) => r.seconds);
      const row: LoadRow = {
        concurrency: c,
        requests: results.length,
        promptTokens: median(results.map((r) => r.answer.usage.prompt_tokens)),
        completionTokens,
        finish,
        wallSeconds,
        tokensPerSecond: completionTokens / wallSeconds,
        latencyP50Seconds: quantile(lat, 0.5),
        latencyMaxSeconds: Math.max(...lat),
        queueP50Seconds: median(mine.map((m) => m.queue)) / 1000,
        prefillP50Seconds: median(mine.map((m) => m.vision + m.prefill)) / 1000,
        decodeP50Seconds: median(mine.map((m) => m.decode)) / 1000,
        meanDecodeBatch: decodeSteps > 0 ? decodeTokens / decodeSteps : 0,
        decodeSteps,
      };
      rows.push(row);
      log(
        `${c} client(s): ${row.requests} requests, ${completionTokens} tokens in ${wallSeconds.toFixed(1)} s = ${row.tokensPerSecond.toFixed(2)} tok/s, ` +
          `p50 latency ${row.latencyP50Seconds.toFixed(2)} s, mean decode batch ${row.meanDecodeBatch.toFixed(2)}, finish ${JSON.stringify(finish)}`,
      );
    }
    return {
      checkpoint: o.checkpoint,
      modelPath: dir,
      loadSeconds,
      buildSeconds: info.buildMs / 1000,
      slots: info.slots,
      maxModelLen: info.maxModelLen,
      maxTokens,
      peakRssGiB: 0,
      rows,
    };
  } finally {
    await server.close();
  }
}

try {
  const result = await main();
  result.peakRssGiB = process.resourceUsage().maxRSS / 1024 ** 2;
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} catch (err) {
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
}
