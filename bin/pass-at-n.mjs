#!/usr/bin/env node
// Package bin: pass@n over the trials of one model (OSWorld/ARPO's pass_at_n.py), through tsx.
import { register } from 'tsx/esm/api';

register();
const { passAtNMain } = await import('../harness/cli/pass-at-n.ts');
try {
  process.exitCode = passAtNMain(process.argv.slice(2));
} catch (err) {
  console.error(`pass-at-n: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
