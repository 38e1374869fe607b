import type { Logger } from 'pino';
import type { Clock } from '../domain/clock.js';
import { HashBusyError } from '../crypto/hash-gate.js';
import {
  LOGIN_BACKOFF,
  backingOff,
  backoffDelayMs,
  liveFailures,
  loginSource,
  waitMs,
} from '../domain/login-backoff.js';
import type { LoginAttemptRepository } from '../store/login-attempts.js';
import type { OperatorRepository } from '../store/operators.js';

/**
 * A finance login attempt (the /finance/login form), in this order, each step before any hashing:
 * 1. the source address's own back-off (in memory: cheap, so a flood never reaches the database);
 * 2. the username-and-source back-off, and, for a source the account has not logged in from, the account's
 *    back-off (database: shared by the instances, kept across restarts);
 * 3. one scrypt through the process's hash gate (a known source in its own, first-served lane);
 * 4. the outcome counted.
 * Every refused credential (unknown user, wrong password, disabled account) is `refused`; every throttled
 * attempt is `wait`, for a reason that depends only on the attempts made, never on the account.
 */
export type LoginOutcome =
  | { kind: 'ok'; username: string; displayName: string }
  | { kind: 'refused'; reason: 'unknown' | 'invalid' | 'disabled' }
  | { kind: 'wait'; retryAfterS: number; reason: 'address' | 'source' | 'account' | 'busy' };

interface AddressState {
  failures: number;
  lastFailureAt: Date | null;
  lastAttemptAt: Date | null;
  inFlight: number;
}

/** Per-source-address counts of one instance (forgotten an hour after the last failure; bounded in size). */
export class AddressBackoff {
  private readonly map = new Map<string, AddressState>();
  private lastSweep = 0;

  constructor(private readonly maxEntries = 100_000) {}

  /**
   * Starts an attempt from `source`, or says how long it must wait. Attempts under way count as failures to
   * be, so a burst from one address gets its few free tries and then one at a time.
   */
  begin(source: string, now: Date): { waitMs: number } {
    const s = this.map.get(source) ?? { failures: 0, lastFailureAt: null, lastAttemptAt: null, inFlight: 0 };
    const failures = liveFailures(s.failures, s.lastFailureAt, now);
    if (failures === 0) {
      s.failures = 0;
      s.lastFailureAt = null;
      s.lastAttemptAt = null;
    }
    const b = LOGIN_BACKOFF.address;
    if (failures + s.inFlight >= b.free) {
      const from = s.lastAttemptAt ?? s.lastFailureAt;
      const wait = from ? from.getTime() + backoffDelayMs(b, Math.max(failures, b.free)) - now.getTime() : 0;
      if (wait > 0) return { waitMs: wait };
      s.lastAttemptAt = now;
    }
    s.inFlight++;
    this.map.set(source, s);
    this.sweep(now);
    return { waitMs: 0 };
  }

  /** Ends an attempt begun with begin(), counting a failure or not. */
  end(source: string, failed: boolean, now: Date): void {
    const s = this.map.get(source);
    if (!s) return;
    s.inFlight = Math.max(0, s.inFlight - 1);
    if (failed) {
      s.failures = liveFailures(s.failures, s.lastFailureAt, now) + 1;
      s.lastFailureAt = now;
      s.lastAttemptAt = now;
    }
    if (s.inFlight === 0 && liveFailures(s.failures, s.lastFailureAt, now) === 0) this.map.delete(source);
  }

  get size(): number {
    return this.map.size;
  }

  private sweep(now: Date): void {
    if (this.map.size <= 10_000) return;
    if (this.map.size <= this.maxEntries && now.getTime() - this.lastSweep < 60_000) return;
    this.lastSweep = now.getTime();
    for (const [k, s] of this.map)
      if (s.inFlight === 0 && liveFailures(s.failures, s.lastFailureAt, now) === 0) this.map.delete(k);
    // Still too many (a flood from very many addresses): the oldest entries go first.
    for (const [k, s] of this.map) {
      if (this.map.size <= this.maxEntries) break;
      if (s.inFlight === 0) this.map.delete(k);
    }
  }
}

