import { sql, type ExpressionBuilder, type QueryCreator, type Transaction } from 'kysely';
import { isUniqueViolation, type Db } from './db.js';
import type { Database, Refund, Trade } from './schema.js';
import { outboxText } from './outbox.js';
import { runFixed, tradeOfRow } from './trades.js';
import { tradeFromJson } from './trade-row.js';
import { Batcher, columnsOf } from './batcher.js';
import type { Fen } from '../domain/money.js';

/**
 * Refunds (and a cancel's reversal of a paid trade), as the explicit steps of one protocol. The amount is reserved
 * on the trade before the channel is asked, so concurrent refunds can never add up to more than was paid, and
 * while a refund is PROCESSING one caller at a time holds its lease and talks to the channel:
 *
 *   reserve (or lookupAndReserve, the common case in one statement)   amount reserved, record PROCESSING, leased
 *     -> the channel's answer:
 *        complete   SUCCESS: the refunded total grows; a full refund closes the trade (and writes its notification)
 *        fail       FAILED: the reservation is given back
 *        release    unknown: the lease is let go, the amount stays reserved; a repeat asks the channel again
 *
 * A repeat of a known request number: claim (PROCESSING, its lease run out) or reserveAgain (FAILED before).
 * Every step is a guarded UPDATE (WHERE status = the expected state), so no two callers make the same transition.
 */
export class RefundRepository {
  /**
   * complete() of a refund (not a cancel's reversal), batched under load (store/batcher.ts); two refunds of one
   * trade never share a statement.
   */
  private readonly completions: Batcher<CompleteItem, Trade | undefined>;
  /** lookupAndReserve's statement, batched likewise (two refunds of one trade never share a statement). */
  private readonly reservations: Batcher<unknown[], ReserveRow | undefined>;

  constructor(private readonly db: Db) {
    const params = ({ refund, channelRefundNo, now }: CompleteItem) => [
      channelRefundNo,
      now,
      refund.id,
      refund.amount_fen,
      refund.trade_id,
    ];
    this.reservations = new Batcher({
      name: 'refund_reserve',
      key: (p) => `${String(p[1])}\u0000${String(p[2])}`,
      one: async (p) => (await runFixed<ReserveRow>(this.db, LOOKUP_AND_RESERVE, p))[0],
      many: async (items) => {
        const out = await runFixed<ReserveRow & { row: string | null }>(
          this.db,
          LOOKUP_AND_RESERVE_MANY,
          columnsOf(items, 13),
        );
        return out.map((r) =>
          r.row === null
            ? undefined
            : { row: r.row, prior_refund_id: r.prior_refund_id, new_refund_id: r.new_refund_id },
        );
      },
    });
    this.completions = new Batcher({
      name: 'refund_complete',
      key: ({ refund }) => String(refund.trade_id),
      one: async (item) => {
        const [r] = await runFixed<{ row: string }>(this.db, COMPLETE_REFUND, params(item));
        return r && tradeFromJson(r.row);
      },
      many: async (items) => {
        const out = await runFixed<{ row: string | null }>(
          this.db,
          COMPLETE_REFUNDS,
          columnsOf(items.map(params), 5),
        );
        return out.map(tradeOfRow);
      },
    });
  }

  /** How the batched completion ran (statements, items, items retried alone): for tests and diagnosis. */
  batchStats(): Record<'reserve' | 'complete', Batcher<never, unknown>['stats']> {
    return { reserve: this.reservations.stats, complete: this.completions.stats };
  }

  // ---- reading -----------------------------------------------------------------------------------

  /**
   * The trade of a refund request, and whether that request number is already known for it (the id of the
   * refund), in one round trip.
   */
  async lookup(
    appId: string,
    outTradeNo: string,
    outRequestNo: string,
  ): Promise<{ trade: Trade; priorRefundId: number | null } | undefined> {
    const row = await this.db
      .selectFrom('trades')
      .selectAll('trades')
      .select(priorRefundId(outRequestNo))
      .where('app_id', '=', appId)
      .where('out_trade_no', '=', outTradeNo)
      .executeTakeFirst();
    if (!row) return undefined;
    const { prior_refund_id, ...trade } = row;
    return { trade, priorRefundId: prior_refund_id === null ? null : Number(prior_refund_id) };
  }

