import type { Config } from '../config/config.js';
import { migrate, openStore } from '../store/db.js';
import { AppRepository, appCategories } from '../store/apps.js';
import { PlatformKeyRepository } from '../store/keys.js';
import { systemClock } from '../domain/clock.js';
import type { Category } from '../domain/categories.js';
import { adminFetch, runningServer } from './running-server.js';
import { allowListEntries } from '../services/notify-target.js';
import { SecretBox } from '../crypto/secret-box.js';
import { masterKeyLoader } from '../runtime/local-files.js';
import { NotFoundError } from '../domain/errors.js';

export interface AppView {
  app_id: string;
  name: string;
  hospital_id: string | null;
  status?: string;
  access_token?: string;
  categories?: Category[];
  /** The private address ranges the app's notify_url may reach. */
  notify_private_cidrs?: string[];
  /** With --generate-key: shown once, never stored. */
  private_key?: string;
  public_key?: string;
}

/** App administration, either straight on the database or through a running server's admin API. */
export interface AppAdmin {
  create(name: string, hospitalId: string | null): Promise<AppView>;
  list(): Promise<AppView[]>;
  setStatus(appId: string, status: 'active' | 'disabled'): Promise<boolean>;
  /** null resets to the platform defaults. Returns the categories in force, or null if the app is unknown. */
  setCategories(appId: string, categories: Category[] | null | undefined): Promise<Category[] | null>;
  /** legacySign: allow sign_type RSA (SHA-1) and keys under 2048 bits for this app. */
  setPublicKey(appId: string, publicPem: string, legacySign?: boolean): Promise<boolean>;
  setRedirectUris(appId: string, uris: string[]): Promise<boolean>;
  /**
   * The app's notify allow-list (validated CIDRs): sets it unless undefined; returns the list in force, or null
   * if the app is unknown.
   */
  notifyAllowlist(appId: string, cidrs: string[] | undefined): Promise<string[] | null>;
  /** The platform's active public key (PEM). */
  platformKey(): Promise<string>;
  rotatePlatformKey(): Promise<string>;
}

export class AppNotFoundError extends NotFoundError {
  constructor(appId: string) {
    super(`没有这个应用 / no such app: ${appId}`);
  }
}

/** Chooses how to reach the apps: through the server when it holds the embedded database, else directly. */
export async function appAdmin(config: Config): Promise<{ admin: AppAdmin; close: () => Promise<void> }> {
  const server = runningServer(config);
  if (server) return { admin: new RemoteAppAdmin(server.base, server.token), close: async () => {} };
  const store = await openStore(config.store);
  await migrate(store.db);
  const repo = new AppRepository(store.db, systemClock);
  const secrets = new SecretBox(
    masterKeyLoader({
      fromEnv: config.masterKey,
      embedded: config.store.kind === 'embedded',
      dataDir: config.dataDir,
    }),
  );
  const keys = new PlatformKeyRepository(store.db, systemClock, secrets, {
    reloadMs: 0,
    graceMs: config.keyGraceMs,
    kind: store.kind,
    onWarning: (problem) => console.error(problem),
  });
  return { admin: new LocalAppAdmin(repo, keys), close: () => store.close() };
}

class LocalAppAdmin implements AppAdmin {
  constructor(
    private readonly repo: AppRepository,
    private readonly keys: PlatformKeyRepository,
  ) {}

  setPublicKey(appId: string, publicPem: string, legacySign = false): Promise<boolean> {
    return this.repo.setPublicKey(appId, publicPem, legacySign);
  }

  setRedirectUris(appId: string, uris: string[]): Promise<boolean> {
    return this.repo.setRedirectUris(appId, uris);
  }

  async notifyAllowlist(appId: string, cidrs: string[] | undefined): Promise<string[] | null> {
    if (cidrs !== undefined && !(await this.repo.setNotifyPrivateCidrs(appId, cidrs))) return null;
    const app = await this.repo.get(appId);
    return app ? allowListEntries(app.notify_private_cidrs) : null;
  }

  async platformKey(): Promise<string> {
    return (await this.keys.active()).publicPem;
  }

