import type { Db } from './db.js';
import type { ChannelCall } from '../channels/channel.js';
import type { Selectable } from 'kysely';
import type { ChannelCallsTable } from './schema.js';

const MAX_TEXT = 4000;
const cut = (s: string | undefined) =>
  s === undefined ? null : s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s;

export type ChannelCallRow = Selectable<ChannelCallsTable>;

/**
 * The record of exchanges with the providers (already redacted by the channels). Writing never delays or
 * fails a payment: a failed write is logged and dropped.
 */
export class ChannelCallLog {
  constructor(
    private readonly db: Db,
    private readonly onError: (err: unknown) => void,
  ) {}

  record(appId: string, channelId: string, call: ChannelCall, at: Date): void {
    void this.db
      .insertInto('channel_calls')
      .values({
        app_id: appId,
        channel_id: channelId,
        operation: call.operation.slice(0, 100),
        out_trade_no: call.outTradeNo ?? null,
        started_at: at,
        latency_ms: Math.max(0, Math.round(call.latencyMs)),
        http_status: call.httpStatus ?? null,
        outcome: call.outcome.slice(0, 200),
        request: cut(call.request),
        response: cut(call.response),
        error: cut(call.error),
      })
      .execute()
      .catch(this.onError);
  }

  list(filter: { appId?: string; outTradeNo?: string; limit: number }): Promise<ChannelCallRow[]> {
    let q = this.db.selectFrom('channel_calls').selectAll().orderBy('id', 'desc').limit(filter.limit);
    if (filter.appId) q = q.where('app_id', '=', filter.appId);
    if (filter.outTradeNo) q = q.where('out_trade_no', '=', filter.outTradeNo);
    return q.execute();
  }
}
