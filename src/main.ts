import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config/config.js';
import { systemClock, type Clock } from './domain/clock.js';
import { migrate, openStore, type Store } from './store/db.js';
import { AppRepository } from './store/apps.js';
import { TradeRepository } from './store/trades.js';
import { PlatformKeyRepository } from './store/keys.js';
import { ChannelRegistry } from './channels/registry.js';
import type { Channel } from './channels/channel.js';
import { SimulatorProvider } from './simulator/provider.js';
import { httpRequest } from './channels/http.js';
import { ChannelConfigs } from './services/channel-config.js';
import type { ConfigProblem } from './channels/definition.js';
import { ChannelCallLog } from './store/channel-calls.js';
import { realSleep, type ServiceDeps } from './services/deps.js';
import { ExpiryJob } from './jobs/expirer.js';
import { NotifyJob } from './jobs/notifier.js';
import { ReconcileJob } from './jobs/reconciler.js';
import { buildServer } from './http/server.js';
import { createLogger } from './logging.js';
import {
  acquireLock,
  loadOrCreateAdminToken,
  masterKeyLoader,
  recordLockPort,
} from './runtime/local-files.js';
import { SecretBox } from './crypto/secret-box.js';

/** Start-up refused: some app's channel configuration is incomplete or broken. */
export class ChannelStartupError extends Error {
  constructor(readonly problems: Array<{ appId: string; channelId: string; problems: ConfigProblem[] }>) {
    super(
      '渠道配置有误，服务未启动 / channel configuration is broken, not starting:\n' +
        problems
          .flatMap((p) =>
            p.problems.map((q) => `  app ${p.appId}, channel ${p.channelId}, ${q.field}: ${q.zh} / ${q.en}`),
          )
          .join('\n') +
        '\n(fix with: hospay channel set --app APP --channel CHANNEL ..., or hospay channel use ... --channel simulator)',
    );
    this.name = 'ChannelStartupError';
  }
}

export interface PlatformOptions {
  config: Config;
  clock?: Clock;
  log?: Logger;
  /** An already opened store (tests share one between two instances). */
  store?: Store;
  /** Replace the registered channels (tests). */
  channels?: Record<string, Channel>;
  sleep?: (ms: number) => Promise<void>;
  /** Start listening (default true). */
  listen?: boolean;
  /** Create a demo app on an empty database and report its token (default true). */
  demo?: boolean;
  adminToken?: string;
}

export interface Platform {
  config: Config;
  deps: ServiceDeps;
  store: Store;
  server: FastifyInstance;
  simulator: SimulatorProvider;
  expiry: ExpiryJob;
  notifier: NotifyJob;
  reconciler: ReconcileJob;
  /** Set when this start created the demo app: shown once. */
  demo: { appId: string; accessToken: string } | null;
  url: string;
  adminToken: string;
  close(): Promise<void>;
}

/** The composition root: config -> store -> channels -> services -> doors and jobs. */
export async function startPlatform(opts: PlatformOptions): Promise<Platform> {
  const { config } = opts;
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? createLogger(config.logLevel);
  const ownStore = !opts.store;
  let releaseLock: (() => void) | null = null;
  if (ownStore && config.store.kind === 'embedded' && config.store.dataDir)
    releaseLock = acquireLock(config.store.dataDir);
  let store: Store;
  try {
    store =
      opts.store ??
      (await openStore(config.store, {
        onConnectionError: (err) => log.warn({ err: err.message }, 'database connection lost'),
      }));
  } catch (e) {
    releaseLock?.();
    throw e;
  }
  try {
    await migrate(store.db);
    const apps = new AppRepository(store.db, clock, config.appCacheMs);
    const simulator = new SimulatorProvider({ db: store.db, clock, publicBaseUrl: config.publicBaseUrl });
    const channels = new ChannelRegistry(
      { simulator, http: httpRequest, clock, publicBaseUrl: () => config.publicBaseUrl },
      opts.channels,
    );
    const secrets = new SecretBox(
      masterKeyLoader({
        fromEnv: config.masterKey,
        embedded: config.store.kind === 'embedded',
        dataDir: config.dataDir,
      }),
    );
    const deps: ServiceDeps = {
      db: store.db,
      apps,
      trades: new TradeRepository(store.db),
      keys: new PlatformKeyRepository(store.db, clock),
      channels,
      clock,
      config,
      secrets,
      channelConfigs: new ChannelConfigs(store.db, secrets, clock),
      channelCalls: new ChannelCallLog(store.db, (err) =>
        log.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'channel call record not written',
        ),
      ),
      log,
      sleep: opts.sleep ?? realSleep,
    };

    let demo: Platform['demo'] = null;
    if (opts.demo !== false) {
      const created = await apps.createDemoIfEmpty();
      if (created) demo = { appId: created.appId, accessToken: created.accessToken };
    }
    await deps.keys.active(); // created on first start
    if (opts.listen !== false) {
      // A server must not start with an app whose channel cannot work: say which app, channel and field.
      const problems = await deps.channelConfigs.problems();
      if (problems.length) throw new ChannelStartupError(problems);
    }
    const firstApp = (await apps.list())[0]?.id ?? null;
    const adminToken =
      opts.adminToken ?? loadOrCreateAdminToken(config.dataDir, process.env['HOSPAY_ADMIN_TOKEN']);
    const server = await buildServer({ deps, config, simulator, adminToken, demoAppId: () => firstApp });
    const expiry = new ExpiryJob(deps);
    const notifier = new NotifyJob(deps);
    const reconciler = new ReconcileJob(deps);

    let url = config.publicBaseUrl;
    if (opts.listen !== false) {
      url = await server.listen({ host: config.host, port: config.port });
      const port = server.server.address();
      if (releaseLock && port && typeof port === 'object')
        recordLockPort(config.dataDir, config.host, port.port);
    } else {
      await server.ready();
    }
    if (config.jobs.enabled) {
      expiry.start();
      notifier.start();
      reconciler.start();
    }

    return {
      config,
      deps,
      store,
      server,
      simulator,
      expiry,
      notifier,
      reconciler,
      demo,
      url,
      adminToken,
      async close() {
        await expiry.stop();
        await notifier.stop();
        await reconciler.stop();
        await server.close();
        await deps.channelCalls.flush();
        if (ownStore) await store.close();
        releaseLock?.();
      },
    };
  } catch (e) {
    if (ownStore) await store.close();
    releaseLock?.();
    throw e;
  }
}
