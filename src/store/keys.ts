import { sql } from 'kysely';
import type { KeyObject } from 'node:crypto';
import type { Db } from './db.js';
import type { Clock } from '../domain/clock.js';
import { newRsaKeyPair, readPrivateKey, readPublicKey } from '../crypto/signing.js';

export interface PlatformKey {
  id: number;
  privateKey: KeyObject;
  publicKey: KeyObject;
  publicPem: string;
}

/**
 * The platform's own RSA key pair: signs gateway responses, notifications and return_url redirects. Created on
 * first start, rotatable (`hospay keys rotate`); every instance picks up a new active key within `reloadMs`.
 * Keys are loaded once into KeyObjects (parsing a PEM per signature is several times slower).
 */
export class PlatformKeyRepository {
  private cached: { key: PlatformKey; at: number } | null = null;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly reloadMs = 60_000,
  ) {}

  async active(): Promise<PlatformKey> {
    const now = this.clock.now().getTime();
    if (this.cached && now - this.cached.at < this.reloadMs) return this.cached.key;
    let row = await this.db
      .selectFrom('platform_keys')
      .selectAll()
      .where('active', '=', true)
      .executeTakeFirst();
    if (!row) {
      await this.rotate(true);
      row = await this.db
        .selectFrom('platform_keys')
        .selectAll()
        .where('active', '=', true)
        .executeTakeFirstOrThrow();
    }
    const privateKey = readPrivateKey(row.private_pem);
    const publicKey = readPublicKey(row.public_pem);
    if (!privateKey || !publicKey) throw new Error('the stored platform key is unreadable');
    const key = { id: row.id, privateKey, publicKey, publicPem: row.public_pem };
    this.cached = { key, at: now };
    return key;
  }

  /** Makes a new active key pair. With onlyIfNone, does nothing when one exists (two instances starting at once). */
  async rotate(onlyIfNone = false): Promise<void> {
    const pair = newRsaKeyPair(2048);
    await this.db.transaction().execute(async (tx) => {
      await sql`LOCK TABLE platform_keys IN EXCLUSIVE MODE`.execute(tx);
      const existing = await tx
        .selectFrom('platform_keys')
        .select('id')
        .where('active', '=', true)
        .executeTakeFirst();
      if (existing && onlyIfNone) return;
      await tx.updateTable('platform_keys').set({ active: false }).where('active', '=', true).execute();
      await tx
        .insertInto('platform_keys')
        .values({
          private_pem: pair.privatePem,
          public_pem: pair.publicPem,
          active: true,
          created_at: this.clock.now(),
        })
        .execute();
    });
    this.cached = null;
  }
}
