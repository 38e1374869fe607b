/**
 * The WeChat Pay channel (direct merchant, 普通商户):
 *  - payment code ("micropay"): v2 XML POST /pay/micropay; reverse (cancel): v2 POST /secapi/pay/reverse with the
 *    merchant's TLS client certificate;
 *  - everything else v3 JSON: native (QR) and H5 orders, query by out_trade_no (also for micropay trades), close,
 *    refund and refund query, the trade bill, and the signed, AES-GCM-encrypted notifications.
 *
 * Every answer is verified before any field is read: v3 by the Wechatpay-* headers (a known serial, a timestamp at
 * most 5 minutes off, SHA256withRSA over the exact body), v2 by its `sign`. Anything unsigned, wrongly signed,
 * unparseable, a 5xx, a system error or a timeout is an unknown outcome, never a success. Each HTTP exchange is
 * recorded through ctx.record, redacted (no auth code, openid/payer, keys, AppID, personal numbers).
 */
import os from 'node:os';
import { createHash } from 'node:crypto';
import type {
  BarcodePayInput,
  CancelOutcome,
  Channel,
  ChannelContext,
  CloseOutcome,
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
import { excerpt, HttpError, type HttpClient, type HttpRequest, type HttpResponse } from '../http.js';
import type { Clock } from '../../domain/clock.js';
import type { PayType } from '../../domain/trade.js';
import type { Bill } from '../../domain/bill.js';
import { parseWechatTradeBill } from './bill.js';
import { scrubText } from '../../logging.js';
import {
  buildV2Xml,
  decryptResource,
  nonceStr,
  parseV2Xml,
  v2Sign,
  v2Verify,
  v3Authorization,
  verifyV3,
} from './crypto.js';
import { loadConfig, verifierKeys, type WechatConfig } from './config.js';

/** A v3 answer after verification. */
type V3Answer =
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
type V2Answer = { kind: 'ok'; fields: Record<string, string> } | { kind: 'unknown'; reason: string };

interface Exchange {
  operation: string;
  outTradeNo?: string | undefined;
  httpStatus?: number | undefined;
  latencyMs: number;
  request?: string | undefined;
  response?: string | undefined;
  error?: string | undefined;
}

/** v3 error codes that say "try again", not "no". */
const V3_TRANSIENT = new Set([
  'SYSTEM_ERROR',
  'SYSTEMERROR',
  'FREQUENCY_LIMITED',
  'BANK_ERROR',
  'SERVICE_UNAVAILABLE',
]);

/** micropay err_codes after which the trade is certainly not paid (zh from WeChat's documentation). */
const MICROPAY_DECLINES: Readonly<Record<string, [string, string]>> = {
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

/** Where the request / answer excerpts lose the payer's identity and the payment code. */
const SENSITIVE = [
  'auth_code',
  'openid',
  'sub_openid',
  'sp_openid',
  'payer',
  'user_received_account',
  'payer_client_ip',
  'spbill_create_ip',
  'id_card',
  'name',
  'phone',
];

/** Settings that may appear in a record as they are (everything else configured is masked when seen). */
const PLAIN_SETTINGS = new Set(['mch_id', 'verify_mode', 'sign_type_v2', 'timeout_ms', 'api_base_url']);

let machineIp: string | undefined;
/** v2 spbill_create_ip: "the IP of the machine that calls the API". */
function hostIp(): string {
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
function cutBytes(text: string, max: number): string {
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

/** v2 time_end (yyyyMMddHHmmss, Beijing) to a Date, or null. */
function parseTimeEnd(s: string | undefined): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$/.exec(s ?? '');
  if (!m) return null;
  const t = Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}+08:00`);
  return Number.isNaN(t) ? null : new Date(t);
}

function parseRfc3339(s: unknown): Date | null {
  if (typeof s !== 'string' || !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/.test(s)) return null;
  const t = Date.parse(s);
  return Number.isNaN(t) ? null : new Date(t);
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

function describe(o: { kind: string; code?: unknown; reason?: unknown }): string {
  const code = typeof o.code === 'string' ? ` ${o.code}` : '';
  const reason = typeof o.reason === 'string' ? `: ${o.reason}` : '';
  return `${o.kind}${code}${reason}`.slice(0, 300);
}

function transportReason(e: unknown): string {
  if (e instanceof HttpError) return `${e.kind}: ${e.message}`;
  return `error: ${e instanceof Error ? e.message : String(e)}`;
}

export interface WechatChannelOptions {
  /** Pauses between refund queries while a refund is PROCESSING (each bounded by the call's timeout). */
  refundPollMs?: readonly number[];
}

export class WechatChannel implements Channel {
  readonly id = 'wechat';
  readonly payTypes = ['weixin'] as const;

  constructor(
    private readonly http: HttpClient,
    private readonly clock: Clock,
    private readonly opts: WechatChannelOptions = {},
  ) {}

  // ---------------------------------------------------------------- recording and redaction

  /** Removes payer identity, the payment code and the app's configured values from an excerpt. */
  private redact(ctx: ChannelContext, text: string): string {
    let t = text;
    for (const k of SENSITIVE) {
      t = t.replace(new RegExp(`(<${k}>)[\\s\\S]*?(</${k}>)`, 'g'), '$1***$2');
      t = t.replace(new RegExp(`("${k}"\\s*:\\s*)("(?:[^"\\\\]|\\\\.)*"|\\{[^{}]*\\})`, 'g'), '$1"***"');
    }
    for (const [k, v] of Object.entries(ctx.merchant)) {
      if (PLAIN_SETTINGS.has(k) || v.length < 8 || /^[0-9]+$/.test(v) || /^https?:\/\//.test(v)) continue;
      t = t.split(v).join('***');
    }
    return excerpt(scrubText(t), 3000);
  }

  private record(ctx: ChannelContext, ex: Exchange, outcome: string): void {
    try {
      ctx.record({ ...ex, outcome });
    } catch {
      /* a recorder failure never changes the outcome */
    }
  }

  private config(ctx: ChannelContext): WechatConfig | string {
    try {
      return loadConfig(ctx.merchant);
    } catch (e) {
      return `configuration: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  private async send(req: HttpRequest): Promise<{ res?: HttpResponse; error?: string; latencyMs: number }> {
    const started = performance.now();
    try {
      const res = await this.http(req);
      return { res, latencyMs: Math.round(performance.now() - started) };
    } catch (e) {
      return { error: transportReason(e), latencyMs: Math.round(performance.now() - started) };
    }
  }

  // ---------------------------------------------------------------- v3

  /** Signs and sends one v3 request, verifies the answer. Does not record: the caller records with the outcome. */
  private async v3(
    ctx: ChannelContext,
    cfg: WechatConfig,
    operation: string,
    method: 'GET' | 'POST',
    path: string,
    body: Record<string, unknown> | null,
    outTradeNo?: string,
  ): Promise<{ answer: V3Answer; ex: Exchange }> {
    const url = new URL(path, `${cfg.baseUrl}/`);
    const urlPath = `${url.pathname}${url.search}`;
    const text = body === null ? '' : JSON.stringify(body);
    const authorization = v3Authorization({
      mchId: cfg.mchId,
      serialNo: cfg.serialNo,
      privateKey: cfg.privateKey,
      method,
      urlPath,
      body: text,
      timestamp: String(Math.floor(this.clock.now().getTime() / 1000)),
      nonce: nonceStr(),
    });
    const sent = await this.send({
      method,
      url: url.toString(),
      headers: {
        authorization,
        accept: 'application/json',
        'user-agent': 'hospay (+https://github.com/hospay)',
        ...(body === null ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === null ? {} : { body: text }),
      timeoutMs: cfg.timeoutMs,
    });
    const ex: Exchange = {
      operation,
      outTradeNo,
      latencyMs: sent.latencyMs,
      request: this.redact(ctx, `${method} ${urlPath}${text ? `\n${text}` : ''}`),
    };
    if (!sent.res) {
      ex.error = sent.error;
      return { answer: { kind: 'unknown', reason: sent.error ?? 'no answer' }, ex };
    }
    const res = sent.res;
    ex.httpStatus = res.status;
    ex.response = this.redact(ctx, res.body.toString('utf8'));
    return { answer: this.readV3(cfg, res), ex };
  }

  private readV3(cfg: WechatConfig, res: HttpResponse): V3Answer {
    const signed = res.headers['wechatpay-signature'] !== undefined;
    if (!signed) {
      if (res.status >= 500) return { kind: 'unknown', reason: `HTTP ${res.status}` };
      const reason = `unsigned answer (HTTP ${res.status})`;
      if (res.status < 400) return { kind: 'unknown', reason };
      try {
        const e = JSON.parse(res.body.toString('utf8')) as unknown;
        const code = str((e as Record<string, unknown> | null)?.['code']);
        const message = str((e as Record<string, unknown> | null)?.['message']);
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
    const bad = verifyV3(
      verifierKeys(cfg, this.clock.now()),
      res.headers,
      res.body,
      Math.floor(this.clock.now().getTime() / 1000),
    );
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
    const code = str(obj?.['code']);
    const message = str(obj?.['message']);
    if (res.status >= 500 || res.status === 429 || code === '' || V3_TRANSIENT.has(code))
      return { kind: 'unknown', reason: `HTTP ${res.status} ${code || '(no code)'} ${message}`.trim() };
    return { kind: 'error', status: res.status, code, message: message || code };
  }

  // ---------------------------------------------------------------- v2

  private async v2(
    ctx: ChannelContext,
    cfg: WechatConfig,
    operation: string,
    path: string,
    params: Record<string, string>,
    outTradeNo: string,
    withCert: boolean,
  ): Promise<{ answer: V2Answer; ex: Exchange }> {
    const ex: Exchange = { operation, outTradeNo, latencyMs: 0 };
    const key = cfg.apiV2Key;
    if (!key) return { answer: { kind: 'unknown', reason: 'api_v2_key is not set' }, ex };
    if (withCert && !cfg.clientTls)
      return {
        answer: { kind: 'unknown', reason: 'no client certificate (client_cert_p12 or client_cert_pem)' },
        ex,
      };
    const all: Record<string, string> = {
      appid: cfg.appId,
      mch_id: cfg.mchId,
      nonce_str: nonceStr(),
      ...(cfg.signTypeV2 === 'HMAC-SHA256' ? { sign_type: 'HMAC-SHA256' } : {}),
      ...params,
    };
    all['sign'] = v2Sign(all, key, cfg.signTypeV2);
    const xml = buildV2Xml(all);
    const sent = await this.send({
      method: 'POST',
      url: `${cfg.baseUrl}${path}`,
      headers: { 'content-type': 'text/xml; charset=utf-8', accept: 'text/xml' },
      body: xml,
      timeoutMs: cfg.timeoutMs,
      ...(withCert && cfg.clientTls ? { tls: cfg.clientTls } : {}),
    });
    ex.latencyMs = sent.latencyMs;
    ex.request = this.redact(ctx, `POST ${path}\n${xml.replace(/<sign>[^<]*<\/sign>/, '<sign>…</sign>')}`);
    if (!sent.res) {
      ex.error = sent.error;
      return { answer: { kind: 'unknown', reason: sent.error ?? 'no answer' }, ex };
    }
    const res = sent.res;
    ex.httpStatus = res.status;
    ex.response = this.redact(ctx, res.body.toString('utf8'));
    if (res.status !== 200) return { answer: { kind: 'unknown', reason: `HTTP ${res.status}` }, ex };
    let fields: Record<string, string>;
    try {
      fields = parseV2Xml(res.body.toString('utf8'));
    } catch (e) {
      return {
        answer: { kind: 'unknown', reason: `unparseable answer: ${(e as Error).message.slice(0, 100)}` },
        ex,
      };
    }
    if (fields['return_code'] !== 'SUCCESS')
      return {
        answer: {
          kind: 'unknown',
          reason: `return_code ${fields['return_code'] ?? '(none)'}: ${(fields['return_msg'] ?? '').slice(0, 100)}`,
        },
        ex,
      };
    if (!v2Verify(fields, key, cfg.signTypeV2))
      return { answer: { kind: 'unknown', reason: 'answer not trusted: sign does not verify' }, ex };
    if ((fields['mch_id'] ?? cfg.mchId) !== cfg.mchId || (fields['appid'] ?? cfg.appId) !== cfg.appId)
      return { answer: { kind: 'unknown', reason: 'answer for another merchant' }, ex };
    return { answer: { kind: 'ok', fields }, ex };
  }

  // ---------------------------------------------------------------- barcode (micropay)

  async barcodePay(ctx: ChannelContext, input: BarcodePayInput): Promise<PayOutcome> {
    const cfg = this.config(ctx);
    if (typeof cfg === 'string' || !cfg.apiV2Key) {
      const reason = typeof cfg === 'string' ? cfg : 'api_v2_key is not set';
      const out: PayOutcome = {
        kind: 'declined',
        code: 'CHANNEL_CONFIG',
        zh: `微信支付配置不完整，未发起支付（${reason}）`,
        en: `WeChat Pay is not fully configured; nothing was sent (${reason})`,
      };
      this.record(
        ctx,
        { operation: 'pay/micropay', outTradeNo: input.outTradeNo, latencyMs: 0 },
        describe(out),
      );
      return out;
    }
    const { answer, ex } = await this.v2(
      ctx,
      cfg,
      'pay/micropay',
      '/pay/micropay',
      {
        body: cutBytes(input.subject || '门诊缴费', 128),
        out_trade_no: input.outTradeNo,
        total_fee: String(input.amountFen),
        fee_type: 'CNY',
        spbill_create_ip: hostIp(),
        auth_code: input.authCode,
        ...(input.terminalId ? { device_info: cutBytes(input.terminalId, 32) } : {}),
      },
      input.outTradeNo,
      false,
    );
    const out = this.mapMicropay(answer, input);
    this.record(ctx, ex, describe(out));
    return out;
  }

  private mapMicropay(answer: V2Answer, input: BarcodePayInput): PayOutcome {
    if (answer.kind === 'unknown') return answer;
    const f = answer.fields;
    if (f['result_code'] === 'SUCCESS') {
      if (f['out_trade_no'] !== input.outTradeNo)
        return { kind: 'unknown', reason: 'answer for another trade' };
      if (f['total_fee'] !== String(input.amountFen))
        return { kind: 'unknown', reason: `amount differs: ${f['total_fee'] ?? '(none)'} fen` };
      const channelTradeNo = f['transaction_id'] ?? '';
      if (channelTradeNo === '') return { kind: 'unknown', reason: 'SUCCESS without transaction_id' };
      return {
        kind: 'paid',
        channelTradeNo,
        paidAt: parseTimeEnd(f['time_end']) ?? this.clock.now(),
        buyerUserId: f['openid'] || undefined,
      };
    }
    if (f['result_code'] !== 'FAIL')
      return { kind: 'unknown', reason: `result_code ${f['result_code'] ?? '(none)'}` };
    const code = f['err_code'] ?? '';
    if (code === 'USERPAYING') return { kind: 'paying', channelTradeNo: f['transaction_id'] || undefined };
    const known = MICROPAY_DECLINES[code];
    // SYSTEMERROR, BANKERROR, ORDERPAID, OUT_TRADE_NO_USED and anything not listed: ask again.
    if (!known) return { kind: 'unknown', reason: `err_code ${code || '(none)'}` };
    return { kind: 'declined', code, zh: f['err_code_des'] || known[0], en: known[1] };
  }

  // ---------------------------------------------------------------- query

  async query(ctx: ChannelContext, ref: TradeRef): Promise<QueryOutcome> {
    const cfg = this.config(ctx);
    if (typeof cfg === 'string') {
      const out: QueryOutcome = { kind: 'unknown', reason: cfg };
      this.record(
        ctx,
        { operation: 'v3/pay/transactions/out-trade-no', outTradeNo: ref.outTradeNo, latencyMs: 0 },
        describe(out),
      );
      return out;
    }
    return this.queryWith(ctx, cfg, ref.outTradeNo);
  }

  private async queryWith(ctx: ChannelContext, cfg: WechatConfig, outTradeNo: string): Promise<QueryOutcome> {
    const { answer, ex } = await this.v3(
      ctx,
      cfg,
      'v3/pay/transactions/out-trade-no',
      'GET',
      `/v3/pay/transactions/out-trade-no/${encodeURIComponent(outTradeNo)}?mchid=${encodeURIComponent(cfg.mchId)}`,
      null,
      outTradeNo,
    );
    const out = this.mapQuery(answer, cfg, outTradeNo);
    this.record(ctx, ex, describe(out));
    return out;
  }

  private mapQuery(answer: V3Answer, cfg: WechatConfig, outTradeNo: string): QueryOutcome {
    if (answer.kind === 'unknown') return answer;
    if (answer.kind === 'error')
      return answer.status === 404 || answer.code === 'ORDER_NOT_EXIST' || answer.code === 'ORDERNOTEXIST'
        ? { kind: 'not_found' }
        : { kind: 'unknown', reason: `${answer.code}: ${answer.message}` };
    const j = answer.json ?? {};
    if (str(j['out_trade_no']) !== outTradeNo) return { kind: 'unknown', reason: 'answer for another trade' };
    if (j['mchid'] !== undefined && str(j['mchid']) !== cfg.mchId)
      return { kind: 'unknown', reason: 'answer for another merchant' };
    const channelTradeNo = str(j['transaction_id']);
    const paid = (): PaidInfo | null => {
      const paidAt = parseRfc3339(j['success_time']);
      if (!channelTradeNo || !paidAt) return null;
      const payer = j['payer'];
      const openid =
        typeof payer === 'object' && payer !== null ? str((payer as Record<string, unknown>)['openid']) : '';
      return { channelTradeNo, paidAt, buyerUserId: openid || undefined };
    };
    const state = str(j['trade_state']);
    switch (state) {
      case 'SUCCESS': {
        const p = paid();
        return p
          ? { kind: 'paid', ...p }
          : { kind: 'unknown', reason: 'SUCCESS without transaction_id/success_time' };
      }
      case 'NOTPAY':
      case 'USERPAYING':
        return { kind: 'waiting', channelTradeNo: channelTradeNo || undefined };
      case 'CLOSED':
      case 'PAYERROR':
        return { kind: 'closed' };
      case 'REVOKED': {
        // Reversed: with a payment time it was paid and the reverse refunded it.
        const p = paid();
        return p ? { kind: 'refunded', ...p } : { kind: 'closed' };
      }
      case 'REFUND': {
        const p = paid();
        return p
          ? { kind: 'refunded', ...p }
          : { kind: 'unknown', reason: 'REFUND without transaction_id/success_time' };
      }
      default:
        return { kind: 'unknown', reason: `trade_state ${state.slice(0, 40) || '(none)'}` };
    }
  }

  // ---------------------------------------------------------------- cancel (v2 reverse)

  /**
   * Reverse (撤销): closes an unpaid micropay trade, refunds a paid one. The reverse answer does not say which, so
   * the trade is queried before (and, if it was not paid then, after) the reverse.
   */
  async cancel(ctx: ChannelContext, ref: TradeRef): Promise<CancelOutcome> {
    const cfg = this.config(ctx);
    if (typeof cfg === 'string' || !cfg.apiV2Key || !cfg.clientTls) {
      const reason =
        typeof cfg === 'string'
          ? cfg
          : !cfg.apiV2Key
            ? 'api_v2_key is not set'
            : 'no client certificate (client_cert_p12 or client_cert_pem)';
      const out: CancelOutcome = { kind: 'retry', reason: `configuration: ${reason}` };
      this.record(
        ctx,
        { operation: 'secapi/pay/reverse', outTradeNo: ref.outTradeNo, latencyMs: 0 },
        describe(out),
      );
      return out;
    }
    const before = await this.queryWith(ctx, cfg, ref.outTradeNo);
    const { answer, ex } = await this.v2(
      ctx,
      cfg,
      'secapi/pay/reverse',
      '/secapi/pay/reverse',
      { out_trade_no: ref.outTradeNo },
      ref.outTradeNo,
      true,
    );
    let out: CancelOutcome;
    if (answer.kind === 'unknown') out = { kind: 'retry', reason: answer.reason };
    else {
      const f = answer.fields;
      const code = f['err_code'] ?? '';
      if (f['recall'] === 'Y' || (f['result_code'] !== 'SUCCESS' && (code === 'SYSTEMERROR' || code === '')))
        out = {
          kind: 'retry',
          reason: `reverse: ${f['result_code'] ?? ''} ${code} recall=${f['recall'] ?? ''}`.trim(),
        };
      else if (f['result_code'] !== 'SUCCESS')
        out = {
          kind: 'failed',
          code,
          zh: f['err_code_des'] || '撤销失败',
          en:
            code === 'REVERSE_EXPIRE'
              ? 'too late to reverse (over 7 days): refund instead'
              : `reverse refused (${code})`,
        };
      else out = { kind: 'closed' }; // reversed: closed or refunded, settled below
    }
    this.record(ctx, ex, out.kind === 'closed' ? 'reversed (result SUCCESS, recall N)' : describe(out));
    if (out.kind !== 'closed') return out;
    if (before.kind === 'paid' || before.kind === 'refunded')
      return {
        kind: 'refunded',
        channelTradeNo: before.channelTradeNo,
        paidAt: before.paidAt,
        buyerUserId: before.buyerUserId,
      };
    // Not paid before the reverse (or unknown then): what is it now?
    const after = await this.queryWith(ctx, cfg, ref.outTradeNo);
    switch (after.kind) {
      case 'paid':
      case 'refunded':
        return {
          kind: 'refunded',
          channelTradeNo: after.channelTradeNo,
          paidAt: after.paidAt,
          buyerUserId: after.buyerUserId,
        };
      case 'closed':
      case 'not_found':
        return { kind: 'closed' };
      case 'waiting':
        return { kind: 'retry', reason: 'reversed, but the trade still shows as open' };
      case 'unknown':
        return { kind: 'retry', reason: `reversed; its state is unknown: ${after.reason}` };
    }
  }

  // ---------------------------------------------------------------- native (QR) and H5

  async precreate(ctx: ChannelContext, input: PrecreateInput): Promise<PrecreateOutcome> {
    return this.order(ctx, input, 'native');
  }

  async wapPay(ctx: ChannelContext, input: WapPayInput): Promise<PrecreateOutcome> {
    return this.order(ctx, input, 'h5', input.returnUrl, input.payerClientIp);
  }

  private async order(
    ctx: ChannelContext,
    input: PrecreateInput,
    kind: 'native' | 'h5',
    returnUrl?: string,
    payerClientIp?: string,
  ): Promise<PrecreateOutcome> {
    const operation = `v3/pay/transactions/${kind}`;
    const cfg = this.config(ctx);
    if (typeof cfg === 'string') {
      const out: PrecreateOutcome = {
        kind: 'failed',
        code: 'CHANNEL_CONFIG',
        zh: `微信支付配置不完整（${cfg}）`,
        en: `WeChat Pay is not fully configured (${cfg})`,
        retryable: false,
      };
      this.record(ctx, { operation, outTradeNo: input.outTradeNo, latencyMs: 0 }, describe(out));
      return out;
    }
    const body: Record<string, unknown> = {
      appid: cfg.appId,
      mchid: cfg.mchId,
      description: cutBytes(input.subject || '门诊缴费', 127),
      out_trade_no: input.outTradeNo,
      time_expire: rfc3339Shanghai(input.expiresAt),
      notify_url: ctx.notifyUrl,
      amount: { total: input.amountFen, currency: 'CNY' },
      ...(kind === 'h5'
        ? {
            // WeChat compares it with the IP that opens h5_url: the payer's, as hospay's cashier page saw it
            // (behind a proxy, set HOSPAY_TRUST_PROXY); this server's own address only when it is unknown.
            scene_info: { payer_client_ip: payerClientIp ?? hostIp(), h5_info: { type: 'Wap' } },
          }
        : {}),
    };
    const { answer, ex } = await this.v3(
      ctx,
      cfg,
      operation,
      'POST',
      `/v3/pay/transactions/${kind}`,
      body,
      input.outTradeNo,
    );
    let out: PrecreateOutcome;
    if (answer.kind === 'unknown' && answer.unsigned && !V3_TRANSIENT.has(answer.unsigned.code))
      // An unsigned refusal of a new order cannot hide a payment: nobody has a code to pay with.
      out = {
        kind: 'failed',
        code: answer.unsigned.code,
        zh: answer.unsigned.message || answer.unsigned.code,
        en: `WeChat Pay refused the order: ${answer.unsigned.code} (unsigned answer)`,
        retryable: false,
      };
    else if (answer.kind === 'unknown')
      out = {
        kind: 'failed',
        code: 'CHANNEL_UNKNOWN',
        zh: '微信支付未给出可信的应答，请重试',
        en: `no trustworthy answer from WeChat Pay (${answer.reason}); try again`,
        retryable: true,
      };
    else if (answer.kind === 'error')
      out = {
        kind: 'failed',
        code: answer.code,
        zh: answer.message,
        en: `WeChat Pay refused: ${answer.code}`,
        retryable: false,
      };
    else {
      const url = str(answer.json?.[kind === 'native' ? 'code_url' : 'h5_url']);
      const expected = kind === 'native' ? /^weixin:\/\/\S+$/ : /^https?:\/\/\S+$/;
      if (!expected.test(url))
        out = {
          kind: 'failed',
          code: 'CHANNEL_UNKNOWN',
          zh: '微信支付应答缺少支付链接，请重试',
          en: 'the answer has no payment URL; try again',
          retryable: true,
        };
      else if (kind === 'h5' && returnUrl)
        out = {
          kind: 'created',
          codeUrl: `${url}${url.includes('?') ? '&' : '?'}redirect_url=${encodeURIComponent(returnUrl)}`,
        };
      else out = { kind: 'created', codeUrl: url };
    }
    this.record(ctx, ex, describe(out));
    return out;
  }

  // ---------------------------------------------------------------- close

  async close(ctx: ChannelContext, ref: TradeRef): Promise<CloseOutcome> {
    const operation = 'v3/pay/transactions/out-trade-no/close';
    const cfg = this.config(ctx);
    if (typeof cfg === 'string') {
      const out: CloseOutcome = { kind: 'retry', reason: cfg };
      this.record(ctx, { operation, outTradeNo: ref.outTradeNo, latencyMs: 0 }, describe(out));
      return out;
    }
    const { answer, ex } = await this.v3(
      ctx,
      cfg,
      operation,
      'POST',
      `/v3/pay/transactions/out-trade-no/${encodeURIComponent(ref.outTradeNo)}/close`,
      { mchid: cfg.mchId },
      ref.outTradeNo,
    );
    if (answer.kind === 'unknown') {
      const out: CloseOutcome = { kind: 'retry', reason: answer.reason };
      this.record(ctx, ex, describe(out));
      return out;
    }
    if (answer.kind === 'error' && answer.code !== 'ORDERPAID' && answer.code !== 'ORDER_CLOSED') {
      const out: CloseOutcome = { kind: 'retry', reason: `${answer.code}: ${answer.message}` };
      this.record(ctx, ex, describe(out));
      return out;
    }
    // 204 (which WeChat also answers for an order number it does not know), ORDERPAID or ORDER_CLOSED: the
    // trade's state says what happened.
    this.record(
      ctx,
      ex,
      answer.kind === 'ok' ? `closed (HTTP ${answer.status}); confirming` : `error ${answer.code}; querying`,
    );
    const q = await this.queryWith(ctx, cfg, ref.outTradeNo);
    switch (q.kind) {
      case 'paid':
      case 'refunded':
        return {
          kind: 'paid',
          channelTradeNo: q.channelTradeNo,
          paidAt: q.paidAt,
          buyerUserId: q.buyerUserId,
        };
      case 'closed':
      case 'not_found':
        return { kind: 'closed' };
      case 'waiting':
        return { kind: 'retry', reason: 'close answered, but the trade is still open' };
      case 'unknown':
        return { kind: 'retry', reason: `closed; its state is unknown: ${q.reason}` };
    }
  }

  // ---------------------------------------------------------------- refund

  async refund(ctx: ChannelContext, input: RefundInput): Promise<RefundOutcome> {
    const operation = 'v3/refund/domestic/refunds';
    const cfg = this.config(ctx);
    if (typeof cfg === 'string') {
      const out: RefundOutcome = {
        kind: 'failed',
        code: 'CHANNEL_CONFIG',
        zh: `微信支付配置不完整，未发起退款（${cfg}）`,
        en: `WeChat Pay is not fully configured; nothing was sent (${cfg})`,
      };
      this.record(ctx, { operation, outTradeNo: input.outTradeNo, latencyMs: 0 }, describe(out));
      return out;
    }
    const deadline = performance.now() + cfg.timeoutMs;
    const { answer, ex } = await this.v3(
      ctx,
      cfg,
      operation,
      'POST',
      '/v3/refund/domestic/refunds',
      {
        out_trade_no: input.outTradeNo,
        out_refund_no: input.outRequestNo,
        ...(input.reason ? { reason: cutBytes(input.reason, 80) } : {}),
        amount: { refund: input.amountFen, total: input.totalFen, currency: 'CNY' },
      },
      input.outTradeNo,
    );
    let out = this.mapRefund(answer, input);
    this.record(ctx, ex, describe(out));
    // PROCESSING: ask again a few times within the timeout.
    const pauses = this.opts.refundPollMs ?? [200, 500, 1000, 2000, 3000];
    for (const pause of pauses) {
      if (out.kind !== 'unknown' || !out.reason.startsWith('PROCESSING')) break;
      if (performance.now() + pause >= deadline) break;
      await new Promise((r) => setTimeout(r, pause));
      const q = await this.v3(
        ctx,
        cfg,
        'v3/refund/domestic/refunds/{out_refund_no}',
        'GET',
        `/v3/refund/domestic/refunds/${encodeURIComponent(input.outRequestNo)}`,
        null,
        input.outTradeNo,
      );
      out = this.mapRefund(q.answer, input);
      this.record(ctx, q.ex, describe(out));
    }
    return out;
  }

  private mapRefund(answer: V3Answer, input: RefundInput): RefundOutcome {
    if (answer.kind === 'unknown') return answer;
    if (answer.kind === 'error')
      return {
        kind: 'failed',
        code: answer.code,
        zh: answer.message,
        en: `WeChat Pay refused the refund: ${answer.code}`,
      };
    const j = answer.json ?? {};
    if (str(j['out_refund_no']) !== input.outRequestNo)
      return { kind: 'unknown', reason: 'answer for another refund' };
    if (j['out_trade_no'] !== undefined && str(j['out_trade_no']) !== input.outTradeNo)
      return { kind: 'unknown', reason: 'answer for another trade' };
    const amount = j['amount'];
    const refundFen =
      typeof amount === 'object' && amount !== null
        ? (amount as Record<string, unknown>)['refund']
        : undefined;
    if (refundFen !== undefined && refundFen !== input.amountFen)
      return { kind: 'unknown', reason: `refund amount differs: ${String(refundFen)} fen` };
    const status = str(j['status']);
    const refundId = str(j['refund_id']);
    switch (status) {
      case 'SUCCESS':
        if (!refundId) return { kind: 'unknown', reason: 'SUCCESS without refund_id' };
        return {
          kind: 'success',
          channelRefundNo: refundId,
          refundedAt: parseRfc3339(j['success_time']) ?? parseRfc3339(j['create_time']) ?? this.clock.now(),
        };
      case 'PROCESSING':
        return { kind: 'unknown', reason: 'PROCESSING: accepted, not yet done' };
      case 'ABNORMAL':
        return {
          kind: 'failed',
          code: 'ABNORMAL',
          zh: '退款异常（如用户银行卡作废），请在商户平台处理',
          en: "refund abnormal (e.g. the payer's card is closed): handle it in the merchant platform",
        };
      case 'CLOSED':
        return { kind: 'failed', code: 'CLOSED', zh: '退款关闭', en: 'the refund was closed' };
      default:
        return { kind: 'unknown', reason: `refund status ${status.slice(0, 40) || '(none)'}` };
    }
  }

  // ---------------------------------------------------------------- trade bill

  async downloadBill(ctx: ChannelContext, input: { date: string; payType: PayType }): Promise<Bill> {
    const cfg = this.config(ctx);
    if (typeof cfg === 'string') throw new Error(`WeChat Pay bill: ${cfg}`);
    if (!/^\d{4}-\d{2}-\d{2}$/.test(input.date))
      throw new RangeError(`bill date is not yyyy-MM-dd: ${input.date}`);
    const { answer, ex } = await this.v3(
      ctx,
      cfg,
      'v3/bill/tradebill',
      'GET',
      `/v3/bill/tradebill?bill_date=${input.date}&bill_type=ALL`,
      null,
    );
    const empty = (): Bill => ({
      payType: input.payType,
      date: input.date,
      lines: [],
      summary: { paymentCount: 0, refundCount: 0, paymentFen: 0, refundFen: 0 },
    });
    if (answer.kind === 'error' && answer.code === 'NO_STATEMENT_EXIST') {
      this.record(ctx, ex, 'no bill: no trades that day');
      return empty();
    }
    if (answer.kind !== 'ok') {
      const why = answer.kind === 'error' ? `${answer.code}: ${answer.message}` : answer.reason;
      this.record(ctx, ex, `failed: ${why}`);
      throw new Error(`WeChat Pay bill ${input.date}: ${why}`);
    }
    const j = answer.json ?? {};
    const downloadUrl = str(j['download_url']);
    const hashType = str(j['hash_type']) || 'SHA1';
    const hashValue = str(j['hash_value']).toLowerCase();
    let target: URL | null;
    try {
      target = new URL(downloadUrl);
    } catch {
      target = null;
    }
    if (
      !target ||
      target.origin !== new URL(cfg.baseUrl).origin ||
      hashType !== 'SHA1' ||
      !/^[0-9a-f]{40}$/.test(hashValue)
    ) {
      this.record(ctx, ex, 'failed: unusable download_url or hash');
      throw new Error(`WeChat Pay bill ${input.date}: unusable download_url or hash (${hashType})`);
    }
    this.record(ctx, ex, 'download_url received');
    // The file itself is not signed: the signed answer's hash vouches for it.
    const urlPath = `${target.pathname}${target.search}`;
    const sent = await this.send({
      method: 'GET',
      url: target.toString(),
      headers: {
        authorization: v3Authorization({
          mchId: cfg.mchId,
          serialNo: cfg.serialNo,
          privateKey: cfg.privateKey,
          method: 'GET',
          urlPath,
          body: '',
          timestamp: String(Math.floor(this.clock.now().getTime() / 1000)),
          nonce: nonceStr(),
        }),
        accept: '*/*',
        'user-agent': 'hospay (+https://github.com/hospay)',
      },
      timeoutMs: Math.max(cfg.timeoutMs, 60_000),
      maxBytes: 200 * 1024 * 1024,
    });
    const fx: Exchange = {
      operation: 'v3/billdownload/file',
      latencyMs: sent.latencyMs,
      request: `GET ${target.pathname}`,
      httpStatus: sent.res?.status,
      error: sent.error,
    };
    if (!sent.res || sent.res.status !== 200) {
      const why = sent.error ?? `HTTP ${sent.res?.status}`;
      this.record(ctx, fx, `failed: ${why}`);
      throw new Error(`WeChat Pay bill ${input.date}: download failed: ${why}`);
    }
    const file = sent.res.body;
    const sha1 = createHash('sha1').update(file).digest('hex');
    fx.response = `${file.length} bytes, sha1 ${sha1}`;
    if (sha1 !== hashValue) {
      this.record(ctx, fx, 'failed: hash mismatch');
      throw new Error(`WeChat Pay bill ${input.date}: the file's SHA1 does not match the signed hash_value`);
    }
    let bill: Bill;
    try {
      bill = parseWechatTradeBill(file, { date: input.date, fileName: `wechat-tradebill-${input.date}.csv` });
    } catch (e) {
      this.record(ctx, fx, `failed: ${(e as Error).message.slice(0, 200)}`);
      throw e;
    }
    this.record(ctx, fx, `bill: ${bill.lines.length} lines`);
    return {
      ...bill,
      payType: input.payType,
      lines: bill.lines.map((l) => ({ ...l, payType: input.payType })),
    };
  }

  // ---------------------------------------------------------------- notifications

  async parseNotify(
    ctx: ChannelContext,
    input: { headers: Readonly<Record<string, string>>; body: Buffer },
  ): Promise<NotifyParse> {
    const started = performance.now();
    const rejected = (reason: string): NotifyParse => ({
      kind: 'rejected',
      reason,
      ack: {
        status: 500,
        contentType: 'application/json',
        body: JSON.stringify({ code: 'FAIL', message: reason.slice(0, 100) }),
      },
    });
    const ok = { status: 204, contentType: 'text/plain', body: '' };
    const done = (out: NotifyParse, event: string, outTradeNo?: string): NotifyParse => {
      this.record(
        ctx,
        {
          operation: `notify ${event}`.trim(),
          outTradeNo,
          latencyMs: Math.round(performance.now() - started),
          httpStatus: out.ack.status,
          request: this.redact(
            ctx,
            input.body.toString('utf8').replace(/"ciphertext"\s*:\s*"[^"]*"/, '"ciphertext":"…"'),
          ),
        },
        out.kind === 'rejected' ? `rejected: ${out.reason}` : out.kind === 'trade' ? 'trade' : 'ignored',
      );
      return out;
    };
    const cfg = this.config(ctx);
    if (typeof cfg === 'string') return done(rejected(cfg), '');
    const bad = verifyV3(
      verifierKeys(cfg, this.clock.now()),
      input.headers,
      input.body,
      Math.floor(this.clock.now().getTime() / 1000),
    );
    if (bad) return done(rejected(`signature: ${bad}`), '');
    let event: Record<string, unknown>;
    try {
      const j = JSON.parse(input.body.toString('utf8')) as unknown;
      if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error('not an object');
      event = j as Record<string, unknown>;
    } catch {
      return done(rejected('unparseable notification'), '');
    }
    const eventType = str(event['event_type']);
    const resource = event['resource'];
    if (typeof resource !== 'object' || resource === null) return done(rejected('no resource'), eventType);
    const r = resource as Record<string, unknown>;
    let plain: Record<string, unknown>;
    try {
      const text = decryptResource(cfg.apiV3Key, {
        algorithm: str(r['algorithm']),
        ciphertext: str(r['ciphertext']),
        nonce: str(r['nonce']),
        associated_data: str(r['associated_data']),
      }).toString('utf8');
      const j = JSON.parse(text) as unknown;
      if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error('not an object');
      plain = j as Record<string, unknown>;
    } catch (e) {
      return done(rejected(`decryption failed: ${(e as Error).message.slice(0, 80)}`), eventType);
    }
    const outTradeNo = str(plain['out_trade_no']);
    if (plain['mchid'] !== undefined && str(plain['mchid']) !== cfg.mchId)
      return done(rejected('notification for another merchant'), eventType, outTradeNo || undefined);
    if (eventType !== 'TRANSACTION.SUCCESS' || outTradeNo === '')
      return done({ kind: 'ignored', ack: ok }, eventType, outTradeNo || undefined);
    return done({ kind: 'trade', outTradeNo, ack: ok }, eventType, outTradeNo);
  }
}
