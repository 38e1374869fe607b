import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { UnavailableError } from '../domain/errors.js';

/**
 * Files in the data directory: the admin token, the master key (embedded database), the embedded database
 * itself and a lock that says which process holds it and on which port it serves. The directory is its owner's
 * only (0700) and so is every file in it (0600).
 */
export function adminTokenPath(dataDir: string): string {
  return path.join(dataDir, 'admin-token');
}

/** Makes the directory (0700) if missing; an existing one is tightened to 0700. Returns a problem, if any. */
export function ensurePrivateDir(dir: string): string | null {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return tighten(dir, 0o700);
}

function tighten(p: string, mode: number): string | null {
  try {
    const st = fs.lstatSync(p);
    if (st.isSymbolicLink() || (st.mode & 0o777) === mode) return null;
    fs.chmodSync(p, mode);
    return null;
  } catch (e) {
    return `${p}: cannot set mode ${mode.toString(8)} (${(e as NodeJS.ErrnoException).code ?? String(e)}); make it readable by hospay's user only`;
  }
}

/**
 * Tightens a directory and everything under it: directories 0700, files 0600 (symbolic links are left alone).
 * A missing directory is left missing. Returns what could not be tightened, for a warning.
 */
export function securePrivateTree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const problems: string[] = [];
  const walk = (d: string) => {
    const p = tighten(d, 0o700);
    if (p) problems.push(p);
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch (e) {
      problems.push(`${d}: cannot list (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
      return;
    }
    for (const e of entries) {
      const child = path.join(d, e.name);
      if (e.isDirectory()) walk(child);
      else if (e.isFile()) {
        const q = tighten(child, 0o600);
        if (q) problems.push(q);
      }
    }
  };
  walk(dir);
  return problems;
}

/**
 * Tightens hospay's own things in the data directory: the directory (0700), the admin token, master key and
 * lock (0600) and the embedded database's tree (directories 0700, files 0600). Other files an operator put there
 * are left alone. A missing directory is left missing. Returns what could not be tightened, for a warning.
 */
export function secureDataDir(dataDir: string): string[] {
  if (!fs.existsSync(dataDir)) return [];
  const problems: string[] = [];
  const dirProblem = tighten(dataDir, 0o700);
  if (dirProblem) problems.push(dirProblem);
  for (const name of ['admin-token', 'master-key', 'hospay.lock']) {
    const p = path.join(dataDir, name);
    if (!fs.existsSync(p)) continue;
    const q = tighten(p, 0o600);
    if (q) problems.push(q);
  }
  problems.push(...securePrivateTree(path.join(dataDir, 'pgdata')));
  return problems;
}

/** Writes a file readable by its owner only (an existing file is tightened too: writeFile keeps its mode). */
function writePrivateFile(p: string, text: string, flag = 'w'): void {
  fs.writeFileSync(p, text, { mode: 0o600, flag });
  tighten(p, 0o600);
}

export function loadOrCreateAdminToken(dataDir: string, fromEnv: string | undefined): string {
  if (fromEnv) return fromEnv;
  ensurePrivateDir(dataDir);
  const p = adminTokenPath(dataDir);
  try {
    const t = fs.readFileSync(p, 'utf8').trim();
    if (t) {
      tighten(p, 0o600);
      return t;
    }
  } catch {
    /* first start */
  }
  // 32 random bytes: 43 base64url characters (config.ts MIN_ADMIN_TOKEN_LENGTH is 32).
  const token = randomBytes(32).toString('base64url');
  writePrivateFile(p, `${token}\n`);
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
  /** Where the admin API listens when it has its own address (HOSPAY_ADMIN_LISTEN). */
  adminPort?: number | null;
  adminHost?: string | null;
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

export class DataDirBusyError extends UnavailableError {
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
  ensurePrivateDir(dataDir);
  const holder = readLock(dataDir);
  if (holder) throw new DataDirBusyError(dataDir, holder);
  writePrivateFile(lockPath(dataDir), JSON.stringify({ pid: process.pid, port: null, host: null }));
  return () => {
    try {
      const info = JSON.parse(fs.readFileSync(lockPath(dataDir), 'utf8')) as LockInfo;
      if (info.pid === process.pid) fs.unlinkSync(lockPath(dataDir));
    } catch {
      /* already gone */
    }
  };
}

export function recordLockPort(
  dataDir: string,
  host: string,
  port: number,
  admin: { host: string; port: number } | null = null,
): void {
  writePrivateFile(
    lockPath(dataDir),
    JSON.stringify({
      pid: process.pid,
      port,
      host,
      ...(admin ? { adminHost: admin.host, adminPort: admin.port } : {}),
    }),
  );
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
    ensurePrivateDir(opts.dataDir);
    const p = path.join(opts.dataDir, 'master-key');
    try {
      const b = Buffer.from(fs.readFileSync(p, 'utf8').trim(), 'hex');
      if (b.length === 32) {
        tighten(p, 0o600);
        return b;
      }
    } catch {
      /* first use */
    }
    const key = randomBytes(32);
    writePrivateFile(p, `${key.toString('hex')}\n`, 'wx');
    return key;
  };
}

/** Where the master key file of the embedded database is (used when HOSPAY_MASTER_KEY is not set). */
export function masterKeyPath(dataDir: string): string {
  return path.join(dataDir, 'master-key');
}

/** The master key file's key, if there is a valid one (never makes one, unlike masterKeyLoader). */
export function readMasterKeyFile(p: string): Buffer | null {
  try {
    const b = Buffer.from(fs.readFileSync(p, 'utf8').trim(), 'hex');
    return b.length === 32 ? b : null;
  } catch {
    return null;
  }
}

/** Writes a master key file (0600); refuses to overwrite one. */
export function writeMasterKeyFile(p: string, key: Buffer): void {
  writePrivateFile(p, `${key.toString('hex')}\n`, 'wx');
}

let version: string | null = null;

/** hospay's version, from its package.json (the nearest one named hospay above this file); "unknown" if none. */
export function hospayVersion(): string {
  if (version !== null) return version;
  version = 'unknown';
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
        name?: unknown;
        version?: unknown;
      };
      if (pkg.name === 'hospay' && typeof pkg.version === 'string') {
        version = pkg.version;
        break;
      }
    } catch {
      /* not here */
    }
    dir = path.dirname(dir);
  }
  return version;
}
