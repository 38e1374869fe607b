import { sql, type Kysely } from 'kysely';

/** Once-only scheduled work (the daily reconciliation): the first instance to insert the key runs it. */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`
    CREATE TABLE job_claims (
      job text NOT NULL,
      key text NOT NULL,
      owner text NOT NULL,
      claimed_at timestamptz NOT NULL,
      finished_at timestamptz,
      result text,
      PRIMARY KEY (job, key)
    )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`DROP TABLE IF EXISTS job_claims`.execute(db);
}
