/**
 * Charts and pivot tables of an xlsx sheet, read from the package XML (jszip), reduced to the
 * dicts OSWorld's load_charts / load_pivot_tables (metrics/utils.py, via openpyxl) build:
 * charts keyed by their series references, pivot tables keyed by their cache source.
 */
import { OoxmlPackage, attr, kids, tagOf, type XNode } from './ooxml.ts';

const local = (n: XNode | undefined): string => tagOf(n ?? {}).replace(/^.*:/, '');
const childL = (n: XNode | undefined, name: string): XNode | undefined => kids(n).find((k) => local(k) === name);
const childrenL = (n: XNode | undefined, name: string): XNode[] => kids(n).filter((k) => local(k) === name);
const atL = (n: XNode | undefined, ...names: string[]): XNode | undefined => names.reduce<XNode | undefined>((cur, t) => childL(cur, t), n);
const textL = (n: XNode | undefined): string => kids(n).map((x) => String(x['#text'] ?? '')).join('');

/** The part of the sheet with this name ('' when the book has no such sheet). */
async function sheetPart(pkg: OoxmlPackage, sheetName: string): Promise<string | null> {
  const wb = await pkg.xml('xl/workbook.xml');
  const rels = await pkg.rels('xl/workbook.xml');
  for (const s of childrenL(childL(wb, 'sheets'), 'sheet')) {
    if (attr(s, 'name') !== sheetName) continue;
    const rid = attr(s, 'r:id') ?? Object.entries((s[':@'] as Record<string, string>) ?? {}).find(([k]) => k.endsWith(':id'))?.[1];
    return rid ? (rels[rid]?.target ?? null) : null;
  }
  return null;
}

const relsOfType = async (pkg: OoxmlPackage, part: string, type: string) => Object.values(await pkg.rels(part)).filter((r) => r.type.endsWith(`/${type}`));

/** First run text of the first paragraph of a title (openpyxl: title.tx.rich.p[0].r[0].t), else null. */
function titleText(title: XNode | undefined): string | null {
  const r = atL(title, 'tx', 'rich', 'p', 'r', 't');
  return r ? textL(r) : null;
}

const CHART_TAGS = /^(area|area3D|line|line3D|stock|radar|scatter|pie|pie3D|doughnut|bar|bar3D|ofPie|surface|surface3D|bubble)Chart$/;

/** OSWorld's load_charts: { "<val ref>,<cat ref>;...": { title, legend, anchor, width, height, type, direction, xtitle, ytitle, ztitle } }. */
export async function loadCharts(file: string, sheetName: string, props: string[]): Promise<Record<string, Record<string, unknown>>> {
  const pkg = await OoxmlPackage.open(file);
  if (!pkg) throw new Error(`cannot open ${file}`);
  const sheet = await sheetPart(pkg, sheetName);
  if (!sheet) return {};
  const out: Record<string, Record<string, unknown>> = {};
  const want = new Set(props);
  for (const drawingRel of await relsOfType(pkg, sheet, 'drawing')) {
    const drawing = await pkg.xml(drawingRel.target);
    const drawingRels = await pkg.rels(drawingRel.target);
    for (const anchor of kids(drawing).filter((k) => /Anchor$/.test(local(k)))) {
      const gf = childL(anchor, 'graphicFrame');
      const chartRef = atL(gf, 'graphic', 'graphicData', 'chart');
      const rid = chartRef && Object.entries((chartRef[':@'] as Record<string, string>) ?? {}).find(([k]) => k.endsWith(':id'))?.[1];
      const target = rid ? drawingRels[rid]?.target : undefined;
      if (!target) continue;
      const space = await pkg.xml(target);
      const chart = childL(space, 'chart');
      const plot = childL(chart, 'plotArea');
      const first = kids(plot).find((k) => CHART_TAGS.test(local(k)));
      if (!first) continue;
      const series = childrenL(first, 'ser').map((ser) => {
        const ref = (el: XNode | undefined) => textL(atL(el, 'numRef', 'f') ?? atL(el, 'strRef', 'f'));
        return `${ref(childL(ser, 'val') ?? childL(ser, 'yVal'))},${ref(childL(ser, 'cat') ?? childL(ser, 'xVal'))}`;
      });
      const info: Record<string, unknown> = {};
      const axes = kids(plot).filter((k) => /Ax$/.test(local(k)));
      // openpyxl: x_axis is the category (or first value/date) axis, y_axis the value axis, z_axis the series axis.
      const axis = (kind: 'x' | 'y' | 'z') => {
        if (kind === 'z') return axes.find((a) => local(a) === 'serAx');
        const valAxes = axes.filter((a) => local(a) === 'valAx');
        if (kind === 'x') return axes.find((a) => local(a) === 'catAx' || local(a) === 'dateAx') ?? valAxes[0];
        return axes.some((a) => local(a) === 'catAx' || local(a) === 'dateAx') ? valAxes[0] : valAxes[1];
      };
      if (want.has('title')) info.title = titleText(childL(chart, 'title'));
      if (want.has('legend')) {
        const legend = childL(chart, 'legend');
        info.legend = legend ? (attr(childL(legend, 'legendPos'), 'val') ?? 'r') : null;
      }
      if (want.has('anchor')) {
        const pos = (n: XNode | undefined, k: string) => Number(textL(childL(n, k)));
        // OSWorld lists [editAs, from.col, to.row, to.col, to.row] (sic).
        info.anchor = [attr(anchor, 'editAs') ?? null, pos(childL(anchor, 'from'), 'col'), pos(childL(anchor, 'to'), 'row'), pos(childL(anchor, 'to'), 'col'), pos(childL(anchor, 'to'), 'row')];
      }
      if (want.has('width')) info.width = 15; // openpyxl's ChartBase defaults: the reader does not set them
      if (want.has('height')) info.height = 7.5;
      if (want.has('type')) info.type = local(first);
      if (want.has('direction')) info.direction = attr(childL(first, 'barDir'), 'val') ?? (/^bar/.test(local(first)) ? 'col' : null);
      if (want.has('xtitle')) info.xtitle = titleText(childL(axis('x'), 'title'));
      if (want.has('ytitle')) info.ytitle = titleText(childL(axis('y'), 'title'));
      if (want.has('ztitle')) info.ztitle = titleText(childL(axis('z'), 'title'));
      out[series.join(';')] = info;
    }
  }
  return out;
}

