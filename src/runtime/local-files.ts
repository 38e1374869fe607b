import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Files in the data directory: the admin token (0600) and, for the embedded database, a lock that says which
 * process holds it and on which port it serves.
 */
export function adminTokenPath(dataDir: string): string {
  return path.join(dataDir, 'admin-token');
}

export function loadOrCreateAdminToken(dataDir: string, fromEnv: string | undefined): string {
  if (fromEnv) return fromEnv;
  fs.mkdirSync(dataDir, { recursive: true });
  const p = adminTokenPath(dataDir);
  try {
    const t = fs.readFileSync(p, 'utf8').trim();
    if (t) return t;
  } catch {
    /* first start */
  }
  const token = randomBytes(24).toString('base64url');
  fs.writeFileSync(p, `${token}\n`, { mode: 0o600 });
  return token;
}

export function readAdminToken(dataDir: string): string | null {
  try {
    return fs.readFileSync(adminTokenPath(dataDir), 'utf8').trim() || null;
  } catch {
    return null;
  }
}

export interface LockInfo {
  pid: number;
  port: number | null;
  host: string | null;
}

function lockPath(dataDir: string): string {
  return path.join(dataDir, 'hospay.lock');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Who holds the embedded database, if a live process does. */
export function readLock(dataDir: string): LockInfo | null {
  try {
    const info = JSON.parse(fs.readFileSync(lockPath(dataDir), 'utf8')) as LockInfo;
    if (typeof info.pid === 'number' && info.pid !== process.pid && alive(info.pid)) return info;
  } catch {
    /* no lock */
  }
  return null;
}

export class DataDirBusyError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: LockInfo,
  ) {
    super(
      `内嵌数据库 ${dataDir} 正被进程 ${holder.pid} 使用${holder.port ? `（端口 ${holder.port}）` : ''}。` +
        ` The embedded database in ${dataDir} is in use by process ${holder.pid}${holder.port ? ` (port ${holder.port})` : ''}; ` +
        'stop it, or use PostgreSQL (DATABASE_URL) to run several processes.',
    );
    this.name = 'DataDirBusyError';
  }
}

/** Takes the embedded database's lock; throws DataDirBusyError if a live process holds it. */
export function acquireLock(dataDir: string): () => void {
  fs.mkdirSync(dataDir, { recursive: true });
  const holder = readLock(dataDir);
  if (holder) throw new DataDirBusyError(dataDir, holder);
  fs.writeFileSync(lockPath(dataDir), JSON.stringify({ pid: process.pid, port: null, host: null }));
  return () => {
    try {
      const info = JSON.parse(fs.readFileSync(lockPath(dataDir), 'utf8')) as LockInfo;
      if (info.pid === process.pid) fs.unlinkSync(lockPath(dataDir));
    } catch {
      /* already gone */
    }
  };
}

export function recordLockPort(dataDir: string, host: string, port: number): void {
  fs.writeFileSync(lockPath(dataDir), JSON.stringify({ pid: process.pid, port, host }));
}

/**
 * The master key that seals secrets at rest: HOSPAY_MASTER_KEY (given as `fromEnv`, already parsed) or, with
 * the embedded database, a key file in the data directory made on first use (0600). With PostgreSQL the key
 * must come from the environment, the same on every instance.
 */
export function masterKeyLoader(opts: {
  fromEnv: Buffer | null;
  embedded: boolean;
  dataDir: string;
}): () => Buffer {
  return () => {
    if (opts.fromEnv) return opts.fromEnv;
    if (!opts.embedded)
      throw new Error(
        '未设置主密钥 HOSPAY_MASTER_KEY，无法保存密钥类配置 / set HOSPAY_MASTER_KEY (32 bytes, hex or base64) ' +
          'to store secrets with PostgreSQL; every instance needs the same key',
      );
    fs.mkdirSync(opts.dataDir, { recursive: true });
    const p = path.join(opts.dataDir, 'master-key');
    try {
      const b = Buffer.from(fs.readFileSync(p, 'utf8').trim(), 'hex');
      if (b.length === 32) return b;
    } catch {
      /* first use */
    }
    const key = randomBytes(32);
    fs.writeFileSync(p, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    return key;
  };
}
