// Image, audio, archive, chart / pivot, VLC, Thunderbird and Chrome-state metrics against real files
// (ImageMagick / sharp images, ffmpeg audio, LibreOffice pivot tables, openpyxl charts), each with
// near misses that must score 0; the relative-date getter's arithmetic.
import t from 'tap';
import { commandWorks } from '../../helpers/commands.ts';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import {
  checkBrightnessDecreaseAndStructureSim,
  checkContrastIncreaseAndStructureSim,
  checkImageSize,
  checkPaletteAndStructureSim,
  checkSaturationIncreaseAndStructureSim,
  checkStructureSim,
  checkStructureSimResized,
  compareImageList,
  compareImages,
  loadImage,
  ssim,
  toL,
} from '../../../harness/eval/metrics/image.ts';
import { compareAudios } from '../../../harness/eval/metrics/audio.ts';
import { compareArchive } from '../../../harness/eval/metrics/archive.ts';
import { compareTable } from '../../../harness/eval/metrics/table.ts';
import { checkGlobalKeyPlayPause, checkQtBgcone, checkQtMaxVolume, checkQtMinimalView, checkQtSliderColours, isVlcPlaying } from '../../../harness/eval/metrics/vlc.ts';
import { checkCsv, checkThunderbirdFilter, parseFilters } from '../../../harness/eval/metrics/thunderbird.ts';
import { checkEnabledExperiments, checkHistoryDeleted, isCookieDeleted, isExpectedInstalledExtensions, isShortcutOnDesktop } from '../../../harness/eval/metrics/chrome.ts';
import { Day, applyTimeFormat, resolveRelativeTime } from '../../../harness/eval/getters/relative-time.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-media-'));
t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
const f = (name: string) => path.join(dir, name);
const write = (name: string, text: string) => {
  fs.writeFileSync(f(name), text);
  return f(name);
};
const magick = (...args: string[]) => execFileSync('convert', args, { cwd: dir });
const PY = '/usr/bin/python3';

