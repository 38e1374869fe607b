import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import { auditApp } from './access.js';

/**
 * POST /admin/backup: a consistent backup of the embedded database, taken inside the running server (which holds
 * the database): the answer is the backup file itself (application/zip; `hospay backup` writes it). The master
 * key is never in it. With PostgreSQL there is nothing to do here: pg_dump or a base backup (docs/operations.md).
 * Platform administrators only (access.ts); the audit trail records who took one.
 */
export function registerBackupAdminRoutes(scope: FastifyInstance, deps: ServiceDeps): void {
  scope.post('/admin/backup', async (req, reply) => {
    if (!deps.backup)
      return reply.code(409).send({
        code: 'BACKUP_NOT_EMBEDDED',
        message:
          '此服务器不使用内嵌数据库：PostgreSQL 请用 pg_dump 或基础备份 / this server does not use the embedded database: back up PostgreSQL with pg_dump or a base backup (docs/operations.md)',
      });
    const started = Date.now();
    const { manifest, archive } = await deps.backup.snapshot(deps.clock.now());
    auditApp(req, null, { files: manifest.files, bytes: manifest.bytes, sha256: manifest.sha256 });
    deps.log.info(
      { files: manifest.files, bytes: manifest.bytes, ms: Date.now() - started },
      'embedded database backup taken',
    );
    return reply
      .header('content-type', 'application/zip')
      .header('content-disposition', 'attachment; filename="hospay-backup.zip"')
      .header('cache-control', 'no-store')
      .header('x-hospay-backup-sha256', manifest.sha256)
      .send(archive);
  });
}
