/**
 * OSWorld's Writer metrics (metrics/docs.py) over the docx XML (ooxml.ts), reading what
 * python-docx reads: body-level paragraphs (not those inside tables), run text with tabs and
 * breaks, tables, paragraph formats. ODT files go through `soffice --convert-to docx` first
 * (OSWorld reads ODT paragraphs with odfpy; LibreOffice's conversion keeps them).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Metric } from '../types.ts';
import { all, at, attr, child, children, kids, OoxmlPackage, tagOf, type XNode } from './ooxml.ts';
import { fuzzRatio } from './table.ts';

export interface Docx {
  body: XNode | undefined;
  paragraphs: XNode[];
  pkg: OoxmlPackage;
}

function odtToDocx(file: string): string | null {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'odt-'));
  try {
    execFileSync('soffice', ['--headless', '--convert-to', 'docx', '--outdir', out, file], { stdio: 'ignore', timeout: 120_000 });
  } catch {
    return null;
  }
  const p = path.join(out, `${path.basename(file, path.extname(file))}.docx`);
  return fs.existsSync(p) ? p : null;
}

export async function loadDocx(file: unknown): Promise<Docx | null> {
  if (typeof file !== 'string' || !fs.existsSync(file)) return null;
  const f = file.toLowerCase().endsWith('.odt') ? odtToDocx(file) : file;
  if (!f) return null;
  const pkg = await OoxmlPackage.open(f);
  const doc = await pkg?.xml('word/document.xml');
  if (!pkg || !doc) return null;
  const body = child(doc, 'w:body');
  return { body, paragraphs: children(body, 'w:p'), pkg };
}

/** python-docx Run.text: w:t, w:tab as "\t", w:br / w:cr as "\n". */
function runText(r: XNode): string {
  return kids(r)
    .map((k) => {
      const t = tagOf(k);
      if (t === 'w:t') return kids(k).map((x) => String(x['#text'] ?? '')).join('');
      if (t === 'w:tab') return '\t';
      if (t === 'w:br' || t === 'w:cr') return '\n';
      return '';
    })
    .join('');
}
export const runsOf = (p: XNode): XNode[] => kids(p).flatMap((k) => (tagOf(k) === 'w:r' ? [k] : tagOf(k) === 'w:hyperlink' ? children(k, 'w:r') : []));
export const paraText = (p: XNode): string => runsOf(p).map(runText).join('');
const squash = (s: string) => s.replace(/\s+/g, ' ').trim();

export const compareDocxFiles: Metric = async (result, expected, options) => {
  const ignoreBlanks = options.ignore_blanks ?? true;
  const ignoreCase = !!options.ignore_case;
  if (!result || !expected) return 0;
  const ext = (f: unknown) => path.extname(String(f)).toLowerCase();
  if (ext(result) !== ext(expected) || !['.docx', '.odt'].includes(ext(result))) return 0;
  const d1 = await loadDocx(result);
  const d2 = await loadDocx(expected);
  if (!d1 || !d2) return 0;
  let p1 = d1.paragraphs.map(paraText);
  let p2 = d2.paragraphs.map(paraText);
  if (options.ignore_order) [p1, p2] = [[...p1].sort(), [...p2].sort()];
  if (options.delete_empty_lines) [p1, p2] = [p1.filter((p) => p.trim()), p2.filter((p) => p.trim())];
  const lower = (s: string) => (ignoreCase ? s.toLowerCase() : s);
  if (options.content_only) return fuzzRatio(lower(squash(p1.join('\n'))), lower(squash(p2.join('\n')))) / 100;
  if (ignoreBlanks) {
    const t1 = lower(squash(p1.join('\n')));
    const t2 = lower(squash(p2.join('\n')));
    if (options.fuzzy_match) return fuzzRatio(t1, t2) / 100;
    return t1 === t2 ? 1 : 0;
  }
  if (p1.length !== p2.length) return 0;
  if (options.fuzzy_match) return p1.length ? p1.reduce((s, a, i) => s + fuzzRatio(lower(a), lower(p2[i]!)) / 100, 0) / p1.length : 1;
  return p1.every((a, i) => lower(a) === lower(p2[i]!)) ? 1 : 0;
};

