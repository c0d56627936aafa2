/**
 * OSWorld's get_rule_relativeTime (getters/misc.py): the task's expected dates are written
 * relative to today ("tomorrow", "next Monday", "5th next month", ...); the getter fills the
 * templates ({DoW}, {Month}, {DayD}, {Year}, {Month0D}, {month}, {MonthFull}, {Day0D}, {MonthD})
 * with the absolute date. "Today" is the env's local date, or the date in rules.timezone.
 */
import { InfrastructureError } from '../../env/setup/errors.ts';
import type { EvalContext, Getter } from '../types.ts';

/** A calendar day; weekday 0 = Monday (Python's weekday()). */
export class Day {
  constructor(
    readonly year: number,
    readonly month: number,
    readonly day: number,
  ) {
    const d = new Date(Date.UTC(year, month - 1, day));
    if (month < 1 || month > 12 || d.getUTCDate() !== day) throw new Error(`invalid date ${year}-${month}-${day}`); // Python's datetime() ValueError
  }
  get weekday(): number {
    return (new Date(Date.UTC(this.year, this.month - 1, this.day)).getUTCDay() + 6) % 7;
  }
  plus(days: number): Day {
    const d = new Date(Date.UTC(this.year, this.month - 1, this.day + days));
    return new Day(d.getUTCFullYear(), d.getUTCMonth() + 1, d.getUTCDate());
  }
}

const DOW = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH_FULL = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const pad = (n: number) => (n < 10 ? `0${n}` : String(n));

/** apply_rules_to_timeFormat: each placeholder replaced once, in OSWorld's order. */
export function applyTimeFormat(format: string, d: Day): string {
  return format
    .replace('{DoW}', DOW[d.weekday]!)
    .replace('{Month}', MON[d.month - 1]!)
    .replace('{DayD}', String(d.day))
    .replace('{Year}', String(d.year))
    .replace('{Month0D}', pad(d.month))
    .replace('{month}', MONTH_FULL[d.month - 1]!.toLowerCase())
    .replace('{MonthFull}', MONTH_FULL[d.month - 1]!)
    .replace('{Day0D}', pad(d.day))
    .replace('{MonthD}', String(d.month));
}

const nthNextMonth = (now: Day, n: number) => (now.month === 12 ? new Day(now.year + 1, 1, n) : new Day(now.year, now.month + 1, n));
function firstMondayLater(now: Day, months: number, yearFrom: number): Day {
  // OSWorld: next_month = (month + k) % 12 (December gives month 0, which Python rejects too)
  const t = new Day(now.month >= yearFrom ? now.year + 1 : now.year, (now.month + months) % 12, 1);
  return t.plus((6 - t.weekday + 1) % 7);
}

/** The single date of relativeTime.from (no "to"). */
function single(rel: string, now: Day): Day {
  switch (rel) {
    case 'tomorrow':
      return now.plus(1);
    case '5th next month':
      return nthNextMonth(now, 5);
    case '10th next month':
      return nthNextMonth(now, 10);
    case 'this month':
      return now;
    case 'next Monday':
      return now.plus(6 - now.weekday + 1);
    case 'first monday four months later':
      return firstMondayLater(now, 4, 9);
    case 'first monday eight months later':
      return firstMondayLater(now, 8, 5);
  }
  throw new Error(`relative time "${rel}" has no single-date rule`);
}

function from(rel: string, now: Day): Day {
  const w = now.weekday;
  switch (rel) {
    case 'tomorrow':
      return now.plus(1);
    case 'this Saturday':
      return now.plus(5 - w);
    case '10th next month':
      return nthNextMonth(now, 10);
    case 'next Monday':
    case 'next Monday split':
      return now.plus(6 - w + 1);
    case 'next Friday':
      return now.plus(w < 4 ? 4 - w : w === 4 ? 7 : 7 - w + 4);
    case 'next Saturday':
      return now.plus(w < 5 ? 5 - w : w === 5 ? 7 : 6);
    case 'next week Friday':
      return now.plus(7 - w + 4);
    case 'next week Saturday':
      return now.plus(7 - w + 5);
    case 'next week Sunday':
      return now.plus(7 - w + 6);
  }
  throw new Error(`relative time "${rel}" has no "from" rule`);
}

