/**
 * OSWorld's spreadsheet metrics (metrics/table.py): compare_table with its rules, compare_csv.
 * Workbooks are read with exceljs (cached formula results, styles, views, data validations).
 * sheet_data compares the used grid of cached values (OSWorld reads it with pandas, header row
 * included, numbers rounded to `precision` digits); sheet_print compares the CSV files that the
 * task's postconfig exported (`<book>-<sheet>.csv`). Rule types not listed in TABLE_RULES are an
 * UnsupportedError (the task is not scored) and the coverage report names them.
 */
import fs from 'node:fs';
import path from 'node:path';
import ExcelJS from 'exceljs';
import JSZip from 'jszip';
import { UnsupportedError } from '../../env/setup/errors.ts';
import type { Metric } from '../types.ts';
import { looseEqual, matchValueToRule, parseRanges, type ValueRule } from './rules.ts';
import { loadCharts, loadPivots } from './xlsx-parts.ts';

type Rule = Record<string, unknown> & { type: string };
type Book = ExcelJS.Workbook;
type Sheet = ExcelJS.Worksheet;

export const TABLE_RULES = new Set(['sheet_name', 'sheet_data', 'sheet_print', 'sheet_fuzzy', 'check_cell', 'style', 'freeze', 'zoom', 'data_validation', 'row_props', 'col_props', 'chart', 'pivot_table']);

export async function loadBook(file: string): Promise<Book | null> {
  try {
    const wb = new ExcelJS.Workbook();
    await wb.xlsx.readFile(file);
    return wb;
  } catch {
    // exceljs fails on some drawings (e.g. openpyxl's one-cell chart anchors): read the book
    // without its drawings (charts are read from the XML by xlsx-parts.ts anyway).
    try {
      const wb = new ExcelJS.Workbook();
      await wb.xlsx.load((await withoutDrawings(file)) as unknown as ArrayBuffer);
      return wb;
    } catch {
      return null;
    }
  }
}

