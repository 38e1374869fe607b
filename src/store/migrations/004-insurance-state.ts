import { sql, type Kysely } from 'kysely';

/** The insurance part of a mixed payment: settled at the medical-insurance side, and reversed if the trade ends unpaid or cancelled. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE trades ADD COLUMN insurance_state text NOT NULL DEFAULT 'NONE'
    CHECK (insurance_state IN ('NONE', 'SETTLED', 'REVERSED'))`.execute(db);
  await sql`ALTER TABLE trades ADD COLUMN settlement_no text`.execute(db);
  await sql`CREATE INDEX trades_insurance_to_reverse ON trades (id) WHERE insurance_state = 'SETTLED' AND status = 'TRADE_CLOSED'`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE trades DROP COLUMN IF EXISTS settlement_no`.execute(db);
  await sql`ALTER TABLE trades DROP COLUMN IF EXISTS insurance_state`.execute(db);
}
