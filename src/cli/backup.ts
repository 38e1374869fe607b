import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Config } from '../config/config.js';
import { ConflictError, InvalidInputError, UnavailableError, UsageError } from '../domain/errors.js';
import { systemClock } from '../domain/clock.js';
import { SecretBox, parseMasterKey } from '../crypto/secret-box.js';
import { migrate, openStore } from '../store/db.js';
import { PlatformKeyRepository } from '../store/keys.js';
import {
  BackupError,
  backupFacts,
  buildArchive,
  dataDirSize,
  masterKeyId,
  openBackup,
  readClosedDataDir,
  sealedKeyIds,
  writeDataDir,
  type BackupManifest,
} from '../store/backup.js';
import {
  DataDirBusyError,
  acquireLock,
  hospayVersion,
  masterKeyPath,
  readLock,
  readMasterKeyFile,
  writeMasterKeyFile,
} from '../runtime/local-files.js';
import { runningServer } from './running-server.js';
import { createProgress } from './progress.js';

export const BACKUP_USAGE = `  hospay backup [--out FILE] [--json]         back up the embedded database (a .zip with a manifest and a
                                               checksum; never the master key). While the server runs, it is
                                               taken inside the server through the admin API; PostgreSQL: use
                                               pg_dump or a base backup (docs/operations.md)
  hospay restore FILE [--force] [--master-key KEYFILE] [--json]
                                               restore an embedded-database backup (the server must be stopped);
                                               checks the checksum and that the master key opens the secrets;
                                               --force puts a non-empty database aside (pgdata.before-restore-*)`;

const MiB = 1024 * 1024;
const KiB = 1024;

/** A progress bar counted in KiB, fed with byte counts. */
function byteProgress(label: string, totalBytes: number, json: boolean) {
  const total = Math.ceil(totalBytes / KiB);
  const progress = createProgress({ label, total, unit: 'KiB', json });
  let bytes = 0;
  let ticked = 0;
  return {
    add(n: number): void {
      bytes += n;
      const kib = Math.floor(bytes / KiB);
      if (kib > ticked) {
        progress.tick(kib - ticked);
        ticked = kib;
      }
    },
    finish(summary: string): void {
      if (total > ticked) progress.tick(total - ticked);
      progress.done(summary);
    },
    fail(): void {
      progress.done('failed 失败');
    },
  };
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
}

function pgdataOf(config: Config): string {
  return path.join(config.dataDir, 'pgdata');
}

function notOnPostgres(what: 'backup' | 'restore'): never {
  throw new UsageError(
    what === 'backup'
      ? '使用 PostgreSQL 时请用 pg_dump 或基础备份（pg_basebackup + WAL 归档），见 docs/operations.md / with PostgreSQL (DATABASE_URL) back up with pg_dump or a base backup (pg_basebackup + WAL archiving): see docs/operations.md'
      : '使用 PostgreSQL 时请用 pg_restore / psql 或基础备份恢复，见 docs/operations.md / with PostgreSQL (DATABASE_URL) restore with pg_restore / psql or from a base backup: see docs/operations.md',
  );
}

/** Where the master key comes from, for the operator's note (never the key itself). */
function masterKeyNote(config: Config): { source: 'env' | 'file'; path: string | null } {
  return config.masterKey
    ? { source: 'env', path: null }
    : { source: 'file', path: masterKeyPath(config.dataDir) };
}

/** Writes the backup file (0600, never over an existing file): to a temporary name, then renamed. */
function writeBackupFile(out: string, archive: Buffer): void {
  if (fs.existsSync(out))
    throw new ConflictError(`${out} 已存在，不覆盖 / ${out} already exists; give another --out`);
  const tmp = `${out}.partial-${process.pid}`;
  fs.writeFileSync(tmp, archive, { mode: 0o600, flag: 'wx' });
  fs.renameSync(tmp, out);
}

