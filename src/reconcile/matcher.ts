/**
 * The reconciliation matcher: one business day, one pay type, three ledgers.
 *
 * Pure: no I/O, no clock. The caller loads the platform's movements, the channel's bill lines, the HIS's
 * records (when a HIS is configured) and yesterday's pending pool, and stores what comes back.
 *
 * Two comparisons are made:
 *  - platform ↔ channel: payments by out_trade_no; refunds by out_request_no, or by out_trade_no + amount
 *    when a bill line carries no request number;
 *  - money ↔ HIS: the platform's movements (plus the channel's movements the platform does not have) against
 *    the HIS's records, by out_trade_no and kind (HIS status PAID = payment, REFUNDED = refund).
 *
 * Amounts are integer fen; nothing here multiplies by a float.
 */
import { parseShanghai } from './his/his-xml.js';
import type { BillLine } from '../domain/bill.js';
import type { HisTradeRecord } from './his/his-client.js';
import { addFen, fen, subFen, ZERO_FEN, type Fen } from '../domain/money.js';
import type { PayType } from '../domain/trade.js';
import type { Refund, Trade } from '../store/schema.js';

const DAY_MS = 24 * 3600 * 1000;
const SHANGHAI_OFFSET_MS = 8 * 3600 * 1000;

export type MovementKind = 'payment' | 'refund';
export type Side = 'platform' | 'channel' | 'his';
/** Which comparison a pending entry is waiting in. */
export type Pair = 'channel' | 'his';

/** One money movement as the platform records it. */
export interface PlatformEntry {
  kind: MovementKind;
  outTradeNo: string;
  /** Refunds: our out_request_no. */
  outRequestNo?: string;
  /** The channel's trade number ('' when the platform never learnt it). */
  channelTradeNo: string;
  /** hospay's trade_no. */
  platformTradeNo: string;
  /** Payments: the cash part (total − insurance); refunds: the amount refunded. Positive. */
  amountFen: Fen;
  /** paid_at for payments, finished_at for refunds. */
  time: Date;
  /** Business category (MZ, ZY, ZJMZ, ZHZY, OTHER). */
  category: string;
  /**
   * The store's status: a trade's (TRADE_SUCCESS, TRADE_FINISHED, TRADE_CLOSED) for payments, a refund's
   * (SUCCESS) for refunds. Other statuses (WAIT_BUYER_PAY, TRADE_CLOSED_UNPAID, PROCESSING, FAILED) mean "no
   * money moved as far as the platform knows" (unsettled): such entries are never PLATFORM_ONLY, not in the
   * totals and not compared with the HIS, but a channel line for them is a STATUS_MISMATCH instead of
   * CHANNEL_ONLY.
   */
  status: string;
}

/** A movement missing on one side of a comparison, carried to the next days. Store it as it is. */
export interface PendingEntry {
  pair: Pair;
  /** The side that has the movement (the other side of `pair` does not, yet). */
  side: Side;
  kind: MovementKind;
  outTradeNo: string;
  outRequestNo?: string;
  channelTradeNo: string;
  amountFen: Fen;
  /** Channel lines: the fee; HIS records: unused. */
  feeFen?: Fen;
  payType?: PayType;
  time: Date;
  category?: string;
  /** HIS records: PAID | REFUNDED. Platform entries: the store status. */
  status?: string;
  /** The start of the business day on which it first went pending. */
  sinceDayStart: Date;
}

export type DifferenceCode =
  | 'CHANNEL_ONLY'
  | 'PLATFORM_ONLY'
  | 'HIS_MISSING'
  | 'HIS_ONLY'
  | 'AMOUNT_MISMATCH'
  | 'STATUS_MISMATCH'
  | 'DUPLICATE'
  | 'FEE_MISMATCH';

export interface Bilingual {
  zh: string;
  en: string;
}

