/**
 * Alipay's OpenAPI gateway on the wire: the request shapes (biz_content per method), the answer shapes, the
 * answer codes and the mappers from a verified answer to the channel's outcomes, and what of a request or an
 * answer may go into a call record.
 *
 * Every answer is mapped pessimistically: only a verified answer that clearly says so is success; a system
 * error, an unknown code or status, an answer about another order is "unknown" (the platform queries), and for
 * a refund the adapter asks alipay.trade.fastpay.refund.query before answering (`AskAgain`).
 */
import type {
  BarcodePayInput,
  CancelOutcome,
  CloseOutcome,
  PaidInfo,
  PayOutcome,
  PrecreateInput,
  PrecreateOutcome,
  QueryOutcome,
  RefundInput,
  RefundOutcome,
  WapPayInput,
} from '../channel.js';
import type { Clock } from '../../domain/clock.js';
import { formatShanghai } from '../../domain/clock.js';
import { formatFen, parseYuanToFen } from '../../domain/money.js';
import { excerpt, redactValue, scrubText } from '../../formats/redact.js';

export const ALIPAY_GATEWAY = 'https://openapi.alipay.com/gateway.do';
export const ALIPAY_SANDBOX_GATEWAY = 'https://openapi-sandbox.dl.alipaydev.com/gateway.do';
export const DEFAULT_TIMEOUT_MS = 10_000;

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------------------------------------
// Requests: the gateway's public parameters and each method's biz_content
// ---------------------------------------------------------------------------------------------------------

/** The public parameters Alipay's SDKs put in the URL; the rest (biz_content) goes in the form body. */
const URL_PARAMS: ReadonlySet<string> = new Set([
  'app_id',
  'method',
  'format',
  'charset',
  'sign_type',
  'sign',
  'timestamp',
  'version',
  'notify_url',
  'return_url',
  'auth_token',
  'app_auth_token',
  'app_cert_sn',
  'alipay_root_cert_sn',
]);

/** A signed request as a POST to the gateway: the public parameters in the URL, the rest form-encoded. */
export function gatewayPost(gatewayUrl: string, params: Readonly<Record<string, string>>) {
  const url = new URL(gatewayUrl);
  const form = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (URL_PARAMS.has(k)) url.searchParams.set(k, v);
    else form.set(k, v);
  }
  return {
    url: url.toString(),
    headers: {
      'content-type': 'application/x-www-form-urlencoded;charset=utf-8',
      accept: 'application/json',
    },
    body: form.toString(),
  };
}

/**
 * The wap cashier is a page the payer's browser opens: a GET of the gateway with every parameter signed.
 * Written as the SDK's pageExecute writes a GET: the public parameters in the URL, then the rest
 * percent-encoded.
 */
export function cashierUrl(gatewayUrl: string, params: Readonly<Record<string, string>>): string {
  const url = new URL(gatewayUrl);
  const rest: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (URL_PARAMS.has(k)) url.searchParams.set(k, v);
    else rest.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  }
  return `${url.toString()}&${rest.join('&')}`;
}

/** The merchant-side fields of pay and precreate, from the app's settings. */
export interface MerchantFields {
  sellerId?: string | undefined;
  storeId?: string | undefined;
  sysServiceId?: string | undefined;
}

type MerchantBiz = {
  seller_id?: string;
  store_id?: string;
  extend_params?: { sys_service_id: string };
};

/** alipay.trade.pay (barcode), in the order the fields are sent. */
export type TradePayBiz = {
  out_trade_no: string;
  scene: 'bar_code';
  auth_code: string;
  product_code: 'FACE_TO_FACE_PAYMENT';
  subject: string;
  total_amount: string;
  operator_id?: string;
  terminal_id?: string;
} & MerchantBiz;

export type PrecreateBiz = {
  out_trade_no: string;
  total_amount: string;
  subject: string;
  product_code: 'FACE_TO_FACE_PAYMENT';
  /** Whole minutes, 1m–15d. */
  timeout_express: string;
} & MerchantBiz;

export type WapPayBiz = {
  out_trade_no: string;
  total_amount: string;
  subject: string;
  product_code: 'QUICK_WAP_WAY';
  time_expire: string;
  quit_url: string;
  extend_params?: { sys_service_id: string };
};

/** alipay.trade.query, .cancel, .close. */
export type TradeRefBiz = { out_trade_no: string };

export type RefundBiz = {
  out_trade_no: string;
  refund_amount: string;
  out_request_no: string;
  refund_reason?: string;
};

export type RefundQueryBiz = {
  out_trade_no: string;
  out_request_no: string;
  query_options: ['gmt_refund_pay'];
};

