import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import type { ReconcileDeps } from '../../reconcile/deps.js';
import { appCategories } from '../../services/apps.js';
import { validateCategories } from '../../domain/categories.js';
import { isPrivateKeyText, readPublicKey } from '../../crypto/signing.js';
import { registerNotificationAdminRoutes } from './notifications.js';
import { registerReportAdminRoutes } from './reports.js';
import { registerReconciliationAdminRoutes } from './reconciliation.js';
import { registerDifferenceAdminRoutes } from './differences.js';
import { registerChannelAdminRoutes } from './channels.js';
import { registerOperatorAdminRoutes } from './operators.js';
import { registerBackupAdminRoutes } from './backup.js';
import { FailureThrottle } from './throttle.js';
import { applyAdminSchema } from './schemas.js';
import { normaliseRegisteredRedirect } from '../../services/medicare.js';
import { allowListEntries, parseAllowList } from '../../services/notify-target.js';
import { authenticateBearer } from '../../services/access.js';
import { seesApp } from '../../domain/access.js';
import {
  FORBIDDEN,
  allowedBy,
  auditApp,
  principalOf,
  recordAdminWrite,
  ruleOf,
  seesAppOr404,
} from './access.js';

/**
 * The operators' HTTP API, behind `Authorization: Bearer <token>`: the platform admin token (every hospital,
 * every action) or an operator's personal token (`hpo_…`: the operator's role and granted hospitals). Every
 * route needs the permission of its rule (access.ts ADMIN_ROUTE_RULES, 403 ADMIN_FORBIDDEN) and answers
 * another hospital's records as missing (404); every write is audited. The CLI uses it when the embedded
 * database is held by the running server.
 */
