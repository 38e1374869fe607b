/**
 * The Alipay channel: Alipay's OpenAPI gateway (alipay.trade.*), signed with the app's RSA key and verified
 * with Alipay's public key (public-key mode) or Alipay's public-key certificate (certificate mode).
 *
 * The official SDK (alipay-sdk) signs our requests, computes the certificate serial numbers, verifies the
 * answers' signatures and the asynchronous notifications. The exchange itself goes through our own transport
 * (deadline, size limit, no redirects), so that every call has a timeout and is recorded, redacted.
 *
 * Every answer is mapped pessimistically: only a verified, signed answer that clearly says so is success; a
 * system error, a timeout, an HTTP error, an unparseable or wrongly signed answer is "unknown" (the platform
 * queries), and for a refund the adapter asks alipay.trade.fastpay.refund.query before answering.
 */
import { createHash, createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { AlipaySdk, type AlipaySdkConfig } from 'alipay-sdk';
import type {
  BarcodePayInput,
  CancelOutcome,
  Channel,
  ChannelContext,
  CloseOutcome,
  NotifyAck,
  NotifyParse,
  PaidInfo,
  PayOutcome,
  PrecreateInput,
  PrecreateOutcome,
  QueryOutcome,
  RefundInput,
  RefundOutcome,
  TradeRef,
  WapPayInput,
} from '../channel.js';
import type { ChannelDeps } from '../definition.js';
import { excerpt, type HttpClient } from '../http.js';
import type { Clock } from '../../domain/clock.js';
import { formatShanghai } from '../../domain/clock.js';
import { formatFen, parseYuanToFen } from '../../domain/money.js';
import type { PayType } from '../../domain/trade.js';
import type { Bill } from '../../domain/bill.js';
import { parseAlipayTradeBill } from './bill.js';

export const ALIPAY_GATEWAY = 'https://openapi.alipay.com/gateway.do';
export const ALIPAY_SANDBOX_GATEWAY = 'https://openapi-sandbox.dl.alipaydev.com/gateway.do';
export const DEFAULT_TIMEOUT_MS = 10_000;

export type AlipaySignType = 'RSA2' | 'RSA';
export type AlipayKeyMode = 'public_key' | 'cert';

// ---------------------------------------------------------------------------------------------------------
// Keys and certificates
// ---------------------------------------------------------------------------------------------------------

function rsaOnly(key: KeyObject): KeyObject | null {
  if (key.asymmetricKeyType !== 'rsa') return null;
  return (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 1024 ? key : null;
}

/**
 * The app's private key as integrators hand it over: PEM (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY"),
 * or the bare Base64 of either DER (what Alipay's key tool writes). Null when it is not an RSA key of at
 * least 1024 bits.
 */
export function readAlipayPrivateKey(text: string): KeyObject | null {
  const t = text.trim();
  if (t === '') return null;
  if (t.startsWith('-----')) {
    try {
      return rsaOnly(createPrivateKey(t));
    } catch {
      return null;
    }
  }
  if (!/^[A-Za-z0-9+/=\s]+$/.test(t)) return null;
  const der = Buffer.from(t.replace(/\s+/g, ''), 'base64');
  for (const type of ['pkcs8', 'pkcs1'] as const) {
    try {
      return rsaOnly(createPrivateKey({ key: der, format: 'der', type }));
    } catch {
      // try the other encoding
    }
  }
  return null;
}

/**
 * Alipay's public key (public-key mode): PEM ("PUBLIC KEY" or "RSA PUBLIC KEY") or the bare Base64 the open
 * platform shows. A private key or a certificate is refused (createPublicKey would quietly take either).
 */
export function readAlipayPublicKey(text: string): KeyObject | null {
  const t = text.trim();
  if (t === '' || /PRIVATE KEY|CERTIFICATE/.test(t)) return null;
  if (t.startsWith('-----')) {
    try {
      return rsaOnly(createPublicKey(t));
    } catch {
      return null;
    }
  }
  if (!/^[A-Za-z0-9+/=\s]+$/.test(t)) return null;
  const der = Buffer.from(t.replace(/\s+/g, ''), 'base64');
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      return rsaOnly(createPublicKey({ key: der, format: 'der', type }));
    } catch {
      // try the other encoding
    }
  }
  return null;
}

/** Every certificate in a PEM text (Alipay's root certificate file holds several). */
export function readCertificates(text: string): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const out: X509Certificate[] = [];
  for (const b of blocks) {
    try {
      out.push(new X509Certificate(b));
    } catch {
      return [];
    }
  }
  return out;
}

/** The bare Base64 of the public key's DER (SPKI); a private key gives its public half. */
export function spkiBase64(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' }).toString('base64');
}

// ---------------------------------------------------------------------------------------------------------
// Configuration: an app's settings, checked and turned into an SDK instance (cached per distinct settings)
// ---------------------------------------------------------------------------------------------------------

export interface AlipaySettings {
  appId: string;
  signType: AlipaySignType;
  keyMode: AlipayKeyMode;
  gatewayUrl: string;
  timeoutMs: number;
  sellerId?: string | undefined;
  storeId?: string | undefined;
  sysServiceId?: string | undefined;
}

export interface PreparedAlipay {
  settings: AlipaySettings;
  sdk: AlipaySdk;
  /** Certificate mode: the serial numbers the SDK computed (md5 of issuer + serial, Alipay's rule). */
  appCertSn?: string | undefined;
  alipayCertSn?: string | undefined;
  alipayRootCertSn?: string | undefined;
}

export type Prepared = { ok: true; value: PreparedAlipay } | { ok: false; problem: string };

const val = (m: Readonly<Record<string, string>>, k: string): string | undefined => {
  const v = m[k]?.trim();
  return v === undefined || v === '' ? undefined : v;
};

