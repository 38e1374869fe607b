import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import {
  listNotifications,
  MAX_LIST_LIMIT,
  parseNotifyStatus,
  resendNotification,
  type NotifyStatus,
} from '../../services/notify.js';

const DEFAULT_LIMIT = 50;

/**
 * Operators' view of the notifications (lc.trade.notify). Registered inside the admin scope, which checks the
 * Bearer admin token:
 *   GET  /admin/notifications?app_id=&status=PENDING|DELIVERED|FAILED&out_trade_no=&limit=
 *   POST /admin/notifications/:notifyId/resend
 */
export function registerNotificationAdminRoutes(scope: FastifyInstance, deps: ServiceDeps): void {
  scope.get('/admin/notifications', async (req, reply) => {
    const query = (req.query ?? {}) as Record<string, unknown>;
    const text = (name: string): string | undefined => {
      const v = query[name];
      return typeof v === 'string' && v !== '' ? v : undefined;
    };
    let status: NotifyStatus | undefined;
    const statusText = text('status');
    if (statusText !== undefined) {
      const parsed = parseNotifyStatus(statusText);
      if (!parsed)
        return reply.code(400).send({
          code: 'INVALID_FIELD.status',
          message: 'status 须为 PENDING、DELIVERED 或 FAILED / status must be PENDING, DELIVERED or FAILED',
        });
      status = parsed;
    }
    let limit = DEFAULT_LIMIT;
    const limitText = text('limit');
    if (limitText !== undefined) {
      if (!/^[0-9]{1,4}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > MAX_LIST_LIMIT)
        return reply.code(400).send({
          code: 'INVALID_FIELD.limit',
          message: `limit 须为 1～${MAX_LIST_LIMIT} / limit must be 1 to ${MAX_LIST_LIMIT}`,
        });
      limit = Number(limitText);
    }
    for (const name of ['app_id', 'out_trade_no']) {
      const v = query[name];
      if (v !== undefined && (typeof v !== 'string' || v.length > 64))
        return reply.code(400).send({
          code: `INVALID_FIELD.${name}`,
          message: `${name} 至多 64 字 / ${name} is one value of at most 64 characters`,
        });
    }
    return listNotifications(deps, {
      appId: text('app_id'),
      status,
      outTradeNo: text('out_trade_no'),
      limit,
    });
  });

  scope.post('/admin/notifications/:notifyId/resend', async (req, reply) => {
    const { notifyId } = req.params as { notifyId: string };
    if (!(await resendNotification(deps, notifyId)))
      return reply.code(404).send({
        code: 'NOTIFY_NOT_FOUND',
        message: '没有这个通知 / no such notification',
      });
    return { notify_id: notifyId, status: 'PENDING', next_attempt_at: deps.clock.now().toISOString() };
  });
}
