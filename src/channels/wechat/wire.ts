/**
 * WeChat Pay's wire: the shapes of the requests the adapter sends and of the answers it reads (v3 JSON, v2 XML),
 * how an answer is read (verified before any field is trusted), the exhaustive maps of trade_state, refund
 * status and error codes to outcomes — a state or code not listed is an unknown outcome, never success — and
 * the fields a call record never shows.
 */
import os from 'node:os';
import type {
  BarcodePayInput,
  CancelOutcome,
  CloseOutcome,
  NotifyAck,
  PaidInfo,
  PayOutcome,
  PrecreateInput,
  PrecreateOutcome,
  PayerIdOutcome,
  QueryOutcome,
  RefundInput,
  RefundOutcome,
} from '../channel.js';
import { decryptResource, parseV2Xml, type EncryptedResource, type V2SignType } from './crypto.js';
import type { Fen } from '../../domain/money.js';
import type { PartnerIds, PayerApp } from './config.js';

// ---------------------------------------------------------------- shapes

/** An answer as received: the documented field names, any value (each is checked before it is used). */
export type Untrusted<T> = { readonly [K in keyof T]?: unknown };

/** POST /v3/pay/transactions/native and /h5. */
export interface V3OrderRequest {
  appid: string;
  mchid: string;
  description: string;
  out_trade_no: string;
  /** RFC 3339 in Beijing time. */
  time_expire: string;
  notify_url: string;
  amount: { total: number; currency: 'CNY' };
  /** H5 (with h5_info), and JSAPI when the payer's IP is known. */
  scene_info?: { payer_client_ip: string; h5_info?: { type: 'Wap' } };
  /** JSAPI only: the payer's openid under appid. */
  payer?: { openid: string };
}

/** The order's answer: the link to pay with. */
export interface V3OrderAnswer {
  /** native: weixin://… shown as a QR code. */
  code_url: string;
  /** h5: https://… opened in the payer's browser. */
  h5_url: string;
}

/**
 * POST /v3/pay/partner/transactions/{native,h5,jsapi}: a service provider's order for its sub-merchant. The
 * payer of a JSAPI order is known by sp_openid (under sp_appid) or sub_openid (under sub_appid), one of them.
 */
export interface V3PartnerOrderRequest {
  sp_appid: string;
  sp_mchid: string;
  sub_appid?: string;
  sub_mchid: string;
  description: string;
  out_trade_no: string;
  time_expire: string;
  notify_url: string;
  amount: { total: number; currency: 'CNY' };
  scene_info?: { payer_client_ip: string; h5_info?: { type: 'Wap' } };
  payer?: { sp_openid: string } | { sub_openid: string };
}

/** The JSAPI order's answer (direct and partner). */
export interface V3JsapiAnswer {
  prepay_id: string;
}

/** POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close (answer: 204, no body). */
export interface V3CloseRequest {
  mchid: string;
}

/** POST /v3/pay/partner/transactions/out-trade-no/{out_trade_no}/close. */
export interface V3PartnerCloseRequest {
  sp_mchid: string;
  sub_mchid: string;
}

/** GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=…: the fields read. */
export interface V3Transaction {
  out_trade_no: string;
  /** Direct mode. */
  mchid: string;
  /** Partner mode: the provider and the sub-merchant. */
  sp_mchid: string;
  sub_mchid: string;
  transaction_id: string;
  trade_state: TradeState;
  /** RFC 3339. */
  success_time: string;
  payer: { openid?: string; sp_openid?: string; sub_openid?: string };
}

/** POST /v3/refund/domestic/refunds. */
export interface V3RefundRequest {
  /** Partner mode: the sub-merchant whose trade is refunded. */
  sub_mchid?: string;
  out_trade_no: string;
  out_refund_no: string;
  /** At most 80 bytes. */
  reason?: string;
  amount: { refund: number; total: number; currency: 'CNY' };
}

/** The refund's answer, also of GET /v3/refund/domestic/refunds/{out_refund_no}: the fields read. */
export interface V3Refund {
  out_refund_no: string;
  out_trade_no: string;
  refund_id: string;
  status: RefundStatus;
  success_time: string;
  create_time: string;
  amount: { refund: number };
}

/** GET /v3/bill/tradebill?bill_date=…&bill_type=ALL. */
export interface V3TradeBillAnswer {
  download_url: string;
  hash_type: 'SHA1';
  /** Lower- or upper-case hex SHA1 of the file. */
  hash_value: string;
}

/** The body of a v3 4xx/5xx. */
export interface V3ErrorBody {
  code: string;
  message: string;
}

/** A v3 notification (signed like an answer); `resource` is encrypted with the APIv3 key. */
export interface V3Notification {
  event_type: string;
  resource: EncryptedResource;
}

/** A TRANSACTION.* notification's decrypted resource: the fields read. */
export interface V3NotifiedTransaction {
  out_trade_no: string;
  mchid: string;
  /** Partner-mode notifications carry these instead of mchid. */
  sp_mchid: string;
  sub_mchid: string;
}

/** The fields every v2 request starts with; `sign` is added last. */
export type V2Common = {
  appid: string;
  mch_id: string;
  /** Partner mode (服务商): the sub-merchant, and its own AppID when it has one. */
  sub_appid?: string;
  sub_mch_id?: string;
  nonce_str: string;
  /** Absent for MD5. */
  sign_type?: 'HMAC-SHA256';
};

/** POST /pay/micropay. */
export type V2MicropayRequest = {
  /** At most 128 bytes. */
  body: string;
  out_trade_no: string;
  /** Fen. */
  total_fee: string;
  fee_type: 'CNY';
  spbill_create_ip: string;
  auth_code: string;
  device_info?: string;
};

/** POST /pay/unifiedorder, trade_type JSAPI: the payer by openid (under appid) or sub_openid (under sub_appid). */
export type V2UnifiedOrderRequest = {
  body: string;
  out_trade_no: string;
  total_fee: string;
  fee_type: 'CNY';
  spbill_create_ip: string;
  /** yyyyMMddHHmmss, Beijing. */
  time_expire: string;
  notify_url: string;
  trade_type: 'JSAPI';
  openid?: string;
  sub_openid?: string;
};

/** POST /secapi/pay/reverse (with the merchant's TLS client certificate). */
export type V2ReverseRequest = { out_trade_no: string };

