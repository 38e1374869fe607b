import { sql, type Insertable, type Selectable } from 'kysely';
import type { Db } from './db.js';
import type {
  MedicareAuthsTable,
  MedicareRevocationsTable,
  MedicareTokensTable,
  Refund,
  Trade,
} from './schema.js';
import type { Fen } from '../domain/money.js';

/**
 * The medical-insurance side's records (spec 6.4–6.7): authorisation requests and their single-use auth_codes
 * (medicare_auths), the pay_auth_no tokens they become (medicare_tokens), and the insurance refunds the HIS
 * reports (refunds of kind 'insurance').
 */

export type MedicareAuth = Selectable<MedicareAuthsTable>;
export type MedicareToken = Selectable<MedicareTokensTable>;
export type MedicareRevocation = Selectable<MedicareRevocationsTable>;

/** What reserving an insurance refund through the centre did. */
export type InsuranceRefundReservation =
  /** This caller holds the refund (new, or a PROCESSING / FAILED one of the same request) and may ask the centre. */
  | { kind: 'reserved'; refund: Refund }
  /** The same refund already succeeded: nothing to do. */
  | { kind: 'done'; refund: Refund }
  /** Another caller is asking the centre about this refund right now. */
  | { kind: 'busy' }
  | { kind: 'conflict' }
  | { kind: 'exceeded' };

/** An authorisation request waiting for the patient's decision, with its app's name and channel map. */
export interface PendingAuthorisation {
  id: string;
  status: MedicareAuth['status'];
  expires_at: Date;
  app_name: string;
  channel_map: string;
}

/** What recording an insurance refund did. */
export type InsuranceRefundOutcome =
  /** Recorded: the trade with its insurance_refunded_fen raised. */
  | { kind: 'recorded'; trade: Trade }
  /** The same insurance refund (out_request_no and amount) was recorded before: nothing written. */
  | { kind: 'repeat' }
  /** The trade's out_request_no names another refund: nothing written. */
  | { kind: 'conflict' }
  /** The amount would take insurance_refunded_fen above insurance_fen: nothing written. */
  | { kind: 'exceeded' };

/** Ends recordInsuranceRefund's transaction with a rollback, and says why. */
class Refused extends Error {
  constructor(readonly outcome: { kind: 'conflict' } | { kind: 'exceeded' } | { kind: 'busy' }) {
    super(outcome.kind);
  }
}

export class MedicareRepository {
  constructor(private readonly db: Db) {}

  /** Stores a new authorisation request (PENDING). */
  async createAuthorisation(auth: Insertable<MedicareAuthsTable>): Promise<void> {
    await this.db.insertInto('medicare_auths').values(auth).execute();
  }

  /**
   * The patient's decision on a PENDING, unexpired request (guarded UPDATE): GRANTED with the auth_code, or
   * DECLINED; the request then expires at `expiresAt`. Undefined when it was not pending (or expired).
   */
  async decide(
    id: string,
    d: { grant: boolean; authCode: string | null; now: Date; expiresAt: Date },
  ): Promise<MedicareAuth | undefined> {
    return this.db
      .updateTable('medicare_auths')
      .set({
        status: d.grant ? 'GRANTED' : 'DECLINED',
        auth_code: d.authCode,
        expires_at: d.expiresAt,
      })
      .where('id', '=', id)
      .where('status', '=', 'PENDING')
      .where('expires_at', '>', d.now)
      .returningAll()
      .executeTakeFirst();
  }

  /** An authorisation request with its app's name and channel map (the consent page). */
  async pending(id: string): Promise<PendingAuthorisation | undefined> {
    return this.db
      .selectFrom('medicare_auths')
      .innerJoin('apps', 'apps.id', 'medicare_auths.app_id')
      .select([
        'medicare_auths.id',
        'medicare_auths.status',
        'medicare_auths.expires_at',
        'apps.name as app_name',
        'apps.channel_map',
      ])
      .where('medicare_auths.id', '=', id)
      .executeTakeFirst();
  }

  /**
   * Spends an app's granted, unused, unexpired auth_code (guarded UPDATE, so it is good once). Undefined when
   * there is no such code.
   */
  async useAuthCode(appId: string, authCode: string, now: Date): Promise<MedicareAuth | undefined> {
    return this.db
      .updateTable('medicare_auths')
      .set({ used_at: now })
      .where('auth_code', '=', authCode)
      .where('app_id', '=', appId)
      .where('status', '=', 'GRANTED')
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .returningAll()
      .executeTakeFirst();
  }

