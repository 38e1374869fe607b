import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { type Browser } from 'playwright-core';
import { launchChromium } from '../support/desk.js';
import { verifyParams } from '../../src/crypto/signing.js';
import { orderNo, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';

const CHROMIUM = process.env['HOSPAY_CHROMIUM'] ?? '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
// CI installs Debian's chromium (.ci/run); elsewhere the browser tests say why they are skipped.
const skip =
  !haveChromium && process.env['CI'] !== 'true'
    ? `no Chromium at ${CHROMIUM} (apt-get install chromium)`
    : false;

describe('H5 payment in a real browser (headless Chromium)', { skip }, () => {
  let t: TestPlatform;
  let browser: Browser;
  let his: http.Server;
  let hisUrl = '';
  const returns: URL[] = [];
  // The patients' pages run under a strict CSP (no script, their one style block by hash): nothing is blocked.
  const cspViolations: string[] = [];
  const newPage = async () => {
    const p = await browser.newPage();
    p.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    return p;
  };
  /** The page's style block applied: the primary button is blue (rgb(22, 119, 255)). */
  const styled = async (p: Awaited<ReturnType<typeof newPage>>, selector: string) =>
    assert.equal(
      await p.evaluate<string>(
        `getComputedStyle(document.querySelector(${JSON.stringify(selector)})).backgroundColor`,
      ),
      'rgb(22, 119, 255)',
      `the style block applies under the CSP (${selector})`,
    );

  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    // The HIS's return page.
    his = http.createServer((req, res) => {
      const u = new URL(req.url ?? '/', hisUrl);
      if (u.pathname === '/pay/return' || u.pathname === '/mi/callback') returns.push(u);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><title>HIS</title><h1 id="his">医院结果页</h1>');
    });
    await new Promise<void>((r) => his.listen(0, '127.0.0.1', r));
    const addr = his.address();
    hisUrl = `http://127.0.0.1:${addr && typeof addr === 'object' ? addr.port : 0}`;
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await new Promise<void>((r) => his?.close(() => r()));
    await t?.close();
  });

  async function walk(
    action: 'pay' | 'abandon',
  ): Promise<{ params: Record<string, string>; outTradeNo: string }> {
    const outTradeNo = orderNo('MZ');
    const a = await gateway(t, 'lc.trade.h5.pay', {
      out_trade_no: outTradeNo,
      total_amount: 35.5,
      subject: '挂号费',
      return_url: `${hisUrl}/pay/return?visit=42`,
      order_type: 'APPOINTMENT',
    });
    assert.equal(a.json.code, '10000', a.raw);
    const page = await newPage();
    try {
      await page.goto(String(a.biz['goto_url']));
      assert.match(await page.content(), /35\.50/);
      await styled(page, '#choose-alipay');
      await page.click('#choose-alipay');
      await page.waitForSelector('#pay');
      await styled(page, '#pay');
      assert.match((await page.textContent('body')) ?? '', /模拟收银台/);
      const before = returns.length;
      await page.click(action === 'pay' ? '#pay' : '#abandon');
      await page.waitForSelector('#his');
      assert.equal(returns.length, before + 1);
      await page.screenshot({ path: `/tmp/hospay-h5-${action}.png` });
    } finally {
      await page.close();
    }
    const back = returns[returns.length - 1] as URL;
    assert.equal(back.pathname, '/pay/return');
    assert.equal(back.searchParams.get('visit'), '42', "the HIS's own query parameters are kept");
    // The HIS's own parameter is kept and signed with the rest: every parameter except sign verifies.
    const params = Object.fromEntries(back.searchParams);
    return { params, outTradeNo };
  }

  it('h5.pay → goto_url → simulator cashier → pay → return_url carrying a valid signature', async () => {
    const { params, outTradeNo } = await walk('pay');
    const key = (await t.platform.deps.keys.active()).publicKey;
    assert.ok(verifyParams(params, key, 'RSA2'), 'the return_url parameters verify with the platform key');
    assert.equal(params['method'], 'lc.trade.h5.pay.return');
    const biz = JSON.parse(params['biz_content'] ?? '{}') as Record<string, unknown>;
    assert.equal(biz['trade_status'], 'TRADE_SUCCESS');
    assert.equal(biz['out_trade_no'], outTradeNo);
    assert.equal(biz['total_amount'], 35.5);
    const tampered = {
      ...params,
      biz_content: (params['biz_content'] ?? '').replace('TRADE_SUCCESS', 'TRADE_CLOSED'),
    };
    assert.equal(verifyParams(tampered, key, 'RSA2'), false);
  });

  it('the same, cancelled by the payer: TRADE_CLOSED with sub_code 5001, signed', async () => {
    const { params } = await walk('abandon');
    assert.ok(verifyParams(params, (await t.platform.deps.keys.active()).publicKey, 'RSA2'));
    const biz = JSON.parse(params['biz_content'] ?? '{}') as Record<string, unknown>;
    assert.equal(biz['trade_status'], 'TRADE_CLOSED');
    assert.equal(biz['sub_code'], '5001');
  });

  it('medical insurance: authorisation consent → auth_code → token → mixed payment paid in the browser', async () => {
    await t.platform.deps.apps.setRedirectUris(t.appId, [`${hisUrl}/mi/`]);
    const page = await newPage();
    try {
      const q = new URLSearchParams({
        app_id: t.appId,
        open_id: '2088000000009999',
        state: 'visit-7',
        redirect_uri: `${hisUrl}/mi/callback`,
      });
      await page.goto(`${t.url}/oauth2/medicareAuth?${q.toString()}`);
      assert.match((await page.textContent('body')) ?? '', /医保电子凭证授权/);
      await styled(page, '#grant');
      await page.click('#grant');
      await page.waitForSelector('#his');
      const back = returns[returns.length - 1] as URL;
      assert.equal(back.pathname, '/mi/callback');
      assert.equal(back.searchParams.get('state'), 'visit-7');
      const tok = await gateway(t, 'lc.ssc.user.token', {
        user_id: '2088000000009999',
        payment_type: 'weixin',
        auth_code: back.searchParams.get('auth_code'),
      });
      assert.equal(tok.json.code, '10000', tok.raw);
      const outTradeNo = orderNo('MZ');
      const pay = await gateway(t, 'lc.ssc.trade.pay', {
        out_trade_no: outTradeNo,
        ssc_scene: 'REGISTRATION',
        subject: '医保挂号',
        notify_url: `${hisUrl}/mi/notify`,
        return_url: `${hisUrl}/pay/return`,
        total_amount: '50.00',
        cash_fee: '12.50',
        insurance_fee: '37.50',
        payment_type: 'weixin',
        user_id: '2088000000009999',
        patient_name: '李医保',
        patient_card_no: '440105199001011234',
        org_name: '市第一人民医院',
        org_no: 'H44010100001',
        ssc_ins_type: 'YB',
        city_code: '440100',
        pay_auth_no: tok.biz['pay_auth_no'],
      });
      assert.equal(pay.json.code, '10000', pay.raw);
      await page.goto(String(pay.biz['goto_url']));
      assert.match((await page.textContent('body')) ?? '', /12\.50/);
      await page.click('#pay');
      await page.waitForSelector('#his');
      const ret = returns[returns.length - 1] as URL;
      const params = Object.fromEntries(ret.searchParams);
      assert.ok(verifyParams(params, (await t.platform.deps.keys.active()).publicKey, 'RSA2'));
      assert.equal(
        (JSON.parse(params['biz_content'] ?? '{}') as Record<string, unknown>)['trade_status'],
        'TRADE_SUCCESS',
      );
    } finally {
      await page.close();
    }
    assert.deepEqual(cspViolations, [], 'no Content-Security-Policy violation on any page');
  });
});
