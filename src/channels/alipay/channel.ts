/**
 * The Alipay channel: Alipay's OpenAPI gateway (alipay.trade.*), signed with the app's RSA key and verified
 * with Alipay's public key (public-key mode) or Alipay's public-key certificate (certificate mode).
 *
 * Each operation builds its biz_content (wire.ts), has it signed by the official SDK (keys.ts), sends it through
 * the shared exchange (deadline, size limit, no redirects) and maps the verified answer with a named mapper
 * (wire.ts); every exchange is recorded, redacted. Only a verified, signed answer that clearly says so is
 * success; anything else is "unknown" (the platform queries), and for a refund the adapter asks
 * alipay.trade.fastpay.refund.query before answering.
 */
import type {
  BarcodePayInput,
  CancelOutcome,
  Channel,
  ChannelContext,
  CloseOutcome,
  NotifyParse,
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
import { CallRecorder, send, type RecordParts } from '../exchange.js';
import type { HttpClient } from '../http.js';
import type { Clock } from '../../domain/clock.js';
import type { PayType } from '../../domain/trade.js';
import type { Bill } from '../../domain/bill.js';
import { parseAlipayTradeBill } from './bill.js';
import { preparedFor, signedRequestParams, verifyAnswer, type AlipaySettings } from './keys.js';
import { parseAlipayNotify } from './notify.js';
import {
  DEFAULT_TIMEOUT_MS,
  billUrlFrom,
  cancelOutcomeAfterQuery,
  cancelOutcomeFrom,
  cashierUrl,
  closeOutcomeAfterQuery,
  closeOutcomeFrom,
  describe,
  gatewayPost,
  payOutcomeFrom,
  precreateBiz,
  precreateOutcomeFrom,
  queryOutcomeFrom,
  readAnswer,
  recordedAnswer,
  recordedRequest,
  recordedUnverified,
  refundBiz,
  refundOutcomeFrom,
  refundQueryBiz,
  refundQueryFindingFrom,
  tradePayBiz,
  wapPayBiz,
  type Answers,
  type Method,
  type Requests,
  type Verified,
} from './wire.js';

/** One gateway request: a method, its biz_content and further public parameters (notify_url, return_url). */
interface Request<M extends Method> {
  method: M;
  outTradeNo?: string | undefined;
  biz: Requests[M];
  extra?: Record<string, string>;
}

const ONLY_ALIPAY = { zh: '支付宝渠道只收支付宝', en: 'the Alipay channel takes Alipay only' };

export class AlipayChannel implements Channel {
  readonly id = 'alipay';
  readonly payTypes = ['alipay'] as const satisfies readonly PayType[];
  private readonly http: HttpClient;
  private readonly clock: Clock;

  constructor(deps: Pick<ChannelDeps, 'http' | 'clock'>) {
    this.http = deps.http;
    this.clock = deps.clock;
  }

  async barcodePay(ctx: ChannelContext, input: BarcodePayInput): Promise<PayOutcome> {
    if (input.payType !== 'alipay') return { kind: 'declined', code: 'PAY_TYPE', ...ONLY_ALIPAY };
    const biz = tradePayBiz(input, this.settings(ctx) ?? {});
    const x = {
      method: 'alipay.trade.pay',
      outTradeNo: input.outTradeNo,
      biz,
      extra: { notify_url: ctx.notifyUrl },
    } as const;
    return this.call(ctx, x, (a) => payOutcomeFrom(a, input, this.clock));
  }

  async precreate(ctx: ChannelContext, input: PrecreateInput): Promise<PrecreateOutcome> {
    if (input.payType !== 'alipay')
      return { kind: 'failed', code: 'PAY_TYPE', ...ONLY_ALIPAY, retryable: false };
    const biz = precreateBiz(input, this.settings(ctx) ?? {}, this.clock.now());
    const x = {
      method: 'alipay.trade.precreate',
      outTradeNo: input.outTradeNo,
      biz,
      extra: { notify_url: ctx.notifyUrl },
    } as const;
    return this.call(ctx, x, (a) => precreateOutcomeFrom(a, input.outTradeNo));
  }

  /** The wap cashier: a signed URL of the gateway that the payer's browser opens; nothing is sent from here. */
  async wapPay(ctx: ChannelContext, input: WapPayInput): Promise<PrecreateOutcome> {
    const rec = new CallRecorder(ctx, 'alipay.trade.wap.pay', input.outTradeNo);
    const p = preparedFor(ctx.merchant);
    const biz = wapPayBiz(input, p.ok ? p.value.settings.sysServiceId : undefined);
    const extra = { notify_url: ctx.notifyUrl, return_url: input.returnUrl };
    const request = recordedRequest('alipay.trade.wap.pay', biz, extra);
    if (input.payType !== 'alipay' || !p.ok) {
      const why = p.ok ? ONLY_ALIPAY.en : p.problem;
      rec.done('failed', { request, error: why });
      return {
        kind: 'failed',
        code: p.ok ? 'PAY_TYPE' : 'CHANNEL_CONFIG',
        zh: '无法生成支付宝收银台地址',
        en: why,
        retryable: false,
      };
    }
    const params = signedRequestParams(p.value, 'alipay.trade.wap.pay', biz, extra, this.clock.now());
    rec.done('created (signed cashier URL)', { request });
    return { kind: 'created', codeUrl: cashierUrl(p.value.settings.gatewayUrl, params) };
  }

  async query(ctx: ChannelContext, ref: TradeRef): Promise<QueryOutcome> {
    const x = this.tradeRequest('alipay.trade.query', ref);
    return this.call(ctx, x, (a) => queryOutcomeFrom(a, ref.outTradeNo, this.clock));
  }

  async cancel(ctx: ChannelContext, ref: TradeRef): Promise<CancelOutcome> {
    const out = await this.call(ctx, this.tradeRequest('alipay.trade.cancel', ref), cancelOutcomeFrom);
    if (out.kind !== 'ask_again') return out;
    return cancelOutcomeAfterQuery(out.detail, await this.query(ctx, ref), this.clock);
  }

  async close(ctx: ChannelContext, ref: TradeRef): Promise<CloseOutcome> {
    const out = await this.call(ctx, this.tradeRequest('alipay.trade.close', ref), closeOutcomeFrom);
    if (out.kind !== 'ask_again') return out;
    return closeOutcomeAfterQuery(await this.query(ctx, ref));
  }

  async refund(ctx: ChannelContext, input: RefundInput): Promise<RefundOutcome> {
    const x = { method: 'alipay.trade.refund', outTradeNo: input.outTradeNo, biz: refundBiz(input) } as const;
    const out = await this.call(ctx, x, (a) => refundOutcomeFrom(a, input, this.clock));
    if (out.kind !== 'ask_again') return out;
    // Not settled by the answer: alipay.trade.fastpay.refund.query says whether this request was refunded.
    const q = await this.call(
      ctx,
      {
        method: 'alipay.trade.fastpay.refund.query',
        outTradeNo: input.outTradeNo,
        biz: refundQueryBiz(input),
      },
      (a) => refundQueryFindingFrom(a, input, this.clock),
    );
    if (q.kind === 'refunded') return q.found;
    return {
      kind: 'unknown',
      reason: `${out.detail.why}; refund query found no refund yet (repeat with the same out_request_no)`,
    };
  }

  async downloadBill(ctx: ChannelContext, input: { date: string; payType: PayType }): Promise<Bill> {
    if (input.payType !== 'alipay')
      throw new Error(
        `支付宝渠道没有 ${input.payType} 账单 / the Alipay channel has no ${input.payType} bill`,
      );
    const x = {
      method: 'alipay.data.dataservice.bill.downloadurl.query',
      biz: { bill_type: 'trade', bill_date: input.date },
    } as const;
    const r = await this.call(ctx, x, billUrlFrom);
    if (r.kind !== 'ok')
      throw new Error(
        `支付宝账单地址获取失败 / could not get the Alipay bill URL for ${input.date}: ${r.reason}`,
      );
    const rec = new CallRecorder(ctx, 'alipay.bill.download');
    const t = await send(this.http, {
      method: 'GET',
      url: r.link,
      timeoutMs: Math.max(this.settings(ctx)?.timeoutMs ?? DEFAULT_TIMEOUT_MS, 30_000),
      maxBytes: 64 * 1024 * 1024,
    });
    if (!t.ok || t.status !== 200) {
      const failure = t.ok ? `HTTP ${t.status}` : t.reason;
      rec.done(`failed: ${failure}`, { error: failure });
      throw new Error(`支付宝账单下载失败 / the Alipay bill download failed for ${input.date}: ${failure}`);
    }
    let bill: Bill;
    try {
      bill = parseAlipayTradeBill(t.body);
    } catch (e) {
      const msg = e instanceof Error ? e.message.slice(0, 200) : 'error';
      rec.done(`unreadable: ${msg}`, { httpStatus: 200, error: msg });
      throw e;
    }
    rec.done(`ok: ${bill.lines.length} lines, ${t.body.length} bytes`, { httpStatus: 200 });
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
    return parseAlipayNotify(preparedFor(ctx.merchant), input.body);
  }

  // ------------------------------------------------------------------------------------------- the exchange

  /**
   * One signed exchange with the gateway, its verified answer mapped by `map`, recorded with what it came to.
   * An answer that settles nothing by itself (`ask_again`) is recorded with its note; the caller asks again.
   */
  private async call<
    M extends Method,
    T extends { kind: string; code?: string; reason?: string; note?: string },
  >(ctx: ChannelContext, x: Request<M>, map: (a: Verified<Answers[M]>) => T): Promise<T> {
    const rec = new CallRecorder(ctx, x.method, x.outTradeNo);
    const { answer, parts } = await this.exchange(ctx, x);
    const out = map(answer);
    rec.done(describe(out), { ...parts, error: answer.ok ? undefined : answer.reason });
    return out;
  }

  /** Signs, sends and verifies one request; never throws: what went wrong is the answer's reason. */
  private async exchange<M extends Method>(
    ctx: ChannelContext,
    x: Request<M>,
  ): Promise<{ answer: Verified<Answers[M]>; parts: RecordParts }> {
    const request = recordedRequest(x.method, x.biz, x.extra);
    const fail = (reason: string, more: RecordParts = {}) => ({
      answer: { ok: false as const, reason },
      parts: { request, ...more },
    });
    const p = preparedFor(ctx.merchant);
    if (!p.ok) return fail(`configuration: ${p.problem}`);
    const { settings } = p.value;
    let params: Record<string, string>;
    try {
      params = signedRequestParams(p.value, x.method, x.biz, x.extra ?? {}, this.clock.now());
    } catch (e) {
      return fail(`signing failed: ${e instanceof Error ? e.message.slice(0, 100) : 'error'}`);
    }
    const t = await send(this.http, {
      method: 'POST',
      ...gatewayPost(settings.gatewayUrl, params),
      timeoutMs: settings.timeoutMs,
      maxBytes: 1024 * 1024,
    });
    if (!t.ok) return fail(t.reason);
    const text = t.body.toString('utf8');
    const unverified = () => ({ httpStatus: t.status, response: recordedUnverified(text) });
    if (t.status !== 200) return fail(`HTTP ${t.status}`, unverified());
    const v = verifyAnswer(p.value, x.method, text);
    if (!v.ok) return fail(v.reason, unverified());
    return {
      answer: { ok: true, data: readAnswer(x.method, v.data) },
      parts: { request, httpStatus: t.status, response: recordedAnswer(v.data) },
    };
  }

  private tradeRequest<M extends 'alipay.trade.query' | 'alipay.trade.cancel' | 'alipay.trade.close'>(
    method: M,
    ref: TradeRef,
  ): Request<M> {
    return { method, outTradeNo: ref.outTradeNo, biz: { out_trade_no: ref.outTradeNo } };
  }

  private settings(ctx: ChannelContext): AlipaySettings | null {
    const p = preparedFor(ctx.merchant);
    return p.ok ? p.value.settings : null;
  }
}
