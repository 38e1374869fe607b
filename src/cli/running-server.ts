import type { Config } from '../config/config.js';
import { startPlatform, type Platform } from '../main.js';
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
  // With HOSPAY_ADMIN_LISTEN the admin API is on its own address, not on the public port.
  const port = holder.adminPort ?? holder.port;
  const at = holder.adminPort ? holder.adminHost : holder.host;
  const host = !at || at === '0.0.0.0' || at === '::' ? '127.0.0.1' : at;
  return { base: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, token };
}

/**
 * One request to the running server's admin API: the admin token, a JSON body when given, the answer's text
 * and, when it is JSON, its value (null otherwise). Each command maps the statuses to its own errors.
 */
export async function adminFetch(
  server: { base: string; token: string },
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; text: string; data: unknown }> {
  const res = await fetch(`${server.base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${server.token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  return { status: res.status, text, data };
}

/** The CLI's own short-lived platform: no listening, no background jobs, no demo app. */
export function cliPlatform(config: Config): Promise<Platform> {
  return startPlatform({
    config: { ...config, jobs: { ...config.jobs, enabled: false } },
    listen: false,
    demo: false,
  });
}

/** All of stdin as text, without the final line break (a secret piped in). */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}
