import { sql, type Kysely } from 'kysely';

/**
 * Legacy signing, per app and only by choice: sign_type RSA (SHA1withRSA) and app keys shorter than 2048 bits
 * (the spec's legacy samples use both). Off for every app unless an operator turns it on with the key.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE apps ADD COLUMN legacy_sign boolean NOT NULL DEFAULT false`.execute(db);
  // Apps that registered a key shorter than 2048 bits before this version keep working: they used legacy
  // signing already. (RSA with a 2048-bit key is not detectable here; such an app is told so at its next call.)
  await sql`UPDATE apps SET legacy_sign = true WHERE public_key IS NOT NULL AND length(public_key) < 400`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE apps DROP COLUMN legacy_sign`.execute(db);
}
