/** The run-engine CLI as a user runs it: a real process on the embedded tiny checkpoint. */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../../server/model/checkpoint/tiny.ts';
import { FIXTURE_SCREENSHOT } from '../helpers/tiny-model.ts';

const cli = path.join(REPO_ROOT, 'server/cli/run-engine.ts');
function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { encoding: 'utf8', cwd: REPO_ROOT });
}

t.test('prints text, token ids and logprobs as JSON', async (t) => {
  const r = run(['--prompt', 'Click OK', '--image', FIXTURE_SCREENSHOT, '--resize', '800x450', '--max-tokens', '5', '--top-logprobs', '2', '--json']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stderr, /RANDOM weights/, 'says loudly that the default model is random');
  const out = JSON.parse(r.stdout) as Record<string, unknown>;
  t.same(out.images, [{ original: [1920, 1080], resized: [812, 448] }]);
  t.equal(out.image_tokens, 464);
  t.equal((out.token_ids as number[]).length, out.finish_reason === 'length' ? 5 : (out.token_ids as number[]).length);
  t.equal((out.logprobs as number[]).length, (out.token_ids as number[]).length);
  t.ok((out.logprobs as number[]).every((l) => l <= 0), 'logprobs are log-probabilities');
  t.ok((out.top_logprobs as unknown[][]).every((alts) => alts.length === 2));
});

t.test('greedy output is deterministic; the text format prints the same ids', async (t) => {
  const a = JSON.parse(run(['--prompt', 'Scroll down', '--max-tokens', '6', '--json']).stdout) as { token_ids: number[] };
  const b = run(['--prompt', 'Scroll down', '--max-tokens', '6']);
  t.equal(b.status, 0);
  t.match(b.stdout, new RegExp(`token ids: ${a.token_ids.join(' ')}\\n`));
});

t.test('bad input is a one-line error, not a stack trace', async (t) => {
  const missing = run(['--prompt', 'x', '--image', '/nonexistent.png']);
  t.equal(missing.status, 1);
  t.match(missing.stderr.trim().split('\n').pop(), /^run-engine: .*nonexistent\.png/);
  const notImage = run(['--prompt', 'x', '--image', cli]);
  t.equal(notImage.status, 1);
  t.match(notImage.stderr, /run-engine: .*(image|invalid)/i);
  t.notMatch(notImage.stderr, /\n\s+at /, 'no stack trace');
  const badModel = run(['--prompt', 'x', '--model', '/tmp']);
  t.equal(badModel.status, 1);
  t.match(badModel.stderr, /run-engine: .*config\.json/);
});
