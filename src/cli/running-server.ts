import type { Config } from '../config/config.js';
import { DataDirBusyError, readAdminToken, readLock } from '../runtime/local-files.js';

/**
 * With the embedded database held by a running server, CLI commands go through that server's admin API:
 * its address (from the lock file) and the admin token. Null when the CLI may open the database itself.
 */
export function runningServer(config: Config): { base: string; token: string } | null {
  if (config.store.kind !== 'embedded') return null;
  const holder = readLock(config.dataDir);
  if (!holder) return null;
  const token = process.env['HOSPAY_ADMIN_TOKEN'] || readAdminToken(config.dataDir);
  if (!holder.port || !token) throw new DataDirBusyError(config.dataDir, holder);
  const host = !holder.host || holder.host === '0.0.0.0' || holder.host === '::' ? '127.0.0.1' : holder.host;
  return { base: `http://${host.includes(':') ? `[${host}]` : host}:${holder.port}`, token };
}
