/**
 * Flag spelling shared by the light CLIs (pass-at-n, compare-runs, run-multienv report): OSWorld's
 * flags use underscores; both spellings work by normalising to dashes. Its own module so that these
 * CLIs do not load the whole harness (envs, agents, eval) just to read a result folder.
 */
export function normaliseArgv(argv: string[]): string[] {
  return argv.map((a) => {
    if (!a.startsWith('--')) return a;
    const eq = a.indexOf('=');
    const name = eq < 0 ? a : a.slice(0, eq);
    return name.replace(/_/g, '-') + (eq < 0 ? '' : a.slice(eq));
  });
}

/** The longest delay setTimeout keeps (ms); a longer one fires at once (TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

interface Range {
  /** inclusive lower bound */
  min?: number;
  /** exclusive lower bound */
  above?: number;
  /** inclusive upper bound */
  max?: number;
}

const rangeText = (r: Range): string =>
  [r.above !== undefined ? `> ${r.above}` : r.min !== undefined ? `>= ${r.min}` : '', r.max !== undefined ? `<= ${r.max}` : ''].filter(Boolean).join(' and ');

const inRange = (n: number, r: Range): boolean =>
  (r.min === undefined || n >= r.min) && (r.above === undefined || n > r.above) && (r.max === undefined || n <= r.max);

/**
 * Option parsers for commander: the flag's value, or an Error with one line naming the flag, the
 * range and the value given (the CLIs print it as `<cli>: <message>` and exit 1). The one place a
 * numeric flag's range is checked.
 */
export const numberFlag = (name: string, r: Range = {}) => (v: string): number => {
  const n = v.trim() === '' ? Number.NaN : Number(v);
  const text = rangeText(r);
  if (!Number.isFinite(n) || !inRange(n, r)) throw new Error(`${name} must be a number${text ? ` ${text}` : ''} (got "${v}")`);
  return n;
};

export const intFlag = (name: string, min: number, max?: number) => (v: string): number => {
  const n = v.trim() === '' ? Number.NaN : Number(v);
  const r: Range = { min, ...(max !== undefined ? { max } : {}) };
  if (!Number.isInteger(n) || !inRange(n, r)) throw new Error(`${name} must be an integer ${rangeText(r)} (got "${v}")`);
  return n;
};

/** Seconds that become a timer: at most MAX_TIMER_MS / 1000 (about 24.8 days). */
export const secondsFlag = (name: string, r: Omit<Range, 'max'>) => (v: string): number => {
  const range: Range = { ...r, max: Math.floor(MAX_TIMER_MS / 1000) };
  const n = v.trim() === '' ? Number.NaN : Number(v);
  if (!Number.isFinite(n) || !inRange(n, range)) throw new Error(`${name} must be a number of seconds ${rangeText(range)} (got "${v}")`);
  return n;
};

/** A flag that names one folder of the result path: not empty, not "." / "..", no separator. */
export const pathComponentFlag = (name: string) => (v: string): string => {
  if (v === '' || v === '.' || v === '..' || /[/\\\0]/.test(v)) throw new Error(`${name} must be one folder name (not empty, ".", ".." or containing / or \\) (got ${JSON.stringify(v)})`);
  return v;
};
