/**
 * Real result folders for the report and comparison tests, written by the harness itself: each
 * trial goes through runTrial -> runTask -> TaskResultWriter (traj.jsonl lines, step PNGs,
 * status.json, result.txt) with scripted UI-TARS responses turned into pyautogui code by the real
 * parser (responseToActions), tasks scored by the real evaluator (exact_match over a
 * vm_command_line getter), then config.json (RunConfigFile), summary.json and report.html as
 * run-multienv writes them. The env is a small fake desktop: it keeps what was typed, clicked and
 * dragged, answers the evaluator's commands from that, and draws its screen with sharp.
 */
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Agent, StepPrediction } from '../../../harness/agent/agent.ts';
import { pngSize } from '../../../harness/agent/uitars/agent.ts';
import { responseToActions } from '../../../harness/agent/uitars/response-actions.ts';
import { EnvClient } from '../../../harness/env/env-client.ts';
import type { EnvHandle, EnvHealth, EnvProvider } from '../../../harness/env/provider.ts';
import { FileCache } from '../../../harness/env/setup/file-cache.ts';
import type { ExecuteResponse } from '../../../harness/env/vm-protocol.ts';
import { trialDir, type TrialPath } from '../../../harness/results/layout.ts';
import { writeTrialReport } from '../../../harness/results/report.ts';
import { summarizeTrial, writeSummary } from '../../../harness/results/summary.ts';
import { RunConfigFile } from '../../../harness/run/run-config.ts';
import { runTrial } from '../../../harness/run/run-trial.ts';
import type { TaskRef } from '../../../harness/tasks/load-tasks.ts';

export const SCREEN = { width: 1280, height: 720 };

/** The tasks: {domain: {id: task config}}. */
export const TASKS: Record<string, Record<string, Record<string, unknown>>> = {
  os: {
    'type-hello': {
      instruction: 'Click into the editor and type the word hello.',
      config: [],
      evaluator: { func: 'exact_match', result: { type: 'vm_command_line', command: 'state typed' }, expected: { type: 'rule', rules: { expected: 'hello' } } },
    },
    'open-menu': {
      instruction: 'Open the File menu, then its Recent submenu.',
      config: [],
      evaluator: { func: 'exact_match', result: { type: 'vm_command_line', command: 'state clicks' }, expected: { type: 'rule', rules: { expected: '2' } } },
    },
  },
  calc: {
    'select-range': {
      instruction: 'Select the cells B2 to D6 by dragging.',
      config: [],
      evaluator: { func: 'exact_match', result: { type: 'vm_command_line', command: 'state drags' }, expected: { type: 'rule', rules: { expected: '1' } } },
    },
    'needs-drive': {
      instruction: 'Open the spreadsheet from Google Drive.',
      config: [{ type: 'no_such_setup_step', parameters: {} }],
      evaluator: { func: 'exact_match', result: { type: 'vm_command_line', command: 'state typed' }, expected: { type: 'rule', rules: { expected: 'x' } } },
    },
  },
};

export const TASK_REFS: TaskRef[] = Object.entries(TASKS).flatMap(([domain, tasks]) => Object.keys(tasks).map((id) => ({ domain, id })));

const R = (thought: string, action: string): string => `Thought: ${thought}\nAction: ${action}`;
const FINISHED = R('The task is done.', "finished(content='done')");

/** UI-TARS responses per task, per trial (0-1000 relative coordinates). */
export const SCRIPTS: Record<string, Record<string, string[]>> = {
  // trial 0: type-hello 1, open-menu 0 (one click), select-range 1
  '0': {
    'type-hello': [R('The editor is in the middle; click into it.', "click(start_box='(500,300)')"), R("Now type the word.", "type(content='hello')"), FINISHED],
    'open-menu': [R('Open the File menu at the top left.', "click(start_box='(80,40)')"), R('The menu may be further down; scroll.', "scroll(start_box='(500,500)', direction='down')"), FINISHED],
    'select-range': [R('Drag from B2 to D6.', "drag(start_box='(200,250)', end_box='(450,600)')"), FINISHED],
  },
  // trial 1: type-hello 0 (a typo), open-menu 1 (two clicks in one response), select-range 1 (the same actions as trial 0)
  '1': {
    'type-hello': [R('The editor is in the middle; click into it.', "click(start_box='(500,300)')"), R('Type it.', "type(content='helo')"), FINISHED],
    'open-menu': [R('Open the File menu, then Recent.', "click(start_box='(80,40)')\n\nclick(start_box='(120,160)')"), FINISHED],
    'select-range': [R('Drag from B2 to D6.', "drag(start_box='(200,250)', end_box='(450,600)')"), FINISHED],
  },
  // trial 2: type-hello 1 (double click first), open-menu 0 (right click), select-range 1
  '2': {
    'type-hello': [R('Double-click the editor.', "left_double(start_box='(500,300)')"), R('Type.', "type(content='hello')"), FINISHED],
    'open-menu': [R('Right-click for a menu.', "right_single(start_box='(80,40)')"), R('Hover the entry.', "hover(start_box='(150,90)')"), FINISHED],
    'select-range': [R('Drag.', "drag(start_box='(200,250)', end_box='(450,600)')"), FINISHED],
  },
};

