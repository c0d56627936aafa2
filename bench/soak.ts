/**
 * npm run soak — a bounded soak of the real server: start server/main.ts on 127.0.0.1 with the
 * embedded tiny checkpoint (its own process), drive N closed-loop clients for M minutes with a mix
 * of text, screenshot and streamed chat requests (429s are retried after Retry-After, as a client
 * should), and report per interval: requests served, 429s, errors, p50/p99 latency and the
 * server's resident memory (from its /metrics). At the end the server gets SIGTERM and its exit
 * code is reported (it drains, then exits 0).
 *
 *   npm run soak -- [--minutes 2] [--clients 16] [--max-num-seqs 4] [--queue-size 8] [--server-args "..."] [--json]
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { Command } from 'commander';
import sharp from 'sharp';
import { request } from 'undici';
import { REPO_ROOT } from '../server/model/checkpoint/tiny.ts';

const o = new Command()
  .name('soak')
  .option('--minutes <n>', 'how long the clients run', '2')
  .option('--clients <n>', 'concurrent closed-loop clients', '16')
  .option('--max-num-seqs <n>', 'server --max-num-seqs', '4')
  .option('--queue-size <n>', 'server --queue-size', '8')
  .option('--max-tokens <n>', 'max_tokens per request', '16')
  .option('--interval <seconds>', 'seconds per report row', '10')
  .option('--server-args <flags>', 'more server flags, space-separated (e.g. "--prefix-cache-gib 0")', '')
  .option('--json', 'print the report as JSON instead of a table')
  .parse()
  .opts<{ minutes: string; clients: string; maxNumSeqs: string; queueSize: string; maxTokens: string; interval: string; serverArgs: string; json?: boolean }>();

const minutes = Number(o.minutes);
const clients = Number(o.clients);
const intervalMs = Number(o.interval) * 1000;
const maxTokens = Number(o.maxTokens);
for (const [name, v] of [['--minutes', minutes], ['--clients', clients], ['--interval', intervalMs], ['--max-tokens', maxTokens]] as const) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
}

const log = (s: string): void => void process.stderr.write(`soak: ${s}\n`);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

interface Sample {
  /** ms since the clients started, when the request ended */
  at: number;
  ms: number;
  status: number;
}

export interface SoakRow {
  fromSeconds: number;
  toSeconds: number;
  served: number;
  busy429: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  rssMiB: number;
}

export interface SoakReport {
  minutes: number;
  clients: number;
  maxNumSeqs: number;
  queueSize: number;
  maxTokens: number;
  rows: SoakRow[];
  total: Omit<SoakRow, 'fromSeconds' | 'toSeconds' | 'rssMiB'> & { rssStartMiB: number; rssEndMiB: number; rssMaxMiB: number; requestsPerSecond: number };
  errorSamples: string[];
  serverExitCode: number | null;
}

function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

