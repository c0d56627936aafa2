#!/usr/bin/env node
// Package bin: runs the TypeScript CLI through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../harness/cli/run-multienv.ts');
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`run-multienv: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
