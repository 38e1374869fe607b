import { sql, type Insertable, type Selectable } from 'kysely';
import type { Db } from './db.js';
import type { ChannelCall } from '../domain/payment.js';
import type { ChannelCallsTable, NotifyRejectionsTable } from './schema.js';
import { formatShanghai } from '../domain/clock.js';

const MAX_TEXT = 4000;
const MAX_BATCH = 200;
/**
 * Unverified provider notifications are counted, and only this many are recorded per app, channel and hour (on
 * each instance), their texts cut to SAMPLE_TEXT: junk posted to the notify URL cannot grow the table.
 */
export const REJECTED_SAMPLE_PER_HOUR = 20;
const SAMPLE_TEXT = 512;

// A UTF-16 surrogate without its other half (not valid UTF-8; also what a cut in the middle of a pair leaves).
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Text PostgreSQL can store: NUL (which text and jsonb refuse) is written as the six characters `\u0000`, a lone
 * surrogate as U+FFFD; longer than `max`, the text is cut (with '…').
 */
export function storableText(s: string, max = MAX_TEXT): string {
  let out = s.includes('\u0000') ? s.replaceAll('\u0000', '\\u0000') : s;
  if (out.length > max) out = `${out.slice(0, max)}…`;
  return out.replace(LONE_SURROGATE, '\uFFFD');
}

const cut = (s: string | undefined, max = MAX_TEXT) => (s === undefined ? null : storableText(s, max));

/** A data error (SQLSTATE class 22) or a refused row (class 23): that row, not the database, is the problem. */
function isRowError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^2[23]/.test(code);
}

/** What a failed write is logged with: the SQLSTATE and the message without any quoted value. */
function describe(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  const message = e instanceof Error ? e.message : String(e);
  return `${typeof code === 'string' ? `SQLSTATE ${code}: ` : ''}${message.replace(/"[^"]*"|'[^']*'/g, '"…"').slice(0, 200)}`;
}

export type ChannelCallRow = Selectable<ChannelCallsTable>;
export type NotifyRejectionRow = Selectable<NotifyRejectionsTable>;

interface PendingCount {
  app_id: string;
  channel_id: string;
  day: string;
  rejected: number;
  first_at: Date;
  last_at: Date;
  last_reason: string;
}

/**
 * The record of exchanges with the providers (already redacted by the channels). Writing never delays or
 * fails a payment: rows are buffered and written together (one INSERT per FLUSH_MS or MAX_BATCH rows). A batch
 * the database refuses because of one row is written again row by row, so only that row is dropped (counted,
 * and logged without its content); a batch that fails otherwise (the database is away) is logged and dropped.
 * `flush()` writes what is buffered (at shutdown, and in tests).
 *
 * Unverified provider notifications (`rejectedNotification`) are counted per app, channel and day
 * (notify_rejections) and only sampled here.
 */
export class ChannelCallLog {
  private buffer: Insertable<ChannelCallsTable>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private counts = new Map<string, PendingCount>();
  private sampledThisHour = new Map<string, number>();
  private samplesHour = -1;
  private droppedRows = 0;

  constructor(
    private readonly db: Db,
    private readonly onError: (err: unknown) => void,
    private readonly flushMs = 200,
  ) {}

  record(appId: string, channelId: string, call: ChannelCall, at: Date): void {
    this.push(appId, channelId, call, at, MAX_TEXT);
  }

  private push(appId: string, channelId: string, call: ChannelCall, at: Date, max: number): void {
    this.buffer.push({
      app_id: storableText(appId, 100),
      channel_id: storableText(channelId, 100),
      operation: storableText(call.operation, 100),
      out_trade_no: call.outTradeNo === undefined ? null : storableText(call.outTradeNo, 100),
      started_at: at,
      latency_ms: Number.isFinite(call.latencyMs)
        ? Math.min(Math.max(0, Math.round(call.latencyMs)), 2 ** 31 - 1)
        : 0,
      http_status:
        call.httpStatus !== undefined &&
        Number.isInteger(call.httpStatus) &&
        Math.abs(call.httpStatus) < 2 ** 31
          ? call.httpStatus
          : null,
      outcome: storableText(call.outcome, 200),
      request: cut(call.request, max),
      response: cut(call.response, max),
      error: cut(call.error, max),
    });
    if (this.buffer.length >= MAX_BATCH) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  /**
   * A provider notification that failed verification: counted (per app, channel and Asia/Shanghai day); its
   * records (`calls`, what the adapter recorded; a one-line record if it recorded nothing) are kept only while
   * the hour's sample is not full, and cut short. Returns whether this one was sampled.
   */
  rejectedNotification(
    appId: string,
    channelId: string,
    at: Date,
    reason: string,
    calls: readonly ChannelCall[],
  ): boolean {
    const day = formatShanghai(at).slice(0, 10);
    const key = `${appId}\u0001${channelId}\u0001${day}`;
    const why = storableText(reason, 200);
    const c = this.counts.get(key);
    if (c) {
      c.rejected++;
      if (at > c.last_at) c.last_at = at;
      c.last_reason = why;
    } else
      this.counts.set(key, {
        app_id: appId,
        channel_id: channelId,
        day,
        rejected: 1,
        first_at: at,
        last_at: at,
        last_reason: why,
      });

    const hour = Math.floor(at.getTime() / 3_600_000);
    if (hour !== this.samplesHour) {
      this.sampledThisHour.clear();
      this.samplesHour = hour;
    }
    const sampleKey = `${appId}\u0001${channelId}`;
    const taken = this.sampledThisHour.get(sampleKey) ?? 0;
    const sampled = taken < REJECTED_SAMPLE_PER_HOUR;
    if (sampled) {
      this.sampledThisHour.set(sampleKey, taken + 1);
      const records = calls.length
        ? calls
        : [{ operation: `${channelId}.notify`, latencyMs: 0, outcome: `rejected: ${reason}` }];
      for (const call of records) this.push(appId, channelId, call, at, SAMPLE_TEXT);
    }
    if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      this.timer.unref();
    }
    return sampled;
  }

