import type { Selectable } from 'kysely';
import { isUniqueViolation, type Db } from './db.js';
import type { DeskRequestsTable } from './schema.js';
import type { Fen } from '../domain/money.js';

export type DeskRequest = Selectable<DeskRequestsTable>;
export type DeskRequestStatus = DeskRequest['status'];

export interface NewDeskRequest {
  appId: string;
  tradeId: number;
  outTradeNo: string;
  kind: 'refund' | 'cancel';
  /** The refund's amount; null for a cancel. */
  amountFen: Fen | null;
  reason: string;
  outRequestNo: string;
  /** PENDING when a second person must approve it; APPROVED when the app does not ask for approval. */
  status: 'PENDING' | 'APPROVED';
  requestedBy: string;
  requestedAt: Date;
}

/**
 * The desk's money requests (desk_requests, migration 021): a refund or cancel asked by one operator and, when the
 * app asks for it (apps.desk_approval), approved or rejected by another. Every change of state is a guarded
 * UPDATE … WHERE status = <expected>, so two approvals of one request never both win, and the table's CHECK keeps
 * the approver apart from the requester even if a caller forgot to.
 */
export class DeskRequestRepository {
  constructor(private readonly db: Db) {}

  /**
   * Records a request; a repeat of the same request number for the app (a form submitted twice) answers the
   * request already stored, with `created: false`.
   */
  async create(r: NewDeskRequest): Promise<{ request: DeskRequest; created: boolean }> {
    try {
      const request = await this.db
        .insertInto('desk_requests')
        .values({
          app_id: r.appId,
          trade_id: r.tradeId,
          out_trade_no: r.outTradeNo,
          kind: r.kind,
          amount_fen: r.amountFen,
          reason: r.reason,
          out_request_no: r.outRequestNo,
          status: r.status,
          requested_by: r.requestedBy,
          requested_at: r.requestedAt,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return { request: normalise(request), created: true };
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      const existing = await this.byRequestNo(r.appId, r.outRequestNo);
      if (!existing) throw err;
      return { request: existing, created: false };
    }
  }

  async get(id: number): Promise<DeskRequest | undefined> {
    if (!Number.isSafeInteger(id) || id <= 0) return undefined;
    const row = await this.db.selectFrom('desk_requests').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? normalise(row) : undefined;
  }

  async byRequestNo(appId: string, outRequestNo: string): Promise<DeskRequest | undefined> {
    const row = await this.db
      .selectFrom('desk_requests')
      .selectAll()
      .where('app_id', '=', appId)
      .where('out_request_no', '=', outRequestNo)
      .executeTakeFirst();
    return row ? normalise(row) : undefined;
  }

  /** A trade's requests, newest first. */
  async ofTrade(tradeId: number): Promise<DeskRequest[]> {
    const rows = await this.db
      .selectFrom('desk_requests')
      .selectAll()
      .where('trade_id', '=', tradeId)
      .orderBy('id', 'desc')
      .execute();
    return rows.map(normalise);
  }

  /** Requests in one of `statuses` of these apps (null = every app), oldest first, at most `limit`. */
  async list(
    apps: readonly string[] | null,
    statuses: readonly DeskRequestStatus[],
    limit: number,
  ): Promise<DeskRequest[]> {
    if ((apps !== null && apps.length === 0) || statuses.length === 0) return [];
    let q = this.db
      .selectFrom('desk_requests')
      .selectAll()
      .where('status', 'in', [...statuses]);
    if (apps !== null) q = q.where('app_id', 'in', [...apps]);
    const rows = await q.orderBy('id').limit(limit).execute();
    return rows.map(normalise);
  }

  /**
   * PENDING -> APPROVED or REJECTED by `by`, never the requester; undefined when the request is not PENDING any
   * more (decided meanwhile) or `by` asked for it.
   */
  async decide(
    id: number,
    to: 'APPROVED' | 'REJECTED',
    by: string,
    at: Date,
    result: string | null = null,
  ): Promise<DeskRequest | undefined> {
    const row = await this.db
      .updateTable('desk_requests')
      .set({ status: to, decided_by: by, decided_at: at, result })
      .where('id', '=', id)
      .where('status', '=', 'PENDING')
      .where('requested_by', '<>', by)
      .returningAll()
      .executeTakeFirst();
    return row ? normalise(row) : undefined;
  }

  /**
   * APPROVED -> DONE or FAILED with the service's answer (JSON); or, for an unknown outcome, stays APPROVED with
   * the answer noted (to: 'APPROVED'). Undefined when it was not APPROVED.
   */
  async finish(
    id: number,
    to: 'DONE' | 'FAILED' | 'APPROVED',
    result: string,
  ): Promise<DeskRequest | undefined> {
    const row = await this.db
      .updateTable('desk_requests')
      .set({ status: to, result })
      .where('id', '=', id)
      .where('status', '=', 'APPROVED')
      .returningAll()
      .executeTakeFirst();
    return row ? normalise(row) : undefined;
  }
}

/** bigint columns come back as text from some drivers: make the numbers numbers. */
function normalise(row: DeskRequest): DeskRequest {
  return {
    ...row,
    id: Number(row.id),
    trade_id: Number(row.trade_id),
    amount_fen: row.amount_fen === null ? null : Number(row.amount_fen),
  };
}
