/**
 * Chrome setup steps over the DevTools protocol (playwright-core's connectOverCDP, against the
 * env's Chromium: its CDP port is the env's, whatever port the task's launch step asked for).
 * Pages that cannot load here (no network) still open as tabs with their URL, which is what
 * later checks of open tabs look at.
 */
import { chromium, type Browser } from 'playwright-core';
import type { EnvHandle } from '../provider.ts';
import { InfrastructureError } from './errors.ts';

export function cdpUrl(env: EnvHandle): string {
  if (!env.ports.chromium) throw new InfrastructureError(`env ${env.id} has no Chromium debugging port`);
  return `http://${env.host}:${env.ports.chromium}`;
}

/** Connects to the env's Chromium, waiting for it to come up (OSWorld waits too). */
export async function connectChrome(env: EnvHandle, timeoutMs = 30_000): Promise<Browser> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      return await chromium.connectOverCDP(cdpUrl(env), { timeout: 5000 });
    } catch (err) {
      last = err instanceof Error ? err.message.split('\n')[0]! : String(err);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  throw new InfrastructureError(`cannot reach Chromium over CDP at ${cdpUrl(env)}: ${last}`);
}

async function withChrome<T>(env: EnvHandle, fn: (browser: Browser) => Promise<T>): Promise<T> {
  const browser = await connectChrome(env);
  try {
    return await fn(browser);
  } finally {
    await browser.close(); // for a CDP connection: disconnects, Chromium keeps running
  }
}

export async function openChromeTabs(env: EnvHandle, urls: string[]): Promise<void> {
  await withChrome(env, async (browser) => {
    const context = browser.contexts()[0] ?? (await browser.newContext());
    for (const url of urls) {
      const page = await context.newPage();
      await page.goto(url, { timeout: 10_000, waitUntil: 'commit' }).catch(() => {});
    }
  });
}

const normalise = (u: string): string => u.replace(/\/+$/, '');

export async function closeChromeTabs(env: EnvHandle, urls: string[]): Promise<void> {
  const targets = new Set(urls.map(normalise));
  await withChrome(env, async (browser) => {
    for (const context of browser.contexts()) {
      for (const page of context.pages()) if (targets.has(normalise(page.url()))) await page.close();
    }
  });
}

/** Adds visits to Chromium's History database inside the env (python3's sqlite3 runs there). */
export async function updateBrowseHistory(
  env: EnvHandle,
  history: { url: string; title: string; visit_time_from_now_in_seconds: number }[],
): Promise<void> {
  const script = `
import glob, json, os, sqlite3, time
entries = json.loads(${JSON.stringify(JSON.stringify(history))})
home = os.path.expanduser('~')
def find():
    return glob.glob(home + '/.config/google-chrome/*/History') + glob.glob(home + '/.config/chromium/*/History')
paths = find()
if not paths:
    # A fresh profile has no History yet (tasks add history before launching Chrome):
    # one headless start of the env's Chromium creates the profile and its database.
    import subprocess
    proc = subprocess.Popen(['google-chrome', '--headless=new', 'about:blank'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not find():
        time.sleep(0.5)
    time.sleep(2)  # let it finish creating the profile before it is stopped
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    paths = find()
if not paths:
    raise SystemExit('no Chromium History database under ' + home)
db = sqlite3.connect(paths[0])
epoch_delta = 11644473600  # Chrome stores microseconds since 1601-01-01
for e in entries:
    t = int((time.time() - e['visit_time_from_now_in_seconds'] + epoch_delta) * 1_000_000)
    cur = db.execute('INSERT INTO urls (url, title, visit_count, typed_count, last_visit_time, hidden) VALUES (?, ?, 1, 0, ?, 0)', (e['url'], e['title'], t))
    db.execute('INSERT INTO visits (url, visit_time, from_visit, transition, segment_id, visit_duration) VALUES (?, ?, 0, 805306368, 0, 0)', (cur.lastrowid, t))
db.commit()
`;
  const r = await env.client.setupExecute(['python3', '-c', script]);
  if (r.status === 'error') throw new InfrastructureError(`update_browse_history failed: ${r.message}`);
  if (r.returncode !== 0) throw new InfrastructureError(`update_browse_history failed: ${(r.error || r.output).trim().split('\n').pop()}`);
}
