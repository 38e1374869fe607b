/**
 * Finance day reports (日报 / 日结): one business day's payments and refunds, totalled overall, per channel (pay
 * type), per business category and per terminal + operator (the cashier's daily cash-up), with the cash and the
 * medical-insurance parts apart, plus the day's reconciliation status and its differences.
 *
 * The totals are computed by the database (one GROUP BY GROUPING SETS query over the day's movements), never by
 * loading the day's rows into JS: a day of 100,000 trades is one aggregate query. Amounts are integer fen.
 *
 * What counts, for a business day [businessDayStart(date, cutoff), +24 h):
 *  - a **payment**: a trade (not 'void') paid in the day (paid_at), whose status is TRADE_SUCCESS,
 *    TRADE_FINISHED or TRADE_CLOSED — a trade paid and later refunded or cancelled still counts as a payment on
 *    the day it was paid. Its amount is total_fen, split into the insurance part (insurance_fen) and the cash
 *    part (total_fen − insurance_fen). reduced_fen (the hospital's reduction, sent with a mixed payment) is not
 *    part of total_fen: it is money nobody paid, shown apart for information and in no total;
 *  - a **refund**: a refunds row with status SUCCESS finished in the day (finished_at, or updated_at if a row
 *    lacks it, as the matcher does). kind 'refund' and 'cancel' are cash returned through the channel; kind
 *    'insurance' is the insurance part refunded through the national process, reported under insurance;
 *  - an **insurance reversal**: a paid mixed trade that was cancelled has its insurance settlement undone by the
 *    expirer job (insurance_state REVERSED) without a refunds row. It counts as one refund of the insurance part
 *    not already refunded by 'insurance' rows, on the day the trade was closed (closed_at).
 *
 * A refund belongs to its trade's channel, category and operator; its terminal is the one named by the refund
 * request, or the payment's when the request named none (cancels and insurance refunds never name one).
 */
import type { App } from '../store/schema.js';
import type { DayAggregateRow } from '../store/reports.js';
import type { ReconcileDeps } from './deps.js';
import { appCategories } from '../store/apps.js';
import { OTHER_CATEGORY } from '../domain/categories.js';
import { PAY_TYPES } from '../domain/trade.js';
import { formatShanghai, isCalendarDate } from '../domain/clock.js';
import { readReconSettings } from './settings.js';
import { businessDayStart, DIFFERENCE_INFO, type Bilingual, type DifferenceCode } from './matcher.js';
import { NotFoundError } from '../domain/errors.js';
import { addFen, fen, subFen, ZERO_FEN, type Fen } from '../domain/money.js';

const DAY_MS = 86_400_000;

/** Shown for a terminal or operator the HIS did not send. */
export const UNFILLED = '(未填)';

/** Display names of the pay types (channels); others are shown as they are. */
export const CHANNEL_LABELS: Readonly<Record<string, string>> = {
  alipay: '支付宝',
  weixin: '微信支付',
  unionpay: '云闪付',
  elecny: '数字人民币',
  dc: '数字货币',
  '': '(未知)',
};

export function channelLabel(payType: string): string {
  return CHANNEL_LABELS[payType] ?? payType;
}

/** Counts and integer-fen amounts of one group. Every amount is `cash + insurance` of the same kind. */
export interface ReportAmounts {
  /** Trades paid in the day. */
  paymentCount: number;
  /** paymentCashFen + paymentInsuranceFen (= the trades' total_fen). */
  paymentFen: Fen;
  /** Paid through the channel (total − insurance part). */
  paymentCashFen: Fen;
  /** The medical-insurance part, settled by the national system. */
  paymentInsuranceFen: Fen;
  /** Refund movements finished in the day (cash refunds, cancels, insurance refunds, insurance reversals). */
  refundCount: number;
  /** refundCashFen + refundInsuranceFen. */
  refundFen: Fen;
  /** Returned through the channel (refunds and cancels). */
  refundCashFen: Fen;
  /** Insurance part refunded through the national process, or reversed after a cancel. */
  refundInsuranceFen: Fen;
  /** paymentFen − refundFen. */
  netFen: Fen;
  /** paymentCashFen − refundCashFen: what the channel's account should have gained on the day. */
  netCashFen: Fen;
  /** paymentInsuranceFen − refundInsuranceFen. */
  netInsuranceFen: Fen;
  /** The hospital's reductions (reduced_fee) on the day's payments: not paid by anyone, in no other amount. */
  reducedFen: Fen;
}