  /** Forgets the authorisation requests that expired before `before`. */
  async purgeAuthorisations(before: Date): Promise<void> {
    await this.db.deleteFrom('medicare_auths').where('expires_at', '<', before).execute();
  }

  /** Stores a new pay_auth_no. */
  async createToken(token: Insertable<MedicareTokensTable>): Promise<void> {
    await this.db.insertInto('medicare_tokens').values(token).execute();
  }

  /** An app's pay_auth_no. */
  async token(appId: string, payAuthNo: string): Promise<MedicareToken | undefined> {
    return this.db
      .selectFrom('medicare_tokens')
      .selectAll()
      .where('pay_auth_no', '=', payAuthNo)
      .where('app_id', '=', appId)
      .executeTakeFirst();
  }

  /** Binds an unused pay_auth_no to the trade it pays (guarded UPDATE); false when it was used meanwhile. */
  async useToken(payAuthNo: string, tradeId: number): Promise<boolean> {
    const claimed = await this.db
      .updateTable('medicare_tokens')
      .set({ used_by_trade: tradeId })
      .where('pay_auth_no', '=', payAuthNo)
      .where('used_by_trade', 'is', null)
      .returning('pay_auth_no')
      .executeTakeFirst();
    return claimed !== undefined;
  }

  /**
   * Records an insurance refund the hospital made (no money moves here), in one transaction: the refund row
   * (idempotent on the trade's out_request_no: the same refund again is a repeat, another one a conflict),
   * then the trade's insurance_refunded_fen raised, guarded so it never exceeds insurance_fen (if it would, the
   * refund row is rolled back too).
   */
  async recordInsuranceRefund(
    trade: Pick<Trade, 'id' | 'app_id'>,
    r: { outRequestNo: string; amountFen: Fen; now: Date },
  ): Promise<InsuranceRefundOutcome> {
    try {
      return await this.db.transaction().execute(async (tx): Promise<InsuranceRefundOutcome> => {
        const ins = await tx
          .insertInto('refunds')
          .values({
            trade_id: trade.id,
            app_id: trade.app_id,
            out_request_no: r.outRequestNo,
            kind: 'insurance',
            amount_fen: r.amountFen,
            status: 'SUCCESS',
            reason: 'insurance refunded by the hospital (national process)',
            hospital_id: null,
            terminal_id: null,
            channel_refund_no: null,
            fail_code: null,
            created_at: r.now,
            updated_at: r.now,
            finished_at: r.now,
            lease_until: null,
          })
          .onConflict((oc) => oc.columns(['trade_id', 'out_request_no']).doNothing())
          .returningAll()
          .executeTakeFirst();
        if (!ins) {
          const prior = await tx
            .selectFrom('refunds')
            .selectAll()
            .where('trade_id', '=', trade.id)
            .where('out_request_no', '=', r.outRequestNo)
            .executeTakeFirstOrThrow();
          if (prior.kind !== 'insurance' || prior.amount_fen !== r.amountFen)
            throw new Refused({ kind: 'conflict' });
          return { kind: 'repeat' };
        }
        const t = await tx
          .updateTable('trades')
          .set((eb) => ({
            insurance_refunded_fen: eb('insurance_refunded_fen', '+', r.amountFen),
            updated_at: r.now,
          }))
          .where('id', '=', trade.id)
          .where((eb) => eb(eb('insurance_refunded_fen', '+', r.amountFen), '<=', eb.ref('insurance_fen')))
          .returningAll()
          .executeTakeFirst();
        if (!t) throw new Refused({ kind: 'exceeded' });
        return { kind: 'recorded', trade: t };
      });
    } catch (e) {
      if (e instanceof Refused && e.outcome.kind !== 'busy') return e.outcome;
      throw e;
    }
  }

  // ---- insurance refunds through the centre -----------------------------------------------------------------

