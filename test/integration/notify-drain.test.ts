import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KyselyPlugin } from 'kysely';
import { qrFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { always, NotifyReceiver, type Answer } from '../support/receiver.js';
import { NotifyJob } from '../../src/jobs/notifier.js';
import { NotificationRepository } from '../../src/store/notifications.js';
import type { ServiceDeps } from '../../src/services/deps.js';
import { formatShanghai as shanghaiTime } from '../../src/domain/clock.js';

/**
 * The notifier's running loop (NotifyJob.start): a backlog larger than one batch is drained back to back with
 * up to HOSPAY_NOTIFY_BATCH deliveries in flight, each claim writing the records of the deliveries that ended;
 * and several instances draining one database at once never deliver a notification twice, nor twice at once.
 */
describe('notifier: draining a backlog', () => {
  let t: TestPlatform;
  const his = new NotifyReceiver();

  before(async () => {
    t = await startTestPlatform({
      env: { HOSPAY_NOTIFY_TIMEOUT: '2s', HOSPAY_NOTIFY_BATCH: '4', HOSPAY_NOTIFY_INTERVAL: '20ms' },
    });
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

  /** A paid QR trade whose notification (written with the payment) goes to `notifyUrl`; its out_trade_no. */
  async function paidTrade(notifyUrl: string): Promise<string> {
    const f = qrFields({ PayType: 'alipay', TotalAmount: '12.30' });
    const no = f.OutTradeNo ?? '';
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    await t.store.db
      .updateTable('trades')
      .set({ notify_url: notifyUrl })
      .where('app_id', '=', t.appId)
      .where('out_trade_no', '=', no)
      .execute();
    const paid = await fetch(a.result.TwoDimensionCode ?? '', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ action: 'pay' }).toString(),
    });
    assert.match(await paid.text(), /支付成功/);
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: no });
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS', q.text);
    return no;
  }

  async function until(what: string, ms: number, done: () => boolean): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async function notificationsOf(outTradeNos: string[]) {
    const trades = await Promise.all(outTradeNos.map((no) => t.trade(no)));
    return t.platform.deps.notifications.ofTrades(trades.map((x) => x.id));
  }

  it('a slow answer holds up no other delivery: the backlog flows past it, more than a batch at a time', async () => {
    // The slow one is claimed first (the oldest), in the same batch as three fast ones.
    const slow = await paidTrade(his.url('/drain-slow', always({ delayMs: 700, body: 'success' })));
    const fastUrl = his.url('/drain-fast', always({ body: 'success' }));
    const fast: string[] = [];
    for (let i = 0; i < 10; i++) fast.push(await paidTrade(fastUrl));

    const job = new NotifyJob(t.platform.deps);
    job.start();
    try {
      await until('the fast notifications', 5_000, () => his.on('/drain-fast').length === 10);
      // Every fast one arrived while the slow one was still waiting for its answer: a pass did not wait for
      // its slowest delivery before claiming more.
      assert.equal(his.on('/drain-slow').length, 1);
      const slowAt = his.on('/drain-slow')[0]?.realAt ?? 0;
      const lastFast = Math.max(...his.on('/drain-fast').map((r) => r.realAt));
      assert.ok(lastFast - slowAt < 500, `the last fast one came ${lastFast - slowAt} ms after the slow one`);
    } finally {
      // Waits for the pass to end: every delivery recorded.
      await job.stop();
    }
    const all = await notificationsOf([slow, ...fast]);
    assert.equal(all.length, 11);
    for (const n of all) {
      assert.equal(n.status, 'DELIVERED', n.notify_id);
      assert.equal(n.attempts, 1);
      assert.equal(n.lease_owner, null);
    }
    assert.equal(new Set(his.on('/drain-fast').map((r) => r.notifyId)).size, 10, 'each once');
    const attempts = await t.platform.deps.notifications.attemptsOf(all.map((n) => n.id));
    assert.equal(attempts.length, 11, 'one record per attempt');
  });

  it('a whole batch keeps running: when a delivery ends, the next claimed one starts at once', async () => {
    // The receiver holds every request and answers the oldest one only when it holds a whole batch (4), or
    // after 300 ms without a new arrival (the end of the backlog). A notifier that starts the next claimed
    // delivery as soon as one ends brings it back to 4 at once, every time; one that refills only when half its
    // batch has ended would wait at 3, and only the 300 ms rule would move it on.
    const held: Array<() => void> = [];
    let byRule = 0;
    let tail: NodeJS.Timeout | null = null;
    const onTail = () => {
      const answer = held.shift();
      if (!answer) return;
      byRule++;
      answer();
      tail = setTimeout(onTail, 300);
    };
    const url = his.url(
      '/drain-full',
      () =>
        new Promise<Answer>((resolve) => {
          held.push(() => resolve({ body: 'success' }));
          if (tail) clearTimeout(tail);
          if (held.length >= 4) held.shift()?.();
          tail = setTimeout(onTail, 300);
        }),
    );
    const nos: string[] = [];
    for (let i = 0; i < 24; i++) nos.push(await paidTrade(url));
    const job = new NotifyJob(t.platform.deps);
    job.start();
    try {
      await until('every notification', 15_000, () => his.on('/drain-full').length === 24);
      await until('every answer', 5_000, () => held.length === 0);
    } finally {
      if (tail) clearTimeout(tail);
      await job.stop();
    }
    // The last three are answered by the 300 ms rule: nothing more comes after them.
    assert.equal(byRule, 3, `${byRule} answers waited for the 300 ms rule`);
    const all = await notificationsOf(nos);
    assert.ok(all.every((n) => n.status === 'DELIVERED' && n.attempts === 1 && n.lease_owner === null));
  });

  it('the next batch is signed while the running one waits for its answers: a slot is taken by the POST alone', async () => {
    // The receiver holds the first batch (4) until told. Meanwhile the platform's clock moves 30 s on: the next
    // batch's forms were signed before that (their timestamp, and their attempts' started_at, are from before),
    // and are sent as soon as slots free. A notifier that signs a form only when its slot frees would stamp them
    // 30 s later.
    const held: Array<() => void> = [];
    let holding = true;
    const url = his.url(
      '/drain-ahead',
      () =>
        new Promise<Answer>((resolve) => {
          if (holding) held.push(() => resolve({ body: 'success' }));
          else resolve({ body: 'success' });
        }),
    );
    const nos: string[] = [];
    for (let i = 0; i < 8; i++) nos.push(await paidTrade(url));
    const before = shanghaiTime(t.clock.now());
    const job = new NotifyJob(t.platform.deps);
    job.start();
    try {
      await until('the first batch in flight', 5_000, () => held.length === 4);
      t.clock.advance(30_000);
      const after = shanghaiTime(t.clock.now());
      assert.notEqual(after, before);
      holding = false;
      for (const answer of held.splice(0)) answer();
      await until('every notification', 5_000, () => his.on('/drain-ahead').length === 8);
      const stamps = his.on('/drain-ahead').map((r) => r.form['timestamp']);
      assert.deepEqual(stamps, Array(8).fill(before), 'every form signed before the clock moved');
    } finally {
      await job.stop();
    }
    const all = await notificationsOf(nos);
    assert.ok(all.every((n) => n.status === 'DELIVERED' && n.attempts === 1 && n.lease_owner === null));
    const attempts = await t.platform.deps.notifications.attemptsOf(all.map((n) => n.id));
    assert.equal(attempts.length, 8);
    const started = attempts[0]?.started_at.getTime();
    assert.ok(
      attempts.every((a) => a.started_at.getTime() === started),
      'started_at: when the form was signed',
    );
  });

  it('each claim writes the records of the deliveries that ended: fewer statements than notifications', async () => {
    const url = his.url('/drain-count', always({ body: 'success' }));
    const nos: string[] = [];
    for (let i = 0; i < 16; i++) nos.push(await paidTrade(url));
    let statements = 0;
    const plugin: KyselyPlugin = {
      transformQuery: (args) => {
        statements++;
        return args.node;
      },
      transformResult: async (args) => args.result,
    };
    const deps: ServiceDeps = {
      ...t.platform.deps,
      notifications: new NotificationRepository(t.platform.store.db.withPlugin(plugin)),
    };
    const job = new NotifyJob(deps);
    job.start();
    try {
      await until('every notification', 5_000, () => his.on('/drain-count').length === 16);
    } finally {
      await job.stop();
    }
    const all = await notificationsOf(nos);
    assert.ok(
      all.every((n) => n.status === 'DELIVERED' && n.attempts === 1),
      'all delivered and recorded',
    );
    // About one claim per batch, the records riding along (a claim and a record per delivery, before).
    assert.ok(statements <= 16, `${statements} statements for 16 notifications`);
    const attempts = await t.platform.deps.notifications.attemptsOf(all.map((n) => n.id));
    assert.deepEqual(
      attempts.map((a) => [a.attempt, a.http_status, a.body_excerpt]),
      all.map(() => [1, 200, 'success']),
    );
  });

  it('a pass never takes its own delivery in flight again, even when the clock jumps past the lease', async () => {
    const slowUrl = his.url('/drain-jump-slow', always({ delayMs: 400, body: 'success' }));
    const fastUrl = his.url('/drain-jump-fast', always({ body: 'success' }));
    const slow = await paidTrade(slowUrl);
    const fast: string[] = [];
    for (let i = 0; i < 6; i++) fast.push(await paidTrade(fastUrl));
    const job = new NotifyJob(t.platform.deps);
    job.start();
    try {
      await until('the slow one in flight', 5_000, () => his.on('/drain-jump-slow').length === 1);
      // The lease of every claim so far has run out (by the platform's clock) while the slow one is in flight.
      t.clock.advance(job.leaseMs + 60_000);
      for (let i = 0; i < 4; i++) await paidTrade(fastUrl);
      await until('the later fast ones', 5_000, () => his.on('/drain-jump-fast').length >= 10);
      await new Promise((r) => setTimeout(r, 600));
    } finally {
      await job.stop();
    }
    assert.equal(his.on('/drain-jump-slow').length, 1, 'the slow one was not sent again while in flight');
    const [n] = await notificationsOf([slow]);
    assert.equal(n?.status, 'DELIVERED');
    assert.equal(n?.attempts, 1);
  });

  it('two instances draining one database at once: each notification once, never twice at the same time', async () => {
    const inFlight = new Set<string>();
    let overlaps = 0;
    const url = his.url('/drain-two', async (_i, r) => {
      if (inFlight.has(r.notifyId)) overlaps++;
      inFlight.add(r.notifyId);
      await new Promise((res) => setTimeout(res, 15));
      inFlight.delete(r.notifyId);
      return { body: 'success' };
    });
    const nos: string[] = [];
    for (let i = 0; i < 24; i++) nos.push(await paidTrade(url));
    const other = await t.second();
    const one = new NotifyJob(t.platform.deps);
    const two = new NotifyJob(other.deps);
    one.start();
    two.start();
    try {
      await until('every notification', 10_000, () => his.on('/drain-two').length >= 24);
      // Give a duplicate, if any, the time to arrive.
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      await Promise.all([one.stop(), two.stop()]);
    }
    const got = his.on('/drain-two');
    assert.equal(overlaps, 0, 'never the same notification twice at once');
    assert.equal(got.length, 24, 'exactly one request per notification');
    assert.equal(new Set(got.map((r) => r.notifyId)).size, 24);
    const all = await notificationsOf(nos);
    for (const n of all) {
      assert.equal(n.status, 'DELIVERED');
      assert.equal(n.attempts, 1);
    }
  });
});
