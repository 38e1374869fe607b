import { randomBytes } from 'node:crypto';
import { isLosslessNumber, parse as parseLossless } from 'lossless-json';
import type { App, Trade } from '../store/schema.js';
import type { MedicareRevocation } from '../store/medicare.js';
import { Errors, HospayError, declined } from '../domain/errors.js';
import { formatFen, parseYuanToFen, sumFen, type Fen } from '../domain/money.js';
import type { MedicareFeeDetail, MedicareNotifyParse } from '../channels/channel.js';
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
  /** Item-level fee details (readFeeDetails): uploaded with the insurance part. */
  feeDetails?: readonly MedicareFeeDetail[] | undefined;
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
      feeDetails: cmd.feeDetails,
    });
    if (settled.kind === 'failed') {
      await deps.trades.markClosedUnpaid(trade.id, null, deps.clock.now());
      // The centre keeps the fee upload of an order it did not settle: revoked now, or by the expiry job.
      if (settled.uploaded) await leaveUpload(deps, trade, settled.uploaded, settled.code);
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

/** How `lc.ssc.insurance.refund` refunds: through the centre (the default), or only records one made elsewhere. */
export type InsuranceRefundMode = 'CENTRE' | 'RECORD';

/**
 * The HIS's insurance refund (`lc.ssc.insurance.refund`), idempotent on out_request_no, never above the insurance
 * part. CENTRE: the medical-insurance side refunds it (the centre's 6203 HI, or the simulator), kept as a refund
 * of kind 'insurance' apart from cash refunds; an unclear answer leaves it PROCESSING (REFUND_PROCESSING: ask
 * again with the same out_request_no; the centre is asked (6301) before anything is sent again). RECORD: the
 * hospital refunded it through the national process and the platform only records it (no money moves here).
 */
export async function recordInsuranceRefund(
  deps: ServiceDeps,
  cmd: { app: App; outTradeNo: string; outRequestNo: string; amountFen: Fen; mode?: InsuranceRefundMode },
): Promise<{ trade: Trade; recorded: boolean; via: InsuranceRefundMode; refundNo: string | null }> {
  const trade = await deps.trades.byOutTradeNo(cmd.app.id, cmd.outTradeNo);
  if (!trade) throw Errors.tradeNotExist();
  if (trade.insurance_fen === 0)
    throw bad('NO_INSURANCE_PART', '该交易没有医保部分', 'the trade has no insurance part');
  if (!trade.paid_at) throw Errors.tradeNotPaid();
  const now = deps.clock.now();
  if ((cmd.mode ?? 'CENTRE') === 'RECORD') {
    const r = await deps.medicare.recordInsuranceRefund(trade, {
      outRequestNo: cmd.outRequestNo,
      amountFen: cmd.amountFen,
      now,
    });
    if (r.kind === 'conflict') throw Errors.outRequestNoConflict();
    if (r.kind === 'exceeded') throw Errors.refundAmountExceeded();
    return r.kind === 'recorded'
      ? { trade: r.trade, recorded: true, via: 'RECORD', refundNo: null }
      : { trade, recorded: false, via: 'RECORD', refundNo: null };
  }
  const mi = medicareFor(deps, cmd.app);
  const res = await deps.medicare.reserveInsuranceRefund(trade, {
    outRequestNo: cmd.outRequestNo,
    amountFen: cmd.amountFen,
    now,
    leaseMs: INSURANCE_REFUND_LEASE_MS,
  });
  if (res.kind === 'conflict') throw Errors.outRequestNoConflict();
  if (res.kind === 'exceeded') throw Errors.refundAmountExceeded();
  if (res.kind === 'busy') throw Errors.refundProcessing();
  if (res.kind === 'done')
    return {
      trade,
      recorded: false,
      via: res.refund.channel_refund_no === null ? 'RECORD' : 'CENTRE',
      refundNo: res.refund.channel_refund_no,
    };
  if (trade.insurance_state !== 'SETTLED' || !trade.settlement_no) {
    await deps.medicare.failInsuranceRefund(res.refund.id, 'INSURANCE_NOT_SETTLED', now);
    throw bad(
      'INSURANCE_NOT_SETTLED',
      '该交易的医保部分未结算或已冲正，不能经医保中心退费',
      'the insurance part of this trade is not settled (or was reversed): it cannot be refunded through the centre',
    );
  }
  let r: Awaited<ReturnType<typeof mi.channel.refundInsurance>>;
  try {
    r = await mi.channel.refundInsurance(await channelContext(deps, cmd.app.id, mi.ctxId), {
      settlementNo: trade.settlement_no,
      outTradeNo: trade.out_trade_no,
      outRequestNo: cmd.outRequestNo,
      amountFen: cmd.amountFen,
      insuranceFen: trade.insurance_fen,
      refundedFen: trade.insurance_refunded_fen,
    });
  } catch (err) {
    await deps.medicare.releaseInsuranceRefund(res.refund.id, deps.clock.now());
    throw err;
  }
  if (r.kind === 'unknown') {
    await deps.medicare.releaseInsuranceRefund(res.refund.id, deps.clock.now());
    deps.log.warn(
      { tradeNo: trade.trade_no, outRequestNo: cmd.outRequestNo, reason: r.reason },
      'insurance refund outcome unknown; the HIS retries with the same out_request_no',
    );
    throw Errors.refundProcessing();
  }
  if (r.kind === 'failed') {
    await deps.medicare.failInsuranceRefund(res.refund.id, r.code, deps.clock.now());
    throw declined(r.code, r.zh, r.en);
  }
  const after = await deps.medicare.completeInsuranceRefund(res.refund, {
    refundNo: r.refundNo,
    now: deps.clock.now(),
  });
  if (!after)
    deps.log.error(
      { tradeNo: trade.trade_no, outRequestNo: cmd.outRequestNo },
      'insurance refunded at the centre but the trade could not record it; needs an operator',
    );
  return {
    trade: after ?? (await deps.trades.byId(trade.id)) ?? trade,
    recorded: true,
    via: 'CENTRE',
    refundNo: r.refundNo,
  };
}

/** How long one caller holds an insurance refund while it asks the centre. */
export const INSURANCE_REFUND_LEASE_MS = 60_000;

// ---- fee uploads left at the centre -------------------------------------------------------------------------

/** How long one attempt at revoking an upload may hold it. */
const REVOCATION_LEASE_MS = 60_000;

/** Keeps the upload for the trade and tries to revoke it at once (a failure is left to the expiry job). */
async function leaveUpload(deps: ServiceDeps, trade: Trade, ref: string, reason: string): Promise<void> {
  try {
    await deps.medicare.leaveUpload({
      appId: trade.app_id,
      tradeId: trade.id,
      outTradeNo: trade.out_trade_no,
      ref,
      reason,
      now: deps.clock.now(),
    });
    await revokeUploads(deps, trade.id);
  } catch (err) {
    deps.log.warn(
      { tradeNo: trade.trade_no, err: err instanceof Error ? err.message : String(err) },
      'fee upload revocation deferred to the expiry job',
    );
  }
}

/**
 * Revokes the fee uploads left at the centre that are due (or the one of `tradeId`): the medical-insurance side
 * asks the centre (6301), revokes an upload never paid (6401) and refunds one that was settled after all (6203).
 * A retryable failure is tried again with backoff (10 s doubling to 10 min); a refusal is FAILED for an
 * operator (tried again hourly). Run by the expiry job on every tick. Returns how many were revoked.
 */
export async function revokeUploads(deps: ServiceDeps, tradeId?: number): Promise<number> {
  const now = deps.clock.now();
  const claimed = await deps.medicare.claimRevocations(
    now,
    REVOCATION_LEASE_MS,
    tradeId === undefined ? deps.config.jobs.batchSize : 1,
    tradeId,
  );
  let done = 0;
  for (const row of claimed) if (await revokeOne(deps, row)) done++;
  return done;
}

async function revokeOne(deps: ServiceDeps, row: MedicareRevocation): Promise<boolean> {
  const backoff = Math.min(10_000 * 2 ** Math.min(Math.max(row.attempts - 1, 0), 6), 600_000);
  let status: 'DONE' | 'PENDING' | 'FAILED' = 'PENDING';
  let error: string | null = null;
  try {
    const app = await deps.apps.get(row.app_id);
    const trade = await deps.trades.byId(row.trade_id);
    if (!app || !trade) throw new Error(`no app or trade for ${row.out_trade_no}`);
    const mi = medicareFor(deps, app);
    const r = await mi.channel.reverseSettlement(await channelContext(deps, app.id, mi.ctxId), {
      settlementNo: row.ref,
      outTradeNo: row.out_trade_no,
      insuranceFen: trade.insurance_fen,
    });
    if (r.kind === 'reversed') status = 'DONE';
    else if (r.kind === 'retry') error = r.reason;
    else {
      status = 'FAILED';
      error = `${r.code}: ${r.en}`;
      deps.log.error(
        { outTradeNo: row.out_trade_no, code: r.code },
        'fee upload revocation refused by the medical-insurance centre; needs an operator',
      );
    }
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  }
  const now = deps.clock.now();
  await deps.medicare.finishRevocation(row.id, {
    status,
    error,
    nextAt: new Date(now.getTime() + (status === 'FAILED' ? 3_600_000 : backoff)),
    now,
  });
  return status === 'DONE';
}

// ---- the centre's notifications -----------------------------------------------------------------------------

/**
 * A verified notification of the medical-insurance centre about an order (`MedicareNotifyParse` 'settlement'):
 * nothing is taken from it. The trade it names (out_trade_no, and the centre's order id must be the trade's) is
 * synced as the jobs would: an upload left unpaid is revoked now (6301 first; refunded if it was settled after
 * all); a settlement of a trade that ended unpaid or was cancelled is left to the expiry job's reversal; for a
 * paid trade the centre is asked (6301) and a state that is no longer settled is logged for an operator.
 * Returns what was done ('unknown_order' for an order the platform does not have: acknowledged and ignored).
 */
export async function medicareNotified(
  deps: ServiceDeps,
  app: App,
  n: Extract<MedicareNotifyParse, { kind: 'settlement' }>,
): Promise<'unknown_order' | 'revoked' | 'pending' | 'synced'> {
  const trade = await deps.trades.byOutTradeNo(app.id, n.outTradeNo);
  if (!trade || trade.insurance_fen === 0) return 'unknown_order';
  const left = await deps.medicare.revocationOf(trade.id);
  // The centre's order id in a settlement number or upload reference: "<payOrdId>.<sealed token>".
  const orderOf = (ref: string | null) =>
    ref === null ? null : ref.lastIndexOf('.') > 0 ? ref.slice(0, ref.lastIndexOf('.')) : ref;
  if (left && orderOf(left.ref) === n.orderId) {
    if (left.status === 'DONE') return 'synced';
    return (await revokeUploads(deps, trade.id)) > 0 ? 'revoked' : 'pending';
  }
  if (orderOf(trade.settlement_no) !== n.orderId || trade.settlement_no === null) return 'unknown_order';
  const mi = medicareFor(deps, app);
  if (!mi.channel.querySettlement) return 'synced';
  const q = await mi.channel.querySettlement(await channelContext(deps, app.id, mi.ctxId), {
    settlementNo: trade.settlement_no,
    outTradeNo: trade.out_trade_no,
  });
  if (q.kind === 'unknown') throw new Error(`6301: ${q.reason}`);
  if (trade.insurance_state === 'SETTLED' && trade.status !== 'TRADE_CLOSED' && q.state !== 'settled')
    deps.log.error(
      { tradeNo: trade.trade_no, state: q.code },
      'the medical-insurance centre no longer shows this paid trade settled; an operator must check',
    );
  return 'synced';
}

// ---- item-level fee details ---------------------------------------------------------------------------------

/** At most this many items in fee_details. */
export const FEE_DETAILS_MAX = 500;

/** The optional national fields an item may carry (snake_case, as the HIS writes them) and their limits. */
const FEE_DETAIL_OPTIONAL: Readonly<Record<string, number>> = {
  medins_list_name: 100,
  med_chrgitm_type: 6,
  rxno: 30,
  rx_circ_flag: 3,
  drord_no: 30,
  bilg_dept_codg: 30,
  bilg_dept_name: 100,
  bilg_dr_codg: 30,
  bilg_dr_name: 50,
  acord_dept_codg: 30,
  acord_dept_name: 100,
  orders_dr_code: 30,
  orders_dr_name: 50,
  hosp_appr_flag: 3,
  tcmdrug_used_way: 6,
  etip_flag: 3,
  etip_hosp_code: 30,
  dscg_tkdrug_flag: 3,
  matn_fee_flag: 3,
  sin_dos_dscr: 200,
  used_frqu_dscr: 200,
  prd_days: 10,
  medc_way_dscr: 200,
  memo: 500,
};
const FEE_DETAIL_REQUIRED = [
  'feedetl_sn',
  'med_list_codg',
  'medins_list_codg',
  'det_item_fee_sumamt',
  'cnt',
  'pric',
  'fee_ocur_time',
] as const;

const CNT = /^(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,4}))?$/;
const PRIC = /^(0|[1-9][0-9]{0,9})(?:\.([0-9]{1,6}))?$/;
const OCCURRED = /^([0-9]{4})-([0-9]{2})-([0-9]{2}) ([0-9]{2}):([0-9]{2}):([0-9]{2})$/;

