import t from 'tap';
import { StopStringMatcher } from '../../server/engine/stop-strings.ts';

t.test('a stop string ends the text and is not part of it, across deltas', async (t) => {
  const m = new StopStringMatcher(['END']);
  const out: string[] = [];
  for (const d of ['Hello E', 'N', 'D world']) {
    const r = m.push(d);
    out.push(r.emit);
    if (r.stopped) break;
  }
  t.same(out, ['Hello ', '', '']);
  t.equal(m.fullText, 'Hello ');
});

t.test('a held-back prefix is released when it does not become a stop string', async (t) => {
  const m = new StopStringMatcher(['\n\n', 'Observation:']);
  t.same(m.push('Action: click\n'), { emit: 'Action: click', stopped: false });
  t.same(m.push('Obs'), { emit: '\n', stopped: false });
  t.same(m.push('cure'), { emit: 'Obscure', stopped: false });
  t.equal(m.finish(), '');
  t.equal(m.fullText, 'Action: click\nObscure');
});

t.test('the earliest of several stop strings wins; finish() releases the tail', async (t) => {
  const m = new StopStringMatcher(['bb', 'a']);
  t.same(m.push('xxbbya'), { emit: 'xx', stopped: true });
  const n = new StopStringMatcher(['stop!']);
  t.same(n.push('sto'), { emit: '', stopped: false });
  t.equal(n.finish(), 'sto');
});
