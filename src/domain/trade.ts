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

export const PAY_TYPES = ['alipay', 'weixin', 'unionpay', 'elecny'] as const;
export type PayType = (typeof PAY_TYPES)[number];

/** How pages, reports and messages name each pay type. `elecny` is the spec's name for e-CNY (数字人民币). */
export const PAY_TYPE_NAMES: Readonly<Record<PayType, { zh: string; en: string }>> = {
  alipay: { zh: '支付宝', en: 'Alipay' },
  weixin: { zh: '微信支付', en: 'WeChat Pay' },
  unionpay: { zh: '云闪付', en: 'UnionPay' },
  elecny: { zh: '数字人民币', en: 'e-CNY' },
};

/** The spec writes weixin/WeiXin/alipay/Alipay/unionpay/elecny: pay types are case-insensitive. */
export function parsePayType(text: string): PayType | null {
  const lower = text.toLowerCase();
  return (PAY_TYPES as readonly string[]).includes(lower) ? (lower as PayType) : null;
}

/**
 * Pay types the spec names that hospay knows but cannot take, each with the reason a HIS is told
 * (docs/channels/eshimin.md): refused with PAY_TYPE_NOT_SUPPORTED, never as an unknown value.
 */
export const UNSUPPORTED_PAY_TYPES: Readonly<Record<string, { zh: string; en: string }>> = {
  eshimin: {
    zh: '随申办（上海）医保支付没有公开的接口协议，本平台不支持；请改用 alipay、weixin、unionpay 或 elecny',
    en: 'Shanghai eshimin (随申办) medical-insurance payment has no public protocol, so hospay does not support it; use alipay, weixin, unionpay or elecny',
  },
};

/** The reason a pay type the spec names is not supported, or null (any letter case). */
export function unsupportedPayType(text: string): { payType: string; zh: string; en: string } | null {
  const lower = text.toLowerCase();
  const r = Object.hasOwn(UNSUPPORTED_PAY_TYPES, lower) ? UNSUPPORTED_PAY_TYPES[lower] : undefined;
  return r ? { payType: lower, ...r } : null;
}

/**
 * The channel of a payment code, from its prefix (see PROTOCOLS.md and docs/channels/ecny.md):
 * Alipay 25–30 (16–24 digits), WeChat 10–15 (18 digits), UnionPay QuickPass 62, e-CNY 01 (19 digits).
 */
export function payTypeFromAuthCode(authCode: string): PayType | null {
  if (!/^[0-9]+$/.test(authCode)) return null;
  const prefix = Number(authCode.slice(0, 2));
  if (prefix >= 25 && prefix <= 30 && authCode.length >= 16 && authCode.length <= 24) return 'alipay';
  if (prefix >= 10 && prefix <= 15 && authCode.length === 18) return 'weixin';
  if (prefix === 62) return 'unionpay';
  // e-CNY (数字人民币) wallet payment codes: 19 digits starting with "01" (an operating bank's published sample,
  // 0100320229316139647; acquirers' code-routing rules: docs/channels/ecny.md).
  if (authCode.startsWith('01') && authCode.length === 19) return 'elecny';
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