export interface ChannelRow extends ReportAmounts {
  /** alipay, weixin, unionpay, … ('' when a paid trade has none recorded). */
  payType: string;
  /** 支付宝, 微信支付, 云闪付, or the pay type as it is. */
  label: string;
}

export interface CategoryRow extends ReportAmounts {
  /** The order-number prefix (MZ, ZY, ZJMZ, ZHZY, …) or OTHER. */
  category: string;
  /** The app's name for it (门诊, 住院, …); 其他 for OTHER. */
  name: string;
}

/** One line of the cashier's daily cash-up (日结). */
export interface CashierRow extends ReportAmounts {
  /** '' when not given. */
  terminalId: string;
  /** '' when not given. */
  operatorId: string;
  /** terminalId, or "(未填)". */
  terminal: string;
  /** operatorId, or "(未填)". */
  operator: string;
}

/** The day's reconciliation run of one app and pay type (only where a run exists). */
export interface ReconStatusRow {
  appId: string;
  payType: string;
  label: string;
  /** INCOMPLETE: the HIS could not be read, the day was not compared with it (see hisError). */
  status: 'DONE' | 'INCOMPLETE' | 'FAILED';
  matched: number;
  /** Differences found by the run. */
  differences: number;
  /** Of the differences still present, those not resolved (state OPEN). */
  open: number;
  /** The HIS error of the run, if the HIS could not be read. */
  hisError: string | null;
  /** ISO 8601. */
  finishedAt: string;
}

/** A difference still present for the day (open or resolved). */
export interface DifferenceRow {
  id: number;
  appId: string;
  payType: string;
  code: string;
  label: Bilingual;
  action: Bilingual;
  /** payment | refund. */
  kind: string;
  outTradeNo: string;
  outRequestNo: string | null;
  state: 'OPEN' | 'RESOLVED';
  /** What each side says, in fen (only the sides involved). */
  amounts: { platformFen?: Fen; channelFen?: Fen; hisFen?: Fen };
  /** The HIS re-check's suggestion, when there was one. */
  suggestion: Bilingual | null;
  /** ISO 8601, when the movement waited in the pending pool first. */
  pendingSince: string | null;
  resolvedBy: string | null;
  resolvedNote: string | null;
  /** ISO 8601. */
  resolvedAt: string | null;
}

/** A business day's report. Plain JSON (no Date objects): the admin API sends it as it is. */
export interface DayReport {
  /** yyyy-MM-dd, Asia/Shanghai. */
  date: string;
  /** The hour (Asia/Shanghai) the business day starts at: given, or the app's reconciliation setting. */
  cutoffHour: number;
  /** The business day: [from, to), ISO 8601, and the same in Asia/Shanghai 'yyyy-MM-dd HH:mm:ss'. */
  period: { from: string; to: string; fromLocal: string; toLocal: string };
  /** null: all apps together. */
  app: { id: string; name: string } | null;
  /** ISO 8601. */
  generatedAt: string;
  summary: ReportAmounts;
  /** alipay, weixin, unionpay always (zeros included), then any other pay type that has movements. */
  byChannel: ChannelRow[];
  /** The app's categories in its order and OTHER (zeros included), then any other category with movements. */
  byCategory: CategoryRow[];
  /** Terminal + operator pairs with movements, sorted by terminal then operator ("(未填)" last). */
  byCashier: CashierRow[];
  reconciliation: ReconStatusRow[];
  differences: DifferenceRow[];
}

export type AmountKey = keyof ReportAmounts;

/** The amount fields, in the order the exports show them. */
export const AMOUNT_KEYS: readonly AmountKey[] = [
  'paymentCount',
  'paymentFen',
  'paymentCashFen',
  'paymentInsuranceFen',
  'refundCount',
  'refundFen',
  'refundCashFen',
  'refundInsuranceFen',
  'netFen',
  'netCashFen',
  'netInsuranceFen',
  'reducedFen',
];