/** The fields read from v2 answers (micropay, reverse). */
export type V2Field =
  | 'return_code'
  | 'return_msg'
  | 'appid'
  | 'mch_id'
  | 'sub_mch_id'
  | 'prepay_id'
  | 'trade_type'
  | 'result_code'
  | 'err_code'
  | 'err_code_des'
  | 'out_trade_no'
  | 'total_fee'
  | 'transaction_id'
  /** yyyyMMddHHmmss, Beijing. */
  | 'time_end'
  | 'openid'
  /** reverse: 'Y' = call reverse again. */
  | 'recall';
export type V2Fields = { readonly [K in V2Field]?: string };

// ---------------------------------------------------------------- answers

/** A v3 answer after verification. */
export type V3Answer =
  /** 2xx, signature verified; `json` is null for 204 / an empty body. */
  | { kind: 'ok'; status: number; json: Record<string, unknown> | null }
  /** A verified 4xx with WeChat's error body: a business refusal. */
  | { kind: 'error'; status: number; code: string; message: string }
  /** Anything that says nothing reliable: transport failure, 5xx, system error, unsigned / bad signature, garbage. */
  | {
      kind: 'unknown';
      reason: string;
      /**
       * An unsigned 4xx with WeChat's error body (WeChat leaves some parameter errors unsigned). Never trusted
       * for an outcome that could hide moved money; shown only where a refusal is harmless (creating an order).
       */
      unsigned?: { status: number; code: string; message: string };
    };

/** A v2 answer: a verified `return_code=SUCCESS` document, or nothing reliable. */
export type V2Answer = { kind: 'ok'; fields: V2Fields } | { kind: 'unknown'; reason: string };

/** What arrived over HTTP. */
export interface Received {
  status: number;
  headers: Readonly<Record<string, string>>;
  body: Buffer;
}

/**
 * Reads a v3 answer. `verify` checks the Wechatpay-* signature (null when genuine, else why not); it runs before
 * any field of a signed answer is read.
 */
export function readV3(res: Received, verify: () => string | null): V3Answer {
  const signed = res.headers['wechatpay-signature'] !== undefined;
  if (!signed) {
    if (res.status >= 500) return { kind: 'unknown', reason: `HTTP ${res.status}` };
    const reason = `unsigned answer (HTTP ${res.status})`;
    if (res.status < 400) return { kind: 'unknown', reason };
    try {
      const e = JSON.parse(res.body.toString('utf8')) as Untrusted<V3ErrorBody> | null;
      const code = str(e?.code);
      const message = str(e?.message);
      if (code !== '')
        return {
          kind: 'unknown',
          reason: `${reason} ${code}`,
          unsigned: { status: res.status, code, message },
        };
    } catch {
      /* not WeChat's error body */
    }
    return { kind: 'unknown', reason };
  }
  const bad = verify();
  if (bad) return { kind: 'unknown', reason: `answer not trusted: ${bad}` };
  let json: unknown = null;
  const text = res.body.toString('utf8');
  if (text.trim() !== '') {
    try {
      json = JSON.parse(text);
    } catch {
      return { kind: 'unknown', reason: `unparseable answer (HTTP ${res.status})` };
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json))
      return { kind: 'unknown', reason: `unexpected answer (HTTP ${res.status})` };
  }
  const obj = json as Record<string, unknown> | null;
  if (res.status >= 200 && res.status < 300) return { kind: 'ok', status: res.status, json: obj };
  const err = obj as Untrusted<V3ErrorBody> | null;
  const code = str(err?.code);
  const message = str(err?.message);
  if (res.status >= 500 || res.status === 429 || code === '' || v3Code(code) === 'transient')
    return { kind: 'unknown', reason: `HTTP ${res.status} ${code || '(no code)'} ${message}`.trim() };
  return { kind: 'error', status: res.status, code, message: message || code };
}

/** The fields of a verified 2xx answer (none for 204). */
function fieldsOf<T>(answer: { json: Record<string, unknown> | null }): Untrusted<T> {
  return (answer.json ?? {}) as Untrusted<T>;
}

/** What a v2 answer must match besides its sign. */
export interface V2Check {
  verify: (fields: Readonly<Record<string, string>>) => boolean;
  mchId: string;
  appId: string;
  /** Partner mode: the sub-merchant the answer must be about. */
  subMchId?: string | undefined;
}

/** Reads a v2 answer: HTTP 200, well-formed XML, return_code SUCCESS, a verified sign, our merchant. */
export function readV2(res: Received, check: V2Check): V2Answer {
  if (res.status !== 200) return { kind: 'unknown', reason: `HTTP ${res.status}` };
  let fields: Record<string, string>;
  try {
    fields = parseV2Xml(res.body.toString('utf8'));
  } catch (e) {
    return { kind: 'unknown', reason: `unparseable answer: ${(e as Error).message.slice(0, 100)}` };
  }
  const f: V2Fields = fields;
  if (f.return_code !== 'SUCCESS')
    return {
      kind: 'unknown',
      reason: `return_code ${f.return_code ?? '(none)'}: ${(f.return_msg ?? '').slice(0, 100)}`,
    };
  if (!check.verify(fields)) return { kind: 'unknown', reason: 'answer not trusted: sign does not verify' };
  if ((f.mch_id ?? check.mchId) !== check.mchId || (f.appid ?? check.appId) !== check.appId)
    return { kind: 'unknown', reason: 'answer for another merchant' };
  if (check.subMchId !== undefined && (f.sub_mch_id ?? check.subMchId) !== check.subMchId)
    return { kind: 'unknown', reason: 'answer for another sub-merchant' };
  return { kind: 'ok', fields: f };
}

// ---------------------------------------------------------------- codes and states

/** A final refusal's texts: [中文, English]. */
type Refusal = readonly [zh: string, en: string];

/** v3 error codes with a meaning of their own; any other code in a verified 4xx is a refusal of that request. */
const V3_CODES = {
  // "try again", not "no"
  SYSTEM_ERROR: 'transient',
  SYSTEMERROR: 'transient',
  FREQUENCY_LIMITED: 'transient',
  BANK_ERROR: 'transient',
  SERVICE_UNAVAILABLE: 'transient',
  // query: WeChat does not know the order
  ORDER_NOT_EXIST: 'not_found',
  ORDERNOTEXIST: 'not_found',
  // close: already paid or closed, the trade's state says which
  ORDERPAID: 'settled',
  ORDER_CLOSED: 'settled',
  // trade bill: no trades that day
  NO_STATEMENT_EXIST: 'no_bill',
} as const satisfies Record<string, 'transient' | 'not_found' | 'settled' | 'no_bill'>;

function v3Code(code: string): (typeof V3_CODES)[keyof typeof V3_CODES] | undefined {
  return own(V3_CODES, code);
}

