/**
 * UnionPay mobile-web pay through the hosted cashier: the channel answers a form (frontTransReq), which hospay's
 * own page (/goto/<token>/form) posts to UnionPay's cashier, by a static script or by its visible button without
 * script. The real UnionPay adapter against the fake UnionPay gateway (test/fakes/unionpay-server.ts), in a real
 * headless Chromium; the fake's cashier posts the payer back to /goto/<token>/return, which ends at the HIS's
 * signed return_url.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { chromium, type Browser } from 'playwright-core';
import { verifyParams } from '../../src/crypto/signing.js';
import { orderNo, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';
import { type FakeUnionPay } from '../fakes/unionpay-server.js';
import { useFakeUnionPay } from '../support/fakes-platform.js';

const CHROMIUM = process.env['HOSPAY_CHROMIUM'] ?? '/usr/bin/chromium';
const skip =
  !fs.existsSync(CHROMIUM) && process.env['CI'] !== 'true'
    ? `no Chromium at ${CHROMIUM} (apt-get install chromium)`
    : false;
const SHOTS = '/tmp/shots';

describe('UnionPay WAP: the hosted form page posts to UnionPay’s cashier', { skip }, () => {
  let t: TestPlatform;
  let fake: FakeUnionPay;
  let browser: Browser;
  let his: http.Server;
  let hisUrl = '';
  const returns: URL[] = [];
  const cspViolations: string[] = [];

  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    fake = await useFakeUnionPay(t, 2000);
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

  const h5 = async () => {
    const no = orderNo('MZ');
    const a = await gateway(t, 'lc.trade.h5.pay', {
      out_trade_no: no,
      total_amount: '18.60',
      subject: '检验费',
      return_url: `${hisUrl}/pay/return?visit=9`,
      order_type: 'TREATMENT',
    });
    assert.equal(a.json.code, '10000', a.raw);
    return { no, gotoUrl: String(a.biz['goto_url']) };
  };

  it('choose 云闪付 → the form page auto-posts to UnionPay → pay → back by POST → signed return_url', async () => {
    const { no, gotoUrl } = await h5();
    const ctx = await browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await ctx.newPage();
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    try {
      await page.goto(gotoUrl);
      await page.click('#choose-unionpay');
      // hospay's form page posted itself (script) to the fake's cashier.
      await page.waitForSelector('text=银联在线支付');
      assert.ok(page.url().startsWith(fake.url), page.url());
      assert.match((await page.textContent('body')) ?? '', /18\.60/);
      const before = returns.length;
      await page.click('button[type=submit]');
      await page.waitForSelector('#his');
      assert.equal(returns.length, before + 1);
    } finally {
      await ctx.close();
    }
    const back = returns[returns.length - 1] as URL;
    const params = Object.fromEntries(back.searchParams);
    assert.ok(verifyParams(params, (await t.platform.deps.keys.active()).publicKey, 'RSA2'));
    assert.equal(params['visit'], '9');
    const biz = JSON.parse(params['biz_content'] ?? '{}') as Record<string, unknown>;
    assert.equal(biz['trade_status'], 'TRADE_SUCCESS');
    assert.equal((await t.trade(no)).status, 'TRADE_SUCCESS');
    assert.deepEqual(cspViolations, [], 'no CSP violation on hospay’s pages');
  });

  it('without script the visible button posts the form; its CSP allows that origin only; screenshots', async () => {
    const { gotoUrl } = await h5();
    const chose = await fetch(gotoUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'pay_type=unionpay',
      redirect: 'manual',
    });
    assert.equal(chose.status, 302);
    const formPath = chose.headers.get('location') ?? '';
    assert.equal(formPath, `${gotoUrl}/form`);
    const res = await fetch(formPath);
    assert.equal(res.status, 200);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, new RegExp(`form-action ${new URL(fake.url).origin.replace(/[.]/g, '\\.')}(;|$)`));
    assert.match(csp, /script-src 'self'/);
    const html = await res.text();
    assert.match(html, new RegExp(`action="${fake.url}/gateway/api/frontTransReq\\.do"`));
    assert.match(html, /name="signature"/);
    assert.doesNotMatch(html, /<script>/);
    // The same trade opened again goes to the same form page (asked of the channel again, no provider call).
    const again = await fetch(gotoUrl, { redirect: 'manual' });
    assert.equal(again.headers.get('location'), formPath);

    for (const [name, viewport] of [
      ['phone', { width: 390, height: 844 }],
      ['desktop', { width: 1280, height: 800 }],
    ] as const) {
      const ctx = await browser.newContext({ viewport, javaScriptEnabled: false });
      const page = await ctx.newPage();
      try {
        await page.goto(formPath);
        assert.equal(await page.isVisible('#go'), true);
        assert.equal((await page.textContent('#go'))?.trim(), '前往云闪付支付');
        await page.screenshot({ path: `${SHOTS}/unionpay-form-${name}.png`, fullPage: true });
        if (name === 'phone') {
          await page.click('#go');
          await page.waitForSelector('text=银联在线支付');
          assert.ok(page.url().startsWith(fake.url));
        }
      } finally {
        await ctx.close();
      }
    }
  });

  it('the form page of an unknown token is 404; other cashier pages stay script-free', async () => {
    const r = await fetch(`${t.url}/goto/AAAAAAAAAAAAAAAAAAAAAAAA/form`);
    assert.equal(r.status, 404);
    assert.doesNotMatch(r.headers.get('content-security-policy') ?? '', /script-src/);
    const { gotoUrl } = await h5();
    const choose = await fetch(gotoUrl);
    assert.doesNotMatch(choose.headers.get('content-security-policy') ?? '', /script-src|form-action/);
  });
});
