/**
 * Agent episodes through the real server, as run-multienv drives it: each step sends ARPO's
 * history (every earlier screenshot and answer, harness/agent/uitars/history.ts) plus a new
 * screenshot, 800x450 image policy (the seed's), greedy, up to 95 new tokens.
 *  1. one agent, --steps steps: latency per step, and what the caches saved (prompt tokens served
 *     from the prefix cache, images encoded);
 *  2. --agents agents at once, --concurrent-steps steps each, against the first steps of part 1:
 *     aggregate agent steps per minute and generated tokens/s.
 * Prints one JSON line.
 *
 *   npx tsx bench/agents.ts --model .cache/checkpoints/full-bf16 --format int4 --steps 10 --agents 8
 */
import { Command } from 'commander';
import { Pool } from 'undici';
import { defaultServerConfig, parseWeightFormat, type ServerConfig } from '../server/config.ts';
import { startServer } from '../server/server.ts';
import { buildMessages, type StepRecord } from '../harness/agent/uitars/history.ts';
import { collectRequestLogs, type RequestLogLine } from './server-stats.ts';
import { screenshot } from './screens.ts';

const o = new Command()
  .requiredOption('--model <dir>')
  .option('--format <f>', 'weight format', 'int4')
  .option('--steps <n>', 'steps of the single-agent episode', '10')
  .option('--agents <n>', 'concurrent agents in part 2', '8')
  .option('--concurrent-steps <n>', 'steps per agent in part 2', '2')
  .option('--max-tokens <n>', 'max_tokens per step', '95')
  .parse()
  .opts<{ model: string; format: string; steps: string; agents: string; concurrentSteps: string; maxTokens: string }>();

const log = (s: string): void => void process.stderr.write(`bench[agents]: ${s}\n`);
const INSTRUCTION = 'Open the Settings window and turn on dark mode.';

interface StepResult {
  seconds: number;
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  /** The server's per-phase milliseconds for this request (its log line). */
  ms: NonNullable<RequestLogLine['ms']> | null;
}

interface Completion {
  choices: { message: { content: string } }[];
  usage: { prompt_tokens: number; completion_tokens: number; prompt_tokens_details: { cached_tokens: number } };
  id: string;
}

const { logger, lines } = collectRequestLogs();
const config: ServerConfig = {
  ...defaultServerConfig(),
  modelPath: o.model,
  format: parseWeightFormat(o.format),
  ports: [0],
  imagePolicy: '800x450',
  maxModelLen: 8192,
  maxBatch: 8,
  kvCacheGiB: 4,
  drainSeconds: 5,
};
const server = await startServer(config, logger);
const info = await server.engine.ready;
log(`${o.format} loaded (${info.slots} slots) at ${server.urls[0]}`);
const client = new Pool(server.urls[0]!, { connections: 16, headersTimeout: 0, bodyTimeout: 0 });

/** One agent: `steps` steps of its own episode, screenshots numbered from `firstScreen`. */
async function episode(steps: number, firstScreen: number): Promise<StepResult[]> {
  const history: StepRecord[] = [];
  const out: StepResult[] = [];
  for (let k = 0; k < steps; k++) {
    const current = await screenshot(firstScreen + k);
    const body = JSON.stringify({
      model: config.servedModelName,
      messages: buildMessages(INSTRUCTION, history, current, { historyN: 15 }),
      max_tokens: Number(o.maxTokens),
      temperature: 0,
    });
    const t0 = performance.now();
    const res = await client.request({ path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const answer = (await res.body.json()) as Completion;
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${JSON.stringify(answer)}`);
    const seconds = (performance.now() - t0) / 1000;
    const line = lines.find((l) => l.completion_id === answer.id);
    out.push({
      seconds,
      promptTokens: answer.usage.prompt_tokens,
      cachedTokens: answer.usage.prompt_tokens_details.cached_tokens,
      completionTokens: answer.usage.completion_tokens,
      ms: line?.ms ?? null,
    });
    history.push({ screenshot: current, response: answer.choices[0]!.message.content });
  }
  return out;
}

try {
  await episode(1, 9999); // warm-up: first-run allocations and kernel selection
  log(`part 1: one agent, ${o.steps} steps`);
  const single = await episode(Number(o.steps), 0);
  single.forEach((s, i) => log(`step ${i + 1}: ${s.seconds.toFixed(1)} s, ${s.promptTokens} prompt tokens (${s.cachedTokens} cached), ${s.completionTokens} generated`));

  const agents = Number(o.agents);
  const per = Number(o.concurrentSteps);
  log(`part 2: ${agents} agents x ${per} steps at once`);
  const t0 = performance.now();
  const all = await Promise.all(Array.from({ length: agents }, (_, a) => episode(per, 1000 * (a + 1))));
  const wall = (performance.now() - t0) / 1000;
  const oneWall = single.slice(0, per).reduce((s, r) => s + r.seconds, 0);
  const generated = (rs: StepResult[]) => rs.reduce((s, r) => s + r.completionTokens, 0);
  const stats = server.engine.stats;
  console.log(
    JSON.stringify({
      format: o.format,
      single,
      stepRatio: single[single.length - 1]!.seconds / single[0]!.seconds,
      concurrent: {
        agents,
        stepsPerAgent: per,
        wallSeconds: wall,
        stepsPerMinute: (agents * per * 60) / wall,
        tokensPerSecond: generated(all.flat()) / wall,
        oneAgentStepsPerMinute: (per * 60) / oneWall,
        oneAgentTokensPerSecond: generated(single.slice(0, per)) / oneWall,
        perAgentSeconds: all.map((rs) => rs.reduce((s, r) => s + r.seconds, 0)),
      },
      engine: { decodeSteps: stats.decodeSteps, batchedDecodeSteps: stats.batchedDecodeSteps, imageCacheHits: stats.imageCacheHits, imageCacheMisses: stats.imageCacheMisses },
      peakRssGiB: process.resourceUsage().maxRSS / 1024 ** 2,
    }),
  );
} finally {
  await client.close();
  await server.close();
}
