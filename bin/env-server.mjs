#!/usr/bin/env node
// One local desktop env behind an OSWorld protocol env server (harness/cli/env-server.ts), through tsx.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../harness/cli/env-server.ts');
main(process.argv.slice(2)).catch((err) => {
  console.error(`env-server: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
