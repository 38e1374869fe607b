import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  CompiledQuery,
  sql,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  type UnknownRow,
} from 'kysely';
import pg from 'pg';
import { TEST_DB } from '../support/db.js';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import { MIGRATION_NAMES, type Db } from '../../src/store/db.js';
import { ReportRepository } from '../../src/store/reports.js';
import { ReconciliationRepository } from '../../src/store/reconciliation.js';
import { purgeExpiredRecords } from '../../src/store/retention.js';
import { ChannelCallLog } from '../../src/store/channel-calls.js';

/**
 * Migration 023 (docs/scaling.md, bench/history.ts): the indexes that keep a day's reads flat as history grows,
 * on both databases. Each statement is captured as the repository sends it and EXPLAINed with sequential scans
 * off: the plan must use the index made for it, bounded by the day (and by the app where it reads one app at a
 * time). Without 023 (or without the report's "every app" form) the planner has no such index to choose.
 */

/** Captures the statements a repository sends (compiled as sent), and lets them run. */
function capturing(db: Db): { db: Db; queries: CompiledQuery[] } {
  const queries: CompiledQuery[] = [];
  const plugin: KyselyPlugin = {
    transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
      queries.push(db.getExecutor().compileQuery(args.node, args.queryId));
      return args.node;
    },
    transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
      return Promise.resolve(args.result);
    },
  };
  return { db: db.withPlugin(plugin), queries };
}

/** The plan's text (EXPLAIN, not run) of a captured statement, with sequential scans off. */
async function planOf(db: Db, q: CompiledQuery): Promise<string> {
  return db.connection().execute(async (c) => {
    await sql`SET enable_seqscan = off`.execute(c);
    try {
      const r = await c.executeQuery<Record<string, string>>(
        CompiledQuery.raw(`EXPLAIN ${q.sql}`, [...q.parameters]),
      );
      return r.rows.map((row) => Object.values(row)[0] ?? '').join('\n');
    } finally {
      await sql`RESET enable_seqscan`.execute(c);
    }
  });
}

/**
 * A small history, so that the planner's statistics look like a live database's (an empty table is planned as
 * if anything went): 5 apps × 400 days of trades (1 % mixed payments reversed), 5 % refunded, and each app's
 * reconciliation runs, differences and evidence of every day. Then ANALYZE.
 */
async function seedHistory(db: Db): Promise<void> {
  await sql`
    INSERT INTO apps (id, name, token_hash, created_at)
    SELECT 'HIST' || a, 'history ' || a, md5('history' || a), now() FROM generate_series(1, 5) a`.execute(db);
  await sql`
    INSERT INTO trades (trade_no, app_id, out_trade_no, kind, status, pay_type, category, order_type, total_fen,
                        insurance_fen, insurance_state, subject, fingerprint, created_at, updated_at, expires_at,
                        paid_at, closed_at)
    SELECT 'HPH' || g, 'HIST' || (1 + g % 5), 'MZH' || g, 'barcode',
           CASE WHEN g % 100 = 0 THEN 'TRADE_CLOSED' ELSE 'TRADE_SUCCESS' END, 'alipay', 'MZ', 'TREATMENT', 1000,
           CASE WHEN g % 100 = 0 THEN 500 ELSE 0 END, CASE WHEN g % 100 = 0 THEN 'REVERSED' ELSE 'NONE' END,
           '门诊', 'f', at, at, at, at, CASE WHEN g % 100 = 0 THEN at + interval '1 hour' END
      FROM (SELECT g, timestamptz '2025-10-01 08:00:00+08' + (g * interval '17 minutes') AS at
              FROM generate_series(1, 30000) g) x`.execute(db);
  await sql`
    INSERT INTO refunds (trade_id, app_id, out_request_no, kind, amount_fen, status, created_at, updated_at,
                         finished_at)
    SELECT id, app_id, 'R' || id, 'refund', 100, 'SUCCESS', paid_at, paid_at, paid_at
      FROM trades WHERE id % 20 = 0 AND status = 'TRADE_SUCCESS'`.execute(db);
  await sql`UPDATE trades SET refund_reserved_fen = 100, refunded_fen = 100
             WHERE id IN (SELECT trade_id FROM refunds)`.execute(db);
  await sql`
    INSERT INTO recon_runs (app_id, business_date, pay_type, status, started_at, finished_at)
    SELECT 'HIST' || a, to_char(date '2025-10-01' + d, 'YYYY-MM-DD'), p, 'DONE', now(), now()
      FROM generate_series(1, 5) a, generate_series(0, 399) d, unnest(ARRAY['alipay', 'weixin']) p`.execute(
    db,
  );
  await sql`
    INSERT INTO recon_differences (app_id, business_date, pay_type, diff_key, code, kind, out_trade_no, detail, state,
                                   created_at, updated_at)
    SELECT 'HIST' || a, to_char(date '2025-10-01' + d, 'YYYY-MM-DD'), 'alipay', 'P:' || d, 'CHANNEL_ONLY', 'payment',
           'MZH' || d, '{}', CASE WHEN d % 10 = 0 THEN 'OPEN' ELSE 'RESOLVED' END, now(), now()
      FROM generate_series(1, 5) a, generate_series(0, 399) d`.execute(db);
  await sql`
    INSERT INTO recon_evidence (app_id, business_date, pay_type, source, seq, request, records, fetched_at)
    SELECT 'HIST' || a, to_char(date '2025-10-01' + d, 'YYYY-MM-DD'), p, 'CHANNEL_BILL', 0, '{}', 1,
           timestamptz '2025-10-02 10:00:00+08' + d * interval '1 day'
      FROM generate_series(1, 5) a, generate_series(0, 399) d, unnest(ARRAY['alipay', 'weixin']) p`.execute(
    db,
  );
  // Channel calls: HIST1 called its channel only in the history's first months (its calls have the oldest ids and
  // start times), the other apps until its end.
  await sql`
    INSERT INTO channel_calls (app_id, channel_id, operation, out_trade_no, started_at, latency_ms, outcome)
    SELECT 'HIST' || (CASE WHEN g <= 2000 THEN 1 ELSE 2 + g % 4 END), 'alipay', 'pay', 'MZH' || g,
           timestamptz '2025-10-01 08:00:00+08' + (g * interval '17 minutes'), 30, 'SUCCESS'
      FROM generate_series(1, 30000) g`.execute(db);
  await sql`ANALYZE`.execute(db);
}

