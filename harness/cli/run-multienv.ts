/**
 * run-multienv: OSWorld tasks in parallel desktop envs against an OpenAI-compatible model
 * server, results in OSWorld's layout. Takes ARPO's run_multienv_uitars.py flags (with _ or -),
 * with the request settings ARPO actually sent as defaults (temperature 0, frequency_penalty 1,
 * max_tokens 4096) — and here the sampling flags do reach the request.
 *
 *   run-multienv --num-envs 8 --trial-id 0
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { ModelClient } from '../agent/model-client.ts';
import { ModelPool } from '../agent/model-pool.ts';
import { ReplayAgent } from '../agent/replay-agent.ts';
import { ARPO_UITARS, UITarsAgent } from '../agent/uitars/agent.ts';
import type { Agent } from '../agent/agent.ts';
import type { EnvProvider } from '../env/provider.ts';
import { defaultBaseDir, LocalProvider } from '../env/providers/local/index.ts';
import { RemoteProvider } from '../env/providers/remote.ts';
import { FileCache } from '../env/setup/file-cache.ts';
import { formatSummary, summarizeTrial, writeSummary } from '../results/summary.ts';
import { writeTrialReport } from '../results/report.ts';
import { trialDir, type TrialPath } from '../results/layout.ts';
import { loadTask, loadTaskList, type InvalidTask, type LoadedTask, type TaskRef } from '../tasks/load-tasks.ts';
import { runTrial } from '../run/run-trial.ts';
import { sweepEvalScratch, sweepStaleEnvs, sweepTempFiles } from '../run/cleanup.ts';
import { acquireTrialLock, TrialBusyError } from '../run/trial-lock.ts';
import { defaultQueueName, QueueUnavailableError, RedisTaskQueue } from '../run/redis-queue.ts';
import { redactRedisUrl } from '../run/resp-client.ts';
import { assertNoQueueMembers, joinSharedTrial, sharedTrialToken } from '../run/shared-trial.ts';
import { runDoctor } from '../run/doctor.ts';
import { intFlag as int, normaliseArgv, pathComponentFlag, numberFlag as num, secondsFlag as seconds } from './argv.ts';
import { RunProgress, runLogName } from '../run/progress.ts';
import { coordinatesFor, harnessVersion, probeModels, RunConfigFile, taskSetHash, type CoordinateSource, type ServedModel } from '../run/run-config.ts';
import { parseTags, TASK_TAGS, taskTags, type TaskTag } from '../run/task-tags.ts';

export { normaliseArgv };

const list = (v: string): string[] => v.split(',').map((s) => s.trim()).filter(Boolean);

export function buildProgram(): Command {
  return new Command()
    .name('run-multienv')
    .description("Run OSWorld tasks in parallel desktop envs against an OpenAI-compatible model server (ARPO's run_multienv_uitars.py flags; _ or - both work).")
    .option('--path-to-vm <path>', 'OSWorld VM image (not used by the local and remote providers)')
    .option('--headless', 'accepted for compatibility; local envs are always headless', false)
    .option('--action-space <s>', 'action space (result path component)', pathComponentFlag('--action-space'), 'pyautogui')
    .addOption(new Option('--observation-type <t>', 'what the agent sees; UI-TARS takes screenshots').choices(['screenshot']).default('screenshot'))
    .option('--screen-width <n>', 'screen width', int('--screen-width', 1), 1920)
    .option('--screen-height <n>', 'screen height', int('--screen-height', 1), 1080)
    .option('--sleep-after-execution <s>', 'seconds to pause after each action', seconds('--sleep-after-execution', { min: 0 }), 1)
    .option('--max-steps <n>', 'model calls per task', int('--max-steps', 1), 15)
    .option('--max-trajectory-length <n>', 'the agent answers FAIL at this many responses (ARPO: 15)', int('--max-trajectory-length', 1), 15)
    .option('--test-config-base-dir <dir>', 'folder with examples/<domain>/<id>.json', 'evaluation_examples')
    .option('--model <name>', 'model name in the result path', pathComponentFlag('--model'), 'ui-tars')
    .option('--temperature <t>', 'sampling temperature (ARPO effectively used 0)', num('--temperature', { min: 0 }), ARPO_UITARS.temperature)
    .option('--top-p <p>', 'nucleus sampling (ARPO sent none)', num('--top-p', { above: 0, max: 1 }))
    .option('--max-tokens <n>', 'tokens per response', int('--max-tokens', 1), ARPO_UITARS.maxTokens)
    .option('--frequency-penalty <f>', 'frequency penalty', num('--frequency-penalty', { min: -2, max: 2 }), ARPO_UITARS.frequencyPenalty)
    .option('--stop-token <s>', 'accepted for compatibility (unused, as in OSWorld)')
    .option('--domain <d>', 'one domain or "all"', 'all')
    .option('--test-all-meta-path <file>', 'task list {domain: [ids]}', 'evaluation_examples/test_all.json')
    .option('--result-dir <dir>', 'result root', './results')
    .option('--num-envs <n>', 'parallel envs', int('--num-envs', 1), 1)
    .option('--server-ip <url>', 'model server scheme and host', 'http://127.0.0.1')
    .option('--server-port <n>', 'model server base port; env i uses port + (i mod --server-ports)', int('--server-port', 1, 65535), 9000)
    .option('--server-ports <k>', 'how many consecutive ports the model servers use (ARPO: 8)', int('--server-ports', 1, 65535), 1)
    .option('--trial-id <id>', 'trial id (result path component)', pathComponentFlag('--trial-id'), '0')
    .option('--model-urls <urls>', 'model endpoints (comma list of base URLs ending in /v1); each request goes to the least busy one (overrides --server-ip/--server-port)', list)
    .option('--model-url <url>', 'a model endpoint (base URL ending in /v1); repeatable or a comma list, joins --model-urls', (v: string, prev: string[] = []) => [...prev, ...list(v)])
    .option('--model-down-seconds <s>', 'with several endpoints: how long one that failed (refused, timeout, 429, 5xx) is skipped before it gets requests again', seconds('--model-down-seconds', { min: 0 }), 30)
    .option('--queue <redis-url>', "share the trial's tasks with other run-multienv processes (other machines too) through a Redis queue: redis://[user:password@]host[:port][/db]")
    .option('--queue-name <name>', 'the shared queue (default: from the result path: osworld/<action space>/<observation type>/<model>/<trial id>)')
    .option('--queue-lock-seconds <s>', "--queue: a task whose process stops renewing its claim for this long (it died) goes back to the queue", seconds('--queue-lock-seconds', { min: 1 }), 30)
    .option('--served-model-name <name>', 'model name sent in requests', 'ui-tars')
    .addOption(new Option('--agent <kind>', 'uitars: the model; replay: responses from --replay-dir').choices(['uitars', 'replay']).default('uitars'))
    .option('--replay-dir <dir>', 'replay agent: folder with <task-id>.json {"responses": [...]}')
    .addOption(new Option('--coordinates <mode>', 'relative (UI-TARS-2B, 0-1000) or absolute (UI-TARS-1.5); default: from the model the server reports (/v1/models), else relative').choices(['relative', 'absolute']))
    .option('--history-n <n>', 'screenshots sent per request (ARPO: 15)', int('--history-n', 1), ARPO_UITARS.historyN)
    .addOption(new Option('--provider <kind>', 'where envs come from').choices(['local', 'remote']).default('local'))
    .option('--env-urls <urls>', 'remote provider: env server base URLs (comma list)', list)
    .option('--env-token <token>', 'remote provider: token for the env servers')
    .option('--cache-dir <dir>', 'files that tasks download at setup, by sha256(url)', '.cache/downloads')
    .option('--task-timeout <s>', 'seconds per task before it is abandoned', seconds('--task-timeout', { above: 0 }), 3600)
    .option('--max-retries <n>', 'retries of a task after an infrastructure error', int('--max-retries', 0), 2)
    .option('--model-retries <n>', 'retries of one model call while the server is unreachable', int('--model-retries', 0), 5)
    .option('--model-backoff <s>', 'first wait (s) before retrying a model call; doubles each retry (Retry-After wins when longer)', seconds('--model-backoff', { min: 0 }), 2)
    .option('--settle-seconds <s>', 'pause after setup before the first screenshot (OSWorld: 5)', seconds('--settle-seconds', { min: 0 }), 5)
    .option('--no-record', 'do not record recording.mp4')
    .option('--exclude-tag <tags>', `leave out tasks with these tags (repeatable or comma list: ${TASK_TAGS.join(', ')})`, (v: string, prev: string[] = []) => [...prev, v])
    .option('--doctor', 'check the model server, the env provider, disk and memory, then exit (= the doctor subcommand)', false)
    .option('--require-apps <bins>', 'doctor: binaries to require on top of those the task list needs (comma list)', list);
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
  modelUrl?: string[];
  modelDownSeconds: number;
  queue?: string;
  queueName?: string;
  queueLockSeconds: number;
  servedModelName: string;
  agent: 'uitars' | 'replay';
  replayDir?: string;
  coordinates?: 'relative' | 'absolute';
  excludeTag?: string[];
  doctor: boolean;
  requireApps?: string[];
  historyN: number;
  provider: 'local' | 'remote';
  envUrls?: string[];
  envToken?: string;
  cacheDir: string;
  taskTimeout: number;
  maxRetries: number;
  modelRetries: number;
  modelBackoff: number;
  settleSeconds: number;
  record: boolean;
}

export function modelUrls(f: Pick<Flags, 'modelUrls' | 'serverIp' | 'serverPort' | 'serverPorts'> & Partial<Pick<Flags, 'modelUrl'>>): string[] {
  const given = [...(f.modelUrls ?? []), ...(f.modelUrl ?? [])].map((u) => u.replace(/\/$/, ''));
  if (given.length) return [...new Set(given)];
  return Array.from({ length: f.serverPorts }, (_, i) => `${f.serverIp.replace(/\/$/, '')}:${f.serverPort + i}/v1`);
}

const isHttpUrl = (u: string): boolean => {
  try {
    return ['http:', 'https:'].includes(new URL(u).protocol);
  } catch {
    return false;
  }
};

/**
 * The env provider, every check on its flags done here, before anything is written. Remote: one
 * env server per worker (a desktop driven by two workers at once would mix their tasks), so fewer
 * distinct --env-urls than --num-envs is refused; extra URLs are spares for envs started again.
 */
