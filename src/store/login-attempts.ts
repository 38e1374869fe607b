import { sql } from 'kysely';
import type { Db } from './db.js';

/** The source of the account-wide row: every address together. */
export const ANY_SOURCE = '*';

export interface AttemptRow {
  failures: number;
  lastFailureAt: Date | null;
  lastAttemptAt: Date | null;
  lastSuccessAt: Date | null;
}

const EMPTY: AttemptRow = { failures: 0, lastFailureAt: null, lastAttemptAt: null, lastSuccessAt: null };

/**
 * The finance login's back-off facts in the database (finance_login_attempts): failure counts and times per
 * username (source '*') and per username and source. The policy (how long to wait) is the caller's
 * (services/finance-login.ts); this only counts, and lets one attempt through at a time while backing off.
 */
export class LoginAttemptRepository {
  constructor(private readonly db: Db) {}

  /** The account-wide row and the row of this source (empty when there is none). */
  async read(username: string, source: string): Promise<{ account: AttemptRow; pair: AttemptRow }> {
    const rows = await this.db
      .selectFrom('finance_login_attempts')
      .select(['source', 'failures', 'last_failure_at', 'last_attempt_at', 'last_success_at'])
      .where('username', '=', username)
      .where('source', 'in', [ANY_SOURCE, source])
      .execute();
    const of = (s: string): AttemptRow => {
      const r = rows.find((x) => x.source === s);
      return r
        ? {
            failures: r.failures,
            lastFailureAt: r.last_failure_at,
            lastAttemptAt: r.last_attempt_at,
            lastSuccessAt: r.last_success_at,
          }
        : EMPTY;
    };
    return { account: of(ANY_SOURCE), pair: of(source) };
  }

  /**
   * Lets one attempt through while backing off: moves last_attempt_at from what was read to now, unless another
   * attempt (on any instance) did so first. True when this attempt may go on.
   */
  async claim(username: string, source: string, seen: Date | null, now: Date): Promise<boolean> {
    const r = await this.db
      .updateTable('finance_login_attempts')
      .set({ last_attempt_at: now })
      .where('username', '=', username)
      .where('source', '=', source)
      .where(sql<boolean>`last_attempt_at IS NOT DISTINCT FROM ${seen}::timestamptz`)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) === 1;
  }

  /**
   * Counts a failure on the account-wide row and on this source's row, in one statement (concurrent failures
   * all count). A count whose last failure is older than `forgetBefore` starts again at 1.
   */
  async recordFailure(username: string, source: string, now: Date, forgetBefore: Date): Promise<void> {
    const row = (s: string) => ({
      username,
      source: s,
      failures: 1,
      last_failure_at: now,
      last_attempt_at: now,
    });
    await this.db
      .insertInto('finance_login_attempts')
      .values([row(ANY_SOURCE), row(source)])
      .onConflict((oc) =>
        oc.columns(['username', 'source']).doUpdateSet({
          failures: sql<number>`CASE WHEN finance_login_attempts.last_failure_at IS NULL OR finance_login_attempts.last_failure_at < ${forgetBefore}::timestamptz THEN 1 ELSE finance_login_attempts.failures + 1 END`,
          last_failure_at: now,
          last_attempt_at: now,
        }),
      )
      .execute();
  }

  /** A successful login: this source's count is cleared and the source is known for the account. */
  async recordSuccess(username: string, source: string, now: Date): Promise<void> {
    await this.db
      .insertInto('finance_login_attempts')
      .values({ username, source, failures: 0, last_success_at: now })
      .onConflict((oc) =>
        oc.columns(['username', 'source']).doUpdateSet({
          failures: 0,
          last_failure_at: null,
          last_attempt_at: null,
          last_success_at: now,
        }),
      )
      .execute();
  }

  /** Clears every count of a username (a new password, or the account enabled again); known sources stay. */
  async clear(username: string): Promise<void> {
    await this.db
      .updateTable('finance_login_attempts')
      .set({ failures: 0, last_failure_at: null, last_attempt_at: null })
      .where('username', '=', username)
      .execute();
  }

  /** Forgets rows with no failure since `forgetBefore` and no success since `knownAfter`. */
  async purge(forgetBefore: Date, knownAfter: Date): Promise<void> {
    await this.db
      .deleteFrom('finance_login_attempts')
      .where((eb) =>
        eb.and([
          eb.or([eb('last_failure_at', 'is', null), eb('last_failure_at', '<', forgetBefore)]),
          eb.or([eb('last_success_at', 'is', null), eb('last_success_at', '<', knownAfter)]),
        ]),
      )
      .execute();
  }

  /** The account-wide rows of these usernames (for the operator list). */
  async accounts(usernames: readonly string[]): Promise<Map<string, AttemptRow>> {
    if (usernames.length === 0) return new Map();
    const rows = await this.db
      .selectFrom('finance_login_attempts')
      .select(['username', 'failures', 'last_failure_at', 'last_attempt_at', 'last_success_at'])
      .where('source', '=', ANY_SOURCE)
      .where('username', 'in', [...new Set(usernames)])
      .execute();
    return new Map(
      rows.map((r) => [
        r.username,
        {
          failures: r.failures,
          lastFailureAt: r.last_failure_at,
          lastAttemptAt: r.last_attempt_at,
          lastSuccessAt: r.last_success_at,
        },
      ]),
    );
  }
}
