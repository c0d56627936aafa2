/** OSWorld's `_match_value_to_rule` (metrics/utils.py): {method, ref} checks used by table/slide rules. */
export interface ValueRule {
  method: string;
  ref: unknown;
}

type Cmp = (a: unknown, b: unknown) => boolean;
const lt: Cmp = (a, b) => (a as number) < (b as number);
const le: Cmp = (a, b) => (a as number) <= (b as number);
const gt: Cmp = (a, b) => (a as number) > (b as number);
const ge: Cmp = (a, b) => (a as number) >= (b as number);
const OPS: Record<string, Cmp> = { lt, le, gt, ge, eq: (a, b) => looseEqual(a, b), ne: (a, b) => !looseEqual(a, b) };
const RANGE: Record<string, Cmp> = { t: lt, e: le };

/** Python's == for JSON-like values (1 == 1.0, lists and dicts compared deeply). */
export function looseEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => looseEqual(x, (b as unknown[])[i]));
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => looseEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** A1-style ranges ("A1:B3 D4") to [c1, r1, c2, r2] boxes. */
export function parseRanges(spec: string): [number, number, number, number][] {
  const col = (s: string) => [...s.toUpperCase()].reduce((n, ch) => n * 26 + ch.charCodeAt(0) - 64, 0);
  return spec
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((part) => {
      const [a, b] = part.replace(/\$/g, '').split(':') as [string, string | undefined];
      const m1 = /^([A-Za-z]+)(\d+)$/.exec(a);
      const m2 = /^([A-Za-z]+)(\d+)$/.exec(b ?? a);
      if (!m1 || !m2) throw new Error(`bad range ${part}`);
      return [col(m1[1]!), Number(m1[2]), col(m2[1]!), Number(m2[2])] as [number, number, number, number];
    });
}

function rangesContainedBy(sub: string, sup: string): boolean {
  const outer = parseRanges(sup);
  return parseRanges(sub).every(([c1, r1, c2, r2]) => outer.some(([C1, R1, C2, R2]) => c1 >= C1 && r1 >= R1 && c2 <= C2 && r2 <= R2));
}

const pyRegexFlags = (flags: string[]): string =>
  flags.map((f) => ({ I: 'i', IGNORECASE: 'i', M: 'm', MULTILINE: 'm', S: 's', DOTALL: 's' })[f] ?? '').join('');

export function matchValueToRule(value: unknown, rule: ValueRule): boolean {
  const m = rule.method;
  if (m.startsWith('re')) {
    if (typeof value !== 'string') return false;
    return new RegExp(String(rule.ref), pyRegexFlags(m.split('.').slice(1))).test(value);
  }
  const op = OPS[m];
  if (op) return op(value, rule.ref);
  if (m.startsWith('approx')) {
    const threshold = Number(m.split(':')[1]);
    const v = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
    return Number.isFinite(v) && Math.abs(v - Number(rule.ref)) <= threshold;
  }
  if (m === 'spreadsheet_range') {
    const [sub, sup] = rule.ref as [string, string];
    return typeof value === 'string' && rangesContainedBy(sub, value) && rangesContainedBy(value, sup);
  }
  if (m.startsWith('range.')) {
    const [lo, hi] = rule.ref as [number, number];
    const l = RANGE[m[6]!];
    const r = RANGE[m[7]!];
    return !!l && !!r && l(lo, value) && r(value, hi);
  }
  if (m === 'str_list_eq' || m === 'str_set_eq') {
    // OSWorld: a formula like '"Pass,Fail,Held"' split on commas, compared as list / set.
    const items = String(value ?? '').replace(/^["']+|["']+$/g, '').split(',');
    const ref = rule.ref as string[];
    if (m === 'str_list_eq') return looseEqual(items, ref);
    const a = new Set(items);
    const b = new Set(ref);
    return a.size === b.size && [...a].every((x) => b.has(x));
  }
  throw new Error(`unsupported rule method ${m}`);
}
