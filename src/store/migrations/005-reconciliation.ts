import { sql, type Kysely } from 'kysely';

/** Reconciliation runs, their differences (with a resolution state and an audit trail), and the app's HIS. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE apps ADD COLUMN his_base_url text`.execute(db);
  await sql`
    CREATE TABLE recon_runs (
      id bigserial PRIMARY KEY,
      app_id text NOT NULL REFERENCES apps(id),
      business_date text NOT NULL,
      pay_type text NOT NULL,
      status text NOT NULL CHECK (status IN ('DONE', 'FAILED')),
      matched integer NOT NULL DEFAULT 0,
      differences integer NOT NULL DEFAULT 0,
      totals text NOT NULL DEFAULT '{}',
      pending text NOT NULL DEFAULT '[]',
      error text,
      started_at timestamptz NOT NULL,
      finished_at timestamptz NOT NULL,
      CONSTRAINT recon_runs_day UNIQUE (app_id, business_date, pay_type)
    )`.execute(db);
  await sql`
    CREATE TABLE recon_differences (
      id bigserial PRIMARY KEY,
      app_id text NOT NULL REFERENCES apps(id),
      business_date text NOT NULL,
      pay_type text NOT NULL,
      diff_key text NOT NULL,
      code text NOT NULL,
      kind text NOT NULL,
      out_trade_no text NOT NULL,
      out_request_no text,
      detail text NOT NULL,
      present boolean NOT NULL DEFAULT true,
      state text NOT NULL DEFAULT 'OPEN' CHECK (state IN ('OPEN', 'RESOLVED')),
      resolved_by text,
      resolved_note text,
      resolved_at timestamptz,
      created_at timestamptz NOT NULL,
      updated_at timestamptz NOT NULL,
      CONSTRAINT recon_differences_key UNIQUE (app_id, business_date, pay_type, diff_key)
    )`.execute(db);
  await sql`
    CREATE TABLE recon_audit (
      id bigserial PRIMARY KEY,
      difference_id bigint NOT NULL REFERENCES recon_differences(id),
      at timestamptz NOT NULL,
      actor text NOT NULL,
      action text NOT NULL,
      note text
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['recon_audit', 'recon_differences', 'recon_runs'])
    await sql`DROP TABLE IF EXISTS ${sql.table(t)}`.execute(db);
}