t.test('image metrics', { skip: commandWorks('convert', ['-version']) ? false : 'ImageMagick missing' }, async (t) => {
  // A structured picture: gradient, shapes and text.
  magick('-size', '160x120', 'gradient:orange-navy', '-fill', 'white', '-draw', 'circle 50,60 50,25', '-fill', 'green', '-draw', 'rectangle 100,20 150,100', '-depth', '8', 'PNG24:src.png');
  magick('src.png', '-modulate', '70', 'darker.png'); // brightness down
  magick('src.png', '-modulate', '130', 'brighter.png');
  magick('src.png', '-modulate', '100,160', 'saturated.png');
  magick('src.png', '-modulate', '100,50', 'desaturated.png');
  magick('src.png', '-sigmoidal-contrast', '6x50%', 'contrast.png');
  magick('src.png', '-flop', 'flopped.png');
  magick('src.png', '-resize', '80x60!', 'half.png');
  magick('src.png', '-colors', '64', 'PNG8:palette.png');
  magick('src.png', 'PNG24:truecolor.png');
  magick('-size', '160x120', 'xc:gray50', 'flat.png');
  magick('-size', '160x120', 'xc:none', '-fill', 'red', '-draw', 'rectangle 30,20 129,99', 'PNG8:transparent8.png');
  // content 100x80 inside a transparent 160x120 canvas
  magick('-size', '160x120', 'xc:none', '-fill', 'red', '-draw', 'rectangle 30,20 129,99', 'PNG32:transparent.png');

  const [src, darker, brighter] = [f('src.png'), f('darker.png'), f('brighter.png')];
  t.equal(await checkStructureSim(src, src, {}), 1);
  t.equal(await checkStructureSim(src, f('flopped.png'), {}), 0, 'mirrored picture is another structure');
  t.equal(await checkStructureSim(src, f('half.png'), {}), 0, 'different size');
  t.equal(await checkStructureSim(null, src, {}), 0);

  // OSWorld's argument order: the agent's result first, the original second.
  t.equal(await checkBrightnessDecreaseAndStructureSim(darker, src, {}), 1);
  t.equal(await checkBrightnessDecreaseAndStructureSim(brighter, src, {}), 0, 'brighter is not darker');
  t.equal(await checkBrightnessDecreaseAndStructureSim(f('flat.png'), src, {}), 0, 'darker but unrelated');
  t.equal(await checkSaturationIncreaseAndStructureSim(f('saturated.png'), src, {}), 1);
  t.equal(await checkSaturationIncreaseAndStructureSim(f('desaturated.png'), src, {}), 0);
  t.equal(await checkContrastIncreaseAndStructureSim(f('contrast.png'), src, {}), 1);
  t.equal(await checkContrastIncreaseAndStructureSim(src, f('contrast.png'), {}), 0, 'lower contrast');
  t.equal(await checkPaletteAndStructureSim(f('palette.png'), src, {}), 1);
  t.equal(await checkPaletteAndStructureSim(f('truecolor.png'), src, {}), 0, 'not palette-based');
  t.equal(await checkStructureSimResized(f('half.png'), src, {}), 1, 'resized back, same structure');
  t.equal(await checkStructureSimResized(f('flopped.png'), src, {}), 0);

  t.equal(await checkImageSize(f('half.png'), { width: 80, height: 60 }, {}), 1);
  t.equal(await checkImageSize(f('half.png'), { width: 80 }, {}), 1);
  t.equal(await checkImageSize(f('half.png'), { height: 61 }, {}), 0);
  t.equal(await checkImageSize(f('transparent.png'), { width: 100, height: 80, ignore_transparent: true }, {}), 1, 'content box');
  t.equal(await checkImageSize(f('transparent.png'), { width: 100, height: 80 }, {}), 0, 'whole canvas without ignore_transparent');
  // OSWorld's `a and b or c`: a palette image with transparency is cropped even without the option.
  t.equal(await checkImageSize(f('transparent8.png'), { width: 100, height: 80 }, {}), 1, 'palette + transparency: content box');

  const same = await compareImages(src, f('truecolor.png'), {});
  t.ok(Math.abs(same - 1) < 1e-9, `compare_images of identical pixels is 1 (${same})`);
  const flopped = await compareImages(src, f('flopped.png'), {});
  t.ok(flopped < 0.9, `compare_images is the SSIM (${flopped})`);
  t.equal(await compareImages(src, f('flopped.png'), { reference_base_result: 0.95 }), 0, 'below reference_base_result');
  t.equal(await compareImages(src, null, {}), 0);

  t.equal(await compareImageList([src, f('half.png')], [f('truecolor.png'), f('half.png')], {}), 1);
  t.equal(await compareImageList([src], [darker], {}), 0);
  // Pillow semantics: for images with alpha only the alpha band of the difference counts.
  await sharp(f('src.png')).ensureAlpha().png().toFile(f('a1.png'));
  await sharp(f('darker.png')).ensureAlpha().png().toFile(f('a2.png'));
  t.equal(await compareImageList(f('a2.png'), f('a1.png'), {}), 1, 'opaque RGBA images: only alpha compared, as Pillow getbbox');

  // SSIM reference values (scikit-image 0.2x on these arrays): identical = 1, constant vs ramp.
  const ramp = { width: 8, height: 8, channels: 1, data: Uint8Array.from({ length: 64 }, (_, i) => i * 4), mode: 'L' as const };
  t.equal(ssim(ramp, ramp), 1);
  const l = toL(await loadImage(src));
  t.equal(l.channels, 1);
});

