/**
 * The setup controller against a real local env: files from the download cache and from the
 * task's folder, commands with `until`, Chromium tabs over CDP and its History database, and
 * the steps that cannot work here reported as unsupported.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { LocalProvider } from '../../../harness/env/providers/local/index.ts';
import { connectChrome } from '../../../harness/env/setup/chrome.ts';
import { InfrastructureError, UnsupportedError } from '../../../harness/env/setup/errors.ts';
import { FileCache, cacheKey } from '../../../harness/env/setup/file-cache.ts';
import { isSupportedStep, runSetup } from '../../../harness/env/setup/setup-controller.ts';
import { skipReason } from './desktop-helpers.ts';

const skip = skipReason('chromium');

t.test('upload_file from a task folder whose path has # and %', { skip: skipReason() }, async (t) => {
  const provider = new LocalProvider();
  t.teardown(() => provider.closeAll());
  const env = await provider.start({ name: 'upload-test' });
  const dir = t.testdir({ 'tasks #1 100%25': { 'a #b %41.txt': 'odd path\n' } });
  const ctx = { env, cache: new FileCache(null), localBase: path.join(dir, 'tasks #1 100%25') };
  await runSetup(ctx, [{ type: 'upload_file', parameters: { files: [{ local_path: 'a #b %41.txt', path: '/home/user/odd.txt' }] } }]);
  t.equal((await env.client.getFile('/home/user/odd.txt'))?.toString(), 'odd path\n');
});

t.test('setup steps on a real desktop', { skip }, async (t) => {
  const provider = new LocalProvider();
  t.teardown(() => provider.closeAll());
  const env = await provider.start({ name: 'setup-test' });
  const dir = t.testdir({ 'task-files': { 'notes.txt': 'from the task folder\n' } });
  const cacheDir = path.join(dir, 'cache');
  fs.mkdirSync(cacheDir);
  const url = 'https://drive.google.com/uc?id=example&export=download';
  fs.writeFileSync(path.join(cacheDir, `${cacheKey(url)}-data.csv`), 'a,b\n1,2\n');
  const ctx = { env, cache: new FileCache(cacheDir), localBase: path.join(dir, 'task-files') };

  await runSetup(ctx, [
    { type: 'download', parameters: { files: [{ url, path: '/home/user/data.csv' }] } },
    { type: 'upload_file', parameters: { files: [{ local_path: 'notes.txt', path: '/home/user/Desktop/notes.txt' }] } },
    { type: 'command', parameters: { command: ['mkdir', '-p', '/home/user/Documents/a/b'] } },
    { type: 'execute', parameters: { command: 'echo ready > /home/user/flag && cat /home/user/flag', shell: true, until: { stdout: 'ready' } } },
    { type: 'sleep', parameters: { seconds: 0.1 } },
  ]);
  t.equal((await env.client.getFile('/home/user/data.csv'))?.toString(), 'a,b\n1,2\n', 'download came from the cache');
  t.equal((await env.client.getFile('/home/user/Desktop/notes.txt'))?.toString(), 'from the task folder\n');
  const tree = await env.client.listDirectory('/home/user/Documents/a');
  t.ok('children' in tree && tree.children.some((c) => 'name' in c && c.name === 'b'), 'command ran');

  const failure = async (steps: Parameters<typeof runSetup>[1]): Promise<unknown> => runSetup(ctx, steps).then(() => null, (e: unknown) => e);
  const uncached = await failure([{ type: 'download', parameters: { files: [{ url: 'https://example.org/missing.xlsx', path: '/home/user/m.xlsx' }] } }]);
  t.ok(uncached instanceof InfrastructureError, 'an uncached file is an infrastructure error');
  t.match((uncached as Error).message, /not in the download cache: https:\/\/example\.org\/missing\.xlsx/, 'naming the URL');
  t.ok((await failure([{ type: 'googledrive', parameters: {} }])) instanceof UnsupportedError);
  t.ok((await failure([{ type: 'no_such_step', parameters: {} }])) instanceof UnsupportedError);
  t.notOk(isSupportedStep('login'));
  t.ok(isSupportedStep('chrome_open_tabs'));

  // Browse history before Chrome runs (as the task data orders it): the profile is created first.
  await runSetup(ctx, [
    { type: 'update_browse_history', parameters: { history: [{ url: 'https://example.org/visited', title: 'Visited page', visit_time_from_now_in_seconds: 3600 }] } },
  ]);
  const rows = await env.client.execute(['python3', '-c', "import glob,os,sqlite3; p=glob.glob(os.path.expanduser('~/.config/google-chrome/*/History'))[0]; print(sqlite3.connect(p).execute('select url, title from urls').fetchall())"]);
  t.match(rows, { status: 'success', output: /https:\/\/example\.org\/visited.*Visited page/ }, 'the visit is in Chromium\'s History');

  // Chromium: launched as the tasks do (any port: the wrapper uses the env's; socat plumbing skipped), tabs over CDP.
  await runSetup(ctx, [
    { type: 'launch', parameters: { command: ['socat', 'tcp-listen:9222,fork', 'tcp:localhost:1337'] } },
    { type: 'launch', parameters: { command: ['google-chrome', '--remote-debugging-port=1337'] } },
    { type: 'chrome_open_tabs', parameters: { urls_to_open: ['about:blank#one', 'about:blank#two', 'about:blank#three'] } },
    { type: 'chrome_close_tabs', parameters: { urls_to_close: ['about:blank#two'] } },
  ]);
  const browser = await connectChrome(env);
  const urls = browser.contexts().flatMap((c) => c.pages().map((p) => p.url()));
  await browser.close();
  t.ok(urls.includes('about:blank#one') && urls.includes('about:blank#three'), `tabs opened: ${urls.join(' ')}`);
  t.notOk(urls.includes('about:blank#two'), 'the closed tab is gone');
});
