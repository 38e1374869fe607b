import { sql, type QueryCreator, type Transaction, type UpdateQueryBuilder } from 'kysely';
import { isUniqueViolation, type Db } from './db.js';
import type { Database, NewTrade, Refund, Trade } from './schema.js';
import type { PaidInfo } from '../domain/payment.js';
import type { Fen } from '../domain/money.js';

type Exec = Db | Transaction<Database>;

/**
 * Trades and refunds. Every state change is a guarded UPDATE (WHERE status = the expected state), so two
 * requests, two jobs or two server instances can never both make the same transition.
 */
export class TradeRepository {
  constructor(private readonly db: Db) {}

  /**
   * Inserts a new trade, or returns the existing one for (app, out_trade_no). With `nonce` (a gateway request's
   * nonce_str), the nonce is stored in the same statement: a nonce used before fails its unique key, nothing
   * is written, and NonceReplayError is thrown; otherwise `nonce.consumed` becomes true.
   */
  async insertOrGet(trade: NewTrade, nonce?: GatewayNonce): Promise<{ trade: Trade; inserted: boolean }> {
    let ins: Trade | undefined;
    if (nonce) {
      try {
        ins = await this.db
          .with('n', (db) =>
            db
              .insertInto('gateway_nonces')
              .values({ app_id: nonce.appId, nonce: nonce.nonce, expires_at: nonce.expiresAt })
              .returning('nonce'),
          )
          .insertInto('trades')
          .values(trade)
          .onConflict((oc) => oc.columns(['app_id', 'out_trade_no']).doNothing())
          .returningAll()
          .executeTakeFirst();
      } catch (e) {
        if (isUniqueViolation(e) && /gateway_nonces/.test(violated(e))) throw new NonceReplayError();
        throw e;
      }
      nonce.consumed = true;
    } else {
      ins = await this.db
        .insertInto('trades')
        .values(trade)
        .onConflict((oc) => oc.columns(['app_id', 'out_trade_no']).doNothing())
        .returningAll()
        .executeTakeFirst();
    }
    if (ins) return { trade: ins, inserted: true };
    const existing = await this.byOutTradeNo(trade.app_id, trade.out_trade_no);
    if (!existing) throw new Error('trade vanished after a unique conflict');
    return { trade: existing, inserted: false };
  }

  /**
   * Burns an order number nobody has paid with yet (a cancel for a trade hospay never saw): a closed 'void'
   * trade takes the (app, out_trade_no) key, so a late pay with that number can never be charged.
   */
  async insertVoid(
    appId: string,
    outTradeNo: string,
    tradeNo: string,
    now: Date,
  ): Promise<{ trade: Trade; inserted: boolean }> {
    return this.insertOrGet({
      trade_no: tradeNo,
      app_id: appId,
      out_trade_no: outTradeNo,
      kind: 'void',
      status: 'TRADE_CLOSED',
      pay_type: null,
      channel: null,
      category: 'VOID',
      order_type: '',
      total_fen: 0,
      subject: '',
      body: null,
      operator_id: null,
      terminal_id: null,
      hospital_id: null,
      patient_name: null,
      inhospital_no: null,
      tel: null,
      trade_detail: null,
      timeout_express: null,
      fingerprint: 'void',
      channel_trade_no: null,
      code_url: null,
      channel_code_url: null,
      cashier_token: null,
      buyer_logon_id: null,
      buyer_user_id: null,
      cancel_action: 'close',
      created_at: now,
      updated_at: now,
      expires_at: now,
      paid_at: null,
      closed_at: now,
      lease_until: null,
      lease_owner: null,
    });
  }

  async byOutTradeNo(appId: string, outTradeNo: string, exec: Exec = this.db): Promise<Trade | undefined> {
    return exec
      .selectFrom('trades')
      .selectAll()
      .where('app_id', '=', appId)
      .where('out_trade_no', '=', outTradeNo)
      .executeTakeFirst();
  }