/** `hospay backup`: from the running server (admin API) or from the data directory (holding its lock). */
export async function backupCommand(args: string[], config: Config): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { out: { type: 'string' }, json: { type: 'boolean' } },
    strict: true,
  });
  if (config.store.kind !== 'embedded') notOnPostgres('backup');
  const now = new Date();
  const out = path.resolve(values.out ?? `hospay-backup-${stamp(now)}.zip`);
  if (fs.existsSync(out))
    throw new ConflictError(`${out} 已存在，不覆盖 / ${out} already exists; give another --out`);
  const json = values.json === true;
  let manifest: BackupManifest;
  let archive: Buffer;
  let via: 'running-server' | 'data-dir';

  const server = runningServer(config); // throws DataDirBusyError when held but unreachable
  if (server) {
    via = 'running-server';
    const res = await fetch(`${server.base}/admin/backup`, {
      method: 'POST',
      headers: { authorization: `Bearer ${server.token}` },
    });
    if (res.status !== 200) {
      const text = await res.text();
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        /* not JSON */
      }
      if (res.status === 401 || res.status === 403)
        throw new UnavailableError(
          `运行中的服务器拒绝备份 (${res.status}) / the running server refused the backup (${res.status}): ${message}; the admin token (HOSPAY_ADMIN_TOKEN or ${config.dataDir}/admin-token) must be the platform administrator's`,
        );
      throw new UnavailableError(
        `运行中的服务器未能备份 / the running server could not back up (${res.status}): ${message}`,
      );
    }
    const progress = byteProgress(
      '备份 backup (from the running server)',
      Number(res.headers.get('content-length') ?? 0),
      json,
    );
    const chunks: Buffer[] = [];
    if (res.body)
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        chunks.push(Buffer.from(chunk));
        progress.add(chunk.length);
      }
    archive = Buffer.concat(chunks);
    // The file is checked as a restore would check it, before it is kept.
    try {
      manifest = (await openBackup(archive)).manifest;
    } catch (e) {
      progress.fail();
      throw e;
    }
    progress.finish(`${(archive.length / MiB).toFixed(1)} MiB`);
  } else {
    via = 'data-dir';
    const pgdata = pgdataOf(config);
    if (!fs.existsSync(path.join(pgdata, 'PG_VERSION')))
      throw new InvalidInputError(
        `${config.dataDir} 中没有内嵌数据库 / there is no embedded database in ${config.dataDir} (HOSPAY_DATA_DIR)`,
      );
    const release = acquireLock(config.dataDir);
    try {
      // Opened to read its facts and closed cleanly (a shutdown checkpoint): then its files stand still.
      const store = await openStore(config.store);
      let facts;
      try {
        facts = await backupFacts(store.db);
      } finally {
        await store.close();
      }
      const progress = byteProgress('备份 backup', dataDirSize(pgdata).bytes, json);
      const entries = await readClosedDataDir(pgdata, (n) => progress.add(n));
      ({ manifest, archive } = await buildArchive(entries, {
        hospayVersion: hospayVersion(),
        now,
        ...facts,
      }));
      progress.finish(`${manifest.files} files`);
    } finally {
      release();
    }
  }
  writeBackupFile(out, archive);
  const key = masterKeyNote(config);
  if (json) {
    console.log(
      JSON.stringify({
        file: out,
        via,
        bytes: archive.length,
        sha256: manifest.sha256,
        files: manifest.files,
        created_at: manifest.createdAt,
        hospay_version: manifest.hospayVersion,
        migrations: manifest.migrations,
        master_key_ids: manifest.masterKeyIds,
        master_key: key,
      }),
    );
  } else {
    console.log(`备份完成 / backup written: ${out}`);
    console.log(
      `  ${manifest.files} files, ${(archive.length / MiB).toFixed(1)} MiB compressed, sha256 ${manifest.sha256}`,
    );
    console.log(
      `  hospay ${manifest.hospayVersion}, migrations up to ${manifest.migrations.at(-1) ?? '(none)'}, taken ${via === 'running-server' ? 'inside the running server' : 'from the stopped data directory'}`,
    );
    console.log(
      '  主密钥不在备份中，请把它与备份分开、妥善保存；没有它，渠道密钥、HIS 令牌和平台私钥都无法打开 / the master key is NOT in the backup: keep it with the backup (separately and safely); without it the channel keys, the HIS token and the platform key cannot be opened',
    );
    console.log(
      key.source === 'env'
        ? '  master key: HOSPAY_MASTER_KEY (the environment)'
        : `  master key file: ${key.path ?? ''}`,
    );
    if (manifest.masterKeyIds.length)
      console.log(
        `  the secrets in this backup need the master key with id ${manifest.masterKeyIds.join(', ')}`,
      );
  }
  return 0;
}

