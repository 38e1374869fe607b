import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { chromium, type Browser } from 'playwright-core';
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

  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    // The HIS's return page.
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
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
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
    const page = await browser.newPage();
    try {
      await page.goto(String(a.biz['goto_url']));
      assert.match(await page.content(), /35\.50/);
      await page.click('#choose-alipay');
      await page.waitForSelector('#pay');
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
    const params = Object.fromEntries([...back.searchParams].filter(([k]) => k !== 'visit'));
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
});