export type BillUrlBiz = { bill_type: 'trade'; bill_date: string };

/** Every method the adapter calls, with its biz_content. */
export interface Requests {
  'alipay.trade.pay': TradePayBiz;
  'alipay.trade.precreate': PrecreateBiz;
  'alipay.trade.wap.pay': WapPayBiz;
  'alipay.trade.query': TradeRefBiz;
  'alipay.trade.cancel': TradeRefBiz;
  'alipay.trade.close': TradeRefBiz;
  'alipay.trade.refund': RefundBiz;
  'alipay.trade.fastpay.refund.query': RefundQueryBiz;
  'alipay.data.dataservice.bill.downloadurl.query': BillUrlBiz;
}
export type Method = keyof Requests;

function merchantBiz(m: MerchantFields): MerchantBiz {
  const biz: MerchantBiz = {};
  if (m.sellerId) biz.seller_id = m.sellerId;
  if (m.storeId) biz.store_id = m.storeId;
  if (m.sysServiceId) biz.extend_params = { sys_service_id: m.sysServiceId };
  return biz;
}

export function tradePayBiz(input: BarcodePayInput, m: MerchantFields): TradePayBiz {
  return {
    out_trade_no: input.outTradeNo,
    scene: 'bar_code',
    auth_code: input.authCode,
    product_code: 'FACE_TO_FACE_PAYMENT',
    subject: input.subject.slice(0, 256),
    total_amount: formatFen(input.amountFen),
    ...(input.operatorId ? { operator_id: input.operatorId } : {}),
    ...(input.terminalId ? { terminal_id: input.terminalId } : {}),
    ...merchantBiz(m),
  };
}

/**
 * Alipay closes the trade itself after timeout_express (whole minutes, 1m–15d): rounded down, so the payer can
 * never pay after the platform's own expiry.
 */
export function precreateBiz(input: PrecreateInput, m: MerchantFields, now: Date): PrecreateBiz {
  const minutes = Math.floor((input.expiresAt.getTime() - now.getTime()) / 60_000);
  return {
    out_trade_no: input.outTradeNo,
    total_amount: formatFen(input.amountFen),
    subject: input.subject.slice(0, 256),
    product_code: 'FACE_TO_FACE_PAYMENT',
    timeout_express: `${Math.min(Math.max(minutes, 1), 15 * 24 * 60)}m`,
    ...merchantBiz(m),
  };
}

export function wapPayBiz(input: WapPayInput, sysServiceId: string | undefined): WapPayBiz {
  return {
    out_trade_no: input.outTradeNo,
    total_amount: formatFen(input.amountFen),
    subject: input.subject.slice(0, 256),
    product_code: 'QUICK_WAP_WAY',
    time_expire: formatShanghai(input.expiresAt),
    quit_url: input.returnUrl,
    ...(sysServiceId ? { extend_params: { sys_service_id: sysServiceId } } : {}),
  };
}

export function refundBiz(input: RefundInput): RefundBiz {
  return {
    out_trade_no: input.outTradeNo,
    refund_amount: formatFen(input.amountFen),
    out_request_no: input.outRequestNo,
    ...(input.reason ? { refund_reason: input.reason.slice(0, 256) } : {}),
  };
}

export function refundQueryBiz(input: RefundInput): RefundQueryBiz {
  return {
    out_trade_no: input.outTradeNo,
    out_request_no: input.outRequestNo,
    query_options: ['gmt_refund_pay'],
  };
}

// ---------------------------------------------------------------------------------------------------------
// Answers: the fields read of each method's verified `<method>_response`
// ---------------------------------------------------------------------------------------------------------

/** What every answer carries. Absent and empty fields read alike (undefined). */
interface CommonAnswer {
  code?: string;
  msg?: string;
  /** Without the 'aop.' prefix ('aop.ACQ.SYSTEM_ERROR' and 'ACQ.SYSTEM_ERROR' are the same code); '' if none. */
  sub_code: string;
  sub_msg?: string;
}

export interface PayAnswer extends CommonAnswer {
  trade_no?: string;
  out_trade_no?: string;
  total_amount?: string;
  buyer_logon_id?: string;
  buyer_user_id?: string;
  buyer_open_id?: string;
  gmt_payment?: string;
  send_pay_date?: string;
}

export interface QueryAnswer extends PayAnswer {
  trade_status?: string;
  buyer_pay_amount?: string;
  receipt_amount?: string;
}

export interface PrecreateAnswer extends CommonAnswer {
  out_trade_no?: string;
  trade_no?: string;
  qr_code?: string;
}

