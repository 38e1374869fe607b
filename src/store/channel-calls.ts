import type { Db } from './db.js';
import type { ChannelCall } from '../channels/channel.js';
import type { Insertable, Selectable } from 'kysely';
import type { ChannelCallsTable } from './schema.js';

const MAX_TEXT = 4000;
const MAX_BATCH = 200;
const cut = (s: string | undefined) =>
  s === undefined ? null : s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s;

export type ChannelCallRow = Selectable<ChannelCallsTable>;

/**
 * The record of exchanges with the providers (already redacted by the channels). Writing never delays or
 * fails a payment: rows are buffered and written together (one INSERT per FLUSH_MS or MAX_BATCH rows); a failed
 * write is logged and dropped. `flush()` writes what is buffered (at shutdown, and in tests).
 */
export class ChannelCallLog {
  private buffer: Insertable<ChannelCallsTable>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly onError: (err: unknown) => void,
    private readonly flushMs = 200,
  ) {}

  record(appId: string, channelId: string, call: ChannelCall, at: Date): void {
    this.buffer.push({
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
    });
    if (this.buffer.length >= MAX_BATCH) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  /** Writes the buffered records; resolves when they (and earlier writes) are written or dropped. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const rows = this.buffer;
    this.buffer = [];
    if (rows.length > 0)
      this.writing = this.writing.then(() =>
        this.db
          .insertInto('channel_calls')
          .values(rows)
          .execute()
          .then(
            () => undefined,
            (e: unknown) => this.onError(e),
          ),
      );
    return this.writing;
  }

  async list(filter: { appId?: string; outTradeNo?: string; limit: number }): Promise<ChannelCallRow[]> {
    await this.flush();
    let q = this.db.selectFrom('channel_calls').selectAll().orderBy('id', 'desc').limit(filter.limit);
    if (filter.appId) q = q.where('app_id', '=', filter.appId);
    if (filter.outTradeNo) q = q.where('out_trade_no', '=', filter.outTradeNo);
    return q.execute();
  }
}
