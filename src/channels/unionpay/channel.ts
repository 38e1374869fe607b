import type {
  BarcodePayInput,
  CancelOutcome,
  Channel,
  ChannelContext,
  CloseOutcome,
  NotifyAck,
  NotifyParse,
  PayOutcome,
  PrecreateInput,
  PrecreateOutcome,
  QueryOutcome,
  WapOutcome,
  WapPayInput,
  RefundInput,
  RefundOutcome,
  TradeRef,
} from '../channel.js';
import type { ChannelDeps } from '../definition.js';
import type { Bill } from '../../domain/bill.js';
import type { PayType } from '../../domain/trade.js';
import { CallRecorder, send } from '../exchange.js';
import { PreparedConfigs, distrust, signFields, type UnionPayConfig } from './keys.js';
import {
  BACK_PATH,
  QUERY_ID,
  QUERY_PATH,
  RESERVED_OUT_TRADE_NO,
  aboutAnotherOrder,
  answerOutcome,
  backRequest,
  baseRequest,
  beijingDaysBetween,
  cancelOrderId,
  consumeOrderId,
  consumeRequest,
  dayTxnTime,
  encodeForm,
  fieldsOf,
  orderState,
  paidInfoOf,
  parseAnswer,
  parseForm,
  queryClass,
  redactFields,
  redactText,
  refundOrderId,
  refusalOf,
  respClass,
  storedTxnTime,
  tradeTime,
  FRONT_PATH,
  exactTxnTime,
  fileTransferRequest,
  precreateRequest,
  wapRequest,
  type AnswerFields,
} from './wire.js';
import { parseUnionPayFileContent } from './bill.js';

/**
 * The UnionPay QuickPass channel: payment-code consume (被扫), query, refund and same-day cancel through
 * UnionPay's online gateway (acp 5.1.0, RSA certificates). Stateless: an order is found again from what the
 * platform stored (order id derived from the outTradeNo; txnTime = the trade's created_at, or for a refund the
 * refund's created_at, to the second in Beijing time), and without those from the earlier convention (txnTime =
 * 00:00:00 of the Beijing day it was sent; see docs/channels/unionpay.md). Every answer's signPubKeyCert is
 * checked against the app's root and middle certificates and owner before its signature, and only then is
 * respCode read; anything unclear is unknown.
 */

type Answer = { kind: 'answer'; fields: Readonly<AnswerFields> } | { kind: 'unknown'; reason: string };
type Order =
  | { kind: 'found'; fields: Readonly<AnswerFields>; txnTime: string }
  | { kind: 'not_found' }
  | { kind: 'unknown'; reason: string };

const ACK_OK: NotifyAck = { status: 200, contentType: 'text/plain; charset=utf-8', body: 'ok' };
const ACK_RETRY: NotifyAck = { status: 400, contentType: 'text/plain; charset=utf-8', body: 'fail' };

export class UnionPayChannel implements Channel {
  readonly id = 'unionpay';
  readonly payTypes = ['unionpay'] as const;
  private readonly configs = new PreparedConfigs();

  constructor(private readonly deps: Pick<ChannelDeps, 'http' | 'clock'>) {}

  // ---- one exchange ------------------------------------------------------------------------------------

