/**
 * Small reader for Office Open XML packages (docx, pptx, xlsx parts): jszip opens the zip,
 * fast-xml-parser (preserveOrder) keeps element order, which slide shapes and paragraphs need.
 */
import fs from 'node:fs';
import path from 'node:path';
import JSZip from 'jszip';
import { XMLParser } from 'fast-xml-parser';

export type XNode = Record<string, unknown>;

const parser = new XMLParser({ preserveOrder: true, ignoreAttributes: false, attributeNamePrefix: '', trimValues: false, parseTagValue: false, parseAttributeValue: false });

export function parseXml(xml: string): XNode[] {
  return parser.parse(xml) as XNode[];
}

export const tagOf = (n: XNode): string => Object.keys(n).find((k) => k !== ':@') ?? '';
export const kids = (n: XNode | undefined): XNode[] => {
  const v = n ? n[tagOf(n)] : undefined;
  return Array.isArray(v) ? (v as XNode[]) : []; // text nodes ({'#text': ...}) have no children
};
export const attr = (n: XNode | undefined, name: string): string | undefined => ((n?.[':@'] as Record<string, string> | undefined) ?? {})[name];
export const child = (n: XNode | undefined, tag: string): XNode | undefined => kids(n).find((k) => tagOf(k) === tag);
export const children = (n: XNode | undefined, tag: string): XNode[] => kids(n).filter((k) => tagOf(k) === tag);
/** A path of child tags, e.g. path(sp, 'p:spPr', 'a:xfrm', 'a:off'). */
export const at = (n: XNode | undefined, ...tags: string[]): XNode | undefined => tags.reduce<XNode | undefined>((cur, t) => child(cur, t), n);

/** Every descendant with the tag (document order). */
export function all(n: XNode | XNode[] | undefined, tag: string): XNode[] {
  const out: XNode[] = [];
  const walk = (x: XNode) => {
    if (tagOf(x) === tag) out.push(x);
    for (const k of kids(x)) walk(k);
  };
  for (const x of Array.isArray(n) ? n : n ? [n] : []) walk(x);
  return out;
}

/** Concatenated text of the given text tags under a node (e.g. 'a:t' or 'w:t'). */
export function textOf(n: XNode | undefined, tTag: string): string {
  return all(n, tTag)
    .map((t) => kids(t).map((x) => String(x['#text'] ?? '')).join(''))
    .join('');
}

export function rootOf(doc: XNode[]): XNode | undefined {
  return doc.find((n) => !tagOf(n).startsWith('?'));
}

export class OoxmlPackage {
  private constructor(readonly zip: JSZip) {}

  static async open(file: string): Promise<OoxmlPackage | null> {
    try {
      return new OoxmlPackage(await JSZip.loadAsync(fs.readFileSync(file)));
    } catch {
      return null;
    }
  }

  has(part: string): boolean {
    return this.zip.file(part) !== null;
  }

  async text(part: string): Promise<string | null> {
    const f = this.zip.file(part);
    return f ? f.async('string') : null;
  }

  async binary(part: string): Promise<Buffer | null> {
    const f = this.zip.file(part);
    return f ? Buffer.from(await f.async('uint8array')) : null;
  }

  async xml(part: string): Promise<XNode | undefined> {
    const t = await this.text(part);
    return t === null ? undefined : rootOf(parseXml(t));
  }

  /** Relationship id -> target part path, for a part. */
  async rels(part: string): Promise<Record<string, { target: string; type: string }>> {
    const relsPart = path.posix.join(path.posix.dirname(part), '_rels', `${path.posix.basename(part)}.rels`);
    const root = await this.xml(relsPart);
    const out: Record<string, { target: string; type: string }> = {};
    for (const r of children(root, 'Relationship')) {
      const target = attr(r, 'Target') ?? '';
      const mode = attr(r, 'TargetMode');
      out[attr(r, 'Id') ?? ''] = {
        target: mode === 'External' ? target : target.startsWith('/') ? target.slice(1) : path.posix.normalize(path.posix.join(path.posix.dirname(part), target)),
        type: attr(r, 'Type') ?? '',
      };
    }
    return out;
  }
}