describe(`history indexes, migration 023 (${TEST_DB})`, () => {
  let t: TestPlatform;
  let db: Db;
  // A day of the seeded history (Asia/Shanghai).
  const from = new Date('2026-03-09T16:00:00Z');
  const to = new Date('2026-03-10T16:00:00Z');
  before(async () => {
    t = await startTestPlatform();
    db = t.store.db;
    await seedHistory(db);
  });
  after(async () => {
    await t?.close();
  });

  it('is applied: its five indexes exist', async () => {
    assert.ok(MIGRATION_NAMES.includes('023-history-indexes'));
    const r = await sql<{ indexname: string }>`
      SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname IN (
        'refunds_app_success_at', 'trades_insurance_reversed_closed', 'recon_runs_date', 'recon_differences_date',
        'recon_evidence_fetched') ORDER BY indexname`.execute(db);
    assert.deepEqual(
      r.rows.map((x) => x.indexname),
      [
        'recon_differences_date',
        'recon_evidence_fetched',
        'recon_runs_date',
        'refunds_app_success_at',
        'trades_insurance_reversed_closed',
      ],
    );
  });

  it('the day report of every hospital reads the day app by app, refunds and reversals through their indexes', async () => {
    const c = capturing(db);
    await new ReportRepository(c.db).dayAggregate(from, to);
    assert.equal(c.queries.length, 1);
    const plan = await planOf(db, c.queries[0] as CompiledQuery);
    // The payments: trades_app_paid_at bounded by the app (not its whole length for a day of every app).
    assert.match(plan, /trades_app_paid_at[^\n]*\n[^\n]*Index Cond: \(\(app_id = /, plan);
    assert.match(plan, /refunds_app_success_at/, plan);
    assert.match(plan, /trades_insurance_reversed_closed/, plan);
  });

  it('the day report of one hospital reads its refunds through refunds_app_success_at', async () => {
    const c = capturing(db);
    await new ReportRepository(c.db).dayAggregate(from, to, t.appId);
    const plan = await planOf(db, c.queries[0] as CompiledQuery);
    assert.match(plan, /refunds_app_success_at/, plan);
    assert.doesNotMatch(plan, /Seq Scan on (trades|refunds)/, plan);
  });

  it('a business day’s runs, differences and open counts across every hospital use the date indexes', async () => {
    const c = capturing(db);
    const recon = new ReconciliationRepository(c.db);
    await recon.runs('2026-03-10');
    await recon.differences({ date: '2026-03-10' });
    await recon.openCounts('2026-03-10');
    assert.equal(c.queries.length, 3);
    const [runs, differences, open] = await Promise.all(c.queries.map((q) => planOf(db, q)));
    assert.match(runs ?? '', /recon_runs_date/, runs);
    assert.match(differences ?? '', /recon_differences_date/, differences);
    assert.match(open ?? '', /recon_differences_date/, open);
  });

  it('one app’s channel calls, newest first: through channel_calls_app_time, not a walk past the other apps’ calls', async () => {
    const c = capturing(db);
    const log = new ChannelCallLog(c.db, (e) => assert.fail(String(e)));
    const one = await log.list({ appId: 'HIST1', limit: 50 });
    const all = await log.list({ limit: 50 });
    const order = await log.list({ appId: 'HIST1', outTradeNo: 'MZH7', limit: 50 });
    assert.equal(c.queries.length, 3);
    const [onePlan, allPlan, orderPlan] = await Promise.all(c.queries.map((q) => planOf(db, q)));
    // Bounded by the app in the index, in the index's order: no filter over other apps' rows, no sort.
    assert.match(
      onePlan ?? '',
      /Index Scan Backward using channel_calls_app_time[^\n]*\n[^\n]*Index Cond: \(\(app_id >=/,
      onePlan,
    );
    assert.doesNotMatch(onePlan ?? '', /Filter|Sort|channel_calls_pkey|channel_calls_started/, onePlan);
    assert.match(allPlan ?? '', /Index Scan Backward using channel_calls_started/, allPlan);
    assert.doesNotMatch(orderPlan ?? '', /Seq Scan/, orderPlan);
    // Newest first: HIST1's last 50 calls (its calls ended early in the history), and the history's last calls.
    assert.deepEqual(
      one.map((r) => r.out_trade_no),
      Array.from({ length: 50 }, (_, i) => `MZH${2000 - i}`),
    );
    assert.ok(one.every((r) => r.app_id === 'HIST1'));
    assert.equal(all[0]?.out_trade_no, 'MZH30000');
    const starts = all.map((r) => r.started_at.getTime());
    assert.deepEqual(
      starts,
      [...starts].sort((a, b) => b - a),
    );
    assert.deepEqual(
      order.map((r) => [r.app_id, r.out_trade_no]),
      [['HIST1', 'MZH7']],
    );
  });

  it('the retention pass finds old reconciliation evidence through recon_evidence_fetched', async () => {
    const c = capturing(db);
    await purgeExpiredRecords(c.db, new Date(), {
      channelCallsMs: null,
      notifyAttemptsMs: null,
      reconEvidenceMs: 365 * 86_400_000,
      nonceGraceMs: 0,
    });
    const evidence = c.queries.find((q) => q.sql.includes('DELETE FROM recon_evidence'));
    assert.ok(evidence);
    const plan = await planOf(db, evidence);
    assert.match(plan, /recon_evidence_fetched/, plan);
  });
});

/**
 * docs/scaling.md's partitioning plan, applied to a copy of today's trades table in a scratch schema: trades by
 * month (RANGE on created_at), and the one rule that cannot be a unique constraint of a partitioned table,
 * "(app_id, out_trade_no) once, whatever the month", kept by a narrow key table and a foreign key.
 */
describe(
  `partitioning plan for trades (postgres only) (${TEST_DB})`,
  { skip: TEST_DB !== 'postgres' },
  () => {
    let t: TestPlatform;
    let c: pg.Client;
    const S = 'hospay_scaling_plan';
    before(async () => {
      t = await startTestPlatform();
      c = new pg.Client({ connectionString: dbUrl(t) });
      await c.connect();
      await c.query(`CREATE SCHEMA ${S}`);
      // Today's trades, as migrated (columns, defaults, CHECKs), partitioned by month.
      await c.query(`CREATE TABLE ${S}.trades (LIKE public.trades INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
      PARTITION BY RANGE (created_at)`);
      await c.query(`ALTER TABLE ${S}.trades ADD PRIMARY KEY (id, created_at)`);
      await c.query(`ALTER TABLE ${S}.trades ADD CONSTRAINT trades_trade_no UNIQUE (trade_no, created_at)`);
      for (const [name, lo, hi] of [
        ['trades_2026_01', '2026-01-01', '2026-02-01'],
        ['trades_2026_02', '2026-02-01', '2026-03-01'],
      ])
        await c.query(`CREATE TABLE ${S}.${name} PARTITION OF ${S}.trades
        FOR VALUES FROM ('${lo} 00:00:00+08') TO ('${hi} 00:00:00+08')`);
      await c.query(`CREATE TABLE ${S}.trades_default PARTITION OF ${S}.trades DEFAULT`);
      // The key table: (app_id, out_trade_no) once, forever, and which trade holds it.
      await c.query(`CREATE TABLE ${S}.trade_keys (
        app_id text NOT NULL,
        out_trade_no text NOT NULL,
        trade_id bigint NOT NULL,
        created_at timestamptz NOT NULL,
        PRIMARY KEY (app_id, out_trade_no),
        UNIQUE (app_id, out_trade_no, trade_id)
      ) PARTITION BY HASH (app_id)`);
      for (let i = 0; i < 4; i++)
        await c.query(`CREATE TABLE ${S}.trade_keys_${i} PARTITION OF ${S}.trade_keys
        FOR VALUES WITH (MODULUS 4, REMAINDER ${i})`);
      // Every trade holds its key, and a key names one trade: a second trade with the same (app, order number), in
      // any month, has no key to point to.
      await c.query(`ALTER TABLE ${S}.trades ADD CONSTRAINT trades_key FOREIGN KEY (app_id, out_trade_no, id)
      REFERENCES ${S}.trade_keys (app_id, out_trade_no, trade_id) DEFERRABLE INITIALLY DEFERRED`);
    });
    after(async () => {
      await c?.query(`DROP SCHEMA IF EXISTS ${S} CASCADE`);
      await c?.end();
      await t?.close();
    });

    /** insertOrGet's one statement in the plan: the key first; the trade only if the key was new. */
    const insertTrade = (no: string, at: string) =>
      c.query<{ id: string }>(
        `WITH k AS (
         INSERT INTO ${S}.trade_keys (app_id, out_trade_no, trade_id, created_at)
         VALUES ($1, $2, nextval('trades_id_seq'), $3)
         ON CONFLICT (app_id, out_trade_no) DO NOTHING
         RETURNING trade_id, created_at)
       INSERT INTO ${S}.trades (id, trade_no, app_id, out_trade_no, kind, status, category, order_type, total_fen,
                                subject, fingerprint, created_at, updated_at, expires_at)
       SELECT k.trade_id, 'HP' || k.trade_id, $1, $2, 'barcode', 'WAIT_BUYER_PAY', 'MZ', 'TREATMENT', 100, '门诊',
              'f', k.created_at, k.created_at, k.created_at + interval '5 minutes'
         FROM k
       RETURNING id`,
        [t.appId, no, at],
      );

    it('PostgreSQL refuses UNIQUE (app_id, out_trade_no) on the partitioned table (why the key table exists)', async () => {
      await assert.rejects(
        c.query(
          `ALTER TABLE ${S}.trades ADD CONSTRAINT trades_app_out_trade_no UNIQUE (app_id, out_trade_no)`,
        ),
        (e: { code?: string }) => e.code === '0A000',
      );
    });

    it('an order number paid in January cannot be used again in February', async () => {
      const first = await insertTrade('MZ202601150001', '2026-01-15T10:00:00+08:00');
      assert.equal(first.rows.length, 1);
      // The repeat in the next month: the key exists, nothing is written (insertOrGet then reads the first).
      const again = await insertTrade('MZ202601150001', '2026-02-03T09:00:00+08:00');
      assert.equal(again.rows.length, 0);
      const rows = await c.query(
        `SELECT tableoid::regclass AS part FROM ${S}.trades WHERE out_trade_no = $1`,
        ['MZ202601150001'],
      );
      assert.deepEqual(
        rows.rows.map((r: { part: string }) => r.part),
        [`${S}.trades_2026_01`],
      );
      // Written around the key table (a bug, a hand-made INSERT): the foreign key refuses it at commit.
      await c.query('BEGIN');
      await c.query(
        `INSERT INTO ${S}.trades (id, trade_no, app_id, out_trade_no, kind, status, category, order_type, total_fen,
                                subject, fingerprint, created_at, updated_at, expires_at)
       VALUES (nextval('trades_id_seq'), 'HPX', $1, 'MZ202601150001', 'barcode', 'WAIT_BUYER_PAY', 'MZ', 'TREATMENT',
               100, '门诊', 'f', '2026-02-03T09:00:00+08', '2026-02-03T09:00:00+08', '2026-02-03T09:05:00+08')`,
        [t.appId],
      );
      await assert.rejects(c.query('COMMIT'), (e: { code?: string }) => e.code === '23503');
      // And a second key for it is refused by the key table's own primary key.
      await assert.rejects(
        c.query(
          `INSERT INTO ${S}.trade_keys (app_id, out_trade_no, trade_id, created_at)
         VALUES ($1, 'MZ202601150001', 0, '2026-02-03T09:00:00+08')`,
          [t.appId],
        ),
        (e: { code?: string }) => e.code === '23505',
      );
    });

    it('another order number goes into its own month’s partition', async () => {
      const r = await insertTrade('MZ202602030002', '2026-02-03T09:30:00+08:00');
      assert.equal(r.rows.length, 1);
      const rows = await c.query(
        `SELECT tableoid::regclass AS part FROM ${S}.trades WHERE out_trade_no = $1`,
        ['MZ202602030002'],
      );
      assert.deepEqual(
        rows.rows.map((x: { part: string }) => x.part),
        [`${S}.trades_2026_02`],
      );
    });
  },
);

/** The test platform's PostgreSQL database. */
function dbUrl(p: TestPlatform): string {
  const store = p.platform.config.store;
  if (store.kind !== 'postgres') throw new Error('PostgreSQL only');
  return store.url;
}