  /**
   * Signs and sends one request, reads and verifies the answer. Only a verified answer about this order
   * comes back as an answer; everything else (timeout, HTTP error, unreadable, unverifiable) is unknown.
   */
  private async exchange(
    ctx: ChannelContext,
    cfg: UnionPayConfig,
    operation: string,
    path: string,
    outTradeNo: string | undefined,
    req: Readonly<{ orderId?: string; txnTime: string }>,
    opts: { url?: string; maxBytes?: number; timeoutMs?: number } = {},
  ): Promise<Answer> {
    const fields = fieldsOf(req);
    const body = { ...fields, signature: signFields(fields, cfg.key) };
    const rec = new CallRecorder(ctx, operation, outTradeNo);
    const request = redactFields(body);
    const t = await send(this.deps.http, {
      method: 'POST',
      url: opts.url ?? `${cfg.gateway}${path}`,
      headers: { 'content-type': 'application/x-www-form-urlencoded;charset=UTF-8' },
      body: encodeForm(body),
      timeoutMs: opts.timeoutMs ?? cfg.timeoutMs,
      maxBytes: opts.maxBytes ?? 1024 * 1024,
    });
    if (!t.ok) {
      rec.done(`unknown: ${t.reason}`, { request, error: t.reason });
      return { kind: 'unknown', reason: t.reason };
    }
    const text = t.body.toString('utf8');
    const parsed = t.status === 200 ? parseAnswer(text) : null;
    const why =
      t.status !== 200
        ? `HTTP ${t.status}`
        : !parsed
          ? 'unparseable answer'
          : (distrust(cfg, parsed, this.deps.clock.now()) ??
            (aboutAnotherOrder(parsed, req) ? 'answer about another order' : null));
    const parts = {
      httpStatus: t.status,
      request,
      response: parsed ? redactFields(parsed) : text ? redactText(text) : undefined,
    };
    if (why !== null || !parsed) {
      const reason = why ?? 'unparseable answer';
      rec.done(`unknown: ${reason}`, { ...parts, error: reason });
      return { kind: 'unknown', reason };
    }
    rec.done(answerOutcome(parsed), parts);
    return { kind: 'answer', fields: parsed };
  }

  /** Asks for one order (order id + the day it was sent). */
  private async queryOrder(
    ctx: ChannelContext,
    cfg: UnionPayConfig,
    outTradeNo: string,
    orderId: string,
    txnTime: string,
  ): Promise<Order> {
    const req = baseRequest(cfg, 'query', orderId, txnTime);
    const a = await this.exchange(ctx, cfg, 'unionpay.query', QUERY_PATH, outTradeNo, req);
    if (a.kind === 'unknown') return a;
    const rc = a.fields.respCode ?? '';
    switch (queryClass(rc)) {
      case 'found':
        return a.fields.orderId === orderId
          ? { kind: 'found', fields: a.fields, txnTime }
          : { kind: 'unknown', reason: 'query answer does not name the order' };
      case 'not_found':
        return { kind: 'not_found' };
      case 'unclear':
        return { kind: 'unknown', reason: `query answered respCode ${rc || 'missing'}` };
    }
  }

  /**
   * Finds an order by the txnTimes it may have been sent with, each asked once, in order: `exact` (the stored
   * time this version sends orders with) first, then the midnights of the earlier convention.
   */
  private async findOrder(
    ctx: ChannelContext,
    cfg: UnionPayConfig,
    outTradeNo: string,
    orderId: string,
    exact: string | null,
    midnights: readonly string[],
  ): Promise<Order> {
    const asked = new Set<string>();
    for (const txnTime of exact === null ? midnights : [exact, ...midnights]) {
      if (asked.has(txnTime)) continue;
      asked.add(txnTime);
      const o = await this.queryOrder(ctx, cfg, outTradeNo, orderId, txnTime);
      if (o.kind !== 'not_found') return o;
    }
    return { kind: 'not_found' };
  }

  /** The midnight txnTimes of the last `days` Beijing days, today first. */
  private midnights(days: number): string[] {
    const now = this.deps.clock.now();
    return Array.from({ length: Math.max(days, 0) }, (_, back) => dayTxnTime(now, back));
  }

  /**
   * Finds the payment order. Given the trade's creation time: one exact question (the consume was sent with it);
   * only if UnionPay has no such order, the midnight convention of the previous version (trades sent before the
   * upgrade): the creation day (and the next, for a trade created on the stroke of midnight), then the last
   * `days` days. Without it: the last `days` days.
   */
  private findPayment(ctx: ChannelContext, cfg: UnionPayConfig, ref: TradeRef, days: number): Promise<Order> {
    const exact = storedTxnTime(ref.createdAt);
    const created =
      exact !== null && ref.createdAt
        ? [dayTxnTime(ref.createdAt), dayTxnTime(new Date(ref.createdAt.getTime() + 60_000))]
        : [];
    const out = ref.outTradeNo;
    return this.findOrder(ctx, cfg, out, consumeOrderId(out), exact, [...created, ...this.midnights(days)]);
  }

  private paidInfo(f: Readonly<AnswerFields>) {
    return paidInfoOf(f, this.deps.clock.now());
  }

  // ---- operations ----------------------------------------------------------------------------------------

