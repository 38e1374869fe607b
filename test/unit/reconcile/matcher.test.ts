import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { BillLine } from '../../../src/domain/bill.js';
import type { HisTradeRecord } from '../../../src/reconcile/his/his-client.js';
import { formatShanghai } from '../../../src/domain/clock.js';
import {
  businessDateOf,
  businessDayStart,
  matchDay,
  platformEntriesFrom,
  summarizeByCategory,
  type MatchInput,
  type MatchResult,
  type PlatformEntry,
  type RefundRow,
  type TradeRow,
} from '../../../src/reconcile/matcher.js';
import { fen } from '../../../src/domain/money.js';

const DAY = businessDayStart('2026-11-24');
const HOUR = 3600 * 1000;
const at = (day: Date, ms: number) => new Date(day.getTime() + ms);
const nextDay = (day: Date, n = 1) => new Date(day.getTime() + n * 24 * HOUR);

function pay(no: string, amount: number, time: Date, category = 'MZ'): PlatformEntry {
  return {
    kind: 'payment',
    outTradeNo: no,
    channelTradeNo: `C${no}`,
    platformTradeNo: `P${no}`,
    amountFen: fen(amount),
    time,
    category,
    status: 'TRADE_SUCCESS',
  };
}
function refund(no: string, req: string, fen: number, time: Date, category = 'MZ'): PlatformEntry {
  return { ...pay(no, fen, time, category), kind: 'refund', outRequestNo: req, status: 'SUCCESS' };
}
function line(e: PlatformEntry, over: Partial<BillLine> = {}): BillLine {
  return {
    kind: e.kind,
    channelTradeNo: e.channelTradeNo,
    outTradeNo: e.outTradeNo,
    ...(e.outRequestNo ? { outRequestNo: e.outRequestNo } : {}),
    amountFen: e.amountFen,
    feeFen: fen(Math.floor((e.amountFen * 60 + 5000) / 10000)),
    time: formatShanghai(e.time),
    payType: 'alipay',
    ...over,
  };
}
function his(e: PlatformEntry, over: Partial<HisTradeRecord> = {}): HisTradeRecord {
  return {
    outTradeNo: e.outTradeNo,
    tradeNo: e.channelTradeNo,
    amountFen: e.amountFen,
    status: e.kind === 'payment' ? 'PAID' : 'REFUNDED',
    cardNo: '1',
    patientName: '张三',
    costType: '门诊',
    time: e.time,
    ...over,
  };
}
/** Everything agrees. */
function agreed(entries: PlatformEntry[], dayStart = DAY): MatchInput {
  return {
    platform: entries,
    channel: entries.map((e) => line(e)),
    his: entries.map((e) => his(e)),
    dayStart,
  };
}
const codes = (r: MatchResult) => r.differences.map((d) => d.code);

