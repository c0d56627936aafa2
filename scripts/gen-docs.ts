/**
 * Writes the generated reference docs from their single sources of truth:
 *   docs/reference/config.md    from server/config.ts SETTINGS
 *   docs/reference/openapi.json from the API's JSON schemas (@fastify/swagger)
 * `npm run gen:docs` rewrites them; test/docs/reference.test.ts fails when they are stale.
 */
import { EMPTY_STATS } from '../server/engine/engine.ts';
import fs from 'node:fs';
import path from 'node:path';
import { buildApp } from '../server/api/app.ts';
import { ServerMetrics } from '../server/api/metrics.ts';
import { defaultServerConfig, SETTINGS } from '../server/config.ts';
import { REPO_ROOT } from '../server/model/checkpoint/tiny.ts';

export function configReference(): string {
  const rows = SETTINGS.map((s) => {
    const def = s.default === null ? '—' : Array.isArray(s.default) ? s.default.join(',') : String(s.default);
    return `| \`${s.flag}\` | \`${s.env}\` | ${def} | ${s.description} |`;
  });
  return [
    '# Server settings',
    '',
    'Generated from `server/config.ts` by `npm run gen:docs`. Each setting is a flag of `start_server.sh` /',
    '`server/main.ts` or an environment variable; a flag wins over the variable.',
    '',
    '| flag | environment | default | meaning |',
    '|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

export async function openapiReference(): Promise<string> {
  const stats = { ...EMPTY_STATS };
  // The document depends only on the routes' schemas; no model is loaded to write it.
  const app = await buildApp({
    config: defaultServerConfig(),
    modelPath: '',
    engine: { info: null, loadError: null, stats, generate: () => { throw new Error('not serving'); } },
    serving: () => null,
    tokenText: () => '',
    metrics: new ServerMetrics(() => stats),
  });
  await app.ready();
  const doc = JSON.stringify(app.swagger(), null, 2) + '\n';
  await app.close();
  return doc;
}

export const REFERENCE_FILES = {
  config: path.join(REPO_ROOT, 'docs/reference/config.md'),
  openapi: path.join(REPO_ROOT, 'docs/reference/openapi.json'),
};

if (import.meta.url === `file://${process.argv[1]}`) {
  fs.writeFileSync(REFERENCE_FILES.config, configReference());
  fs.writeFileSync(REFERENCE_FILES.openapi, await openapiReference());
  console.log(`wrote ${Object.values(REFERENCE_FILES).join(', ')}`);
}
