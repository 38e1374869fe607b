import fs from 'node:fs';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import type { Role } from '../../src/domain/access.js';
import { OperatorRepository } from '../../src/store/operators.js';
import { NotifyJob } from '../../src/jobs/notifier.js';
import { barcodeFields, qrFields, type TestPlatform } from './platform.js';

/**
 * The desk (/desk) from a test: operators with a role and hospital grants, an HTTP session cookie (through the
 * real login form, or made directly), and a headless Chromium logged in. Shared by the desk's tests.
 */

export const CHROMIUM = process.env['HOSPAY_CHROMIUM'] ?? '/usr/bin/chromium';
/** A browser test's `skip` option: the reason when there is no Chromium (and not on CI), else false. */
export const chromiumSkip: string | false =
  !fs.existsSync(CHROMIUM) && process.env['CI'] !== 'true'
    ? `no Chromium at ${CHROMIUM} (apt-get install chromium)`
    : false;

export const DEFAULT_PASSWORD = 'desk-test-password-1';

export interface MakeOperator {
  username: string;
  role: Role;
  /** 'all' or the app ids granted. */
  apps: 'all' | readonly string[];
  displayName?: string;
  password?: string;
}

/**
 * Creates an active operator with a role and grants (written straight to the tables, whatever the operators'
 * API looks like); returns the password.
 */
export async function makeOperator(
  t: Pick<TestPlatform, 'store' | 'clock'>,
  o: MakeOperator,
): Promise<string> {
  const password = o.password ?? DEFAULT_PASSWORD;
  await new OperatorRepository(t.store.db, t.clock).create({
    username: o.username,
    displayName: o.displayName ?? o.username,
    password,
  });
  await t.store.db
    .updateTable('finance_operators')
    .set({ role: o.role, all_apps: o.apps === 'all' })
    .where('username', '=', o.username)
    .execute();
  await t.store.db.deleteFrom('operator_apps').where('username', '=', o.username).execute();
  if (o.apps !== 'all' && o.apps.length > 0)
    await t.store.db
      .insertInto('operator_apps')
      .values(o.apps.map((app_id) => ({ username: o.username, app_id, granted_at: t.clock.now() })))
      .execute();
  return password;
}

/** Creates another hospital (app) on the platform; its id and AccessToken. */
export async function makeApp(
  t: Pick<TestPlatform, 'platform'>,
  name: string,
): Promise<{ appId: string; token: string }> {
  const created = await t.platform.deps.apps.create({ name, hospitalId: `H-${name}` });
  return { appId: created.appId, token: created.accessToken };
}

function cookieValue(setCookies: readonly string[], name: string): string | null {
  for (const c of setCookies) {
    const [pair] = c.split(';');
    const i = pair?.indexOf('=') ?? -1;
    if (pair && i > 0 && pair.slice(0, i) === name && pair.length > i + 1) return pair.slice(i + 1);
  }
  return null;
}

/**
 * Logs in through the real login form (GET /finance/login, POST with its CSRF token); returns the session cookie
 * as a `Cookie` header value ("hospay_finance=…"). Throws when the login is refused.
 */
