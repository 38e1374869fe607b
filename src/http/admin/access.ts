import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import { appScope, can, seesApp, type Permission, type Principal } from '../../domain/access.js';

/**
 * Who may call which admin route (docs/security.md, "Roles"). Every route of the admin scope has one rule here,
 * keyed "METHOD /path" as registered: the permission it needs ('any': every authenticated principal; 'self':
 * the operator's own record, or platform.admin for anyone's), and the audit action of a write. A route without
 * a rule is refused (403) to everyone: the table fails closed. The hospital scope (another hospital's app
 * answers 404 like a missing one) is checked by each route with the helpers below.
 */
export interface AdminRouteRule {
  permission: Permission | 'any' | 'self';
  /** The audit action of a write (desk_audit.action); every non-GET route has one. */
  action?: string;
}

export const ADMIN_ROUTE_RULES: Readonly<Record<string, AdminRouteRule>> = {
  'GET /admin/whoami': { permission: 'any' },
  // apps
  'POST /admin/apps': { permission: 'apps.write', action: 'app.create' },
  'GET /admin/apps': { permission: 'any' },
  'PUT /admin/apps/:id/status': { permission: 'channels.write', action: 'app.status' },
  'PUT /admin/apps/:id/public-key': { permission: 'apps.write', action: 'app.public_key' },
  'PUT /admin/apps/:id/redirect-uris': { permission: 'apps.write', action: 'app.redirect_uris' },
  'GET /admin/apps/:id/notify-allowlist': { permission: 'channels.read' },
  'PUT /admin/apps/:id/notify-allowlist': { permission: 'apps.write', action: 'app.notify_allowlist' },
  'GET /admin/apps/:id/categories': { permission: 'any' },
  'PUT /admin/apps/:id/categories': { permission: 'apps.write', action: 'app.categories' },
  'GET /admin/keys/platform': { permission: 'any' },
  'POST /admin/keys/rotate': { permission: 'platform.admin', action: 'keys.rotate' },
  // notifications
  'GET /admin/notifications': { permission: 'notify.resend' },
  'POST /admin/notifications/:notifyId/resend': { permission: 'notify.resend', action: 'notify.resend' },
  // reports, reconciliation, differences
  'GET /admin/reports/day': { permission: 'recon.read' },
  'GET /admin/apps/:id/reconciliation': { permission: 'recon.read' },
  'PUT /admin/apps/:id/reconciliation': { permission: 'recon.write', action: 'recon.settings' },
  'GET /admin/reconciliation/movements': { permission: 'recon.read' },
  'POST /admin/reconcile': { permission: 'recon.write', action: 'recon.run' },
  'GET /admin/reconciliation/differences': { permission: 'recon.read' },
  'GET /admin/reconciliation/differences/:id': { permission: 'recon.read' },
  'POST /admin/reconciliation/differences/:id/resolve': {
    permission: 'recon.write',
    action: 'difference.resolve',
  },
  // channels
  'GET /admin/channels': { permission: 'channels.read' },
  'GET /admin/apps/:id/channels': { permission: 'channels.read' },
  'PUT /admin/apps/:id/channels/:channel': { permission: 'channels.write', action: 'channel.config' },
  'GET /admin/platform/channels': { permission: 'platform.admin' },
  'GET /admin/platform/channels/:channel': { permission: 'platform.admin' },
  'PUT /admin/platform/channels/:channel': {
    permission: 'platform.admin',
    action: 'platform_channel.config',
  },
  'PUT /admin/apps/:id/channel-map': { permission: 'channels.write', action: 'channel.map' },
  'GET /admin/channel-notify-rejections': { permission: 'channels.read' },
  'GET /admin/channel-calls': { permission: 'channels.read' },
  // operators, their roles, grants and tokens
  'GET /admin/operators': { permission: 'platform.admin' },
  'POST /admin/operators': { permission: 'platform.admin', action: 'operator.create' },
  'PUT /admin/operators/:username/password': { permission: 'platform.admin', action: 'operator.password' },
  'PUT /admin/operators/:username/status': { permission: 'platform.admin', action: 'operator.status' },
  'PUT /admin/operators/:username/role': { permission: 'platform.admin', action: 'operator.role' },
  'PUT /admin/operators/:username/apps': { permission: 'platform.admin', action: 'operator.apps' },
  'POST /admin/operators/:username/tokens': { permission: 'platform.admin', action: 'token.create' },
  'GET /admin/operators/:username/tokens': { permission: 'self' },
  'DELETE /admin/operators/:username/tokens/:id': { permission: 'self', action: 'token.revoke' },
  'POST /admin/backup': { permission: 'platform.admin', action: 'backup.create' },
};

