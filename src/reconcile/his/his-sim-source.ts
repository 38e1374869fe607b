import type { ReconcileDeps } from '../deps.js';
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

export async function readHisSimRows(
  deps: Pick<ReconcileDeps, 'reconciliation'>,
  appId?: string,
): Promise<HisSimRows> {
  return deps.reconciliation.paidMovements(appId);
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
