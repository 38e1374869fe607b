import assert from 'node:assert/strict';
import { gateway, type GatewayAnswer, type GatewayTarget } from './gateway.js';
import { postForm } from './payer.js';
import { orderNo } from './platform.js';

/** Where the test HIS takes the patient back after the authorisation (the test app allows https://his.example.cn/mi/). */
export const MI_CALLBACK = 'https://his.example.cn/mi/callback';

/**
 * The patient's side of the medical-insurance authorisation (spec 6.4): the start, the consent page, the decision.
 * Returns the URL the patient is sent back to at the HIS (with auth_code when granted).
 */
export async function authoriseMedicare(
  t: { url: string; appId: string },
  openId: string,
  o: { decision?: 'grant' | 'decline'; state?: string; redirectUri?: string } = {},
): Promise<URL> {
  const q = new URLSearchParams({
    app_id: t.appId,
    open_id: openId,
    state: o.state ?? 's',
    redirect_uri: o.redirectUri ?? MI_CALLBACK,
  });
  const start = await fetch(`${t.url}/oauth2/medicareAuth?${q.toString()}`, { redirect: 'manual' });
  assert.equal(start.status, 302);
  const html = await (await fetch(start.headers.get('location') ?? '')).text();
  assert.match(html, /同意授权/);
  const action = /action="([^"]+)"/.exec(html)?.[1] ?? '';
  const decided = await postForm(`${t.url}${action}`, `decision=${o.decision ?? 'grant'}`);
  assert.equal(decided.status, 302);
  return new URL(decided.headers.get('location') ?? '');
}

/** lc.ssc.user.token (spec 6.5): the HIS exchanges the patient's auth_code for a pay_auth_no. */
export function userToken(
  t: GatewayTarget,
  openId: string,
  authCode: string,
  over: Record<string, unknown> = {},
): Promise<GatewayAnswer> {
  return gateway(t, 'lc.ssc.user.token', {
    user_id: openId,
    payment_type: 'alipay',
    auth_code: authCode,
    patient_name: '王医保',
    patient_card_no: '44010519800101123X',
    biz_city_code: '440100',
    ssc_ins_type: 'YB',
    ...over,
  });
}

/** The patient grants the authorisation and the HIS gets the pay_auth_no for it (spec 6.4, 6.5). */
export async function payAuthNo(
  t: GatewayTarget,
  openId: string,
  o: { state?: string; redirectUri?: string; token?: Record<string, unknown> } = {},
): Promise<string> {
  const back = await authoriseMedicare(t, openId, { ...o, decision: 'grant' });
  const tok = await userToken(t, openId, back.searchParams.get('auth_code') ?? '', o.token);
  assert.equal(tok.json.code, '10000', tok.raw);
  return String(tok.biz['pay_auth_no']);
}

/**
 * An lc.ssc.trade.pay request (spec 6.6) of the test hospital: 100.00 in all, 60.00 by medical insurance and
 * 40.00 in cash on the patient's Alipay; `over` changes or adds fields.
 */
export function sscPayBiz(
  openId: string,
  payAuthNo: string,
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    out_trade_no: orderNo('MZ'),
    ssc_scene: 'TREATMENT',
    subject: '门诊医保缴费',
    notify_url: 'https://his.example.cn/mi/notify',
    return_url: 'https://his.example.cn/mi/return',
    total_amount: '100.00',
    cash_fee: '40.00',
    insurance_fee: '60.00',
    reduced_fee: '0',
    payment_type: 'alipay',
    user_id: openId,
    patient_name: '王医保',
    patient_card_no: '44010519800101123X',
    org_name: '市第一人民医院',
    org_no: 'H44010100001',
    ssc_ins_type: 'YB',
    city_code: '440100',
    ssc_serial_no: 'SSC0001',
    pay_auth_no: payAuthNo,
    ...over,
  };
}
