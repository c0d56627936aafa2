/** OSWorld's browser metrics (metrics/chrome.py) over what the chrome getters return. */
import type { Metric } from '../types.ts';
import { looseEqual } from './rules.ts';

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

type Rule = Record<string, unknown>;
const ruleOf = (v: unknown): Rule => (v && typeof v === 'object' ? (v as Rule) : {});
const unsupportedRule = (r: Rule): never => {
  throw new TypeError(`${String(r.type)} not support yet!`);
};

/** No cookie's host (column 1) matches one of rule.domains (compare_urls). */
export const isCookieDeleted: Metric = (result, rule) => {
  const r = ruleOf(rule);
  if (r.type !== 'domains') return unsupportedRule(r);
  const hosts = ((result as unknown[][] | null) ?? []).map((c) => String(c[1]));
  return (r.domains as string[]).some((d) => hosts.some((h) => compareUrls(d, h))) ? 0 : 1;
};

/** No history URL contains one of rule.keywords. */
export const checkHistoryDeleted: Metric = (result, rule) => {
  const r = ruleOf(rule);
  if (r.type !== 'keywords') return unsupportedRule(r);
  const urls = ((result as unknown[][] | null) ?? []).map((h) => String(h[0]));
  return (r.keywords as string[]).some((k) => urls.some((u) => u.includes(k))) ? 0 : 1;
};

/** The enabled chrome://flags experiments (names before "@") equal rule.names, in order. */
export const checkEnabledExperiments: Metric = (result, rule) => {
  const r = ruleOf(rule);
  if (r.type !== 'names') return unsupportedRule(r);
  const names = ((result as string[] | null) ?? []).map((e) => e.split('@')[0]);
  return looseEqual(names, r.names) ? 1 : 0;
};

/** Every rule.items string occurs in the page content. */
export const isAddedToSteamCart: Metric = (result, rule) => {
  const content = String(ruleOf(result).content ?? '');
  return ((ruleOf(rule).items as string[] | undefined) ?? []).every((i) => content.includes(i)) ? 1 : 0;
};

/** The expected extension names are all installed (Zoom's two store names count as one). */
export const isExpectedInstalledExtensions: Metric = (result, expected) => {
  if (!result || (Array.isArray(result) && !result.length)) return 0;
  const alias = new Set(['Zoom Chrome Extension', 'Zoom for Google Chrome']);
  const canon = (n: string) => (alias.has(n) ? 'Zoom Chrome Extension' : n);
  const installed = new Set((typeof result === 'string' ? [...result] : (result as string[])).map(canon));
  return ((ruleOf(expected).expected as string[] | undefined) ?? []).every((n) => installed.has(canon(n))) ? 1 : 0;
};

/** A desktop shortcut whose Name= (rule.type "name") or Exec= (rule.type "exec") line matches. */
export const isShortcutOnDesktop: Metric = (result, rule) => {
  const r = ruleOf(rule);
  const shortcuts = Object.values((result as Record<string, string> | null) ?? {});
  const key = r.type === 'name' ? 'Name' : r.type === 'exec' ? 'Exec' : null;
  if (!key) return unsupportedRule(r);
  const want = String(r[r.type as string]);
  for (const content of shortcuts) {
    if (content.includes(`${key}=${want}\n`)) return 1;
    for (const line of content.split('\n')) {
      if (!line.startsWith(`${key}=`)) continue;
      const got = line.slice(key.length + 1);
      if (got === want) return 1;
      if (key === 'Name' && (got.toLowerCase().includes(want.toLowerCase()) || want.toLowerCase().includes(got.toLowerCase()))) return 1;
      if (key === 'Exec' && (got.includes(want) || want.includes(got))) return 1;
    }
  }
  return 0;
};
