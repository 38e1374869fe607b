import type { FastifyInstance } from 'fastify';
import type { ReconcileDeps } from '../../reconcile/deps.js';
import { ReconSettingsError } from '../../reconcile/settings.js';
import { reconSettingsView, updateReconSettings } from '../../reconcile/his-settings.js';
import { UnknownAppError, isBusinessDate, reconcileApps } from '../../reconcile/run.js';
import { SecretBoxError } from '../../crypto/secret-box.js';
import { readHisSimRows } from '../../reconcile/his/his-sim-source.js';
import { NO_APP, auditApp, oneAppOf, seesAppOr404 } from './access.js';

/**
 * Reconciliation administration (behind the admin token, registered in routes.ts): an app's HIS connection
 * and settings, and running a business day.
 */
export function registerReconciliationAdminRoutes(scope: FastifyInstance, deps: ReconcileDeps): void {
  scope.get('/admin/apps/:id/reconciliation', async (req, reply) => {
    const { id } = req.params as { id: string };
    if (!seesAppOr404(req, reply, id)) return reply;
    const app = await deps.apps.get(id);
    if (!app) return reply.code(404).send(NO_APP);
    return reconSettingsView(app);
  });

  scope.put('/admin/apps/:id/reconciliation', async (req, reply) => {
    const { id } = req.params as { id: string };
    if (!seesAppOr404(req, reply, id)) return reply;
    const body = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      return reply
        .code(400)
        .send({ code: 'INVALID_BODY', message: '须为 JSON 对象 / a JSON object is required' });
    const known = new Set(['his_base_url', 'his_access_token', 'settings']);
    const unknown = Object.keys(body).find((k) => !known.has(k));
    if (unknown)
      return reply
        .code(400)
        .send({ code: `INVALID_FIELD.${unknown}`, message: `未知字段 / unknown field: ${unknown}` });
    try {
      const view = await updateReconSettings(deps, id, body as Parameters<typeof updateReconSettings>[2]);
      if (!view) return reply.code(404).send(NO_APP);
      return view;
    } catch (e) {
      if (e instanceof ReconSettingsError)
        return reply.code(400).send({ code: `INVALID_FIELD.${e.field}`, message: `${e.zh} / ${e.en}` });
      if (e instanceof SecretBoxError || (e instanceof Error && /HOSPAY_MASTER_KEY/.test(e.message)))
        return reply.code(409).send({ code: 'MASTER_KEY', message: e.message });
      throw e;
    }
  });

  // The platform's paid trades and successful refunds as `hospay his-sim --from-db` records them, for when the
  // embedded database is held by this server (the simulator reads them here at each request).
  scope.get('/admin/reconciliation/movements', async (req, reply) => {
    const appId = ((req.query ?? {}) as Record<string, unknown>)['app_id'];
    if (appId !== undefined && (typeof appId !== 'string' || appId === '' || appId.length > 64))
      return reply
        .code(400)
        .send({ code: 'INVALID_FIELD.app_id', message: 'app_id 须为一个应用编号 / must be one app id' });
    const one = oneAppOf(req, reply, appId as string | undefined, 'app_id');
    if (one.answered) return reply;
    if (one.appId !== undefined && !(await deps.apps.get(one.appId))) return reply.code(404).send(NO_APP);
    reply.header('cache-control', 'no-store');
    return readHisSimRows(deps, one.appId);
  });

  scope.post('/admin/reconcile', async (req, reply) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const date = body['date'];
    const appId = body['app_id'];
    if (typeof date !== 'string' || !isBusinessDate(date))
      return reply
        .code(400)
        .send({ code: 'INVALID_FIELD.date', message: 'date 须为 yyyy-MM-dd / date must be yyyy-MM-dd' });
    if (appId !== undefined && typeof appId !== 'string')
      return reply
        .code(400)
        .send({ code: 'INVALID_FIELD.app_id', message: 'app_id 须为字符串 / must be a string' });
    const one = oneAppOf(req, reply, appId === '' ? undefined : (appId as string | undefined), 'app_id');
    if (one.answered) return reply;
    auditApp(req, one.appId ?? null, { date });
    try {
      return await reconcileApps(deps, { date, ...(one.appId ? { appId: one.appId } : {}) });
    } catch (e) {
      if (e instanceof UnknownAppError) return reply.code(404).send(NO_APP);
      throw e;
    }
  });
}