describe('reconcile matcher', () => {
  const noon = at(DAY, 12 * HOUR);

  it('a clean day of a few hundred movements yields no difference', () => {
    const cats = ['MZ', 'ZY', 'ZJMZ', 'ZHZY', 'X'];
    const entries: PlatformEntry[] = [];
    for (let i = 0; i < 300; i++) {
      const cat = cats[i % cats.length] ?? 'MZ';
      const t = at(DAY, HOUR + i * 60_000);
      entries.push(pay(`${cat}${String(i).padStart(6, '0')}`, 100 + i * 7, t, cat));
      if (i % 10 === 0) {
        entries.push(refund(`${cat}${String(i).padStart(6, '0')}`, `R${i}a`, 50, at(t, 30_000), cat));
        entries.push(refund(`${cat}${String(i).padStart(6, '0')}`, `R${i}b`, 50, at(t, 40_000), cat));
      }
    }
    const input = agreed(entries);
    const r = matchDay({ ...input, feeRateBps: { alipay: 60 } });
    assert.deepEqual(r.differences, []);
    assert.deepEqual(r.pending, []);
    assert.equal(r.matched, entries.length * 2); // channel + HIS comparisons
    const payFen = entries.filter((e) => e.kind === 'payment').reduce((s, e) => s + e.amountFen, 0);
    assert.deepEqual(r.totals.platform, {
      payment: { count: 300, fen: payFen },
      refund: { count: 60, fen: 3000 },
    });
    assert.deepEqual(r.totals.his, r.totals.platform);
    assert.equal(r.totals.channel.payment.fen, payFen);
    assert.equal(r.totals.channel.refund.count, 60);

    // Order of the input does not matter.
    const shuffled = matchDay({
      ...input,
      platform: [...input.platform].reverse(),
      channel: [...input.channel].reverse(),
    });
    assert.deepEqual(shuffled, matchDay(input));
  });

  it('CHANNEL_ONLY: the channel has it, the platform does not', () => {
    const a = pay('MZ1', 1000, noon);
    const b = pay('MZ2', 2000, noon);
    const r = matchDay({ ...agreed([a, b]), platform: [a] });
    assert.deepEqual(codes(r), ['CHANNEL_ONLY']);
    const d = r.differences[0];
    assert.equal(d?.outTradeNo, 'MZ2');
    assert.equal(d?.side, 'channel');
    assert.deepEqual(d?.amounts, { channel: 2000 });
    assert.equal(d?.label.zh.includes('漏单'), true);
    assert.ok(d?.action.en);
  });

  it('PLATFORM_ONLY: the platform has it, the channel does not', () => {
    const a = pay('MZ1', 1000, noon);
    const r = matchDay({ ...agreed([a]), channel: [] });
    assert.deepEqual(codes(r), ['PLATFORM_ONLY']);
    assert.deepEqual(r.differences[0]?.amounts, { platform: 1000 });
  });

  it('HIS_MISSING (长款): money taken, the HIS has no record', () => {
    const a = pay('MZ1', 1000, noon);
    const r = matchDay({ ...agreed([a]), his: [] });
    assert.deepEqual(codes(r), ['HIS_MISSING']);
    const d = r.differences[0];
    assert.ok(d?.label.zh.includes('长款'));
    assert.ok(d?.action.zh.includes('退款'));
    assert.equal(r.matched, 1);
  });

  it('a payment only the channel has is CHANNEL_ONLY, and HIS_MISSING only if the HIS lacks it too', () => {
    const a = pay('MZ1', 1000, noon);
    assert.deepEqual(codes(matchDay({ ...agreed([a]), platform: [] })), ['CHANNEL_ONLY']);
    assert.deepEqual(codes(matchDay({ ...agreed([a]), platform: [], his: [] })), [
      'CHANNEL_ONLY',
      'HIS_MISSING',
    ]);
  });

  it('HIS_ONLY (短款): the HIS records a payment no money backs', () => {
    const a = pay('MZ1', 1000, noon);
    const r = matchDay({ ...agreed([a]), platform: [], channel: [] });
    assert.deepEqual(codes(r), ['HIS_ONLY']);
    assert.ok(r.differences[0]?.label.zh.includes('短款'));
    assert.deepEqual(r.differences[0]?.amounts, { his: 1000 });
  });

  it('AMOUNT_MISMATCH gives both amounts, for the channel and for the HIS', () => {
    const a = pay('MZ1', 1000, noon);
    const r1 = matchDay({ ...agreed([a]), channel: [line(a, { amountFen: fen(999) })] });
    assert.deepEqual(codes(r1), ['AMOUNT_MISMATCH']);
    assert.deepEqual(r1.differences[0]?.amounts, { platform: 1000, channel: 999 });
    const r2 = matchDay({ ...agreed([a]), his: [his(a, { amountFen: fen(1001) })] });
    assert.deepEqual(codes(r2), ['AMOUNT_MISMATCH']);
    // The channel matched the platform: its amount is shown beside the HIS's too.
    assert.deepEqual(r2.differences[0]?.amounts, { platform: 1000, channel: 1000, his: 1001 });
  });

  it('a HIS-side difference shows the channel amount where the channel has the movement', () => {
    const a = pay('MZ1', 2000, noon);
    const missing = matchDay({ ...agreed([a]), his: [] });
    assert.deepEqual(codes(missing), ['HIS_MISSING']);
    assert.deepEqual(missing.differences[0]?.amounts, { platform: 2000, channel: 2000 });
    // A channel-only movement has no platform amount, and the platform's own without a bill line no channel one.
    const channelOnly = matchDay({ ...agreed([a]), platform: [], his: [] });
    assert.deepEqual(
      channelOnly.differences.map((d) => [d.code, d.amounts]),
      [
        ['CHANNEL_ONLY', { channel: 2000 }],
        ['HIS_MISSING', { channel: 2000 }],
      ],
    );
  });

  it('STATUS_MISMATCH: refunded at the channel but the HIS says paid, and the reverse', () => {
    const a = pay('MZ1', 1000, at(DAY, 10 * HOUR));
    const ra = refund('MZ1', 'RQ1', 1000, noon);
    const r1 = matchDay({ ...agreed([a, ra]), his: [his(a)] });
    assert.deepEqual(codes(r1), ['STATUS_MISMATCH']);
    assert.equal(r1.differences[0]?.outRequestNo, 'RQ1');
    assert.deepEqual(r1.differences[0]?.statuses, { platform: 'REFUNDED', his: 'PAID' });

    const r2 = matchDay({ ...agreed([a, ra]), platform: [a], channel: [line(a)] });
    assert.deepEqual(codes(r2), ['STATUS_MISMATCH']);
    assert.equal(r2.differences[0]?.side, 'his');

    // The platform still thinks the refund is processing; the channel has paid it out.
    const processing = { ...ra, status: 'PROCESSING' };
    const r3 = matchDay({ ...agreed([a, ra]), platform: [a, processing], his: [his(a)] });
    assert.deepEqual(codes(r3), ['STATUS_MISMATCH']);
    assert.deepEqual(r3.differences[0]?.statuses, { platform: 'PROCESSING', channel: 'SUCCESS' });
    // ...and a processing refund the channel does not have is no difference at all.
    assert.deepEqual(codes(matchDay({ ...agreed([a]), platform: [a, processing] })), []);
  });

  it('DUPLICATE on each side', () => {
    const a = pay('MZ1', 1000, noon);
    const base = agreed([a]);
    const onPlatform = matchDay({ ...base, platform: [a, a] });
    assert.deepEqual(codes(onPlatform), ['DUPLICATE']);
    assert.equal(onPlatform.differences[0]?.side, 'platform');
    assert.equal(onPlatform.totals.platform.payment.count, 2);

    const onChannel = matchDay({ ...base, channel: [line(a), line(a)] });
    assert.deepEqual(codes(onChannel), ['DUPLICATE']);
    assert.equal(onChannel.differences[0]?.side, 'channel');
    assert.equal(onChannel.totals.channel.payment.fen, 2000);

    const onHis = matchDay({ ...base, his: [his(a), his(a)] });
    assert.deepEqual(codes(onHis), ['DUPLICATE']);
    assert.equal(onHis.differences[0]?.side, 'his');

    const ra = refund('MZ1', 'RQ1', 100, noon);
    const refundTwice = matchDay({ ...agreed([a, ra]), channel: [line(a), line(ra), line(ra)] });
    assert.deepEqual(codes(refundTwice), ['DUPLICATE']);
    assert.equal(refundTwice.differences[0]?.kind, 'refund');
  });

  it('two equal partial refunds of one order in the same second match two HIS rows; a third is a DUPLICATE', () => {
    const a = pay('MZ1', 1000, at(DAY, 10 * HOUR));
    const r1 = refund('MZ1', 'RQ1', 200, noon);
    const r2 = refund('MZ1', 'RQ2', 200, noon);
    const both = matchDay(agreed([a, r1, r2]));
    assert.deepEqual(both.differences, [], JSON.stringify(both.differences));
    assert.equal(both.matched, 6);
    // The HIS lists the refund once more than the money side has it: that one row is the DUPLICATE.
    const thrice = matchDay({ ...agreed([a, r1, r2]), his: [his(a), his(r1), his(r2), his(r2)] });
    assert.deepEqual(codes(thrice), ['DUPLICATE']);
    assert.equal(thrice.differences[0]?.side, 'his');
    // The HIS lost one of the two: one refund without its HIS row, nothing else.
    const once = matchDay({ ...agreed([a, r1, r2]), his: [his(a), his(r1)] });
    assert.deepEqual(codes(once), ['STATUS_MISMATCH']);
    // No money behind two equal HIS refund rows: the first is a STATUS_MISMATCH, the repeat a DUPLICATE.
    const none = matchDay({ ...agreed([a]), his: [his(a), his(r1), his(r2)] });
    assert.deepEqual(codes(none), ['STATUS_MISMATCH', 'DUPLICATE']);
  });

  it('an unsettled refund the channel paid out is one STATUS_MISMATCH, whether or not the HIS booked it', () => {
    const a = pay('MZ1', 1000, at(DAY, 10 * HOUR));
    const ra = refund('MZ1', 'RQ1', 400, noon);
    const processing = { ...ra, status: 'PROCESSING' };
    for (const hisRows of [[his(a)], [his(a), his(ra)]]) {
      const r = matchDay({ ...agreed([a, ra]), platform: [a, processing], his: hisRows });
      assert.deepEqual(codes(r), ['STATUS_MISMATCH'], `${hisRows.length} HIS rows`);
      assert.deepEqual(r.differences[0]?.statuses, { platform: 'PROCESSING', channel: 'SUCCESS' });
      assert.equal(r.differences[0]?.outRequestNo, 'RQ1');
    }
    // A HIS row of another amount is not taken as its own.
    const other = matchDay({
      ...agreed([a, ra]),
      platform: [a, processing],
      his: [his(a), his(ra, { amountFen: fen(300) })],
    });
    assert.deepEqual(codes(other), ['STATUS_MISMATCH', 'STATUS_MISMATCH']);
    // A trade the platform still has as unpaid, paid at the channel: one STATUS_MISMATCH too.
    const waiting = { ...a, status: 'WAIT_BUYER_PAY' };
    const w = matchDay({ ...agreed([a]), platform: [waiting], his: [] });
    assert.deepEqual(codes(w), ['STATUS_MISMATCH']);
    assert.deepEqual(w.differences[0]?.statuses, { platform: 'WAIT_BUYER_PAY', channel: 'SUCCESS' });
  });

  it('FEE_MISMATCH against the expected rate of the pay type', () => {
    const a = pay('MZ1', 10_000, noon);
    const ok = matchDay({
      ...agreed([a]),
      channel: [line(a, { feeFen: fen(60) })],
      feeRateBps: { alipay: 60 },
    });
    assert.deepEqual(codes(ok), []);
    const r = matchDay({
      ...agreed([a]),
      channel: [line(a, { feeFen: fen(100) })],
      feeRateBps: { alipay: 60 },
    });
    assert.deepEqual(codes(r), ['FEE_MISMATCH']);
    assert.deepEqual(r.differences[0]?.fee, { expectedFen: 60, actualFen: 100 });
    // No rate for this pay type: not checked.
    assert.deepEqual(
      codes(
        matchDay({ ...agreed([a]), channel: [line(a, { feeFen: fen(100) })], feeRateBps: { weixin: 20 } }),
      ),
      [],
    );
    assert.deepEqual(
      codes(
        matchDay({
          ...agreed([a]),
          channel: [line(a, { feeFen: fen(61) })],
          feeRateBps: { alipay: 60 },
          feeToleranceFen: fen(1),
        }),
      ),
      [],
    );
  });

  it('refunds are matched by request number, or by trade number + amount when the bill has none', () => {
    const a = pay('ZY1', 10_000, at(DAY, 9 * HOUR));
    const r1 = refund('ZY1', 'RQ-1', 3000, at(DAY, 10 * HOUR));
    const r2 = refund('ZY1', 'RQ-2', 2000, at(DAY, 11 * HOUR));
    // The channel lists them in another order: still matched by request number.
    const clean = matchDay({ ...agreed([a, r1, r2]), channel: [line(r2), line(a), line(r1)] });
    assert.deepEqual(codes(clean), []);
    assert.equal(clean.matched, 6);

    // Request numbers crossed with the amounts: both are amount mismatches, not missing.
    const crossed = matchDay({
      ...agreed([a, r1, r2]),
      channel: [line(a), line(r1, { amountFen: fen(2000) }), line(r2, { amountFen: fen(3000) })],
    });
    assert.deepEqual(codes(crossed), ['AMOUNT_MISMATCH', 'AMOUNT_MISMATCH']);

    // A bill without request numbers: matched by trade number + amount.
    const { outRequestNo: _x, ...noReq1 } = line(r1);
    const { outRequestNo: _y, ...noReq2 } = line(r2);
    const byAmount = matchDay({ ...agreed([a, r1, r2]), channel: [line(a), noReq2, noReq1] });
    assert.deepEqual(codes(byAmount), []);
    // ...and an unknown request number is a CHANNEL_ONLY and a PLATFORM_ONLY (and the HIS knows no such refund).
    const wrongReq = matchDay({
      ...agreed([a, r1]),
      channel: [line(a), line(r1, { outRequestNo: 'RQ-9' })],
    });
    assert.deepEqual(codes(wrongReq), ['CHANNEL_ONLY', 'PLATFORM_ONLY', 'STATUS_MISMATCH']);
    assert.deepEqual(
      codes(
        matchDay({
          ...agreed([a, r1]),
          channel: [line(a), line(r1, { outRequestNo: 'RQ-9' })],
          his: undefined,
        }),
      ),
      ['CHANNEL_ONLY', 'PLATFORM_ONLY'],
    );
  });

  it('without a HIS only the channel is compared', () => {
    const a = pay('MZ1', 1000, noon);
    const { his: _h, ...input } = agreed([a]);
    const r = matchDay(input);
    assert.deepEqual(r.differences, []);
    assert.equal(r.matched, 1);
    assert.equal(r.totals.his, undefined);
  });

  describe('pending pool across midnight', () => {
    const late = pay('MZ9', 5000, at(DAY, 23 * HOUR + 50 * 60_000)); // 23:50 on day 1
    const day2 = nextDay(DAY);

    it('an entry at 23:50 missing from today’s bill is pending; tomorrow’s bill has it: matched', () => {
      const d1 = matchDay({ ...agreed([late]), channel: [] });
      assert.deepEqual(d1.differences, []);
      assert.equal(d1.pending.length, 1);
      assert.equal(d1.pending[0]?.pair, 'channel');
      assert.equal(d1.pending[0]?.side, 'platform');
      assert.equal(d1.pending[0]?.sinceDayStart.getTime(), DAY.getTime());

      const other = pay('MZ10', 700, at(day2, 9 * HOUR));
      const d2 = matchDay({
        platform: [other],
        channel: [line(other), line(late)], // the channel put it on its next day
        his: [his(other)],
        pending: d1.pending,
        dayStart: day2,
      });
      assert.deepEqual(d2.differences, []);
      assert.deepEqual(d2.pending, []);
      assert.equal(d2.matched, 3);
    });

    it('a channel line just after midnight waits for the platform’s previous day', () => {
      const early = pay('MZ8', 800, at(day2, 5 * 60_000)); // 00:05 at the channel
      const d1 = matchDay({ platform: [], channel: [line(early)], his: [], dayStart: day2 });
      assert.deepEqual(codes(d1), []);
      assert.deepEqual(
        d1.pending.map((p) => `${p.pair}/${p.side}`),
        ['channel/channel', 'his/channel'],
      );
      const d2 = matchDay({
        platform: [{ ...early, time: at(nextDay(day2), HOUR) }],
        channel: [],
        his: [his(early, { time: at(nextDay(day2), HOUR) })],
        pending: d1.pending,
        dayStart: nextDay(day2),
      });
      assert.deepEqual(codes(d2), []);
    });

    it('an entry unmatched for 3 days becomes a difference', () => {
      let pending = matchDay({ ...agreed([late]), channel: [] }).pending;
      for (let n = 1; n <= 2; n++) {
        const r = matchDay({ platform: [], channel: [], his: [], pending, dayStart: nextDay(DAY, n) });
        assert.deepEqual(r.differences, [], `day +${n}`);
        assert.equal(r.pending.length, 1);
        assert.equal(r.pending[0]?.sinceDayStart.getTime(), DAY.getTime());
        pending = r.pending;
      }
      const r = matchDay({ platform: [], channel: [], his: [], pending, dayStart: nextDay(DAY, 3) });
      assert.deepEqual(codes(r), ['PLATFORM_ONLY']);
      assert.equal(r.differences[0]?.pendingSince?.getTime(), DAY.getTime());
      assert.deepEqual(r.pending, []);
    });

    it('an entry at noon is never pending', () => {
      const r = matchDay({ ...agreed([pay('MZ1', 1, noon)]), channel: [] });
      assert.deepEqual(codes(r), ['PLATFORM_ONLY']);
      assert.deepEqual(r.pending, []);
    });

    it('the HIS comparison has its own pool', () => {
      const d1 = matchDay({ ...agreed([late]), his: [] });
      assert.deepEqual(codes(d1), []);
      assert.deepEqual(
        d1.pending.map((p) => `${p.pair}/${p.side}`),
        ['his/platform'],
      );
      const d2 = matchDay({
        platform: [],
        channel: [],
        his: [his(late)],
        pending: d1.pending,
        dayStart: day2,
      });
      assert.deepEqual(codes(d2), []);
      assert.equal(d2.matched, 1);
    });
  });

  it('a cut-off hour moves the business day', () => {
    const start = businessDayStart('2026-11-24', 2);
    assert.equal(formatShanghai(start), '2026-11-24 02:00:00');
    assert.equal(businessDateOf(new Date(start.getTime() - 1000), 2), '2026-11-23');
    assert.equal(businessDateOf(start, 2), '2026-11-24');
    assert.throws(() => businessDayStart('2026-02-30'), RangeError);
  });

  it('platformEntriesFrom builds payments (cash part) and channel refunds from store rows', () => {
    const paidAt = noon;
    const trade = (over: Partial<TradeRow>): TradeRow => ({
      id: 1,
      trade_no: 'T1',
      out_trade_no: 'ZY1',
      channel_trade_no: 'C1',
      status: 'TRADE_SUCCESS',
      total_fen: fen(10_000),
      insurance_fen: fen(0),
      paid_at: paidAt,
      category: 'ZY',
      kind: 'barcode',
      ...over,
    });
    const trades = [
      trade({ insurance_fen: fen(4000) }),
      trade({ id: 2, out_trade_no: 'V1', kind: 'void' }),
      trade({ id: 3, out_trade_no: 'W1', status: 'WAIT_BUYER_PAY', paid_at: null }),
      trade({ id: 4, out_trade_no: 'I1', insurance_fen: fen(10_000) }),
    ];
    const rf = (over: Partial<RefundRow>): RefundRow => ({
      trade_id: 1,
      out_request_no: 'RQ1',
      kind: 'refund',
      amount_fen: fen(1000),
      status: 'SUCCESS',
      finished_at: at(DAY, 13 * HOUR),
      updated_at: at(DAY, 14 * HOUR),
      ...over,
    });
    const refunds = [
      rf({}),
      rf({ out_request_no: 'RQ2', kind: 'insurance' }),
      rf({ out_request_no: 'RQ3', status: 'PROCESSING' }),
      rf({ out_request_no: 'RQ4', kind: 'cancel', amount_fen: fen(5000), finished_at: null }),
    ];
    const entries = platformEntriesFrom(trades, refunds);
    // With the unsettled ones: the unpaid trade at its creation, the PROCESSING refund at its request.
    const created = at(DAY, 9 * HOUR);
    const withUnsettled = platformEntriesFrom(
      [
        ...trades.map((t) => ({ ...t, created_at: created })),
        trade({ id: 5, out_trade_no: 'C1', status: 'TRADE_CLOSED', paid_at: null, created_at: created }),
      ],
      refunds.map((r) => ({
        ...r,
        created_at: created,
        ...(r.status === 'PROCESSING' ? { finished_at: null } : {}),
      })),
      { unsettled: true },
    );
    assert.deepEqual(
      withUnsettled
        .filter(
          (e) => !entries.some((x) => x.outTradeNo === e.outTradeNo && x.outRequestNo === e.outRequestNo),
        )
        .map((e) => [
          e.kind,
          e.outTradeNo,
          e.outRequestNo ?? '',
          e.status,
          e.time.getTime() === created.getTime(),
        ]),
      [
        ['payment', 'W1', '', 'WAIT_BUYER_PAY', true],
        ['payment', 'C1', '', 'TRADE_CLOSED_UNPAID', true],
        ['refund', 'ZY1', 'RQ3', 'PROCESSING', true],
      ],
    );
    assert.deepEqual(entries, [
      {
        kind: 'payment',
        outTradeNo: 'ZY1',
        channelTradeNo: 'C1',
        platformTradeNo: 'T1',
        amountFen: 6000,
        time: paidAt,
        category: 'ZY',
        status: 'TRADE_SUCCESS',
      },
      {
        kind: 'refund',
        outTradeNo: 'ZY1',
        outRequestNo: 'RQ1',
        channelTradeNo: 'C1',
        platformTradeNo: 'T1',
        amountFen: 1000,
        time: at(DAY, 13 * HOUR),
        category: 'ZY',
        status: 'SUCCESS',
      },
      {
        kind: 'refund',
        outTradeNo: 'ZY1',
        outRequestNo: 'RQ4',
        channelTradeNo: 'C1',
        platformTradeNo: 'T1',
        amountFen: 5000,
        time: at(DAY, 14 * HOUR),
        category: 'ZY',
        status: 'SUCCESS',
      },
    ]);
  });

  it('summarizeByCategory counts payments, refunds and net per category', () => {
    const s = summarizeByCategory([
      pay('MZ1', 1000, noon, 'MZ'),
      pay('MZ2', 500, noon, 'MZ'),
      refund('MZ1', 'R1', 300, noon, 'MZ'),
      pay('ZJMZ1', 200, noon, 'ZJMZ'),
      pay('Q1', 7, noon, 'SOMETHING'),
      { ...pay('ZY1', 99, noon, 'ZY'), status: 'WAIT_BUYER_PAY' },
    ]);
    assert.deepEqual(
      s.map((r) => [r.category, r.payment.count, r.payment.fen, r.refund.count, r.refund.fen, r.netFen]),
      [
        ['MZ', 2, 1500, 1, 300, 1200],
        ['ZY', 0, 0, 0, 0, 0],
        ['ZJMZ', 1, 200, 0, 0, 200],
        ['ZHZY', 0, 0, 0, 0, 0],
        ['OTHER', 1, 7, 0, 0, 7],
      ],
    );
  });
});