export const DIFFERENCE_INFO: Readonly<Record<DifferenceCode, { label: Bilingual; action: Bilingual }>> = {
  CHANNEL_ONLY: {
    label: { zh: '漏单（渠道有、平台无）', en: 'Missing on the platform (channel only)' },
    action: {
      zh: '向渠道查询该交易并补录平台记录；如确属误收，原路退款',
      en: 'Query the channel and record the movement on the platform; refund it if it was taken by mistake',
    },
  },
  PLATFORM_ONLY: {
    label: { zh: '平台有、渠道无', en: 'Missing at the channel (platform only)' },
    action: {
      zh: '向渠道查询交易状态；渠道确无此笔则更正平台记录',
      en: 'Query the channel; if it has no such movement, correct the platform record',
    },
  },
  HIS_MISSING: {
    label: { zh: '长款（已收款，HIS无记录）', en: 'Overage: money taken, no HIS record' },
    action: {
      zh: '联系HIS补写缴费记录，或原路退款给患者',
      en: 'Ask the HIS to write the payment back, or refund the patient',
    },
  },
  HIS_ONLY: {
    label: {
      zh: '短款（HIS有记录，渠道未收款）',
      en: 'Shortage: HIS records a payment the channel does not have',
    },
    action: {
      zh: '核实患者是否实际付款；未付款则由HIS冲销该笔记录',
      en: 'Check whether the patient really paid; if not, have the HIS reverse the record',
    },
  },
  AMOUNT_MISMATCH: {
    label: { zh: '金额不符', en: 'Amount mismatch' },
    action: {
      zh: '核对各方金额，以渠道实收为准更正',
      en: 'Compare the amounts and correct against what the channel actually moved',
    },
  },
  STATUS_MISMATCH: {
    label: { zh: '状态不符', en: 'Status mismatch' },
    action: {
      zh: '核对退款/支付状态，同步HIS或平台记录',
      en: 'Check the payment/refund state and bring the HIS or platform record in line',
    },
  },
  DUPLICATE: {
    label: { zh: '重复记录', en: 'Duplicate' },
    action: {
      zh: '核实是否重复收款或重复记账；重复收款应退款',
      en: 'Check for a double charge or a double entry; refund a double charge',
    },
  },
  FEE_MISMATCH: {
    label: { zh: '手续费不符', en: 'Fee mismatch' },
    action: {
      zh: '核对渠道费率，向渠道申请更正',
      en: 'Check the channel fee rate and ask the channel to correct it',
    },
  },
};

const CODE_ORDER: readonly DifferenceCode[] = [
  'CHANNEL_ONLY',
  'PLATFORM_ONLY',
  'HIS_MISSING',
  'HIS_ONLY',
  'AMOUNT_MISMATCH',
  'STATUS_MISMATCH',
  'DUPLICATE',
  'FEE_MISMATCH',
];

export interface Difference {
  code: DifferenceCode;
  label: Bilingual;
  action: Bilingual;
  kind: MovementKind;
  outTradeNo: string;
  outRequestNo?: string;
  channelTradeNo?: string;
  /** DUPLICATE: the side that lists it twice. Otherwise the side that has it (for *_ONLY / HIS_MISSING). */
  side?: Side;
  /** What each side says (only the sides involved). */
  amounts: Partial<Record<Side, Fen>>;
  /** FEE_MISMATCH. */
  fee?: { expectedFen: Fen; actualFen: Fen };
  /** HIS_ONLY / STATUS_MISMATCH: statuses as the sides have them. */
  statuses?: Partial<Record<Side, string>>;
  time: Date;
  /** Set when the movement waited in the pending pool before becoming a difference. */
  pendingSince?: Date;
}

export interface CountFen {
  count: number;
  fen: Fen;
}

export interface SideTotals {
  payment: CountFen;
  refund: CountFen;
}

export interface MatchInput {
  platform: readonly PlatformEntry[];
  channel: readonly BillLine[];
  /** Absent (undefined) when no HIS is configured: the HIS comparison is skipped. */
  his?: readonly HisTradeRecord[];
  pending?: readonly PendingEntry[];
  /** Start of the business day (see businessDayStart). The day is [dayStart, dayStart + 24 h). */
  dayStart: Date;
  /** Days a movement may wait in the pending pool before it becomes a difference. Default 3. */
  pendingDays?: number;
  /** How close to either end of the day a one-sided movement is held as pending. Default 30 minutes. */
  nearCutoffMs?: number;
  /** Expected channel fee per pay type, in basis points of the amount (e.g. 60 = 0.6%). Payments only. */
  feeRateBps?: Partial<Record<PayType, number>>;
  /** Allowed |actual − expected| fee difference in fen. Default 0. */
  feeToleranceFen?: Fen;
}

export interface MatchResult {
  /** Movements matched without any difference (per comparison: a payment matched on both comparisons counts 2). */
  matched: number;
  differences: Difference[];
  pending: PendingEntry[];
  totals: { platform: SideTotals; channel: SideTotals & { feeFen: Fen }; his?: SideTotals };
}

/** The start of the business day `date` ('yyyy-MM-dd', Asia/Shanghai) with a cut-off hour (0–23). */
export function businessDayStart(date: string, cutoffHour = 0): Date {
  if (!Number.isInteger(cutoffHour) || cutoffHour < 0 || cutoffHour > 23) {
    throw new RangeError('cutoffHour must be an integer 0–23');
  }
  const midnight = parseShanghai(`${date} 00:00:00`);
  if (!midnight) throw new RangeError(`not a date: ${date}`);
  return new Date(midnight.getTime() + cutoffHour * 3600 * 1000);
}