function makeProvider(f: Flags): EnvProvider {
  if (f.provider === 'remote') {
    const urls = f.envUrls ?? [];
    if (!urls.length) throw new UsageError('--provider remote needs --env-urls URL[,URL...] (one env server per --num-envs)');
    const bad = urls.find((u) => !isHttpUrl(u));
    if (bad !== undefined) throw new UsageError(`--env-urls: "${bad}" is not an http(s) URL`);
    const twice = urls.find((u, i) => urls.indexOf(u) !== i);
    if (twice !== undefined) throw new UsageError(`--env-urls lists ${twice} twice: each env server serves one worker`);
    if (urls.length < f.numEnvs) {
      throw new UsageError(`--provider remote has ${urls.length} env URL(s) for --num-envs ${f.numEnvs}: each env server serves one worker at a time; give ${f.numEnvs} URLs or --num-envs ${urls.length}`);
    }
    return new RemoteProvider(urls.map((url) => ({ url, token: f.envToken ?? null })));
  }
  return new LocalProvider({ width: f.screenWidth, height: f.screenHeight });
}

/** A clear one-line error for the CLI (exit 1), before anything is written. */
export class UsageError extends Error {}

/** Checks between flags (each flag's own range is checked by its parser in buildProgram). */
function checkFlags(f: Flags): void {
  if (f.agent === 'replay' && !f.replayDir) throw new UsageError('--agent replay needs --replay-dir');
  if (!f.modelUrls?.length && !f.modelUrl?.length && f.serverPort + f.serverPorts - 1 > 65535) {
    throw new UsageError(`--server-port ${f.serverPort} with --server-ports ${f.serverPorts} goes past port 65535`);
  }
}

