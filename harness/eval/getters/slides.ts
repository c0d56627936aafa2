/**
 * OSWorld's impress getters (getters/impress.py): the audio of a slide and a slide's background
 * image, taken out of the pptx fetched from the env (or, for a linked file:// target, fetched
 * from the env itself).
 */
import fs from 'node:fs';
import path from 'node:path';
import { OoxmlPackage, all, attr } from '../metrics/ooxml.ts';
import type { Getter } from '../types.ts';
import { vmFile } from './files.ts';

async function fromSlide(ctx: Parameters<Getter>[0], config: Parameters<Getter>[1], pick: (pkg: OoxmlPackage, slide: string) => Promise<{ target: string; external: boolean } | null>): Promise<string | null> {
  const pptPath = String(config.ppt_file_path);
  const local = (await vmFile(ctx, { type: 'vm_file', path: pptPath, dest: path.posix.basename(pptPath) })) as string | null;
  if (!local) return null;
  const pkg = await OoxmlPackage.open(local);
  if (!pkg) return null;
  const slide = `ppt/slides/slide${Number(config.slide_index) + 1}.xml`;
  const found = await pick(pkg, slide);
  if (!found) return null;
  if (!found.external) {
    const data = await pkg.binary(found.target);
    if (!data) return null;
    const out = path.join(path.dirname(local), found.target);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, data);
    return out;
  }
  if (!found.target.startsWith('file://')) return null;
  return (await vmFile(ctx, { type: 'vm_file', path: found.target.slice(7), dest: String(config.dest) })) as string | null;
}

/** The first relationship of the slide whose type mentions "audio". */
export const audioInSlide: Getter = async (ctx, config) =>
  fromSlide(ctx, config, async (pkg, slide) => {
    const relsPart = `ppt/slides/_rels/${path.posix.basename(slide)}.rels`;
    if (!pkg.has(relsPart)) return null;
    const raw = await pkg.xml(relsPart);
    const rels = await pkg.rels(slide);
    for (const r of all(raw, 'Relationship')) {
      if (!(attr(r, 'Type') ?? '').includes('audio')) continue;
      const target = attr(r, 'Target') ?? '';
      if (target.startsWith('..')) return { target: rels[attr(r, 'Id') ?? '']!.target, external: false };
      return { target, external: true };
    }
    return null;
  });

/** The image of the slide's p:bg/p:bgPr blip fill. */
export const backgroundImageInSlide: Getter = async (ctx, config) =>
  fromSlide(ctx, config, async (pkg, slide) => {
    const root = await pkg.xml(slide);
    if (!root) return null;
    let id: string | undefined;
    for (const bg of all(root, 'p:bgPr')) {
      id = attr(all(bg, 'a:blip')[0], 'r:embed');
      if (id) break;
    }
    if (!id) return null;
    const relsPart = `ppt/slides/_rels/${path.posix.basename(slide)}.rels`;
    const raw = await pkg.xml(relsPart);
    const rels = await pkg.rels(slide);
    for (const r of all(raw, 'Relationship')) {
      if (!(attr(r, 'Type') ?? '').includes('image') || attr(r, 'Id') !== id) continue;
      const target = attr(r, 'Target') ?? '';
      if (target.startsWith('..')) return { target: rels[id]!.target, external: false };
      return { target, external: true };
    }
    return null;
  });
