import type { App } from '../store/schema.js';
import type { ReconcileDeps } from './deps.js';
import { PAY_TYPES, type PayType } from '../domain/trade.js';
import { HospayError, NotFoundError } from '../domain/errors.js';
import { formatFen, sumFen, ZERO_FEN, type Fen } from '../domain/money.js';
import { HisClient } from './his/his-client.js';
import type { HisTradeRecord } from './his/his-xml.js';
import { readReconSettings } from './settings.js';
import { hisPayTypeOf, parseShanghai } from './his/his-xml.js';
import { formatShanghai, isCalendarDate } from '../domain/clock.js';
import type { BillLine } from '../domain/bill.js';
import type { Channel, ChannelContext } from '../channels/channel.js';
import {
  businessDayStart,
  matchDay,
  platformEntriesFrom,
  type Difference,
  type MatchResult,
  type PendingEntry,
  type PlatformEntry,
} from './matcher.js';

/**
 * A stored run's state: DONE = every side configured was compared; INCOMPLETE = a side could not be read (the
 * HIS: unreachable, timed out, refused, malformed answer, or its token would not open), so the day must be
 * run again; FAILED is reserved for runs that stopped (not stored today: such a day is an app error).
 */
export type RunStatus = 'DONE' | 'INCOMPLETE' | 'FAILED';

export interface DayOutcome {
  payType: PayType;
  /** Why this pay type was not reconciled (not enabled, no bill from the channel), if so. */
  skipped?: string;
  /** The stored run's state (reconciled pay types only). */
  status?: RunStatus;
  matched: number;
  differences: number;
  /** Differences of the day still open (resolutions survive re-runs). */
  open: number;
  pending: number;
  totals?: MatchResult['totals'];
  hisError?: string;
}

/** Where a run is, for a progress bar: `done` of `total` steps of the pay type's stage. */
export interface ReconProgress {
  payType: PayType;
  stage: 'bill' | 'platform' | 'his' | 'match' | 'recheck' | 'save';
  done: number;
  total: number;
}

const DAY_MS = 86_400_000;
/** Unsettled items are taken on the day they were created and on the next day (see platformMovements). */
const UNSETTLED_LOOKBACK_MS = DAY_MS;
/** HIS answers kept as evidence are cut at this many characters per slice. */
const MAX_EVIDENCE_CHARS = 1_000_000;

/** A stable key for a difference, so re-running a day finds it again and keeps its resolution. */
export function differenceKey(d: Difference): string {
  return [d.code, d.kind, d.outTradeNo, d.outRequestNo ?? '', d.side ?? ''].join('|');
}

function revivePending(json: string): PendingEntry[] {
  try {
    const rows = JSON.parse(json) as Array<PendingEntry & { time: string; sinceDayStart: string }>;
    return rows.map((r) => ({ ...r, time: new Date(r.time), sinceDayStart: new Date(r.sinceDayStart) }));
  } catch {
    return [];
  }
}

/** The app's HIS client from its settings (base URL, sealed AccessToken, timeouts), or null without a HIS. */
export function hisClientFor(deps: Pick<ReconcileDeps, 'secrets'>, app: App): HisClient | null {
  if (!app.his_base_url) return null;
  const settings = readReconSettings(app.recon_settings);
  return new HisClient({
    baseUrl: app.his_base_url,
    ...(app.his_token_sealed
      ? { accessToken: deps.secrets.open(app.his_token_sealed, hisTokenContext(app.id)) }
      : {}),
    timeoutMs: settings.hisTimeoutSeconds * 1000,
    retries: settings.hisRetries,
    protocol: settings.hisProtocol,
    soapNamespace: settings.hisSoapNamespace,
  });
}

/** The sealed HIS AccessToken is bound to its app. */
export function hisTokenContext(appId: string): string {
  return `app:${appId}:his_token`;
}

interface Evidence {
  source: 'HIS_TRADE_LIST' | 'CHANNEL_BILL';
  request: unknown;
  records: number;
  raw: string | null;
}