/** Model latency of a scripted response: a pure function of task and step, so tests can check it. */
export const latencyOf = (step: number): number => 700 + 150 * step;

class ScriptedAgent implements Agent {
  private responses: string[] = [];
  private step = 0;

  constructor(private readonly scripts: Record<string, string[]>) {}

  reset(taskId: string): void {
    this.responses = this.scripts[taskId] ?? [];
    this.step = 0;
  }

  async predict(_instruction: string, screenshot: Uint8Array): Promise<StepPrediction> {
    const text = this.responses[this.step++] ?? FINISHED;
    const { actions } = responseToActions(text, { kind: 'relative', factor: 1000 }, pngSize(screenshot), () => 'WAIT');
    return { prediction: text, actions, calls: [{ latencyMs: latencyOf(this.step), promptTokens: 1000 + 500 * this.step, completionTokens: 30 + this.step }] };
  }
}

const ok = (output: string): ExecuteResponse => ({ status: 'success', output, error: '', returncode: 0 });

/** A desktop that remembers what was done to it. */
class FakeDesktop extends EnvClient {
  typed = '';
  clicks: [number, number][] = [];
  drags = 0;
  scrolls = 0;

  constructor() {
    super('http://127.0.0.1:9');
  }

  clear(): void {
    this.typed = '';
    this.clicks = [];
    this.drags = 0;
    this.scrolls = 0;
  }

