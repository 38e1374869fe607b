import assert from 'node:assert/strict';
import type { TestPlatform } from './platform.js';
import { barcodeFields, authCode } from './platform.js';

/** Helpers of the access tests: operators with roles and grants, their tokens, pages over plain HTTP. */

export interface Answer {
  status: number;
  text: string;
  location: string | null;
  setCookies: string[];
  headers: Headers;
}

export async function request(
  url: string,
  opts: { method?: string; cookie?: string; form?: Record<string, string> } = {},
): Promise<Answer> {
  const res = await fetch(url, {
    method: opts.method ?? (opts.form ? 'POST' : 'GET'),
    redirect: 'manual',
    headers: {
      ...(opts.cookie ? { cookie: opts.cookie } : {}),
      ...(opts.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
    },
    ...(opts.form ? { body: new URLSearchParams(opts.form).toString() } : {}),
  });
  return {
    status: res.status,
    text: await res.text(),
    location: res.headers.get('location'),
    setCookies: res.headers.getSetCookie(),
    headers: res.headers,
  };
}

export function cookieValue(setCookies: string[], name: string, path?: string): string | null {
  for (const c of setCookies) {
    const [pair] = c.split(';');
    const i = pair?.indexOf('=') ?? -1;
    if (!pair || i <= 0 || pair.slice(0, i) !== name) continue;
    if (path !== undefined && !c.split(';').some((p) => p.trim() === `Path=${path}`)) continue;
    return pair.slice(i + 1);
  }
  return null;
}

export function csrfOf(html: string): string {
  const m = /name="csrf" value="([^"]+)"/.exec(html);
  assert.ok(m, `no CSRF field in:\n${html.slice(0, 500)}`);
  return m[1] ?? '';
}

/** Logs in on /finance/login; the answer and the session cookie ("hospay_finance=…") if any. */
export async function loginAs(
  base: string,
  username: string,
  password: string,
  next?: string,
): Promise<Answer & { session: string | null }> {
  const page = await request(`${base}/finance/login`);
  const pre = cookieValue(page.setCookies, 'hospay_finance_login');
  assert.ok(pre);
  const a = await request(`${base}/finance/login`, {
    cookie: `hospay_finance_login=${pre}`,
    form: { username, password, csrf: csrfOf(page.text), ...(next ? { next } : {}) },
  });
  const token = cookieValue(a.setCookies, 'hospay_finance', '/finance');
  return { ...a, session: token ? `hospay_finance=${token}` : null };
}

/** One admin API call with a Bearer token; status and JSON (or text) body. */
export async function api(
  base: string,
  token: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; data: Record<string, unknown> & unknown[]; text: string; headers: Headers }> {
  const send = () =>
    fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  // A kept-alive connection the server closed meanwhile (slow CLI steps between calls): once more, anew.
  const res = await send().catch(() => send());
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  return {
    status: res.status,
    data: data as Record<string, unknown> & unknown[],
    text,
    headers: res.headers,
  };
}

export const PASSWORD = 'access test password 1';

/** Creates an operator through the admin API (admin token) and a personal token for them; returns the token. */
export async function operatorWithToken(
  t: TestPlatform,
  username: string,
  role: string,
  apps: 'all' | string[],
  tokenOpts: { expires_in_days?: number } = {},
): Promise<string> {
  const c = await t.admin('POST', '/admin/operators', {
    username,
    display_name: `测试 ${username}`,
    password: PASSWORD,
    role,
    apps,
  });
  assert.equal(c.status, 201, JSON.stringify(c.data));
  const k = await t.admin('POST', `/admin/operators/${username}/tokens`, { label: 'test', ...tokenOpts });
  assert.equal(k.status, 201, JSON.stringify(k.data));
  const token = k.data['token'];
  assert.equal(typeof token, 'string');
  return token as string;
}

/** A second hospital (app) with a paid barcode trade and a notification row for it. */
export async function hospitalWithData(
  t: TestPlatform,
  name: string,
): Promise<{ appId: string; accessToken: string; outTradeNo: string; notifyId: string }> {
  const created = await t.platform.deps.apps.create({ name, hospitalId: null });
  const f = barcodeFields({ AuthCode: authCode('00', 'alipay'), TotalAmount: '12.34' });
  const a = await t.offline('FWC_IF_Barcode_Pay', f, { token: created.accessToken });
  assert.equal(a.rr.IsSuccess, '1', a.text);
  const outTradeNo = f.OutTradeNo ?? '';
  const trade = await t.platform.deps.trades.byOutTradeNo(created.appId, outTradeNo);
  assert.ok(trade);
  const notifyId = `N${created.appId}${Date.now()}`;
  // SQL on purpose: a notification row as the outbox would hold it (the notifier is off in tests).
  await t.store.db
    .insertInto('notifications')
    .values({
      notify_id: notifyId,
      app_id: created.appId,
      trade_id: trade.id,
      url: 'http://127.0.0.1:9/notify',
      trade_status: 'TRADE_SUCCESS',
      status: 'FAILED',
      next_attempt_at: t.clock.now(),
      created_at: t.clock.now(),
    })
    .execute();
  return { appId: created.appId, accessToken: created.accessToken, outTradeNo, notifyId };
}

/** A difference row of an app as a run would store it (SQL on purpose: no day needs to be run). */
export async function insertDifference(t: TestPlatform, appId: string, outTradeNo: string): Promise<number> {
  const now = t.clock.now();
  const row = await t.store.db
    .insertInto('recon_differences')
    .values({
      app_id: appId,
      business_date: '2026-11-24',
      pay_type: 'alipay',
      diff_key: `HIS_MISSING|payment|${outTradeNo}||platform|${Math.random()}`,
      code: 'HIS_MISSING',
      kind: 'payment',
      out_trade_no: outTradeNo,
      out_request_no: null,
      detail: JSON.stringify({
        code: 'HIS_MISSING',
        label: { zh: '长款（已收款，HIS无记录）', en: 'Overage: money taken, no HIS record' },
        kind: 'payment',
        outTradeNo,
        side: 'platform',
        amounts: { platform: 1234 },
        time: '2026-11-24T03:00:00.000Z',
      }),
      created_at: now,
      updated_at: now,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return row.id;
}
