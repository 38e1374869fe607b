import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import {
  listNotifications,
  MAX_LIST_LIMIT,
  parseNotifyStatus,
  resendNotification,
  type NotifyStatus,
} from '../../services/notify.js';
import { appScope } from '../../domain/access.js';
import { principalOf, seesAppOr404 } from './access.js';

const DEFAULT_LIMIT = 50;

/**
 * Operators' view of the notifications (lc.trade.notify). Registered inside the admin scope, which checks the
 * Bearer token and the permission (notify.resend); only the caller's hospitals are listed or resent:
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
    const appId = text('app_id');
    const filter = { status, outTradeNo: text('out_trade_no'), limit };
    if (appId !== undefined) {
      if (!seesAppOr404(req, reply, appId)) return reply;
      return listNotifications(deps, { ...filter, appId });
    }
    const scope = appScope(principalOf(req));
    if (scope === null) return listNotifications(deps, { ...filter, appId: undefined });
    // An operator of some hospitals: each one's newest, merged newest first.
    const lists = await Promise.all(scope.map((a) => listNotifications(deps, { ...filter, appId: a })));
    return lists
      .flat()
      .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0))
      .slice(0, limit);
  });

  scope.post('/admin/notifications/:notifyId/resend', async (req, reply) => {
    const { notifyId } = req.params as { notifyId: string };
    const owner = await deps.operatorTokens.appOfNotification(notifyId);
    if (owner !== undefined && !seesAppOr404(req, reply, owner)) return reply;
    if (owner === undefined || !(await resendNotification(deps, notifyId)))
      return reply.code(404).send({
        code: 'NOTIFY_NOT_FOUND',
        message: '没有这个通知 / no such notification',
      });
    return { notify_id: notifyId, status: 'PENDING', next_attempt_at: deps.clock.now().toISOString() };
  });
}
