import crypto from 'node:crypto';
import type { PaidInfo } from '../channel.js';
import { excerpt } from '../../formats/redact.js';
import type { Fen } from '../../domain/money.js';

/**
 * UnionPay online gateway ("全渠道", acp 5.1.0) on the wire: the form fields of each request, how answers and
 * notices are read, the order ids and txnTimes an order is found again by, the respCode / origRespCode maps, and
 * what of a field set may be kept in a call record. Signing and certificates are in keys.ts.
 * Pure functions: no I/O, no clock (the time is passed in).
 */

export const ACP_VERSION = '5.1.0';
export const SIGN_METHOD_RSA = '01';

export const BACK_PATH = '/gateway/api/backTransReq.do';
export const QUERY_PATH = '/gateway/api/queryTrans.do';
/** The payer's browser posts the front-channel consume (WAP / 手机网页支付) here. */
export const FRONT_PATH = '/gateway/api/frontTransReq.do';

// ---- wire structs ----------------------------------------------------------------------------------------------

/** A field set as UnionPay sends and reads it: flat text fields. */
export type AcpFields = Record<string, string>;

/** The transactions this adapter sends: [txnType, txnSubType]. */
export const TXN = {
  /** 消费 by payment code (被扫). */
  consume: ['01', '06'],
  /** 交易状态查询. */
  query: ['00', '00'],
  /** 消费撤销 (same day). */
  cancel: ['31', '00'],
  /** 退货. */
  refund: ['04', '00'],
  /** 消费 by a merchant-presented QR code (主扫 申码): the answer carries qrCode. */
  precreate: ['01', '07'],
  /** 消费 through UnionPay's mobile web cashier (手机网页支付, front channel). */
  wap: ['01', '01'],
  /** 对账文件下载. */
  fileTransfer: ['76', '01'],
} as const satisfies Record<string, readonly [string, string]>;
export type Txn = keyof typeof TXN;

/** The fields every request carries (in this order on the wire). */
export interface BaseRequest {
  version: typeof ACP_VERSION;
  encoding: 'UTF-8';
  signMethod: typeof SIGN_METHOD_RSA;
  certId: string;
  txnType: string;
  txnSubType: string;
  /** 000000 (back-end products, QR), 000201 (the gateway's mobile web cashier). */
  bizType: string;
  accessType: string;
  merId: string;
  orderId: string;
  txnTime: string;
  /** Access type 1 (through an acquirer) only. */
  acqInsCode?: string;
}

/** A consume by payment code. */
export interface ConsumeRequest extends BaseRequest {
  channelType: '08';
  txnAmt: string;
  currencyCode: '156';
  qrNo: string;
  backUrl: string;
  reqReserved: string;
  termId?: string;
}

/** A merchant-presented QR code order (申码). */
export interface PrecreateRequest extends BaseRequest {
  channelType: '08';
  txnAmt: string;
  currencyCode: '156';
  backUrl: string;
  reqReserved: string;
  /** yyyyMMddHHmmss (Beijing): after it the code can no longer be paid. */
  payTimeout: string;
  termId?: string;
}

/** A front-channel consume (手机网页支付): the payer's browser posts it to FRONT_PATH. */
export interface WapRequest extends BaseRequest {
  channelType: '08';
  txnAmt: string;
  currencyCode: '156';
  frontUrl: string;
  backUrl: string;
  reqReserved: string;
  payTimeout: string;
}

/** The day's reconciliation file (fileTransfer; no order). */
export interface FileTransferRequest {
  version: typeof ACP_VERSION;
  encoding: 'UTF-8';
  signMethod: typeof SIGN_METHOD_RSA;
  certId: string;
  txnType: string;
  txnSubType: string;
  bizType: '000000';
  accessType: string;
  merId: string;
  /** MMDD of the settlement day. */
  settleDate: string;
  txnTime: string;
  /** 00: the merchant's ordinary files (ZM, ZME). */
  fileType: '00';
  acqInsCode?: string;
}

/** A cancel or a refund of a payment (origQryId). */
export interface BackRequest extends BaseRequest {
  channelType: '08';
  txnAmt: string;
  origQryId: string;
  backUrl: string;
  reqReserved: string;
}

