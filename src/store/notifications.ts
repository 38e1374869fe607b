import { sql, type QueryCreator, type Selectable } from 'kysely';
import type { Db } from './db.js';
import type { Database, Notification, NotifyAttemptsTable, Trade } from './schema.js';

/**
 * The notification outbox (notifications, notify_attempts): rows are written with the trade's state change
 * (TradeRepository.transition); this repository claims them for delivery, records the attempts and serves the
 * operators' tools. Claims use FOR UPDATE SKIP LOCKED and a lease (lease_until, lease_owner), so several
 * instances never deliver the same notification at once.
 */

/** Appended to lease_owner by a resend that arrives while an attempt is in flight. */
const RESEND_MARK = '+resend';

export type NotificationStatus = Notification['status'];
export type NotifyAttempt = Selectable<NotifyAttemptsTable>;

/** A claimed notification with its trade; null when the trade is missing. */
export interface ClaimedNotification {
  notification: Notification;
  trade: Trade | null;
  /** The app's notify allow-list (apps.notify_private_cidrs, JSON text), read with the claim. */
  notifyPrivateCidrs: string | null;
}

/** One delivery attempt's outcome, recorded by recordAttempt. */
export interface AttemptRecord {
  notificationId: number;
  /** The claim the attempt was made under (the notification's lease_owner). */
  claim: string;
  /** 1 for the first attempt. */
  attempt: number;
  delivered: boolean;
  /** The notification's status unless a resend arrived meanwhile (then it stays PENDING, due as resent). */
  status: NotificationStatus;
  /** When the next attempt is due (unused when delivered, or when a resend arrived meanwhile). */
  nextAttemptAt: Date;
  startedAt: Date;
  finishedAt: Date;
  lastError: string | null;
  httpStatus: number | null;
  latencyMs: number;
  bodyExcerpt: string | null;
  error: string | null;
}

export interface NotificationListFilter {
  appId?: string | undefined;
  status?: NotificationStatus | undefined;
  outTradeNo?: string | undefined;
  limit: number;
}

/** A row of the operators' list: the notification with its trade's numbers. */
export interface NotificationListRow {
  id: number;
  notify_id: string;
  app_id: string;
  trade_no: string;
  channel_trade_no: string | null;
  out_trade_no: string;
  trade_status: string;
  url: string;
  status: NotificationStatus;
  attempts: number;
  next_attempt_at: Date;
  created_at: Date;
  delivered_at: Date | null;
  last_error: string | null;
}

/**
 * The claim: marks due rows as leased by `claim` and returns them (RETURNING *). Due: PENDING, next attempt
 * reached, and not leased (or leased by an instance that has died: its lease ran out).
 */
function claimStatement(
  db: QueryCreator<Database>,
  now: Date,
  claim: string,
  leaseMs: number,
  limit: number,
) {
  const leaseUntil = new Date(now.getTime() + leaseMs);
  return db
    .updateTable('notifications')
    .set({ lease_until: leaseUntil, lease_owner: claim })
    .where('id', 'in', (eb) =>
      eb
        .selectFrom('notifications')
        .select('id')
        // A literal, not a parameter: the partial index notifications_due (WHERE status = 'PENDING') serves
        // a prepared statement's generic plan too.
        .where('status', '=', sql.lit('PENDING'))
        .where('next_attempt_at', '<=', now)
        .where((w) => w.or([w('lease_until', 'is', null), w('lease_until', '<', now)]))
        .orderBy('next_attempt_at')
        .orderBy('id')
        .limit(limit)
        .forUpdate()
        .skipLocked(),
    )
    .returningAll();
}

/** The prefix of the notification's columns in the claim's join, so they do not collide with the trade's. */
const N = 'n__';
type Unprefixed<R, P extends string> = { [K in keyof R as K extends `${P}${infer C}` ? C : never]: R[K] };
type Unprefixed0<R, P extends string> = { [K in keyof R as K extends `${P}${string}` ? never : K]: R[K] };

/** Splits a joined row into its columns under `prefix` (the prefix taken off) and the others. */
function splitPrefixed<R extends object, P extends string>(
  row: R,
  prefix: P,
): [Unprefixed<R, P>, Unprefixed0<R, P>] {
  const prefixed: Record<string, unknown> = {};
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    if (k.startsWith(prefix)) prefixed[k.slice(prefix.length)] = v;
    else rest[k] = v;
  }
  return [prefixed as Unprefixed<R, P>, rest as Unprefixed0<R, P>];
}

export class NotificationRepository {
  constructor(private readonly db: Db) {}

  /**
   * Claims due notifications for one delivery pass: PENDING, due, and not leased (or leased by an instance
   * that has died: its lease ran out). FOR UPDATE SKIP LOCKED plus the lease means two instances never deliver
   * the same notification at once. `claim` identifies this pass; it is the lease_owner of every claimed row.
   */
  async claimDue(now: Date, claim: string, leaseMs: number, limit: number): Promise<Notification[]> {
    return claimStatement(this.db, now, claim, leaseMs, limit).execute();
  }

