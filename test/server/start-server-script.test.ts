/**
 * start_server.sh as the README runs it: `PORT=... LOG_FILE=... bash start_server.sh`. /health
 * turns 200, a request completes, SIGTERM drains and exits 0, and the log file holds the
 * request's log line. The script runs in its own process group, killed whole in teardown.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from '../../server/model/checkpoint/tiny.ts';
import { freePorts, http, MODEL, waitFor, withTimeout } from '../helpers/server.ts';

const [port] = (await freePorts(1)) as [number];
const logFile = path.join(t.testdir({}), 'logs', 'server.log');
const child = spawn('bash', ['start_server.sh'], {
  cwd: REPO_ROOT,
  env: { ...process.env, PORT: String(port), LOG_FILE: logFile, MODEL_PATH: '' },
  detached: true, // its own process group, so teardown can end everything it started
  stdio: ['ignore', 'pipe', 'pipe'],
});
let output = '';
child.stdout.on('data', (d: Buffer) => (output += d.toString()));
child.stderr.on('data', (d: Buffer) => (output += d.toString()));
const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
t.teardown(() => {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // the group is gone already
  }
});

const url = `http://127.0.0.1:${port}`;

t.test('/health goes green, a request completes, SIGTERM exits 0, the log has the request', async (t) => {
  const healthy = await waitFor(async () => (await http(`${url}/health`, 'GET').catch(() => ({ status: 0 }))).status === 200, 120_000);
  t.ok(healthy, `/health turned 200${healthy ? '' : `; output:\n${output}`}`);
  t.match(output, new RegExp(`start_server: logging to ${logFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

  const res = await http(`${url}/v1/chat/completions`, 'POST', { model: MODEL, messages: [{ role: 'user', content: 'Click OK.' }], max_tokens: 4 });
  t.equal(res.status, 200);
  const id = (res.json as { id: string }).id;

  process.kill(child.pid!, 'SIGTERM'); // the script exec's node, so this is the server itself
  const code = await withTimeout(exited, 30_000, 'still running after 30 s');
  t.equal(code, 0, 'exits 0');

  t.ok(fs.existsSync(logFile), 'the log file was written');
  const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const line = lines.find((l) => l.completion_id === id);
  t.ok(line, 'the request has a log line');
  t.equal(line?.msg, 'chat completion');
  t.equal(line?.completion_tokens, 4);
  t.ok(lines.some((l) => typeof l.msg === 'string' && /RANDOM/.test(l.msg)), 'the log warns that the embedded model is random');
  t.ok(lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('SIGTERM')), 'the log records the drain');
});