/**
 * Reconciles one business day of one app: for each pay type, the platform's money movements against the
 * channel's bill and (when the app has a HIS) the HIS's trade list. Results replace the day's earlier results;
 * differences keep their resolution state across re-runs; one-sided movements near the cut-off wait in the
 * pending pool, carried from day to day. The app's settings (src/reconcile/settings.ts) give the cut-off hour,
 * the pending days, the HIS slice size and the expected fee rates.
 */
export async function reconcileDay(
  deps: ReconcileDeps,
  input: {
    app: App;
    date: string;
    payTypes?: readonly PayType[];
    /** Overrides the app's setting. */
    cutoffHour?: number;
    his?: (app: App) => HisClient | null;
    onProgress?: (p: ReconProgress) => void;
  },
): Promise<DayOutcome[]> {
  const { app, date } = input;
  const settings = readReconSettings(app.recon_settings);
  const dayStart = businessDayStart(date, input.cutoffHour ?? settings.cutoffHour);
  const dayEnd = new Date(dayStart.getTime() + DAY_MS);
  const progress = input.onProgress ?? (() => {});
  const out: DayOutcome[] = [];
  for (const payType of input.payTypes ?? PAY_TYPES) {
    const startedAt = deps.clock.now();
    let channel;
    let channelId: string;
    try {
      ({ id: channelId, channel } = deps.channelFor(app, payType));
    } catch (e) {
      out.push({
        payType,
        skipped: e instanceof HospayError ? e.en : 'not enabled',
        matched: 0,
        differences: 0,
        open: 0,
        pending: 0,
      });
      continue;
    }
    if (!channel.downloadBill) {
      out.push({
        payType,
        skipped: `channel ${channel.id} serves no bill`,
        matched: 0,
        differences: 0,
        open: 0,
        pending: 0,
      });
      continue;
    }
    // Built per pay type: a HIS that cannot be reached (or a token that does not open) is that day's HIS error.
    let his: HisClient | null = null;
    let hisError: string | undefined;
    try {
      his = input.his ? input.his(app) : hisClientFor(deps, app);
    } catch (e) {
      hisError = e instanceof Error ? e.message : String(e);
    }

    progress({ payType, stage: 'bill', done: 0, total: 1 });
    const { lines: billLines, evidence } = await channelLines(
      channel as Channel & { downloadBill: NonNullable<Channel['downloadBill']> },
      await deps.channelContext(app.id, channelId),
      date,
      payType,
      dayStart,
      dayEnd,
    );
    progress({ payType, stage: 'bill', done: 1, total: 1 });

    progress({ payType, stage: 'platform', done: 0, total: 1 });
    const platform = await platformMovements(deps, app.id, payType, dayStart, dayEnd);
    progress({ payType, stage: 'platform', done: 1, total: 1 });

    const previous = await deps.reconciliation.previousPending(app.id, payType, date);

    let hisRecords: HisTradeRecord[] | undefined;
    if (his) {
      const slices = 1440 / settings.hisSliceMinutes;
      progress({ payType, stage: 'his', done: 0, total: slices });
      try {
        const day = await his.getDay(
          dayStart,
          settings.hisSliceMinutes * 60_000,
          hisPayTypeOf(payType),
          (done) => progress({ payType, stage: 'his', done, total: slices }),
        );
        hisRecords = day.records;
        for (const s of day.slices)
          evidence.push({
            source: 'HIS_TRADE_LIST',
            request: s.request,
            records: s.records.length,
            raw: s.raw.length > MAX_EVIDENCE_CHARS ? s.raw.slice(0, MAX_EVIDENCE_CHARS) : s.raw,
          });
      } catch (e) {
        hisError = e instanceof Error ? e.message : String(e);
      }
    }

    progress({ payType, stage: 'match', done: 0, total: 1 });
    const result = matchDay({
      platform,
      channel: billLines,
      ...(hisRecords ? { his: hisRecords } : {}),
      pending: previous !== undefined ? revivePending(previous) : [],
      dayStart,
      pendingDays: settings.pendingDays,
      feeRateBps: settings.feeRateBps,
      feeToleranceFen: settings.feeToleranceFen,
    });
    progress({ payType, stage: 'match', done: 1, total: 1 });
    const checks =
      his && hisRecords
        ? await recheckWithHis(his, result.differences, (done, total) =>
            progress({ payType, stage: 'recheck', done, total }),
          )
        : new Map<Difference, HisCheck>();
    progress({ payType, stage: 'save', done: 0, total: 1 });
    const { open, kept } = await persist(
      deps,
      app,
      date,
      payType,
      result,
      startedAt,
      hisError,
      checks,
      evidence,
    );
    progress({ payType, stage: 'save', done: 1, total: 1 });
    out.push({
      payType,
      status: hisError === undefined ? 'DONE' : 'INCOMPLETE',
      matched: result.matched,
      differences: result.differences.length + kept,
      open,
      pending: result.pending.length,
      totals: result.totals,
      ...(hisError ? { hisError } : {}),
    });
  }
  return out;
}

