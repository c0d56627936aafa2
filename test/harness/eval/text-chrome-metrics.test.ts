// Metrics over text, JSON and browser state, the value-rule matcher, and the coverage report.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { matchValueToRule } from '../../../harness/eval/metrics/rules.ts';
import { checkConfigStatus, checkJson, checkJsonSettings, checkList, checkThunderbirdPrefs, compareConfig, diffTextFile, sequenceRatio } from '../../../harness/eval/metrics/text.ts';
import { compareUrls, isExpectedActiveTab, isExpectedBookmarks, isExpectedTabs, isExpectedUrlPatternMatch } from '../../../harness/eval/metrics/chrome.ts';
import { fuzzRatio } from '../../../harness/eval/metrics/table.ts';
import { coverTask } from '../../../harness/cli/coverage.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-text-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text);
  return p;
};

t.test('value rules', async (t) => {
  t.ok(matchValueToRule(30.05, { method: 'approx:0.1', ref: 30 }));
  t.notOk(matchValueToRule(31, { method: 'approx:0.1', ref: 30 }));
  t.ok(matchValueToRule('D2:D29', { method: 'spreadsheet_range', ref: ['D2:D29', 'D2:D1048576'] }));
  t.notOk(matchValueToRule('D3:D29', { method: 'spreadsheet_range', ref: ['D2:D29', 'D2:D1048576'] }));
  t.ok(matchValueToRule('"Pass,Fail,Held"', { method: 'str_set_eq', ref: ['Held', 'Pass', 'Fail'] }));
  t.ok(matchValueToRule(2, { method: 'range.te', ref: [0, 2] }));
  t.ok(matchValueToRule('Hello', { method: 're.I', ref: '^hello' }));
  t.equal(Math.round(fuzzRatio('this is a test', 'this is a test!')), 97); // rapidfuzz gives 96.55
});

t.test('text metrics', async (t) => {
  const list = file('list.txt', 'alpha\nbeta\ngamma\n');
  t.equal(checkList(list, { expect: ['^beta', 'gam'], unexpect: ['delta'] }, {}), 1);
  t.equal(checkList(list, { expect: ['^beta'], unexpect: ['alp'] }, {}), 0);
  t.equal(checkList(path.join(dir, 'none'), { expect: [] }, {}), 0);
  const json = file('s.json', JSON.stringify({ a: { b: 3 }, c: 'x' }));
  t.equal(checkJson(json, { expect: [{ key: ['a', 'b'], method: 'eq', ref: 3 }], unexpect: [{ key: ['c'], method: 'eq', ref: 'y' }] }, {}), 1);
  t.equal(checkJson(json, { expect: [{ key: ['a', 'b'], method: 'eq', ref: 4 }] }, {}), 0);
  t.equal(checkJson(json, { expect: [{ key: ['zz'], method: 'eq', ref: 4 }] }, {}), 0);
  t.equal(checkJsonSettings(json, { expected: { c: 'x' } }, {}), 1);
  t.equal(checkJsonSettings(json, { expected: { c: 'y' } }, {}), 0);
  t.equal(compareConfig(json, { expected: '{"a": {"b": 3}}' }, {}), 1);
  t.equal(compareConfig(json, { expected: '{"a": {"b": 4}}' }, {}), 0);
  t.equal(sequenceRatio(['a', 'b', 'c', 'd'], ['a', 'b', 'x', 'd']), 0.75);
  t.equal(diffTextFile(list, file('list2.txt', 'alpha\nbeta\ngamma\n'), {}), 1);
  const gimprc = file('sessionrc', '# comment\n(show-tooltips no)\n(theme "Dark")\n');
  t.equal(checkConfigStatus(gimprc, { key: 'show-tooltips', value: 'no' }, {}), 1);
  t.equal(checkConfigStatus(gimprc, { key: 'show-tooltips', value: 'yes' }, {}), 0);
  const prefs = file('prefs.js', 'user_pref("mail.spam.manualMark", true);\nuser_pref("mailnews.start_page.enabled", false);\n');
  t.equal(checkThunderbirdPrefs(prefs, { expect: { 'mail.spam.manualMark': { method: 'eq', ref: true } } }, {}), 1);
  t.equal(checkThunderbirdPrefs(prefs, { expect: { 'mail.spam.manualMark': { method: 'eq', ref: false } } }, {}), 0);
  t.equal(checkThunderbirdPrefs(prefs, { expect: { 'absent.key': { method: 'eq', ref: true } } }, {}), 0);
});

t.test('chrome metrics', async (t) => {
  t.ok(compareUrls('https://www.example.com/', 'http://example.org'.replace('http', 'https').replace('.org', '.com')));
  t.notOk(compareUrls('https://example.com/a', 'https://example.com/b'));
  t.equal(isExpectedActiveTab({ url: 'https://www.drugs.com/npc/' }, { type: 'url', url: 'https://www.drugs.com/npc/' }, {}), 1);
  t.equal(isExpectedActiveTab('https://www.drugs.com/other', { type: 'url', url: 'https://www.drugs.com/npc/' }, {}), 0);
  t.equal(isExpectedUrlPatternMatch('https://x.com/search?q=cats', { expected: ['search', 'q=cats'] }, {}), 1);
  t.equal(isExpectedUrlPatternMatch('https://x.com/search?q=dogs', { expected: ['search', 'q=cats'] }, {}), 0);
  const tabs = [{ url: 'https://a.com/' }, { url: 'https://b.com/x' }];
  t.equal(isExpectedTabs(tabs, { type: 'url', urls: ['https://b.com/x', 'https://a.com'] }, {}), 1);
  t.equal(isExpectedTabs(tabs, { type: 'url', urls: ['https://a.com'] }, {}), 0);
  const bm = { bookmark_bar: { children: [{ type: 'folder', name: 'Favorites', children: [] }, { type: 'url', url: 'https://a.com', name: 'a' }] } };
  t.equal(isExpectedBookmarks(bm, { type: 'bookmark_bar_folders_names', names: ['Favorites'] }, {}), 1);
  t.equal(isExpectedBookmarks(bm, { type: 'bookmark_bar_websites_urls', urls: ['https://b.com'] }, {}), 0);
});

t.test('coverage of one task', async (t) => {
  const row = coverTask('x', 'id', {
    related_apps: ['vs_code'],
    config: [{ type: 'download' }, { type: 'launch' }],
    evaluator: { func: ['compare_table', 'no_such_metric'], result: [{ type: 'vm_file' }, { type: 'googledrive_file' }], options: [{ rules: [{ type: 'sparkline' }] }, {}] },
  });
  t.same(row.missing, ['compare_table rule:sparkline', 'metric:no_such_metric']);
  t.equal(row.needsGoogle, true);
  t.equal(row.implemented, false);
  t.equal(row.appsAvailable, false);
  t.equal(row.needsCachedFiles, true);
});