/** The merchant side of a request, from the app's configuration. */
export interface Merchant {
  certId: string;
  merId: string;
  accessType: string;
  acqInsCode: string;
}

/** The fields of a synchronous answer, a query answer or a notice this adapter reads. */
export interface AnswerFields {
  respCode?: string;
  respMsg?: string;
  origRespCode?: string;
  origRespMsg?: string;
  queryId?: string;
  orderId?: string;
  txnTime?: string;
  txnType?: string;
  txnAmt?: string;
  merId?: string;
  accNo?: string;
  traceTime?: string;
  reqReserved?: string;
  version?: string;
  signMethod?: string;
  signPubKeyCert?: string;
  signature?: string;
  /** Precreate: the code's content (the URL the payer scans). */
  qrCode?: string;
  /** fileTransfer: the files, Base64 of a deflated zip, and its name. */
  fileContent?: string;
  fileName?: string;
}

export function baseRequest(
  m: Merchant,
  txn: Txn,
  orderId: string,
  txnTime: string,
  bizType = '000000',
): BaseRequest {
  const [txnType, txnSubType] = TXN[txn];
  const f: BaseRequest = {
    version: ACP_VERSION,
    encoding: 'UTF-8',
    signMethod: SIGN_METHOD_RSA,
    certId: m.certId,
    txnType,
    txnSubType,
    bizType,
    accessType: m.accessType,
    merId: m.merId,
    orderId,
    txnTime,
  };
  if (m.accessType === '1' && m.acqInsCode) f.acqInsCode = m.acqInsCode;
  return f;
}

export function consumeRequest(
  m: Merchant,
  o: {
    orderId: string;
    txnTime: string;
    amountFen: Fen;
    authCode: string;
    backUrl: string;
    outTradeNo: string;
    termId: string;
  },
): ConsumeRequest {
  const f: ConsumeRequest = {
    ...baseRequest(m, 'consume', o.orderId, o.txnTime),
    channelType: '08',
    txnAmt: String(o.amountFen),
    currencyCode: '156',
    qrNo: o.authCode,
    backUrl: o.backUrl,
    reqReserved: o.outTradeNo,
  };
  if (o.termId) f.termId = o.termId;
  return f;
}

export function backRequest(
  m: Merchant,
  txn: 'cancel' | 'refund',
  o: {
    orderId: string;
    txnTime: string;
    txnAmt: string;
    origQryId: string;
    backUrl: string;
    outTradeNo: string;
  },
): BackRequest {
  return {
    ...baseRequest(m, txn, o.orderId, o.txnTime),
    channelType: '08',
    txnAmt: o.txnAmt,
    origQryId: o.origQryId,
    backUrl: o.backUrl,
    reqReserved: o.outTradeNo,
  };
}

export function precreateRequest(
  m: Merchant,
  o: {
    orderId: string;
    txnTime: string;
    amountFen: Fen;
    backUrl: string;
    outTradeNo: string;
    payTimeout: string;
    termId: string;
  },
): PrecreateRequest {
  const f: PrecreateRequest = {
    ...baseRequest(m, 'precreate', o.orderId, o.txnTime),
    channelType: '08',
    txnAmt: String(o.amountFen),
    currencyCode: '156',
    backUrl: o.backUrl,
    reqReserved: o.outTradeNo,
    payTimeout: o.payTimeout,
  };
  if (o.termId) f.termId = o.termId;
  return f;
}

export function wapRequest(
  m: Merchant,
  o: {
    orderId: string;
    txnTime: string;
    amountFen: Fen;
    frontUrl: string;
    backUrl: string;
    outTradeNo: string;
    payTimeout: string;
  },
): WapRequest {
  return {
    ...baseRequest(m, 'wap', o.orderId, o.txnTime, '000201'),
    channelType: '08',
    txnAmt: String(o.amountFen),
    currencyCode: '156',
    frontUrl: o.frontUrl,
    backUrl: o.backUrl,
    reqReserved: o.outTradeNo,
    payTimeout: o.payTimeout,
  };
}

