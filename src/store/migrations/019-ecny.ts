import { sql, type Kysely } from 'kysely';

/**
 * e-CNY (数字人民币): the spec's pay type `elecny` joins alipay, weixin and unionpay in the trades' pay_type CHECK
 * (migration 001 wrote it inline, so PostgreSQL and PGlite named it trades_pay_type_check). The other tables that
 * keep a pay type (recon_runs, recon_differences, recon_evidence, sim_trades) have no CHECK on it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE trades DROP CONSTRAINT IF EXISTS trades_pay_type_check`.execute(db);
  await sql`ALTER TABLE trades ADD CONSTRAINT trades_pay_type_check
    CHECK (pay_type IN ('alipay', 'weixin', 'unionpay', 'elecny'))`.execute(db);
}

/** Refuses (the CHECK fails) while any trade is paid with e-CNY: such trades cannot be represented before 019. */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE trades DROP CONSTRAINT IF EXISTS trades_pay_type_check`.execute(db);
  await sql`ALTER TABLE trades ADD CONSTRAINT trades_pay_type_check
    CHECK (pay_type IN ('alipay', 'weixin', 'unionpay'))`.execute(db);
}