  /**
   * The trade of a refund request, and whether that request number is already known for it (the id of the
   * refund), in one round trip.
   */
  async forRefund(
    appId: string,
    outTradeNo: string,
    outRequestNo: string,
  ): Promise<{ trade: Trade; priorRefundId: number | null } | undefined> {
    const row = await this.db
      .selectFrom('trades')
      .selectAll('trades')
      .select((eb) =>
        eb
          .selectFrom('refunds')
          .select('refunds.id')
          .whereRef('refunds.trade_id', '=', 'trades.id')
          .where('refunds.out_request_no', '=', outRequestNo)
          .as('prior_refund_id'),
      )
      .where('app_id', '=', appId)
      .where('out_trade_no', '=', outTradeNo)
      .executeTakeFirst();
    if (!row) return undefined;
    const { prior_refund_id, ...trade } = row;
    return { trade, priorRefundId: prior_refund_id === null ? null : Number(prior_refund_id) };
  }

  /**
   * The common refund in one statement: reads the trade and whether the request number is known (as forRefund),
   * and, if everything the caller checks holds (no such request number yet; trade number, total and pay type
   * as given; paid after `paidAfter`, i.e. within the refund window; TRADE_SUCCESS; the amount fits), reserves
   * the amount and records the refund (as reserveRefund). `refund` is null when nothing was reserved: the
   * caller then looks at the trade as read (before this statement) and decides why. 'raced' means a concurrent
   * request with the same request number won (the unique key undid the statement): read again.
   */
  async forRefundReserving(input: {
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
      row = await this.db
        .with('cur', (db) =>
          db
            .selectFrom('trades')
            .selectAll('trades')
            .select((eb) =>
              eb
                .selectFrom('refunds')
                .select('refunds.id')
                .whereRef('refunds.trade_id', '=', 'trades.id')
                .where('refunds.out_request_no', '=', input.outRequestNo)
                .as('prior_refund_id'),
            )
            .where('app_id', '=', input.appId)
            .where('out_trade_no', '=', input.outTradeNo),
        )
        .with('up', (db) =>
          db
            .updateTable('trades')
            .set({ refund_reserved_fen: sql<number>`refund_reserved_fen + ${amountFen}`, updated_at: now })
            .where('id', '=', (eb) => {
              let q = eb
                .selectFrom('cur')
                .select('cur.id')
                .where('cur.prior_refund_id', 'is', null)
                .where('cur.paid_at', '>', input.paidAfter);
              const tradeNo = input.tradeNo;
              if (tradeNo !== undefined)
                q = q.where((w) =>
                  w.or([w('cur.trade_no', '=', tradeNo), w('cur.channel_trade_no', '=', tradeNo)]),
                );
              if (input.totalFen !== undefined) q = q.where('cur.total_fen', '=', input.totalFen);
              const payType = input.payType;
              if (payType !== undefined)
                q = q.where((w) => w.or([w('cur.pay_type', 'is', null), w('cur.pay_type', '=', payType)]));
              return q;
            })
            // The same guard as reservation() (that helper cannot take this statement's `cur`).
            .where('status', '=', 'TRADE_SUCCESS')
            .where(sql<boolean>`refund_reserved_fen + ${amountFen} <= total_fen - insurance_fen`)
            .returning(['id', 'app_id']),
        )
        .with('ins', (db) =>
          refundFromReservation(db as unknown as ReservedQueryCreator, {
            outRequestNo: input.outRequestNo,
            kind: 'refund',
            amountFen,
            reason: input.reason,
            hospitalId: input.hospitalId,
            terminalId: input.terminalId,
            now,
            leaseUntil,
          }).returning('id'),
        )
        .selectFrom('cur')
        .selectAll('cur')
        .select((eb) => eb.selectFrom('ins').select('ins.id').as('new_refund_id'))
        .executeTakeFirst();
    } catch (e) {
      if (isUniqueViolation(e)) return 'raced';
      throw e;
    }
    if (!row) return undefined;
    const { prior_refund_id, new_refund_id, ...trade } = row;
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

  async byId(id: number): Promise<Trade | undefined> {
    return this.db.selectFrom('trades').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async byCashierToken(token: string): Promise<Trade | undefined> {
    return this.db.selectFrom('trades').selectAll().where('cashier_token', '=', token).executeTakeFirst();
  }

  /** WAIT_BUYER_PAY -> TRADE_SUCCESS. Returns the updated trade, or undefined if it was not waiting. */
  async markPaid(id: number, info: PaidInfo, now: Date): Promise<Trade | undefined> {
    return this.transition(
      (db) =>
        db
          .updateTable('trades')
          .set({
            status: 'TRADE_SUCCESS',
            channel_trade_no: info.channelTradeNo,
            paid_at: info.paidAt,
            buyer_logon_id: info.buyerLogonId ?? null,
            buyer_user_id: info.buyerUserId ?? null,
            updated_at: now,
          })
          .where('id', '=', id)
          .where('status', '=', 'WAIT_BUYER_PAY')
          .returningAll(),
      now,
    );
  }

  /**
   * Runs a guarded state change and, in the same statement, writes the notification (outbox) for a trade that
   * has a notify_url and has just become TRADE_SUCCESS or TRADE_CLOSED: no notify before commit, none lost.
   */
  private async transition(
    update: (db: Exec) => UpdateQueryBuilder<Database, 'trades', 'trades', Trade>,
    now: Date,
    exec: Exec = this.db,
    notifyOn: ReadonlyArray<'TRADE_SUCCESS' | 'TRADE_CLOSED'> = ['TRADE_SUCCESS', 'TRADE_CLOSED'],
  ): Promise<Trade | undefined> {
    return exec
      .with('t', (db) => update(db as unknown as Exec))
      .with('n', (db) => outbox(db, now, notifyOn))
      .selectFrom('t')
      .selectAll()
      .executeTakeFirst() as Promise<Trade | undefined>;
  }

  /** WAIT_BUYER_PAY -> TRADE_CLOSED without payment. */
  async markClosedUnpaid(id: number, action: 'close' | null, now: Date): Promise<Trade | undefined> {
    return this.transition(
      (db) =>
        db
          .updateTable('trades')
          .set({ status: 'TRADE_CLOSED', cancel_action: action, closed_at: now, updated_at: now })
          .where('id', '=', id)
          .where('status', '=', 'WAIT_BUYER_PAY')
          .returningAll(),
      now,
    );
  }

  /**
   * A trade that the channel reports as paid and then refunded in full (by a cancel, or found so on query):
   * booked as paid, fully refunded by a 'cancel' refund record, and closed, in one transaction.
   */
  async markPaidAndReversed(
    id: number,
    info: PaidInfo,
    now: Date,
    requestNo: string,
  ): Promise<Trade | undefined> {
    return this.db.transaction().execute(async (tx) => {
      const t = await this.transition(
        (db) =>
          db
            .updateTable('trades')
            .set({
              status: 'TRADE_CLOSED',
              channel_trade_no: info.channelTradeNo,
              paid_at: info.paidAt,
              buyer_logon_id: info.buyerLogonId ?? null,
              buyer_user_id: info.buyerUserId ?? null,
              refund_reserved_fen: sql<number>`total_fen - insurance_fen`,
              refunded_fen: sql<number>`total_fen - insurance_fen`,
              cancel_action: 'refund',
              closed_at: now,
              updated_at: now,
            })
            .where('id', '=', id)
            .where('status', '=', 'WAIT_BUYER_PAY')
            .returningAll(),
        now,
        tx,
      );
      if (!t) return undefined;
      await tx
        .insertInto('refunds')
        .values({
          trade_id: t.id,
          app_id: t.app_id,
          out_request_no: requestNo,
          kind: 'cancel',
          amount_fen: t.total_fen - t.insurance_fen,
          status: 'SUCCESS',
          reason: 'cancel',
          hospital_id: null,
          terminal_id: null,
          channel_refund_no: null,
          fail_code: null,
          created_at: now,
          updated_at: now,
          finished_at: now,
          lease_until: null,
        })
        .execute();
      return t;
    });
  }

  /**
   * TRADE_SUCCESS -> TRADE_FINISHED once the refund window is over, but not while a refund is in flight (its
   * outcome unknown, its amount reserved): that refund may have been made at the channel, and completing it may
   * close the trade, which a finished trade can no longer do.
   */
  async markFinished(id: number, paidBefore: Date, now: Date): Promise<Trade | undefined> {
    return this.db
      .updateTable('trades')
      .set({ status: 'TRADE_FINISHED', updated_at: now })
      .where('id', '=', id)
      .where('status', '=', 'TRADE_SUCCESS')
      .where('paid_at', '<=', paidBefore)
      .where((eb) => eb('refund_reserved_fen', '=', eb.ref('refunded_fen')))
      .returningAll()
      .executeTakeFirst();
  }

  async setChannelCode(
    id: number,
    fields: { channelCodeUrl: string; channelTradeNo: string | null; codeUrl?: string },
    now: Date,
  ): Promise<void> {
    await this.db
      .updateTable('trades')
      .set({
        channel_code_url: fields.channelCodeUrl,
        channel_trade_no: fields.channelTradeNo,
        ...(fields.codeUrl !== undefined ? { code_url: fields.codeUrl } : {}),
        updated_at: now,
      })
      .where('id', '=', id)
      .execute();
  }

  /** Aggregated QR: the payer's app decides the pay type, once. Returns the trade if this call set it. */
  async choosePayType(id: number, payType: string, channel: string, now: Date): Promise<Trade | undefined> {
    return this.db
      .updateTable('trades')
      .set({ pay_type: payType, channel, updated_at: now })
      .where('id', '=', id)
      .where('pay_type', 'is', null)
      .where('status', '=', 'WAIT_BUYER_PAY')
      .returningAll()
      .executeTakeFirst();
  }

  // ---- refunds ---------------------------------------------------------------------------------------

  async refundByRequestNo(tradeId: number, outRequestNo: string): Promise<Refund | undefined> {
    return this.db
      .selectFrom('refunds')
      .selectAll()
      .where('trade_id', '=', tradeId)
      .where('out_request_no', '=', outRequestNo)
      .executeTakeFirst();
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
  async reserveRefund(input: {
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

  private async reserve(
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

  /** A FAILED refund retried with the same request number: back to PROCESSING, reserving again. */
  async reReserveFailed(
    refund: Refund,
    now: Date,
    leaseMs: number,
  ): Promise<'reserved' | 'busy' | 'exceeded'> {
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
        if (!(await this.reserve(tx, refund.trade_id, refund.amount_fen, now)))
          throw new ReservationRefused();
        return 'reserved' as const;
      });
    } catch (e) {
      if (e instanceof ReservationRefused) return 'exceeded';
      throw e;
    }
  }

  /**
   * Takes a PROCESSING refund for one caller to talk to the channel about. Concurrent repeats of the same
   * request number do not call the channel at the same time: a "failed" answer to one of them must never undo
   * a success seen by another.
   */
  async claimRefund(refund: Refund, now: Date, leaseMs: number): Promise<Refund | undefined> {
    return this.db
      .updateTable('refunds')
      .set({ lease_until: new Date(now.getTime() + leaseMs) })
      .where('id', '=', refund.id)
      .where('status', '=', 'PROCESSING')
      .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<', now)]))
      .returningAll()
      .executeTakeFirst();
  }

  async releaseRefund(refund: Refund): Promise<void> {
    await this.db
      .updateTable('refunds')
      .set({ lease_until: null })
      .where('id', '=', refund.id)
      .where('status', '=', 'PROCESSING')
      .execute();
  }

  /**
   * PROCESSING -> SUCCESS, and the trade's refunded total grows; a full refund closes the trade (and writes its
   * notification). One statement: the refund's guarded update, the trade's update only if that happened, and
   * the outbox. Returns the trade when this call made the transition (it "moved the money"), undefined otherwise.
   */
  async completeRefund(refund: Refund, channelRefundNo: string, now: Date): Promise<Trade | undefined> {
    const amount = refund.amount_fen;
    const closes = sql<boolean>`refunded_fen + ${amount} = total_fen - insurance_fen`;
    return this.db
      .with('r', (db) =>
        db
          .updateTable('refunds')
          .set({
            status: 'SUCCESS',
            channel_refund_no: channelRefundNo,
            updated_at: now,
            finished_at: now,
            lease_until: null,
          })
          .where('id', '=', refund.id)
          .where('status', '=', 'PROCESSING')
          .returning('id'),
      )
      .with('t', (db) =>
        db
          .updateTable('trades')
          .set({
            refunded_fen: sql<number>`refunded_fen + ${amount}`,
            status: sql`CASE WHEN ${closes} THEN 'TRADE_CLOSED' ELSE status END`,
            closed_at: sql`CASE WHEN ${closes} THEN ${now}::timestamptz ELSE closed_at END`,
            cancel_action: refund.kind === 'cancel' ? 'refund' : sql`cancel_action`,
            updated_at: now,
          })
          .where('id', '=', refund.trade_id)
          .where(sql<boolean>`EXISTS (SELECT 1 FROM r)`)
          .returningAll(),
      )
      .with('n', (db) =>
        outbox(db as unknown as QueryCreator<Database & { t: Trade }>, now, ['TRADE_CLOSED']),
      )
      .selectFrom('t')
      .selectAll()
      .executeTakeFirst() as Promise<Trade | undefined>;
  }

  /** PROCESSING -> FAILED, releasing the reservation. */
  async failRefund(refund: Refund, code: string, now: Date): Promise<boolean> {
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
          refund_reserved_fen: sql<number>`refund_reserved_fen - ${refund.amount_fen}`,
          updated_at: now,
        })
        .where('id', '=', refund.trade_id)
        .execute();
      return true;
    });
  }

  // ---- background job claims -----------------------------------------------------------------------

  /**
   * Claims unpaid trades past their deadline for the expiry job. FOR UPDATE SKIP LOCKED plus a lease means
   * two instances never work on the same trade at once, and a crashed instance's claims expire.
   */
  async claimExpired(now: Date, owner: string, leaseMs: number, limit: number): Promise<Trade[]> {
    const leaseUntil = new Date(now.getTime() + leaseMs);
    const r = await sql<Trade>`
      UPDATE trades SET lease_until = ${leaseUntil}, lease_owner = ${owner}, job_attempts = job_attempts + 1
      WHERE id IN (
        SELECT id FROM trades
        WHERE status = 'WAIT_BUYER_PAY' AND expires_at <= ${now}
          AND (lease_until IS NULL OR lease_until < ${now})
        ORDER BY expires_at
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED)
      RETURNING *`.execute(this.db);
    return r.rows;
  }

  /** The insurance part of a mixed payment was settled at the medical-insurance side. */
  async markInsuranceSettled(id: number, settlementNo: string, now: Date): Promise<void> {
    await this.db
      .updateTable('trades')
      .set({ insurance_state: 'SETTLED', settlement_no: settlementNo, updated_at: now })
      .where('id', '=', id)
      .where('insurance_state', '=', 'NONE')
      .execute();
  }

  /**
   * Closed mixed payments whose insurance settlement must be undone: ended unpaid, or cancelled (reversed).
   * A paid trade whose cash part was refunded is not among them: its insurance part is refunded by the
   * hospital's national process, as the HIS reports it.
   */
  async claimInsuranceReversals(now: Date, owner: string, leaseMs: number, limit: number): Promise<Trade[]> {
    const leaseUntil = new Date(now.getTime() + leaseMs);
    const r = await sql<Trade>`
      UPDATE trades SET lease_until = ${leaseUntil}, lease_owner = ${owner}
      WHERE id IN (
        SELECT id FROM trades
        WHERE insurance_state = 'SETTLED' AND status = 'TRADE_CLOSED'
          AND (paid_at IS NULL OR cancel_action = 'refund')
          AND (lease_until IS NULL OR lease_until < ${now})
        ORDER BY id
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED)
      RETURNING *`.execute(this.db);
    return r.rows;
  }

  async markInsuranceReversed(id: number, now: Date): Promise<boolean> {
    const r = await this.db
      .updateTable('trades')
      .set((eb) => ({
        insurance_state: 'REVERSED',
        insurance_refunded_fen: eb.ref('insurance_fen'),
        updated_at: now,
        lease_until: null,
        lease_owner: null,
      }))
      .where('id', '=', id)
      .where('insurance_state', '=', 'SETTLED')
      .returning('id')
      .executeTakeFirst();
    return r !== undefined;
  }

  /** Cancel of a paid trade that has no cash part (all insurance): closed here, the insurance reversed by the job. */
  async closeInsuranceOnly(id: number, now: Date): Promise<Trade | undefined> {
    return this.transition(
      (db) =>
        db
          .updateTable('trades')
          .set({ status: 'TRADE_CLOSED', cancel_action: 'refund', closed_at: now, updated_at: now })
          .where('id', '=', id)
          .where('status', '=', 'TRADE_SUCCESS')
          .where((eb) => eb('total_fen', '=', eb.ref('insurance_fen')))
          .returningAll(),
      now,
    );
  }

  async releaseLease(id: number, owner: string, retryAt: Date | null): Promise<void> {
    await this.db
      .updateTable('trades')
      .set({ lease_until: retryAt, lease_owner: null })
      .where('id', '=', id)
      .where('lease_owner', '=', owner)
      .execute();
  }
}

