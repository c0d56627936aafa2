/**
 * OSWorld's presentation metrics (metrics/slides.py). compare_pptx_files walks both decks as
 * python-pptx does (slides, top-level shapes in order, text frames, paragraphs, runs, tables)
 * over the raw XML (ooxml.ts). Options and defaults are OSWorld's `examine_*` flags.
 */
import fs from 'node:fs';
import type { Metric } from '../types.ts';
import { all, at, attr, child, children, kids, OoxmlPackage, tagOf, textOf, type XNode } from './ooxml.ts';

interface Slide {
  root: XNode | undefined;
  xml: string;
  notes: string;
  bg: string | null;
}

export async function loadDeck(file: string): Promise<{ pkg: OoxmlPackage; slides: Slide[] } | null> {
  if (!fs.existsSync(file)) return null;
  const pkg = await OoxmlPackage.open(file);
  if (!pkg) return null;
  const pres = await pkg.xml('ppt/presentation.xml');
  if (!pres) return null;
  const rels = await pkg.rels('ppt/presentation.xml');
  const slides: Slide[] = [];
  for (const id of children(at(pres, 'p:sldIdLst'), 'p:sldId')) {
    const part = rels[attr(id, 'r:id') ?? '']?.target;
    if (!part) continue;
    const xml = (await pkg.text(part)) ?? '';
    const root = await pkg.xml(part);
    const srels = await pkg.rels(part);
    let notes = '';
    const notesRel = Object.values(srels).find((r) => r.type.endsWith('/notesSlide'));
    if (notesRel) {
      const n = await pkg.xml(notesRel.target);
      // python-pptx's notes_text_frame: the body placeholder of the notes slide.
      const body = all(n, 'p:sp').find((sp) => attr(at(sp, 'p:nvSpPr', 'p:nvPr', 'p:ph'), 'type') === 'body');
      notes = body ? frameText(child(body, 'p:txBody')) : '';
    }
    let bg = srgb(at(root, 'p:cSld', 'p:bg', 'p:bgPr'));
    if (!bg) {
      const layout = Object.values(srels).find((r) => r.type.endsWith('/slideLayout'));
      if (layout) {
        const master = Object.values(await pkg.rels(layout.target)).find((r) => r.type.endsWith('/slideMaster'));
        if (master) bg = srgb(at(await pkg.xml(master.target), 'p:cSld', 'p:bg', 'p:bgPr'));
      }
    }
    slides.push({ root, xml, notes, bg });
  }
  return { pkg, slides };
}

const srgb = (n: XNode | undefined): string | null => attr(at(n, 'a:solidFill', 'a:srgbClr'), 'val') ?? null;

/** python-pptx paragraph text: runs, fields, line breaks as "\v". */
function paraText(p: XNode): string {
  return kids(p)
    .map((k) => (tagOf(k) === 'a:r' || tagOf(k) === 'a:fld' ? textOf(k, 'a:t') : tagOf(k) === 'a:br' ? '\v' : ''))
    .join('');
}
const frameText = (tx: XNode | undefined): string => children(tx, 'a:p').map(paraText).join('\n');

interface Shape {
  node: XNode;
  kind: string;
  hasText: boolean;
  text: string;
  paras: XNode[];
  left: number | null;
  top: number | null;
  width: number | null;
  height: number | null;
  /** python-pptx MSO_SHAPE_TYPE: 13 picture, 19 table, 6 group, 5 freeform, 1 autoshape, 14 placeholder */
  type: number;
}

function shapeOf(node: XNode): Shape {
  const kind = tagOf(node);
  const xfrm = kind === 'p:graphicFrame' ? child(node, 'p:xfrm') : kind === 'p:grpSp' ? at(node, 'p:grpSpPr', 'a:xfrm') : at(node, 'p:spPr', 'a:xfrm');
  const num = (n: XNode | undefined, a: string) => (attr(n, a) === undefined ? null : Number(attr(n, a)));
  const tx = child(node, 'p:txBody');
  const isTable = kind === 'p:graphicFrame' && all(node, 'a:tbl').length > 0;
  const ph = at(node, 'p:nvSpPr', 'p:nvPr', 'p:ph');
  const type =
    kind === 'p:pic' ? 13 : isTable ? 19 : kind === 'p:grpSp' ? 6 : kind === 'p:sp' ? (ph ? 14 : at(node, 'p:spPr', 'a:custGeom') ? 5 : 1) : kind === 'p:cxnSp' ? 9 : 7;
  return {
    node,
    kind,
    hasText: kind === 'p:sp',
    text: frameText(tx),
    paras: children(tx, 'a:p'),
    left: num(child(xfrm, 'a:off'), 'x'),
    top: num(child(xfrm, 'a:off'), 'y'),
    width: num(child(xfrm, 'a:ext'), 'cx'),
    height: num(child(xfrm, 'a:ext'), 'cy'),
    type,
  };
}

