import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import { OperatorExistsError, OperatorInputError, USERNAME_PATTERN } from '../../services/operators.js';
import { OperatorTokenInputError } from '../../services/access.js';
import { can, isRole } from '../../domain/access.js';
import { FORBIDDEN, auditApp, principalOf } from './access.js';

/** An operator token lives at most this long (days); without expires_in_days it does not expire. */
export const MAX_TOKEN_DAYS = 3660;

/**
 * Operators (the people who log in to /finance and /desk), their roles, hospitals and personal API tokens.
 * Registered inside the admin scope (routes.ts: Bearer token; access.ts: platform.admin, except an operator's
 * own token list and revocation). The CLI uses these when the running server holds the embedded database:
 *   GET    /admin/operators
 *   POST   /admin/operators                      {username, display_name, password, role?, apps?}
 *   PUT    /admin/operators/:username/password   {password}
 *   PUT    /admin/operators/:username/status     {status: active|disabled}
 *   PUT    /admin/operators/:username/role       {role}
 *   PUT    /admin/operators/:username/apps       {apps: "all" | [app ids]}
 *   POST   /admin/operators/:username/tokens     {label, expires_in_days?}   → {id, token} (the token once)
 *   GET    /admin/operators/:username/tokens
 *   DELETE /admin/operators/:username/tokens/:id
 * Passwords and tokens are only ever in request bodies or one answer, which are never logged.
 */