export class FinanceLogin {
  private readonly operators: OperatorRepository;
  private readonly attempts: LoginAttemptRepository;
  private readonly addresses = new AddressBackoff();
  private lastPurge = 0;

  constructor(
    private readonly deps: {
      operators: OperatorRepository;
      loginAttempts: LoginAttemptRepository;
      clock: Clock;
      log: Logger;
    },
    /** The operators' repository when not deps.operators (kept while http/pages/finance.ts passes its own). */
    operators?: OperatorRepository,
  ) {
    this.operators = operators ?? deps.operators;
    this.attempts = deps.loginAttempts;
  }

  /** One attempt from the address `ip` (the request's, through HOSPAY_TRUST_PROXY). */
  async attempt(username: string, password: string, ip: string): Promise<LoginOutcome> {
    const source = loginSource(ip);
    const now = this.deps.clock.now();
    const wait = (ms: number, reason: 'address' | 'source' | 'account'): LoginOutcome => ({
      kind: 'wait',
      retryAfterS: Math.max(1, Math.ceil(ms / 1000)),
      reason,
    });

    const address = this.addresses.begin(source, now);
    if (address.waitMs > 0) return wait(address.waitMs, 'address');
    let failed = false;
    try {
      const { account, pair } = await this.attempts.read(username, source);
      const known =
        pair.lastSuccessAt !== null &&
        now.getTime() - pair.lastSuccessAt.getTime() < LOGIN_BACKOFF.knownSourceMs;
      const sourceWait = waitMs(LOGIN_BACKOFF.source, pair, now);
      const accountWait = known ? 0 : waitMs(LOGIN_BACKOFF.account, account, now);
      if (sourceWait > 0 || accountWait > 0)
        return wait(Math.max(sourceWait, accountWait), sourceWait >= accountWait ? 'source' : 'account');
      // While backing off, one attempt per wait, across instances: take the turn first.
      if (
        backingOff(LOGIN_BACKOFF.source, pair, now) &&
        !(await this.attempts.claim(username, source, pair.lastAttemptAt, now))
      )
        return wait(backoffDelayMs(LOGIN_BACKOFF.source, pair.failures), 'source');
      if (
        !known &&
        backingOff(LOGIN_BACKOFF.account, account, now) &&
        !(await this.attempts.claim(username, '*', account.lastAttemptAt, now))
      )
        return wait(backoffDelayMs(LOGIN_BACKOFF.account, account.failures), 'account');

      let r;
      try {
        r = await this.operators.verify(username, password, known ? 'trusted' : 'login');
      } catch (e) {
        if (e instanceof HashBusyError)
          return { kind: 'wait', retryAfterS: LOGIN_BACKOFF.busyRetryS, reason: 'busy' };
        throw e;
      }
      const after = this.deps.clock.now();
      if (r.ok) {
        await this.attempts.recordSuccess(username, source, after);
        return { kind: 'ok', username: r.username, displayName: r.displayName };
      }
      failed = true;
      await this.attempts.recordFailure(
        username,
        source,
        after,
        new Date(after.getTime() - LOGIN_BACKOFF.forgetMs),
      );
      await this.purge(after);
      return { kind: 'refused', reason: r.reason };
    } finally {
      this.addresses.end(source, failed, this.deps.clock.now());
    }
  }

  /** Old rows go, at most every 10 minutes per instance. */
  private async purge(now: Date): Promise<void> {
    if (now.getTime() - this.lastPurge < 10 * 60_000) return;
    this.lastPurge = now.getTime();
    try {
      await this.attempts.purge(
        new Date(now.getTime() - LOGIN_BACKOFF.forgetMs),
        new Date(now.getTime() - LOGIN_BACKOFF.knownSourceMs),
      );
    } catch (e) {
      this.deps.log.warn({ err: (e as Error).message }, 'finance login: purging old attempts failed');
    }
  }
}
