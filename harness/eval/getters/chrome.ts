/**
 * Chrome getters (OSWorld getters/chrome.py): the active tab's URL as the address bar shows it
 * (from the accessibility tree, else the visible tab over CDP), open tabs and page content over
 * CDP (playwright-core), and the profile's JSON files (Bookmarks, Preferences) read from the env.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
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

/** OSWorld's normalize_url for matching tabs: percent-decoded, trailing slashes dropped. */
const normalizeUrl = (u: string): string => {
  let s = u;
  try {
    s = decodeURIComponent(u);
  } catch {
    /* keep as is */
  }
  return s.replace(/\/+$/, '');
};

type Page = import('playwright-core').Page;

/** Texts of the elements matching a CSS selector (text_content, stripped), [] on error. */
async function texts(page: Page, selector: string): Promise<string[]> {
  try {
    return await page.$$eval(selector, (els) => els.map((e) => (e.textContent ?? '').trim()));
  } catch {
    return [];
  }
}

/** OSWorld's get_active_tab_html_parse: text picked from the active tab by class, label, xpath or input. */
export const activeTabHtmlParse: Getter = async (ctx, config) => {
  const activeUrl = (await activeUrlFromAccessTree(ctx, config)) as string | null;
  if (typeof activeUrl !== 'string') return null;
  const browser = await connectChrome(ctx.env);
  try {
    let target: Page | null = null;
    for (const context of browser.contexts()) {
      for (const page of context.pages()) {
        try {
          await page.waitForLoadState('networkidle', { timeout: 60_000 });
          if (page.isClosed()) continue;
          if (normalizeUrl(page.url()) === normalizeUrl(activeUrl)) {
            target = page;
            break;
          }
        } catch {
          continue;
        }
      }
      if (target) break;
    }
    if (!target) return {};
    const page = target;
    const out: Record<string, unknown> = {};
    const obj = (k: string) => (config[k] ?? {}) as Record<string, unknown>;
    const category = config.category;
    if (category === 'class') {
      for (const [cls, order] of Object.entries(obj('class_multiObject'))) {
        const found = await texts(page, `.${cls}`);
        for (const [idx, key] of Object.entries(order as Record<string, string>)) out[key] = found[Number(idx)] ?? '';
      }
      for (const [cls, order] of Object.entries(obj('class_multiObject_child'))) {
        // direct text nodes of the first matching element
        let found: string[] = [];
        try {
          found = await page.$$eval(`.${cls}`, (els) =>
            els.length ? Array.from(els[0]!.childNodes as ArrayLike<{ nodeType: number; textContent: string | null }>).filter((n) => n.nodeType === 3).map((n) => (n.textContent ?? '').trim()).filter(Boolean) : [],
          );
        } catch {
          found = [];
        }
        for (const [idx, key] of Object.entries(order as Record<string, string>)) out[key] = found[Number(idx)] ?? '';
      }
      for (const [cls, order] of Object.entries(obj('class_multiObject_only_child'))) {
        let found: string[] = [];
        try {
          found = await page.$$eval(`.${cls}`, (els) => els.map((e) => e.querySelector('h3')).filter((h) => h !== null).map((h) => (h!.textContent ?? '').trim()));
        } catch {
          found = [];
        }
        for (const [idx, key] of Object.entries(order as Record<string, string>)) out[key] = found[Number(idx)] ?? '';
      }
      for (const [cls, list] of Object.entries(obj('class_multiObject_search_exist'))) {
        const found = await texts(page, `.${cls}`);
        const wanted = list as string[];
        for (const w of wanted) if (w !== 'is_other_exist') out[w] = found.includes(w);
        if (wanted.includes('is_other_exist')) out.is_other_exist = found.some((f) => !wanted.includes(f));
      }
      for (const [cls, key] of Object.entries(obj('class_singleObject'))) out[key as string] = (await texts(page, `.${cls}`))[0] ?? '';
    } else if (category === 'label') {
      for (const [label, key] of Object.entries(obj('labelObject'))) {
        try {
          out[key as string] = ((await page.locator(`text=${label}`).first().textContent({ timeout: 30_000 })) ?? '').trim();
        } catch {
          out[key as string] = '';
        }
      }
    } else if (category === 'xpath') {
      for (const [xpath, key] of Object.entries(obj('xpathObject'))) {
        try {
          let loc = page.locator(`xpath=${xpath}`);
          if ((await loc.count()) === 0) loc = page.locator(xpath);
          out[key as string] = (await loc.count()) > 0 ? ((await loc.first().textContent({ timeout: 30_000 })) ?? '').trim() : '';
        } catch {
          out[key as string] = '';
        }
      }
    } else if (category === 'input') {
      for (const [xpath, key] of Object.entries(obj('inputObject'))) {
        try {
          const loc = page.locator(`xpath=${xpath}`);
          out[key as string] = (await loc.count()) > 0 ? (await loc.first().inputValue({ timeout: 30_000 })).trim() : '';
        } catch {
          out[key as string] = '';
        }
      }
    } else if (category === 'class&url') {
      const presence = (found: string[], wanted: string[]) => {
        for (const w of wanted) if (found.some((f) => f.toLowerCase() === w.toLowerCase())) out[w.toLowerCase()] = true;
        if (found.some((f) => wanted.every((w) => !w.toLowerCase().includes(f.toLowerCase())))) out.is_other_exist = true;
        if (!('is_other_exist' in out)) out.is_other_exist = false;
      };
      for (const [cls, wanted] of Object.entries(obj('class_multiObject'))) presence(await texts(page, `.${cls}`), wanted as string[]);
      for (const [cls, wanted] of Object.entries(obj('class_multiObject_li'))) {
        let found: string[] = [];
        try {
          found = await page.$$eval(`.${cls} li.catAllProducts`, (els) => els.map((e) => e.querySelector('span')).filter((s) => s !== null).map((s) => (s as unknown as { innerText: string }).innerText.trim()));
        } catch {
          found = [];
        }
        presence(found, wanted as string[]);
      }
      const url = page.url().toLowerCase();
      for (const key of (config.url_include_expected as string[] | undefined) ?? []) if (!(key.toLowerCase() in out)) out[key.toLowerCase()] = url.includes(key.toLowerCase());
      for (const [key, value] of Object.entries(obj('url_include_expected_multichoice'))) {
        const v = String(value).toLowerCase();
        if (!(v in out)) out[v] = url.includes(key.toLowerCase());
      }
    }
    return out;
  } finally {
    await browser.close();
  }
};

