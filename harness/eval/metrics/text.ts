/** OSWorld's text-file metrics (metrics/general.py, vscode.py): lists, JSON/YAML, diffs. */
import fs from 'node:fs';
import YAML from 'yaml';
import type { Metric } from '../types.ts';
import { looseEqual, matchValueToRule, type ValueRule } from './rules.ts';

type R = Record<string, unknown>;
const rec = (v: unknown): R => (v && typeof v === 'object' ? (v as R) : {});
const readText = (p: unknown): string | null => (typeof p === 'string' && fs.existsSync(p) ? fs.readFileSync(p, 'utf8') : null);
const splitLines = (t: string): string[] => {
  const l = t.split(/\r\n|\r|\n/);
  if (l[l.length - 1] === '') l.pop();
  return l;
};

/** Every "expect" regex matches some line, no "unexpect" regex matches any line. */
export const checkList: Metric = (result, rules) => {
  const text = readText(result);
  if (text === null) return 0;
  const r = rec(rules);
  const expect = ((r.expect as string[] | undefined) ?? []).map((p) => new RegExp(p));
  const unexpect = ((r.unexpect as string[] | undefined) ?? []).map((p) => new RegExp(p));
  const lines = text.split(/(?<=\n)/);
  return expect.every((re) => lines.some((l) => re.test(l))) && lines.every((l) => unexpect.every((re) => !re.test(l))) ? 1 : 0;
};

/** Keys paths of a JSON (or YAML with is_yaml) file checked with _match_value_to_rule. */
export const checkJson: Metric = (result, rules, options) => {
  const text = readText(result);
  if (text === null) return 0;
  let data: unknown;
  try {
    data = options.is_yaml ? YAML.parse(text) : JSON.parse(text);
  } catch {
    return 0;
  }
  if (data === null || data === undefined) return 0;
  const r = rec(rules);
  const walk = (keys: (string | number)[]): { found: boolean; value: unknown } => {
    let v: unknown = data;
    for (const k of keys) {
      if (!v || typeof v !== 'object' || !(String(k) in (v as object))) return { found: false, value: null };
      v = (v as R)[String(k)];
    }
    return { found: true, value: v };
  };
  try {
    for (const e of (r.expect as (ValueRule & { key: string[] })[] | undefined) ?? []) {
      const { found, value } = walk(e.key);
      if (!found || !matchValueToRule(value, e)) return 0;
    }
    for (const e of (r.unexpect as (ValueRule & { key: string[] })[] | undefined) ?? []) {
      const { value } = walk(e.key);
      if (matchValueToRule(value, e)) return 0;
    }
  } catch {
    return 0;
  }
  return 1;
};

function loadJsonLoose(p: unknown): unknown {
  const text = readText(p);
  if (text === null) return null;
  for (const t of [text, text.split('\n').slice(1).join('\n')]) {
    try {
      return JSON.parse(t);
    } catch {
      /* next */
    }
  }
  return null;
}

/** VS Code keybindings.json (a list; the first line may be a comment) contains the expected entry. */
export const checkJsonKeybindings: Metric = (result, expected) => {
  const data = loadJsonLoose(result);
  if (!Array.isArray(data)) return 0;
  const want = rec(expected).expected;
  return data.some((d) => looseEqual(d, want)) ? 1 : 0;
};

/** VS Code settings.json has every expected key with the expected value. */
export const checkJsonSettings: Metric = (result, expected) => {
  const text = readText(result);
  if (text === null) return 0;
  let data: R;
  try {
    data = rec(JSON.parse(text));
  } catch {
    return 0;
  }
  return Object.entries(rec(rec(expected).expected)).every(([k, v]) => k in data && looseEqual(data[k], v)) ? 1 : 0;
};

/** difflib.SequenceMatcher(a, b).ratio() over lines: 2 * matches / total, via Ratcliff-Obershelp. */
export function sequenceRatio(a: string[], b: string[]): number {
  const total = a.length + b.length;
  if (!total) return 1;
  const matches = (alo: number, ahi: number, blo: number, bhi: number): number => {
    let best = 0;
    let bi = alo;
    let bj = blo;
    for (let i = alo; i < ahi; i++) {
      for (let j = blo; j < bhi; j++) {
        let k = 0;
        while (i + k < ahi && j + k < bhi && a[i + k] === b[j + k]) k++;
        if (k > best) [best, bi, bj] = [k, i, j];
      }
    }
    if (!best) return 0;
    return best + matches(alo, bi, blo, bj) + matches(bi + best, ahi, bj + best, bhi);
  };
  return (2 * matches(0, a.length, 0, b.length)) / total;
}