/** Is this a gateway URL we may talk to: https, or http on the loopback interface (tests, local fakes). */
export function gatewayUrlProblem(text: string): string | null {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return '不是有效的网址 / not a valid URL';
  }
  if (u.protocol === 'https:') return null;
  if (u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) return null;
  return '必须是 https 网址 / must be an https URL';
}

/**
 * Turns an app's settings (ctx.merchant: decrypted, defaults filled in) into a ready SDK. Returns what is
 * wrong instead when the settings cannot work.
 */
export function prepareAlipay(merchant: Readonly<Record<string, string>>): Prepared {
  const fail = (problem: string): Prepared => ({ ok: false, problem });
  const appId = val(merchant, 'app_id');
  if (!appId) return fail('app_id 未设置 / app_id is not set');
  const signType = val(merchant, 'sign_type') ?? 'RSA2';
  if (signType !== 'RSA2' && signType !== 'RSA')
    return fail('sign_type 只能是 RSA2 或 RSA / must be RSA2 or RSA');
  const keyMode = val(merchant, 'key_mode') ?? 'public_key';
  if (keyMode !== 'public_key' && keyMode !== 'cert')
    return fail('key_mode 只能是 public_key 或 cert / must be public_key or cert');
  const gatewayUrl = val(merchant, 'gateway_url') ?? ALIPAY_GATEWAY;
  const urlProblem = gatewayUrlProblem(gatewayUrl);
  if (urlProblem) return fail(`gateway_url: ${urlProblem}`);
  const timeoutText = val(merchant, 'timeout_ms') ?? String(DEFAULT_TIMEOUT_MS);
  const timeoutMs = Number(timeoutText);
  if (!/^[0-9]+$/.test(timeoutText) || timeoutMs < 100 || timeoutMs > 120_000)
    return fail('timeout_ms 应为 100–120000 的整数 / timeout_ms must be an integer from 100 to 120000');

  const privateKey = readAlipayPrivateKey(merchant['private_key'] ?? '');
  if (!privateKey) return fail('private_key 无法读取 / private_key cannot be read');
  const config: AlipaySdkConfig = {
    appId,
    // Handed over as the bare Base64 of PKCS#8, whatever form it was given in: the SDK wraps it itself.
    privateKey: privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64'),
    keyType: 'PKCS8',
    signType,
    gateway: gatewayUrl,
    timeout: timeoutMs,
    camelcase: false,
  };
  if (keyMode === 'public_key') {
    const pub = readAlipayPublicKey(merchant['alipay_public_key'] ?? '');
    if (!pub)
      return fail('alipay_public_key 未设置或无法读取 / alipay_public_key is missing or cannot be read');
    config.alipayPublicKey = spkiBase64(pub);
  } else {
    for (const name of ['app_cert', 'alipay_cert', 'alipay_root_cert'] as const) {
      if (readCertificates(merchant[name] ?? '').length === 0)
        return fail(`证书模式需要 ${name}（PEM 证书） / cert mode needs ${name} (a PEM certificate)`);
    }
    config.appCertContent = merchant['app_cert'] ?? '';
    config.alipayPublicCertContent = merchant['alipay_cert'] ?? '';
    config.alipayRootCertContent = merchant['alipay_root_cert'] ?? '';
  }
  let sdk: AlipaySdk;
  try {
    sdk = new AlipaySdk(config);
  } catch (e) {
    return fail(
      `支付宝 SDK 无法使用这些密钥或证书 / the Alipay SDK cannot use these keys or certificates (${
        e instanceof Error ? e.message.slice(0, 120) : 'error'
      })`,
    );
  }
  const c = sdk.config as Partial<
    Record<'appCertSn' | 'alipayCertSn' | 'alipayRootCertSn' | 'alipayPublicKey', string>
  >;
  if (!c.alipayPublicKey)
    return fail('没有支付宝公钥，无法验签 / no Alipay public key to verify answers with');
  if (keyMode === 'cert' && (!c.appCertSn || !c.alipayRootCertSn))
    return fail(
      '无法从证书计算 app_cert_sn 和 alipay_root_cert_sn（根证书里需要 RSA 证书） / cannot compute app_cert_sn and alipay_root_cert_sn (the root file needs an RSA-signed certificate)',
    );
  return {
    ok: true,
    value: {
      settings: {
        appId,
        signType,
        keyMode,
        gatewayUrl,
        timeoutMs,
        sellerId: val(merchant, 'seller_id'),
        storeId: val(merchant, 'store_id'),
        sysServiceId: val(merchant, 'sys_service_id'),
      },
      sdk,
      appCertSn: keyMode === 'cert' ? c.appCertSn : undefined,
      alipayCertSn: keyMode === 'cert' ? c.alipayCertSn : undefined,
      alipayRootCertSn: keyMode === 'cert' ? c.alipayRootCertSn : undefined,
    },
  };
}

const prepared = new Map<string, Prepared>();

/** prepareAlipay, cached by the settings' digest (keys are parsed once, not on every call). */
export function preparedFor(merchant: Readonly<Record<string, string>>): Prepared {
  const digest = createHash('sha256')
    .update(JSON.stringify(Object.entries(merchant).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))))
    .digest('base64');
  const hit = prepared.get(digest);
  if (hit) return hit;
  const p = prepareAlipay(merchant);
  if (prepared.size >= 64) prepared.delete(prepared.keys().next().value as string);
  prepared.set(digest, p);
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// The gateway protocol: signed requests, verified answers
// ---------------------------------------------------------------------------------------------------------

