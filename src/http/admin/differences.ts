import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ReconcileDeps } from '../../reconcile/deps.js';
import { isBusinessDate } from '../../reconcile/run.js';
import {
  BY_MAX,
  DifferenceAppNotFoundError,
  NOTE_MAX,
  getDifference,
  isDifferenceState,
  isReconPayType,
  listDifferences,
  readDifferenceId,
  readResolveNote,
  readResolver,
  resolveDifferenceAsAdmin,
  type DifferenceFilter,
} from '../../reconcile/differences.js';
import { seesApp } from '../../domain/access.js';
import { NO_APP, auditApp, principalOf, seesAppOr404 } from './access.js';
const NO_DIFFERENCE = { code: 'DIFFERENCE_NOT_FOUND', message: '没有这个差异 / no such difference' };
const LIST_PARAMS = new Set(['date', 'app', 'state', 'pay_type', 'present']);

function invalid(reply: FastifyReply, name: string, message: string) {
  return reply.code(400).send({ code: `INVALID_FIELD.${name}`, message });
}

/**
 * Reconciliation differences for scripts and the CLI (behind a Bearer token, registered in routes.ts; only the
 * caller's hospitals: another hospital's difference is missing):
 *   GET  /admin/reconciliation/differences?date=yyyy-MM-dd&app=APP_ID[&state=OPEN|RESOLVED][&pay_type=…][&present=true|false]
 *   GET  /admin/reconciliation/differences/:id          one difference, its audit trail, its run and evidence
 *   POST /admin/reconciliation/differences/:id/resolve  {"note": "…", "by": "…"} → audit actor "admin:<by>"
 *        (with an operator's token, `by` may be left out and is always the operator's username)
 */
export function registerDifferenceAdminRoutes(scope: FastifyInstance, deps: ReconcileDeps): void {
  scope.get('/admin/reconciliation/differences', async (req, reply) => {
    const query = (req.query ?? {}) as Record<string, unknown>;
    const unknown = Object.keys(query).find((k) => !LIST_PARAMS.has(k));
    if (unknown !== undefined)
      return invalid(
        reply,
        unknown,
        `未知参数 / unknown parameter: ${unknown} (date, app, state, pay_type, present)`,
      );
    const date = query['date'];
    if (typeof date !== 'string' || !isBusinessDate(date))
      return invalid(reply, 'date', 'date 必填，须为 yyyy-MM-dd 格式的日期 / date is required, yyyy-MM-dd');
    const app = query['app'];
    if (typeof app !== 'string' || app === '' || app.length > 64)
      return invalid(reply, 'app', 'app 必填，须为一个应用编号 / app is required: one app id');
    if (!seesAppOr404(req, reply, app)) return reply;
    const filter: DifferenceFilter = { date, appId: app };
    const state = query['state'];
    if (state !== undefined) {
      if (typeof state !== 'string' || !isDifferenceState(state))
        return invalid(reply, 'state', 'state 须为 OPEN 或 RESOLVED / state must be OPEN or RESOLVED');
      filter.state = state;
    }
    const payType = query['pay_type'];
    if (payType !== undefined) {
      if (typeof payType !== 'string' || !isReconPayType(payType))
        return invalid(
          reply,
          'pay_type',
          'pay_type 须为 alipay、weixin、unionpay 或 elecny / pay_type must be alipay, weixin, unionpay or elecny',
        );
      filter.payType = payType;
    }
    const present = query['present'];
    if (present !== undefined) {
      if (present !== 'true' && present !== 'false')
        return invalid(reply, 'present', 'present 须为 true 或 false / present must be true or false');
      filter.present = present === 'true';
    }
    try {
      return await listDifferences(deps, filter);
    } catch (e) {
      if (e instanceof DifferenceAppNotFoundError) return reply.code(404).send(NO_APP);
      throw e;
    }
  });

  scope.get('/admin/reconciliation/differences/:id', async (req, reply) => {
    const id = readDifferenceId((req.params as { id: string }).id);
    if (id === null) return invalid(reply, 'id', 'id 须为正整数 / id must be a positive whole number');
    const d = await getDifference(deps, id);
    if (!d || !seesApp(principalOf(req), d.app_id)) return reply.code(404).send(NO_DIFFERENCE);
    return d;
  });

  scope.post('/admin/reconciliation/differences/:id/resolve', async (req, reply) => {
    const id = readDifferenceId((req.params as { id: string }).id);
    if (id === null) return invalid(reply, 'id', 'id 须为正整数 / id must be a positive whole number');
    const body = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      return reply.code(400).send({
        code: 'INVALID_BODY',
        message: '须为 JSON 对象 {"note","by"} / a JSON object {"note","by"} is required',
      });
    const fields = body as Record<string, unknown>;
    const unknown = Object.keys(fields).find((k) => k !== 'note' && k !== 'by');
    if (unknown !== undefined)
      return invalid(reply, unknown, `未知字段 / unknown field: ${unknown} (note, by)`);
    const rawNote = fields['note'];
    const note = typeof rawNote === 'string' ? readResolveNote(rawNote) : { error: 'empty' as const };
    if ('error' in note)
      return invalid(
        reply,
        'note',
        note.error === 'empty'
          ? `请填写处理说明（1～${NOTE_MAX} 字） / a note is required (1 to ${NOTE_MAX} characters)`
          : `处理说明至多 ${NOTE_MAX} 字，且不能含控制字符 / the note is at most ${NOTE_MAX} characters, without control characters`,
      );
    // The difference's hospital first: another hospital's difference is missing, whatever the body says.
    const existing = await deps.reconciliation.difference(id);
    if (!existing || !seesApp(principalOf(req), existing.app_id)) return reply.code(404).send(NO_DIFFERENCE);
    auditApp(req, existing.app_id);
    const p = principalOf(req);
    const rawBy = p.via === 'admin-token' || p.via === 'cli' ? fields['by'] : p.username;
    const by = typeof rawBy === 'string' ? readResolver(rawBy) : null;
    if (by === null)
      return invalid(
        reply,
        'by',
        `by 必填：处理人，1～${BY_MAX} 字，不含控制字符 / by is required: who resolves, 1 to ${BY_MAX} characters on one line`,
      );
    const r = await resolveDifferenceAsAdmin(deps, id, by, note.note);
    if (r.outcome === 'NOT_FOUND') return reply.code(404).send(NO_DIFFERENCE);
    if (r.outcome === 'ALREADY_RESOLVED')
      return reply.code(409).send({
        code: 'ALREADY_RESOLVED',
        message: '该差异此前已被处理，本次未作更改 / this difference was already resolved: nothing changed',
      });
    deps.log.info(
      { admin: 'resolve', actor: r.difference.resolved_by, difference: id },
      'difference resolved',
    );
    return r.difference;
  });
}