/**
 * micropay err_code → what it says about the trade: 'paying' (the payer is confirming: query), 'query' (nothing
 * certain: ask again), or a refusal after which the trade is certainly not paid (zh from WeChat's documentation).
 * Any code not listed: 'query'.
 */
const MICROPAY_ERR_CODES: Readonly<Record<string, 'paying' | 'query' | Refusal>> = {
  USERPAYING: 'paying',
  SYSTEMERROR: 'query',
  BANKERROR: 'query',
  ORDERPAID: 'query',
  OUT_TRADE_NO_USED: 'query',
  AUTHCODEEXPIRE: [
    '二维码已过期，请用户在微信上刷新后再试',
    'the payment code has expired; refresh it in WeChat',
  ],
  AUTH_CODE_INVALID: ['付款码无效，请重新扫码', 'the payment code is invalid; scan again'],
  AUTH_CODE_ERROR: ['付款码参数错误', 'the payment code is wrong'],
  NOTENOUGH: ['用户余额不足', "the payer's balance is not enough"],
  NOTSUPORTCARD: ['不支持卡类型', 'the card type is not supported'],
  ORDERCLOSED: ['订单已关闭', 'the order is closed'],
  ORDERREVERSED: ['订单已撤销', 'the order was reversed'],
  BUYER_MISMATCH: ['支付帐号错误', 'a different payer paid this order before'],
  TRADE_ERROR: ['交易错误', 'the trade was refused'],
  PARAM_ERROR: ['参数错误', 'invalid parameters'],
  NOAUTH: ['商户无权限', 'the merchant is not authorised'],
  APPID_NOT_EXIST: ['APPID 不存在', 'the AppID does not exist'],
  MCHID_NOT_EXIST: ['商户号不存在', 'the merchant id does not exist'],
  APPID_MCHID_NOT_MATCH: ['AppID 与商户号不匹配', 'the AppID and merchant id do not match'],
  LACK_PARAMS: ['缺少参数', 'missing parameters'],
  XML_FORMAT_ERROR: ['XML 格式错误', 'malformed XML'],
  REQUIRE_POST_METHOD: ['请使用 POST 方法', 'POST required'],
  SIGNERROR: ['签名错误', 'wrong signature'],
  NOT_UTF8: ['编码格式错误', 'not UTF-8'],
  INVALID_REQUEST: ['无效请求', 'invalid request'],
};

/** The v3 trade_state values. */
export type TradeState = 'SUCCESS' | 'REFUND' | 'NOTPAY' | 'CLOSED' | 'REVOKED' | 'USERPAYING' | 'PAYERROR';

/** What each trade_state says; any other state is unknown. */
const TRADE_STATES: Readonly<Record<TradeState, 'paid' | 'waiting' | 'closed' | 'reversed' | 'refunded'>> = {
  SUCCESS: 'paid',
  NOTPAY: 'waiting',
  USERPAYING: 'waiting',
  CLOSED: 'closed',
  PAYERROR: 'closed',
  // Reversed: with a payment time it was paid and the reverse refunded it.
  REVOKED: 'reversed',
  REFUND: 'refunded',
};

/** The v3 refund status values. */
export type RefundStatus = 'SUCCESS' | 'PROCESSING' | 'ABNORMAL' | 'CLOSED';

/** What each refund status says; any other status is unknown. */
const REFUND_STATUSES: Readonly<Record<RefundStatus, 'success' | 'processing' | Refusal>> = {
  SUCCESS: 'success',
  PROCESSING: 'processing',
  ABNORMAL: [
    '退款异常（如用户银行卡作废），请在商户平台处理',
    "refund abnormal (e.g. the payer's card is closed): handle it in the merchant platform",
  ],
  CLOSED: ['退款关闭', 'the refund was closed'],
};

/** A table's own entry for `key` (never one of Object.prototype's). */
function own<T extends object>(table: T, key: string): T[keyof T] | undefined {
  return Object.hasOwn(table, key) ? table[key as keyof T] : undefined;
}

// ---------------------------------------------------------------- requests

/** The v3 request headers besides the signature. */
export function v3Headers(authorization: string, withBody: boolean): Record<string, string> {
  return {
    authorization,
    accept: 'application/json',
    'user-agent': 'hospay (+https://github.com/hospay)',
    ...(withBody ? { 'content-type': 'application/json' } : {}),
  };
}

/** The bill file's request headers (the file is not JSON). */
export function fileHeaders(authorization: string): Record<string, string> {
  return { authorization, accept: '*/*', 'user-agent': 'hospay (+https://github.com/hospay)' };
}

export const V2_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/xml; charset=utf-8',
  accept: 'text/xml',
};

export function v2Common(
  m: { appId: string; mchId: string; signTypeV2: V2SignType; partner?: PartnerIds | null },
  nonce: string,
): V2Common {
  return {
    appid: m.appId,
    mch_id: m.mchId,
    ...(m.partner?.subAppId ? { sub_appid: m.partner.subAppId } : {}),
    ...(m.partner ? { sub_mch_id: m.partner.subMchId } : {}),
    nonce_str: nonce,
    ...(m.signTypeV2 === 'HMAC-SHA256' ? { sign_type: 'HMAC-SHA256' as const } : {}),
  };
}

export function micropayRequest(input: BarcodePayInput): V2MicropayRequest {
  return {
    body: cutBytes(input.subject || '门诊缴费', 128),
    out_trade_no: input.outTradeNo,
    total_fee: String(input.amountFen),
    fee_type: 'CNY',
    spbill_create_ip: hostIp(),
    auth_code: input.authCode,
    ...(input.terminalId ? { device_info: cutBytes(input.terminalId, 32) } : {}),
  };
}

/** What an order needs to know of the configuration. */
export interface OrderIds {
  appId: string;
  mchId: string;
  partner: PartnerIds | null;
  payerApp: PayerApp;
}

export type OrderKind = 'native' | 'h5' | 'jsapi';

/** Where an order of this kind is created: the direct or the service provider's (partner) endpoint. */
export function orderPath(m: { partner: PartnerIds | null }, kind: OrderKind): string {
  return m.partner ? `/v3/pay/partner/transactions/${kind}` : `/v3/pay/transactions/${kind}`;
}