  async rotatePlatformKey(): Promise<string> {
    await this.keys.rotate();
    return (await this.keys.active()).publicPem;
  }

  async create(name: string, hospitalId: string | null): Promise<AppView> {
    const c = await this.repo.create({ name, hospitalId });
    return { app_id: c.appId, name: c.name, hospital_id: c.hospitalId, access_token: c.accessToken };
  }

  async list(): Promise<AppView[]> {
    return (await this.repo.list()).map((a) => ({
      app_id: a.id,
      name: a.name,
      hospital_id: a.hospital_id,
      status: a.status,
      categories: [...appCategories(a)],
      notify_private_cidrs: allowListEntries(a.notify_private_cidrs),
    }));
  }

  setStatus(appId: string, status: 'active' | 'disabled'): Promise<boolean> {
    return this.repo.setStatus(appId, status);
  }

  async setCategories(appId: string, categories: Category[] | null | undefined): Promise<Category[] | null> {
    if (categories !== undefined && !(await this.repo.setCategories(appId, categories))) return null;
    const app = await this.repo.get(appId);
    return app ? [...appCategories(app)] : null;
  }
}

class RemoteAppAdmin implements AppAdmin {
  constructor(
    private readonly base: string,
    private readonly token: string,
  ) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; data: T }> {
    const res = await adminFetch({ base: this.base, token: this.token }, method, path, body);
    const text = res.text;
    if (res.status >= 400 && res.status !== 404)
      throw new Error(`the running server refused: HTTP ${res.status} ${text}`);
    return { status: res.status, data: res.data as T };
  }

  async create(name: string, hospitalId: string | null): Promise<AppView> {
    return (await this.call<AppView>('POST', '/admin/apps', { name, hospital_id: hospitalId })).data;
  }

  async setPublicKey(appId: string, publicPem: string, legacySign = false): Promise<boolean> {
    return (
      (
        await this.call('PUT', `/admin/apps/${encodeURIComponent(appId)}/public-key`, {
          public_key: publicPem,
          legacy_sign: legacySign,
        })
      ).status === 200
    );
  }

  async setRedirectUris(appId: string, uris: string[]): Promise<boolean> {
    return (
      (
        await this.call('PUT', `/admin/apps/${encodeURIComponent(appId)}/redirect-uris`, {
          redirect_uris: uris,
        })
      ).status === 200
    );
  }

  async notifyAllowlist(appId: string, cidrs: string[] | undefined): Promise<string[] | null> {
    const path = `/admin/apps/${encodeURIComponent(appId)}/notify-allowlist`;
    const r =
      cidrs === undefined
        ? await this.call<{ notify_private_cidrs: string[] }>('GET', path)
        : await this.call<{ notify_private_cidrs: string[] }>('PUT', path, { notify_private_cidrs: cidrs });
    return r.status === 200 ? r.data.notify_private_cidrs : null;
  }

  async platformKey(): Promise<string> {
    return (await this.call<{ public_key: string }>('GET', '/admin/keys/platform')).data.public_key;
  }

  async rotatePlatformKey(): Promise<string> {
    return (await this.call<{ public_key: string }>('POST', '/admin/keys/rotate', {})).data.public_key;
  }

  async list(): Promise<AppView[]> {
    return (await this.call<AppView[]>('GET', '/admin/apps')).data;
  }

  async setStatus(appId: string, status: 'active' | 'disabled'): Promise<boolean> {
    const r = await this.call('PUT', `/admin/apps/${encodeURIComponent(appId)}/status`, { status });
    return r.status === 200;
  }

  async setCategories(appId: string, categories: Category[] | null | undefined): Promise<Category[] | null> {
    const r =
      categories === undefined
        ? await this.call<{ categories: Category[] }>(
            'GET',
            `/admin/apps/${encodeURIComponent(appId)}/categories`,
          )
        : await this.call<{ categories: Category[] }>(
            'PUT',
            `/admin/apps/${encodeURIComponent(appId)}/categories`,
            { categories },
          );
    return r.status === 200 ? r.data.categories : null;
  }
}
