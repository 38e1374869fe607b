import { sql } from 'kysely';
import { formatShanghai } from '../domain/clock.js';
import type { StoreSnapshot } from '../metrics.js';
import { MIGRATION_NAMES, type Db, type Store } from './db.js';

/** A database read that did not answer in time (readiness, scrape-time gauges). */
export class StoreTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what}: no answer within ${ms} ms`);
    this.name = 'StoreTimeoutError';
  }
}

function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreTimeoutError(what, ms)), ms);
  });
  // A late failure of the abandoned query must not become an unhandled rejection.
  p.catch(() => undefined);
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The reads behind GET /readyz and the scrape-time gauges of GET /metrics: each one statement on an index, each
 * under a short deadline, so a scrape or a probe stays cheap and never hangs on a database that went away.
 */
export class HealthRepository {
  constructor(
    private readonly db: Db,
    private readonly poolStats?: Store['poolStats'],
    /** Deadline of each read. */
    private readonly timeoutMs = 2_000,
  ) {}

  /** SELECT 1; throws when the database does not answer (refused, reset, or not within the deadline). */
  async ping(): Promise<void> {
    await within('SELECT 1', this.timeoutMs, sql`SELECT 1 AS one`.execute(this.db));
  }

  /** The migrations this build knows that the database has not applied, in order. */
  async missingMigrations(): Promise<string[]> {
    const r = await within(
      'migrations',
      this.timeoutMs,
      sql<{ name: string }>`SELECT name FROM kysely_migration`.execute(this.db),
    );
    const applied = new Set(r.rows.map((x) => x.name));
    return MIGRATION_NAMES.filter((n) => !applied.has(n));
  }

  /** What the scrape-time gauges show; a part that fails or times out is null (never a throw). */
  async snapshot(now: Date): Promise<StoreSnapshot> {
    const [notify, differences] = await Promise.all([
      this.notify(now).catch(() => null),
      this.differences(now).catch(() => null),
    ]);
    return { notify, differences, pool: this.poolStats?.() ?? null };
  }

  /** Notifications still to deliver (the partial index notifications_due serves both aggregates). */
  private async notify(now: Date): Promise<NonNullable<StoreSnapshot['notify']>> {
    const r = await within(
      'notification backlog',
      this.timeoutMs,
      sql<{ backlog: number | string; oldest_due: Date | string | null }>`
        SELECT count(*) AS backlog,
               min(next_attempt_at) FILTER (WHERE next_attempt_at <= ${now}) AS oldest_due
          FROM notifications WHERE status = 'PENDING'`.execute(this.db),
    );
    const row = r.rows[0];
    const oldest = row?.oldest_due ? new Date(row.oldest_due) : null;
    return {
      backlog: Number(row?.backlog ?? 0),
      oldestDueAgeSeconds: oldest ? Math.max(0, (now.getTime() - oldest.getTime()) / 1000) : 0,
    };
  }

  /** Open reconciliation differences and the oldest one's business date (the partial open index). */
  private async differences(now: Date): Promise<NonNullable<StoreSnapshot['differences']>> {
    const r = await within(
      'open differences',
      this.timeoutMs,
      sql<{ open: number | string; oldest: string | null }>`
        SELECT count(*) AS open, min(business_date) AS oldest
          FROM recon_differences WHERE state = 'OPEN'`.execute(this.db),
    );
    const row = r.rows[0];
    const today = formatShanghai(now).slice(0, 10);
    const days =
      row?.oldest && /^\d{4}-\d{2}-\d{2}$/.test(row.oldest)
        ? Math.max(0, Math.round((Date.parse(today) - Date.parse(row.oldest)) / 86_400_000))
        : 0;
    return { open: Number(row?.open ?? 0), oldestOpenDays: days };
  }
}
