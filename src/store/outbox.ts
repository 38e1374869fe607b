import { sql, type QueryCreator } from 'kysely';
import type { Database, Trade } from './schema.js';

/**
 * The notification (outbox) for a trade that has a notify_url and has just become one of `notifyOn`, as a CTE
 * reading the updated trade from `t`: written in the same statement as the state change, so there is no
 * notification before the commit and none is lost.
 */
export function outbox(
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

/**
 * The same notification as `outbox`, as SQL text for a fixed statement (TradeRepository.markPaid,
 * RefundRepository.complete): `now` is the statement's parameter holding the time (e.g. `$5`), `notifyOn` the
 * states that notify. The updated trade is read from `t`.
 */
export function outboxText(now: string, notifyOn: ReadonlyArray<'TRADE_SUCCESS' | 'TRADE_CLOSED'>): string {
  return (
    'insert into notifications (notify_id, app_id, trade_id, url, trade_status, status, attempts, ' +
    `next_attempt_at, created_at) select replace(gen_random_uuid()::text, '-', ''), t.app_id, t.id, t.notify_url, ` +
    `t.status, 'PENDING', 0, ${now}::timestamptz, ${now}::timestamptz from t ` +
    `where t.notify_url is not null and t.status in (${notifyOn.map((s) => `'${s}'`).join(', ')})`
  );
}
