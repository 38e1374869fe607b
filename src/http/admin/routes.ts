import type { FastifyInstance } from 'fastify';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { ServiceDeps } from '../../services/deps.js';

function sameSecret(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb) && a.length > 0;
}

/**
 * The operators' HTTP API, behind `Authorization: Bearer <admin token>`. The CLI uses it when the embedded
 * database is held by the running server.
 */
export async function registerAdminRoutes(
  app: FastifyInstance,
  deps: ServiceDeps,
  adminToken: string,
): Promise<void> {
  await app.register(async (scope) => {
    scope.addHook('onRequest', async (req, reply) => {
      const auth = req.headers.authorization ?? '';
      const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
      if (!sameSecret(token, adminToken)) {
        return reply.code(401).send({ code: 'ADMIN_AUTH', message: '管理令牌无效 / invalid admin token' });
      }
    });

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
      return reply.code(201).send({
        app_id: created.appId,
        name: created.name,
        hospital_id: created.hospitalId,
        access_token: created.accessToken,
      });
    });

    scope.get('/admin/apps', async () => {
      const apps = await deps.apps.list();
      return apps.map((a) => ({
        app_id: a.id,
        name: a.name,
        hospital_id: a.hospital_id,
        status: a.status,
        created_at: a.created_at,
      }));
    });
  });
}
