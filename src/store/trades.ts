import { sql, type Transaction, type UpdateQueryBuilder } from 'kysely';
import type { Db } from './db.js';
import type { Database, NewTrade, Trade } from './schema.js';
import { newTradeRow } from './trade-row.js';
import { outbox } from './outbox.js';
import { insertNonce, isNonceReplay, NonceReplayError, type GatewayNonce } from './nonces.js';
import type { PaidInfo } from '../domain/payment.js';
import { subFen, ZERO_FEN, type Fen } from '../domain/money.js';

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
          .with('n', (db) => insertNonce(db, nonce))
          .insertInto('trades')
          .values(trade)
          .onConflict((oc) => oc.columns(['app_id', 'out_trade_no']).doNothing())
          .returningAll()
          .executeTakeFirst();
      } catch (e) {
        if (isNonceReplay(e)) throw new NonceReplayError();
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
    return this.insertOrGet(
      newTradeRow({
        trade_no: tradeNo,
        app_id: appId,
        out_trade_no: outTradeNo,
        kind: 'void',
        status: 'TRADE_CLOSED',
        category: 'VOID',
        order_type: '',
        total_fen: ZERO_FEN,
        subject: '',
        fingerprint: 'void',
        cancel_action: 'close',
        created_at: now,
        expires_at: now,
        closed_at: now,
      }),
    );
  }

  async byOutTradeNo(appId: string, outTradeNo: string, exec: Exec = this.db): Promise<Trade | undefined> {
    return exec
      .selectFrom('trades')
      .selectAll()
      .where('app_id', '=', appId)
      .where('out_trade_no', '=', outTradeNo)
      .executeTakeFirst();
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
              refund_reserved_fen: sql<Fen>`total_fen - insurance_fen`,
              refunded_fen: sql<Fen>`total_fen - insurance_fen`,
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
          amount_fen: subFen(t.total_fen, t.insurance_fen),
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
