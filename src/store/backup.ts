import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { sql } from 'kysely';
import type { Db } from './db.js';
import { readTar, TarError, writeTar, type TarEntry } from '../formats/tar.js';
import { InvalidInputError } from '../domain/errors.js';

/**
 * Backups of the embedded database (PGlite): its directory (`<data dir>/pgdata`) as a gzipped tar with a
 * manifest, taken at a consistent point, and restored file by file into an empty directory.
 *
 * Consistency: PGlite is one connection in this process. A snapshot takes that connection (so no statement and no
 * transaction runs meanwhile: every other query waits for it), runs CHECKPOINT (every committed change is in the
 * data files) and then reads the whole directory synchronously: nothing else can run in this process until the
 * read is done, so the copy is the database at one instant, as clean as after a shutdown.
 *
 * The master key is never in a backup; the manifest names the key id(s) the sealed secrets need (the same 8 hex
 * digits every sealed value already carries), so a restore can tell a wrong key before writing anything.
 */

export const BACKUP_FORMAT = 'hospay-embedded-backup';
export const BACKUP_FORMAT_VERSION = 1;
const MANIFEST = 'manifest.json';
const DATA = 'pgdata';
/** Files of a running PostgreSQL that a copy must not carry (PGlite writes none of them today). */
const SKIP = new Set(['postmaster.pid', 'postmaster.opts']);

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  formatVersion: number;
  hospayVersion: string;
  createdAt: string;
  /** The migrations applied in the backed-up database, in order. */
  migrations: string[];
  /** The ids of the master key(s) its sealed secrets were sealed with (none: no secret stored). */
  masterKeyIds: string[];
  files: number;
  bytes: number;
  /** SHA-256 over every entry (type, path, size, bytes) in archive order: see digestEntries. */
  sha256: string;
}

export class BackupError extends InvalidInputError {
  constructor(message: string) {
    super(message);
    this.name = 'BackupError';
  }
}

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/**
 * Every directory and file under `root`, directories before their contents, names sorted; with `contents`
 * false the files' data is left empty (and `mode` holds their size, for counting).
 */
function readTree(root: string, contents = true): TarEntry[] {
  const out: TarEntry[] = [];
  const walk = (rel: string) => {
    const abs = path.join(root, rel);
    for (const name of fs.readdirSync(abs).sort()) {
      if (SKIP.has(name) && rel === '') continue;
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(root, r));
      if (st.isDirectory()) {
        out.push({
          path: `${DATA}/${r}`,
          type: 'dir',
          data: new Uint8Array(0),
          mode: 0o700,
          mtime: st.mtime,
        });
        walk(r);
      } else if (st.isFile()) {
        out.push({
          path: `${DATA}/${r}`,
          type: 'file',
          data: contents ? fs.readFileSync(path.join(root, r)) : new Uint8Array(0),
          mode: contents ? 0o600 : st.size,
          mtime: st.mtime,
        });
      }
      // Anything else (a symbolic link, a socket) is not part of PGlite's directory: left out.
    }
  };
  walk('');
  return out;
}

/** The digest the manifest carries: every entry's type, path and size, then its bytes. */
export function digestEntries(entries: TarEntry[]): { sha256: string; files: number; bytes: number } {
  const h = createHash('sha256');
  let files = 0;
  let bytes = 0;
  for (const e of entries) {
    h.update(`${e.type}:${e.path}:${e.data.length}\n`);
    h.update(e.data);
    if (e.type === 'file') {
      files++;
      bytes += e.data.length;
    }
  }
  return { sha256: h.digest('hex'), files, bytes };
}

/** The migrations applied (Kysely's table), in order; none when the database is new. */
async function appliedMigrations(db: Db): Promise<string[]> {
  try {
    const r = await sql<{
      name: string;
    }>`SELECT name FROM kysely_migration ORDER BY timestamp, name`.execute(db);
    return r.rows.map((x) => x.name);
  } catch {
    return [];
  }
}