  /**
   * claimDue, and the trade of each claimed notification (and its app's notify allow-list) read in the same
   * statement, so that a delivery needs no read of its own. The trade's columns come back as plain columns
   * (t.*), parsed by the driver as TradeRepository.byId's are (timestamptz as Date, bigint as number).
   */
  async claimDueWithTrades(
    now: Date,
    claim: string,
    leaseMs: number,
    limit: number,
  ): Promise<ClaimedNotification[]> {
    const rows = await this.db
      .with('c', (db) => claimStatement(db, now, claim, leaseMs, limit))
      .selectFrom('c')
      .leftJoin('trades as t', 't.id', 'c.trade_id')
      .leftJoin('apps as a', 'a.id', 'c.app_id')
      .select([
        'c.id as n__id',
        'c.notify_id as n__notify_id',
        'c.app_id as n__app_id',
        'c.trade_id as n__trade_id',
        'c.url as n__url',
        'c.trade_status as n__trade_status',
        'c.status as n__status',
        'c.attempts as n__attempts',
        'c.next_attempt_at as n__next_attempt_at',
        'c.lease_until as n__lease_until',
        'c.lease_owner as n__lease_owner',
        'c.created_at as n__created_at',
        'c.delivered_at as n__delivered_at',
        'c.last_error as n__last_error',
        'a.notify_private_cidrs as n__notify_private_cidrs',
      ])
      .selectAll('t')
      .execute();
    return rows.map((row) => {
      const [{ notify_private_cidrs, ...notification }, trade] = splitPrefixed(row, N);
      // LEFT JOIN: either the whole trade row or every column null.
      return {
        notification: notification satisfies Notification,
        trade: trade.id === null ? null : (trade as Trade),
        notifyPrivateCidrs: notify_private_cidrs,
      };
    });
  }

  /**
   * Records a delivery attempt in one statement: the attempt is recorded whatever happens (a data-modifying
   * CTE always runs to completion, read or not), and the notification is updated (status, next attempt, lease
   * released) only while the attempt's claim still holds it — or the claim with a resend's mark, which keeps
   * it due as resent. True when the claim still held it.
   */
  async recordAttempt(a: AttemptRecord): Promise<boolean> {
    const resent = `${a.claim}${RESEND_MARK}`;
    const updated = await this.db
      .with('u', (db) =>
        db
          .updateTable('notifications')
          .set({
            attempts: sql<number>`attempts + 1`,
            status: sql<NotificationStatus>`CASE WHEN lease_owner = ${resent} THEN 'PENDING' ELSE ${a.status} END`,
            next_attempt_at: a.delivered
              ? sql<Date>`next_attempt_at`
              : sql<Date>`CASE WHEN lease_owner = ${resent} THEN next_attempt_at ELSE ${a.nextAttemptAt}::timestamptz END`,
            ...(a.delivered ? { delivered_at: a.finishedAt } : {}),
            last_error: a.lastError,
            lease_until: null,
            lease_owner: null,
          })
          .where('id', '=', a.notificationId)
          .where('lease_owner', 'in', [a.claim, resent])
          .returning('id'),
      )
      .with('a', (db) =>
        db.insertInto('notify_attempts').values({
          notification_id: a.notificationId,
          attempt: a.attempt,
          started_at: a.startedAt,
          http_status: a.httpStatus,
          latency_ms: a.latencyMs,
          body_excerpt: a.bodyExcerpt,
          error: a.error,
        }),
      )
      .selectFrom('u')
      .select('u.id')
      .executeTakeFirst();
    return updated !== undefined;
  }

  /**
   * Makes a notification due at `now` again (PENDING), whatever its state; false when unknown. The attempt
   * counter is kept. If an attempt is in flight, its claim is marked so that the notification stays due once
   * that attempt ends (see recordAttempt).
   */
  async resend(notifyId: string, now: Date): Promise<boolean> {
    const r = await this.db
      .updateTable('notifications')
      .set({
        status: 'PENDING',
        next_attempt_at: now,
        lease_owner: sql<string | null>`CASE WHEN lease_owner IS NULL OR lease_owner LIKE ${`%${RESEND_MARK}`}
        THEN lease_owner ELSE lease_owner || ${RESEND_MARK} END`,
      })
      .where('notify_id', '=', notifyId)
      .returning('id')
      .executeTakeFirst();
    return r !== undefined;
  }

  /** Notifications with their trade's numbers, newest first (at most filter.limit). */
  async list(filter: NotificationListFilter): Promise<NotificationListRow[]> {
    let q = this.db
      .selectFrom('notifications as n')
      .innerJoin('trades as t', 't.id', 'n.trade_id')
      .select([
        'n.id',
        'n.notify_id',
        'n.app_id',
        't.trade_no',
        't.channel_trade_no',
        't.out_trade_no',
        'n.trade_status',
        'n.url',
        'n.status',
        'n.attempts',
        'n.next_attempt_at',
        'n.created_at',
        'n.delivered_at',
        'n.last_error',
      ])
      .orderBy('n.id', 'desc')
      .limit(filter.limit);
    if (filter.appId !== undefined) q = q.where('n.app_id', '=', filter.appId);
    if (filter.status !== undefined) q = q.where('n.status', '=', filter.status);
    if (filter.outTradeNo !== undefined) q = q.where('t.out_trade_no', '=', filter.outTradeNo);
    return q.execute();
  }

  /** Every notification of the given trades, oldest first. */
  async ofTrades(tradeIds: readonly number[]): Promise<Notification[]> {
    if (tradeIds.length === 0) return [];
    return this.db
      .selectFrom('notifications')
      .selectAll()
      .where('trade_id', 'in', [...tradeIds])
      .orderBy('id')
      .execute();
  }

  /** Every attempt of the given notifications, by notification, then attempt, in order. */
  async attemptsOf(notificationIds: readonly number[]): Promise<NotifyAttempt[]> {
    return this.db
      .selectFrom('notify_attempts')
      .selectAll()
      .where('notification_id', 'in', [...notificationIds])
      .orderBy('notification_id')
      .orderBy('attempt')
      .orderBy('id')
      .execute();
  }
}