/** The v3 order body: direct (appid, mchid) or partner (sp_appid, sp_mchid, sub_appid, sub_mchid). */
export function orderRequest(
  m: OrderIds,
  input: PrecreateInput,
  notifyUrl: string,
  kind: OrderKind,
  payerClientIp?: string,
  payerId?: string,
): V3OrderRequest | V3PartnerOrderRequest {
  const common = {
    description: cutBytes(input.subject || '门诊缴费', 127),
    out_trade_no: input.outTradeNo,
    time_expire: rfc3339Shanghai(input.expiresAt),
    notify_url: notifyUrl,
    amount: { total: input.amountFen, currency: 'CNY' as const },
  };
  // H5: WeChat compares payer_client_ip with the IP that opens h5_url: the payer's, as hospay's cashier page saw
  // it (behind a proxy, set HOSPAY_TRUST_PROXY); this server's own address only when it is unknown. JSAPI: sent
  // when known.
  const scene =
    kind === 'h5'
      ? { scene_info: { payer_client_ip: payerClientIp ?? hostIp(), h5_info: { type: 'Wap' as const } } }
      : kind === 'jsapi' && payerClientIp
        ? { scene_info: { payer_client_ip: payerClientIp } }
        : {};
  if (kind === 'jsapi' && !payerId) throw new RangeError('a JSAPI order needs the payer id');
  if (m.partner) {
    const payer =
      kind !== 'jsapi'
        ? {}
        : m.payerApp.kind === 'sub_openid'
          ? { payer: { sub_openid: payerId ?? '' } }
          : { payer: { sp_openid: payerId ?? '' } };
    return {
      sp_appid: m.appId,
      sp_mchid: m.mchId,
      ...(m.partner.subAppId ? { sub_appid: m.partner.subAppId } : {}),
      sub_mchid: m.partner.subMchId,
      ...common,
      ...scene,
      ...payer,
    };
  }
  return {
    appid: m.appId,
    mchid: m.mchId,
    ...common,
    ...scene,
    ...(kind === 'jsapi' ? { payer: { openid: payerId ?? '' } } : {}),
  };
}

/** The v2 unifiedorder for a JSAPI payment (the rest of the v2 fields come from v2Common). */
export function unifiedOrderRequest(
  m: { payerApp: PayerApp },
  input: PrecreateInput & { payerId: string; payerClientIp?: string | undefined },
  notifyUrl: string,
): V2UnifiedOrderRequest {
  return {
    body: cutBytes(input.subject || '门诊缴费', 128),
    out_trade_no: input.outTradeNo,
    total_fee: String(input.amountFen),
    fee_type: 'CNY',
    spbill_create_ip: input.payerClientIp ?? hostIp(),
    time_expire: compactShanghai(input.expiresAt),
    notify_url: notifyUrl,
    trade_type: 'JSAPI',
    ...(m.payerApp.kind === 'sub_openid' ? { sub_openid: input.payerId } : { openid: input.payerId }),
  };
}

/** The query path: direct `?mchid=`, partner `?sp_mchid=&sub_mchid=`. */
export function queryPath(m: { mchId: string; partner: PartnerIds | null }, outTradeNo: string): string {
  const no = encodeURIComponent(outTradeNo);
  return m.partner
    ? `/v3/pay/partner/transactions/out-trade-no/${no}?sp_mchid=${encodeURIComponent(m.mchId)}` +
        `&sub_mchid=${encodeURIComponent(m.partner.subMchId)}`
    : `/v3/pay/transactions/out-trade-no/${no}?mchid=${encodeURIComponent(m.mchId)}`;
}

/** The close call: path and body. */
export function closeCall(
  m: { mchId: string; partner: PartnerIds | null },
  outTradeNo: string,
): { path: string; body: V3CloseRequest | V3PartnerCloseRequest } {
  const no = encodeURIComponent(outTradeNo);
  return m.partner
    ? {
        path: `/v3/pay/partner/transactions/out-trade-no/${no}/close`,
        body: { sp_mchid: m.mchId, sub_mchid: m.partner.subMchId },
      }
    : { path: `/v3/pay/transactions/out-trade-no/${no}/close`, body: { mchid: m.mchId } };
}

/** The refund query path (partner mode names the sub-merchant). */
export function refundQueryPath(m: { partner: PartnerIds | null }, outRefundNo: string): string {
  const sub = m.partner ? `?sub_mchid=${encodeURIComponent(m.partner.subMchId)}` : '';
  return `/v3/refund/domestic/refunds/${encodeURIComponent(outRefundNo)}${sub}`;
}

/** The trade bill path (partner mode: the sub-merchant's bill only). */
export function billPath(m: { partner: PartnerIds | null }, date: string): string {
  const sub = m.partner ? `&sub_mchid=${encodeURIComponent(m.partner.subMchId)}` : '';
  return `/v3/bill/tradebill?bill_date=${date}${sub}&bill_type=ALL`;
}

export function refundRequest(input: RefundInput, m?: { partner: PartnerIds | null }): V3RefundRequest {
  return {
    ...(m?.partner ? { sub_mchid: m.partner.subMchId } : {}),
    out_trade_no: input.outTradeNo,
    out_refund_no: input.outRequestNo,
    ...(input.reason ? { reason: cutBytes(input.reason, 80) } : {}),
    amount: { refund: input.amountFen, total: input.totalFen, currency: 'CNY' },
  };
}

// ---------------------------------------------------------------- mappers

export function micropayOutcome(
  answer: V2Answer,
  input: { outTradeNo: string; amountFen: Fen },
  now: Date,
): PayOutcome {
  if (answer.kind === 'unknown') return answer;
  const f = answer.fields;
  if (f.result_code === 'SUCCESS') {
    if (f.out_trade_no !== input.outTradeNo) return { kind: 'unknown', reason: 'answer for another trade' };
    if (f.total_fee !== String(input.amountFen))
      return { kind: 'unknown', reason: `amount differs: ${f.total_fee ?? '(none)'} fen` };
    const channelTradeNo = f.transaction_id ?? '';
    if (channelTradeNo === '') return { kind: 'unknown', reason: 'SUCCESS without transaction_id' };
    return {
      kind: 'paid',
      channelTradeNo,
      paidAt: parseTimeEnd(f.time_end) ?? now,
      buyerUserId: f.openid || undefined,
    };
  }
  if (f.result_code !== 'FAIL')
    return { kind: 'unknown', reason: `result_code ${f.result_code ?? '(none)'}` };
  const code = f.err_code ?? '';
  const meaning = own(MICROPAY_ERR_CODES, code) ?? 'query';
  if (meaning === 'paying') return { kind: 'paying', channelTradeNo: f.transaction_id || undefined };
  if (meaning === 'query') return { kind: 'unknown', reason: `err_code ${code || '(none)'}` };
  return { kind: 'declined', code, zh: f.err_code_des || meaning[0], en: meaning[1] };
}

