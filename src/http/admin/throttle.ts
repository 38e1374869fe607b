import type { Clock } from '../../domain/clock.js';

export interface ThrottleOptions {
  /** Failures allowed from one address before it must wait. */
  free?: number;
  /** The first wait; each further failure doubles it. */
  baseMs?: number;
  maxMs?: number;
  /** An address's failures are forgotten this long after its last one. */
  forgetMs?: number;
  /** At most this many addresses are remembered (the oldest are dropped first). */
  maxAddresses?: number;
}

interface Entry {
  failures: number;
  last: number;
  blockedUntil: number;
}

/**
 * Failed admin tokens per source address (the request's address, or X-Forwarded-For from a trusted proxy):
 * after `free` failures the address gets 429 with Retry-After for `baseMs`; each further failure (once the wait
 * is over) doubles the wait, up to `maxMs`; while it waits, even a correct token is refused from it (so waiting cannot be skipped by
 * guessing). A correct token clears the address; other addresses are unaffected. Kept in memory, per instance.
 */
export class FailureThrottle {
  private readonly entries = new Map<string, Entry>();
  private readonly free: number;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly forgetMs: number;
  private readonly maxAddresses: number;

  constructor(
    private readonly clock: Clock,
    opts: ThrottleOptions = {},
  ) {
    this.free = opts.free ?? 5;
    this.baseMs = opts.baseMs ?? 1_000;
    this.maxMs = opts.maxMs ?? 15 * 60_000;
    this.forgetMs = opts.forgetMs ?? 60 * 60_000;
    this.maxAddresses = opts.maxAddresses ?? 10_000;
  }

  /** Milliseconds the address must still wait (0: it may try). */
  waitFor(address: string): number {
    const e = this.entries.get(address);
    if (!e) return 0;
    const now = this.clock.now().getTime();
    if (now - e.last > this.forgetMs) {
      this.entries.delete(address);
      return 0;
    }
    return Math.max(0, e.blockedUntil - now);
  }

  failed(address: string): void {
    const now = this.clock.now().getTime();
    let e = this.entries.get(address);
    if (e && now - e.last > this.forgetMs) e = undefined;
    const failures = (e?.failures ?? 0) + 1;
    const over = failures - this.free + 1;
    const blockedUntil = over > 0 ? now + Math.min(this.baseMs * 2 ** Math.min(over - 1, 30), this.maxMs) : 0;
    this.entries.delete(address); // re-inserted last: the Map's order is the eviction order
    this.entries.set(address, { failures, last: now, blockedUntil });
    while (this.entries.size > this.maxAddresses) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  succeeded(address: string): void {
    this.entries.delete(address);
  }
}
