import type {
  CancelOutcome,
  Channel,
  ChannelContext,
  CloseOutcome,
  PayOutcome,
  PrecreateOutcome,
  QueryOutcome,
  RefundOutcome,
} from '../channel.js';
import type { SimTrade, SimulatorApi } from './api.js';
import type { Bill } from '../../domain/bill.js';
import { PAY_TYPES, type PayType } from '../../domain/trade.js';
import { parseAlipayTradeBill } from '../alipay/bill.js';
import { parseWechatTradeBill } from '../wechat/bill.js';

/**
 * The simulator channel: the reference adapter and the default. It talks to the simulated provider the way a
 * real adapter talks to its provider's API, and maps every answer pessimistically.
 * The merchant id at the provider is the app's `merchant.merchant_id`, or the app id.
 */
export class SimulatorChannel implements Channel {
  readonly id = 'simulator';
  /** Every pay type: alipay, weixin, unionpay and elecny (e-CNY). */
  readonly payTypes = PAY_TYPES;

  constructor(private readonly provider: SimulatorApi) {}

  private merchant(ctx: ChannelContext): string {
    return ctx.merchant['merchant_id'] ?? ctx.appId;
  }

  private paid(t: SimTrade) {
    return {
      channelTradeNo: t.channelTradeNo,
      paidAt: t.paidAt ?? new Date(0),
      buyerLogonId: t.buyerLogonId ?? undefined,
      buyerUserId: t.buyerUserId ?? undefined,
    };
  }

  async barcodePay(ctx: ChannelContext, input: Parameters<Channel['barcodePay']>[1]): Promise<PayOutcome> {
    const a = await this.provider.barcodePay({
      merchant: this.merchant(ctx),
      outTradeNo: input.outTradeNo,
      payType: input.payType,
      amountFen: input.amountFen,
      authCode: input.authCode,
      subject: input.subject,
    });
    switch (a.result) {
      case 'SUCCESS':
        return { kind: 'paid', ...this.paid(a.trade) };
      case 'USER_PAYING':
        return { kind: 'paying', channelTradeNo: a.trade.channelTradeNo };
      case 'FAIL':
        return { kind: 'declined', code: a.code, zh: a.zh, en: a.en };
      case 'SYSTEM_ERROR':
        return { kind: 'unknown', reason: 'simulator answered SYSTEM_ERROR' };
    }
  }

  precreate(
    ctx: ChannelContext,
    input: Parameters<NonNullable<Channel['precreate']>>[1],
  ): Promise<PrecreateOutcome> {
    return this.openTrade(ctx, input);
  }

  wapPay(
    ctx: ChannelContext,
    input: Parameters<NonNullable<Channel['wapPay']>>[1],
  ): Promise<PrecreateOutcome> {
    return this.openTrade(ctx, input, input.returnUrl);
  }

  /** A QR code or a wap (H5) cashier: the same trade at the provider; wap pay sends the payer back afterwards. */
  private async openTrade(
    ctx: ChannelContext,
    input: Parameters<NonNullable<Channel['precreate']>>[1],
    returnUrl?: string,
  ): Promise<PrecreateOutcome> {
    const a = await this.provider.precreate({
      merchant: this.merchant(ctx),
      outTradeNo: input.outTradeNo,
      payType: input.payType,
      amountFen: input.amountFen,
      subject: input.subject,
      returnUrl,
    });
    if (a.result === 'SUCCESS')
      return { kind: 'created', codeUrl: a.codeUrl, channelTradeNo: a.trade.channelTradeNo };
    return { kind: 'failed', code: a.code, zh: a.zh, en: a.en, retryable: false };
  }

  async downloadBill(ctx: ChannelContext, input: { date: string; payType: PayType }): Promise<Bill> {
    const file = await this.provider.billFile(this.merchant(ctx), input.payType, input.date);
    // Read with the real parsers, as a real channel's file would be.
    const bill =
      input.payType === 'alipay'
        ? parseAlipayTradeBill(file)
        : parseWechatTradeBill(file, { date: input.date });
    return {
      ...bill,
      payType: input.payType,
      lines: bill.lines.map((l) => ({ ...l, payType: input.payType })),
    };
  }

  async query(ctx: ChannelContext, ref: Parameters<Channel['query']>[1]): Promise<QueryOutcome> {
    const t = await this.provider.query(this.merchant(ctx), ref.outTradeNo);
    if (!t) return { kind: 'not_found' };
    switch (t.status) {
      case 'PAID':
        return { kind: 'paid', ...this.paid(t) };
      case 'WAITING':
        return { kind: 'waiting', channelTradeNo: t.channelTradeNo };
      case 'CLOSED':
        return { kind: 'closed' };
      case 'REFUNDED':
        return { kind: 'refunded', ...this.paid(t) };
    }
  }

  async cancel(ctx: ChannelContext, ref: Parameters<Channel['cancel']>[1]): Promise<CancelOutcome> {
    const a = await this.provider.cancel(this.merchant(ctx), ref.outTradeNo, ref.payType);
    if (a.result === 'RETRY') return { kind: 'retry', reason: a.reason };
    if (a.result === 'FAIL') return { kind: 'failed', code: a.code, zh: a.zh, en: a.en };
    return a.action === 'close' ? { kind: 'closed' } : { kind: 'refunded', ...this.paid(a.trade) };
  }

  async close(ctx: ChannelContext, ref: Parameters<Channel['close']>[1]): Promise<CloseOutcome> {
    const t = await this.provider.close(this.merchant(ctx), ref.outTradeNo, ref.payType);
    if (t.status === 'PAID' || t.status === 'REFUNDED') return { kind: 'paid', ...this.paid(t) };
    return { kind: 'closed' };
  }

  async refund(ctx: ChannelContext, input: Parameters<Channel['refund']>[1]): Promise<RefundOutcome> {
    const a = await this.provider.refund({
      merchant: this.merchant(ctx),
      outTradeNo: input.outTradeNo,
      outRequestNo: input.outRequestNo,
      amountFen: input.amountFen,
      reason: input.reason,
    });
    if (a.result === 'SUCCESS')
      return { kind: 'success', channelRefundNo: a.refundNo, refundedAt: a.createdAt };
    if (a.result === 'FAIL') return { kind: 'failed', code: a.code, zh: a.zh, en: a.en };
    return { kind: 'unknown', reason: 'simulator answered SYSTEM_ERROR' };
  }
}
