import { sql } from 'kysely';
import { createHash, type KeyObject } from 'node:crypto';
import type { Db } from './db.js';
import type { Clock } from '../domain/clock.js';
import type { SecretBox } from '../crypto/secret-box.js';
import { newRsaKeyPair, readPrivateKey, readPublicKey } from '../crypto/signing.js';

export interface PlatformKey {
  id: number;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
}

export interface PlatformKeyOptions {
  /** How long the active key is reused before the table is read again (another instance may have rotated). */
  reloadMs?: number;
  /** A retired key is deleted this long after it stopped being active (HOSPAY_KEY_GRACE). */
  graceMs?: number;
  /** Which database: on the embedded one the write-ahead log can be cleared of an unsealed key. */
  kind?: 'embedded' | 'postgres';
  /** Something an operator should know (a clean-up step that the database refused). */
  onWarning?: (message: string) => void;
}

export const DEFAULT_KEY_GRACE_MS = 7 * 86_400_000;

/**
 * The platform's own RSA key pair: signs gateway responses, notifications and return_url redirects. Created on
 * first start, rotatable (`hospay keys rotate`); every instance picks up a new active key within `reloadMs`.
 * Keys are loaded once into KeyObjects (parsing a PEM per signature is several times slower).
 *
 * The private key is stored sealed with the master key (SecretBox, bound to its public key), never as PEM:
 * a copy of the database, its files or a backup alone cannot sign. Rows written by older versions (plain
 * `private_pem`) are sealed by `sealLegacy`, which every start runs before the key is used.
 *
 * Nothing verifies with a retired key (the integrators hold the public key; the platform only signs): a retired
 * row is kept for `graceMs` (so a rotation can be looked into or undone by hand), then deleted by the expiry job
 * and by the next rotation.
 */
