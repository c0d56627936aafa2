/**
 * One engine on several ports, as ARPO's 8 vLLM servers on 9000-9007 become one process:
 * every port answers, and they share the engine (metrics on one port count requests made on
 * another; requests on different ports decode together).
 */
import t from 'tap';
import { freePorts, http, metric, MODEL, startTestServer } from '../helpers/server.ts';

const ports = await freePorts(3);
const server = await startTestServer(t, { ports });

t.test('every port answers', async (t) => {
  t.same(server.urls, ports.map((p) => `http://127.0.0.1:${p}`));
  t.equal(server.apps.length, 3);
  for (const url of server.urls) {
    t.equal((await http(`${url}/health`, 'GET')).status, 200, `${url}/health`);
    const models = await http(`${url}/v1/models`, 'GET');
    t.equal((models.json as { data: { id: string }[] }).data[0]!.id, MODEL);
  }
});

t.test('the engine is shared: metrics on one port count requests made on the others', async (t) => {
  const [a, b, c] = server.urls as [string, string, string];
  const before = await metric(c, 'uitars_requests_total', '{status="200"}').catch(() => 0);
  const body = { model: MODEL, messages: [{ role: 'user', content: 'Click the Start menu.' }], max_tokens: 4, temperature: 1, seed: 8 };
  const answers = await Promise.all([a, b].map((url) => http(`${url}/v1/chat/completions`, 'POST', body)));
  for (const res of answers) t.equal(res.status, 200);
  t.equal(
    (answers[0]!.json as { choices: { message: { content: string } }[] }).choices[0]!.message.content,
    (answers[1]!.json as { choices: { message: { content: string } }[] }).choices[0]!.message.content,
    'one model: the same seed gives the same text on either port',
  );
  t.equal(await metric(c, 'uitars_requests_total', '{status="200"}'), before + 2, 'port 3 counts the requests made on ports 1 and 2');
  const steps = await Promise.all(server.urls.map((url) => metric(url, 'uitars_decode_steps')));
  t.ok(steps[0]! > 0 && steps.every((s) => s === steps[0]), `every port reports the same engine counters (${steps.join(', ')})`);
});

t.test('requests on different ports are decoded together', async (t) => {
  const before = await metric(server.urls[0]!, 'uitars_batched_decode_steps');
  await Promise.all(
    server.urls.map((url, i) =>
      http(`${url}/v1/chat/completions`, 'POST', {
        model: MODEL,
        messages: [{ role: 'user', content: `Open window number ${i}.` }],
        max_tokens: 32,
        temperature: 1,
        seed: 20 + i,
      }),
    ),
  );
  t.ok((await metric(server.urls[1]!, 'uitars_batched_decode_steps')) > before, 'batched decode steps increased');
});
