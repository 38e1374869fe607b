import { after, afterEach, before, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { qrFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { always, NotifyReceiver, type Answer } from '../support/receiver.js';
import { NotifyJob } from '../../src/jobs/notifier.js';
import {
  deliverOne,
  NOTIFY_SCHEDULE_MS,
  resendNotification,
  type NotificationView,
} from '../../src/services/notify.js';
import { registerAdminRoutes } from '../../src/http/admin/routes.js';
import {
  NOTIFY_DELIVERY_COLUMNS,
  NOTIFY_TRADE_COLUMNS,
  NotificationRepository,
} from '../../src/store/notifications.js';
import { notifyCommand, NotifyUsageError, NotificationNotFoundError } from '../../src/cli/notify.js';
import { verifyParams } from '../../src/crypto/signing.js';
import { formatShanghai } from '../../src/domain/clock.js';
import type { Config } from '../../src/config/config.js';
import type { ServiceDeps } from '../../src/services/deps.js';
import type { KyselyPlugin } from 'kysely';
import { fen } from '../../src/domain/money.js';

const MIN = 60_000;

describe('lc.trade.notify: asynchronous notifications', () => {
  let t: TestPlatform;
  const his = new NotifyReceiver();

  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_NOTIFY_TIMEOUT: '300ms', HOSPAY_NOTIFY_BATCH: '4' } });
    await his.start();
  });
  after(async () => {
    await his.stop();
    await t.close();
  });
  // Each test leaves nothing due for the next one.
  afterEach(async () => {
    await t.store.db
      .updateTable('notifications')
      .set({ status: 'FAILED', lease_until: null, lease_owner: null })
      .where('status', '=', 'PENDING')
      .execute();
  });

  const query = (no: string) => t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: no });
  const payOnPage = (url: string) =>
    fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ action: 'pay' }).toString(),
    });

  /** A QR trade with a notify_url, paid on the payer page, then queried (which books it and writes the outbox). */
  async function paidTrade(notifyUrl: string, amount = '25.50') {
    const f = qrFields({ PayType: 'alipay', TotalAmount: amount });
    const outTradeNo = f.OutTradeNo ?? '';
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    await t.store.db
      .updateTable('trades')
      .set({ notify_url: notifyUrl })
      .where('app_id', '=', t.appId)
      .where('out_trade_no', '=', outTradeNo)
      .execute();
    const paid = await payOnPage(a.result.TwoDimensionCode ?? '');
    assert.match(await paid.text(), /支付成功/);
    const q = await query(outTradeNo);
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS', q.text);
    return {
      outTradeNo,
      channelTradeNo: q.result.TradeNo ?? '',
      platformTradeNo: q.result.PlatformTradeNo ?? '',
      amount,
    };
  }

  async function notificationsOf(outTradeNo: string) {
    return t.platform.deps.notifications.ofTrades([(await t.trade(outTradeNo)).id]);
  }

  async function attemptsOf(notificationId: number) {
    return t.platform.deps.notifications.attemptsOf([notificationId]);
  }

  async function only(outTradeNo: string) {
    const list = await notificationsOf(outTradeNo);
    assert.equal(list.length, 1);
    const n = list[0];
    assert.ok(n);
    return n;
  }

  const publicKey = async () => (await t.platform.deps.keys.active()).publicKey;

  it('one signed notification per transition: paid, then a full refund (a partial one makes none)', async () => {
    const url = his.url('/paid-then-refunded', always({ body: 'success' }));
    const p = await paidTrade(url, '88.80');
    const n1 = await only(p.outTradeNo);
    assert.equal(n1.status, 'PENDING');
    assert.equal(n1.attempts, 0);
    assert.equal(n1.trade_status, 'TRADE_SUCCESS');
    assert.equal(n1.next_attempt_at.getTime(), t.clock.now().getTime(), 'due at once');
    assert.match(n1.notify_id, /^[0-9a-f]{32}$/);

    const job = new NotifyJob(t.platform.deps);
    assert.deepEqual(await job.tick(), { delivered: 1, retry: 0, failed: 0 });
    const got = his.on('/paid-then-refunded');
    assert.equal(got.length, 1);
    const r = got[0];
    assert.ok(r);
    assert.equal(r.method, 'POST');
    assert.equal(r.contentType, 'application/x-www-form-urlencoded; charset=utf-8');
    assert.deepEqual(Object.keys(r.form).sort(), [
      'app_id',
      'biz_content',
      'charset',
      'method',
      'nonce_str',
      'notify_id',
      'sign',
      'sign_type',
      'timestamp',
      'version',
    ]);
    assert.equal(r.form['app_id'], t.appId);
    assert.equal(r.form['method'], 'lc.trade.notify');
    assert.equal(r.form['charset'], 'utf-8');
    assert.equal(r.form['version'], '1.0');
    assert.equal(r.form['sign_type'], 'RSA2');
    assert.equal(r.form['notify_id'], n1.notify_id);
    assert.equal(r.form['timestamp'], formatShanghai(t.clock.now()));
    // The signature verifies with the platform public key; any change breaks it.
    const key = await publicKey();
    assert.equal(verifyParams(r.form, key, 'RSA2'), true);
    assert.equal(
      verifyParams({ ...r.form, biz_content: r.form['biz_content']?.replace('88.80', '8.80') }, key, 'RSA2'),
      false,
    );
    // Amounts are JSON numbers with exactly two decimals, as written.
    const biz = r.form['biz_content'] ?? '';
    assert.match(biz, /"total_amount":88\.80[,}]/);
    assert.match(biz, /"refund_fee":0\.00[,}]/);
    const b = JSON.parse(biz) as Record<string, unknown>;
    // As in every gateway answer: trade_no is the channel's number, platform_trade_no hospay's.
    assert.equal(b['trade_no'], p.channelTradeNo);
    assert.match(p.channelTradeNo, /^[0-9]{28}$/);
    assert.equal(b['platform_trade_no'], p.platformTradeNo);
    assert.match(p.platformTradeNo, /^HP[0-9]{24}$/);
    assert.equal(b['out_trade_no'], p.outTradeNo);
    assert.equal(b['channel_trade_no'], undefined);
    assert.equal(b['trade_status'], 'TRADE_SUCCESS');
    assert.equal(b['payment_type'], 'alipay');
    assert.match(String(b['gmt_payment']), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    assert.equal(b['gmt_close'], undefined);
    assert.equal(b['insurance_fee'], undefined);
    assert.equal(b['cash_fee'], undefined);
    const row = await t.trade(p.outTradeNo);
    assert.equal(b['user_id'], row.buyer_user_id ?? undefined);

    const delivered = await only(p.outTradeNo);
    assert.equal(delivered.status, 'DELIVERED');
    assert.equal(delivered.attempts, 1);
    assert.equal(delivered.delivered_at?.getTime(), t.clock.now().getTime());
    assert.equal(delivered.lease_owner, null);
    const [a1] = await attemptsOf(delivered.id);
    assert.equal(a1?.attempt, 1);
    assert.equal(a1?.http_status, 200);
    assert.equal(a1?.body_excerpt, 'success');
    assert.equal(a1?.error, null);
    assert.ok((a1?.latency_ms ?? -1) >= 0);

    // A partial refund: the trade stays TRADE_SUCCESS, no notification.
    const refund = (amount: string, no: string) =>
      t.offline('FWC_IF_Barcode_Pay_Refund', {
        TradeNo: p.channelTradeNo,
        RefundAmount: amount,
        OutRequestNo: no,
        OutTradeNo: p.outTradeNo,
        TotalAmount: p.amount,
      });
    const r1 = await refund('8.80', 'N1');
    assert.equal(r1.result.TradeStatus, 'TRADE_SUCCESS', r1.text);
    assert.equal((await notificationsOf(p.outTradeNo)).length, 1);
    assert.deepEqual(await job.tick(), { delivered: 0, retry: 0, failed: 0 });

    // The rest: the trade closes, a second notification with its own notify_id.
    t.clock.advance(MIN);
    const r2 = await refund('80.00', 'N2');
    assert.equal(r2.result.TradeStatus, 'TRADE_CLOSED', r2.text);
    const both = await notificationsOf(p.outTradeNo);
    assert.equal(both.length, 2);
    const n2 = both[1];
    assert.ok(n2);
    assert.equal(n2.trade_status, 'TRADE_CLOSED');
    assert.notEqual(n2.notify_id, n1.notify_id);
    assert.deepEqual(await job.tick(), { delivered: 1, retry: 0, failed: 0 });
    const closed = his.on('/paid-then-refunded')[1];
    assert.ok(closed);
    assert.equal(closed.form['notify_id'], n2.notify_id);
    assert.equal(verifyParams(closed.form, key, 'RSA2'), true);
    const cb = closed.form['biz_content'] ?? '';
    assert.match(cb, /"refund_fee":88\.80[,}]/);
    const c = JSON.parse(cb) as Record<string, unknown>;
    assert.equal(c['trade_status'], 'TRADE_CLOSED');
    assert.equal(c['gmt_close'], formatShanghai(t.clock.now()));
    assert.ok(c['gmt_payment']);
    assert.deepEqual(await job.tick(), { delivered: 0, retry: 0, failed: 0 });
    assert.equal(his.on('/paid-then-refunded').length, 2);

    // Never the form, the signature or the trade's content in the log.
    const logs = t.logs();
    assert.match(logs, /notify attempt/);
    assert.ok(!logs.includes(r.form['sign'] ?? '-'), 'no signature in the log');
    assert.doesNotMatch(logs, /biz_content|nonce_str|88\.80/);
  });

  it('follows the schedule exactly (0, 4m, 10m, 10m, 1h, 2h, 6h, 15h), then FAILED; resend works', async () => {
    const url = his.url('/always-fails', always({ body: 'fail' }));
    const p = await paidTrade(url);
    const n = await only(p.outTradeNo);
    const job = new NotifyJob(t.platform.deps);
    const expectedStarts: number[] = [];

    expectedStarts.push(t.clock.now().getTime());
    assert.deepEqual(await job.tick(), { delivered: 0, retry: 1, failed: 0 });
    for (let i = 1; i < NOTIFY_SCHEDULE_MS.length; i++) {
      const delay = NOTIFY_SCHEDULE_MS[i] ?? 0;
      const before = his.on('/always-fails').length;
      t.clock.advance(delay - 1000);
      assert.deepEqual(await job.tick(), { delivered: 0, retry: 0, failed: 0 }, `attempt ${i + 1} not yet`);
      assert.equal(his.on('/always-fails').length, before);
      t.clock.advance(1000);
      expectedStarts.push(t.clock.now().getTime());
      const last = i === NOTIFY_SCHEDULE_MS.length - 1;
      assert.deepEqual(
        await job.tick(),
        { delivered: 0, retry: last ? 0 : 1, failed: last ? 1 : 0 },
        `attempt ${i + 1}`,
      );
      assert.equal(his.on('/always-fails').length, before + 1);
    }
    const failed = await only(p.outTradeNo);
    assert.equal(failed.status, 'FAILED');
    assert.equal(failed.attempts, 8);
    assert.equal(failed.delivered_at, null);
    assert.match(failed.last_error ?? '', /not "success"/);
    // Nothing more, however long we wait.
    t.clock.advance(48 * 3_600_000);
    assert.deepEqual(await job.tick(), { delivered: 0, retry: 0, failed: 0 });

    const got = his.on('/always-fails');
    assert.equal(got.length, 8);
    const key = await publicKey();
    for (const r of got) {
      assert.equal(r.form['notify_id'], n.notify_id, 'notify_id is stable across attempts');
      assert.equal(verifyParams(r.form, key, 'RSA2'), true);
    }
    assert.equal(new Set(got.map((r) => r.form['nonce_str'])).size, 8, 'a new nonce_str per attempt');
    const attempts = await attemptsOf(n.id);
    assert.deepEqual(
      attempts.map((a) => a.attempt),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    assert.deepEqual(
      attempts.map((a) => a.started_at.getTime()),
      expectedStarts,
    );
    for (const a of attempts) {
      assert.equal(a.http_status, 200);
      assert.equal(a.body_excerpt, 'fail');
      assert.equal(a.error, null);
    }

    // Resend: due now again; one more failure and it is FAILED again.
    assert.equal(await resendNotification(t.platform.deps, n.notify_id), true);
    const again = await only(p.outTradeNo);
    assert.equal(again.status, 'PENDING');
    assert.equal(again.next_attempt_at.getTime(), t.clock.now().getTime());
    assert.deepEqual(await job.tick(), { delivered: 0, retry: 0, failed: 1 });
    assert.equal((await only(p.outTradeNo)).status, 'FAILED');
    assert.equal((await only(p.outTradeNo)).attempts, 9);
    // The HIS is fixed; resend once more.
    his.url('/always-fails', always({ body: 'success' }));
    assert.equal(await resendNotification(t.platform.deps, n.notify_id), true);
    assert.deepEqual(await job.tick(), { delivered: 1, retry: 0, failed: 0 });
    const done = await only(p.outTradeNo);
    assert.equal(done.status, 'DELIVERED');
    assert.equal(done.attempts, 10);
    assert.equal(done.last_error, null);
    assert.equal(his.on('/always-fails').at(-1)?.form['notify_id'], n.notify_id);
    assert.equal(await resendNotification(t.platform.deps, 'no-such-notify-id'), false);
  });

  it('stops at the first "success"; records status, latency and excerpt of each attempt', async () => {
    const answers: Answer[] = [{ body: 'fail' }, { status: 500, body: '<h1>Internal Server Error</h1>' }];
    const url = his.url('/third-time', (i) => answers[i] ?? { body: 'success' });
    const p = await paidTrade(url);
    const job = new NotifyJob(t.platform.deps);
    assert.equal((await job.tick()).retry, 1);
    t.clock.advance(4 * MIN);
    assert.equal((await job.tick()).retry, 1);
    const pending = await only(p.outTradeNo);
    assert.equal(pending.last_error, 'HTTP 500');
    t.clock.advance(10 * MIN);
    assert.deepEqual(await job.tick(), { delivered: 1, retry: 0, failed: 0 });
    const n = await only(p.outTradeNo);
    assert.equal(n.status, 'DELIVERED');
    assert.equal(n.attempts, 3);
    assert.equal(n.last_error, null);
    t.clock.advance(48 * 3_600_000);
    assert.deepEqual(await job.tick(), { delivered: 0, retry: 0, failed: 0 });
    assert.equal(his.on('/third-time').length, 3);
    const attempts = await attemptsOf(n.id);
    assert.deepEqual(
      attempts.map((a) => [a.attempt, a.http_status, a.body_excerpt, a.error]),
      [
        [1, 200, 'fail', null],
        [2, 500, '<h1>Internal Server Error</h1>', null],
        [3, 200, 'success', null],
      ],
    );
    for (const a of attempts) assert.ok(a.latency_ms >= 0 && a.latency_ms < 300, `latency ${a.latency_ms}`);
  });

  it('a timeout, a refused connection, a redirect and an answer that is almost "success" are failures', async () => {
    const slow = his.url('/slow', always({ delayMs: 1_000, body: 'success' }));
    const newline = his.url('/newline', always({ body: 'success\n' }));
    const redirect = his.url('/redirect', always({ status: 302, body: '', headers: { location: '/ok' } }));
    his.url('/ok', always({ body: 'success' }));
    const closed = http.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const refused = `http://127.0.0.1:${deadPort}/notify`;

    const trades = {
      slow: await paidTrade(slow),
      newline: await paidTrade(newline),
      redirect: await paidTrade(redirect),
      refused: await paidTrade(refused),
    };
    const job = new NotifyJob(t.platform.deps);
    const started = Date.now();
    assert.deepEqual(await job.tick(), { delivered: 0, retry: 4, failed: 0 });
    assert.ok(Date.now() - started < 1_000, 'the timeout cut the slow one short; the rest ran alongside');
    assert.equal(his.on('/ok').length, 0, 'a redirect is not followed');

    const attempt = async (p: { outTradeNo: string }) => {
      const n = await only(p.outTradeNo);
      assert.equal(n.status, 'PENDING');
      assert.equal(n.attempts, 1);
      assert.equal(n.next_attempt_at.getTime(), t.clock.now().getTime() + 4 * MIN);
      const [a] = await attemptsOf(n.id);
      assert.ok(a);
      return { n, a };
    };
    const s = await attempt(trades.slow);
    assert.equal(s.a.http_status, null);
    assert.match(s.a.error ?? '', /timeout: no complete answer within 300 ms/);
    assert.ok(s.a.latency_ms >= 250 && s.a.latency_ms < 1_000, `latency ${s.a.latency_ms}`);
    assert.equal(s.n.last_error, s.a.error);
    const nl = await attempt(trades.newline);
    assert.equal(nl.a.http_status, 200);
    assert.equal(nl.a.body_excerpt, 'success\n');
    const rd = await attempt(trades.redirect);
    assert.equal(rd.a.http_status, 302);
    assert.equal(rd.n.last_error, 'HTTP 302');
    const rf = await attempt(trades.refused);
    assert.equal(rf.a.http_status, null);
    assert.match(rf.a.error ?? '', /ECONNREFUSED/);
    // The form is never stored with the attempt.
    for (const p of Object.values(trades)) {
      const n = await only(p.outTradeNo);
      for (const a of await attemptsOf(n.id)) {
        assert.doesNotMatch(`${a.error ?? ''} ${a.body_excerpt ?? ''}`, /biz_content|sign=|notify_id/);
      }
    }
  });

  it('two instances ticking at once deliver each notification exactly once', async () => {
    const url = his.url('/both', always({ delayMs: 20, body: 'success' }));
    const outTradeNos: string[] = [];
    for (let i = 0; i < 10; i++) outTradeNos.push((await paidTrade(url, `${i + 1}.00`)).outTradeNo);
    const other = await t.second();
    const one = new NotifyJob(t.platform.deps);
    const two = new NotifyJob(other.deps);
    let byOne = 0;
    let byTwo = 0;
    for (let round = 0; round < 20; round++) {
      const [a, b] = await Promise.all([one.tick(), two.tick()]);
      assert.equal(a.retry + a.failed + b.retry + b.failed, 0);
      byOne += a.delivered;
      byTwo += b.delivered;
      if (a.delivered + b.delivered === 0) break;
    }
    assert.equal(byOne + byTwo, 10);
    assert.ok(byOne > 0 && byTwo > 0, `both instances worked: ${byOne}/${byTwo}`);
    const got = his.on('/both');
    assert.equal(got.length, 10, 'exactly one request per notification');
    assert.equal(new Set(got.map((r) => r.form['notify_id'])).size, 10);
    for (const no of outTradeNos) {
      const n = await only(no);
      assert.equal(n.status, 'DELIVERED');
      assert.equal(n.attempts, 1);
    }
  });

  it("a crashed instance's claim runs out, then another tick delivers", async () => {
    const url = his.url('/after-crash', always({ body: 'success' }));
    const p = await paidTrade(url);
    const job = new NotifyJob(t.platform.deps);
    // An instance claims it and dies (kill -9) before sending anything.
    const claimed = await t.platform.deps.notifications.claimDue(t.clock.now(), 'dead:1', job.leaseMs, 10);
    assert.equal(claimed.length, 1);
    assert.deepEqual(await job.tick(), { delivered: 0, retry: 0, failed: 0 }, 'still leased');
    t.clock.advance(job.leaseMs - 1000);
    assert.deepEqual(await job.tick(), { delivered: 0, retry: 0, failed: 0 }, 'still leased');
    t.clock.advance(2000);
    assert.deepEqual(await job.tick(), { delivered: 1, retry: 0, failed: 0 });
    assert.equal(his.on('/after-crash').length, 1);
    assert.equal((await only(p.outTradeNo)).status, 'DELIVERED');
  });

  it('a resend during an attempt in flight keeps the notification due', async () => {
    const url = his.url('/in-flight', (i) =>
      i === 0 ? { delayMs: 150, body: 'fail' } : { body: 'success' },
    );
    const p = await paidTrade(url);
    const n = await only(p.outTradeNo);
    const job = new NotifyJob(t.platform.deps);
    const first = job.tick();
    while (his.on('/in-flight').length === 0) await new Promise((r) => setTimeout(r, 5));
    t.clock.advance(1000);
    assert.equal(await resendNotification(t.platform.deps, n.notify_id), true);
    assert.deepEqual(await first, { delivered: 0, retry: 1, failed: 0 });
    const after = await only(p.outTradeNo);
    assert.equal(after.status, 'PENDING');
    assert.equal(after.attempts, 1);
    assert.equal(after.next_attempt_at.getTime(), t.clock.now().getTime(), 'due now, not in 4 minutes');
    assert.deepEqual(await job.tick(), { delivered: 1, retry: 0, failed: 0 });
    assert.equal(his.on('/in-flight').length, 2);
  });

  /**
   * The service deps with the database counted: statements (every query Kysely runs, builder or sql``),
   * transactions started, and calls on the trade repository (which has its own database handle).
   */
  function countingDeps() {
    const counts = { statements: 0, transactions: 0, tradeReads: 0 };
    const base = t.platform.deps;
    const plugin: KyselyPlugin = {
      transformQuery: (args) => {
        counts.statements++;
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    const counted = t.platform.store.db.withPlugin(plugin);
    const db = new Proxy(counted, {
      get(target, prop) {
        if (prop === 'transaction' || prop === 'startTransaction') counts.transactions++;
        const v = Reflect.get(target, prop, target) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const trades = new Proxy(base.trades, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (typeof v !== 'function') return v;
        return (...a: unknown[]) => {
          counts.tradeReads++;
          return (v as (...a: unknown[]) => unknown).apply(target, a);
        };
      },
    });
    const deps: ServiceDeps = { ...base, trades, notifications: new NotificationRepository(db) };
    return { deps, counts };
  }

  it('the claim reads each trade as deps.trades.byId does; then a delivery is one statement', async () => {
    const url = his.url('/one-statement', (i) => ({ body: i === 0 ? 'fail' : 'success' }));
    const p = await paidTrade(url, '66.60');
    const initial = await only(p.outTradeNo);
    const { deps, counts } = countingDeps();

    const claimed = await deps.notifications.claimDueWithTrades(t.clock.now(), 'probe:1', 90_000, 10);
    assert.equal(counts.statements, 1, 'the claim and the trades: one statement');
    assert.equal(claimed.length, 1);
    const [c] = claimed;
    assert.ok(c);
    const claimedRow = await only(p.outTradeNo);
    assert.deepEqual(
      c.notification,
      Object.fromEntries(NOTIFY_DELIVERY_COLUMNS.map((k) => [k, claimedRow[k]])),
      'the columns a delivery needs, as claimed, with the same JS types as the row',
    );
    assert.equal(c.notification.lease_owner, 'probe:1');
    const trade = await t.platform.deps.trades.byId(initial.trade_id);
    assert.ok(trade);
    assert.deepEqual(
      c.trade,
      Object.fromEntries(NOTIFY_TRADE_COLUMNS.map((k) => [k, trade[k]])),
      'the columns a notification needs, with the same JS types (Date, number) as byId',
    );
    assert.ok(c.trade?.paid_at instanceof Date);
    assert.equal(typeof c.trade?.total_fen, 'number');

    // A failed attempt: one statement, no transaction, no trade read.
    counts.statements = 0;
    assert.equal(await deliverOne(deps, c.notification, c.trade), 'retry');
    assert.deepEqual(counts, { statements: 1, transactions: 0, tradeReads: 0 });
    const retried = await only(p.outTradeNo);
    assert.equal(retried.status, 'PENDING');
    assert.equal(retried.attempts, 1);
    assert.equal(retried.lease_owner, null);
    assert.equal(retried.lease_until, null);
    assert.equal(retried.last_error, 'HTTP 200: the answer was not "success"');
    assert.equal(retried.next_attempt_at.getTime(), t.clock.now().getTime() + 4 * MIN);
    assert.equal((await attemptsOf(initial.id)).length, 1);

    // Due again: delivered, the form built from the trade read with the claim.
    t.clock.advance(4 * MIN);
    counts.statements = 0;
    const again = await deps.notifications.claimDueWithTrades(t.clock.now(), 'probe:2', 90_000, 10);
    assert.equal(again.length, 1);
    assert.equal(await deliverOne(deps, again[0]!.notification, again[0]!.trade), 'delivered');
    assert.deepEqual(counts, { statements: 2, transactions: 0, tradeReads: 0 });
    const done = await only(p.outTradeNo);
    assert.equal(done.status, 'DELIVERED');
    assert.equal(done.attempts, 2);
    assert.equal(done.delivered_at?.getTime(), t.clock.now().getTime());
    assert.equal(done.last_error, null);
    const got = his.on('/one-statement');
    assert.equal(got.length, 2);
    assert.equal(verifyParams(got[1]!.form, await publicKey(), 'RSA2'), true);
    const b = JSON.parse(got[1]!.form['biz_content'] ?? '') as Record<string, unknown>;
    assert.equal(b['out_trade_no'], p.outTradeNo);
    assert.equal(b['platform_trade_no'], p.platformTradeNo);
    assert.equal(b['gmt_payment'], formatShanghai(trade.paid_at ?? new Date(0)));
    assert.match(got[1]!.form['biz_content'] ?? '', /"total_amount":66\.60[,}]/);
    const attempts = await attemptsOf(initial.id);
    assert.deepEqual(
      attempts.map((a) => [a.attempt, a.http_status, a.body_excerpt]),
      [
        [1, 200, 'fail'],
        [2, 200, 'success'],
      ],
    );
  });

  it('a claim lost during the attempt: the attempt is recorded, the notification left to its new holder', async () => {
    const url = his.url('/lost', always({ body: 'success' }));
    const p = await paidTrade(url);
    const [n] = await t.platform.deps.notifications.claimDue(t.clock.now(), 'slow:1', 90_000, 10);
    assert.ok(n);
    // The lease ran out and another instance took the notification over.
    await t.store.db
      .updateTable('notifications')
      .set({ lease_owner: 'new:1' })
      .where('id', '=', n.id)
      .execute();
    // Without a trade given (operator tools): deliverOne reads it.
    const { deps, counts } = countingDeps();
    assert.equal(await deliverOne(deps, n), 'delivered');
    assert.deepEqual(counts, { statements: 1, transactions: 0, tradeReads: 1 });
    assert.equal(his.on('/lost').length, 1);
    const left = await only(p.outTradeNo);
    assert.equal(left.status, 'PENDING', 'untouched');
    assert.equal(left.attempts, 0);
    assert.equal(left.lease_owner, 'new:1');
    assert.equal(left.delivered_at, null);
    const attempts = await attemptsOf(n.id);
    assert.equal(attempts.length, 1, 'the attempt is recorded all the same');
    assert.equal(attempts[0]?.attempt, 1);
    assert.equal(attempts[0]?.http_status, 200);
    assert.equal(attempts[0]?.body_excerpt, 'success');
  });

  it('a mixed payment also gives the insurance part and the cash part', async () => {
    const url = his.url('/mixed', always({ body: 'success' }));
    const f = qrFields({ PayType: 'alipay', TotalAmount: '120.00' });
    const no = f.OutTradeNo ?? '';
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    await t.store.db
      .updateTable('trades')
      .set({ notify_url: url, insurance_fen: fen(10_010) })
      .where('app_id', '=', t.appId)
      .where('out_trade_no', '=', no)
      .execute();
    await payOnPage(a.result.TwoDimensionCode ?? '');
    assert.equal((await query(no)).result.TradeStatus, 'TRADE_SUCCESS');
    assert.deepEqual(await new NotifyJob(t.platform.deps).tick(), { delivered: 1, retry: 0, failed: 0 });
    const biz = his.on('/mixed')[0]?.form['biz_content'] ?? '';
    assert.match(biz, /"total_amount":120\.00,"insurance_fee":100\.10,"cash_fee":19\.90[,}]/);
  });

  it('a QR code that expires unpaid is notified as TRADE_CLOSED', async () => {
    const url = his.url('/expired', always({ body: 'success' }));
    const f = qrFields({ PayType: 'alipay', TimeoutExpress: '5m' });
    const no = f.OutTradeNo ?? '';
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    await t.store.db
      .updateTable('trades')
      .set({ notify_url: url })
      .where('app_id', '=', t.appId)
      .where('out_trade_no', '=', no)
      .execute();
    assert.equal((await notificationsOf(no)).length, 0, 'nothing while waiting for the payer');
    t.clock.advance(6 * MIN);
    await t.platform.expiry.tick();
    assert.equal((await query(no)).result.TradeStatus, 'TRADE_CLOSED');
    const n = await only(no);
    assert.equal(n.trade_status, 'TRADE_CLOSED');
    assert.deepEqual(await new NotifyJob(t.platform.deps).tick(), { delivered: 1, retry: 0, failed: 0 });
    const [r] = his.on('/expired');
    assert.ok(r);
    assert.equal(verifyParams(r.form, await publicKey(), 'RSA2'), true);
    const b = JSON.parse(r.form['biz_content'] ?? '') as Record<string, unknown>;
    assert.equal(b['out_trade_no'], no);
    assert.equal(b['trade_status'], 'TRADE_CLOSED');
    assert.equal(b['gmt_payment'], undefined);
    assert.equal(b['gmt_close'], formatShanghai(t.clock.now()));
    assert.match(r.form['biz_content'] ?? '', /"total_amount":25\.50[,}]/);
  });

  describe('operator tools', () => {
    let admin: FastifyInstance;
    let adminUrl = '';
    let dataDir = '';
    let config: Config;
    const token = 'notify-test-admin-token';

    before(async () => {
      // The admin API as the server has it (Bearer token, roles and scoping, then the routes), on its own listener.
      admin = Fastify();
      await registerAdminRoutes(admin, t.platform.deps, token, t.platform.recon);
      adminUrl = await admin.listen({ host: '127.0.0.1', port: 0 });
      if (t.store.kind === 'postgres') {
        // Straight on the database.
        config = t.platform.config;
      } else {
        // The embedded database is held by a running server: the CLI goes through its admin API.
        dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-notify-cli-'));
        fs.writeFileSync(
          path.join(dataDir, 'hospay.lock'),
          JSON.stringify({ pid: process.ppid, port: new URL(adminUrl).port, host: '127.0.0.1' }),
        );
        fs.writeFileSync(path.join(dataDir, 'admin-token'), `${token}\n`);
        config = { ...t.platform.config, store: { kind: 'embedded', dataDir }, dataDir };
      }
    });
    after(async () => {
      await admin.close();
      if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
    });

    const api = (method: string, p: string) =>
      fetch(`${adminUrl}${p}`, { method, headers: { authorization: `Bearer ${token}` } });

    it('admin API: list with attempts, filters, resend, 404 for an unknown notification', async () => {
      const url = his.url('/admin-view', always({ status: 503, body: 'busy' }));
      const p = await paidTrade(url);
      await new NotifyJob(t.platform.deps).tick();

      const res = await api('GET', `/admin/notifications?out_trade_no=${p.outTradeNo}`);
      assert.equal(res.status, 200);
      const list = (await res.json()) as NotificationView[];
      assert.equal(list.length, 1);
      const v = list[0];
      assert.ok(v);
      assert.equal(v.out_trade_no, p.outTradeNo);
      assert.equal(v.trade_no, p.channelTradeNo);
      assert.equal(v.platform_trade_no, p.platformTradeNo);
      assert.equal(v.app_id, t.appId);
      assert.equal(v.status, 'PENDING');
      assert.equal(v.trade_status, 'TRADE_SUCCESS');
      assert.equal(v.attempts, 1);
      assert.equal(v.next_attempt_at, new Date(t.clock.now().getTime() + 4 * MIN).toISOString());
      assert.equal(v.last_error, 'HTTP 503');
      assert.equal(v.attempt_log.length, 1);
      assert.equal(v.attempt_log[0]?.http_status, 503);
      assert.equal(v.attempt_log[0]?.body_excerpt, 'busy');

      const pending = (await (
        await api('GET', `/admin/notifications?app_id=${t.appId}&status=pending&limit=500`)
      ).json()) as NotificationView[];
      assert.ok(pending.some((x) => x.notify_id === v.notify_id));
      assert.ok(pending.every((x) => x.status === 'PENDING'));
      const delivered = (await (
        await api('GET', `/admin/notifications?status=DELIVERED&out_trade_no=${p.outTradeNo}`)
      ).json()) as NotificationView[];
      assert.equal(delivered.length, 0);
      const other = (await (
        await api('GET', `/admin/notifications?app_id=hpnosuchapp`)
      ).json()) as NotificationView[];
      assert.equal(other.length, 0);

      assert.equal((await api('GET', '/admin/notifications?status=DONE')).status, 400);
      assert.equal((await api('GET', '/admin/notifications?limit=0')).status, 400);
      assert.equal((await api('GET', '/admin/notifications?limit=abc')).status, 400);
      assert.equal((await fetch(`${adminUrl}/admin/notifications`)).status, 401);

      const missing = await api('POST', '/admin/notifications/nope/resend');
      assert.equal(missing.status, 404);
      const body = (await missing.json()) as { code: string; message: string };
      assert.equal(body.code, 'NOTIFY_NOT_FOUND');
      assert.match(body.message, /没有这个通知/);

      t.clock.advance(MIN);
      const resent = await api('POST', `/admin/notifications/${v.notify_id}/resend`);
      assert.equal(resent.status, 200);
      const n = await only(p.outTradeNo);
      assert.equal(n.status, 'PENDING');
      assert.equal(n.next_attempt_at.getTime(), t.clock.now().getTime());
    });

    it('CLI: hospay notify list / resend (through the server, or straight on the database)', async () => {
      const url = his.url('/cli-view', always({ body: 'nope' }));
      const p = await paidTrade(url);
      await new NotifyJob(t.platform.deps).tick();
      const n = await only(p.outTradeNo);

      const out: string[] = [];
      const log = mock.method(console, 'log', (...args: unknown[]) => {
        out.push(args.map(String).join(' '));
      });
      try {
        assert.equal(await notifyCommand(['list', '--out-trade-no', p.outTradeNo, '--json'], config), 0);
        const list = JSON.parse(out.join('\n')) as NotificationView[];
        assert.equal(list.length, 1);
        assert.equal(list[0]?.notify_id, n.notify_id);
        assert.equal(list[0]?.attempt_log[0]?.body_excerpt, 'nope');

        out.length = 0;
        assert.equal(
          await notifyCommand(
            ['list', '--app', t.appId, '--status', 'PENDING', '--out-trade-no', p.outTradeNo],
            config,
          ),
          0,
        );
        const text = out.join('\n');
        assert.match(
          text,
          new RegExp(`${n.notify_id}\\s+PENDING\\s+TRADE_SUCCESS\\s+${p.outTradeNo}\\s+attempts 1`),
        );
        assert.match(text, /#1 .* ms {2}HTTP 200 "nope"/);

        out.length = 0;
        assert.equal(await notifyCommand(['resend', n.notify_id], config), 0);
        assert.match(out.join('\n'), /queued again/);
        assert.equal((await only(p.outTradeNo)).status, 'PENDING');
        await assert.rejects(notifyCommand(['resend', 'nope'], config), NotificationNotFoundError);
      } finally {
        log.mock.restore();
      }
      await assert.rejects(notifyCommand(['list', '--status', 'DONE'], config), NotifyUsageError);
      await assert.rejects(notifyCommand(['list', '--limit', '0'], config), NotifyUsageError);
      await assert.rejects(notifyCommand(['resend'], config), NotifyUsageError);
      await assert.rejects(notifyCommand(['resend', 'a', 'b'], config), NotifyUsageError);
      await assert.rejects(notifyCommand(['frob'], config), NotifyUsageError);
      await assert.rejects(notifyCommand(['list', '--bogus'], config), /bogus/);
    });
  });
});
