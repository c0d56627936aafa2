// A real Redis for the queue tests: Debian's redis-server on a free loopback port, no
// persistence, killed when the test ends.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import type { Test } from 'tap';
import { RespClient } from '../../../harness/run/resp-client.ts';
import { killPid, sleep } from './run-helpers.ts';

export const REDIS_BIN = process.env.REDIS_SERVER ?? 'redis-server';

/** why the Redis tests cannot run here, or false */
export function redisSkipReason(): string | false {
  try {
    execFileSync(REDIS_BIN, ['--version'], { stdio: 'ignore' });
    return false;
  } catch {
    return `no ${REDIS_BIN} (apt-get install redis-server)`;
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface RunningRedis {
  url: string;
  port: number;
  child: ChildProcess;
}

/** redis-server on a free port; resolves once it answers PING. Killed at the end of `t`. */
export async function startRedis(t: Test): Promise<RunningRedis> {
  for (let tries = 0; tries < 3; tries++) {
    const port = await freePort();
    const child = spawn(REDIS_BIN, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    t.teardown(() => killPid(child.pid!));
    const end = Date.now() + 15_000;
    while (Date.now() < end && child.exitCode === null) {
      const c = new RespClient({ host: '127.0.0.1', port, tls: false }, { connectTimeoutMs: 1000 });
      try {
        await c.connect();
        if ((await c.send('PING', [])) === 'PONG') return { url: `redis://127.0.0.1:${port}`, port, child };
      } catch {
        /* not up yet */
      } finally {
        c.close();
      }
      await sleep(100);
    }
    killPid(child.pid!);
    if (tries === 2) throw new Error(`redis-server did not come up on port ${port}: ${stderr}`);
  }
  throw new Error('unreachable');
}
