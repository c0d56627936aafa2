/** The generated reference docs match their sources (run `npm run gen:docs` after changing them). */
import fs from 'node:fs';
import t from 'tap';
import { configReference, openapiReference, REFERENCE_FILES } from '../../scripts/gen-docs.ts';

t.test('docs/reference/config.md is up to date', async (t) => {
  t.equal(fs.readFileSync(REFERENCE_FILES.config, 'utf8'), configReference(), 'run npm run gen:docs');
});

t.test('docs/reference/openapi.json is up to date and describes the chat route', async (t) => {
  const doc = await openapiReference();
  t.equal(fs.readFileSync(REFERENCE_FILES.openapi, 'utf8'), doc, 'run npm run gen:docs');
  const parsed = JSON.parse(doc) as { openapi: string; paths: Record<string, unknown> };
  t.match(parsed.openapi, /^3\./);
  t.ok(parsed.paths['/v1/chat/completions'], 'chat completions documented');
  t.ok(parsed.paths['/tokenize'], 'tokenize documented');
});
