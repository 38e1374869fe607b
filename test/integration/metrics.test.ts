import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  authCode,
  barcodeFields,
  qrFields,
  startTestPlatform,
  type TestPlatform,
} from '../support/platform.js';
import { NotifyReceiver } from '../support/receiver.js';
import { ADMIN_TOKEN, sampleSum, sampleValue, scrape } from '../support/observability.js';
import { NotifyJob } from '../../src/jobs/notifier.js';
import { formatShanghai } from '../../src/domain/clock.js';

const METRICS_TOKEN = 'scraper-token-0123456789abcdefghijklmnop';

describe('GET /metrics after a scripted day', () => {
  let t: TestPlatform;
  const his = new NotifyReceiver();

  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_METRICS_TOKEN: METRICS_TOKEN } });
    await his.start();
  });
  after(async () => {
    await his.stop();
    await t.close();
  });

  it('counts requests, channel answers, calls, notifications and store gauges exactly', async () => {
    // The first scrape of this process: nothing counted yet.
    const empty = await scrape(t.url);
    assert.equal(empty.status, 200);
    assert.match(empty.contentType, /^text\/plain; version=0\.0\.4/);
    assert.equal(sampleSum(empty.samples, 'hospay_trade_outcomes_total'), 0);
    assert.equal(sampleSum(empty.samples, 'hospay_requests_total'), 0);

    // 1. A barcode payment paid at once.
    const paidF = barcodeFields({ AuthCode: authCode('00'), TotalAmount: '100.00' });
    const paid = await t.offline('FWC_IF_Barcode_Pay', paidF);
    assert.equal(paid.rr.IsSuccess, '1', paid.text);
    // 2. Declined (balance not enough).
    const declined = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: authCode('03') }));
    assert.equal(declined.rr.IsSuccess, '0', declined.text);
    const declinedCode = declined.rr.SubCode;
    // 3. An unknown outcome (system error at the channel), paid as the next query reveals.
    const unknown = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: authCode('04') }));
    assert.equal(unknown.rr.IsSuccess, '1', unknown.text);
    // 4. A refund of the first.
    const refund = await t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: paid.result.TradeNo ?? '',
      OutTradeNo: paidF.OutTradeNo ?? '',
      RefundAmount: '10.00',
      OutRequestNo: 'R1',
      TotalAmount: '100.00',
    });
    assert.equal(refund.rr.IsSuccess, '1', refund.text);
    // 5. A QR payment with a notify_url, paid on the payer page, then queried (which writes the notification).
    const qr = qrFields({ PayType: 'alipay' });
    const q = await t.offline('FWC_IF_Qrcode_Pay', qr);
    assert.equal(q.rr.IsSuccess, '1', q.text);
    let calls = 0;
    const notifyUrl = his.url('/his/notify', () => (++calls === 1 ? { status: 500, body: 'busy' } : {}));
    await t.store.db
      .updateTable('trades')
      .set({ notify_url: notifyUrl })
      .where('app_id', '=', t.appId)
      .where('out_trade_no', '=', qr.OutTradeNo ?? '')
      .execute();
    const page = await fetch(q.result.TwoDimensionCode ?? '', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'action=pay',
    });
    assert.match(await page.text(), /支付成功/);
    const query = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: qr.OutTradeNo ?? '' });
    assert.equal(query.result.TradeStatus, 'TRADE_SUCCESS', query.text);
    // 6. An unknown interface (its name is never a label).
    await t.offline('FWC_IF_NoSuchThing_' + 'x'.repeat(20), {});
    // 7. An open reconciliation difference from three days ago.
    const threeDaysAgo = formatShanghai(new Date(t.clock.now().getTime() - 3 * 86_400_000)).slice(0, 10);
    await t.store.db
      .insertInto('recon_differences')
      .values({
        app_id: t.appId,
        business_date: threeDaysAgo,
        pay_type: 'alipay',
        diff_key: 'k1',
        code: 'CHANNEL_ONLY',
        kind: 'trade',
        out_trade_no: 'X1',
        out_request_no: null,
        detail: '{}',
        created_at: t.clock.now(),
        updated_at: t.clock.now(),
      })
      .execute();

    // The notification: the HIS answers 500 the first time.
    const job = new NotifyJob(t.platform.deps);
    assert.deepEqual(await job.tick(), { delivered: 0, retry: 1, failed: 0 });
    t.clock.advance(5 * 60_000); // the next attempt was due 4 min after the first: due for 60 s now
    const mid = await scrape(t.url);
    assert.equal(sampleValue(mid.samples, 'hospay_notify_backlog'), 1);
    assert.equal(sampleValue(mid.samples, 'hospay_notify_oldest_due_age_seconds'), 60);
    assert.deepEqual(await job.tick(), { delivered: 1, retry: 0, failed: 0 });

    const s = (await scrape(t.url, METRICS_TOKEN)).samples;
    const trade = (operation: string, outcome: string) =>
      sampleValue(s, 'hospay_trade_outcomes_total', {
        operation,
        pay_type: 'alipay',
        channel: 'simulator',
        outcome,
      });
    assert.equal(trade('barcode_pay', 'paid'), 1);
    assert.equal(trade('barcode_pay', 'declined'), 1);
    assert.equal(trade('barcode_pay', 'unknown'), 1);
    assert.equal(trade('query', 'paid'), 2); // the unknown one's poll, and the QR trade's query
    assert.equal(trade('refund', 'success'), 1);
    assert.equal(trade('qr_pay', 'created'), 1);
    assert.equal(sampleSum(s, 'hospay_trade_outcomes_total'), 7);

    const req = (iface: string, subCode: string) =>
      sampleValue(s, 'hospay_requests_total', { door: 'offline', interface: iface, sub_code: subCode });
    assert.equal(req('FWC_IF_Barcode_Pay', 'SUCCESS'), 2);
    assert.equal(req('FWC_IF_Barcode_Pay', declinedCode), 1);
    assert.equal(req('FWC_IF_Barcode_Pay_Refund', 'SUCCESS'), 1);
    assert.equal(req('FWC_IF_Qrcode_Pay', 'SUCCESS'), 1);
    assert.equal(req('FWC_IF_Barcode_Pay_Query', 'SUCCESS'), 1);
    assert.equal(req('unknown', 'UNKNOWN_INTERFACE'), 1);
    assert.equal(sampleSum(s, 'hospay_requests_total'), 7);

    const call = (operation: string, outcome: string) =>
      sampleValue(s, 'hospay_channel_call_duration_seconds_count', {
        channel: 'simulator',
        operation,
        outcome,
      });
    assert.equal(call('simulator.barcodePay', 'paid'), 1);
    assert.equal(call('simulator.barcodePay', 'declined'), 1);
    assert.equal(call('simulator.barcodePay', 'unknown'), 1);
    assert.equal(call('simulator.query', 'paid'), 2);
    assert.equal(call('simulator.refund', 'success'), 1);
    assert.equal(call('simulator.precreate', 'created'), 1);
    // A call of the simulator takes well under 30 s: every one is in the last bucket.
    assert.equal(
      sampleValue(s, 'hospay_channel_call_duration_seconds_bucket', {
        channel: 'simulator',
        operation: 'simulator.query',
        outcome: 'paid',
        le: '30',
      }),
      2,
    );

    assert.equal(sampleValue(s, 'hospay_notify_deliveries_total', { outcome: 'retry' }), 1);
    assert.equal(sampleValue(s, 'hospay_notify_deliveries_total', { outcome: 'delivered' }), 1);
    assert.equal(sampleValue(s, 'hospay_notify_backlog'), 0);
    assert.equal(sampleValue(s, 'hospay_notify_oldest_due_age_seconds'), 0);
    assert.equal(sampleValue(s, 'hospay_recon_open_differences'), 1);
    assert.equal(sampleValue(s, 'hospay_recon_oldest_open_difference_days'), 3);
    assert.equal(sampleValue(s, 'hospay_scrape_store_ok'), 1);
    // The pool's gauges exist on PostgreSQL only.
    const total = sampleValue(s, 'hospay_db_pool_connections', { state: 'total' });
    if (t.platform.store.kind === 'postgres') {
      assert.ok(total !== undefined && total >= 1, `pool total ${total}`);
      assert.equal(sampleValue(s, 'hospay_db_pool_connections', { state: 'max' }), 10);
    } else assert.equal(total, undefined);
  });

  it('never puts an app id, order number, token or patient name in a label', async () => {
    const r = await scrape(t.url);
    assert.equal(r.status, 200);
    assert.ok(!r.text.includes(t.appId), 'app id in metrics');
    assert.ok(!r.text.includes(t.token), 'AccessToken in metrics');
    assert.ok(!r.text.includes('张三') && !r.text.includes('李四'), 'patient name in metrics');
    assert.ok(!r.text.includes('FWC_IF_NoSuchThing'), 'an unknown interface name became a label');
    assert.doesNotMatch(r.text, /out_trade_no|app_id=/);
  });

  it('a store part that fails is an error metric, not a 500', async () => {
    const health = t.platform.deps.health;
    const original = health.snapshot.bind(health);
    health.snapshot = async (now) => ({ ...(await original(now)), notify: null });
    try {
      const r = await scrape(t.url);
      assert.equal(r.status, 200);
      assert.equal(sampleValue(r.samples, 'hospay_scrape_store_ok'), 0);
      assert.ok((sampleValue(r.samples, 'hospay_scrape_errors_total', { part: 'notify' }) ?? 0) >= 1);
    } finally {
      health.snapshot = original;
    }
  });

  it('counts the gateway door by method and sub_code; an unknown method is "unknown"', async () => {
    const count = async () => (await scrape(t.url)).samples;
    const call = (method: string) =>
      fetch(`${t.url}/gateway`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ app_id: 'NO_SUCH_APP', method, biz_content: '{}' }).toString(),
      }).then(async (r) => JSON.parse(await r.text()) as Record<string, Record<string, string>>);
    const before = await count();
    const a = await call('lc.trade.query');
    const subCode = Object.values(a).find((v) => typeof v === 'object' && v && 'sub_code' in v)?.sub_code;
    assert.ok(subCode, JSON.stringify(a));
    await call('lc.no.such.method.' + 'y'.repeat(30));
    const after = await count();
    const delta = (labels: Record<string, string>) =>
      (sampleValue(after, 'hospay_requests_total', labels) ?? 0) -
      (sampleValue(before, 'hospay_requests_total', labels) ?? 0);
    assert.equal(delta({ door: 'gateway', interface: 'lc.trade.query', sub_code: subCode }), 1);
    assert.equal(sampleSum(after, 'hospay_requests_total', { door: 'gateway', interface: 'unknown' }), 1);
    assert.ok(!(await scrape(t.url)).text.includes('lc.no.such.method'));
  });

  it('is protected: admin token or the metrics token, nothing else', async () => {
    assert.equal((await scrape(t.url, null)).status, 401);
    assert.equal((await scrape(t.url, 'wrong-token-0123456789abcdefghijklmnop')).status, 401);
    assert.equal((await scrape(t.url, t.token)).status, 401); // a HIS AccessToken
    assert.equal((await scrape(t.url, METRICS_TOKEN.slice(0, -1))).status, 401);
    const basic = await fetch(`${t.url}/metrics`, {
      headers: { authorization: `Basic ${Buffer.from(`x:${ADMIN_TOKEN}`).toString('base64')}` },
    });
    assert.equal(basic.status, 401);
    const unauth = await scrape(t.url, null);
    assert.doesNotMatch(unauth.text, /hospay_/);
    assert.equal((await scrape(t.url, METRICS_TOKEN)).status, 200);
    assert.equal((await scrape(t.url, ADMIN_TOKEN)).status, 200);
    // The metrics token is no admin token: the admin API refuses it.
    const admin = await fetch(`${t.url}/admin/apps`, {
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    assert.equal(admin.status, 401);
  });
});

describe('GET /metrics with a separate admin listener', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_ADMIN_LISTEN: '127.0.0.1:0' } });
  });
  after(async () => {
    await t.close();
  });

  it('is served on the admin address only; /readyz and /healthz on both', async () => {
    assert.notEqual(t.platform.adminUrl, t.url);
    assert.equal((await scrape(t.url)).status, 404);
    assert.equal((await scrape(t.platform.adminUrl)).status, 200);
    for (const base of [t.url, t.platform.adminUrl]) {
      assert.equal((await fetch(`${base}/readyz`)).status, 200);
      assert.equal((await fetch(`${base}/healthz`)).status, 200);
    }
  });
});
