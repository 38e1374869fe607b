import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { fen, formatFen } from '../../../src/domain/money.js';
import { readBooks, type Books } from '../../support/books.js';
import { TEST_DB } from '../../support/db.js';
import { TEST_APP_KEY, gateway, gatewayBody, postGateway } from '../../support/gateway.js';
import { submit as post, visit as get } from '../../support/payer.js';
import {
  authCode,
  barcodeFields,
  orderNo,
  startTestPlatform,
  type OfflineAnswer,
  type TestPlatform,
} from '../../support/platform.js';
import { shuffle, storm } from '../../support/storm.js';

/**
 * Reliability battery, items 1 and 2: refund storms and pay storms, through both doors (the offline XML door
 * and the signed gateway), with identical and distinct request numbers, all at once. The simulator's own books
 * (sim_ledger) count the fund changes; every sum is checked in SQL against the platform's books.
 */

/**
 * The money invariants of settled trades: at most one charge, the channel charged exactly what the platform
 * holds as paid, the channel refunded exactly what the platform holds as refunded (record by record), never
 * more than was paid, nothing left reserved.
 */
function moneyProblems(rows: Books[]): string[] {
  const p: string[] = [];
  for (const b of rows) {
    const at = `${b.out_trade_no} (${b.status})`;
    if (b.trades !== 1) p.push(`${at}: ${b.trades} trades`);
    if (b.charges > 1) p.push(`${at}: charged ${b.charges} times`);
    if (b.charged_fen !== (b.paid ? b.total_fen : 0))
      p.push(`${at}: channel charged ${b.charged_fen}, platform holds paid=${b.paid} of ${b.total_fen}`);
    if (b.channel_refunded_fen !== b.refunded_fen)
      p.push(`${at}: channel refunded ${b.channel_refunded_fen}, platform ${b.refunded_fen}`);
    if (b.channel_refunds !== b.refunds_ok)
      p.push(`${at}: ${b.channel_refunds} refunds at the channel, ${b.refunds_ok} recorded`);
    if (b.refunds_ok_fen !== b.refunded_fen)
      p.push(`${at}: refund records add up to ${b.refunds_ok_fen}, trade says ${b.refunded_fen}`);
    if (b.refunded_fen > (b.paid ? b.total_fen : 0)) p.push(`${at}: refunded ${b.refunded_fen} > paid`);
    if (b.refunds_open !== 0 || b.reserved_fen !== b.refunded_fen)
      p.push(`${at}: ${b.refunds_open} refunds still open, ${b.reserved_fen - b.refunded_fen} fen reserved`);
  }
  return p;
}

const fenOf = (yuan: unknown) => Math.round(Number(yuan) * 100);
const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);