/** The business day (yyyy-MM-dd, Asia/Shanghai) a moment belongs to, with a cut-off hour. */
export function businessDateOf(time: Date, cutoffHour = 0): string {
  return new Date(time.getTime() + SHANGHAI_OFFSET_MS - cutoffHour * 3600 * 1000).toISOString().slice(0, 10);
}

const PAID_TRADE_STATUSES: ReadonlySet<string> = new Set(['TRADE_SUCCESS', 'TRADE_FINISHED', 'TRADE_CLOSED']);

/**
 * The platform status of a payment entry for a trade closed without ever being paid (TRADE_CLOSED with no
 * paid_at): hospay's word, not the spec's, so that it is never taken for a closed *paid* trade.
 */
export const CLOSED_UNPAID = 'TRADE_CLOSED_UNPAID';

/** True when the platform entry is money that moved (see PlatformEntry.status). */
export function isSettled(e: Pick<PlatformEntry, 'kind' | 'status'>): boolean {
  return e.kind === 'payment' ? PAID_TRADE_STATUSES.has(e.status) : e.status === 'SUCCESS';
}

export type TradeRow = Pick<
  Trade,
  | 'id'
  | 'trade_no'
  | 'out_trade_no'
  | 'channel_trade_no'
  | 'status'
  | 'total_fen'
  | 'insurance_fen'
  | 'paid_at'
  | 'category'
  | 'kind'
> & {
  /** Needed for unsettled (unpaid) trades only: their entry's time. */
  created_at?: Date;
};
export type RefundRow = Pick<
  Refund,
  'trade_id' | 'out_request_no' | 'kind' | 'amount_fen' | 'status' | 'finished_at' | 'updated_at'
> & {
  /** Needed for unsettled (PROCESSING) refunds only: their entry's time (when it was requested). */
  created_at?: Date;
};

/**
 * Platform entries from store rows: a payment (the cash part) per paid, non-void trade with a cash part, and
 * a refund per SUCCESS refund of kind refund/cancel. Insurance refunds move no channel money and are left out.
 * Refunds whose trade is not among `trades` are left out too: pass every trade the refunds refer to.
 * Filtering to the day and the pay type is the caller's business.
 *
 * With `unsettled`, the rows that moved no money as far as the platform knows are entries too, with their
 * status (see PlatformEntry.status): unpaid trades (WAIT_BUYER_PAY, or TRADE_CLOSED_UNPAID for a trade closed
 * unpaid) at their creation time, and PROCESSING / FAILED refunds at their finish time, else their request
 * time. The matcher reports a channel movement for one of them as a STATUS_MISMATCH and nothing otherwise.
 */
export function platformEntriesFrom(
  trades: readonly TradeRow[],
  refunds: readonly RefundRow[],
  opts: { unsettled?: boolean } = {},
): PlatformEntry[] {
  const out: PlatformEntry[] = [];
  const byId = new Map<number, TradeRow>();
  for (const t of trades) {
    byId.set(t.id, t);
    if (t.kind === 'void') continue;
    const cash = subFen(t.total_fen, t.insurance_fen);
    if (cash <= 0) continue;
    let time: Date;
    let status: string = t.status;
    if (t.paid_at !== null) time = t.paid_at;
    else if (opts.unsettled && t.created_at) {
      time = t.created_at;
      if (t.status === 'TRADE_CLOSED') status = CLOSED_UNPAID;
      else if (t.status !== 'WAIT_BUYER_PAY') continue;
    } else continue;
    out.push({
      kind: 'payment',
      outTradeNo: t.out_trade_no,
      channelTradeNo: t.channel_trade_no ?? '',
      platformTradeNo: t.trade_no,
      amountFen: cash,
      time,
      category: t.category,
      status,
    });
  }
  for (const r of refunds) {
    if (r.kind === 'insurance') continue;
    if (r.status !== 'SUCCESS' && !opts.unsettled) continue;
    const t = byId.get(r.trade_id);
    if (!t || t.kind === 'void') continue;
    out.push({
      kind: 'refund',
      outTradeNo: t.out_trade_no,
      outRequestNo: r.out_request_no,
      channelTradeNo: t.channel_trade_no ?? '',
      platformTradeNo: t.trade_no,
      amountFen: r.amount_fen,
      time: r.finished_at ?? (r.status === 'SUCCESS' ? r.updated_at : (r.created_at ?? r.updated_at)),
      category: t.category,
      status: r.status,
    });
  }
  return out;
}

export const SUMMARY_CATEGORIES = ['MZ', 'ZY', 'ZJMZ', 'ZHZY', 'OTHER'] as const;
export type SummaryCategory = (typeof SUMMARY_CATEGORIES)[number];