class ReservationRefused extends Error {}

/**
 * Reserves a refund's amount on a paid trade (the caller picks the trade): refund_reserved_fen grows, guarded so
 * that the reserved total never exceeds the cash part (total_fen - insurance_fen). The table's CHECK says the same.
 */
function reservation(db: QueryCreator<Database>, amountFen: Fen, now: Date) {
  return db
    .updateTable('trades')
    .set({ refund_reserved_fen: sql<number>`refund_reserved_fen + ${amountFen}`, updated_at: now })
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
          sql<number>`${r.amountFen}::bigint`.as('amount_fen'),
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

/** A gateway request's nonce_str, to be stored with the request's first write (see insertOrGet). */
export interface GatewayNonce {
  appId: string;
  nonce: string;
  expiresAt: Date;
  /** Set once the nonce is stored. */
  consumed: boolean;
}

/** The nonce was used before: the request is a replay. */
export class NonceReplayError extends Error {
  constructor() {
    super('gateway nonce replayed');
    this.name = 'NonceReplayError';
  }
}

/** Which constraint or table a unique violation names (pg and PGlite both give these fields). */
function violated(e: unknown): string {
  const x = e as { constraint?: unknown; table?: unknown; detail?: unknown; message?: unknown };
  return [x.constraint, x.table, x.detail, x.message].filter((v) => typeof v === 'string').join(' ');
}

/**
 * The notification (outbox) for a trade that has a notify_url and has just become one of `notifyOn`, as a CTE
 * reading the updated trade from `t`: written in the same statement as the state change, so there is no
 * notification before the commit and none is lost.
 */
function outbox(
  db: QueryCreator<Database & { t: Trade }>,
  now: Date,
  notifyOn: ReadonlyArray<'TRADE_SUCCESS' | 'TRADE_CLOSED'>,
) {
  return db
    .insertInto('notifications')
    .columns([
      'notify_id',
      'app_id',
      'trade_id',
      'url',
      'trade_status',
      'status',
      'attempts',
      'next_attempt_at',
      'created_at',
    ])
    .expression((eb) =>
      eb
        .selectFrom('t')
        .select([
          sql<string>`replace(gen_random_uuid()::text, '-', '')`.as('notify_id'),
          't.app_id',
          't.id',
          sql<string>`t.notify_url`.as('url'),
          't.status',
          sql<string>`'PENDING'`.as('nstatus'),
          sql<number>`0`.as('attempts'),
          sql<Date>`${now}::timestamptz`.as('next_attempt_at'),
          sql<Date>`${now}::timestamptz`.as('created_at'),
        ])
        .where('t.notify_url', 'is not', null)
        .where('t.status', 'in', [...notifyOn]),
    );
}