t.test('compare_table chart and pivot_table rules', { skip: commandWorks(PY, ['-c', 'import openpyxl']) && commandWorks('soffice', ['--version']) ? false : 'openpyxl or soffice missing' }, async (t) => {
  execFileSync(
    PY,
    [
      '-c',
      `
import openpyxl
from openpyxl.chart import BarChart, LineChart, Reference
def book(name, kind, title, direction='col'):
    wb = openpyxl.Workbook(); ws = wb.active; ws.title = 'Sheet1'
    for r in [['m', 'a', 'b'], ['x', 1, 2], ['y', 3, 4], ['z', 5, 6]]: ws.append(r)
    c = BarChart() if kind == 'bar' else LineChart()
    if kind == 'bar': c.type = direction
    c.title = title
    c.add_data(Reference(ws, min_col=2, min_row=1, max_row=4, max_col=3), titles_from_data=True)
    c.set_categories(Reference(ws, min_col=1, min_row=2, max_row=4))
    ws.add_chart(c, 'E2'); wb.save(name)
book('gold_chart.xlsx', 'bar', 'Sales')
book('same_chart.xlsx', 'bar', 'Sales')
book('line_chart.xlsx', 'line', 'Sales')
book('other_title.xlsx', 'bar', 'Costs')
book('horizontal.xlsx', 'bar', 'Sales', 'bar')
`,
    ],
    { cwd: dir },
  );
  const chart = (props: string[]) => ({ rules: [{ type: 'chart', sheet_idx0: 0, sheet_idx1: 'EI0', chart_props: props }] });
  t.equal(await compareTable(f('same_chart.xlsx'), f('gold_chart.xlsx'), chart(['type', 'title'])), 1);
  t.equal(await compareTable(f('line_chart.xlsx'), f('gold_chart.xlsx'), chart(['type'])), 0, 'line chart vs bar chart');
  t.equal(await compareTable(f('other_title.xlsx'), f('gold_chart.xlsx'), chart(['type', 'title'])), 0, 'other title');
  t.equal(await compareTable(f('other_title.xlsx'), f('gold_chart.xlsx'), chart(['type'])), 1, 'title not asked');
  t.equal(await compareTable(f('horizontal.xlsx'), f('gold_chart.xlsx'), chart(['type', 'direction'])), 0, 'bar direction');
  // Charts as LibreOffice's own xlsx export writes them (series references without quotes).
  fs.mkdirSync(f('lo'));
  for (const name of ['gold_chart', 'same_chart', 'line_chart']) execFileSync('soffice', ['--headless', '--convert-to', 'xlsx', '--outdir', f('lo'), f(`${name}.xlsx`)], { stdio: 'ignore', timeout: 120_000 });
  t.equal(await compareTable(f('lo/same_chart.xlsx'), f('lo/gold_chart.xlsx'), chart(['type', 'title'])), 1, 'LibreOffice files: same chart');
  t.equal(await compareTable(f('lo/line_chart.xlsx'), f('lo/gold_chart.xlsx'), chart(['type'])), 0, 'LibreOffice files: line vs bar');
  t.equal(await compareTable(f('lo/gold_chart.xlsx'), f('gold_chart.xlsx'), chart(['type'])), 0, "'Sheet1'!.. vs Sheet1!.. series keys differ, as in OSWorld");

  // Pivot tables made by LibreOffice (a flat ODS with a data pilot converted to xlsx).
  const fods = (rowField: string, colField: string, fn: string) => `<?xml version="1.0" encoding="UTF-8"?>
<office:document xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3" office:mimetype="application/vnd.oasis.opendocument.spreadsheet">
<office:body><office:spreadsheet>
<table:table table:name="Sheet1">${[
    ['Region', 'Product', 'Sales'],
    ['East', 'Pen', 10],
    ['West', 'Pen', 20],
    ['East', 'Ink', 5],
  ]
    .map((r) => `<table:table-row>${r.map((v) => (typeof v === 'number' ? `<table:table-cell office:value-type="float" office:value="${v}"><text:p>${v}</text:p></table:table-cell>` : `<table:table-cell office:value-type="string"><text:p>${v}</text:p></table:table-cell>`)).join('')}</table:table-row>`)
    .join('')}</table:table>
<table:table table:name="Sheet2"><table:table-row><table:table-cell/></table:table-row></table:table>
<table:data-pilot-tables><table:data-pilot-table table:name="DataPilot1" table:target-range-address="Sheet2.A1:Sheet2.D5">
<table:source-cell-range table:cell-range-address="Sheet1.A1:Sheet1.C4"/>
<table:data-pilot-field table:source-field-name="${rowField}" table:orientation="row"/>
<table:data-pilot-field table:source-field-name="${colField}" table:orientation="column"/>
<table:data-pilot-field table:source-field-name="Sales" table:orientation="data" table:function="${fn}"/>
<table:data-pilot-field table:source-field-name="" table:is-data-layout-field="true" table:orientation="column"/>
</table:data-pilot-table></table:data-pilot-tables>
</office:spreadsheet></office:body></office:document>`;
  for (const [name, row, col, fn] of [
    ['pv_gold', 'Region', 'Product', 'sum'],
    ['pv_same', 'Region', 'Product', 'sum'],
    ['pv_swapped', 'Product', 'Region', 'sum'],
    ['pv_count', 'Region', 'Product', 'count'],
  ] as const) {
    write(`${name}.fods`, fods(row, col, fn));
    execFileSync('soffice', ['--headless', '--convert-to', 'xlsx', '--outdir', dir, f(`${name}.fods`)], { stdio: 'ignore', timeout: 120_000 });
  }
  const pivot = { rules: [{ type: 'pivot_table', sheet_idx0: 'RNSheet2', sheet_idx1: 'ENSheet2', pivot_props: ['col_fields', 'filter', 'row_fields', 'data_fields'] }] };
  t.equal(await compareTable(f('pv_same.xlsx'), f('pv_gold.xlsx'), pivot), 1);
  t.equal(await compareTable(f('pv_swapped.xlsx'), f('pv_gold.xlsx'), pivot), 0, 'rows and columns swapped');
  t.equal(await compareTable(f('pv_count.xlsx'), f('pv_gold.xlsx'), pivot), 0, 'count instead of sum');
  t.equal(await compareTable(f('gold_chart.xlsx'), f('pv_gold.xlsx'), pivot), 0, 'no pivot table at all');
});