  /** Records dropped since start because the database refused them. */
  get dropped(): number {
    return this.droppedRows;
  }

  /** Writes the buffered records and counts; resolves when they (and earlier writes) are written or dropped. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const rows = this.buffer;
    this.buffer = [];
    const counts = [...this.counts.values()];
    this.counts = new Map();
    if (rows.length > 0 || counts.length > 0)
      this.writing = this.writing.then(async () => {
        if (rows.length > 0) await this.write(rows);
        if (counts.length > 0) await this.writeCounts(counts);
      });
    return this.writing;
  }

  private insert(rows: Insertable<ChannelCallsTable>[]): Promise<unknown> {
    return this.db.insertInto('channel_calls').values(rows).execute();
  }

  private async write(rows: Insertable<ChannelCallsTable>[]): Promise<void> {
    try {
      await this.insert(rows);
      return;
    } catch (e) {
      if (!isRowError(e) || rows.length === 1) {
        this.drop(rows.length, e);
        return;
      }
    }
    // One row spoilt the batch: write them one by one, so only the bad ones are lost.
    let dropped = 0;
    let first: unknown = null;
    for (const row of rows) {
      try {
        await this.insert([row]);
      } catch (e) {
        dropped++;
        first ??= e;
      }
    }
    if (dropped > 0) this.drop(dropped, first);
  }

  private drop(n: number, e: unknown): void {
    this.droppedRows += n;
    this.onError(
      new Error(
        `${n} channel call record${n === 1 ? '' : 's'} dropped (${describe(e)}); ${this.droppedRows} since start`,
      ),
    );
  }

  private async writeCounts(counts: PendingCount[]): Promise<void> {
    try {
      await this.db
        .insertInto('notify_rejections')
        .values(counts)
        .onConflict((oc) =>
          oc.columns(['app_id', 'channel_id', 'day']).doUpdateSet({
            rejected: sql<number>`notify_rejections.rejected + excluded.rejected`,
            first_at: sql<Date>`least(notify_rejections.first_at, excluded.first_at)`,
            last_at: sql<Date>`greatest(notify_rejections.last_at, excluded.last_at)`,
            last_reason: sql<string>`excluded.last_reason`,
          }),
        )
        .execute();
    } catch (e) {
      const n = counts.reduce((s, c) => s + c.rejected, 0);
      this.onError(new Error(`${n} rejected notification counts not written (${describe(e)})`));
    }
  }

  /**
   * The newest calls first, by when they started (calls that started in the same millisecond in either order).
   * One app's are read backwards through channel_calls_app_time (app_id, started_at), bounded by the app: the app is
   * written as a range of one value and the order leads with app_id, which only that index gives. Written as
   * `app_id = $1`, the planner drops app_id from the order (a constant) and walks channel_calls_started (or, ordered
   * by id, the primary key) backwards past every other app's calls, guessing the app's are spread evenly: for an app
   * whose calls are all old that read most of the table (342 ms on a 2-million-row history). Every app's are read
   * backwards through channel_calls_started; one order's through channel_calls_order.
   */
  async list(filter: { appId?: string; outTradeNo?: string; limit: number }): Promise<ChannelCallRow[]> {
    await this.flush();
    let q = this.db.selectFrom('channel_calls').selectAll().limit(filter.limit);
    if (filter.appId)
      q = q.where('app_id', '>=', filter.appId).where('app_id', '<=', filter.appId).orderBy('app_id', 'desc');
    if (filter.outTradeNo) q = q.where('out_trade_no', '=', filter.outTradeNo);
    return q.orderBy('started_at', 'desc').execute();
  }

  /** The counts of unverified notifications from the Asia/Shanghai day `sinceDay` ('yyyy-MM-dd') on. */
  async rejections(filter: {
    appId?: string;
    channelId?: string;
    sinceDay: string;
  }): Promise<NotifyRejectionRow[]> {
    await this.flush();
    let q = this.db
      .selectFrom('notify_rejections')
      .selectAll()
      .where('day', '>=', filter.sinceDay)
      .orderBy('day', 'desc')
      .orderBy('app_id')
      .orderBy('channel_id')
      .limit(1000);
    if (filter.appId) q = q.where('app_id', '=', filter.appId);
    if (filter.channelId) q = q.where('channel_id', '=', filter.channelId);
    return q.execute();
  }
}
