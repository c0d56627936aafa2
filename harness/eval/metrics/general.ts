/** OSWorld's general-purpose metrics over strings, lists, JSON and text files. */
import fs from 'node:fs';
import type { Metric } from '../types.ts';

type Rules = Record<string, unknown>;
const rules = (v: unknown): Rules => (v && typeof v === 'object' ? (v as Rules) : {});

export const exactMatch: Metric = (result, expected) => (result === rules(expected).expected ? 1 : 0);

export const matchInList: Metric = (result, expected) => {
  const list = rules(expected).expected;
  return Array.isArray(list) && list.includes(result) ? 1 : 0;
};

export const isInList: Metric = (result, expected) => (Array.isArray(result) && result.includes(rules(expected).expected) ? 1 : 0);

export const checkIncludeExclude: Metric = (result, expected) => {
  if (typeof result !== 'string') return 0;
  const r = rules(expected);
  const include = (r.include as string[] | undefined) ?? [];
  const exclude = (r.exclude as string[] | undefined) ?? [];
  return include.every((s) => result.includes(s)) && exclude.every((s) => !result.includes(s)) ? 1 : 0;
};

/** Deep equality of JSON values (object key order does not matter). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => jsonEqual(x, (b as unknown[])[i]));
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  return ka.length === kb.length && ka.every((k) => jsonEqual((a as Rules)[k], (b as Rules)[k]));
}

/** A JSON object (or its printed form, Python-style quotes allowed) has the expected keys/values. */
export const checkDirectJsonObject: Metric = (result, expected) => {
  let obj: unknown = result;
  if (typeof obj === 'string') {
    try {
      obj = JSON.parse(obj.trim().replace(/'/g, '"'));
    } catch {
      return 0;
    }
  }
  if (!obj || typeof obj !== 'object') return 0;
  const got = obj as Rules;
  const r = rules(expected);
  const want = rules(r.expected);
  for (const [key, value] of Object.entries(want)) {
    if (r.expect_in_result) {
      const have = got[key];
      if (Array.isArray(value)) {
        if (!Array.isArray(have) || !value.some((v) => have.some((h) => jsonEqual(h, v)))) return 0;
      } else if (typeof value === 'string') {
        if (typeof have !== 'string' || !have.includes(value)) return 0;
      } else if (!jsonEqual(have, value)) return 0;
    } else if (!jsonEqual(got[key], value)) return 0;
  }
  return 1;
};

function normaliseText(text: string, options: Rules): string {
  let t = text;
  if (options.ignore_blanks) t = t.replace(/[\t\n]/g, ' ').replace(/\s+/g, ' ').trim();
  if (options.ignore_case) t = t.toLowerCase();
  return t;
}

/** Two text files have the same content (optionally ignoring blanks and case). */
export const compareTextFile: Metric = (result, expected, options) => {
  if (typeof result !== 'string' || typeof expected !== 'string' || !fs.existsSync(result) || !fs.existsSync(expected)) return 0;
  return normaliseText(fs.readFileSync(result, 'utf8'), options) === normaliseText(fs.readFileSync(expected, 'utf8'), options) ? 1 : 0;
};
