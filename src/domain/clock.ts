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

/** 'yyyyMMddHHmmss' in Asia/Shanghai, for trade numbers. */
export function compactShanghai(date: Date): string {
  return formatShanghai(date).replace(/[-: ]/g, '');
}