  /**
   * Reserves an insurance refund the platform asks the centre for, in one transaction with the trade locked:
   * a new refund row (PROCESSING, leased to this caller for `leaseMs`), or the same request again (a PROCESSING
   * one whose lease ran out, or a FAILED one, taken again). Never more than the insurance part: what is refunded
   * (insurance_refunded_fen) plus every other PROCESSING insurance refund plus this one.
   */
  async reserveInsuranceRefund(
    trade: Pick<Trade, 'id' | 'app_id'>,
    r: { outRequestNo: string; amountFen: Fen; now: Date; leaseMs: number },
  ): Promise<InsuranceRefundReservation> {
    const leaseUntil = new Date(r.now.getTime() + r.leaseMs);
    try {
      return await this.db.transaction().execute(async (tx): Promise<InsuranceRefundReservation> => {
        const t = await tx
          .selectFrom('trades')
          .select(['insurance_fen', 'insurance_refunded_fen'])
          .where('id', '=', trade.id)
          .forUpdate()
          .executeTakeFirstOrThrow();
        const prior = await tx
          .selectFrom('refunds')
          .selectAll()
          .where('trade_id', '=', trade.id)
          .where('out_request_no', '=', r.outRequestNo)
          .executeTakeFirst();
        if (prior) {
          if (prior.kind !== 'insurance' || prior.amount_fen !== r.amountFen)
            throw new Refused({ kind: 'conflict' });
          if (prior.status === 'SUCCESS') return { kind: 'done', refund: prior };
          if (prior.status === 'PROCESSING' && prior.lease_until !== null && prior.lease_until > r.now)
            return { kind: 'busy' };
        }
        const pending = await tx
          .selectFrom('refunds')
          .select(sql<number>`coalesce(sum(amount_fen), 0)`.as('fen'))
          .where('trade_id', '=', trade.id)
          .where('kind', '=', 'insurance')
          .where('status', '=', 'PROCESSING')
          .where('out_request_no', '<>', r.outRequestNo)
          .executeTakeFirstOrThrow();
        if (t.insurance_refunded_fen + Number(pending.fen) + r.amountFen > t.insurance_fen)
          throw new Refused({ kind: 'exceeded' });
        const row = prior
          ? await tx
              .updateTable('refunds')
              .set({
                status: 'PROCESSING',
                fail_code: null,
                finished_at: null,
                lease_until: leaseUntil,
                updated_at: r.now,
              })
              .where('id', '=', prior.id)
              .returningAll()
              .executeTakeFirstOrThrow()
          : await tx
              .insertInto('refunds')
              .values({
                trade_id: trade.id,
                app_id: trade.app_id,
                out_request_no: r.outRequestNo,
                kind: 'insurance',
                amount_fen: r.amountFen,
                status: 'PROCESSING',
                reason: 'insurance refunded through the medical-insurance centre',
                hospital_id: null,
                terminal_id: null,
                channel_refund_no: null,
                fail_code: null,
                created_at: r.now,
                updated_at: r.now,
                finished_at: null,
                lease_until: leaseUntil,
              })
              .returningAll()
              .executeTakeFirstOrThrow();
        return { kind: 'reserved', refund: row };
      });
    } catch (e) {
      if (e instanceof Refused) return e.outcome;
      throw e;
    }
  }

  /**
   * The centre refunded: PROCESSING → SUCCESS with its refund number, and the trade's insurance_refunded_fen
   * raised (guarded, never above insurance_fen), in one transaction. The trade as it is now, or undefined when
   * the refund was not PROCESSING (finished by another caller).
   */
  async completeInsuranceRefund(
    refund: Pick<Refund, 'id' | 'trade_id' | 'amount_fen'>,
    r: { refundNo: string; now: Date },
  ): Promise<Trade | undefined> {
    return this.db.transaction().execute(async (tx) => {
      const done = await tx
        .updateTable('refunds')
        .set({
          status: 'SUCCESS',
          channel_refund_no: r.refundNo.slice(0, 64),
          finished_at: r.now,
          updated_at: r.now,
          lease_until: null,
        })
        .where('id', '=', refund.id)
        .where('status', '=', 'PROCESSING')
        .returning('id')
        .executeTakeFirst();
      if (!done) return undefined;
      return tx
        .updateTable('trades')
        .set((eb) => ({
          insurance_refunded_fen: eb('insurance_refunded_fen', '+', refund.amount_fen),
          updated_at: r.now,
        }))
        .where('id', '=', refund.trade_id)
        .where((eb) =>
          eb(eb('insurance_refunded_fen', '+', refund.amount_fen), '<=', eb.ref('insurance_fen')),
        )
        .returningAll()
        .executeTakeFirst();
    });
  }