export async function loginCookie(baseUrl: string, username: string, password: string): Promise<string> {
  const page = await fetch(`${baseUrl}/finance/login`, { redirect: 'manual' });
  const html = await page.text();
  const pre = cookieValue(page.headers.getSetCookie(), 'hospay_finance_login');
  const csrf = /name="csrf" value="([^"]+)"/.exec(html)?.[1];
  if (!pre || !csrf) throw new Error('the login page gave no form token');
  const res = await fetch(`${baseUrl}/finance/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: {
      cookie: `hospay_finance_login=${pre}`,
      'content-type': 'application/x-www-form-urlencoded',
    },
    body: new URLSearchParams({ username, password, csrf }).toString(),
  });
  await res.text();
  const token = cookieValue(res.headers.getSetCookie(), 'hospay_finance');
  if (res.status !== 303 || !token) throw new Error(`login of ${username} refused: HTTP ${res.status}`);
  return `hospay_finance=${token}`;
}

/** A session made directly (no password hashing): the `Cookie` header value and its CSRF token. */
export async function sessionCookie(
  t: Pick<TestPlatform, 'platform'>,
  username: string,
): Promise<{ cookie: string; csrf: string }> {
  const s = await t.platform.deps.operators.createSession(username);
  return { cookie: `hospay_finance=${s.token}`, csrf: s.csrfToken };
}

export interface DeskAnswer {
  status: number;
  text: string;
  location: string | null;
  headers: Headers;
}

/** GET (or POST a form) with a session cookie, no redirect following. */
export async function deskRequest(
  url: string,
  cookie: string | null,
  form?: Record<string, string>,
): Promise<DeskAnswer> {
  const res = await fetch(url, {
    method: form ? 'POST' : 'GET',
    redirect: 'manual',
    headers: {
      ...(cookie ? { cookie } : {}),
      ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    ...(form ? { body: new URLSearchParams(form).toString() } : {}),
  });
  return {
    status: res.status,
    text: await res.text(),
    location: res.headers.get('location'),
    headers: res.headers,
  };
}

/** Headless Chromium (/usr/bin/chromium, or HOSPAY_CHROMIUM). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
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
}

/**
 * Logs a browser context in through the login form, then makes sure the session cookie also reaches /desk (the
 * login sets it for /finance and /desk; with only /finance it is copied, so the desk's tests do not depend on it).
 */
export async function browserLogin(
  context: BrowserContext,
  baseUrl: string,
  username: string,
  password: string,
): Promise<void> {
  const page = await context.newPage();
  await page.goto(`${baseUrl}/finance/login?next=%2Fdesk`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await Promise.all([page.waitForLoadState('load'), page.click('button[type=submit]')]);
  const cookies = await context.cookies(`${baseUrl}/finance`);
  const session = cookies.find((c) => c.name === 'hospay_finance');
  if (!session) throw new Error(`browser login of ${username} failed at ${page.url()}`);
  if (!(await context.cookies(`${baseUrl}/desk`)).some((c) => c.name === 'hospay_finance'))
    await context.addCookies([{ ...session, path: '/desk' }]);
  await page.close();
}

/** A paid barcode trade of an app (the test app unless `token` is given); its OutTradeNo and TradeNo. */
export async function paidBarcode(
  t: TestPlatform,
  over: Record<string, string | undefined> = {},
  token?: string,
): Promise<{ outTradeNo: string; tradeNo: string }> {
  const f = barcodeFields(over);
  const a = await t.offline('FWC_IF_Barcode_Pay', f, token ? { token } : {});
  if (a.rr.IsSuccess !== '1') throw new Error(`barcode pay failed: ${a.text}`);
  const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo }, token ? { token } : {});
  return { outTradeNo: f.OutTradeNo ?? '', tradeNo: q.result.TradeNo ?? '' };
}

/** Refunds part of a paid trade of the test app through the HIS door (FWC_IF_Barcode_Pay_Refund). */
export async function refundTrade(
  t: TestPlatform,
  outTradeNo: string,
  amount: string,
  outRequestNo: string,
): Promise<void> {
  const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: outTradeNo });
  const r = await t.offline('FWC_IF_Barcode_Pay_Refund', {
    TradeNo: q.result.TradeNo,
    RefundAmount: amount,
    OutRequestNo: outRequestNo,
    OutTradeNo: outTradeNo,
    TotalAmount: q.result.TotalAmount,
  });
  if (r.rr.IsSuccess !== '1') throw new Error(`refund failed: ${r.text}`);
}

/**
 * A QR trade of the test app paid on the payer page, whose notification to `notifyUrl` is then attempted on the
 * whole schedule (the fake clock moves ~40 hours): FAILED when the URL keeps failing. Its OutTradeNo.
 */
export async function paidQrWithNotifications(t: TestPlatform, notifyUrl: string): Promise<string> {
  const f = qrFields({ PayType: 'alipay', TotalAmount: '25.50' });
  const outTradeNo = f.OutTradeNo ?? '';
  const a = await t.offline('FWC_IF_Qrcode_Pay', f);
  if (a.rr.IsSuccess !== '1') throw new Error(`QR pay failed: ${a.text}`);
  await t.store.db
    .updateTable('trades')
    .set({ notify_url: notifyUrl })
    .where('app_id', '=', t.appId)
    .where('out_trade_no', '=', outTradeNo)
    .execute();
  const paid = await fetch(a.result.TwoDimensionCode ?? '', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ action: 'pay' }).toString(),
  });
  await paid.text();
  const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: outTradeNo });
  if (q.result.TradeStatus !== 'TRADE_SUCCESS') throw new Error(`QR trade not paid: ${q.text}`);
  const job = new NotifyJob(t.platform.deps);
  for (let i = 0; i < 12; i++) {
    const r = await job.tick();
    if (r.failed > 0 || r.delivered > 0) break;
    t.clock.advance(16 * 3_600_000);
  }
  return outTradeNo;
}
