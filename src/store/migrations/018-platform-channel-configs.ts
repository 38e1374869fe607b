import { sql, type Kysely } from 'kysely';

/**
 * Platform-level channel configuration (issue 14): values set once for the whole platform, e.g. a service
 * provider's own credentials (an Alipay third-party app's key, a WeChat Pay 服务商's sp_mchid and keys), merged
 * under every app's own configuration of that channel. Plain fields as JSON, secret ones sealed with the master
 * key (their own seal context, `platform:channel:<id>`), as in channel_configs.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE platform_channel_configs (
      channel_id text PRIMARY KEY,
      settings text NOT NULL DEFAULT '{}',
      secrets_sealed text,
      updated_at timestamptz NOT NULL
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS platform_channel_configs`.execute(db);
}
