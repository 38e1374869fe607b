import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { channelLedger } from '../support/books.js';
import { authCode, barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';

describe('FWC_IF_Barcode_Pay_Refund', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t.close();
  });

  async function paid(amount = '100.00', extra: Record<string, string> = {}) {
    const f = barcodeFields({ TotalAmount: amount, ...extra });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    return {
      outTradeNo: f.OutTradeNo ?? '',
      tradeNo: a.result.TradeNo ?? '',
      platformTradeNo: a.result.PlatformTradeNo ?? '',
      amount,
    };
  }

  const refund = (
    p: { outTradeNo: string; tradeNo: string; amount: string },
    amount: string,
    requestNo: string,
    extra: Record<string, string> = {},
  ) =>
    t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: p.tradeNo,
      RefundAmount: amount,
      OutRequestNo: requestNo,
      OutTradeNo: p.outTradeNo,
      TotalAmount: p.amount,
      ...extra,
    });

  /** The simulated channel's refunds and reversals of an order number: how many, and their sum (negative). */
  const ledger = async (outTradeNo: string) => {
    const back = (await channelLedger(t.store.db, outTradeNo)).filter((e) =>
      ['refund', 'reverse'].includes(e.entry),
    );
    return { count: back.length, sumFen: back.reduce((s, e) => s + e.amount_fen, 0) };
  };

  it('partial refunds add up; RefundFee is cumulative; a full refund closes the trade', async () => {
    const p = await paid('100.00');
    const r1 = await refund(p, '30.01', 'R1', {
      RefundmentReason: '检查取消',
      TerminalID: 'T9',
      HospitalID: 'H001',
    });
    assert.equal(r1.rr.IsSuccess, '1', r1.text);
    assert.equal(r1.result.RefundFee, '30.01');
    assert.equal(r1.result.RefundChange, 'Y');
    assert.equal(r1.result.TradeStatus, 'TRADE_SUCCESS');
    const r2 = await refund(p, '69.99', 'R2');
    assert.equal(r2.result.RefundFee, '100.00');
    assert.equal(r2.result.TradeStatus, 'TRADE_CLOSED');
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: p.outTradeNo });
    assert.equal(q.result.TradeStatus, 'TRADE_CLOSED');
    assert.equal(q.result.RefundFee, '100.00');
    const r3 = await refund(p, '0.01', 'R3');
    assert.equal(r3.rr.IsSuccess, '0');
    assert.equal(r3.rr.SubCode, 'REFUND_AMOUNT_EXCEEDED');
    assert.deepEqual(await ledger(p.outTradeNo), { count: 2, sumFen: -10000 });
  });

  it('repeating a processed OutRequestNo returns the earlier result with RefundChange=N', async () => {
    const p = await paid('50.00');
    const a = await refund(p, '10.00', 'RR1');
    const b = await refund(p, '10.00', 'RR1');
    assert.equal(a.result.RefundChange, 'Y');
    assert.equal(b.rr.IsSuccess, '1');
    assert.equal(b.result.RefundChange, 'N');
    assert.equal(b.result.RefundFee, '10.00');
    assert.deepEqual(await ledger(p.outTradeNo), { count: 1, sumFen: -1000 });
  });

  it('refuses the same OutRequestNo with a different amount', async () => {
    const p = await paid('50.00');
    await refund(p, '10.00', 'RX');
    const b = await refund(p, '11.00', 'RX');
    assert.equal(b.rr.IsSuccess, '0');
    assert.equal(b.rr.SubCode, 'OUT_REQUEST_NO_CONFLICT');
    assert.deepEqual(await ledger(p.outTradeNo), { count: 1, sumFen: -1000 });
  });

  it('accepts our PlatformTradeNo as TradeNo; refuses a TradeNo, TotalAmount or PayType that does not match', async () => {
    const p = await paid('20.00');
    const ok = await refund({ ...p, tradeNo: p.platformTradeNo }, '1.00', 'P1');
    assert.equal(ok.rr.IsSuccess, '1', ok.text);
    const wrongNo = await refund({ ...p, tradeNo: '2026000000000000000000000000' }, '1.00', 'P2');
    assert.equal(wrongNo.rr.SubCode, 'TRADE_NO_MISMATCH');
    const wrongTotal = await refund({ ...p, amount: '20.01' }, '1.00', 'P3');
    assert.equal(wrongTotal.rr.SubCode, 'TOTAL_AMOUNT_MISMATCH');
    const wrongType = await refund(p, '1.00', 'P4', { PayType: 'weixin' });
    assert.equal(wrongType.rr.SubCode, 'PAY_TYPE_MISMATCH');
    const rightType = await refund(p, '1.00', 'P5', { PayType: 'Alipay' });
    assert.equal(rightType.rr.IsSuccess, '1');
  });

  it('refuses unknown and unpaid trades', async () => {
    const none = await refund({ outTradeNo: 'MZNOPE1', tradeNo: 'X1', amount: '1.00' }, '1.00', 'N1');
    assert.equal(none.rr.SubCode, 'TRADE_NOT_EXIST');
    const f = barcodeFields({ AuthCode: authCode('02'), Cnt: '0' });
    const w = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(w.result.TradeStatus, 'WAIT_BUYER_PAY');
    const r = await refund(
      { outTradeNo: f.OutTradeNo ?? '', tradeNo: w.result.PlatformTradeNo ?? '', amount: '88.88' },
      '1.00',
      'N2',
    );
    assert.equal(r.rr.SubCode, 'TRADE_NOT_PAID');
  });

  it('refuses refunds after the refund window (TRADE_FINISHED), but repeats still answer', async () => {
    const p = await paid('10.00');
    await refund(p, '1.00', 'F1');
    t.clock.advance(91 * 86_400_000);
    try {
      const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: p.outTradeNo });
      assert.equal(q.result.TradeStatus, 'TRADE_FINISHED');
      const r = await refund(p, '1.00', 'F2');
      assert.equal(r.rr.SubCode, 'TRADE_HAS_FINISHED');
      const again = await refund(p, '1.00', 'F1');
      assert.equal(again.result.RefundChange, 'N');
    } finally {
      t.clock.advance(-91 * 86_400_000);
    }
  });

  it('an unknown refund outcome is PROCESSING; the same OutRequestNo then completes it once', async () => {
    const p = await paid('10.00');
    const a = await refund(p, '4.00', 'U1', { RefundmentReason: 'SIMULATE_REFUND_ERROR' });
    assert.equal(a.rr.IsSuccess, '2');
    assert.equal(a.rr.SubCode, 'REFUND_PROCESSING');
    // While processing, its amount is reserved: 6.01 does not fit.
    const over = await refund(p, '6.01', 'U2');
    assert.equal(over.rr.SubCode, 'REFUND_AMOUNT_EXCEEDED');
    const b = await refund(p, '4.00', 'U1', { RefundmentReason: 'SIMULATE_REFUND_ERROR' });
    assert.equal(b.rr.IsSuccess, '1', b.text);
    assert.equal(b.result.RefundChange, 'Y');
    assert.equal(b.result.RefundFee, '4.00');
    const c = await refund(p, '4.00', 'U1');
    assert.equal(c.result.RefundChange, 'N');
    assert.deepEqual(await ledger(p.outTradeNo), { count: 1, sumFen: -400 });
  });

  it('a declined refund releases its amount', async () => {
    const p = await paid('10.00');
    const a = await refund(p, '10.00', 'D1', { RefundmentReason: 'SIMULATE_REFUND_DECLINE' });
    assert.equal(a.rr.IsSuccess, '0');
    assert.equal(a.rr.SubCode, 'REFUND_DECLINED');
    const b = await refund(p, '10.00', 'D2');
    assert.equal(b.rr.IsSuccess, '1');
    assert.equal(b.result.TradeStatus, 'TRADE_CLOSED');
  });

  it('50 concurrent identical refunds: exactly one moves money', async () => {
    const p = await paid('80.00');
    const answers = await Promise.all(Array.from({ length: 50 }, () => refund(p, '80.00', 'SAME')));
    const changes = answers.filter((a) => a.result.RefundChange === 'Y').length;
    assert.equal(changes, 1);
    for (const a of answers)
      assert.ok(a.rr.IsSuccess === '1' || a.rr.SubCode === 'REFUND_PROCESSING', a.text);
    assert.deepEqual(await ledger(p.outTradeNo), { count: 1, sumFen: -8000 });
    const row = await t.trade(p.outTradeNo);
    assert.equal(row.refunded_fen, 8000);
    assert.equal(row.status, 'TRADE_CLOSED');
  });

  it('50 concurrent distinct refunds whose sum exceeds the payment never refund more than was paid', async () => {
    const p = await paid('10.00');
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => refund(p, '1.00', `D${i}`)));
    const ok = answers.filter((a) => a.rr.IsSuccess === '1').length;
    const exceeded = answers.filter((a) => a.rr.SubCode === 'REFUND_AMOUNT_EXCEEDED').length;
    assert.equal(ok, 10);
    assert.equal(exceeded, 40);
    const row = await t.trade(p.outTradeNo);
    assert.equal(row.refunded_fen, 1000);
    assert.equal(row.refund_reserved_fen, 1000);
    assert.deepEqual(await ledger(p.outTradeNo), { count: 10, sumFen: -1000 });
  });

  it('the database itself refuses refunding more than was paid (CHECK constraint)', async () => {
    const p = await paid('5.00');
    await assert.rejects(
      sql`UPDATE trades SET refund_reserved_fen = total_fen + 1, refunded_fen = total_fen + 1 WHERE out_trade_no = ${p.outTradeNo}`.execute(
        t.store.db,
      ),
      (e: { code?: string }) => e.code === '23514',
    );
    await assert.rejects(
      sql`INSERT INTO refunds (trade_id, app_id, out_request_no, kind, amount_fen, status, created_at, updated_at)
          SELECT id, app_id, 'NEG', 'refund', -1, 'SUCCESS', now(), now() FROM trades WHERE out_trade_no = ${p.outTradeNo}`.execute(
        t.store.db,
      ),
      (e: { code?: string }) => e.code === '23514',
    );
  });
});
