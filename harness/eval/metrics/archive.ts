/**
 * OSWorld's compare_archive (metrics/chrome.py): both archives unpacked (zip with jszip, tar
 * family with `tar`), the sorted file lists under options.file_path equal, then the mean of
 * the file_type metric (text, pdf, docx, ppt, image, csv, table, audio) over the file pairs.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import JSZip from 'jszip';
import { UnsupportedError } from '../../env/setup/errors.ts';
import type { Metric } from '../types.ts';
import { compareAudios } from './audio.ts';
import { compareDocxFiles } from './docs.ts';
import { compareTextFile } from './general.ts';
import { compareImages } from './image.ts';
import { comparePdfs } from './pdf.ts';
import { comparePptxFiles } from './slides.ts';
import { compareCsv, compareTable } from './table.ts';

/** shutil.unpack_archive by file name. */
export async function unpackArchive(file: string, dest: string): Promise<void> {
  fs.mkdirSync(dest, { recursive: true });
  const name = file.toLowerCase();
  if (name.endsWith('.zip')) {
    const zip = await JSZip.loadAsync(fs.readFileSync(file));
    for (const entry of Object.values(zip.files)) {
      const out = path.join(dest, entry.name);
      if (!out.startsWith(path.resolve(dest) + path.sep)) continue; // no escaping the folder
      if (entry.dir) fs.mkdirSync(out, { recursive: true });
      else {
        fs.mkdirSync(path.dirname(out), { recursive: true });
        fs.writeFileSync(out, await entry.async('nodebuffer'));
      }
    }
  } else if (/\.(tar|tar\.gz|tgz|tar\.bz2|tbz2|tar\.xz|txz)$/.test(name)) {
    execFileSync('tar', ['-xf', file, '-C', dest], { stdio: 'ignore' });
  } else throw new Error(`unknown archive format: ${file}`);
}

const COMPARE: Record<string, Metric> = {
  text: compareTextFile,
  pdf: comparePdfs,
  docx: compareDocxFiles,
  ppt: comparePptxFiles,
  image: compareImages,
  csv: compareCsv,
  table: compareTable,
  audio: compareAudios,
};

export const compareArchive: Metric = async (pred, gold, options) => {
  if (!pred || typeof pred !== 'string' || typeof gold !== 'string') return 0;
  const { file_path: sub = '', file_type: type = 'text', ...rest } = options as Record<string, unknown>;
  const fn = COMPARE[String(type)];
  if (!fn) throw new UnsupportedError(`compare_archive file_type "${String(type)}" is not implemented`);
  const strip = (p: string) => p.slice(0, p.length - path.extname(p).length);
  const predDir = `${strip(pred)}_pred`;
  const goldDir = `${strip(gold)}_gold`;
  fs.rmSync(predDir, { recursive: true, force: true });
  try {
    await unpackArchive(pred, predDir);
  } catch {
    return 0;
  }
  if (!fs.existsSync(goldDir)) await unpackArchive(gold, goldDir);
  const list = (d: string) => (fs.existsSync(path.join(d, String(sub))) ? fs.readdirSync(path.join(d, String(sub))).sort() : null);
  const p = list(predDir);
  const g = list(goldDir);
  if (!p || !g || p.length !== g.length || p.some((f, i) => f !== g[i])) return 0;
  if (!p.length) return 0; // OSWorld divides by zero here
  let score = 0;
  for (const f of p) score += Number(await fn(path.join(predDir, String(sub), f), path.join(goldDir, String(sub), f), rest));
  return score / p.length;
};
