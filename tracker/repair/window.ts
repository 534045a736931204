// Which repair budget is in force: the maintenance window ('HH:MM-HH:MM', tracker host local
// time, may wrap past midnight) gets the high budget, every other minute the business-hours one
// (DESIGN.md "Health": venues are quiet in the morning). Pure: the caller passes the time.

export type BudgetWindow = 'business' | 'maintenance';

export interface WindowSpec {
  /** Minutes after local midnight, start inclusive, end exclusive. */
  startMin: number;
  endMin: number;
}

const WINDOW_RE = /^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$/;

/**
 * '' → no window (always business hours). 'HH:MM-HH:MM' with start = end is also no window: an
 * empty interval, not a whole day (a whole day is '00:00-23:59', explicit). Throws on anything
 * else; config/schema.ts already refuses such text, so a throw here is a bug.
 */
export function parseWindow(text: string): WindowSpec | undefined {
  if (text === '') return undefined;
  const m = WINDOW_RE.exec(text);
  if (!m) throw new Error(`maintenance window "${text}": expected 'HH:MM-HH:MM' or ''`);
  const startMin = Number(m[1]) * 60 + Number(m[2]);
  const endMin = Number(m[3]) * 60 + Number(m[4]);
  return startMin === endMin ? undefined : { startMin, endMin };
}

/** Minute of the local day (0-1439) of `date`. */
export function localMinuteOfDay(date: Date): number {
  return date.getHours() * 60 + date.getMinutes();
}

export function inWindow(spec: WindowSpec | undefined, minuteOfDay: number): boolean {
  if (!spec) return false;
  if (spec.startMin < spec.endMin) return minuteOfDay >= spec.startMin && minuteOfDay < spec.endMin;
  // Wraps midnight: 22:00-06:00 is [22:00, 24:00) ∪ [00:00, 06:00).
  return minuteOfDay >= spec.startMin || minuteOfDay < spec.endMin;
}

export function budgetWindow(windowText: string, date: Date): BudgetWindow {
  return inWindow(parseWindow(windowText), localMinuteOfDay(date)) ? 'maintenance' : 'business';
}
