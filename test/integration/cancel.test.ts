import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { channelLedger } from '../support/books.js';
import { authCode, barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';

describe('FWC_IF_Barcode_Pay_Cancel', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t.close();
  });

  const cancel = (outTradeNo: string | undefined) =>
    t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: outTradeNo });
  /** The simulated channel's own books for an order number. */
  const ledger = async (outTradeNo: string | undefined) =>
    (await channelLedger(t.store.db, outTradeNo ?? '')).map((x) => `${x.entry}:${x.amount_fen}`);

  it('closes an unpaid trade (CancelAction=close); a later pay of the same order fails', async () => {
    const f = barcodeFields({ AuthCode: authCode('02'), Cnt: '0' });
    await t.offline('FWC_IF_Barcode_Pay', f);
    const c = await cancel(f.OutTradeNo);
    assert.equal(c.rr.IsSuccess, '1', c.text);
    assert.equal(c.result.CancelAction, 'close');
    assert.equal(c.result.RetryFlag, 'N');
    assert.equal(c.result.OutTradeNo, f.OutTradeNo);
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    assert.equal(q.result.TradeStatus, 'TRADE_CLOSED');
    const again = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(again.rr.SubCode, 'TRADE_HAS_CLOSE');
    assert.deepEqual(await ledger(f.OutTradeNo), []);
  });

  it('refunds a paid trade in full (CancelAction=refund); repeating answers the same', async () => {
    const f = barcodeFields({ TotalAmount: '66.60' });
    const p = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(p.rr.IsSuccess, '1');
    const c = await cancel(f.OutTradeNo);
    assert.equal(c.rr.IsSuccess, '1', c.text);
    assert.equal(c.result.CancelAction, 'refund');
    assert.equal(c.result.TradeNo, p.result.TradeNo);
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    assert.equal(q.result.TradeStatus, 'TRADE_CLOSED');
    assert.equal(q.result.RefundFee, '66.60');
    const again = await cancel(f.OutTradeNo);
    assert.equal(again.rr.IsSuccess, '1');
    assert.equal(again.result.CancelAction, 'refund');
    assert.deepEqual(await ledger(f.OutTradeNo), ['charge:6660', 'reverse:-6660']);
    // The reversal is a refund record, so refunds cannot also take the money.
    const r = await t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: p.result.TradeNo,
      RefundAmount: '1.00',
      OutRequestNo: 'AFTER',
      OutTradeNo: f.OutTradeNo,
      TotalAmount: '66.60',
    });
    assert.equal(r.rr.SubCode, 'REFUND_AMOUNT_EXCEEDED');
  });

  it('refuses a trade that already has refunds (RetryFlag=N): use refund', async () => {
    const f = barcodeFields({ TotalAmount: '10.00' });
    const p = await t.offline('FWC_IF_Barcode_Pay', f);
    await t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: p.result.TradeNo,
      RefundAmount: '1.00',
      OutRequestNo: 'R1',
      OutTradeNo: f.OutTradeNo,
      TotalAmount: '10.00',
    });
    const c = await cancel(f.OutTradeNo);
    assert.equal(c.rr.IsSuccess, '0');
    assert.equal(c.rr.SubCode, 'TRADE_HAS_REFUND');
    assert.equal(c.result.RetryFlag, 'N');
  });

  it('refuses after the cancel window (24 h): RetryFlag=N', async () => {
    const f = barcodeFields();
    await t.offline('FWC_IF_Barcode_Pay', f);
    t.clock.advance(25 * 3_600_000);
    try {
      const c = await cancel(f.OutTradeNo);
      assert.equal(c.rr.SubCode, 'CANCEL_WINDOW_EXPIRED');
      assert.equal(c.result.RetryFlag, 'N');
      const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
      assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS');
    } finally {
      t.clock.advance(-25 * 3_600_000);
    }
  });

  it('an order number never seen is burnt: cancel answers close, and a late pay with it is refused', async () => {
    const f = barcodeFields();
    const c = await cancel(f.OutTradeNo);
    assert.equal(c.rr.IsSuccess, '1', c.text);
    assert.equal(c.result.CancelAction, 'close');
    assert.equal(c.result.RetryFlag, 'N');
    const late = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(late.rr.SubCode, 'TRADE_HAS_CLOSE');
    assert.deepEqual(await ledger(f.OutTradeNo), []);
    const again = await cancel(f.OutTradeNo);
    assert.equal(again.result.CancelAction, 'close');
  });

  it('a HIS refund numbered CANCEL does not confuse a later cancel', async () => {
    const f = barcodeFields({ TotalAmount: '50.00' });
    const p = await t.offline('FWC_IF_Barcode_Pay', f);
    const r = await t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: p.result.TradeNo,
      RefundAmount: '10.00',
      OutRequestNo: 'CANCEL',
      OutTradeNo: f.OutTradeNo,
      TotalAmount: '50.00',
    });
    assert.equal(r.rr.IsSuccess, '1');
    const c = await cancel(f.OutTradeNo);
    assert.equal(c.rr.SubCode, 'TRADE_HAS_REFUND');
    assert.equal(c.result.RetryFlag, 'N');
  });

  it('rule 06: a transient channel failure answers RetryFlag=Y; the retry succeeds', async () => {
    const f = barcodeFields({ AuthCode: authCode('06'), Cnt: '0' });
    await t.offline('FWC_IF_Barcode_Pay', f);
    const c1 = await cancel(f.OutTradeNo);
    assert.equal(c1.rr.IsSuccess, '2');
    assert.equal(c1.rr.SubCode, 'CANCEL_RETRY');
    assert.equal(c1.result.RetryFlag, 'Y');
    const c2 = await cancel(f.OutTradeNo);
    assert.equal(c2.rr.IsSuccess, '1');
    assert.equal(c2.result.CancelAction, 'close');
  });

  it('cancels a payment the channel took while we did not know (rule 04, Cnt=0): action refund', async () => {
    const f = barcodeFields({ AuthCode: authCode('04'), Cnt: '0', TotalAmount: '5.00' });
    const p = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(p.result.TradeStatus, 'WAIT_BUYER_PAY');
    const c = await cancel(f.OutTradeNo);
    assert.equal(c.rr.IsSuccess, '1', c.text);
    assert.equal(c.result.CancelAction, 'refund');
    assert.deepEqual(await ledger(f.OutTradeNo), ['charge:500', 'reverse:-500']);
  });

  it('20 concurrent cancels of a paid trade reverse it once', async () => {
    const f = barcodeFields({ TotalAmount: '9.99' });
    await t.offline('FWC_IF_Barcode_Pay', f);
    const answers = await Promise.all(Array.from({ length: 20 }, () => cancel(f.OutTradeNo)));
    for (const a of answers) assert.ok(a.rr.IsSuccess === '1' || a.result.RetryFlag === 'Y', a.text);
    assert.ok(answers.some((a) => a.result.CancelAction === 'refund'));
    assert.deepEqual(await ledger(f.OutTradeNo), ['charge:999', 'reverse:-999']);
    const row = await t.trade(f.OutTradeNo ?? '');
    assert.equal(row.status, 'TRADE_CLOSED');
    assert.equal(row.refunded_fen, 999);
  });
});
