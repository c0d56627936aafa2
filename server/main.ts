/**
 * The server process: settings from flags and environment variables (server/config.ts),
 * then serve until SIGTERM/SIGINT, which drains running requests and exits 0.
 *
 *   npx tsx server/main.ts --port 9000-9007 --model /models/UI-TARS-2B-SFT
 */
import { Command } from 'commander';
import { resolveServerConfig, SETTINGS } from './config.ts';
import { startServer } from './server.ts';

const program = new Command()
  .name('uitars-server')
  .description('OpenAI-compatible server for UI-TARS (Qwen2-VL) on ONNX Runtime. Every flag also reads the environment variable named.');
for (const s of SETTINGS) {
  const def = Array.isArray(s.default) ? s.default.join(',') : s.default;
  program.option(`${s.flag} <value>`, `${s.description} [env ${s.env}${def !== null ? `, default ${def}` : ''}]`);
}
program.parse();
const flagValues = program.opts<Record<string, string | undefined>>();

async function main(): Promise<void> {
  const flags: Record<string, string | undefined> = {};
  for (const s of SETTINGS) flags[s.key] = flagValues[camel(s.flag)];
  const config = resolveServerConfig(process.env, flags);
  const logger = config.logFile ? { level: 'info', file: config.logFile } : { level: 'info' };
  const server = await startServer(config, logger);
  const log = server.apps[0]!.log;
  if (server.usingEmbeddedModel) {
    log.warn('NO MODEL_PATH GIVEN: serving the embedded tiny checkpoint, whose weights are RANDOM. Its answers are noise.');
  }
  log.info({ urls: server.urls, model: config.servedModelName }, 'listening; /health turns 200 when the model is loaded');
  server.engine.ready.then(
    (info) => log.info({ ...info }, 'model loaded'),
    (err: Error) => log.error(`model failed to load: ${err.message}`),
  );
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: draining running requests (up to ${config.drainSeconds} s)`);
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

function camel(flag: string): string {
  return flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

main().catch((err: unknown) => {
  console.error(`uitars-server: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
