import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { TEST_DB } from '../support/db.js';
import { barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { PURGE_BATCH, PURGE_MAX_BATCHES, purgeSpentNonces } from '../../src/store/retention.js';

const DAY = 86_400_000;

/**
 * Retention (docs/operations.md, "Retention"): with the shortest windows (1 day) and 400 days later, the expiry
 * job purges channel calls, notification attempts, reconciliation evidence no OPEN difference needs and spent
 * nonces, in bounded batches, on two instances at once; trades, refunds, notifications, the reconciliation's
 * differences, the desk's audit trail and requests stay, every one.
 */
describe(`retention (${TEST_DB})`, () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform({
      env: {
        HOSPAY_CALL_RETENTION: '1d',
        HOSPAY_ATTEMPT_RETENTION: '1d',
        HOSPAY_EVIDENCE_RETENTION: '1d',
      },
    });
  });
  after(async () => {
    await t?.close();
  });

  const db = () => t.store.db;
  const count = async (table: string) =>
    Number(
      (await sql<{ n: string }>`SELECT count(*)::text AS n FROM ${sql.table(table)}`.execute(db())).rows[0]
        ?.n,
    );
  const KEPT = [
    'trades',
    'refunds',
    'notifications',
    'recon_differences',
    'desk_audit',
    'desk_requests',
    'apps',
    'platform_keys',
  ];

  async function evidence(businessDate: string, payType: string): Promise<void> {
    await db()
      .insertInto('recon_evidence')
      .values({
        app_id: t.appId,
        business_date: businessDate,
        pay_type: payType,
        source: 'CHANNEL_BILL',
        seq: 1,
        request: '{}',
        records: 1,
        raw: 'bill',
        fetched_at: t.clock.now(),
      })
      .execute();
  }

  async function difference(businessDate: string, payType: string, state: 'OPEN' | 'RESOLVED', no: string) {
    await db()
      .insertInto('recon_differences')
      .values({
        app_id: t.appId,
        business_date: businessDate,
        pay_type: payType,
        diff_key: `k-${no}`,
        code: 'LONG',
        kind: 'trade',
        out_trade_no: no,
        detail: '{}',
        state,
        created_at: t.clock.now(),
        updated_at: t.clock.now(),
      })
      .execute();
  }

  it('tiny windows, 400 days on: old records go; every trade, refund, notification, difference and audit entry stays', async () => {
    // Trades: paid, paid and partly refunded, paid and fully refunded.
    const paid: Array<{ no: string; tradeNo: string }> = [];
    for (let i = 0; i < 3; i++) {
      const f = barcodeFields({ TotalAmount: '10.00' });
      const a = await t.offline('FWC_IF_Barcode_Pay', f);
      assert.equal(a.rr.IsSuccess, '1', a.text);
      const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
      paid.push({ no: f.OutTradeNo ?? '', tradeNo: q.result.TradeNo ?? '' });
    }
    for (const [i, amount] of [
      [1, '3.00'],
      [2, '10.00'],
    ] as const) {
      const p = paid[i];
      const r = await t.offline('FWC_IF_Barcode_Pay_Refund', {
        TradeNo: p?.tradeNo,
        OutTradeNo: p?.no,
        RefundAmount: amount,
        OutRequestNo: `RET-${i}`,
        TotalAmount: '10.00',
      });
      assert.equal(r.rr.IsSuccess, '1', r.text);
    }
    const first = await t.trade(paid[0]?.no ?? '');
    // A notification with an attempt, the desk's audit and a maker-checker request, reconciliation records.
    await db()
      .insertInto('notifications')
      .values({
        notify_id: 'N-RET-1',
        app_id: t.appId,
        trade_id: first.id,
        url: 'https://his.example.cn/notify',
        trade_status: 'TRADE_SUCCESS',
        status: 'DELIVERED',
        next_attempt_at: t.clock.now(),
        created_at: t.clock.now(),
      })
      .execute();
    const n = await db()
      .selectFrom('notifications')
      .select('id')
      .where('notify_id', '=', 'N-RET-1')
      .executeTakeFirstOrThrow();
    await db()
      .insertInto('notify_attempts')
      .values({
        notification_id: n.id,
        attempt: 1,
        started_at: t.clock.now(),
        http_status: 200,
        latency_ms: 5,
        body_excerpt: 'success',
        error: null,
      })
      .execute();
    await t.platform.deps.audit.record({
      at: t.clock.now(),
      actor: 'admin',
      role: 'platform_admin',
      via: 'admin-token',
      action: 'test.retention',
      appId: t.appId,
      outcome: 'ok',
    });
    await db()
      .insertInto('desk_requests')
      .values({
        app_id: t.appId,
        trade_id: first.id,
        out_trade_no: first.out_trade_no,
        kind: 'refund',
        amount_fen: 100,
        reason: '测试',
        out_request_no: 'DESK-RET-1',
        status: 'REJECTED',
        requested_by: 'maker',
        requested_at: t.clock.now(),
        decided_by: 'checker',
        decided_at: t.clock.now(),
      })
      .execute();
    await evidence('2026-01-01', 'alipay'); // its day has an OPEN difference: kept
    await evidence('2026-01-02', 'alipay'); // its difference is resolved: goes
    await evidence('2026-01-01', 'weixin'); // no difference for this pay type: goes
    await difference('2026-01-01', 'alipay', 'OPEN', paid[0]?.no ?? '');
    await difference('2026-01-02', 'alipay', 'RESOLVED', paid[1]?.no ?? '');
    // Spent nonces: one past its replay window long ago, one still replayable.
    await db()
      .insertInto('gateway_nonces')
      .values([
        { app_id: t.appId, nonce: 'old-nonce', expires_at: t.clock.now() },
        { app_id: t.appId, nonce: 'fresh-nonce', expires_at: new Date(t.clock.now().getTime() + 500 * DAY) },
      ])
      .execute();
    await t.platform.deps.channelCalls.flush();

    const before: Record<string, number> = {};
    for (const table of KEPT) before[table] = await count(table);
    assert.ok((await count('channel_calls')) >= 3, 'channel calls recorded');
    assert.ok((await count('notify_attempts')) >= 1, 'an attempt recorded');
    assert.equal(before['desk_audit'], 1);
    assert.equal(before['refunds'], 2);

    t.clock.advance(400 * DAY);
    const second = await t.second();
    await Promise.all([t.platform.expiry.tick(), second.expiry.tick()]);

    for (const table of KEPT) assert.equal(await count(table), before[table], `${table}: every row stays`);
    // The calls of the order with an OPEN difference stay; every other old call goes.
    const calls = await db().selectFrom('channel_calls').select('out_trade_no').execute();
    assert.ok(calls.length >= 1, 'the calls an OPEN difference needs stay');
    assert.deepEqual(new Set(calls.map((c) => c.out_trade_no)), new Set([paid[0]?.no]), 'the rest go');
    assert.equal(await count('notify_attempts'), 0, 'attempts of a finished notification go');
    const left = await db().selectFrom('recon_evidence').select(['business_date', 'pay_type']).execute();
    assert.deepEqual(
      left,
      [{ business_date: '2026-01-01', pay_type: 'alipay' }],
      'what an OPEN difference needs',
    );
    const nonces = await db().selectFrom('gateway_nonces').select('nonce').execute();
    assert.deepEqual(
      nonces.map((x) => x.nonce),
      ['fresh-nonce'],
    );
    // The job says what it did.
    assert.match(t.logs(), /records past their retention purged/);
    assert.match(t.logs(), /"reconEvidence":2/);
    assert.match(t.logs(), /"nonces":1/);
    // The trades still answer, refunds included.
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: paid[2]?.no });
    assert.equal(q.result.RefundFee, '10.00', q.text);
  });

  it('spent nonces go in bounded batches, never before their grace is over', async () => {
    const now = t.clock.now();
    await sql`INSERT INTO gateway_nonces (app_id, nonce, expires_at)
              SELECT ${t.appId}, 'bulk-' || g, ${new Date(now.getTime() - 2 * 3_600_000)}::timestamptz
              FROM generate_series(1, ${PURGE_BATCH * PURGE_MAX_BATCHES + 5}) g`.execute(db());
    await db()
      .insertInto('gateway_nonces')
      .values({ app_id: t.appId, nonce: 'grace-nonce', expires_at: new Date(now.getTime() - 30 * 60_000) })
      .execute();
    // A grace of an hour: the one 30 minutes past its window stays.
    const one = await purgeSpentNonces(db(), now, 3_600_000);
    assert.deepEqual(one, { removed: PURGE_BATCH * PURGE_MAX_BATCHES, more: true }, 'one pass is bounded');
    const two = await purgeSpentNonces(db(), now, 3_600_000);
    assert.deepEqual(two, { removed: 5, more: false });
    const left = await db()
      .selectFrom('gateway_nonces')
      .select('nonce')
      .where('nonce', 'like', '%nonce')
      .execute();
    assert.deepEqual(left.map((x) => x.nonce).sort(), ['fresh-nonce', 'grace-nonce']);
  });
});
