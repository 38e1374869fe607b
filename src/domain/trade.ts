/** Trade states, as in the spec (they are Alipay's). */
export const TRADE_STATUSES = ['WAIT_BUYER_PAY', 'TRADE_SUCCESS', 'TRADE_CLOSED', 'TRADE_FINISHED'] as const;
export type TradeStatus = (typeof TRADE_STATUSES)[number];

/**
 * Allowed transitions. Nothing leaves TRADE_CLOSED or TRADE_FINISHED.
 * WAIT_BUYER_PAY -> TRADE_SUCCESS | TRADE_CLOSED; TRADE_SUCCESS -> TRADE_CLOSED (full refund) | TRADE_FINISHED.
 */
export const TRANSITIONS: Readonly<Record<TradeStatus, readonly TradeStatus[]>> = {
  WAIT_BUYER_PAY: ['TRADE_SUCCESS', 'TRADE_CLOSED'],
  TRADE_SUCCESS: ['TRADE_CLOSED', 'TRADE_FINISHED'],
  TRADE_CLOSED: [],
  TRADE_FINISHED: [],
};

export function canTransition(from: TradeStatus, to: TradeStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

export const PAY_TYPES = ['alipay', 'weixin', 'unionpay'] as const;
export type PayType = (typeof PAY_TYPES)[number];

/** The spec writes weixin/WeiXin/alipay/Alipay/unionpay: pay types are case-insensitive. */
export function parsePayType(text: string): PayType | null {
  const lower = text.toLowerCase();
  return (PAY_TYPES as readonly string[]).includes(lower) ? (lower as PayType) : null;
}

/**
 * The channel of a payment code, from its prefix (see PROTOCOLS.md):
 * Alipay 25–30 (16–24 digits), WeChat 10–15 (18 digits), UnionPay QuickPass 62.
 */
export function payTypeFromAuthCode(authCode: string): PayType | null {
  if (!/^[0-9]+$/.test(authCode)) return null;
  const prefix = Number(authCode.slice(0, 2));
  if (prefix >= 25 && prefix <= 30 && authCode.length >= 16 && authCode.length <= 24) return 'alipay';
  if (prefix >= 10 && prefix <= 15 && authCode.length === 18) return 'weixin';
  if (prefix === 62) return 'unionpay';
  return null;
}

export const ORDER_TYPES = [
  'APPOINTMENT',
  'TREATMENT',
  'HOSPITALIZATION',
  'ONLINE_CONSULTATION',
  'NUCLEIC_ACID_TEST',
  'BODY_TEST',
  'SCAN_TO_ORDER',
  'COMMERCIAL_OTHERS',
] as const;
export type OrderType = (typeof ORDER_TYPES)[number];

/**
 * An OrderType as HIS write it: one of the names of the spec (any letter case), or its position 1–8 in the
 * spec's list (its lc.trade.h5.pay example sends "1"). Every door reads it so.
 */
export function parseOrderType(text: string): OrderType | null {
  if (/^[1-8]$/.test(text)) return ORDER_TYPES[Number(text) - 1] ?? null;
  const upper = text.toUpperCase();
  return (ORDER_TYPES as readonly string[]).includes(upper) ? (upper as OrderType) : null;
}

export type TradeKind = 'barcode' | 'qrcode' | 'h5';

/**
 * The request number of the refund record made when a cancel reverses a paid trade. '#' is not allowed in a
 * HIS's OutRequestNo, so it can never collide with one.
 */
export const CANCEL_REQUEST_NO = '#CANCEL';