export class PlatformKeyRepository {
  private cached: { key: PlatformKey; at: number } | null = null;
  /** The (re)load in flight: requests that find the cached key stale wait for one read, not one each. */
  private loading: Promise<PlatformKey> | null = null;
  /** Bumped by rotate(): a read begun before a rotation never caches what it found. */
  private generation = 0;
  private sealed: Promise<number> | null = null;
  private readonly reloadMs: number;
  readonly graceMs: number;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly secrets: SecretBox,
    private readonly opts: PlatformKeyOptions = {},
  ) {
    this.reloadMs = opts.reloadMs ?? 60_000;
    this.graceMs = opts.graceMs ?? DEFAULT_KEY_GRACE_MS;
  }

  /** The associated data of a sealed private key: its public key, so a sealed key moved to another row fails. */
  private static context(publicPem: string): string {
    return `platform_key:${createHash('sha256').update(publicPem.trim()).digest('hex')}`;
  }

  async active(): Promise<PlatformKey> {
    const now = this.clock.now().getTime();
    if (this.cached && now - this.cached.at < this.reloadMs) return this.cached.key;
    this.loading ??= this.load(now).finally(() => {
      this.loading = null;
    });
    return this.loading;
  }

  private async load(now: number): Promise<PlatformKey> {
    const generation = this.generation;
    const key = await this.read();
    if (generation === this.generation) this.cached = { key, at: now };
    return key;
  }

  private async read(): Promise<PlatformKey> {
    await this.ensureSealed();
    let row = await this.activeRow();
    if (!row) {
      await this.rotate(true);
      row = await this.activeRow();
      if (!row) throw new Error('no active platform key after creating one');
    }
    if (this.cached && this.cached.key.id === row.id) return this.cached.key;
    if (!row.private_sealed) throw new Error('the stored platform key is not sealed');
    const privateKey = readPrivateKey(
      this.secrets.open(row.private_sealed, PlatformKeyRepository.context(row.public_pem)),
    );
    const publicKey = readPublicKey(row.public_pem);
    if (!privateKey || !publicKey) throw new Error('the stored platform key is unreadable');
    return { id: row.id, privateKey, publicKey, publicPem: row.public_pem };
  }

  private activeRow() {
    return this.db
      .selectFrom('platform_keys')
      .select(['id', 'public_pem', 'private_sealed'])
      .where('active', '=', true)
      .executeTakeFirst();
  }

  /** Runs `sealLegacy` once per process (a failure is tried again on the next use). */
  private ensureSealed(): Promise<number> {
    this.sealed ??= this.sealLegacy().catch((e: unknown) => {
      this.sealed = null;
      throw e;
    });
    return this.sealed;
  }

  /**
   * Seals every private key stored as plain PEM by an older version, then removes what the database keeps of
   * the old rows: VACUUM FULL rewrites the table without the dead row versions and, on the embedded database,
   * the write-ahead log is switched and checkpointed with recycling off, so its old segments are deleted rather
   * than reused. PostgreSQL's own WAL, archives, replicas and backups are out of reach: docs/operations.md says
   * what to do (rotate). Returns how many keys were sealed.
   */
  async sealLegacy(): Promise<number> {
    const legacy = await this.db
      .selectFrom('platform_keys')
      .select('id')
      .where('private_pem', 'is not', null)
      .executeTakeFirst();
    if (!legacy) return 0;
    const count = await this.db.transaction().execute(async (tx) => {
      await sql`LOCK TABLE platform_keys IN EXCLUSIVE MODE`.execute(tx);
      const rows = await tx
        .selectFrom('platform_keys')
        .select(['id', 'private_pem', 'public_pem'])
        .where('private_pem', 'is not', null)
        .execute();
      for (const r of rows) {
        if (r.private_pem === null) continue;
        await tx
          .updateTable('platform_keys')
          .set({
            private_pem: null,
            private_sealed: this.secrets.seal(r.private_pem, PlatformKeyRepository.context(r.public_pem)),
          })
          .where('id', '=', r.id)
          .execute();
      }
      return rows.length;
    });
    if (count > 0) await this.scrub();
    return count;
  }

  /** Best effort: each step the database refuses (no privilege) is reported, not fatal. */
  private async scrub(): Promise<void> {
    const steps =
      this.opts.kind === 'embedded'
        ? [
            'VACUUM FULL platform_keys',
            'SET wal_recycle = off',
            'SELECT pg_switch_wal()',
            'CHECKPOINT',
            'CHECKPOINT',
            'RESET wal_recycle',
          ]
        : ['VACUUM FULL platform_keys', 'CHECKPOINT'];
    for (const step of steps) {
      try {
        await sql.raw(step).execute(this.db);
      } catch (e) {
        this.opts.onWarning?.(
          `after sealing the platform key, "${step}" failed: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    }
  }

  /** Makes a new active key pair. With onlyIfNone, does nothing when one exists (two instances starting at once). */
  async rotate(onlyIfNone = false): Promise<void> {
    await this.ensureSealed();
    // Making a key pair costs some 100 ms of CPU: not for nothing when one exists (checked again under the lock).
    if (onlyIfNone && (await this.activeRow())) return;
    const pair = newRsaKeyPair(2048);
    const now = this.clock.now();
    const sealed = this.secrets.seal(pair.privatePem, PlatformKeyRepository.context(pair.publicPem));
    await this.db.transaction().execute(async (tx) => {
      await sql`LOCK TABLE platform_keys IN EXCLUSIVE MODE`.execute(tx);
      const existing = await tx
        .selectFrom('platform_keys')
        .select('id')
        .where('active', '=', true)
        .executeTakeFirst();
      if (existing && onlyIfNone) return;
      await tx
        .updateTable('platform_keys')
        .set({ active: false, retired_at: now })
        .where('active', '=', true)
        .execute();
      await tx
        .insertInto('platform_keys')
        .values({
          private_pem: null,
          private_sealed: sealed,
          public_pem: pair.publicPem,
          active: true,
          created_at: now,
        })
        .execute();
    });
    this.cached = null;
    this.loading = null;
    this.generation++;
    await this.purgeRetired();
  }

  /** Deletes the keys retired more than `graceMs` ago. Returns how many. */
  async purgeRetired(): Promise<number> {
    const before = new Date(this.clock.now().getTime() - this.graceMs);
    const r = await this.db
      .deleteFrom('platform_keys')
      .where('active', '=', false)
      .where('retired_at', '<', before)
      .executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}
