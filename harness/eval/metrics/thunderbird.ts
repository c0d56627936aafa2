/** OSWorld's Thunderbird metrics (metrics/thunderbird.py) and check_csv (metrics/general.py). */
import fs from 'node:fs';
import type { Metric } from '../types.ts';

type Rec = Record<string, unknown>;
const ruleOf = (v: unknown): Rec => (v && typeof v === 'object' ? (v as Rec) : {});

/** OSWorld's _match_record: every key present with an equal (JSON-equal) value. */
export function matchRecord(pattern: Rec, item: Rec): boolean {
  return Object.entries(pattern).every(([k, v]) => k in item && JSON.stringify(item[k]) === JSON.stringify(v));
}

/** Python's open().readlines(): lines with their "\n" (universal newlines). */
const pyLines = (text: string): string[] => text.replace(/\r\n?/g, '\n').match(/[^\n]*\n|[^\n]+$/g) ?? [];

const unescape = (v: string) => v.replace(/\\"/g, '"').replace(/\\\\/g, '\\');
const CONDITION = /\b(?:AND|OR) \((?:[\w ]+),(?:[\w ']+),(?:"(?:(?:[^"]|")+)"|(?:[^)]+))\)|\bALL\b/g;

/** msgFilterRules.dat parsed as OSWorld does: a filter is recorded at its condition= line. */
export function parseFilters(text: string): Rec[] {
  const filters: Rec[] = [];
  let f: Rec = {};
  const val = (l: string, n: number) => unescape(l.slice(n, -2));
  for (const l of pyLines(text)) {
    if (l.startsWith('name=')) f = { name: val(l, 6) };
    else if (l.startsWith('enabled=')) f.enabled = val(l, 9);
    else if (l.startsWith('type=')) f.type = val(l, 6);
    else if (l.startsWith('action=')) f.action = val(l, 8);
    else if (l.startsWith('actionValue=')) f.actionValue = val(l, 13);
    else if (l.startsWith('condition=')) {
      f.condition = val(l, 11).match(CONDITION) ?? [];
      filters.push(f);
    }
  }
  return filters;
}

const expectUnexpect = (records: Rec[], rules: Rec): number => {
  const expect = (rules.expect as Rec[] | undefined) ?? [];
  const unexpect = (rules.unexpect as Rec[] | undefined) ?? [];
  const hit = expect.map(() => false);
  let clean = true;
  for (const rec of records) {
    expect.forEach((r, i) => {
      hit[i] = hit[i] || matchRecord(r, rec);
    });
    clean = clean && !unexpect.some((r) => matchRecord(r, rec));
  }
  return hit.every(Boolean) && clean ? 1 : 0;
};

export const checkThunderbirdFilter: Metric = (result, rules) => {
  if (typeof result !== 'string' || !fs.existsSync(result)) return 0;
  return expectUnexpect(parseFilters(fs.readFileSync(result, 'utf8')), ruleOf(rules));
};

/** RFC 4180 rows (Python's csv module defaults: "," and '"' doubling). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let any = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
      continue;
    }
    if (c === '"') {
      quoted = true;
      any = true;
    } else if (c === ',') {
      row.push(field);
      field = '';
      any = true;
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      if (any || field) row.push(field);
      if (row.length) rows.push(row); // csv.DictReader skips empty rows
      row = [];
      field = '';
      any = false;
    } else {
      field += c;
      any = true;
    }
  }
  if (any || field) row.push(field);
  if (row.length) rows.push(row);
  return rows;
}

/** csv.DictReader records (missing fields None, extra fields under null key ignored) matched with expect / unexpect. */
export const checkCsv: Metric = (result, rules) => {
  if (typeof result !== 'string' || !fs.existsSync(result)) return 0;
  const [header, ...rows] = parseCsv(fs.readFileSync(result, 'utf8'));
  const records = rows.map((r) => Object.fromEntries((header ?? []).map((h, i) => [h, r[i] ?? null])) as Rec);
  return expectUnexpect(records, ruleOf(rules));
};

/**
 * check_thunderbird_folder as OSWorld's code runs: it splits each mbox on "FROM - " and then
 * *skips every non-empty message* (`if mail.strip(): continue`), so only empty segments count;
 * options ignore_status, ignore_keys, remove_deleted (default true), remove_duplicate (default true).
 */
export const checkThunderbirdFolder: Metric = (result, reference, options) => {
  const readFolder = (p: string): string => {
    const data = fs.readFileSync(p, 'utf8').trim();
    let msgs: string[] = [];
    for (const mail of data.split('FROM - ')) {
      if (mail.trim()) continue;
      if ((options.remove_deleted ?? true) && /X-Mozilla-Status: 000[89]/.test(mail)) continue;
      let m = mail;
      if (options.ignore_status) m = m.replace(/X-Mozilla-Status\d?:[\s\d]+/g, '');
      if (options.ignore_keys) m = m.replace(/(X-Mozilla-Keys:[^\n]*?)\n(MIME-Version)/g, '$2');
      msgs.push(`FROM - ${m.trim()}`);
    }
    if (options.remove_duplicate ?? true) msgs = [...new Set(msgs)];
    return msgs.sort().join('\n');
  };
  const rs = Array.isArray(reference) ? (result as unknown[]) : [result];
  const es = Array.isArray(reference) ? reference : [reference];
  for (let i = 0; i < Math.min(rs.length, es.length); i++) {
    const p = rs[i];
    if (typeof p !== 'string') return 0;
    if (readFolder(p) !== readFolder(String(es[i]))) return 0;
  }
  return 1;
};