  /** The refund of `tradeId` with this request number, if it is known. */
  async byRequestNo(tradeId: number, outRequestNo: string): Promise<Refund | undefined> {
    return this.db
      .selectFrom('refunds')
      .selectAll()
      .where('trade_id', '=', tradeId)
      .where('out_request_no', '=', outRequestNo)
      .executeTakeFirst();
  }

  /** Every refund and reversal of the given trades, oldest first. */
  async ofTrades(tradeIds: readonly number[]): Promise<Refund[]> {
    if (tradeIds.length === 0) return [];
    return this.db
      .selectFrom('refunds')
      .selectAll()
      .where('trade_id', 'in', [...tradeIds])
      .orderBy('id')
      .execute();
  }

  // ---- reserve: before the channel is asked ------------------------------------------------------

  /**
   * The common refund in one statement: reads the trade and whether the request number is known (as lookup),
   * and, if everything the caller checks holds (no such request number yet; trade number, total and pay type
   * as given; paid after `paidAfter`, i.e. within the refund window; TRADE_SUCCESS; the amount fits), reserves
   * the amount and records the refund (as reserve). `refund` is null when nothing was reserved: the
   * caller then looks at the trade as read (before this statement) and decides why. 'raced' means a concurrent
   * request with the same request number won (the unique key undid the statement): read again.
   */
  async lookupAndReserve(input: {
    appId: string;
    outTradeNo: string;
    outRequestNo: string;
    amountFen: Fen;
    tradeNo: string | undefined;
    totalFen: Fen | undefined;
    payType: string | undefined;
    paidAfter: Date;
    reason: string | null;
    hospitalId: string | null;
    terminalId: string | null;
    now: Date;
    leaseMs: number;
  }): Promise<{ trade: Trade; priorRefundId: number | null; refund: Refund | null } | undefined | 'raced'> {
    const { now, amountFen } = input;
    const leaseUntil = new Date(now.getTime() + input.leaseMs);
    let row;
    try {
      row = await this.reservations.run([
        input.outRequestNo,
        input.appId,
        input.outTradeNo,
        amountFen,
        now,
        input.paidAfter,
        input.tradeNo ?? null,
        input.totalFen ?? null,
        input.payType ?? null,
        input.reason,
        input.hospitalId,
        input.terminalId,
        leaseUntil,
      ]);
    } catch (e) {
      if (isUniqueViolation(e)) return 'raced';
      throw e;
    }
    if (!row) return undefined;
    const { prior_refund_id, new_refund_id } = row;
    const trade = tradeFromJson(row.row);
    const refund: Refund | null =
      new_refund_id === null
        ? null
        : {
            id: Number(new_refund_id),
            trade_id: trade.id,
            app_id: trade.app_id,
            out_request_no: input.outRequestNo,
            kind: 'refund',
            amount_fen: amountFen,
            status: 'PROCESSING',
            reason: input.reason,
            hospital_id: input.hospitalId,
            terminal_id: input.terminalId,
            channel_refund_no: null,
            fail_code: null,
            created_at: now,
            updated_at: now,
            finished_at: null,
            lease_until: leaseUntil,
          };
    return { trade, priorRefundId: prior_refund_id === null ? null : Number(prior_refund_id), refund };
  }

