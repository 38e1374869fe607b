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

/** The trade's columns a notification is made of (services/notify.ts: the form, its biz_content, its sign_type). */
export const NOTIFY_TRADE_COLUMNS = [
  'id',
  'trade_no',
  'out_trade_no',
  'channel_trade_no',
  'buyer_user_id',
  'total_fen',
  'insurance_fen',
  'refunded_fen',
  'paid_at',
  'closed_at',
  'pay_type',
  'extra',
] as const;

/** What a notification needs of its trade. */
export type NotifyTrade = Pick<Trade, (typeof NOTIFY_TRADE_COLUMNS)[number]>;

/** The claim's select list of the trade's columns (t.id, t.trade_no, …): only what a notification needs. */
const NOTIFY_TRADE_SELECT = sql.raw(NOTIFY_TRADE_COLUMNS.map((c) => `t.${c}`).join(', '));

/** The notification's columns a delivery uses (services/notify.ts deliverOne): what the claim returns of it. */
export const NOTIFY_DELIVERY_COLUMNS = [
  'id',
  'notify_id',
  'app_id',
  'trade_id',
  'url',
  'trade_status',
  'attempts',
  'lease_owner',
] as const;

/** What a delivery needs of its notification. */
export type DeliveryNotification = Pick<Notification, (typeof NOTIFY_DELIVERY_COLUMNS)[number]>;

