import { sql, type Kysely } from 'kysely';

/**
 * Per-app allow-list of private address ranges a notify_url may reach (a hospital's HIS on its intranet), as a
 * JSON array of CIDR texts; '[]' = none. Loopback, link-local and metadata addresses are refused whatever it
 * says (services/notify-target.ts).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE apps ADD COLUMN notify_private_cidrs text NOT NULL DEFAULT '[]'`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE apps DROP COLUMN IF EXISTS notify_private_cidrs`.execute(db);
}
