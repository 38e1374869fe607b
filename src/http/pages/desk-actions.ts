import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import {
  deskApprove,
  deskClose,
  deskQuery,
  deskReject,
  deskRequestMoney,
  deskRequestsFor,
  deskResend,
  deskRetry,
  type DeskActionResult,
} from '../../services/desk-actions.js';
import type { Permission } from '../../domain/access.js';
import { can } from '../../domain/access.js';
import {
  deskPage,
  deskScope,
  notFoundPage,
  requireDesk,
  requireDeskPost,
  sendHtml,
  type DeskViewer,
} from './desk-kit.js';
import { actionFlash, flashQuery, requestsTable } from './desk-action-views.js';

/**
 * The desk's actions on a trade and the maker–checker approvals (docs/operations.md, "Desk actions"):
 *   POST /desk/trades/:appId/:outTradeNo/{query,resend,close,refund,cancel}
 *   GET  /desk/approvals                     the requests waiting (or in progress) in the viewer's hospitals
 *   POST /desk/approvals/:id/{approve,reject,retry}
 * Every POST needs the session, its CSRF token and the permission (desk-kit.ts requireDeskPost); the use cases
 * (services/desk-actions.ts) check the hospital scope and write the audit trail. The answer is a 303 back to the
 * page with a fixed outcome code (?m=…), never the caller's input.
 */
export async function registerDeskActionPages(app: FastifyInstance, deps: ServiceDeps): Promise<void> {
  await deskScope(app, (scope) => {
    type TradeParams = { Params: { appId: string; outTradeNo: string } };
    const field = (body: unknown, name: string): string => {
      const v = (body ?? {}) as Record<string, unknown>;
      const x = v[name];
      return typeof x === 'string' ? x.slice(0, 4096) : '';
    };

    const tradeAction = (
      path: string,
      permission: Permission,
      run: (
        viewer: DeskViewer,
        appId: string,
        outTradeNo: string,
        body: unknown,
      ) => Promise<DeskActionResult>,
    ) =>
      scope.post<TradeParams>(`/desk/trades/:appId/:outTradeNo/${path}`, async (req, reply) => {
        const viewer = await requireDeskPost(deps, req, reply, permission);
        if (!viewer) return reply;
        const r = await run(viewer, req.params.appId, req.params.outTradeNo, req.body);
        return answer(reply, viewer, r, 'trade');
      });

    tradeAction('query', 'trades.query', (v, a, o) => deskQuery(deps, v.principal, a, o));
    tradeAction('resend', 'notify.resend', (v, a, o) => deskResend(deps, v.principal, a, o));
    tradeAction('close', 'trades.close', (v, a, o) => deskClose(deps, v.principal, a, o));
    tradeAction('refund', 'money.request', (v, a, o, body) =>
      deskRequestMoney(deps, v.principal, a, o, {
        kind: 'refund',
        amountText: field(body, 'amount'),
        reason: field(body, 'reason'),
        formToken: field(body, 'token'),
      }),
    );
    tradeAction('cancel', 'money.request', (v, a, o, body) =>
      deskRequestMoney(deps, v.principal, a, o, {
        kind: 'cancel',
        reason: field(body, 'reason'),
        formToken: field(body, 'token'),
      }),
    );

    scope.get('/desk/approvals', async (req, reply) => {
      const viewer = await requireDesk(deps, req, reply, 'money.request');
      if (!viewer) return reply;
      const waiting = await deskRequestsFor(deps, viewer.principal, ['PENDING', 'APPROVED']);
      const p = viewer.principal;
      const intro = can(p, 'money.approve')
        ? '您可以批准或驳回他人提交的退款和撤销申请；自己提交的申请需由另一位人员审批。You may approve or reject other people’s requests; your own wait for someone else.'
        : '您提交的申请在此等待另一位有审批权限的人员处理。Your requests wait here for someone who may approve them.';
      const body = `<div class="card"><h1>退款审批 / approvals</h1><p class="muted">${intro}</p>${
        waiting.length === 0
          ? '<p class="muted" id="no-requests">没有待处理的申请。Nothing is waiting.</p>'
          : requestsTable(viewer, waiting, { showTrade: true, back: 'approvals' })
      }</div>`;
      return sendHtml(reply, deskPage('退款审批', viewer, 'approvals', body, actionFlash(req.query)));
    });

    type RequestParams = { Params: { id: string } };
    const requestAction = (
      path: string,
      permission: Permission,
      run: (viewer: DeskViewer, id: number, body: unknown) => Promise<DeskActionResult>,
    ) =>
      scope.post<RequestParams>(`/desk/approvals/:id/${path}`, async (req, reply) => {
        const viewer = await requireDeskPost(deps, req, reply, permission);
        if (!viewer) return reply;
        const id = /^[1-9][0-9]{0,15}$/.test(req.params.id) ? Number(req.params.id) : NaN;
        if (!Number.isSafeInteger(id)) return notFoundPage(reply, viewer);
        const r = await run(viewer, id, req.body);
        return answer(reply, viewer, r, field(req.body, 'back') === 'trade' ? 'trade' : 'approvals');
      });

    requestAction('approve', 'money.approve', (v, id) => deskApprove(deps, v.principal, id));
    requestAction('reject', 'money.approve', (v, id, body) =>
      deskReject(deps, v.principal, id, field(body, 'reason')),
    );
    requestAction('retry', 'money.request', (v, id) => deskRetry(deps, v.principal, id));
  });
}

/** 403 / 404 pages, or a 303 back to the trade's page (or the approvals) with the outcome's code. */
async function answer(
  reply: FastifyReply,
  viewer: DeskViewer,
  r: DeskActionResult,
  back: 'trade' | 'approvals',
): Promise<FastifyReply> {
  if (r.kind === 'not_found') return notFoundPage(reply, viewer);
  if (r.kind === 'forbidden') {
    return sendHtml(
      reply,
      deskPage('无权限 / not allowed', viewer, null, '<div class="card"><h1>无权限 / not allowed</h1></div>'),
      403,
    );
  }
  const q = flashQuery(r.outcome, r.errorCode);
  const to =
    back === 'trade'
      ? `/desk/trades/${encodeURIComponent(r.appId)}/${encodeURIComponent(r.outTradeNo)}?${q}`
      : `/desk/approvals?${q}`;
  return reply.redirect(to, 303);
}
