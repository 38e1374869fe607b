import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  authCode,
  barcodeFields,
  orderNo,
  qrFields,
  startTestPlatform,
  type TestPlatform,
} from '../support/platform.js';
import { type FakeUnionPay } from '../fakes/unionpay-server.js';
import { useFakeUnionPay } from '../support/fakes-platform.js';

/**
 * hospay with the UnionPay adapter against the fake UnionPay gateway, through the real doors: a QR trade made
 * through the offline XML door shows UnionPay's code, the payer pays, UnionPay's notice makes the trade paid;
 * the day's reconciliation (POST /admin/reconcile) downloads the fake's reconciliation file and matches it, and
 * a movement the platform lacks shows as a difference.
 */
describe('UnionPay through the doors: QR pay, notice, reconciliation file', () => {
  let t: TestPlatform;
  let fake: FakeUnionPay;
  // The fake gateway's certificates are made now (valid from today): the platform clock is set to now, and the
  // fake gateway books by the same clock.
  let DAY = '';
  let MMDD = '';

  before(async () => {
    t = await startTestPlatform();
    fake = await useFakeUnionPay(t);
    DAY = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai' }).format(t.clock.now());
    MMDD = DAY.slice(5, 7) + DAY.slice(8, 10);
  });
  after(async () => {
    await fake?.close();
    await t?.close();
  });

  const notice = async (no: string) => {
    const n = fake.notification(no);
    const res = await fetch(`${t.url}/channels/unionpay/notify/${t.appId}`, {
      method: 'POST',
      headers: n.headers,
      body: n.body,
    });
    return { status: res.status, text: await res.text() };
  };

  let qrNo = '';
  it('FWC_IF_Qrcode_Pay answers UnionPay’s code; the payer pays; the notice makes the trade paid', async () => {
    const f = qrFields({ TotalAmount: '25.50' });
    qrNo = f.OutTradeNo ?? '';
    const created = await t.offline('FWC_IF_Qrcode_Pay', { ...f, PayType: 'unionpay' });
    assert.equal(created.rr.IsSuccess, '1', created.text);
    const code = created.result.TwoDimensionCode ?? '';
    assert.match(code, /^https:\/\/qr\.95516\.com\/00010000\/\d+$/);
    assert.equal(fake.trade(qrNo)?.state, 'waiting');
    assert.equal(fake.trade(qrNo)?.amountFen, 2550);
    const sent = fake.received().filter((r) => r.op === 'precreate');
    assert.ok(sent.length === 1 && sent[0]?.signatureValid, 'one signed QR order');
    assert.equal(sent[0]?.fields['backUrl'], `${t.url}/channels/unionpay/notify/${t.appId}`);
    // A repeat of the same request answers the same code without a second order.
    const again = await t.offline('FWC_IF_Qrcode_Pay', { ...f, PayType: 'unionpay' });
    assert.equal(again.result.TwoDimensionCode, code);
    assert.equal(fake.received().filter((r) => r.op === 'precreate').length, 1);

    assert.equal((await t.trade(qrNo)).status, 'WAIT_BUYER_PAY');
    assert.equal(fake.payQr(code), qrNo);
    // A forged notice changes nothing and asks UnionPay to send again.
    const forged = fake.notification(qrNo, { tamper: true });
    const bad = await fetch(`${t.url}/channels/unionpay/notify/${t.appId}`, {
      method: 'POST',
      headers: forged.headers,
      body: forged.body,
    });
    assert.notEqual(bad.status, 200);
    assert.equal((await t.trade(qrNo)).status, 'WAIT_BUYER_PAY');
    const ok = await notice(qrNo);
    assert.equal(ok.status, 200, ok.text);
    const trade = await t.trade(qrNo);
    assert.equal(trade.status, 'TRADE_SUCCESS');
    assert.equal(trade.channel, 'unionpay');
    assert.ok(trade.channel_trade_no, 'the queryId is stored');
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: qrNo });
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS', q.text);
  });

  it('the day reconciles against UnionPay’s file with no difference; a movement the platform lacks shows', async () => {
    // A payment-code payment and a partial refund of it, on the same day.
    const f = barcodeFields({ AuthCode: authCode('00', 'unionpay'), TotalAmount: '100.00' });
    const paid = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(paid.rr.IsSuccess, '1', paid.text);
    const refund = await t.offline('FWC_IF_Barcode_Pay_Refund', {
      OutTradeNo: f.OutTradeNo,
      TradeNo: paid.result.TradeNo,
      RefundAmount: '30.00',
      OutRequestNo: `${f.OutTradeNo ?? ''}R1`,
      TotalAmount: '100.00',
    });
    assert.equal(refund.rr.IsSuccess, '1', refund.text);

    const run = await t.admin('POST', '/admin/reconcile', { date: DAY, app_id: t.appId });
    assert.equal(run.status, 200, JSON.stringify(run.data));
    const outcomes = run.data['outcomes'] as Array<{
      payType: string;
      status?: string;
      matched: number;
      differences: number;
      skipped?: string;
    }>;
    const up = outcomes.find((o) => o.payType === 'unionpay');
    assert.ok(up, JSON.stringify(outcomes));
    assert.equal(up.skipped, undefined, JSON.stringify(up));
    assert.equal(up.status, 'DONE');
    assert.equal(up.differences, 0, JSON.stringify(up));
    assert.equal(up.matched, 3, 'the QR payment, the barcode payment and its refund');
    const asked = fake.received().filter((r) => r.op === 'bill');
    assert.equal(asked.pop()?.fields['settleDate'], MMDD);

    // UnionPay's file holds a payment the platform never made.
    const stray = orderNo('MZ');
    fake.plantBillLine(DAY, {
      kind: 'payment',
      traceTime: `${MMDD}093000`,
      amountFen: 4200,
      feeFen: 0,
      queryId: `58${DAY.slice(2, 4)}${MMDD}0930000199999`,
      orderId: stray,
      reqReserved: stray,
    });
    const again = await t.admin('POST', '/admin/reconcile', { date: DAY, app_id: t.appId });
    const up2 = (again.data['outcomes'] as typeof outcomes).find((o) => o.payType === 'unionpay');
    assert.equal(up2?.differences, 1, JSON.stringify(up2));
    const diffs = await t.platform.recon.reconciliation.differences({ date: DAY, present: true });
    const d = diffs.find((x) => x.out_trade_no === stray);
    assert.ok(d, JSON.stringify(diffs));
    assert.equal(d.code, 'CHANNEL_ONLY');
    assert.equal(d.pay_type, 'unionpay');
  });
});