  async barcodePay(ctx: ChannelContext, input: BarcodePayInput): Promise<PayOutcome> {
    const cfg = this.configs.get(ctx.merchant);
    if ('error' in cfg)
      return {
        kind: 'declined',
        code: 'CHANNEL_CONFIG_INVALID',
        zh: `银联渠道配置不可用：${cfg.error}`,
        en: `UnionPay configuration unusable: ${cfg.error}`,
      };
    if (input.payType !== 'unionpay')
      return {
        kind: 'declined',
        code: 'PAY_TYPE_UNSUPPORTED',
        zh: '银联渠道只收云闪付',
        en: 'the UnionPay channel takes UnionPay only',
      };
    const orderId = consumeOrderId(input.outTradeNo);
    // The trade's creation second (stored, so every later call finds the order in one question).
    const txnTime = storedTxnTime(input.createdAt) ?? dayTxnTime(this.deps.clock.now());
    const termId = /^[A-Za-z0-9]{8}$/.test(input.terminalId ?? '') ? (input.terminalId ?? '') : cfg.termId;
    const req = consumeRequest(cfg, {
      orderId,
      txnTime,
      amountFen: input.amountFen,
      authCode: input.authCode,
      backUrl: ctx.notifyUrl,
      outTradeNo: input.outTradeNo,
      termId,
    });
    const a = await this.exchange(ctx, cfg, 'unionpay.consume', BACK_PATH, input.outTradeNo, req);
    if (a.kind === 'unknown') return a;
    const rc = a.fields.respCode ?? '';
    switch (respClass(rc)) {
      case 'in_process':
        return { kind: 'paying', channelTradeNo: a.fields.queryId };
      case 'unclear':
        return { kind: 'unknown', reason: `consume answered respCode ${rc || 'missing'}` };
      case 'refused':
        return { kind: 'declined', ...refusalOf(a.fields, 'respCode') };
      case 'accepted':
        break;
    }

    // 00 only means accepted: the result is the order's state.
    const q = await this.queryOrder(ctx, cfg, input.outTradeNo, orderId, txnTime);
    if (q.kind !== 'found') return { kind: 'paying', channelTradeNo: a.fields.queryId };
    switch (orderState(q.fields)) {
      case 'success':
        if (q.fields.txnAmt !== String(input.amountFen) || !q.fields.queryId)
          return { kind: 'unknown', reason: 'the paid order does not match (amount or queryId)' };
        return { kind: 'paid', ...this.paidInfo(q.fields) };
      case 'failed':
        return { kind: 'declined', ...refusalOf(q.fields, 'origRespCode') };
      default:
        return { kind: 'paying', channelTradeNo: q.fields.queryId ?? a.fields.queryId };
    }
  }

  /**
   * The txnTime of an order the platform opens without a payment code (QR, WAP): the trade's created_at when the
   * services pass it (the same on every repeat, and what query and close look for first), else the midnight of
   * today in Beijing (the earlier convention, which query finds through its fallback).
   */
  private openTxnTime(input: PrecreateInput): string {
    return storedTxnTime(input.createdAt) ?? dayTxnTime(this.deps.clock.now());
  }

  private refuseOpen(
    cfg: UnionPayConfig | { error: string },
    input: PrecreateInput,
  ): { cfg: UnionPayConfig } | { refused: PrecreateOutcome & { kind: 'failed' } } {
    const no = (refused: PrecreateOutcome & { kind: 'failed' }) => ({ refused });
    if ('error' in cfg)
      return no({
        kind: 'failed',
        code: 'CHANNEL_CONFIG_INVALID',
        zh: `银联渠道配置不可用：${cfg.error}`,
        en: `UnionPay configuration unusable: ${cfg.error}`,
        retryable: false,
      });
    if (input.payType !== 'unionpay')
      return no({
        kind: 'failed',
        code: 'PAY_TYPE_UNSUPPORTED',
        zh: '银联渠道只收云闪付',
        en: 'the UnionPay channel takes UnionPay only',
        retryable: false,
      });
    if (input.expiresAt.getTime() <= this.deps.clock.now().getTime())
      return no({
        kind: 'failed',
        code: 'TRADE_EXPIRED',
        zh: '订单已过期',
        en: 'the order has expired',
        retryable: false,
      });
    return { cfg };
  }

