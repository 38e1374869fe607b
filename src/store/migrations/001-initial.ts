import { sql, type Kysely } from 'kysely';

/** Money rules live in the database too: unique keys, CHECKs, and guarded updates in the repositories. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE apps (
      id text PRIMARY KEY,
      name text NOT NULL,
      hospital_id text,
      token_hash text NOT NULL UNIQUE,
      status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
      categories text,
      channel_map text NOT NULL DEFAULT '{}',
      created_at timestamptz NOT NULL
    )`.execute(db);

  await sql`
    CREATE TABLE trades (
      id bigserial PRIMARY KEY,
      trade_no text NOT NULL UNIQUE,
      app_id text NOT NULL REFERENCES apps(id),
      out_trade_no text NOT NULL,
      kind text NOT NULL CHECK (kind IN ('barcode', 'qrcode', 'h5', 'void')),
      status text NOT NULL CHECK (status IN ('WAIT_BUYER_PAY', 'TRADE_SUCCESS', 'TRADE_CLOSED', 'TRADE_FINISHED')),
      pay_type text CHECK (pay_type IN ('alipay', 'weixin', 'unionpay')),
      channel text,
      category text NOT NULL,
      order_type text NOT NULL,
      total_fen bigint NOT NULL CHECK (total_fen > 0 OR (kind = 'void' AND total_fen = 0)),
      refund_reserved_fen bigint NOT NULL DEFAULT 0,
      refunded_fen bigint NOT NULL DEFAULT 0,
      subject text NOT NULL,
      body text,
      operator_id text,
      terminal_id text,
      hospital_id text,
      patient_name text,
      inhospital_no text,
      tel text,
      trade_detail text,
      timeout_express text,
      fingerprint text NOT NULL,
      channel_trade_no text,
      code_url text,
      channel_code_url text,
      cashier_token text UNIQUE,
      buyer_logon_id text,
      buyer_user_id text,
      cancel_action text CHECK (cancel_action IN ('close', 'refund')),
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      paid_at timestamptz,
      closed_at timestamptz,
      lease_until timestamptz,
      lease_owner text,
      job_attempts integer NOT NULL DEFAULT 0,
      CONSTRAINT trades_app_out_trade_no UNIQUE (app_id, out_trade_no),
      CONSTRAINT trades_refund_bounds CHECK (
        refunded_fen >= 0 AND refunded_fen <= refund_reserved_fen AND refund_reserved_fen <= total_fen),
      CONSTRAINT trades_paid_has_time CHECK (status = 'WAIT_BUYER_PAY' OR status = 'TRADE_CLOSED' OR paid_at IS NOT NULL),
      CONSTRAINT trades_refund_needs_payment CHECK (refund_reserved_fen = 0 OR paid_at IS NOT NULL)
    )`.execute(db);
  await sql`CREATE INDEX trades_pending_expiry ON trades (expires_at) WHERE status = 'WAIT_BUYER_PAY'`.execute(
    db,
  );
  await sql`CREATE INDEX trades_app_created ON trades (app_id, created_at)`.execute(db);

  await sql`
    CREATE TABLE refunds (
      id bigserial PRIMARY KEY,
      trade_id bigint NOT NULL REFERENCES trades(id),
      app_id text NOT NULL REFERENCES apps(id),
      out_request_no text NOT NULL,
      kind text NOT NULL CHECK (kind IN ('refund', 'cancel')),
      amount_fen bigint NOT NULL CHECK (amount_fen > 0),
      status text NOT NULL CHECK (status IN ('PROCESSING', 'SUCCESS', 'FAILED')),
      reason text,
      hospital_id text,
      terminal_id text,
      channel_refund_no text,
      fail_code text,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      finished_at timestamptz,
      lease_until timestamptz,
      CONSTRAINT refunds_trade_request UNIQUE (trade_id, out_request_no)
    )`.execute(db);

  await sql`
    CREATE TABLE sim_trades (
      merchant text NOT NULL,
      out_trade_no text NOT NULL,
      pay_type text NOT NULL,
      channel_trade_no text NOT NULL UNIQUE,
      amount_fen bigint NOT NULL CHECK (amount_fen > 0),
      subject text NOT NULL,
      status text NOT NULL CHECK (status IN ('WAITING', 'PAID', 'CLOSED', 'REFUNDED')),
      rule text NOT NULL,
      query_count integer NOT NULL DEFAULT 0,
      refunded_fen bigint NOT NULL DEFAULT 0 CHECK (refunded_fen >= 0 AND refunded_fen <= amount_fen),
      buyer_logon_id text,
      buyer_user_id text,
      created_at timestamptz NOT NULL,
      paid_at timestamptz,
      PRIMARY KEY (merchant, out_trade_no)
    )`.execute(db);
  await sql`
    CREATE TABLE sim_refunds (
      merchant text NOT NULL,
      out_trade_no text NOT NULL,
      out_request_no text NOT NULL,
      amount_fen bigint NOT NULL CHECK (amount_fen > 0),
      refund_no text NOT NULL,
      created_at timestamptz NOT NULL,
      PRIMARY KEY (merchant, out_trade_no, out_request_no)
    )`.execute(db);
  await sql`
    CREATE TABLE sim_ledger (
      id bigserial PRIMARY KEY,
      merchant text NOT NULL,
      out_trade_no text NOT NULL,
      entry text NOT NULL CHECK (entry IN ('charge', 'refund', 'reverse')),
      amount_fen bigint NOT NULL,
      created_at timestamptz NOT NULL
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['sim_ledger', 'sim_refunds', 'sim_trades', 'refunds', 'trades', 'apps']) {
    await sql`DROP TABLE IF EXISTS ${sql.table(t)}`.execute(db);
  }
}
