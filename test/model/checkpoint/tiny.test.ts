import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ensureTinyCheckpoint, DEFAULT_TINY_DIR, REPO_ROOT } from '../../../server/model/checkpoint/tiny.ts';
import { openCheckpoint } from '../../../server/model/checkpoint/checkpoint.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tiny-test-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

t.test('default location is .cache/checkpoints/tiny under the repo root', async (tt) => {
  tt.ok(fs.existsSync(path.join(REPO_ROOT, 'package.json')));
  tt.equal(DEFAULT_TINY_DIR, path.join(REPO_ROOT, '.cache', 'checkpoints', 'tiny'));
});

t.test('generates once, then reuses; regenerates a stale one; leaves no temp folders', async (tt) => {
  const dir = path.join(tmp, 'nested', 'tiny');
  const [p1, p2] = await Promise.all([ensureTinyCheckpoint(dir), ensureTinyCheckpoint(dir)]);
  tt.equal(p1, dir);
  tt.equal(p2, dir);
  const ck = await openCheckpoint(dir);
  tt.equal(ck.config.text.hiddenSize, 64);
  const mtime = fs.statSync(path.join(dir, 'model.safetensors')).mtimeMs;
  await ensureTinyCheckpoint(dir);
  tt.equal(fs.statSync(path.join(dir, 'model.safetensors')).mtimeMs, mtime, 'not rewritten');

  const marker = path.join(dir, 'generator.json');
  fs.writeFileSync(marker, JSON.stringify({ version: -1 }));
  await ensureTinyCheckpoint(dir);
  tt.not(JSON.parse(fs.readFileSync(marker, 'utf8')).version, -1, 'stale checkpoint replaced');
  tt.same(fs.readdirSync(path.dirname(dir)), ['tiny'], 'no temp folders left');
});