export class ReportAppNotFoundError extends NotFoundError {
  constructor(readonly appId: string) {
    super(`没有这个应用 / no such app: ${appId}`);
    this.name = 'ReportAppNotFoundError';
  }
}

/** True for a real calendar date written yyyy-MM-dd. */
export const isReportDate = isCalendarDate;

export function zeroAmounts(): ReportAmounts {
  return {
    paymentCount: 0,
    paymentFen: ZERO_FEN,
    paymentCashFen: ZERO_FEN,
    paymentInsuranceFen: ZERO_FEN,
    refundCount: 0,
    refundFen: ZERO_FEN,
    refundCashFen: ZERO_FEN,
    refundInsuranceFen: ZERO_FEN,
    netFen: ZERO_FEN,
    netCashFen: ZERO_FEN,
    netInsuranceFen: ZERO_FEN,
    reducedFen: ZERO_FEN,
  };
}

/** Adds up rows (exactly: integers). */
export function sumAmounts(rows: readonly ReportAmounts[]): ReportAmounts {
  const out = zeroAmounts();
  for (const r of rows) {
    for (const k of AMOUNT_KEYS) {
      if (k === 'paymentCount' || k === 'refundCount') out[k] += r[k];
      else out[k] = addFen(out[k], r[k]);
    }
  }
  return out;
}

function int(v: unknown): number {
  const n = typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : Number(String(v ?? '0'));
  if (!Number.isSafeInteger(n)) throw new RangeError(`not an integer from the database: ${String(v)}`);
  return n;
}

function amountsOf(r: DayAggregateRow): ReportAmounts {
  const paymentCashFen = fen(int(r.payment_cash_fen));
  const paymentInsuranceFen = fen(int(r.payment_insurance_fen));
  const refundCashFen = fen(int(r.refund_cash_fen));
  const refundInsuranceFen = fen(int(r.refund_insurance_fen));
  const paymentFen = addFen(paymentCashFen, paymentInsuranceFen);
  const refundFen = addFen(refundCashFen, refundInsuranceFen);
  return {
    paymentCount: int(r.payment_count),
    paymentFen,
    paymentCashFen,
    paymentInsuranceFen,
    refundCount: int(r.refund_count),
    refundFen,
    refundCashFen,
    refundInsuranceFen,
    netFen: subFen(paymentFen, refundFen),
    netCashFen: subFen(paymentCashFen, refundCashFen),
    netInsuranceFen: subFen(paymentInsuranceFen, refundInsuranceFen),
    reducedFen: fen(int(r.reduced_fen)),
  };
}

/**
 * Builds the report of one business day, for one app or (without appId) all apps together.
 * Throws RangeError for a date that is not yyyy-MM-dd, ReportAppNotFoundError for an unknown app.
 */