async function main(): Promise<void> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'server/main.ts', '--host', '127.0.0.1', '--port', String(port), '--max-num-seqs', o.maxNumSeqs, '--queue-size', o.queueSize, '--max-model-len', '4096', '--drain-seconds', '10', ...o.serverArgs.split(/\s+/).filter(Boolean)],
    { cwd: REPO_ROOT, env: { ...process.env, MODEL_PATH: '' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  process.once('exit', () => child.kill('SIGKILL'));

  const get = async (path: string): Promise<{ status: number; text: string }> => {
    const res = await request(`${url}${path}`);
    return { status: res.statusCode, text: await res.body.text() };
  };
  const rssMiB = async (): Promise<number> => {
    const m = /^uitars_process_resident_memory_bytes (\S+)$/m.exec((await get('/metrics')).text);
    return m ? Number(m[1]) / 2 ** 20 : NaN;
  };
  for (let i = 0; ; i++) {
    if ((await get('/health').catch(() => ({ status: 0 }))).status === 200) break;
    if (i > 600) throw new Error(`the server did not come up:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  log(`server up at ${url} (max-num-seqs ${o.maxNumSeqs}, queue-size ${o.queueSize}); ${clients} clients for ${minutes} min`);

  // Screenshots of a few sizes (distinct content per request index, so no cache serves them all).
  const shot = async (seed: number, w: number, h: number): Promise<string> => {
    const png = await sharp({ create: { width: w, height: h, channels: 3, background: { r: (seed * 37) % 256, g: (seed * 91) % 256, b: (seed * 53) % 256 } } })
      .composite([{ input: Buffer.from(`<svg width="${w}" height="${h}"><rect x="${seed % 50}" y="20" width="120" height="40" fill="#fff"/></svg>`), top: 0, left: 0 }])
      .png()
      .toBuffer();
    return `data:image/png;base64,${png.toString('base64')}`;
  };
  const shots = await Promise.all(Array.from({ length: 8 }, (_, i) => shot(i + 1, 640 + 32 * i, 360 + 16 * i)));
  const body = (i: number): Record<string, unknown> => {
    const base = { model: 'ui-tars', max_tokens: maxTokens, temperature: 1, seed: i };
    if (i % 3 === 0) return { ...base, messages: [{ role: 'user', content: `Step ${i}: click the OK button.` }] };
    if (i % 3 === 1) {
      return { ...base, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: shots[i % shots.length] } }, { type: 'text', text: `Step ${i}: what now?` }] }] };
    }
    return { ...base, stream: true, messages: [{ role: 'user', content: `Step ${i}: describe the screen.` }] };
  };

  const samples: Sample[] = [];
  const errorSamples: string[] = [];
  const rssOverTime: { at: number; mib: number }[] = [{ at: 0, mib: await rssMiB() }];
  const started = performance.now();
  const endAt = started + minutes * 60_000;
  let next = 0;
  const client = async (): Promise<void> => {
    while (performance.now() < endAt) {
      const i = next++;
      const t0 = performance.now();
      let status = 0;
      let retryAfter = 1;
      try {
        const res = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body(i)) });
        const text = await res.body.text();
        status = res.statusCode;
        retryAfter = Number(res.headers['retry-after'] ?? 1);
        if (status === 200 && i % 3 === 2 && !text.trimEnd().endsWith('data: [DONE]')) status = -1;
        if (status !== 200 && status !== 429 && errorSamples.length < 10) errorSamples.push(`HTTP ${status}: ${text.slice(0, 200)}`);
      } catch (err) {
        if (errorSamples.length < 10) errorSamples.push(err instanceof Error ? err.message : String(err));
      }
      const now = performance.now();
      samples.push({ at: now - started, ms: now - t0, status });
      if (status === 429) await new Promise((r) => setTimeout(r, retryAfter * 1000 * (0.5 + Math.random())));
    }
  };
  const sampler = (async () => {
    while (performance.now() < endAt) {
      await new Promise((r) => setTimeout(r, Math.min(intervalMs, Math.max(0, endAt - performance.now()))));
      rssOverTime.push({ at: performance.now() - started, mib: await rssMiB() });
      const served = samples.filter((s) => s.status === 200).length;
      log(`${Math.round((performance.now() - started) / 1000)} s: ${served} served, RSS ${rssOverTime.at(-1)!.mib.toFixed(0)} MiB`);
    }
  })();
  await Promise.all([...Array.from({ length: clients }, client), sampler]);
  const wallSeconds = (performance.now() - started) / 1000;
  rssOverTime.push({ at: performance.now() - started, mib: await rssMiB() });

  const summarize = (part: Sample[]) => {
    const ok = part.filter((s) => s.status === 200);
    return {
      served: ok.length,
      busy429: part.filter((s) => s.status === 429).length,
      errors: part.filter((s) => s.status !== 200 && s.status !== 429).length,
      p50Ms: Math.round(quantile(ok.map((s) => s.ms), 0.5)),
      p99Ms: Math.round(quantile(ok.map((s) => s.ms), 0.99)),
    };
  };
  const rows: SoakRow[] = [];
  const buckets = Math.ceil((wallSeconds * 1000) / intervalMs);
  for (let b = 0; b < buckets; b++) {
    const from = b * intervalMs;
    const to = Math.min((b + 1) * intervalMs, wallSeconds * 1000);
    const part = samples.filter((s) => Math.min(buckets - 1, Math.floor(s.at / intervalMs)) === b);
    const rss = rssOverTime.filter((r) => r.at <= to + 50).at(-1)?.mib ?? NaN;
    rows.push({ fromSeconds: from / 1000, toSeconds: Math.round(to / 1000), ...summarize(part), rssMiB: Math.round(rss) });
  }

  // Shutdown: SIGTERM drains and exits 0.
  child.kill('SIGTERM');
  const serverExitCode = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 60_000))]);

  const mibs = rssOverTime.map((r) => r.mib);
  const total = summarize(samples);
  const report: SoakReport = {
    minutes,
    clients,
    maxNumSeqs: Number(o.maxNumSeqs),
    queueSize: Number(o.queueSize),
    maxTokens,
    rows,
    total: {
      ...total,
      rssStartMiB: Math.round(mibs[0]!),
      rssEndMiB: Math.round(mibs.at(-1)!),
      rssMaxMiB: Math.round(Math.max(...mibs)),
      requestsPerSecond: Number((total.served / wallSeconds).toFixed(1)),
    },
    errorSamples,
    serverExitCode,
  };
  if (o.json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  const table = [
    `soak: ${clients} clients, ${minutes} min, --max-num-seqs ${report.maxNumSeqs} --queue-size ${report.queueSize}${o.serverArgs ? ` ${o.serverArgs}` : ''}, max_tokens ${maxTokens}, tiny checkpoint`,
    '',
    '| seconds | served | 429 | errors | p50 ms | p99 ms | RSS MiB |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.fromSeconds}-${r.toSeconds} | ${r.served} | ${r.busy429} | ${r.errors} | ${r.p50Ms} | ${r.p99Ms} | ${r.rssMiB} |`),
    `| total | ${total.served} | ${total.busy429} | ${total.errors} | ${total.p50Ms} | ${total.p99Ms} | ${report.total.rssStartMiB} -> ${report.total.rssEndMiB} (max ${report.total.rssMaxMiB}) |`,
    '',
    `${report.total.requestsPerSecond} requests/s served; server exit code after SIGTERM: ${serverExitCode}`,
    ...(errorSamples.length ? ['', 'errors:', ...errorSamples.map((e) => `  ${e}`)] : []),
  ];
  console.log(table.join('\n'));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`soak: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
