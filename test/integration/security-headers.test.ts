import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { orderNo, qrFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';

/**
 * Every page a patient (or anyone) opens answers with the security headers (issue 11, B): never framed
 * (X-Frame-Options DENY and CSP frame-ancestors 'none'), a CSP without script that allows exactly the page's own
 * style block, nosniff, and no Referer carrying the capability in the URL (cashier and goto tokens,
 * authorisation ids, simulator trade numbers). The pages' inline style must match the CSP's hash.
 */

interface Fetched {
  url: string;
  status: number;
  headers: Headers;
  text: string;
}

async function get(url: string, init: RequestInit = {}): Promise<Fetched> {
  const res = await fetch(url, { redirect: 'manual', ...init });
  return { url, status: res.status, headers: res.headers, text: await res.text() };
}

function post(url: string, form: Record<string, string>): Promise<Fetched> {
  return get(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });
}

/** The headers every page answer carries; `referrer` is the policy expected. */
function assertPageHeaders(a: Fetched, referrer: 'no-referrer' | 'same-origin' = 'no-referrer'): void {
  const what = `${a.status} ${a.url}`;
  assert.equal(a.headers.get('x-frame-options'), 'DENY', what);
  assert.equal(a.headers.get('x-content-type-options'), 'nosniff', what);
  assert.equal(a.headers.get('referrer-policy'), referrer, what);
  const csp = a.headers.get('content-security-policy') ?? '';
  assert.match(csp, /(^|; )frame-ancestors 'none'(;|$)/, what);
  assert.match(csp, /(^|; )default-src 'none'(;|$)/, what);
  assert.match(csp, /(^|; )base-uri 'none'(;|$)/, what);
  assert.doesNotMatch(csp, /unsafe|script-src|\*/, what);
  // An HTML body's inline style is the one the CSP allows (so the browser applies it); there is no script.
  if ((a.headers.get('content-type') ?? '').startsWith('text/html') && a.text) {
    assert.doesNotMatch(a.text, /<script/i, what);
    for (const m of a.text.matchAll(/<style>([\s\S]*?)<\/style>/g)) {
      const hash = createHash('sha256')
        .update(m[1] ?? '', 'utf8')
        .digest('base64');
      assert.ok(csp.includes(`'sha256-${hash}'`), `${what}: the page's style block is allowed by its hash`);
    }
    assert.doesNotMatch(a.text, /style="/, `${what}: no inline style attribute (the CSP would block it)`);
  }
}

describe('security headers on every page', () => {
  let t: TestPlatform;

  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    await t.platform.deps.apps.setRedirectUris(t.appId, ['https://his.example.cn/mi/']);
  });
  after(async () => {
    await t?.close();
  });

  it('the landing page', async () => {
    const landing = await get(`${t.url}/`);
    assert.equal(landing.status, 200);
    assertPageHeaders(landing);
  });

  it('the cashier (aggregated QR code), its choice, its 404, and the simulator payer page it leads to', async () => {
    const a = await t.offline('FWC_IF_Qrcode_Pay', qrFields());
    assert.equal(a.rr.IsSuccess, '1', a.text);
    const cashier = a.result.TwoDimensionCode ?? '';
    assert.match(cashier, /\/cashier\/qr\//);
    const page = await get(cashier);
    assert.equal(page.status, 200);
    assert.match(page.text, /医院收银台/);
    assertPageHeaders(page);
    const chosen = await post(cashier, { pay_type: 'alipay' });
    assert.equal(chosen.status, 302);
    assertPageHeaders(chosen);
    const payer = await get(new URL(chosen.headers.get('location') ?? '', t.url).toString());
    assert.equal(payer.status, 200);
    assert.match(payer.text, /模拟收银台/);
    assertPageHeaders(payer);
    const paid = await post(payer.url, { action: 'pay' });
    assert.equal(paid.status, 200);
    assertPageHeaders(paid);
    const missing = await get(`${t.url}/simulator/pay/0000000000000`);
    assert.equal(missing.status, 404);
    assertPageHeaders(missing);
    const unknown = await get(`${t.url}/cashier/qr/unknown-token-0000`);
    assert.equal(unknown.status, 404);
    assertPageHeaders(unknown);
  });

  it('the H5 goto page and its return', async () => {
    const h5 = await gateway(t, 'lc.trade.h5.pay', {
      out_trade_no: orderNo('MZ'),
      total_amount: 12.5,
      subject: '挂号费',
      return_url: 'https://his.example.cn/pay/return',
      order_type: 'APPOINTMENT',
    });
    assert.equal(h5.json.code, '10000', h5.raw);
    const gotoUrl = String(h5.biz['goto_url']);
    assert.match(gotoUrl, /\/goto\//);
    const page = await get(gotoUrl);
    assert.equal(page.status, 200);
    assertPageHeaders(page);
    const back = await get(`${gotoUrl}/return`);
    assertPageHeaders(back);
  });

  it('medical-insurance authorisation: the start, the simulated consent page, the decision, errors, the e-voucher', async () => {
    const q = new URLSearchParams({
      app_id: t.appId,
      open_id: '2088000000001234',
      state: 's1',
      redirect_uri: 'https://his.example.cn/mi/callback',
    });
    const start = await get(`${t.url}/oauth2/medicareAuth?${q.toString()}`);
    assert.equal(start.status, 302);
    assertPageHeaders(start);
    const consent = await get(start.headers.get('location') ?? '');
    assert.equal(consent.status, 200);
    assert.match(consent.text, /同意授权/);
    assertPageHeaders(consent);
    const action = /action="([^"]+)"/.exec(consent.text)?.[1] ?? '';
    const decided = await post(`${t.url}${action}`, { decision: 'grant' });
    assert.equal(decided.status, 302);
    assertPageHeaders(decided);
    const bad = await get(`${t.url}/oauth2/medicareAuth`);
    assert.equal(bad.status, 400);
    assertPageHeaders(bad);
    const voucher = await get(`${t.url}/simulator/medicare/qr/AUTH4401002026112500000001`);
    assert.equal(voucher.status, 200);
    assertPageHeaders(voucher);
  });

  it('the finance login page keeps its own (stricter) headers', async () => {
    const login = await get(`${t.url}/finance/login`);
    assert.equal(login.status, 200);
    assertPageHeaders(login, 'same-origin');
    assert.match(login.headers.get('content-security-policy') ?? '', /form-action 'self'/);
    assert.equal(login.headers.get('cache-control'), 'no-store');
  });
});