  /**
   * QR pay (主扫 申码): consume txnType=01 txnSubType=07 to the back-end gateway; a verified respCode 00 with a
   * qrCode is the code to show. The result comes by notice or query, like a payment-code consume. payTimeout is
   * the trade's expiresAt: after it UnionPay takes no payment for the code.
   */
  async precreate(ctx: ChannelContext, input: PrecreateInput): Promise<PrecreateOutcome> {
    const ok = this.refuseOpen(this.configs.get(ctx.merchant), input);
    if ('refused' in ok) return ok.refused;
    const { cfg } = ok;
    const orderId = consumeOrderId(input.outTradeNo);
    const txnTime = this.openTxnTime(input);
    const req = precreateRequest(cfg, {
      orderId,
      txnTime,
      amountFen: input.amountFen,
      backUrl: ctx.notifyUrl,
      outTradeNo: input.outTradeNo,
      payTimeout: exactTxnTime(input.expiresAt),
      termId: cfg.termId,
    });
    const a = await this.exchange(ctx, cfg, 'unionpay.precreate', BACK_PATH, input.outTradeNo, req);
    const retry = (why: string): PrecreateOutcome => ({
      kind: 'failed',
      code: 'CHANNEL_ERROR',
      zh: `银联申码结果不明，请重试：${why}`,
      en: `UnionPay QR order unclear, try again: ${why}`,
      retryable: true,
    });
    if (a.kind === 'unknown') return retry(a.reason);
    const rc = a.fields.respCode ?? '';
    switch (respClass(rc)) {
      case 'accepted': {
        const code = a.fields.qrCode ?? '';
        if (!/^https?:\/\/\S{1,500}$/.test(code)) return retry('respCode 00 without a qrCode URL');
        return { kind: 'created', codeUrl: code, channelTradeNo: a.fields.queryId };
      }
      case 'in_process':
      case 'unclear':
        return retry(`respCode ${rc || 'missing'}`);
      case 'refused':
        return { kind: 'failed', ...refusalOf(a.fields, 'respCode'), retryable: false };
    }
  }

  /**
   * Mobile web pay (手机网页支付): the signed front-channel consume the payer's browser posts to UnionPay's
   * cashier (frontTransReq). Built locally, no call: the hosted cashier may ask again each time the page opens,
   * and gets the same order (same orderId and txnTime). frontUrl = where UnionPay sends the payer back
   * (input.returnUrl), backUrl = the platform's notify URL. The form is recorded (fields without signature).
   */
  wapPay(ctx: ChannelContext, input: WapPayInput): Promise<WapOutcome> {
    const ok = this.refuseOpen(this.configs.get(ctx.merchant), input);
    if ('refused' in ok) return Promise.resolve(ok.refused);
    const { cfg } = ok;
    let returnUrl: URL | null;
    try {
      returnUrl = new URL(input.returnUrl);
    } catch {
      returnUrl = null;
    }
    if (!returnUrl || (returnUrl.protocol !== 'https:' && returnUrl.protocol !== 'http:'))
      return Promise.resolve({
        kind: 'failed',
        code: 'INVALID_RETURN_URL',
        zh: '返回地址不是网址',
        en: 'the return URL is not a URL',
        retryable: false,
      });
    const req = wapRequest(cfg, {
      orderId: consumeOrderId(input.outTradeNo),
      txnTime: this.openTxnTime(input),
      amountFen: input.amountFen,
      frontUrl: input.returnUrl,
      backUrl: ctx.notifyUrl,
      outTradeNo: input.outTradeNo,
      payTimeout: exactTxnTime(input.expiresAt),
    });
    const fields = fieldsOf(req);
    const signed = { ...fields, signature: signFields(fields, cfg.key) };
    new CallRecorder(ctx, 'unionpay.wap.form', input.outTradeNo).done('form built (posted by the payer)', {
      request: redactFields(signed),
    });
    return Promise.resolve({ kind: 'form', action: `${cfg.gateway}${FRONT_PATH}`, fields: signed });
  }