/** Tables as grids of cell texts (python-docx Table.cell(i, j).text). */
function tablesOf(d: Docx): string[][][] {
  return children(d.body, 'w:tbl').map((t) => children(t, 'w:tr').map((tr) => children(tr, 'w:tc').map((tc) => children(tc, 'w:p').map(paraText).join('\n'))));
}
export const compareDocxTables: Metric = async (result, expected) => {
  const d1 = await loadDocx(result);
  const d2 = await loadDocx(expected);
  if (!d1 || !d2) return 0;
  const t1 = tablesOf(d1);
  const t2 = tablesOf(d2);
  if (t1.length !== t2.length) return 0;
  for (let i = 0; i < t1.length; i++) {
    const a = t1[i]!;
    const b = t2[i]!;
    if (a.length !== b.length || (a[0]?.length ?? 0) !== (b[0]?.length ?? 0)) return 0;
    for (let r = 0; r < a.length; r++) for (let c = 0; c < a[r]!.length; c++) if ((a[r]![c] ?? '').trim() !== (b[r]?.[c] ?? '').trim()) return 0;
  }
  return 1;
};

const lineSpacing = (p: XNode): string | null => {
  const sp = at(p, 'w:pPr', 'w:spacing');
  const line = attr(sp, 'w:line');
  return line === undefined ? null : `${attr(sp, 'w:lineRule') ?? 'auto'}:${line}`;
};
export const compareLineSpacing: Metric = async (result, expected) => {
  if (!result || !expected) return 0;
  if (!(await compareDocxFiles(result, expected, {}))) return 0;
  const d1 = await loadDocx(result);
  const d2 = await loadDocx(expected);
  if (!d1 || !d2 || d1.paragraphs.length !== d2.paragraphs.length) return 0;
  return d1.paragraphs.every((p, i) => lineSpacing(p) === lineSpacing(d2.paragraphs[i]!)) ? 1 : 0;
};

/** Non-empty stripped lines of both documents are the same set. */
export const compareDocxLines: Metric = async (result, expected) => {
  const d1 = await loadDocx(result);
  const d2 = await loadDocx(expected);
  if (!d1 || !d2) return 0;
  const set = (d: Docx) => new Set(d.paragraphs.map((p) => paraText(p).trim()).filter(Boolean));
  const a = set(d1);
  const b = set(d2);
  return a.size === b.size && [...a].every((x) => b.has(x)) ? 1 : 0;
};

export const compareDocxFilesAndIgnoreNewLines: Metric = async (result, expected, options) => {
  if (path.extname(String(result)) !== '.docx' || path.extname(String(expected)) !== '.docx') return 0;
  const d1 = await loadDocx(result);
  const d2 = await loadDocx(expected);
  if (!d1 || !d2) return 0;
  const p1 = d1.paragraphs.map(paraText).filter((t) => t !== '');
  const p2 = d2.paragraphs.map(paraText).filter((t) => t !== '');
  if (options.ignore_blanks ?? true) return squash(p1.join('\n')) === squash(p2.join('\n')) ? 1 : 0;
  return p1.length === p2.length && p1.every((t, i) => t === p2[i]) ? 1 : 0;
};

export const containsPageBreak: Metric = async (result, rules) => {
  const d = await loadDocx(result);
  if (!d) return 0;
  const want = (rules as Record<string, unknown> | null)?.page_break_count;
  const count = d.paragraphs.flatMap(runsOf).flatMap((r) => all(r, 'w:br')).filter((br) => attr(br, 'w:type') === 'page').length;
  if (typeof want === 'number' && count !== want) return 0;
  return count > 0 ? 1 : 0;
};