function to(rel: string, fromRel: string, fromDay: Day, now: Day): Day {
  const w = now.weekday;
  switch (rel) {
    case 'tomorrow':
      return now.plus(1);
    case 'this Sunday':
      return now.plus(6 - w);
    case '11th next month':
      return nthNextMonth(now, 11);
    case 'next Friday':
    case 'next Friday split':
      if (fromRel === 'next Monday' || fromRel === 'next Monday split') return fromDay.plus(4);
      return now.plus(w < 4 ? 4 - w : 6 - w + 5);
    case 'next Sunday':
      if (fromRel === 'next Friday' || fromRel === 'next Saturday') return fromDay.plus(6 - fromDay.weekday);
      return now.plus(w < 6 ? 6 - w : 7);
    case 'next week Sunday':
      if (fromRel === 'next week Friday' || fromRel === 'next week Saturday') return fromDay.plus(6 - fromDay.weekday);
      return now.plus(7 - w + 6);
  }
  throw new Error(`relative time "${rel}" has no "to" rule`);
}

/** Fills rules.expected for today's date (pure: the getter passes the env's date). */
export function resolveRelativeTime(rules: Record<string, unknown>, now: Day): Record<string, unknown> {
  const rel = rules.relativeTime as { from: string; to?: string };
  const expected = { ...(rules.expected as Record<string, unknown>) };
  const fmt = (v: unknown, d: Day) => applyTimeFormat(String(v), d);
  if (rel.to === undefined) {
    const d = single(rel.from, now);
    const t = expected.time;
    expected.time = Array.isArray(t) ? t.map((x) => fmt(x, d)) : fmt(t, d);
  } else {
    const f = from(rel.from, now);
    if (rel.from === 'next Monday split') for (const k of ['puDay', 'puMonth', 'puYear']) expected[k] = fmt(expected[k], f);
    else expected.from = fmt(expected.from, f);
    const e = to(rel.to, rel.from, f, now);
    if (rel.to === 'next Friday split') for (const k of ['doDay', 'doMonth', 'doYear']) expected[k] = fmt(expected[k], e);
    else expected.to = fmt(expected.to, e);
  }
  return { ...rules, expected };
}

/** Today in an IANA time zone (host clock). */
export function todayIn(timeZone: string): Day {
  let tz = timeZone;
  try {
    new Intl.DateTimeFormat('en-CA', { timeZone: tz });
  } catch {
    tz = 'UTC'; // OSWorld: unknown time zone -> UTC
  }
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).formatToParts(new Date());
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value);
  return new Day(get('year'), get('month'), get('day'));
}

async function envToday(ctx: EvalContext): Promise<Day | null> {
  const r = await ctx.env.client.execute(['date', '+%Y-%m-%d']).catch(() => null);
  const m = r && r.status === 'success' ? /^(\d{4})-(\d{2})-(\d{2})/.exec(r.output.trim()) : null;
  return m ? new Day(Number(m[1]), Number(m[2]), Number(m[3])) : null;
}

export const ruleRelativeTime: Getter = async (ctx, config) => {
  const rules = config.rules as Record<string, unknown>;
  const tz = rules.timezone as string | undefined;
  // OSWorld falls back to the host's IP time zone when the VM's date cannot be read; UTC here.
  const now = tz ? todayIn(tz) : ((await envToday(ctx)) ?? todayIn('UTC'));
  if (!now) throw new InfrastructureError('cannot read the date');
  return resolveRelativeTime(rules, now);
};

/** OSWorld's get_time_diff_range: the option as written (null when absent). */
export const timeDiffRange: Getter = async (_ctx, config) => config.diff_range_in_minutes ?? null;