/** The public parameters Alipay's SDKs put in the URL; the rest (biz_content) goes in the form body. */
const URL_PARAMS = new Set([
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

/**
 * Every parameter of a request, signed by the SDK (method, app_id, charset utf-8, version 1.0, sign_type,
 * timestamp in Beijing time, the certificate serial numbers in cert mode, biz_content as the exact JSON sent,
 * and sign). `extra` are further public parameters (notify_url, return_url).
 */
export function signedRequestParams(
  p: PreparedAlipay,
  method: string,
  biz: Record<string, unknown>,
  extra: Record<string, string>,
  now: Date,
): Record<string, string> {
  const query = p.sdk.sdkExecute(
    method,
    { ...extra, timestamp: formatShanghai(now), bizContent: biz },
    { bizContentAutoSnakeCase: false },
  );
  return Object.fromEntries(new URLSearchParams(query));
}

export type VerifiedAnswer =
  { ok: true; data: Record<string, unknown> } | { ok: false; reason: string; code?: string | undefined };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Reads a gateway answer: `{"<method>_response": {...}, "sign": "..."}`. The signature covers the response
 * object's raw text exactly as received (the SDK cuts it out and verifies it); only that verified text is
 * read, and it must say the same as the parsed whole. Anything else is not an answer.
 */
export function verifyAnswer(p: PreparedAlipay, method: string, text: string): VerifiedAnswer {
  const key = `${method.replaceAll('.', '_')}_response`;
  let whole: unknown;
  try {
    whole = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'unparseable answer' };
  }
  if (!isRecord(whole)) return { ok: false, reason: 'answer is not a JSON object' };
  const body = whole[key];
  if (!isRecord(body)) {
    const err = whole['error_response'];
    if (isRecord(err))
      return {
        ok: false,
        reason:
          `unverified error_response ${String(err['code'] ?? '')} ${String(err['sub_code'] ?? '')}`.trim(),
      };
    return { ok: false, reason: `answer without ${key}` };
  }
  const sign = whole['sign'];
  if (typeof sign !== 'string' || sign === '') return { ok: false, reason: 'unsigned answer' };
  let signed: string;
  try {
    signed = p.sdk.getSignStr(text, key);
    p.sdk.checkResponseSign(text, key, sign, '');
  } catch {
    const sn = whole['alipay_cert_sn'];
    const rotated =
      p.alipayCertSn && typeof sn === 'string' && sn !== '' && sn !== p.alipayCertSn
        ? ` (answer signed with Alipay certificate ${sn}, configured ${p.alipayCertSn}: download Alipay's new public-key certificate and set alipay_cert)`
        : '';
    return { ok: false, reason: `bad signature${rotated}` };
  }
  let data: unknown;
  try {
    data = JSON.parse(signed);
  } catch {
    return { ok: false, reason: 'signed text is not JSON' };
  }
  if (!isRecord(data) || JSON.stringify(data) !== JSON.stringify(body))
    return { ok: false, reason: 'signed text differs from the answer' };
  return { ok: true, data };
}

// ---------------------------------------------------------------------------------------------------------
// Redaction for call records
// ---------------------------------------------------------------------------------------------------------

/** Personal or secret fields: masked whatever their content. */
const MASKED = new Set([
  'auth_code',
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
/** Our and Alipay's own numbers: kept as they are. */
const KEPT = new Set([
  'trade_no',
  'out_trade_no',
  'out_request_no',
  'app_id',
  'seller_id',
  'store_id',
  'terminal_id',
  'operator_id',
  'sys_service_id',
]);

function mask(text: string): string {
  return text.length <= 4 ? '***' : `${text.slice(0, 1)}***${text.slice(-1)}`;
}

/** Long digit runs (phones, ID, card and payment-code numbers) in free text. */
function scrubDigits(text: string): string {
  return text.replace(
    /(?<![0-9])[0-9]{11,24}(?![0-9Xx])|(?<![0-9])[0-9]{17}[Xx]/g,
    (m) => `[${m.length} digits]`,
  );
}

export function redact(value: unknown, key = ''): unknown {
  if (typeof value === 'string') {
    if (MASKED.has(key)) return mask(value);
    if (KEPT.has(key)) return value;
    return scrubDigits(value);
  }
  if (Array.isArray(value)) return value.map((v) => redact(v, key));
  if (isRecord(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redact(v, k)]));
  return value;
}

function short(value: unknown): string {
  return excerpt(JSON.stringify(redact(value)), 1500);
}

const MASKED_IN_TEXT = new RegExp(`"(${[...MASKED].join('|')})"\\s*:\\s*"[^"]*"`, 'g');

/** An answer that did not verify (or did not parse), for the record: redacted, without its signature, short. */
function unverifiedExcerpt(text: string): string {
  try {
    const whole = JSON.parse(text) as unknown;
    if (isRecord(whole)) {
      const { sign: _sign, ...rest } = whole;
      return excerpt(`(unverified) ${JSON.stringify(redact(rest))}`, 600);
    }
  } catch {
    // not JSON: the raw text, masked
  }
  return excerpt(scrubDigits(text.replace(MASKED_IN_TEXT, '"$1":"***"')), 300);
}

// ---------------------------------------------------------------------------------------------------------
// Answer codes
// ---------------------------------------------------------------------------------------------------------

const str = (d: Record<string, unknown>, k: string): string | undefined => {
  const v = d[k];
  return typeof v === 'string' && v !== '' ? v : undefined;
};

/** 'aop.ACQ.SYSTEM_ERROR' and 'ACQ.SYSTEM_ERROR' are the same code. */
function subCode(d: Record<string, unknown>): string {
  return (str(d, 'sub_code') ?? '').replace(/^aop\./, '');
}

/** Gateway-level refusals: the request was not processed at all (missing/invalid arguments, no permission). */
const GATEWAY_REFUSALS = new Set(['20001', '40001', '40002', '40006']);

function isSystemError(d: Record<string, unknown>): boolean {
  const sc = subCode(d);
  return str(d, 'code') === '20000' || sc === 'ACQ.SYSTEM_ERROR' || sc.startsWith('isp.');
}

/** alipay.trade.pay: the final refusals (the trade is not paid and never will be). */
export const PAY_DECLINES: Readonly<Record<string, { zh: string; en: string }>> = {
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
};

/** alipay.trade.precreate: refusals that a repeat will not change. */
const PRECREATE_FINAL = new Set([
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
export const REFUND_FAILURES: Readonly<Record<string, { zh: string; en: string }>> = {
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
};

/** 'yyyy-MM-dd HH:mm:ss' in Beijing time, as Alipay writes times. */
export function parseAlipayTime(text: string | undefined): Date | null {
  if (!text || !/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(text)) return null;
  const d = new Date(`${text.replace(' ', 'T')}+08:00`);
  return Number.isNaN(d.getTime()) ? null : d;
}

// ---------------------------------------------------------------------------------------------------------
// The channel
// ---------------------------------------------------------------------------------------------------------

type Answer =
  | { ok: true; data: Record<string, unknown>; httpStatus: number; latencyMs: number; response: string }
  | {
      ok: false;
      reason: string;
      httpStatus?: number | undefined;
      latencyMs: number;
      response?: string | undefined;
    };

interface Exchange {
  method: string;
  outTradeNo?: string | undefined;
  biz: Record<string, unknown>;
  extra?: Record<string, string>;
}

/** An answer that settles nothing by itself: `note` is recorded, then `next` asks Alipay again. */
class FollowUp<T> {
  constructor(
    readonly note: string,
    readonly next: () => Promise<T>,
  ) {}
}

const ACK_SUCCESS: NotifyAck = { status: 200, contentType: 'text/plain', body: 'success' };
const ACK_FAIL: NotifyAck = { status: 200, contentType: 'text/plain', body: 'fail' };

function describe(o: { kind: string; code?: string; reason?: string }): string {
  if (o.reason) return `${o.kind}: ${o.reason}`;
  return o.code ? `${o.kind} ${o.code}` : o.kind;
}

export class AlipayChannel implements Channel {
  readonly id = 'alipay';
  readonly payTypes = ['alipay'] as const satisfies readonly PayType[];
  private readonly http: HttpClient;
  private readonly clock: Clock;

  constructor(deps: Pick<ChannelDeps, 'http' | 'clock'>) {
    this.http = deps.http;
    this.clock = deps.clock;
  }

  /** One signed exchange with the gateway, verified; recorded by the caller once the outcome is known. */
  private async exchange(ctx: ChannelContext, x: Exchange): Promise<Answer> {
    const started = Date.now();
    const latency = () => Date.now() - started;
    const p = preparedFor(ctx.merchant);
    if (!p.ok) return { ok: false, reason: `configuration: ${p.problem}`, latencyMs: latency() };
    const { settings } = p.value;
    let params: Record<string, string>;
    try {
      params = signedRequestParams(p.value, x.method, x.biz, x.extra ?? {}, this.clock.now());
    } catch (e) {
      return {
        ok: false,
        reason: `signing failed: ${e instanceof Error ? e.message.slice(0, 100) : 'error'}`,
        latencyMs: latency(),
      };
    }
    const url = new URL(settings.gatewayUrl);
    const form = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (URL_PARAMS.has(k)) url.searchParams.set(k, v);
      else form.set(k, v);
    }
    let status: number;
    let text: string;
    try {
      const res = await this.http({
        method: 'POST',
        url: url.toString(),
        headers: {
          'content-type': 'application/x-www-form-urlencoded;charset=utf-8',
          accept: 'application/json',
        },
        body: form.toString(),
        timeoutMs: settings.timeoutMs,
        maxBytes: 1024 * 1024,
      });
      status = res.status;
      text = res.body.toString('utf8');
    } catch (e) {
      const kind = e instanceof Error && 'kind' in e ? String((e as { kind: unknown }).kind) : 'network';
      return {
        ok: false,
        reason:
          kind === 'timeout'
            ? `timeout after ${settings.timeoutMs} ms`
            : `${kind}: ${e instanceof Error ? e.message.slice(0, 120) : 'error'}`,
        latencyMs: latency(),
      };
    }
    if (status !== 200)
      return {
        ok: false,
        reason: `HTTP ${status}`,
        httpStatus: status,
        latencyMs: latency(),
        response: unverifiedExcerpt(text),
      };
    const v = verifyAnswer(p.value, x.method, text);
    if (!v.ok)
      return {
        ok: false,
        reason: v.reason,
        httpStatus: status,
        latencyMs: latency(),
        response: unverifiedExcerpt(text),
      };
    return { ok: true, data: v.data, httpStatus: status, latencyMs: latency(), response: short(v.data) };
  }

  private note(ctx: ChannelContext, x: Exchange, a: Answer, outcome: string): void {
    ctx.record({
      operation: x.method,
      outTradeNo: x.outTradeNo,
      httpStatus: a.httpStatus,
      latencyMs: a.latencyMs,
      outcome,
      request: short({ method: x.method, biz_content: x.biz, ...(x.extra ?? {}) }),
      response: a.response,
      error: a.ok ? undefined : a.reason,
    });
  }

  /**
   * Runs an exchange, maps its answer and records it; when the answer needs a second question (a query, a
   * refund query), the exchange is recorded first with what it came to, then the follow-up runs.
   */
  private async call<T extends { kind: string }>(
    ctx: ChannelContext,
    x: Exchange,
    map: (a: Answer) => T | FollowUp<T>,
  ): Promise<T> {
    const a = await this.exchange(ctx, x);
    const out = map(a);
    if (out instanceof FollowUp) {
      this.note(ctx, x, a, out.note);
      return out.next();
    }
    this.note(ctx, x, a, describe(out as { kind: string; code?: string; reason?: string }));
    return out;
  }

  private settings(ctx: ChannelContext): AlipaySettings | null {
    const p = preparedFor(ctx.merchant);
    return p.ok ? p.value.settings : null;
  }

  /** The merchant-side fields shared by pay and precreate. */
  private merchantBiz(ctx: ChannelContext): Record<string, unknown> {
    const s = this.settings(ctx);
    const biz: Record<string, unknown> = {};
    if (s?.sellerId) biz['seller_id'] = s.sellerId;
    if (s?.storeId) biz['store_id'] = s.storeId;
    if (s?.sysServiceId) biz['extend_params'] = { sys_service_id: s.sysServiceId };
    return biz;
  }

  private paidInfo(d: Record<string, unknown>): PaidInfo {
    return {
      channelTradeNo: str(d, 'trade_no') ?? '',
      paidAt: parseAlipayTime(str(d, 'gmt_payment') ?? str(d, 'send_pay_date')) ?? this.clock.now(),
      buyerLogonId: str(d, 'buyer_logon_id'),
      buyerUserId: str(d, 'buyer_user_id') ?? str(d, 'buyer_open_id'),
    };
  }

  /** An answer about another order than the one asked for is not an answer. */
  private static otherOrder(d: Record<string, unknown>, outTradeNo: string): boolean {
    const no = str(d, 'out_trade_no');
    return no !== undefined && no !== outTradeNo;
  }

  async barcodePay(ctx: ChannelContext, input: BarcodePayInput): Promise<PayOutcome> {
    if (input.payType !== 'alipay')
      return {
        kind: 'declined',
        code: 'PAY_TYPE',
        zh: '支付宝渠道只收支付宝',
        en: 'the Alipay channel takes Alipay only',
      };
    const biz: Record<string, unknown> = {
      out_trade_no: input.outTradeNo,
      scene: 'bar_code',
      auth_code: input.authCode,
      product_code: 'FACE_TO_FACE_PAYMENT',
      subject: input.subject.slice(0, 256),
      total_amount: formatFen(input.amountFen),
      ...(input.operatorId ? { operator_id: input.operatorId } : {}),
      ...(input.terminalId ? { terminal_id: input.terminalId } : {}),
      ...this.merchantBiz(ctx),
    };
    const x = {
      method: 'alipay.trade.pay',
      outTradeNo: input.outTradeNo,
      biz,
      extra: { notify_url: ctx.notifyUrl },
    };
    return this.call(ctx, x, (a): PayOutcome => {
      if (!a.ok) return { kind: 'unknown', reason: a.reason };
      const d = a.data;
      const code = str(d, 'code');
      const sc = subCode(d);
      if (code === '10000') {
        if (AlipayChannel.otherOrder(d, input.outTradeNo))
          return { kind: 'unknown', reason: 'answer names another order' };
        const total = str(d, 'total_amount');
        if (total !== undefined && parseYuanToFen(total) !== input.amountFen)
          return { kind: 'unknown', reason: `answer says total_amount ${total}` };
        const info = this.paidInfo(d);
        if (!info.channelTradeNo) return { kind: 'unknown', reason: 'success without trade_no' };
        return { kind: 'paid', ...info };
      }
      if (code === '10003') return { kind: 'paying', channelTradeNo: str(d, 'trade_no') };
      const decline = PAY_DECLINES[sc];
      if (code === '40004' && decline)
        return { kind: 'declined', code: sc, zh: str(d, 'sub_msg') ?? decline.zh, en: decline.en };
      if (code !== undefined && GATEWAY_REFUSALS.has(code))
        return {
          kind: 'declined',
          code: sc || code,
          zh: str(d, 'sub_msg') ?? str(d, 'msg') ?? '支付宝拒绝了请求',
          en: `Alipay refused the request (${code} ${str(d, 'msg') ?? ''})`.trim(),
        };
      return { kind: 'unknown', reason: `${code ?? '?'} ${sc}`.trim() };
    });
  }

  async precreate(ctx: ChannelContext, input: PrecreateInput): Promise<PrecreateOutcome> {
    if (input.payType !== 'alipay')
      return {
        kind: 'failed',
        code: 'PAY_TYPE',
        zh: '支付宝渠道只收支付宝',
        en: 'the Alipay channel takes Alipay only',
        retryable: false,
      };
    // Alipay closes the trade itself after timeout_express (whole minutes, 1m–15d): rounded down, so the payer
    // can never pay after the platform's own expiry.
    const minutes = Math.floor((input.expiresAt.getTime() - this.clock.now().getTime()) / 60_000);
    const biz: Record<string, unknown> = {
      out_trade_no: input.outTradeNo,
      total_amount: formatFen(input.amountFen),
      subject: input.subject.slice(0, 256),
      product_code: 'FACE_TO_FACE_PAYMENT',
      timeout_express: `${Math.min(Math.max(minutes, 1), 15 * 24 * 60)}m`,
      ...this.merchantBiz(ctx),
    };
    const x = {
      method: 'alipay.trade.precreate',
      outTradeNo: input.outTradeNo,
      biz,
      extra: { notify_url: ctx.notifyUrl },
    };
    return this.call(ctx, x, (a): PrecreateOutcome => {
      if (!a.ok)
        return {
          kind: 'failed',
          code: 'CHANNEL_UNKNOWN',
          zh: '支付宝应答异常',
          en: `no usable answer from Alipay (${a.reason})`,
          retryable: true,
        };
      const d = a.data;
      const code = str(d, 'code');
      const sc = subCode(d);
      const qr = str(d, 'qr_code');
      if (code === '10000' && qr && !AlipayChannel.otherOrder(d, input.outTradeNo))
        return { kind: 'created', codeUrl: qr, channelTradeNo: str(d, 'trade_no') };
      const final =
        (code === '40004' && PRECREATE_FINAL.has(sc)) || (code !== undefined && GATEWAY_REFUSALS.has(code));
      return {
        kind: 'failed',
        code: sc || code || 'CHANNEL_UNKNOWN',
        zh: str(d, 'sub_msg') ?? str(d, 'msg') ?? '支付宝预下单失败',
        en: `Alipay precreate failed (${code ?? '?'} ${sc})`.trim(),
        retryable: !final,
      };
    });
  }

  async wapPay(ctx: ChannelContext, input: WapPayInput): Promise<PrecreateOutcome> {
    const started = Date.now();
    const biz: Record<string, unknown> = {
      out_trade_no: input.outTradeNo,
      total_amount: formatFen(input.amountFen),
      subject: input.subject.slice(0, 256),
      product_code: 'QUICK_WAP_WAY',
      time_expire: formatShanghai(input.expiresAt),
      quit_url: input.returnUrl,
      ...(this.settings(ctx)?.sysServiceId
        ? { extend_params: { sys_service_id: this.settings(ctx)?.sysServiceId } }
        : {}),
    };
    const extra = { notify_url: ctx.notifyUrl, return_url: input.returnUrl };
    const record = (outcome: string, error?: string) =>
      ctx.record({
        operation: 'alipay.trade.wap.pay',
        outTradeNo: input.outTradeNo,
        latencyMs: Date.now() - started,
        outcome,
        request: short({ method: 'alipay.trade.wap.pay', biz_content: biz, ...extra }),
        error,
      });
    const p = preparedFor(ctx.merchant);
    if (input.payType !== 'alipay' || !p.ok) {
      const why = p.ok ? 'the Alipay channel takes Alipay only' : p.problem;
      record('failed', why);
      return {
        kind: 'failed',
        code: p.ok ? 'PAY_TYPE' : 'CHANNEL_CONFIG',
        zh: '无法生成支付宝收银台地址',
        en: why,
        retryable: false,
      };
    }
    // The wap cashier is a page the payer's browser opens: a GET of the gateway with every parameter signed.
    const params = signedRequestParams(p.value, 'alipay.trade.wap.pay', biz, extra, this.clock.now());
    // Written as the SDK's pageExecute writes a GET: the public parameters in the URL, then the rest
    // percent-encoded.
    const url = new URL(p.value.settings.gatewayUrl);
    const rest: string[] = [];
    for (const [k, v] of Object.entries(params)) {
      if (URL_PARAMS.has(k)) url.searchParams.set(k, v);
      else rest.push(`${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
    }
    record('created (signed cashier URL)');
    return { kind: 'created', codeUrl: `${url.toString()}&${rest.join('&')}` };
  }

  async query(ctx: ChannelContext, ref: TradeRef): Promise<QueryOutcome> {
    const x = {
      method: 'alipay.trade.query',
      outTradeNo: ref.outTradeNo,
      biz: { out_trade_no: ref.outTradeNo },
    };
    return this.call(ctx, x, (a): QueryOutcome => {
      if (!a.ok) return { kind: 'unknown', reason: a.reason };
      const d = a.data;
      const code = str(d, 'code');
      const sc = subCode(d);
      if (code === '40004' && sc === 'ACQ.TRADE_NOT_EXIST') return { kind: 'not_found' };
      if (code !== '10000') return { kind: 'unknown', reason: `${code ?? '?'} ${sc}`.trim() };
      if (AlipayChannel.otherOrder(d, ref.outTradeNo))
        return { kind: 'unknown', reason: 'answer names another order' };
      const status = str(d, 'trade_status');
      switch (status) {
        case 'TRADE_SUCCESS':
        case 'TRADE_FINISHED': {
          const info = this.paidInfo(d);
          return info.channelTradeNo
            ? { kind: 'paid', ...info }
            : { kind: 'unknown', reason: 'paid without trade_no' };
        }
        case 'WAIT_BUYER_PAY':
          return { kind: 'waiting', channelTradeNo: str(d, 'trade_no') };
        case 'TRADE_CLOSED': {
          // Closed unpaid, or paid and then refunded in full: only a paid trade has a payment time or a
          // paid amount.
          const paidFen =
            parseYuanToFen(str(d, 'buyer_pay_amount') ?? '') ??
            parseYuanToFen(str(d, 'receipt_amount') ?? '') ??
            0;
          if (str(d, 'send_pay_date') || paidFen > 0) return { kind: 'refunded', ...this.paidInfo(d) };
          return { kind: 'closed' };
        }
        default:
          return { kind: 'unknown', reason: `trade_status ${status ?? '(none)'}` };
      }
    });
  }

  async cancel(ctx: ChannelContext, ref: TradeRef): Promise<CancelOutcome> {
    const x = {
      method: 'alipay.trade.cancel',
      outTradeNo: ref.outTradeNo,
      biz: { out_trade_no: ref.outTradeNo },
    };
    return this.call(ctx, x, (a): CancelOutcome | FollowUp<CancelOutcome> => {
      if (!a.ok) return { kind: 'retry', reason: a.reason };
      const d = a.data;
      const code = str(d, 'code');
      const sc = subCode(d);
      if (code === '10000') {
        const action = str(d, 'action');
        // Alipay answers a cancel of an order it never saw with success and no action: nothing was paid.
        if (action === undefined || action === 'close') return { kind: 'closed' };
        // Refunded (or an action we do not know): the query gives the payment's details.
        return new FollowUp(`action ${action}; querying the payment`, async (): Promise<CancelOutcome> => {
          const q = await this.query(ctx, ref);
          if (q.kind === 'refunded' || q.kind === 'paid')
            return { ...q, kind: 'refunded', channelTradeNo: q.channelTradeNo || (str(d, 'trade_no') ?? '') };
          if (action === 'refund')
            return {
              kind: 'refunded',
              channelTradeNo: str(d, 'trade_no') ?? '',
              paidAt: parseAlipayTime(str(d, 'gmt_refund_pay')) ?? this.clock.now(),
            };
          if (q.kind === 'closed') return { kind: 'closed' };
          return { kind: 'retry', reason: `action ${action}, then query ${q.kind}` };
        });
      }
      const retryFlag = str(d, 'retry_flag');
      if (retryFlag === 'N' && !isSystemError(d))
        return {
          kind: 'failed',
          code: sc || code || 'CANCEL_FAILED',
          zh: str(d, 'sub_msg') ?? '撤销失败',
          en: `Alipay will not cancel this trade (${code ?? '?'} ${sc})`.trim(),
        };
      return { kind: 'retry', reason: `${code ?? '?'} ${sc} retry_flag ${retryFlag ?? '(none)'}`.trim() };
    });
  }

  async close(ctx: ChannelContext, ref: TradeRef): Promise<CloseOutcome> {
    const x = {
      method: 'alipay.trade.close',
      outTradeNo: ref.outTradeNo,
      biz: { out_trade_no: ref.outTradeNo },
    };
    return this.call(ctx, x, (a): CloseOutcome | FollowUp<CloseOutcome> => {
      if (!a.ok) return { kind: 'retry', reason: a.reason };
      const d = a.data;
      const code = str(d, 'code');
      const sc = subCode(d);
      if (code === '10000') return { kind: 'closed' };
      // Not at Alipay: a QR trade nobody scanned or a wap page nobody opened. Its URL carries its own expiry
      // (timeout_express / time_expire), so it can never be paid after the platform's.
      if (code === '40004' && sc === 'ACQ.TRADE_NOT_EXIST') return { kind: 'closed' };
      if (code === '40004' && sc === 'ACQ.TRADE_STATUS_ERROR') {
        // Paid meanwhile (or already closed): the query says which.
        return new FollowUp('ACQ.TRADE_STATUS_ERROR; querying the trade', async (): Promise<CloseOutcome> => {
          const q = await this.query(ctx, ref);
          if (q.kind === 'paid' || q.kind === 'refunded') {
            const { kind: _kind, ...info } = q;
            return { kind: 'paid', ...info };
          }
          if (q.kind === 'closed') return { kind: 'closed' };
          return { kind: 'retry', reason: `ACQ.TRADE_STATUS_ERROR, then query ${q.kind}` };
        });
      }
      return { kind: 'retry', reason: `${code ?? '?'} ${sc}`.trim() };
    });
  }

  async refund(ctx: ChannelContext, input: RefundInput): Promise<RefundOutcome> {
    const biz: Record<string, unknown> = {
      out_trade_no: input.outTradeNo,
      refund_amount: formatFen(input.amountFen),
      out_request_no: input.outRequestNo,
      ...(input.reason ? { refund_reason: input.reason.slice(0, 256) } : {}),
    };
    const x = { method: 'alipay.trade.refund', outTradeNo: input.outTradeNo, biz };
    // Not settled by the answer: alipay.trade.fastpay.refund.query says whether this request was refunded.
    const confirm = (why: string) =>
      new FollowUp(`unknown: ${why}; asking the refund query`, async (): Promise<RefundOutcome> => {
        const q = await this.refundQuery(ctx, input);
        return (
          q ?? {
            kind: 'unknown',
            reason: `${why}; refund query found no refund yet (repeat with the same out_request_no)`,
          }
        );
      });
    return this.call(ctx, x, (a): RefundOutcome | FollowUp<RefundOutcome> => {
      if (!a.ok) return confirm(a.reason);
      const d = a.data;
      const code = str(d, 'code');
      const sc = subCode(d);
      if (code === '10000') {
        if (AlipayChannel.otherOrder(d, input.outTradeNo)) return confirm('answer names another order');
        // fund_change Y: money moved now. N: a repeat of a done request, or still in progress: confirm.
        if (str(d, 'fund_change') === 'Y')
          return {
            kind: 'success',
            channelRefundNo: str(d, 'trade_no') ?? input.outRequestNo,
            refundedAt: parseAlipayTime(str(d, 'gmt_refund_pay')) ?? this.clock.now(),
          };
        return confirm('fund_change N');
      }
      const failure = REFUND_FAILURES[sc];
      if (code === '40004' && failure)
        return { kind: 'failed', code: sc, zh: str(d, 'sub_msg') ?? failure.zh, en: failure.en };
      if (code !== undefined && GATEWAY_REFUSALS.has(code))
        return {
          kind: 'failed',
          code: sc || code,
          zh: str(d, 'sub_msg') ?? str(d, 'msg') ?? '支付宝拒绝了退款请求',
          en: `Alipay refused the request (${code})`,
        };
      return confirm(`${code ?? '?'} ${sc}`.trim());
    });
  }

  /** alipay.trade.fastpay.refund.query: a success when Alipay shows this request refunded, else null. */
  private async refundQuery(ctx: ChannelContext, input: RefundInput): Promise<RefundOutcome | null> {
    const x = {
      method: 'alipay.trade.fastpay.refund.query',
      outTradeNo: input.outTradeNo,
      biz: {
        out_trade_no: input.outTradeNo,
        out_request_no: input.outRequestNo,
        query_options: ['gmt_refund_pay'],
      },
    };
    const r = await this.call(ctx, x, (a): { kind: string; reason?: string; found?: RefundOutcome } => {
      if (!a.ok) return { kind: 'unknown', reason: a.reason };
      const d = a.data;
      if (str(d, 'code') !== '10000')
        return { kind: 'unknown', reason: `${str(d, 'code') ?? '?'} ${subCode(d)}`.trim() };
      const amount = str(d, 'refund_amount');
      const status = str(d, 'refund_status');
      if (amount === undefined || (status !== undefined && status !== 'REFUND_SUCCESS'))
        return {
          kind: 'not_refunded',
          reason: status ? `refund_status ${status}` : 'no refund under this out_request_no',
        };
      const requestNo = str(d, 'out_request_no');
      if (requestNo !== undefined && requestNo !== input.outRequestNo)
        return { kind: 'unknown', reason: 'answer names another request' };
      if (parseYuanToFen(amount) !== input.amountFen)
        return { kind: 'unknown', reason: `refund_amount ${amount} differs` };
      return {
        kind: 'refunded',
        found: {
          kind: 'success',
          channelRefundNo: str(d, 'trade_no') ?? input.outRequestNo,
          refundedAt: parseAlipayTime(str(d, 'gmt_refund_pay')) ?? this.clock.now(),
        },
      };
    });
    return r.found ?? null;
  }

  async downloadBill(ctx: ChannelContext, input: { date: string; payType: PayType }): Promise<Bill> {
    if (input.payType !== 'alipay')
      throw new Error(
        `支付宝渠道没有 ${input.payType} 账单 / the Alipay channel has no ${input.payType} bill`,
      );
    const x = {
      method: 'alipay.data.dataservice.bill.downloadurl.query',
      biz: { bill_type: 'trade', bill_date: input.date },
    };
    const r = await this.call(ctx, x, (a): { kind: string; reason?: string; link?: string } => {
      if (!a.ok) return { kind: 'unknown', reason: a.reason };
      const d = a.data;
      const u = str(d, 'bill_download_url');
      if (str(d, 'code') === '10000' && u && /^https?:\/\//.test(u)) return { kind: 'ok', link: u };
      return {
        kind: 'failed',
        reason: `${str(d, 'code') ?? '?'} ${subCode(d)} ${str(d, 'sub_msg') ?? ''}`.trim(),
      };
    });
    const link = r.link;
    if (link === undefined)
      throw new Error(
        `支付宝账单地址获取失败 / could not get the Alipay bill URL for ${input.date}: ${r.reason ?? r.kind}`,
      );
    const s = this.settings(ctx);
    const started = Date.now();
    const op = 'alipay.bill.download';
    let zip: Buffer;
    try {
      const res = await this.http({
        method: 'GET',
        url: link,
        timeoutMs: Math.max(s?.timeoutMs ?? DEFAULT_TIMEOUT_MS, 30_000),
        maxBytes: 64 * 1024 * 1024,
      });
      if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
      zip = res.body;
    } catch (e) {
      const msg = e instanceof Error ? e.message.slice(0, 200) : 'error';
      ctx.record({ operation: op, latencyMs: Date.now() - started, outcome: `failed: ${msg}`, error: msg });
      throw new Error(`支付宝账单下载失败 / the Alipay bill download failed for ${input.date}: ${msg}`, {
        cause: e,
      });
    }
    let bill: Bill;
    try {
      bill = parseAlipayTradeBill(zip);
    } catch (e) {
      const msg = e instanceof Error ? e.message.slice(0, 200) : 'error';
      ctx.record({
        operation: op,
        httpStatus: 200,
        latencyMs: Date.now() - started,
        outcome: `unreadable: ${msg}`,
        error: msg,
      });
      throw e;
    }
    ctx.record({
      operation: op,
      httpStatus: 200,
      latencyMs: Date.now() - started,
      outcome: `ok: ${bill.lines.length} lines, ${zip.length} bytes`,
    });
    if (bill.date !== input.date)
      throw new Error(`支付宝账单日期不符 / the Alipay bill is for ${bill.date}, not ${input.date}`);
    return {
      ...bill,
      payType: 'alipay',
      lines: bill.lines.map((l) => ({ ...l, payType: 'alipay' as const })),
    };
  }

  async parseNotify(
    ctx: ChannelContext,
    input: { headers: Readonly<Record<string, string>>; body: Buffer },
  ): Promise<NotifyParse> {
    const reject = (reason: string): NotifyParse => ({ kind: 'rejected', reason, ack: ACK_FAIL });
    const p = preparedFor(ctx.merchant);
    if (!p.ok) return reject(`configuration: ${p.problem}`);
    const text = input.body.toString('utf8');
    if (text.length === 0 || text.length > 64 * 1024) return reject('empty or oversized body');
    const form = new URLSearchParams(text);
    const params: Record<string, string> = {};
    for (const [k, v] of form) {
      if (k in params) return reject(`parameter ${k} given twice`);
      params[k] = v;
    }
    if (!params['sign'] || !params['app_id']) return reject('not an Alipay notification (no sign or app_id)');
    const signType = params['sign_type'] ?? p.value.settings.signType;
    if (signType !== 'RSA2' && signType !== 'RSA') return reject(`unknown sign_type ${signType}`);
    let valid: boolean;
    try {
      // Values as received (already form-decoded), never decoded again; the SDK tries the rule without
      // sign_type (Alipay's notify rule) and with it.
      valid = p.value.sdk.checkNotifySignV2(params);
    } catch {
      valid = false;
    }
    if (!valid) return reject('bad signature');
    if (params['app_id'] !== p.value.settings.appId && params['auth_app_id'] !== p.value.settings.appId)
      return reject('notification for another app_id');
    if (p.value.settings.sellerId && params['seller_id'] && params['seller_id'] !== p.value.settings.sellerId)
      return reject('notification for another seller_id');
    const outTradeNo = params['out_trade_no'];
    if (params['trade_status'] && outTradeNo) return { kind: 'trade', outTradeNo, ack: ACK_SUCCESS };
    return { kind: 'ignored', ack: ACK_SUCCESS };
  }
}