export const isFirstLineCentered: Metric = async (result) => {
  const d = await loadDocx(result);
  const first = d?.paragraphs[0];
  return first && attr(at(first, 'w:pPr', 'w:jc'), 'w:val') === 'center' ? 1 : 0;
};

/** python-docx run.font.name: the run's w:rFonts w:ascii. */
export const compareFontNames: Metric = async (result, rules) => {
  const d = await loadDocx(result);
  if (!d) return 0;
  const want = (rules as Record<string, unknown> | null)?.font_name;
  return d.paragraphs.flatMap(runsOf).every((r) => (attr(at(r, 'w:rPr', 'w:rFonts'), 'w:ascii') ?? null) === want) ? 1 : 0;
};

const boolProp = (r: XNode, tag: string): boolean | null => {
  const el = at(r, 'w:rPr', tag);
  if (!el) return null;
  const v = attr(el, 'w:val');
  return v === undefined || !['0', 'false', 'off'].includes(v);
};

export const compareSubscriptContains: Metric = async (result, expected) => {
  const d1 = await loadDocx(result);
  const d2 = await loadDocx(expected);
  if (!d1 || !d2) return 0;
  const sub = (r: XNode) => attr(at(r, 'w:rPr', 'w:vertAlign'), 'w:val') === 'subscript';
  for (let i = 0; i < Math.min(d1.paragraphs.length, d2.paragraphs.length); i++) {
    const r1 = runsOf(d1.paragraphs[i]!);
    const r2 = runsOf(d2.paragraphs[i]!);
    for (let j = 0; j < Math.min(r1.length, r2.length); j++) if (sub(r1[j]!) && sub(r2[j]!)) return 1;
  }
  return 0;
};

export const evaluateStrikeThroughLastParagraph: Metric = async (result, expected) => {
  const d1 = await loadDocx(result);
  const d2 = await loadDocx(expected);
  if (!d1 || !d2 || d1.paragraphs.length !== d2.paragraphs.length) return 0;
  for (let i = 0; i < d1.paragraphs.length; i++) if (paraText(d1.paragraphs[i]!) !== paraText(d2.paragraphs[i]!)) return 0;
  const last = d1.paragraphs[d1.paragraphs.length - 1];
  return last && runsOf(last).every((r) => boolProp(r, 'w:strike') === true) ? 1 : 0;
};

export const checkItalicFontSize14: Metric = async (result, expected) => {
  const d1 = await loadDocx(result);
  const d2 = await loadDocx(expected);
  if (!d1 || !d2) return 0;
  for (const p of d1.paragraphs) {
    const style = attr(at(p, 'w:pPr', 'w:pStyle'), 'w:val') ?? '';
    if (/^heading/i.test(style)) {
      for (const r of runsOf(p)) if (boolProp(r, 'w:i') !== true || attr(at(r, 'w:rPr', 'w:sz'), 'w:val') !== '28') return 0;
    }
  }
  return (await compareDocxFiles(result, expected, {})) ? 1 : 0;
};

export const hasPageNumbersInFooters: Metric = async (result) => {
  const d = await loadDocx(result);
  if (!d) return 0;
  const rels = await d.pkg.rels('word/document.xml');
  const sects = all(d.body, 'w:sectPr');
  if (!sects.length) return 0;
  for (const s of sects) {
    const ref = children(s, 'w:footerReference').find((f) => (attr(f, 'w:type') ?? 'default') === 'default');
    const part = ref ? rels[attr(ref, 'r:id') ?? '']?.target : undefined;
    const footer = part ? await d.pkg.xml(part) : undefined;
    const first = children(footer, 'w:p')[0];
    // python-docx reads the field result text; a PAGE field's cached digits live in w:t too.
    const text = first ? all(first, 'w:t').map((t) => kids(t).map((x) => String(x['#text'] ?? '')).join('')).join('') : '';
    if (!/\d/.test(text)) return 0;
  }
  return 1;
};
