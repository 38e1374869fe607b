import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from './db.js';
import type { App } from './schema.js';
import { hashToken, newAccessToken, sameDigest } from '../crypto/tokens.js';
import { DEFAULT_CATEGORIES, validateCategories, type Category } from '../domain/categories.js';
import type { Clock } from '../domain/clock.js';

export interface CreatedApp {
  appId: string;
  name: string;
  hospitalId: string | null;
  accessToken: string;
}

export function newAppId(): string {
  return `hp${randomBytes(8).toString('hex')}`;
}

/**
 * Apps. The two lookups on every request (by AccessToken, by gateway app_id) go through a short cache of
 * active apps: a change made through this repository empties it at once; one made elsewhere (another server,
 * SQL by hand) is seen within `cacheMs`. Unknown and disabled apps are never cached.
 */
export class AppRepository {
  private readonly byDigest = new Map<string, { app: App; at: number }>();
  private readonly byId = new Map<string, { app: App; at: number }>();

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
    private readonly cacheMs = 0,
  ) {}

  /** Forgets every cached app (called by every change made through this repository). */
  invalidate(): void {
    this.byDigest.clear();
    this.byId.clear();
  }

  private cached(map: Map<string, { app: App; at: number }>, key: string): App | undefined {
    if (this.cacheMs <= 0) return undefined;
    const hit = map.get(key);
    if (!hit) return undefined;
    if (performance.now() - hit.at < this.cacheMs) return hit.app;
    map.delete(key);
    return undefined;
  }

  private remember(app: App): void {
    if (this.cacheMs <= 0 || app.status !== 'active') return;
    const entry = { app, at: performance.now() };
    this.byDigest.set(app.token_hash, entry);
    this.byId.set(app.id, entry);
  }

  async create(input: { name: string; hospitalId?: string | null; appId?: string }): Promise<CreatedApp> {
    const accessToken = newAccessToken();
    const appId = input.appId ?? newAppId();
    await this.db
      .insertInto('apps')
      .values({
        id: appId,
        name: input.name,
        hospital_id: input.hospitalId ?? null,
        token_hash: hashToken(accessToken),
        status: 'active',
        categories: null,
        channel_map: '{}',
        created_at: this.clock.now(),
      })
      .execute();
    return { appId, name: input.name, hospitalId: input.hospitalId ?? null, accessToken };
  }

  /** Creates the demo app if there are no apps at all; two instances starting at once create one between them. */
  async createDemoIfEmpty(): Promise<CreatedApp | null> {
    return this.db.transaction().execute(async (tx) => {
      await sql`LOCK TABLE apps IN EXCLUSIVE MODE`.execute(tx);
      const n = await tx
        .selectFrom('apps')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow();
      if (Number(n.n) > 0) return null;
      const accessToken = newAccessToken();
      const appId = newAppId();
      await tx
        .insertInto('apps')
        .values({
          id: appId,
          name: '演示医院 Demo Hospital',
          hospital_id: 'DEMO',
          token_hash: hashToken(accessToken),
          status: 'active',
          categories: null,
          channel_map: '{}',
          created_at: this.clock.now(),
        })
        .execute();
      return { appId, name: '演示医院 Demo Hospital', hospitalId: 'DEMO', accessToken };
    });
  }

  async count(): Promise<number> {
    const r = await this.db
      .selectFrom('apps')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();
    return Number(r.n);
  }

  async list(): Promise<App[]> {
    return this.db.selectFrom('apps').selectAll().orderBy('created_at').execute();
  }

  async get(appId: string): Promise<App | undefined> {
    return this.db.selectFrom('apps').selectAll().where('id', '=', appId).executeTakeFirst();
  }

  /**
   * Authenticates an AccessToken: looked up by its SHA-256 (through the cache), then compared in constant time.
   * Unknown and disabled apps are both refused (the caller cannot tell which).
   */
  async authenticate(token: string): Promise<App | null> {
    if (token.length === 0 || token.length > 128) return null;
    const digest = hashToken(token);
    const app =
      this.cached(this.byDigest, digest) ??
      (await this.db.selectFrom('apps').selectAll().where('token_hash', '=', digest).executeTakeFirst());
    if (!app || !sameDigest(app.token_hash, digest) || app.status !== 'active') return null;
    this.remember(app);
    return app;
  }

  /** An active app by its id (the gateway's app_id), through the cache; undefined if unknown or disabled. */
  async getActive(appId: string): Promise<App | undefined> {
    const app = this.cached(this.byId, appId) ?? (await this.get(appId));
    if (!app || app.status !== 'active') return undefined;
    this.remember(app);
    return app;
  }

  async setStatus(appId: string, status: 'active' | 'disabled'): Promise<boolean> {
    this.invalidate();
    const r = await this.db
      .updateTable('apps')
      .set({ status })
      .where('id', '=', appId)
      .returning('id')
      .executeTakeFirst();
    this.invalidate(); // again: a request may have cached the old row meanwhile
    return r !== undefined;
  }

  /**
   * Registers the app's RSA public key for the gateway (PEM); null removes it. `legacySign` chooses legacy
   * signing with it (sign_type RSA = SHA-1, keys under 2048 bits); every registration says it anew.
   */
  async setPublicKey(appId: string, publicPem: string | null, legacySign = false): Promise<boolean> {
    this.invalidate();
    const r = await this.db
      .updateTable('apps')
      .set({ public_key: publicPem, legacy_sign: publicPem !== null && legacySign })
      .where('id', '=', appId)
      .returning('id')
      .executeTakeFirst();
    this.invalidate(); // again: a request may have cached the old row meanwhile
    return r !== undefined;
  }

  /**
   * The private CIDR ranges the app's notify_url may reach (already validated: services/notify-target.ts
   * parseAllowList). The cache is emptied, so the door sees the change at once; the notifier reads it with
   * each claim.
   */
  async setNotifyPrivateCidrs(appId: string, cidrs: string[]): Promise<boolean> {
    this.invalidate();
    const r = await this.db
      .updateTable('apps')
      .set({ notify_private_cidrs: JSON.stringify(cidrs) })
      .where('id', '=', appId)
      .returning('id')
      .executeTakeFirst();
    this.invalidate(); // again: a request may have cached the old row meanwhile
    return r !== undefined;
  }

  /** The redirect_uri prefixes allowed for the app's medical-insurance authorisation. */
  async setRedirectUris(appId: string, uris: string[]): Promise<boolean> {
    this.invalidate();
    const r = await this.db
      .updateTable('apps')
      .set({ redirect_uris: JSON.stringify(uris) })
      .where('id', '=', appId)
      .returning('id')
      .executeTakeFirst();
    this.invalidate(); // again: a request may have cached the old row meanwhile
    return r !== undefined;
  }

  /**
   * The app's HIS and reconciliation settings. `hisTokenSealed` is the AccessToken already sealed by the
   * caller (SecretBox); undefined fields are left as they are.
   */
  async setReconciliation(
    appId: string,
    patch: { hisBaseUrl?: string | null; hisTokenSealed?: string | null; settings?: string },
  ): Promise<boolean> {
    this.invalidate();
    const set: { his_base_url?: string | null; his_token_sealed?: string | null; recon_settings?: string } =
      {};
    if (patch.hisBaseUrl !== undefined) set.his_base_url = patch.hisBaseUrl;
    if (patch.hisTokenSealed !== undefined) set.his_token_sealed = patch.hisTokenSealed;
    if (patch.settings !== undefined) set.recon_settings = patch.settings;
    const q =
      Object.keys(set).length > 0
        ? this.db.updateTable('apps').set(set).where('id', '=', appId).returning('id')
        : this.db.selectFrom('apps').select('id').where('id', '=', appId);
    const done = (await q.executeTakeFirst()) !== undefined;
    this.invalidate();
    return done;
  }

  /** Money actions at the desk need a second person's approval (maker–checker) when on. */
  async setDeskApproval(appId: string, on: boolean): Promise<boolean> {
    const r = await this.db
      .updateTable('apps')
      .set({ desk_approval: on })
      .where('id', '=', appId)
      .returning('id')
      .executeTakeFirst();
    this.invalidate();
    return r !== undefined;
  }

  /**
   * Issues a new AccessToken for the app: the old one stops working at once (on this server; another server
   * within its cache time). Returns the new token (shown once, never stored), or null for an unknown app.
   */
  async reissueToken(appId: string): Promise<string | null> {
    const accessToken = newAccessToken();
    this.invalidate();
    const r = await this.db
      .updateTable('apps')
      .set({ token_hash: hashToken(accessToken) })
      .where('id', '=', appId)
      .returning('id')
      .executeTakeFirst();
    this.invalidate(); // again: a request may have cached the old row meanwhile
    return r === undefined ? null : accessToken;
  }

  async setChannelMap(appId: string, map: Record<string, string>): Promise<boolean> {
    this.invalidate();
    const r = await this.db
      .updateTable('apps')
      .set({ channel_map: JSON.stringify(map) })
      .where('id', '=', appId)
      .returning('id')
      .executeTakeFirst();
    this.invalidate(); // again: a request may have cached the old row meanwhile
    return r !== undefined;
  }

  async setCategories(appId: string, categories: Category[] | null): Promise<boolean> {
    this.invalidate();
    const r = await this.db
      .updateTable('apps')
      .set({ categories: categories === null ? null : JSON.stringify(categories) })
      .where('id', '=', appId)
      .returning('id')
      .executeTakeFirst();
    this.invalidate(); // again: a request may have cached the old row meanwhile
    return r !== undefined;
  }
}

export function appCategories(app: App): readonly Category[] {
  if (app.categories === null) return DEFAULT_CATEGORIES;
  return validateCategories(JSON.parse(app.categories)) ?? DEFAULT_CATEGORIES;
}

/** The app's pay type → channel map as stored (which channel serves a pay type: channels/choice.ts). */
export function appChannelMap(app: Pick<App, 'channel_map'>): Record<string, string> {
  try {
    const map = JSON.parse(app.channel_map) as Record<string, unknown>;
    return Object.fromEntries(
      Object.entries(map).filter((e): e is [string, string] => typeof e[1] === 'string'),
    );
  } catch {
    return {};
  }
}