export interface CategorySummary {
  category: SummaryCategory;
  payment: CountFen;
  refund: CountFen;
  /** payment.fen − refund.fen. */
  netFen: Fen;
}

/** Per business category (unknown categories count as OTHER), in the order MZ, ZY, ZJMZ, ZHZY, OTHER. Settled entries only. */
export function summarizeByCategory(entries: readonly PlatformEntry[]): CategorySummary[] {
  const rows = new Map<SummaryCategory, CategorySummary>(
    SUMMARY_CATEGORIES.map((c) => [c, { category: c, payment: zero(), refund: zero(), netFen: ZERO_FEN }]),
  );
  for (const e of entries) {
    if (!isSettled(e)) continue;
    const cat = (SUMMARY_CATEGORIES as readonly string[]).includes(e.category)
      ? (e.category as SummaryCategory)
      : 'OTHER';
    const row = rows.get(cat);
    if (!row) continue;
    row[e.kind].count++;
    row[e.kind].fen = addFen(row[e.kind].fen, e.amountFen);
    row.netFen = e.kind === 'payment' ? addFen(row.netFen, e.amountFen) : subFen(row.netFen, e.amountFen);
  }
  return SUMMARY_CATEGORIES.map((c) => rows.get(c) as CategorySummary);
}

// ---------------------------------------------------------------------------------------------------------------

/** A movement of any side, normalised. */
interface Item {
  side: Side;
  kind: MovementKind;
  outTradeNo: string;
  outRequestNo?: string;
  channelTradeNo: string;
  amountFen: Fen;
  feeFen?: Fen;
  payType?: PayType;
  time: Date;
  category?: string;
  status?: string;
  /** Set on entries carried from the pending pool. */
  sinceDayStart?: Date;
}

function zero(): CountFen {
  return { count: 0, fen: ZERO_FEN };
}

function emptyTotals(): SideTotals {
  return { payment: zero(), refund: zero() };
}

function add(t: SideTotals, kind: MovementKind, amount: Fen): void {
  t[kind].count++;
  t[kind].fen = addFen(t[kind].fen, amount);
}

function billTime(text: string): Date {
  const d = parseShanghai(text);
  if (!d) throw new RangeError(`bill line time is not yyyy-MM-dd HH:mm:ss: ${text}`);
  return d;
}

function fromPlatform(e: PlatformEntry): Item {
  return {
    side: 'platform',
    kind: e.kind,
    outTradeNo: e.outTradeNo,
    ...(e.outRequestNo === undefined ? {} : { outRequestNo: e.outRequestNo }),
    channelTradeNo: e.channelTradeNo,
    amountFen: e.amountFen,
    time: e.time,
    category: e.category,
    status: e.status,
  };
}

function fromChannel(l: BillLine): Item {
  return {
    side: 'channel',
    kind: l.kind,
    outTradeNo: l.outTradeNo,
    ...(l.outRequestNo ? { outRequestNo: l.outRequestNo } : {}),
    channelTradeNo: l.channelTradeNo,
    amountFen: l.amountFen,
    feeFen: l.feeFen,
    payType: l.payType,
    time: billTime(l.time),
  };
}

function fromHis(r: HisTradeRecord): Item {
  return {
    side: 'his',
    kind: r.status === 'PAID' ? 'payment' : 'refund',
    outTradeNo: r.outTradeNo,
    channelTradeNo: r.tradeNo,
    amountFen: r.amountFen,
    time: r.time,
    status: r.status,
  };
}

function fromPending(p: PendingEntry): Item {
  const { pair: _pair, ...rest } = p;
  return { ...rest };
}

function toPending(pair: Pair, item: Item, dayStart: Date): PendingEntry {
  const p: PendingEntry = {
    pair,
    side: item.side,
    kind: item.kind,
    outTradeNo: item.outTradeNo,
    channelTradeNo: item.channelTradeNo,
    amountFen: item.amountFen,
    time: item.time,
    sinceDayStart: item.sinceDayStart ?? dayStart,
  };
  if (item.outRequestNo !== undefined) p.outRequestNo = item.outRequestNo;
  if (item.feeFen !== undefined) p.feeFen = item.feeFen;
  if (item.payType !== undefined) p.payType = item.payType;
  if (item.category !== undefined) p.category = item.category;
  if (item.status !== undefined) p.status = item.status;
  return p;
}

interface Ctx {
  dayStart: Date;
  dayEnd: Date;
  pendingDays: number;
  nearCutoffMs: number;
  differences: Difference[];
  pending: PendingEntry[];
  matched: number;
}

