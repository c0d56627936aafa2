/**
 * The `remote` provider: hosts that already speak the OSWorld in-VM protocol (real OSWorld VMs, or env
 * servers elsewhere). No lifecycle: start() hands out the next URL that no open env of this provider
 * holds (one desktop, one worker), close() gives it back; reset does nothing.
 */
import { EnvClient } from '../env-client.ts';
import { InfrastructureError } from '../setup/errors.ts';
import { DEFAULT_PORTS } from '../vm-protocol.ts';
import type { EnvHandle, EnvHealth, EnvPorts, EnvProvider, EnvStartOptions } from '../provider.ts';

export interface RemoteEnvSpec {
  /** base URL of the env server, e.g. http://10.0.0.5:5000 */
  url: string;
  token?: string | null;
  chromiumPort?: number | null;
  vlcPort?: number | null;
  vncPort?: number | null;
}

export class RemoteEnv implements EnvHandle {
  readonly id: string;
  readonly baseUrl: string;
  readonly token: string | null;
  readonly host: string;
  readonly ports: EnvPorts;
  readonly client: EnvClient;
  private closed = false;

  constructor(id: string, spec: RemoteEnvSpec, private readonly onClose: () => void = () => {}) {
    const u = new URL(spec.url);
    this.id = id;
    this.baseUrl = spec.url.replace(/\/+$/, '');
    this.token = spec.token ?? null;
    this.host = u.hostname;
    this.ports = {
      server: Number(u.port || (u.protocol === 'https:' ? 443 : 80)),
      chromium: spec.chromiumPort === undefined ? DEFAULT_PORTS.chromium : spec.chromiumPort,
      vlc: spec.vlcPort === undefined ? DEFAULT_PORTS.vlc : spec.vlcPort,
      vnc: spec.vncPort === undefined ? DEFAULT_PORTS.vnc : spec.vncPort,
    };
    this.client = new EnvClient(this.baseUrl, { token: this.token });
  }

  async reset(): Promise<void> {
    // no lifecycle: the remote host owns its state
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }

  isAlive(): boolean {
    return !this.closed;
  }

  async health(): Promise<EnvHealth> {
    if (this.closed) return { alive: false, state: 'closed', restarts: 0 };
    const ok = await this.client.ready();
    return { alive: ok, state: ok ? 'ready' : 'unreachable', restarts: 0 };
  }
}

export class RemoteProvider implements EnvProvider {
  readonly kind = 'remote';
  private next = 0;
  private readonly envs: RemoteEnv[] = [];
  /** Indexes of the specs an open env holds. */
  private readonly inUse = new Set<number>();

  constructor(private readonly specs: RemoteEnvSpec[]) {
    if (specs.length === 0) throw new Error('remote provider: no URLs given');
  }

  /**
   * The next URL, round-robin, that no open env holds: two workers never drive one desktop, and an
   * env started again after an error goes to a spare URL when there is one.
   */
  async start(opts: EnvStartOptions = {}): Promise<EnvHandle> {
    const n = this.specs.length;
    const i = Array.from({ length: n }, (_, k) => (this.next + k) % n).find((k) => !this.inUse.has(k));
    if (i === undefined) throw new InfrastructureError(`remote provider: all ${n} env URL(s) are in use`);
    this.next = i + 1;
    this.inUse.add(i);
    const env = new RemoteEnv(opts.name ?? `remote-${this.envs.length + 1}`, this.specs[i] as RemoteEnvSpec, () => this.inUse.delete(i));
    this.envs.push(env);
    return env;
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.envs.map((e) => e.close()));
  }
}