  /**
   * Records a refund request and reserves its amount on the trade, in one statement (one round trip, atomic):
   * the reservation is a guarded UPDATE (refund_reserved_fen + amount <= the cash part, total_fen -
   * insurance_fen, of a paid trade; the table has a CHECK too), and the refund row is inserted only from its
   * result. Concurrent refunds can never reserve more than was paid. A request number already known fails the
   * unique key (trade_id, out_request_no) and the whole statement, reservation included, is undone.
   * Returns 'exists' when this request number is already known, 'exceeded' when the amount does not fit (or the
   * trade is no longer paid).
   */
  async reserve(input: {
    trade: Trade;
    outRequestNo: string;
    kind: 'refund' | 'cancel';
    amountFen: Fen;
    reason: string | null;
    hospitalId: string | null;
    terminalId: string | null;
    now: Date;
    /** The caller holds the refund this long while it talks to the channel. */
    leaseMs: number;
  }): Promise<{ result: 'reserved'; refund: Refund } | { result: 'exists' } | { result: 'exceeded' }> {
    const { now, amountFen } = input;
    const leaseUntil = new Date(now.getTime() + input.leaseMs);
    try {
      const refund = await refundFromReservation(
        this.db.with('up', (db) =>
          reservation(db, amountFen, now).where('id', '=', input.trade.id).returning(['id', 'app_id']),
        ),
        { ...input, leaseUntil },
      )
        .returningAll()
        .executeTakeFirst();
      return refund ? { result: 'reserved', refund } : { result: 'exceeded' };
    } catch (e) {
      if (isUniqueViolation(e)) return { result: 'exists' };
      throw e;
    }
  }

  /** A FAILED refund retried with the same request number: back to PROCESSING, reserving again. */
  async reserveAgain(refund: Refund, now: Date, leaseMs: number): Promise<'reserved' | 'busy' | 'exceeded'> {
    try {
      return await this.db.transaction().execute(async (tx) => {
        const r = await tx
          .updateTable('refunds')
          .set({
            status: 'PROCESSING',
            fail_code: null,
            updated_at: now,
            finished_at: null,
            lease_until: new Date(now.getTime() + leaseMs),
          })
          .where('id', '=', refund.id)
          .where('status', '=', 'FAILED')
          .returning('id')
          .executeTakeFirst();
        if (!r) return 'busy' as const;
        if (!(await this.reserveOn(tx, refund.trade_id, refund.amount_fen, now)))
          throw new ReservationRefused();
        return 'reserved' as const;
      });
    } catch (e) {
      if (e instanceof ReservationRefused) return 'exceeded';
      throw e;
    }
  }

  private async reserveOn(
    tx: Transaction<Database>,
    tradeId: number,
    amountFen: Fen,
    now: Date,
  ): Promise<boolean> {
    const r = await reservation(tx, amountFen, now)
      .where('id', '=', tradeId)
      .returning('id')
      .executeTakeFirst();
    return r !== undefined;
  }

  // ---- claim: a repeat carries on with a PROCESSING refund ---------------------------------------

  /**
   * Takes a PROCESSING refund for one caller to talk to the channel about. Concurrent repeats of the same
   * request number do not call the channel at the same time: a "failed" answer to one of them must never undo
   * a success seen by another.
   */
  async claim(refund: Refund, now: Date, leaseMs: number): Promise<Refund | undefined> {
    return this.db
      .updateTable('refunds')
      .set({ lease_until: new Date(now.getTime() + leaseMs) })
      .where('id', '=', refund.id)
      .where('status', '=', 'PROCESSING')
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .returningAll()
      .executeTakeFirst();
  }

  // ---- the channel's answer: complete | fail | release -------------------------------------------

  /**
   * PROCESSING -> SUCCESS, and the trade's refunded total grows; a full refund closes the trade (and writes its
   * notification). One statement: the refund's guarded update, the trade's update only if that happened, and
   * the outbox. Returns the trade when this call made the transition (it "moved the money"), undefined otherwise.
   */
  async complete(refund: Refund, channelRefundNo: string, now: Date): Promise<Trade | undefined> {
    if (refund.kind === 'refund') return this.completions.run({ refund, channelRefundNo, now });
    const [r] = await runFixed<{ row: string }>(
      this.db,
      refund.kind === 'cancel' ? COMPLETE_CANCEL : COMPLETE_REFUND,
      [channelRefundNo, now, refund.id, refund.amount_fen, refund.trade_id],
    );
    return r && tradeFromJson(r.row);
  }

