import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { sql } from 'kysely';
import { deflateSync, unzipSync, Zip, ZipPassThrough } from 'fflate';
import type { Db } from './db.js';
import { InvalidInputError } from '../domain/errors.js';

/**
 * Backups of the embedded database (PGlite): its directory (`<data dir>/pgdata`) as a zip archive (made and read
 * by fflate) whose first entry is a manifest, taken at a consistent point, and restored file by file into an
 * empty directory.
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
/**
 * A zip entry deflated in one piece with fflate's deflateSync. (fflate 0.8.3's streaming Deflate, which its
 * ZipDeflate uses, writes invalid streams for some of PostgreSQL's sparse files, e.g. the free-space maps:
 * "invalid distance". deflateSync does not.) The whole file is pushed at once; the CRC and size are of the raw
 * bytes, as the zip format wants.
 */
class DeflatedEntry extends ZipPassThrough {
  constructor(name: string) {
    super(name);
    this.compression = 8;
  }

  protected override process(chunk: Uint8Array<ArrayBuffer>, final: boolean): void {
    this.ondata(null, deflateSync(chunk, { level: 6 }), final);
  }
}

/** Input bytes compressed between two turns of the event loop (the server keeps serving while it zips). */
const ZIP_SLICE = 1024 * 1024;
/** Unix permission bits in a zip entry's external attributes (made on Unix: version-made-by OS 3). */
const UNIX = 3;
const FILE_ATTRS = 0o100600 * 0x10000;
const DIR_ATTRS = 0o040700 * 0x10000 + 0x10;

/** One file or directory of the database's directory, as a backup holds it. */
export interface BackupEntry {
  /** Relative path with "/" separators; a directory's without a trailing slash. */
  path: string;
  type: 'file' | 'dir';
  /** A file's bytes (empty for a directory, or while only counted). */
  data: Uint8Array;
  /** A file's size on disk (what readTree saw). */
  size: number;
}

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

/**
 * Every directory and file under `root`, directories before their contents, names sorted; with `contents`
 * false the files' data is left empty (their `size` still counts).
 */
function readTree(root: string, contents = true): BackupEntry[] {
  const out: BackupEntry[] = [];
  const walk = (rel: string) => {
    const abs = path.join(root, rel);
    for (const name of fs.readdirSync(abs).sort()) {
      if (SKIP.has(name) && rel === '') continue;
      const r = rel ? `${rel}/${name}` : name;
      const st = fs.lstatSync(path.join(root, r));
      if (st.isDirectory()) {
        out.push({ path: `${DATA}/${r}`, type: 'dir', data: new Uint8Array(0), size: 0 });
        walk(r);
      } else if (st.isFile()) {
        out.push({
          path: `${DATA}/${r}`,
          type: 'file',
          data: contents ? fs.readFileSync(path.join(root, r)) : new Uint8Array(0),
          size: st.size,
        });
      }
      // Anything else (a symbolic link, a socket) is not part of PGlite's directory: left out.
    }
  };
  walk('');
  return out;
}

/** The digest the manifest carries: every entry's type, path and size, then its bytes. */
export function digestEntries(entries: BackupEntry[]): { sha256: string; files: number; bytes: number } {
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
  /** The backup file's bytes: a zip whose first entry is manifest.json. */
  archive: Buffer;
}

/** What the manifest says of the database itself: its migrations and the master key ids of its secrets. */
export async function backupFacts(db: Db): Promise<{ migrations: string[]; masterKeyIds: string[] }> {
  return {
    migrations: await appliedMigrations(db),
    masterKeyIds: await sealedKeyIds(db).catch(() => []),
  };
}

/**
 * The entries as one zip, in the order given (deterministic: the same entries and time give the same bytes):
 * files deflated, directories as "name/" entries, every entry dated `mtime`, Unix modes 0600 / 0700. The event
 * loop gets a turn after every megabyte or so of input.
 */
async function zipEntries(entries: BackupEntry[], mtime: Date): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let failure: Error | null = null;
  let ended = false;
  const zip = new Zip((err, chunk, final) => {
    if (err) failure = err;
    else chunks.push(chunk);
    if (final) ended = true;
  });
  let sinceYield = 0;
  for (const e of entries) {
    const file = e.type === 'dir' ? new ZipPassThrough(`${e.path}/`) : new DeflatedEntry(e.path);
    file.mtime = mtime;
    file.os = UNIX;
    file.attrs = e.type === 'dir' ? DIR_ATTRS : FILE_ATTRS;
    zip.add(file);
    file.push(e.data, true);
    if (failure) throw failure;
    sinceYield += e.data.length;
    if (sinceYield >= ZIP_SLICE) {
      sinceYield = 0;
      await yieldToLoop();
    }
  }
  zip.end();
  if (failure) throw failure;
  if (!ended) throw new Error('zip: the archive did not end');
  return Buffer.concat(chunks);
}

/** The backup file of these entries (manifest first, then the database's directory). */
export async function buildArchive(
  entries: BackupEntry[],
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
  const data = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
  const manifestEntry: BackupEntry = { path: MANIFEST, type: 'file', data, size: data.length };
  const archive = await zipEntries([manifestEntry, ...entries], meta.now);
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
): Promise<BackupEntry[]> {
  const list = readTree(pgdataDir, false);
  for (const e of list)
    if (e.type === 'file') {
      e.data = await fs.promises.readFile(path.join(pgdataDir, e.path.slice(DATA.length + 1)));
      e.size = e.data.length;
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
      bytes += e.size;
    }
  return { files, bytes };
}

export interface OpenedBackup {
  manifest: BackupManifest;
  /** The database directory's entries, paths relative to it. */
  entries: BackupEntry[];
}