export async function buildDayReport(
  deps: Pick<ReconcileDeps, 'reports' | 'reconciliation'>,
  input: { date: string; appId?: string; cutoffHour?: number; now?: Date },
): Promise<DayReport> {
  const { date } = input;
  if (!isReportDate(date)) throw new RangeError(`not a date (yyyy-MM-dd): ${date}`);
  const apps = await deps.reports.apps(input.appId);
  if (input.appId !== undefined && apps.length === 0) throw new ReportAppNotFoundError(input.appId);
  const cutoffHour = input.cutoffHour ?? reportCutoffHour(apps);
  const from = businessDayStart(date, cutoffHour);
  const to = new Date(from.getTime() + DAY_MS);

  // The day's movements totalled by the database: every grouping at once.
  const aggregate = await deps.reports.dayAggregate(from, to, input.appId);

  let summary = zeroAmounts();
  const channels = new Map<string, ReportAmounts>();
  const categories = new Map<string, ReportAmounts>();
  const cashiers: Array<{ terminalId: string; operatorId: string; amounts: ReportAmounts }> = [];
  for (const r of aggregate) {
    const amounts = amountsOf(r);
    if (int(r.g_pay) === 0) channels.set(r.pay_type ?? '', amounts);
    else if (int(r.g_cat) === 0) categories.set(r.category ?? OTHER_CATEGORY, amounts);
    else if (int(r.g_cashier) === 0)
      cashiers.push({ terminalId: r.terminal_id ?? '', operatorId: r.operator_id ?? '', amounts });
    else summary = amounts;
  }

  const byChannel: ChannelRow[] = [
    ...PAY_TYPES,
    ...[...channels.keys()].filter((p) => !(PAY_TYPES as readonly string[]).includes(p)).sort(),
  ].map((payType) => ({
    payType,
    label: channelLabel(payType),
    ...(channels.get(payType) ?? zeroAmounts()),
  }));

  const names = categoryNames(apps);
  const order = [...names.keys()];
  if (!order.includes(OTHER_CATEGORY)) order.push(OTHER_CATEGORY);
  for (const c of [...categories.keys()].sort()) if (!order.includes(c)) order.push(c);
  const byCategory: CategoryRow[] = order.map((category) => ({
    category,
    name: names.get(category) ?? (category === OTHER_CATEGORY ? '其他' : category),
    ...(categories.get(category) ?? zeroAmounts()),
  }));

  const byCashier: CashierRow[] = cashiers
    .sort((a, b) => cashierOrder(a.terminalId, b.terminalId) || cashierOrder(a.operatorId, b.operatorId))
    .map((c) => ({
      terminalId: c.terminalId,
      operatorId: c.operatorId,
      terminal: c.terminalId || UNFILLED,
      operator: c.operatorId || UNFILLED,
      ...c.amounts,
    }));

  const report: DayReport = {
    date,
    cutoffHour,
    period: {
      from: from.toISOString(),
      to: to.toISOString(),
      fromLocal: formatShanghai(from),
      toLocal: formatShanghai(to),
    },
    app: input.appId !== undefined && apps[0] ? { id: apps[0].id, name: apps[0].name } : null,
    generatedAt: (input.now ?? new Date()).toISOString(),
    summary,
    byChannel,
    byCategory,
    byCashier,
    reconciliation: await reconStatus(deps, date, input.appId),
    differences: await presentDifferences(deps, date, input.appId),
  };
  assertTotals(report);
  return report;
}

/**
 * The cut-off hour of the report's business day when none is given: the apps' reconciliation setting
 * (recon_settings.cutoffHour), so a report and a reconciliation of the same date cover the same hours; 0
 * (midnight) when the apps disagree or have none.
 */
export function reportCutoffHour(
  apps: ReadonlyArray<Pick<App, 'id'> & { recon_settings?: string | null }>,
): number {
  const hours = new Set(apps.map((a) => readReconSettings(a.recon_settings).cutoffHour));
  return hours.size === 1 ? ([...hours][0] ?? 0) : 0;
}

/** Every grouping covers every movement once: each must add up to the summary, exactly. */
export function assertTotals(
  report: Pick<DayReport, 'summary' | 'byChannel' | 'byCategory' | 'byCashier'>,
): void {
  for (const [name, rows] of [
    ['byChannel', report.byChannel],
    ['byCategory', report.byCategory],
    ['byCashier', report.byCashier],
  ] as const) {
    const sum = sumAmounts(rows);
    for (const k of AMOUNT_KEYS) {
      if (sum[k] !== report.summary[k])
        throw new Error(`report totals do not add up: ${name}.${k} ${sum[k]} ≠ summary ${report.summary[k]}`);
    }
  }
}

/** Empty ('' = not given) sorts last. */
function cashierOrder(a: string, b: string): number {
  if (a === b) return 0;
  if (a === '') return 1;
  if (b === '') return -1;
  return a < b ? -1 : 1;
}

/** prefix → name, from the apps' categories (platform defaults when an app has none); differing names joined. */
function categoryNames(apps: readonly App[]): Map<string, string> {
  const out = new Map<string, string>();
  const list = apps.length ? apps.flatMap((a) => appCategories(a)) : [];
  for (const c of list) {
    const had = out.get(c.prefix);
    if (had === undefined) out.set(c.prefix, c.name);
    else if (!had.split(' / ').includes(c.name)) out.set(c.prefix, `${had} / ${c.name}`);
  }
  return out;
}

