import { sql } from 'kysely';
import type { Db } from './db.js';
import type { App } from './schema.js';

/**
 * One row of the day report's aggregate: one grouping of the day's movements (see reconcile/report.ts for what
 * counts). `g_*` are GROUPING() flags (0: grouped by that column); counts and sums as the driver returns them.
 */
export interface DayAggregateRow {
  g_pay: unknown;
  g_cat: unknown;
  g_cashier: unknown;
  pay_type: string | null;
  category: string | null;
  terminal_id: string | null;
  operator_id: string | null;
  payment_count: unknown;
  payment_cash_fen: unknown;
  payment_insurance_fen: unknown;
  refund_count: unknown;
  refund_cash_fen: unknown;
  refund_insurance_fen: unknown;
  reduced_fen: unknown;
}

/**
 * The finance day report's reads (src/reconcile/report.ts): the apps and the day's totals. `read` is the read
 * replica (store/db.ts openReadStore) or the primary again: the day's totals, a scan of the day's trades and
 * refunds, are read there (a report may be a few seconds behind); the apps from the primary (an app created a
 * moment ago has its report at once).
 */
export class ReportRepository {
  constructor(
    private readonly db: Db,
    private readonly read: Db = db,
  ) {}

  /** The app (none when unknown), or every app in the order they were created. Read as stored (no cache). */
  async apps(appId?: string): Promise<App[]> {
    if (appId !== undefined) {
      const app = await this.db.selectFrom('apps').selectAll().where('id', '=', appId).executeTakeFirst();
      return app ? [app] : [];
    }
    return this.db.selectFrom('apps').selectAll().orderBy('created_at').orderBy('id').execute();
  }

  /**
   * The movements of [from, to), of one app or all, totalled by the database in one query: overall, per pay
   * type, per category and per terminal + operator (GROUPING SETS). Terminal and operator are '' when absent.
   *
   * A payment: a trade (not 'void') paid in the period, TRADE_SUCCESS / TRADE_FINISHED / TRADE_CLOSED (cash part
   * total − insurance, insurance part, reduced apart). A refund: SUCCESS, finished (or updated) in the period;
   * kind 'insurance' is the insurance part, others cash; its terminal is the refund's, or the payment's. An
   * insurance reversal: a paid trade with insurance_state REVERSED closed in the period, for the insurance part
   * not already refunded by 'insurance' rows.
   */
  async dayAggregate(from: Date, to: Date, appId?: string): Promise<DayAggregateRow[]> {
    // Every app: "app_id IN (every app)" (the same rows: app_id references apps) lets the day be read app by app
    // through the (app_id, time) indexes, instead of through the whole of trades_app_paid_at (docs/scaling.md).
    const appT =
      appId !== undefined ? sql`AND t.app_id = ${appId}` : sql`AND t.app_id IN (SELECT id FROM apps)`;
    const appR =
      appId !== undefined ? sql`AND r.app_id = ${appId}` : sql`AND r.app_id IN (SELECT id FROM apps)`;
    const aggregate = await sql<DayAggregateRow>`
    WITH m AS (
      SELECT coalesce(t.pay_type, '') AS pay_type, t.category,
             coalesce(t.terminal_id, '') AS terminal_id, coalesce(t.operator_id, '') AS operator_id,
             1 AS is_payment,
             t.total_fen - t.insurance_fen AS cash_fen, t.insurance_fen AS insurance_fen, t.reduced_fen
        FROM trades t
       WHERE t.paid_at >= ${from} AND t.paid_at < ${to}
         AND t.kind <> 'void'
         AND t.status IN ('TRADE_SUCCESS', 'TRADE_FINISHED', 'TRADE_CLOSED')
         ${appT}
      UNION ALL
      SELECT coalesce(t.pay_type, ''), t.category,
             coalesce(nullif(r.terminal_id, ''), t.terminal_id, ''), coalesce(t.operator_id, ''),
             0,
             CASE WHEN r.kind = 'insurance' THEN 0 ELSE r.amount_fen END,
             CASE WHEN r.kind = 'insurance' THEN r.amount_fen ELSE 0 END,
             0
        FROM refunds r JOIN trades t ON t.id = r.trade_id
       WHERE r.status = 'SUCCESS'
         AND coalesce(r.finished_at, r.updated_at) >= ${from} AND coalesce(r.finished_at, r.updated_at) < ${to}
         ${appR}
      UNION ALL
      SELECT x.pay_type, x.category, x.terminal_id, x.operator_id, 0, 0, x.reversed_fen, 0
        FROM (
          SELECT coalesce(t.pay_type, '') AS pay_type, t.category,
                 coalesce(t.terminal_id, '') AS terminal_id, coalesce(t.operator_id, '') AS operator_id,
                 t.insurance_fen - coalesce((
                   SELECT sum(i.amount_fen) FROM refunds i
                    WHERE i.trade_id = t.id AND i.kind = 'insurance' AND i.status = 'SUCCESS'), 0) AS reversed_fen
            FROM trades t
           WHERE t.insurance_state = 'REVERSED' AND t.paid_at IS NOT NULL
             AND t.closed_at >= ${from} AND t.closed_at < ${to}
             AND t.kind <> 'void'
             ${appT}
        ) x
       WHERE x.reversed_fen > 0
    )
    SELECT grouping(pay_type) AS g_pay, grouping(category) AS g_cat, grouping(terminal_id) AS g_cashier,
           pay_type, category, terminal_id, operator_id,
           count(*) FILTER (WHERE is_payment = 1) AS payment_count,
           coalesce(sum(cash_fen) FILTER (WHERE is_payment = 1), 0)::bigint AS payment_cash_fen,
           coalesce(sum(insurance_fen) FILTER (WHERE is_payment = 1), 0)::bigint AS payment_insurance_fen,
           count(*) FILTER (WHERE is_payment = 0) AS refund_count,
           coalesce(sum(cash_fen) FILTER (WHERE is_payment = 0), 0)::bigint AS refund_cash_fen,
           coalesce(sum(insurance_fen) FILTER (WHERE is_payment = 0), 0)::bigint AS refund_insurance_fen,
           coalesce(sum(reduced_fen), 0)::bigint AS reduced_fen
      FROM m
     GROUP BY GROUPING SETS ((), (pay_type), (category), (terminal_id, operator_id))`.execute(this.read);
    return aggregate.rows;
  }
}