t.test('compare_audios and compare_archive', { skip: commandWorks('ffmpeg', ['-version']) ? false : 'ffmpeg missing' }, async (t) => {
  const ff = (...args: string[]) => execFileSync('ffmpeg', ['-v', 'error', '-y', ...args], { cwd: dir });
  ff('-f', 'lavfi', '-i', 'sine=frequency=440:duration=2', '-f', 'lavfi', '-i', 'sine=frequency=880:duration=2', '-filter_complex', '[0][1]concat=n=2:v=0:a=1', 'tune.wav');
  ff('-i', 'tune.wav', '-b:a', '128k', 'tune.mp3'); // same audio, lossy re-encode
  ff('-f', 'lavfi', '-i', 'anoisesrc=duration=4:color=pink', 'noise.wav');
  ff('-f', 'lavfi', '-i', 'sine=frequency=880:duration=2', '-f', 'lavfi', '-i', 'sine=frequency=440:duration=2', '-filter_complex', '[0][1]concat=n=2:v=0:a=1', 'reversed.wav');
  const same = await compareAudios(f('tune.wav'), f('tune.mp3'), {});
  const noise = await compareAudios(f('tune.wav'), f('noise.wav'), {});
  const reversed = await compareAudios(f('tune.wav'), f('reversed.wav'), {});
  t.ok(same > 0.9, `same audio re-encoded scores high (${same})`);
  t.ok(noise < same - 0.2, `noise scores lower (${noise})`);
  t.ok(reversed < same, `the tones in the other order score lower (${reversed})`);
  t.equal(await compareAudios(f('tune.wav'), f('missing.wav'), {}), 0, 'one side undecodable');

  fs.mkdirSync(f('pack/docs'), { recursive: true });
  fs.writeFileSync(f('pack/docs/a.txt'), 'alpha\n');
  fs.writeFileSync(f('pack/docs/b.txt'), 'beta\n');
  execFileSync('tar', ['-czf', f('gold.tar.gz'), '-C', f('pack'), 'docs']);
  execFileSync('tar', ['-czf', f('pred.tar.gz'), '-C', f('pack'), 'docs']);
  t.equal(await compareArchive(f('pred.tar.gz'), f('gold.tar.gz'), { file_path: 'docs', file_type: 'text' }), 1);
  fs.writeFileSync(f('pack/docs/b.txt'), 'BETA\n');
  execFileSync('tar', ['-czf', f('pred2.tar.gz'), '-C', f('pack'), 'docs']);
  t.equal(await compareArchive(f('pred2.tar.gz'), f('gold.tar.gz'), { file_path: 'docs', file_type: 'text' }), 0.5, 'one of two files differs: mean');
  fs.rmSync(f('pack/docs/b.txt'));
  execFileSync('tar', ['-czf', f('pred3.tar.gz'), '-C', f('pack'), 'docs']);
  t.equal(await compareArchive(f('pred3.tar.gz'), f('gold.tar.gz'), { file_path: 'docs', file_type: 'text' }), 0, 'file list differs');
});