/** The master key ids the sealed values in the database name (`v1:<key id>:…`). */
export async function sealedKeyIds(db: Db): Promise<string[]> {
  const r = await sql<{ id: string }>`
    SELECT DISTINCT split_part(v, ':', 2) AS id FROM (
      SELECT private_sealed AS v FROM platform_keys
      UNION ALL SELECT his_token_sealed FROM apps
      UNION ALL SELECT secrets_sealed FROM channel_configs
      UNION ALL SELECT secrets_sealed FROM platform_channel_configs) s
    WHERE v IS NOT NULL AND v LIKE 'v1:%'
    ORDER BY 1`.execute(db);
  return r.rows.map((x) => x.id);
}

export interface Snapshot {
  manifest: BackupManifest;
  /** The backup file's bytes: gzip of a tar whose first entry is manifest.json. */
  archive: Buffer;
}

/** What the manifest says of the database itself: its migrations and the master key ids of its secrets. */
export async function backupFacts(db: Db): Promise<{ migrations: string[]; masterKeyIds: string[] }> {
  return {
    migrations: await appliedMigrations(db),
    masterKeyIds: await sealedKeyIds(db).catch(() => []),
  };
}

/** The backup file of these entries (manifest first, then the database's directory). */
export async function buildArchive(
  entries: TarEntry[],
  meta: { hospayVersion: string; now: Date; migrations: string[]; masterKeyIds: string[] },
): Promise<Snapshot> {
  const digest = digestEntries(entries);
  const manifest: BackupManifest = {
    format: BACKUP_FORMAT,
    formatVersion: BACKUP_FORMAT_VERSION,
    hospayVersion: meta.hospayVersion,
    createdAt: meta.now.toISOString(),
    migrations: meta.migrations,
    masterKeyIds: meta.masterKeyIds,
    ...digest,
  };
  const manifestEntry: TarEntry = {
    path: MANIFEST,
    type: 'file',
    data: Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8'),
    mode: 0o600,
    mtime: meta.now,
  };
  const archive = await gzipAsync(writeTar([manifestEntry, ...entries]));
  return { manifest, archive };
}

/**
 * A consistent copy of the embedded database in `pgdataDir` taken while it is open in this process (see the
 * module comment), as a backup file. `db` must be the embedded database living in that directory.
 */
export async function snapshotEmbedded(
  db: Db,
  pgdataDir: string,
  meta: { hospayVersion: string; now: Date },
): Promise<Snapshot> {
  const facts = await backupFacts(db);
  // Holding the one connection: no statement or transaction of this process runs until the copy is read.
  const entries = await db.connection().execute(async (c) => {
    await sql`CHECKPOINT`.execute(c);
    return readTree(pgdataDir);
  });
  return buildArchive(entries, { ...meta, ...facts });
}

/**
 * The directory of an embedded database nobody has open (closed cleanly: the caller holds the data
 * directory's lock), read file by file without blocking; `onFile` is told each file's size (a progress bar).
 */
export async function readClosedDataDir(
  pgdataDir: string,
  onFile: (bytes: number) => void = () => {},
): Promise<TarEntry[]> {
  const list = readTree(pgdataDir, false);
  for (const e of list)
    if (e.type === 'file') {
      e.data = await fs.promises.readFile(path.join(pgdataDir, e.path.slice(DATA.length + 1)));
      e.mode = 0o600;
      onFile(e.data.length);
    }
  return list;
}

/** How many files and bytes a database directory holds (for a progress bar's total). */
export function dataDirSize(pgdataDir: string): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const e of readTree(pgdataDir, false))
    if (e.type === 'file') {
      files++;
      bytes += e.mode; // readTree without contents puts the size here
    }
  return { files, bytes };
}

export interface OpenedBackup {
  manifest: BackupManifest;
  /** The database directory's entries, paths relative to it. */
  entries: TarEntry[];
}