/**
 * Why a zip entry's name is refused (null: it is fine). A backup holds manifest.json and relative paths under
 * pgdata/ with "/" separators, a directory's ending in "/"; nothing absolute, no "..", ".", empty segment or
 * backslash, no control character: a name that could land outside the restored directory is refused.
 */
function refusedName(name: string): string | null {
  if (name === MANIFEST) return null;
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) return 'an absolute path';
  if (name.includes('\\')) return 'a backslash';
  if ([...name].some((c) => c.charCodeAt(0) < 0x20 || c === '\u007f')) return 'a control character';
  const parts = (name.endsWith('/') ? name.slice(0, -1) : name).split('/');
  if (parts.some((p) => p === '..' || p === '.' || p === '')) return 'a "..", "." or empty segment';
  if (parts[0] !== DATA || parts.length < 2) return `not under ${DATA}/`;
  return null;
}

function damaged(detail: string): BackupError {
  return new BackupError(
    `备份文件已损坏或不是 hospay 备份 / the backup file is damaged or not a hospay backup (${detail})`,
  );
}

function checksumFails(): BackupError {
  return new BackupError(
    '备份文件校验和不符（已损坏或被改动），未做任何恢复 / the backup file fails its checksum (damaged or altered); nothing was restored',
  );
}

/** unzipSync with the archive's damage reported as such (fflate throws on a broken archive or deflate stream). */
function unzipSome(file: Buffer, want: (name: string) => boolean): Record<string, Uint8Array> {
  try {
    return unzipSync(file, { filter: (f) => want(f.name) });
  } catch (e) {
    throw damaged(`zip: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Reads and verifies a backup file: the zip's entry list (manifest.json first, every name safe, none twice),
 * the manifest's format, the sizes it declares and the digest of every entry. Throws BackupError (damaged, not a
 * backup, a newer format, an unsafe name) before anything is written anywhere.
 */
export async function openBackup(file: Buffer): Promise<OpenedBackup> {
  // 1. The entry list, in archive order, nothing decompressed yet.
  const listed: Array<{ name: string; size: number }> = [];
  try {
    unzipSync(file, {
      filter: (f) => {
        listed.push({ name: f.name, size: f.originalSize });
        return false;
      },
    });
  } catch (e) {
    throw damaged(`zip: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (listed[0]?.name !== MANIFEST)
    throw new BackupError(
      '不是 hospay 备份（缺少 manifest.json）/ not a hospay backup (no manifest.json first)',
    );
  const seen = new Set<string>();
  for (const { name } of listed) {
    const why = refusedName(name);
    if (why)
      throw new BackupError(
        `备份中有意外的路径，未做任何恢复 / unexpected path in the backup (${why}): ${JSON.stringify(name)}; nothing was restored`,
      );
    if (seen.has(name)) throw damaged(`the zip holds ${name} twice`);
    seen.add(name);
  }

  // 2. The manifest: a hospay backup of a format this hospay reads, declaring what the rest holds.
  const manifestData = unzipSome(file, (n) => n === MANIFEST)[MANIFEST] ?? new Uint8Array(0);
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(Buffer.from(manifestData).toString('utf8')) as BackupManifest;
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
  // The sizes the zip declares must be the manifest's before anything else is decompressed.
  const rest = listed.slice(1);
  const declared = rest.filter((x) => !x.name.endsWith('/'));
  if (
    declared.length !== manifest.files ||
    declared.reduce((n, x) => n + x.size, 0) !== manifest.bytes ||
    rest.some((x) => x.name.endsWith('/') && x.size !== 0)
  )
    throw checksumFails();

  // 3. Every entry, in archive order, against the manifest's digest.
  const data = unzipSome(file, (n) => n !== MANIFEST);
  const entries: BackupEntry[] = rest.map(({ name }) => {
    const dir = name.endsWith('/');
    const bytes = dir ? new Uint8Array(0) : data[name];
    if (bytes === undefined) throw damaged(`cannot read ${name} from the zip`);
    return {
      path: dir ? name.slice(0, -1) : name,
      type: dir ? 'dir' : 'file',
      data: bytes,
      size: bytes.length,
    };
  });
  const digest = digestEntries(entries);
  if (digest.sha256 !== manifest.sha256 || digest.files !== manifest.files || digest.bytes !== manifest.bytes)
    throw checksumFails();
  return {
    manifest,
    entries: entries.map((e) => ({ ...e, path: e.path.slice(DATA.length + 1) })),
  };
}

/**
 * Writes a verified backup's files into `target` (which must not exist yet): directories 0700, files 0600.
 * `onFile` is told each file's size as it is written (for a progress bar).
 */
export async function writeDataDir(
  target: string,
  entries: BackupEntry[],
  onFile: (bytes: number) => void = () => {},
): Promise<void> {
  const root = path.resolve(target);
  for (const e of entries) {
    // openBackup refused unsafe names already; this is the last line, before anything is created.
    const p = path.resolve(root, ...e.path.split('/'));
    if (!p.startsWith(`${root}${path.sep}`))
      throw new BackupError(`备份中有意外的路径 / unexpected path in the backup: ${e.path}`);
  }
  await fs.promises.mkdir(root, { mode: 0o700 });
  for (const e of entries) {
    const p = path.resolve(root, ...e.path.split('/'));
    if (e.type === 'dir') await fs.promises.mkdir(p, { recursive: true, mode: 0o700 });
    else {
      await fs.promises.mkdir(path.dirname(p), { recursive: true, mode: 0o700 });
      await fs.promises.writeFile(p, e.data, { mode: 0o600, flag: 'wx' });
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
