/**
 * Files that OSWorld tasks download at setup (Google Drive, Hugging Face, ...) come from a
 * local folder instead: the file for URL u is `{cacheDir}/{sha256(u)}` or, for readability,
 * any file `{cacheDir}/{sha256(u)}-<name>`. `file:` URLs are read directly. A missing file is
 * an infrastructure error that names the URL and the expected path, never a task failure.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InfrastructureError } from './errors.ts';

export function cacheKey(url: string): string {
  return createHash('sha256').update(url).digest('hex');
}

export class FileCache {
  constructor(readonly dir: string | null) {}

  /** Where the file for `url` is, or an InfrastructureError saying where it should be. */
  locate(url: string): string {
    if (url.startsWith('file:')) {
      const p = fileURLToPath(url);
      if (fs.existsSync(p)) return p;
      throw new InfrastructureError(`setup file ${p} does not exist`);
    }
    const key = cacheKey(url);
    if (this.dir && fs.existsSync(this.dir)) {
      const exact = path.join(this.dir, key);
      if (fs.existsSync(exact)) return exact;
      const named = fs.readdirSync(this.dir).find((f) => f.startsWith(`${key}-`));
      if (named) return path.join(this.dir, named);
    }
    throw new InfrastructureError(
      `file not in the download cache: ${url} (expected ${path.join(this.dir ?? '<--cache-dir>', key)}; this machine has no network)`,
    );
  }

  read(url: string): Buffer {
    return fs.readFileSync(this.locate(url));
  }

  /** Adds a file for a URL (the `cache-add` workflow). */
  add(url: string, file: string): string {
    if (!this.dir) throw new Error('no cache dir');
    fs.mkdirSync(this.dir, { recursive: true });
    const dest = path.join(this.dir, `${cacheKey(url)}-${path.basename(file)}`);
    fs.copyFileSync(file, dest);
    return dest;
  }
}
