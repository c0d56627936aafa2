/**
 * File getters: from the env (vm_file, vm_wallpaper), from the download cache (cloud_file,
 * cache_file), and content read from a fetched file. A file the env does not have is null
 * (OSWorld's FileNotFoundError).
 */
import fs from 'node:fs';
import path from 'node:path';
import { InfrastructureError } from '../../env/setup/errors.ts';
import type { EvalContext, Getter, GetterConfig } from '../types.ts';

const asList = (v: unknown): string[] => (Array.isArray(v) ? (v as string[]) : [v as string]);

function localPath(ctx: EvalContext, dest: string): string {
  const p = path.join(ctx.workDir, path.basename(dest));
  fs.mkdirSync(ctx.workDir, { recursive: true });
  return p;
}

/** OSWorld's `multi` + `gives`: several files fetched, some indices handed to the metric. */
function pick(config: GetterConfig, paths: (string | null)[]): unknown {
  if (!config.multi) return paths[0] ?? null;
  const gives = (config.gives as number[] | undefined) ?? [0];
  const picked = gives.map((i) => paths[i] ?? null);
  return picked.length === 1 ? picked[0] : picked;
}

export const vmFile: Getter = async (ctx, config) => {
  const sources = asList(config.path);
  const dests = asList(config.dest ?? sources.map((s) => path.basename(s)));
  const out: (string | null)[] = [];
  for (let i = 0; i < sources.length; i++) {
    const data = await ctx.env.client.getFile(sources[i]!);
    if (!data) {
      out.push(null);
      continue;
    }
    const p = localPath(ctx, dests[i] ?? path.basename(sources[i]!));
    fs.writeFileSync(p, data);
    out.push(p);
  }
  return pick(config, out);
};

/** Expected files that OSWorld downloads from the cloud come from the local download cache. */
export const cloudFile: Getter = async (ctx, config) => {
  const urls = asList(config.path);
  const dests = asList(config.dest ?? urls.map((u, i) => `cloud_${i}_${path.basename(new URL(u).pathname) || 'file'}`));
  const out = urls.map((u, i) => {
    const p = localPath(ctx, dests[i] ?? `cloud_${i}`);
    fs.copyFileSync(ctx.cache.locate(u), p);
    return p;
  });
  return pick(config, out);
};

export const cacheFile: Getter = async (ctx, config) => {
  if (typeof config.path !== 'string') throw new InfrastructureError('cache_file needs a path (URL)');
  const p = localPath(ctx, `cache_${path.basename(new URL(config.path).pathname) || 'file'}`);
  fs.copyFileSync(ctx.cache.locate(config.path), p);
  return p;
};

export const vmWallpaper: Getter = async (ctx, config) => {
  const data = await ctx.env.client.wallpaper();
  if (!data) return null;
  const p = localPath(ctx, (config.dest as string | undefined) ?? 'wallpaper.png');
  fs.writeFileSync(p, data);
  return p;
};
