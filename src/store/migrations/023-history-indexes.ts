import { sql, type Kysely } from 'kysely';

/**
 * Reads that must stay flat as years of history pile up (issue 16, docs/scaling.md): each index below serves a
 * query that the 2-million-trade history test (bench/history.ts) found reading a whole table (or a whole index)
 * to answer for one day. None is on a payment's path except the refunds one (a refund's completion), and each
 * holds only the rows its query can want, so the trades table (written by every payment) gets one tiny partial
 * index, on rows that are rarely there.
 *
 * On a big live database, run these by hand first with CREATE INDEX CONCURRENTLY (same names, same definitions;
 * `IF NOT EXISTS` below then finds them): a plain CREATE INDEX, as a migration runs it in its transaction, blocks
 * writes to the table while it builds.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // The finance day report's refunds (reports.ts dayAggregate): SUCCESS refunds of a period by the time they took
  // effect, coalesce(finished_at, updated_at), which refunds_app_finished_at (008) cannot serve: without this, every
  // report read every refund ever made.
  await sql`CREATE INDEX IF NOT EXISTS refunds_app_success_at
    ON refunds (app_id, (coalesce(finished_at, updated_at))) WHERE status = 'SUCCESS'`.execute(db);
  // The same report's insurance reversals: paid mixed payments whose insurance part was reversed, by the time
  // they were closed. Without it the report read every paid trade's entry in trades_app_paid_at, and the heap.
  await sql`CREATE INDEX IF NOT EXISTS trades_insurance_reversed_closed
    ON trades (closed_at) WHERE insurance_state = 'REVERSED'`.execute(db);
  // A business day's runs and differences across every hospital (reconciliation.ts runs, differences,
  // openCounts: the finance page, the admin API and the CLI with no app given). Their unique keys lead with
  // app_id, so a day without an app read the whole table (a row per app, day and pay type, for years).
  await sql`CREATE INDEX IF NOT EXISTS recon_runs_date ON recon_runs (business_date)`.execute(db);
  await sql`CREATE INDEX IF NOT EXISTS recon_differences_date ON recon_differences (business_date)`.execute(
    db,
  );
  // The retention pass over reconciliation evidence (retention.ts), by age: without it, every pass read the table.
  await sql`CREATE INDEX IF NOT EXISTS recon_evidence_fetched ON recon_evidence (fetched_at)`.execute(db);
  // One index fewer for every payment to write: trades_app_created (app_id, created_at), from 001, is a prefix of
  // trades_app_created_id (app_id, created_at DESC, id DESC), from 022, which serves the same reads scanned
  // backwards. A trade's insert writes each index of trades, and its paid update (status, paid_at: indexed
  // columns, so never a HOT update) writes each one again.
  await sql`DROP INDEX IF EXISTS trades_app_created`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`CREATE INDEX IF NOT EXISTS trades_app_created ON trades (app_id, created_at)`.execute(db);
  await sql`DROP INDEX IF EXISTS recon_evidence_fetched`.execute(db);
  await sql`DROP INDEX IF EXISTS recon_differences_date`.execute(db);
  await sql`DROP INDEX IF EXISTS recon_runs_date`.execute(db);
  await sql`DROP INDEX IF EXISTS trades_insurance_reversed_closed`.execute(db);
  await sql`DROP INDEX IF EXISTS refunds_app_success_at`.execute(db);
}
