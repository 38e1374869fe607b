/**
 * TimeoutExpress (spec 5.5): 1m–15d; m minutes, h hours, d days; "1c" = today (closes at the next midnight,
 * Asia/Shanghai, whenever the trade was created). No decimals ("1.5h" must be written "90m").
 */
const PATTERN = /^([1-9][0-9]{0,5})([mhd])$/;
const MAX_MINUTES = 15 * 24 * 60;
const SHANGHAI_OFFSET_MS = 8 * 3600 * 1000;

export function parseTimeoutExpress(text: string, now: Date): Date | null {
  if (text === '1c') {
    // Next midnight in Asia/Shanghai (UTC+8, no daylight saving).
    const local = now.getTime() + SHANGHAI_OFFSET_MS;
    const nextMidnightLocal = (Math.floor(local / 86_400_000) + 1) * 86_400_000;
    return new Date(nextMidnightLocal - SHANGHAI_OFFSET_MS);
  }
  const m = PATTERN.exec(text);
  if (!m) return null;
  const n = Number(m[1]);
  const minutes = m[2] === 'm' ? n : m[2] === 'h' ? n * 60 : n * 1440;
  if (minutes < 1 || minutes > MAX_MINUTES) return null;
  return new Date(now.getTime() + minutes * 60_000);
}
