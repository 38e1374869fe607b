import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'kysely';
import { NotifyJob } from '../../src/jobs/notifier.js';
import { storableText } from '../../src/store/channel-calls.js';
import { maskUrlPath } from '../../src/logging.js';
import { barcodeFields, qrFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';
import { orderNo } from '../support/platform.js';

/**
 * Issue 11, the records the platform keeps: unverified provider notifications are counted and only sampled;
 * channel call records and notification attempts are purged after their retention; one poisoned record never
 * takes a batch of good ones with it; capability tokens in URLs never reach the request log in clear.
 */

const DAY = 86_400_000;

/** Posts a provider notification to the real door. */
async function notify(t: TestPlatform, channel: string, body: string | Buffer) {
  const res = await fetch(`${t.url}/channels/${channel}/notify/${t.appId}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body,
  });
  await res.text();
  return res.status;
}

async function count(t: TestPlatform, where: (q: ReturnType<typeof base>) => ReturnType<typeof base>) {
  await t.platform.deps.channelCalls.flush();
  const r = await where(base(t))
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirst();
  return Number(r?.n ?? 0);
}
// SQL on purpose: these tests are about what is at rest in channel_calls (raw rows, counts across every app).
const base = (t: TestPlatform) => t.store.db.selectFrom('channel_calls');

/** Makes the channel call log keep everything in one batch until flushed (as under load within 200 ms). */
function oneBatch(t: TestPlatform) {
  (t.platform.deps.channelCalls as unknown as { flushMs: number }).flushMs = 3_600_000;
}

describe('security: unverified provider notifications are counted, only a bounded sample is stored', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t?.close();
  });

  it('1000 junk notifications leave at most the sample stored and the count right', async () => {
    const junk = (i: number) => `orderId=${i}&signature=${'Zm9v'.repeat(700)}&junk=${i}`; // ~3 KB each
    for (let round = 0; round < 100; round++)
      await Promise.all(Array.from({ length: 10 }, (_, k) => notify(t, 'unionpay', junk(round * 10 + k))));
    for (let i = 0; i < 50; i++) await notify(t, 'alipay', `sign=x&app_id=y&n=${i}`);

    const stored = await count(t, (q) => q.where('channel_id', '=', 'unionpay'));
    assert.ok(stored >= 1, 'a sample is kept for operators');
    assert.ok(stored <= 20, `at most the sample is stored (${stored} rows)`);
    const sample = await base(t).select('request').where('channel_id', '=', 'unionpay').execute();
    for (const s of sample) assert.ok((s.request ?? '').length <= 600, 'sampled records are truncated');
    assert.ok((await count(t, (q) => q.where('channel_id', '=', 'alipay'))) <= 20);

    const r = await t.admin('GET', `/admin/channel-notify-rejections?app=${t.appId}`);
    assert.equal(r.status, 200, JSON.stringify(r.data));
    const rows = r.data['rejections'] as Array<{ channel_id: string; rejected: number; last_reason: string }>;
    assert.equal(rows.find((x) => x.channel_id === 'unionpay')?.rejected, 1000);
    assert.equal(rows.find((x) => x.channel_id === 'alipay')?.rejected, 50);
    // The app's channel view shows it too.
    const view = await t.admin('GET', `/admin/apps/${t.appId}/channels`);
    const seen = view.data['rejected_notifications'] as Array<{ channel_id: string; rejected: number }>;
    assert.equal(seen.find((x) => x.channel_id === 'unionpay')?.rejected, 1000);

    // The log says so, but not once per junk notification.
    const lines = t
      .logs()
      .split('\n')
      .filter((l) => l.includes('notification') && l.includes('rejected'));
    assert.ok(lines.length >= 1 && lines.length <= 4, `${lines.length} log lines`);

    // Another hour: another (bounded) sample; and the count goes on.
    t.clock.advance(3_600_000);
    for (let i = 0; i < 30; i++) await notify(t, 'unionpay', junk(i));
    const later = await count(t, (q) => q.where('channel_id', '=', 'unionpay'));
    assert.ok(later > stored && later <= stored + 20, `${later} rows after another hour`);
    const r2 = await t.admin('GET', `/admin/channel-notify-rejections?app=${t.appId}&channel=unionpay`);
    const rows2 = r2.data['rejections'] as Array<{ rejected: number }>;
    assert.equal(
      rows2.reduce((s, x) => s + x.rejected, 0),
      1030,
    );
    const lines2 = t
      .logs()
      .split('\n')
      .filter((l) => l.includes('notification') && l.includes('rejected'));
    assert.ok(lines2.length > lines.length, 'a later hour logs again');
  });
});

describe('security: one poisoned channel call record does not take the batch with it', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t?.close();
  });

  const pays = async (n: number) => {
    const nos: string[] = [];
    for (let i = 0; i < n; i++) {
      const f = barcodeFields({ Cnt: '0' });
      const a = await t.offline('FWC_IF_Barcode_Pay', f);
      assert.equal(a.rr.IsSuccess, '1', a.text);
      nos.push(f.OutTradeNo ?? '');
    }
    return nos;
  };

  it('a notification with a NUL character within a batch: the others are all written', async () => {
    oneBatch(t);
    const before = await pays(3);
    await notify(t, 'unionpay', 'orderId=1&x=a\u0000b&reqReserved=\u0000');
    await notify(t, 'wechat', '{"id":"\u0000","resource":{"ciphertext":"x"}}');
    const afterwards = await pays(2);
    await t.platform.deps.channelCalls.flush();
    for (const no of [...before, ...afterwards])
      assert.ok(
        (await count(t, (q) => q.where('out_trade_no', '=', no))) >= 1,
        `the calls of ${no} were written`,
      );
    const noted = await base(t).select('request').where('channel_id', '=', 'unionpay').execute();
    assert.ok(noted.length >= 1, 'the notification itself is sampled');
    for (const n of noted) assert.ok(!(n.request ?? '').includes('\u0000'));
    assert.ok(
      noted.some((n) => (n.request ?? '').includes('\\u0000')),
      'the NUL is kept, escaped, not the record dropped',
    );
    assert.equal(t.platform.deps.channelCalls.dropped, 0, 'nothing was dropped');
  });

  it('a record the database still refuses is dropped alone, counted and logged without its content', async () => {
    oneBatch(t);
    await sql`ALTER TABLE channel_calls ADD CONSTRAINT t_poison CHECK (request IS NULL OR request NOT LIKE '%POISON%')`.execute(
      t.store.db,
    );
    try {
      const before = await pays(2);
      await notify(t, 'unionpay', 'orderId=2&note=POISONED-RECORD-CONTENT');
      const afterwards = await pays(2);
      await t.platform.deps.channelCalls.flush();
      for (const no of [...before, ...afterwards])
        assert.ok(
          (await count(t, (q) => q.where('out_trade_no', '=', no))) >= 1,
          `the calls of ${no} were written`,
        );
      const logs = t.logs();
      assert.match(logs, /channel call record[^"]*dropped|dropped[^"]*channel call record/);
      assert.ok(!logs.includes('POISONED-RECORD-CONTENT'), 'the content is not logged');
    } finally {
      await sql`ALTER TABLE channel_calls DROP CONSTRAINT t_poison`.execute(t.store.db);
    }
  });
});

class Receiver {
  private server: http.Server | null = null;
  base = '';
  async start() {
    this.server = http.createServer((req, res) => {
      req.resume();
      // A HIS whose answer holds a NUL character (PostgreSQL's text refuses it).
      req.on('end', () => res.end(req.url === '/nul' ? 'fail\u0000ed' : 'success'));
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  async stop() {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

describe('security: channel call records and notification attempts are purged after their retention', () => {
  let t: TestPlatform;
  const his = new Receiver();
  before(async () => {
    t = await startTestPlatform({
      env: { HOSPAY_NOTIFY_TIMEOUT: '300ms', HOSPAY_NOTIFY_ALLOW_LOOPBACK: '1' },
    });
    await his.start();
  });
  after(async () => {
    await his.stop();
    await t?.close();
  });

  async function paidQr(notifyUrl: string) {
    const f = qrFields({ PayType: 'alipay' });
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    await t.store.db
      .updateTable('trades')
      .set({ notify_url: notifyUrl })
      .where('out_trade_no', '=', f.OutTradeNo ?? '')
      .execute();
    await fetch(a.result.TwoDimensionCode ?? '', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'action=pay',
    }).then((r) => r.text());
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS', q.text);
    return f.OutTradeNo ?? '';
  }

  /** The delivery attempts of the notifications of the test app's trade with this order number. */
  const attemptRows = async (outTradeNo: string) => {
    const { notifications } = t.platform.deps;
    const ns = await notifications.ofTrades([(await t.trade(outTradeNo)).id]);
    return notifications.attemptsOf(ns.map((n) => n.id));
  };
  const attemptsOf = async (outTradeNo: string) => (await attemptRows(outTradeNo)).length;

  it('after 90 days old records go, records an unsettled trade still needs stay, on two instances', async () => {
    // Old: a paid barcode trade, a paid QR trade with a finished notification, one with a pending one, an
    // unpaid QR trade, and junk notifications counted.
    const paid = barcodeFields({ Cnt: '0' });
    assert.equal((await t.offline('FWC_IF_Barcode_Pay', paid)).rr.IsSuccess, '1');
    const finished = await paidQr(`${his.base}/a`);
    const pending = await paidQr(`${his.base}/b`);
    const job = new NotifyJob(t.platform.deps);
    await job.tick();
    assert.ok((await attemptsOf(finished)) >= 1 && (await attemptsOf(pending)) >= 1, 'attempts recorded');
    // One notification is over (delivered or given up); the other is still being delivered.
    await t.store.db
      .updateTable('notifications')
      .set({ status: 'FAILED' })
      .where('trade_id', 'in', (eb) =>
        eb.selectFrom('trades').select('id').where('out_trade_no', '=', finished),
      )
      .execute();
    await t.store.db
      .updateTable('notifications')
      .set({ status: 'PENDING', next_attempt_at: new Date(t.clock.now().getTime() + 1000 * DAY) })
      .where('trade_id', 'in', (eb) =>
        eb.selectFrom('trades').select('id').where('out_trade_no', '=', pending),
      )
      .execute();
    const unpaid = qrFields({ PayType: 'alipay' });
    assert.equal((await t.offline('FWC_IF_Qrcode_Pay', unpaid)).rr.IsSuccess, '1');
    // Still waiting for its payer when the records grow old (the expirer must not close it meanwhile).
    await t.store.db
      .updateTable('trades')
      .set({ expires_at: new Date(t.clock.now().getTime() + 1000 * DAY) })
      .where('out_trade_no', '=', unpaid.OutTradeNo ?? '')
      .execute();
    await notify(t, 'unionpay', 'orderId=9&junk=1');
    await t.platform.deps.channelCalls.flush();
    const oldCalls = await count(t, (q) => q);
    assert.ok(oldCalls >= 4, `${oldCalls} old records`);
    assert.ok((await count(t, (q) => q.where('out_trade_no', '=', unpaid.OutTradeNo ?? ''))) >= 1);

    // 89 days later nothing goes.
    t.clock.advance(89 * DAY);
    await t.platform.expiry.tick();
    assert.equal(await count(t, (q) => q), oldCalls);

    // 91 days later: a new payment, then the purge, on two instances at once.
    t.clock.advance(2 * DAY);
    const recent = barcodeFields({ Cnt: '0' });
    assert.equal((await t.offline('FWC_IF_Barcode_Pay', recent)).rr.IsSuccess, '1');
    await t.platform.deps.channelCalls.flush();
    const second = await t.second();
    await Promise.all([t.platform.expiry.tick(), second.expiry.tick()]);

    assert.equal(await count(t, (q) => q.where('out_trade_no', '=', paid.OutTradeNo ?? '')), 0);
    assert.equal(await count(t, (q) => q.where('out_trade_no', '=', finished)), 0);
    assert.equal(await count(t, (q) => q.where('channel_id', '=', 'unionpay')), 0, 'old samples go too');
    assert.ok((await count(t, (q) => q.where('out_trade_no', '=', recent.OutTradeNo ?? ''))) >= 1);
    assert.ok(
      (await count(t, (q) => q.where('out_trade_no', '=', unpaid.OutTradeNo ?? ''))) >= 1,
      'the records of a trade still waiting for payment stay',
    );
    assert.equal(await attemptsOf(finished), 0, 'attempts of a finished notification go');
    assert.ok((await attemptsOf(pending)) >= 1, 'attempts of a notification still being delivered stay');
    const r = await t.admin('GET', `/admin/channel-notify-rejections?app=${t.appId}&days=400`);
    assert.deepEqual(r.data['rejections'], [], 'old rejection counts go too');
  });

  it('a HIS answer with a NUL character is recorded (escaped) as the attempt it was', async () => {
    const no = await paidQr(`${his.base}/nul`);
    await new NotifyJob(t.platform.deps).tick();
    const [n] = await t.platform.deps.notifications.ofTrades([(await t.trade(no)).id]);
    assert.ok(n);
    assert.equal(n.attempts, 1, 'the attempt counts');
    assert.equal(await attemptsOf(no), 1, 'and is recorded');
    const [a] = await attemptRows(no);
    assert.equal(a?.body_excerpt, 'fail\\u0000ed', 'the answer, its NUL escaped');
    assert.ok(!t.logs().includes('delivery pass failed'));
  });
});

describe('security: capability tokens in URLs are not logged in clear', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    await t.platform.deps.apps.setRedirectUris(t.appId, ['https://his.example.cn/mi/']);
  });
  after(async () => {
    await t?.close();
  });

  it('cashier, goto, payer, e-voucher and medicare authorisation URLs: the token is masked', async () => {
    const tokens: string[] = [];
    const last = (u: string, i = 1) => {
      const parts = new URL(u).pathname.split('/');
      return parts[parts.length - i] ?? '';
    };
    // The aggregated cashier page, then the simulator's payer page it sends the payer to.
    const qr = await t.offline('FWC_IF_Qrcode_Pay', qrFields());
    const cashier = qr.result.TwoDimensionCode ?? '';
    assert.match(cashier, /\/cashier\/qr\//);
    tokens.push(last(cashier));
    await (await fetch(cashier)).text();
    const chosen = await fetch(cashier, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'pay_type=alipay',
    });
    const payer = chosen.headers.get('location') ?? '';
    assert.match(payer, /\/simulator\/pay\//);
    tokens.push(last(payer));
    await (await fetch(payer)).text();

    // H5: the goto page and its return.
    const h5 = await gateway(t, 'lc.trade.h5.pay', {
      out_trade_no: orderNo('MZ'),
      total_amount: '1.00',
      subject: '门诊缴费',
      order_type: 'TREATMENT',
    });
    const gotoUrl = String(h5.biz['goto_url'] ?? '');
    assert.match(gotoUrl, /\/goto\//, h5.raw);
    tokens.push(last(gotoUrl));
    await (await fetch(gotoUrl, { redirect: 'manual' })).text();
    await (await fetch(`${gotoUrl}/return`, { redirect: 'manual' })).text();

    // Medical insurance: consent page, decision, e-voucher.
    const q = new URLSearchParams({
      app_id: t.appId,
      open_id: '2088000000000001',
      state: 's1',
      redirect_uri: 'https://his.example.cn/mi/cb',
    });
    const start = await fetch(`${t.url}/oauth2/medicareAuth?${q.toString()}`, { redirect: 'manual' });
    const consent = start.headers.get('location') ?? '';
    assert.match(consent, /\/simulator\/medicare\/consent\//);
    const authId = last(consent);
    tokens.push(authId);
    await (await fetch(consent)).text();
    const decided = await fetch(`${t.url}/oauth2/medicareAuth/${authId}/decision`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'decision=grant',
    });
    const authCode =
      new URL(decided.headers.get('location') ?? 'https://x/').searchParams.get('auth_code') ?? '';
    tokens.push(authCode);
    const tok = await gateway(t, 'lc.ssc.user.token', {
      user_id: '2088000000000001',
      payment_type: 'alipay',
      auth_code: authCode,
      patient_name: '王医保',
      patient_card_no: '110101199003078516',
      biz_city_code: '440100',
      ssc_ins_type: 'YB',
    });
    assert.equal(tok.json.code, '10000', tok.raw);
    const voucher = String(tok.biz['qr_code'] ?? '');
    if (voucher.includes('/simulator/medicare/qr/')) {
      tokens.push(last(voucher));
      await (await fetch(voucher)).text();
    }
    // A real region's GET decision carries the code in the query.
    await (
      await fetch(`${t.url}/oauth2/medicareAuth/${authId}/decision?state=${authId}&authCode=abcd1234efgh`)
    ).text();

    const logs = t.logs();
    for (const k of tokens) {
      assert.ok(k.length >= 10, `token ${k.slice(0, 4)}`);
      assert.ok(!logs.includes(k), `the log holds a capability token: ${k.slice(0, 4)}…`);
    }
    assert.ok(!logs.includes('abcd1234efgh'));
    // The requests are still logged, with the token masked.
    assert.match(logs, /"path":"\/goto\/[A-Za-z0-9_-]{4}…"/);
    assert.match(logs, /"path":"\/goto\/[A-Za-z0-9_-]{4}…\/return"/);
    assert.match(logs, /"path":"\/cashier\/qr\/[A-Za-z0-9_-]{4}…"/);
    assert.match(logs, /"path":"\/oauth2\/medicareAuth\/[A-Za-z0-9_-]{4}…\/decision"/);
  });
});

describe('security: the text and URL helpers', () => {
  it('storableText escapes NUL, repairs lone surrogates (also those a cut leaves) and cuts', () => {
    assert.equal(storableText('a\u0000b'), 'a\\u0000b');
    assert.equal(storableText('x\uD800y\uDC00'), 'x\uFFFDy\uFFFD');
    assert.equal(storableText('😀😀', 3), '😀\uFFFD…');
    assert.equal(storableText('ok 😀'), 'ok 😀');
  });

  it('maskUrlPath drops the query and masks capability tokens only', () => {
    assert.equal(maskUrlPath('/goto/AbCdEfGhIjKlMnOp/return?x=1'), '/goto/AbCd…/return');
    assert.equal(maskUrlPath('/cashier/qr/AbCdEfGhIjKl'), '/cashier/qr/AbCd…');
    assert.equal(
      maskUrlPath('/oauth2/medicareAuth/AbCdEfGhIjKl/decision?authCode=s'),
      '/oauth2/medicareAuth/AbCd…/decision',
    );
    assert.equal(maskUrlPath('/oauth2/medicareAuth?app_id=a&open_id=b'), '/oauth2/medicareAuth');
    assert.equal(maskUrlPath('/simulator/pay/2026112510000012345678901234'), '/simulator/pay/2026…');
    assert.equal(maskUrlPath('/offline/FWC_IF_Barcode_Pay?AccessToken=x'), '/offline/FWC_IF_Barcode_Pay');
    assert.equal(maskUrlPath('/channels/unionpay/notify/app1'), '/channels/unionpay/notify/app1');
  });
});
