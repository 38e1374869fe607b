import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { orderNo, qrFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';
import { postForm } from '../support/payer.js';

const CHROMIUM = process.env['HOSPAY_CHROMIUM'] ?? '/usr/bin/chromium';
const skip =
  !fs.existsSync(CHROMIUM) && process.env['CI'] !== 'true'
    ? `no Chromium at ${CHROMIUM} (apt-get install chromium)`
    : false;
const WIDTHS = [360, 390, 414] as const;
const SHOTS = '/tmp/hospay-pages-fit';

/**
 * Issue 12 §5: every page a patient sees fits a phone 360–414 px wide without scrolling sideways (long channel
 * trade numbers and tokens wrap). Screenshots are saved under /tmp/hospay-pages-fit for a person to look at.
 */
describe('patient pages fit a phone screen (headless Chromium)', { skip }, () => {
  let t: TestPlatform;
  let browser: Browser;
  const cspViolations: string[] = [];
  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    await t.platform.deps.apps.setRedirectUris(t.appId, ['https://his.example.cn/mi/']);
    fs.mkdirSync(SHOTS, { recursive: true });
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
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  /** Opens `url` at `width` as a phone does; screenshots it; the elements sticking out on the right. */
  async function measure(
    name: string,
    url: string,
    width: number,
    act?: (p: Page) => Promise<void>,
  ): Promise<{ scrollWidth: number; phoneWidth: number; sticking: string[]; text: string }> {
    const ctx = await browser.newContext({
      viewport: { width, height: 780 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    });
    const p = await ctx.newPage();
    p.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) cspViolations.push(`${name}: ${m.text()}`);
    });
    try {
      await p.goto(url);
      if (act) await act(p);
      await p.screenshot({ path: `${SHOTS}/${name}-${width}.png`, fullPage: true });
      // The phone's width, not innerWidth: a phone browser zooms out to show a page wider than the screen,
      // and innerWidth grows with it.
      const r = await p.evaluate(`(() => {
        const w = ${width};
        const sticking = [...document.querySelectorAll('body *')]
          .filter((e) => e.getBoundingClientRect().right > w + 0.5)
          .map((e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + ': ' + (e.textContent || '').slice(0, 40));
        return { scrollWidth: Math.max(document.scrollingElement.scrollWidth, window.innerWidth), phoneWidth: w, sticking, text: document.body.innerText };
      })()`);
      return r as { scrollWidth: number; phoneWidth: number; sticking: string[]; text: string };
    } finally {
      await ctx.close();
    }
  }

  /** The patient pages, each as a URL to open, made through the real doors (those after a click: below). */
  async function patientPages(): Promise<Array<{ name: string; url: string; expect: RegExp }>> {
    const pages: Array<{ name: string; url: string; expect: RegExp }> = [];
    // Aggregated QR: the cashier page offering every pay type.
    const agg = await t.offline(
      'FWC_IF_Qrcode_Pay',
      qrFields({ Caption: '门诊缴费：血常规、尿常规、肝功能检查' }),
    );
    pages.push({ name: 'cashier-choose', url: agg.result.TwoDimensionCode ?? '', expect: /医院收银台/ });
    // The simulator's payer page for each channel (the longest channel trade numbers).
    for (const payType of ['alipay', 'weixin', 'unionpay']) {
      const qr = await t.offline('FWC_IF_Qrcode_Pay', qrFields({ PayType: payType }));
      const url = qr.result.TwoDimensionCode ?? '';
      pages.push({ name: `simulator-payer-${payType}`, url, expect: /模拟收银台/ });
    }
    // H5: the goto page, and the result page after paying (no return_url: hospay shows the result).
    const h5 = async () => {
      const a = await gateway(t, 'lc.trade.h5.pay', {
        out_trade_no: orderNo('MZ'),
        total_amount: '1234567.89',
        subject: '住院预交金（长标题：心血管内科二病区 3 床）',
        order_type: 'HOSPITALIZATION',
      });
      assert.equal(a.json.code, '10000', a.raw);
      return String(a.biz['goto_url']);
    };
    pages.push({ name: 'goto-choose', url: await h5(), expect: /1234567\.89/ });
    const paidGoto = await h5();
    const chosen = await postForm(paidGoto, 'pay_type=unionpay');
    const payer = chosen.headers.get('location') ?? '';
    pages.push({ name: 'goto-simulator-payer', url: payer, expect: /云闪付/ });
    const back = (await postForm(payer, 'action=pay')).headers.get('location') ?? '';
    pages.push({ name: 'goto-result', url: back, expect: /已支付/ });
    pages.push({ name: 'cashier-paid', url: paidGoto, expect: /已支付/ });
    // Medical insurance: the consent page, the e-voucher, an error page.
    const consentPage = async (openId: string) => {
      const q = new URLSearchParams({
        app_id: t.appId,
        open_id: openId,
        state: 'st',
        redirect_uri: 'https://his.example.cn/mi/callback',
      });
      const start = await fetch(`${t.url}/oauth2/medicareAuth?${q.toString()}`, { redirect: 'manual' });
      return start.headers.get('location') ?? '';
    };
    // One authorisation stays pending (its page is measured); another is granted for the e-voucher.
    pages.push({ name: 'medicare-consent', url: await consentPage('2088000000000776'), expect: /同意授权/ });
    const consent = await consentPage('2088000000000777');
    const consentHtml = await (await fetch(consent)).text();
    const action = /action="([^"]+)"/.exec(consentHtml)?.[1] ?? '';
    const decided = await postForm(`${t.url}${action}`, 'decision=grant');
    const authCode = new URL(decided.headers.get('location') ?? '').searchParams.get('auth_code') ?? '';
    const tok = await gateway(t, 'lc.ssc.user.token', {
      user_id: '2088000000000777',
      payment_type: 'alipay',
      auth_code: authCode,
      patient_name: '王医保',
      patient_card_no: '44010519800101123X',
      biz_city_code: '440100',
      ssc_ins_type: 'YB',
    });
    pages.push({ name: 'medicare-e-voucher', url: String(tok.biz['qr_code']), expect: /医保电子凭证/ });
    pages.push({
      name: 'medicare-error',
      url: `${t.url}/oauth2/medicareAuth?app_id=${t.appId}&open_id=x&redirect_uri=https%3A%2F%2Fevil.example.com%2Fa-very-long-path-that-does-not-wrap-by-itself-0123456789`,
      expect: /医保授权失败/,
    });
    pages.push({
      name: 'cashier-unknown',
      url: `${t.url}/cashier/qr/AAAAAAAAAAAAAAAAAAAAAAAA`,
      expect: /订单不存在/,
    });
    pages.push({ name: 'landing', url: `${t.url}/`, expect: /hospay/ });
    return pages;
  }

  it('cashier, goto, simulator payer, consent, e-voucher and result pages: no sideways scrolling at 360, 390 and 414 px', async () => {
    const pages = await patientPages();
    const problems: string[] = [];
    for (const pg of pages) {
      for (const width of WIDTHS) {
        const m = await measure(pg.name, pg.url, width);
        assert.match(m.text, pg.expect, `${pg.name} at ${width}px shows the page`);
        if (m.scrollWidth > m.phoneWidth || m.sticking.length)
          problems.push(
            `${pg.name} at ${width}px: scrollWidth ${m.scrollWidth} > ${m.phoneWidth}; ${m.sticking.join(' | ')}`,
          );
      }
    }
    assert.deepEqual(problems, [], `pages wider than the phone (screenshots in ${SHOTS})`);
    assert.deepEqual(cspViolations, [], 'the style block applies under the CSP');
  });

  it('the payer page after paying or abandoning fits too', async () => {
    const problems: string[] = [];
    for (const width of WIDTHS) {
      for (const action of ['pay', 'abandon'] as const) {
        const qr = await t.offline('FWC_IF_Qrcode_Pay', qrFields({ PayType: 'alipay' }));
        const m = await measure(
          `simulator-payer-${action}`,
          qr.result.TwoDimensionCode ?? '',
          width,
          async (p) => {
            await p.click(`#${action}`);
            await p.waitForSelector('#status');
          },
        );
        if (m.scrollWidth > m.phoneWidth || m.sticking.length)
          problems.push(
            `${action} at ${width}px: ${m.scrollWidth} > ${m.phoneWidth}; ${m.sticking.join(' | ')}`,
          );
      }
    }
    assert.deepEqual(problems, []);
  });

  it('and on a desktop the pages keep their width (screenshots at 1280 px)', async () => {
    const qr = await t.offline('FWC_IF_Qrcode_Pay', qrFields({ PayType: 'unionpay' }));
    const m = await measure('simulator-payer-desktop', qr.result.TwoDimensionCode ?? '', 1280);
    assert.ok(m.scrollWidth <= m.phoneWidth);
    const card = await (async () => {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      const p = await ctx.newPage();
      await p.goto(qr.result.TwoDimensionCode ?? '');
      const w = await p.evaluate(`document.querySelector('.card').getBoundingClientRect().width`);
      await ctx.close();
      return w as number;
    })();
    assert.ok(card > 600 && card <= 760, `the card keeps its desktop width (${card})`);
  });
});
