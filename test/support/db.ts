import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { StoreConfig } from '../../src/store/db.js';

/** Which database the integration tests run on: HOSPAY_TEST_DB=embedded (default) or postgres. */
export const TEST_DB: 'embedded' | 'postgres' =
  process.env['HOSPAY_TEST_DB'] === 'postgres' ? 'postgres' : 'embedded';

const ADMIN_URL = process.env['HOSPAY_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  store: StoreConfig;
  drop(): Promise<void>;
}

/** A fresh, empty database for one test file: an in-memory PGlite, or a new PostgreSQL database. */
export async function freshDatabase(): Promise<TestDatabase> {
  if (TEST_DB === 'embedded') return { store: { kind: 'embedded', dataDir: null }, drop: async () => {} };
  const name = `hospay_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    store: { kind: 'postgres', url: url.toString(), poolSize: 10 },
    async drop() {
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