/**
 * Reads and verifies a backup file: gzip, tar, the manifest's format and the digest of every entry. Throws
 * BackupError (damaged, not a backup, a newer format) before anything is written anywhere.
 */
export async function openBackup(file: Buffer): Promise<OpenedBackup> {
  let entries: TarEntry[];
  try {
    entries = readTar(await gunzipAsync(file));
  } catch (e) {
    throw new BackupError(
      `备份文件已损坏或不是 hospay 备份 / the backup file is damaged or not a hospay backup (${e instanceof TarError ? e.message : 'gzip: ' + (e instanceof Error ? e.message : String(e))})`,
    );
  }
  const [first, ...rest] = entries;
  if (!first || first.path !== MANIFEST)
    throw new BackupError(
      '不是 hospay 备份（缺少 manifest.json）/ not a hospay backup (no manifest.json first)',
    );
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(Buffer.from(first.data).toString('utf8')) as BackupManifest;
  } catch {
    throw new BackupError('备份清单无法读取 / the backup manifest is not valid JSON');
  }
  if (manifest.format !== BACKUP_FORMAT)
    throw new BackupError(
      `不是 hospay 内嵌数据库备份 / not a hospay embedded-database backup (${String(manifest.format)})`,
    );
  if (manifest.formatVersion !== BACKUP_FORMAT_VERSION)
    throw new BackupError(
      `备份格式版本 ${manifest.formatVersion} 不受支持 / backup format version ${manifest.formatVersion} is not supported by this hospay (${BACKUP_FORMAT_VERSION}); use the hospay version that made it (${manifest.hospayVersion}) or newer`,
    );
  const digest = digestEntries(rest);
  if (digest.sha256 !== manifest.sha256 || digest.files !== manifest.files || digest.bytes !== manifest.bytes)
    throw new BackupError(
      '备份文件校验和不符（已损坏或被改动），未做任何恢复 / the backup file fails its checksum (damaged or altered); nothing was restored',
    );
  for (const e of rest)
    if (!e.path.startsWith(`${DATA}/`) || e.path.split('/').some((p) => p === '..' || p === '.' || p === ''))
      throw new BackupError(`备份中有意外的路径 / unexpected path in the backup: ${e.path}`);
  return {
    manifest,
    entries: rest.map((e) => ({ ...e, path: e.path.slice(DATA.length + 1) })),
  };
}

/**
 * Writes a verified backup's files into `target` (which must not exist yet): directories 0700, files 0600.
 * `onFile` is told each file's size as it is written (for a progress bar).
 */
export async function writeDataDir(
  target: string,
  entries: TarEntry[],
  onFile: (bytes: number) => void = () => {},
): Promise<void> {
  await fs.promises.mkdir(target, { mode: 0o700 });
  for (const e of entries) {
    const p = path.join(target, ...e.path.split('/'));
    if (e.type === 'dir') await fs.promises.mkdir(p, { recursive: true, mode: 0o700 });
    else {
      await fs.promises.mkdir(path.dirname(p), { recursive: true, mode: 0o700 });
      await fs.promises.writeFile(p, e.data, { mode: 0o600, flag: 'wx' });
      await fs.promises.utimes(p, e.mtime, e.mtime);
      onFile(e.data.length);
    }
  }
}

/** The key id SecretBox writes into every sealed value: the first 8 hex digits of SHA-256 of the key. */
export function masterKeyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

/**
 * The running server's side of a backup (the admin API's POST /admin/backup): the embedded database in
 * `<dataDir>/pgdata` as a backup file, taken inside this process.
 */
export class EmbeddedBackup {
  constructor(
    private readonly db: Db,
    private readonly dataDir: string,
    private readonly hospayVersion: string,
  ) {}

  snapshot(now: Date): Promise<Snapshot> {
    return snapshotEmbedded(this.db, path.join(this.dataDir, DATA), {
      hospayVersion: this.hospayVersion,
      now,
    });
  }
}
