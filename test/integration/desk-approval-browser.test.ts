import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import { chromiumSkip, launchChromium, makeOperator } from '../support/desk.js';
import {
  browserDeskLogin,
  paidTrade,
  refundsAtChannel,
  requestsOf,
  tradePath,
} from '../support/desk-actions.js';

const SHOTS = '/tmp/shots';

/**
 * The "done when": a refund requested by a cashier supervisor and approved by finance, in a real browser
 * (two contexts: two people), ending with the trade page showing the refund and the audit entries.
 */
describe(
  'a refund requested at the desk and approved by someone else (headless Chromium)',
  { skip: chromiumSkip },
  () => {
    let t: TestPlatform;
    let browser: Browser;
    let supCtx: BrowserContext;
    let finCtx: BrowserContext;
    const cspViolations: string[] = [];

    before(async () => {
      t = await startTestPlatform();
      const supPw = await makeOperator(t, {
        username: 'sup.li',
        role: 'cashier_supervisor',
        apps: [t.appId],
        displayName: '李主管',
      });
      const finPw = await makeOperator(t, {
        username: 'fin.wang',
        role: 'finance',
        apps: [t.appId],
        displayName: '王会计',
      });
      browser = await launchChromium();
      supCtx = await browser.newContext({ viewport: { width: 1366, height: 900 } });
      finCtx = await browser.newContext({ viewport: { width: 1366, height: 900 } });
      await browserDeskLogin(supCtx, t.url, 'sup.li', supPw);
      await browserDeskLogin(finCtx, t.url, 'fin.wang', finPw);
      fs.mkdirSync(SHOTS, { recursive: true });
    });
    after(async () => {
      await browser?.close();
      await t?.close();
    });

    async function open(ctx: BrowserContext, path: string): Promise<Page> {
      const page = await ctx.newPage();
      page.on('console', (m) => {
        if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
      });
      const res = await page.goto(`${t.url}${path}`);
      assert.equal(res?.status(), 200, `${path}: ${res?.status()}`);
      return page;
    }

    async function shoot(page: Page, name: string): Promise<void> {
      for (const [w, h] of [
        [390, 844],
        [1366, 900],
      ] as const) {
        await page.setViewportSize({ width: w, height: h });
        await page.screenshot({ path: `${SHOTS}/${name}-${w}x${h}.png`, fullPage: true });
        const overflow = await page.evaluate<number>(
          'document.documentElement.scrollWidth - document.documentElement.clientWidth',
        );
        assert.ok(overflow <= 1, `${name} at ${w}px scrolls sideways by ${overflow}px`);
      }
      await page.setViewportSize({ width: 1366, height: 900 });
    }

    it('supervisor asks, finance approves, the trade page shows the refund and the audit trail', async () => {
      const no = await paidTrade(t, '88.00');

      // The supervisor opens the trade and asks for a refund of 20.50.
      const sup = await open(supCtx, tradePath(t, no));
      await sup.waitForSelector('#refund-form');
      assert.match((await sup.textContent('#approval-note')) ?? '', /second person/);
      await shoot(sup, 'desk-action-panel');
      await sup.fill('#refund-form input[name=amount]', '20.50');
      await sup.fill('#refund-form textarea[name=reason]', '检查项目取消');
      await Promise.all([sup.waitForLoadState('load'), sup.click('#act-refund')]);
      assert.ok(sup.url().includes(tradePath(t, no)), sup.url());
      const [req] = await requestsOf(t, no);
      assert.ok(req);
      assert.equal(req.status, 'PENDING');
      assert.equal(req.amount_fen, 2050);
      // On the trade page the request shows as waiting for someone else; a reload re-submits nothing.
      await sup.waitForSelector(`#request-${req.id}`);
      assert.match((await sup.textContent(`#request-${req.id}`)) ?? '', /waiting for someone else/);
      await sup.reload();
      assert.equal((await requestsOf(t, no)).length, 1);

      // The supervisor's approvals page: waiting, no approve button.
      const supApprovals = await open(supCtx, '/desk/approvals');
      assert.equal(await supApprovals.locator(`#approve-${req.id}`).count(), 0);
      assert.match((await supApprovals.textContent(`#request-${req.id}`)) ?? '', /waiting for someone else/);

      // Finance approves on the approvals page.
      const fin = await open(finCtx, '/desk/approvals');
      await fin.waitForSelector(`#approve-${req.id}`);
      await shoot(fin, 'desk-approvals');
      await Promise.all([fin.waitForLoadState('load'), fin.click(`#approve-${req.id}`)]);
      assert.match(fin.url(), /\/desk\/approvals\?m=refund_done/);
      assert.match((await fin.textContent('#flash')) ?? '', /退款成功/);
      assert.equal(await fin.locator(`#request-${req.id}`).count(), 0, 'no longer waiting');
      // The back button and a second click do not refund twice.
      await fin.goBack();
      await fin.reload();
      assert.deepEqual(await refundsAtChannel(t, no), { count: 1, sumFen: -2050 });

      // The trade page: the refund, the request DONE, and the audit entries of both people.
      const trade = await open(finCtx, tradePath(t, no));
      const text = (await trade.textContent('body')) ?? '';
      assert.match(text, /20\.50/);
      assert.equal(await trade.getAttribute(`#request-${req.id}`, 'data-status'), 'DONE');
      for (const a of ['refund.request', 'refund.approve', 'refund.execute'])
        assert.ok(text.includes(a), `${a} on the trade page`);
      assert.ok(text.includes('sup.li') && text.includes('fin.wang'));
      await shoot(trade, 'desk-trade-after-refund');
      const t2 = await t.trade(no);
      assert.equal(t2.refunded_fen, 2050);
      assert.deepEqual(cspViolations, []);
    });
  },
);
