import { channelContext } from '../../src/services/deps.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authCode, barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { matchDay, platformEntriesFrom } from '../../src/reconcile/matcher.js';
import type { PayType } from '../../src/domain/trade.js';

/** The simulator serves its day's bills in the channels' own formats, read back by the real parsers. */
describe('channel bills from the simulator', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t.close();
  });

  const bill = async (payType: PayType) => {
    const channel = t.platform.deps.channels.get('simulator');
    assert.ok(channel?.downloadBill);
    // The fake clock stands at 2026-11-25 10:00 in Asia/Shanghai.
    return channel.downloadBill(await channelContext(t.platform.deps, t.appId, 'simulator'), {
      date: '2026-11-25',
      payType,
    });
  };

  it('payments, refunds and cancel reversals appear in the Alipay and WeChat bills, and a clean day matches', async () => {
    const paid: Record<string, string> = {};
    for (const [payType, amount] of [
      ['alipay', '88.88'],
      ['alipay', '0.01'],
      ['weixin', '19.99'],
      ['weixin', '1234.50'],
    ] as const) {
      const f = barcodeFields({
        AuthCode: authCode('00', payType),
        TotalAmount: amount,
        Caption: '门诊缴费（西药）',
      });
      const a = await t.offline('FWC_IF_Barcode_Pay', f);
      assert.equal(a.rr.IsSuccess, '1');
      paid[f.OutTradeNo ?? ''] = a.result.TradeNo ?? '';
    }
    const [first, second, third] = Object.keys(paid);
    await t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: paid[first ?? ''],
      RefundAmount: '8.88',
      OutRequestNo: 'B1',
      OutTradeNo: first,
      TotalAmount: '88.88',
    });
    await t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: second });
    await t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: paid[third ?? ''],
      RefundAmount: '19.99',
      OutRequestNo: 'B2',
      OutTradeNo: third,
      TotalAmount: '19.99',
    });

    const ali = await bill('alipay');
    assert.equal(ali.lines.filter((l) => l.kind === 'payment').length, 2);
    const refunds = ali.lines
      .filter((l) => l.kind === 'refund')
      .map((l) => `${l.outRequestNo}:${l.amountFen}`)
      .sort();
    assert.deepEqual(refunds, ['#CANCEL:1', 'B1:888']);
    assert.equal(
      ali.lines.find((l) => l.outTradeNo === first && l.kind === 'payment')?.feeFen,
      53,
      '0.6 % of 88.88, half up',
    );
    const wx = await bill('weixin');
    assert.deepEqual(
      wx.lines.map((l) => `${l.kind}:${l.amountFen}`).sort(),
      ['payment:123450', 'payment:1999', 'refund:1999'].sort(),
    );

    // The same day through the matcher: the platform's own records against each bill, nothing different.
    // SQL on purpose: every row as stored, not the reconciliation's own day selection (the matcher is judged).
    const trades = await t.store.db.selectFrom('trades').selectAll().execute();
    const refundRows = await t.store.db.selectFrom('refunds').selectAll().execute();
    const entries = platformEntriesFrom(trades, refundRows);
    for (const b of [ali, wx]) {
      const mine = entries.filter(
        (e) => trades.find((tr) => tr.out_trade_no === e.outTradeNo)?.pay_type === b.payType,
      );
      const r = matchDay({
        platform: mine,
        channel: b.lines,
        dayStart: new Date('2026-11-24T16:00:00Z'),
        feeRateBps: { [b.payType]: 60 },
      });
      assert.deepEqual(r.differences, [], `${b.payType}: ${JSON.stringify(r.differences)}`);
      assert.ok(r.matched >= b.lines.length);
    }
  });

  it('another day has an empty bill', async () => {
    const channel = t.platform.deps.channels.get('simulator');
    const b = await channel?.downloadBill?.(await channelContext(t.platform.deps, t.appId, 'simulator'), {
      date: '2026-11-20',
      payType: 'alipay',
    });
    assert.equal(b?.lines.length, 0);
  });
});