const SHAPE_TAGS = new Set(['p:sp', 'p:pic', 'p:graphicFrame', 'p:grpSp', 'p:cxnSp', 'mc:AlternateContent']);
const shapesOf = (tree: XNode | undefined): Shape[] => kids(tree).filter((k) => SHAPE_TAGS.has(tagOf(k))).map(shapeOf);

function textShapesDeep(tree: XNode | undefined): Shape[] {
  const out: Shape[] = [];
  for (const s of shapesOf(tree)) {
    if (s.hasText) out.push(s);
    if (s.kind === 'p:grpSp') out.push(...textShapesDeep(s.node));
  }
  return out;
}

interface Font {
  name: string | null;
  size: string | null;
  bold: boolean | null;
  italic: boolean | null;
  underline: boolean | string | null;
  strike: string;
  rgb: string | undefined;
}
function fontOf(r: XNode): Font {
  const pr = child(r, 'a:rPr');
  const tri = (v: string | undefined) => (v === undefined ? null : v === '1' || v === 'true');
  const u = attr(pr, 'u');
  return {
    name: attr(child(pr, 'a:latin'), 'typeface') ?? null,
    size: attr(pr, 'sz') ?? null,
    bold: tri(attr(pr, 'b')),
    italic: tri(attr(pr, 'i')),
    underline: u === undefined ? null : u === 'none' ? false : u === 'sng' ? true : u,
    strike: attr(pr, 'strike') ?? 'noStrike',
    rgb: attr(at(pr, 'a:solidFill', 'a:srgbClr'), 'val'),
  };
}
const runsOf = (p: XNode) => children(p, 'a:r');
const nonEmptyRuns = (p: XNode) => runsOf(p).filter((r) => textOf(r, 'a:t').trim() !== '');

function bulletsOf(slideRoot: XNode | undefined): [string | null, string, string][] {
  const out: [string | null, string, string][] = [];
  for (const p of all(slideRoot, 'a:p')) {
    const pPr = child(p, 'a:pPr');
    const lvl = pPr ? (attr(pPr, 'lvl') ?? null) : 'No Level';
    const ch = attr(child(pPr, 'a:buChar'), 'char') ?? 'No Bullet';
    const text = textOf(p, 'a:t');
    if (text.trim()) out.push([lvl, ch, text]);
  }
  return out;
}
function bulletsMatch(a: [string | null, string, string][], b: [string | null, string, string][]): boolean {
  if (a.length !== b.length) return false;
  return a.every(([l1, c1, t1], i) => {
    const [l2, c2, t2] = b[i]!;
    if (t1 !== t2 || c1 !== c2) return false;
    if (c1 !== 'No Bullet' || c2 !== 'No Bullet') return (l1 ?? '0') === (l2 ?? '0');
    return true;
  });
}

