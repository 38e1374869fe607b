/**
 * The WeChat Pay channel, for a direct merchant (普通商户, mode direct) or a service provider's sub-merchant
 * (服务商 特约商户, mode partner: the /v3/pay/partner/ endpoints, sub_mchid everywhere, v2 with sub_mch_id):
 *  - payment code ("micropay"): v2 XML POST /pay/micropay; reverse (cancel): v2 POST /secapi/pay/reverse with the
 *    merchant's TLS client certificate;
 *  - in-app (JSAPI, in an official account): v3 jsapi order, or the v2 unifiedorder (jsapi_api v2), and the signed
 *    getBrandWCPayRequest parameters; the payer's openid comes from OAuth2 snsapi_base (payerIdAuthorizeUrl,
 *    payerIdFromCode against open.weixin.qq.com / api.weixin.qq.com);
 *  - everything else v3 JSON: native (QR) and H5 orders, query by out_trade_no (also for micropay trades), close,
 *    refund and refund query, the trade bill, and the signed, AES-GCM-encrypted notifications (v2 XML ones for
 *    v2 JSAPI orders).
 *
 * Every answer is verified before any field is read: v3 by the Wechatpay-* headers (a known serial, a timestamp at
 * most 5 minutes off, SHA256withRSA over the exact body), v2 by its `sign`. Anything unsigned, wrongly signed,
 * unparseable, a 5xx, a system error or a timeout is an unknown outcome, never a success. Each HTTP exchange is
 * recorded through a CallRecorder, redacted (no auth code, openid/payer, keys, AppID, personal numbers).
 *
 * This file holds the operations; wire.ts the request/answer shapes, code maps and record redaction; keys.ts
 * signing and verification with the configured keys (config.ts, crypto.ts).
 */
import { createHash } from 'node:crypto';
import type {
  BarcodePayInput,
  CancelOutcome,
  Channel,
  ChannelContext,
  CloseOutcome,
  InAppPayInput,
  InAppPayOutcome,
  NotifyParse,
  PayerIdOutcome,
  PayOutcome,
  PrecreateInput,
  PrecreateOutcome,
  QueryOutcome,
  RefundInput,
  RefundOutcome,
  TradeRef,
  WapPayInput,
} from '../channel.js';
import type { HttpClient } from '../http.js';
import { CallRecorder, send, type RecordParts } from '../exchange.js';
import type { Clock } from '../../domain/clock.js';
import type { PayType } from '../../domain/trade.js';
import type { Bill } from '../../domain/bill.js';
import { parseWechatTradeBill } from './bill.js';
import { buildV2Xml, nonceStr } from './crypto.js';
import { loadConfig, type WechatConfig } from './config.js';
import { authorization, bridgeParams, signV2, verifyAnswer, verifyV2 } from './keys.js';
import {
  authorizeUrl,
  billFile,
  billPath,
  closeAnswer,
  closeCall,
  closedTrade,
  describe,
  fileHeaders,
  isPaidTradeEvent,
  isV2Notification,
  jsapiOutcome,
  micropayOutcome,
  micropayRequest,
  noBill,
  NOTIFY_OK,
  NOTIFY_V2_OK,
  notificationText,
  notifyFail,
  notifyV2Fail,
  orderOutcome,
  orderPath,
  orderRequest,
  payerIdAnswer,
  queryOutcome,
  queryPath,
  readNotification,
  readV2,
  readV2Notification,
  readV3,
  redactWire,
  refundOutcome,
  refundQueryPath,
  refundRequest,
  reversedTrade,
  reverseOutcome,
  SNS_TOKEN_RECORD,
  snsTokenPath,
  stillProcessing,
  unifiedOrderOutcome,
  unifiedOrderRequest,
  v2Common,
  V2_HEADERS,
  v2RecordText,
  v3Headers,
  type NotificationRead,
  type V2Answer,
  type V2ReverseRequest,
  type V3Answer,
} from './wire.js';
import { ZERO_FEN } from '../../domain/money.js';

/** One exchange's answer, and its call record, completed with the outcome the operation makes of the answer. */
interface Exchanged<A> {
  answer: A;
  done(outcome: string): void;
}