  /** The centre refused: PROCESSING → FAILED with its code (the amount is no longer reserved). */
  async failInsuranceRefund(id: number, code: string, now: Date): Promise<void> {
    await this.db
      .updateTable('refunds')
      .set({
        status: 'FAILED',
        fail_code: code.slice(0, 64),
        finished_at: now,
        updated_at: now,
        lease_until: null,
      })
      .where('id', '=', id)
      .where('status', '=', 'PROCESSING')
      .execute();
  }

  /** The centre's answer is unknown: the refund stays PROCESSING (reserved), its lease let go for a repeat. */
  async releaseInsuranceRefund(id: number, now: Date): Promise<void> {
    await this.db
      .updateTable('refunds')
      .set({ lease_until: null, updated_at: now })
      .where('id', '=', id)
      .where('status', '=', 'PROCESSING')
      .execute();
  }

  // ---- fee uploads left at the centre ----------------------------------------------------------------------

  /** Keeps an upload to revoke (once per trade: a repeat changes nothing). */
  async leaveUpload(u: {
    appId: string;
    tradeId: number;
    outTradeNo: string;
    ref: string;
    reason: string;
    now: Date;
  }): Promise<void> {
    await this.db
      .insertInto('medicare_revocations')
      .values({
        app_id: u.appId,
        trade_id: u.tradeId,
        out_trade_no: u.outTradeNo,
        ref: u.ref,
        reason: u.reason.slice(0, 64),
        status: 'PENDING',
        last_error: null,
        next_at: u.now,
        lease_until: null,
        created_at: u.now,
        updated_at: u.now,
      })
      .onConflict((oc) => oc.column('trade_id').doNothing())
      .execute();
  }

  /** The upload kept for a trade, if any. */
  async revocationOf(tradeId: number): Promise<MedicareRevocation | undefined> {
    return this.db
      .selectFrom('medicare_revocations')
      .selectAll()
      .where('trade_id', '=', tradeId)
      .executeTakeFirst();
  }

  /**
   * Claims uploads due for revocation (not DONE, next_at passed, not leased), with a lease: FOR UPDATE SKIP
   * LOCKED, so instances never work on the same one at once. `tradeId` claims that one only (a notification).
   */
  async claimRevocations(
    now: Date,
    leaseMs: number,
    limit: number,
    tradeId?: number,
  ): Promise<MedicareRevocation[]> {
    const leaseUntil = new Date(now.getTime() + leaseMs);
    const r = await sql<MedicareRevocation>`
      UPDATE medicare_revocations SET lease_until = ${leaseUntil}, attempts = attempts + 1, updated_at = ${now}
      WHERE id IN (
        SELECT id FROM medicare_revocations
        WHERE status <> 'DONE' AND (lease_until IS NULL OR lease_until < ${now})
          AND ${tradeId === undefined ? sql`next_at <= ${now}` : sql`trade_id = ${tradeId}`}
        ORDER BY next_at
        LIMIT ${limit}
        FOR UPDATE SKIP LOCKED)
      RETURNING *`.execute(this.db);
    return r.rows;
  }

  /** The outcome of one attempt: DONE, or PENDING / FAILED again at `nextAt`; the lease let go. */
  async finishRevocation(
    id: number,
    o: { status: 'DONE' | 'PENDING' | 'FAILED'; error: string | null; nextAt: Date; now: Date },
  ): Promise<void> {
    await this.db
      .updateTable('medicare_revocations')
      .set({
        status: o.status,
        last_error: o.error === null ? null : o.error.slice(0, 300),
        next_at: o.nextAt,
        lease_until: null,
        updated_at: o.now,
      })
      .where('id', '=', id)
      .execute();
  }

  /** Uploads not yet revoked, for operators (FAILED first). */
  async openRevocations(appId: string, limit = 100): Promise<MedicareRevocation[]> {
    return this.db
      .selectFrom('medicare_revocations')
      .selectAll()
      .where('app_id', '=', appId)
      .where('status', '<>', 'DONE')
      .orderBy('status')
      .orderBy('next_at')
      .limit(limit)
      .execute();
  }
}