export async function registerAdminRoutes(
  app: FastifyInstance,
  deps: ServiceDeps,
  adminToken: string,
  recon: ReconcileDeps,
): Promise<void> {
  const throttle = new FailureThrottle(deps.clock);
  await app.register(async (scope) => {
    scope.decorateRequest('adminPrincipal', null);
    scope.decorateRequest('adminAudit', null);
    // Each route's request and answer schema (schemas.ts), also the source of /openapi.json.
    scope.addHook('onRoute', applyAdminSchema);
    scope.addHook('onRequest', async (req, reply) => {
      // Guessing is slowed per source address: after a few failures the address waits, longer each time.
      const waitMs = throttle.waitFor(req.ip);
      if (waitMs > 0) {
        const seconds = Math.ceil(waitMs / 1000);
        return reply
          .code(429)
          .header('retry-after', String(seconds))
          .send({
            code: 'ADMIN_THROTTLED',
            message: `管理令牌错误次数过多，请 ${seconds} 秒后再试 / too many invalid admin tokens, retry in ${seconds} s`,
          });
      }
      const principal = await authenticateBearer(deps, adminToken, req.headers.authorization);
      if (!principal) {
        throttle.failed(req.ip);
        return reply.code(401).send({ code: 'ADMIN_AUTH', message: '管理令牌无效 / invalid admin token' });
      }
      throttle.succeeded(req.ip);
      req.adminPrincipal = principal;
      req.adminAudit = {};
      // An unknown path is left to the 404 answer; a known route without a rule is refused (fails closed).
      if (req.routeOptions.url !== undefined && !allowedBy(principal, ruleOf(req)))
        return reply.code(403).send(FORBIDDEN);
    });
    scope.addHook('onResponse', async (req, reply) => {
      await recordAdminWrite(deps, req, reply.statusCode);
    });

    scope.get('/admin/whoami', async (req) => {
      const p = principalOf(req);
      return {
        username: p.username,
        display_name: p.displayName,
        role: p.role,
        apps: p.apps,
        via: p.via,
      };
    });

    registerNotificationAdminRoutes(scope, deps);
    registerReportAdminRoutes(scope, recon);
    registerReconciliationAdminRoutes(scope, recon);
    registerDifferenceAdminRoutes(scope, recon);
    registerChannelAdminRoutes(scope, deps);
    registerOperatorAdminRoutes(scope, deps);
    registerBackupAdminRoutes(scope, deps);

    scope.post('/admin/apps', async (req, reply) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const name = body['name'];
      const hospitalId = body['hospital_id'];
      if (typeof name !== 'string' || name.trim() === '' || name.length > 64) {
        return reply.code(400).send({
          code: 'INVALID_FIELD.name',
          message: '名称必填，最多 64 字 / name is required, at most 64 characters',
        });
      }
      if (
        hospitalId !== undefined &&
        hospitalId !== null &&
        (typeof hospitalId !== 'string' || hospitalId.length > 64)
      ) {
        return reply.code(400).send({
          code: 'INVALID_FIELD.hospital_id',
          message: 'hospital_id 至多 64 字 / hospital_id is at most 64 characters',
        });
      }
      const created = await deps.apps.create({
        name: name.trim(),
        hospitalId: (hospitalId as string | undefined) ?? null,
      });
      auditApp(req, created.appId);
      return reply.code(201).send({
        app_id: created.appId,
        name: created.name,
        hospital_id: created.hospitalId,
        access_token: created.accessToken,
      });
    });

    scope.get('/admin/apps', async (req) => {
      const p = principalOf(req);
      const apps = (await deps.apps.list()).filter((a) => seesApp(p, a.id));
      return apps.map((a) => ({
        app_id: a.id,
        name: a.name,
        hospital_id: a.hospital_id,
        status: a.status,
        categories: appCategories(a),
        notify_private_cidrs: allowListEntries(a.notify_private_cidrs),
        created_at: a.created_at,
      }));
    });

    scope.put('/admin/apps/:id/status', async (req, reply) => {
      const { id } = req.params as { id: string };
      if (!seesAppOr404(req, reply, id)) return reply;
      const status = ((req.body ?? {}) as Record<string, unknown>)['status'];
      if (status !== 'active' && status !== 'disabled') {
        return reply.code(400).send({
          code: 'INVALID_FIELD.status',
          message: 'status 须为 active 或 disabled / status must be active or disabled',
        });
      }
      if (!(await deps.apps.setStatus(id, status)))
        return reply.code(404).send({ code: 'APP_NOT_FOUND', message: '没有这个应用 / no such app' });
      return { app_id: id, status };
    });

    scope.put('/admin/apps/:id/public-key', async (req, reply) => {
      const { id } = req.params as { id: string };
      if (!seesAppOr404(req, reply, id)) return reply;
      const pem = ((req.body ?? {}) as Record<string, unknown>)['public_key'];
      if (typeof pem === 'string' && isPrivateKeyText(pem)) {
        return reply.code(400).send({
          code: 'INVALID_FIELD.public_key',
          message:
            'public_key 是私钥：请只提交公钥，私钥须由医院自行保管（如已外泄请更换密钥） / public_key is a PRIVATE key: send the public key only and keep the private key to yourselves (replace the key pair if it has been exposed)',
        });
      }
      const key = typeof pem === 'string' ? readPublicKey(pem) : null;
      if (!key || typeof pem !== 'string') {
        return reply.code(400).send({
          code: 'INVALID_FIELD.public_key',
          message:
            'public_key 须为 RSA 公钥（PEM 或 Base64，至少 1024 位） / public_key must be an RSA public key (PEM or Base64, 1024 bits or more)',
        });
      }
      const legacy = ((req.body ?? {}) as Record<string, unknown>)['legacy_sign'];
      if (legacy !== undefined && typeof legacy !== 'boolean') {
        return reply.code(400).send({
          code: 'INVALID_FIELD.legacy_sign',
          message: 'legacy_sign 须为 true 或 false / legacy_sign must be true or false',
        });
      }
      if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048 && legacy !== true) {
        return reply.code(400).send({
          code: 'INVALID_FIELD.public_key',
          message:
            'public_key 短于 2048 位：请登记 2048 位密钥，旧系统确需时加 legacy_sign: true / public_key is shorter than 2048 bits: register a 2048-bit key, or set legacy_sign: true for a legacy HIS that cannot',
        });
      }
      const publicPem = key.export({ type: 'spki', format: 'pem' }).toString();
      if (!(await deps.apps.setPublicKey(id, publicPem, legacy === true)))
        return reply.code(404).send({ code: 'APP_NOT_FOUND', message: '没有这个应用 / no such app' });
      return { app_id: id, legacy_sign: legacy === true };
    });

    scope.put('/admin/apps/:id/redirect-uris', async (req, reply) => {
      const { id } = req.params as { id: string };
      if (!seesAppOr404(req, reply, id)) return reply;
      const given = ((req.body ?? {}) as Record<string, unknown>)['redirect_uris'];
      // Compared as parsed URLs at authorisation (services/medicare.ts allowedRedirect): stored normalised.
      const uris = Array.isArray(given)
        ? given.map((u) => (typeof u === 'string' ? normaliseRegisteredRedirect(u) : null))
        : null;
      if (!uris || !uris.every((u): u is string => u !== null)) {
        return reply.code(400).send({
          code: 'INVALID_FIELD.redirect_uris',
          message:
            'redirect_uris 须为完整的 http(s) 地址数组，不含用户信息（user@）、查询串（?）和片段（#） / redirect_uris must be an array of absolute http(s) URLs without userinfo (user@), query (?) or fragment (#)',
        });
      }
      if (!(await deps.apps.setRedirectUris(id, uris)))
        return reply.code(404).send({ code: 'APP_NOT_FOUND', message: '没有这个应用 / no such app' });
      return { app_id: id, redirect_uris: uris };
    });

    // The private address ranges the app's notify_url may reach (services/notify-target.ts).
    scope.get('/admin/apps/:id/notify-allowlist', async (req, reply) => {
      const { id } = req.params as { id: string };
      if (!seesAppOr404(req, reply, id)) return reply;
      const app = await deps.apps.get(id);
      if (!app) return reply.code(404).send({ code: 'APP_NOT_FOUND', message: '没有这个应用 / no such app' });
      return { app_id: id, notify_private_cidrs: allowListEntries(app.notify_private_cidrs) };
    });

    scope.put('/admin/apps/:id/notify-allowlist', async (req, reply) => {
      const { id } = req.params as { id: string };
      if (!seesAppOr404(req, reply, id)) return reply;
      const parsed = parseAllowList(((req.body ?? {}) as Record<string, unknown>)['notify_private_cidrs']);
      if ('why' in parsed) {
        return reply.code(400).send({
          code: 'INVALID_FIELD.notify_private_cidrs',
          message: `notify_private_cidrs 无效：${parsed.zh} / notify_private_cidrs is invalid: ${parsed.why}`,
        });
      }
      if (!(await deps.apps.setNotifyPrivateCidrs(id, parsed.cidrs)))
        return reply.code(404).send({ code: 'APP_NOT_FOUND', message: '没有这个应用 / no such app' });
      return { app_id: id, notify_private_cidrs: parsed.cidrs };
    });

    scope.get('/admin/keys/platform', async () => ({ public_key: (await deps.keys.active()).publicPem }));

    scope.post('/admin/keys/rotate', async () => {
      await deps.keys.rotate();
      return { public_key: (await deps.keys.active()).publicPem };
    });

    scope.get('/admin/apps/:id/categories', async (req, reply) => {
      const { id } = req.params as { id: string };
      if (!seesAppOr404(req, reply, id)) return reply;
      const app = await deps.apps.get(id);
      if (!app) return reply.code(404).send({ code: 'APP_NOT_FOUND', message: '没有这个应用 / no such app' });
      return { app_id: id, categories: appCategories(app) };
    });

    scope.put('/admin/apps/:id/categories', async (req, reply) => {
      const { id } = req.params as { id: string };
      if (!seesAppOr404(req, reply, id)) return reply;
      const raw = ((req.body ?? {}) as Record<string, unknown>)['categories'];
      const categories = raw === null ? null : validateCategories(raw);
      if (raw !== null && categories === null) {
        return reply.code(400).send({
          code: 'INVALID_FIELD.categories',
          message:
            'categories 须为 [{prefix, name}]，前缀为 1～16 位字母数字且不重复 / categories must be [{prefix, name}] with unique alphanumeric prefixes',
        });
      }
      if (!(await deps.apps.setCategories(id, categories)))
        return reply.code(404).send({ code: 'APP_NOT_FOUND', message: '没有这个应用 / no such app' });
      const app = await deps.apps.get(id);
      return { app_id: id, categories: app ? appCategories(app) : [] };
    });
  });
}