/** Null when a verified transaction (answer or notification) is about this merchant; else why not. */
export function otherMerchant(
  j: Untrusted<Pick<V3Transaction, 'mchid' | 'sp_mchid' | 'sub_mchid'>>,
  m: { mchId: string; partner: PartnerIds | null },
): string | null {
  if (m.partner) {
    // A partner answer names the sub-merchant; one without it, or for another, is not ours to read.
    if (str(j.sub_mchid) !== m.partner.subMchId) return 'answer for another sub-merchant';
    if (j.sp_mchid !== undefined && str(j.sp_mchid) !== m.mchId) return 'answer for another service provider';
    return null;
  }
  if (j.mchid !== undefined && str(j.mchid) !== m.mchId) return 'answer for another merchant';
  if (j.sub_mchid !== undefined) return 'a service provider answer for a direct merchant';
  return null;
}

export function queryOutcome(
  answer: V3Answer,
  m: { mchId: string; partner: PartnerIds | null },
  outTradeNo: string,
): QueryOutcome {
  if (answer.kind === 'unknown') return answer;
  if (answer.kind === 'error')
    return answer.status === 404 || v3Code(answer.code) === 'not_found'
      ? { kind: 'not_found' }
      : { kind: 'unknown', reason: `${answer.code}: ${answer.message}` };
  const j = fieldsOf<V3Transaction>(answer);
  if (str(j.out_trade_no) !== outTradeNo) return { kind: 'unknown', reason: 'answer for another trade' };
  const other = otherMerchant(j, m);
  if (other) return { kind: 'unknown', reason: other };
  const channelTradeNo = str(j.transaction_id);
  const paid = (): PaidInfo | null => {
    const paidAt = parseRfc3339(j.success_time);
    if (!channelTradeNo || !paidAt) return null;
    const payer = j.payer as Untrusted<V3Transaction['payer']> | null | undefined;
    const openid =
      typeof payer === 'object' && payer !== null
        ? str(payer.openid) || str(payer.sub_openid) || str(payer.sp_openid)
        : '';
    return { channelTradeNo, paidAt, buyerUserId: openid || undefined };
  };
  const state = str(j.trade_state);
  switch (own(TRADE_STATES, state)) {
    case 'paid': {
      const p = paid();
      return p
        ? { kind: 'paid', ...p }
        : { kind: 'unknown', reason: 'SUCCESS without transaction_id/success_time' };
    }
    case 'waiting':
      return { kind: 'waiting', channelTradeNo: channelTradeNo || undefined };
    case 'closed':
      return { kind: 'closed' };
    case 'reversed': {
      const p = paid();
      return p ? { kind: 'refunded', ...p } : { kind: 'closed' };
    }
    case 'refunded': {
      const p = paid();
      return p
        ? { kind: 'refunded', ...p }
        : { kind: 'unknown', reason: 'REFUND without transaction_id/success_time' };
    }
    case undefined:
      return { kind: 'unknown', reason: `trade_state ${state.slice(0, 40) || '(none)'}` };
  }
}

/** A new order's failure (shared by native, H5 and JSAPI), or null when the answer is a verified 2xx. */
function orderFailure(answer: V3Answer): Extract<PrecreateOutcome, { kind: 'failed' }> | null {
  if (answer.kind === 'unknown' && answer.unsigned && v3Code(answer.unsigned.code) !== 'transient')
    // An unsigned refusal of a new order cannot hide a payment: nobody has a code to pay with.
    return {
      kind: 'failed',
      code: answer.unsigned.code,
      zh: answer.unsigned.message || answer.unsigned.code,
      en: `WeChat Pay refused the order: ${answer.unsigned.code} (unsigned answer)`,
      retryable: false,
    };
  if (answer.kind === 'unknown')
    return {
      kind: 'failed',
      code: 'CHANNEL_UNKNOWN',
      zh: '微信支付未给出可信的应答，请重试',
      en: `no trustworthy answer from WeChat Pay (${answer.reason}); try again`,
      retryable: true,
    };
  if (answer.kind === 'error')
    return {
      kind: 'failed',
      code: answer.code,
      zh: answer.message,
      en: `WeChat Pay refused: ${answer.code}`,
      retryable: false,
    };
  return null;
}

/** An answer that says nothing usable about the new order: try again. */
const NO_ORDER = (what: string): Extract<PrecreateOutcome, { kind: 'failed' }> => ({
  kind: 'failed',
  code: 'CHANNEL_UNKNOWN',
  zh: `微信支付应答缺少${what === 'prepay_id' ? '预支付交易会话标识' : '支付链接'}，请重试`,
  en: `the answer has no ${what}; try again`,
  retryable: true,
});

export function orderOutcome(
  answer: V3Answer,
  kind: 'native' | 'h5',
  returnUrl: string | undefined,
): PrecreateOutcome {
  const failed = orderFailure(answer);
  if (failed || answer.kind !== 'ok') return failed ?? NO_ORDER('payment URL');
  const j = fieldsOf<V3OrderAnswer>(answer);
  const url = str(kind === 'native' ? j.code_url : j.h5_url);
  const expected = kind === 'native' ? /^weixin:\/\/\S+$/ : /^https?:\/\/\S+$/;
  if (!expected.test(url)) return NO_ORDER('payment URL');
  if (kind === 'h5' && returnUrl)
    return {
      kind: 'created',
      codeUrl: `${url}${url.includes('?') ? '&' : '?'}redirect_url=${encodeURIComponent(returnUrl)}`,
    };
  return { kind: 'created', codeUrl: url };
}

const PREPAY_ID = /^[0-9A-Za-z_-]{1,64}$/;

/** The v3 JSAPI order's answer: the prepay_id, or why there is none. */
export function jsapiOutcome(
  answer: V3Answer,
): { kind: 'prepay'; prepayId: string } | Extract<PrecreateOutcome, { kind: 'failed' }> {
  const failed = orderFailure(answer);
  if (failed || answer.kind !== 'ok') return failed ?? NO_ORDER('prepay_id');
  const prepayId = str(fieldsOf<V3JsapiAnswer>(answer).prepay_id);
  return PREPAY_ID.test(prepayId) ? { kind: 'prepay', prepayId } : NO_ORDER('prepay_id');
}

/** unifiedorder err_code values after which trying again may work; any other is a refusal of this order. */
const UNIFIEDORDER_TRANSIENT = new Set(['SYSTEMERROR', 'BANKERROR', 'FREQUENCY_LIMITED']);

