/**
 * The hosted cashier inside WeChat (JSAPI), through the real doors, with the real WeChat adapter against the fake
 * WeChat Pay (test/fakes/wechat-server.ts): a real headless Chromium with WeChat's User-Agent, whose page-side
 * WeixinJSBridge plays the WeChat app; the OAuth2 (snsapi_base) round trip and its refusals; the openid passed by
 * the HIS; a browser that is not WeChat (today's path); paystr in lc.ssc.trade.pay with the JSAPI parameters.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { verifyParams } from '../../src/crypto/signing.js';
import { orderNo, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';
import { payAuthNo, sscPayBiz } from '../support/medicare.js';
import { makeWechatMaterial, startWechatFake, type WechatFake } from '../fakes/wechat-server.js';

const CHROMIUM = process.env['HOSPAY_CHROMIUM'] ?? '/usr/bin/chromium';
const skip =
  !fs.existsSync(CHROMIUM) && process.env['CI'] !== 'true'
    ? `no Chromium at ${CHROMIUM} (apt-get install chromium)`
    : false;

const WECHAT_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN';
const WECHAT_DESKTOP_UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/107.0.0.0 Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) WindowsWechat(0x63090a13) XWEB/9129 Flue';
const SAFARI_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1';

const SHOTS = '/tmp/shots';

describe('the cashier inside WeChat: OAuth, JSAPI, the HIS-passed openid, paystr', { skip }, () => {
  let t: TestPlatform;
  let fake: WechatFake;
  let browser: Browser;
  let his: http.Server;
  let hisUrl = '';
  const returns: URL[] = [];
  const cspViolations: string[] = [];
  const mchId = '1900000109';
  const wxAppId = 'wx8888888888888888';

  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_ALLOW_MIXED_SIMULATOR: '1' } });
    t.clock.set(new Date()); // the fake checks the bridge's timeStamp against the real time
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    await t.platform.deps.apps.setRedirectUris(t.appId, ['https://his.example.cn/mi/']);
    const appSecret = crypto.randomBytes(16).toString('hex');
    const apiV3Key = crypto.randomBytes(16).toString('hex');
    const apiV2Key = crypto.randomBytes(16).toString('hex');
    const material = makeWechatMaterial(mchId);
    fake = await startWechatFake({
      mchId,
      appId: wxAppId,
      apiV3Key,
      apiV2Key,
      signTypeV2: 'HMAC-SHA256',
      material,
      mode: 'public_key',
      tls: false,
      oauthApps: { [wxAppId]: appSecret },
      // 网页授权域名: hospay's own host, and nothing else.
      oauthDomains: [new URL(t.url).host],
    });
    const set = await t.admin('PUT', `/admin/apps/${t.appId}/channels/wechat`, {
      values: {
        mch_id: mchId,
        app_id: wxAppId,
        api_v3_key: apiV3Key,
        api_v2_key: apiV2Key,
        merchant_private_key: material.merchantKey,
        merchant_serial_no: material.merchantSerial,
        wechatpay_public_key: material.wechatPublicKey,
        wechatpay_public_key_id: material.wechatPublicKeyId,
        api_base_url: fake.url,
        oauth_base_url: fake.url,
        sns_base_url: fake.url,
        app_secret: appSecret,
        timeout_ms: '3000',
      },
    });
    assert.equal(set.status, 200, JSON.stringify(set.data));
    for (const [payType, channel] of [
      ['weixin', 'wechat'],
      ['medicare', 'simulator'],
    ]) {
      const use = await t.admin('PUT', `/admin/apps/${t.appId}/channel-map`, { pay_type: payType, channel });
      assert.equal(use.status, 200, JSON.stringify(use.data));
    }
    his = http.createServer((req, res) => {
      const u = new URL(req.url ?? '/', hisUrl);
      if (u.pathname === '/pay/return') returns.push(u);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>HIS</title><h1 id="his">医院结果页</h1>');
    });
    await new Promise<void>((r) => his.listen(0, '127.0.0.1', r));
    const addr = his.address();
    hisUrl = `http://127.0.0.1:${addr && typeof addr === 'object' ? addr.port : 0}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
      ],
    });
    fs.mkdirSync(SHOTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await new Promise<void>((r) => his?.close(() => r()));
    await fake?.close();
    await t?.close();
  });

  const h5 = async (over: Record<string, unknown> = {}) => {
    const no = orderNo('MZ');
    const a = await gateway(t, 'lc.trade.h5.pay', {
      out_trade_no: no,
      total_amount: '26.80',
      subject: '门诊缴费',
      return_url: `${hisUrl}/pay/return?visit=7`,
      order_type: 'TREATMENT',
      ...over,
    });
    assert.equal(a.json.code, '10000', a.raw);
    const gotoUrl = String(a.biz['goto_url']);
    return { no, gotoUrl, token: new URL(gotoUrl).pathname.split('/')[2] ?? '' };
  };

  /**
   * A browser context playing the WeChat app: its WeixinJSBridge appears a little after the page loads (with
   * WeixinJSBridgeReady), checks the parameters as WeChat would (the fake's verifyBridge) and, when the payer
   * confirms, the fake marks the trade paid.
   */
  async function wechatContext(o: { ua: string; width: number; height: number }) {
    const ctx: BrowserContext = await browser.newContext({
      userAgent: o.ua,
      viewport: { width: o.width, height: o.height },
    });
    const seen: Array<Record<string, string>> = [];
    const play = { answer: 'ok' as 'ok' | 'cancel', outTradeNo: '' };
    await ctx.exposeFunction('__wxPay', (json: string) => {
      const params = JSON.parse(json) as Record<string, string>;
      seen.push(params);
      if (!fake.verifyBridge(params)) return 'get_brand_wcpay_request:fail';
      if (play.answer === 'cancel') return 'get_brand_wcpay_request:cancel';
      fake.setTrade(play.outTradeNo, 'paid');
      return 'get_brand_wcpay_request:ok';
    });
    await ctx.addInitScript({
      content: `setTimeout(function () {
        window.WeixinJSBridge = {
          invoke: function (name, params, cb) {
            if (name !== 'getBrandWCPayRequest') return cb({ err_msg: name + ':fail' });
            window.__wxPay(JSON.stringify(params)).then(function (m) { cb({ err_msg: m }); });
          },
        };
        document.dispatchEvent(new Event('WeixinJSBridgeReady'));
      }, 150);`,
    });
    return { ctx, seen, play };
  }

  const watch = (p: import('playwright-core').Page) =>
    p.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });

  it('in WeChat: OAuth (snsapi_base) → JSAPI page → bridge cancel, then pay → signed return_url, TRADE_SUCCESS', async () => {
    const { no, gotoUrl, token } = await h5();
    const visits = fake.oauthVisits().length;
    const { ctx, seen, play } = await wechatContext({ ua: WECHAT_UA, width: 390, height: 844 });
    play.outTradeNo = no;
    const page = await ctx.newPage();
    watch(page);
    try {
      await page.goto(gotoUrl);
      await page.waitForSelector('#pay');
      // The OAuth went to WeChat once, back to hospay's own fixed path, with a state.
      const v = fake.oauthVisits().slice(visits);
      assert.equal(v.length, 1);
      assert.equal(v[0]?.scope, 'snsapi_base');
      assert.equal(v[0]?.redirectUri, `${t.url}/goto/${token}/payer`);
      assert.match(v[0]?.state ?? '', /^[A-Za-z0-9_-]{20,}$/);
      const at = new URL(page.url());
      assert.equal(
        `${at.origin}${at.pathname}${at.search}`,
        gotoUrl,
        'the code is not left in the address bar',
      );
      assert.match((await page.textContent('body')) ?? '', /26\.80/);
      assert.match((await page.textContent('body')) ?? '', /门诊缴费/);
      await page.screenshot({ path: `${SHOTS}/wechat-jsapi-phone.png`, fullPage: true });
      // The payer cancels in WeChat: a message, and they may try again.
      play.answer = 'cancel';
      await page.click('#pay');
      await page.waitForFunction(`/已取消支付/.test(document.querySelector('#msg').textContent)`);
      assert.equal(await page.isEnabled('#pay'), true);
      assert.equal((await t.trade(no)).status, 'WAIT_BUYER_PAY');
      // Then pays.
      play.answer = 'ok';
      const before = returns.length;
      await page.click('#pay');
      await page.waitForSelector('#his');
      assert.equal(returns.length, before + 1);
    } finally {
      await ctx.close();
    }
    assert.equal(seen.length, 2);
    assert.deepEqual(Object.keys(seen[0] ?? {}).sort(), [
      'appId',
      'nonceStr',
      'package',
      'paySign',
      'signType',
      'timeStamp',
    ]);
    assert.equal(
      fake.payerOf(no)?.openid,
      fake.openidFor(wxAppId, 'patient-1'),
      "the payer is the OAuth's user",
    );
    const back = returns[returns.length - 1] as URL;
    const params = Object.fromEntries(back.searchParams);
    assert.ok(verifyParams(params, (await t.platform.deps.keys.active()).publicKey, 'RSA2'));
    assert.equal(params['visit'], '7');
    const biz = JSON.parse(params['biz_content'] ?? '{}') as Record<string, unknown>;
    assert.equal(biz['trade_status'], 'TRADE_SUCCESS');
    assert.equal(biz['out_trade_no'], no);
    assert.equal((await t.trade(no)).status, 'TRADE_SUCCESS');
    // The openid is personal data: never in the logs or the call records in clear.
    const openid = fake.openidFor(wxAppId, 'patient-1');
    assert.equal(t.logs().includes(openid), false, 'no openid in the logs');
    const calls = await t.admin('GET', `/admin/channel-calls?app=${t.appId}&limit=500`);
    assert.equal(JSON.stringify(calls.data).includes(openid), false, 'no openid in the call records');
  });

  it('the JSAPI page at desktop size (WeChat for Windows), and its CSP: script-src self, no inline', async () => {
    const { gotoUrl } = await h5({ subject: '住院预交金' });
    const { ctx } = await wechatContext({ ua: WECHAT_DESKTOP_UA, width: 1280, height: 800 });
    const page = await ctx.newPage();
    watch(page);
    try {
      const res = await page.goto(gotoUrl);
      await page.waitForSelector('#pay');
      const csp = (await res?.allHeaders())?.['content-security-policy'] ?? '';
      assert.match(csp, /script-src 'self'/);
      assert.match(csp, /default-src 'none'/);
      await page.screenshot({ path: `${SHOTS}/wechat-jsapi-desktop.png`, fullPage: true });
      const bg = await page.evaluate<string>(
        `getComputedStyle(document.querySelector('#pay')).backgroundColor`,
      );
      assert.equal(bg, 'rgb(22, 119, 255)', 'the style block applies under the CSP');
    } finally {
      await ctx.close();
    }
    assert.deepEqual(cspViolations, []);
  });

  /** The first leg by hand: hospay → WeChat's authorize (302 with the state cookie) → back with code and state. */
  async function oauthLeg(gotoUrl: string) {
    const start = await fetch(gotoUrl, { headers: { 'user-agent': WECHAT_UA }, redirect: 'manual' });
    assert.equal(start.status, 302);
    const setCookie = start.headers.get('set-cookie') ?? '';
    assert.match(setCookie, /^hp_oauth=[^;]+; Path=\/goto\/[A-Za-z0-9_-]+; HttpOnly; SameSite=Lax/);
    const cookie = setCookie.split(';')[0] ?? '';
    const wx = await fetch(start.headers.get('location') ?? '', { redirect: 'manual' });
    assert.equal(wx.status, 302);
    const back = new URL(wx.headers.get('location') ?? '');
    return { cookie, back };
  }
  const callback = (u: URL, cookie?: string) =>
    fetch(u, { headers: { 'user-agent': WECHAT_UA, ...(cookie ? { cookie } : {}) }, redirect: 'manual' });

  it('the OAuth callback refuses a missing or mismatching state, a replayed code, a trade that is not open', async () => {
    const { gotoUrl } = await h5();
    const { cookie, back } = await oauthLeg(gotoUrl);
    // No state cookie (another browser): refused.
    let r = await callback(back);
    assert.equal(r.status, 400);
    assert.match(await r.text(), /授权状态无效/);
    // The cookie with another state: refused.
    const wrong = new URL(back);
    wrong.searchParams.set('state', 'x'.repeat(24));
    r = await callback(wrong, cookie);
    assert.equal(r.status, 400);
    assert.match(await r.text(), /授权状态无效/);
    // No state at all: refused.
    const none = new URL(back);
    none.searchParams.delete('state');
    r = await callback(none, cookie);
    assert.equal(r.status, 400);
    // A state cookie made for another trade's token does not open for this one.
    const other = await h5();
    const otherLeg = await oauthLeg(other.gotoUrl);
    r = await callback(back, otherLeg.cookie);
    assert.equal(r.status, 400);
    // The right state and cookie: the payer's openid in a sealed, path-scoped cookie; back to the cashier.
    r = await callback(back, cookie);
    assert.equal(r.status, 302, await r.text());
    assert.equal(r.headers.get('location'), new URL(gotoUrl).pathname);
    const cookies = r.headers.getSetCookie();
    const payer = cookies.find((c) => c.startsWith('hp_payer=')) ?? '';
    assert.match(payer, /HttpOnly; SameSite=Lax/);
    assert.equal(payer.includes(fake.openidFor(wxAppId, 'patient-1')), false, 'the openid is sealed');
    assert.ok(
      cookies.some((c) => /^hp_oauth=;.*Max-Age=0/.test(c)),
      'the state cookie is spent',
    );
    // The same code again (even with the old state cookie): refused before WeChat is asked.
    const tokens = fake.requests().filter((q) => q.op === 'oauth_token').length;
    r = await callback(back, cookie);
    assert.equal(r.status, 400);
    assert.match(await r.text(), /授权码已使用/);
    assert.equal(fake.requests().filter((q) => q.op === 'oauth_token').length, tokens);
    // With the payer cookie, the cashier page orders in WeChat at once.
    const pageRes = await fetch(gotoUrl, {
      headers: { 'user-agent': WECHAT_UA, cookie: payer.split(';')[0] ?? '' },
      redirect: 'manual',
    });
    assert.equal(pageRes.status, 200);
    assert.match(await pageRes.text(), /data-bridge=/);
    // A trade that is not open (paid meanwhile, through another OAuth leg): its status, no exchange.
    const third = await h5();
    const leg1 = await oauthLeg(third.gotoUrl);
    const leg2 = await oauthLeg(third.gotoUrl);
    const done = await callback(leg1.back, leg1.cookie);
    const payerCookie = (done.headers.getSetCookie().find((c) => c.startsWith('hp_payer=')) ?? '').split(
      ';',
    )[0];
    const ordered = await fetch(third.gotoUrl, {
      headers: { 'user-agent': WECHAT_UA, cookie: payerCookie ?? '' },
    });
    assert.match(await ordered.text(), /data-bridge=/);
    fake.setTrade(third.no, 'paid');
    const q = await gateway(t, 'lc.trade.query', { out_trade_no: third.no });
    assert.equal(q.biz['trade_status'], 'TRADE_SUCCESS', q.raw);
    const tokens2 = fake.requests().filter((x) => x.op === 'oauth_token').length;
    r = await callback(leg2.back, leg2.cookie);
    assert.equal(r.status, 200);
    assert.match(await r.text(), /已支付/);
    assert.equal(fake.requests().filter((x) => x.op === 'oauth_token').length, tokens2);
  });

  it('the HIS passes the openid: no OAuth round trip; a second open orders the same at WeChat', async () => {
    const openid = fake.openidFor(wxAppId, 'his-patient');
    const { no, gotoUrl } = await h5({ openid });
    const visits = fake.oauthVisits().length;
    const open = async () => {
      const r = await fetch(gotoUrl, { headers: { 'user-agent': WECHAT_UA }, redirect: 'manual' });
      assert.equal(r.status, 200);
      const csp = r.headers.get('content-security-policy') ?? '';
      assert.match(csp, /script-src 'self'/);
      assert.doesNotMatch(csp, /unsafe-inline/);
      const html = await r.text();
      assert.doesNotMatch(html, /<script>/, 'no inline script');
      const attr = /data-bridge="([^"]+)"/.exec(html)?.[1] ?? '';
      const bridge = JSON.parse(attr.replace(/&quot;/g, '"').replace(/&amp;/g, '&')) as Record<
        string,
        string
      >;
      assert.ok(fake.verifyBridge(bridge), 'WeChat accepts the parameters');
      return bridge;
    };
    const a = await open();
    const b = await open();
    // One trade here and one order at WeChat, under the same out_trade_no.
    assert.equal(fake.trade(no)?.amountFen, 2680);
    assert.equal(a['appId'], b['appId']);
    assert.equal(fake.oauthVisits().length, visits, 'no OAuth');
    assert.equal(fake.payerOf(no)?.openid, openid);
    const trade = await t.trade(no);
    assert.equal(trade.channel_code_url, gotoUrl, 'recorded as paid in the app, at the cashier page');
    // The script is served, same origin, as JavaScript.
    const js = await fetch(`${t.url}/cashier/assets/wechat-pay.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    assert.match(await js.text(), /getBrandWCPayRequest/);
    // The same payment opened in an ordinary browser now: pay in WeChat.
    const elsewhere = await fetch(gotoUrl, { headers: { 'user-agent': SAFARI_UA }, redirect: 'manual' });
    assert.equal(elsewhere.status, 200);
    assert.match(await elsewhere.text(), /请在微信中打开/);
    // A malformed openid is refused at the door.
    const bad = await gateway(t, 'lc.trade.h5.pay', {
      out_trade_no: orderNo('MZ'),
      total_amount: '1.00',
      subject: 'x',
      order_type: 'TREATMENT',
      openid: 'o<script>',
    });
    assert.equal(bad.biz['sub_code'], 'INVALID_FIELD.openid', bad.raw);
    const long = await gateway(t, 'lc.trade.h5.pay', {
      out_trade_no: orderNo('MZ'),
      total_amount: '1.00',
      subject: 'x',
      order_type: 'TREATMENT',
      sub_openid: 'o'.repeat(129),
    });
    assert.match(String(long.biz['sub_code']), /sub_openid/, long.raw);
  });

  it('a browser that is not WeChat: today’s path (the choice, then WeChat’s H5 page), no OAuth', async () => {
    const { gotoUrl } = await h5();
    const visits = fake.oauthVisits().length;
    const r = await fetch(gotoUrl, { headers: { 'user-agent': SAFARI_UA }, redirect: 'manual' });
    assert.equal(r.status, 200);
    const html = await r.text();
    assert.match(html, /id="choose-weixin"/);
    assert.doesNotMatch(r.headers.get('content-security-policy') ?? '', /script-src/, 'no script here');
    const chosen = await fetch(gotoUrl, {
      method: 'POST',
      headers: { 'user-agent': SAFARI_UA, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'pay_type=weixin',
      redirect: 'manual',
    });
    assert.equal(chosen.status, 302);
    assert.match(
      chosen.headers.get('location') ?? '',
      /^https:\/\/wx\.tenpay\.com\/cgi-bin\/mmpayweb-bin\/checkmweb\?/,
    );
    assert.equal(fake.oauthVisits().length, visits);
  });

  it('lc.ssc.trade.pay for weixin with the openid: paystr carries the JSAPI parameters, and paySign verifies', async () => {
    const openid = fake.openidFor(wxAppId, 'mi-patient');
    const user = 'mi-user-1';
    const pan = await payAuthNo(t, user, { token: { payment_type: 'weixin' } });
    const biz = sscPayBiz(user, pan, { payment_type: 'weixin', openid });
    const r = await gateway(t, 'lc.ssc.trade.pay', biz);
    assert.equal(r.json.code, '10000', r.raw);
    const paystr = JSON.parse(String(r.biz['paystr'])) as Record<string, string>;
    assert.deepEqual(Object.keys(paystr), [
      'timestamp',
      'partnerId',
      'prepayId',
      'appId',
      'package',
      'noncestr',
      'sign',
      'signType',
      'pay_url',
    ]);
    assert.equal(paystr['appId'], wxAppId);
    assert.equal(paystr['package'], `prepay_id=${paystr['prepayId']}`);
    const bridge = {
      appId: paystr['appId'] ?? '',
      timeStamp: paystr['timestamp'] ?? '',
      nonceStr: paystr['noncestr'] ?? '',
      package: paystr['package'] ?? '',
      signType: paystr['signType'] ?? '',
      paySign: paystr['sign'] ?? '',
    };
    assert.ok(fake.verifyBridge(bridge), 'paySign verifies as WeChat checks it');
    const no = String(biz['out_trade_no']);
    assert.equal(fake.trade(no)?.amountFen, 4000, 'the cash part only');
    assert.equal(fake.payerOf(no)?.openid, openid);
    // The same request again: the same trade, the same order at WeChat.
    const again = await gateway(t, 'lc.ssc.trade.pay', biz);
    assert.equal(again.json.code, '10000', again.raw);
    const paystr2 = JSON.parse(String(again.biz['paystr'])) as Record<string, string>;
    assert.notEqual(paystr2['prepayId'], '');
    assert.equal(again.biz['platform_trade_no'], r.biz['platform_trade_no']);
    // Without the openid: today's paystr (empty values, pay_url).
    const pan2 = await payAuthNo(t, 'mi-user-2', { token: { payment_type: 'weixin' } });
    const plain = await gateway(
      t,
      'lc.ssc.trade.pay',
      sscPayBiz('mi-user-2', pan2, { payment_type: 'weixin' }),
    );
    assert.equal(plain.json.code, '10000', plain.raw);
    const p = JSON.parse(String(plain.biz['paystr'])) as Record<string, string>;
    assert.equal(p['prepayId'], '');
    assert.equal(p['sign'], '');
    assert.equal(p['pay_url'], plain.biz['goto_url']);
  });

  it('a WeChat failure while making paystr is a clear error; the trade stays open and a repeat succeeds', async () => {
    const openid = fake.openidFor(wxAppId, 'mi-patient-3');
    const pan = await payAuthNo(t, 'mi-user-3', { token: { payment_type: 'weixin' } });
    const biz = sscPayBiz('mi-user-3', pan, { payment_type: 'weixin', openid });
    fake.script('inapp', 'http_500');
    const r = await gateway(t, 'lc.ssc.trade.pay', biz);
    assert.equal(r.biz['sub_code'], 'CHANNEL_ERROR', r.raw);
    const no = String(biz['out_trade_no']);
    assert.equal((await t.trade(no)).status, 'WAIT_BUYER_PAY');
    const again = await gateway(t, 'lc.ssc.trade.pay', biz);
    assert.equal(again.json.code, '10000', again.raw);
    assert.notEqual(JSON.parse(String(again.biz['paystr']))['prepayId'], '');
  });
});