/** An operation's name in the call records: the API path, partner or direct. */
const opName = (cfg: WechatConfig | string, path: string): string =>
  typeof cfg !== 'string' && cfg.partner ? `v3/pay/partner/${path}` : `v3/pay/${path}`;
const QUERY = 'transactions/out-trade-no';
const NO_CLIENT_CERT = 'no client certificate (client_cert_p12 or client_cert_pem)';

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

  // ---------------------------------------------------------------- barcode (micropay)

  async barcodePay(ctx: ChannelContext, input: BarcodePayInput): Promise<PayOutcome> {
    const cfg = this.config(ctx);
    if (typeof cfg === 'string' || !cfg.apiV2Key) {
      const reason = typeof cfg === 'string' ? cfg : 'api_v2_key is not set';
      return unsent<PayOutcome>(ctx, 'pay/micropay', input.outTradeNo, {
        kind: 'declined',
        code: 'CHANNEL_CONFIG',
        zh: `微信支付配置不完整，未发起支付（${reason}）`,
        en: `WeChat Pay is not fully configured; nothing was sent (${reason})`,
      });
    }
    const x = await this.v2(
      ctx,
      cfg,
      'pay/micropay',
      '/pay/micropay',
      micropayRequest(input),
      input.outTradeNo,
    );
    return finish(x, micropayOutcome(x.answer, input, this.clock.now()));
  }

  // ---------------------------------------------------------------- query

  async query(ctx: ChannelContext, ref: TradeRef): Promise<QueryOutcome> {
    const cfg = this.config(ctx);
    if (typeof cfg === 'string')
      return unsent<QueryOutcome>(ctx, opName(cfg, QUERY), ref.outTradeNo, { kind: 'unknown', reason: cfg });
    return this.queryWith(ctx, cfg, ref.outTradeNo);
  }

  private async queryWith(ctx: ChannelContext, cfg: WechatConfig, outTradeNo: string): Promise<QueryOutcome> {
    const path = queryPath(cfg, outTradeNo);
    const x = await this.v3(ctx, cfg, opName(cfg, QUERY), 'GET', path, null, outTradeNo);
    return finish(x, queryOutcome(x.answer, cfg, outTradeNo));
  }

  // ---------------------------------------------------------------- cancel (v2 reverse)

  /**
   * Reverse (撤销): closes an unpaid micropay trade, refunds a paid one. The reverse answer does not say which, so
   * the trade is queried before (and, if it was not paid then, after) the reverse.
   */
  async cancel(ctx: ChannelContext, ref: TradeRef): Promise<CancelOutcome> {
    const cfg = this.config(ctx);
    if (typeof cfg === 'string' || !cfg.apiV2Key || !cfg.clientTls) {
      const reason = typeof cfg === 'string' ? cfg : !cfg.apiV2Key ? 'api_v2_key is not set' : NO_CLIENT_CERT;
      return unsent<CancelOutcome>(ctx, 'secapi/pay/reverse', ref.outTradeNo, {
        kind: 'retry',
        reason: `configuration: ${reason}`,
      });
    }
    const before = await this.queryWith(ctx, cfg, ref.outTradeNo);
    const request: V2ReverseRequest = { out_trade_no: ref.outTradeNo };
    const x = await this.v2(
      ctx,
      cfg,
      'secapi/pay/reverse',
      '/secapi/pay/reverse',
      request,
      ref.outTradeNo,
      true,
    );
    const out = reverseOutcome(x.answer);
    x.done(out.kind === 'closed' ? 'reversed (result SUCCESS, recall N)' : describe(out));
    if (out.kind !== 'closed') return out;
    if (before.kind === 'paid' || before.kind === 'refunded') return reversedTrade(before);
    // Not paid before the reverse (or unknown then): what is it now?
    return reversedTrade(await this.queryWith(ctx, cfg, ref.outTradeNo));
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
    const cfg = this.config(ctx);
    const operation = opName(cfg, `transactions/${kind}`);
    if (typeof cfg === 'string')
      return unsent<PrecreateOutcome>(ctx, operation, input.outTradeNo, {
        kind: 'failed',
        code: 'CHANNEL_CONFIG',
        zh: `微信支付配置不完整（${cfg}）`,
        en: `WeChat Pay is not fully configured (${cfg})`,
        retryable: false,
      });
    const body = orderRequest(cfg, input, ctx.notifyUrl, kind, payerClientIp);
    const x = await this.v3(ctx, cfg, operation, 'POST', orderPath(cfg, kind), body, input.outTradeNo);
    return finish(x, orderOutcome(x.answer, kind, returnUrl));
  }

  // ---------------------------------------------------------------- in-app (JSAPI)

  /**
   * A JSAPI order for a payer known by their openid (under the AppID the payment is made in: app_id, or sub_appid
   * in partner mode when set), and the getBrandWCPayRequest parameters signed for it. The openid never reaches a
   * call record.
   */
  async inAppPay(context: ChannelContext, input: InAppPayInput): Promise<InAppPayOutcome> {
    const ctx = scrubbing(context, input.payerId);
    const cfg = this.config(ctx);
    const v2 = typeof cfg !== 'string' && cfg.jsapiApi === 'v2';
    const operation = v2 ? 'pay/unifiedorder' : opName(cfg, 'transactions/jsapi');
    if (typeof cfg === 'string')
      return unsent<InAppPayOutcome>(ctx, operation, input.outTradeNo, {
        kind: 'failed',
        code: 'CHANNEL_CONFIG',
        zh: `微信支付配置不完整（${cfg}）`,
        en: `WeChat Pay is not fully configured (${cfg})`,
        retryable: false,
      });
    if (!/^[0-9A-Za-z_-]{6,64}$/.test(input.payerId))
      return unsent<InAppPayOutcome>(ctx, operation, input.outTradeNo, {
        kind: 'failed',
        code: 'INVALID_PAYER_ID',
        zh: '付款人标识（openid）格式不正确，请重新进入页面',
        en: "the payer's openid is not well-formed; open the page again",
        retryable: false,
      });
    if (cfg.jsapiApi === 'v2') {
      const params = unifiedOrderRequest(cfg, input, ctx.notifyUrl);
      const x = await this.v2(ctx, cfg, operation, '/pay/unifiedorder', params, input.outTradeNo);
      const out = unifiedOrderOutcome(x.answer);
      if (out.kind !== 'prepay' || !cfg.apiV2Key) return finish(x, out.kind === 'prepay' ? NO_KEY : out);
      x.done('created (prepay_id)');
      const bridge = bridgeParams(
        cfg,
        { v2Key: cfg.apiV2Key },
        cfg.payerApp.appId,
        out.prepayId,
        this.clock.now(),
      );
      return { kind: 'created', bridge };
    }
    const body = orderRequest(cfg, input, ctx.notifyUrl, 'jsapi', input.payerClientIp, input.payerId);
    const x = await this.v3(ctx, cfg, operation, 'POST', orderPath(cfg, 'jsapi'), body, input.outTradeNo);
    const out = jsapiOutcome(x.answer);
    if (out.kind !== 'prepay') return finish(x, out);
    x.done('created (prepay_id)');
    return {
      kind: 'created',
      bridge: bridgeParams(cfg, 'v3', cfg.payerApp.appId, out.prepayId, this.clock.now()),
    };
  }

  // ---------------------------------------------------------------- the payer's openid (OAuth2 snsapi_base)

  /**
   * WeChat's OAuth2 authorize URL (snsapi_base: no consent page) for the official account the payer's openid
   * belongs to; null when that account's AppSecret is not configured (app_secret, or sub_app_secret with
   * sub_appid). `redirectUri` must be an absolute http(s) URL on a domain registered as the account's
   * 网页授权域名.
   */
  payerIdAuthorizeUrl(ctx: ChannelContext, input: { redirectUri: string; state: string }): string | null {
    const cfg = this.config(ctx);
    if (typeof cfg === 'string' || !cfg.payerApp.secret) return null;
    let target: URL;
    try {
      target = new URL(input.redirectUri);
    } catch {
      throw new RangeError('redirectUri is not an absolute URL');
    }
    if (target.protocol !== 'https:' && target.protocol !== 'http:')
      throw new RangeError('redirectUri must be http(s)');
    if (!/^[0-9A-Za-z_.~-]{0,128}$/.test(input.state))
      throw new RangeError('state must be at most 128 letters, digits or _.~-');
    return authorizeUrl(cfg.oauthBaseUrl, cfg.payerApp.appId, input.redirectUri, input.state);
  }

  /** Exchanges the OAuth2 code for the payer's openid. Neither code, secret nor openid reaches a record. */
  async payerIdFromCode(context: ChannelContext, input: { code: string }): Promise<PayerIdOutcome> {
    const operation = 'sns/oauth2/access_token';
    const ctx = scrubbing(context, input.code);
    const cfg = this.config(ctx);
    const secret = typeof cfg === 'string' ? null : cfg.payerApp.secret;
    if (typeof cfg === 'string' || !secret) {
      const why = typeof cfg === 'string' ? cfg : 'app_secret is not set';
      const out: PayerIdOutcome = {
        kind: 'failed',
        code: 'CHANNEL_CONFIG',
        zh: `未配置公众号 AppSecret，无法获取付款人身份（${why}）`,
        en: `cannot learn the payer's id: ${why}`,
      };
      new CallRecorder(ctx, operation).done(describe(out));
      return out;
    }
    if (!/^[\x21-\x7e]{1,512}$/.test(input.code)) {
      const out: PayerIdOutcome = {
        kind: 'failed',
        code: '40029',
        zh: '授权码无效，请重新进入页面',
        en: 'the OAuth code is not valid; open the page again',
      };
      new CallRecorder(ctx, operation).done(describe(out));
      return out;
    }
    const rec = new CallRecorder(ctx, operation);
    const sent = await send(this.http, {
      method: 'GET',
      url: `${cfg.snsBaseUrl}${snsTokenPath(cfg.payerApp.appId, secret, input.code)}`,
      headers: { accept: 'application/json', 'user-agent': 'hospay (+https://github.com/hospay)' },
      timeoutMs: cfg.timeoutMs,
      maxBytes: 64 * 1024,
    });
    const out: PayerIdOutcome = sent.ok
      ? payerIdAnswer(sent)
      : {
          kind: 'failed',
          code: 'CHANNEL_UNKNOWN',
          zh: '未能从微信获取付款人身份，请重新进入页面',
          en: `could not learn the payer's id from WeChat (${sent.reason}); open the page again`,
        };
    rec.done(out.kind === 'ok' ? 'ok' : describe(out), {
      request: SNS_TOKEN_RECORD,
      ...(sent.ok
        ? {
            httpStatus: sent.status,
            response: redactWire(sent.body.toString('utf8'), ctx.merchant),
          }
        : { error: sent.reason }),
    });
    return out;
  }

  // ---------------------------------------------------------------- close

  async close(ctx: ChannelContext, ref: TradeRef): Promise<CloseOutcome> {
    const cfg = this.config(ctx);
    const operation = opName(cfg, 'transactions/out-trade-no/close');
    if (typeof cfg === 'string')
      return unsent<CloseOutcome>(ctx, operation, ref.outTradeNo, { kind: 'retry', reason: cfg });
    const { path, body } = closeCall(cfg, ref.outTradeNo);
    const x = await this.v3(ctx, cfg, operation, 'POST', path, body, ref.outTradeNo);
    const first = closeAnswer(x.answer);
    if (first.kind !== 'confirm') return finish(x, first);
    x.done(first.note);
    return closedTrade(await this.queryWith(ctx, cfg, ref.outTradeNo));
  }

  // ---------------------------------------------------------------- refund

  async refund(ctx: ChannelContext, input: RefundInput): Promise<RefundOutcome> {
    const operation = 'v3/refund/domestic/refunds';
    const cfg = this.config(ctx);
    if (typeof cfg === 'string')
      return unsent<RefundOutcome>(ctx, operation, input.outTradeNo, {
        kind: 'failed',
        code: 'CHANNEL_CONFIG',
        zh: `微信支付配置不完整，未发起退款（${cfg}）`,
        en: `WeChat Pay is not fully configured; nothing was sent (${cfg})`,
      });
    const deadline = performance.now() + cfg.timeoutMs;
    const body = refundRequest(input, cfg);
    const x = await this.v3(
      ctx,
      cfg,
      operation,
      'POST',
      '/v3/refund/domestic/refunds',
      body,
      input.outTradeNo,
    );
    let out = finish(x, refundOutcome(x.answer, input, this.clock.now()));
    // PROCESSING: ask again a few times within the timeout.
    for (const pause of this.opts.refundPollMs ?? [200, 500, 1000, 2000, 3000]) {
      if (!stillProcessing(out) || performance.now() + pause >= deadline) break;
      await new Promise((r) => setTimeout(r, pause));
      const path = refundQueryPath(cfg, input.outRequestNo);
      const q = await this.v3(ctx, cfg, `${operation}/{out_refund_no}`, 'GET', path, null, input.outTradeNo);
      out = finish(q, refundOutcome(q.answer, input, this.clock.now()));
    }
    return out;
  }

  // ---------------------------------------------------------------- trade bill

  async downloadBill(ctx: ChannelContext, input: { date: string; payType: PayType }): Promise<Bill> {
    const cfg = this.config(ctx);
    if (typeof cfg === 'string') throw new Error(`WeChat Pay bill: ${cfg}`);
    if (!/^\d{4}-\d{2}-\d{2}$/.test(input.date))
      throw new RangeError(`bill date is not yyyy-MM-dd: ${input.date}`);
    const path = billPath(cfg, input.date);
    const x = await this.v3(ctx, cfg, 'v3/bill/tradebill', 'GET', path, null);
    if (noBill(x.answer)) {
      x.done('no bill: no trades that day');
      return {
        payType: input.payType,
        date: input.date,
        lines: [],
        summary: { paymentCount: 0, refundCount: 0, paymentFen: ZERO_FEN, refundFen: ZERO_FEN },
      };
    }
    if (x.answer.kind !== 'ok') {
      const why = x.answer.kind === 'error' ? `${x.answer.code}: ${x.answer.message}` : x.answer.reason;
      x.done(`failed: ${why}`);
      throw new Error(`WeChat Pay bill ${input.date}: ${why}`);
    }
    const file = billFile(x.answer, cfg.baseUrl);
    if ('unusable' in file) {
      x.done('failed: unusable download_url or hash');
      throw new Error(`WeChat Pay bill ${input.date}: unusable download_url or hash (${file.unusable})`);
    }
    x.done('download_url received');
    const bill = await this.billFile(ctx, cfg, input.date, file.url, file.sha1);
    return {
      ...bill,
      payType: input.payType,
      lines: bill.lines.map((l) => ({ ...l, payType: input.payType })),
    };
  }

  /** Fetches and reads the bill file. It is not signed: the signed answer's hash vouches for it. */
  private async billFile(
    ctx: ChannelContext,
    cfg: WechatConfig,
    date: string,
    url: URL,
    sha1Wanted: string,
  ): Promise<Bill> {
    const rec = new CallRecorder(ctx, 'v3/billdownload/file');
    const urlPath = `${url.pathname}${url.search}`;
    const sent = await send(this.http, {
      method: 'GET',
      url: url.toString(),
      headers: fileHeaders(authorization(cfg, 'GET', urlPath, '', this.clock.now())),
      timeoutMs: Math.max(cfg.timeoutMs, 60_000),
      maxBytes: 200 * 1024 * 1024,
    });
    const parts: RecordParts = {
      request: `GET ${url.pathname}`,
      ...(sent.ok ? { httpStatus: sent.status } : { error: sent.reason }),
    };
    if (!sent.ok || sent.status !== 200) {
      const why = sent.ok ? `HTTP ${sent.status}` : sent.reason;
      rec.done(`failed: ${why}`, parts);
      throw new Error(`WeChat Pay bill ${date}: download failed: ${why}`);
    }
    const sha1 = createHash('sha1').update(sent.body).digest('hex');
    parts.response = `${sent.body.length} bytes, sha1 ${sha1}`;
    if (sha1 !== sha1Wanted) {
      rec.done('failed: hash mismatch', parts);
      throw new Error(`WeChat Pay bill ${date}: the file's SHA1 does not match the signed hash_value`);
    }
    let bill: Bill;
    try {
      bill = parseWechatTradeBill(sent.body, { date, fileName: `wechat-tradebill-${date}.csv` });
    } catch (e) {
      rec.done(`failed: ${(e as Error).message.slice(0, 200)}`, parts);
      throw e;
    }
    rec.done(`bill: ${bill.lines.length} lines`, parts);
    return bill;
  }

  // ---------------------------------------------------------------- notifications

  async parseNotify(
    ctx: ChannelContext,
    input: { headers: Readonly<Record<string, string>>; body: Buffer },
  ): Promise<NotifyParse> {
    const v2 = isV2Notification(input.body);
    const read = v2 ? this.readNotifyV2(ctx, input.body) : this.readNotify(ctx, input);
    const [ok, fail] = v2 ? [NOTIFY_V2_OK, notifyV2Fail] : [NOTIFY_OK, notifyFail];
    const out: NotifyParse = !read.ok
      ? { kind: 'rejected', reason: read.reason, ack: fail(read.reason) }
      : isPaidTradeEvent(read)
        ? { kind: 'trade', outTradeNo: read.outTradeNo, ack: ok }
        : { kind: 'ignored', ack: ok };
    new CallRecorder(ctx, `notify ${read.eventType}`.trim(), read.outTradeNo || undefined).done(
      out.kind === 'rejected' ? `rejected: ${out.reason}` : out.kind,
      {
        httpStatus: out.ack.status,
        request: redactWire(
          v2 ? v2RecordText('notify', input.body.toString('utf8')) : notificationText(input.body),
          ctx.merchant,
        ),
      },
    );
    return out;
  }

  /** A v2 XML notification (orders made with the v2 unifiedorder): the v2 sign and our (sub-)merchant. */
  private readNotifyV2(ctx: ChannelContext, body: Buffer): NotificationRead {
    const cfg = this.config(ctx);
    if (typeof cfg === 'string') return { ok: false, reason: cfg, eventType: '' };
    const key = cfg.apiV2Key;
    if (!key) return { ok: false, reason: 'a v2 notification, and api_v2_key is not set', eventType: '' };
    return readV2Notification(body, {
      verify: (f) => verifyV2(cfg, key, f),
      mchId: cfg.mchId,
      appId: cfg.appId,
      subMchId: cfg.partner?.subMchId,
    });
  }

  private readNotify(
    ctx: ChannelContext,
    input: { headers: Readonly<Record<string, string>>; body: Buffer },
  ): NotificationRead {
    const cfg = this.config(ctx);
    if (typeof cfg === 'string') return { ok: false, reason: cfg, eventType: '' };
    const bad = verifyAnswer(cfg, input.headers, input.body, this.clock.now());
    if (bad) return { ok: false, reason: `signature: ${bad}`, eventType: '' };
    return readNotification(input.body, cfg.apiV3Key, cfg);
  }

  // ---------------------------------------------------------------- the exchanges

  private config(ctx: ChannelContext): WechatConfig | string {
    try {
      return loadConfig(ctx.merchant);
    } catch (e) {
      return `configuration: ${e instanceof Error ? e.message : String(e)}`;
    }
  }

  /** Signs and sends one v3 request and reads the answer; the caller completes the record with the outcome. */
  private async v3(
    ctx: ChannelContext,
    cfg: WechatConfig,
    operation: string,
    method: 'GET' | 'POST',
    path: string,
    body: object | null,
    outTradeNo?: string,
  ): Promise<Exchanged<V3Answer>> {
    const rec = new CallRecorder(ctx, operation, outTradeNo);
    const url = new URL(path, `${cfg.baseUrl}/`);
    const urlPath = `${url.pathname}${url.search}`;
    const text = body === null ? '' : JSON.stringify(body);
    const sent = await send(this.http, {
      method,
      url: url.toString(),
      headers: v3Headers(authorization(cfg, method, urlPath, text, this.clock.now()), body !== null),
      ...(body === null ? {} : { body: text }),
      timeoutMs: cfg.timeoutMs,
    });
    const request = redactWire(`${method} ${urlPath}${text ? `\n${text}` : ''}`, ctx.merchant);
    if (!sent.ok)
      return {
        answer: { kind: 'unknown', reason: sent.reason },
        done: (outcome) => rec.done(outcome, { request, error: sent.reason }),
      };
    const parts = {
      httpStatus: sent.status,
      request,
      response: redactWire(sent.body.toString('utf8'), ctx.merchant),
    };
    return {
      answer: readV3(sent, () => verifyAnswer(cfg, sent.headers, sent.body, this.clock.now())),
      done: (outcome) => rec.done(outcome, parts),
    };
  }

  /** Signs and sends one v2 request (with the client certificate for /secapi/) and reads the answer. */
  private async v2(
    ctx: ChannelContext,
    cfg: WechatConfig,
    operation: string,
    path: string,
    params: Record<string, string>,
    outTradeNo: string,
    withCert = false,
  ): Promise<Exchanged<V2Answer>> {
    const rec = new CallRecorder(ctx, operation, outTradeNo);
    const key = cfg.apiV2Key;
    const unsentV2 = (reason: string): Exchanged<V2Answer> => ({
      answer: { kind: 'unknown', reason },
      done: (outcome) => rec.done(outcome),
    });
    if (!key) return unsentV2('api_v2_key is not set');
    if (withCert && !cfg.clientTls) return unsentV2(NO_CLIENT_CERT);
    const xml = buildV2Xml(signV2(cfg, key, { ...v2Common(cfg, nonceStr()), ...params }));
    const sent = await send(this.http, {
      method: 'POST',
      url: `${cfg.baseUrl}${path}`,
      headers: { ...V2_HEADERS },
      body: xml,
      timeoutMs: cfg.timeoutMs,
      ...(withCert && cfg.clientTls ? { tls: cfg.clientTls } : {}),
    });
    const request = redactWire(v2RecordText(path, xml), ctx.merchant);
    if (!sent.ok)
      return {
        answer: { kind: 'unknown', reason: sent.reason },
        done: (outcome) => rec.done(outcome, { request, error: sent.reason }),
      };
    const parts = {
      httpStatus: sent.status,
      request,
      response: redactWire(sent.body.toString('utf8'), ctx.merchant),
    };
    const check = {
      verify: (f: Readonly<Record<string, string>>) => verifyV2(cfg, key, f),
      mchId: cfg.mchId,
      appId: cfg.appId,
      subMchId: cfg.partner?.subMchId,
    };
    return { answer: readV2(sent, check), done: (outcome) => rec.done(outcome, parts) };
  }
}