export function fileTransferRequest(m: Merchant, settleDate: string, txnTime: string): FileTransferRequest {
  const [txnType, txnSubType] = TXN.fileTransfer;
  const f: FileTransferRequest = {
    version: ACP_VERSION,
    encoding: 'UTF-8',
    signMethod: SIGN_METHOD_RSA,
    certId: m.certId,
    txnType,
    txnSubType,
    bizType: '000000',
    accessType: m.accessType,
    merId: m.merId,
    settleDate,
    txnTime,
    fileType: '00',
  };
  if (m.accessType === '1' && m.acqInsCode) f.acqInsCode = m.acqInsCode;
  return f;
}

/** A request as the text fields that are signed and sent. */
export function fieldsOf(req: object): AcpFields {
  const out: AcpFields = {};
  for (const [k, v] of Object.entries(req)) if (typeof v === 'string') out[k] = v;
  return out;
}

// ---- form encoding and answers ---------------------------------------------------------------------------------

/** Form encoding of a request body (UTF-8, every value percent-encoded). */
export function encodeForm(fields: Readonly<Record<string, string>>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
}

/**
 * Reads a synchronous answer: `k=v&k=v` with raw (not percent-encoded) values, where a value may hold
 * `&` inside `{…}` or `[…]` (UnionPay's own parsers work the same way). Returns null for anything that is
 * not such a text: empty, a key without `=`, a repeated or empty key, an unclosed bracket.
 */
export function parseAnswer(text: string): Record<string, string> | null {
  if (text.length === 0 || text.length > 1_000_000) return null;
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) return null;
    const key = text.slice(i, eq);
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(key) || key in out) return null;
    let j = eq + 1;
    let close: string | null = null;
    while (j < text.length) {
      const c = text[j];
      if (close !== null) {
        if (c === close) close = null;
      } else if (c === '{') close = '}';
      else if (c === '[') close = ']';
      else if (c === '&') break;
      j++;
    }
    if (close !== null) return null;
    out[key] = text.slice(eq + 1, j);
    i = j + 1;
  }
  return Object.keys(out).length > 0 ? { ...out } : null;
}

/** Reads a notice (form-encoded POST body). Null if malformed or a field repeats. */
export function parseForm(text: string): Record<string, string> | null {
  if (text.length === 0 || text.length > 1_000_000 || !text.includes('=')) return null;
  const out: Record<string, string> = {};
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(text);
  } catch {
    return null;
  }
  for (const [k, v] of params) {
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(k) || Object.hasOwn(out, k)) return null;
    out[k] = v;
  }
  return Object.keys(out).length > 0 ? out : null;
}

/** Whether a verified answer names another order than the one asked about. */
export function aboutAnotherOrder(
  answer: Readonly<AnswerFields>,
  asked: Readonly<{ orderId?: string; txnTime: string }>,
): boolean {
  return (
    (answer.orderId !== undefined && answer.orderId !== asked.orderId) ||
    (answer.txnTime !== undefined && answer.txnTime !== asked.txnTime)
  );
}

// ---- order ids and times ---------------------------------------------------------------------------------------

/**
 * UnionPay order ids are 8–40 letters and digits; ours are up to 64 of letters, digits, `_` and `-`. An order
 * number that fits is used as it is; any other key becomes `H` + 31 hex digits of its SHA-256 (refunds and
 * cancels always do, so they can never meet a trade's own number).
 */
export function orderIdFor(key: string, natural = false): string {
  if (natural && /^[A-Za-z0-9]{8,40}$/.test(key)) return key;
  return `H${crypto.createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 31)}`;
}

export const consumeOrderId = (outTradeNo: string) => orderIdFor(outTradeNo, true);
export const cancelOrderId = (outTradeNo: string) => orderIdFor(`cancel\u0000${outTradeNo}`);
export const refundOrderId = (outTradeNo: string, outRequestNo: string) =>
  orderIdFor(`refund\u0000${outTradeNo}\u0000${outRequestNo}`);