async function reconStatus(
  deps: Pick<ReconcileDeps, 'reconciliation'>,
  date: string,
  appId: string | undefined,
): Promise<ReconStatusRow[]> {
  const [runRows, openRows] = await Promise.all([
    deps.reconciliation.runs(date, appId),
    deps.reconciliation.openCounts(date, appId),
  ]);
  const openOf = new Map(openRows.map((o) => [`${o.app_id}|${o.pay_type}`, int(o.n)]));
  const rank = (p: string) => {
    const i = (PAY_TYPES as readonly string[]).indexOf(p);
    return i < 0 ? PAY_TYPES.length : i;
  };
  return runRows
    .map((r) => ({
      appId: r.app_id,
      payType: r.pay_type,
      label: channelLabel(r.pay_type),
      status: r.status,
      matched: r.matched,
      differences: r.differences,
      open: openOf.get(`${r.app_id}|${r.pay_type}`) ?? 0,
      hisError: r.error,
      finishedAt: r.finished_at.toISOString(),
    }))
    .sort(
      (a, b) =>
        (a.appId < b.appId ? -1 : a.appId > b.appId ? 1 : 0) ||
        rank(a.payType) - rank(b.payType) ||
        (a.payType < b.payType ? -1 : a.payType > b.payType ? 1 : 0),
    );
}

interface StoredDetail {
  label?: Bilingual;
  action?: Bilingual;
  amounts?: { platform?: number; channel?: number; his?: number };
  pendingSince?: string;
  hisCheck?: { suggestion?: Bilingual };
}

function isBilingual(v: unknown): v is Bilingual {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as Bilingual).zh === 'string' &&
    typeof (v as Bilingual).en === 'string'
  );
}

function fenOrUndefined(v: unknown): Fen | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) ? fen(v) : undefined;
}

async function presentDifferences(
  deps: Pick<ReconcileDeps, 'reconciliation'>,
  date: string,
  appId: string | undefined,
): Promise<DifferenceRow[]> {
  // In the order they were found (id), as the finance page numbers them.
  const rows = await deps.reconciliation.differences({
    date,
    ...(appId !== undefined ? { appId } : {}),
    present: true,
  });
  return rows.map((r) => {
    let detail: StoredDetail = {};
    try {
      const parsed: unknown = JSON.parse(r.detail);
      if (typeof parsed === 'object' && parsed !== null) detail = parsed as StoredDetail;
    } catch {
      detail = {};
    }
    const info = DIFFERENCE_INFO[r.code as DifferenceCode] as
      (typeof DIFFERENCE_INFO)[DifferenceCode] | undefined;
    const amounts: DifferenceRow['amounts'] = {};
    const platformFen = fenOrUndefined(detail.amounts?.platform);
    const channelFen = fenOrUndefined(detail.amounts?.channel);
    const hisFen = fenOrUndefined(detail.amounts?.his);
    if (platformFen !== undefined) amounts.platformFen = platformFen;
    if (channelFen !== undefined) amounts.channelFen = channelFen;
    if (hisFen !== undefined) amounts.hisFen = hisFen;
    const suggestion = detail.hisCheck?.suggestion;
    return {
      id: r.id,
      appId: r.app_id,
      payType: r.pay_type,
      code: r.code,
      label: isBilingual(detail.label) ? detail.label : (info?.label ?? { zh: r.code, en: r.code }),
      action: isBilingual(detail.action) ? detail.action : (info?.action ?? { zh: '', en: '' }),
      kind: r.kind,
      outTradeNo: r.out_trade_no,
      outRequestNo: r.out_request_no,
      state: r.state,
      amounts,
      suggestion: isBilingual(suggestion) ? suggestion : null,
      pendingSince: typeof detail.pendingSince === 'string' ? detail.pendingSince : null,
      resolvedBy: r.resolved_by,
      resolvedNote: r.resolved_note,
      resolvedAt: r.resolved_at ? r.resolved_at.toISOString() : null,
    };
  });
}
