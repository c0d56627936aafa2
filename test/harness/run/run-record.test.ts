/**
 * What a run records: config.json (model and checkpoint from /v1/models, sampling actually sent,
 * the resized image size the server reports, coordinate mode from the server), per-task status
 * (status.json; summary.json counts per status, score over all and over cleanly finished tasks),
 * loops (same action on an unchanged screen), and the pieces behind them.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { relativeRangeWarnings } from '../../../harness/agent/uitars/agent.ts';
import { main } from '../../../harness/cli/run-multienv.ts';
import { summarizeTrial } from '../../../harness/results/summary.ts';
import { sweepTempFiles } from '../../../harness/run/cleanup.ts';
import { RunProgress } from '../../../harness/run/progress.ts';
import { coordinatesFor } from '../../../harness/run/run-config.ts';
import { LoopDetector } from '../../../harness/run/run-task.ts';
import { parseTags, taskTags } from '../../../harness/run/task-tags.ts';
import type { Task } from '../../../harness/tasks/task-schema.ts';
import { REPO_ROOT } from '../../../server/model/checkpoint/tiny.ts';
import { startTestServer } from '../../helpers/server.ts';

const LOCAL = path.join(REPO_ROOT, 'evaluation_examples/local');
const HELLO = 'local-os-hello-file';
const common = (dir: string, results: string, id = HELLO): string[] => {
  const list = path.join(dir, `list-${id}.json`);
  fs.writeFileSync(list, JSON.stringify({ os: [id] }));
  return ['--test_config_base_dir', LOCAL, '--test_all_meta_path', list, '--result_dir', results, '--sleep_after_execution', '0.3', '--settle-seconds', '0.5', '--no-record'];
};
const readJson = (f: string): any => JSON.parse(fs.readFileSync(f, 'utf8')); // eslint-disable-line @typescript-eslint/no-explicit-any

t.test('against the real server: config.json says what ran; an agent that gives up is parse_error', async (t) => {
  const server = await startTestServer(t, {});
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  t.equal(await main([...common(dir, results), '--model-urls', `${server.url}/v1`, '--max-tokens', '16', '--max-steps', '1', '--model', 'tiny']), 0);
  const trial = path.join(results, 'pyautogui/screenshot/tiny/0');
  const config = readJson(path.join(trial, 'config.json'));
  t.match(config.model, { servedName: 'ui-tars', id: 'ui-tars', root: /\S/, ownedBy: 'uitars-osworld' });
  t.match(config.agent, { coordinates: 'relative', coordinatesSource: 'server', maxSteps: 1, historyN: 15 });
  t.match(config.sampling.sent, [
    { model: 'ui-tars', temperature: 0, max_tokens: 16, frequency_penalty: 1 },
    { model: 'ui-tars', temperature: 1, max_tokens: 16, frequency_penalty: 1 },
  ], 'the first try at 0, retries after a parse failure at 1');
  t.match(config.image, { screen: { width: 1920, height: 1080 }, resized: [{ original: [1920, 1080], resized: [Number, Number] }] });
  t.match(config.taskSet, { count: 1, hash: /^[0-9a-f]{64}$/ });
  t.match(config.harness, { name: 'uitars-osworld', version: String });
  t.same(fs.readdirSync(trial).filter((f) => f.includes('.tmp-')), []);
  const status = readJson(path.join(trial, 'os', HELLO, 'status.json'));
  t.match(status, { status: 'parse_error', score: 0, steps: 1 });
  const summary = readJson(path.join(trial, 'summary.json'));
  t.match(summary, { tasks: 1, scored: 1, clean: 0, statuses: { parse_error: 1, success: 0 }, unclean: [{ id: HELLO, status: 'parse_error' }] });
  const traj = fs.readFileSync(path.join(trial, 'os', HELLO, 'traj.jsonl'), 'utf8').trim().split('\n');
  t.match(JSON.parse(traj.at(-1)!), { action: 'DONE', gave_up: 'parse' });
});

t.test('the same action on an unchanged screen is recorded as a loop (score unchanged)', async (t) => {
  const click = "Thought: click the desktop\nAction: click(start_box='(500,500)')";
  const dir = t.testdir({ replay: { [`${HELLO}.json`]: JSON.stringify({ responses: Array(5).fill(click) }) } });
  const results = path.join(dir, 'results');
  t.equal(await main([...common(dir, results), '--agent', 'replay', '--replay-dir', path.join(dir, 'replay')]), 0);
  const task = path.join(results, 'pyautogui/screenshot/ui-tars/0/os', HELLO);
  const lines = fs.readFileSync(path.join(task, 'traj.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loop?: { repeats: number } });
  const loops = lines.filter((l) => l.loop);
  t.ok(loops.length >= 1, `loop steps: ${loops.length}`);
  t.ok(loops.every((l) => l.loop!.repeats >= 3));
  t.match(readJson(path.join(task, 'status.json')), { status: 'fail', score: 0, loops: loops.length });
});

t.test('4xx from the model on every try is model_error; past --task-timeout is timeout (no result)', async (t) => {
  const fake = http.createServer((req, res) => {
    if (req.url === '/v1/models') return res.end(JSON.stringify({ object: 'list', data: [{ id: 'ui-tars', object: 'model', root: 'org/UI-TARS-2B-SFT', owned_by: 'vllm' }] }));
    res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'prompt too long' } }));
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => fake.close(() => r())));
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const port = (fake.address() as { port: number }).port;
  t.equal(await main([...common(dir, results), '--model-urls', `http://127.0.0.1:${port}/v1`, '--model', 'fake', '--max-steps', '1']), 0);
  const trial = path.join(results, 'pyautogui/screenshot/fake/0');
  t.match(readJson(path.join(trial, 'os', HELLO, 'status.json')), { status: 'model_error', score: 0 });
  t.match(readJson(path.join(trial, 'config.json')).agent, { coordinates: 'relative', coordinatesSource: 'server', coordinatesReason: /UI-TARS-2B-SFT is Qwen2-VL based/ });

  // A task without setup steps: the deadline falls in the settle pause.
  const INFEASIBLE = 'local-os-infeasible-printer';
  t.equal(await main([...common(dir, results, INFEASIBLE), '--agent', 'replay', '--replay-dir', path.join(LOCAL, 'oracles'), '--model', 'slow', '--settle-seconds', '8', '--task-timeout', '3', '--max-retries', '0']), 0);
  const task = path.join(results, 'pyautogui/screenshot/slow/0/os', INFEASIBLE);
  t.notOk(fs.existsSync(path.join(task, 'result.txt')), 'no score');
  t.match(readJson(path.join(task, 'status.json')), { status: 'timeout', score: null, error: /task timeout/ });
  t.match(JSON.parse(fs.readFileSync(path.join(task, 'traj.jsonl'), 'utf8').trim().split('\n').at(-1)!), { Error: /^Time limit exceeded in os\/local-os-infeasible-printer/ });
  t.match(readJson(path.join(results, 'pyautogui/screenshot/slow/0/summary.json')), { statuses: { timeout: 1 }, scored: 0 });
});

t.test('loop detector, coordinate warnings, coordinate mode from the model, tags', async (t) => {
  const a = Buffer.from('screen a');
  const b = Buffer.from('screen b');
  const d = new LoopDetector(3);
  t.same([d.observe(a, 'x'), d.observe(a, 'x'), d.observe(a, 'x'), d.observe(a, 'x'), d.observe(b, 'x'), d.observe(b, 'y')], [0, 0, 3, 4, 0, 0]);

  t.same(relativeRangeWarnings("Thought: t\nAction: click(start_box='(500,999)')"), []);
  t.match(relativeRangeWarnings("Thought: (2000,3000) is fine here\nAction: click(start_box='(1532,640)')"), [/\(1532,640\) outside 0\.\.1000 .*--coordinates absolute/]);
  t.equal(relativeRangeWarnings("Action: drag(start_box='(10,20,30,40)', end_box='(10,20,30,1040)')").length, 1);

  t.match(coordinatesFor({ id: 'ui-tars', owned_by: 'uitars-osworld' }), { mode: 'relative' });
  t.match(coordinatesFor({ id: 'ui-tars', root: 'bytedance-research/UI-TARS-2B-SFT', owned_by: 'vllm' }), { mode: 'relative' });
  t.match(coordinatesFor({ id: 'ui-tars', root: 'ByteDance-Seed/UI-TARS-1.5-7B', owned_by: 'vllm' }), { mode: 'absolute' });
  t.equal(coordinatesFor({ id: 'gpt-x', owned_by: 'someone' }), null);

  const tags = (task: Record<string, unknown>, domain = 'os'): string[] => taskTags(task as unknown as Task, domain);
  t.same(tags({ config: [{ type: 'download', parameters: { files: [] } }], evaluator: { func: 'x' } }), ['needs_network']);
  t.same(tags({ config: [{ type: 'chrome_open_tabs', parameters: { urls_to_open: ['https://www.example.com'] } }], evaluator: { func: 'x' } }, 'chrome'), ['needs_network']);
  t.same(tags({ config: [{ type: 'chrome_open_tabs', parameters: { urls_to_open: ['http://localhost:8000/a.html'] } }], evaluator: { func: 'x' } }, 'chrome'), []);
  t.same(tags({ config: [{ type: 'googledrive', parameters: {} }, { type: 'login', parameters: {} }], evaluator: { func: 'x', result: { type: 'cloud_file' } } }), ['needs_network', 'needs_google']);
  t.same(tags({ config: [], evaluator: { func: 'infeasible' } }), ['infeasible']);
  t.same(parseTags(['needs_network,needs_google', 'infeasible', 'needs_network']), ['needs_network', 'needs_google', 'infeasible']);
  t.throws(() => parseTags(['network']), /unknown tag "network"/);
});

t.test('summary: every status counted; score over all and over cleanly finished tasks', async (t) => {
  const dir = t.testdir({});
  const trial = { resultDir: dir, actionSpace: 'pyautogui', observationType: 'screenshot', model: 'm', trialId: '0' };
  const root = path.join(dir, 'pyautogui/screenshot/m/0/d');
  const put = (id: string, result: string | null, status: object | null): void => {
    fs.mkdirSync(path.join(root, id), { recursive: true });
    if (result !== null) fs.writeFileSync(path.join(root, id, 'result.txt'), result);
    if (status) fs.writeFileSync(path.join(root, id, 'status.json'), JSON.stringify({ attempts: 1, seconds: 1, finishedAt: '', ...status }));
  };
  put('ok', '1\n', { status: 'success', score: 1 });
  put('no', '0\n', { status: 'fail', score: 0 });
  put('old', '1\n', null); // an ARPO result: success from its score
  put('parse', '0\n', { status: 'parse_error', score: 0 });
  put('model', '1\n', { status: 'model_error', score: 1 });
  put('slow', null, { status: 'timeout', score: null, error: 'exceeded' });
  put('infra', null, { status: 'infra_error', score: null, error: 'env died' });
  put('killed', null, { status: 'success', score: 1 }); // status written, killed before result.txt: not finished
  const ids = ['ok', 'no', 'old', 'parse', 'model', 'slow', 'infra', 'killed', 'never'];
  const s = summarizeTrial(trial, ids.map((id) => ({ domain: 'd', id })));
  t.same(s.statuses, { success: 2, fail: 1, infra_error: 1, timeout: 1, parse_error: 1, model_error: 1, not_run: 2, invalid: 0 });
  t.equal(s.scored, 5);
  t.equal(s.successRate, 3 / 9);
  t.equal(s.clean, 3);
  t.equal(s.cleanSuccessRate, 2 / 3);
  t.match(s.unscored, [{ id: 'slow', status: 'timeout', error: 'exceeded' }, { id: 'infra', status: 'infra_error' }, { id: 'killed', status: 'not_run' }, { id: 'never', status: 'not_run' }]);
});

t.test('progress lines off a TTY, a run log file; temp files of dead writers swept', async (t) => {
  // (cleanup.test.ts has the cases: own pid, reused pid, live writer.)
  const dir = t.testdir({ a: { 'x.png.tmp-999999999-abc123': 'x', [`y.png.tmp-${process.ppid}-abc123`]: 'y', 'keep.png': 'k' } });
  t.equal(sweepTempFiles(dir), 1, 'only the dead writer\'s file');
  t.same(fs.readdirSync(path.join(dir, 'a')).sort(), ['keep.png', `y.png.tmp-${process.ppid}-abc123`]);

  const out = new PassThrough();
  let text = '';
  out.on('data', (d: Buffer) => (text += d.toString()));
  let now = 0;
  const logFile = path.join(dir, 'logs', 'run-x.log');
  const p = new RunProgress({ logFile, stream: out as unknown as NodeJS.WriteStream, now: () => now });
  p.start(4);
  now = 10_000;
  p.taskEnded('success');
  now = 20_000;
  p.taskEnded('infra_error');
  p.close();
  t.match(text, /progress 1\/4 tasks, 1 success, 0 error\(s\), ETA 30s/);
  t.match(text, /progress 2\/4 tasks, 1 success, 1 error\(s\), ETA 20s/);
  t.match(fs.readFileSync(logFile, 'utf8'), /progress 2\/4/);
});
