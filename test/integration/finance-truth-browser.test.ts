import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { authCode, barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { startHisSimulator } from '../../src/reconcile/his/his-sim.js';
import { reconcileDay } from '../../src/reconcile/run.js';
import { OperatorRepository } from '../../src/store/operators.js';
import { fen } from '../../src/domain/money.js';

const CHROMIUM = process.env['HOSPAY_CHROMIUM'] ?? '/usr/bin/chromium';
const skip =
  !fs.existsSync(CHROMIUM) && process.env['CI'] !== 'true'
    ? `no Chromium at ${CHROMIUM} (apt-get install chromium)`
    : false;

const DAY = '2026-11-25';

/**
 * The finance page tells the truth (issue 12, section 4): amounts with thousands separators, the channel's
 * amount beside a HIS-side difference, a chart that shows the gap, a PROCESSING refund as one STATUS_MISMATCH,
 * and a day the HIS could not be read as 未完成 — in headless Chromium at desktop and phone widths.
 */
describe('the finance page tells the truth (headless Chromium)', { skip }, () => {
  let t: TestPlatform;
  let his: Awaited<ReturnType<typeof startHisSimulator>>;
  let browser: Browser;
  let page: Page;
  let hisClosed = false;
  const cspViolations: string[] = [];
  const nos: Record<'big' | 'lost' | 'wrong' | 'refunded', string> = {
    big: '',
    lost: '',
    wrong: '',
    refunded: '',
  };

  before(async () => {
    t = await startTestPlatform();
    his = await startHisSimulator(0);
    await t.store.db
      .updateTable('apps')
      .set({ his_base_url: his.url, recon_settings: JSON.stringify({ hisRetries: 0 }) })
      .where('id', '=', t.appId)
      .execute();
    await new OperatorRepository(t.store.db, t.clock).create({
      username: 'fin.li',
      displayName: '李会计',
      password: 'finance-truth-pw',
    });
    const pay = async (amount: string, payType: 'alipay' | 'weixin' = 'alipay') => {
      const f = barcodeFields({ AuthCode: authCode('00', payType), TotalAmount: amount });
      const a = await t.offline('FWC_IF_Barcode_Pay', f);
      assert.equal(a.rr.IsSuccess, '1', a.text);
      return f.OutTradeNo ?? '';
    };
    nos.big = await pay('12345.67');
    nos.lost = await pay('20.00');
    nos.wrong = await pay('30.00');
    nos.refunded = await pay('10.00');
    await pay('50.00', 'weixin');
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: nos.refunded });
    const lost = await t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: q.result.TradeNo,
      OutTradeNo: nos.refunded,
      TotalAmount: '10.00',
      RefundAmount: '4.00',
      OutRequestNo: 'RPX1',
      RefundmentReason: 'SIMULATE_REFUND_ERROR', // the channel refunds, its answer is lost: PROCESSING
    });
    assert.equal(lost.rr.SubCode, 'REFUND_PROCESSING', lost.text);
    const movements = await t.platform.recon.reconciliation.paidMovements();
    const flows = his.sim.loadFromTrades(movements.trades, movements.refunds);
    his.sim.faults.drop.add(flows.find((f) => f.outTradeNo === nos.lost)?.hisFlowId ?? '');
    his.sim.faults.amountFen.set(flows.find((f) => f.outTradeNo === nos.wrong)?.hisFlowId ?? '', fen(2999));
    t.clock.set('2026-11-26T02:30:00Z');
    const app = await t.platform.deps.apps.get(t.appId);
    assert.ok(app);
    await reconcileDay(t.platform.recon, { app, date: DAY });

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
    const context = await browser.newContext({ locale: 'zh-CN', viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    await page.goto(`${t.url}/finance`);
    await page.fill('#username', 'fin.li');
    await page.fill('#password', 'finance-truth-pw');
    await page.click('#login');
    await page.waitForSelector('#summary');
  });
  after(async () => {
    await browser?.close();
    if (!hisClosed) await his?.close();
    await t?.close();
  });

  const text = async (selector: string) => (await page.textContent(selector)) ?? '';
  const cells = async (order: string) =>
    page.locator(`#differences tr:has-text("${order}") td`).allTextContents();

  it('amounts with thousands separators; the channel amount beside a HIS-side difference', async () => {
    assert.equal(await page.inputValue('#date'), DAY);
    // Alipay on the platform: 12,345.67 + 20 + 30 + 10.
    assert.match(await text('#summary'), /¥12,405\.67/);
    assert.doesNotMatch(await text('#summary'), /¥12405\.67/);

    // 长款: the platform and the channel both have ¥20.00; only the HIS has nothing.
    const lost = await cells(nos.lost);
    assert.match(lost.join('|'), /HIS_MISSING/);
    assert.deepEqual(lost.slice(5, 8), ['¥20.00', '¥20.00', '—']);
    const wrong = await cells(nos.wrong);
    assert.deepEqual(wrong.slice(5, 8), ['¥30.00', '¥30.00', '¥29.99']);
    // The refund held as PROCESSING that the channel paid out: one STATUS_MISMATCH, no 漏单.
    const refunded = await page.locator(`#differences tr:has-text("${nos.refunded}")`).allTextContents();
    assert.equal(refunded.length, 1, refunded.join('\n'));
    assert.match(refunded[0] ?? '', /状态不符/);
    assert.match(refunded[0] ?? '', /RPX1/);
    assert.doesNotMatch(await text('#differences'), /漏单/);
  });

  it('the chart shows each gap against the platform, at desktop and phone widths', async () => {
    assert.equal(await page.locator('#chart svg').count(), 4); // alipay, weixin, unionpay, elecny (e-CNY)
    const alipay = page.locator('#chart svg[data-pay-type="alipay"]');
    // The HIS has 12,345.67 + 29.99 + 10 = 12,385.66: 20.01 short of the platform; the channel agrees.
    assert.match(
      (await alipay.locator('text.chart-gap[data-side="his"]').textContent()) ?? '',
      /比平台少 ¥20\.01/,
    );
    assert.equal(
      await alipay.locator('text.chart-gap[data-side="his"]').getAttribute('data-gap-fen'),
      '-2001',
    );
    assert.match(
      (await alipay.locator('text.chart-same[data-side="channel"]').textContent()) ?? '',
      /与平台一致/,
    );
    // The gap is drawn, visibly, even though it is 0.16 % of the bar.
    const gap = await alipay.locator('rect.chart-gap-bar').boundingBox();
    assert.ok(gap && gap.width >= 3, JSON.stringify(gap));
    const weixin = page.locator('#chart svg[data-pay-type="weixin"]');
    assert.equal(await weixin.locator('text.chart-gap').count(), 0);
    await page.screenshot({ path: '/tmp/hospay-finance-truth-desktop.png', fullPage: true });

    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await page.waitForSelector('#summary');
    const box = await alipay.boundingBox();
    assert.ok(
      box && box.x >= 0 && box.x + box.width <= 390,
      `the chart fits the phone: ${JSON.stringify(box)}`,
    );
    const overflow = await page.evaluate<number>(
      'document.documentElement.scrollWidth - document.documentElement.clientWidth',
    );
    assert.equal(overflow, 0, 'no horizontal scrolling of the page');
    await page.screenshot({ path: '/tmp/hospay-finance-truth-phone.png', fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it('with the HIS down, a re-run says 未完成 and keeps the HIS-side differences', async () => {
    await his.close();
    hisClosed = true;
    await page.reload();
    await page.click('#rerun');
    await page.waitForSelector('#flash');
    assert.match(await text('#flash'), /未完成/);
    assert.match(await text('#summary tr[data-pay-type="alipay"]'), /未完成（HIS 未核对）/);
    assert.doesNotMatch(await text('#summary'), /(^|[^未])完成（HIS 未核对）/);
    assert.match(await text('#incomplete'), /本日对账未完成/);
    assert.match(await text('.his-error'), /未完成/);
    assert.match(await text('#differences'), new RegExp(nos.lost));
    await page.screenshot({ path: '/tmp/hospay-finance-truth-incomplete.png', fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    await page.screenshot({ path: '/tmp/hospay-finance-truth-incomplete-phone.png', fullPage: true });
    assert.deepEqual(cspViolations, []);
  });
});
