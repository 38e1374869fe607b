import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import { OperatorExistsError, OperatorInputError, USERNAME_PATTERN } from '../../services/operators.js';

/**
 * Finance operators (the people who log in to /finance). Registered inside the admin scope, which checks the
 * Bearer admin token; the CLI uses these when the running server holds the embedded database:
 *   GET  /admin/operators
 *   POST /admin/operators                      {username, display_name, password}
 *   PUT  /admin/operators/:username/password   {password}
 *   PUT  /admin/operators/:username/status     {status: active|disabled}
 * Passwords are only ever in request bodies, which are never logged; no answer contains one.
 */
export function registerOperatorAdminRoutes(scope: FastifyInstance, deps: ServiceDeps): void {
  const { operators } = deps;

  const invalid = (reply: FastifyReply, field: string, message: string) =>
    reply.code(400).send({ code: `INVALID_FIELD.${field}`, message });
  const notFound = (reply: FastifyReply) =>
    reply.code(404).send({ code: 'OPERATOR_NOT_FOUND', message: '没有这个操作员 / no such operator' });
  const body = (req: { body: unknown }) =>
    (typeof req.body === 'object' && req.body !== null ? req.body : {}) as Record<string, unknown>;

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
    try {
      return reply.code(201).send(await operators.create({ username, displayName, password }));
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
}
