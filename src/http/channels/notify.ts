import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import { channelContext } from '../../services/deps.js';
import { refreshTrade } from '../../services/sync.js';
import type { ChannelCall } from '../../channels/channel.js';

/**
 * Counts events per key and says when to log them: the first at once, then at most one line per `everyMs`
 * with the number seen since the last line (junk posted in a loop must not flood the log either).
 */
class RateLimitedCount {
  private readonly seen = new Map<string, { count: number; loggedAt: number }>();
  constructor(private readonly everyMs: number) {}

  note(key: string, at: Date): { count: number; sinceMs: number } | null {
    const now = at.getTime();
    const s = this.seen.get(key);
    if (!s) {
      if (this.seen.size >= 10_000) this.seen.clear();
      this.seen.set(key, { count: 0, loggedAt: now });
      return { count: 1, sinceMs: 0 };
    }
    s.count++;
    if (now - s.loggedAt < this.everyMs) return null;
    const out = { count: s.count, sinceMs: now - s.loggedAt };
    s.count = 0;
    s.loggedAt = now;
    return out;
  }
}

/**
 * The providers' asynchronous notifications: `POST /channels/<channel>/notify/<app>` (the URL each adapter is
 * given as ctx.notifyUrl). The adapter verifies the notification; the platform never takes its word for the
 * payment but queries the trade at the channel (an idempotent sync, so duplicates change nothing), then
 * answers what the provider expects. A verified notification that could not be processed is answered with
 * 503, so the provider sends it again. One that fails verification is counted (notify_rejections, per app,
 * channel and day), recorded only as a bounded sample, and logged at most once a minute per app and channel.
 */
export async function registerChannelNotifyRoutes(app: FastifyInstance, deps: ServiceDeps): Promise<void> {
  const rejectionLog = new RateLimitedCount(60_000);
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 256 * 1024 }, (_req, body, done) =>
      done(null, body),
    );
    scope.post('/channels/:channel/notify/:app', async (req, reply) => {
      const { channel: channelId, app: appId } = req.params as { channel: string; app: string };
      const channel = deps.channels.get(channelId);
      const app = await deps.apps.get(appId);
      if (!channel?.parseNotify || !app)
        return reply.code(404).type('text/plain').send('unknown channel or app');
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers))
        if (typeof v === 'string') headers[k.toLowerCase()] = v;
        else if (Array.isArray(v)) headers[k.toLowerCase()] = v.join(', ');
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const ctx = await channelContext(deps, app.id, channelId);
      // What the adapter records waits for its verdict: an unverified notification is only counted and sampled.
      let held: ChannelCall[] | null = [];
      const parsed = await channel.parseNotify(
        { ...ctx, record: (call) => (held ? held.push(call) : ctx.record(call)) },
        { headers, body },
      );
      const calls = held;
      held = null;
      if (parsed.kind === 'rejected') {
        const at = deps.clock.now();
        deps.channelCalls.rejectedNotification(app.id, channelId, at, parsed.reason, calls);
        const due = rejectionLog.note(`${app.id}\u0001${channelId}`, at);
        if (due)
          req.log.warn(
            {
              channel: channelId,
              app: app.id,
              rejected: due.count,
              sinceMs: due.sinceMs,
              reason: parsed.reason.slice(0, 200),
            },
            'channel notifications rejected (unverified; counted, sampled in channel calls)',
          );
      } else {
        for (const call of calls) ctx.record(call);
      }
      if (parsed.kind === 'trade') {
        const trade = await deps.trades.byOutTradeNo(app.id, parsed.outTradeNo);
        if (trade && trade.channel === channelId) {
          try {
            await refreshTrade(deps, trade);
          } catch (err) {
            req.log.warn(
              { channel: channelId, app: app.id, err: err instanceof Error ? err.message : String(err) },
              'channel notification not processed; the provider will retry',
            );
            return reply.code(503).type('text/plain').send('retry');
          }
        }
        // A notification about an order we do not have (or of another channel) is acknowledged and ignored.
      }
      return reply.code(parsed.ack.status).type(parsed.ack.contentType).send(parsed.ack.body);
    });
  });
}