  /** PROCESSING -> FAILED, giving the reservation back (the trade's refund_reserved_fen shrinks). */
  async fail(refund: Refund, code: string, now: Date): Promise<boolean> {
    return this.db.transaction().execute(async (tx) => {
      const r = await tx
        .updateTable('refunds')
        .set({ status: 'FAILED', fail_code: code, updated_at: now, finished_at: now, lease_until: null })
        .where('id', '=', refund.id)
        .where('status', '=', 'PROCESSING')
        .returning('id')
        .executeTakeFirst();
      if (!r) return false;
      await tx
        .updateTable('trades')
        .set({
          refund_reserved_fen: sql<Fen>`refund_reserved_fen - ${refund.amount_fen}`,
          updated_at: now,
        })
        .where('id', '=', refund.trade_id)
        .execute();
      return true;
    });
  } /**
   * The channel's answer is unknown (or it could not be asked): the lease is let go, the refund stays PROCESSING
   * and its amount reserved, so a repeat (or the next caller) asks the channel again.
   */
  async release(refund: Refund): Promise<void> {
    await this.db
      .updateTable('refunds')
      .set({ lease_until: null })
      .where('id', '=', refund.id)
      .where('status', '=', 'PROCESSING')
      .execute();
  }
}

class ReservationRefused extends Error {}

/**
 * lookupAndReserve as one fixed statement (runFixed: no query building per refund). `cur`: the trade (as one JSON
 * text, read by tradeFromJson) and the id of an earlier refund with this request number; `up`: the reservation,
 * only if every check holds (an absent trade number ($7), total ($8) or pay type ($9) is not checked); `ins`: the
 * refund record from the reservation, as refundFromReservation makes it. The same guards as reservation().
 */
const LOOKUP_AND_RESERVE =
  'with cur as (select to_json(trades.*)::text as row, trades.id, trades.paid_at, trades.trade_no, ' +
  'trades.channel_trade_no, trades.total_fen, trades.pay_type, (select refunds.id from refunds ' +
  'where refunds.trade_id = trades.id and refunds.out_request_no = $1) as prior_refund_id ' +
  'from trades where app_id = $2 and out_trade_no = $3), ' +
  'up as (update trades set refund_reserved_fen = refund_reserved_fen + $4, updated_at = $5 ' +
  'where id = (select cur.id from cur where cur.prior_refund_id is null and cur.paid_at > $6 ' +
  'and ($7::text is null or cur.trade_no = $7 or cur.channel_trade_no = $7) ' +
  'and ($8::bigint is null or cur.total_fen = $8) ' +
  'and ($9::text is null or cur.pay_type is null or cur.pay_type = $9)) ' +
  "and status = 'TRADE_SUCCESS' and refund_reserved_fen + $4 <= total_fen - insurance_fen returning id, app_id), " +
  'ins as (insert into refunds (trade_id, app_id, out_request_no, kind, amount_fen, status, reason, hospital_id, ' +
  'terminal_id, created_at, updated_at, lease_until) ' +
  "select up.id, up.app_id, $1::text, 'refund', $4::bigint, 'PROCESSING', $10::text, $11::text, $12::text, " +
  '$5::timestamptz, $5::timestamptz, $13::timestamptz from up returning id) ' +
  'select cur.row, cur.prior_refund_id, (select ins.id from ins) as new_refund_id from cur';

type ReserveRow = {
  row: string;
  prior_refund_id: number | string | null;
  new_refund_id: number | string | null;
};

/**
 * LOOKUP_AND_RESERVE for several refunds in one statement (never two of one trade): the same columns, a row per
 * refund in its order, `row` null where there is no such trade. `cur` is the trades read before the statement.
 */
