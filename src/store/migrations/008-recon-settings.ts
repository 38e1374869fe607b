import { sql, type Kysely } from 'kysely';

/**
 * Per-app reconciliation settings (HIS slice size, cut-off hour, pending days, expected fee rates), the HIS's
 * AccessToken sealed with the master key, and the evidence of each run: what was asked of the HIS and the
 * channel, and what they answered.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE apps ADD COLUMN recon_settings text NOT NULL DEFAULT '{}'`.execute(db);
  await sql`ALTER TABLE apps ADD COLUMN his_token_sealed text`.execute(db);
  await sql`
    CREATE TABLE recon_evidence (
      id bigserial PRIMARY KEY,
      app_id text NOT NULL REFERENCES apps(id),
      business_date text NOT NULL,
      pay_type text NOT NULL,
      source text NOT NULL CHECK (source IN ('HIS_TRADE_LIST', 'CHANNEL_BILL')),
      seq integer NOT NULL,
      request text NOT NULL,
      records integer NOT NULL CHECK (records >= 0),
      raw text,
      fetched_at timestamptz NOT NULL,
      CONSTRAINT recon_evidence_key UNIQUE (app_id, business_date, pay_type, source, seq)
    )`.execute(db);
  // A business day's payments and refunds are read by time (reconciliation, reports).
  await sql`CREATE INDEX trades_app_paid_at ON trades (app_id, paid_at) WHERE paid_at IS NOT NULL`.execute(
    db,
  );
  await sql`CREATE INDEX refunds_app_finished_at ON refunds (app_id, finished_at) WHERE finished_at IS NOT NULL`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS refunds_app_finished_at`.execute(db);
  await sql`DROP INDEX IF EXISTS trades_app_paid_at`.execute(db);
  await sql`DROP TABLE IF EXISTS recon_evidence`.execute(db);
  await sql`ALTER TABLE apps DROP COLUMN IF EXISTS his_token_sealed`.execute(db);
  await sql`ALTER TABLE apps DROP COLUMN IF EXISTS recon_settings`.execute(db);
}
