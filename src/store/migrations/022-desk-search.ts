import { sql, type Kysely } from 'kysely';

/**
 * The trade desk's searches (store/desk.ts, /desk): indexes for what an operator looks a trade up by. Every search
 * is limited to the viewer's hospitals (app_id IN …) and to a range of days, newest first with a keyset
 * (created_at, id); a number typed into the search finds its trade without scanning the day.
 *
 * Filters that only narrow a day's trades (status, pay type, channel, category, terminal, operator, amount) get
 * no index of their own: the day range already bounds the rows (trades_app_created_id), and every index on the
 * trades table costs each payment's insert and update.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // A hospital's trades newest first, page after page (keyset on created_at, id): the default search of a
  // scoped operator (app_id IN (…) AND created_at in the days), and its paging (created_at, id) < (…).
  await sql`CREATE INDEX trades_app_created_id ON trades (app_id, created_at DESC, id DESC)`.execute(db);
  // The same across every hospital (a platform admin with no hospital chosen): no app_id to lead with.
  await sql`CREATE INDEX trades_created_id ON trades (created_at DESC, id DESC)`.execute(db);
  // An OutTradeNo typed without its hospital (the unique key leads with app_id), exact or as a prefix ("MZ2026*"):
  // text_pattern_ops lets LIKE 'prefix%' use the index whatever the database's collation.
  await sql`CREATE INDEX trades_out_trade_no_pattern ON trades (out_trade_no text_pattern_ops)`.execute(db);
  // The channel's own trade number (from the patient's payment record or the provider's bill).
  await sql`CREATE INDEX trades_channel_trade_no ON trades (channel_trade_no) WHERE channel_trade_no IS NOT NULL`.execute(
    db,
  );
  // The HIS's inpatient / outpatient number, within a hospital.
  await sql`CREATE INDEX trades_app_inhospital_no ON trades (app_id, inhospital_no) WHERE inhospital_no IS NOT NULL`.execute(
    db,
  );
  // The patient's full name (exact match only: the desk never searches by a part of a name), within a hospital.
  await sql`CREATE INDEX trades_app_patient_name ON trades (app_id, patient_name) WHERE patient_name IS NOT NULL`.execute(
    db,
  );
  // A trade's reconciliation differences, open or resolved (013's index holds only the open ones): the timeline.
  await sql`CREATE INDEX recon_differences_order ON recon_differences (app_id, out_trade_no)`.execute(db);
  // The audit page filtered by who acted, newest first.
  await sql`CREATE INDEX desk_audit_actor ON desk_audit (actor, id)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS desk_audit_actor`.execute(db);
  await sql`DROP INDEX IF EXISTS recon_differences_order`.execute(db);
  await sql`DROP INDEX IF EXISTS trades_app_patient_name`.execute(db);
  await sql`DROP INDEX IF EXISTS trades_app_inhospital_no`.execute(db);
  await sql`DROP INDEX IF EXISTS trades_channel_trade_no`.execute(db);
  await sql`DROP INDEX IF EXISTS trades_out_trade_no_pattern`.execute(db);
  await sql`DROP INDEX IF EXISTS trades_created_id`.execute(db);
  await sql`DROP INDEX IF EXISTS trades_app_created_id`.execute(db);
}
