/**
 * `run-multienv doctor` (one actionable line per problem, exit 1 when any) and bad input to
 * run-multienv (missing task list, unknown domain, unreachable model server, malformed task
 * config, unknown tag): one clear line on stderr, exit 1, nothing written as a score.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { which } from '../../../harness/run/doctor.ts';
import { REPO_ROOT } from '../../../server/model/checkpoint/tiny.ts';

const LOCAL = path.join(REPO_ROOT, 'evaluation_examples/local');
const BIN = path.join(REPO_ROOT, 'bin/run-multienv.mjs');

function cli(args: string[], env: NodeJS.ProcessEnv = process.env): { status: number | null; stdout: string; stderr: string[] } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, encoding: 'utf8', env, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.split('\n').filter((l) => l.trim()) };
}

/** A port nothing listens on (a stopped model server). */
async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function list(dir: string, meta: Record<string, string[]>): string {
  const file = path.join(dir, 'list.json');
  fs.writeFileSync(file, JSON.stringify(meta));
  return file;
}

t.test('doctor: a stopped model server and a missing binary, one line each', async (t) => {
  const dir = t.testdir({});
  const port = await closedPort();
  const r = cli([
    'doctor', '--test_config_base_dir', LOCAL, '--test_all_meta_path', list(dir, { os: ['local-os-hello-file'] }),
    '--model-urls', `http://127.0.0.1:${port}/v1`, '--require-apps', 'no-such-app-osw', '--num_envs', '1', '--no-record', '--result_dir', path.join(dir, 'results'),
  ]);
  t.equal(r.status, 1, 'exit 1');
  t.equal(r.stderr.length, 2, `two problems: ${r.stderr.join(' | ')}`);
  t.match(r.stderr.find((l) => /model server/.test(l)), new RegExp(`127\\.0\\.0\\.1:${port}.*does not answer.*start it`));
  t.match(r.stderr.find((l) => /no-such-app-osw/.test(l)), /missing no-such-app-osw .*install/);
  t.match(r.stdout, /ok: desktop env \(local\) started and answered/, 'the desktop itself was fine');
  t.notOk(fs.existsSync(path.join(dir, 'results')), 'doctor writes no results');
});

t.test('doctor: LibreOffice missing from PATH for a calc task list; all else fine', async (t) => {
  const dir = t.testdir({ bin: {} });
  const bin = path.join(dir, 'bin');
  for (const b of ['Xvfb', 'openbox', 'dbus-daemon', 'xdotool', 'xsetroot', 'python3']) {
    const p = which(b);
    if (p) fs.symlinkSync(p, path.join(bin, b));
  }
  const r = cli(
    [
      '--doctor', '--test_config_base_dir', LOCAL, '--test_all_meta_path', list(dir, { calc: ['local-calc-fill-cell'] }),
      '--agent', 'replay', '--replay-dir', path.join(LOCAL, 'oracles'), '--no-record', '--result_dir', path.join(dir, 'results'),
    ],
    { ...process.env, PATH: bin },
  );
  t.equal(r.status, 1);
  t.equal(r.stderr.length, 1, `one problem: ${r.stderr.join(' | ')}`);
  t.match(r.stderr[0], /^problem: missing soffice \(needed by calc tasks\): install it/);
  t.match(r.stdout, /ok: model server: not needed \(replay agent\)/);
  t.match(r.stdout, /ok: memory/);
});

t.test('bad input: one clear line on stderr, exit 1, no score written', async (t) => {
  const dir = t.testdir({
    base: { examples: { os: { 'broken-task.json': '{"id": "broken-task", "instruction": ' } } },
  });
  const results = path.join(dir, 'results');
  const good = list(dir, { os: ['local-os-hello-file'] });
  const replay = ['--agent', 'replay', '--replay-dir', path.join(LOCAL, 'oracles')];

  const missing = cli(['--test_config_base_dir', LOCAL, '--test_all_meta_path', path.join(dir, 'nope.json'), '--result_dir', results, ...replay]);
  t.equal(missing.status, 1);
  t.equal(missing.stderr.length, 1);
  t.match(missing.stderr[0], /^run-multienv: cannot read task list .*nope\.json/);

  const domain = cli(['--test_config_base_dir', LOCAL, '--test_all_meta_path', good, '--domain', 'nosuch', '--result_dir', results, ...replay]);
  t.equal(domain.status, 1);
  t.same(domain.stderr.length, 1);
  t.match(domain.stderr[0], /domain "nosuch" is not in .*\(it has os\)/);

  const port = await closedPort();
  const server = cli(['--test_config_base_dir', LOCAL, '--test_all_meta_path', good, '--model-urls', `http://127.0.0.1:${port}/v1`, '--result_dir', results]);
  t.equal(server.status, 1);
  t.equal(server.stderr.length, 1);
  t.match(server.stderr[0], /^run-multienv: model server http:\/\/127\.0\.0\.1:\d+\/v1 does not answer \(ECONNREFUSED\)/);

  const tag = cli(['--test_config_base_dir', LOCAL, '--test_all_meta_path', good, '--exclude-tag', 'needs_network,nonsense', '--result_dir', results, ...replay]);
  t.equal(tag.status, 1);
  t.match(tag.stderr, [/unknown tag "nonsense"/]);
  t.notOk(fs.existsSync(results), 'nothing written so far');

  const broken = cli(['--test_config_base_dir', path.join(dir, 'base'), '--test_all_meta_path', list(dir, { os: ['broken-task'] }), '--result_dir', results, ...replay, '--no-record']);
  t.equal(broken.status, 1);
  t.equal(broken.stderr.length, 1);
  t.match(broken.stderr[0], /^run-multienv: invalid task .*broken-task\.json: /);
  const trial = path.join(results, 'pyautogui/screenshot/ui-tars/0');
  t.notOk(fs.existsSync(path.join(trial, 'os', 'broken-task')), 'no task folder, no score');
  const summary = JSON.parse(fs.readFileSync(path.join(trial, 'summary.json'), 'utf8')) as { scored: number; invalid: { id: string }[]; statuses: Record<string, number> };
  t.equal(summary.scored, 0);
  t.match(summary.invalid, [{ id: 'broken-task' }]);
  t.equal(summary.statuses.invalid, 1, 'counted as invalid');
  t.equal(summary.statuses.not_run, 0, 'not as not run');
  t.match(broken.stdout, /0 task\(s\) to run, 0 already finished, 1 invalid/, 'the log line counts it');
});
