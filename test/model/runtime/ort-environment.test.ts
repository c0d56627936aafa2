import t from 'tap';
import { applyOrtEnvironment, ORT_ENVIRONMENT } from '../../../server/model/runtime/ort-environment.ts';

const names = Object.keys(ORT_ENVIRONMENT) as (keyof typeof ORT_ENVIRONMENT)[];
const saved = names.map((n) => process.env[n]);
t.teardown(() => names.forEach((n, i) => (saved[i] === undefined ? delete process.env[n] : (process.env[n] = saved[i]))));

t.test('sets each switch the environment lacks', async (t) => {
  for (const n of names) delete process.env[n];
  applyOrtEnvironment();
  for (const n of names) t.equal(process.env[n], ORT_ENVIRONMENT[n], n);
});

t.test("keeps a value the user set", async (t) => {
  for (const n of names) process.env[n] = 'user value';
  applyOrtEnvironment();
  for (const n of names) t.equal(process.env[n], 'user value', n);
});