/**
 * The channel's lines of the business day. Channels bill natural days (Asia/Shanghai); with a cut-off hour the
 * business day [D h:00, D+1 h:00) takes the end of day D's bill and the start of day D+1's.
 */
async function channelLines(
  channel: Channel & { downloadBill: NonNullable<Channel['downloadBill']> },
  ctx: ChannelContext,
  date: string,
  payType: PayType,
  dayStart: Date,
  dayEnd: Date,
): Promise<{ lines: BillLine[]; evidence: Evidence[] }> {
  const dates = formatShanghai(dayStart).slice(11) === '00:00:00' ? [date] : [date, nextDate(date)];
  const lines: BillLine[] = [];
  const evidence: Evidence[] = [];
  for (const d of dates) {
    const bill = await channel.downloadBill(ctx, { date: d, payType });
    evidence.push({
      source: 'CHANNEL_BILL',
      request: { date: d, payType, channel: channel.id },
      records: bill.lines.length,
      raw: JSON.stringify(bill.summary),
    });
    for (const l of bill.lines) {
      if (dates.length === 1) {
        lines.push(l);
        continue;
      }
      const t = parseShanghai(l.time);
      if (t && t >= dayStart && t < dayEnd) lines.push(l);
    }
  }
  return { lines, evidence };
}

function nextDate(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10);
}

/**
 * The platform's money movements of the business day for one pay type: payments paid in the day (the cash
 * part) and refunds finished in the day, whenever their trade was paid. Only the columns the matcher reads.
 *
 * Plus the day's unsettled items, which have no paid_at / finished_at to place them: trades still unpaid
 * (WAIT_BUYER_PAY, or closed unpaid) and refunds still PROCESSING, taken on the day they were **created**
 * (requested) — and on the day after too, for a channel that books them after midnight. They make no
 * difference by themselves; a channel line for one is a STATUS_MISMATCH (see matcher.ts).
 */
async function platformMovements(
  deps: Pick<ReconcileDeps, 'reconciliation'>,
  appId: string,
  payType: PayType,
  dayStart: Date,
  dayEnd: Date,
): Promise<PlatformEntry[]> {
  const unsettledFrom = new Date(dayStart.getTime() - UNSETTLED_LOOKBACK_MS);
  // Refunds of trades paid on another day: their trades too (the refund needs its order number), not their payments.
  const { trades, refunds, otherTrades } = await deps.reconciliation.movements({
    appId,
    payType,
    dayStart,
    dayEnd,
    unsettledFrom,
  });
  const otherTradeNos = new Set(otherTrades.map((t) => t.trade_no));
  return platformEntriesFrom([...trades, ...otherTrades], refunds, { unsettled: true }).filter(
    (e) => e.kind === 'refund' || !otherTradeNos.has(e.platformTradeNo),
  );
}

/** What HIS_IF_Query said about a HIS-side difference before it was reported. */
export interface HisCheck {
  checkedWith: 'HIS_IF_Query';
  found: boolean;
  /** The flows the HIS listed for the order (signed fen: refunds negative). */
  flows: Array<{ hisFlowId: string; amountFen: Fen; time: string }>;
  /** The net the HIS holds for the order, in fen. */
  netFen: Fen;
  error?: string;
  /** The suggestion after the check. */
  suggestion: { zh: string; en: string };
}

