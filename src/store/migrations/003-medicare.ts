import { sql, type Kysely } from 'kysely';

/** Medical insurance (spec 6.4–6.6): authorisation requests, single-use auth codes, payment tokens. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE medicare_auths (
      id text PRIMARY KEY,
      app_id text NOT NULL REFERENCES apps(id),
      open_id text NOT NULL,
      state text NOT NULL,
      redirect_uri text NOT NULL,
      status text NOT NULL CHECK (status IN ('PENDING', 'GRANTED', 'DECLINED')),
      auth_code text UNIQUE,
      created_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      used_at timestamptz
    )`.execute(db);
  await sql`
    CREATE TABLE medicare_tokens (
      pay_auth_no text PRIMARY KEY,
      app_id text NOT NULL REFERENCES apps(id),
      user_id text NOT NULL,
      payment_type text NOT NULL,
      city_code text NOT NULL,
      created_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      used_by_trade bigint REFERENCES trades(id)
    )`.execute(db);
  await sql`ALTER TABLE refunds DROP CONSTRAINT refunds_kind_check`.execute(db);
  await sql`ALTER TABLE refunds ADD CONSTRAINT refunds_kind_check CHECK (kind IN ('refund', 'cancel', 'insurance'))`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS medicare_tokens`.execute(db);
  await sql`DROP TABLE IF EXISTS medicare_auths`.execute(db);
}
