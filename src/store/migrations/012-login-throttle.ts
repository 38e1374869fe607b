import { sql, type Kysely } from 'kysely';

/**
 * The finance login's back-off, shared by every instance and kept across restarts (src/services/finance-login.ts):
 * one row per username ('*', all sources together) and one per username and source address. Rows exist for
 * any username tried, known or not, so that the answers do not tell them apart; old rows are purged. The
 * account-wide lock columns of 007 are dropped: an attacker elsewhere could use them to keep the clerk out.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE finance_login_attempts (
      username text NOT NULL CHECK (char_length(username) BETWEEN 1 AND 64),
      source text NOT NULL CHECK (char_length(source) BETWEEN 1 AND 64),
      failures integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
      last_failure_at timestamptz,
      last_attempt_at timestamptz,
      last_success_at timestamptz,
      PRIMARY KEY (username, source)
    )`.execute(db);
  await sql`ALTER TABLE finance_operators DROP COLUMN failed_logins`.execute(db);
  await sql`ALTER TABLE finance_operators DROP COLUMN locked_until`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`ALTER TABLE finance_operators ADD COLUMN failed_logins integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0)`.execute(
    db,
  );
  await sql`ALTER TABLE finance_operators ADD COLUMN locked_until timestamptz`.execute(db);
  await sql`DROP TABLE IF EXISTS finance_login_attempts`.execute(db);
}
