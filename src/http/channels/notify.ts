import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import { channelContext } from '../../services/deps.js';
import { refreshTrade } from '../../services/sync.js';

/**
 * The providers' asynchronous notifications: `POST /channels/<channel>/notify/<app>` (the URL each adapter is
 * given as ctx.notifyUrl). The adapter verifies the notification; the platform never takes its word for the
 * payment but queries the trade at the channel (an idempotent sync, so duplicates change nothing), then
 * answers what the provider expects. A verified notification that could not be processed is answered with
 * 503, so the provider sends it again.
 */
export async function registerChannelNotifyRoutes(app: FastifyInstance, deps: ServiceDeps): Promise<void> {
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
      const parsed = await channel.parseNotify(ctx, { headers, body });
      if (parsed.kind === 'rejected') {
        req.log.warn(
          { channel: channelId, app: app.id, reason: parsed.reason },
          'channel notification rejected',
        );
      } else if (parsed.kind === 'trade') {
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
