import { sql, type Kysely } from 'kysely';

/**
 * Reconciliation that tells the truth:
 *  - a run that could not compare a side (the HIS could not be read) is INCOMPLETE, not DONE; earlier runs
 *    stored as DONE with a HIS error become INCOMPLETE;
 *  - the day's unsettled items (unpaid trades, PROCESSING refunds) are found by their creation time, through
 *    two small partial indexes (only rows still unsettled are in them).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE recon_runs DROP CONSTRAINT IF EXISTS recon_runs_status_check`.execute(db);
  await sql`ALTER TABLE recon_runs ADD CONSTRAINT recon_runs_status_check CHECK (status IN ('DONE', 'INCOMPLETE', 'FAILED'))`.execute(
    db,
  );
  await sql`UPDATE recon_runs SET status = 'INCOMPLETE' WHERE status = 'DONE' AND error IS NOT NULL`.execute(
    db,
  );
  await sql`CREATE INDEX trades_unpaid_created ON trades (app_id, created_at) WHERE paid_at IS NULL`.execute(
    db,
  );
  await sql`CREATE INDEX refunds_unfinished_created ON refunds (app_id, created_at) WHERE finished_at IS NULL`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS refunds_unfinished_created`.execute(db);
  await sql`DROP INDEX IF EXISTS trades_unpaid_created`.execute(db);
  await sql`UPDATE recon_runs SET status = 'DONE' WHERE status = 'INCOMPLETE'`.execute(db);
  await sql`ALTER TABLE recon_runs DROP CONSTRAINT IF EXISTS recon_runs_status_check`.execute(db);
  await sql`ALTER TABLE recon_runs ADD CONSTRAINT recon_runs_status_check CHECK (status IN ('DONE', 'FAILED'))`.execute(
    db,
  );
}
