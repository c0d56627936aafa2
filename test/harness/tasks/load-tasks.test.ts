/** Task lists and configs from evaluation_examples, and the result layout. */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadTask, loadTaskList } from '../../../harness/tasks/load-tasks.ts';
import { isFinished, osworldTimestamp, readScore, taskDir, trialDir } from '../../../harness/results/layout.ts';
import { TaskResultWriter, writeFileAtomic } from '../../../harness/results/writer.ts';
import { REPO_ROOT } from '../../../server/model/checkpoint/tiny.ts';

const BASE = path.join(REPO_ROOT, 'evaluation_examples');

t.test('all 369 OSWorld tasks load and validate; ids come from file names', async (t) => {
  const refs = loadTaskList(path.join(BASE, 'test_all.json'));
  t.equal(refs.length, 369);
  const loaded = refs.map((r) => loadTask(BASE, r));
  t.same(loaded.filter((l) => 'error' in l), [], 'no invalid task');
  const thunderbird = loaded.filter((l) => l.domain === 'thunderbird');
  const raw = thunderbird.map((l) => (JSON.parse(fs.readFileSync(l.file, 'utf8')) as { id: string }).id);
  t.equal(raw.filter((id, i) => id !== thunderbird[i]!.id).length, 15, 'the 15 files with a wrong inner id');
  t.ok(thunderbird.every((l) => 'task' in l && l.task.id === l.id), 'the file name wins');
  t.equal(loadTaskList(path.join(BASE, 'test_all.json'), 'vlc').length, 17);
  t.throws(() => loadTaskList(path.join(BASE, 'test_all.json'), 'nope'), /domain "nope" is not in/);
});

t.test('an invalid task is reported with its path, not thrown', async (t) => {
  const dir = t.testdir({
    examples: { os: { 'bad.json': '{ not json', 'noinstr.json': JSON.stringify({ id: 'x', config: [], evaluator: { func: 'exact_match' } }) } },
    'list.json': JSON.stringify({ os: ['bad', 'noinstr', 'missing'] }),
  });
  const refs = loadTaskList(path.join(dir, 'list.json'));
  const [bad, noInstr, missing] = refs.map((r) => loadTask(dir, r));
  t.match(bad, { error: /JSON|Unexpected|Expected/, file: /bad\.json$/ });
  t.match(noInstr, { error: /instruction/ });
  t.match(missing, { error: /ENOENT|no such file/ });
});

t.test('OSWorld result layout, atomic writes, finished means result.txt', async (t) => {
  const p = { resultDir: t.testdir({}), actionSpace: 'pyautogui', observationType: 'screenshot', model: 'ui-tars', trialId: '0' };
  const ref = { domain: 'os', id: 'abc' };
  t.equal(taskDir(p, ref), path.join(trialDir(p), 'os', 'abc'));
  t.match(osworldTimestamp(new Date(2026, 0, 2, 3, 4, 5)), '20260102@030405');
  const w = new TaskResultWriter(taskDir(p, ref));
  w.begin();
  w.trajectory({ step_num: 0, action: 'reset' });
  t.notOk(isFinished(p, ref));
  w.result(0.5);
  t.ok(isFinished(p, ref));
  t.equal(readScore(path.join(taskDir(p, ref), 'result.txt')), 0.5);
  t.same(fs.readdirSync(taskDir(p, ref)).sort(), ['result.txt', 'runtime.log', 'traj.jsonl'], 'no temporary files left');
  w.begin();
  t.same(fs.readdirSync(taskDir(p, ref)), ['runtime.log'], 'a new attempt starts from an empty folder');
});

t.test('a task list that is not JSON: one line, without the file text', async (t) => {
  const dir = t.testdir({ 'short.json': '{"os": tru\ne}', 'long.json': '{"os": ["a",\n "b"\n oops\n}' });
  for (const name of ['short.json', 'long.json']) {
    const err = (() => {
      try {
        loadTaskList(path.join(dir, name));
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    t.match(err, new RegExp(`^cannot read task list .*${name}: `), name);
    t.notMatch(err, /\n|tru|oops/, `${name}: one line, no file text`);
  }
});

t.test('an atomic write that cannot land leaves no temporary file', async (t) => {
  const dir = t.testdir({ 'report.html': {} }); // a folder where the file should go (report --out <dir>)
  t.throws(() => writeFileAtomic(path.join(dir, 'report.html'), 'x'), /EISDIR|EEXIST|ENOTEMPTY|directory/i);
  t.same(fs.readdirSync(dir), ['report.html'], 'no <file>.tmp-<pid>-* left');
});