const HIS_SIDE = new Set(['HIS_MISSING', 'HIS_ONLY', 'AMOUNT_MISMATCH', 'STATUS_MISMATCH']);

/** Each HIS-side difference is checked once more with HIS_IF_Query; the report keeps what was found. */
async function recheckWithHis(
  his: HisClient,
  differences: readonly Difference[],
  onProgress: (done: number, total: number) => void,
): Promise<Map<Difference, HisCheck>> {
  const out = new Map<Difference, HisCheck>();
  const todo = differences.filter(
    (d) =>
      HIS_SIDE.has(d.code) &&
      (d.code === 'HIS_MISSING' || d.code === 'HIS_ONLY' || d.amounts.his !== undefined),
  );
  let done = 0;
  onProgress(0, todo.length);
  for (const d of todo) {
    onProgress(done++, todo.length);
    await recheckOne(his, d, out);
  }
  onProgress(todo.length, todo.length);
  return out;
}

async function recheckOne(his: HisClient, d: Difference, out: Map<Difference, HisCheck>): Promise<void> {
  try {
    const q = await his.queryTrade(d.outTradeNo);
    const flows = q.flows.map((f) => ({
      hisFlowId: f.hisFlowId,
      amountFen: f.amountFen,
      time: f.time.toISOString(),
    }));
    const netFen = sumFen(flows.map((f) => f.amountFen));
    const suggestion =
      d.code === 'HIS_MISSING'
        ? q.found
          ? {
              zh: 'HIS 单笔查询能查到该笔，可能是交易列表遗漏：请 HIS 核对列表接口',
              en: 'HIS_IF_Query finds it: the trade list missed it; ask the HIS to check its list',
            }
          : {
              zh: 'HIS 确认无此记录：请退款给患者，或请 HIS 补录',
              en: 'the HIS confirms it has no record: refund the patient or have the HIS write it back',
            }
        : d.code === 'HIS_ONLY'
          ? {
              zh: '渠道无此笔收款：请 HIS 冲正该记录',
              en: 'the channel has no such payment: ask the HIS to reverse its record',
            }
          : {
              zh: `HIS 记录净额 ${formatFen(netFen)} 元，请与 HIS 核对`,
              en: `the HIS holds a net ${formatFen(netFen)} yuan; check with the HIS`,
            };
    out.set(d, { checkedWith: 'HIS_IF_Query', found: q.found, flows, netFen, suggestion });
  } catch (e) {
    out.set(d, {
      checkedWith: 'HIS_IF_Query',
      found: false,
      flows: [],
      netFen: ZERO_FEN,
      error: e instanceof Error ? e.message : String(e),
      suggestion: {
        zh: 'HIS 单笔查询失败，请稍后重跑对账',
        en: 'HIS_IF_Query failed; re-run the day later',
      },
    });
  }
}

/** A stored difference found by the money ↔ HIS comparison (the HIS has a say in it). */
function isHisSide(code: string, detail: string): boolean {
  if (code === 'HIS_MISSING' || code === 'HIS_ONLY') return true;
  try {
    const d = JSON.parse(detail) as {
      side?: unknown;
      amounts?: Record<string, unknown>;
      statuses?: Record<string, unknown>;
    };
    return d.side === 'his' || d.amounts?.['his'] !== undefined || d.statuses?.['his'] !== undefined;
  } catch {
    return false;
  }
}

