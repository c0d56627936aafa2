#!/usr/bin/env node
// Package bin: two result folders side by side per task (scores, steps, first different action, config differences), through tsx.
import { register } from 'tsx/esm/api';

register();
const { compareRunsMain } = await import('../harness/cli/compare-runs.ts');
try {
  process.exitCode = compareRunsMain(process.argv.slice(2));
} catch (err) {
  console.error(`compare-runs: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