export interface CancelAnswer extends CommonAnswer {
  trade_no?: string;
  action?: string;
  retry_flag?: string;
  gmt_refund_pay?: string;
}

export type CloseAnswer = CommonAnswer;

export interface RefundAnswer extends CommonAnswer {
  out_trade_no?: string;
  trade_no?: string;
  fund_change?: string;
  gmt_refund_pay?: string;
}

export interface RefundQueryAnswer extends CommonAnswer {
  out_request_no?: string;
  trade_no?: string;
  refund_amount?: string;
  refund_status?: string;
  gmt_refund_pay?: string;
}

export interface BillUrlAnswer extends CommonAnswer {
  bill_download_url?: string;
}

export interface Answers {
  'alipay.trade.pay': PayAnswer;
  'alipay.trade.precreate': PrecreateAnswer;
  'alipay.trade.wap.pay': CommonAnswer;
  'alipay.trade.query': QueryAnswer;
  'alipay.trade.cancel': CancelAnswer;
  'alipay.trade.close': CloseAnswer;
  'alipay.trade.refund': RefundAnswer;
  'alipay.trade.fastpay.refund.query': RefundQueryAnswer;
  'alipay.data.dataservice.bill.downloadurl.query': BillUrlAnswer;
}

/** A verified answer, read; or why there is none (timeout, HTTP error, bad signature, configuration). */
export type Verified<A> = { ok: true; data: A } | { ok: false; reason: string };

/**
 * The string fields of a verified response object, as the method's answer shape (other values and empty
 * strings are absent). `method` only picks the shape.
 */
export function readAnswer<M extends Method>(_method: M, d: Record<string, unknown>): Answers[M] {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(d)) if (typeof v === 'string' && v !== '') out[k] = v;
  out['sub_code'] = (out['sub_code'] ?? '').replace(/^aop\./, '');
  return out as unknown as Answers[M];
}

/** 'yyyy-MM-dd HH:mm:ss' in Beijing time, as Alipay writes times. */
export function parseAlipayTime(text: string | undefined): Date | null {
  if (!text || !/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(text)) return null;
  const d = new Date(`${text.replace(' ', 'T')}+08:00`);
  return Number.isNaN(d.getTime()) ? null : d;
}

// ---------------------------------------------------------------------------------------------------------
// Codes
// ---------------------------------------------------------------------------------------------------------

type Text = { zh: string; en: string };

const SUCCESS = '10000';
/** alipay.trade.pay: the payer confirms on the phone. */
const PAYING = '10003';
const SYSTEM_ERROR = '20000';
const BUSINESS_FAILURE = '40004';

/** Gateway-level refusals: the request was not processed at all (missing/invalid arguments, no permission). */
const GATEWAY_REFUSALS: ReadonlySet<string> = new Set(['20001', '40001', '40002', '40006']);

function isGatewayRefusal(code: string | undefined): code is string {
  return code !== undefined && GATEWAY_REFUSALS.has(code);
}

function isSystemError(d: CommonAnswer): boolean {
  return d.code === SYSTEM_ERROR || d.sub_code === 'ACQ.SYSTEM_ERROR' || d.sub_code.startsWith('isp.');
}

/** A code table's entry for a code, never an inherited property ('constructor' is no code). */
function lookup<K extends string>(table: Readonly<Record<K, Text>>, code: string): Text | undefined {
  return Object.hasOwn(table, code) ? table[code as K] : undefined;
}