interface LoadedList {
  tasks: TaskRef[];
  loaded: Map<string, LoadedTask | InvalidTask>;
  invalid: InvalidTask[];
  tags: Map<string, TaskTag[]>;
  excluded: Record<string, number>;
}

/** The task list, every config read once (invalid ones reported), tagged, excluded tags left out. */
function loadList(f: Flags, exclude: TaskTag[]): LoadedList {
  const all = loadTaskList(f.testAllMetaPath, f.domain, (ref) => console.error(`run-multienv: ${f.testAllMetaPath} lists ${ref.domain}/${ref.id} more than once: it runs once`));
  const loaded = new Map<string, LoadedTask | InvalidTask>();
  const tags = new Map<string, TaskTag[]>();
  const invalid: InvalidTask[] = [];
  const excluded: Record<string, number> = {};
  const tasks: TaskRef[] = [];
  for (const ref of all) {
    const key = `${ref.domain}/${ref.id}`;
    const l = loadTask(f.testConfigBaseDir, ref);
    loaded.set(key, l);
    if ('error' in l) {
      invalid.push(l);
      tasks.push(ref);
      continue;
    }
    const t = taskTags(l.task, ref.domain);
    tags.set(key, t);
    const hit = t.filter((x) => exclude.includes(x));
    if (hit.length) {
      for (const x of hit) excluded[x] = (excluded[x] ?? 0) + 1;
      continue;
    }
    tasks.push(ref);
  }
  return { tasks, loaded, invalid, tags, excluded };
}