const LOOKUP_AND_RESERVE_MANY =
  'with u as (select * from unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::timestamptz[], ' +
  '$6::timestamptz[], $7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], ' +
  '$13::timestamptz[]) with ordinality as u(out_request_no, app_id, out_trade_no, amount_fen, now, paid_after, ' +
  'trade_no, total_fen, pay_type, reason, hospital_id, terminal_id, lease_until, ord)), ' +
  'cur as (select u.ord, to_json(trades.*)::text as row, trades.id, trades.paid_at, trades.trade_no, ' +
  'trades.channel_trade_no, trades.total_fen, trades.pay_type, (select refunds.id from refunds ' +
  'where refunds.trade_id = trades.id and refunds.out_request_no = u.out_request_no) as prior_refund_id ' +
  'from u join trades on trades.app_id = u.app_id and trades.out_trade_no = u.out_trade_no), ' +
  'up as (update trades set refund_reserved_fen = trades.refund_reserved_fen + u.amount_fen, updated_at = u.now ' +
  'from u join cur on cur.ord = u.ord where trades.id = cur.id and cur.prior_refund_id is null ' +
  'and cur.paid_at > u.paid_after ' +
  'and (u.trade_no is null or cur.trade_no = u.trade_no or cur.channel_trade_no = u.trade_no) ' +
  'and (u.total_fen is null or cur.total_fen = u.total_fen) ' +
  'and (u.pay_type is null or cur.pay_type is null or cur.pay_type = u.pay_type) ' +
  "and trades.status = 'TRADE_SUCCESS' and trades.refund_reserved_fen + u.amount_fen <= " +
  'trades.total_fen - trades.insurance_fen returning trades.id, trades.app_id, u.ord), ' +
  'ins as (insert into refunds (trade_id, app_id, out_request_no, kind, amount_fen, status, reason, hospital_id, ' +
  'terminal_id, created_at, updated_at, lease_until) ' +
  "select up.id, up.app_id, u.out_request_no, 'refund', u.amount_fen, 'PROCESSING', u.reason, u.hospital_id, " +
  'u.terminal_id, u.now, u.now, u.lease_until from up join u on u.ord = up.ord returning id, trade_id) ' +
  'select u.ord::int as ord, cur.row, cur.prior_refund_id, ins.id as new_refund_id ' +
  'from u left join cur on cur.ord = u.ord left join ins on ins.trade_id = cur.id order by u.ord';

/**
 * complete() as one fixed statement: the refund's guarded update (`r`), the trade's only if that happened (`t`; a
 * full refund closes it; a cancel's reversal also marks it cancel_action 'refund'), and the outbox; the trade as
 * one JSON text.
 */
function completeText(cancel: boolean): string {
  const closes = 'refunded_fen + $4 = total_fen - insurance_fen';
  return (
    "with r as (update refunds set status = 'SUCCESS', channel_refund_no = $1, updated_at = $2, finished_at = $2, " +
    "lease_until = null where id = $3 and status = 'PROCESSING' returning id), " +
    `t as (update trades set refunded_fen = refunded_fen + $4, ` +
    `status = case when ${closes} then 'TRADE_CLOSED' else status end, ` +
    `closed_at = case when ${closes} then $2::timestamptz else closed_at end, ` +
    `cancel_action = ${cancel ? "'refund'" : 'cancel_action'}, updated_at = $2 ` +
    'where id = $5 and exists (select 1 from r) returning *), ' +
    `n as (${outboxText('$2', ['TRADE_CLOSED'])}) ` +
    'select to_json(t.*)::text as row from t'
  );
}
const COMPLETE_REFUND = completeText(false);
const COMPLETE_CANCEL = completeText(true);

/**
 * COMPLETE_REFUND for several refunds in one statement (never two of one trade): a row per refund in its order,
 * the trade's JSON null where the refund was not PROCESSING.
 */
