/**
 * App getters (OSWorld getters/{vlc,gimp,vscode,misc,info}.py): VLC's vlcrc and its HTTP status
 * (env.ports.vlc, password "password"), GIMP's config files, the accessibility tree, the default
 * video player. VS Code is not installable here: vscode_config only reads the file the task names.
 */
import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { InfrastructureError } from '../../env/setup/errors.ts';
import type { EvalContext, Getter } from '../types.ts';

async function home(ctx: EvalContext): Promise<string> {
  const r = await ctx.env.client.execute(['sh', '-c', 'printf %s "$HOME"']);
  if (r.status !== 'success') throw new InfrastructureError(`cannot read the env's HOME: ${r.message}`);
  return r.output.trim();
}

async function save(ctx: EvalContext, dest: string, data: Buffer): Promise<string> {
  fs.mkdirSync(ctx.workDir, { recursive: true });
  const p = path.join(ctx.workDir, path.basename(dest));
  fs.writeFileSync(p, data);
  return p;
}

export const vlcConfig: Getter = async (ctx, config) => {
  const data = await ctx.env.client.getFile(`${await home(ctx)}/.config/vlc/vlcrc`);
  if (!data) return null;
  return save(ctx, String(config.dest ?? 'vlcrc'), data);
};

export const vlcPlayingInfo: Getter = async (ctx, config) => {
  if (!ctx.env.ports.vlc) throw new InfrastructureError(`env ${ctx.env.id} has no VLC HTTP port`);
  const res = await request(`http://${ctx.env.host}:${ctx.env.ports.vlc}/requests/status.xml`, {
    headers: { authorization: `Basic ${Buffer.from(':password').toString('base64')}` },
  }).catch(() => null);
  if (!res) return null;
  const body = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200) return null;
  return save(ctx, String(config.dest ?? 'status.xml'), body);
};

export const gimpConfigFile: Getter = async (ctx, config) => {
  const data = await ctx.env.client.getFile(`${await home(ctx)}/.config/GIMP/2.10/${String(config.file_name)}`);
  if (!data) return null;
  return save(ctx, String(config.dest ?? config.file_name), data);
};

export const accessibilityTree: Getter = async (ctx) => ctx.env.client.accessibility();

/** OSWorld runs the command palette command, then reads config.path; without VS Code only the read is possible. */
export const vscodeConfig: Getter = async (ctx, config) => {
  const data = await ctx.env.client.getFile(String(config.path));
  if (!data) return null;
  return save(ctx, String(config.dest ?? path.basename(String(config.path))), data);
};

const VIDEO_TYPES = ['3gp', '3gpp', '3gpp2', 'avi', 'divx', 'dv', 'fli', 'flv', 'mp2t', 'mp4', 'mp4v-es', 'mpeg', 'mpeg-system', 'msvideo', 'ogg', 'quicktime', 'vnd.divx', 'vnd.mpegurl', 'vnd.rn-realvideo', 'webm', 'x-anim', 'x-avi', 'x-flc', 'x-fli', 'x-flv', 'x-m4v', 'x-matroska', 'x-mpeg', 'x-mpeg-system', 'x-mpeg2', 'x-ms-asf', 'x-ms-asf-plugin', 'x-ms-asx', 'x-ms-wm', 'x-ms-wmv', 'x-ms-wmx', 'x-ms-wvx', 'x-msvideo', 'x-nsv', 'x-ogm', 'x-ogm+ogg', 'x-theora', 'x-theora+ogg'];
/** The most common `xdg-mime query default video/<type>` answer. */
export const defaultVideoPlayer: Getter = async (ctx) => {
  const counts = new Map<string, number>();
  for (const t of VIDEO_TYPES) {
    const r = await ctx.env.client.execute(['xdg-mime', 'query', 'default', `video/${t}`]);
    if (r.status === 'success' && r.output) counts.set(r.output, (counts.get(r.output) ?? 0) + 1);
  }
  if (!counts.size) return 'unknown';
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
};

/** The env's directory tree (OSWorld's list_directory getter). */
export const listDirectory: Getter = async (ctx, config) => ctx.env.client.listDirectory(String(config.path));
