import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authCode, barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { startHisSimulator } from '../../src/reconcile/his/his-sim.js';
import { reconcileDay, resolveDifference } from '../../src/reconcile/run.js';
import { ReconcileJob } from '../../src/jobs/reconciler.js';
import { SimulatorProvider } from '../../src/simulator/provider.js';
import { fen } from '../../src/domain/money.js';

/** A business day reconciled end to end: platform ↔ simulated channel bill ↔ HIS simulator over HTTP. */
describe('reconcile a day', () => {
  let t: TestPlatform;
  let his: Awaited<ReturnType<typeof startHisSimulator>>;
  before(async () => {
    t = await startTestPlatform();
    his = await startHisSimulator(0);
    await t.store.db.updateTable('apps').set({ his_base_url: his.url }).where('id', '=', t.appId).execute();
  });
  after(async () => {
    await his.close();
    await t.close();
  });

  const app = async () => (await t.platform.deps.apps.get(t.appId))!;
  const run = async () =>
    reconcileDay(t.platform.recon, { app: await app(), date: '2026-11-25', payTypes: ['alipay'] });

  it('a clean day has no differences; each injected fault is found and classified; resolutions survive re-runs', async () => {
    const nos: string[] = [];
    for (const amount of ['10.00', '20.00', '30.00', '40.00']) {
      const f = barcodeFields({ AuthCode: authCode('00', 'alipay'), TotalAmount: amount });
      assert.equal((await t.offline('FWC_IF_Barcode_Pay', f)).rr.IsSuccess, '1');
      nos.push(f.OutTradeNo ?? '');
    }
    const paid = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: nos[0] });
    await t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: paid.result.TradeNo,
      RefundAmount: '5.00',
      OutRequestNo: 'RC1',
      OutTradeNo: nos[0],
      TotalAmount: '10.00',
    });
    const { trades, refunds } = await t.platform.recon.reconciliation.paidMovements();
    const flows = his.sim.loadFromTrades(trades, refunds);
    assert.equal(flows.length, 5);

    const clean = await run();
    assert.equal(clean[0]?.differences, 0, JSON.stringify(clean));
    assert.ok((clean[0]?.matched ?? 0) >= 5);

    // Faults: the HIS lost a payment (长款), records one with no payment behind it (短款), has a wrong amount;
    // the channel took a payment the platform never recorded (漏单).
    const lost = flows.find((f) => f.outTradeNo === nos[1]);
    const wrong = flows.find((f) => f.outTradeNo === nos[2]);
    his.sim.faults.drop.add(lost?.hisFlowId ?? '');
    his.sim.faults.amountFen.set(wrong?.hisFlowId ?? '', fen(2999));
    his.sim.addExtra({ amountFen: fen(777), time: new Date('2026-11-25T03:00:00Z'), payType: 'alipay' });
    const provider = new SimulatorProvider({ db: t.store.db, clock: t.clock, publicBaseUrl: t.url });
    await provider.barcodePay({
      merchant: t.appId,
      outTradeNo: 'MZGHOST0001',
      payType: 'alipay',
      amountFen: fen(1234),
      authCode: authCode('00'),
      subject: 'ghost',
    });

    const faulty = await run();
    const rows = await t.platform.recon.reconciliation.differences({ date: '2026-11-25', present: true });
    const codes = rows.map((r) => `${r.code}:${r.out_trade_no}`).sort();
    assert.ok(codes.includes(`HIS_MISSING:${nos[1]}`), codes.join(' '));
    assert.ok(codes.includes(`AMOUNT_MISMATCH:${nos[2]}`), codes.join(' '));
    assert.ok(codes.includes('CHANNEL_ONLY:MZGHOST0001'), codes.join(' '));
    assert.ok(
      codes.some((c) => c.startsWith('HIS_ONLY:')),
      codes.join(' '),
    );
    assert.equal(faulty[0]?.open, rows.length);

    // Each HIS-side difference was checked once more with HIS_IF_Query, and the report says what it found.
    const missing = JSON.parse(rows.find((r) => r.code === 'HIS_MISSING')?.detail ?? '{}') as {
      hisCheck?: { found: boolean; suggestion: { zh: string } };
    };
    assert.equal(missing.hisCheck?.found, false);
    assert.match(missing.hisCheck?.suggestion.zh ?? '', /退款给患者/);
    const amount = JSON.parse(rows.find((r) => r.code === 'AMOUNT_MISMATCH')?.detail ?? '{}') as {
      hisCheck?: { netFen: number };
    };
    assert.equal(amount.hisCheck?.netFen, 2999);
    const target = rows.find((r) => r.code === 'HIS_MISSING');
    assert.ok(
      await resolveDifference(
        t.platform.recon,
        target?.id ?? 0,
        'finance-01',
        'HIS 已补录 / written back by the HIS',
      ),
    );
    const again = await run();
    assert.equal(again[0]?.differences, rows.length, 're-running finds the same differences');
    assert.equal(again[0]?.open, rows.length - 1, 'the resolution is kept');
    const kept = await t.platform.recon.reconciliation.difference(target?.id ?? 0);
    assert.ok(kept);
    assert.equal(kept.state, 'RESOLVED');
    assert.equal(kept.resolved_by, 'finance-01');
    const audit = await t.platform.recon.reconciliation.audit(target?.id ?? 0);
    assert.equal(audit.length, 1);
  });

  it('the daily schedule reconciles yesterday at 10:00, once, even with two instances', async () => {
    const other = await t.second();
    const one = new ReconcileJob(t.platform.recon);
    const two = new ReconcileJob(other.recon);
    t.clock.set('2026-11-26T01:59:00Z'); // 09:59 in Shanghai: not yet
    assert.deepEqual(await Promise.all([one.tick(), two.tick()]), [null, null]);
    t.clock.set('2026-11-26T02:00:00Z'); // 10:00
    const ran = await Promise.all([one.tick(), two.tick()]);
    assert.deepEqual(
      ran.filter((x) => x !== null),
      ['2026-11-25'],
    );
    assert.deepEqual(await Promise.all([one.tick(), two.tick()]), [null, null], 'not twice');
    const claim = (await t.platform.recon.jobClaims.attempts('daily-reconcile', '2026-11-25')).find(
      (c) => c.key === '2026-11-25',
    );
    assert.ok(claim?.finished_at);
  });
});