/** A decimal text as an integer count of 10^-places (12.5 with 4 places → 125000). */
function scaled(text: string, places: number): bigint {
  const [w = '0', f = ''] = text.split('.');
  return BigInt(w) * 10n ** BigInt(places) + BigInt(f.padEnd(places, '0') || '0');
}

function validTime(text: string): boolean {
  const m = OCCURRED.exec(text);
  if (!m) return false;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const t = new Date(Date.UTC(y, mo - 1, d, h, mi, s));
  return (
    t.getUTCFullYear() === y &&
    t.getUTCMonth() === mo - 1 &&
    t.getUTCDate() === d &&
    t.getUTCHours() === h &&
    t.getUTCMinutes() === mi &&
    t.getUTCSeconds() === s &&
    y >= 2000
  );
}

/**
 * `fee_details` of lc.ssc.trade.pay (the national 费用明细 feedetail items, the HIS's snake_case names), checked
 * item by item: a JSON array (or the text of one) of 1–500 objects, each with feedetl_sn (≤ 30, unique),
 * med_list_codg (≤ 50), medins_list_codg (≤ 150), det_item_fee_sumamt (yuan, ≥ 0, 2 decimals), cnt (> 0, ≤ 4
 * decimals), pric (≥ 0, ≤ 6 decimals), fee_ocur_time (yyyy-MM-dd HH:mm:ss), and optionally the national fields
 * of FEE_DETAIL_OPTIONAL (text). det_item_fee_sumamt must be cnt × pric within one fen (rounding), and the items
 * must add up to total_amount (the centre's medfeeSumamt). Every refusal is INVALID_FIELD.fee_details naming the
 * item and field.
 */
