/**
 * Issue 11, "real apps silently fall back to the simulator": the simulator is chosen explicitly, never by default,
 * for an app that takes real money (channels/choice.ts). Through the real doors: the offline XML door, the hosted
 * cashier, the signed gateway, the admin API, start-up, and the `hospay` command; and HOSPAY_SIMULATOR=off.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import {
  authCode,
  barcodeFields,
  orderNo,
  qrFields,
  startTestPlatform,
  testConfig,
  type TestPlatform,
} from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';
import { freshDatabase, type TestDatabase } from '../support/db.js';
import { HospayHome, randomPort, TEST_MASTER_KEY } from '../support/spawn.js';
import { sscPayBiz } from '../support/medicare.js';
import { startPlatformWithFakeAlipay, type PlatformWithFakeAlipay } from '../support/fakes-platform.js';
import { startPlatform } from '../../src/main.js';
import { openStore } from '../../src/store/db.js';
import { createLogger } from '../../src/logging.js';

const ALIPAY_APP_ID = '2021000000000077';

const simulatorRows = async (t: TestPlatform) => {
  const r = await sql<{ n: string }>`SELECT (SELECT count(*) FROM sim_trades)::text AS n`.execute(t.store.db);
  return Number(r.rows[0]?.n ?? 0);
};

const h5Biz = (over: Record<string, unknown> = {}) => ({
  out_trade_no: orderNo('MZ'),
  total_amount: 20,
  subject: '门诊缴费',
  return_url: 'https://his.example.cn/pay/return',
  notify_url: 'https://his.example.cn/pay/notify',
  order_type: 'TREATMENT',
  ...over,
});

const sscBiz = (paymentType: string) =>
  sscPayBiz('patient-1', 'PAN0000000000000001', { payment_type: paymentType });

const form = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body,
  });

describe('an app that takes real money never falls back to the simulator', () => {
  let p: PlatformWithFakeAlipay;
  let t: TestPlatform;

  before(async () => {
    p = await startPlatformWithFakeAlipay({ alipayAppId: ALIPAY_APP_ID });
    t = p.t;
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    await t.platform.deps.apps.setRedirectUris(t.appId, ['https://his.example.cn/mi/']);
    await p.useAlipay();
  });
  after(async () => {
    await p.close();
  });

  it('offline door: a made-up WeChat or UnionPay payment code is refused PAY_TYPE_NOT_ENABLED, nothing is simulated', async () => {
    const simBefore = await simulatorRows(t);
    for (const f of [
      barcodeFields({ AuthCode: authCode('00', 'weixin') }),
      barcodeFields({ AuthCode: authCode('00', 'unionpay') }),
      barcodeFields({ AuthCode: authCode('00', 'weixin'), PayType: 'WeiXin' }),
    ]) {
      const a = await t.offline('FWC_IF_Barcode_Pay', f);
      assert.equal(a.rr.IsSuccess, '0', a.text);
      assert.equal(a.rr.SubCode, 'PAY_TYPE_NOT_ENABLED', a.text);
      assert.match(a.rr.SubMessage, /未开通支付方式 (weixin|unionpay)/);
      assert.match(a.rr.SubMessage, /is not enabled for this app/);
      assert.notEqual(a.result['TradeStatus'], 'TRADE_SUCCESS');
      assert.equal(await t.platform.deps.trades.byOutTradeNo(t.appId, f.OutTradeNo ?? ''), undefined);
    }
    assert.equal(await simulatorRows(t), simBefore, 'the simulator made no trade');
    // Alipay itself goes to the real channel.
    const paid = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: authCode('00', 'alipay') }));
    assert.equal(paid.rr.IsSuccess, '1', paid.text);
  });

  it('QR pay: a simulated pay type is refused, and the hosted cashier offers only the real one', async () => {
    for (const payType of ['weixin', 'unionpay']) {
      const a = await t.offline('FWC_IF_Qrcode_Pay', { ...qrFields(), PayType: payType });
      assert.equal(a.rr.IsSuccess, '0', a.text);
      assert.equal(a.rr.SubCode, 'PAY_TYPE_NOT_ENABLED');
    }
    const agg = await t.offline('FWC_IF_Qrcode_Pay', qrFields());
    assert.equal(agg.rr.IsSuccess, '1', agg.text);
    const codeUrl = agg.result['TwoDimensionCode'] ?? '';
    const html = await (await fetch(codeUrl)).text();
    assert.match(html, /id="choose-alipay"/);
    assert.doesNotMatch(html, /choose-weixin|choose-unionpay|云闪付|微信支付/);
    // Choosing a pay type that is not offered, by form or by the payer's app, never reaches the simulator.
    const chosen = await form(codeUrl, 'pay_type=unionpay');
    assert.equal(chosen.status, 200);
    assert.match(await chosen.text(), /PAY_TYPE_NOT_ENABLED|未开通支付方式 unionpay/);
    const wechat = await fetch(codeUrl, {
      redirect: 'manual',
      headers: { 'user-agent': 'Mozilla/5.0 MicroMessenger/8.0' },
    });
    assert.equal(wechat.status, 200);
    assert.doesNotMatch(wechat.headers.get('location') ?? '', /simulator/);
    // The first refused choice did not stick: Alipay can still be chosen.
    const alipay = await form(codeUrl, 'pay_type=alipay');
    assert.equal(alipay.status, 302);
    assert.doesNotMatch(alipay.headers.get('location') ?? '', /simulator/);
  });

  it('gateway: the H5 page offers only Alipay; lc.ssc.* refuse a simulated pay type or medical insurance', async () => {
    const h5 = await gateway(t, 'lc.trade.h5.pay', h5Biz());
    assert.equal(h5.json.code, '10000', h5.raw);
    const html = await (await fetch(String(h5.biz['goto_url']))).text();
    assert.match(html, /id="choose-alipay"/);
    assert.doesNotMatch(html, /choose-weixin|choose-unionpay/);

    const wx = await gateway(t, 'lc.ssc.trade.pay', sscBiz('weixin'));
    assert.equal(wx.biz['sub_code'], 'PAY_TYPE_NOT_ENABLED', wx.raw);
    // Alipay is real, but the app's medical-insurance side is not enabled: no simulated insurance either.
    const ali = await gateway(t, 'lc.ssc.trade.pay', sscBiz('alipay'));
    assert.equal(ali.biz['sub_code'], 'PAY_TYPE_NOT_ENABLED', ali.raw);
    const token = await gateway(t, 'lc.ssc.user.token', {
      user_id: 'patient-1',
      payment_type: 'alipay',
      auth_code: 'made-up-code',
      patient_name: '王医保',
      patient_card_no: '44010519800101123X',
      biz_city_code: '440100',
      ssc_ins_type: 'YB',
    });
    assert.equal(token.biz['sub_code'], 'PAY_TYPE_NOT_ENABLED', token.raw);
    const start = new URL(`${t.url}/oauth2/medicareAuth`);
    start.searchParams.set('app_id', t.appId);
    start.searchParams.set('open_id', 'patient-1');
    start.searchParams.set('state', 's');
    start.searchParams.set('redirect_uri', 'https://his.example.cn/mi/cb');
    const auth = await fetch(start, { redirect: 'manual' });
    assert.equal(auth.status, 400);
    assert.match(await auth.text(), /PAY_TYPE_NOT_ENABLED/);
    // SQL on purpose: every row of the table, to prove nothing was written.
    const rows = await t.store.db.selectFrom('medicare_auths').selectAll().execute();
    assert.equal(rows.length, 0, 'no authorisation was started');
  });

  it('admin API: mixing the simulator in beside a real channel is refused, with a clear message', async () => {
    for (const payType of ['weixin', 'medicare']) {
      const r = await t.admin('PUT', `/admin/apps/${t.appId}/channel-map`, {
        pay_type: payType,
        channel: 'simulator',
      });
      assert.equal(r.status, 400, JSON.stringify(r.data));
      assert.equal(r.data['code'], 'SIMULATOR_MIXED');
      assert.match(String(r.data['message']), /HOSPAY_ALLOW_MIXED_SIMULATOR=1/);
      assert.match(String(r.data['message']), new RegExp(t.appId));
    }
    const shown = await t.admin('GET', `/admin/apps/${t.appId}/channels`);
    assert.deepEqual(shown.data['channel_map'], { alipay: 'alipay' });
  });

  it('start-up refuses a mixed map (written by hand) naming the app, unless HOSPAY_ALLOW_MIXED_SIMULATOR=1', async () => {
    await t.store.db
      .updateTable('apps')
      .set({ channel_map: JSON.stringify({ alipay: 'alipay', weixin: 'simulator' }) })
      .where('id', '=', t.appId)
      .execute();
    t.platform.deps.apps.invalidate();
    const start = (allowMixed: boolean) =>
      startPlatform({
        config: {
          ...t.platform.config,
          port: 0,
          simulator: { ...t.platform.config.simulator, allowMixed },
        },
        store: t.store,
        clock: t.clock,
        log: createLogger('silent'),
        adminToken: 'x'.repeat(32),
        demo: false,
      });
    try {
      await assert.rejects(start(false), (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.match(e.message, new RegExp(t.appId));
        assert.match(e.message, /weixin/);
        assert.match(e.message, /HOSPAY_ALLOW_MIXED_SIMULATOR=1/);
        return true;
      });
      // A server running without the permission does not serve the mix either.
      const a = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: authCode('00', 'weixin') }));
      assert.equal(a.rr.SubCode, 'PAY_TYPE_NOT_ENABLED', a.text);
      const allowed = await start(true);
      await allowed.close();
    } finally {
      await t.store.db
        .updateTable('apps')
        .set({ channel_map: JSON.stringify({ alipay: 'alipay' }) })
        .where('id', '=', t.appId)
        .execute();
      t.platform.deps.apps.invalidate();
    }
  });
});

describe('HOSPAY_ALLOW_MIXED_SIMULATOR=1: the simulator chosen explicitly beside a real channel', () => {
  let p: PlatformWithFakeAlipay;
  let t: TestPlatform;

  before(async () => {
    p = await startPlatformWithFakeAlipay({
      alipayAppId: ALIPAY_APP_ID,
      env: { HOSPAY_ALLOW_MIXED_SIMULATOR: '1' },
    });
    t = p.t;
    await p.useAlipay();
  });
  after(async () => {
    await p.close();
  });

  it('only the explicitly chosen pay type is simulated; the others stay off', async () => {
    const r = await t.admin('PUT', `/admin/apps/${t.appId}/channel-map`, {
      pay_type: 'weixin',
      channel: 'simulator',
    });
    assert.equal(r.status, 200, JSON.stringify(r.data));
    assert.deepEqual(r.data['channel_map'], { alipay: 'alipay', weixin: 'simulator' });
    const wx = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: authCode('00', 'weixin') }));
    assert.equal(wx.rr.IsSuccess, '1', wx.text);
    const up = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: authCode('00', 'unionpay') }));
    assert.equal(up.rr.SubCode, 'PAY_TYPE_NOT_ENABLED', up.text);
    const agg = await t.offline('FWC_IF_Qrcode_Pay', qrFields());
    const html = await (await fetch(agg.result['TwoDimensionCode'] ?? '')).text();
    assert.match(html, /id="choose-alipay"/);
    assert.match(html, /id="choose-weixin"/);
    assert.doesNotMatch(html, /choose-unionpay/);
    // "none" removes a pay type.
    const none = await t.admin('PUT', `/admin/apps/${t.appId}/channel-map`, {
      pay_type: 'weixin',
      channel: 'none',
    });
    assert.equal(none.status, 200, JSON.stringify(none.data));
    assert.deepEqual(none.data['channel_map'], { alipay: 'alipay' });
  });
});

describe('HOSPAY_SIMULATOR=off', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_SIMULATOR: 'off' } });
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
  });
  after(async () => {
    await t.close();
  });

  it('says so at start-up; the simulator channel and simulated medicare are not registered', () => {
    assert.match(t.logs(), /simulator off/);
    assert.equal(t.platform.deps.channels.get('simulator'), undefined);
    assert.equal(t.platform.deps.channels.medicare('simulator'), undefined);
  });

  it('an app with an empty map has no pay types: everything is refused PAY_TYPE_NOT_ENABLED', async () => {
    for (const payType of ['alipay', 'weixin', 'unionpay'] as const) {
      const a = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: authCode('00', payType) }));
      assert.equal(a.rr.IsSuccess, '0', a.text);
      assert.equal(a.rr.SubCode, 'PAY_TYPE_NOT_ENABLED');
      const q = await t.offline('FWC_IF_Qrcode_Pay', { ...qrFields(), PayType: payType });
      assert.equal(q.rr.SubCode, 'PAY_TYPE_NOT_ENABLED');
    }
    const agg = await t.offline('FWC_IF_Qrcode_Pay', qrFields());
    assert.equal(agg.rr.IsSuccess, '0', agg.text);
    assert.equal(agg.rr.SubCode, 'PAY_TYPE_NOT_ENABLED');
    const h5 = await gateway(t, 'lc.trade.h5.pay', h5Biz());
    assert.equal(h5.biz['sub_code'], 'PAY_TYPE_NOT_ENABLED', h5.raw);
    // SQL on purpose: every row of the table, to prove nothing was written.
    const trades = await t.store.db.selectFrom('trades').selectAll().execute();
    assert.equal(trades.length, 0);
  });

  it("the simulator's payer pages and routes are not served", async () => {
    for (const p of [
      '/simulator/pay/2026010112345678',
      '/simulator/medicare/qr/AUTH1234567890123',
      '/simulator/medicare/consent/abcdefghijklmnop',
    ]) {
      const res = await fetch(`${t.url}${p}`);
      assert.equal(res.status, 404, p);
      assert.equal(((await res.json()) as { code: string }).code, 'NOT_FOUND', p);
    }
    const post = await form(`${t.url}/simulator/pay/2026010112345678`, 'action=pay');
    assert.equal(post.status, 404);
    assert.equal(((await post.json()) as { code: string }).code, 'NOT_FOUND');
  });

  it('the admin API refuses mapping a pay type to the simulator', async () => {
    const r = await t.admin('PUT', `/admin/apps/${t.appId}/channel-map`, {
      pay_type: 'alipay',
      channel: 'simulator',
    });
    assert.equal(r.status, 400, JSON.stringify(r.data));
    assert.equal(r.data['code'], 'SIMULATOR_OFF');
    assert.match(String(r.data['message']), /HOSPAY_SIMULATOR=off/);
  });

  it('start-up fails while an app is mapped to the simulator, naming the app and pay type', async () => {
    await t.store.db
      .updateTable('apps')
      .set({ channel_map: JSON.stringify({ unionpay: 'simulator' }) })
      .where('id', '=', t.appId)
      .execute();
    try {
      await assert.rejects(
        startPlatform({
          config: { ...t.platform.config, port: 0 },
          store: t.store,
          clock: t.clock,
          log: createLogger('silent'),
          adminToken: 'x'.repeat(32),
          demo: false,
        }),
        (e: unknown) => {
          assert.ok(e instanceof Error);
          assert.match(e.message, new RegExp(`${t.appId}.*unionpay|unionpay.*${t.appId}`));
          assert.match(e.message, /HOSPAY_SIMULATOR=off/);
          return true;
        },
      );
    } finally {
      await t.store.db.updateTable('apps').set({ channel_map: '{}' }).where('id', '=', t.appId).execute();
    }
  });

  it('no demo app is created at first start', async () => {
    const db: TestDatabase = await freshDatabase();
    const start = (env: Record<string, string>) =>
      startPlatform({
        config: { ...testConfig({ PORT: '0', ...env }), store: db.store, dataDir: '/tmp/hospay-test-unused' },
        log: createLogger('silent'),
        adminToken: 'x'.repeat(32),
        listen: false,
      });
    try {
      const p = await start({ HOSPAY_SIMULATOR: 'off' });
      try {
        assert.equal(p.demo, null);
        assert.equal(await p.deps.apps.count(), 0);
      } finally {
        await p.close();
      }
    } finally {
      await db.drop();
    }
  });
});

describe('the hospay command: simulator choices', () => {
  let home: HospayHome;

  before(async () => {
    home = await HospayHome.create('hospay-sim', {
      env: { LOG_LEVEL: 'warn', HOSPAY_JOBS: 'off', HOSPAY_MASTER_KEY: TEST_MASTER_KEY },
    });
  });
  after(async () => {
    await home.close();
  });

  const run = (args: string[], extra: Record<string, string> = {}) => home.run(args, { env: extra });

  it('serve with HOSPAY_SIMULATOR=off: no demo app, and the start-up line says the simulator is off', async () => {
    const server = await home.start(['serve', '--port', String(randomPort())], {
      env: { HOSPAY_SIMULATOR: 'off' },
    });
    try {
      assert.match(server.out(), /hospay is serving.*simulator off/);
      assert.doesNotMatch(server.out(), /AccessToken/);
    } finally {
      await server.stop('SIGTERM');
    }
  });

  it('channel use refuses a mix unless HOSPAY_ALLOW_MIXED_SIMULATOR=1; serve then refuses to start without it', async () => {
    const created = run(['app', 'create', '--name', '真实医院', '--json']);
    assert.equal(created.status, 0, created.stderr);
    const appId = (JSON.parse(created.stdout) as { app_id: string }).app_id;
    // The app takes real money (its Alipay configuration is not what this test is about).
    const s = await openStore(home.store);
    try {
      await s.db
        .updateTable('apps')
        .set({ channel_map: JSON.stringify({ alipay: 'alipay' }) })
        .where('id', '=', appId)
        .execute();
    } finally {
      await s.close();
    }
    const use = ['channel', 'use', '--app', appId, '--pay-type', 'weixin', '--channel', 'simulator'];
    const refused = run(use);
    assert.equal(refused.status, 1, refused.stdout + refused.stderr);
    assert.match(refused.stderr, /HOSPAY_ALLOW_MIXED_SIMULATOR=1/);
    assert.match(refused.stderr, new RegExp(appId));
    const shown = run(['channel', 'show', '--app', appId]);
    assert.match(shown.stdout, /weixin → \(未开通 not enabled\)/);

    const allowed = run(use, { HOSPAY_ALLOW_MIXED_SIMULATOR: '1' });
    assert.equal(allowed.status, 0, allowed.stderr);
    const serve = run(['serve', '--port', '0']);
    assert.equal(serve.status, 1, serve.stdout + serve.stderr);
    assert.match(serve.stderr, new RegExp(appId));
    assert.match(serve.stderr, /HOSPAY_ALLOW_MIXED_SIMULATOR=1/);
  });
});
