import { sql } from 'kysely';
import type { Db } from '../../src/store/db.js';

/**
 * Both ends' books, read together for the reliability tests: the platform's (trades, refunds, notifications) and
 * the simulated channel's own (sim_ledger, sim_refunds). Comparing them is what these tests are about, so they
 * are read in SQL, trade by trade.
 */

/** One trade's books at both ends. */
export interface Books {
  out_trade_no: string;
  status: string;
  total_fen: number;
  paid: boolean;
  refunded_fen: number;
  reserved_fen: number;
  /** Trades with this order number (the UNIQUE key says at most 1; counted anyway). */
  trades: number;
  /** Charges at the channel. */
  charges: number;
  charged_fen: number;
  /** Refunds and reversals at the channel. */
  channel_refunds: number;
  channel_refunded_fen: number;
  /** The platform's refund records. */
  refunds_ok: number;
  refunds_ok_fen: number;
  refunds_open: number;
  notified_success: number;
  notified_closed: number;
}

/** The books of every trade, or of the given app's orders; by order number. */
export async function readBooks(db: Db, only?: { appId: string; outTradeNos: string[] }): Promise<Books[]> {
  const where = only
    ? sql`WHERE t.app_id = ${only.appId} AND t.out_trade_no IN (${sql.join(only.outTradeNos)})`
    : sql``;
  const r = await sql<Books>`
    SELECT t.out_trade_no, t.status, t.total_fen::int AS total_fen, (t.paid_at IS NOT NULL) AS paid,
      t.refunded_fen::int AS refunded_fen, t.refund_reserved_fen::int AS reserved_fen,
      (SELECT count(*)::int FROM trades x WHERE x.app_id = t.app_id AND x.out_trade_no = t.out_trade_no) AS trades,
      (SELECT count(*)::int FROM sim_ledger l
        WHERE l.merchant = t.app_id AND l.out_trade_no = t.out_trade_no AND l.entry = 'charge') AS charges,
      (SELECT coalesce(sum(l.amount_fen), 0)::int FROM sim_ledger l
        WHERE l.merchant = t.app_id AND l.out_trade_no = t.out_trade_no AND l.entry = 'charge') AS charged_fen,
      (SELECT count(*)::int FROM sim_ledger l
        WHERE l.merchant = t.app_id AND l.out_trade_no = t.out_trade_no AND l.entry IN ('refund', 'reverse'))
        AS channel_refunds,
      (SELECT coalesce(-sum(l.amount_fen), 0)::int FROM sim_ledger l
        WHERE l.merchant = t.app_id AND l.out_trade_no = t.out_trade_no AND l.entry IN ('refund', 'reverse'))
        AS channel_refunded_fen,
      (SELECT count(*)::int FROM refunds r WHERE r.trade_id = t.id AND r.status = 'SUCCESS') AS refunds_ok,
      (SELECT coalesce(sum(r.amount_fen), 0)::int FROM refunds r WHERE r.trade_id = t.id AND r.status = 'SUCCESS')
        AS refunds_ok_fen,
      (SELECT count(*)::int FROM refunds r WHERE r.trade_id = t.id AND r.status = 'PROCESSING') AS refunds_open,
      (SELECT count(*)::int FROM notifications n WHERE n.trade_id = t.id AND n.trade_status = 'TRADE_SUCCESS')
        AS notified_success,
      (SELECT count(*)::int FROM notifications n WHERE n.trade_id = t.id AND n.trade_status = 'TRADE_CLOSED')
        AS notified_closed
    FROM trades t
    ${where}
    ORDER BY t.out_trade_no`.execute(db);
  return r.rows;
}

/**
 * The channel's own books, checked against themselves: orders it charged more than once, and orders whose refunds
 * it booked a different number of times than it recorded them (a refund request carried out twice), or refunded
 * beyond the amount.
 */
export async function channelDoubles(
  db: Db,
): Promise<{ charges: Array<{ out_trade_no: string; charges: number }>; refunds: string[] }> {
  const charges = await sql<{ out_trade_no: string; charges: number }>`
    SELECT out_trade_no, count(*)::int AS charges FROM sim_ledger WHERE entry = 'charge'
    GROUP BY merchant, out_trade_no HAVING count(*) > 1`.execute(db);
  const refunds = await sql<{ out_trade_no: string }>`
    SELECT s.out_trade_no FROM sim_trades s
    WHERE (SELECT count(*) FROM sim_ledger l WHERE l.merchant = s.merchant AND l.out_trade_no = s.out_trade_no
             AND l.entry = 'refund')
       <> (SELECT count(*) FROM sim_refunds r WHERE r.merchant = s.merchant AND r.out_trade_no = s.out_trade_no)
       OR s.refunded_fen > s.amount_fen`.execute(db);
  return { charges: charges.rows, refunds: refunds.rows.map((r) => r.out_trade_no) };
}

/** The simulated channel's ledger for an order number, in booking order: `charge` (+), `refund` and `reverse` (−). */
export async function channelLedger(
  db: Db,
  outTradeNo: string,
): Promise<Array<{ entry: string; amount_fen: number }>> {
  const r = await sql<{ entry: string; amount_fen: number }>`
    SELECT entry, amount_fen::int AS amount_fen FROM sim_ledger WHERE out_trade_no = ${outTradeNo} ORDER BY id`.execute(
    db,
  );
  return r.rows;
}

/** How many times the simulated channel charged for an order number. */
export async function channelCharges(db: Db, outTradeNo: string): Promise<number> {
  return (await channelLedger(db, outTradeNo)).filter((e) => e.entry === 'charge').length;
}
