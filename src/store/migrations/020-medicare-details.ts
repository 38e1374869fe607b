import { sql, type Kysely } from 'kysely';

/**
 * Medical insurance through a centre (docs/channels/nhsa.md): the fee uploads left at the centre by a mixed
 * payment whose insurance part was not settled (or whose settlement is unknown), kept until they are revoked
 * (6401) or, if settled after all, refunded (6203). `ref` is the adapter's reference (the centre's order id with
 * its token sealed under the app's key): no personal data.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE medicare_revocations (
      id bigserial PRIMARY KEY,
      app_id text NOT NULL REFERENCES apps(id),
      trade_id bigint NOT NULL UNIQUE REFERENCES trades(id),
      out_trade_no text NOT NULL,
      ref text NOT NULL,
      reason text NOT NULL,
      status text NOT NULL CHECK (status IN ('PENDING', 'DONE', 'FAILED')),
      attempts integer NOT NULL DEFAULT 0,
      last_error text,
      next_at timestamptz NOT NULL,
      lease_until timestamptz,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL
    )`.execute(db);
  await sql`CREATE INDEX medicare_revocations_due ON medicare_revocations (next_at) WHERE status <> 'DONE'`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS medicare_revocations`.execute(db);
}