/** alipay.trade.pay: the final refusals (the trade is not paid and never will be). */
export const PAY_DECLINES = {
  'ACQ.TRADE_HAS_CLOSE': { zh: '交易已关闭', en: 'the trade is closed' },
  'ACQ.PAYMENT_AUTH_CODE_INVALID': { zh: '付款码无效，请顾客刷新后重新出示', en: 'invalid payment code' },
  'ACQ.BUYER_BALANCE_NOT_ENOUGH': { zh: '买家余额不足', en: "the buyer's balance is not enough" },
  'ACQ.BUYER_BANKCARD_BALANCE_NOT_ENOUGH': {
    zh: '买家银行卡余额不足',
    en: "the buyer's bank card balance is not enough",
  },
  'ACQ.ERROR_BALANCE_PAYMENT_DISABLE': { zh: '余额支付功能关闭', en: 'balance payment is disabled' },
  'ACQ.BUYER_SELLER_EQUAL': { zh: '买卖家不能相同', en: 'buyer and seller are the same' },
  'ACQ.TRADE_BUYER_NOT_MATCH': { zh: '交易买家不匹配', en: 'the buyer does not match the trade' },
  'ACQ.BUYER_ENABLE_STATUS_FORBID': { zh: '买家状态非法', en: "the buyer's account is not usable" },
  'ACQ.PULL_MOBILE_CASHIER_FAIL': { zh: '唤起移动收银台失败', en: 'could not open the mobile cashier' },
  'ACQ.MOBILE_PAYMENT_SWITCH_OFF': {
    zh: '用户的无线支付开关关闭',
    en: "the buyer's mobile payment is switched off",
  },
  'ACQ.PAYMENT_FAIL': { zh: '支付失败', en: 'the payment failed' },
  'ACQ.BUYER_PAYMENT_AMOUNT_DAY_LIMIT_ERROR': {
    zh: '买家付款日限额超限',
    en: "over the buyer's daily limit",
  },
  'ACQ.BUYER_PAYMENT_AMOUNT_MONTH_LIMIT_ERROR': {
    zh: '买家付款月限额超限',
    en: "over the buyer's monthly limit",
  },
  'ACQ.BEYOND_PAY_RESTRICTION': { zh: '商户收款额度超限', en: "over the merchant's collection limit" },
  'ACQ.BEYOND_PER_RECEIPT_RESTRICTION': {
    zh: '商户收款金额超过月限额',
    en: "over the merchant's monthly limit",
  },
  'ACQ.SELLER_BEEN_BLOCKED': { zh: '商家账号被冻结', en: "the merchant's account is blocked" },
  'ACQ.ERROR_BUYER_CERTIFY_LEVEL_LIMIT': { zh: '买家未通过实名认证', en: 'the buyer is not verified' },
  'ACQ.PAYMENT_REQUEST_HAS_RISK': { zh: '支付有风险', en: 'refused as risky' },
  'ACQ.NO_PAYMENT_INSTRUMENTS_AVAILABLE': { zh: '没有可用的支付工具', en: 'no payment instrument available' },
  'ACQ.USER_FACE_PAYMENT_SWITCH_OFF': {
    zh: '用户当面付付款开关关闭',
    en: "the buyer's in-store payment is switched off",
  },
  'ACQ.INVALID_STORE_ID': { zh: '商户门店编号无效', en: 'invalid store id' },
  'ACQ.TOTAL_FEE_EXCEED': { zh: '订单总金额超过限额', en: 'the amount is over the limit' },
  'ACQ.INVALID_PARAMETER': { zh: '参数无效', en: 'invalid parameter' },
  'ACQ.ACCESS_FORBIDDEN': { zh: '无权限使用接口', en: 'no permission for this interface' },
  'ACQ.PARTNER_ERROR': { zh: '应用APP_ID填写错误', en: 'wrong app id' },
  'ACQ.MERCHANT_AGREEMENT_NOT_EXIST': { zh: '商户协议不存在', en: 'no merchant agreement' },
  'ACQ.MERCHANT_AGREEMENT_INVALID': { zh: '商户协议已失效', en: 'the merchant agreement is invalid' },
  'ACQ.MERCHANT_STATUS_NOT_NORMAL': {
    zh: '商户协议状态非正常状态',
    en: 'the merchant agreement is not active',
  },
  'ACQ.SUB_MERCHANT_CREATE_FAIL': { zh: '二级商户创建失败', en: 'sub-merchant creation failed' },
  'ACQ.SUB_MERCHANT_TYPE_INVALID': { zh: '二级商户类型非法', en: 'invalid sub-merchant type' },
  'ACQ.EXIST_FORBIDDEN_WORD': { zh: '订单信息中包含违禁词', en: 'the order contains a forbidden word' },
} as const satisfies Record<string, Text>;

/** alipay.trade.precreate: refusals that a repeat will not change. */
const PRECREATE_FINAL: ReadonlySet<string> = new Set([
  'ACQ.TRADE_HAS_SUCCESS',
  'ACQ.TRADE_HAS_CLOSE',
  'ACQ.INVALID_PARAMETER',
  'ACQ.ACCESS_FORBIDDEN',
  'ACQ.EXIST_FORBIDDEN_WORD',
  'ACQ.TOTAL_FEE_EXCEED',
  'ACQ.PARTNER_ERROR',
  'ACQ.CONTEXT_INCONSISTENT',
  'ACQ.SELLER_BEEN_BLOCKED',
  'ACQ.INVALID_STORE_ID',
  'ACQ.MERCHANT_AGREEMENT_NOT_EXIST',
  'ACQ.MERCHANT_AGREEMENT_INVALID',
  'ACQ.MERCHANT_STATUS_NOT_NORMAL',
  'ACQ.SUB_MERCHANT_CREATE_FAIL',
  'ACQ.SUB_MERCHANT_TYPE_INVALID',
  'ACQ.BEYOND_PAY_RESTRICTION',
  'ACQ.BEYOND_PER_RECEIPT_RESTRICTION',
]);

