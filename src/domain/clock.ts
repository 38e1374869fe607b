/** The one source of time. Nothing else calls Date.now(), so expiry and retry schedules are testable. */
export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** Formats a date as 'yyyy-MM-dd HH:mm:ss' in Asia/Shanghai (UTC+8), as the spec's interfaces expect. */
export function formatShanghai(date: Date): string {
  const local = new Date(date.getTime() + 8 * 3600 * 1000);
  const p = (n: number) => n.toString().padStart(2, '0');
  return (
    `${local.getUTCFullYear()}-${p(local.getUTCMonth() + 1)}-${p(local.getUTCDate())} ` +
    `${p(local.getUTCHours())}:${p(local.getUTCMinutes())}:${p(local.getUTCSeconds())}`
  );
}

/** A date 'yyyy-MM-dd' that exists in the calendar (business dates of reconciliation and reports). */
export function isCalendarDate(text: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return false;
  const d = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === text;
}

/** 'yyyyMMddHHmmss' in Asia/Shanghai, for trade numbers. */
export function compactShanghai(date: Date): string {
  return formatShanghai(date).replace(/[-: ]/g, '');
}
