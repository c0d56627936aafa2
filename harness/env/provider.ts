/**
 * Env providers: where a desktop env speaking the OSWorld in-VM protocol comes from.
 * - `local` (providers/local): our own Xvfb desktops with an env server each.
 * - `remote` (providers/remote.ts): URLs of hosts already speaking the protocol (e.g. real OSWorld VMs).
 */
import type { EnvClient } from './env-client.ts';

export interface EnvPorts {
  /** the env server (OSWorld's 5000) */
  server: number;
  /** Chrome remote debugging (OSWorld's 9222) */
  chromium: number | null;
  /** VLC HTTP interface (OSWorld's 8080) */
  vlc: number | null;
  /** VNC (OSWorld's 8006); none for local envs */
  vnc: number | null;
}

export interface EnvHealth {
  alive: boolean;
  /** e.g. 'ready', 'starting', 'restarting', 'dead', 'closed' */
  state: string;
  /** how many times the provider restarted this env after its desktop died */
  restarts: number;
  detail?: Record<string, unknown>;
}

/** One env, from start to close. */
export interface EnvHandle {
  readonly id: string;
  /** e.g. http://127.0.0.1:41234 */
  readonly baseUrl: string;
  /** the per-env token (X-Env-Token), null when the server needs none */
  readonly token: string | null;
  /** host that the chromium / vlc ports are reachable on (for CDP and VLC getters) */
  readonly host: string;
  readonly ports: EnvPorts;
  /** a client bound to baseUrl + token */
  readonly client: EnvClient;
  /** back to the initial state (local: every app killed, HOME restored from the template) */
  reset(): Promise<void>;
  /** stop everything of this env; idempotent */
  close(): Promise<void>;
  /** cheap check, no I/O */
  isAlive(): boolean;
  /**
   * How many times the provider restarted this env after its desktop died (local envs; a remote
   * env cannot tell). A change during a task means the task's state is gone.
   */
  readonly restarts?: number;
  /** Why the desktop last died, when the provider knows (local envs). */
  readonly lastDeath?: string | null;
  health(): Promise<EnvHealth>;
}

export interface EnvStartOptions {
  /** a name for logs and dirs */
  name?: string;
}

export interface EnvProvider {
  readonly kind: 'local' | 'remote' | string;
  /** starts (local) or attaches to (remote) one env */
  start(opts?: EnvStartOptions): Promise<EnvHandle>;
  /** closes every env this provider started */
  closeAll(): Promise<void>;
}
