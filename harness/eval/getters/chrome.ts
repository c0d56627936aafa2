/**
 * Chrome getters (OSWorld getters/chrome.py): the active tab's URL as the address bar shows it
 * (from the accessibility tree, else the visible tab over CDP), open tabs and page content over
 * CDP (playwright-core), and the profile's JSON files (Bookmarks, Preferences) read from the env.
 */
import { connectChrome } from '../../env/setup/chrome.ts';
import { InfrastructureError } from '../../env/setup/errors.ts';
import type { EvalContext, Getter } from '../types.ts';

const PROFILE = '.config/google-chrome/Default';

async function homePath(ctx: EvalContext, rel: string): Promise<string> {
  const r = await ctx.env.client.execute(['sh', '-c', 'printf %s "$HOME"']);
  if (r.status !== 'success') throw new InfrastructureError(`cannot read the env's HOME: ${r.message}`);
  return `${r.output.trim()}/${rel}`;
}

async function profileJson(ctx: EvalContext, file: string): Promise<Record<string, unknown> | null> {
  const data = await ctx.env.client.getFile(await homePath(ctx, `${PROFILE}/${file}`));
  if (!data) return null;
  try {
    return JSON.parse(data.toString('utf8')) as Record<string, unknown>;
  } catch {
    return null;
  }
}

const unescapeXml = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');

/** The address bar's text in the accessibility tree (Chrome / Chromium "Address and search bar"). */
export function addressBarText(tree: string): string | null {
  const re = /<entry\b[^>]*\bname="Address and search bar"[^>]*>([^<]*)<\/entry>/g;
  const found = [...tree.matchAll(re)].map((m) => unescapeXml(m[1] ?? ''));
  return found[0] || null;
}

/** The URL of the tab the user sees: CDP page whose document is visible. */
async function visibleTabUrl(ctx: EvalContext): Promise<string | null> {
  const browser = await connectChrome(ctx.env, 10_000).catch(() => null);
  if (!browser) return null;
  try {
    for (const context of browser.contexts()) {
      for (const page of context.pages()) {
        const visible = await page.evaluate('document.visibilityState === "visible"').catch(() => false);
        if (visible) return page.url();
      }
    }
    return null;
  } finally {
    await browser.close();
  }
}

/** OSWorld: goto_prefix (default "https://") + the address bar text, which has no scheme. */
export const activeUrlFromAccessTree: Getter = async (ctx, config) => {
  const prefix = (config.goto_prefix as string | undefined) ?? 'https://';
  const tree = await ctx.env.client.accessibility().catch(() => null);
  let text = tree ? addressBarText(tree) : null;
  if (!text) {
    const url = await visibleTabUrl(ctx);
    if (!url) return null;
    text = url.replace(/^https?:\/\//, '');
  }
  return `${prefix}${text}`;
};

export const activeTabInfo: Getter = async (ctx, config) => {
  const url = (await activeUrlFromAccessTree(ctx, config)) as string | null;
  if (!url) return null;
  const browser = await connectChrome(ctx.env);
  try {
    const context = browser.contexts()[0] ?? (await browser.newContext());
    const page = await context.newPage();
    try {
      await page.goto(url, { waitUntil: 'load', timeout: 60_000 });
      return { title: await page.title(), url: page.url(), content: await page.content() };
    } catch (err) {
      if (err instanceof Error && err.name === 'TimeoutError') return { title: 'Load timeout', url: page.url(), content: await page.content() };
      return null;
    }
  } finally {
    await browser.close();
  }
};

export const activeTabUrlParse: Getter = async (ctx, config) => {
  const url = (await activeUrlFromAccessTree(ctx, config)) as string | null;
  if (!url) return null;
  const q = new URL(url).searchParams;
  let out: Record<string, unknown> = {};
  for (const key of config.parse_keys as string[]) out[key] = q.get(key) ?? '';
  const replace = config.replace as Record<string, string> | undefined;
  if (replace) {
    for (const [from, to] of Object.entries(replace)) {
      const v = out[from];
      delete out[from];
      out[to] = v;
    }
  }
  if (config.split_list) out = Object.fromEntries(Object.entries(out).map(([k, v]) => [k, String(v).split(',')]));
  return out;
};

export const urlDashPart: Getter = async (ctx, config) => {
  const url = (await activeUrlFromAccessTree(ctx, config)) as string | null;
  if (!url) return null;
  const idx = Number.parseInt(String(config.partIndex), 10);
  const parts = url.split('/');
  if (!Number.isInteger(idx) || idx >= parts.length) return null;
  let part = parts[idx]!;
  if (config.needDeleteId) part = part.split('?')[0]!;
  if (config.returnType === 'string') return part;
  if (config.returnType === 'json') return { [String(config.key)]: part };
  return null;
};

export const openTabsInfo: Getter = async (ctx) => {
  const browser = await connectChrome(ctx.env).catch(() => null);
  if (!browser) return [];
  try {
    const tabs: { title: string; url: string }[] = [];
    for (const context of browser.contexts()) {
      for (const page of context.pages()) {
        try {
          await page.waitForLoadState('networkidle', { timeout: 30_000 });
          tabs.push({ title: await page.title(), url: page.url() });
        } catch (err) {
          tabs.push({ title: err instanceof Error && err.name === 'TimeoutError' ? 'Load timeout' : 'Error encountered', url: page.url() });
        }
      }
    }
    return tabs;
  } finally {
    await browser.close();
  }
};

/** The profile's Bookmarks "roots" ({} -> [] when the file is missing, as OSWorld). */
export const bookmarks: Getter = async (ctx) => {
  const data = await profileJson(ctx, 'Bookmarks');
  return data ? ((data.roots as unknown) ?? {}) : [];
};

/** Preferences-based getters: OSWorld reads one key of ~/.config/google-chrome/Default/Preferences. */
const pref =
  (read: (p: Record<string, unknown>) => unknown, fallback: unknown): Getter =>
  async (ctx) => {
    const p = await profileJson(ctx, 'Preferences');
    if (!p) return fallback;
    try {
      return read(p) ?? fallback;
    } catch {
      return fallback;
    }
  };
const dig = (o: unknown, ...keys: string[]): unknown => keys.reduce<unknown>((cur, k) => (cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[k] : undefined), o);

export const profileName = pref((p) => dig(p, 'profile', 'name'), null);
export const chromeFontSize = pref((p) => dig(p, 'webkit', 'webprefs') ?? { default_fixed_font_size: 13, default_font_size: 16, minimum_font_size: 13 }, null);
export const enableDoNotTrack = pref((p) => (dig(p, 'enable_do_not_track') ? 'true' : 'false'), 'false');
export const enableEnhancedSafetyBrowsing = pref((p) => (dig(p, 'safebrowsing', 'enhanced') ? 'true' : 'false'), 'Google');
export const newStartupPage = pref((p) => {
  if (!('session' in p)) return 'true';
  return dig(p, 'session', 'restore_on_startup') === 5 ? 'true' : 'false';
}, 'Google');
export const dataDeleteAutomatically = pref((p) => (dig(p, 'profile', 'default_content_setting_values') != null ? 'true' : 'false'), 'Google');
export const defaultSearchEngine = pref((p) => dig(p, 'default_search_provider_data', 'template_url_data', 'short_name') ?? 'Google', 'Google');