/** The v2 unifiedorder (JSAPI) answer: the prepay_id, or why there is none. */
export function unifiedOrderOutcome(
  answer: V2Answer,
): { kind: 'prepay'; prepayId: string } | Extract<PrecreateOutcome, { kind: 'failed' }> {
  if (answer.kind === 'unknown')
    return {
      kind: 'failed',
      code: 'CHANNEL_UNKNOWN',
      zh: '微信支付未给出可信的应答，请重试',
      en: `no trustworthy answer from WeChat Pay (${answer.reason}); try again`,
      retryable: true,
    };
  const f = answer.fields;
  if (f.result_code !== 'SUCCESS') {
    const code = f.err_code ?? '';
    if (f.result_code !== 'FAIL' || code === '' || UNIFIEDORDER_TRANSIENT.has(code))
      return {
        kind: 'failed',
        code: code || 'CHANNEL_UNKNOWN',
        zh: f.err_code_des || '微信支付暂时无法下单，请重试',
        en: `WeChat Pay could not create the order (${code || f.result_code || 'no result_code'}); try again`,
        retryable: true,
      };
    return {
      kind: 'failed',
      code,
      zh: f.err_code_des || code,
      en: `WeChat Pay refused: ${code}`,
      retryable: false,
    };
  }
  const prepayId = f.prepay_id ?? '';
  if (f.trade_type !== undefined && f.trade_type !== 'JSAPI') return NO_ORDER('prepay_id');
  return PREPAY_ID.test(prepayId) ? { kind: 'prepay', prepayId } : NO_ORDER('prepay_id');
}

/**
 * The close answer: a retry, or a note for the record when the trade's state (queried next) says what happened:
 * after 204 (which WeChat also answers for an order number it does not know), ORDERPAID or ORDER_CLOSED.
 */
export function closeAnswer(answer: V3Answer): CloseOutcome | { kind: 'confirm'; note: string } {
  if (answer.kind === 'unknown') return { kind: 'retry', reason: answer.reason };
  if (answer.kind === 'error' && v3Code(answer.code) !== 'settled')
    return { kind: 'retry', reason: `${answer.code}: ${answer.message}` };
  return {
    kind: 'confirm',
    note:
      answer.kind === 'ok' ? `closed (HTTP ${answer.status}); confirming` : `error ${answer.code}; querying`,
  };
}

/** The close's result from the trade's state queried after it. */
export function closedTrade(q: QueryOutcome): CloseOutcome {
  switch (q.kind) {
    case 'paid':
    case 'refunded':
      return { kind: 'paid', channelTradeNo: q.channelTradeNo, paidAt: q.paidAt, buyerUserId: q.buyerUserId };
    case 'closed':
    case 'not_found':
      return { kind: 'closed' };
    case 'waiting':
      return { kind: 'retry', reason: 'close answered, but the trade is still open' };
    case 'unknown':
      return { kind: 'retry', reason: `closed; its state is unknown: ${q.reason}` };
  }
}

/** The reverse answer; `closed` here means reversed: closed or refunded, which the trade's state settles. */
export function reverseOutcome(answer: V2Answer): CancelOutcome {
  if (answer.kind === 'unknown') return { kind: 'retry', reason: answer.reason };
  const f = answer.fields;
  const code = f.err_code ?? '';
  if (f.recall === 'Y' || (f.result_code !== 'SUCCESS' && (code === 'SYSTEMERROR' || code === '')))
    return {
      kind: 'retry',
      reason: `reverse: ${f.result_code ?? ''} ${code} recall=${f.recall ?? ''}`.trim(),
    };
  if (f.result_code !== 'SUCCESS')
    return {
      kind: 'failed',
      code,
      zh: f.err_code_des || '撤销失败',
      en:
        code === 'REVERSE_EXPIRE'
          ? 'too late to reverse (over 7 days): refund instead'
          : `reverse refused (${code})`,
    };
  return { kind: 'closed' };
}

/** A reversed trade's result from its state: paid before (or now) means the reverse refunded it. */
export function reversedTrade(q: QueryOutcome): CancelOutcome {
  switch (q.kind) {
    case 'paid':
    case 'refunded':
      return {
        kind: 'refunded',
        channelTradeNo: q.channelTradeNo,
        paidAt: q.paidAt,
        buyerUserId: q.buyerUserId,
      };
    case 'closed':
    case 'not_found':
      return { kind: 'closed' };
    case 'waiting':
      return { kind: 'retry', reason: 'reversed, but the trade still shows as open' };
    case 'unknown':
      return { kind: 'retry', reason: `reversed; its state is unknown: ${q.reason}` };
  }
}

export function refundOutcome(answer: V3Answer, input: RefundInput, now: Date): RefundOutcome {
  if (answer.kind === 'unknown') return answer;
  if (answer.kind === 'error')
    return {
      kind: 'failed',
      code: answer.code,
      zh: answer.message,
      en: `WeChat Pay refused the refund: ${answer.code}`,
    };
  const j = fieldsOf<V3Refund>(answer);
  if (str(j.out_refund_no) !== input.outRequestNo)
    return { kind: 'unknown', reason: 'answer for another refund' };
  if (j.out_trade_no !== undefined && str(j.out_trade_no) !== input.outTradeNo)
    return { kind: 'unknown', reason: 'answer for another trade' };
  const amount = j.amount as Untrusted<V3Refund['amount']> | null | undefined;
  const refundFen = typeof amount === 'object' && amount !== null ? amount.refund : undefined;
  if (refundFen !== undefined && refundFen !== input.amountFen)
    return { kind: 'unknown', reason: `refund amount differs: ${String(refundFen)} fen` };
  const status = str(j.status);
  const refundId = str(j.refund_id);
  const meaning = own(REFUND_STATUSES, status);
  switch (meaning) {
    case 'success':
      if (!refundId) return { kind: 'unknown', reason: 'SUCCESS without refund_id' };
      return {
        kind: 'success',
        channelRefundNo: refundId,
        refundedAt: parseRfc3339(j.success_time) ?? parseRfc3339(j.create_time) ?? now,
      };
    case 'processing':
      return { kind: 'unknown', reason: 'PROCESSING: accepted, not yet done' };
    case undefined:
      return { kind: 'unknown', reason: `refund status ${status.slice(0, 40) || '(none)'}` };
    default:
      return { kind: 'failed', code: status, zh: meaning[0], en: meaning[1] };
  }
}

/** A refund outcome that asks to query again while WeChat is still processing it. */
export function stillProcessing(out: RefundOutcome): boolean {
  return out.kind === 'unknown' && out.reason.startsWith('PROCESSING');
}