/** OSWorld's get_page_info: open config.url in a new tab, {title, url, content}. */
export const pageInfo: Getter = async (ctx, config) => {
  const url = String(config.url);
  for (let attempt = 0; attempt < 2; attempt++) {
    const browser = await connectChrome(ctx.env).catch(() => null);
    if (!browser) continue;
    try {
      const context = browser.contexts()[0] ?? (await browser.newContext());
      const page = await context.newPage();
      page.setDefaultTimeout(60_000);
      await page.goto(url, { waitUntil: 'networkidle', timeout: 60_000 });
      let info: { title: string; url: string; content: string };
      try {
        await page.waitForLoadState('networkidle', { timeout: 60_000 });
        info = { title: await page.title(), url: page.url(), content: await page.content() };
      } catch (err) {
        info = { title: err instanceof Error && err.name === 'TimeoutError' ? 'Load timeout' : 'Error encountered', url: page.url(), content: await page.content() };
      }
      await page.close().catch(() => undefined);
      return info;
    } catch {
      /* retried, then "Connection failed" */
    } finally {
      await browser.close();
    }
  }
  return { title: 'Connection failed', url, content: '' };
};

const fail = (k: string): never => {
  throw new Error(`no ${k}`);
};
/** Every installed extension's path (Preferences extensions.settings.*.path); "Google" when unreadable, as OSWorld. */
export const findUnpackedExtensionPath = pref((p) => Object.values((dig(p, 'extensions', 'settings') ?? {}) as Record<string, { path: string }>).map((e) => e.path ?? fail('path')), 'Google');
/** Every installed extension's manifest name. */
export const findInstalledExtensionName = pref((p) => Object.values((dig(p, 'extensions', 'settings') ?? {}) as Record<string, { manifest: { name: string } }>).map((e) => e.manifest.name ?? fail('name')), 'Google');

/** `Local State` browser.enabled_labs_experiments ([] when unreadable). */
export const enabledExperiments: Getter = async (ctx) => {
  const data = await ctx.env.client.getFile(await homePath(ctx, '.config/google-chrome/Local State'));
  if (!data) return [];
  try {
    return (dig(JSON.parse(data.toString('utf8')), 'browser', 'enabled_labs_experiments') as unknown[] | undefined) ?? [];
  } catch {
    return [];
  }
};

/** Rows of a query on a SQLite file of the profile (fetched to workDir), as OSWorld's fetchall(); null on error. */
async function profileSqlite(ctx: EvalContext, file: string, dest: string, sql: string): Promise<unknown[][] | null> {
  const data = await ctx.env.client.getFile(await homePath(ctx, `${PROFILE}/${file}`));
  if (!data) return null;
  fs.mkdirSync(ctx.workDir, { recursive: true });
  const p = path.join(ctx.workDir, path.basename(dest));
  fs.writeFileSync(p, data);
  try {
    const out = execFileSync('sqlite3', ['-json', `file:${p}?immutable=1`, sql], { encoding: 'utf8', maxBuffer: 256 << 20 });
    const rows = out.trim() ? (JSON.parse(out) as Record<string, unknown>[]) : [];
    return rows.map((r) => Object.values(r));
  } catch {
    return null;
  }
}

/** The profile's Cookies rows (SELECT * FROM cookies; column 1 is host_key). */
export const cookieData: Getter = async (ctx, config) => profileSqlite(ctx, 'Cookies', String(config.dest ?? 'Cookies'), 'SELECT * FROM cookies');
/** The profile's History rows (url, title, last_visit_time). */
export const history: Getter = async (ctx, config) => profileSqlite(ctx, 'History', String(config.dest ?? 'History'), 'SELECT url, title, last_visit_time FROM urls');

/** The .desktop files on the desktop: { name: content }. */
export const shortcutsOnDesktop: Getter = async (ctx) => {
  const desktop = await ctx.env.client.desktopPath();
  const tree = (await ctx.env.client.listDirectory(desktop)) as { children?: { name: string }[] };
  const out: Record<string, string> = {};
  for (const c of tree.children ?? []) {
    if (!c.name.endsWith('.desktop')) continue;
    const data = await ctx.env.client.getFile(await homePath(ctx, `Desktop/${c.name}`));
    if (data) out[c.name] = data.toString('utf8');
  }
  return out;
};