function diff(code: DifferenceCode, item: Item, extra: Partial<Difference> = {}): Difference {
  const d: Difference = {
    code,
    ...DIFFERENCE_INFO[code],
    kind: item.kind,
    outTradeNo: item.outTradeNo,
    amounts: {},
    time: item.time,
  };
  if (item.outRequestNo !== undefined) d.outRequestNo = item.outRequestNo;
  if (item.channelTradeNo !== '') d.channelTradeNo = item.channelTradeNo;
  if (item.sinceDayStart !== undefined) d.pendingSince = item.sinceDayStart;
  return { ...d, ...extra };
}

/**
 * A one-sided movement: carried entries wait until pendingDays have passed; today's entries near either end
 * of the day (or outside it) wait in the pool; anything else becomes the difference `make` builds.
 */
function oneSided(ctx: Ctx, pair: Pair, item: Item, make: () => Difference): void {
  if (item.sinceDayStart !== undefined) {
    const age = Math.round((ctx.dayStart.getTime() - item.sinceDayStart.getTime()) / DAY_MS);
    if (age < ctx.pendingDays) ctx.pending.push(toPending(pair, item, ctx.dayStart));
    else ctx.differences.push(make());
    return;
  }
  const t = item.time.getTime();
  const near = t - ctx.dayStart.getTime() < ctx.nearCutoffMs || ctx.dayEnd.getTime() - t <= ctx.nearCutoffMs;
  if (near && ctx.pendingDays > 0) ctx.pending.push(toPending(pair, item, ctx.dayStart));
  else ctx.differences.push(make());
}

/** Splits today's items into the first of each key and the repeats (reported as DUPLICATE). */
function dedupe(ctx: Ctx, items: Item[], key: (i: Item) => string | null): Item[] {
  const seen = new Map<string, Item>();
  const out: Item[] = [];
  for (const it of items) {
    const k = key(it);
    if (k === null) {
      out.push(it);
      continue;
    }
    const first = seen.get(k);
    if (first) {
      ctx.differences.push(diff('DUPLICATE', it, { side: it.side, amounts: { [it.side]: it.amountFen } }));
      continue;
    }
    seen.set(k, it);
    out.push(it);
  }
  return out;
}

