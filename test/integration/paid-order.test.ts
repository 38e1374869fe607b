import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { channelCharges } from '../support/books.js';
import type { Channel } from '../../src/channels/channel.js';
import {
  authCode,
  barcodeFields,
  orderNo,
  qrFields,
  startTestPlatform,
  type TestPlatform,
} from '../support/platform.js';
import { TEST_APP_KEY, gateway, verifyAnswer } from '../support/gateway.js';
import { postForm } from '../support/payer.js';

/**
 * Issue 12 §3: a pay request for an order that is already paid (the cashier scans again after a time-out, the
 * kiosk or the H5 page submits again) is answered "paid" with the paid trade, and nothing is charged again.
 */
describe('a pay request for an order that is already paid', () => {
  let t: TestPlatform;
  /** Calls that reach the simulator channel, by operation. */
  const calls: Record<string, number> = {};
  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    const sim = t.platform.deps.channels.get('simulator') as Channel;
    const target = sim as unknown as Record<string, unknown>;
    for (const op of ['barcodePay', 'query', 'precreate', 'wapPay']) {
      const fn = target[op];
      if (typeof fn !== 'function') continue;
      const bound = (fn as (...a: unknown[]) => Promise<unknown>).bind(sim);
      target[op] = (...a: unknown[]) => {
        calls[op] = (calls[op] ?? 0) + 1;
        return bound(...a);
      };
    }
  });
  after(async () => {
    await t.close();
  });

  const channelCalls = () => Object.values(calls).reduce((a, b) => a + b, 0);
  /** The simulated provider's own books: money taken for an order number. */
  const charges = (outTradeNo: string) => channelCharges(t.store.db, outTradeNo);
  it('barcode: a new payment code (another channel, operator, terminal) for a paid order → IsSuccess 1, TRADE_HAS_SUCCESS, the paid trade; the new code is never charged', async () => {
    const f = barcodeFields({ OperatorID: 'OP01', TerminalID: 'T01' });
    const first = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(first.rr.SubCode, 'SUCCESS', first.text);
    const before = channelCalls();
    for (const again of [
      { AuthCode: authCode() },
      { AuthCode: authCode('00', 'weixin'), OperatorID: 'OP02', TerminalID: 'T02', Cnt: '3' },
      { AuthCode: authCode('00', 'unionpay'), PayType: 'unionpay', Caption: '门诊缴费（重扫）' },
    ]) {
      const a = await t.offline('FWC_IF_Barcode_Pay', { ...f, ...again });
      assert.equal(a.rr.IsSuccess, '1', a.text);
      assert.equal(a.rr.SubCode, 'TRADE_HAS_SUCCESS');
      assert.equal(
        a.rr.SubMessage,
        '订单已支付，请勿重复收费 / the order is already paid; do not charge again',
      );
      assert.equal(a.result.TradeStatus, 'TRADE_SUCCESS');
      assert.equal(a.result.TradeNo, first.result.TradeNo);
      assert.equal(a.result.PlatformTradeNo, first.result.PlatformTradeNo);
      assert.equal(a.result.TotalAmount, '88.88');
      assert.equal(a.result.PaymentDateTime, first.result.PaymentDateTime);
      assert.equal(a.result.PayType, 'alipay', 'the way it was paid');
    }
    assert.equal(channelCalls(), before, 'no channel call at all');
    assert.equal(await charges(f.OutTradeNo ?? ''), 1, 'charged once, with the first code');
  });

  it('barcode: another amount or patient under a paid order number → TRADE_HAS_SUCCESS with IsSuccess 0 and the paid amount; nothing charged', async () => {
    const f = barcodeFields();
    await t.offline('FWC_IF_Barcode_Pay', f);
    const before = channelCalls();
    for (const change of [
      { TotalAmount: '88.89', AuthCode: authCode() },
      { PatientName: '王五', AuthCode: authCode() },
      { TotalAmount: '1.00' },
    ]) {
      const a = await t.offline('FWC_IF_Barcode_Pay', { ...f, ...change });
      assert.equal(a.rr.IsSuccess, '0', a.text);
      assert.equal(a.rr.SubCode, 'TRADE_HAS_SUCCESS');
      assert.match(a.rr.SubMessage, /已支付.*勿重复收费/);
      assert.equal(a.result.TradeStatus, 'TRADE_SUCCESS');
      assert.equal(a.result.TotalAmount, '88.88', 'the amount paid, not the one asked');
    }
    assert.equal(channelCalls(), before);
    assert.equal(await charges(f.OutTradeNo ?? ''), 1);
    const row = await t.trade(f.OutTradeNo ?? '');
    assert.equal(row.total_fen, 8888);
    assert.equal(row.patient_name, '张三');
  });

  it('barcode: a new code while the first is still being confirmed → USER_PAYING (WAIT_BUYER_PAY), the new code is not charged; the query then shows the first payment', async () => {
    // Rule 01: the patient enters a password; paid on the 2nd query. Cnt=0: the first answer is "paying".
    const f = barcodeFields({ AuthCode: authCode('01'), Cnt: '0' });
    const first = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(first.rr.SubCode, 'USER_PAYING', first.text);
    const pays = calls['barcodePay'] ?? 0;
    const a = await t.offline('FWC_IF_Barcode_Pay', { ...f, AuthCode: authCode() });
    assert.equal(a.rr.IsSuccess, '0', a.text);
    assert.equal(a.rr.SubCode, 'USER_PAYING');
    assert.match(a.rr.SubMessage, /先前的付款码.*勿用新订单号重复收费/);
    assert.equal(a.result.TradeStatus, 'WAIT_BUYER_PAY');
    assert.equal(a.result.PlatformTradeNo, first.result.PlatformTradeNo);
    assert.equal(calls['barcodePay'] ?? 0, pays, 'the new code never reaches the channel');
    let q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    if (q.result.TradeStatus !== 'TRADE_SUCCESS')
      q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS', q.text);
    assert.equal(await charges(f.OutTradeNo ?? ''), 1);
  });

  it('barcode: a new code for an order closed unpaid → TRADE_HAS_CLOSE with TRADE_CLOSED (a new OutTradeNo is needed); not charged', async () => {
    const f = barcodeFields({ AuthCode: authCode('03') }); // rule 03: balance not enough, closed
    const first = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(first.result.TradeStatus, 'TRADE_CLOSED', first.text);
    const pays = calls['barcodePay'] ?? 0;
    const a = await t.offline('FWC_IF_Barcode_Pay', { ...f, AuthCode: authCode() });
    assert.equal(a.rr.IsSuccess, '0');
    assert.equal(a.rr.SubCode, 'TRADE_HAS_CLOSE', a.text);
    assert.equal(a.result.TradeStatus, 'TRADE_CLOSED');
    assert.equal(calls['barcodePay'] ?? 0, pays);
    assert.equal(await charges(f.OutTradeNo ?? ''), 0);
  });

  it('barcode: an order number still unpaid with other content is still refused OUT_TRADE_NO_CONFLICT', async () => {
    const f = barcodeFields({ AuthCode: authCode('02'), Cnt: '0' }); // rule 02: never pays
    await t.offline('FWC_IF_Barcode_Pay', f);
    const a = await t.offline('FWC_IF_Barcode_Pay', { ...f, TotalAmount: '1.00' });
    assert.equal(a.rr.SubCode, 'OUT_TRADE_NO_CONFLICT', a.text);
  });

  it('barcode after the order was paid by QR: the same order → IsSuccess 1, TRADE_HAS_SUCCESS, the QR payment', async () => {
    const q = qrFields({ PayType: 'alipay' });
    const code = (await t.offline('FWC_IF_Qrcode_Pay', q)).result.TwoDimensionCode ?? '';
    assert.equal((await postForm(code, 'action=pay')).status, 200);
    const paid = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: q.OutTradeNo });
    assert.equal(paid.result.TradeStatus, 'TRADE_SUCCESS');
    const pays = calls['barcodePay'] ?? 0;
    const a = await t.offline(
      'FWC_IF_Barcode_Pay',
      barcodeFields({
        OutTradeNo: q.OutTradeNo,
        TotalAmount: q.TotalAmount,
        PatientName: q.PatientName,
        InhospitalNo: q.InhospitalNo,
        OrderType: q.OrderType,
      }),
    );
    assert.equal(a.rr.IsSuccess, '1', a.text);
    assert.equal(a.rr.SubCode, 'TRADE_HAS_SUCCESS');
    assert.equal(a.result.TradeStatus, 'TRADE_SUCCESS');
    assert.equal(a.result.TradeNo, paid.result.TradeNo);
    assert.equal(a.result.TotalAmount, '25.50');
    assert.equal(calls['barcodePay'] ?? 0, pays);
    assert.equal(await charges(q.OutTradeNo ?? ''), 1);
  });

  it('QR: the same or another request for a paid order → TRADE_HAS_SUCCESS with the paid trade and no code', async () => {
    const f = qrFields({ PayType: 'weixin' });
    const code = (await t.offline('FWC_IF_Qrcode_Pay', f)).result.TwoDimensionCode ?? '';
    assert.equal((await postForm(code, 'action=pay')).status, 200);
    const paid = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    const before = channelCalls();
    for (const [change, same] of [
      [{}, true],
      [{ PayType: 'alipay', TimeoutExpress: '5m' }, true],
      [{ PayType: undefined }, true],
      [{ TotalAmount: '25.51' }, false],
    ] as const) {
      const a = await t.offline('FWC_IF_Qrcode_Pay', { ...f, ...change });
      assert.equal(a.rr.IsSuccess, '0', a.text);
      assert.equal(a.rr.SubCode, 'TRADE_HAS_SUCCESS');
      if (same)
        assert.equal(
          a.rr.SubMessage,
          '订单已支付，请勿重复收费 / the order is already paid; do not charge again',
        );
      else assert.match(a.rr.SubMessage, /金额或患者与本次请求不同/);
      assert.equal(a.result.TwoDimensionCode, '', 'no code to pay again');
      assert.equal(a.result.OutTradeNo, f.OutTradeNo);
      assert.equal(a.result.TradeStatus, 'TRADE_SUCCESS');
      assert.equal(a.result.TradeNo, paid.result.TradeNo);
      assert.equal(a.result.TotalAmount, '25.50');
      assert.equal(a.result.PayType, 'weixin');
      assert.equal(a.result.PlatformTradeNo, paid.result.PlatformTradeNo);
      assert.ok(a.result.PaymentDateTime);
    }
    assert.equal(channelCalls(), before);
    assert.equal(await charges(f.OutTradeNo ?? ''), 1);
  });

  it('gateway lc.trade.h5.pay: the same or another request for a paid order → 40004 TRADE_HAS_SUCCESS with the paid trade (signed)', async () => {
    const biz = {
      out_trade_no: orderNo('MZ'),
      total_amount: '35.50',
      subject: '挂号费',
      order_type: 'APPOINTMENT',
    };
    const created = await gateway(t, 'lc.trade.h5.pay', biz);
    assert.equal(created.json.code, '10000', created.raw);
    const chosen = await postForm(String(created.biz['goto_url']), 'pay_type=alipay');
    assert.equal(chosen.status, 302);
    // The channel's page sends the payer back to hospay (303), as a real cashier does.
    assert.equal((await postForm(chosen.headers.get('location') ?? '', 'action=pay')).status, 303);
    const paid = await gateway(t, 'lc.trade.query', { out_trade_no: biz.out_trade_no });
    assert.equal(paid.biz['trade_status'], 'TRADE_SUCCESS', paid.raw);
    const key = (await t.platform.deps.keys.active()).publicKey;
    for (const [again, same] of [
      [biz, true],
      [{ ...biz, subject: '挂号费（重提）' }, true],
      [{ ...biz, total_amount: '35.51' }, false],
    ] as const) {
      const a = await gateway(t, 'lc.trade.h5.pay', again);
      assert.equal(a.json.code, '40004', a.raw);
      assert.ok(verifyAnswer(a.raw, key), 'signed with the platform key');
      assert.equal(a.biz['sub_code'], 'TRADE_HAS_SUCCESS');
      if (same)
        assert.equal(
          a.biz['sub_msg'],
          '订单已支付，请勿重复收费 / the order is already paid; do not charge again',
        );
      assert.equal(a.biz['trade_status'], 'TRADE_SUCCESS');
      assert.equal(a.biz['out_trade_no'], biz.out_trade_no);
      assert.equal(a.biz['trade_no'], paid.biz['trade_no']);
      assert.equal(a.biz['platform_trade_no'], paid.biz['platform_trade_no']);
      assert.match(a.raw, /"total_amount":35\.50/);
      assert.equal(a.biz['gmt_payment'], paid.biz['gmt_payment']);
      assert.equal(a.biz['goto_url'], undefined, 'no page to pay again');
    }
    assert.equal(await charges(biz.out_trade_no), 1);
  });
});