function moveAside(p: string, tag: string, now: Date): string {
  const aside = `${p}.${tag}-${stamp(now)}`;
  fs.renameSync(p, aside);
  return aside;
}

/** `hospay restore FILE`: into a stopped data directory; the old database is kept aside, never deleted. */
export async function restoreCommand(args: string[], config: Config): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      force: { type: 'boolean' },
      'master-key': { type: 'string' },
      json: { type: 'boolean' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (config.store.kind !== 'embedded') notOnPostgres('restore');
  const [file, ...extra] = positionals;
  if (!file || extra.length) throw new UsageError('give one backup file: hospay restore FILE');
  if (values['master-key'] && config.masterKey)
    throw new UsageError('use either HOSPAY_MASTER_KEY or --master-key, not both');
  const json = values.json === true;
  const holder = readLock(config.dataDir);
  if (holder)
    throw new UnavailableError(
      `${new DataDirBusyError(config.dataDir, holder).message} 恢复前请先停止服务器 / stop the server before restoring.`,
    );
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new InvalidInputError(
      `无法读取备份文件 / cannot read the backup file ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  }
  // 1. The file: zip, entry names, manifest, checksum. Nothing is written before it passes.
  const backup = await openBackup(bytes);
  const { manifest } = backup;

  // 2. The master key: the environment, --master-key, or the data directory's key file; it must be the one the
  // backup's secrets were sealed with.
  const keyFile = masterKeyPath(config.dataDir);
  let key: Buffer | null = config.masterKey;
  let installKey: Buffer | null = null;
  if (!key && values['master-key']) {
    let text: string;
    try {
      text = fs.readFileSync(values['master-key'], 'utf8');
    } catch (e) {
      throw new InvalidInputError(
        `无法读取主密钥文件 / cannot read the master key file ${values['master-key']} (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      );
    }
    installKey = parseMasterKey(text);
    if (!installKey)
      throw new InvalidInputError('--master-key: not a master key (32 bytes as 64 hex digits or base64)');
    key = installKey;
  }
  const existingKey = readMasterKeyFile(keyFile);
  if (installKey && existingKey && !existingKey.equals(installKey) && !values.force)
    throw new ConflictError(
      `${keyFile} 已有另一把主密钥 / ${keyFile} holds another master key; add --force to put it aside (master-key.before-restore-*)`,
    );
  if (!key) key = existingKey;
  const needed = manifest.masterKeyIds;
  if (needed.length && !key)
    throw new InvalidInputError(
      `缺少主密钥 / no master key: this backup's secrets are sealed with master key ${needed.join(', ')}; ` +
        `give it with --master-key KEYFILE, put it at ${keyFile}, or set HOSPAY_MASTER_KEY`,
    );
  if (key && needed.length && !needed.includes(masterKeyId(key)))
    throw new InvalidInputError(
      `主密钥不匹配 / wrong master key: this backup's secrets are sealed with master key ${needed.join(', ')}, ` +
        `the key given is ${masterKeyId(key)}; nothing was restored`,
    );

  // 3. The place: the data directory, held (a server cannot start meanwhile); a non-empty database only with
  // --force, and then kept aside.
  const release = acquireLock(config.dataDir);
  const now = new Date();
  const pgdata = pgdataOf(config);
  let aside: string | null = null;
  let keyAside: string | null = null;
  let restored = false;
  try {
    const occupied = fs.existsSync(pgdata) && fs.readdirSync(pgdata).length > 0;
    if (occupied && !values.force)
      throw new ConflictError(
        `${pgdata} 中已有数据库；加 --force 会把它移到一旁（不删除）/ ${pgdata} already holds a database; --force puts it aside (pgdata.before-restore-*), it is not deleted`,
      );
    const staging = `${pgdata}.restoring-${stamp(now)}`;
    const progress = byteProgress('恢复 restore', manifest.bytes, json);
    try {
      await writeDataDir(staging, backup.entries, (n) => progress.add(n));
    } catch (e) {
      progress.fail();
      fs.rmSync(staging, { recursive: true, force: true });
      throw e;
    }
    progress.finish(`${manifest.files} files`);
    if (fs.existsSync(pgdata)) aside = moveAside(pgdata, 'before-restore', now);
    fs.renameSync(staging, pgdata);
    restored = true;
    if (installKey && !(existingKey && existingKey.equals(installKey))) {
      if (existingKey) keyAside = moveAside(keyFile, 'before-restore', now);
      writeMasterKeyFile(keyFile, installKey);
    }

    // 4. Open it: migrate a backup from an older hospay, and check the key opens its secrets.
    const store = await openStore(config.store);
    let applied: string[];
    try {
      try {
        applied = await migrate(store.db);
      } catch (e) {
        throw new BackupError(
          `恢复的数据库无法迁移（备份来自更新的 hospay ${manifest.hospayVersion}？）/ the restored database does not migrate (a backup from a newer hospay, ${manifest.hospayVersion}?): ${e instanceof Error ? e.message : String(e)}`,
        );
      }
      if (key) {
        const ids = await sealedKeyIds(store.db);
        const id = masterKeyId(key);
        const other = ids.filter((x) => x !== id);
        if (other.length)
          throw new BackupError(
            `主密钥打不开恢复的密钥 / the master key does not open the restored secrets (sealed with ${other.join(', ')}, key is ${id})`,
          );
        const k = key;
        // The platform's private key is opened for real (a sealed secret, bound to its public key).
        await new PlatformKeyRepository(store.db, systemClock, new SecretBox(() => k), {
          kind: 'embedded',
        }).active();
      }
    } finally {
      await store.close();
    }
    if (json)
      console.log(
        JSON.stringify({
          restored: pgdata,
          files: manifest.files,
          bytes: manifest.bytes,
          sha256: manifest.sha256,
          created_at: manifest.createdAt,
          hospay_version: manifest.hospayVersion,
          migrations_applied: applied,
          previous: aside,
          previous_master_key: keyAside,
          master_key_id: key ? masterKeyId(key) : null,
        }),
      );
    else {
      console.log(`恢复完成 / restored: ${pgdata}`);
      console.log(
        `  from a backup taken ${manifest.createdAt} by hospay ${manifest.hospayVersion} (${manifest.files} files, checksum ok)`,
      );
      if (applied.length) console.log(`  migrated: ${applied.join(', ')}`);
      if (key) console.log(`  master key ${masterKeyId(key)} opens the restored secrets`);
      if (aside) console.log(`  previous database kept at ${aside} (delete it yourself once satisfied)`);
      if (keyAside) console.log(`  previous master key kept at ${keyAside}`);
      console.log('  start the server: hospay serve');
    }
    return 0;
  } catch (e) {
    // A restore that failed after the switch puts everything back as it was; the failed copy is kept aside.
    if (restored) {
      try {
        moveAside(pgdata, 'failed-restore', now);
        if (aside) fs.renameSync(aside, pgdata);
        if (installKey && fs.existsSync(keyFile) && !keyAside && !existingKey) fs.rmSync(keyFile);
        if (keyAside) {
          fs.rmSync(keyFile, { force: true });
          fs.renameSync(keyAside, keyFile);
        }
      } catch {
        /* reported below with the original error */
      }
    }
    throw e;
  } finally {
    release();
  }
}
