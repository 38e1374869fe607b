import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import { adminDeskUser, browserSkip, launchHeadless, type AdminDeskUser } from '../support/desk-admin.js';

const SHOTS = '/tmp/shots';

/**
 * The platform admin's pages in a real browser (headless Chromium): creating an app shows its AccessToken once
 * (a reload or the back button never shows it again), the pages keep to their CSP, fit a phone, and are
 * photographed at 390×844 and 1366×900 into /tmp/shots/.
 */
describe('desk admin pages in a real browser', { skip: browserSkip }, () => {
  let t: TestPlatform;
  let browser: Browser;
  let admin: AdminDeskUser;
  let it1: AdminDeskUser;
  const cspViolations: string[] = [];

  before(async () => {
    t = await startTestPlatform();
    // A second hospital on Alipay (configured, secrets sealed): the channels page shows its fields.
    const second = await t.platform.deps.apps.create({ name: '第二人民医院', hospitalId: 'H002' });
    const rsa = () => generateKeyPairSync('rsa', { modulusLength: 2048 });
    await t.platform.deps.channelConfigs.set(second.appId, 'alipay', {
      app_id: '2021000000000088',
      private_key: rsa().privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      alipay_public_key: rsa().publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    });
    await t.platform.deps.apps.setChannelMap(second.appId, { alipay: 'alipay' });
    admin = await adminDeskUser(t, 'plat.wang', 'platform_admin', 'all');
    it1 = await adminDeskUser(t, 'it.zhao', 'hospital_it', [t.appId]);
    await t.platform.deps.operators.create({
      username: 'fin.zhang',
      displayName: '张会计',
      password: 'finance-pw-0123456789',
      role: 'finance',
      apps: [t.appId],
    });
    browser = await launchHeadless();
    fs.mkdirSync(SHOTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  async function pageAs(
    user: AdminDeskUser,
    viewport: { width: number; height: number },
  ): Promise<{ context: BrowserContext; page: Page }> {
    const context = await browser.newContext({ viewport, locale: 'zh-CN' });
    const host = new URL(t.url).hostname;
    await context.addCookies([{ name: 'hospay_finance', value: user.session, domain: host, path: '/' }]);
    const page = await context.newPage();
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
    });
    return { context, page };
  }

  const door = async (token: string) =>
    (await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: 'MZNOSUCHORDER2' }, { token })).rr.SubCode;

  it('creates an app: the token is shown once; reload and back never show it again', async () => {
    const { context, page } = await pageAs(admin, { width: 1366, height: 900 });
    await page.goto(`${t.url}/desk/apps`);
    await page.fill('#app-name', '浏览器新建医院');
    await page.fill('#app-hospital', 'H777');
    await Promise.all([page.waitForLoadState('load'), page.click('#create-app-submit')]);
    const token = (await page.textContent('#secret-once'))?.trim() ?? '';
    assert.ok(token.length > 20, await page.content());
    assert.notEqual(await door(token), 'ACCESS_TOKEN_INVALID');
    await page.screenshot({ path: `${SHOTS}/desk-app-created-1366.png`, fullPage: true });
    // A reload re-sends the form: nothing new is created and no token is shown.
    await page.reload().catch(() => undefined);
    const reloaded = (await page.content()) ?? '';
    assert.ok(!reloaded.includes(token), 'a reload showed the token again');
    await page.goto(`${t.url}/desk/apps`);
    await page.goBack().catch(() => undefined);
    assert.ok(!(await page.content()).includes(token), 'back showed the token again');
    assert.equal((await t.platform.deps.apps.list()).filter((a) => a.name === '浏览器新建医院').length, 1);
    await context.close();
  });

  it('registers a key, disables the app in the browser; the door refuses its token', async () => {
    const { context, page } = await pageAs(admin, { width: 1366, height: 900 });
    const created = await t.platform.deps.apps.create({ name: '浏览器停用医院', hospitalId: 'H778' });
    await page.goto(`${t.url}/desk/apps/${created.appId}`);
    const pem = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    await page.fill('#public-key', pem);
    await Promise.all([page.waitForURL(/done=key/), page.click('#public-key-submit')]);
    assert.match((await page.textContent('#flash')) ?? '', /网关公钥已登记/);
    assert.match((await page.textContent('#app-facts')) ?? '', /已登记 registered/);
    await Promise.all([page.waitForURL(/done=disabled/), page.click('#disable-app')]);
    assert.equal(await door(created.accessToken), 'ACCESS_TOKEN_INVALID');
    await context.close();
  });

  for (const viewport of [
    { width: 390, height: 844 },
    { width: 1366, height: 900 },
  ]) {
    it(`screenshots at ${viewport.width}×${viewport.height}: pages fit and keep to their CSP`, async () => {
      const { context, page } = await pageAs(admin, viewport);
      const pages: Array<[string, string]> = [
        ['apps', '/desk/apps'],
        ['app', `/desk/apps/${t.appId}`],
        ['channels', '/desk/channels'],
        ['operators', '/desk/operators'],
      ];
      for (const [name, path] of pages) {
        const r = await page.goto(`${t.url}${path}`);
        assert.equal(r?.status(), 200, `${path}: ${r?.status()}`);
        await page.screenshot({ path: `${SHOTS}/desk-${name}-${viewport.width}.png`, fullPage: true });
        assert.ok(!(await page.content()).includes('PRIVATE KEY'), `${path} shows a private key`);
        const overflow = await page.evaluate<number>(
          'document.documentElement.scrollWidth - document.documentElement.clientWidth',
        );
        assert.ok(overflow <= 1, `${path} overflows the ${viewport.width} px viewport by ${overflow} px`);
      }
      await context.close();
      const it = await pageAs(it1, viewport);
      const r = await it.page.goto(`${t.url}/desk/channels`);
      assert.equal(r?.status(), 200);
      await it.page.screenshot({ path: `${SHOTS}/desk-channels-it-${viewport.width}.png`, fullPage: true });
      assert.equal(await it.page.locator('.map-form').count(), 0);
      assert.equal(await it.page.locator('.app-channels').count(), 1);
      await it.context.close();
      assert.deepEqual(cspViolations, []);
    });
  }
});
