import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { freshDatabase, TEST_DB, type TestDatabase } from '../support/db.js';
import { usePreparedStatements } from '../../src/store/prepared.js';
import { loadConfig, ConfigError } from '../../src/config/config.js';

/** Named prepared statements on PostgreSQL (src/store/prepared.ts); PGlite does not use them. */
describe('prepared statements (PostgreSQL)', { skip: TEST_DB !== 'postgres' }, () => {
  let db: TestDatabase;
  let client: pg.Client;
  const prepared = async () =>
    Number(
      (await client.query<{ n: string }>('SELECT count(*)::text AS n FROM pg_prepared_statements')).rows[0]
        ?.n,
    );

  before(async () => {
    db = await freshDatabase();
    if (db.store.kind !== 'postgres') throw new Error('needs PostgreSQL');
    client = new pg.Client({ connectionString: db.store.url });
    await client.connect();
    usePreparedStatements(client as unknown as pg.PoolClient, { maxStatements: 3 });
  });
  after(async () => {
    await client.end();
    await db.drop();
  });

  it('a parameterised statement is prepared once and reused; BEGIN and the like are not', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await client.query<{ x: number }>('SELECT $1::int + 1 AS x', [i]);
      assert.equal(r.rows[0]?.x, i + 1);
    }
    assert.equal(await prepared(), 1);
    await client.query('BEGIN', []);
    await client.query('SELECT $1::text AS y', ['a']);
    await client.query('COMMIT', []);
    assert.equal(await prepared(), 2);
  });

  it('at most maxStatements per connection; more run unnamed, and still answer', async () => {
    for (const t of ['SELECT $1::int AS a', 'SELECT $1::int AS b', 'SELECT $1::int AS c']) {
      const r = await client.query(t, [7]);
      assert.equal(Object.values(r.rows[0] as object)[0], 7);
    }
    assert.equal(await prepared(), 3);
  });

  it('a table changed under a prepared statement: run again unnamed outside a transaction', async () => {
    const fresh = new pg.Client({
      connectionString: (db.store as { url: string }).url,
    });
    await fresh.connect();
    try {
      usePreparedStatements(fresh as unknown as pg.PoolClient);
      await fresh.query('CREATE TABLE changing (a int)', []);
      await fresh.query('INSERT INTO changing VALUES (1)', []);
      const before = await fresh.query('SELECT * FROM changing WHERE a = $1', [1]);
      assert.deepEqual(before.rows, [{ a: 1 }]);
      // As a migration run by another server would.
      const other = new pg.Client({ connectionString: (db.store as { url: string }).url });
      await other.connect();
      await other.query('ALTER TABLE changing ADD COLUMN b int DEFAULT 2');
      await other.end();
      const afterAlter = await fresh.query('SELECT * FROM changing WHERE a = $1', [1]);
      assert.deepEqual(afterAlter.rows, [{ a: 1, b: 2 }]);
      // Inside a transaction the error is the transaction's (it is aborted anyway).
      const again = await fresh.query('SELECT * FROM changing WHERE a = $1', [1]);
      assert.deepEqual(again.rows, [{ a: 1, b: 2 }]);
      const other2 = new pg.Client({ connectionString: (db.store as { url: string }).url });
      await other2.connect();
      await other2.query('ALTER TABLE changing ADD COLUMN c int DEFAULT 3');
      await other2.end();
      await fresh.query('BEGIN', []);
      await assert.rejects(fresh.query('SELECT * FROM changing WHERE a = $1', [1]), { code: '0A000' });
      await fresh.query('ROLLBACK', []);
    } finally {
      await fresh.end();
    }
  });
});

describe('HOSPAY_DB_PREPARE', () => {
  it('on by default, off when asked, anything else refused', () => {
    const url = 'postgres://x@127.0.0.1/y';
    const on = loadConfig({ DATABASE_URL: url }).store;
    assert.equal(on.kind === 'postgres' && on.prepare, true);
    const off = loadConfig({ DATABASE_URL: url, HOSPAY_DB_PREPARE: 'off' }).store;
    assert.equal(off.kind === 'postgres' && off.prepare, false);
    assert.throws(() => loadConfig({ DATABASE_URL: url, HOSPAY_DB_PREPARE: 'yes' }), ConfigError);
  });
});
