import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import { channelContext, medicareFor } from '../../services/deps.js';
import { medicareNotified } from '../../services/medicare.js';
import type { ChannelCall } from '../../channels/channel.js';

/**
 * The medical-insurance centre's notifications about a settlement: `POST /channels/medicare/<id>/notify/<app>`
 * (docs/channels/nhsa.md, "Notifications"). The medical-insurance side verifies the envelope exactly like one
 * of its answers; a genuine notification changes nothing on its word: the platform asks the centre (6301) and
 * syncs the trade it names (services/medicare.ts medicareNotified), then answers the centre's ack. One that does
 * not verify is refused (400), counted and sampled like the providers' (notify_rejections); one that could not
 * be processed gets the retry
 * answer (503), so the centre sends it again.
 */
export async function registerMedicareNotifyRoutes(app: FastifyInstance, deps: ServiceDeps): Promise<void> {
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: 64 * 1024 }, (_req, body, done) =>
      done(null, body),
    );
    scope.post('/channels/medicare/:id/notify/:app', async (req, reply) => {
      const { id, app: appId } = req.params as { id: string; app: string };
      const a = appId.length <= 64 ? await deps.apps.get(appId) : undefined;
      let side: ReturnType<typeof medicareFor> | undefined;
      try {
        side = a ? medicareFor(deps, a) : undefined;
      } catch {
        side = undefined;
      }
      if (!a || !side || side.id !== id || !side.channel.parseSettlementNotify)
        return reply.code(404).type('text/plain').send('unknown channel or app');
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const ctx = await channelContext(deps, a.id, side.ctxId);
      // What the adapter records waits for its verdict: an unverified notification is only counted and sampled
      // (notify_rejections), so junk posted in a loop cannot flood the call records.
      const held: ChannelCall[] = [];
      const parsed = side.channel.parseSettlementNotify({ ...ctx, record: (c) => held.push(c) }, body);
      if (parsed.kind === 'rejected')
        deps.channelCalls.rejectedNotification(a.id, side.ctxId, deps.clock.now(), parsed.reason, held);
      else for (const c of held) ctx.record(c);
      if (parsed.kind === 'rejected') {
        req.log.warn(
          { channel: side.ctxId, app: a.id, reason: parsed.reason.slice(0, 200) },
          'medical-insurance notification rejected',
        );
        return reply.code(parsed.ack.status).type(parsed.ack.contentType).send(parsed.ack.body);
      }
      try {
        const done = await medicareNotified(deps, a, parsed);
        req.log.info(
          { channel: side.ctxId, app: a.id, outTradeNo: parsed.outTradeNo, done },
          'medical-insurance notification',
        );
      } catch (err) {
        req.log.warn(
          { channel: side.ctxId, app: a.id, err: err instanceof Error ? err.message : String(err) },
          'medical-insurance notification not processed; the centre will retry',
        );
        return reply
          .code(parsed.retryAck.status)
          .type(parsed.retryAck.contentType)
          .send(parsed.retryAck.body);
      }
      return reply.code(parsed.ack.status).type(parsed.ack.contentType).send(parsed.ack.body);
    });
  });
}
