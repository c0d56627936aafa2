/**
 * run-multienv: OSWorld tasks in parallel desktop envs against an OpenAI-compatible model
 * server, results in OSWorld's layout. Takes ARPO's run_multienv_uitars.py flags (with _ or -),
 * with the request settings ARPO actually sent as defaults (temperature 0, frequency_penalty 1,
 * max_tokens 4096) — and here the sampling flags do reach the request.
 *
 *   run-multienv --num-envs 8 --trial-id 0
 */
import path from 'node:path';
import { Command, Option } from 'commander';
import { ModelClient } from '../agent/model-client.ts';
import { ReplayAgent } from '../agent/replay-agent.ts';
import { ARPO_UITARS, UITarsAgent } from '../agent/uitars/agent.ts';
import type { Agent } from '../agent/agent.ts';
import type { EnvProvider } from '../env/provider.ts';
import { LocalProvider } from '../env/providers/local/index.ts';
import { RemoteProvider } from '../env/providers/remote.ts';
import { FileCache } from '../env/setup/file-cache.ts';
import { formatSummary, summarizeTrial, writeSummary } from '../results/summary.ts';
import { trialDir, type TrialPath } from '../results/layout.ts';
import { loadTaskList } from '../tasks/load-tasks.ts';
import { runTrial } from '../run/run-trial.ts';

/** OSWorld's flags use underscores; accept both spellings by normalising to dashes. */
export function normaliseArgv(argv: string[]): string[] {
  return argv.map((a) => {
    if (!a.startsWith('--')) return a;
    const eq = a.indexOf('=');
    const name = eq < 0 ? a : a.slice(0, eq);
    return name.replace(/_/g, '-') + (eq < 0 ? '' : a.slice(eq));
  });
}

const num = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number (got "${v}")`);
  return n;
};
const int = (name: string, min: number) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer >= ${min} (got "${v}")`);
  return n;
};
const list = (v: string): string[] => v.split(',').map((s) => s.trim()).filter(Boolean);

export function buildProgram(): Command {
  return new Command()
    .name('run-multienv')
    .description("Run OSWorld tasks in parallel desktop envs against an OpenAI-compatible model server (ARPO's run_multienv_uitars.py flags; _ or - both work).")
    .option('--path-to-vm <path>', 'OSWorld VM image (not used by the local and remote providers)')
    .option('--headless', 'accepted for compatibility; local envs are always headless', false)
    .option('--action-space <s>', 'action space (result path component)', 'pyautogui')
    .addOption(new Option('--observation-type <t>', 'what the agent sees; UI-TARS takes screenshots').choices(['screenshot']).default('screenshot'))
    .option('--screen-width <n>', 'screen width', int('--screen-width', 1), 1920)
    .option('--screen-height <n>', 'screen height', int('--screen-height', 1), 1080)
    .option('--sleep-after-execution <s>', 'seconds to pause after each action', num('--sleep-after-execution'), 1)
    .option('--max-steps <n>', 'model calls per task', int('--max-steps', 1), 15)
    .option('--max-trajectory-length <n>', 'the agent answers FAIL at this many responses (ARPO: 15)', int('--max-trajectory-length', 1), 15)
    .option('--test-config-base-dir <dir>', 'folder with examples/<domain>/<id>.json', 'evaluation_examples')
    .option('--model <name>', 'model name in the result path', 'ui-tars')
    .option('--temperature <t>', 'sampling temperature (ARPO effectively used 0)', num('--temperature'), ARPO_UITARS.temperature)
    .option('--top-p <p>', 'nucleus sampling (ARPO sent none)', num('--top-p'))
    .option('--max-tokens <n>', 'tokens per response', int('--max-tokens', 1), ARPO_UITARS.maxTokens)
    .option('--frequency-penalty <f>', 'frequency penalty', num('--frequency-penalty'), ARPO_UITARS.frequencyPenalty)
    .option('--stop-token <s>', 'accepted for compatibility (unused, as in OSWorld)')
    .option('--domain <d>', 'one domain or "all"', 'all')
    .option('--test-all-meta-path <file>', 'task list {domain: [ids]}', 'evaluation_examples/test_all.json')
    .option('--result-dir <dir>', 'result root', './results')
    .option('--num-envs <n>', 'parallel envs', int('--num-envs', 1), 1)
    .option('--server-ip <url>', 'model server scheme and host', 'http://127.0.0.1')
    .option('--server-port <n>', 'model server base port; env i uses port + (i mod --server-ports)', int('--server-port', 1), 9000)
    .option('--server-ports <k>', 'how many consecutive ports the model servers use (ARPO: 8)', int('--server-ports', 1), 1)
    .option('--trial-id <id>', 'trial id (result path component)', '0')
    .option('--model-urls <urls>', 'model endpoints (comma list of base URLs ending in /v1); env i uses url i mod k', list)
    .option('--served-model-name <name>', 'model name sent in requests', 'ui-tars')
    .addOption(new Option('--agent <kind>', 'uitars: the model; replay: responses from --replay-dir').choices(['uitars', 'replay']).default('uitars'))
    .option('--replay-dir <dir>', 'replay agent: folder with <task-id>.json {"responses": [...]}')
    .addOption(new Option('--coordinates <mode>', 'relative (UI-TARS-2B, 0-1000) or absolute (UI-TARS-1.5)').choices(['relative', 'absolute']).default('relative'))
    .option('--history-n <n>', 'screenshots sent per request (ARPO: 15)', int('--history-n', 1), ARPO_UITARS.historyN)
    .addOption(new Option('--provider <kind>', 'where envs come from').choices(['local', 'remote']).default('local'))
    .option('--env-urls <urls>', 'remote provider: env server base URLs (comma list)', list)
    .option('--env-token <token>', 'remote provider: token for the env servers')
    .option('--cache-dir <dir>', 'files that tasks download at setup, by sha256(url)', '.cache/downloads')
    .option('--task-timeout <s>', 'seconds per task before it is abandoned', num('--task-timeout'), 3600)
    .option('--max-retries <n>', 'retries of a task after an infrastructure error', int('--max-retries', 0), 2)
    .option('--model-retries <n>', 'retries of one model call while the server is unreachable', int('--model-retries', 0), 5)
    .option('--settle-seconds <s>', 'pause after setup before the first screenshot (OSWorld: 5)', num('--settle-seconds'), 5)
    .option('--no-record', 'do not record recording.mp4');
}

