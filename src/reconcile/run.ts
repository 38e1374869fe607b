import type { App } from '../store/schema.js';
import type { ServiceDeps } from '../services/deps.js';
import { channelContext, channelFor } from '../services/deps.js';
import type { PayType } from '../domain/trade.js';
import { HospayError } from '../domain/errors.js';
import { formatFen } from '../domain/money.js';
import { HisClient } from './his/his-client.js';
import type { HisTradeRecord } from './his/his-xml.js';
import {
  businessDayStart,
  matchDay,
  platformEntriesFrom,
  type Difference,
  type MatchResult,
  type PendingEntry,
} from './matcher.js';

export interface DayOutcome {
  payType: PayType;
  /** Why this pay type was not reconciled (not enabled, no bill from the channel), if so. */
  skipped?: string;
  matched: number;
  differences: number;
  /** Differences of the day still open (resolutions survive re-runs). */
  open: number;
  pending: number;
  totals?: MatchResult['totals'];
  hisError?: string;
}

const DAY_MS = 86_400_000;

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

/**
 * Reconciles one business day of one app: for each pay type, the platform's money movements against the
 * channel's bill and (when the app has a HIS) the HIS's trade list. Results replace the day's earlier results;
 * differences keep their resolution state across re-runs; one-sided movements near the cut-off wait in the
 * pending pool, carried from day to day.
 */
export async function reconcileDay(
  deps: ServiceDeps,
  input: {
    app: App;
    date: string;
    payTypes?: readonly PayType[];
    cutoffHour?: number;
    his?: (app: App) => HisClient | null;
  },
): Promise<DayOutcome[]> {
  const { app, date } = input;
  const dayStart = businessDayStart(date, input.cutoffHour ?? 0);
  const dayEnd = new Date(dayStart.getTime() + DAY_MS);
  const his = input.his
    ? input.his(app)
    : app.his_base_url
      ? new HisClient({ baseUrl: app.his_base_url })
      : null;
  const out: DayOutcome[] = [];
  for (const payType of input.payTypes ?? (['alipay', 'weixin', 'unionpay'] as const)) {
    const startedAt = deps.clock.now();
    let channel;
    try {
      channel = channelFor(deps, app, payType).channel;
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
    const bill = await channel.downloadBill(channelContext(app), { date, payType });

    // The platform's movements of the day (a margin either side, so the matcher sees what crosses midnight).
    const from = new Date(dayStart.getTime() - DAY_MS);
    const to = new Date(dayEnd.getTime() + DAY_MS);
    const trades = await deps.db
      .selectFrom('trades')
      .selectAll()
      .where('app_id', '=', app.id)
      .where('pay_type', '=', payType)
      .where('paid_at', '>=', from)
      .where('paid_at', '<', to)
      .execute();
    const refunds = await deps.db
      .selectFrom('refunds')
      .innerJoin('trades', 'trades.id', 'refunds.trade_id')
      .selectAll('refunds')
      .where('refunds.app_id', '=', app.id)
      .where('trades.pay_type', '=', payType)
      .where('refunds.finished_at', '>=', from)
      .where('refunds.finished_at', '<', to)
      .execute();
    const refundTrades = await deps.db
      .selectFrom('trades')
      .selectAll()
      .where('id', 'in', refunds.length ? refunds.map((r) => r.trade_id) : [-1])
      .execute();
    const allTrades = [...trades, ...refundTrades.filter((t) => !trades.some((x) => x.id === t.id))];
    const platform = platformEntriesFrom(allTrades, refunds).filter(
      (e) =>
        e.time >= dayStart &&
        e.time < dayEnd &&
        (e.kind === 'refund' || trades.some((t) => t.out_trade_no === e.outTradeNo)),
    );

    const previous = await deps.db
      .selectFrom('recon_runs')
      .select(['pending'])
      .where('app_id', '=', app.id)
      .where('pay_type', '=', payType)
      .where('business_date', '<', date)
      .orderBy('business_date', 'desc')
      .limit(1)
      .executeTakeFirst();

    let hisRecords: HisTradeRecord[] | undefined;
    let hisError: string | undefined;
    if (his) {
      try {
        hisRecords = (await his.getDay(dayStart, 3_600_000, payType)).records;
      } catch (e) {
        hisError = e instanceof Error ? e.message : String(e);
      }
    }

    const result = matchDay({
      platform,
      channel: bill.lines,
      ...(hisRecords ? { his: hisRecords } : {}),
      pending: previous ? revivePending(previous.pending) : [],
      dayStart,
    });
    const checks =
      his && hisRecords ? await recheckWithHis(his, result.differences) : new Map<Difference, HisCheck>();
    const open = await persist(deps, app, date, payType, result, startedAt, hisError, checks);
    out.push({
      payType,
      matched: result.matched,
      differences: result.differences.length,
      open,
      pending: result.pending.length,
      totals: result.totals,
      ...(hisError ? { hisError } : {}),
    });
  }
  return out;
}

/** What HIS_IF_Query said about a HIS-side difference before it was reported. */
export interface HisCheck {
  checkedWith: 'HIS_IF_Query';
  found: boolean;
  /** The flows the HIS listed for the order (signed fen: refunds negative). */
  flows: Array<{ hisFlowId: string; amountFen: number; time: string }>;
  /** The net the HIS holds for the order, in fen. */
  netFen: number;
  error?: string;
  /** The suggestion after the check. */
  suggestion: { zh: string; en: string };
}

const HIS_SIDE = new Set(['HIS_MISSING', 'HIS_ONLY', 'AMOUNT_MISMATCH', 'STATUS_MISMATCH']);

/** Each HIS-side difference is checked once more with HIS_IF_Query; the report keeps what was found. */
async function recheckWithHis(
  his: HisClient,
  differences: readonly Difference[],
): Promise<Map<Difference, HisCheck>> {
  const out = new Map<Difference, HisCheck>();
  for (const d of differences) {
    if (
      !HIS_SIDE.has(d.code) ||
      (d.code !== 'HIS_MISSING' && d.code !== 'HIS_ONLY' && d.amounts.his === undefined)
    )
      continue;
    try {
      const q = await his.queryTrade(d.outTradeNo);
      const flows = q.flows.map((f) => ({
        hisFlowId: f.hisFlowId,
        amountFen: f.amountFen,
        time: f.time.toISOString(),
      }));
      const netFen = flows.reduce((s, f) => s + f.amountFen, 0);
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
        netFen: 0,
        error: e instanceof Error ? e.message : String(e),
        suggestion: {
          zh: 'HIS 单笔查询失败，请稍后重跑对账',
          en: 'HIS_IF_Query failed; re-run the day later',
        },
      });
    }
  }
  return out;
}