/** The trade bill answer: where the file is and its SHA1, or why it cannot be used. */
export function billFile(
  answer: { json: Record<string, unknown> | null },
  baseUrl: string,
): { url: URL; sha1: string } | { unusable: string } {
  const j = fieldsOf<V3TradeBillAnswer>(answer);
  const hashType = str(j.hash_type) || 'SHA1';
  const hashValue = str(j.hash_value).toLowerCase();
  let target: URL | null;
  try {
    target = new URL(str(j.download_url));
  } catch {
    target = null;
  }
  if (
    !target ||
    target.origin !== new URL(baseUrl).origin ||
    hashType !== 'SHA1' ||
    !/^[0-9a-f]{40}$/.test(hashValue)
  )
    return { unusable: hashType };
  return { url: target, sha1: hashValue };
}

/** Whether a verified bill refusal means "no trades that day". */
export function noBill(answer: V3Answer): boolean {
  return answer.kind === 'error' && v3Code(answer.code) === 'no_bill';
}

// ---------------------------------------------------------------- notifications

/** A notification read after its signature was verified. */
export type NotificationRead =
  | { ok: true; eventType: string; outTradeNo: string }
  | { ok: false; reason: string; eventType: string; outTradeNo?: string | undefined };

/** Parses a verified notification, decrypts its resource and checks it is for this merchant. */
export function readNotification(
  body: Buffer,
  apiV3Key: string,
  m: { mchId: string; partner: PartnerIds | null },
): NotificationRead {
  let event: Untrusted<V3Notification>;
  try {
    const j = JSON.parse(body.toString('utf8')) as unknown;
    if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error('not an object');
    event = j as Untrusted<V3Notification>;
  } catch {
    return { ok: false, reason: 'unparseable notification', eventType: '' };
  }
  const eventType = str(event.event_type);
  const resource = event.resource;
  if (typeof resource !== 'object' || resource === null)
    return { ok: false, reason: 'no resource', eventType };
  const r = resource as Untrusted<EncryptedResource>;
  let plain: Untrusted<V3NotifiedTransaction>;
  try {
    const text = decryptResource(apiV3Key, {
      algorithm: str(r.algorithm),
      ciphertext: str(r.ciphertext),
      nonce: str(r.nonce),
      associated_data: str(r.associated_data),
    }).toString('utf8');
    const j = JSON.parse(text) as unknown;
    if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error('not an object');
    plain = j as Untrusted<V3NotifiedTransaction>;
  } catch (e) {
    return { ok: false, reason: `decryption failed: ${(e as Error).message.slice(0, 80)}`, eventType };
  }
  const outTradeNo = str(plain.out_trade_no);
  const other = otherMerchant(plain, m);
  if (other) return { ok: false, reason: other.replace('answer', 'notification'), eventType, outTradeNo };
  return { ok: true, eventType, outTradeNo };
}

/**
 * Reads a v2 payment notification (XML, for orders made with the v2 unifiedorder): return_code SUCCESS, a
 * verified sign, our merchant (and sub-merchant). result_code SUCCESS reads as TRANSACTION.SUCCESS.
 */
export function readV2Notification(body: Buffer, check: V2Check): NotificationRead {
  const a = readV2({ status: 200, headers: {}, body }, check);
  if (a.kind !== 'ok') return { ok: false, reason: a.reason, eventType: '' };
  const outTradeNo = a.fields.out_trade_no ?? '';
  const eventType = a.fields.result_code === 'SUCCESS' ? 'TRANSACTION.SUCCESS' : 'v2 result_code FAIL';
  return { ok: true, eventType, outTradeNo };
}

/** Whether a notification body is v2 XML rather than v3 JSON. */
export function isV2Notification(body: Buffer): boolean {
  return /^\s*</.test(body.subarray(0, 64).toString('utf8'));
}

/** A v2 notification taken. */
export const NOTIFY_V2_OK: NotifyAck = {
  status: 200,
  contentType: 'text/xml; charset=utf-8',
  body: '<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>',
};

/** A v2 notification not taken: WeChat sends it again later. */
export function notifyV2Fail(reason: string): NotifyAck {
  const msg = reason.replace(/[<>&\]]/g, ' ').slice(0, 100);
  return {
    status: 200,
    contentType: 'text/xml; charset=utf-8',
    body: `<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[${msg}]]></return_msg></xml>`,
  };
}

/** The notification is about a payment of one of our trades. */
export function isPaidTradeEvent(read: { eventType: string; outTradeNo: string }): boolean {
  return read.eventType === 'TRANSACTION.SUCCESS' && read.outTradeNo !== '';
}

/** Taken: 204, no body. */
export const NOTIFY_OK: NotifyAck = { status: 204, contentType: 'text/plain', body: '' };

/** Not taken: WeChat sends it again later. */
export function notifyFail(reason: string): NotifyAck {
  return {
    status: 500,
    contentType: 'application/json',
    body: JSON.stringify({ code: 'FAIL', message: reason.slice(0, 100) }),
  };
}

// ---------------------------------------------------------------- OAuth2 (网页授权, snsapi_base)

/**
 * Where the payer's browser goes so that WeChat tells us their openid under `appId` without asking them
 * (snsapi_base). WeChat wants the parameters in exactly this order and the #wechat_redirect fragment.
 */
export function authorizeUrl(base: string, appId: string, redirectUri: string, state: string): string {
  return (
    `${base}/connect/oauth2/authorize?appid=${encodeURIComponent(appId)}` +
    `&redirect_uri=${encodeURIComponent(redirectUri)}&response_type=code&scope=snsapi_base` +
    `&state=${encodeURIComponent(state)}#wechat_redirect`
  );
}

/** GET /sns/oauth2/access_token: the code (from the redirect) for the payer's openid. */
export function snsTokenPath(appId: string, secret: string, code: string): string {
  return (
    `/sns/oauth2/access_token?appid=${encodeURIComponent(appId)}&secret=${encodeURIComponent(secret)}` +
    `&code=${encodeURIComponent(code)}&grant_type=authorization_code`
  );
}

/** The code exchange for the record: neither the secret nor the code. */
export const SNS_TOKEN_RECORD =
  'GET /sns/oauth2/access_token?appid=…&secret=***&code=***&grant_type=authorization_code';

/** The code exchange's answer (success): the fields read. */
export interface SnsTokenAnswer {
  access_token: string;
  openid: string;
  scope: string;
}

/** The OAuth2 error codes with a message of their own; any other is shown with WeChat's errmsg. */
const SNS_ERRORS: Readonly<Record<string, Refusal>> = {
  '40029': [
    '授权码无效、已使用或已过期，请重新进入页面',
    'the OAuth code is invalid, used or expired; open the page again',
  ],
  '40163': ['授权码已被使用，请重新进入页面', 'the OAuth code was used already; open the page again'],
  '40125': [
    '公众号 AppSecret 不正确（app_secret）',
    "the official account's AppSecret is wrong (app_secret)",
  ],
  '40001': [
    '公众号 AppSecret 不正确（app_secret）',
    "the official account's AppSecret is wrong (app_secret)",
  ],
  '40013': ['公众号 AppID 不正确', 'the AppID is not valid'],
  '41008': ['缺少授权码', 'the OAuth code is missing'],
  '-1': ['微信系统繁忙，请稍后重试', 'WeChat is busy; try again later'],
  '45011': ['调用过于频繁，请稍后重试', 'too many calls; try again later'],
};

