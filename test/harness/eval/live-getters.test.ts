// Chrome and VLC getters against a real local desktop env: a file:// page opened over CDP read by
// active_tab_info / open_tabs_info / active_tab_html_parse, and VLC's HTTP status while it plays a
// short ffmpeg-made file (vlc_playing_info + is_vlc_playing). The env is closed afterwards.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { LocalProvider } from '../../../harness/env/providers/local/index.ts';
import { openChromeTabs } from '../../../harness/env/setup/chrome.ts';
import { runSetup } from '../../../harness/env/setup/setup-controller.ts';
import { FileCache } from '../../../harness/env/setup/file-cache.ts';
import { activeTabHtmlParse, activeTabInfo, openTabsInfo } from '../../../harness/eval/getters/chrome.ts';
import { vlcPlayingInfo } from '../../../harness/eval/getters/apps.ts';
import { isVlcPlaying } from '../../../harness/eval/metrics/vlc.ts';
import type { EvalContext } from '../../../harness/eval/types.ts';
import { skipReason, sleep } from '../env/desktop-helpers.ts';

const skip = skipReason('chromium', 'vlc', 'ffmpeg');

t.test('Chrome and VLC getters on a real desktop', { skip }, async (t) => {
  const provider = new LocalProvider();
  t.teardown(() => provider.closeAll());
  const env = await provider.start({ name: 'eval-getters' });
  t.teardown(() => env.close());
  const dir = t.testdir({});
  const ctx: EvalContext = { env, cache: new FileCache(path.join(dir)), workDir: path.join(dir, 'work'), taskBase: dir };

  const page = '<!doctype html><html><head><title>Trip</title></head><body><div class="price">$120</div><div class="price">$99</div>' + '<p id="city">Zurich</p><input id="q" value=" hello "><div class="route">SEA<span class="sep"></span>NYC</div></body></html>';
  const r = await env.client.execute(['sh', '-c', 'printf %s "$HOME"']);
  const home = r.status === 'success' ? r.output.trim() : '/root';
  const html = `${home}/trip.html`;
  await env.client.upload(html, Buffer.from(page), 'trip.html');
  await runSetup({ env, cache: ctx.cache, localBase: dir }, [{ type: 'launch', parameters: { command: ['google-chrome', '--remote-debugging-port=1337'] } }]);
  await openChromeTabs(env, [`file://${html}`]);
  await sleep(1000);

  const cfg = { goto_prefix: 'file://' }; // the address bar shows a file URL without its scheme
  const info = (await activeTabInfo(ctx, { type: 'active_tab_info', ...cfg })) as { title: string; url: string; content: string } | null;
  t.equal(info?.title, 'Trip', 'active_tab_info reads the visible tab');
  t.match(info?.url ?? '', /trip\.html$/);
  const tabs = (await openTabsInfo(ctx, { type: 'open_tabs_info' })) as { title: string; url: string }[];
  t.ok(tabs.some((x) => x.title === 'Trip' && x.url === `file://${html}`), `open_tabs_info: ${JSON.stringify(tabs)}`);

  const byClass = await activeTabHtmlParse(ctx, {
    type: 'active_tab_html_parse',
    ...cfg,
    category: 'class',
    class_singleObject: { price: 'first' },
    class_multiObject: { price: { '0': 'p0', '1': 'p1', '5': 'missing' } },
    class_multiObject_child: { route: { '0': 'from', '1': 'to' } },
  });
  t.same(byClass, { p0: '$120', p1: '$99', missing: '', from: 'SEA', to: 'NYC', first: '$120' });
  const byXpath = await activeTabHtmlParse(ctx, { type: 'active_tab_html_parse', ...cfg, category: 'xpath', xpathObject: { '//*[@id="city"]': 'city', '//*[@id="none"]': 'none' } });
  t.same(byXpath, { city: 'Zurich', none: '' });
  const byInput = await activeTabHtmlParse(ctx, { type: 'active_tab_html_parse', ...cfg, category: 'input', inputObject: { '//*[@id="q"]': 'q' } });
  t.same(byInput, { q: 'hello' });

  // VLC: a 20 s tone made by ffmpeg, played through the env's `vlc` (HTTP interface on env.ports.vlc).
  const media = path.join(dir, 'tone.mp3');
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=20', media]);
  await env.client.upload(`${home}/tone.mp3`, fs.readFileSync(media), 'tone.mp3');
  await env.client.launch(['vlc', '--intf', 'dummy', `${home}/tone.mp3`]);
  let status: string | null = null;
  for (let i = 0; i < 40; i++) {
    await sleep(500);
    status = (await vlcPlayingInfo(ctx, { type: 'vlc_playing_info', dest: 'status.xml' }).catch(() => null)) as string | null;
    if (status && fs.readFileSync(status, 'utf8').includes('<state>playing</state>')) break;
  }
  t.ok(status, 'vlc_playing_info fetched status.xml');
  t.equal(isVlcPlaying(status, { type: 'file_name', file_name: 'tone.mp3' }, {}), 1, 'is_vlc_playing: the file plays');
  t.equal(isVlcPlaying(status, { type: 'file_name', file_name: 'other.mp3' }, {}), 0, 'another file name');
});