/**
 * alipay.trade.refund: refusals after which no money has moved for this request. Anything else (a repeat with
 * other content, an unknown code) might hide a refund that happened: it is unknown, not failed.
 */
export const REFUND_FAILURES = {
  'ACQ.TRADE_NOT_EXIST': { zh: '交易不存在', en: 'no such trade at Alipay' },
  'ACQ.TRADE_STATUS_ERROR': { zh: '交易状态不合法', en: 'the trade cannot be refunded in its state' },
  'ACQ.TRADE_NOT_ALLOW_REFUND': { zh: '当前交易不允许退款', en: 'this trade does not allow refunds' },
  'ACQ.TRADE_HAS_FINISHED': { zh: '交易已完结，超过可退款期限', en: 'the refund window is over' },
  'ACQ.SELLER_BALANCE_NOT_ENOUGH': { zh: '卖家余额不足', en: "the merchant's balance is not enough" },
  'ACQ.REFUND_AMT_NOT_EQUAL_TOTAL': { zh: '退款金额超限', en: 'the refund is larger than what is left' },
  'ACQ.REASON_TRADE_BEEN_FREEZEN': { zh: '请求退款的交易被冻结', en: 'the trade is frozen' },
  'ACQ.REFUND_FEE_ERROR': { zh: '交易退款金额有误', en: 'wrong refund amount' },
  'ACQ.REASON_TRADE_REFUND_FEE_ERR': { zh: '退款金额无效', en: 'invalid refund amount' },
  'ACQ.ONLINE_TRADE_VOUCHER_NOT_ALLOW_REFUND': {
    zh: '交易不允许退款',
    en: 'the voucher trade does not allow refunds',
  },
  'ACQ.BUYER_ERROR': { zh: '买家状态异常', en: "the buyer's account is not usable" },
  'ACQ.INVALID_PARAMETER': { zh: '参数无效', en: 'invalid parameter' },
  'ACQ.ACCESS_FORBIDDEN': { zh: '无权限使用接口', en: 'no permission for this interface' },
  'ACQ.CUSTOMER_VALIDATE_ERROR': { zh: '账户已注销', en: "the buyer's account is closed" },
  'ACQ.REFUND_CHARGE_ERROR': { zh: '退收费异常', en: 'refund fee error' },
  'ACQ.TRADE_SETTLE_ERROR': { zh: '分账金额不足', en: 'not enough unsettled funds' },
} as const satisfies Record<string, Text>;

/** alipay.trade.query's trade_status: every value Alipay documents; any other is an unknown outcome. */
type TradeStatus = 'WAIT_BUYER_PAY' | 'TRADE_CLOSED' | 'TRADE_SUCCESS' | 'TRADE_FINISHED';
const TRADE_STATUSES: Readonly<Record<TradeStatus, true>> = {
  WAIT_BUYER_PAY: true,
  TRADE_CLOSED: true,
  TRADE_SUCCESS: true,
  TRADE_FINISHED: true,
};

