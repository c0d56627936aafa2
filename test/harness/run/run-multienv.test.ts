/**
 * run-multienv end to end on real desktops: ARPO's flags, resume, infrastructure errors that
 * are recorded (never scored 0), and the live UI-TARS agent against the real model server.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import { buildProgram, main, modelUrls, normaliseArgv } from '../../../harness/cli/run-multienv.ts';
import { REPO_ROOT } from '../../../server/model/checkpoint/tiny.ts';
import { startTestServer } from '../../helpers/server.ts';

const LOCAL = path.join(REPO_ROOT, 'evaluation_examples/local');
const HELLO = 'local-os-hello-file';
const INFEASIBLE = 'local-os-infeasible-printer';

function suite(dir: string, ids: string[]): string {
  const file = path.join(dir, 'list.json');
  fs.writeFileSync(file, JSON.stringify({ os: ids }));
  return file;
}

const common = (resultDir: string, list: string): string[] => [
  '--test_config_base_dir', LOCAL, '--test_all_meta_path', list, '--result_dir', resultDir,
  '--sleep_after_execution', '0.3', '--settle-seconds', '0.5', '--no-record',
];
const taskPath = (resultDir: string, id: string, model = 'ui-tars'): string =>
  path.join(resultDir, 'pyautogui', 'screenshot', model, '0', 'os', id);

t.test('flags: OSWorld spellings, ARPO-effective defaults, endpoints per env', async (t) => {
  t.same(normaliseArgv(['--num_envs', '8', '--trial-id', '0', '--result_dir=x', 'plain_arg']), ['--num-envs', '8', '--trial-id', '0', '--result-dir=x', 'plain_arg']);
  const p = buildProgram().exitOverride();
  p.parse(normaliseArgv(['--num_envs', '8', '--trial-id', '3']), { from: 'user' });
  const o = p.opts();
  t.equal(o.numEnvs, 8);
  t.equal(o.trialId, '3');
  t.equal(o.temperature, 0, 'ARPO sent temperature 0');
  t.equal(o.frequencyPenalty, 1);
  t.equal(o.maxTokens, 4096);
  t.equal(o.maxTrajectoryLength, 15);
  t.same(modelUrls({ serverIp: 'http://127.0.0.1', serverPort: 9000, serverPorts: 8 }).slice(0, 2), ['http://127.0.0.1:9000/v1', 'http://127.0.0.1:9001/v1']);
  const help = buildProgram().helpInformation();
  for (const flag of ['--num-envs', '--trial-id', '--test-all-meta-path', '--provider', '--model-urls', '--task-timeout', '--max-retries', '--agent']) {
    t.match(help, flag, `--help explains ${flag}`);
  }
  await t.rejects(main(['--num_envs', 'many']), /--num-envs must be an integer/);
});

t.test('numeric flags out of their range are refused at startup, one line each, nothing written', async (t) => {
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const base = [...common(results, suite(dir, [HELLO])), '--agent', 'replay', '--replay-dir', path.join(LOCAL, 'oracles')];
  const bad: [string[], RegExp][] = [
    [['--task-timeout', '3000000'], /^--task-timeout must be a number of seconds > 0 and <= 2147483 \(got "3000000"\)$/],
    [['--task-timeout', '0'], /^--task-timeout must be a number of seconds > 0/],
    [['--task-timeout', '-1'], /^--task-timeout must be/],
    [['--queue-lock-seconds', '0'], /^--queue-lock-seconds must be a number of seconds >= 1/],
    [['--queue-lock-seconds', '-3'], /^--queue-lock-seconds must be/],
    [['--temperature', '-1'], /^--temperature must be a number >= 0 \(got "-1"\)$/],
    [['--top_p', '5'], /^--top-p must be a number > 0 and <= 1 \(got "5"\)$/],
    [['--top_p', '0'], /^--top-p must be a number > 0 and <= 1/],
    [['--max_tokens', '0'], /^--max-tokens must be an integer >= 1/],
    [['--frequency_penalty', '3'], /^--frequency-penalty must be a number >= -2 and <= 2/],
    [['--sleep_after_execution', '-1'], /^--sleep-after-execution must be a number of seconds >= 0/],
    [['--settle-seconds', 'soon'], /^--settle-seconds must be a number of seconds/],
    [['--model-backoff', '1e9'], /^--model-backoff must be a number of seconds >= 0 and <= 2147483/],
    [['--model-down-seconds', '-1'], /^--model-down-seconds must be/],
    [['--server-port', '70000'], /^--server-port must be an integer >= 1 and <= 65535/],
    [['--server-port', '65535', '--server-ports', '2'], /^--server-port 65535 with --server-ports 2 goes past port 65535$/],
    [['--num_envs', '0'], /^--num-envs must be an integer >= 1/],
    [['--history-n', '1.5'], /^--history-n must be an integer >= 1/],
    [['--max-retries', '-1'], /^--max-retries must be an integer >= 0/],
  ];
  for (const [flags, message] of bad) await t.rejects(main([...base, ...flags]), message, flags.join(' '));
  t.notOk(fs.existsSync(results), 'nothing written');
  const server = spawnSync(process.execPath, [path.join(REPO_ROOT, 'bin/env-server.mjs'), '--port', '99999'], { encoding: 'utf8', timeout: 60_000 });
  t.equal(server.status, 1, 'env-server --port 99999: exit 1 before any desktop starts');
  t.equal(server.stderr.trim(), 'env-server: --port must be an integer >= 1 and <= 65535 (got "99999")');
});

t.test('result path components are single folder names, checked before anything is written', async (t) => {
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const base = [...common(results, suite(dir, [HELLO])), '--agent', 'replay', '--replay-dir', path.join(LOCAL, 'oracles')];
  for (const [flag, value] of [['--trial-id', ''], ['--trial-id', '../../evil'], ['--trial-id', '.'], ['--model', 'a/b'], ['--model', '..'], ['--action_space', 'x\\y']] as const) {
    await t.rejects(main([...base, flag, value]), new RegExp(`^${flag.replace('_', '-')} must be one folder name .*\\(got ${JSON.stringify(value).replace(/[.\\]/g, '\\$&')}\\)$`), `${flag} ${JSON.stringify(value)}`);
  }
  t.same(fs.readdirSync(dir), ['list.json'], 'nothing written, inside or outside the result dir');
  await t.rejects(main(['report', '--result_dir', results, '--trial-id', '../..']), /^--trial-id must be one folder name/, 'report checks them too');
});

t.test('--provider remote: its flags are checked before anything is written', async (t) => {
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const base = [...common(results, suite(dir, [HELLO])), '--agent', 'replay', '--replay-dir', path.join(LOCAL, 'oracles'), '--provider', 'remote'];
  await t.rejects(main(base), /^--provider remote needs --env-urls/);
  await t.rejects(main([...base, '--env-urls', 'http://127.0.0.1:1', '--num_envs', '2']), /^--provider remote has 1 env URL\(s\) for --num-envs 2: each env server serves one worker at a time/);
  await t.rejects(main([...base, '--env-urls', 'http://127.0.0.1:1,http://127.0.0.1:1', '--num_envs', '2']), /lists http:\/\/127\.0\.0\.1:1 twice/);
  await t.rejects(main([...base, '--env-urls', 'localhost:5000']), /"localhost:5000" is not an http\(s\) URL/);
  t.notOk(fs.existsSync(results), 'no trial folder, log or run.lock');
});

t.test('oracles score 1; a rerun resumes: finished tasks are kept, unfinished ones redone', async (t) => {
  const dir = t.testdir({});
  const list = suite(dir, [HELLO, INFEASIBLE]);
  const results = path.join(dir, 'results');
  const args = [...common(results, list), '--agent', 'replay', '--replay-dir', path.join(LOCAL, 'oracles'), '--num_envs', '2'];
  t.equal(await main(args), 0);
  for (const id of [HELLO, INFEASIBLE]) t.equal(fs.readFileSync(path.join(taskPath(results, id), 'result.txt'), 'utf8'), '1\n', `${id} scored 1`);
  const summary = JSON.parse(fs.readFileSync(path.join(results, 'pyautogui/screenshot/ui-tars/0/summary.json'), 'utf8')) as { successRate: number };
  t.equal(summary.successRate, 1);

  // Simulate a run killed during the hello task: its result is gone and a stray file is left.
  const hello = taskPath(results, HELLO);
  const before = fs.statSync(path.join(taskPath(results, INFEASIBLE), 'result.txt')).mtimeMs;
  fs.rmSync(path.join(hello, 'result.txt'));
  fs.writeFileSync(path.join(hello, 'half-written.png.tmp'), 'x');
  t.equal(await main(args), 0);
  t.equal(fs.readFileSync(path.join(hello, 'result.txt'), 'utf8'), '1\n', 'the unfinished task was redone');
  t.notOk(fs.existsSync(path.join(hello, 'half-written.png.tmp')), 'its old files were cleared first');
  t.equal(fs.statSync(path.join(taskPath(results, INFEASIBLE), 'result.txt')).mtimeMs, before, 'the finished task was left alone');
});

t.test("a task whose folder cannot be written is an error of that task only; the run goes on", async (t) => {
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  // A file stands where the hello task's result folder should be.
  fs.mkdirSync(path.dirname(taskPath(results, HELLO, 'blocked')), { recursive: true });
  fs.writeFileSync(taskPath(results, HELLO, 'blocked'), 'not a folder');
  const args = [...common(results, suite(dir, [HELLO, INFEASIBLE])), '--agent', 'replay', '--replay-dir', path.join(LOCAL, 'oracles'), '--model', 'blocked'];
  t.equal(await main(args), 0, 'the run ends normally');
  t.equal(fs.readFileSync(path.join(taskPath(results, INFEASIBLE, 'blocked'), 'result.txt'), 'utf8'), '1\n', 'the other task ran');
  const trial = path.join(results, 'pyautogui/screenshot/blocked/0');
  const summary = JSON.parse(fs.readFileSync(path.join(trial, 'summary.json'), 'utf8')) as { tasks: number; scored: number };
  t.match(summary, { tasks: 2, scored: 1 });
  const log = fs.readFileSync(path.join(trial, 'logs', fs.readdirSync(path.join(trial, 'logs'))[0]!), 'utf8');
  t.match(log, new RegExp(`os/${HELLO}: cannot write its error into `), 'the blocked task is logged as an error');
  t.match(log, /this run: 2 task\(s\): 1 success, .* 1 infra_error/);
});

t.test('a model server that goes away during the run is an infrastructure error, not a score', async (t) => {
  // It lists the model (the startup check passes), then drops every chat request.
  const fake = http.createServer((req, res) => {
    if (req.url === '/v1/models') res.end(JSON.stringify({ object: 'list', data: [{ id: 'ui-tars', object: 'model', root: 'x/UI-TARS-2B-SFT' }] }));
    else req.socket.destroy();
  });
  await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => fake.close(() => r())));
  const port = (fake.address() as { port: number }).port;
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const args = [
    ...common(results, suite(dir, [HELLO])),
    '--model-urls', `http://127.0.0.1:${port}/v1`, '--model-retries', '1', '--max-retries', '1', '--model', 'unreachable',
  ];
  t.equal(await main(args), 0);
  const task = taskPath(results, HELLO, 'unreachable');
  t.notOk(fs.existsSync(path.join(task, 'result.txt')), 'no score was written');
  const lines = fs.readFileSync(path.join(task, 'traj.jsonl'), 'utf8').trim().split('\n');
  t.match(JSON.parse(lines.at(-1)!), { Error: /Infrastructure error .*unavailable/ });
  const summary = JSON.parse(fs.readFileSync(path.join(results, 'pyautogui/screenshot/unreachable/0/summary.json'), 'utf8')) as {
    scored: number;
    unscored: { error: string }[];
  };
  t.equal(summary.scored, 0);
  t.match(summary.unscored[0]!.error, /unavailable/);
});

t.test('the UI-TARS agent against the real server: unparsable answers are retried, then the episode ends', async (t) => {
  const server = await startTestServer(t, {});
  const dir = t.testdir({});
  const results = path.join(dir, 'results');
  const args = [...common(results, suite(dir, [HELLO])), '--model-urls', `${server.url}/v1`, '--max-tokens', '16', '--max-steps', '2', '--model', 'tiny'];
  t.equal(await main(args), 0);
  const task = taskPath(results, HELLO, 'tiny');
  // The random-weight model never writes "Action:": three tries, then "client error" -> DONE, evaluated.
  const lines = fs.readFileSync(path.join(task, 'traj.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const step = lines[1]!;
  t.equal(step.prediction, 'client error');
  t.equal(step.action, 'DONE');
  t.equal((step.model_calls as unknown[]).length, 3, 'three model calls');
  t.match(step.model_calls, [{ error: /parse/ }, { error: /parse/ }, { error: /parse/ }]);
  t.equal(fs.readFileSync(path.join(task, 'result.txt'), 'utf8'), '0\n', 'the task was evaluated: not solved');
});
