/**
 * OSWorld's VLC metrics (metrics/vlc.py): the HTTP interface's status.xml (is_vlc_playing) and
 * vlcrc settings read line by line as OSWorld does (a line *containing* "key=" counts, the
 * commented default "#key=..." included; the last such line wins; OSWorld's default when absent).
 */
import fs from 'node:fs';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import type { Metric } from '../types.ts';

type Rule = Record<string, unknown>;
const ruleOf = (v: unknown): Rule => (v && typeof v === 'object' ? (v as Rule) : {});
const read = (p: unknown): string | null => (typeof p === 'string' && fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : null);

/** The `<info name=...>` texts of one `<category name=...>` of status.xml. */
function statusInfo(xml: string): { state: string | null; info: (category: string, name: string) => string | null } {
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '@', parseTagValue: false, isArray: (n) => n === 'category' || n === 'info' }).parse(xml) as Record<string, unknown>;
  const root = (doc.root ?? {}) as Record<string, unknown>;
  const state = root.state === undefined ? null : String(root.state);
  const cats = (((root.information ?? {}) as Record<string, unknown>).category ?? []) as Record<string, unknown>[];
  return {
    state,
    info: (category, name) => {
      const cat = cats.find((c) => c['@name'] === category);
      const inf = ((cat?.info ?? []) as unknown[]).find((i) => typeof i === 'object' && (i as Rule)['@name'] === name) as Rule | undefined;
      const text = inf?.['#text'];
      return text === undefined || text === '' ? null : String(text);
    },
  };
}

export const isVlcPlaying: Metric = (result, rule) => {
  const xml = read(result);
  if (xml === null) return 0;
  const { state, info } = statusInfo(xml);
  if (state !== 'playing') return 0;
  const r = ruleOf(rule);
  const first = (pairs: [string, string][]) => {
    for (const [c, n] of pairs) {
      const v = info(c, n);
      if (v) return v;
    }
    return null;
  };
  if (r.type === 'file_name') {
    const got = first(['filename', 'title', 'uri', 'location', 'name'].map((n) => ['meta', n]));
    if (!got) return 0;
    const want = String(r.file_name);
    if (path.posix.basename(got) === want || got.endsWith(want)) return 1;
    return got.includes(want) && (got.endsWith(`/${want}`) || got.endsWith(`\\${want}`)) ? 1 : 0;
  }
  if (r.type === 'url') {
    const got = first([
      ['meta', 'url'],
      ['meta', 'URI'],
      ['meta', 'location'],
      ['meta', 'title'],
      ['meta', 'filename'],
      ['Stream 0', 'Codec'],
      ['Stream 0', 'Type'],
      ['Stream 0', 'Language'],
    ]);
    if (!got) return 0;
    const want = String(r.url);
    if (got.includes(want) || got.endsWith(want)) return 1;
    try {
      const e = new URL(want);
      if (got === path.posix.basename(e.pathname)) return 1;
      if (got.includes('://')) {
        const a = new URL(got);
        if (e.host === a.host && a.pathname.includes(e.pathname)) return 1;
      }
    } catch {
      /* not URLs */
    }
    return 0;
  }
  return 0;
};

/** The value of the last vlcrc line containing `needle` (text after the last "="), else the default. */
function vlcrcValue(text: string, needle: string, dflt: string): string {
  let v = dflt;
  for (const line of text.split('\n')) if (line.includes(needle)) v = (line.split('=').pop() ?? '').trim();
  return v;
}

const vlcrcCheck =
  (key: string, ruleKey: string, dflt: string): Metric =>
  (result, rule) => {
    const text = read(result);
    if (text === null) return 0;
    return vlcrcValue(text, `${key}=`, dflt) === String(ruleOf(rule)[ruleKey]) ? 1 : 0;
  };

export const checkQtBgcone = vlcrcCheck('qt-bgcone', 'expected_qt_bgcone', '1');
export const checkQtMaxVolume = vlcrcCheck('qt-max-volume', 'expected_qt_max_volume', '125');
export const checkQtMinimalView = vlcrcCheck('qt-minimal-view', 'expected_qt_minimal_view', '0');
export const checkOneInstanceWhenStartedFromFile = vlcrcCheck('one-instance-when-started-from-file', 'expected_one_instance_when_started_from_file', '1');
export const checkPlayAndExit = vlcrcCheck('play-and-exit', 'expected_play_and_exit', '0');

/** type "match": the qt-slider-colours string; type "blackish": every RGB triple below 100. */
export const checkQtSliderColours: Metric = (result, rule) => {
  const text = read(result);
  if (text === null) return 0;
  const v = vlcrcValue(text, 'qt-slider-colours', '153;210;153;20;210;20;255;199;15;245;39;29');
  const r = ruleOf(rule);
  if (r.type === 'match') return v === r.expected_qt_slider_colours ? 1 : 0;
  if (r.type === 'blackish') {
    const nums = v.split(';').map((x) => Number.parseInt(x, 10));
    if (nums.some((n) => Number.isNaN(n))) return 0; // OSWorld: int() fails -> 0
    for (let i = 0; i + 2 < nums.length; i += 3) if (!(nums[i]! < 100 && nums[i + 1]! < 100 && nums[i + 2]! < 100)) return 0;
    return 1;
  }
  return 0;
};

/** "1" when a global-key-play-pause= line has a value, "0" when empty or absent. */
export const checkGlobalKeyPlayPause: Metric = (result, rule) => {
  const text = read(result);
  if (text === null) return 0;
  let v = '0';
  for (const line of text.split('\n')) if (line.includes('global-key-play-pause=')) v = (line.split('=').pop() ?? '').trim() === '' ? '0' : '1';
  return v === String(ruleOf(rule).expected_global_key_play_pause) ? 1 : 0;
};

/** The first uncommented line containing input-record-path decides. */
export const isVlcRecordingsFolder: Metric = (result, rule) => {
  const text = read(result);
  if (text === null) return 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.trim()) continue;
    if (line.includes('input-record-path')) return (line.split('=').pop() ?? '').trim() === ruleOf(rule).recording_file_path ? 1 : 0;
  }
  return 0;
};

export const isVlcFullscreen: Metric = (windowSize, screenSize) => {
  const w = windowSize as { width: number; height: number } | null;
  const s = screenSize as { width: number; height: number } | null;
  if (!w || !s) return 0;
  return w.width === s.width && w.height === s.height ? 1 : 0;
};
