/**
 * Evaluation as OSWorld does it: getters read state from the env (files, command output,
 * browser state, app config), metrics compare it with the expected state and return a score
 * in [0, 1]. Both are plain functions listed in explicit tables (getters/index.ts,
 * metrics/index.ts), which the coverage report reads, so it cannot drift from the code.
 */
import type { EnvHandle } from '../env/provider.ts';
import type { FileCache } from '../env/setup/file-cache.ts';

export interface EvalContext {
  env: EnvHandle;
  cache: FileCache;
  /** Scratch folder for files fetched from the env (per task). */
  workDir: string;
  /** The task's folder in evaluation_examples (some expected files are relative to it). */
  taskBase: string;
}

export type GetterConfig = { type: string } & Record<string, unknown>;

/**
 * A getter returns the state a metric reads: often a local file path (fetched from the env),
 * a string, or a JSON value. OSWorld's FileNotFoundError is `null` here.
 */
export type Getter = (ctx: EvalContext, config: GetterConfig) => Promise<unknown>;

export type Metric = (result: unknown, expected: unknown, options: Record<string, unknown>) => Promise<number> | number;
