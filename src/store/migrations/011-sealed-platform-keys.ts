import { sql, type Kysely } from 'kysely';

/**
 * The platform's private key is kept sealed with the master key (`private_sealed`), never as plain PEM.
 *
 * The master key is not known to a migration (the embedded database's key file lives in the data directory,
 * PostgreSQL's comes from HOSPAY_MASTER_KEY, and `hospay migrate` runs without either), so the rows written by
 * older versions are sealed by the first process that opens the keys with the master key
 * (`PlatformKeyRepository.sealLegacy`, run by every start). From here on the database itself refuses a row with
 * a plain `private_pem` or without `private_sealed`: the constraint is NOT VALID, so it holds for every row
 * inserted or updated from now on while the old rows wait to be sealed (sealing sets `private_pem` to NULL).
 *
 * `retired_at`: when a key stopped being the active one; a retired key is deleted after HOSPAY_KEY_GRACE. Keys
 * retired before this migration are dated by the creation of the key that replaced them.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE platform_keys ADD COLUMN private_sealed text`.execute(db);
  await sql`ALTER TABLE platform_keys ADD COLUMN retired_at timestamptz`.execute(db);
  await sql`ALTER TABLE platform_keys ALTER COLUMN private_pem DROP NOT NULL`.execute(db);
  await sql`
    UPDATE platform_keys k
       SET retired_at = COALESCE((SELECT min(n.created_at) FROM platform_keys n WHERE n.id > k.id), now())
     WHERE NOT k.active`.execute(db);
  await sql`
    ALTER TABLE platform_keys ADD CONSTRAINT platform_keys_sealed
      CHECK (private_pem IS NULL AND private_sealed IS NOT NULL) NOT VALID`.execute(db);
}

/** Back to plain PEM columns: only possible while no row has been sealed (a sealed key cannot be unsealed here). */
export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE platform_keys DROP CONSTRAINT IF EXISTS platform_keys_sealed`.execute(db);
  await sql`ALTER TABLE platform_keys ALTER COLUMN private_pem SET NOT NULL`.execute(db);
  await sql`ALTER TABLE platform_keys DROP COLUMN retired_at`.execute(db);
  await sql`ALTER TABLE platform_keys DROP COLUMN private_sealed`.execute(db);
}