async function persist(
  deps: ServiceDeps,
  app: App,
  date: string,
  payType: PayType,
  result: MatchResult,
  startedAt: Date,
  hisError: string | undefined,
  checks: Map<Difference, HisCheck>,
): Promise<number> {
  const now = deps.clock.now();
  return deps.db.transaction().execute(async (tx) => {
    const run = {
      app_id: app.id,
      business_date: date,
      pay_type: payType,
      status: 'DONE' as const,
      matched: result.matched,
      differences: result.differences.length,
      totals: JSON.stringify(result.totals),
      pending: JSON.stringify(result.pending),
      error: hisError ?? null,
      started_at: startedAt,
      finished_at: now,
    };
    await tx
      .insertInto('recon_runs')
      .values(run)
      .onConflict((oc) => oc.columns(['app_id', 'business_date', 'pay_type']).doUpdateSet(run))
      .execute();
    // Re-running replaces the day's results; resolutions stay with their differences.
    await tx
      .updateTable('recon_differences')
      .set({ present: false, updated_at: now })
      .where('app_id', '=', app.id)
      .where('business_date', '=', date)
      .where('pay_type', '=', payType)
      .execute();
    for (const d of result.differences) {
      const row = {
        app_id: app.id,
        business_date: date,
        pay_type: payType,
        diff_key: differenceKey(d),
        code: d.code,
        kind: d.kind,
        out_trade_no: d.outTradeNo,
        out_request_no: d.outRequestNo ?? null,
        detail: JSON.stringify({ ...d, ...(checks.has(d) ? { hisCheck: checks.get(d) } : {}) }),
        present: true,
        created_at: now,
        updated_at: now,
      };
      await tx
        .insertInto('recon_differences')
        .values(row)
        .onConflict((oc) =>
          oc
            .columns(['app_id', 'business_date', 'pay_type', 'diff_key'])
            .doUpdateSet({ detail: row.detail, present: true, updated_at: now }),
        )
        .execute();
    }
    const open = await tx
      .selectFrom('recon_differences')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('app_id', '=', app.id)
      .where('business_date', '=', date)
      .where('pay_type', '=', payType)
      .where('present', '=', true)
      .where('state', '=', 'OPEN')
      .executeTakeFirstOrThrow();
    return Number(open.n);
  });
}

/** Resolves a difference: state, note and who, with an audit entry. */
export async function resolveDifference(
  deps: ServiceDeps,
  id: number,
  actor: string,
  note: string,
): Promise<boolean> {
  const now = deps.clock.now();
  return deps.db.transaction().execute(async (tx) => {
    const r = await tx
      .updateTable('recon_differences')
      .set({ state: 'RESOLVED', resolved_by: actor, resolved_note: note, resolved_at: now, updated_at: now })
      .where('id', '=', id)
      .where('state', '=', 'OPEN')
      .returning('id')
      .executeTakeFirst();
    if (!r) return false;
    await tx
      .insertInto('recon_audit')
      .values({ difference_id: id, at: now, actor, action: 'RESOLVE', note })
      .execute();
    return true;
  });
}