/** Completes an exchange's record with the outcome, and returns it. */
function finish<T extends { kind: string }>(x: Exchanged<unknown>, out: T): T {
  x.done(describe(out));
  return out;
}

/** Records an operation that sent nothing (the configuration does not allow it), and returns its outcome. */
function unsent<T extends { kind: string }>(
  ctx: ChannelContext,
  operation: string,
  outTradeNo: string,
  out: T,
): T {
  new CallRecorder(ctx, operation, outTradeNo).done(describe(out));
  return out;
}

/** The v2 key went missing between the order and its bridge (cannot happen with a checked configuration). */
const NO_KEY: InAppPayOutcome = {
  kind: 'failed',
  code: 'CHANNEL_CONFIG',
  zh: '未设置 api_v2_key，无法签名支付参数',
  en: 'api_v2_key is not set: the bridge parameters cannot be signed',
  retryable: false,
};

/**
 * The context with its call records cleaned of the given values (the payer's openid, an OAuth code) wherever
 * they appear, beyond the field-name redaction of wire.ts.
 */
function scrubbing(ctx: ChannelContext, ...values: string[]): ChannelContext {
  const live = values.filter((v) => v.length >= 4);
  if (live.length === 0) return ctx;
  const clean = (t: string | undefined) =>
    t === undefined ? undefined : live.reduce((acc, v) => acc.split(v).join('***'), t);
  return {
    ...ctx,
    record: (c) =>
      ctx.record({ ...c, request: clean(c.request), response: clean(c.response), error: clean(c.error) }),
  };
}