interface Flags {
  screenWidth: number;
  screenHeight: number;
  actionSpace: string;
  observationType: string;
  sleepAfterExecution: number;
  maxSteps: number;
  maxTrajectoryLength: number;
  testConfigBaseDir: string;
  model: string;
  temperature: number;
  topP?: number;
  maxTokens: number;
  frequencyPenalty: number;
  domain: string;
  testAllMetaPath: string;
  resultDir: string;
  numEnvs: number;
  serverIp: string;
  serverPort: number;
  serverPorts: number;
  trialId: string;
  modelUrls?: string[];
  servedModelName: string;
  agent: 'uitars' | 'replay';
  replayDir?: string;
  coordinates: 'relative' | 'absolute';
  historyN: number;
  provider: 'local' | 'remote';
  envUrls?: string[];
  envToken?: string;
  cacheDir: string;
  taskTimeout: number;
  maxRetries: number;
  modelRetries: number;
  settleSeconds: number;
  record: boolean;
}

export function modelUrls(f: Pick<Flags, 'modelUrls' | 'serverIp' | 'serverPort' | 'serverPorts'>): string[] {
  if (f.modelUrls?.length) return f.modelUrls;
  return Array.from({ length: f.serverPorts }, (_, i) => `${f.serverIp.replace(/\/$/, '')}:${f.serverPort + i}/v1`);
}

function makeProvider(f: Flags): EnvProvider {
  if (f.provider === 'remote') {
    if (!f.envUrls?.length) throw new Error('--provider remote needs --env-urls');
    return new RemoteProvider(f.envUrls.map((url) => ({ url, token: f.envToken ?? null })));
  }
  return new LocalProvider({ width: f.screenWidth, height: f.screenHeight });
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.parse(normaliseArgv(argv), { from: 'user' });
  const f = program.opts<Flags>();
  if (f.agent === 'replay' && !f.replayDir) throw new Error('--agent replay needs --replay-dir');
  const trial: TrialPath = { resultDir: f.resultDir, actionSpace: f.actionSpace, observationType: f.observationType, model: f.model, trialId: f.trialId };
  const tasks = loadTaskList(f.testAllMetaPath, f.domain);
  const urls = modelUrls(f);
  const log = (line: string): void => console.log(`${new Date().toISOString()} ${line}`);
  log(`trial ${trialDir(trial)}: ${tasks.length} task(s), ${f.numEnvs} env(s), agent ${f.agent}${f.agent === 'uitars' ? ` via ${urls.join(', ')}` : ''}`);
  const makeAgent = (w: number): Agent => {
    if (f.agent === 'replay') return new ReplayAgent(path.resolve(f.replayDir!), f.coordinates === 'relative' ? { kind: 'relative', factor: 1000 } : { kind: 'absolute', width: f.screenWidth, height: f.screenHeight });
    const client = new ModelClient({ baseUrl: urls[w % urls.length]!, model: f.servedModelName, retries: f.modelRetries, timeoutMs: 30 * 60_000, backoffMs: 2000 });
    return new UITarsAgent(client, {
      ...ARPO_UITARS,
      coordinates: f.coordinates,
      historyN: f.historyN,
      maxTrajectoryLength: f.maxTrajectoryLength,
      temperature: f.temperature,
      maxTokens: f.maxTokens,
      frequencyPenalty: f.frequencyPenalty,
      ...(f.topP !== undefined ? { topP: f.topP } : {}),
    });
  };
  const provider = makeProvider(f);
  const stop = async (): Promise<void> => {
    await provider.closeAll().catch(() => {});
    process.exit(130);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
  try {
    const result = await runTrial({
      trial,
      baseDir: f.testConfigBaseDir,
      tasks,
      numEnvs: f.numEnvs,
      maxRetries: f.maxRetries,
      taskTimeoutMs: f.taskTimeout * 1000,
      provider,
      makeAgent,
      cache: new FileCache(path.resolve(f.cacheDir)),
      log,
      maxSteps: f.maxSteps,
      sleepAfterExecutionMs: f.sleepAfterExecution * 1000,
      settleMs: f.settleSeconds * 1000,
      record: f.record,
    });
    const summary = summarizeTrial(trial, tasks);
    const file = writeSummary(summary);
    console.log(formatSummary(summary));
    log(`summary: ${file}; this run: ${result.records.filter((r) => r.status === 'scored').length} scored, ${result.records.filter((r) => r.status === 'error').length} errors, ${result.records.filter((r) => r.status === 'skipped').length} unsupported, ${result.invalid.length} invalid`);
    return 0;
  } finally {
    await provider.closeAll().catch(() => {});
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`run-multienv: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}
