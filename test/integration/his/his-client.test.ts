import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { HisTradeRecord } from '../../../src/reconcile/his/his-client.js';
import { startHisSimulator, type HisSimulator } from '../../../src/reconcile/his/his-sim.js';
import { expectHisError, SimulatedHis } from '../../support/his.js';
import { fen } from '../../../src/domain/money.js';

/** 2026-11-25 00:00:00 Asia/Shanghai. */
const DAY = new Date('2026-11-24T16:00:00Z');
const at = (hhmmss: string, day = '2026-11-25') => new Date(`${day}T${hhmmss}+08:00`);
const HOUR = 3600_000;

describe('HisClient against the HIS simulator (real HTTP)', () => {
  const his = new SimulatedHis({ options: { accessToken: 'tok' } });
  let sim: HisSimulator;
  const client = (over: Parameters<SimulatedHis['client']>[0] = {}) => his.client(over);
  const hisError = expectHisError;

  before(async () => {
    await his.start();
    ({ sim } = his);
  });
  after(async () => {
    await his.close();
  });
  beforeEach(() => {
    his.reset();
  });

  it('pulls a day in hourly slices: exactly the records of the window, 10:00:00 in the 10–11 slice only', async () => {
    sim.addPayment({ outTradeNo: 'PREV', amountFen: fen(100), time: at('23:59:59', '2026-11-24') });
    sim.addPayment({ outTradeNo: 'MIDNIGHT', amountFen: fen(101), time: at('00:00:00') });
    sim.addPayment({ outTradeNo: 'B0959', amountFen: fen(102), time: at('09:59:59') });
    sim.addPayment({ outTradeNo: 'B1000', amountFen: fen(103), time: at('10:00:00') });
    sim.addPayment({ outTradeNo: 'B1030', amountFen: fen(104), time: at('10:30:00') });
    sim.addPayment({ outTradeNo: 'WX1015', amountFen: fen(105), time: at('10:15:00'), payType: 'weixin' });
    sim.addPayment({ outTradeNo: 'LAST', amountFen: fen(106), time: at('23:59:59') });
    sim.addPayment({ outTradeNo: 'NEXT', amountFen: fen(107), time: at('00:00:00', '2026-11-26') });

    const day = await client().getDay(DAY, HOUR, 'alipay');
    assert.equal(day.slices.length, 24);
    assert.equal(sim.requests.tradeList, 24);
    assert.deepEqual(
      day.records.map((r) => r.outTradeNo),
      ['MIDNIGHT', 'B0959', 'B1000', 'B1030', 'LAST'],
    );
    const slice = (h: number) => day.slices[h]!;
    assert.deepEqual(
      slice(10).records.map((r) => r.outTradeNo),
      ['B1000', 'B1030'],
    );
    assert.deepEqual(
      slice(9).records.map((r) => r.outTradeNo),
      ['B0959'],
    );
    // The simulated HIS reads EndDate inclusively: it echoes 10:00:00 in the 9–10 answer; the client sets it aside.
    assert.deepEqual(
      slice(9).outOfWindow.map((r) => r.outTradeNo),
      ['B1000'],
    );
    assert.deepEqual(slice(10).request, {
      BeginDate: '2026-11-25 10:00:00',
      EndDate: '2026-11-25 11:00:00',
      PayType: 'Alipay',
    });
    assert.match(slice(10).raw, /<OutTradeNo>B1030<\/OutTradeNo>/);
    const b1000 = slice(10).records[0]!;
    assert.equal(b1000.amountFen, 103);
    assert.equal(b1000.status, 'PAID');
    assert.equal(b1000.time.getTime(), at('10:00:00').getTime());

    const wx = await client().getDay(DAY, 6 * HOUR, 'weixin');
    assert.deepEqual(
      wx.records.map((r) => r.outTradeNo),
      ['WX1015'],
    );
  });

  it('sees every fault: missing, wrong amount, wrong status, extra, duplicate (from hospay rows)', async () => {
    const trade = (id: number, out: string, amount: number, paid: string) => ({
      id,
      out_trade_no: out,
      status: 'TRADE_SUCCESS',
      pay_type: 'alipay',
      channel_trade_no: `CH${id}`,
      trade_no: `HP${id}`,
      total_fen: fen(amount),
      insurance_fen: fen(0),
      paid_at: at(paid),
      category: '门诊',
      patient_name: '李四',
      inhospital_no: `Z${id}`,
    });
    const added = sim.loadFromTrades(
      [
        trade(1, 'OK1', 1000, '08:00:00'),
        trade(2, 'DROP', 2000, '09:00:00'),
        trade(3, 'AMOUNT', 3000, '10:00:00'),
        trade(4, 'STATUS', 4000, '11:00:00'),
        trade(5, 'DUP', 5000, '12:00:00'),
        { ...trade(6, 'UNPAID', 6000, '13:00:00'), status: 'WAIT_BUYER_PAY', paid_at: null },
        { ...trade(7, 'MIXED', 7000, '14:00:00'), insurance_fen: fen(4000) },
      ],
      [
        { trade_id: 1, kind: 'refund', amount_fen: fen(300), status: 'SUCCESS', finished_at: at('15:00:00') },
        { trade_id: 1, kind: 'refund', amount_fen: fen(200), status: 'FAILED', finished_at: at('15:30:00') },
        {
          trade_id: 7,
          kind: 'insurance',
          amount_fen: fen(4000),
          status: 'SUCCESS',
          finished_at: at('16:00:00'),
        },
      ],
    );
    assert.equal(added.length, 7); // 6 paid trades + 1 successful channel refund
    const id = (out: string) => added.find((f) => f.outTradeNo === out && f.kind === 'PAY')!.hisFlowId;
    sim.faults.drop.add(id('DROP'));
    sim.faults.amountFen.set(id('AMOUNT'), fen(3001));
    sim.faults.status.set(id('STATUS'), '3');
    sim.faults.duplicate.add(id('DUP'));
    sim.addExtra({ outTradeNo: 'GHOST', amountFen: fen(999), time: at('17:00:00') });

    const { records } = await client().getDay(DAY, HOUR, 'alipay');
    const by = (out: string) => records.filter((r) => r.outTradeNo === out);
    const one = (out: string): HisTradeRecord => {
      const rs = by(out);
      assert.equal(rs.length, 1, `${out}: ${rs.length} records`);
      return rs[0]!;
    };
    assert.deepEqual(
      by('OK1').map((r) => [r.status, r.amountFen, r.tradeNo, r.cardNo]),
      [
        ['PAID', 1000, 'CH1', 'Z1'],
        ['REFUNDED', 300, 'CH1', 'Z1'],
      ],
    );
    assert.equal(by('DROP').length, 0, 'missing');
    assert.equal(one('AMOUNT').amountFen, 3001, 'wrong amount');
    assert.equal(one('STATUS').status, 'REFUNDED', 'wrong status');
    assert.equal(by('DUP').length, 2, 'duplicate');
    assert.equal(one('GHOST').amountFen, 999, 'extra');
    assert.equal(by('UNPAID').length, 0);
    assert.equal(one('MIXED').amountFen, 3000, 'only the cash part goes through the channel');
    assert.equal(records.length, 8);
  });

  it('HIS_IF_Query returns the signed flows; unknown order is not found; wrong token is refused', async () => {
    sim.addPayment({
      outTradeNo: 'Q1',
      tradeNo: 'CHQ1',
      amountFen: fen(10000),
      time: at('09:00:00'),
      cardNo: 'C9',
    });
    const refund = sim.addRefund({ outTradeNo: 'Q1', amountFen: fen(5000), time: at('12:01:01') });
    const q = await client().queryTrade('Q1');
    assert.equal(q.found, true);
    assert.equal(q.tradeNo, 'CHQ1');
    assert.equal(q.medicalCard, 'C9');
    assert.deepEqual(
      q.flows.map((f) => [f.amountFen, f.time.getTime(), f.payTypeCode]),
      [
        [10000, at('09:00:00').getTime(), 'alipay'],
        [-5000, at('12:01:01').getTime(), 'alipay'],
      ],
    );
    assert.equal(q.flows[1]?.hisFlowId, refund.hisFlowId);
    assert.match(q.raw, /<TotalAmount>-50\.00<\/TotalAmount>/);

    sim.faults.amountFen.set(refund.hisFlowId, fen(4999));
    assert.equal((await client().queryTrade('Q1')).flows[1]?.amountFen, -4999);

    const none = await client().queryTrade('NOPE');
    assert.equal(none.found, false);
    assert.deepEqual(none.flows, []);

    const e = await hisError(client({ accessToken: 'wrong' }).queryTrade('Q1'), 'HIS_REFUSED');
    assert.equal(e.details.subCode, 'ACCESS_TOKEN_INVALID');
  });

  it('a slow HIS times out, is retried with backoff, then fails with HIS_TIMEOUT', async () => {
    sim.faults.delayMs = 400;
    const e = await hisError(
      client({ timeoutMs: 100 }).getTradeList({
        begin: at('10:00:00'),
        end: at('11:00:00'),
        payType: 'alipay',
      }),
      'HIS_TIMEOUT',
    );
    assert.equal(e.details.attempts, 3);
    assert.equal(sim.requests.tradeList, 3);
    assert.deepEqual(his.sleeps, [10, 20]);
    assert.match(e.bilingual, /未应答.*did not answer within 100 ms/);
  });

  it('a slow answer inside the timeout is fine', async () => {
    sim.faults.delayMs = 50;
    sim.addPayment({ outTradeNo: 'S1', amountFen: fen(1), time: at('10:00:00') });
    const r = await client({ timeoutMs: 1000 }).getTradeList({
      begin: at('10:00:00'),
      end: at('11:00:00'),
      payType: 'alipay',
    });
    assert.equal(r.records.length, 1);
  });

  it('a broken answer is HIS_MALFORMED (not retried, evidence kept)', async () => {
    sim.faults.broken = 'malformed';
    const e = await hisError(client().queryTrade('X'), 'HIS_MALFORMED');
    assert.equal(sim.requests.query, 1);
    assert.match(e.details.raw ?? '', /<\/IsSucc$/);
  });

  it('HTTP 500 is retried, then HIS_HTTP_500', async () => {
    sim.faults.broken = 'http500';
    const e = await hisError(
      client().getTradeList({ begin: at('10:00:00'), end: at('11:00:00'), payType: 'alipay' }),
      'HIS_HTTP_500',
    );
    assert.equal(sim.requests.tradeList, 3);
    assert.deepEqual(his.sleeps, [10, 20]);
    assert.match(e.details.raw ?? '', /simulated/);
  });

  it('a DOCTYPE in the answer is refused', async () => {
    sim.faults.broken = 'doctype';
    const e = await hisError(
      client().getTradeList({ begin: at('10:00:00'), end: at('11:00:00'), payType: 'alipay' }),
      'HIS_MALFORMED',
    );
    assert.match(e.bilingual, /DOCTYPE/);
  });

  it('IsSuccess=0 is HIS_REFUSED, not an empty list', async () => {
    sim.faults.broken = 'refused';
    const e = await hisError(client().getDay(DAY, HOUR, 'alipay'), 'HIS_REFUSED');
    assert.equal(e.details.subCode, 'SYSTEM_BUSY');
    assert.equal(sim.requests.tradeList, 1);
  });

  it('an answer larger than the limit is refused', async () => {
    for (let i = 0; i < 50; i++)
      sim.addPayment({ outTradeNo: `L${i}`, amountFen: fen(1), time: at('10:00:00') });
    await hisError(
      client({ maxAnswerBytes: 2000 }).getTradeList({
        begin: at('10:00:00'),
        end: at('11:00:00'),
        payType: 'alipay',
      }),
      'HIS_MALFORMED',
    );
  });

  it('a HIS that is down is HIS_UNREACHABLE after retries', async () => {
    const other = await startHisSimulator(0);
    const deadUrl = other.url;
    await other.close();
    const e = await hisError(client({ baseUrl: deadUrl }).queryTrade('X'), 'HIS_UNREACHABLE');
    assert.equal(e.details.attempts, 3);
  });
});