export function registerOperatorAdminRoutes(scope: FastifyInstance, deps: ServiceDeps): void {
  const { operators, operatorTokens } = deps;

  const invalid = (reply: FastifyReply, field: string, message: string) =>
    reply.code(400).send({ code: `INVALID_FIELD.${field}`, message });
  const notFound = (reply: FastifyReply) =>
    reply.code(404).send({ code: 'OPERATOR_NOT_FOUND', message: '没有这个操作员 / no such operator' });
  const body = (req: { body: unknown }) =>
    (typeof req.body === 'object' && req.body !== null ? req.body : {}) as Record<string, unknown>;
  const roleProblem =
    'role 须为 platform_admin、hospital_it、finance 或 cashier_supervisor / role must be platform_admin, hospital_it, finance or cashier_supervisor';
  const appsOf = (v: unknown): 'all' | string[] | null =>
    v === 'all'
      ? 'all'
      : Array.isArray(v) && v.length <= 1000 && v.every((a) => typeof a === 'string')
        ? (v as string[])
        : null;
  const appsProblem = 'apps 须为 "all" 或应用编号数组 / apps must be "all" or an array of app ids';

  scope.get('/admin/operators', async () => operators.list());

  scope.post('/admin/operators', async (req, reply) => {
    const b = body(req);
    const { username, display_name: displayName, password } = b;
    if (typeof username !== 'string')
      return invalid(reply, 'username', 'username 必填 / username is required');
    if (typeof displayName !== 'string')
      return invalid(reply, 'display_name', 'display_name 必填 / display_name is required');
    if (typeof password !== 'string')
      return invalid(reply, 'password', 'password 必填 / password is required');
    const role = b['role'] ?? 'finance';
    if (!isRole(role)) return invalid(reply, 'role', roleProblem);
    // Fails closed: with a role (other than platform admin) the hospitals must be named ("all" on purpose).
    // Without a role the request keeps its meaning from before roles: finance, every hospital.
    if (b['role'] !== undefined && role !== 'platform_admin' && b['apps'] === undefined)
      return invalid(
        reply,
        'apps',
        '指定角色时须给出 apps（应用编号数组，或 "all"） / with a role, apps is required (an array of app ids, or "all")',
      );
    const apps = b['apps'] === undefined ? 'all' : appsOf(b['apps']);
    if (apps === null) return invalid(reply, 'apps', appsProblem);
    try {
      const created = await operators.create({ username, displayName, password, role, apps });
      req.adminAudit = { detail: { role, apps } };
      return reply.code(201).send(created);
    } catch (e) {
      if (e instanceof OperatorInputError) return invalid(reply, e.field, e.message);
      if (e instanceof OperatorExistsError)
        return reply.code(409).send({ code: 'OPERATOR_EXISTS', message: e.message });
      throw e;
    }
  });

  scope.put('/admin/operators/:username/password', async (req, reply) => {
    const { username } = req.params as { username: string };
    const password = body(req)['password'];
    if (typeof password !== 'string')
      return invalid(reply, 'password', 'password 必填 / password is required');
    if (!USERNAME_PATTERN.test(username)) return notFound(reply);
    try {
      if (!(await operators.setPassword(username, password))) return notFound(reply);
    } catch (e) {
      if (e instanceof OperatorInputError) return invalid(reply, e.field, e.message);
      throw e;
    }
    return { username };
  });

  scope.put('/admin/operators/:username/status', async (req, reply) => {
    const { username } = req.params as { username: string };
    const status = body(req)['status'];
    if (status !== 'active' && status !== 'disabled')
      return invalid(reply, 'status', 'status 须为 active 或 disabled / status must be active or disabled');
    if (!USERNAME_PATTERN.test(username) || !(await operators.setStatus(username, status)))
      return notFound(reply);
    return { username, status };
  });

  scope.put('/admin/operators/:username/role', async (req, reply) => {
    const { username } = req.params as { username: string };
    const role = body(req)['role'];
    if (!isRole(role)) return invalid(reply, 'role', roleProblem);
    req.adminAudit = { detail: { role } };
    if (!USERNAME_PATTERN.test(username) || !(await operators.setRole(username, role)))
      return notFound(reply);
    return operators.get(username);
  });

  scope.put('/admin/operators/:username/apps', async (req, reply) => {
    const { username } = req.params as { username: string };
    const apps = appsOf(body(req)['apps']);
    if (apps === null) return invalid(reply, 'apps', appsProblem);
    req.adminAudit = { detail: { apps } };
    try {
      if (!USERNAME_PATTERN.test(username) || !(await operators.setApps(username, apps)))
        return notFound(reply);
    } catch (e) {
      if (e instanceof OperatorInputError) return invalid(reply, e.field, e.message);
      throw e;
    }
    return operators.get(username);
  });

  // ------------------------------------------------------------------------------ personal API tokens
  /** platform.admin, or the operator's own tokens (list, revoke); else 403. */
  const selfOrAdmin = (req: FastifyRequest, reply: FastifyReply, username: string): boolean => {
    const p = principalOf(req);
    if (can(p, 'platform.admin') || (p.via !== 'admin-token' && p.username === username)) return true;
    void reply.code(403).send(FORBIDDEN);
    return false;
  };

  scope.post('/admin/operators/:username/tokens', async (req, reply) => {
    const { username } = req.params as { username: string };
    const b = body(req);
    const label = b['label'];
    if (typeof label !== 'string') return invalid(reply, 'label', 'label 必填 / label is required');
    const days = b['expires_in_days'];
    if (
      days !== undefined &&
      days !== null &&
      (typeof days !== 'number' || !Number.isInteger(days) || days < 1 || days > MAX_TOKEN_DAYS)
    )
      return invalid(
        reply,
        'expires_in_days',
        `expires_in_days 须为 1～${MAX_TOKEN_DAYS} 的整数 / expires_in_days must be a whole number 1 to ${MAX_TOKEN_DAYS}`,
      );
    if (!USERNAME_PATTERN.test(username)) return notFound(reply);
    const expiresAt =
      typeof days === 'number' ? new Date(deps.clock.now().getTime() + days * 86_400_000) : null;
    try {
      const created = await operatorTokens.create(username, label, expiresAt);
      if (!created) return notFound(reply);
      req.adminAudit = { detail: { token_id: created.id, label: label.trim() } };
      reply.header('cache-control', 'no-store');
      return reply.code(201).send({
        id: created.id,
        username,
        label: label.trim(),
        expires_at: expiresAt?.toISOString() ?? null,
        token: created.token,
      });
    } catch (e) {
      if (e instanceof OperatorTokenInputError) return invalid(reply, e.field, e.message);
      throw e;
    }
  });

  scope.get('/admin/operators/:username/tokens', async (req, reply) => {
    const { username } = req.params as { username: string };
    if (!selfOrAdmin(req, reply, username)) return reply;
    if (!USERNAME_PATTERN.test(username) || !(await operators.get(username))) return notFound(reply);
    return { username, tokens: await operatorTokens.list(username) };
  });

  scope.delete('/admin/operators/:username/tokens/:id', async (req, reply) => {
    const { username, id } = req.params as { username: string; id: string };
    if (!selfOrAdmin(req, reply, username)) return reply;
    auditApp(req, null, { token_id: id });
    const owner = await operatorTokens.ownerOf(id);
    if (owner !== username)
      return reply.code(404).send({ code: 'TOKEN_NOT_FOUND', message: '没有这个令牌 / no such token' });
    const revoked = await operatorTokens.revoke(id);
    return { username, id, revoked_at: revoked ? deps.clock.now().toISOString() : null, revoked };
  });
}
