import { randomBytes } from 'node:crypto';
import type { App, Trade } from '../store/schema.js';
import { Errors, HospayError, declined } from '../domain/errors.js';
import type { Fen } from '../domain/money.js';
import type { OrderType, PayType } from '../domain/trade.js';
import { channelFor, channelContext, medicareFor, type ServiceDeps } from './deps.js';
import { checkNotifyUrlFor, h5Pay } from './h5-pay.js';

/** An auth_code lives this long and is good once. */
export const AUTH_CODE_TTL_MS = 5 * 60_000;
/** A pay_auth_no lives this long and pays one trade. */
export const PAY_AUTH_TTL_MS = 30 * 60_000;

const bad = (code: string, zh: string, en: string) => new HospayError(code, 'business', zh, en);

/**
 * A redirect URI an app may register: an absolute http(s) URL with a host, and without userinfo, query or
 * fragment. Returns its normalised form (WHATWG URL: lower-case host, default port dropped, "/" for an empty
 * path), or null.
 */
export function normaliseRegisteredRedirect(text: string): string | null {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return null;
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') return null;
  if (u.hostname === '' || u.username !== '' || u.password !== '') return null;
  // "…/cb?" and "…/cb#" parse to an empty search/hash: the raw text tells.
  if (u.search !== '' || u.hash !== '' || /[?#]/.test(text)) return null;
  return u.href;
}

/**
 * Whether `uri` is one of the app's registered redirect URIs, compared as parsed URLs, never as text: scheme,
 * host and port exactly, no userinfo, and the path on a segment boundary (registered `/cb` allows `/cb` and
 * `/cb/x`, not `/cbx`; registered `/mi/` allows `/mi/x`). The requested URI may carry its own query.
 */
export function allowedRedirect(app: App, uri: string): boolean {
  let allowed: unknown;
  try {
    allowed = JSON.parse(app.redirect_uris);
  } catch {
    return false;
  }
  if (!Array.isArray(allowed)) return false;
  let u: URL;
  try {
    u = new URL(uri);
  } catch {
    return false;
  }
  if (u.username !== '' || u.password !== '') return false;
  return allowed.some((p) => {
    if (typeof p !== 'string') return false;
    let r: URL;
    try {
      r = new URL(p);
    } catch {
      return false;
    }
    if (r.username !== '' || r.password !== '') return false;
    if (r.protocol !== u.protocol || r.hostname !== u.hostname || r.port !== u.port) return false;
    const base = r.pathname;
    const path = u.pathname;
    return path === base || path.startsWith(base.endsWith('/') ? base : `${base}/`);
  });
}

/** Spec 6.4: the HIS sends the patient here; we check the request and send them on to consent. */
export async function startAuthorisation(
  deps: ServiceDeps,
  q: { appId: string; openId: string; state: string; redirectUri: string },
): Promise<{ consentUrl: string }> {
  const app = q.appId.length <= 64 ? await deps.apps.get(q.appId) : undefined;
  if (!app || app.status !== 'active') throw Errors.accessTokenInvalid();
  medicareFor(deps, app); // PAY_TYPE_NOT_ENABLED before anything is written
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(q.openId))
    throw Errors.invalidField('open_id', '须为 1～64 位字母数字', 'must be 1–64 letters or digits');
  if (q.state.length > 128) throw Errors.tooLong('state', 128);
  let u: URL;
  try {
    u = new URL(q.redirectUri);
  } catch {
    throw Errors.invalidField('redirect_uri', '须为完整的 http(s) 地址', 'must be an absolute http(s) URL');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:')
    throw Errors.invalidField('redirect_uri', '须为 http(s) 地址', 'must be an http(s) URL');
  if (u.username !== '' || u.password !== '')
    throw Errors.invalidField(
      'redirect_uri',
      '不得包含用户信息（user@）',
      'must not contain userinfo (user@)',
    );
  if (!allowedRedirect(app, q.redirectUri)) {
    throw Errors.invalidField(
      'redirect_uri',
      '不在该应用登记的回调地址内',
      "is not among the app's registered redirect URIs",
    );
  }
  const id = randomBytes(18).toString('base64url');
  const now = deps.clock.now();
  await deps.medicare.createAuthorisation({
    id,
    app_id: app.id,
    open_id: q.openId,
    state: q.state,
    redirect_uri: q.redirectUri,
    status: 'PENDING',
    auth_code: null,
    created_at: now,
    expires_at: new Date(now.getTime() + 10 * 60_000),
    used_at: null,
  });
  const mi = medicareFor(deps, app);
  return { consentUrl: mi.channel.authorisationUrl(id, await channelContext(deps, app.id, mi.ctxId)) };
}

/** The patient granted or declined: back to the HIS's redirect_uri with auth_code & state (or error). */
export async function decideAuthorisation(
  deps: ServiceDeps,
  id: string,
  grant: boolean,
  /** A real region's code for the grant; without it hospay makes one (the simulator's consent page). */
  providerCode?: string,
): Promise<string | null> {
  const now = deps.clock.now();
  const authCode = grant ? (providerCode ?? randomBytes(16).toString('hex')) : null;
  const r = await deps.medicare.decide(id, {
    grant,
    authCode,
    now,
    expiresAt: new Date(now.getTime() + AUTH_CODE_TTL_MS),
  });
  if (!r) return null;
  const u = new URL(r.redirect_uri);
  if (authCode) u.searchParams.set('auth_code', authCode);
  else u.searchParams.set('error', 'access_denied');
  u.searchParams.set('state', r.state);
  return u.toString();
}

/** An authorisation request with its app's name and channel map (the consent page); undefined when unknown. */
export async function pendingAuthorisation(deps: ServiceDeps, id: string) {
  return deps.medicare.pending(id);
}

export interface UserTokenCommand {
  app: App;
  userId: string;
  paymentType: string;
  authCode: string;
  patientName?: string | undefined;
  patientCardNo?: string | undefined;
  bizCityCode?: string | undefined;
  sscInsType?: string | undefined;
}

/** Spec 6.5: a single-use auth_code of the same user becomes pay_auth_no, qr_code, city_code, card_info. */
export async function userToken(deps: ServiceDeps, cmd: UserTokenCommand) {
  const mi = medicareFor(deps, cmd.app); // PAY_TYPE_NOT_ENABLED before the auth_code is spent
  const now = deps.clock.now();
  const used = await deps.medicare.useAuthCode(cmd.app.id, cmd.authCode, now);
  if (!used)
    throw bad('AUTH_CODE_INVALID', 'auth_code 无效、已使用或已过期', 'auth_code is invalid, used or expired');
  if (used.open_id !== cmd.userId)
    throw bad('AUTH_CODE_USER_MISMATCH', 'auth_code 不属于该用户', 'auth_code belongs to another user');
  const r = await mi.channel.issueToken(await channelContext(deps, cmd.app.id, mi.ctxId), {
    userId: cmd.userId,
    authCode: cmd.authCode,
    paymentType: cmd.paymentType,
    cityCode: cmd.bizCityCode,
    patientName: cmd.patientName,
    patientCardNo: cmd.patientCardNo,
  });
  if (r.kind === 'failed') throw declined(r.code, r.zh, r.en);
  await deps.medicare.createToken({
    pay_auth_no: r.payAuthNo,
    app_id: cmd.app.id,
    user_id: cmd.userId,
    payment_type: cmd.paymentType,
    city_code: r.cityCode,
    created_at: now,
    expires_at: new Date(now.getTime() + PAY_AUTH_TTL_MS),
    used_by_trade: null,
  });
  return r;
}

export interface SscTradePayCommand {
  app: App;
  outTradeNo: string;
  sscScene: string;
  subject: string;
  notifyUrl: string;
  returnUrl: string;
  totalFen: Fen;
  cashFen: Fen;
  insuranceFen: Fen;
  reducedFen: Fen;
  paymentType: PayType;
  userId: string;
  payAuthNo: string;
  patientName: string;
  operatorId?: string | undefined;
  timeoutExpress?: string | undefined;
  body?: string | undefined;
  serialNo?: string | undefined;
  medical: Record<string, string | undefined>;
}

/**
 * Spec 6.6: mixed payment. total_amount must equal insurance_fee + cash_fee; the pay_auth_no must be the same
 * user's, unexpired and unused. The insurance part is settled by the medical-insurance side; the cash part is
 * paid through the patient's channel on the goto page. A trade fully covered by insurance is paid at once.
 */
export async function sscTradePay(
  deps: ServiceDeps,
  cmd: SscTradePayCommand,
): Promise<{ trade: Trade; gotoUrl: string }> {
  checkNotifyUrlFor(deps, cmd.app, cmd.notifyUrl);
  if (cmd.insuranceFen + cmd.cashFen !== cmd.totalFen) {
    throw Errors.invalidField(
      'total_amount',
      '须等于 insurance_fee + cash_fee',
      'must equal insurance_fee + cash_fee',
    );
  }
  const { id: channelId } = channelFor(deps, cmd.app, cmd.paymentType);
  medicareFor(deps, cmd.app); // PAY_TYPE_NOT_ENABLED before the trade is made
  const now = deps.clock.now();
  const token = await deps.medicare.token(cmd.app.id, cmd.payAuthNo);
  if (!token || token.expires_at <= now)
    throw bad(
      'PAY_AUTH_NO_INVALID',
      'pay_auth_no 无效或已过期，请重新授权',
      'pay_auth_no is invalid or expired; authorise again',
    );
  if (token.user_id !== cmd.userId)
    throw bad('PAY_AUTH_NO_USER_MISMATCH', 'pay_auth_no 不属于该用户', 'pay_auth_no belongs to another user');
  if (token.used_by_trade !== null) {
    const same = await deps.trades.byOutTradeNo(cmd.app.id, cmd.outTradeNo);
    if (!same || same.id !== token.used_by_trade) {
      throw bad(
        'PAY_AUTH_NO_USED',
        'pay_auth_no 已用于其他订单',
        'pay_auth_no was already used for another trade',
      );
    }
  }

  const { trade, gotoUrl } = await h5Pay(deps, {
    app: cmd.app,
    outTradeNo: cmd.outTradeNo,
    amountFen: cmd.totalFen,
    subject: cmd.subject,
    body: cmd.body,
    timeoutExpress: cmd.timeoutExpress,
    returnUrl: cmd.returnUrl,
    notifyUrl: cmd.notifyUrl,
    orderType: (cmd.sscScene === 'REGISTRATION' ? 'APPOINTMENT' : 'TREATMENT') as OrderType,
    extra: { ...cmd.medical, payment_type: cmd.paymentType, pay_auth_no: cmd.payAuthNo },
    insuranceFen: cmd.insuranceFen,
    reducedFen: cmd.reducedFen,
    patientName: cmd.patientName,
    operatorId: cmd.operatorId,
  });
  if (token.used_by_trade !== null && token.used_by_trade !== trade.id) {
    throw bad(
      'PAY_AUTH_NO_USED',
      'pay_auth_no 已用于其他订单',
      'pay_auth_no was already used for another trade',
    );
  }
  if (token.used_by_trade === null) {
    const mi = medicareFor(deps, cmd.app);
    const settled = await mi.channel.preSettle(await channelContext(deps, cmd.app.id, mi.ctxId), {
      payAuthNo: cmd.payAuthNo,
      outTradeNo: cmd.outTradeNo,
      totalFen: cmd.totalFen,
      insuranceFen: cmd.insuranceFen,
      cashFen: cmd.cashFen,
      serialNo: cmd.serialNo,
    });
    if (settled.kind === 'failed') {
      await deps.trades.markClosedUnpaid(trade.id, null, deps.clock.now());
      throw declined(settled.code, settled.zh, settled.en);
    }
    if (!(await deps.medicare.useToken(cmd.payAuthNo, trade.id)))
      throw bad(
        'PAY_AUTH_NO_USED',
        'pay_auth_no 已用于其他订单',
        'pay_auth_no was already used for another trade',
      );
    await deps.trades.markInsuranceSettled(trade.id, settled.settlementNo, deps.clock.now());
    // The cash part goes through the patient's own channel, chosen here rather than on the page.
    await deps.trades.choosePayType(trade.id, cmd.paymentType, channelId, deps.clock.now());
    if (cmd.cashFen === 0) {
      await deps.trades.markPaid(
        trade.id,
        { channelTradeNo: settled.settlementNo, paidAt: deps.clock.now() },
        deps.clock.now(),
      );
    }
  }
  return { trade: (await deps.trades.byId(trade.id)) ?? trade, gotoUrl };
}

/**
 * The HIS reports that the hospital refunded (part of) the insurance part through the national process: recorded
 * against the trade, idempotent on out_request_no, never above the insurance part. No money moves here.
 */
export async function recordInsuranceRefund(
  deps: ServiceDeps,
  cmd: { app: App; outTradeNo: string; outRequestNo: string; amountFen: Fen },
): Promise<{ trade: Trade; recorded: boolean }> {
  const trade = await deps.trades.byOutTradeNo(cmd.app.id, cmd.outTradeNo);
  if (!trade) throw Errors.tradeNotExist();
  if (trade.insurance_fen === 0)
    throw bad('NO_INSURANCE_PART', '该交易没有医保部分', 'the trade has no insurance part');
  if (!trade.paid_at) throw Errors.tradeNotPaid();
  const now = deps.clock.now();
  const r = await deps.medicare.recordInsuranceRefund(trade, {
    outRequestNo: cmd.outRequestNo,
    amountFen: cmd.amountFen,
    now,
  });
  if (r.kind === 'conflict') throw Errors.outRequestNoConflict();
  if (r.kind === 'exceeded') throw Errors.refundAmountExceeded();
  return r.kind === 'recorded' ? { trade: r.trade, recorded: true } : { trade, recorded: false };
}
