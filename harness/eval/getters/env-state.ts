/** Getters that ask the env directly: command output, terminal, screen and window sizes, rules. */
import { InfrastructureError } from '../../env/setup/errors.ts';
import type { Getter } from '../types.ts';

async function run(ctx: Parameters<Getter>[0], config: Parameters<Getter>[1]) {
  const command = config.command as string | string[];
  const r = await ctx.env.client.execute(command, config.shell === true || config.shell === 'true');
  if (r.status === 'error') throw new InfrastructureError(`command getter failed: ${r.message}`);
  return r;
}

export const vmCommandLine: Getter = async (ctx, config) => (await run(ctx, config)).output;
export const vmCommandError: Getter = async (ctx, config) => (await run(ctx, config)).error;
export const vmTerminalOutput: Getter = async (ctx) => ctx.env.client.terminal();
export const vmScreenSize: Getter = async (ctx) => ctx.env.client.screenSize();
export const vmWindowSize: Getter = async (ctx, config) => ctx.env.client.windowSize(String(config.app_class_name));
/** The expected value written in the task itself. */
export const rule: Getter = async (_ctx, config) => config.rules;