/** A stored channel trade number that can be UnionPay's queryId of the payment. */
export const QUERY_ID = /^[0-9A-Za-z]{6,64}$/;

/** An outTradeNo carried back in a notice's reqReserved. */
export const RESERVED_OUT_TRADE_NO = /^[A-Za-z0-9_-]{1,64}$/;

const BEIJING_MS = 8 * 3_600_000;
const p2 = (n: number) => n.toString().padStart(2, '0');

/**
 * txnTime of a stored instant: that second in Beijing, `yyyyMMddHHmmss` (milliseconds dropped). Orders are sent
 * with the time the platform stored for them (a trade's or a refund's created_at), so a later call finds the
 * same order with one exact query (see docs/channels/unionpay.md).
 */
export function exactTxnTime(at: Date): string {
  const d = new Date(at.getTime() + BEIJING_MS);
  return (
    `${d.getUTCFullYear()}${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}` +
    `${p2(d.getUTCHours())}${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}`
  );
}

/** The exact txnTime of a stored instant, or null when none was given. */
export function storedTxnTime(at: Date | undefined): string | null {
  return at instanceof Date && Number.isFinite(at.getTime()) ? exactTxnTime(at) : null;
}

/**
 * txnTime of an order sent on the Beijing day `daysBack` days before `now`: that day at 00:00:00. The earlier
 * convention (no stored time given): such an order is found again by its order id and the day it was sent.
 */
export function dayTxnTime(now: Date, daysBack = 0): string {
  const d = new Date(now.getTime() + BEIJING_MS - daysBack * 86_400_000);
  return `${d.getUTCFullYear()}${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}000000`;
}

/** How many Beijing days `later` is after `earlier` (0 on the same day; negative if it is before). */
export function beijingDaysBetween(earlier: Date, later: Date): number {
  const day = (d: Date) => Math.floor((d.getTime() + BEIJING_MS) / 86_400_000);
  return day(later) - day(earlier);
}

/**
 * When a trade was settled, from an answer's traceTime (MMDDhhmmss, Beijing) and txnTime (its year);
 * `fallback` when absent or unreadable.
 */
export function tradeTime(fields: Readonly<AnswerFields>, fallback: Date): Date {
  const trace = fields['traceTime'] ?? '';
  const txn = fields['txnTime'] ?? '';
  const m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)$/.exec(trace);
  const y = /^(\d{4})(\d\d)/.exec(txn);
  if (!m || !y) return fallback;
  const [, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number];
  let year = Number(y[1]);
  if (mo < Number(y[2])) year += 1;
  const t = Date.UTC(year, mo - 1, d, h, mi, s) - 8 * 3_600_000;
  return Number.isFinite(t) && mo >= 1 && mo <= 12 ? new Date(t) : fallback;
}

// ---- codes -----------------------------------------------------------------------------------------------------

/**
 * What a synchronous answer's respCode says about the request (acp 5.1.0 应答码):
 * - `accepted` (00): taken; for a consume, cancel or refund the result is the order's state (query it);
 * - `in_process` (05): being processed; a consume is then "paying", a cancel or refund unclear;
 * - `unclear` (02, 03, 04, 06, 12, 37, or none): nothing final, query later;
 * - `refused`: any other code is UnionPay's final refusal of this request.
 */
export type RespClass = 'accepted' | 'in_process' | 'unclear' | 'refused';

const RESP_CODES: Readonly<Record<string, RespClass>> = {
  '00': 'accepted',
  '02': 'unclear',
  '03': 'unclear',
  '04': 'unclear',
  '05': 'in_process',
  '06': 'unclear',
  '12': 'unclear',
  '37': 'unclear',
};

export function respClass(respCode: string): RespClass {
  if (respCode === '') return 'unclear';
  return RESP_CODES[respCode] ?? 'refused';
}

/** What a query's own respCode says: the order was found (00), UnionPay has no such order (34), or unclear. */
export type QueryClass = 'found' | 'not_found' | 'unclear';

export function queryClass(respCode: string): QueryClass {
  return respCode === '00' ? 'found' : respCode === '34' ? 'not_found' : 'unclear';
}