export function readFeeDetails(text: string, totalFen: Fen): MedicareFeeDetail[] {
  const refuse = (zh: string, en: string) => Errors.invalidField('fee_details', zh, en);
  let v: unknown;
  try {
    v = parseLossless(text);
  } catch {
    throw refuse('不是有效的 JSON', 'is not valid JSON');
  }
  if (typeof v === 'string') {
    try {
      v = parseLossless(v);
    } catch {
      throw refuse('不是有效的 JSON', 'is not valid JSON');
    }
  }
  if (!Array.isArray(v) || v.length === 0)
    throw refuse('须为非空的 JSON 数组', 'must be a non-empty JSON array');
  if (v.length > FEE_DETAILS_MAX)
    throw refuse(`最多 ${FEE_DETAILS_MAX} 项`, `at most ${FEE_DETAILS_MAX} items`);
  const seen = new Set<string>();
  const items = v.map((raw: unknown, i): MedicareFeeDetail => {
    const n = i + 1;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || isLosslessNumber(raw))
      throw refuse(`第 ${n} 项须为 JSON 对象`, `item ${n} must be a JSON object`);
    const o = raw as Record<string, unknown>;
    const field = (k: string, max: number, required: boolean): string | undefined => {
      const x = o[k];
      if (x === undefined || x === null || x === '') {
        if (required) throw refuse(`第 ${n} 项缺少 ${k}`, `item ${n} lacks ${k}`);
        return undefined;
      }
      const t = typeof x === 'string' ? x.trim() : isLosslessNumber(x) ? x.toString() : undefined;
      if (t === undefined)
        throw refuse(`第 ${n} 项 ${k} 须为字符串或数字`, `item ${n} ${k} must be a string or a number`);
      if (t === '' && required) throw refuse(`第 ${n} 项缺少 ${k}`, `item ${n} lacks ${k}`);
      if ([...t].length > max)
        throw refuse(
          `第 ${n} 项 ${k} 超长（最多 ${max} 个字符）`,
          `item ${n} ${k} is too long (at most ${max} characters)`,
        );
      if ([...t].some((ch) => (ch.codePointAt(0) ?? 0) < 0x20 || ch === '\u007f'))
        throw refuse(`第 ${n} 项 ${k} 含控制字符`, `item ${n} ${k} contains control characters`);
      return t;
    };
    for (const k of Object.keys(o))
      if (!(FEE_DETAIL_REQUIRED as readonly string[]).includes(k) && FEE_DETAIL_OPTIONAL[k] === undefined)
        throw refuse(
          `第 ${n} 项有未知字段 ${k.slice(0, 40)}`,
          `item ${n} has an unknown field ${k.slice(0, 40)}`,
        );
    const serialNo = field('feedetl_sn', 30, true) ?? '';
    if (seen.has(serialNo))
      throw refuse(`第 ${n} 项 feedetl_sn 重复`, `item ${n} repeats feedetl_sn ${serialNo}`);
    seen.add(serialNo);
    const amountText = field('det_item_fee_sumamt', 12, true) ?? '';
    const amountFen = parseYuanToFen(amountText);
    if (amountFen === null)
      throw refuse(
        `第 ${n} 项 det_item_fee_sumamt 须为元金额（最多两位小数）`,
        `item ${n} det_item_fee_sumamt must be a yuan amount (at most 2 decimals)`,
      );
    const count = field('cnt', 17, true) ?? '';
    if (!CNT.test(count) || scaled(count, 4) === 0n)
      throw refuse(
        `第 ${n} 项 cnt 须为正数（最多 4 位小数）`,
        `item ${n} cnt must be positive (at most 4 decimals)`,
      );
    const price = field('pric', 17, true) ?? '';
    if (!PRIC.test(price))
      throw refuse(
        `第 ${n} 项 pric 须为非负数（最多 6 位小数）`,
        `item ${n} pric must be non-negative (at most 6 decimals)`,
      );
    // cnt × pric in units of 10^-10 yuan = 10^-8 fen; within one fen of the item's amount.
    const diff = scaled(count, 4) * scaled(price, 6) - BigInt(amountFen) * 100_000_000n;
    if (diff >= 100_000_000n || diff <= -100_000_000n)
      throw refuse(
        `第 ${n} 项 det_item_fee_sumamt 不等于 cnt × pric`,
        `item ${n} det_item_fee_sumamt is not cnt × pric`,
      );
    const occurredAt = field('fee_ocur_time', 19, true) ?? '';
    if (!validTime(occurredAt))
      throw refuse(
        `第 ${n} 项 fee_ocur_time 须为 yyyy-MM-dd HH:mm:ss`,
        `item ${n} fee_ocur_time must be yyyy-MM-dd HH:mm:ss`,
      );
    const extra: Record<string, string> = {};
    for (const [k, max] of Object.entries(FEE_DETAIL_OPTIONAL)) {
      if (k === 'medins_list_name') continue;
      const t = field(k, max, false);
      if (t !== undefined) extra[k] = t;
    }
    return {
      serialNo,
      listCode: field('med_list_codg', 50, true) ?? '',
      institutionCode: field('medins_list_codg', 150, true) ?? '',
      institutionName: field('medins_list_name', 100, false),
      amountFen,
      count,
      price,
      occurredAt,
      extra,
    };
  });
  const sum = sumFen(items.map((d) => d.amountFen));
  if (sum !== totalFen)
    throw refuse(
      `各项 det_item_fee_sumamt 之和（${formatFen(sum)} 元）须等于 total_amount（${formatFen(totalFen)} 元）`,
      `the items' det_item_fee_sumamt add up to ${formatFen(sum)} yuan, not total_amount (${formatFen(totalFen)})`,
    );
  return items;
}