t.test('VLC metrics', async (t) => {
  const vlcrc = write('vlcrc', '[qt]\n# Show background cone (boolean)\n#qt-bgcone=1\nqt-bgcone=0\n#qt-max-volume=125\nqt-max-volume=200\n#qt-minimal-view=0\n#qt-slider-colours=153;210;153;20;210;20;255;199;15;245;39;29\nqt-slider-colours=10;10;10;20;20;20;0;0;0;5;5;5\n[core]\n#global-key-play-pause=\nglobal-key-play-pause=Space\n');
  t.equal(checkQtBgcone(vlcrc, { expected_qt_bgcone: 0 }, {}), 1);
  t.equal(checkQtBgcone(vlcrc, { expected_qt_bgcone: 1 }, {}), 0);
  t.equal(checkQtMaxVolume(vlcrc, { expected_qt_max_volume: '200' }, {}), 1);
  t.equal(checkQtMaxVolume(vlcrc, { expected_qt_max_volume: 125 }, {}), 0);
  t.equal(checkQtMinimalView(vlcrc, { expected_qt_minimal_view: 0 }, {}), 1, 'the commented default line counts, as in OSWorld');
  t.equal(checkQtMinimalView(vlcrc, { expected_qt_minimal_view: 1 }, {}), 0);
  t.equal(checkQtSliderColours(vlcrc, { type: 'blackish' }, {}), 1);
  const defaults = write('vlcrc-default', '[qt]\n#qt-slider-colours=153;210;153;20;210;20;255;199;15;245;39;29\n');
  t.equal(checkQtSliderColours(defaults, { type: 'blackish' }, {}), 0);
  t.equal(checkQtSliderColours(defaults, { type: 'match', expected_qt_slider_colours: '153;210;153;20;210;20;255;199;15;245;39;29' }, {}), 1);
  t.equal(checkGlobalKeyPlayPause(vlcrc, { expected_global_key_play_pause: 1 }, {}), 1);
  t.equal(checkGlobalKeyPlayPause(defaults, { expected_global_key_play_pause: 1 }, {}), 0);

  const status = (state: string, name: string) =>
    write(`status-${state}.xml`, `<?xml version="1.0" encoding="utf-8" standalone="yes" ?><root><volume>256</volume><state>${state}</state><information><category name="meta"><info name='filename'>${name}</info></category><category name="Stream 0"><info name='Type'>Audio</info></category></information></root>`);
  t.equal(isVlcPlaying(status('playing', 'song.mp3'), { type: 'file_name', file_name: 'song.mp3' }, {}), 1);
  t.equal(isVlcPlaying(status('playing', 'other.mp3'), { type: 'file_name', file_name: 'song.mp3' }, {}), 0);
  t.equal(isVlcPlaying(status('paused', 'song.mp3'), { type: 'file_name', file_name: 'song.mp3' }, {}), 0);
  t.equal(isVlcPlaying(status('playing', 'live.m3u8'), { type: 'url', url: 'https://example.org/hls/live.m3u8' }, {}), 1, 'HLS shows the file name only');
});

t.test('Thunderbird filters and CSV', async (t) => {
  const dat = write(
    'msgFilterRules.dat',
    'version="9"\nlogging="no"\nname="Promos"\nenabled="yes"\ntype="17"\naction="Move to folder"\nactionValue="mailbox://nobody@Local%20Folders/Promotions"\ncondition="AND (subject,contains,discount)"\nname="Fwd"\nenabled="no"\ntype="17"\naction="Forward"\nactionValue="x@example.org"\ncondition="ALL"\n',
  );
  t.same(parseFilters(fs.readFileSync(dat, 'utf8'))[0]?.condition, ['AND (subject,contains,discount)']);
  const rule = { expect: [{ enabled: 'yes', action: 'Move to folder', actionValue: 'mailbox://nobody@Local%20Folders/Promotions', condition: ['AND (subject,contains,discount)'] }] };
  t.equal(checkThunderbirdFilter(dat, rule, {}), 1);
  t.equal(checkThunderbirdFilter(dat, { expect: [{ enabled: 'yes', action: 'Forward', condition: ['ALL'] }] }, {}), 0, 'the forward filter is disabled');
  t.equal(checkThunderbirdFilter(dat, { ...rule, unexpect: [{ action: 'Forward' }] }, {}), 0, 'unexpected filter present');

  const csv = write('accounts.csv', 'url,user,name\r\nimap://outlook.office365.com,anonym-x2024@outlook.com,"Work, main"\r\npop3://pop.example.org,me@example.org,Home\r\n');
  t.equal(checkCsv(csv, { unexpect: [{ url: 'imap://outlook.office365.com', user: 'anonym-x2024@outlook.com' }] }, {}), 0);
  t.equal(checkCsv(csv, { expect: [{ name: 'Work, main' }], unexpect: [{ url: 'imap://other' }] }, {}), 1);
  t.equal(checkCsv(csv, { expect: [{ name: 'Work' }] }, {}), 0);
});