/** The state of a queried order, from its origRespCode. */
export type OrderState = 'success' | 'processing' | 'failed' | 'unclear';

const ORIG_RESP_CODES: Readonly<Record<string, OrderState>> = {
  '00': 'success',
  A6: 'success',
  '03': 'processing',
  '04': 'processing',
  '05': 'processing',
};

/** success (00, A6), processing (03, 04, 05), failed (any other code), unclear (no readable code). */
export function orderState(f: Readonly<AnswerFields>): OrderState {
  const c = f.origRespCode ?? '';
  return ORIG_RESP_CODES[c] ?? (/^[0-9A-Z]{2}$/.test(c) ? 'failed' : 'unclear');
}

/** A refusal as the platform shows it: UNIONPAY_<code>, UnionPay's message or one naming the code. */
export function refusalOf(
  f: Readonly<AnswerFields>,
  codeField: 'respCode' | 'origRespCode',
): { code: string; zh: string; en: string } {
  const code = f[codeField] ?? '';
  const msg = (codeField === 'respCode' ? f.respMsg : f.origRespMsg) ?? '';
  return {
    code: `UNIONPAY_${code}`,
    zh: msg || `银联拒绝（应答码 ${code}）`,
    en: `UnionPay refused it (${codeField} ${code})`,
  };
}

/** A card number shown as 621626******0018; anything else shown as ***. */
export function maskAccount(acc: string): string {
  return /^\d{12,19}$/.test(acc) ? `${acc.slice(0, 6)}${'*'.repeat(acc.length - 10)}${acc.slice(-4)}` : '***';
}

/** The paid payment of a queried order (payer's card masked). */
export function paidInfoOf(f: Readonly<AnswerFields>, now: Date): PaidInfo {
  const acc = f.accNo;
  return {
    channelTradeNo: f.queryId ?? '',
    paidAt: tradeTime(f, now),
    buyerLogonId: acc ? maskAccount(acc) : undefined,
  };
}

/** A verified answer as a call record's outcome: its codes and message. */
export function answerOutcome(a: Readonly<AnswerFields>): string {
  return (
    [`respCode ${a.respCode ?? '-'}`, a.origRespCode ? `origRespCode ${a.origRespCode}` : '']
      .filter(Boolean)
      .join(' ') + (a.respMsg ? ` ${a.respMsg}` : '')
  );
}

// ---- what a call record may keep -------------------------------------------------------------------------------

/** Never kept: the signature and UnionPay's certificate (and a bill's file content: kept as its length). */
const DROPPED = new Set(['signature', 'signPubKeyCert']);
/** Kept as ***: the payment code and the payer's card and personal data. */
const SECRET = new Set(['qrNo', 'customerInfo', 'cardTransData', 'payerInfo']);
/** Card numbers, masked as 621626******0018. */
const ACCOUNT = new Set(['accNo', 'payCardNo']);

/** A field set as kept in a call record: no signature or certificate, no payment code, card numbers masked. */
export function redactFields(fields: Readonly<Record<string, string>>): string {
  return Object.keys(fields)
    .sort()
    .filter((k) => !DROPPED.has(k))
    .map((k) => {
      const v = fields[k] ?? '';
      if (SECRET.has(k)) return `${k}=***`;
      if (k === 'fileContent') return `${k}=[${v.length} characters]`;
      if (ACCOUNT.has(k)) return `${k}=${maskAccount(v)}`;
      return `${k}=${v}`;
    })
    .join('&');
}

const SECRET_IN_TEXT = new RegExp(`(signature|${[...SECRET, ...ACCOUNT].join('|')})=[^&]*`, 'g');

/**
 * A text that could not be read as fields (an HTTP error page, a malformed answer or notice), as kept in a call
 * record: certificates and the values of secret fields removed, at most 500 characters. The call recorder then
 * masks personal numbers and key material in it (formats/redact.ts).
 */
export function redactText(text: string): string {
  return excerpt(
    text.replace(/-----BEGIN[\s\S]*?-----END[^-]*-----/g, '[PEM]').replace(SECRET_IN_TEXT, '$1=***'),
    500,
  );
}