const OPENID = /^[0-9A-Za-z_-]{6,64}$/;

/**
 * Reads the code exchange's answer. It is not signed (WeChat's OAuth2 answers never are): it is trusted as far
 * as the TLS connection to the configured sns_base_url is, and only an openid of the right form is taken.
 */
export function payerIdAnswer(res: Received): PayerIdOutcome {
  const unknown = (why: string): PayerIdOutcome => ({
    kind: 'failed',
    code: 'CHANNEL_UNKNOWN',
    zh: '未能从微信获取付款人身份，请重新进入页面',
    en: `could not learn the payer's id from WeChat (${why}); open the page again`,
  });
  if (res.status !== 200) return unknown(`HTTP ${res.status}`);
  let j: Untrusted<SnsTokenAnswer & { errcode: number; errmsg: string }>;
  try {
    const v = JSON.parse(res.body.toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return unknown('unexpected answer');
    j = v as typeof j;
  } catch {
    return unknown('unparseable answer');
  }
  if (j.errcode !== undefined && j.errcode !== 0) {
    const code = typeof j.errcode === 'number' || typeof j.errcode === 'string' ? String(j.errcode) : '?';
    const known = own(SNS_ERRORS, code);
    const msg = str(j.errmsg)
      .replace(/,?\s*(rid|hints):.*$/, '')
      .slice(0, 80);
    return {
      kind: 'failed',
      code,
      zh: known?.[0] ?? `微信网页授权失败（${code} ${msg}）`,
      en: known?.[1] ?? `WeChat OAuth2 failed: ${code} ${msg}`.trim(),
    };
  }
  const openid = str(j.openid);
  if (!OPENID.test(openid)) return unknown('no openid');
  return { kind: 'ok', payerId: openid };
}

// ---------------------------------------------------------------- call records

/** Fields whose values a call record never shows: the payer's identity and the payment code. */
export const SENSITIVE = [
  'auth_code',
  'openid',
  'sub_openid',
  'sp_openid',
  'payer',
  'access_token',
  'refresh_token',
  'unionid',
  'user_received_account',
  'payer_client_ip',
  'spbill_create_ip',
  'id_card',
  'name',
  'phone',
] as const;

/** Settings that may appear in a record as they are (everything else configured is masked when seen). */
const PLAIN_SETTINGS = new Set([
  'mch_id',
  'sub_mchid',
  'mode',
  'jsapi_api',
  'verify_mode',
  'sign_type_v2',
  'timeout_ms',
  'api_base_url',
  'oauth_base_url',
  'sns_base_url',
]);

/**
 * A request or answer text (XML or JSON) with the SENSITIVE fields' values and the app's configured values
 * (AppID, keys) masked. The call recorder then scrubs personal numbers and key material and cuts it.
 */
export function redactWire(text: string, merchant: Readonly<Record<string, string>>): string {
  let t = text;
  for (const k of SENSITIVE) {
    t = t.replace(new RegExp(`(<${k}>)[\\s\\S]*?(</${k}>)`, 'g'), '$1***$2');
    t = t.replace(new RegExp(`("${k}"\\s*:\\s*)("(?:[^"\\\\]|\\\\.)*"|\\{[^{}]*\\})`, 'g'), '$1"***"');
  }
  for (const [k, v] of Object.entries(merchant)) {
    if (PLAIN_SETTINGS.has(k) || v.length < 8 || /^[0-9]+$/.test(v) || /^https?:\/\//.test(v)) continue;
    t = t.split(v).join('***');
  }
  return t;
}

/** A v2 request for the record: the sign is left out. */
export function v2RecordText(path: string, xml: string): string {
  return `POST ${path}\n${xml.replace(/<sign>[^<]*<\/sign>/, '<sign>…</sign>')}`;
}

/** A notification for the record: the ciphertext is left out. */
export function notificationText(body: Buffer): string {
  return body.toString('utf8').replace(/"ciphertext"\s*:\s*"[^"]*"/, '"ciphertext":"…"');
}

/** An outcome in a record's outcome column: kind, code, reason. */
export function describe(o: { kind: string; code?: unknown; reason?: unknown }): string {
  const code = typeof o.code === 'string' ? ` ${o.code}` : '';
  const reason = typeof o.reason === 'string' ? `: ${o.reason}` : '';
  return `${o.kind}${code}${reason}`.slice(0, 300);
}

// ---------------------------------------------------------------- values

export const str = (v: unknown): string => (typeof v === 'string' ? v : '');

let machineIp: string | undefined;
/** v2 spbill_create_ip: "the IP of the machine that calls the API". */
export function hostIp(): string {
  if (machineIp === undefined) {
    machineIp = '127.0.0.1';
    for (const list of Object.values(os.networkInterfaces()))
      for (const a of list ?? [])
        if (a.family === 'IPv4' && !a.internal) {
          machineIp = a.address;
          return machineIp;
        }
  }
  return machineIp;
}

/** Cuts a UTF-8 text to at most `max` bytes without splitting a character. */
export function cutBytes(text: string, max: number): string {
  let out = '';
  let n = 0;
  for (const ch of text) {
    n += Buffer.byteLength(ch);
    if (n > max) break;
    out += ch;
  }
  return out;
}

/** RFC 3339 in Beijing time: 2024-03-01T10:34:56+08:00. */
export function rfc3339Shanghai(d: Date): string {
  return `${new Date(d.getTime() + 8 * 3600_000).toISOString().slice(0, 19)}+08:00`;
}

/** v2 time_expire: yyyyMMddHHmmss in Beijing time. */
export function compactShanghai(d: Date): string {
  return new Date(d.getTime() + 8 * 3600_000).toISOString().slice(0, 19).replace(/[-:T]/g, '');
}

/** v2 time_end (yyyyMMddHHmmss, Beijing) to a Date, or null. */
export function parseTimeEnd(s: string | undefined): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(s ?? '');
  if (!m) return null;
  const t = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}+08:00`);
  return Number.isNaN(t) ? null : new Date(t);
}

export function parseRfc3339(s: unknown): Date | null {
  if (typeof s !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/.test(s)) return null;
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : new Date(t);
}