/** "B12" -> [row, col] (openpyxl's coordinate_to_tuple). */
function coord(a: string): [number, number] {
  const m = /^\$?([A-Z]+)\$?(\d+)$/i.exec(a.trim());
  if (!m) return [0, 0];
  let col = 0;
  for (const ch of m[1]!.toUpperCase()) col = col * 26 + ch.charCodeAt(0) - 64;
  return [Number(m[2]), col];
}
const pyBool = (v: string | undefined, dflt: boolean | null): boolean | null => (v === undefined ? dflt : v === '1' || v === 'true');
/** A Python set of tuples, in a canonical (sorted) order so that equal sets compare equal. */
const setOf = (items: unknown[]): string[] => [...new Set(items.map((x) => JSON.stringify(x)))].sort();

/** OSWorld's load_pivot_tables: { "<type>;(r1, c1):(r2, c2);<sheet>": { name, show_*, location, selection, filter_fields, col_fields, row_fields, data_fields } }. */
export async function loadPivots(file: string, sheetName: string, props: string[]): Promise<Record<string, Record<string, unknown>>> {
  const pkg = await OoxmlPackage.open(file);
  if (!pkg) throw new Error(`cannot open ${file}`);
  const sheet = await sheetPart(pkg, sheetName);
  if (!sheet) return {};
  const want = new Set(props);
  const out: Record<string, Record<string, unknown>> = {};
  for (const rel of await relsOfType(pkg, sheet, 'pivotTable')) {
    const pvt = await pkg.xml(rel.target);
    const cacheRel = (await relsOfType(pkg, rel.target, 'pivotCacheDefinition'))[0];
    const cache = cacheRel ? await pkg.xml(cacheRel.target) : undefined;
    const rawSelection = childrenL(childL(pvt, 'pivotFields'), 'pivotField').map((f) =>
      childrenL(childL(f, 'items'), 'item')
        .filter((i) => attr(i, 'x') !== undefined)
        .map((i) => [pyBool(attr(i, 'h'), null), Number(attr(i, 'x'))]),
    );
    let lo = 0;
    while (lo < rawSelection.length && rawSelection[lo]!.length === 0) lo++;
    let hi = rawSelection.length;
    while (hi > lo && rawSelection[hi - 1]!.length === 0) hi--;
    const selection = rawSelection.slice(lo, hi);
    const leftBias = lo;
    const rightBias = rawSelection.length - hi;
    const src = childL(cache, 'cacheSource');
    const ws = childL(src, 'worksheetSource');
    const [a = '', b = ''] = (attr(ws, 'ref') ?? ':').split(':');
    const [r1, c1] = coord(a);
    const [r2, c2] = coord(b);
    const source = `${attr(src, 'type') ?? 'worksheet'};(${r1}, ${c1 + leftBias}):(${r2}, ${c2 - rightBias});${attr(ws, 'sheet') ?? 'None'}`;

    const info: Record<string, unknown> = {};
    if (want.has('name')) info.name = attr(pvt, 'name') ?? null;
    if (want.has('show_total')) info.show_total = pyBool(attr(pvt, 'visualTotals'), true);
    if (want.has('show_empty_row')) info.show_empty_row = pyBool(attr(pvt, 'showEmptyRow'), false);
    if (want.has('show_empty_col')) info.show_empty_col = pyBool(attr(pvt, 'showEmptyCol'), false);
    if (want.has('show_headers')) info.show_headers = pyBool(attr(pvt, 'showHeaders'), true);
    if (want.has('location')) info.location = { ...((childL(pvt, 'location')?.[':@'] as Record<string, string>) ?? {}) };
    if (want.has('filter') || want.has('selection')) info.selection = want.has('ordered') ? selection : selection.map((s) => setOf(s));
    if (want.has('filter')) info.filter_fields = setOf(childrenL(childL(pvt, 'pageFields'), 'pageField').map((f) => Number(attr(f, 'fld'))));
    const fields = (tag: string) => childrenL(childL(pvt, tag), 'field').map((f) => Number(attr(f, 'x')) - leftBias);
    if (want.has('col_fields')) info.col_fields = fields('colFields');
    if (want.has('row_fields')) info.row_fields = fields('rowFields');
    if (want.has('data_fields')) {
      info.data_fields = childrenL(childL(pvt, 'dataFields'), 'dataField').map(
        (f) => `${Number(attr(f, 'fld')) - leftBias};${want.has('data_fields_name') ? (attr(f, 'name') ?? 'None') : ''};${attr(f, 'subtotal') ?? 'sum'};${attr(f, 'showDataAs') ?? 'normal'}`,
      );
    }
    out[source] = info;
  }
  return out;
}
