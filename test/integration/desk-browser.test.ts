import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import { always, NotifyReceiver } from '../support/receiver.js';
import { NOTIFY_MAX_ATTEMPTS } from '../../src/services/notify.js';
import {
  browserLogin,
  chromiumSkip,
  launchChromium,
  makeApp,
  makeOperator,
  paidBarcode,
  paidQrWithNotifications,
  refundTrade,
} from '../support/desk.js';

const SHOTS = '/tmp/shots';

describe('the desk in a real browser (headless Chromium)', { skip: chromiumSkip }, () => {
  let t: TestPlatform;
  const his = new NotifyReceiver();
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const cspViolations: string[] = [];
  let outTradeNo = '';
  let foreign = '';

  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_NOTIFY_TIMEOUT: '300ms' } });
    await his.start();
    const appB = await makeApp(t, '乙医院');
    foreign = (await paidBarcode(t, { PatientName: '赵六' }, appB.token)).outTradeNo;
    // The HIS's notify URL answers 500 every time: the notification ends FAILED after every attempt.
    outTradeNo = await paidQrWithNotifications(
      t,
      his.url('/his/notify', always({ status: 500, body: 'boom' })),
    );
    await refundTrade(t, outTradeNo, '5.00', 'RF-BROWSER-1');
    await makeOperator(t, {
      username: 'it.a',
      role: 'hospital_it',
      apps: [t.appId],
      displayName: '信息科小王',
    });
    await makeOperator(t, { username: 'cs.b', role: 'cashier_supervisor', apps: [appB.appId] });
    fs.mkdirSync(SHOTS, { recursive: true });
    browser = await launchChromium();
    context = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1366, height: 900 } });
    await browserLogin(context, t.url, 'it.a', 'desk-test-password-1');
    page = await context.newPage();
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
  });
  after(async () => {
    await browser?.close();
    await his.stop();
    await t?.close();
  });

  const body = async () => (await page.textContent('body')) ?? '';

  it('searches by OutTradeNo and lists the trade with the patient masked', async () => {
    await page.goto(`${t.url}/desk`);
    assert.match(await body(), /交易查询/);
    await page.fill('#f-out_trade_no', outTradeNo);
    await Promise.all([page.waitForURL(/\/desk\?/), page.click('#do-search')]);
    const rows = await page.locator('#results tbody tr').count();
    assert.equal(rows, 1);
    const text = await body();
    assert.ok(text.includes(outTradeNo));
    assert.ok(text.includes('李*'), 'masked name');
    assert.ok(!text.includes('李四'), 'never the full name');
    await page.screenshot({ path: `${SHOTS}/desk-search-1366.png`, fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    const overflow = Number(await page.evaluate('document.documentElement.scrollWidth'));
    assert.ok(overflow <= 390, `the page fits a phone (${overflow}px)`);
    await page.screenshot({ path: `${SHOTS}/desk-search-390.png`, fullPage: true });
    await page.setViewportSize({ width: 1366, height: 900 });
  });

  it('opens the trade: its refund and its FAILED notification with every attempt in the timeline', async () => {
    await Promise.all([page.waitForURL(/\/desk\/trades\//), page.click('a.trade-link')]);
    const text = await body();
    assert.ok(text.includes('¥25.50'));
    const timeline = page.locator('#timeline li');
    const kinds = await timeline.evaluateAll((els) => els.map((e) => e.getAttribute('data-kind')));
    assert.equal(kinds[0], 'created');
    const refund = page.locator('#timeline li[data-kind="refund"]');
    assert.equal(await refund.count(), 1);
    assert.match(
      (await refund.textContent()) ?? '',
      /退款 \/ refund ¥5\.00：成功 \/ succeeded[\s\S]*RF-BROWSER-1/,
    );
    const notify = page.locator('#timeline li[data-kind="notify"]').first();
    assert.match((await notify.textContent()) ?? '', /投递失败 \/ failed/);
    assert.match((await notify.textContent()) ?? '', /HTTP 500/);
    const attempts = page.locator('#timeline li[data-kind="notify-attempt"]');
    assert.ok((await attempts.count()) >= NOTIFY_MAX_ATTEMPTS, String(await attempts.count()));
    assert.match((await attempts.first().textContent()) ?? '', /第 1 次[\s\S]*失败[\s\S]*HTTP 500/);
    assert.equal(
      await page.locator('#timeline li.bad[data-kind="notify-attempt"]').count(),
      await attempts.count(),
    );
    assert.ok(!text.includes('李四'), 'never the full name');
    assert.ok(text.includes(`${his.base}/his/notify`), 'where the notification goes');
    await page.screenshot({ path: `${SHOTS}/desk-trade-1366.png`, fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    const overflow = Number(await page.evaluate('document.documentElement.scrollWidth'));
    assert.ok(overflow <= 390, `the page fits a phone (${overflow}px)`);
    await page.screenshot({ path: `${SHOTS}/desk-trade-390.png`, fullPage: true });
    await page.setViewportSize({ width: 1366, height: 900 });
  });

  it('a scoped operator of another hospital finds nothing: search, page (404), CSV', async () => {
    const other = await browser.newContext({ locale: 'zh-CN' });
    try {
      await browserLogin(other, t.url, 'cs.b', 'desk-test-password-1');
      const p = await other.newPage();
      await p.goto(`${t.url}/desk?out_trade_no=${encodeURIComponent(outTradeNo)}`);
      assert.equal(await p.locator('#results tbody tr').count(), 0);
      assert.match((await p.textContent('body')) ?? '', /没有符合条件的交易/);
      const res = await p.goto(`${t.url}/desk/trades/${t.appId}/${encodeURIComponent(outTradeNo)}`);
      assert.equal(res?.status(), 404);
      assert.match((await p.textContent('body')) ?? '', /未找到/);
      const csv = await other.request.get(
        `${t.url}/desk/trades.csv?out_trade_no=${encodeURIComponent(outTradeNo)}`,
      );
      assert.equal(csv.status(), 200);
      assert.ok(!(await csv.text()).includes(outTradeNo));
      // Its own hospital's trade is there.
      await p.goto(`${t.url}/desk?out_trade_no=${encodeURIComponent(foreign)}`);
      assert.equal(await p.locator('#results tbody tr').count(), 1);
    } finally {
      await other.close();
    }
  });

  it('no Content-Security-Policy violation on the desk pages', () => {
    assert.deepEqual(cspViolations, []);
  });
});