const CLOSES_MANY = 'trades.refunded_fen + u.amount_fen = trades.total_fen - trades.insurance_fen';
const COMPLETE_REFUNDS =
  'with u as (select * from unnest($1::text[], $2::timestamptz[], $3::bigint[], $4::bigint[], $5::bigint[]) ' +
  'with ordinality as u(channel_refund_no, now, refund_id, amount_fen, trade_id, ord)), ' +
  "r as (update refunds set status = 'SUCCESS', channel_refund_no = u.channel_refund_no, updated_at = u.now, " +
  "finished_at = u.now, lease_until = null from u where refunds.id = u.refund_id and refunds.status = 'PROCESSING' " +
  'returning refunds.id), ' +
  't as (update trades set refunded_fen = trades.refunded_fen + u.amount_fen, ' +
  `status = case when ${CLOSES_MANY} then 'TRADE_CLOSED' else trades.status end, ` +
  `closed_at = case when ${CLOSES_MANY} then u.now else trades.closed_at end, updated_at = u.now ` +
  'from u join r on r.id = u.refund_id where trades.id = u.trade_id returning trades.*), ' +
  `n as (${outboxText('t.updated_at', ['TRADE_CLOSED'])}) ` +
  'select u.ord::int as ord, to_json(t.*)::text as row from u left join t on t.id = u.trade_id order by u.ord';

type CompleteItem = { refund: Refund; channelRefundNo: string; now: Date };

/**
 * Reserves a refund's amount on a paid trade (the caller picks the trade): refund_reserved_fen grows, guarded so
 * that the reserved total never exceeds the cash part (total_fen - insurance_fen). The table's CHECK says the same.
 */
function reservation(db: QueryCreator<Database>, amountFen: Fen, now: Date) {
  return db
    .updateTable('trades')
    .set({ refund_reserved_fen: sql<Fen>`refund_reserved_fen + ${amountFen}`, updated_at: now })
    .where('status', '=', 'TRADE_SUCCESS')
    .where(sql<boolean>`refund_reserved_fen + ${amountFen} <= total_fen - insurance_fen`);
}

type ReservedQueryCreator = QueryCreator<Database & { up: { id: number; app_id: string } }>;

/**
 * The refund record (PROCESSING, leased to the caller) inserted from a reservation CTE `up` (the trade's id and
 * app): no reservation, no record. A known request number fails the unique key and undoes the whole statement.
 */
function refundFromReservation(
  db: ReservedQueryCreator,
  r: {
    outRequestNo: string;
    kind: 'refund' | 'cancel';
    amountFen: Fen;
    reason: string | null;
    hospitalId: string | null;
    terminalId: string | null;
    now: Date;
    leaseUntil: Date;
  },
) {
  return db
    .insertInto('refunds')
    .columns([
      'trade_id',
      'app_id',
      'out_request_no',
      'kind',
      'amount_fen',
      'status',
      'reason',
      'hospital_id',
      'terminal_id',
      'created_at',
      'updated_at',
      'lease_until',
    ])
    .expression((eb) =>
      eb
        .selectFrom('up')
        .select([
          'up.id',
          'up.app_id',
          sql<string>`${r.outRequestNo}::text`.as('out_request_no'),
          sql<string>`${r.kind}::text`.as('kind'),
          sql<Fen>`${r.amountFen}::bigint`.as('amount_fen'),
          sql<string>`'PROCESSING'`.as('status'),
          sql<string | null>`${r.reason}::text`.as('reason'),
          sql<string | null>`${r.hospitalId}::text`.as('hospital_id'),
          sql<string | null>`${r.terminalId}::text`.as('terminal_id'),
          sql<Date>`${r.now}::timestamptz`.as('created_at'),
          sql<Date>`${r.now}::timestamptz`.as('updated_at'),
          sql<Date>`${r.leaseUntil}::timestamptz`.as('lease_until'),
        ]),
    );
}

/** The id of the trade's refund with this request number, if one exists (a repeat), as `prior_refund_id`. */
function priorRefundId(outRequestNo: string) {
  return (eb: ExpressionBuilder<Database, 'trades'>) =>
    eb
      .selectFrom('refunds')
      .select('refunds.id')
      .whereRef('refunds.trade_id', '=', 'trades.id')
      .where('refunds.out_request_no', '=', outRequestNo)
      .as('prior_refund_id');
}
