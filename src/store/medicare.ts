import type { Insertable, Selectable } from 'kysely';
import type { Db } from './db.js';
import type { MedicareAuthsTable, MedicareTokensTable, Trade } from './schema.js';
import type { Fen } from '../domain/money.js';

/**
 * The medical-insurance side's records (spec 6.4–6.7): authorisation requests and their single-use auth_codes
 * (medicare_auths), the pay_auth_no tokens they become (medicare_tokens), and the insurance refunds the HIS
 * reports (refunds of kind 'insurance').
 */

export type MedicareAuth = Selectable<MedicareAuthsTable>;
export type MedicareToken = Selectable<MedicareTokensTable>;

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
  constructor(readonly outcome: { kind: 'conflict' } | { kind: 'exceeded' }) {
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
      if (e instanceof Refused) return e.outcome;
      throw e;
    }
  }
}