function tradeStatus(text: string | undefined): TradeStatus | undefined {
  return text !== undefined && Object.hasOwn(TRADE_STATUSES, text) ? (text as TradeStatus) : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Mappers: a verified answer (or why there is none) to the channel's outcome
// ---------------------------------------------------------------------------------------------------------

/** Not settled by this answer: `note` is recorded, then the adapter asks Alipay again. */
export interface AskAgain<D = undefined> {
  kind: 'ask_again';
  note: string;
  detail: D;
}

const codeText = (d: CommonAnswer) => `${d.code ?? '?'} ${d.sub_code}`.trim();

/** An answer about another order than the one asked for is not an answer. */
function otherOrder(d: { out_trade_no?: string }, outTradeNo: string): boolean {
  return d.out_trade_no !== undefined && d.out_trade_no !== outTradeNo;
}

export function paidInfoFrom(d: PayAnswer, clock: Clock): PaidInfo {
  return {
    channelTradeNo: d.trade_no ?? '',
    paidAt: parseAlipayTime(d.gmt_payment ?? d.send_pay_date) ?? clock.now(),
    buyerLogonId: d.buyer_logon_id,
    buyerUserId: d.buyer_user_id ?? d.buyer_open_id,
  };
}

export function payOutcomeFrom(a: Verified<PayAnswer>, input: BarcodePayInput, clock: Clock): PayOutcome {
  if (!a.ok) return { kind: 'unknown', reason: a.reason };
  const d = a.data;
  const sc = d.sub_code;
  if (d.code === SUCCESS) {
    if (otherOrder(d, input.outTradeNo)) return { kind: 'unknown', reason: 'answer names another order' };
    if (d.total_amount !== undefined && parseYuanToFen(d.total_amount) !== input.amountFen)
      return { kind: 'unknown', reason: `answer says total_amount ${d.total_amount}` };
    const info = paidInfoFrom(d, clock);
    if (!info.channelTradeNo) return { kind: 'unknown', reason: 'success without trade_no' };
    return { kind: 'paid', ...info };
  }
  if (d.code === PAYING) return { kind: 'paying', channelTradeNo: d.trade_no };
  const decline = lookup(PAY_DECLINES, sc);
  if (d.code === BUSINESS_FAILURE && decline)
    return { kind: 'declined', code: sc, zh: d.sub_msg ?? decline.zh, en: decline.en };
  if (isGatewayRefusal(d.code))
    return {
      kind: 'declined',
      code: sc || d.code,
      zh: d.sub_msg ?? d.msg ?? '支付宝拒绝了请求',
      en: `Alipay refused the request (${d.code} ${d.msg ?? ''})`.trim(),
    };
  return { kind: 'unknown', reason: codeText(d) };
}

export function precreateOutcomeFrom(a: Verified<PrecreateAnswer>, outTradeNo: string): PrecreateOutcome {
  if (!a.ok)
    return {
      kind: 'failed',
      code: 'CHANNEL_UNKNOWN',
      zh: '支付宝应答异常',
      en: `no usable answer from Alipay (${a.reason})`,
      retryable: true,
    };
  const d = a.data;
  const sc = d.sub_code;
  if (d.code === SUCCESS && d.qr_code && !otherOrder(d, outTradeNo))
    return { kind: 'created', codeUrl: d.qr_code, channelTradeNo: d.trade_no };
  const final = (d.code === BUSINESS_FAILURE && PRECREATE_FINAL.has(sc)) || isGatewayRefusal(d.code);
  return {
    kind: 'failed',
    code: sc || d.code || 'CHANNEL_UNKNOWN',
    zh: d.sub_msg ?? d.msg ?? '支付宝预下单失败',
    en: `Alipay precreate failed (${codeText(d)})`,
    retryable: !final,
  };
}

export function queryOutcomeFrom(a: Verified<QueryAnswer>, outTradeNo: string, clock: Clock): QueryOutcome {
  if (!a.ok) return { kind: 'unknown', reason: a.reason };
  const d = a.data;
  if (d.code === BUSINESS_FAILURE && d.sub_code === 'ACQ.TRADE_NOT_EXIST') return { kind: 'not_found' };
  if (d.code !== SUCCESS) return { kind: 'unknown', reason: codeText(d) };
  if (otherOrder(d, outTradeNo)) return { kind: 'unknown', reason: 'answer names another order' };
  const status = tradeStatus(d.trade_status);
  if (status === undefined) return { kind: 'unknown', reason: `trade_status ${d.trade_status ?? '(none)'}` };
  switch (status) {
    case 'TRADE_SUCCESS':
    case 'TRADE_FINISHED': {
      const info = paidInfoFrom(d, clock);
      return info.channelTradeNo
        ? { kind: 'paid', ...info }
        : { kind: 'unknown', reason: 'paid without trade_no' };
    }
    case 'WAIT_BUYER_PAY':
      return { kind: 'waiting', channelTradeNo: d.trade_no };
    case 'TRADE_CLOSED': {
      // Closed unpaid, or paid and then refunded in full: only a paid trade has a payment time or a paid
      // amount.
      const paidFen = parseYuanToFen(d.buyer_pay_amount ?? '') ?? parseYuanToFen(d.receipt_amount ?? '') ?? 0;
      if (d.send_pay_date || paidFen > 0) return { kind: 'refunded', ...paidInfoFrom(d, clock) };
      return { kind: 'closed' };
    }
  }
}

/** alipay.trade.cancel answered with an action other than close: the query gives the payment's details. */
export type CancelAskAgain = AskAgain<{ action: string; answer: CancelAnswer }>;

export function cancelOutcomeFrom(a: Verified<CancelAnswer>): CancelOutcome | CancelAskAgain {
  if (!a.ok) return { kind: 'retry', reason: a.reason };
  const d = a.data;
  const sc = d.sub_code;
  if (d.code === SUCCESS) {
    // Alipay answers a cancel of an order it never saw with success and no action: nothing was paid.
    if (d.action === undefined || d.action === 'close') return { kind: 'closed' };
    // Refunded (or an action we do not know): the query gives the payment's details.
    return {
      kind: 'ask_again',
      note: `action ${d.action}; querying the payment`,
      detail: { action: d.action, answer: d },
    };
  }
  if (d.retry_flag === 'N' && !isSystemError(d))
    return {
      kind: 'failed',
      code: sc || d.code || 'CANCEL_FAILED',
      zh: d.sub_msg ?? '撤销失败',
      en: `Alipay will not cancel this trade (${d.code ?? '?'} ${sc})`.trim(),
    };
  return { kind: 'retry', reason: `${codeText(d)} retry_flag ${d.retry_flag ?? '(none)'}`.trim() };
}

export function cancelOutcomeAfterQuery(
  { action, answer: d }: CancelAskAgain['detail'],
  q: QueryOutcome,
  clock: Clock,
): CancelOutcome {
  if (q.kind === 'refunded' || q.kind === 'paid')
    return { ...q, kind: 'refunded', channelTradeNo: q.channelTradeNo || (d.trade_no ?? '') };
  if (action === 'refund')
    return {
      kind: 'refunded',
      channelTradeNo: d.trade_no ?? '',
      paidAt: parseAlipayTime(d.gmt_refund_pay) ?? clock.now(),
    };
  if (q.kind === 'closed') return { kind: 'closed' };
  return { kind: 'retry', reason: `action ${action}, then query ${q.kind}` };
}

export function closeOutcomeFrom(a: Verified<CloseAnswer>): CloseOutcome | AskAgain {
  if (!a.ok) return { kind: 'retry', reason: a.reason };
  const d = a.data;
  const sc = d.sub_code;
  if (d.code === SUCCESS) return { kind: 'closed' };
  // Not at Alipay: a QR trade nobody scanned or a wap page nobody opened. Its URL carries its own expiry
  // (timeout_express / time_expire), so it can never be paid after the platform's.
  if (d.code === BUSINESS_FAILURE && sc === 'ACQ.TRADE_NOT_EXIST') return { kind: 'closed' };
  // Paid meanwhile (or already closed): the query says which.
  if (d.code === BUSINESS_FAILURE && sc === 'ACQ.TRADE_STATUS_ERROR')
    return { kind: 'ask_again', note: 'ACQ.TRADE_STATUS_ERROR; querying the trade', detail: undefined };
  return { kind: 'retry', reason: codeText(d) };
}

export function closeOutcomeAfterQuery(q: QueryOutcome): CloseOutcome {
  if (q.kind === 'paid' || q.kind === 'refunded') {
    const { kind: _kind, ...info } = q;
    return { kind: 'paid', ...info };
  }
  if (q.kind === 'closed') return { kind: 'closed' };
  return { kind: 'retry', reason: `ACQ.TRADE_STATUS_ERROR, then query ${q.kind}` };
}

/** Not settled by the answer: alipay.trade.fastpay.refund.query says whether this request was refunded. */
export type RefundAskAgain = AskAgain<{ why: string }>;

const confirmRefund = (why: string): RefundAskAgain => ({
  kind: 'ask_again',
  note: `unknown: ${why}; asking the refund query`,
  detail: { why },
});

export function refundOutcomeFrom(
  a: Verified<RefundAnswer>,
  input: RefundInput,
  clock: Clock,
): RefundOutcome | RefundAskAgain {
  if (!a.ok) return confirmRefund(a.reason);
  const d = a.data;
  const sc = d.sub_code;
  if (d.code === SUCCESS) {
    if (otherOrder(d, input.outTradeNo)) return confirmRefund('answer names another order');
    // fund_change Y: money moved now. N: a repeat of a done request, or still in progress: confirm.
    if (d.fund_change === 'Y')
      return {
        kind: 'success',
        channelRefundNo: d.trade_no ?? input.outRequestNo,
        refundedAt: parseAlipayTime(d.gmt_refund_pay) ?? clock.now(),
      };
    return confirmRefund('fund_change N');
  }
  const failure = lookup(REFUND_FAILURES, sc);
  if (d.code === BUSINESS_FAILURE && failure)
    return { kind: 'failed', code: sc, zh: d.sub_msg ?? failure.zh, en: failure.en };
  if (isGatewayRefusal(d.code))
    return {
      kind: 'failed',
      code: sc || d.code,
      zh: d.sub_msg ?? d.msg ?? '支付宝拒绝了退款请求',
      en: `Alipay refused the request (${d.code})`,
    };
  return confirmRefund(codeText(d));
}

/** The refund query's finding; only `refunded` settles the refund. */
export type RefundQueryFinding =
  | { kind: 'refunded'; found: RefundOutcome }
  | { kind: 'not_refunded'; reason: string }
  | { kind: 'unknown'; reason: string };

export function refundQueryFindingFrom(
  a: Verified<RefundQueryAnswer>,
  input: RefundInput,
  clock: Clock,
): RefundQueryFinding {
  if (!a.ok) return { kind: 'unknown', reason: a.reason };
  const d = a.data;
  if (d.code !== SUCCESS) return { kind: 'unknown', reason: codeText(d) };
  const status = d.refund_status;
  if (d.refund_amount === undefined || (status !== undefined && status !== 'REFUND_SUCCESS'))
    return {
      kind: 'not_refunded',
      reason: status ? `refund_status ${status}` : 'no refund under this out_request_no',
    };
  if (d.out_request_no !== undefined && d.out_request_no !== input.outRequestNo)
    return { kind: 'unknown', reason: 'answer names another request' };
  if (parseYuanToFen(d.refund_amount) !== input.amountFen)
    return { kind: 'unknown', reason: `refund_amount ${d.refund_amount} differs` };
  return {
    kind: 'refunded',
    found: {
      kind: 'success',
      channelRefundNo: d.trade_no ?? input.outRequestNo,
      refundedAt: parseAlipayTime(d.gmt_refund_pay) ?? clock.now(),
    },
  };
}

export type BillUrlFinding = { kind: 'ok'; link: string } | { kind: 'failed' | 'unknown'; reason: string };

export function billUrlFrom(a: Verified<BillUrlAnswer>): BillUrlFinding {
  if (!a.ok) return { kind: 'unknown', reason: a.reason };
  const d = a.data;
  const u = d.bill_download_url;
  if (d.code === SUCCESS && u && /^https?:\/\//.test(u)) return { kind: 'ok', link: u };
  return { kind: 'failed', reason: `${codeText(d)} ${d.sub_msg ?? ''}`.trim() };
}

/** An outcome as a call record's one line: 'paid', 'declined ACQ.TRADE_HAS_CLOSE', 'unknown: timeout …'. */
export function describe(o: { kind: string; code?: string; reason?: string; note?: string }): string {
  if (o.note !== undefined) return o.note;
  if (o.reason) return `${o.kind}: ${o.reason}`;
  return o.code ? `${o.kind} ${o.code}` : o.kind;
}

// ---------------------------------------------------------------------------------------------------------
// What of a request or an answer goes into a call record
// ---------------------------------------------------------------------------------------------------------

/** Personal or secret fields of Alipay's requests and answers: masked whatever their content. */
export const SECRET_FIELDS: ReadonlySet<string> = new Set([
  'auth_code',
  'app_auth_token',
  'app_refresh_token',
  'auth_token',
  'buyer_logon_id',
  'buyer_user_id',
  'buyer_id',
  'buyer_open_id',
  'open_id',
  'buyer_email',
  'buyer_name',
  'buyer_user_name',
  'user_name',
  'real_name',
  'mobile',
  'phone',
  'cert_no',
  'buyer_cert_no',
  'card_no',
  'bank_card_no',
  'email',
]);

const isSecretField = (key: string) => SECRET_FIELDS.has(key);

function redacted(value: unknown, max: number): string {
  return excerpt(JSON.stringify(redactValue(value, isSecretField)), max);
}

/** A request for the record: method, biz_content and the further public parameters, redacted and short. */
export function recordedRequest(method: Method, biz: object, extra: Readonly<Record<string, string>> = {}) {
  return redacted({ method, biz_content: biz, ...extra }, 1500);
}

/** A verified answer for the record, redacted and short. */
export function recordedAnswer(data: Record<string, unknown>): string {
  return redacted(data, 1500);
}

const SECRET_IN_TEXT = new RegExp(`"(${[...SECRET_FIELDS].join('|')})"\\s*:\\s*"[^"]*"`, 'g');

/** An answer that did not verify (or did not parse), for the record: redacted, without its signature, short. */
export function recordedUnverified(text: string): string {
  try {
    const whole = JSON.parse(text) as unknown;
    if (isRecord(whole)) {
      const { sign: _sign, ...rest } = whole;
      return excerpt(`(unverified) ${JSON.stringify(redactValue(rest, isSecretField))}`, 600);
    }
  } catch {
    // not JSON: the raw text, masked
  }
  return excerpt(scrubText(text.replace(SECRET_IN_TEXT, '"$1":"***"')), 300);
}