async function withoutDrawings(file: string): Promise<Buffer> {
  const zip = await JSZip.loadAsync(fs.readFileSync(file));
  for (const name of Object.keys(zip.files)) {
    const entry = zip.file(name);
    if (!entry) continue;
    if (name.startsWith('xl/drawings/')) zip.remove(name);
    else if (/^xl\/worksheets\/sheet[^/]*\.xml$/.test(name)) zip.file(name, (await entry.async('string')).replace(/<(\w+:)?drawing\b[^>]*\/>/g, ''));
    else if (/^xl\/worksheets\/_rels\/.*\.rels$/.test(name)) zip.file(name, (await entry.async('string')).replace(/<Relationship\b[^>]*\/drawing"[^>]*\/>/g, ''));
  }
  return zip.generateAsync({ type: 'nodebuffer' });
}

/** A cell's value as OSWorld reads it: the cached result of a formula, plain text of rich text. */
export function cellValue(cell: ExcelJS.Cell | undefined): unknown {
  if (!cell) return null;
  const v = cell.value as unknown;
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  if (typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  if ('formula' in o || 'sharedFormula' in o) {
    const r = o.result as unknown;
    if (r instanceof Date) return r.toISOString();
    if (r && typeof r === 'object' && 'error' in r) return (r as { error: string }).error;
    return r ?? null;
  }
  if ('richText' in o) return (o.richText as { text: string }[]).map((t) => t.text).join('');
  if ('text' in o) return typeof o.text === 'string' ? o.text : cellValue({ value: o.text } as ExcelJS.Cell);
  if ('error' in o) return o.error;
  return JSON.stringify(o);
}

/** OSWorld's sheet index: 0 / "RI0" / "RNname" (result book), "EI0" / "ENname" (expected book). */
function pickSheet(idx: unknown, result: Book, expected: Book | null): { book: Book | null; name: string; which: 'r' | 'e' } {
  const names = (b: Book | null) => (b ? b.worksheets.map((w) => w.name) : []);
  if (typeof idx === 'number') return { book: result, name: names(result)[idx] ?? '', which: 'r' };
  const s = String(idx);
  const kind = s.slice(0, 2);
  const rest = s.slice(2);
  if (kind === 'RI') return { book: result, name: names(result)[Number(rest)] ?? '', which: 'r' };
  if (kind === 'RN') return { book: result, name: rest, which: 'r' };
  if (kind === 'EI') return { book: expected, name: names(expected)[Number(rest)] ?? '', which: 'e' };
  if (kind === 'EN') return { book: expected, name: rest, which: 'e' };
  throw new Error(`unrecognized sheet index ${s}`);
}

const sheetOf = (p: { book: Book | null; name: string }): Sheet | null => (p.book && p.name ? (p.book.getWorksheet(p.name) ?? null) : null);

/** The used grid of values, trailing empty rows and columns dropped, numbers rounded. */
export function sheetGrid(ws: Sheet, precision = 4): unknown[][] {
  const rows: unknown[][] = [];
  const round = (v: unknown) => (typeof v === 'number' ? Number(v.toFixed(precision)) : v === '' ? null : v);
  for (let r = 1; r <= ws.rowCount; r++) {
    const row = ws.getRow(r);
    const vals: unknown[] = [];
    for (let c = 1; c <= ws.columnCount; c++) vals.push(round(cellValue(row.getCell(c))));
    rows.push(vals);
  }
  const empty = (v: unknown) => v === null || v === undefined;
  while (rows.length && rows[rows.length - 1]!.every(empty)) rows.pop();
  let width = Math.max(0, ...rows.map((r) => r.length));
  while (width > 0 && rows.every((r) => empty(r[width - 1]))) width--;
  return rows.map((r) => r.slice(0, width));
}

function readCsvLines(file: string): string[] | null {
  if (!fs.existsSync(file)) return null;
  const lines = fs.readFileSync(file, 'utf8').split(/\r?\n/).map((l) => l.trim());
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** rapidfuzz's fuzz.ratio: 100 * (1 - indel distance / total length). */
export function fuzzRatio(a: string, b: string): number {
  if (!a.length && !b.length) return 100;
  // LCS by dynamic programming; indel distance = len(a) + len(b) - 2 * LCS.
  let prev = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    const cur = new Array<number>(b.length + 1).fill(0);
    for (let j = 1; j <= b.length; j++) cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    prev = cur;
  }
  const lcs = prev[b.length]!;
  return (100 * 2 * lcs) / (a.length + b.length);
}

const argb = (c: Partial<ExcelJS.Color> | undefined): string | null => (c?.argb ? c.argb : c?.theme !== undefined ? `theme:${c.theme}` : null);

/** OSWorld's _read_cell_style for the props the tasks use. */
export function cellStyle(prop: string, cell: ExcelJS.Cell): unknown {
  const has = cellValue(cell) !== null;
  switch (prop) {
    case 'number_format':
      return has && typeof cellValue(cell) === 'number' ? (cell.numFmt ?? 'General') : null;
    case 'font_name':
      return has ? (cell.font?.name ?? null) : null;
    case 'font_family':
      return has ? (cell.font?.family ?? null) : null;
    case 'font_color':
      return has ? argb(cell.font?.color) : null;
    case 'font_bold':
      return has ? !!cell.font?.bold : null;
    case 'font_italic':
      return has ? !!cell.font?.italic : null;
    case 'font_underline':
      return has ? (cell.font?.underline ?? null) : null;
    case 'font_size':
      return has ? (cell.font?.size ?? null) : null;
    case 'fill_type':
      return cell.fill?.type === 'pattern' ? 'patternFill' : cell.fill?.type === 'gradient' ? 'gradientFill' : null;
    case 'bgcolor':
    case 'fgcolor': {
      const f = cell.fill;
      return f && f.type === 'pattern' ? (argb(f.fgColor) ?? '00000000') : '00000000';
    }
    case 'hyperlink':
      return has ? (cell.hyperlink ?? '') : null;
    case 'merge':
      return cell.isMerged && cell.master !== cell;
    default:
      throw new UnsupportedError(`cell style "${prop}" is not implemented`);
  }
}

function styles(ws: Sheet | null, props: string[]): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  if (!ws) return out;
  ws.eachRow({ includeEmpty: false }, (row) =>
    row.eachCell({ includeEmpty: false }, (cell) => {
      out[cell.address] = props.map((p) => cellStyle(p, cell));
    }),
  );
  return out;
}

function freezeKey(ws: Sheet | null): unknown[] {
  const v = ws?.views?.[0] as (Partial<ExcelJS.WorksheetView> & { xSplit?: number; ySplit?: number; topLeftCell?: string }) | undefined;
  if (!v || (v.state !== 'frozen' && v.state !== 'split')) return ['none'];
  if (v.state === 'frozen') return ['frozen', v.xSplit ?? 0, v.ySplit ?? 0];
  return ['other', v.xSplit ?? 0, v.ySplit ?? 0, v.topLeftCell];
}

function dimensions(ws: Sheet | null, obj: 'row' | 'column', props: string[]): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  if (!ws) return out;
  const count = obj === 'row' ? ws.rowCount : ws.columnCount;
  for (let i = 1; i <= count; i++) {
    const d = obj === 'row' ? ws.getRow(i) : ws.getColumn(i);
    const info: Record<string, unknown> = {};
    for (const p of props) {
      if (p === 'hidden') info[p] = !!d.hidden;
      else if (p === 'height' && obj === 'row') info[p] = (d as ExcelJS.Row).height ?? null;
      else if (p === 'width' && obj === 'column') info[p] = (d as ExcelJS.Column).width ?? null;
      else if (p === 'outline_level') info[p] = d.outlineLevel ?? 0;
      else throw new UnsupportedError(`${obj} property "${p}" is not implemented`);
    }
    // openpyxl lists only dimensions that carry a setting; keep those that differ from defaults.
    if (Object.values(info).some((x) => x !== false && x !== null && x !== 0)) out[String(i)] = info;
  }
  return out;
}

function cellsIn(range: string): string[] {
  const out: string[] = [];
  for (const [c1, r1, c2, r2] of parseRanges(range)) {
    for (let c = c1; c <= c2; c++) for (let r = r1; r <= r2; r++) out.push(`${colName(c)}${r}`);
  }
  return out;
}
function colName(n: number): string {
  let s = '';
  for (let x = n; x > 0; x = Math.floor((x - 1) / 26)) s = String.fromCharCode(65 + ((x - 1) % 26)) + s;
  return s;
}

const stripChars = (s: string, chars: string, side: 'l' | 'r') => {
  let i = 0;
  let j = s.length;
  if (side === 'l') while (i < j && chars.includes(s[i]!)) i++;
  else while (j > i && chars.includes(s[j - 1]!)) j--;
  return s.slice(i, j);
};
const pyStr = (v: unknown): string => (v === null || v === undefined ? 'None' : v === true ? 'True' : v === false ? 'False' : String(v));

export const compareTable: Metric = async (result, expected, options) => {
  if (typeof result !== 'string' || !fs.existsSync(result)) return 0;
  const rb = await loadBook(result);
  if (!rb) return 0;
  const eb = typeof expected === 'string' ? await loadBook(expected) : null;
  const csvPath = (p: { which: 'r' | 'e'; name: string }) => {
    const file = p.which === 'r' ? result : String(expected);
    return `${file.slice(0, file.length - path.extname(file).length)}-${p.name}.csv`;
  };
  for (const r of (options.rules as Rule[] | undefined) ?? []) {
    let ok: boolean;
    switch (r.type) {
      case 'sheet_name':
        ok = looseEqual(
          rb.worksheets.map((w) => w.name),
          eb?.worksheets.map((w) => w.name),
        );
        break;
      case 'sheet_data': {
        const s1 = sheetOf(pickSheet(r.sheet_idx0, rb, eb));
        if (!s1) return 0;
        const s2 = sheetOf(pickSheet(r.sheet_idx1, rb, eb));
        const precision = (r.precision as number | undefined) ?? 4;
        ok = !!s2 && looseEqual(sheetGrid(s1, precision), sheetGrid(s2, precision));
        break;
      }
      case 'sheet_print': {
        const l1 = readCsvLines(csvPath(pickSheet(r.sheet_idx0, rb, eb)));
        if (!l1) return 0;
        const l2 = readCsvLines(csvPath(pickSheet(r.sheet_idx1, rb, eb)));
        const low = (l: string[] | null) => (r.ignore_case ? l?.map((x) => x.toLowerCase()) : l);
        ok = looseEqual(low(l1), low(l2));
        break;
      }
      case 'sheet_fuzzy': {
        const s1 = sheetOf(pickSheet(r.sheet_idx0, rb, eb));
        const s2 = sheetOf(pickSheet(r.sheet_idx1, rb, eb));
        ok = true;
        for (const rl of r.rules as Record<string, unknown>[]) {
          const ranges = Array.isArray(rl.range) ? (rl.range as string[]).join(' ') : String(rl.range);
          for (const addr of cellsIn(ranges)) {
            let v1 = pyStr(s1 ? cellValue(s1.getCell(addr)) : null);
            let v2 = pyStr(s2 ? cellValue(s2.getCell(addr)) : null);
            for (const [a, b] of (rl.normalization as [string, string][] | undefined) ?? []) {
              v1 = v1.split(a).join(b);
              v2 = v2.split(a).join(b);
            }
            if (typeof rl.trim_leadings === 'string') [v1, v2] = [stripChars(v1, rl.trim_leadings, 'l'), stripChars(v2, rl.trim_leadings, 'l')];
            if (typeof rl.trim_trailings === 'string') [v1, v2] = [stripChars(v1, rl.trim_trailings, 'r'), stripChars(v2, rl.trim_trailings, 'r')];
            if (typeof rl.ignore_chars === 'string') {
              const ig = rl.ignore_chars;
              [v1, v2] = [[...v1].filter((c) => !ig.includes(c)).join(''), [...v2].filter((c) => !ig.includes(c)).join('')];
            }
            if (rl.ignore_case) [v1, v2] = [v1.toLowerCase(), v2.toLowerCase()];
            const m =
              rl.type === 'includes' ? v1.includes(v2) : rl.type === 'included_by' ? v2.includes(v1) : rl.type === 'fuzzy_match' ? fuzzRatio(v1, v2) >= Number(rl.threshold ?? 85) : v1 === v2;
            ok = ok && m;
          }
        }
        break;
      }
      case 'check_cell': {
        const ws = sheetOf(pickSheet(r.sheet_idx, rb, eb));
        if (!ws) return 0;
        const cell = ws.getCell(String(r.coordinate));
        ok = true;
        for (const [prop, rule] of Object.entries(r.props as Record<string, ValueRule>)) {
          let val: unknown;
          try {
            val = prop === 'value' ? cellValue(cell) : cellStyle(prop, cell);
          } catch (e) {
            if (e instanceof UnsupportedError) throw e;
            val = null;
          }
          try {
            ok = ok && matchValueToRule(val, rule);
          } catch {
            return 0;
          }
        }
        break;
      }
      case 'style': {
        const props = (r.props as string[] | undefined) ?? [];
        ok = looseEqual(styles(sheetOf(pickSheet(r.sheet_idx0, rb, eb)), props), styles(sheetOf(pickSheet(r.sheet_idx1, rb, eb)), props));
        break;
      }
      case 'freeze': {
        const s1 = sheetOf(pickSheet(r.sheet_idx0, rb, eb));
        if (!s1) return 0;
        ok = looseEqual(freezeKey(s1), freezeKey(sheetOf(pickSheet(r.sheet_idx1, rb, eb))));
        break;
      }
      case 'zoom': {
        const ws = sheetOf(pickSheet(r.sheet_idx, rb, eb));
        if (!ws) return 0;
        const zoom = (ws.views?.[0] as { zoomScale?: number } | undefined)?.zoomScale || 100;
        ok = matchValueToRule(zoom, r as unknown as ValueRule);
        break;
      }
      case 'data_validation': {
        const ws = sheetOf(pickSheet(r.sheet_idx, rb, eb));
        if (!ws) return 0;
        const model = ((ws as unknown as { dataValidations: unknown }).dataValidations as { model: Record<string, Record<string, unknown>> }).model ?? {};
        // exceljs keys validations by range; OSWorld's attributes: ranges (sqref), type, formula1, ...
        const dvs = Object.entries(model).map(([ranges, dv]) => ({
          ranges,
          type: dv.type,
          formula1: (dv.formulae as unknown[] | undefined)?.[0] ?? null,
          formula2: (dv.formulae as unknown[] | undefined)?.[1] ?? null,
          operator: dv.operator ?? null,
          allowBlank: !!dv.allowBlank,
          showDropDown: !!dv.showDropDown,
          showInputMessage: !!dv.showInputMessage,
          showErrorMessage: !!dv.showErrorMessage,
          error: dv.error ?? null,
          errorTitle: dv.errorTitle ?? null,
          errorStyle: dv.errorStyle ?? null,
          prompt: dv.prompt ?? null,
          promptTitle: dv.promptTitle ?? null,
        }));
        const want = r.dv_props as Record<string, ValueRule>[];
        ok = dvs.length >= want.length && dvs.every((dv) => want.some((p) => Object.entries(p).every(([k, rule]) => matchValueToRule((dv as Record<string, unknown>)[k], rule))));
        break;
      }
      case 'row_props':
      case 'col_props': {
        const obj = r.type === 'row_props' ? 'row' : 'column';
        const props = (r.props as string[] | undefined) ?? [];
        ok = looseEqual(dimensions(sheetOf(pickSheet(r.sheet_idx0, rb, eb)), obj, props), dimensions(sheetOf(pickSheet(r.sheet_idx1, rb, eb)), obj, props));
        break;
      }
      case 'chart':
      case 'pivot_table': {
        // OSWorld: load_charts / load_pivot_tables of both sheets (a missing sheet is {}), dict equality.
        const load = r.type === 'chart' ? loadCharts : loadPivots;
        const props = ((r.type === 'chart' ? r.chart_props : r.pivot_props) as string[] | undefined) ?? [];
        const read = (idx: unknown) => {
          const p = pickSheet(idx, rb, eb);
          const file = p.which === 'r' ? result : expected;
          return typeof file === 'string' && p.name ? load(file, p.name, props) : Promise.resolve({});
        };
        ok = looseEqual(await read(r.sheet_idx0), await read(r.sheet_idx1));
        break;
      }
      default:
        throw new UnsupportedError(`compare_table rule "${r.type}" is not implemented`);
    }
    if (!ok) return 0;
  }
  return 1;
};

/** Lines of the result CSV equal those of (one of) the expected CSVs; options strict, ignore_case. */
export const compareCsv: Metric = (result, expected, options) => {
  if (typeof result !== 'string' || !fs.existsSync(result)) return 0;
  const norm = (t: string) => {
    let lines = t.split('\n');
    if (lines[lines.length - 1] === '') lines.pop(); // Python's readlines + rstrip of the newline
    lines = lines.map((l) => l.replace(/\r$/, ''));
    if (options.strict === false) lines = lines.map((l) => l.trim());
    if (options.ignore_case) lines = lines.map((l) => l.toLowerCase());
    return lines;
  };
  const got = norm(fs.readFileSync(result, 'utf8'));
  for (const e of Array.isArray(expected) ? expected : [expected]) {
    if (typeof e === 'string' && fs.existsSync(e) && looseEqual(got, norm(fs.readFileSync(e, 'utf8')))) return 1;
  }
  return 0;
};