/** A claimed notification with its trade; null when the trade is missing. */
export interface ClaimedNotification {
  notification: DeliveryNotification;
  trade: NotifyTrade | null;
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

/** The claim's select list of the notification's columns (c.id AS n__id, …), so they do not collide with the trade's. */
const NOTIFY_DELIVERY_SELECT = sql.raw(NOTIFY_DELIVERY_COLUMNS.map((c) => `c.${c} AS n__${c}`).join(', '));
const NOTIFY_DELIVERY_RETURNING = sql.raw(NOTIFY_DELIVERY_COLUMNS.join(', '));

/**
 * The common table expressions that record delivery attempts: `r` (the records, one JSON parameter read with
 * json_to_recordset, so the statement's text is the same for any number of them: one prepared statement), `u`
 * (the guarded update of each notification still held by the attempt's claim, or by the claim with a resend's
 * mark, which keeps it due as resent; RETURNING the ids kept) and `a` (the attempt rows, written whatever
 * happens: a data-modifying CTE always runs to completion, read or not).
 */
function recordCtes(records: readonly AttemptRecord[]) {
  const rows = records.map((a) => ({
    id: a.notificationId,
    claim: a.claim,
    resent: `${a.claim}${RESEND_MARK}`,
    attempt: a.attempt,
    delivered: a.delivered,
    status: a.status,
    next_at: a.nextAttemptAt.toISOString(),
    started_at: a.startedAt.toISOString(),
    finished_at: a.finishedAt.toISOString(),
    last_error: a.lastError,
    http_status: a.httpStatus,
    latency_ms: a.latencyMs,
    body_excerpt: a.bodyExcerpt,
    error: a.error,
  }));
  return sql`
    r AS (
      SELECT * FROM json_to_recordset(${JSON.stringify(rows)}::json) AS r(
        id bigint, claim text, resent text, attempt integer, delivered boolean, status text,
        next_at timestamptz, started_at timestamptz, finished_at timestamptz, last_error text,
        http_status integer, latency_ms integer, body_excerpt text, error text)
    ),
    u AS (
      UPDATE notifications n SET
        attempts = n.attempts + 1,
        status = CASE WHEN n.lease_owner = r.resent THEN 'PENDING' ELSE r.status END,
        next_attempt_at = CASE WHEN r.delivered OR n.lease_owner = r.resent THEN n.next_attempt_at
                               ELSE r.next_at END,
        delivered_at = CASE WHEN r.delivered THEN r.finished_at ELSE n.delivered_at END,
        last_error = r.last_error,
        lease_until = NULL,
        lease_owner = NULL
      FROM r
      -- The ids as an array first: an index scan of the primary key, never a scan of the whole table (the
      -- planner cannot tell how few rows json_to_recordset gives).
      WHERE n.id = ANY (ARRAY(SELECT r.id FROM r)) AND n.id = r.id AND n.lease_owner IN (r.claim, r.resent)
      RETURNING n.id
    ),
    a AS (
      INSERT INTO notify_attempts (notification_id, attempt, started_at, http_status, latency_ms, body_excerpt, error)
      SELECT id, attempt, started_at, http_status, latency_ms, body_excerpt, error FROM r
    )`;
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
   * statement, so that a delivery needs no read of its own. The trade's columns a notification needs
   * (NOTIFY_TRADE_COLUMNS) come back as plain columns, parsed by the driver as TradeRepository.byId's are
   * (timestamptz as Date, bigint as number).
   */
  async claimDueWithTrades(
    now: Date,
    claim: string,
    leaseMs: number,
    limit: number,
  ): Promise<ClaimedNotification[]> {
    return (await this.recordAndClaim([], now, claim, leaseMs, limit)).claimed;
  }

  /**
   * Records finished attempts (as recordAttempts) and claims due notifications with their trades (as
   * claimDueWithTrades) in one statement: a notifier that keeps deliveries in flight writes the outcomes of the
   * ones that ended and takes as many new ones in one round trip and one commit. The notifications being
   * recorded are never claimed by the same statement (both parts see the rows as they were before it), nor
   * those in `busy` (the caller's deliveries still in flight: not taken again by their own notifier even if
   * their lease has run out, say after the clock jumped).
   */
  async recordAndClaim(
    records: readonly AttemptRecord[],
    now: Date,
    claim: string,
    leaseMs: number,
    limit: number,
    busy: readonly number[] = [],
  ): Promise<{ kept: boolean[]; claimed: ClaimedNotification[] }> {
    const leaseUntil = new Date(now.getTime() + leaseMs);
    const r = await sql<Record<string, unknown>>`
      WITH ${recordCtes(records)},
      c AS (
        UPDATE notifications SET lease_until = ${leaseUntil}, lease_owner = ${claim}
        WHERE id IN (
          SELECT id FROM notifications
          -- A literal, not a parameter: the partial index notifications_due (WHERE status = 'PENDING') serves a
          -- prepared statement's generic plan too.
          WHERE status = 'PENDING' AND next_attempt_at <= ${now}
            AND (lease_until IS NULL OR lease_until < ${now})
            AND id <> ALL (ARRAY(SELECT r.id FROM r))
            AND id <> ALL (ARRAY(SELECT b::bigint FROM json_array_elements_text(${JSON.stringify(busy)}::json) AS b))
          ORDER BY next_attempt_at, id
          LIMIT ${limit}
          FOR UPDATE SKIP LOCKED)
        RETURNING ${NOTIFY_DELIVERY_RETURNING}
      )
      -- The kept ids as text: computed once (an InitPlan) and repeated on every row, read from the first only.
      SELECT (SELECT string_agg(u.id::text, ',') FROM u) AS kept__,
        ${NOTIFY_DELIVERY_SELECT}, a.notify_private_cidrs AS n__notify_private_cidrs, ${NOTIFY_TRADE_SELECT}
      -- One row even when nothing is claimed: it carries the kept ids.
      FROM (SELECT 1) AS one
      LEFT JOIN c ON true
      LEFT JOIN trades t ON t.id = c.trade_id
      LEFT JOIN apps a ON a.id = c.app_id`.execute(this.db);
    const keptText = r.rows[0]?.['kept__'];
    const keptIds = new Set(typeof keptText === 'string' ? keptText.split(',').map(Number) : []);
    const claimed: ClaimedNotification[] = [];
    for (const row of r.rows) {
      if (row['n__id'] === null || row['n__id'] === undefined) continue;
      const notification: Record<string, unknown> = {};
      for (const c of NOTIFY_DELIVERY_COLUMNS) notification[c] = row[`n__${c}`];
      // LEFT JOIN: either the whole trade row or every column null.
      let trade: Record<string, unknown> | null = null;
      if (row['id'] !== null) {
        trade = {};
        for (const c of NOTIFY_TRADE_COLUMNS) trade[c] = row[c];
      }
      claimed.push({
        notification: notification as unknown as DeliveryNotification,
        trade: trade as unknown as NotifyTrade | null,
        notifyPrivateCidrs: (row['n__notify_private_cidrs'] ?? null) as string | null,
      });
    }
    return { kept: records.map((a) => keptIds.has(a.notificationId)), claimed };
  }

  /**
   * Records a delivery attempt in one statement (recordAttempts with one record). True when the claim still
   * held the notification.
   */
  async recordAttempt(a: AttemptRecord): Promise<boolean> {
    const [kept] = await this.recordAttempts([a]);
    return kept ?? false;
  }

  /**
   * Records delivery attempts in one statement, whatever their number: every attempt is recorded whatever
   * happens (a data-modifying CTE always runs to completion, read or not), and each notification is updated
   * (status, next attempt, lease released) only while its attempt's claim still holds it — or the claim with a
   * resend's mark, which keeps it due as resent. For each record, in order: true when its claim still held it.
   * The records travel as one JSON parameter (json_to_recordset), so the statement's text is the same for any
   * number of them (one prepared statement).
   */
  async recordAttempts(records: readonly AttemptRecord[]): Promise<boolean[]> {
    if (records.length === 0) return [];
    const r = await sql<{ id: number | string }>`WITH ${recordCtes(records)} SELECT id FROM u`.execute(
      this.db,
    );
    const kept = new Set(r.rows.map((x) => Number(x.id)));
    return records.map((a) => kept.has(a.notificationId));
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
