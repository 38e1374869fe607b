import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { channelCharges } from '../support/books.js';
import {
  authCode,
  barcodeFields,
  orderNo,
  startTestPlatform,
  type TestPlatform,
} from '../support/platform.js';

describe('FWC_IF_Barcode_Pay', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t.close();
  });

  const charges = (outTradeNo: string) => channelCharges(t.store.db, outTradeNo);

  it('pays at once and answers the trade (default rule)', async () => {
    const f = barcodeFields({ TotalAmount: '0.10', OperatorID: 'OP01', TerminalID: 'T01' });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.status, 200);
    assert.equal(a.rr.IsSuccess, '1');
    assert.equal(a.rr.SubCode, 'SUCCESS');
    assert.equal(a.result.TradeStatus, 'TRADE_SUCCESS');
    assert.equal(a.result.TotalAmount, '0.10');
    assert.equal(a.result.PayType, 'alipay');
    assert.equal(a.result.OutTradeNo, f.OutTradeNo);
    assert.equal(a.result.OpenUserID, t.appId);
    assert.match(a.result.TradeNo ?? '', /^[0-9]{28}$/);
    assert.match(a.result.PaymentDateTime ?? '', /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/);
    assert.equal(a.head.OutTradeNo, f.OutTradeNo, 'the request head is echoed');
    const row = await t.trade(f.OutTradeNo ?? '');
    assert.equal(row.total_fen, 10);
    assert.equal(typeof row.total_fen, 'number');
    assert.equal(row.operator_id, 'OP01');
    assert.equal(await charges(f.OutTradeNo ?? ''), 1);
  });

  it('tells the channel from the payment code, or takes PayType case-insensitively', async () => {
    const wx = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: authCode('00', 'weixin') }));
    assert.equal(wx.result.PayType, 'weixin');
    const up = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: authCode('00', 'unionpay') }));
    assert.equal(up.result.PayType, 'unionpay');
    const explicit = await t.offline(
      'FWC_IF_Barcode_Pay',
      barcodeFields({ AuthCode: '9912345678901234', PayType: 'WeiXin' }),
    );
    assert.equal(explicit.rr.IsSuccess, '1');
    assert.equal(explicit.result.PayType, 'weixin');
    const mismatch = await t.offline(
      'FWC_IF_Barcode_Pay',
      barcodeFields({ AuthCode: authCode('00', 'weixin'), PayType: 'alipay' }),
    );
    assert.equal(mismatch.rr.SubCode, 'INVALID_FIELD.PayType');
    const unknown = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: '9912345678901234' }));
    assert.equal(unknown.rr.IsSuccess, '0');
    assert.equal(unknown.rr.SubCode, 'INVALID_FIELD.AuthCode');
  });

  it('rule 01: the patient enters a password; polled Cnt times, paid on the 2nd query', async () => {
    const f = barcodeFields({ AuthCode: authCode('01'), Cnt: '3' });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1');
    assert.equal(a.result.TradeStatus, 'TRADE_SUCCESS');
  });

  it('rule 01 with Cnt=0: answers USER_PAYING, then queries reveal the payment', async () => {
    const f = barcodeFields({ AuthCode: authCode('01'), Cnt: '0' });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '0');
    assert.equal(a.rr.SubCode, 'USER_PAYING');
    assert.equal(a.result.TradeStatus, 'WAIT_BUYER_PAY');
    const q1 = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    assert.equal(q1.result.TradeStatus, 'WAIT_BUYER_PAY');
    const q2 = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    assert.equal(q2.result.TradeStatus, 'TRADE_SUCCESS');
    assert.equal(q2.rr.IsSuccess, '1');
  });

  it('rule 02: never pays; the expiry job cancels it at the deadline and it ends closed', async () => {
    const f = barcodeFields({ AuthCode: authCode('02'), Cnt: '2' });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.rr.SubCode, 'USER_PAYING');
    // Before the deadline the job leaves it alone.
    const early = await t.platform.expiry.tick();
    assert.equal(early.closed, 0);
    const q0 = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    assert.equal(q0.result.TradeStatus, 'WAIT_BUYER_PAY');
    t.clock.advance(121_000);
    const counts = await t.platform.expiry.tick();
    assert.ok(counts.closed >= 1, JSON.stringify(counts));
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    assert.equal(q.result.TradeStatus, 'TRADE_CLOSED');
    // A repeat of the same pay now answers the closed trade; nothing is charged.
    const again = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(again.rr.SubCode, 'TRADE_HAS_CLOSE');
    assert.equal(await charges(f.OutTradeNo ?? ''), 0);
  });

  it('rule 03: declined for balance; the trade is closed', async () => {
    const a = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: authCode('03') }));
    assert.equal(a.rr.IsSuccess, '0');
    assert.equal(a.rr.SubCode, 'BUYER_BALANCE_NOT_ENOUGH');
    assert.match(a.rr.SubMessage, /余额不足/);
    assert.equal(a.result.TradeStatus, 'TRADE_CLOSED');
  });

  it('rule 04: a system error on pay is queried, not assumed failed: the payment is found', async () => {
    const f = barcodeFields({ AuthCode: authCode('04') });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1');
    assert.equal(a.result.TradeStatus, 'TRADE_SUCCESS');
    assert.equal(await charges(f.OutTradeNo ?? ''), 1);
  });

  it('rule 04 with Cnt=0: unknown outcome answered as IsSuccess=2, then the query finds it paid', async () => {
    const f = barcodeFields({ AuthCode: authCode('04'), Cnt: '0' });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '2');
    assert.equal(a.rr.SubCode, 'CHANNEL_ERROR');
    assert.equal(a.result.TradeStatus, 'WAIT_BUYER_PAY');
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS');
  });

  it('rule 05: invalid payment code', async () => {
    const a = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: authCode('05') }));
    assert.equal(a.rr.IsSuccess, '0');
    assert.equal(a.rr.SubCode, 'AUTH_CODE_INVALID');
    assert.equal(a.result.TradeStatus, 'TRADE_CLOSED');
  });

  it('is idempotent on OutTradeNo: a repeat answers the same trade and never charges twice', async () => {
    const f = barcodeFields();
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    const b = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(b.rr.IsSuccess, '1');
    assert.equal(b.result.TradeNo, a.result.TradeNo);
    assert.equal(b.result.PlatformTradeNo, a.result.PlatformTradeNo);
    assert.equal(await charges(f.OutTradeNo ?? ''), 1);
  });

  it('the same OutTradeNo with other content never charges and changes nothing (a paid order: answered as paid)', async () => {
    const f = barcodeFields();
    await t.offline('FWC_IF_Barcode_Pay', f);
    for (const [change, isSuccess] of [
      [{ TotalAmount: '88.89' }, '0'],
      [{ AuthCode: authCode() }, '1'],
      [{ PatientName: '王五' }, '0'],
    ] as const) {
      const b = await t.offline('FWC_IF_Barcode_Pay', { ...f, ...change });
      assert.equal(b.rr.IsSuccess, isSuccess, b.text);
      assert.equal(b.rr.SubCode, 'TRADE_HAS_SUCCESS');
      assert.equal(b.result.TotalAmount, '88.88');
    }
    // An order number not paid (rule 02: the payer never confirms) with other content is refused.
    const waiting = barcodeFields({ AuthCode: authCode('02'), Cnt: '0' });
    await t.offline('FWC_IF_Barcode_Pay', waiting);
    const c = await t.offline('FWC_IF_Barcode_Pay', { ...waiting, TotalAmount: '88.89' });
    assert.equal(c.rr.SubCode, 'OUT_TRADE_NO_CONFLICT', c.text);
    const row = await t.trade(f.OutTradeNo ?? '');
    assert.equal(row.total_fen, 8888);
    assert.equal(row.patient_name, '张三');
    assert.equal(await charges(f.OutTradeNo ?? ''), 1);
  });

  it('50 concurrent identical pays make one trade and one charge', async () => {
    const f = barcodeFields({ TotalAmount: '12.34' });
    const answers = await Promise.all(Array.from({ length: 50 }, () => t.offline('FWC_IF_Barcode_Pay', f)));
    for (const a of answers) {
      assert.ok(['SUCCESS', 'USER_PAYING'].includes(a.rr.SubCode), a.rr.SubCode);
    }
    assert.ok(answers.some((a) => a.rr.IsSuccess === '1'));
    // SQL on purpose: every row with this order number, to prove the unique key left exactly one.
    const rows = await t.store.db
      .selectFrom('trades')
      .select('id')
      .where('out_trade_no', '=', f.OutTradeNo ?? '')
      .execute();
    assert.equal(rows.length, 1);
    assert.equal(await charges(f.OutTradeNo ?? ''), 1);
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS');
  });

  it('records the business category from the OutTradeNo prefix, longest first', async () => {
    const cases: Array<[string, string]> = [
      ['MZ', 'MZ'],
      ['ZY', 'ZY'],
      ['ZJMZ', 'ZJMZ'],
      ['ZHZY', 'ZHZY'],
      ['XX', 'OTHER'],
    ];
    for (const [prefix, expected] of cases) {
      const f = barcodeFields({ OutTradeNo: orderNo(prefix) });
      await t.offline('FWC_IF_Barcode_Pay', f);
      const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
      assert.equal(q.result.Category, expected, prefix);
    }
  });

  it('uses per-app categories when the app has its own', async () => {
    await t.platform.deps.apps.setCategories(t.appId, [
      { prefix: 'TJ', name: '体检' },
      { prefix: 'TJVIP', name: '贵宾体检' },
    ]);
    try {
      const f1 = barcodeFields({ OutTradeNo: orderNo('TJVIP') });
      const f2 = barcodeFields({ OutTradeNo: orderNo('TJ') });
      const f3 = barcodeFields({ OutTradeNo: orderNo('MZ') });
      for (const f of [f1, f2, f3]) await t.offline('FWC_IF_Barcode_Pay', f);
      const cat = async (no: string | undefined) =>
        (await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: no })).result.Category;
      assert.equal(await cat(f1.OutTradeNo), 'TJVIP');
      assert.equal(await cat(f2.OutTradeNo), 'TJ');
      assert.equal(await cat(f3.OutTradeNo), 'OTHER');
    } finally {
      await t.platform.deps.apps.setCategories(t.appId, null);
    }
  });
});
