// One bare local desktop env: every route answers with OSWorld's shapes, bad requests get 4xx and the env
// keeps serving, reset restores HOME, recording gives an mp4, a killed Xvfb is detected and the env
// restarted, close leaves no process behind. Real Xvfb (needs scripts/install-desktop.sh).
import t from 'tap';
import { request } from 'undici';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalProvider } from '../../../harness/env/providers/local/index.ts';
import type { LocalEnv } from '../../../harness/env/providers/local/index.ts';
import { EnvClient, EnvHttpError } from '../../../harness/env/env-client.ts';
import { shlexSplit, TOKEN_HEADER } from '../../../harness/env/vm-protocol.ts';
import { RemoteProvider } from '../../../harness/env/providers/remote.ts';
import { execFileP, leftovers, pidAlive, skipReason, sleep } from './desktop-helpers.ts';

t.test('shlexSplit behaves like Python shlex.split', async (t) => {
  t.same(shlexSplit(`python -c "print('a b')" 'x y' z\\ w`), ['python', '-c', "print('a b')", 'x y', 'z w']);
  t.same(shlexSplit('  a   b '), ['a', 'b']);
  t.same(shlexSplit('echo "a\\"b" #x'), ['echo', 'a"b', '#x']);
  t.same(shlexSplit(`a""b ''`), ['ab', '']);
  t.throws(() => shlexSplit('echo "unclosed'));
});

t.test('remote provider: an open env per URL, never two; an env started again goes to a free URL', async (t) => {
  const p = new RemoteProvider(['http://10.0.0.1:5000', 'http://10.0.0.2:5000', 'http://10.0.0.3:5000'].map((url) => ({ url })));
  const a = await p.start();
  const b = await p.start();
  t.same([a.baseUrl, b.baseUrl], ['http://10.0.0.1:5000', 'http://10.0.0.2:5000']);
  await a.close(); // worker A's env failed: it starts another one
  const a2 = await p.start();
  t.equal(a2.baseUrl, 'http://10.0.0.3:5000', 'the spare URL, not the one worker B holds');
  const a3 = await p.start();
  t.equal(a3.baseUrl, 'http://10.0.0.1:5000', 'the freed URL');
  await t.rejects(p.start(), /all 3 env URL\(s\) are in use/, 'no URL is handed to a second worker');
  await b.close();
  t.equal((await p.start()).baseUrl, 'http://10.0.0.2:5000');
});