/** Carried entries first, then today's; within each, by time then numbers (stable and deterministic). */
function ordered(items: Item[]): Item[] {
  return [...items].sort(
    (a, b) =>
      Number(b.sinceDayStart !== undefined) - Number(a.sinceDayStart !== undefined) ||
      a.time.getTime() - b.time.getTime() ||
      cmp(a.outTradeNo, b.outTradeNo) ||
      cmp(a.outRequestNo ?? '', b.outRequestNo ?? '') ||
      a.amountFen - b.amountFen,
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Pops the first candidate for `key`, preferring one with the same amount. */
function take(index: Map<string, Item[]>, key: string, amountFen?: Fen): Item | undefined {
  const list = index.get(key);
  if (!list || list.length === 0) return undefined;
  let i = amountFen === undefined ? 0 : list.findIndex((c) => c.amountFen === amountFen);
  if (i < 0) i = 0;
  const [hit] = list.splice(i, 1);
  return hit;
}

function indexBy(items: Item[], key: (i: Item) => string | null): Map<string, Item[]> {
  const m = new Map<string, Item[]>();
  for (const it of items) {
    const k = key(it);
    if (k === null) continue;
    const list = m.get(k);
    if (list) list.push(it);
    else m.set(k, [it]);
  }
  return m;
}

function removeFrom(index: Map<string, Item[]>, key: string | null, item: Item): void {
  if (key === null) return;
  const list = index.get(key);
  if (!list) return;
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}

const SEP = '\u0000';
const payKey = (i: Item) => (i.kind === 'payment' ? `P${SEP}${i.outTradeNo}` : null);
const refundReqKey = (i: Item) =>
  i.kind === 'refund' && i.outRequestNo ? `R${SEP}${i.outTradeNo}${SEP}${i.outRequestNo}` : null;
const refundAmtKey = (i: Item) => (i.kind === 'refund' ? `A${SEP}${i.outTradeNo}${SEP}${i.amountFen}` : null);
const channelKey = (i: Item) => payKey(i) ?? refundReqKey(i);

function expectedFee(amountFen: Fen, bps: number): Fen {
  // Round half up, in integers.
  return fen(Math.floor((amountFen * bps + 5000) / 10000));
}

interface ChannelMatch {
  /** The channel items the platform does not have (they go to the HIS comparison as money). */
  channelOnly: Item[];
  /** See below. */
  lateForChannel: Set<Item>;
  /** The channel line each matched platform item was matched with (its amount is shown beside HIS differences). */
  channelOf: Map<Item, Item>;
  /**
   * Unsettled platform items the channel moved money for (each already a STATUS_MISMATCH): the HIS comparison
   * lets them take a HIS row of the same amount, so that a HIS that booked the movement is not a second
   * difference, and reports nothing when the HIS has none (the STATUS_MISMATCH says it all).
   */
  unsettledMoved: Item[];
}

/** platform ↔ channel. */
function matchChannel(ctx: Ctx, platform: Item[], channel: Item[], input: MatchInput): ChannelMatch {
  const channelOnly: Item[] = [];
  const channelOf = new Map<Item, Item>();
  const unsettledMoved: Item[] = [];
  // Platform entries matched to a channel line carried from an earlier day: that line already went to the HIS
  // comparison as channel-only, so the entry must not go there again.
  const lateForChannel = new Set<Item>();
  const pIndex = indexBy(platform, channelKey);
  const pAmtIndex = indexBy(platform, refundAmtKey);
  const claim = (p: Item) => {
    removeFrom(pIndex, channelKey(p), p);
    removeFrom(pAmtIndex, refundAmtKey(p), p);
  };
  const matchedP = new Set<Item>();

  for (const c of ordered(channel)) {
    let p: Item | undefined;
    const k = channelKey(c);
    if (k !== null) p = take(pIndex, k, c.amountFen);
    else p = take(pAmtIndex, `A${SEP}${c.outTradeNo}${SEP}${c.amountFen}`);
    if (p) claim(p);
    if (!p) {
      if (c.sinceDayStart === undefined) channelOnly.push(c);
      oneSided(ctx, 'channel', c, () =>
        diff('CHANNEL_ONLY', c, { side: 'channel', amounts: { channel: c.amountFen } }),
      );
      continue;
    }
    matchedP.add(p);
    channelOf.set(p, c);
    if (c.sinceDayStart !== undefined && p.sinceDayStart === undefined) lateForChannel.add(p);
    if (p.status !== undefined && !isSettled({ kind: p.kind, status: p.status })) {
      if (p.sinceDayStart === undefined && c.sinceDayStart === undefined) unsettledMoved.push(p);
      ctx.differences.push(
        diff('STATUS_MISMATCH', c, {
          ...(c.outRequestNo === undefined && p.outRequestNo !== undefined
            ? { outRequestNo: p.outRequestNo }
            : {}),
          amounts: { platform: p.amountFen, channel: c.amountFen },
          statuses: { platform: p.status, channel: 'SUCCESS' },
          ...(p.sinceDayStart ? { pendingSince: p.sinceDayStart } : {}),
        }),
      );
      continue;
    }
    let clean = true;
    if (p.amountFen !== c.amountFen) {
      clean = false;
      ctx.differences.push(
        diff('AMOUNT_MISMATCH', c, { amounts: { platform: p.amountFen, channel: c.amountFen } }),
      );
    }
    const bps = c.payType === undefined ? undefined : input.feeRateBps?.[c.payType];
    if (bps !== undefined && c.kind === 'payment' && c.feeFen !== undefined) {
      const expectedFen = expectedFee(c.amountFen, bps);
      if (Math.abs(expectedFen - c.feeFen) > (input.feeToleranceFen ?? ZERO_FEN)) {
        clean = false;
        ctx.differences.push(
          diff('FEE_MISMATCH', c, {
            amounts: { platform: p.amountFen, channel: c.amountFen },
            fee: { expectedFen, actualFen: c.feeFen },
          }),
        );
      }
    }
    if (clean) ctx.matched++;
  }

  for (const p of ordered(platform)) {
    if (matchedP.has(p)) continue;
    if (p.status !== undefined && !isSettled({ kind: p.kind, status: p.status })) continue; // no money, nothing owed
    oneSided(ctx, 'channel', p, () =>
      diff('PLATFORM_ONLY', p, { side: 'platform', amounts: { platform: p.amountFen } }),
    );
  }
  return { channelOnly, lateForChannel, channelOf, unsettledMoved };
}

/** The key under which one HIS refund row repeats another: same order, same amount, same second. */
const hisRefundRepeatKey = (i: Item) => `${i.outTradeNo}${SEP}${i.amountFen}${SEP}${i.time.getTime()}`;

/**
 * money (platform + channel-only) ↔ HIS. `channelOf` gives the channel line a platform item was matched with
 * (its amount goes beside the difference); `unsettledMoved` are unsettled platform items the channel moved
 * money for (see ChannelMatch).
 */
function matchHis(
  ctx: Ctx,
  money: Item[],
  his: Item[],
  channelOf: ReadonlyMap<Item, Item>,
  unsettledMoved: readonly Item[],
): void {
  const hisPay = indexBy(his, payKey);
  const hisRefund = indexBy(his, (i) => (i.kind === 'refund' ? `R${SEP}${i.outTradeNo}` : null));
  const matchedH = new Set<Item>();
  const unmatched: Item[] = [];
  /** What the money side has: the item's own amount, and the channel's where the platform item matched one. */
  const moneyAmounts = (m: Item): Partial<Record<Side, Fen>> => {
    const c = m.side === 'platform' ? channelOf.get(m) : undefined;
    return { [m.side]: m.amountFen, ...(c ? { channel: c.amountFen } : {}) };
  };
  for (const m of ordered(money)) {
    const h =
      m.kind === 'payment'
        ? take(hisPay, `P${SEP}${m.outTradeNo}`, m.amountFen)
        : take(hisRefund, `R${SEP}${m.outTradeNo}`, m.amountFen);
    if (!h) {
      unmatched.push(m);
      continue;
    }
    matchedH.add(h);
    if (h.amountFen !== m.amountFen) {
      ctx.differences.push(
        diff('AMOUNT_MISMATCH', m, {
          amounts: { ...moneyAmounts(m), his: h.amountFen },
          ...(h.sinceDayStart && !m.sinceDayStart ? { pendingSince: h.sinceDayStart } : {}),
        }),
      );
    } else ctx.matched++;
  }
  // Unsettled items the channel moved money for take a HIS row of exactly their amount, after the settled ones.
  for (const u of ordered([...unsettledMoved])) {
    const index = u.kind === 'payment' ? hisPay : hisRefund;
    const key = u.kind === 'payment' ? `P${SEP}${u.outTradeNo}` : `R${SEP}${u.outTradeNo}`;
    const list = index.get(key);
    const i = list ? list.findIndex((c) => c.amountFen === u.amountFen) : -1;
    if (list && i >= 0) {
      const [h] = list.splice(i, 1);
      if (h) matchedH.add(h);
    }
  }
  // A payment the HIS lists as a refund of the same amount (or the reverse) is one STATUS_MISMATCH, not a
  // missing record on one side and a stray one on the other. Paired only after the exact matches.
  const strayHis = new Map<string, Item[]>();
  for (const h of ordered(his)) {
    if (matchedH.has(h)) continue;
    const key = `${h.kind}${SEP}${h.outTradeNo}${SEP}${h.amountFen}`;
    strayHis.set(key, [...(strayHis.get(key) ?? []), h]);
  }
  for (const m of unmatched) {
    const other = m.kind === 'payment' ? 'refund' : 'payment';
    const h = strayHis.get(`${other}${SEP}${m.outTradeNo}${SEP}${m.amountFen}`)?.shift();
    if (h) {
      matchedH.add(h);
      ctx.differences.push(
        diff('STATUS_MISMATCH', m, {
          amounts: { ...moneyAmounts(m), his: h.amountFen },
          statuses: {
            [m.side]: m.kind === 'payment' ? 'PAID' : 'REFUNDED',
            his: h.kind === 'payment' ? 'PAID' : 'REFUNDED',
          },
        }),
      );
      continue;
    }
    if (m.kind === 'payment') {
      oneSided(ctx, 'his', m, () => diff('HIS_MISSING', m, { side: m.side, amounts: moneyAmounts(m) }));
    } else {
      oneSided(ctx, 'his', m, () =>
        diff('STATUS_MISMATCH', m, {
          side: m.side,
          amounts: moneyAmounts(m),
          statuses: { [m.side]: 'REFUNDED', his: 'PAID' },
        }),
      );
    }
  }
  // Several refunds of one order with the same amount in the same second are real (two equal partial refunds):
  // a HIS refund row repeats another only beyond the number of refunds the money side has for it. So repeats
  // are told apart only now: an unmatched row of today whose (order, amount, second) was matched, or was seen
  // unmatched already, is a DUPLICATE.
  const repeatSeen = new Set<string>();
  for (const h of his)
    if (h.kind === 'refund' && h.sinceDayStart === undefined && matchedH.has(h))
      repeatSeen.add(hisRefundRepeatKey(h));
  for (const h of ordered(his)) {
    if (matchedH.has(h)) continue;
    if (h.kind === 'payment') {
      oneSided(ctx, 'his', h, () =>
        diff('HIS_ONLY', h, { side: 'his', amounts: { his: h.amountFen }, statuses: { his: 'PAID' } }),
      );
      continue;
    }
    if (h.sinceDayStart === undefined) {
      const k = hisRefundRepeatKey(h);
      if (repeatSeen.has(k)) {
        ctx.differences.push(diff('DUPLICATE', h, { side: 'his', amounts: { his: h.amountFen } }));
        continue;
      }
      repeatSeen.add(k);
    }
    oneSided(ctx, 'his', h, () =>
      diff('STATUS_MISMATCH', h, {
        side: 'his',
        amounts: { his: h.amountFen },
        statuses: { his: 'REFUNDED', channel: 'PAID' },
      }),
    );
  }
}

function sortDifferences(ds: Difference[]): Difference[] {
  const sideRank = (s?: Side) => (s === undefined ? 0 : ['platform', 'channel', 'his'].indexOf(s) + 1);
  return ds.sort(
    (a, b) =>
      CODE_ORDER.indexOf(a.code) - CODE_ORDER.indexOf(b.code) ||
      a.time.getTime() - b.time.getTime() ||
      cmp(a.outTradeNo, b.outTradeNo) ||
      cmp(a.kind, b.kind) ||
      cmp(a.outRequestNo ?? '', b.outRequestNo ?? '') ||
      sideRank(a.side) - sideRank(b.side),
  );
}

function sortPending(ps: PendingEntry[]): PendingEntry[] {
  return ps.sort(
    (a, b) =>
      cmp(a.pair, b.pair) ||
      a.time.getTime() - b.time.getTime() ||
      cmp(a.outTradeNo, b.outTradeNo) ||
      cmp(a.kind, b.kind) ||
      cmp(a.outRequestNo ?? '', b.outRequestNo ?? '') ||
      cmp(a.side, b.side) ||
      a.amountFen - b.amountFen,
  );
}

/** Reconciles one business day of one pay type. Pure and deterministic. */
export function matchDay(input: MatchInput): MatchResult {
  const pendingDays = input.pendingDays ?? 3;
  const nearCutoffMs = input.nearCutoffMs ?? 30 * 60 * 1000;
  if (!Number.isInteger(pendingDays) || pendingDays < 0)
    throw new RangeError('pendingDays must be an integer >= 0');
  if (!(nearCutoffMs >= 0)) throw new RangeError('nearCutoffMs must be >= 0');
  const ctx: Ctx = {
    dayStart: input.dayStart,
    dayEnd: new Date(input.dayStart.getTime() + DAY_MS),
    pendingDays,
    nearCutoffMs,
    differences: [],
    pending: [],
    matched: 0,
  };

  // Totals: what each side says today, before any matching (duplicates included: they are in the files).
  const totals: MatchResult['totals'] = {
    platform: emptyTotals(),
    channel: { ...emptyTotals(), feeFen: ZERO_FEN },
  };
  for (const e of input.platform) if (isSettled(e)) add(totals.platform, e.kind, e.amountFen);
  for (const l of input.channel) {
    add(totals.channel, l.kind, l.amountFen);
    totals.channel.feeFen =
      l.kind === 'payment'
        ? addFen(totals.channel.feeFen, l.feeFen)
        : subFen(totals.channel.feeFen, l.feeFen);
  }
  if (input.his) {
    totals.his = emptyTotals();
    for (const r of input.his) add(totals.his, r.status === 'PAID' ? 'payment' : 'refund', r.amountFen);
  }

  const carried = (input.pending ?? []).map((p) => ({ pair: p.pair, item: fromPending(p) }));
  const carriedFor = (pair: Pair, side: Side) =>
    carried.filter((c) => c.pair === pair && c.item.side === side).map((c) => c.item);

  // Today's items, repeats reported and set aside.
  const platformToday = dedupe(ctx, ordered(input.platform.map(fromPlatform)), channelKey);
  const channelToday = dedupe(ctx, ordered(input.channel.map(fromChannel)), channelKey);
  // HIS payments: one per order. HIS refunds: repeats are found while matching (see matchHis).
  const hisToday = input.his ? dedupe(ctx, ordered(input.his.map(fromHis)), payKey) : [];

  const { channelOnly, lateForChannel, channelOf, unsettledMoved } = matchChannel(
    ctx,
    [...carriedFor('channel', 'platform'), ...platformToday],
    [...carriedFor('channel', 'channel'), ...channelToday],
    input,
  );

  if (input.his) {
    const money = [
      ...platformToday.filter(
        (p) => isSettled({ kind: p.kind, status: p.status ?? '' }) && !lateForChannel.has(p),
      ),
      ...channelOnly,
    ];
    matchHis(
      ctx,
      [...carriedFor('his', 'platform'), ...carriedFor('his', 'channel'), ...money],
      [...carriedFor('his', 'his'), ...hisToday],
      channelOf,
      unsettledMoved.filter((p) => !lateForChannel.has(p)),
    );
  } else {
    // No HIS today: keep what was waiting for it as it is.
    for (const c of carried)
      if (c.pair === 'his') ctx.pending.push({ ...toPending('his', c.item, ctx.dayStart) });
  }

  return {
    matched: ctx.matched,
    differences: sortDifferences(ctx.differences),
    pending: sortPending(ctx.pending),
    totals,
  };
}
