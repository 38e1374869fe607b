import { sql, type Kysely } from 'kysely';

/** The online gateway: app keys, the platform's key pair, replay protection, H5 trades, the notify outbox. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE apps ADD COLUMN public_key text`.execute(db);
  await sql`ALTER TABLE apps ADD COLUMN redirect_uris text NOT NULL DEFAULT '[]'`.execute(db);

  await sql`
    CREATE TABLE platform_keys (
      id bigserial PRIMARY KEY,
      private_pem text NOT NULL,
      public_pem text NOT NULL,
      active boolean NOT NULL,
      created_at timestamptz NOT NULL
    )`.execute(db);
  await sql`CREATE UNIQUE INDEX platform_keys_one_active ON platform_keys (active) WHERE active`.execute(db);

  await sql`
    CREATE TABLE gateway_nonces (
      app_id text NOT NULL REFERENCES apps(id),
      nonce text NOT NULL,
      expires_at timestamptz NOT NULL,
      PRIMARY KEY (app_id, nonce)
    )`.execute(db);
  await sql`CREATE INDEX gateway_nonces_expiry ON gateway_nonces (expires_at)`.execute(db);

  await sql`ALTER TABLE trades ADD COLUMN notify_url text`.execute(db);
  await sql`ALTER TABLE trades ADD COLUMN return_url text`.execute(db);
  await sql`ALTER TABLE trades ADD COLUMN extra text`.execute(db);
  await sql`ALTER TABLE trades ADD COLUMN insurance_fen bigint NOT NULL DEFAULT 0 CHECK (insurance_fen >= 0)`.execute(
    db,
  );
  await sql`ALTER TABLE trades ADD COLUMN insurance_refunded_fen bigint NOT NULL DEFAULT 0`.execute(db);
  await sql`ALTER TABLE trades ADD COLUMN reduced_fen bigint NOT NULL DEFAULT 0 CHECK (reduced_fen >= 0)`.execute(
    db,
  );
  await sql`ALTER TABLE trades ADD CONSTRAINT trades_cash_part CHECK (
    insurance_fen <= total_fen AND refund_reserved_fen <= total_fen - insurance_fen
    AND insurance_refunded_fen >= 0 AND insurance_refunded_fen <= insurance_fen)`.execute(db);

  await sql`
    CREATE TABLE notifications (
      id bigserial PRIMARY KEY,
      notify_id text NOT NULL UNIQUE,
      app_id text NOT NULL REFERENCES apps(id),
      trade_id bigint NOT NULL REFERENCES trades(id),
      url text NOT NULL,
      trade_status text NOT NULL,
      status text NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL,
      lease_until timestamptz,
      lease_owner text,
      created_at timestamptz NOT NULL,
      delivered_at timestamptz,
      last_error text
    )`.execute(db);
  await sql`CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE status = 'PENDING'`.execute(
    db,
  );
  await sql`CREATE INDEX notifications_trade ON notifications (trade_id)`.execute(db);

  await sql`
    CREATE TABLE notify_attempts (
      id bigserial PRIMARY KEY,
      notification_id bigint NOT NULL REFERENCES notifications(id),
      attempt integer NOT NULL,
      started_at timestamptz NOT NULL,
      http_status integer,
      latency_ms integer NOT NULL,
      body_excerpt text,
      error text
    )`.execute(db);
  await sql`CREATE INDEX notify_attempts_notification ON notify_attempts (notification_id)`.execute(db);

  await sql`ALTER TABLE sim_trades ADD COLUMN return_url text`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['notify_attempts', 'notifications', 'gateway_nonces', 'platform_keys']) {
    await sql`DROP TABLE IF EXISTS ${sql.table(t)}`.execute(db);
  }
}
