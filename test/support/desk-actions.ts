import assert from 'node:assert/strict';
import type { Role } from '../../src/domain/access.js';
import { authCode, barcodeFields, type TestPlatform } from './platform.js';
import { channelLedger } from './books.js';

/** An operator of the desk with a role and hospitals, and a session (cookie + CSRF token) for HTTP requests. */
export interface DeskUser {
  username: string;
  password: string;
  cookie: string;
  csrf: string;
}

export async function deskUser(
  t: TestPlatform,
  username: string,
  role: Role,
  apps: 'all' | string[],
): Promise<DeskUser> {
  const password = `pw-${username}-0123456789`;
  await t.platform.deps.operators.create({ username, displayName: `测试 ${username}`, password, role, apps });
  const s = await t.platform.deps.operators.createSession(username);
  return { username, password, cookie: `hospay_finance=${s.token}`, csrf: s.csrfToken };
}

export interface PageAnswer {
  status: number;
  /** The Location of a redirect ('' if none). */
  location: string;
  text: string;
}

/** POSTs a desk form as the user (with the session's CSRF token unless `csrf` is given; null leaves it out). */
export async function deskPost(
  t: TestPlatform,
  user: DeskUser,
  path: string,
  fields: Record<string, string> = {},
  csrf: string | null = user.csrf,
): Promise<PageAnswer> {
  const body = new URLSearchParams({ ...(csrf === null ? {} : { csrf }), ...fields });
  const res = await fetch(`${t.url}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: user.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: body.toString(),
  });
  return { status: res.status, location: res.headers.get('location') ?? '', text: await res.text() };
}

export async function deskGet(t: TestPlatform, user: DeskUser, path: string): Promise<PageAnswer> {
  const res = await fetch(`${t.url}${path}`, { redirect: 'manual', headers: { cookie: user.cookie } });
  return { status: res.status, location: res.headers.get('location') ?? '', text: await res.text() };
}

/** The outcome code (?m=) and error code (?c=) of an action's redirect. */
export function outcomeOf(a: PageAnswer): { m: string | null; c: string | null } {
  assert.equal(a.status, 303, `expected a 303, got ${a.status}: ${a.text.slice(0, 300)}`);
  const q = new URL(a.location, 'http://x').searchParams;
  return { m: q.get('m'), c: q.get('c') };
}

/** A fresh one-time form token, as the action panel renders it. */
let tokenSeq = 0;
export function formToken(): string {
  tokenSeq++;
  return `${Date.now().toString(16).toUpperCase().padStart(12, '0')}${tokenSeq.toString(16).toUpperCase().padStart(8, '0')}`.slice(
    -20,
  );
}

/** A barcode trade of the test app, paid; its order number. */
export async function paidTrade(t: TestPlatform, amount = '100.00'): Promise<string> {
  const f = barcodeFields({ TotalAmount: amount });
  const a = await t.offline('FWC_IF_Barcode_Pay', f);
  assert.equal(a.rr.IsSuccess, '1', a.text);
  return f.OutTradeNo ?? '';
}

/** A barcode trade left waiting (the patient never pays, or pays on the 2nd query with rule '01'). */
export async function waitingTrade(t: TestPlatform, rule = '02'): Promise<string> {
  const f = barcodeFields({ AuthCode: authCode(rule), Cnt: '0' });
  const a = await t.offline('FWC_IF_Barcode_Pay', f);
  assert.equal(a.result.TradeStatus, 'WAIT_BUYER_PAY', a.text);
  return f.OutTradeNo ?? '';
}

/** The simulated provider's refunds and reversals of an order number: how many, and their sum (fen, negative). */
export async function refundsAtChannel(
  t: TestPlatform,
  outTradeNo: string,
): Promise<{ count: number; sumFen: number }> {
  const back = (await channelLedger(t.store.db, outTradeNo)).filter((e) =>
    ['refund', 'reverse'].includes(e.entry),
  );
  return { count: back.length, sumFen: back.reduce((s, e) => s + e.amount_fen, 0) };
}

/** The desk requests of a trade of the test app, newest first. */
export async function requestsOf(t: TestPlatform, outTradeNo: string) {
  const trade = await t.trade(outTradeNo);
  return t.platform.deps.deskRequests.ofTrade(trade.id);
}

export function tradePath(t: TestPlatform, outTradeNo: string, action?: string, appId = t.appId): string {
  return `/desk/trades/${encodeURIComponent(appId)}/${encodeURIComponent(outTradeNo)}${action ? `/${action}` : ''}`;
}

/**
 * Logs a browser context in through the real login form (coming back to /desk) and checks that the session
 * cookie reaches the desk's paths.
 */
export async function browserDeskLogin(
  context: import('playwright-core').BrowserContext,
  baseUrl: string,
  username: string,
  password: string,
): Promise<void> {
  const page = await context.newPage();
  await page.goto(`${baseUrl}/finance/login?next=%2Fdesk`);
  await page.fill('#username', username);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL(/\/desk/), page.click('button[type=submit]')]);
  const cookies = await context.cookies(`${baseUrl}/desk/approvals`);
  if (!cookies.some((c) => c.name === 'hospay_finance'))
    throw new Error(`browser login of ${username} failed at ${page.url()}`);
  await page.close();
}