async function persist(
  deps: ReconcileDeps,
  app: App,
  date: string,
  payType: PayType,
  result: MatchResult,
  startedAt: Date,
  hisError: string | undefined,
  checks: Map<Difference, HisCheck>,
  evidence: readonly Evidence[],
): Promise<{ open: number; kept: number }> {
  const now = deps.clock.now();
  return deps.reconciliation.saveRun({
    run: {
      app_id: app.id,
      business_date: date,
      pay_type: payType,
      // A side that could not be read (the HIS) leaves the day incomplete: it must be run again.
      status: hisError === undefined ? 'DONE' : 'INCOMPLETE',
      matched: result.matched,
      differences: result.differences.length,
      totals: JSON.stringify(result.totals),
      pending: JSON.stringify(result.pending),
      error: hisError ?? null,
      started_at: startedAt,
      finished_at: now,
    },
    // A run that could not read the HIS did not look at the HIS side again: the HIS-side differences an earlier
    // run found stay present (and are counted as this run's).
    keep: hisError === undefined ? null : (d) => isHisSide(d.code, d.detail),
    // The evidence of this run replaces the previous run's.
    evidence: evidence.map((e) => ({
      source: e.source,
      request: JSON.stringify(e.request),
      records: e.records,
      raw: e.raw,
    })),
    // Re-running replaces the day's results (but those kept above); resolutions stay with their differences.
    differences: result.differences.map((d) => ({
      diffKey: differenceKey(d),
      code: d.code,
      kind: d.kind,
      outTradeNo: d.outTradeNo,
      outRequestNo: d.outRequestNo ?? null,
      detail: JSON.stringify({ ...d, ...(checks.has(d) ? { hisCheck: checks.get(d) } : {}) }),
    })),
  });
}

/** Resolves a difference: state, note and who, with an audit entry. */
export async function resolveDifference(
  deps: Pick<ReconcileDeps, 'reconciliation' | 'clock'>,
  id: number,
  actor: string,
  note: string,
): Promise<boolean> {
  return deps.reconciliation.resolve(id, actor, note, deps.clock.now());
}

export class UnknownAppError extends NotFoundError {
  constructor(readonly appId: string) {
    super(`没有这个应用 / no such app: ${appId}`);
    this.name = 'UnknownAppError';
  }
}

/** True when the outcome is a run that could not compare every side (see RunStatus). */
export function isIncomplete(o: Pick<DayOutcome, 'status' | 'hisError'>): boolean {
  return o.status === 'INCOMPLETE' || (o.status === undefined && o.hisError !== undefined);
}

export interface AppDayOutcome extends DayOutcome {
  appId: string;
  date: string;
  /** Set when the app's day could not be reconciled at all (e.g. the channel bill failed). */
  error?: string;
}

/**
 * Reconciles a business day for one app or every active app (the CLI, the admin API and the daily job).
 * One app's failure does not stop the others; it is reported as that app's error.
 */
export async function reconcileApps(
  deps: ReconcileDeps,
  input: { date: string; appId?: string; onProgress?: (p: ReconProgress & { appId: string }) => void },
): Promise<{ outcomes: AppDayOutcome[]; open: number; errors: number; incomplete: number }> {
  const apps = (await deps.apps.list()).filter((a) =>
    input.appId ? a.id === input.appId : a.status === 'active',
  );
  if (input.appId && apps.length === 0) throw new UnknownAppError(input.appId);
  const outcomes: AppDayOutcome[] = [];
  let open = 0;
  let errors = 0;
  for (const app of apps) {
    try {
      const days = await reconcileDay(deps, {
        app,
        date: input.date,
        ...(input.onProgress ? { onProgress: (p) => input.onProgress?.({ ...p, appId: app.id }) } : {}),
      });
      for (const o of days) {
        open += o.open;
        outcomes.push({ appId: app.id, date: input.date, ...o });
      }
    } catch (e) {
      errors++;
      deps.log.warn(
        { app: app.id, date: input.date, err: e instanceof Error ? e.message : String(e) },
        'reconcile failed',
      );
      outcomes.push({
        appId: app.id,
        date: input.date,
        payType: 'alipay',
        skipped: 'failed',
        error: e instanceof Error ? e.message : String(e),
        matched: 0,
        differences: 0,
        open: 0,
        pending: 0,
      });
    }
  }
  return { outcomes, open, errors, incomplete: outcomes.filter(isIncomplete).length };
}

/** A business date 'yyyy-MM-dd' that exists in the calendar. */
export const isBusinessDate = isCalendarDate;
