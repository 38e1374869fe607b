import type { Db } from '../../store/db.js';
import type { HospayRefundRow, HospayTradeRow } from './his-sim.js';

/**
 * The platform's rows a HIS simulator fed "from the database" records (`hospay his-sim --from-db`): paid trades
 * and successful refunds, of one app or all. Read directly (PostgreSQL, or an embedded database no server
 * holds) or through the running server's admin API (GET /admin/reconciliation/movements).
 */
export interface HisSimRows {
  trades: HospayTradeRow[];
  refunds: HospayRefundRow[];
}

export async function readHisSimRows(db: Db, appId?: string): Promise<HisSimRows> {
  let tq = db
    .selectFrom('trades')
    .select([
      'id',
      'out_trade_no',
      'status',
      'pay_type',
      'channel_trade_no',
      'trade_no',
      'total_fen',
      'insurance_fen',
      'paid_at',
      'category',
      'patient_name',
      'inhospital_no',
    ])
    .where('kind', '!=', 'void')
    .where('paid_at', 'is not', null)
    .orderBy('id');
  let rq = db
    .selectFrom('refunds')
    .select(['id', 'trade_id', 'kind', 'amount_fen', 'status', 'finished_at', 'out_request_no'])
    .where('status', '=', 'SUCCESS')
    .orderBy('id');
  if (appId) {
    tq = tq.where('app_id', '=', appId);
    rq = rq.where('app_id', '=', appId);
  }
  return { trades: await tq.execute(), refunds: await rq.execute() };
}

/** The JSON of HisSimRows (dates as ISO strings) read back; anything malformed is left out. */
export function reviveHisSimRows(data: unknown): HisSimRows {
  const o = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
  const date = (v: unknown) => (typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? new Date(v) : null);
  const rows = (v: unknown) =>
    (Array.isArray(v) ? v : []).filter(
      (r): r is Record<string, unknown> => typeof r === 'object' && r !== null,
    );
  return {
    trades: rows(o['trades']).map((r) => ({
      ...(r as unknown as HospayTradeRow),
      paid_at: date(r['paid_at']),
    })),
    refunds: rows(o['refunds']).map((r) => ({
      ...(r as unknown as HospayRefundRow),
      finished_at: date(r['finished_at']),
    })),
  };
}