  /**
   * The settlement day's reconciliation file (fileTransfer txnType=76 fileType=00, settleDate=MMDD), read by
   * bill.ts. Throws (never a partial bill) when UnionPay has no file, answers unclearly or the file is unreadable.
   */
  async downloadBill(ctx: ChannelContext, input: { date: string; payType: PayType }): Promise<Bill> {
    if (input.payType !== 'unionpay')
      throw new Error(
        `银联渠道没有 ${input.payType} 账单 / the UnionPay channel has no ${input.payType} bill`,
      );
    const cfg = this.configs.get(ctx.merchant);
    if ('error' in cfg) throw new Error(`银联渠道配置不可用 / UnionPay configuration unusable: ${cfg.error}`);
    if (!/^\d{4}-\d\d-\d\d$/.test(input.date)) throw new Error(`not a date: ${input.date}`);
    const req = fileTransferRequest(
      cfg,
      input.date.slice(5, 7) + input.date.slice(8, 10),
      exactTxnTime(this.deps.clock.now()),
    );
    const a = await this.exchange(ctx, cfg, 'unionpay.bill.download', '', undefined, req, {
      url: cfg.fileUrl,
      maxBytes: 64 * 1024 * 1024,
      timeoutMs: Math.max(cfg.timeoutMs, 30_000),
    });
    if (a.kind === 'unknown')
      throw new Error(
        `银联对账文件下载失败 / the UnionPay file download failed for ${input.date}: ${a.reason}`,
      );
    const rc = a.fields.respCode ?? '';
    if (rc !== '00' || !a.fields.fileContent)
      throw new Error(
        `银联无 ${input.date} 的对账文件 / UnionPay gave no file for ${input.date}: respCode ${rc || 'missing'} ${a.fields.respMsg ?? ''}`.trim(),
      );
    return parseUnionPayFileContent(a.fields.fileContent, {
      date: input.date,
      merId: cfg.merId,
      fileName: a.fields.fileName ?? `unionpay ${input.date}`,
      orderIdOf: consumeOrderId,
    });
  }

  async query(ctx: ChannelContext, ref: TradeRef): Promise<QueryOutcome> {
    const cfg = this.configs.get(ctx.merchant);
    if ('error' in cfg) return { kind: 'unknown', reason: `configuration: ${cfg.error}` };
    const c = await this.findPayment(ctx, cfg, ref, 2);
    if (c.kind !== 'found') return c;
    switch (orderState(c.fields)) {
      case 'processing':
        return { kind: 'waiting', channelTradeNo: c.fields.queryId };
      case 'failed':
        return { kind: 'closed' };
      case 'unclear':
        return { kind: 'unknown', reason: `origRespCode ${c.fields.origRespCode ?? 'missing'}` };
      case 'success': {
        if (!c.fields.queryId) return { kind: 'unknown', reason: 'paid order without queryId' };
        // A consume stays "00" after a cancel: look at our cancel order too.
        const x = await this.queryOrder(ctx, cfg, ref.outTradeNo, cancelOrderId(ref.outTradeNo), c.txnTime);
        if (x.kind === 'unknown') return x;
        if (x.kind === 'found') {
          const s = orderState(x.fields);
          if (s === 'success') return { kind: 'refunded', ...this.paidInfo(c.fields) };
          if (s !== 'failed') return { kind: 'unknown', reason: 'a cancel of this trade is in progress' };
        }
        return { kind: 'paid', ...this.paidInfo(c.fields) };
      }
    }
  }

