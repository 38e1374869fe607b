import type { Fen } from '../../domain/money.js';
import type { PayType } from '../../domain/trade.js';

/**
 * The simulated provider's API as its adapter (SimulatorChannel) sees it: what a real provider's published API is
 * to a real adapter. The provider itself (src/simulator/provider.ts, with its own books) implements it; the
 * channel knows nothing else of it.
 */

/** The simulated provider takes every pay type hospay knows (alipay, weixin, unionpay, elecny). */
export type SimPayType = PayType;

/** A trade in the provider's books. */
export interface SimTrade {
  merchant: string;
  outTradeNo: string;
  payType: SimPayType;
  channelTradeNo: string;
  amountFen: Fen;
  subject: string;
  status: 'WAITING' | 'PAID' | 'CLOSED' | 'REFUNDED';
  refundedFen: Fen;
  buyerLogonId: string | null;
  buyerUserId: string | null;
  paidAt: Date | null;
  /** Wap (H5) pay: where the payer page sends the payer afterwards. */
  returnUrl: string | null;
}

export type SimPayAnswer =
  | { result: 'SUCCESS'; trade: SimTrade }
  | { result: 'USER_PAYING'; trade: SimTrade }
  | { result: 'FAIL'; code: string; zh: string; en: string }
  | { result: 'SYSTEM_ERROR' };

export type SimPrecreateAnswer =
  | { result: 'SUCCESS'; codeUrl: string; trade: SimTrade }
  | { result: 'FAIL'; code: string; zh: string; en: string };

export type SimCancelAnswer =
  | { result: 'SUCCESS'; action: 'close' | 'refund'; trade: SimTrade }
  | { result: 'RETRY'; reason: string }
  | { result: 'FAIL'; code: string; zh: string; en: string };

export type SimRefundAnswer =
  | { result: 'SUCCESS'; refundNo: string; createdAt: Date }
  | { result: 'FAIL'; code: string; zh: string; en: string }
  | { result: 'SYSTEM_ERROR' };

export interface SimBarcodePayRequest {
  merchant: string;
  outTradeNo: string;
  payType: SimPayType;
  amountFen: Fen;
  authCode: string;
  subject: string;
}

export interface SimPrecreateRequest {
  merchant: string;
  outTradeNo: string;
  payType: SimPayType;
  amountFen: Fen;
  subject: string;
  /** Wap (H5) pay: where the payer page sends the payer afterwards. */
  returnUrl?: string | undefined;
}

export interface SimRefundRequest {
  merchant: string;
  outTradeNo: string;
  outRequestNo: string;
  amountFen: Fen;
  reason?: string | undefined;
}

/** The operations the simulator channel calls. */
export interface SimulatorApi {
  barcodePay(input: SimBarcodePayRequest): Promise<SimPayAnswer>;
  /** A QR code (or a wap cashier) for the payer's page. */
  precreate(input: SimPrecreateRequest): Promise<SimPrecreateAnswer>;
  /** The trade, or null when the provider never saw it. */
  query(merchant: string, outTradeNo: string): Promise<SimTrade | null>;
  /** Closes an unpaid trade or refunds a paid one in full. */
  cancel(merchant: string, outTradeNo: string, payType: SimPayType): Promise<SimCancelAnswer>;
  /** Closes an unpaid trade; a paid one stays paid. Answers the trade as it then is. */
  close(merchant: string, outTradeNo: string, payType: SimPayType): Promise<SimTrade>;
  refund(input: SimRefundRequest): Promise<SimRefundAnswer>;
  /**
   * The day's trade bill in the provider's file format (Alipay's ZIP for alipay, WeChat's CSV otherwise: unionpay
   * and elecny, which have no public bill format the simulator could copy).
   */
  billFile(merchant: string, payType: SimPayType, date: string): Promise<Buffer>;
}