  override async execute(command: string | string[]): Promise<ExecuteResponse> {
    if (Array.isArray(command) && command[0] === 'python') {
      const code = command[2] ?? '';
      for (const m of code.matchAll(/pyautogui\.(click|doubleClick)\(([\d.]+), ([\d.]+)/g)) this.clicks.push([Number(m[2]), Number(m[3])]);
      for (const m of code.matchAll(/pyautogui\.write\('((?:[^'\\]|\\.)*)'/g)) this.typed += m[1]!.replace(/\\(.)/g, '$1');
      this.drags += code.match(/pyautogui\.dragTo\(/g)?.length ?? 0;
      this.scrolls += code.match(/pyautogui\.scroll\(/g)?.length ?? 0;
      return ok('');
    }
    const c = Array.isArray(command) ? command.join(' ') : command;
    if (c === 'state typed') return ok(this.typed);
    if (c === 'state clicks') return ok(String(this.clicks.length));
    if (c === 'state drags') return ok(String(this.drags));
    return { status: 'error', message: `unknown command ${c}` };
  }

  /** A screen: a title bar, an editor, a bar per typed character, a dot per click, a band per drag. */
  override async screenshot(): Promise<Buffer> {
    const { width, height } = SCREEN;
    const shapes = [
      `<rect x="0" y="0" width="${width}" height="48" fill="#2b3a55"/>`,
      `<rect x="40" y="90" width="${width - 80}" height="${height - 140}" fill="#ffffff" stroke="#8899aa" stroke-width="3"/>`,
      ...[...this.typed].map((_, i) => `<rect x="${80 + i * 28}" y="130" width="22" height="36" fill="#1f6feb"/>`),
      ...this.clicks.map(([x, y]) => `<circle cx="${x}" cy="${y}" r="10" fill="#e5534b"/>`),
      ...Array.from({ length: this.drags }, (_, i) => `<rect x="256" y="${180 + i * 10}" width="320" height="250" fill="#57ab5a" opacity="0.5"/>`),
      ...Array.from({ length: this.scrolls }, (_, i) => `<rect x="${width - 30}" y="${100 + i * 40}" width="16" height="60" fill="#768390"/>`),
    ];
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${shapes.join('')}</svg>`;
    return sharp({ create: { width, height, channels: 3, background: '#dfe6ee' } }).composite([{ input: Buffer.from(svg) }]).png().toBuffer();
  }
}

class FakeEnv implements EnvHandle {
  readonly baseUrl = 'http://127.0.0.1:9';
  readonly token = null;
  readonly host = '127.0.0.1';
  readonly ports = { server: 9, chromium: null, vlc: null, vnc: null };
  readonly client = new FakeDesktop();
  readonly restarts = 0;
  private closed = false;

  constructor(readonly id: string) {}

  async reset(): Promise<void> {
    this.client.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  isAlive(): boolean {
    return !this.closed;
  }

  async health(): Promise<EnvHealth> {
    return { alive: !this.closed, state: this.closed ? 'closed' : 'ready', restarts: 0 };
  }
}

class FakeProvider implements EnvProvider {
  readonly kind = 'fake';
  private envs: FakeEnv[] = [];

  async start(): Promise<EnvHandle> {
    const env = new FakeEnv(`fake-${this.envs.length}`);
    this.envs.push(env);
    return env;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.envs.map((e) => e.close()));
  }
}

export interface Results {
  resultDir: string;
  baseDir: string;
  /** task list file {domain: [ids]} */
  meta: string;
  /** {resultDir}/pyautogui/screenshot/{model} */
  modelRoot: string;
  trial(id: string): string;
}

/** The task configs under {dir}/tasks/examples and the task list {dir}/list.json. */
export function writeTasks(dir: string): { baseDir: string; meta: string } {
  const baseDir = path.join(dir, 'tasks');
  for (const [domain, tasks] of Object.entries(TASKS)) {
    fs.mkdirSync(path.join(baseDir, 'examples', domain), { recursive: true });
    for (const [id, task] of Object.entries(tasks)) fs.writeFileSync(path.join(baseDir, 'examples', domain, `${id}.json`), JSON.stringify({ id, ...task }, null, 2));
  }
  const meta = path.join(dir, 'list.json');
  fs.writeFileSync(meta, JSON.stringify(Object.fromEntries(Object.entries(TASKS).map(([d, t]) => [d, Object.keys(t)]))));
  return { baseDir, meta };
}

/** The config run-multienv records (config.json), with this trial's sampling and history. */
function recordConfig(trial: TrialPath, dir: string, baseDir: string, meta: string, o: { temperature: number; historyN: number }): void {
  new RunConfigFile(path.join(dir, 'config.json'), {
    version: 1,
    startedAt: new Date().toISOString(),
    argv: ['--trial-id', trial.trialId, '--temperature', String(o.temperature), '--history-n', String(o.historyN)],
    harness: { name: 'uitars-osworld', version: '0.1.0', commit: null, dirty: null },
    trial: { ...trial, dir },
    model: { servedName: 'ui-tars', endpoints: ['http://127.0.0.1:9000/v1'], id: 'ui-tars', root: '/models/UI-TARS-2B-SFT', ownedBy: 'uitars-osworld', maxModelLen: 32768 },
    agent: { kind: 'uitars', coordinates: 'relative', coordinatesSource: 'server', coordinatesReason: 'our server', maxSteps: 15, maxTrajectoryLength: 15, historyN: o.historyN, callUserTolerance: 3, maxTries: 3, promptVariant: 'eval' },
    sampling: { temperature: o.temperature, top_p: null, max_tokens: 4096, frequency_penalty: 1, temperatureAfterParseError: 1, sent: [{ model: 'ui-tars', temperature: o.temperature, max_tokens: 4096, frequency_penalty: 1 }] },
    image: { screen: SCREEN, minPixels: 78400, maxPixels: 12845056, resized: [] },
    taskSet: { metaPath: meta, baseDir, domain: 'all', count: TASK_REFS.length, excludedTags: [], excluded: {}, invalid: 0, hash: 'f'.repeat(64) },
    run: { numEnvs: 1, provider: 'local', taskTimeoutS: 3600, maxRetries: 0, modelRetries: 5, modelBackoffS: 2, sleepAfterExecutionS: 0, settleS: 0, record: false },
  }).write();
}

/**
 * Runs the given trials of the fixture tasks into {dir}/results, as run-multienv does: config.json,
 * the tasks, summary.json and report.html.
 */
export async function buildResults(dir: string, trials: string[] = ['0', '1', '2']): Promise<Results> {
  const { baseDir, meta } = writeTasks(dir);
  const resultDir = path.join(dir, 'results');
  for (const trialId of trials) {
    const trial: TrialPath = { resultDir, actionSpace: 'pyautogui', observationType: 'screenshot', model: 'ui-tars', trialId };
    const tdir = trialDir(trial);
    fs.mkdirSync(tdir, { recursive: true });
    recordConfig(trial, tdir, baseDir, meta, trialId === '1' ? { temperature: 1, historyN: 5 } : { temperature: 0, historyN: 15 });
    const provider = new FakeProvider();
    await runTrial({
      trial,
      baseDir,
      tasks: TASK_REFS,
      numEnvs: 1,
      maxRetries: 0,
      taskTimeoutMs: 60_000,
      provider,
      makeAgent: () => new ScriptedAgent(SCRIPTS[trialId] ?? {}),
      cache: new FileCache(null),
      log: () => {},
      maxSteps: 15,
      sleepAfterExecutionMs: 0,
      settleMs: 0,
      record: false,
    });
    await provider.closeAll();
    const summary = summarizeTrial(trial, TASK_REFS);
    writeTrialReport(tdir, TASK_REFS, summary, (line) => {
      throw new Error(line);
    });
    writeSummary(summary);
  }
  const modelRoot = path.join(resultDir, 'pyautogui/screenshot/ui-tars');
  return { resultDir, baseDir, meta, modelRoot, trial: (id) => path.join(modelRoot, id) };
}