export const comparePptxFiles: Metric = async (result, expected, options) => {
  if (typeof result !== 'string' || typeof expected !== 'string') return 0;
  const d1 = await loadDeck(result);
  const d2 = await loadDeck(expected);
  if (!d1 || !d2) return 0;
  const opt = (k: string, def: boolean) => (options[k] === undefined ? def : !!options[k]);
  const tol = (options.approximately_tolerance as number | undefined) ?? 0.005;
  const approx = (a: number | null, b: number | null) => a === b || (a !== null && b !== null && a !== 0 && b !== 0 && Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b)) <= tol);
  const sameBox = (a: Shape, b: Shape) => approx(a.left, b.left) && approx(a.top, b.top) && approx(a.width, b.width) && approx(a.height, b.height);
  const falsy = (v: boolean | null) => v === null || v === false;
  const ex = {
    slides: opt('examine_number_of_slides', true),
    shape: opt('examine_shape', true),
    text: opt('examine_text', true),
    indent: opt('examine_indent', true),
    fontName: opt('examine_font_name', true),
    fontSize: opt('examine_font_size', true),
    bold: opt('examine_font_bold', true),
    italic: opt('examine_font_italic', true),
    color: opt('examine_color_rgb', true),
    underline: opt('examine_font_underline', true),
    strike: opt('examine_strike_through', true),
    align: opt('examine_alignment', true),
    titleBottom: opt('examine_title_bottom_position', false),
    tableBottom: opt('examine_table_bottom_position', false),
    runCount: opt('examine_run_count', true),
    right: opt('examine_right_position', false),
    top: opt('examine_top_position', false),
    shift: opt('examine_shape_for_shift_size', false),
    imageSize: opt('examine_image_size', false),
    modifyHeight: opt('examine_modify_height', false),
    bullets: opt('examine_bullets', true),
    bg: opt('examine_background_color', true),
    note: opt('examine_note', true),
  };
  if (d1.slides.length !== d2.slides.length && ex.slides) return 0;
  const underlineDiffers = (u1: Font['underline'], u2: Font['underline']) => u1 !== u2 && ((u1 !== null && u2 !== null) || (u1 === null && u2 === true) || (u1 === true && u2 === null));
  for (let si = 0; si < Math.min(d1.slides.length, d2.slides.length); si++) {
    const slideIdx = si + 1;
    const s1 = d1.slides[si]!;
    const s2 = d2.slides[si]!;
    if (s1.bg !== s2.bg && ex.bg) return 0;
    if (s1.notes.trim() !== s2.notes.trim() && ex.note) return 0;
    const tree1 = at(s1.root, 'p:cSld', 'p:spTree');
    const tree2 = at(s2.root, 'p:cSld', 'p:spTree');
    const shapes1 = shapesOf(tree1);
    const shapes2 = shapesOf(tree2);
    if (shapes1.length !== shapes2.length) return 0;
    const bulletsOk = bulletsMatch(bulletsOf(s1.root), bulletsOf(s2.root));
    for (let k = 0; k < shapes1.length; k++) {
      const a = shapes1[k]!;
      const b = shapes2[k]!;
      if (ex.titleBottom) {
        if (a.hasText && b.hasText && a.text === b.text) {
          if (a.text === 'Product Comparison' && ((a.top ?? 0) <= (b.top ?? 0) || (a.top ?? 0) < 3600000)) return 0;
        } else if (!sameBox(a, b)) return 0;
      }
      if (ex.tableBottom) {
        if (slideIdx === 3 && a.type === 19 && b.type === 19) {
          if ((a.top ?? 0) <= (b.top ?? 0) || (a.top ?? 0) < 3600000) return 0;
        } else if (!sameBox(a, b)) return 0;
      }
      if (ex.right && slideIdx === 2 && !a.hasText && !b.hasText && ((a.left ?? 0) <= (b.left ?? 0) || (a.left ?? 0) < 4320000)) return 0;
      if (ex.top && slideIdx === 2 && a.type === 13 && b.type === 13 && ((a.top ?? 0) >= (b.top ?? 0) || (a.top ?? 0) > 1980000)) return 0;
      if (ex.shift && !sameBox(a, b) && !(a.hasText && b.hasText && a.text === b.text && a.text === 'Elaborate on what you want to discuss.')) return 0;
      const bothEmpty = a.text.trim() === '' && b.text.trim() === '';
      if (!sameBox(a, b) && ex.shape && !bothEmpty) return 0;
      if (ex.imageSize) {
        if (a.type === 13 && b.type === 13) {
          if (!approx(a.width, b.width) || !approx(a.height, b.height)) return 0;
        } else if (!sameBox(a, b)) return 0;
      }
      if (ex.modifyHeight) {
        if ((!a.hasText && !b.hasText) || (a.type === 5 && b.type === 5)) {
          if (!approx(a.height, b.height)) return 0;
        } else if (!sameBox(a, b)) return 0;
      }
      if (a.type === 19) {
        const t1 = all(a.node, 'a:tbl')[0];
        const t2 = all(b.node, 'a:tbl')[0];
        const rows1 = children(t1, 'a:tr');
        const rows2 = children(t2, 'a:tr');
        const cols = (t: XNode | undefined) => children(at(t, 'a:tblGrid'), 'a:gridCol').length;
        if (!t2 || rows1.length !== rows2.length || cols(t1) !== cols(t2)) return 0;
        for (let r = 0; r < rows1.length; r++) {
          const c1 = children(rows1[r], 'a:tc');
          const c2 = children(rows2[r], 'a:tc');
          for (let c = 0; c < c1.length; c++) {
            const p1 = children(child(c1[c], 'a:txBody'), 'a:p');
            const p2 = children(child(c2[c], 'a:txBody'), 'a:p');
            if (p1.length !== p2.length) return 0;
            for (let pi = 0; pi < p1.length; pi++) {
              const empty = paraText(p1[pi]!).trim() === '' && paraText(p2[pi]!).trim() === '';
              const r1 = empty ? nonEmptyRuns(p1[pi]!) : runsOf(p1[pi]!);
              const r2 = empty ? nonEmptyRuns(p2[pi]!) : runsOf(p2[pi]!);
              if (r1.length !== r2.length && ex.runCount) return 0;
              for (let ri = 0; ri < Math.min(r1.length, r2.length); ri++) {
                const f1 = fontOf(r1[ri]!);
                const f2 = fontOf(r2[ri]!);
                if (f1.rgb !== undefined && f2.rgb !== undefined && f1.rgb !== f2.rgb && ex.color) return 0;
                if (f1.bold !== f2.bold && !(falsy(f1.bold) && falsy(f2.bold))) return 0;
                if (f1.italic !== f2.italic && !(falsy(f1.italic) && falsy(f2.italic))) return 0;
                if (underlineDiffers(f1.underline, f2.underline)) return 0;
              }
            }
          }
        }
      }
      if (a.hasText && b.hasText) {
        if (a.text.trim() !== b.text.trim() && ex.text) return 0;
        if (a.paras.length !== b.paras.length) return 0;
        for (let pi = 0; pi < a.paras.length; pi++) {
          const p1 = a.paras[pi]!;
          const p2 = b.paras[pi]!;
          const pPr1 = child(p1, 'a:pPr');
          const pPr2 = child(p2, 'a:pPr');
          if (ex.align && (attr(pPr1, 'algn') ?? 'l') !== (attr(pPr2, 'algn') ?? 'l')) return 0;
          if (paraText(p1) !== paraText(p2) && ex.text) return 0;
          const l1 = Number(attr(pPr1, 'lvl') ?? 0);
          const l2 = Number(attr(pPr2, 'lvl') ?? 0);
          if (l1 !== l2 && ex.indent && !(l1 <= 1 && l2 <= 1)) return 0;
          const empty = paraText(p1).trim() === '' && paraText(p2).trim() === '';
          const r1 = empty ? nonEmptyRuns(p1) : runsOf(p1);
          const r2 = empty ? nonEmptyRuns(p2) : runsOf(p2);
          if (r1.length !== r2.length && ex.runCount) return 0;
          for (let ri = 0; ri < Math.min(r1.length, r2.length); ri++) {
            const f1 = fontOf(r1[ri]!);
            const f2 = fontOf(r2[ri]!);
            if (f1.name !== f2.name && ex.fontName) return 0;
            if (f1.size !== f2.size && ex.fontSize) return 0;
            if (f1.bold !== f2.bold && ex.bold && !(falsy(f1.bold) && falsy(f2.bold))) return 0;
            if (f1.italic !== f2.italic && ex.italic && !(falsy(f1.italic) && falsy(f2.italic))) return 0;
            if (f1.rgb !== undefined && f2.rgb !== undefined && f1.rgb !== f2.rgb && ex.color) return 0;
            if (ex.underline && underlineDiffers(f1.underline, f2.underline)) return 0;
            if (f1.strike !== f2.strike && ex.strike) return 0;
            if (ex.bullets && !bulletsOk) return 0;
          }
        }
      }
    }
    const ts1 = textShapesDeep(tree1);
    const ts2 = textShapesDeep(tree2);
    if (ex.align && ts1.length === ts2.length) {
      for (let i = 0; i < ts1.length; i++) {
        const a = ts1[i]!;
        const b = ts2[i]!;
        if (a.text.trim() !== b.text.trim() && ex.text) return 0;
        if (a.paras.length !== b.paras.length) return 0;
        for (let pi = 0; pi < a.paras.length; pi++) {
          if ((attr(child(a.paras[pi], 'a:pPr'), 'algn') ?? 'l') !== (attr(child(b.paras[pi], 'a:pPr'), 'algn') ?? 'l')) return 0;
        }
      }
    } else if (ts1.length !== ts2.length) return 0;
  }
  return 1;
};

/** Every slide is in portrait orientation (presentation sldSz cy > cx). */
export const checkSlideOrientationPortrait: Metric = async (result) => {
  if (typeof result !== 'string') return 0;
  const pkg = await OoxmlPackage.open(result);
  const sz = at(await pkg?.xml('ppt/presentation.xml'), 'p:sldSz');
  return Number(attr(sz, 'cy')) > Number(attr(sz, 'cx')) ? 1 : 0;
};

/** check_transition: ppt/slides/slide{slide_idx+1}.xml has a p:transition holding p:{transition_type}. */
export const checkTransition: Metric = async (result, rules) => {
  if (typeof result !== 'string') return 0;
  const r = (rules ?? {}) as { slide_idx?: number; transition_type?: string };
  const pkg = await OoxmlPackage.open(result);
  const root = await pkg?.xml(`ppt/slides/slide${Number(r.slide_idx ?? 0) + 1}.xml`);
  const tr = all(root, 'p:transition')[0];
  return tr && all(tr, `p:${r.transition_type}`).length > 0 ? 1 : 0;
};
