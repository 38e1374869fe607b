import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { NotifyJob } from '../../../src/jobs/notifier.js';
import { ExpiryJob } from '../../../src/jobs/expirer.js';
import { NOTIFY_SCHEDULE_MS } from '../../../src/services/notify.js';
import { TEST_DB } from '../../support/db.js';
import { TEST_APP_KEY, gateway } from '../../support/gateway.js';
import { submit as post, visit as get } from '../../support/payer.js';
import { orderNo, startTestPlatform, type TestPlatform } from '../../support/platform.js';
import { NotifyReceiver, type Answer } from '../../support/receiver.js';

/**
 * Reliability battery, items 6 and 7: the notification schedule on a fake clock against receivers that answer
 * HTTP 500, time out or answer "fail"; and a receiver that queries the trade the moment a notification arrives,
 * which must never find it unpaid (the outbox row is written by the statement that makes the transition).
 */

const MIN = 60_000;
const TIMEOUT_MS = 300;

/** "1h24m" */
function span(ms: number): string {
  const m = Math.round(ms / MIN);
  return m >= 60 ? `${Math.floor(m / 60)}h${m % 60 ? `${m % 60}m` : ''}` : `${m}m`;
}

describe(`reliability: notification receivers (${TEST_DB})`, () => {
  let t: TestPlatform;
  let his: NotifyReceiver;

  before(async () => {
    t = await startTestPlatform({
      env: {
        HOSPAY_NOTIFY_TIMEOUT: `${TIMEOUT_MS}ms`,
        HOSPAY_NOTIFY_BATCH: '20',
        HOSPAY_NOTIFY_INTERVAL: '20ms',
        HOSPAY_JOB_BATCH: '50',
      },
    });
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    his = new NotifyReceiver(() => t.clock.now().getTime());
    await his.start();
  });
  after(async () => {
    await his.stop();
    await t.close();
  });
  // Nothing left due for the next test.
  afterEach(async () => {
    await t.store.db
      .updateTable('notifications')
      .set({ status: 'FAILED', lease_until: null, lease_owner: null })
      .where('status', '=', 'PENDING')
      .execute();
  });

  /** An H5 trade with a notify_url; the payer reaches the channel's page (nothing paid yet). */
  async function openH5(notifyUrl: string, amount = '18.80', timeout = '20m') {
    const outTradeNo = orderNo('MZ');
    const a = await gateway(t, 'lc.trade.h5.pay', {
      out_trade_no: outTradeNo,
      total_amount: amount,
      subject: '门诊缴费',
      return_url: 'https://his.example.cn/pay/return',
      notify_url: notifyUrl,
      order_type: 'TREATMENT',
      timeout_express: timeout,
    });
    assert.equal(a.json.code, '10000', a.raw);
    const gotoUrl = String(a.biz['goto_url']);
    const chosen = await post(gotoUrl, 'pay_type=alipay');
    assert.equal(chosen.status, 302);
    return { outTradeNo, amount, gotoUrl, cashier: chosen.location };
  }

  /** Pays on the channel's page and comes back: the way back makes the transition. */
  async function payAndReturn(o: { cashier: string }, action: 'pay' | 'abandon' = 'pay') {
    const paid = await post(o.cashier, `action=${action}`);
    assert.equal(paid.status, 303);
    const back = await get(paid.location);
    assert.equal(back.status, 302);
  }

  /** The notifications of the test app's trades with these order numbers, oldest first, each with its order number. */
  async function notificationsOf(outTradeNos: string[]) {
    const noOf = new Map<number, string>();
    for (const no of outTradeNos) noOf.set((await t.trade(no)).id, no);
    const rows = await t.platform.deps.notifications.ofTrades([...noOf.keys()]);
    return rows.map((n) => ({ ...n, out_trade_no: noOf.get(n.trade_id) ?? '' }));
  }

  // ---- item 6 -------------------------------------------------------------------------------------------

  it('the schedule on a fake clock: receivers answering 500, timing out or "fail" get 8 attempts at 0, 4m, 14m, 24m, 1h24m, 3h24m, 9h24m, 24h24m, then FAILED; recovering ones stop at their first "success"', async (ctx) => {
    const realStart = performance.now();
    const bad = (kind: string): Answer =>
      kind === '500'
        ? { status: 500, body: '<h1>Internal Server Error</h1>' }
        : kind === 'timeout'
          ? { delayMs: TIMEOUT_MS * 3 }
          : { body: 'fail' };
    // [path, behaviour, the attempt that succeeds (null: never)]
    const receivers: Array<[string, (i: number) => Answer, number | null]> = [
      ['/answers-500', () => bad('500'), null],
      ['/times-out', () => bad('timeout'), null],
      ['/answers-fail', () => bad('fail'), null],
      ['/500-then-success', (i) => (i < 3 ? bad('500') : {}), 4],
      ['/timeout-then-success', (i) => (i < 1 ? bad('timeout') : {}), 2],
      ['/fail-then-success', (i) => (i < 6 ? bad('fail') : {}), 7],
      ['/mixed-then-success', (i) => (i < 7 ? bad(['500', 'timeout', 'fail'][i % 3] ?? '') : {}), 8],
      ['/success', () => ({}), 1],
    ];
    const trades = new Map<string, string>();
    for (const [path, behaviour] of receivers) {
      const o = await openH5(his.url(path, behaviour));
      await payAndReturn(o);
      trades.set(path, o.outTradeNo);
    }
    const mine = [...trades.values()];
    const first = t.clock.now().getTime();

    // Event-driven: jump the fake clock to the next due attempt, then one delivery pass.
    const job = new NotifyJob(t.platform.deps);
    let passes = 0;
    for (;;) {
      const due = (await notificationsOf(mine))
        .filter((n) => n.status === 'PENDING')
        .map((n) => n.next_attempt_at.getTime());
      if (due.length === 0) break;
      const at = Math.min(...due);
      if (at > t.clock.now().getTime()) t.clock.set(new Date(at));
      await job.tick();
      passes++;
      assert.ok(passes < 100, 'the schedule ends');
    }
    // Nothing more, however long we wait.
    t.clock.advance(48 * 3_600_000);
    await job.tick();

    const cumulative = NOTIFY_SCHEDULE_MS.map((_, i) =>
      NOTIFY_SCHEDULE_MS.slice(0, i + 1).reduce((s, x) => s + x, 0),
    );
    const rows = await notificationsOf(mine);
    for (const [path, , succeedsAt] of receivers) {
      const outTradeNo = trades.get(path) ?? '';
      const n = rows.find((r) => r.out_trade_no === outTradeNo);
      assert.ok(n, path);
      const got = his.on(path);
      const offsets = got.map((r) => r.at - first);
      const expectedAttempts = succeedsAt ?? NOTIFY_SCHEDULE_MS.length;
      assert.deepEqual(offsets, cumulative.slice(0, expectedAttempts), `${path}: attempt times`);
      assert.equal(n.attempts, expectedAttempts, path);
      assert.equal(n.status, succeedsAt === null ? 'FAILED' : 'DELIVERED', path);
      assert.equal(new Set(got.map((r) => r.notifyId)).size, 1, `${path}: one notify_id across attempts`);
      const attempts = await t.platform.deps.notifications.attemptsOf([n.id]);
      assert.deepEqual(
        attempts.map((a) => a.started_at.getTime() - first),
        offsets,
        `${path}: recorded attempt times`,
      );
      for (const a of attempts.slice(0, expectedAttempts - (succeedsAt === null ? 0 : 1))) {
        // Every failure is recorded with its reason: the status, or the timeout.
        assert.ok(a.http_status === 500 || a.http_status === 200 || /timeout/.test(a.error ?? ''), path);
      }
      ctx.diagnostic(
        `${path}: ${n.status} after ${n.attempts} attempt(s) at +${offsets.map(span).join(', +')}`,
      );
    }
    ctx.diagnostic(
      `schedule: ${receivers.length} receivers, ${his.got.length} deliveries in ${passes} passes, fake time ` +
        `${span(cumulative.at(-1) ?? 0)}, real time ${Math.round(performance.now() - realStart)} ms ` +
        `(each timeout cut at ${TIMEOUT_MS} ms)`,
    );
  });

  // ---- item 7 -------------------------------------------------------------------------------------------

  it('a receiver that queries the trade the moment a notification arrives (offline query and lc.trade.query) never sees it unpaid', async (ctx) => {
    interface Seen {
      notified: string;
      offline: string;
      gateway: string;
      outTradeNo: string;
      realAt: number;
    }
    const seen: Seen[] = [];
    const url = his.url('/queries-back', async (_i, r) => {
      // Before answering: the HIS looks the trade up, through both doors at once.
      const [q, g] = await Promise.all([
        t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: r.outTradeNo }),
        gateway(t, 'lc.trade.query', { out_trade_no: r.outTradeNo }),
      ]);
      seen.push({
        notified: r.tradeStatus,
        offline: q.result.TradeStatus ?? q.rr.SubCode,
        gateway: String(g.biz['trade_status'] ?? g.biz['sub_code']),
        outTradeNo: r.outTradeNo,
        realAt: r.realAt,
      });
      return {};
    });

    // This HIS looks the trade up before it answers, which under load can take longer than the short timeout
    // the schedule test uses: give each attempt the default 10 s here, so that the first attempt is the one seen.
    const config = t.platform.deps.config;
    config.notify.timeoutMs = 10_000;
    const job = new NotifyJob(t.platform.deps);
    job.start();
    const committed = new Map<string, number>(); // `${outTradeNo} ${status}` -> real time the transition was answered
    const expected = new Map<string, string[]>();
    const mark = (outTradeNo: string, status: string) => {
      committed.set(`${outTradeNo} ${status}`, Date.now());
      expected.set(outTradeNo, [...(expected.get(outTradeNo) ?? []), status]);
    };
    try {
      const flows: Array<() => Promise<void>> = [];
      // Paid; the way back makes the transition.
      for (let i = 0; i < 6; i++)
        flows.push(async () => {
          const o = await openH5(url);
          await payAndReturn(o);
          mark(o.outTradeNo, 'TRADE_SUCCESS');
        });
      // Paid at the channel; the HIS's query makes the transition (gateway or offline door).
      for (let i = 0; i < 6; i++)
        flows.push(async () => {
          const o = await openH5(url);
          assert.equal((await post(o.cashier, 'action=pay')).status, 303);
          if (i % 2) await gateway(t, 'lc.trade.query', { out_trade_no: o.outTradeNo });
          else await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: o.outTradeNo });
          mark(o.outTradeNo, 'TRADE_SUCCESS');
        });
      // The payer gives up.
      for (let i = 0; i < 3; i++)
        flows.push(async () => {
          const o = await openH5(url);
          await payAndReturn(o, 'abandon');
          mark(o.outTradeNo, 'TRADE_CLOSED');
        });
      // Paid, then refunded in part and then in full, or reversed by a cancel, at once after the payment.
      for (let i = 0; i < 6; i++)
        flows.push(async () => {
          const o = await openH5(url, '30.00');
          await payAndReturn(o);
          mark(o.outTradeNo, 'TRADE_SUCCESS');
          if (i % 2) {
            const c = await gateway(t, 'lc.trade.cancel', { out_trade_no: o.outTradeNo });
            assert.equal(c.biz['action'], 'refund', c.raw);
          } else {
            for (const [no, amount] of [
              ['P1', '10.00'],
              ['P2', '20.00'],
            ] as const) {
              const r = await gateway(t, 'lc.trade.refund', {
                out_trade_no: o.outTradeNo,
                refund_amount: amount,
                out_request_no: no,
              });
              assert.equal(r.json.code, '10000', r.raw);
            }
          }
          mark(o.outTradeNo, 'TRADE_CLOSED');
        });
      await Promise.all(flows.map((f) => f()));

      // Unpaid trades whose time runs out: the expiry job closes them.
      const expiring = await Promise.all(Array.from({ length: 3 }, () => openH5(url, '5.00', '1m')));
      t.clock.advance(2 * MIN);
      const expiry = new ExpiryJob(t.platform.deps);
      const closed = await expiry.tick();
      assert.ok(closed.closed >= expiring.length, JSON.stringify(closed));
      for (const o of expiring) mark(o.outTradeNo, 'TRADE_CLOSED');

      const mine = [...expected.keys()];
      const deadline = Date.now() + 20_000;
      for (;;) {
        const rows = await notificationsOf(mine);
        const total = [...expected.values()].reduce((s, l) => s + l.length, 0);
        if (rows.length === total && rows.every((r) => r.status === 'DELIVERED')) break;
        assert.ok(
          Date.now() < deadline,
          `not all delivered: ${JSON.stringify(rows.filter((r) => r.status !== 'DELIVERED'))}`,
        );
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await job.stop();
      config.notify.timeoutMs = TIMEOUT_MS;
    }

    // Every committed transition was notified, once per transition.
    const rows = await notificationsOf([...expected.keys()]);
    for (const [outTradeNo, statuses] of expected) {
      assert.deepEqual(
        rows
          .filter((r) => r.out_trade_no === outTradeNo)
          .map((r) => r.trade_status)
          .sort(),
        [...statuses].sort(),
        outTradeNo,
      );
    }
    // What the receiver saw at the moment each notification arrived.
    const unpaid = seen.filter((s) =>
      [s.offline, s.gateway].some((x) => !/^TRADE_(SUCCESS|CLOSED|FINISHED)$/.test(x)),
    );
    const wrong = seen.filter((s) =>
      s.notified === 'TRADE_CLOSED'
        ? s.offline !== 'TRADE_CLOSED' || s.gateway !== 'TRADE_CLOSED'
        : s.notified !== 'TRADE_SUCCESS',
    );
    const same = seen.filter((s) => s.offline === s.notified && s.gateway === s.notified).length;
    let longest = 0;
    for (const s of seen) {
      const at = committed.get(`${s.outTradeNo} ${s.notified}`);
      if (at !== undefined) longest = Math.max(longest, s.realAt - at);
    }
    ctx.diagnostic(
      `query-back receiver: ${seen.length} notifications for ${expected.size} trades, ${seen.length * 2} queries ` +
        `at arrival; ${same} saw exactly the notified state, ${seen.length - same - wrong.length} a later one ` +
        `(refunded or cancelled since), ${unpaid.length} saw it unpaid or unknown, ${wrong.length} a wrong state; ` +
        `longest from the transition's answer to the arrival ${longest} ms (real time, notifier every 20 ms)`,
    );
    assert.deepEqual(unpaid, [], 'never unpaid at the moment of the notification');
    assert.deepEqual(wrong, []);
    assert.equal(
      seen.length,
      [...expected.values()].reduce((s, l) => s + l.length, 0),
    );
  });
});