  async cancel(ctx: ChannelContext, ref: TradeRef): Promise<CancelOutcome> {
    const cfg = this.configs.get(ctx.merchant);
    if ('error' in cfg) return { kind: 'retry', reason: `configuration: ${cfg.error}` };
    const out = ref.outTradeNo;
    const c = await this.findPayment(ctx, cfg, ref, 2);
    if (c.kind === 'unknown') return { kind: 'retry', reason: c.reason };
    if (c.kind === 'not_found') return { kind: 'closed' };
    const state = orderState(c.fields);
    if (state === 'failed') return { kind: 'closed' };
    if (state !== 'success') return { kind: 'retry', reason: 'the payment is still being processed' };
    const origQryId = c.fields.queryId ?? '';
    const amount = c.fields.txnAmt ?? '';
    if (!origQryId || !/^\d+$/.test(amount))
      return { kind: 'retry', reason: 'paid order without queryId or amount' };

    // The cancel order: derived from the trade, sent with the payment's txnTime (query finds it from the trade).
    const cancelId = cancelOrderId(out);
    const seen = await this.queryOrder(ctx, cfg, out, cancelId, c.txnTime);
    if (seen.kind === 'unknown') return { kind: 'retry', reason: seen.reason };
    if (seen.kind === 'found') {
      const s = orderState(seen.fields);
      if (s === 'success') return { kind: 'refunded', ...this.paidInfo(c.fields) };
      if (s === 'failed') return { kind: 'failed', ...refusalOf(seen.fields, 'origRespCode') };
      return { kind: 'retry', reason: 'the cancel is being processed' };
    }
    const req = backRequest(cfg, 'cancel', {
      orderId: cancelId,
      txnTime: c.txnTime,
      txnAmt: amount,
      origQryId,
      backUrl: ctx.notifyUrl,
      outTradeNo: out,
    });
    const a = await this.exchange(ctx, cfg, 'unionpay.cancel', BACK_PATH, out, req);
    if (a.kind === 'unknown') return { kind: 'retry', reason: a.reason };
    const rc = a.fields.respCode ?? '';
    const rcClass = respClass(rc);
    if (rcClass === 'unclear' || rcClass === 'in_process')
      return { kind: 'retry', reason: `cancel answered respCode ${rc || 'missing'}` };
    if (rcClass === 'refused') return { kind: 'failed', ...refusalOf(a.fields, 'respCode') };
    const done = await this.queryOrder(ctx, cfg, out, cancelId, c.txnTime);
    if (done.kind !== 'found') return { kind: 'retry', reason: 'cancel accepted, result not known yet' };
    const s = orderState(done.fields);
    if (s === 'success') return { kind: 'refunded', ...this.paidInfo(c.fields) };
    if (s === 'failed') return { kind: 'failed', ...refusalOf(done.fields, 'origRespCode') };
    return { kind: 'retry', reason: 'cancel accepted, being processed' };
  }

  /** UnionPay cannot close a payment-code order: it is closed only once UnionPay reports it final. */
  async close(ctx: ChannelContext, ref: TradeRef): Promise<CloseOutcome> {
    const q = await this.query(ctx, ref);
    switch (q.kind) {
      case 'paid':
      case 'refunded':
        return {
          kind: 'paid',
          channelTradeNo: q.channelTradeNo,
          paidAt: q.paidAt,
          buyerLogonId: q.buyerLogonId,
          buyerUserId: q.buyerUserId,
        };
      case 'closed':
      case 'not_found':
        return { kind: 'closed' };
      case 'waiting':
        return { kind: 'retry', reason: 'the payment is still being processed' };
      case 'unknown':
        return { kind: 'retry', reason: q.reason };
    }
  }

