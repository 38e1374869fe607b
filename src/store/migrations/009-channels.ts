import { sql, type Kysely } from 'kysely';

/**
 * Per-app channel configuration (merchant ids, keys, certificates; the secret fields sealed with the master
 * key) and the record of exchanges with the providers, for operators.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE channel_configs (
      app_id text NOT NULL REFERENCES apps(id),
      channel_id text NOT NULL,
      settings text NOT NULL DEFAULT '{}',
      secrets_sealed text,
      updated_at timestamptz NOT NULL,
      PRIMARY KEY (app_id, channel_id)
    )`.execute(db);
  await sql`
    CREATE TABLE channel_calls (
      id bigserial PRIMARY KEY,
      app_id text NOT NULL,
      channel_id text NOT NULL,
      operation text NOT NULL,
      out_trade_no text,
      started_at timestamptz NOT NULL,
      latency_ms integer NOT NULL CHECK (latency_ms >= 0),
      http_status integer,
      outcome text NOT NULL,
      request text,
      response text,
      error text
    )`.execute(db);
  await sql`CREATE INDEX channel_calls_app_time ON channel_calls (app_id, started_at)`.execute(db);
  await sql`CREATE INDEX channel_calls_order ON channel_calls (out_trade_no) WHERE out_trade_no IS NOT NULL`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS channel_calls`.execute(db);
  await sql`DROP TABLE IF EXISTS channel_configs`.execute(db);
}
