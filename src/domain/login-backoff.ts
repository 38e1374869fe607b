import { isIPv4, isIPv6 } from 'node:net';

/**
 * The finance login's back-off policy (docs/reconciliation.md, "Logging in"): pure numbers and times.
 *
 * Three counts, each forgotten an hour after its last failure:
 * - per source address (in memory, per instance): 5 failures free, then each further attempt waits 1 s, 2 s,
 *   4 s … (at most 15 minutes) after the previous one, whatever the username;
 * - per username and source address (database): 5 failures free, then 1, 2, 4, 8, 15 minutes;
 * - per username, all sources together (database): 10 failures free, then 1, 2, 4, 8, 15 minutes, but only
 *   for sources the account has not logged in from in the last 90 days (a known source is not slowed down
 *   by failures elsewhere).
 * Nothing locks an account: an attacker slows down only his own sources, and new sources of the account.
 */
export interface Backoff {
  /** Failures before any waiting. */
  free: number;
  /** The wait after the `free`-th failure; doubled for each further one. */
  baseMs: number;
  capMs: number;
}

export const LOGIN_BACKOFF = {
  address: { free: 5, baseMs: 1000, capMs: 15 * 60_000 },
  source: { free: 5, baseMs: 60_000, capMs: 15 * 60_000 },
  account: { free: 10, baseMs: 60_000, capMs: 15 * 60_000 },
  /** A count is forgotten this long after its last failure. */
  forgetMs: 3_600_000,
  /** A source the account logged in from is known for this long. */
  knownSourceMs: 90 * 86_400_000,
  /** Retry-After when the password hashing queue is full. */
  busyRetryS: 1,
} as const satisfies Record<string, Backoff | number>;

/** How long the next attempt waits after `failures` failures (0 while they are free). */
export function backoffDelayMs(b: Backoff, failures: number): number {
  if (failures < b.free) return 0;
  const doublings = Math.min(failures - b.free, 30);
  return Math.min(b.capMs, b.baseMs * 2 ** doublings);
}

/** The failures that still count at `now` (none an hour after the last one). */
export function liveFailures(failures: number, lastFailureAt: Date | null, now: Date): number {
  if (!lastFailureAt || now.getTime() - lastFailureAt.getTime() >= LOGIN_BACKOFF.forgetMs) return 0;
  return failures;
}

/**
 * Milliseconds until the next attempt may go (0: now). `lastAttemptAt` is the last failure or the last attempt
 * let through while backing off.
 */
export function waitMs(
  b: Backoff,
  row: { failures: number; lastFailureAt: Date | null; lastAttemptAt: Date | null },
  now: Date,
): number {
  const n = liveFailures(row.failures, row.lastFailureAt, now);
  const from = row.lastAttemptAt ?? row.lastFailureAt;
  if (n < b.free || !from) return 0;
  return Math.max(0, from.getTime() + backoffDelayMs(b, n) - now.getTime());
}

/** Whether an attempt now is in the back-off regime (it must claim its turn). */
export function backingOff(
  b: Backoff,
  row: { failures: number; lastFailureAt: Date | null },
  now: Date,
): boolean {
  return liveFailures(row.failures, row.lastFailureAt, now) >= b.free;
}

/**
 * The source an attempt is counted under: an IPv4 address (also when written IPv4-mapped), an IPv6 address's
 * /64 (one subscriber usually has a whole /64), else the text itself (cut to 64 characters).
 */
export function loginSource(ip: string): string {
  let a = ip.trim().toLowerCase();
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  if (a.startsWith('::ffff:') && isIPv4(a.slice(7))) return a.slice(7);
  if (isIPv4(a)) return a;
  if (isIPv6(a)) {
    // An embedded IPv4 tail is two groups; only the first four groups are kept anyway.
    const groups = (part: string) =>
      part === '' ? [] : part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g]));
    const [head = '', tail] = a.split('::');
    const h = groups(head);
    const t = tail === undefined ? [] : groups(tail);
    const full =
      tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
    const prefix = full.slice(0, 4).map((g) => parseInt(g || '0', 16).toString(16));
    return `${prefix.join(':')}::/64`;
  }
  return a.slice(0, 64) || 'unknown';
}
