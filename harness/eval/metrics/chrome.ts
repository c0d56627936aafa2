/** OSWorld's browser metrics (metrics/chrome.py) over what the chrome getters return. */
import type { Metric } from '../types.ts';

type R = Record<string, unknown>;
const rec = (v: unknown): R => (v && typeof v === 'object' ? (v as R) : {});

/**
 * OSWorld's compare_urls: scheme added when missing, "www." dropped, host reduced to
 * subdomain + registered domain without its public suffix (tldextract; here a heuristic for
 * one- and two-label suffixes), "/" path as empty; query and fragment kept.
 */
export function normaliseUrl(url: string): string {
  const u = new URL(/^[a-zA-Z][a-zA-Z0-9+\-.]*:\/\//.test(url) ? url : `http://${url}`);
  const labels = u.hostname.toLowerCase().split('.');
  const n = labels.length;
  const twoLevel = n >= 3 && labels[n - 1]!.length === 2 && ['co', 'com', 'org', 'net', 'gov', 'ac', 'edu'].includes(labels[n - 2]!);
  const host = /^\d+$/.test(labels[n - 1] ?? '') ? labels : labels.slice(0, n - (n >= 2 ? (twoLevel ? 2 : 1) : 0));
  if (host[0] === 'www') host.shift();
  const pathPart = u.pathname === '/' ? '' : u.pathname;
  return `${u.protocol}//${host.join('.')}${pathPart}${u.search}${u.hash}`;
}
export function compareUrls(a: unknown, b: unknown): boolean {
  if (a == null || b == null) return a == b;
  try {
    return normaliseUrl(String(a)) === normaliseUrl(String(b));
  } catch {
    return a === b;
  }
}

export const isExpectedActiveTab: Metric = (result, rule) => {
  if (!result) return 0;
  const r = rec(rule);
  if (r.type !== 'url') return 0;
  const actual = typeof result === 'object' ? rec(result).url : result;
  return compareUrls(r.url, actual) ? 1 : 0;
};

export const isExpectedUrlPatternMatch: Metric = (result, rules) => {
  if (!result) return 0;
  const url = typeof result === 'string' ? result : typeof rec(result).url === 'string' ? String(rec(result).url) : null;
  if (url === null) return 0;
  return ((rec(rules).expected as string[] | undefined) ?? []).every((p) => new RegExp(p).test(url)) ? 1 : 0;
};

export const isExpectedTabs: Metric = (result, rule) => {
  if (!Array.isArray(result) || !result.length) return 0;
  const r = rec(rule);
  if (r.type !== 'url') return 0;
  const want = (r.urls as string[]) ?? [];
  const got = result.map((t) => rec(t).url);
  return want.length === got.length && want.every((w) => got.some((g) => compareUrls(w, g))) ? 1 : 0;
};

export const isExpectedBookmarks: Metric = (result, rule) => {
  if (!result || (Array.isArray(result) && !result.length)) return 0;
  const r = rec(rule);
  const bar = (rec(rec(result).bookmark_bar).children as R[] | undefined) ?? [];
  const sameSet = (a: unknown[], b: unknown[]) => new Set(a).size === new Set(b).size && a.every((x) => b.includes(x));
  if (r.type === 'bookmark_bar_folders_names') return sameSet(bar.filter((b) => b.type === 'folder').map((b) => b.name), (r.names as unknown[]) ?? []) ? 1 : 0;
  if (r.type === 'bookmark_bar_websites_urls') return sameSet(bar.filter((b) => b.type === 'url').map((b) => b.url), (r.urls as unknown[]) ?? []) ? 1 : 0;
  if (r.type === 'liked_authors_websites_urls') {
    const folder = bar.find((b) => b.type === 'folder' && b.name === 'Liked Authors');
    if (!folder) return 0;
    const urls = ((folder.children as R[] | undefined) ?? []).filter((b) => b.type === 'url').map((b) => b.url);
    // any combination of one choice per expected entry equals the folder's URL set
    const choices = ((r.urls as (string | string[])[]) ?? []).map((u) => (Array.isArray(u) ? u : [u]));
    const combos = choices.reduce<string[][]>((acc, opts) => acc.flatMap((c) => opts.map((o) => [...c, o])), [[]]);
    return combos.some((c) => sameSet(c, urls)) ? 1 : 0;
  }
  throw new Error(`${String(r.type)} not supported`);
};

export const isExpectedSearchQuery: Metric = (result, rules) => {
  if (!result) return 0;
  const pattern = String(rec(rec(rules).expect).pattern);
  return new RegExp(pattern).test(String(rec(result).url ?? '')) ? 1 : 0;
};

export const checkFontSize: Metric = (fontSize, rule) => {
  const size = Number(rec(fontSize).default_font_size);
  const r = rec(rule);
  if (r.type === 'value') return size === r.value ? 1 : 0;
  if (r.type === 'range') return Number(r.min) < size && size < Number(r.max) ? 1 : 0;
  throw new Error(`unknown type ${String(r.type)}`);
};
