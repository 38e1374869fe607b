import { sql, type Kysely } from 'kysely';

/**
 * Bounded records of the exchanges with the providers: unverified provider notifications are counted per app,
 * channel and day (only a sample goes to channel_calls), and channel_calls and notify_attempts are purged by
 * age (HOSPAY_CALL_RETENTION, HOSPAY_ATTEMPT_RETENTION), which these indexes serve.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE notify_rejections (
      app_id text NOT NULL,
      channel_id text NOT NULL,
      day text NOT NULL,
      rejected bigint NOT NULL CHECK (rejected >= 0),
      first_at timestamptz NOT NULL,
      last_at timestamptz NOT NULL,
      last_reason text NOT NULL,
      PRIMARY KEY (app_id, channel_id, day)
    )`.execute(db);
  await sql`CREATE INDEX notify_rejections_last ON notify_rejections (last_at)`.execute(db);
  await sql`CREATE INDEX channel_calls_started ON channel_calls (started_at)`.execute(db);
  await sql`CREATE INDEX notify_attempts_started ON notify_attempts (started_at)`.execute(db);
  // The purge keeps the records of orders with an open reconciliation difference.
  await sql`CREATE INDEX recon_differences_open_order ON recon_differences (app_id, out_trade_no) WHERE state = 'OPEN'`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS recon_differences_open_order`.execute(db);
  await sql`DROP INDEX IF EXISTS notify_attempts_started`.execute(db);
  await sql`DROP INDEX IF EXISTS channel_calls_started`.execute(db);
  await sql`DROP TABLE IF EXISTS notify_rejections`.execute(db);
}
