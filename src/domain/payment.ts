/**
 * Values that pass between the channels, the services and the store: what a provider said a payment came to,
 * and one exchange with a provider as kept for operators. They live here, at the bottom, so the store can keep
 * them without importing the channel layer.
 */

export interface PaidInfo {
  channelTradeNo: string;
  paidAt: Date;
  buyerLogonId?: string | undefined;
  buyerUserId?: string | undefined;
}

/** One exchange with a provider, as kept for operators. */
export interface ChannelCall {
  /** e.g. 'alipay.trade.pay', 'v3/pay/transactions/native'. */
  operation: string;
  outTradeNo?: string | undefined;
  httpStatus?: number | undefined;
  latencyMs: number;
  /** What the call came to: 'paid', 'paying', 'declined ACQ.TRADE_HAS_CLOSE', 'unknown: timeout', ... */
  outcome: string;
  /** Redacted excerpts (at most a few KB each). */
  request?: string | undefined;
  response?: string | undefined;
  error?: string | undefined;
}