export const diffTextFile: Metric = (result, expected) => {
  const a = readText(result);
  const b = readText(expected);
  if (a === null || b === null) return 0;
  return sequenceRatio(splitLines(a), splitLines(b));
};

/** literal_match: result equals expected (options.type "str" / "list"; ignore_case). */
export const literalMatch: Metric = (result, expected, options) => {
  const ic = !!options.ignore_case;
  const type = (options.type as string | undefined) ?? 'str';
  const s = (v: unknown) => (ic ? String(v).toLowerCase() : String(v));
  if (type === 'str') return s(result) === s(expected) ? 1 : 0;
  if (type === 'list') {
    if (!Array.isArray(result) || !Array.isArray(expected) || result.length !== expected.length) return 0;
    return result.every((x, i) => s(x) === s(expected[i])) ? 1 : 0;
  }
  throw new Error(`unsupported literal_match type ${type}`);
};

/** file_contains: the file contains every string in config.expected. */
export const fileContains: Metric = (result, config) => {
  const text = readText(result);
  if (text === null) return 0;
  return ((rec(config).expected as string[] | undefined) ?? []).every((s) => text.includes(s)) ? 1 : 0;
};

/** GIMP's gimprc-style "(key ... value)" lines: one has rules.key (or [key, sub]) and ends with rules.value. */
export const checkConfigStatus: Metric = (result, rule) => {
  const text = readText(result);
  if (text === null) return 0;
  const r = rec(rule);
  for (const line of text.split(/(?<=\n)/)) {
    if (line.startsWith('#') || line === '\n') continue;
    const items = line.trim().replace(/^\(+/, '').replace(/[)\n]+$/, '').split(/\s+/);
    if (typeof r.key === 'string' && items[0] === r.key && items[items.length - 1] === r.value) return 1;
    if (Array.isArray(r.key) && r.key.length === 2 && items[0] === r.key[0] && items[1] === r.key[1] && items[items.length - 1] === r.value) return 1;
  }
  return 0;
};

/** Command output contains (type "contain") or lacks ("not_contain") rules.expected. */
export const isExtensionInstalled: Metric = (result, rules) => {
  const r = rec(rules);
  const has = String(result ?? '').includes(String(r.expected));
  if (r.type === 'contain') return has ? 1 : 0;
  if (r.type === 'not_contain') return has ? 0 : 1;
  throw new Error(`is_extension_installed: unknown type ${String(r.type)}`);
};

function isSubset(expected: unknown, actual: unknown): boolean {
  if (expected && typeof expected === 'object' && !Array.isArray(expected)) {
    if (!actual || typeof actual !== 'object' || Array.isArray(actual)) return false;
    return Object.entries(expected).every(([k, v]) => k in actual && isSubset(v, (actual as R)[k]));
  }
  return looseEqual(expected, actual);
}

/** compare_config: expected JSON is a subset of the file's JSON, else text containment (containment_ok, default true). */
export const compareConfig: Metric = (result, rules, options) => {
  const actual = readText(result);
  const expected = rec(rules).expected;
  if (actual === null || typeof expected !== 'string' || !expected) return 0;
  if (options.containment_ok ?? true) {
    try {
      return isSubset(JSON.parse(expected), JSON.parse(actual)) ? 1 : 0;
    } catch {
      return actual.includes(expected.trim()) ? 1 : 0;
    }
  }
  if (actual === expected) return 1;
  try {
    return looseEqual(JSON.parse(actual), JSON.parse(expected)) ? 1 : 0;
  } catch {
    return 0;
  }
};

/** Thunderbird prefs.js: user_pref("key", value); lines checked against expect / unexpect rules. */
export const checkThunderbirdPrefs: Metric = (result, rule) => {
  const text = readText(result);
  if (text === null) return 0;
  const r = rec(rule);
  const expect = rec(r.expect) as Record<string, ValueRule>;
  const unexpect = rec(r.unexpect) as Record<string, ValueRule>;
  const got: Record<string, boolean> = Object.fromEntries(Object.keys(expect).map((k) => [k, false]));
  let unexpectOk = true;
  for (const line of text.split('\n')) {
    const m = /^user_pref\("((?:[^"]|\\")+)", (.+)\);$/.exec(line.trim());
    if (!m) continue;
    let value: unknown;
    try {
      value = JSON.parse(m[2]!);
    } catch {
      continue;
    }
    if (m[1]! in expect) got[m[1]!] = matchValueToRule(value, expect[m[1]!]!);
    else if (m[1]! in unexpect) unexpectOk = unexpectOk && !matchValueToRule(value, unexpect[m[1]!]!);
  }
  return Object.values(got).every(Boolean) && unexpectOk ? 1 : 0;
};