const skip = skipReason('ffmpeg', 'ffprobe');
t.test('local env', { skip }, async (t) => {
  const provider = new LocalProvider();
  const t0 = Date.now();
  const env: LocalEnv = await provider.start({ name: 'basic' });
  const startMs = Date.now() - t0;
  t.teardown(() => provider.closeAll());
  const c = env.client;
  t.ok(env.baseUrl.startsWith('http://127.0.0.1:'), 'bound to loopback');
  t.ok(env.token && env.token.length >= 16, 'has a token');
  t.ok(startMs < 15_000, `started in ${startMs} ms`);
  t.ok(env.isAlive());

  await t.test('info routes', async (t) => {
    t.equal(await c.platform(), 'Linux');
    t.same(await c.screenSize(), { width: 1920, height: 1080 });
    const pos = await c.cursorPosition();
    t.ok(Array.isArray(pos) && pos.length === 2);
    t.equal(await c.desktopPath(), path.join(env.home, 'Desktop'));
    const png = await c.screenshot();
    t.same([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'PNG');
    t.equal(png.readUInt32BE(16), 1920);
    t.equal(png.readUInt32BE(20), 1080);
    t.equal(await c.terminal(), null, 'no terminal focused');
    const at = await c.accessibility();
    t.match(at, /^<desktop-frame /);
    t.equal(await c.wallpaper(), null, 'no wallpaper yet -> 404 -> null');
  });

  await t.test('execute shapes', async (t) => {
    const r = await c.execute(['python', '-c', 'import sys; print("out"); print("err", file=sys.stderr); sys.exit(3)']);
    t.same(r, { status: 'success', output: 'out\n', error: 'err\n', returncode: 3 });
    const s = await c.execute('echo $HOME && echo ~/x', true);
    t.equal(s.status, 'success');
    if (s.status === 'success') t.equal(s.output, `${env.home}\n${env.home}/x\n`);
    const u = await c.execute('echo /home/user/Desktop/f.txt ~/y');
    if (u.status === 'success') t.equal(u.output, `${env.home}/Desktop/f.txt ${env.home}/y\n`, '/home/user and ~/ map to HOME');
    const bad = await c.execute(['definitely-not-a-command-xyz']);
    t.equal(bad.status, 'error');
    if (bad.status === 'error') t.match(bad.message, /No such file/);
    // pyautogui module through OSWorld's prefix
    const p = await c.executePython('pyautogui.moveTo(123, 456); print(pyautogui.position(), pyautogui.size())');
    t.equal(p.status, 'success');
    if (p.status === 'success') t.equal(p.output.trim(), 'Point(x=123, y=456) Size(width=1920, height=1080)');
    t.same(await c.cursorPosition(), [123, 456]);
    t.match(await c.launch('sleep 1'), /sleep 1 launched successfully/);
  });

  await t.test('files: upload, get, list, wallpaper', async (t) => {
    const data = Buffer.from([0, 1, 2, 255, 10, 13]);
    t.match(await c.upload('/home/user/Desktop/sub/a.bin', data), /File Uploaded/);
    t.same(await c.getFile('~/Desktop/sub/a.bin'), data);
    t.same(await c.getFile(path.join(env.home, 'Desktop/sub/a.bin')), data);
    t.equal(await c.getFile('~/Desktop/missing.txt'), null, '404 -> null');
    const tree = await c.listDirectory('~/Desktop');
    t.same(tree, { type: 'directory', name: 'Desktop', children: [{ type: 'directory', name: 'sub', children: [{ type: 'file', name: 'a.bin' }] }] });
    // a wallpaper: make a PNG with the screenshot route and set it
    const png = await c.screenshot();
    await c.upload('~/Pictures/wall.png', png);
    t.equal(await c.changeWallpaper('~/Pictures/wall.png'), 'Wallpaper changed successfully');
    t.same(await c.wallpaper(), png);
  });

  await t.test('bad requests get 4xx and the env keeps serving', async (t) => {
    const answers: { route: string; status: number; text: string }[] = [];
    const raw = async (p: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) => {
      const r = await request(env.baseUrl + p, { method: (init.method ?? 'POST') as 'POST', headers: init.headers ?? {}, body: init.body });
      const res = { status: r.statusCode, text: await r.body.text() };
      answers.push({ route: p, ...res });
      return res;
    };
    const auth = { [TOKEN_HEADER]: env.token! };
    t.equal((await raw('/platform', { method: 'GET' })).status, 401, 'no token');
    t.equal((await raw('/platform', { method: 'GET', headers: { [TOKEN_HEADER]: 'wrong' } })).status, 401, 'bad token');
    t.equal((await raw('/platform', { method: 'GET', headers: { authorization: `Bearer ${env.token}` } })).status, 200, 'bearer ok');
    t.equal((await raw('/platform', { method: 'GET', headers: { authorization: 'Bearer wrong' } })).status, 401, 'wrong bearer');
    t.equal((await raw('/platform', { method: 'GET', headers: { [TOKEN_HEADER]: env.token!.slice(0, -1) } })).status, 401, 'a token one character short');
    // The routes that run things refuse without the token before reading the body.
    const noTok = { 'content-type': 'application/json' };
    t.equal((await raw('/execute', { headers: noTok, body: '{"command": ["touch", "/tmp/osw-should-not-exist"]}' })).status, 401, '/execute without token');
    t.equal((await raw('/setup/launch', { headers: noTok, body: '{"command": "xterm"}' })).status, 401, '/setup/launch without token');
    t.notOk(existsSync('/tmp/osw-should-not-exist'), 'and nothing ran');
    t.equal((await raw('/nope', { method: 'GET' })).status, 401, 'unknown route without token: 401, not 404');
    t.match(JSON.parse(answers.at(-1)!.text), { error: /missing or wrong env token/ }, '401 says why');
    t.equal((await raw('/nope', { headers: auth })).status, 404, 'unknown route');
    const j = { ...auth, 'content-type': 'application/json' };
    t.equal((await raw('/execute', { headers: j, body: '{}' })).status, 400, 'execute without command');
    t.equal((await raw('/execute', { headers: j, body: '{"command": 5}' })).status, 400, 'command of the wrong type');
    t.equal((await raw('/execute', { headers: j, body: '{not json' })).status, 400, 'invalid JSON');
    t.equal((await raw('/execute', { headers: j, body: '{"command": "echo \\"x"}' })).status, 400, 'unclosed quote');
    const f = { ...auth, 'content-type': 'application/x-www-form-urlencoded' };
    const noPath = await raw('/file', { headers: f, body: '' });
    t.equal(noPath.status, 400);
    t.same(JSON.parse(noPath.text), { error: 'file_path is required' });
    t.equal((await raw('/file', { headers: f, body: 'file_path=/etc/passwd' })).status, 403, 'outside HOME');
    t.equal((await raw('/file', { headers: f, body: 'file_path=~/../../../../etc/passwd' })).status, 403, 'escape with ..');
    t.equal((await raw('/file', { headers: f, body: 'file_path=~/Desktop' })).status, 400, 'a directory');
    t.equal((await raw('/list_directory', { headers: j, body: '{}' })).status, 400);
    t.equal((await raw('/list_directory', { headers: j, body: '{"path":"~/nonexistent"}' })).status, 400);
    t.equal((await raw('/window_size', { headers: f, body: '' })).status, 400);
    t.equal((await raw('/setup/upload', { headers: f, body: 'file_path=~/x' })).status, 400, 'upload without multipart');
    t.equal((await raw('/setup/activate_window', { headers: j, body: '{}' })).status, 400);
    t.equal((await raw('/setup/close_window', { headers: j, body: '{}' })).status, 400);
    t.equal((await raw('/setup/open_file', { headers: j, body: '{}' })).status, 400);
    t.equal((await raw('/setup/open_file', { headers: j, body: '{"path":"~/no-such-file.xyz"}' })).status, 404);
    t.equal((await raw('/setup/change_wallpaper', { headers: j, body: '{}' })).status, 400);
    t.equal((await raw('/setup/download_file', { headers: j, body: '{"url":"http://x"}' })).status, 400);
    t.equal((await raw('/end_recording', { headers: auth })).status, 400, 'no recording in progress');
    t.equal((await raw('/execute', { headers: { ...auth, 'content-type': 'text/plain' }, body: 'ls' })).status, 400, 'a text body instead of JSON');
    t.equal((await raw('/execute', { headers: { ...auth, 'content-type': 'application/xml' }, body: '<a/>' })).status, 415, 'a body type the server does not read');
    t.equal((await raw('/execute', { method: 'GET', headers: auth })).status, 404, 'a route with the wrong method');
    // Every refusal is a 4xx with a message (never a bare status, never a 500 for bad input).
    for (const a of answers.filter((x) => x.status >= 400)) {
      t.ok(a.status < 500, `${a.route}: ${a.status} is a 4xx`);
      t.ok(a.text.trim().length > 0 && !/^\s*\{\s*\}\s*$/.test(a.text), `${a.route} ${a.status} has a message: ${a.text.slice(0, 80)}`);
    }
    await t.rejects(c.getFile('/etc/passwd'), EnvHttpError);
    t.equal(await c.platform(), 'Linux', 'still serving');
    t.ok(env.isAlive());
  });

  await t.test('loopback only; the token is not in the env\'s own environment', async (t) => {
    const ext = Object.values(os.networkInterfaces()).flat().find((i) => i && i.family === 'IPv4' && !i.internal);
    if (ext) {
      await t.rejects(request(`http://${ext.address}:${env.ports.server}/platform`, { headers: { [TOKEN_HEADER]: env.token! } }), /ECONNREFUSED/, `not reachable on ${ext.address}`);
    } else {
      t.comment('no non-loopback IPv4 address here to try');
    }
    const r = await c.execute('env; cat /proc/self/cmdline', true);
    t.equal(r.status, 'success');
    if (r.status === 'success') t.notOk(r.output.includes(env.token!), 'apps in the env do not see the token in their environment');
  });

  await t.test('recording gives an mp4 that ffprobe reads', async (t) => {
    t.equal((await c.startRecording()).status, 'success');
    await t.rejects(c.startRecording(), /400/, 'second start: 400');
    await c.executePython('pyautogui.moveTo(400, 400, duration=0.5); pyautogui.moveTo(800, 600)');
    await sleep(800);
    const mp4 = await c.endRecording();
    t.ok(mp4.length > 1000, `mp4 of ${mp4.length} bytes`);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rec-'));
    const f = path.join(dir, 'r.mp4');
    writeFileSync(f, mp4);
    const { stdout } = await execFileP('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,width,height', '-of', 'json', f]);
    rmSync(dir, { recursive: true, force: true });
    const info = JSON.parse(stdout) as { streams: Array<{ codec_name: string; width: number; height: number }> };
    t.equal(info.streams[0]?.codec_name, 'h264');
    t.equal(info.streams[0]?.width, 1920);
  });

  await t.test('reset restores HOME and kills apps', async (t) => {
    await c.upload('~/Desktop/junk.txt', Buffer.from('junk'));
    await c.launch(['sleep', '300']);
    await sleep(200);
    const sleeper = (await execFileP('pgrep', ['-f', '^sleep 300$']).catch(() => ({ stdout: '' }))).stdout.trim();
    t.ok(sleeper, 'app running');
    const t1 = Date.now();
    await env.reset();
    const ms = Date.now() - t1;
    t.ok(ms < 10_000, `reset in ${ms} ms`);
    t.equal(await c.getFile('~/Desktop/junk.txt'), null, 'HOME restored');
    for (const pid of sleeper.split('\n').filter(Boolean)) t.notOk(pidAlive(Number(pid)), `app ${pid} killed`);
    t.equal(await c.platform(), 'Linux', 'same URL and token after reset');
  });

  await t.test('a killed Xvfb is detected and the env restarted', async (t) => {
    const h = await env.health();
    const xvfb = h.detail?.xvfbPid as number;
    t.ok(pidAlive(xvfb));
    const restarted = new Promise<void>((resolve) => env.once('restarted', () => resolve()));
    process.kill(xvfb, 'SIGKILL');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([restarted, new Promise((r) => (timer = setTimeout(r, 20_000)))]);
    clearTimeout(timer);
    t.equal(env.restarts, 1, 'restarted once');
    t.ok(env.isAlive(), 'alive again');
    const after = await env.health();
    t.not(after.detail?.xvfbPid, xvfb, 'new Xvfb');
    const png = await c.screenshot();
    t.ok(png.length > 100, 'screenshot works after the restart');
  });

  await t.test('a client without the token and the remote provider', async (t) => {
    const anon = new EnvClient(env.baseUrl, { token: null });
    await t.rejects(anon.platform(), /401/);
    const remote = new RemoteProvider([{ url: env.baseUrl, token: env.token }]);
    const r = await remote.start();
    t.equal(await r.client.platform(), 'Linux');
    t.same((await r.health()).alive, true);
    await remote.closeAll();
    t.equal(r.isAlive(), false);
  });

  await t.test('close leaves no process behind', async (t) => {
    const h = await env.health();
    const sup = h.detail?.supervisorPid as number;
    t.ok(leftovers(env.id, env.root).length >= 3, 'env processes exist before close');
    await env.close();
    t.notOk(pidAlive(sup), 'supervisor gone');
    t.same(leftovers(env.id, env.root), [], 'no process of the env left');
    t.equal(env.isAlive(), false);
    await t.rejects(request(env.baseUrl + '/platform'), 'server closed');
  });
});
