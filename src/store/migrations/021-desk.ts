import { sql, type Kysely } from 'kysely';

/**
 * The trade desk (docs/operations.md): operators get a role and the hospitals (apps) granted to them, personal
 * API tokens with the same scoping, an audit trail of every desk action, and the maker–checker requests of
 * money actions (a refund or cancel asked by one person, approved by another).
 *
 * Operators created before this migration keep what they saw: role `finance`, every hospital.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    ALTER TABLE finance_operators
      ADD COLUMN role text NOT NULL DEFAULT 'finance'
        CHECK (role IN ('platform_admin', 'hospital_it', 'finance', 'cashier_supervisor')),
      ADD COLUMN all_apps boolean NOT NULL DEFAULT false`.execute(db);
  await sql`UPDATE finance_operators SET all_apps = true`.execute(db);
  await sql`
    CREATE TABLE operator_apps (
      username text NOT NULL REFERENCES finance_operators(username) ON DELETE CASCADE,
      app_id text NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
      granted_at timestamptz NOT NULL,
      PRIMARY KEY (username, app_id)
    )`.execute(db);
  await sql`CREATE INDEX operator_apps_app ON operator_apps (app_id)`.execute(db);
  await sql`
    CREATE TABLE operator_tokens (
      id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9]{8,32}$'),
      token_hash text NOT NULL UNIQUE,
      username text NOT NULL REFERENCES finance_operators(username) ON DELETE CASCADE,
      label text NOT NULL CHECK (char_length(label) BETWEEN 1 AND 64),
      created_at timestamptz NOT NULL,
      expires_at timestamptz,
      last_used_at timestamptz,
      revoked_at timestamptz
    )`.execute(db);
  await sql`CREATE INDEX operator_tokens_username ON operator_tokens (username)`.execute(db);
  await sql`
    CREATE TABLE desk_audit (
      id bigserial PRIMARY KEY,
      at timestamptz NOT NULL,
      actor text NOT NULL,
      role text NOT NULL,
      via text NOT NULL CHECK (via IN ('session', 'token', 'admin-token', 'cli')),
      action text NOT NULL,
      app_id text,
      out_trade_no text,
      request_id bigint,
      outcome text NOT NULL,
      detail text NOT NULL DEFAULT '{}'
    )`.execute(db);
  await sql`CREATE INDEX desk_audit_trade ON desk_audit (app_id, out_trade_no, id)`.execute(db);
  await sql`CREATE INDEX desk_audit_at ON desk_audit (at)`.execute(db);
  await sql`
    CREATE TABLE desk_requests (
      id bigserial PRIMARY KEY,
      app_id text NOT NULL REFERENCES apps(id),
      trade_id bigint NOT NULL REFERENCES trades(id),
      out_trade_no text NOT NULL,
      kind text NOT NULL CHECK (kind IN ('refund', 'cancel')),
      amount_fen bigint CHECK (amount_fen IS NULL OR amount_fen > 0),
      reason text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 256),
      out_request_no text NOT NULL,
      status text NOT NULL CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED', 'DONE', 'FAILED')),
      requested_by text NOT NULL,
      requested_at timestamptz NOT NULL,
      decided_by text,
      decided_at timestamptz,
      result text,
      CHECK (kind = 'cancel' OR amount_fen IS NOT NULL),
      CHECK (decided_by IS NULL OR decided_by <> requested_by),
      UNIQUE (app_id, out_request_no)
    )`.execute(db);
  await sql`CREATE INDEX desk_requests_trade ON desk_requests (trade_id)`.execute(db);
  await sql`CREATE INDEX desk_requests_pending ON desk_requests (status, app_id)`.execute(db);
  await sql`ALTER TABLE apps ADD COLUMN desk_approval boolean NOT NULL DEFAULT true`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE apps DROP COLUMN IF EXISTS desk_approval`.execute(db);
  await sql`DROP TABLE IF EXISTS desk_requests`.execute(db);
  await sql`DROP TABLE IF EXISTS desk_audit`.execute(db);
  await sql`DROP TABLE IF EXISTS operator_tokens`.execute(db);
  await sql`DROP TABLE IF EXISTS operator_apps`.execute(db);
  await sql`ALTER TABLE finance_operators DROP COLUMN IF EXISTS all_apps, DROP COLUMN IF EXISTS role`.execute(
    db,
  );
}