declare module 'fastify' {
  interface FastifyRequest {
    /** The admin API's caller, set by the admin scope's onRequest hook (routes.ts). */
    adminPrincipal: Principal | null;
    /** What the audit entry of this write names: its app, and details (never a secret). */
    adminAudit: { appId?: string | null; detail?: Record<string, unknown> } | null;
  }
}

export const FORBIDDEN = {
  code: 'ADMIN_FORBIDDEN',
  message: '无权限：您的角色不能执行此操作 / forbidden: your role may not do this',
};
export const NO_APP = { code: 'APP_NOT_FOUND', message: '没有这个应用 / no such app' };

/** The rule of a request's route ("GET" for HEAD), undefined when none. */
export function ruleOf(req: FastifyRequest): AdminRouteRule | undefined {
  const url = req.routeOptions.url;
  if (url === undefined) return undefined;
  const method = req.method === 'HEAD' ? 'GET' : req.method;
  return ADMIN_ROUTE_RULES[`${method} ${url}`];
}

/** Whether the principal passes the rule's permission (the 'self' case is decided by the route). */
export function allowedBy(p: Principal, rule: AdminRouteRule | undefined): boolean {
  if (!rule) return false;
  if (rule.permission === 'any' || rule.permission === 'self') return true;
  return can(p, rule.permission);
}

/** The request's principal (always set behind the admin scope's hook). */
export function principalOf(req: FastifyRequest): Principal {
  const p = req.adminPrincipal;
  if (!p) throw new Error('admin route without a principal');
  return p;
}

/** Names the app of this request's audit entry. */
export function auditApp(req: FastifyRequest, appId: string | null, detail?: Record<string, unknown>): void {
  req.adminAudit = { ...(req.adminAudit ?? {}), appId, ...(detail ? { detail } : {}) };
}

/**
 * True when the request's principal sees the app; otherwise answers 404 APP_NOT_FOUND (exactly as for a
 * missing app) and returns false. Also names the app in the audit entry.
 */
export function seesAppOr404(req: FastifyRequest, reply: FastifyReply, appId: string): boolean {
  auditApp(req, appId);
  if (seesApp(principalOf(req), appId)) return true;
  void reply.code(404).send(NO_APP);
  return false;
}

/**
 * The one app a report-like request is about: the given one (404 when not seen), none for a principal of
 * every hospital, the only granted one, or a 400 asking to name it. `{ answered: true }` when it answered.
 */
export function oneAppOf(
  req: FastifyRequest,
  reply: FastifyReply,
  given: string | undefined,
  field: string,
): { answered: true } | { answered: false; appId: string | undefined } {
  if (given !== undefined) {
    if (!seesAppOr404(req, reply, given)) return { answered: true };
    return { answered: false, appId: given };
  }
  const scope = appScope(principalOf(req));
  if (scope === null) return { answered: false, appId: undefined };
  if (scope.length === 1) return { answered: false, appId: scope[0] };
  void reply.code(scope.length === 0 ? 404 : 400).send(
    scope.length === 0
      ? NO_APP
      : {
          code: `INVALID_FIELD.${field}`,
          message: `请指定应用（您可见多家医院）/ name the app with ${field} (you are granted several hospitals)`,
        },
  );
  return { answered: true };
}

/** Records the audit entry of an admin API write (after the answer): never the body, which may hold secrets. */
export async function recordAdminWrite(
  deps: Pick<ServiceDeps, 'audit' | 'clock' | 'log'>,
  req: FastifyRequest,
  statusCode: number,
): Promise<void> {
  const p = req.adminPrincipal;
  const rule = ruleOf(req);
  if (!p || req.method === 'GET' || req.method === 'HEAD') return;
  const params = (req.params ?? {}) as Record<string, unknown>;
  const target: Record<string, unknown> = {};
  for (const k of ['username', 'channel', 'notifyId', 'id'] as const)
    if (typeof params[k] === 'string' && !(k === 'id' && req.routeOptions.url?.startsWith('/admin/apps/')))
      target[k] = params[k];
  try {
    await deps.audit.record({
      at: deps.clock.now(),
      actor: p.username,
      role: p.role,
      via: p.via,
      action: rule?.action ?? `admin.${req.method.toLowerCase()}`,
      appId: req.adminAudit?.appId ?? null,
      outcome: statusCode < 400 ? 'ok' : `refused ${statusCode}`,
      detail: { status: statusCode, ...target, ...(req.adminAudit?.detail ?? {}) },
    });
  } catch (e) {
    deps.log.error(
      { err: e instanceof Error ? e.message : String(e), action: rule?.action },
      'admin audit entry not written',
    );
  }
}