  async refund(ctx: ChannelContext, input: RefundInput): Promise<RefundOutcome> {
    const cfg = this.configs.get(ctx.merchant);
    if ('error' in cfg) return { kind: 'unknown', reason: `configuration: ${cfg.error}` };
    const out = input.outTradeNo;
    const refundId = refundOrderId(out, input.outRequestNo);
    const settled = (f: Readonly<AnswerFields>): RefundOutcome => {
      const s = orderState(f);
      if (s === 'success') {
        return f.queryId
          ? {
              kind: 'success',
              channelRefundNo: f.queryId,
              refundedAt: tradeTime(f, this.deps.clock.now()),
            }
          : { kind: 'unknown', reason: 'refund without queryId' };
      }
      if (s === 'failed') return { kind: 'failed', ...refusalOf(f, 'origRespCode') };
      return { kind: 'unknown', reason: 'the refund is being processed' };
    };

    // A repeat of a refund request already sent reads its result: no second refund. The refund order is sent
    // with the time the request was first made (stored, the same on every repeat): one exact question finds it
    // however much later the repeat comes. Only if UnionPay has no such order, the midnights from that day to
    // today (a refund first sent by the previous version); without a stored time, today and yesterday.
    const now = this.deps.clock.now();
    const requested = storedTxnTime(input.requestedAt);
    const sinceDays = input.requestedAt ? Math.max(beijingDaysBetween(input.requestedAt, now), 0) + 1 : 2;
    const seen =
      requested !== null
        ? await this.findOrder(
            ctx,
            cfg,
            out,
            refundId,
            requested,
            this.midnights(Math.min(sinceDays, cfg.lookbackDays)),
          )
        : await this.findOrder(ctx, cfg, out, refundId, null, this.midnights(2));
    if (seen.kind === 'unknown') return seen;
    if (seen.kind === 'found') return settled(seen.fields);

    // The payment's queryId: the one stored with the trade, else the payment found at UnionPay.
    let origQryId = input.channelTradeNo ?? '';
    if (!QUERY_ID.test(origQryId)) {
      const c = await this.findPayment(ctx, cfg, input, cfg.lookbackDays);
      if (c.kind === 'unknown') return c;
      if (c.kind === 'not_found')
        return {
          kind: 'failed',
          code: 'UNIONPAY_TRADE_NOT_FOUND',
          zh: `银联在最近 ${cfg.lookbackDays} 天内查无此交易`,
          en: `UnionPay has no such payment in the last ${cfg.lookbackDays} days`,
        };
      const state = orderState(c.fields);
      if (state !== 'success') {
        return state === 'failed'
          ? { kind: 'failed', code: 'TRADE_NOT_PAID', zh: '原交易未成功', en: 'the payment did not succeed' }
          : { kind: 'unknown', reason: 'the payment is still being processed' };
      }
      origQryId = c.fields.queryId ?? '';
      if (!origQryId) return { kind: 'unknown', reason: 'paid order without queryId' };
    }

    const txnTime = requested ?? dayTxnTime(now);
    const req = backRequest(cfg, 'refund', {
      orderId: refundId,
      txnTime,
      txnAmt: String(input.amountFen),
      origQryId,
      backUrl: ctx.notifyUrl,
      outTradeNo: out,
    });
    const a = await this.exchange(ctx, cfg, 'unionpay.refund', BACK_PATH, out, req);
    if (a.kind === 'unknown') return a;
    const rc = a.fields.respCode ?? '';
    const rcClass = respClass(rc);
    if (rcClass === 'unclear' || rcClass === 'in_process')
      return { kind: 'unknown', reason: `refund answered respCode ${rc || 'missing'}` };
    if (rcClass === 'refused') return { kind: 'failed', ...refusalOf(a.fields, 'respCode') };
    const done = await this.queryOrder(ctx, cfg, out, refundId, txnTime);
    if (done.kind !== 'found') return { kind: 'unknown', reason: 'refund accepted, result not known yet' };
    return settled(done.fields);
  }

  /**
   * A backUrl notice (form POST, signed like an answer). Its outTradeNo is our reqReserved (sent with every
   * order), or the order id of a payment whose outTradeNo is used as it is.
   */
  parseNotify(
    ctx: ChannelContext,
    input: { headers: Readonly<Record<string, string>>; body: Buffer },
  ): Promise<NotifyParse> {
    const rec = new CallRecorder(ctx, 'unionpay.notify');
    const text = input.body.toString('utf8');
    const fields = parseForm(text);
    const result = ((): NotifyParse => {
      const cfg = this.configs.get(ctx.merchant);
      if ('error' in cfg) return { kind: 'rejected', reason: `configuration: ${cfg.error}`, ack: ACK_RETRY };
      if (!fields) return { kind: 'rejected', reason: 'not a UnionPay notice', ack: ACK_RETRY };
      const why = distrust(cfg, fields, this.deps.clock.now());
      if (why) return { kind: 'rejected', reason: `notice not verified: ${why}`, ack: ACK_RETRY };
      const f: Readonly<AnswerFields> = fields;
      const orderId = f.orderId ?? '';
      const reserved = f.reqReserved ?? '';
      let outTradeNo: string | null = null;
      if (RESERVED_OUT_TRADE_NO.test(reserved)) outTradeNo = reserved;
      else if (f.txnType === '01' && consumeOrderId(orderId) === orderId) outTradeNo = orderId;
      if (!outTradeNo) return { kind: 'ignored', ack: ACK_OK };
      return { kind: 'trade', outTradeNo, ack: ACK_OK };
    })();
    rec.done(result.kind === 'rejected' ? `rejected: ${result.reason}` : result.kind, {
      outTradeNo: result.kind === 'trade' ? result.outTradeNo : undefined,
      request: fields ? redactFields(fields) : redactText(text),
    });
    return Promise.resolve(result);
  }
}