t.test('Chrome state metrics', async (t) => {
  t.equal(isCookieDeleted([[1, '.example.com'], [2, 'news.org']], { type: 'domains', domains: ['.amazon.com'] }, {}), 1);
  t.equal(isCookieDeleted([[1, '.amazon.com']], { type: 'domains', domains: ['.amazon.com'] }, {}), 0);
  t.equal(checkHistoryDeleted([['https://www.youtube.com/watch', 'yt', 1]], { type: 'keywords', keywords: ['youtube'] }, {}), 0);
  t.equal(checkHistoryDeleted([['https://example.org/', 'ex', 1]], { type: 'keywords', keywords: ['youtube'] }, {}), 1);
  t.equal(checkEnabledExperiments(['read-anything@1', 'other@2'], { type: 'names', names: ['read-anything', 'other'] }, {}), 1);
  t.equal(checkEnabledExperiments(['other@2'], { type: 'names', names: ['read-anything', 'other'] }, {}), 0);
  t.equal(isExpectedInstalledExtensions(['Zoom for Google Chrome', 'uBlock'], { expected: ['Zoom Chrome Extension'] }, {}), 1);
  t.equal(isExpectedInstalledExtensions(['uBlock'], { expected: ['Zoom Chrome Extension'] }, {}), 0);
  const sc = { 'site.desktop': '[Desktop Entry]\nName=Google Play Books\nExec=/opt/google/chrome/google-chrome --app-id=abc\n' };
  t.equal(isShortcutOnDesktop(sc, { type: 'name', name: 'Play Books' }, {}), 1);
  t.equal(isShortcutOnDesktop(sc, { type: 'name', name: 'YouTube' }, {}), 0);
  t.equal(isShortcutOnDesktop(sc, { type: 'exec', exec: '--app-id=abc' }, {}), 1);
});

t.test('rule_relativeTime dates', async (t) => {
  const wed = new Day(2024, 1, 31); // a Wednesday
  t.equal(wed.weekday, 2);
  t.equal(applyTimeFormat('{DoW}, {Month} {DayD}, {Year} {Month0D}/{Day0D} {month} {MonthFull} {MonthD}', wed), 'Wed, Jan 31, 2024 01/31 january January 1');
  t.same(resolveRelativeTime({ relativeTime: { from: 'tomorrow' }, expected: { time: '{Year}-{Month0D}-{Day0D}' } }, wed).expected, { time: '2024-02-01' });
  t.same(resolveRelativeTime({ relativeTime: { from: 'next Monday' }, expected: { time: ['{DayD}', '{Month}'] } }, wed).expected, { time: ['5', 'Feb'] });
  t.same(resolveRelativeTime({ relativeTime: { from: '5th next month' }, expected: { time: '{MonthD}/{DayD}' } }, new Day(2024, 12, 20)).expected, { time: '1/5' }, 'December -> January of next year');
  t.same(resolveRelativeTime({ relativeTime: { from: 'first monday four months later' }, expected: { time: '{Year}-{MonthD}-{DayD}' } }, wed).expected, { time: '2024-5-6' });
  const range = resolveRelativeTime({ relativeTime: { from: 'next Saturday', to: 'next Sunday' }, expected: { from: '{DayD}', to: '{DayD}' } }, wed).expected;
  t.same(range, { from: '3', to: '4' });
  const split = resolveRelativeTime(
    { relativeTime: { from: 'next Monday split', to: 'next Friday split' }, expected: { puDay: '{DayD}', puMonth: '{MonthD}', puYear: '{Year}', doDay: '{DayD}', doMonth: '{MonthD}', doYear: '{Year}' } },
    wed,
  ).expected;
  t.same(split, { puDay: '5', puMonth: '2', puYear: '2024', doDay: '9', doMonth: '2', doYear: '2024' });
  t.same(resolveRelativeTime({ relativeTime: { from: 'this Saturday', to: 'this Sunday' }, expected: { from: '{DoW}', to: '{DoW}' } }, wed).expected, { from: 'Sat', to: 'Sun' });
});
