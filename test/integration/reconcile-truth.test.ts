import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authCode, barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_DB } from '../support/db.js';
import { startHisSimulator } from '../../src/reconcile/his/his-sim.js';
import { reconcileDay } from '../../src/reconcile/run.js';
import { RECONCILE_RETRIES, RECONCILE_RETRY_MS, ReconcileJob } from '../../src/jobs/reconciler.js';
import { fen } from '../../src/domain/money.js';

interface Listed {
  id: number;
  code: string;
  kind: string;
  out_trade_no: string;
  out_request_no: string | null;
  detail: { amounts?: Record<string, number>; statuses?: Record<string, string>; side?: string };
}

/**
 * Reconciliation that tells the truth (issue 12, section 4), through the doors: payments and refunds over the
 * offline XML door, the simulated channel's bill, the HIS simulator over HTTP, the admin API and the daily job.
 * Each scenario is its own business day of one app.
 */
describe(`reconciliation tells the truth (${TEST_DB})`, () => {
  let t: TestPlatform;
  let his: Awaited<ReturnType<typeof startHisSimulator>>;
  let deadUrl = '';

  before(async () => {
    t = await startTestPlatform();
    his = await startHisSimulator(0);
    // An address where nothing listens: the HIS is down.
    const dead = await startHisSimulator(0);
    deadUrl = dead.url;
    await dead.close();
    const set = await t.admin('PUT', `/admin/apps/${t.appId}/reconciliation`, {
      his_base_url: his.url,
      settings: { hisRetries: 0, hisTimeoutSeconds: 5 },
    });
    assert.equal(set.status, 200, JSON.stringify(set.data));
  });
  after(async () => {
    await his.close();
    await t.close();
  });

  const app = async () => (await t.platform.deps.apps.get(t.appId))!;
  /** A paid Alipay barcode payment of `amount` yuan; its order and trade numbers. */
  async function pay(amount: string): Promise<{ outTradeNo: string; tradeNo: string }> {
    const f = barcodeFields({ AuthCode: authCode('00', 'alipay'), TotalAmount: amount });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    return { outTradeNo: f.OutTradeNo ?? '', tradeNo: q.result.TradeNo ?? '' };
  }
  async function refund(
    p: { outTradeNo: string; tradeNo: string },
    total: string,
    amount: string,
    outRequestNo: string,
    reason?: string,
  ) {
    return t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: p.tradeNo,
      OutTradeNo: p.outTradeNo,
      TotalAmount: total,
      RefundAmount: amount,
      OutRequestNo: outRequestNo,
      ...(reason ? { RefundmentReason: reason } : {}),
    });
  }
  /** The HIS simulator holds what a well-behaved HIS has for the platform's trades (successful refunds only). */
  async function hisFromPlatform() {
    his.sim.reset();
    const { trades, refunds } = await t.platform.recon.reconciliation.paidMovements(t.appId);
    return his.sim.loadFromTrades(trades, refunds);
  }
  async function openDifferences(date: string): Promise<Listed[]> {
    const r = await t.admin(
      'GET',
      `/admin/reconciliation/differences?date=${date}&app=${t.appId}&state=OPEN&present=true`,
    );
    assert.equal(r.status, 200, JSON.stringify(r.data));
    return r.data['differences'] as Listed[];
  }

  it('a refund held as PROCESSING (the answer lost, the money moved) is exactly one STATUS_MISMATCH', async () => {
    t.clock.set('2026-11-25T02:00:00Z'); // 10:00 in Shanghai
    const p = await pay('10.00');
    const lost = await refund(p, '10.00', '4.00', 'RP1', 'SIMULATE_REFUND_ERROR');
    assert.equal(lost.rr.SubCode, 'REFUND_PROCESSING', lost.text);
    const row = await t.platform.deps.refunds.byRequestNo((await t.trade(p.outTradeNo)).id, 'RP1');
    assert.deepEqual(
      { status: row?.status, finished_at: row?.finished_at },
      { status: 'PROCESSING', finished_at: null },
    );
    await hisFromPlatform();

    const [outcome] = await reconcileDay(t.platform.recon, {
      app: await app(),
      date: '2026-11-25',
      payTypes: ['alipay'],
    });
    const diffs = await openDifferences('2026-11-25');
    assert.deepEqual(
      diffs.map((d) => [d.code, d.kind, d.out_trade_no, d.out_request_no]),
      [['STATUS_MISMATCH', 'refund', p.outTradeNo, 'RP1']],
      'not a CHANNEL_ONLY 漏单 plus a HIS-side STATUS_MISMATCH',
    );
    assert.deepEqual(diffs[0]?.detail.statuses, { platform: 'PROCESSING', channel: 'SUCCESS' });
    assert.deepEqual(diffs[0]?.detail.amounts, { platform: 400, channel: 400 });
    assert.equal(outcome?.status, 'DONE', 'the HIS was read: the run is complete');

    // The next day's run sees the still-unsettled refund too (a channel may book it after midnight), silently.
    const next = await reconcileDay(t.platform.recon, {
      app: await app(),
      date: '2026-11-26',
      payTypes: ['alipay'],
    });
    assert.equal(next[0]?.differences, 0, JSON.stringify(next));
  });

  it('two equal partial refunds of one order in the same second are no difference', async () => {
    t.clock.set('2026-11-27T02:00:00Z');
    const p = await pay('10.00');
    // The clock does not move: both refunds finish in the same second, and the HIS books both.
    assert.equal((await refund(p, '10.00', '2.00', 'RE1')).rr.IsSuccess, '1');
    assert.equal((await refund(p, '10.00', '2.00', 'RE2')).rr.IsSuccess, '1');
    const flows = await hisFromPlatform();
    const refundsOfDay = flows.filter((f) => f.kind === 'REFUND' && f.outTradeNo === p.outTradeNo);
    assert.equal(refundsOfDay.length, 2);
    assert.equal(refundsOfDay[0]?.time.getTime(), refundsOfDay[1]?.time.getTime());

    const [clean] = await reconcileDay(t.platform.recon, {
      app: await app(),
      date: '2026-11-27',
      payTypes: ['alipay'],
    });
    assert.equal(clean?.differences, 0, JSON.stringify(clean));
    assert.deepEqual(await openDifferences('2026-11-27'), [], 'no false DUPLICATE + STATUS_MISMATCH');
    assert.equal(clean?.totals?.his?.refund.count, 2);

    // A real repeat is still found: the HIS lists one of the refunds a third time.
    his.sim.faults.duplicate.add(refundsOfDay[1]?.hisFlowId ?? '');
    await reconcileDay(t.platform.recon, { app: await app(), date: '2026-11-27', payTypes: ['alipay'] });
    const dup = await openDifferences('2026-11-27');
    assert.deepEqual(
      dup.map((d) => [d.code, d.kind, d.detail.side]),
      [['DUPLICATE', 'refund', 'his']],
    );
    his.sim.faults.duplicate.clear();
  });

  it('the HIS unreachable: the run is INCOMPLETE, the daily job says so and retries; the CSV tells it in Chinese, in id order', async () => {
    t.clock.set('2026-11-29T02:00:00Z');
    const lostAtHis = await pay('20.00');
    const wrongAtHis = await pay('30.00');
    await pay('40.00');
    const flows = await hisFromPlatform();
    // Once the HIS is back it will show two faults: a lost payment (长款) and a wrong amount.
    his.sim.faults.drop.add(flows.find((f) => f.outTradeNo === lostAtHis.outTradeNo)?.hisFlowId ?? '');
    his.sim.faults.amountFen.set(
      flows.find((f) => f.outTradeNo === wrongAtHis.outTradeNo)?.hisFlowId ?? '',
      fen(2999),
    );
    await t.store.db.updateTable('apps').set({ his_base_url: deadUrl }).where('id', '=', t.appId).execute();

    const job = new ReconcileJob(t.platform.recon);
    t.clock.set('2026-11-30T02:00:00Z'); // 10:00 the next morning
    assert.equal(await job.tick(), '2026-11-29');
    const runs = (await t.platform.recon.reconciliation.runs('2026-11-29', t.appId)).map((r) => ({
      pay_type: r.pay_type,
      status: r.status,
      error: r.error,
    }));
    const alipay = runs.find((r) => r.pay_type === 'alipay');
    assert.equal(alipay?.status, 'INCOMPLETE', JSON.stringify(runs));
    assert.match(alipay?.error ?? '', /HIS/);
    const claim = (await t.platform.recon.jobClaims.attempts('daily-reconcile', '2026-11-29')).find(
      (c) => c.key === '2026-11-29',
    );
    assert.ok(claim);
    const result = JSON.parse(claim.result ?? '{}') as { retry: string[]; incomplete: string[] };
    assert.deepEqual(result.retry, [t.appId]);
    assert.ok(
      result.incomplete.some((x) => x.startsWith(`${t.appId}/alipay: `)),
      claim.result ?? '',
    );
    assert.match(t.logs(), /daily reconciliation incomplete: will retry/);

    // The report says 未完成 (in Chinese, as the page does).
    const csv1 = await csvOf('2026-11-29');
    assert.ok(
      csv1.some((l) => l.startsWith(`${t.appId},alipay,支付宝,未完成(INCOMPLETE),`)),
      csv1.join('\n'),
    );

    // Not yet: the retry waits its interval. The HIS comes back meanwhile.
    t.clock.advance(RECONCILE_RETRY_MS / 2);
    assert.equal(await job.tick(), null);
    await t.store.db.updateTable('apps').set({ his_base_url: his.url }).where('id', '=', t.appId).execute();
    t.clock.advance(RECONCILE_RETRY_MS / 2 + 60_000);
    // A second instance does not run the same retry twice.
    const other = new ReconcileJob((await t.second()).recon);
    const ran = await Promise.all([job.tick(), other.tick()]);
    assert.deepEqual(
      ran.filter((x) => x !== null),
      ['2026-11-29#1'],
    );
    const after = await t.platform.recon.reconciliation.run(t.appId, '2026-11-29', 'alipay');
    assert.deepEqual({ status: after?.status, error: after?.error }, { status: 'DONE', error: null });
    assert.match(t.logs(), /daily reconciliation done/);
    t.clock.advance(RECONCILE_RETRY_MS + 60_000);
    assert.equal(await job.tick(), null, 'complete: nothing more to retry');
    assert.ok(RECONCILE_RETRIES >= 1);

    // The differences the complete run found, in the CSV: in id order (the finance page's numbers), 完成.
    const diffs = await openDifferences('2026-11-29');
    assert.deepEqual(
      diffs.map((d) => d.code),
      ['HIS_MISSING', 'AMOUNT_MISMATCH'],
    );
    // The channel matched the platform: its amount is beside the HIS-side differences.
    assert.deepEqual(diffs[0]?.detail.amounts, { platform: 2000, channel: 2000 });
    assert.deepEqual(diffs[1]?.detail.amounts, { platform: 3000, channel: 3000, his: 2999 });
    const csv2 = await csvOf('2026-11-29');
    assert.ok(
      csv2.some((l) => l.startsWith(`${t.appId},alipay,支付宝,完成(DONE),`)),
      csv2.join('\n'),
    );
    const header = csv2.findIndex((l) => l.startsWith('编号(id),'));
    assert.ok(header > 0, csv2.join('\n'));
    const rows = csv2.slice(header + 1).filter((l) => /^\d+,/.test(l));
    const ids = rows.map((l) => Number(l.split(',')[0]));
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => a - b),
      'differences in id order',
    );
    assert.deepEqual(
      rows.map((l) => l.split(',')[3]),
      ['HIS_MISSING', 'AMOUNT_MISMATCH'],
    );
    assert.ok(rows.every((l) => l.includes(',未处理(OPEN),')));
    // The channel's amount is in the CSV too (column 渠道金额).
    assert.equal(rows[0]?.split(',')[9], '20.00');
  });

  it('an incomplete re-run keeps the HIS-side differences an earlier run found', async () => {
    await t.store.db.updateTable('apps').set({ his_base_url: deadUrl }).where('id', '=', t.appId).execute();
    try {
      const [o] = await reconcileDay(t.platform.recon, {
        app: await app(),
        date: '2026-11-29',
        payTypes: ['alipay'],
      });
      assert.deepEqual(
        (await openDifferences('2026-11-29')).map((d) => d.code),
        ['HIS_MISSING', 'AMOUNT_MISMATCH'],
        'not erased by a run that could not read the HIS',
      );
      assert.equal(o?.status, 'INCOMPLETE');
      assert.equal(o?.differences, 2, 'the kept ones are the run’s differences too');
    } finally {
      await t.store.db.updateTable('apps').set({ his_base_url: his.url }).where('id', '=', t.appId).execute();
    }
  });

  async function csvOf(date: string): Promise<string[]> {
    const res = await fetch(`${t.url}/admin/reports/day?date=${date}&app=${t.appId}&format=csv`, {
      headers: { authorization: 'Bearer test-admin-token-0123456789abcdef' },
    });
    assert.equal(res.status, 200);
    return (await res.text()).replace(/^\uFEFF/, '').split('\r\n');
  }
});
