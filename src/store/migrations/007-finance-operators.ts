import { sql, type Kysely } from 'kysely';

/** Finance operators (the people who log in to /finance) and their sessions. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE finance_operators (
      username text PRIMARY KEY CHECK (username ~ '^[A-Za-z0-9._-]{2,32}$'),
      display_name text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 64),
      password_hash text NOT NULL,
      status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
      failed_logins integer NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
      locked_until timestamptz,
      created_at timestamptz NOT NULL
    )`.execute(db);
  await sql`
    CREATE TABLE finance_sessions (
      token_hash text PRIMARY KEY,
      username text NOT NULL REFERENCES finance_operators(username) ON DELETE CASCADE,
      csrf_token text NOT NULL,
      created_at timestamptz NOT NULL,
      expires_at timestamptz NOT NULL,
      last_seen_at timestamptz NOT NULL
    )`.execute(db);
  await sql`CREATE INDEX finance_sessions_username ON finance_sessions (username)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS finance_sessions`.execute(db);
  await sql`DROP TABLE IF EXISTS finance_operators`.execute(db);
}