describe(`reliability: pay and refund storms (${TEST_DB})`, () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
  });
  after(async () => {
    await t.close();
  });

  const pay = (f: Record<string, string | undefined>) => t.offline('FWC_IF_Barcode_Pay', f);
  const query = (no: string) => t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: no });
  const h5 = (over: Record<string, unknown> = {}) => ({
    out_trade_no: orderNo('MZ'),
    total_amount: '66.60',
    subject: '门诊缴费',
    return_url: 'https://his.example.cn/pay/return',
    notify_url: 'https://his.example.cn/pay/notify',
    order_type: 'TREATMENT',
    ...over,
  });

  /** Barcode trades paid at once, for the refund storms. */
  async function paidBarcode(amounts: string[]) {
    return Promise.all(
      amounts.map(async (amount) => {
        const f = barcodeFields({ TotalAmount: amount });
        const a = await pay(f);
        assert.equal(a.rr.IsSuccess, '1', a.text);
        return { outTradeNo: f.OutTradeNo ?? '', tradeNo: a.result.TradeNo ?? '', amount };
      }),
    );
  }

  /** H5 trades paid the way a payer does (goto_url, choose, the channel's page, back). */
  async function paidH5(amounts: string[]) {
    return Promise.all(
      amounts.map(async (amount) => {
        const biz = h5({ total_amount: amount });
        const a = await gateway(t, 'lc.trade.h5.pay', biz);
        assert.equal(a.json.code, '10000', a.raw);
        const chosen = await post(String(a.biz['goto_url']), 'pay_type=alipay');
        assert.equal(chosen.status, 302);
        const paid = await post(chosen.location, 'action=pay');
        assert.equal(paid.status, 303);
        const q = await gateway(t, 'lc.trade.query', { out_trade_no: biz.out_trade_no });
        assert.equal(q.biz['trade_status'], 'TRADE_SUCCESS', q.raw);
        return {
          outTradeNo: biz.out_trade_no,
          tradeNo: String(q.biz['trade_no']),
          platformTradeNo: String(q.biz['platform_trade_no']),
          amount,
        };
      }),
    );
  }

  /** A signed gateway form, ready to send (signed beforehand: signing takes the test process a moment). */
  const signedBody = (method: string, biz: Record<string, unknown>) => gatewayBody(t, method, biz);
  async function sendGateway(body: string): Promise<{ code: string; biz: Record<string, unknown> }> {
    const json = JSON.parse((await postGateway(t, body)).raw) as {
      code: string;
      biz_content: Record<string, unknown>;
    };
    return { code: json.code, biz: json.biz_content };
  }

  async function assertBooks(ctx: TestContext, label: string, outTradeNos: string[]): Promise<Books[]> {
    const rows = await readBooks(t.store.db, { appId: t.appId, outTradeNos });
    assert.equal(rows.length, outTradeNos.length, `${label}: every order has its trade`);
    const problems = moneyProblems(rows);
    ctx.diagnostic(
      `${label}: ${rows.length} trades; channel: ${sum(rows.map((b) => b.charges))} charges ` +
        `${formatFen(fen(sum(rows.map((b) => b.charged_fen))))} yuan, ${sum(rows.map((b) => b.channel_refunds))} refunds ` +
        `${formatFen(fen(sum(rows.map((b) => b.channel_refunded_fen))))} yuan; platform refunded ` +
        `${formatFen(fen(sum(rows.map((b) => b.refunded_fen))))} yuan; problems: ${problems.length}`,
    );
    assert.deepEqual(problems, [], label);
    return rows;
  }

  // ---- item 2: pay storms -----------------------------------------------------------------------------

  it('offline: 20 orders × 10 identical FWC_IF_Barcode_Pay at once (paid at once, after a password, after an error) → one trade and one charge each', async (ctx) => {
    const rules = ['00', '01', '04', '09'];
    const orders = Array.from({ length: 20 }, (_, i) =>
      barcodeFields({
        TotalAmount: formatFen(fen(1000 + i * 37)),
        AuthCode: authCode(rules[i % rules.length] ?? '00', i % 3 === 0 ? 'weixin' : 'alipay'),
      }),
    );
    const requests = shuffle(orders.flatMap((f) => Array.from({ length: 10 }, () => f)));
    const { answers, ms } = await storm(requests, async (f) => ({ f, a: await pay(f) }));
    for (const { a } of answers)
      assert.ok(a.rr.IsSuccess === '1' || ['USER_PAYING', 'CHANNEL_ERROR'].includes(a.rr.SubCode), a.text);
    for (const f of orders) {
      const mine = answers.filter((x) => x.f === f).map((x) => x.a);
      assert.equal(new Set(mine.map((a) => a.result.PlatformTradeNo)).size, 1, 'one platform trade');
      const acked = new Set(mine.filter((a) => a.rr.IsSuccess === '1').map((a) => a.result.TradeNo));
      assert.ok(acked.size <= 1, 'every success names the same channel trade');
      // The HIS queries what was not answered as paid; the channel's answer decides.
      const q = await query(f.OutTradeNo ?? '');
      assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS', q.text);
      for (const no of acked) assert.equal(q.result.TradeNo, no);
    }
    const ok = answers.filter((x) => x.a.rr.IsSuccess === '1').length;
    ctx.diagnostic(
      `offline pay storm: ${requests.length} requests for ${orders.length} orders in ${ms} ms; ` +
        `${ok} answered paid, ${requests.length - ok} "still paying / unknown"`,
    );
    const rows = await assertBooks(
      ctx,
      'offline pay storm',
      orders.map((f) => f.OutTradeNo ?? ''),
    );
    for (const b of rows) assert.equal(b.charges, 1, b.out_trade_no);
  });

  it('offline: the same OutTradeNo with another amount or another payer, at once → one trade, charged once with its own amount', async (ctx) => {
    const orders = Array.from({ length: 10 }, () => {
      const base = barcodeFields({ TotalAmount: '12.34' });
      return [base, { ...base, TotalAmount: '12.35' }, { ...base, AuthCode: authCode() }];
    });
    const requests = shuffle(
      orders.flatMap((variants) => variants.flatMap((f, v) => Array.from({ length: 4 }, () => ({ f, v })))),
    );
    const answers = await Promise.all(requests.map(async (r) => ({ ...r, a: await pay(r.f) })));
    let conflicts = 0;
    for (const variants of orders) {
      const mine = answers.filter((x) => variants.includes(x.f));
      // The variant that made the trade is answered SUCCESS; the others are refused (OUT_TRADE_NO_CONFLICT), or
      // answered with the order's state: paid (TRADE_HAS_SUCCESS, a success only for the same amount and
      // patient: another payer's code) or, for another payer's code while the first is being paid, USER_PAYING.
      const succeeded = mine.filter((x) => x.a.rr.SubCode === 'SUCCESS');
      assert.equal(new Set(succeeded.map((x) => x.v)).size, 1, 'only one variant is ever accepted');
      const winnerV = succeeded[0]?.v ?? -1;
      const winner = variants[winnerV];
      assert.ok(winner);
      for (const x of mine) {
        const sameOrder: boolean = x.f.TotalAmount === winner.TotalAmount;
        // An identical repeat that arrives while the first request is still with the channel is answered with the
        // order's state at that moment (USER_PAYING, below), as it would be during a real channel's round trip;
        // the HIS's query then finds it paid (checked after the loop).
        if (x.v === winnerV && x.a.rr.SubCode !== 'USER_PAYING') {
          assert.equal(x.a.rr.IsSuccess, '1', x.a.text);
          assert.equal(x.a.result.TotalAmount, winner.TotalAmount);
        } else if (x.a.rr.SubCode === 'TRADE_HAS_SUCCESS') {
          assert.equal(x.a.rr.IsSuccess, sameOrder ? '1' : '0', x.a.text);
          assert.equal(x.a.result.TradeStatus, 'TRADE_SUCCESS', x.a.text);
          assert.equal(x.a.result.TotalAmount, winner.TotalAmount, 'the paid amount, not the asked one');
        } else if (x.a.rr.SubCode === 'USER_PAYING') {
          assert.ok(sameOrder, x.a.text);
          assert.equal(x.a.result.TradeStatus, 'WAIT_BUYER_PAY', x.a.text);
        } else {
          assert.equal(x.a.rr.SubCode, 'OUT_TRADE_NO_CONFLICT', x.a.text);
          conflicts++;
        }
      }
      const row = await t.trade(winner.OutTradeNo ?? '');
      assert.equal(row.total_fen, fenOf(winner.TotalAmount));
      const q = await query(winner.OutTradeNo ?? '');
      assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS', q.text);
    }
    ctx.diagnostic(
      `offline conflicting pay storm: ${requests.length} requests for ${orders.length} orders; ` +
        `${conflicts} refused OUT_TRADE_NO_CONFLICT, the others answered with the one trade (one variant each)`,
    );
    const rows = await assertBooks(
      ctx,
      'offline conflicting pay storm',
      orders.map((v) => v[0]?.OutTradeNo ?? ''),
    );
    for (const b of rows) assert.equal(b.charges, 1, b.out_trade_no);
  });

  it('gateway: lc.trade.h5.pay storms (identical and another amount), then payers racing on goto_url, the channel page and the way back → one trade, one charge, one notification', async (ctx) => {
    const orders = Array.from({ length: 5 }, (_, i) => h5({ total_amount: formatFen(fen(5000 + i * 111)) }));
    const creates = shuffle(
      orders.flatMap((biz) => [
        ...Array.from({ length: 8 }, () => ({ biz, v: 0 })),
        ...Array.from({ length: 4 }, () => ({ biz: { ...biz, total_amount: '0.01' }, v: 1 })),
      ]),
    );
    const created = await Promise.all(
      creates.map(async (c) => ({ ...c, a: await gateway(t, 'lc.trade.h5.pay', c.biz) })),
    );
    let conflicts = 0;
    const gotoUrls: string[] = [];
    for (const biz of orders) {
      const mine = created.filter((x) => x.biz.out_trade_no === biz.out_trade_no);
      const accepted = mine.filter((x) => x.a.json.code === '10000');
      for (const x of mine.filter((m) => m.a.json.code !== '10000')) {
        assert.equal(x.a.biz['sub_code'], 'OUT_TRADE_NO_CONFLICT', x.a.raw);
        conflicts++;
      }
      assert.equal(new Set(accepted.map((x) => x.v)).size, 1, 'one variant accepted');
      assert.equal(new Set(accepted.map((x) => x.a.biz['goto_url'])).size, 1, 'one goto_url');
      assert.equal(new Set(accepted.map((x) => x.a.biz['platform_trade_no'])).size, 1, 'one trade');
      gotoUrls.push(String(accepted[0]?.a.biz['goto_url']));
    }
    // The same payer taps several times, on several devices, choosing Alipay or WeChat.
    const chosen = await Promise.all(
      gotoUrls.flatMap((url) =>
        Array.from({ length: 6 }, (_, i) => post(url, `pay_type=${i % 3 === 2 ? 'weixin' : 'alipay'}`)),
      ),
    );
    const cashiers = new Set<string>();
    for (const r of chosen) {
      assert.ok(r.status === 302 || r.status === 200, `choose: HTTP ${r.status}`);
      if (r.status === 302) cashiers.add(r.location);
    }
    assert.equal(cashiers.size, orders.length, 'one channel trade per order');
    const paid = await Promise.all(
      [...cashiers].flatMap((url) => Array.from({ length: 6 }, () => post(url, 'action=pay'))),
    );
    const backs = paid.map((r) => r.location);
    for (const r of paid) assert.equal(r.status, 303);
    // Back to hospay (each tap), and the HIS querying, all at once.
    const [returned, queried] = await Promise.all([
      Promise.all(backs.map((u) => get(u))),
      Promise.all(
        orders.flatMap((biz) =>
          Array.from({ length: 4 }, () => gateway(t, 'lc.trade.query', { out_trade_no: biz.out_trade_no })),
        ),
      ),
    ]);
    for (const r of returned) {
      assert.equal(r.status, 302);
      const params = new URL(r.location).searchParams;
      assert.match(params.get('biz_content') ?? '', /"trade_status":"TRADE_SUCCESS"/);
    }
    for (const q of queried) assert.equal(q.biz['trade_status'], 'TRADE_SUCCESS', q.raw);
    ctx.diagnostic(
      `gateway pay storm: ${creates.length} lc.trade.h5.pay (${conflicts} refused OUT_TRADE_NO_CONFLICT), ` +
        `${chosen.length} choices, ${paid.length} pays on the channel page, ${returned.length} returns and ` +
        `${queried.length} queries at once for ${orders.length} orders`,
    );
    const rows = await assertBooks(
      ctx,
      'gateway pay storm',
      orders.map((b) => b.out_trade_no),
    );
    for (const b of rows) {
      assert.equal(b.status, 'TRADE_SUCCESS');
      assert.equal(b.charges, 1);
      assert.equal(b.notified_success, 1, 'one TRADE_SUCCESS notification');
      assert.equal(b.notified_closed, 0);
    }
  });

  // ---- item 1: refund storms --------------------------------------------------------------------------

  /**
   * Each trade gets 8 request numbers, each sent 6 times, each for a fifth of the amount: only 5 numbers can
   * be refunded. Returns per trade the answers by request number.
   */
  function refundPlan<P extends { outTradeNo: string; amount: string }>(
    trades: P[],
    repeats = 6,
    numbers = 8,
  ) {
    return trades.flatMap((p) => {
      const part = formatFen(fen(fenOf(p.amount) / 5));
      return Array.from({ length: numbers }, (_, n) =>
        Array.from({ length: repeats }, () => ({ p, no: `S${n}`, part })),
      ).flat();
    });
  }

  function checkRefundAnswers(
    label: string,
    trades: Array<{ outTradeNo: string }>,
    answers: Array<{ p: { outTradeNo: string }; no: string; ok: boolean; change: boolean; code: string }>,
    rows: Books[],
  ) {
    for (const a of answers)
      assert.ok(
        a.ok || ['REFUND_AMOUNT_EXCEEDED', 'REFUND_PROCESSING'].includes(a.code),
        `${label}: unexpected ${a.code}`,
      );
    for (const p of trades) {
      const b = rows.find((r) => r.out_trade_no === p.outTradeNo);
      assert.ok(b);
      const mine = answers.filter((a) => a.p.outTradeNo === p.outTradeNo);
      const changes = mine.filter((a) => a.change);
      // Exactly one fund change per refunded request number; as many as the channel made.
      assert.equal(changes.length, b.channel_refunds, `${label}: fund changes = channel refunds`);
      assert.equal(new Set(changes.map((a) => a.no)).size, changes.length, `${label}: one change per number`);
      assert.equal(b.refunds_ok, 5, `${label}: 5 of 8 request numbers fit`);
      assert.equal(b.refunded_fen, b.total_fen);
      assert.equal(b.status, 'TRADE_CLOSED');
      assert.equal(b.notified_closed, b.notified_success > 0 ? 1 : 0);
    }
  }

  it('offline: refund storm, identical and distinct OutRequestNo at once (8 numbers × 6 repeats × 5 trades) → one fund change each, never more than paid', async (ctx) => {
    const trades = await paidBarcode(['10.00', '33.35', '0.05', '99999.95', '1.00']);
    const plan = shuffle(refundPlan(trades));
    const { answers, ms } = await storm(plan, async ({ p, no, part }) => {
      const a: OfflineAnswer = await t.offline('FWC_IF_Barcode_Pay_Refund', {
        TradeNo: p.tradeNo,
        RefundAmount: part,
        OutRequestNo: no,
        OutTradeNo: p.outTradeNo,
        TotalAmount: p.amount,
      });
      return {
        p,
        no,
        ok: a.rr.IsSuccess === '1',
        change: a.result.RefundChange === 'Y',
        code: a.rr.SubCode,
      };
    });
    const rows = await assertBooks(
      ctx,
      'offline refund storm',
      trades.map((p) => p.outTradeNo),
    );
    checkRefundAnswers('offline', trades, answers, rows);
    ctx.diagnostic(
      `offline refund storm: ${plan.length} requests in ${ms} ms; ${answers.filter((a) => a.change).length} fund changes, ` +
        `${answers.filter((a) => a.ok && !a.change).length} repeats answered RefundChange=N, ` +
        `${answers.filter((a) => a.code === 'REFUND_AMOUNT_EXCEEDED').length} REFUND_AMOUNT_EXCEEDED, ` +
        `${answers.filter((a) => a.code === 'REFUND_PROCESSING').length} REFUND_PROCESSING`,
    );
  });

  it('both doors at once: lc.trade.refund and FWC_IF_Barcode_Pay_Refund racing on the same trades and request numbers → one fund change each', async (ctx) => {
    const trades = await paidH5(['50.00', '12.35', '0.10', '8888.85']);
    const plan = shuffle(refundPlan(trades));
    // Gateway requests are signed beforehand (signing takes the test process a moment each), so that both
    // doors' requests leave together.
    const bodies = plan.map(({ p, no, part }, i) =>
      i % 2 === 0
        ? signedBody('lc.trade.refund', {
            out_trade_no: p.outTradeNo,
            refund_amount: part,
            out_request_no: no,
          })
        : '',
    );
    const { answers, ms } = await storm(plan, async ({ p, no, part }, i) => {
      // A gateway request makes more database round trips (nonce, key) before it reaches the refund, so under
      // load the offline door would win every race: for half of the request numbers it sets off a little later.
      const gatewayLeads = Number(no.slice(1)) % 2 === 0;
      if (i % 2 === 1 && gatewayLeads) await new Promise((r) => setTimeout(r, 200 + Math.random() * 600));
      if (i % 2 === 0) {
        const a = await sendGateway(bodies[i] ?? '');
        return {
          p,
          no,
          door: 'gateway',
          ok: a.code === '10000',
          change: a.biz['fund_change'] === 'Y',
          code: String(a.biz['sub_code'] || 'SUCCESS'),
        };
      }
      const a = await t.offline('FWC_IF_Barcode_Pay_Refund', {
        // Either number is accepted: the channel's or the platform's.
        TradeNo: i % 4 === 1 ? p.tradeNo : p.platformTradeNo,
        RefundAmount: part,
        OutRequestNo: no,
        OutTradeNo: p.outTradeNo,
        TotalAmount: p.amount,
      });
      return {
        p,
        no,
        door: 'offline',
        ok: a.rr.IsSuccess === '1',
        change: a.result.RefundChange === 'Y',
        code: a.rr.SubCode,
      };
    });
    const rows = await assertBooks(
      ctx,
      'two-door refund storm',
      trades.map((p) => p.outTradeNo),
    );
    checkRefundAnswers('two doors', trades, answers, rows);
    ctx.diagnostic(
      `two-door refund storm: ${plan.length} requests in ${ms} ms; fund changes through the gateway ` +
        `${answers.filter((a) => a.change && a.door === 'gateway').length}, through the offline door ` +
        `${answers.filter((a) => a.change && a.door === 'offline').length}; ` +
        `${answers.filter((a) => a.code === 'REFUND_PROCESSING').length} REFUND_PROCESSING`,
    );
  });

  it('cancels racing refunds on paid trades (both doors) → either the reversal or the refunds, never both, never more than paid', async (ctx) => {
    const trades = await paidBarcode(['20.00', '20.00', '20.00', '7.77', '7.77', '7.77']);
    const plan = shuffle(
      trades.flatMap((p) => [
        ...Array.from({ length: 6 }, (_, i) => ({
          p,
          kind: i % 2 ? 'cancel-offline' : 'cancel-gateway',
          no: '',
        })),
        ...Array.from({ length: 12 }, (_, i) => ({ p, kind: 'refund', no: `C${i % 4}` })),
      ]),
    );
    const answers = await Promise.all(
      plan.map(async ({ p, kind, no }) => {
        if (kind === 'cancel-offline') {
          const a = await t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: p.outTradeNo });
          return { p, kind, ok: a.rr.IsSuccess === '1', code: a.rr.SubCode };
        }
        if (kind === 'cancel-gateway') {
          const a = await gateway(t, 'lc.trade.cancel', { out_trade_no: p.outTradeNo });
          return { p, kind, ok: a.json.code === '10000', code: String(a.biz['sub_code'] || 'SUCCESS') };
        }
        const a = await t.offline('FWC_IF_Barcode_Pay_Refund', {
          TradeNo: p.tradeNo,
          RefundAmount: '1.00',
          OutRequestNo: no,
          OutTradeNo: p.outTradeNo,
          TotalAmount: p.amount,
        });
        return {
          p,
          kind,
          ok: a.rr.IsSuccess === '1',
          code: a.result.RefundChange === 'Y' ? 'CHANGE' : a.rr.SubCode,
        };
      }),
    );
    // Business answers only: the loser of the race is told why (or to call again), never a system error.
    const allowed = [
      'SUCCESS',
      'CHANGE',
      'TRADE_HAS_REFUND',
      'CANCEL_IN_PROGRESS',
      'REFUND_AMOUNT_EXCEEDED',
      'REFUND_PROCESSING',
    ];
    for (const a of answers) assert.ok(allowed.includes(a.code), `${a.kind}: ${a.code}`);
    const rows = await assertBooks(
      ctx,
      'cancel-vs-refund storm',
      trades.map((p) => p.outTradeNo),
    );
    let reversed = 0;
    let refundedTrades = 0;
    for (const b of rows) {
      const reversal = await t.platform.deps.refunds.ofTrades([(await t.trade(b.out_trade_no)).id]);
      const cancels = reversal.filter((r) => r.kind === 'cancel' && r.status === 'SUCCESS');
      const refunds = reversal.filter((r) => r.kind === 'refund' && r.status === 'SUCCESS');
      assert.ok(cancels.length === 0 || refunds.length === 0, `${b.out_trade_no}: reversed and refunded`);
      if (cancels.length) {
        reversed++;
        assert.equal(b.status, 'TRADE_CLOSED');
        assert.equal(b.refunded_fen, b.total_fen);
        assert.equal(b.channel_refunds, 1);
      } else {
        refundedTrades++;
        assert.equal(b.refunded_fen, refunds.length * 100);
      }
    }
    ctx.diagnostic(
      `cancel-vs-refund storm: ${plan.length} requests on ${trades.length} trades; ${reversed} reversed by ` +
        `cancel, ${refundedTrades} refunded instead; answers: ` +
        [...new Set(answers.map((a) => `${a.kind}`))]
          .map((k) => {
            const mine = answers.filter((a) => a.kind === k);
            const codes = [...new Set(mine.map((a) => a.code))].map(
              (c) => `${c}×${mine.filter((a) => a.code === c).length}`,
            );
            return `${k} ${codes.join(' ')}`;
          })
          .join('; '),
    );
  });
});
