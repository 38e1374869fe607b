import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { launchChromium } from '../support/desk.js';
import { authCode, barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { startHisSimulator } from '../../src/reconcile/his/his-sim.js';
import { reconcileDay } from '../../src/reconcile/run.js';
import { SimulatorProvider } from '../../src/simulator/provider.js';
import { OperatorRepository } from '../../src/store/operators.js';
import { fen } from '../../src/domain/money.js';

const CHROMIUM = process.env['HOSPAY_CHROMIUM'] ?? '/usr/bin/chromium';
const haveChromium = fs.existsSync(CHROMIUM);
// CI installs Debian's chromium (.ci/run); elsewhere the browser tests say why they are skipped.
const skip =
  !haveChromium && process.env['CI'] !== 'true'
    ? `no Chromium at ${CHROMIUM} (apt-get install chromium)`
    : false;

const DAY = '2026-11-25';

describe('the finance page in a real browser (headless Chromium)', { skip }, () => {
  let t: TestPlatform;
  let his: Awaited<ReturnType<typeof startHisSimulator>>;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const cspViolations: string[] = [];
  const nos: string[] = [];
  const ghost = 'MZGHOST20261125';
  const password = 'finance-browser-pw';

  before(async () => {
    t = await startTestPlatform();
    his = await startHisSimulator(0);
    await t.store.db.updateTable('apps').set({ his_base_url: his.url }).where('id', '=', t.appId).execute();
    await new OperatorRepository(t.store.db, t.clock).create({
      username: 'fin.zhang',
      displayName: '张会计',
      password,
    });

    // A day (2026-11-25, 10:00 in Shanghai) with payments on two pay types and a refund...
    const pays: Array<[string, 'alipay' | 'weixin']> = [
      ['10.00', 'alipay'],
      ['20.00', 'alipay'],
      ['30.00', 'alipay'],
      ['40.00', 'weixin'],
      ['50.00', 'weixin'],
    ];
    for (const [amount, payType] of pays) {
      const f = barcodeFields({ AuthCode: authCode('00', payType), TotalAmount: amount });
      assert.equal((await t.offline('FWC_IF_Barcode_Pay', f)).rr.IsSuccess, '1');
      nos.push(f.OutTradeNo ?? '');
    }
    const paid = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: nos[0] });
    await t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: paid.result.TradeNo,
      RefundAmount: '5.00',
      OutRequestNo: 'RF1',
      OutTradeNo: nos[0],
      TotalAmount: '10.00',
    });
    const movements = await t.platform.recon.reconciliation.paidMovements();
    const flows = his.sim.loadFromTrades(movements.trades, movements.refunds);
    // ...and real differences: the HIS lost one payment (长款), has a wrong amount for another, records a payment
    // with no money behind it (短款); the channel took a payment the platform never recorded (漏单).
    his.sim.faults.drop.add(flows.find((f) => f.outTradeNo === nos[1])?.hisFlowId ?? '');
    his.sim.faults.amountFen.set(flows.find((f) => f.outTradeNo === nos[3])?.hisFlowId ?? '', fen(3999));
    his.sim.addExtra({ amountFen: fen(777), time: new Date('2026-11-25T03:00:00Z'), payType: 'alipay' });
    await new SimulatorProvider({ db: t.store.db, clock: t.clock, publicBaseUrl: t.url }).barcodePay({
      merchant: t.appId,
      outTradeNo: ghost,
      payType: 'alipay',
      amountFen: fen(1234),
      authCode: authCode('00'),
      subject: 'ghost',
    });
    // The next morning: the page shows yesterday by default.
    t.clock.set('2026-11-26T02:30:00Z');
    const app = await t.platform.deps.apps.get(t.appId);
    assert.ok(app);
    const outcomes = await reconcileDay(t.platform.recon, { app, date: DAY });
    assert.ok(
      outcomes.some((o) => o.open > 0),
      JSON.stringify(outcomes),
    );

    browser = await launchChromium();
    context = await browser.newContext({ acceptDownloads: true, locale: 'zh-CN' });
    page = await context.newPage();
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
  });
  after(async () => {
    await browser?.close();
    await his?.close();
    await t?.close();
  });

  const body = async () => (await page.textContent('body')) ?? '';

  it('an unauthenticated visit goes to the login page; a wrong password is refused in Chinese', async () => {
    await page.goto(`${t.url}/finance`);
    assert.match(page.url(), /\/finance\/login\?next=%2Ffinance$/);
    await page.fill('#username', 'fin.zhang');
    await page.fill('#password', 'not-the-password');
    await page.click('#login');
    await page.waitForSelector('#login-error');
    assert.match((await page.textContent('#login-error')) ?? '', /用户名或密码错误/);
    assert.match(page.url(), /\/finance\/login$/);
  });

  it("logs in and shows yesterday's summary, a chart per pay type and the differences", async () => {
    await page.fill('#username', 'fin.zhang');
    await page.fill('#password', password);
    await page.click('#login');
    await page.waitForSelector('#summary');
    assert.match(page.url(), /\/finance$/);
    assert.equal(await page.inputValue('#date'), DAY, 'yesterday by default');
    assert.match((await page.textContent('#who')) ?? '', /张会计（fin\.zhang）/);

    const summary = (await page.textContent('#summary')) ?? '';
    assert.match(summary, /支付宝/);
    assert.match(summary, /微信支付/);
    assert.match(summary, /¥72\.34/, 'the channel took 10 + 20 + 30 + the ghost 12.34 on Alipay');

    // The chart: an SVG per pay type with readable amounts for each side.
    assert.equal(await page.locator('#chart svg').count(), 4);
    const labels = await page.locator('#chart text.chart-pay-type').allTextContents();
    assert.deepEqual(labels, ['支付宝', '微信支付', '云闪付', '数字人民币']);
    const chart = (await page.textContent('#chart')) ?? '';
    assert.match(chart, /平台/);
    assert.match(chart, /渠道/);
    assert.match(chart, /HIS/);
    assert.match(chart, /¥90\.00（2 笔）/, 'WeChat Pay: 40 + 50 on the platform and at the channel');
    assert.match(chart, /¥89\.99（2 笔）/, "WeChat Pay at the HIS: 39.99 (the HIS's wrong amount) + 50");
    assert.match(chart, /¥47\.77（3 笔）/, 'Alipay at the HIS: 10 + 30 + 7.77, the 20 lost');
    assert.ok((await page.locator('#chart rect').count()) >= 9);

    const diffs = (await page.textContent('#differences')) ?? '';
    assert.match(diffs, new RegExp(ghost));
    assert.match(diffs, /漏单（渠道有、平台无）/);
    assert.match(diffs, /CHANNEL_ONLY/);
    assert.match(diffs, /长款（已收款，HIS无记录）/);
    assert.match(diffs, /HIS_MISSING/);
    assert.match(diffs, /短款/);
    assert.match(diffs, /金额不符/);
    assert.match(diffs, new RegExp(nos[1] ?? 'x'));
    // The page's own style applies under the strict CSP, with no violation.
    const bg = await page.evaluate<string>(
      'getComputedStyle(document.querySelector("header.top")).backgroundColor',
    );
    assert.equal(bg, 'rgb(31, 45, 61)');
    await page.screenshot({ path: '/tmp/hospay-finance-day.png', fullPage: true });
  });

  it('opens a difference and shows its evidence, HIS re-check included', async () => {
    await page.click(`#differences tr:has-text("${nos[1]}") a.out-trade-no`);
    await page.waitForSelector('#evidence');
    assert.match(page.url(), /\/finance\/differences\/\d+$/);
    assert.equal(await page.textContent('#code'), 'HIS_MISSING');
    assert.equal(await page.textContent('#out-trade-no'), nos[1]);
    assert.match((await page.textContent('#sides')) ?? '', /平台\s*¥20\.00/);
    assert.match((await page.textContent('#action')) ?? '', /联系HIS补写缴费记录/);
    assert.equal(await page.textContent('#his-found'), '未查到');
    assert.match((await page.textContent('#his-suggestion')) ?? '', /退款给患者/);
    assert.match((await page.textContent('#audit-empty')) ?? '', /暂无处理记录/);
    await page.screenshot({ path: '/tmp/hospay-finance-difference.png', fullPage: true });
  });

  it('resolves it with a note; the audit trail names the operator; resolving again is refused clearly', async () => {
    const url = page.url();
    await page.click('#resolve'); // empty: the browser's own "required" check keeps the form back
    assert.equal(page.url(), url);
    await page.fill('#note', 'HIS 已补录缴费记录 <核对人：张>');
    await page.click('#resolve');
    await page.waitForSelector('#flash');
    assert.match((await page.textContent('#flash')) ?? '', /已标记为已处理/);
    assert.match((await page.textContent('#resolution')) ?? '', /已处理/);
    const audit = (await page.textContent('#audit')) ?? '';
    assert.match(audit, /张会计（fin\.zhang）/);
    assert.match(audit, /标记已处理/);
    assert.match(audit, /HIS 已补录缴费记录 <核对人：张>/);
    assert.equal(await page.locator('#resolve-form').count(), 0, 'no form once resolved');

    // A second tab still showing the form resolves the same difference: it is told, nothing changes.
    const other = await context.newPage();
    try {
      const id = /\/finance\/differences\/(\d+)/.exec(url)?.[1];
      const d = (await t.platform.recon.reconciliation.differences({ date: DAY })).find(
        (x) => x.code === 'AMOUNT_MISMATCH',
      );
      assert.ok(d);
      await other.goto(`${t.url}/finance/differences/${d.id}`);
      await page.goto(`${t.url}/finance/differences/${d.id}`);
      // The run's evidence: the HIS's own row for this order, as it answered it.
      assert.match((await page.textContent('#run-evidence')) ?? '', /HIS 交易列表.*24 次请求/);
      assert.match((await page.textContent('.his-raw')) ?? '', /<Amount>39\.99<\/Amount>/);
      await page.fill('#note', '第一位处理');
      await page.click('#resolve');
      await page.waitForSelector('#flash');
      await other.fill('#note', '第二位处理');
      await other.click('#resolve');
      await other.waitForSelector('#flash');
      assert.match((await other.textContent('#flash')) ?? '', /此前已被处理/);
      assert.match((await other.textContent('#resolution')) ?? '', /第一位处理/);
      assert.doesNotMatch((await other.textContent('body')) ?? '', /第二位处理/);
      assert.ok(id);
    } finally {
      await other.close();
    }
  });

  it('filters the differences: 未处理 / 已处理 / 全部; re-running keeps the resolutions', async () => {
    await page.goto(`${t.url}/finance`);
    assert.equal(
      await page.locator(`#differences tr:has-text("${nos[1]}")`).count(),
      0,
      'resolved: not open',
    );
    await page.click('#filter-resolved');
    await page.waitForSelector('#differences');
    assert.match(page.url(), /filter=resolved/);
    const resolved = (await page.textContent('#differences')) ?? '';
    assert.match(resolved, new RegExp(nos[1] ?? 'x'));
    assert.doesNotMatch(resolved, new RegExp(ghost));
    assert.match(resolved, /已处理/);
    await page.click('#filter-all');
    const all = (await page.textContent('#differences')) ?? '';
    assert.match(all, new RegExp(nos[1] ?? 'x'));
    assert.match(all, new RegExp(ghost));
    await page.click('#filter-open');
    assert.doesNotMatch((await page.textContent('#differences')) ?? '', new RegExp(nos[1] ?? 'x'));

    await page.click('#rerun');
    await page.waitForSelector('#flash');
    assert.match((await page.textContent('#flash')) ?? '', /已重新对账/);
    assert.match((await page.textContent('#differences')) ?? '', new RegExp(ghost));
    await page.click('#filter-resolved');
    assert.match((await page.textContent('#differences')) ?? '', new RegExp(nos[1] ?? 'x'), 'still resolved');
  });

  it('downloads the CSV (BOM, order numbers) and the XLSX (a ZIP)', async () => {
    const [csv] = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]);
    const csvPath = await csv.path();
    const bytes = fs.readFileSync(csvPath);
    assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'UTF-8 BOM, for Excel');
    const text = bytes.toString('utf8');
    assert.ok(text.includes(nos[1] ?? 'x'), 'a known order number');
    assert.ok(text.includes(ghost));
    assert.match(csv.suggestedFilename(), new RegExp(`^hospay-report-${DAY}-.*\\.csv$`));

    const [xlsx] = await Promise.all([page.waitForEvent('download'), page.click('#export-xlsx')]);
    const xbytes = fs.readFileSync(await xlsx.path());
    assert.ok(xbytes.length > 1000);
    assert.equal(xbytes.subarray(0, 2).toString('latin1'), 'PK');
    assert.match(xlsx.suggestedFilename(), /\.xlsx$/);
  });

  it('logs out; the old session cookie no longer works', async () => {
    const before = (await context.cookies()).find((c) => c.name === 'hospay_finance');
    assert.ok(before);
    assert.equal(before.httpOnly, true);
    assert.equal(before.sameSite, 'Strict');
    assert.equal(before.path, '/finance');
    await page.click('#logout');
    await page.waitForSelector('#login');
    assert.match(await body(), /已退出登录/);
    assert.equal(
      (await context.cookies()).find((c) => c.name === 'hospay_finance'),
      undefined,
    );
    const replay = await fetch(`${t.url}/finance`, {
      redirect: 'manual',
      headers: { cookie: `hospay_finance=${before.value}` },
    });
    assert.equal(replay.status, 303);
    assert.match(replay.headers.get('location') ?? '', /^\/finance\/login/);
    await page.goto(`${t.url}/finance`);
    assert.match(page.url(), /\/finance\/login/);
    assert.deepEqual(cspViolations, [], 'no Content-Security-Policy violation on any page');
  });
});
