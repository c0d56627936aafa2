/**
 * Flag spelling and flag checks shared by the CLIs: OSWorld's flags use underscores; both spellings
 * work by normalising to dashes. Its own module so that the light CLIs (pass-at-n, compare-runs,
 * run-multienv report) do not load the whole harness (envs, agents, eval) just to read a result folder.
 */
import { MAX_TIMER_MS } from '../common/timers.ts';

export function normaliseArgv(argv: string[]): string[] {
  return argv.map((a) => {
    if (!a.startsWith('--')) return a;
    const eq = a.indexOf('=');
    const name = eq < 0 ? a : a.slice(0, eq);
    return name.replace(/_/g, '-') + (eq < 0 ? '' : a.slice(eq));
  });
}

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

/** The flag's value, or an Error with one line naming the flag, what it must be and the value given. */
function checkedNumber(name: string, v: string, r: Range, what: string, integer = false): number {
  const n = v.trim() === '' ? Number.NaN : Number(v);
  if (!(integer ? Number.isInteger(n) : Number.isFinite(n)) || !inRange(n, r)) {
    const text = rangeText(r);
    throw new Error(`${name} must be ${what}${text ? ` ${text}` : ''} (got "${v}")`);
  }
  return n;
}

/**
 * Option parsers for commander (the CLIs print their Error as `<cli>: <message>` and exit 1):
 * the one place a numeric flag's range is checked.
 */
export const numberFlag = (name: string, r: Range = {}) => (v: string): number => checkedNumber(name, v, r, 'a number');

export const intFlag = (name: string, min: number, max?: number) => (v: string): number =>
  checkedNumber(name, v, { min, ...(max !== undefined ? { max } : {}) }, 'an integer', true);

/** Seconds that become a timer: at most MAX_TIMER_MS / 1000 (about 24.8 days). */
export const secondsFlag = (name: string, r: Omit<Range, 'max'>) => (v: string): number =>
  checkedNumber(name, v, { ...r, max: Math.floor(MAX_TIMER_MS / 1000) }, 'a number of seconds');

/** A flag that names one folder of the result path: not empty, not "." / "..", no separator. */
export const pathComponentFlag = (name: string) => (v: string): string => {
  if (v === '' || v === '.' || v === '..' || /[/\\\0]/.test(v)) throw new Error(`${name} must be one folder name (not empty, ".", ".." or containing / or \\) (got ${JSON.stringify(v)})`);
  return v;
};
