/**
 * Local desktop env benchmark (npm run bench:envs): env start, reset, /screenshot and /execute round trips,
 * memory per env with LibreOffice Calc open, and N envs at once. Needs scripts/install-desktop.sh.
 *
 *   npx tsx bench/envs.ts [--n 10] [--parallel 8] [--json out.json]
 */
import { timeRuns } from './server-stats.ts';
import { Command } from 'commander';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { LocalProvider } from '../harness/env/providers/local/index.ts';
import type { LocalEnv } from '../harness/env/providers/local/index.ts';

const program = new Command()
  .option('--n <n>', 'samples per latency figure', '10')
  .option('--parallel <n>', 'envs started at once', '8')
  .option('--json <file>', 'write the results as JSON')
  .parse();
const o = program.opts<{ n: string; parallel: string; json?: string }>();
const N = Number(o.n);
const P = Number(o.parallel);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function stats(xs: number[]): { mean: number; p50: number; p95: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
  const r = (v: number) => Math.round(v * 10) / 10;
  return { mean: r(xs.reduce((a, b) => a + b, 0) / xs.length), p50: r(q(0.5)), p95: r(q(0.95)), min: r(s[0] ?? NaN), max: r(s[s.length - 1] ?? NaN) };
}


/** PSS (MiB) summed over the env's processes */
function pssMiB(env: LocalEnv): number {
  let kb = 0;
  for (const pid of env.processes()) {
    try {
      const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      kb += Number(m?.[1] ?? 0);
    } catch {
      /* gone */
    }
  }
  return Math.round(kb / 1024);
}

async function waitTitle(env: LocalEnv, re: RegExp, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const r = await env.client.execute(['wmctrl', '-l']);
    if (r.status === 'success' && re.test(r.output)) return;
    await sleep(200);
  }
  throw new Error(`no window ${re}`);
}

const results: Record<string, unknown> = {
  machine: { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30) },
  date: new Date().toISOString(),
};
const provider = new LocalProvider();
process.on('SIGINT', () => void provider.closeAll().then(() => process.exit(130)));
try {
  const tp = performance.now();
  await provider.prepare();
  results.templateMs = Math.round(performance.now() - tp);

  // start / close of a bare env, one at a time
  const starts: number[] = [];
  for (let i = 0; i < Math.min(N, 5); i++) {
    const t = performance.now();
    const e = await provider.start({ name: 'bench' });
    starts.push(performance.now() - t);
    await e.close();
  }
  results.startMs = stats(starts);

  const env = await provider.start({ name: 'bench' });
  const c = env.client;
  results.resetMs = stats(await timeRuns(Math.min(N, 5), 0, () => env.reset()));
  results.screenshotMs = stats(await timeRuns(N, 0, () => c.screenshot()));
  results.executeTrueMs = stats(await timeRuns(N, 0, () => c.execute(['true'])));
  results.executePyautoguiMs = stats(
    await timeRuns(N, 0, () => c.executePython("pyautogui.click(960, 540, button='left')")),
  );
  results.accessibilityBareMs = stats(await timeRuns(3, 0, () => c.accessibility()));
  results.pssBareMiB = pssMiB(env);

  // Calc open
  const t0 = performance.now();
  await c.launch(['soffice', '--calc', '--norestore']);
  await waitTitle(env, /LibreOffice Calc/);
  results.calcWindowMs = Math.round(performance.now() - t0);
  await sleep(2000);
  results.pssCalcMiB = pssMiB(env);
  results.screenshotCalcMs = stats(await timeRuns(N, 0, () => c.screenshot()));
  results.accessibilityCalcMs = stats(await timeRuns(3, 0, () => c.accessibility()));
  const tr = performance.now();
  await env.reset();
  results.resetWithCalcMs = Math.round(performance.now() - tr);
  await env.close();

  // P envs at once
  const tpar = performance.now();
  const envs = await Promise.all(Array.from({ length: P }, (_, i) => provider.start({ name: `par${i}` })));
  results.parallelStartMs = Math.round(performance.now() - tpar);
  const shots: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t = performance.now();
    await Promise.all(envs.map((e) => e.client.screenshot()));
    shots.push(performance.now() - t);
  }
  results.parallelScreenshotRoundMs = stats(shots);
  const ex: number[] = [];
  for (let r = 0; r < 3; r++) {
    const t = performance.now();
    await Promise.all(envs.map((e) => e.client.executePython("pyautogui.write('hello')")));
    ex.push(performance.now() - t);
  }
  results.parallelExecuteRoundMs = stats(ex);
  const tc = performance.now();
  await Promise.all(envs.map((e) => e.client.launch(['soffice', '--calc', '--norestore'])));
  await Promise.all(envs.map((e) => waitTitle(e, /LibreOffice Calc/, 120_000)));
  results.parallelCalcWindowsMs = Math.round(performance.now() - tc);
  await sleep(2000);
  const pss = envs.map(pssMiB);
  results.parallelCalcPssMiB = { perEnv: pss, total: pss.reduce((a, b) => a + b, 0) };
  const tclose = performance.now();
  await Promise.all(envs.map((e) => e.close()));
  results.parallelCloseMs = Math.round(performance.now() - tclose);
  results.leftoverProcesses = envs.map((e) => e.processes().length).reduce((a, b) => a + b, 0);
} finally {
  await provider.closeAll();
}
console.log(JSON.stringify(results, null, 2));
if (o.json) writeFileSync(o.json, JSON.stringify(results, null, 2));
