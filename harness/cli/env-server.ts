/**
 * env-server: one local desktop env (Xvfb + openbox + the Debian apps) behind an env server that
 * speaks OSWorld's in-VM HTTP protocol, as a process of its own. Point `run-multienv --provider
 * remote --env-urls URL --env-token TOKEN` (or OSWorld's own Python clients, with --no-auth) at it.
 *
 *   env-server [--port 5000] [--token T | --no-auth]
 *
 * Bound to 127.0.0.1 only (it runs any command it is sent; reach it from elsewhere through an SSH
 * tunnel). Prints one JSON line {url, token, pid, id, ports} on stdout when it serves; SIGTERM or
 * SIGINT closes the desktop (every process of it) and exits 0; if this process is killed, the
 * desktop's supervisor tears the desktop down itself.
 */
import { Command } from 'commander';
import { LocalProvider } from '../env/providers/local/index.ts';
import { sweepStaleEnvs } from '../run/cleanup.ts';
import { intFlag as int } from './argv.ts';

export function buildEnvServerProgram(): Command {
  return new Command()
    .name('env-server')
    .description("One local desktop env behind an env server speaking OSWorld's in-VM protocol, on 127.0.0.1.")
    .option('--port <n>', 'port of the env server (default: a free one)', int('--port', 1, 65535))
    .option('--token <token>', 'the token clients must send (X-Env-Token or Authorization: Bearer); default: random')
    .option('--no-auth', 'no token (for OSWorld\'s own Python clients)')
    .option('--name <name>', 'env name (dirs and logs)', 'envsrv')
    .option('--width <n>', 'screen width', int('--width', 1), 1920)
    .option('--height <n>', 'screen height', int('--height', 1), 1080);
}

interface Flags {
  port?: number;
  token?: string;
  auth: boolean;
  name: string;
  width: number;
  height: number;
}

export async function main(argv: string[]): Promise<void> {
  const f = buildEnvServerProgram().parse(argv, { from: 'user' }).opts<Flags>();
  if (f.token !== undefined && f.token.length < 8) throw new Error('--token must have at least 8 characters');
  const log = (m: string): void => void process.stderr.write(`env-server: ${m}\n`);
  const provider = new LocalProvider({
    width: f.width,
    height: f.height,
    auth: f.auth,
    log,
    ...(f.port !== undefined ? { serverPort: f.port } : {}),
    ...(f.token !== undefined ? { token: f.token } : {}),
  });
  sweepStaleEnvs(provider.baseDir, log);
  const env = await provider.start({ name: f.name });
  env.on('restarted', (why: string) => log(`desktop died (${why}); restarted empty (restart ${env.restarts})`));
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: closing the desktop`);
    provider.closeAll().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.stdout.write(`${JSON.stringify({ url: env.baseUrl, token: env.token, pid: process.pid, id: env.id, ports: env.ports })}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`env-server: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