export async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  if (args[0] === 'report') {
    const { reportMain } = await import('./report.ts');
    return reportMain(args.slice(1));
  }
  const doctorCmd = args[0] === 'doctor';
  if (doctorCmd) args.shift();
  const program = buildProgram();
  program.parse(normaliseArgv(args), { from: 'user' });
  const f = program.opts<Flags>();
  checkFlags(f);
  const provider = makeProvider(f);
  const exclude = parseTags(f.excludeTag ?? []);
  const trial: TrialPath = { resultDir: f.resultDir, actionSpace: f.actionSpace, observationType: f.observationType, model: f.model, trialId: f.trialId };
  const list = loadList(f, exclude);
  const urls = modelUrls(f);

  if (doctorCmd || f.doctor) {
    const report = await runDoctor({
      modelUrls: f.agent === 'uitars' ? urls : null,
      servedModelName: f.servedModelName,
      provider,
      providerKind: f.provider,
      domains: [...new Set(list.tasks.map((t) => t.domain))],
      requireApps: f.requireApps ?? [],
      record: f.record,
      resultDir: f.resultDir,
      numEnvs: f.numEnvs,
      tasks: list.tasks.length,
      envBaseDir: f.provider === 'local' ? defaultBaseDir() : undefined,
    } as Parameters<typeof runDoctor>[0]);
    if (f.queue) {
      const q = new RedisTaskQueue({ url: f.queue, name: f.queueName ?? defaultQueueName(trial), trial, lockMs: Math.round(f.queueLockSeconds * 1000), log: () => {} });
      try {
        await q.connect();
        report.ok.push(`queue ${q.where}: reachable, ${await q.openJobs()} task(s) waiting or running`);
      } catch (err) {
        report.problems.push(`${(err as Error).message}: start Redis or fix --queue`);
      } finally {
        await q.close();
      }
    }
    for (const line of report.ok) console.log(`ok: ${line}`);
    for (const inv of list.invalid) report.problems.push(`invalid task ${inv.file}: ${inv.error}`);
    for (const line of report.problems) console.error(`problem: ${line}`);
    console.log(report.problems.length ? `doctor: ${report.problems.length} problem(s)` : 'doctor: all checks passed');
    return report.problems.length ? 1 : 0;
  }

  // The model: ask the server what it serves (model id, checkpoint, coordinate mode).
  let served: ServedModel | undefined;
  let coordinates: 'relative' | 'absolute' = f.coordinates ?? 'relative';
  let coordinatesSource: CoordinateSource = f.coordinates ? 'flag' : 'default';
  let coordinatesReason = f.coordinates ? '--coordinates' : 'no model server asked (replay agent): relative';
  // With several endpoints, one that does not answer now starts marked down (the others carry the run).
  const unreachable: { url: string; error: string }[] = [];
  if (f.agent === 'uitars') {
    for (const url of [...new Set(urls)]) {
      let probe;
      try {
        probe = await probeModels(url);
      } catch (err) {
        if (urls.length > 1) {
          unreachable.push({ url, error: (err as Error).message });
          continue;
        }
        throw new UsageError(`${(err as Error).message}: start it or fix --model-urls / --server-ip / --server-port (run-multienv doctor checks this)`);
      }
      const m = probe.models.find((x) => x.id === f.servedModelName);
      if (!m) throw new UsageError(`model server ${url} serves ${probe.models.map((x) => `"${x.id}"`).join(', ') || 'no model'}, not "${f.servedModelName}": pass --served-model-name`);
      served ??= m;
    }
    if (unreachable.length === urls.length) {
      throw new UsageError(`no model server answers: ${unreachable.map((u) => u.error).join('; ')}: start them or fix --model-url(s) / --server-ip / --server-port (run-multienv doctor checks this)`);
    }
    for (const u of unreachable) console.error(`run-multienv: warning: ${u.error}; the run starts without it and tries it again later`);
    if (!f.coordinates) {
      const guess = coordinatesFor(served);
      coordinates = guess?.mode ?? 'relative';
      coordinatesSource = guess ? 'server' : 'default';
      coordinatesReason = guess?.reason ?? `cannot tell from "${served?.root ?? served?.id}": relative (pass --coordinates to choose)`;
    }
  }

  const dir = trialDir(trial);
  fs.mkdirSync(dir, { recursive: true });
  // --queue: this process is one of several sharing the trial (redis-queue.ts); else it owns the trial.
  const queueName = f.queueName ?? defaultQueueName(trial);
  // The queue's lines go to stderr until the run log is open.
  let queueLog = (line: string): void => console.error(`run-multienv: ${line}`);
  const shared = f.queue
    ? new RedisTaskQueue({ url: f.queue, name: queueName, trial, lockMs: Math.round(f.queueLockSeconds * 1000), taskSetHash: taskSetHash(f.testConfigBaseDir, list.tasks), trialToken: sharedTrialToken(dir), log: (line) => queueLog(line) })
    : undefined;
  if (shared) {
    try {
      await shared.connect();
    } catch (err) {
      await shared.close();
      throw new UsageError(err instanceof QueueUnavailableError ? `${err.message}: start Redis or fix --queue` : (err as Error).message);
    }
  }
  let releaseLock: () => void;
  try {
    if (f.queue) releaseLock = joinSharedTrial(dir, `${redactRedisUrl(f.queue)} ${queueName}`);
    else {
      releaseLock = acquireTrialLock(dir, argv);
      try {
        assertNoQueueMembers(dir);
      } catch (err) {
        releaseLock();
        throw err;
      }
    }
  } catch (err) {
    await shared?.close();
    if (err instanceof TrialBusyError) throw new UsageError(err.message);
    throw err;
  }
  let progress: RunProgress;
  try {
    progress = new RunProgress({ logFile: path.join(dir, 'logs', runLogName(new Date(), shared ? shared.id : undefined)) });
  } catch (err) {
    await shared?.close();
    releaseLock();
    throw err;
  }
  const log = progress.log;
  queueLog = log;
  const pool = f.agent === 'uitars'
    ? new ModelPool({
        urls,
        downMs: f.modelDownSeconds * 1000,
        onDown: (s, reason, ms) => log(`model server ${s.url} marked down for ${(ms / 1000).toFixed(1)} s: ${reason}`),
        onUp: (s) => log(`model server ${s.url} answers again`),
      })
    : undefined;
  for (const u of unreachable) pool?.markDown(u.url, u.error);
  let onSignal: ((signal: NodeJS.Signals) => void) | undefined;
  try {
    // What a killed run (even SIGKILL) left behind: temp files of atomic writes, its desktops'
    // dirs and any process still in them, evaluation scratch dirs (cleanup.ts).
    // Shared with other machines (--queue): their writers' pids mean nothing here; only old files go.
    const swept = sweepTempFiles(dir, shared ? { minAgeMs: 10 * 60_000 } : {});
    if (swept) log(`removed ${swept} temporary file(s) left by a killed run`);
    if (provider instanceof LocalProvider) sweepStaleEnvs(provider.baseDir, log);
    sweepEvalScratch(log);
    // runTrial logs each invalid task (and counts them); stderr gets one line each too.
    for (const inv of list.invalid) console.error(`run-multienv: invalid task ${inv.file}: ${inv.error}`);
    const excludedNote = Object.entries(list.excluded).map(([k, n]) => `${n} ${k}`).join(', ');
    log(`trial ${dir}: ${list.tasks.length} task(s)${excludedNote ? ` (left out: ${excludedNote})` : ''}, ${f.numEnvs} env(s), agent ${f.agent}${f.agent === 'uitars' ? ` via ${urls.join(', ')} (model ${served?.id}${served?.root ? `, ${served.root}` : ''})` : ''}, coordinates ${coordinates} (${coordinatesReason})`);

    const config = new RunConfigFile(
      path.join(dir, 'config.json'),
      {
        version: 1,
        startedAt: new Date().toISOString(),
        argv,
        harness: harnessVersion(),
        trial: { ...trial, dir },
        model: f.agent === 'uitars'
          ? { servedName: f.servedModelName, endpoints: urls, id: served?.id ?? null, root: served?.root ?? null, ownedBy: served?.owned_by ?? null, maxModelLen: served?.max_model_len ?? null }
          : { agent: 'replay', replayDir: path.resolve(f.replayDir!) },
        agent: {
          kind: f.agent,
          coordinates,
          coordinatesSource,
          coordinatesReason,
          maxSteps: f.maxSteps,
          maxTrajectoryLength: f.maxTrajectoryLength,
          historyN: f.historyN,
          callUserTolerance: ARPO_UITARS.callUserTolerance,
          maxTries: ARPO_UITARS.maxTries,
          promptVariant: ARPO_UITARS.promptVariant,
        },
        sampling: {
          temperature: f.temperature,
          top_p: f.topP ?? null,
          max_tokens: f.maxTokens,
          frequency_penalty: f.frequencyPenalty,
          temperatureAfterParseError: 1,
          sent: [],
        },
        image: { screen: { width: f.screenWidth, height: f.screenHeight }, minPixels: ARPO_UITARS.minPixels, maxPixels: ARPO_UITARS.maxPixels, resized: [] },
        taskSet: {
          metaPath: path.resolve(f.testAllMetaPath),
          baseDir: path.resolve(f.testConfigBaseDir),
          domain: f.domain,
          count: list.tasks.length,
          excludedTags: exclude,
          excluded: list.excluded,
          invalid: list.invalid.length,
          hash: taskSetHash(f.testConfigBaseDir, list.tasks),
        },
        run: {
          ...(f.queue ? { queue: { url: redactRedisUrl(f.queue), name: queueName, process: shared?.id, lockS: f.queueLockSeconds } } : {}),
          numEnvs: f.numEnvs,
          provider: f.provider,
          taskTimeoutS: f.taskTimeout,
          maxRetries: f.maxRetries,
          modelRetries: f.modelRetries,
          modelBackoffS: f.modelBackoff,
          sleepAfterExecutionS: f.sleepAfterExecution,
          settleS: f.settleSeconds,
          record: f.record,
        },
      },
      log,
    );
    config.compareWithPrevious();
    config.write();

    const makeAgent = (w: number): Agent => {
      if (f.agent === 'replay') return new ReplayAgent(path.resolve(f.replayDir!), coordinates === 'relative' ? { kind: 'relative', factor: 1000 } : { kind: 'absolute', width: f.screenWidth, height: f.screenHeight });
      const client = new ModelClient({
        pool: pool!,
        model: f.servedModelName,
        retries: f.modelRetries,
        timeoutMs: 30 * 60_000,
        backoffMs: f.modelBackoff * 1000,
        observer: (info) => config.observe(info.sent, info.images),
        onRetry: (r) => log(`[env ${w}] model server ${r.url}: ${r.error}; retry ${r.retry}/${r.of} in ${(r.waitMs / 1000).toFixed(1)} s`),
        onFailover: (r) => log(`[env ${w}] model server ${r.from}: ${r.error}; sent to another server`),
      });
      return new UITarsAgent(client, {
        ...ARPO_UITARS,
        coordinates,
        historyN: f.historyN,
        maxTrajectoryLength: f.maxTrajectoryLength,
        temperature: f.temperature,
        maxTokens: f.maxTokens,
        frequencyPenalty: f.frequencyPenalty,
        ...(f.topP !== undefined ? { topP: f.topP } : {}),
      });
    };
    // SIGINT / SIGTERM: runTrial stops taking tasks, hands the running ones back and returns; the
    // summary is written and everything closed in order below (exit 130). A second signal exits at once.
    const stopping = new AbortController();
    onSignal = (signal: NodeJS.Signals): void => {
      if (stopping.signal.aborted) {
        console.error(`run-multienv: ${signal} again: exiting without waiting`);
        process.exit(130);
      }
      log(`${signal}: interrupted; stopping: no new task, running tasks handed back`);
      stopping.abort(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const result = await runTrial({
      trial,
      baseDir: f.testConfigBaseDir,
      tasks: list.tasks,
      loaded: list.loaded,
      tagsOf: (ref) => list.tags.get(`${ref.domain}/${ref.id}`) ?? [],
      numEnvs: f.numEnvs,
      maxRetries: f.maxRetries,
      taskTimeoutMs: f.taskTimeout * 1000,
      provider,
      makeAgent,
      cache: new FileCache(path.resolve(f.cacheDir)),
      log,
      onQueue: ({ toRun }) => progress.start(toRun),
      onTaskEnd: (r) => progress.taskEnded(r.outcome),
      maxSteps: f.maxSteps,
      sleepAfterExecutionMs: f.sleepAfterExecution * 1000,
      settleMs: f.settleSeconds * 1000,
      record: f.record,
      stop: stopping.signal,
      ...(shared ? { shared } : {}),
    });
    if (shared) {
      const ran = result.records.map((r) => `${r.domain}/${r.id}`);
      log(`queue ${queueName}: this process (${shared.id}) ran ${ran.length} task(s)${ran.length ? `: ${ran.join(', ')}` : ''}`);
    }
    if (pool && pool.servers.length > 1) {
      log(`model servers: ${pool.stats().map((x) => `${x.url} ${x.ok}/${x.requests} ok${x.failures ? `, ${x.failures} failed` : ''}${x.up ? '' : ', down'}`).join('; ')}`);
    }
    const summary = summarizeTrial(trial, list.tasks, list.invalid.map((i) => ({ domain: i.domain, id: i.id, file: i.file, error: i.error })));
    if (result.interrupted) summary.interrupted = { signal: String(stopping.signal.reason), at: new Date().toISOString() };
    const report = writeTrialReport(dir, list.tasks, summary, log);
    const file = writeSummary(summary);
    progress.print(formatSummary(summary));
    const count = (o: string): number => result.records.filter((r) => r.outcome === o).length;
    log(
      `summary: ${file}; ${report ? `report: ${report}; ` : ''}this run: ${result.records.length} task(s): ${count('success')} success, ${count('fail')} fail, ${count('parse_error')} parse_error, ${count('model_error')} model_error, ${count('timeout')} timeout, ${count('infra_error')} infra_error; ${list.invalid.length} invalid`,
    );
    if (result.interrupted) {
      log(`interrupted by ${String(stopping.signal.reason)}: ${result.records.length} task(s) ended before the stop; the rest is left for a later run`);
      return 130;
    }
    return list.invalid.length ? 1 : 0;
  } finally {
    if (onSignal) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    progress.close();
    await provider.closeAll().catch(() => {});
    await shared?.close().catch(() => {});
    releaseLock();
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
