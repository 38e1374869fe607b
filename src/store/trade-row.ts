import type { NewTrade, Trade } from './schema.js';
import { ZERO_FEN } from '../domain/money.js';

/** What every new trade is given by the use case that makes it; the rest of the row has its default. */
type TradeIdentity =
  | 'trade_no'
  | 'app_id'
  | 'out_trade_no'
  | 'kind'
  | 'category'
  | 'order_type'
  | 'total_fen'
  | 'subject'
  | 'fingerprint'
  | 'created_at'
  | 'expires_at';

export type TradeRowFields = Pick<NewTrade, TradeIdentity> & Partial<Omit<NewTrade, TradeIdentity>>;

/**
 * A new trade as it is born: unpaid (WAIT_BUYER_PAY), at no channel yet, with nothing paid, closed, leased or
 * attached. The same values the table's defaults give (migrations 001, 002), written out so that every insert has
 * one shape. Columns that only later state changes set (refund_reserved_fen, refunded_fen, job_attempts,
 * insurance_state, settlement_no, insurance_refunded_fen) are left to the table.
 */
const TRADE_DEFAULTS = {
  status: 'WAIT_BUYER_PAY',
  pay_type: null,
  channel: null,
  body: null,
  operator_id: null,
  terminal_id: null,
  hospital_id: null,
  patient_name: null,
  inhospital_no: null,
  tel: null,
  trade_detail: null,
  timeout_express: null,
  channel_trade_no: null,
  code_url: null,
  channel_code_url: null,
  cashier_token: null,
  buyer_logon_id: null,
  buyer_user_id: null,
  cancel_action: null,
  paid_at: null,
  closed_at: null,
  lease_until: null,
  lease_owner: null,
  notify_url: null,
  return_url: null,
  extra: null,
  insurance_fen: ZERO_FEN,
  reduced_fen: ZERO_FEN,
} as const satisfies Partial<NewTrade>;

/**
 * The row for a new trade: the fields given (an undefined one keeps its default) over the defaults above;
 * updated_at is created_at unless given.
 */
export function newTradeRow(fields: TradeRowFields): NewTrade {
  const given = Object.fromEntries(
    Object.entries(fields).filter(([, v]) => v !== undefined),
  ) as TradeRowFields;
  return { ...TRADE_DEFAULTS, updated_at: fields.created_at, ...given };
}

/** What the HIS sent with the trade (sign_type, disable_pay_channels, openid, ...): its stored extra, read. */
export function tradeExtra(trade: Pick<Trade, 'extra'>): Record<string, string> {
  try {
    return trade.extra ? (JSON.parse(trade.extra) as Record<string, string>) : {};
  } catch {
    return {};
  }
}

/** The keys of a row type whose values are timestamps (Date, or Date | null). */
type TimestampKeys<T> = { [K in keyof T]-?: Date extends NonNullable<T[K]> ? K : never }[keyof T];

/** The timestamp columns of a trade: read back from JSON text as Dates. */
const TRADE_TIMESTAMPS = [
  'created_at',
  'updated_at',
  'expires_at',
  'paid_at',
  'closed_at',
  'lease_until',
] as const satisfies ReadonlyArray<TimestampKeys<Trade>>;
// Every timestamp column is listed: a new one that is not fails to compile here.
const everyTimestampListed: [Exclude<TimestampKeys<Trade>, (typeof TRADE_TIMESTAMPS)[number]>] extends [never]
  ? true
  : never = true;
void everyTimestampListed;

/**
 * A trade row read as one JSON text (`to_json(trades.*)::text`, see TradeRepository.byOutTradeNo): the same
 * values the driver gives for the row's columns — text, integers (bigint included, refused beyond 2^53 as
 * the store's bigint parser refuses them), booleans, null — with the timestamps made Dates. One column to
 * describe and decode instead of every column of the table: the driver's per-column work is most of the cost
 * of reading a trade.
 */
export function tradeFromJson(text: string): Trade {
  const row = JSON.parse(text) as Record<string, unknown>;
  for (const k in row) {
    const v = row[k];
    if (typeof v === 'number' && !Number.isSafeInteger(v))
      throw new RangeError(`trade ${k}: number out of safe integer range: ${String(v)}`);
  }
  for (const k of TRADE_TIMESTAMPS) {
    const v = row[k];
    if (typeof v !== 'string') continue;
    const d = new Date(v);
    if (Number.isNaN(d.getTime())) throw new RangeError(`trade ${k}: unreadable timestamp ${v}`);
    row[k] = d;
  }
  return row as unknown as Trade;
}
