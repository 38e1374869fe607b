import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ConfigError, MIN_ADMIN_TOKEN_LENGTH, type Config } from './config/config.js';
import { systemClock, type Clock } from './domain/clock.js';
import { migrate, openReadStore, openStore, type Store } from './store/db.js';
import { AppRepository } from './store/apps.js';
import { TradeRepository } from './store/trades.js';
import { RefundRepository } from './store/refunds.js';
import { PlatformKeyRepository } from './store/keys.js';
import { ChannelRegistry } from './channels/registry.js';
import type { Channel } from './channels/channel.js';
import { SimulatorProvider } from './simulator/provider.js';
import { closeHttpPools, httpRequest } from './channels/http.js';
import { closeNotifyPools } from './services/notify-http.js';
import { ChannelConfigs, simulatorProblems } from './services/channel-config.js';
import { SimulatorStartupError } from './channels/choice.js';
import type { ConfigProblem } from './channels/definition.js';
import { ChannelCallLog } from './store/channel-calls.js';
import { ChannelConfigRepository } from './store/channel-config.js';
import { NotificationRepository } from './store/notifications.js';
import { NonceRepository } from './store/nonces.js';
import { MedicareRepository } from './store/medicare.js';
import { OperatorRepository } from './store/operators.js';
import { LoginAttemptRepository } from './store/login-attempts.js';
import { RetentionRepository } from './store/retention.js';
import { EmbeddedBackup } from './store/backup.js';
import { AuditRepository } from './store/audit.js';
import { HealthRepository } from './store/health.js';
import { startTracing, type Tracing } from './tracing.js';
import { DeskRepository } from './store/desk.js';
import { OperatorTokenRepository } from './store/operator-tokens.js';
import { DeskRequestRepository } from './store/desk-requests.js';
import { channelContext, channelFor, realSleep, type ServiceDeps } from './services/deps.js';
import { ExpiryJob } from './jobs/expirer.js';
import { NotifyJob } from './jobs/notifier.js';
import { ReconcileJob } from './jobs/reconciler.js';
import type { ReconcileDeps } from './reconcile/deps.js';
import { ReconciliationRepository } from './store/reconciliation.js';
import { ReportRepository } from './store/reports.js';
import { JobClaimRepository } from './store/job-claims.js';
import { buildServer } from './http/server.js';
import { createLogger } from './logging.js';
import {
  acquireLock,
  adminTokenPath,
  hospayVersion,
  loadOrCreateAdminToken,
  masterKeyLoader,
  recordLockPort,
  secureDataDir,
} from './runtime/local-files.js';
import { SecretBox } from './crypto/secret-box.js';
import { InvalidInputError } from './domain/errors.js';

/** Start-up refused: some app's channel configuration is incomplete or broken. */
export class ChannelStartupError extends InvalidInputError {
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
  /** Traces already started (the CLI starts them first); else started here when HOSPAY_OTEL_ENABLED is on. */
  tracing?: Tracing | null;
}

export interface Platform {
  config: Config;
  deps: ServiceDeps;
  /** The reconciliation's dependencies (runs, differences, reports, the daily job). */
  recon: ReconcileDeps;
  store: Store;
  server: FastifyInstance;
  /** The admin API and finance pages on their own address (HOSPAY_ADMIN_LISTEN); null: on `server`. */
  adminServer: FastifyInstance | null;
  /** Where the admin API is reached: `url`, or the admin listener's address. */
  adminUrl: string;
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
  if (config.notify.allowLoopback)
    log.warn(
      '!!! HOSPAY_NOTIFY_ALLOW_LOOPBACK is on: notify_url may reach loopback addresses (127.0.0.1, ::1, localhost) ' +
        'on this machine. For development and tests ONLY; never in production (docs/notifications.md) !!!',
    );
  const ownStore = !opts.store;
  // The platform's private key is sealed with the master key; with PostgreSQL it can only come from the
  // environment (the same on every instance), so a start without it is refused before anything is written.
  if (config.store.kind === 'postgres' && !config.masterKey)
    throw new ConfigError(
      'HOSPAY_MASTER_KEY',
      'is required with PostgreSQL: it seals the platform private key and channel secrets (32 bytes, 64 hex ' +
        'digits or base64; the same on every instance) / 使用 PostgreSQL 时必须设置主密钥',
    );
  let releaseLock: (() => void) | null = null;
  // Traces start before the first database connection: a connection made earlier keeps an unpatched query.
  const ownTracing = opts.tracing === undefined;
  const tracing = ownTracing ? await startTracing(config) : (opts.tracing ?? null);
  const stopTracing = tracing && ownTracing ? () => tracing.shutdown() : null;
  if (ownStore && config.store.kind === 'embedded' && config.store.dataDir)
    releaseLock = acquireLock(config.store.dataDir);
  let store: Store;
  try {
    store =
      opts.store ??
      (await openStore(config.store, {
        onConnectionError: (err) => log.warn({ err: err.message }, 'database connection lost'),
        onWarning: (problem) => log.warn({ problem }, 'data directory is not private'),
      }));
  } catch (e) {
    releaseLock?.();
    await stopTracing?.();
    throw e;
  }
  // The read replica (HOSPAY_READ_DATABASE_URL), for the reads that may lag: see store/db.ts openReadStore.
  let read: Store | null = null;
  try {
    await migrate(store.db);
    read = await openReadStore(config.store, {
      onConnectionError: (err) => log.warn({ err: err.message }, 'read replica connection lost'),
      onFallback: (err) =>
        log.warn({ err: err.message }, 'read replica unreachable: reading from the primary for 30 s'),
    });
    const readDb = read?.db ?? store.db;
    const apps = new AppRepository(store.db, clock, config.appCacheMs);
    const simulator = new SimulatorProvider({ db: store.db, clock, publicBaseUrl: config.publicBaseUrl });
    const channels = new ChannelRegistry(
      {
        simulator,
        http: httpRequest,
        clock,
        publicBaseUrl: () => config.publicBaseUrl,
        withSimulator: config.simulator.enabled,
      },
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
      apps,
      trades: new TradeRepository(store.db),
      refunds: new RefundRepository(store.db),
      keys: new PlatformKeyRepository(store.db, clock, secrets, {
        graceMs: config.keyGraceMs,
        kind: store.kind,
        onWarning: (problem) => log.warn({ problem }, 'platform key clean-up'),
      }),
      channels,
      clock,
      config,
      secrets,
      channelConfigs: new ChannelConfigs(new ChannelConfigRepository(store.db), secrets, clock),
      channelCalls: new ChannelCallLog(store.db, (err) =>
        log.warn(
          { err: err instanceof Error ? err.message : String(err) },
          'channel call record not written',
        ),
      ),
      notifications: new NotificationRepository(store.db),
      nonces: new NonceRepository(store.db),
      medicare: new MedicareRepository(store.db),
      operators: new OperatorRepository(store.db, clock),
      loginAttempts: new LoginAttemptRepository(store.db),
      retention: new RetentionRepository(store.db),
      backup:
        store.kind === 'embedded' && config.store.kind === 'embedded' && config.store.dataDir
          ? new EmbeddedBackup(store.db, config.store.dataDir, hospayVersion())
          : null,
      audit: new AuditRepository(store.db),
      health: new HealthRepository(store.db, store.poolStats),
      desk: new DeskRepository(store.db, readDb),
      operatorTokens: new OperatorTokenRepository(store.db, clock),
      deskRequests: new DeskRequestRepository(store.db),
      log,
      sleep: opts.sleep ?? realSleep,
    };

    // The reconciliation reaches the channels exactly as the services do (their choice and call context).
    const recon: ReconcileDeps = {
      apps,
      reconciliation: new ReconciliationRepository(store.db, readDb, clock),
      reports: new ReportRepository(store.db, readDb),
      jobClaims: new JobClaimRepository(store.db),
      clock,
      config,
      secrets,
      log,
      channelFor: (app, payType) => channelFor(deps, app, payType),
      channelContext: (appId, channelId) => channelContext(deps, appId, channelId),
    };

    let demo: Platform['demo'] = null;
    // No demo app (it would take simulated payments) when the simulator is off.
    if (opts.demo !== false && config.simulator.enabled) {
      const created = await apps.createDemoIfEmpty();
      if (created) demo = { appId: created.appId, accessToken: created.accessToken };
    }
    await deps.keys.active(); // created on first start
    if (opts.listen !== false) {
      // A server must not start with an app using the simulator where it may not (off, or mixed with real
      // channels unallowed), nor with an app whose channel cannot work: say which app, channel and field.
      const simulated = await simulatorProblems(apps, config.simulator);
      if (simulated.length) throw new SimulatorStartupError(simulated);
      const problems = await deps.channelConfigs.problems();
      if (problems.length) throw new ChannelStartupError(problems);
      log.info(
        // publicBaseUrl: the address in the URLs patients and the HIS get (goto_url, QR codes).
        { simulator: config.simulator.enabled ? 'on' : 'off', publicBaseUrl: config.publicBaseUrl },
        config.simulator.enabled
          ? 'simulator on (HOSPAY_SIMULATOR=on): apps without a real channel take simulated payments'
          : 'simulator off (HOSPAY_SIMULATOR=off): no simulated payments, pay types without a real channel are refused',
      );
    }
    const firstApp = (await apps.list())[0]?.id ?? null;
    const adminToken =
      opts.adminToken ?? loadOrCreateAdminToken(config.dataDir, process.env['HOSPAY_ADMIN_TOKEN']);
    if (adminToken.length < MIN_ADMIN_TOKEN_LENGTH)
      throw new ConfigError(
        opts.adminToken || process.env['HOSPAY_ADMIN_TOKEN']
          ? 'HOSPAY_ADMIN_TOKEN'
          : adminTokenPath(config.dataDir),
        `the admin token must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`,
      );
    // The data directory (admin token, master key, embedded database, lock) is its owner's only.
    if (ownStore)
      for (const problem of secureDataDir(config.dataDir))
        log.warn({ problem }, 'data directory is not private');
    const parts = {
      deps,
      recon,
      config,
      simulator,
      adminToken,
      demoAppId: () => firstApp,
      otelPlugin: tracing?.fastifyPlugin,
    };
    const server = await buildServer(parts, config.adminListen ? 'public' : 'all');
    const adminServer = config.adminListen ? await buildServer(parts, 'admin') : null;
    const expiry = new ExpiryJob(deps);
    const notifier = new NotifyJob(deps);
    const reconciler = new ReconcileJob(recon);

    let url = config.publicBaseUrl;
    let adminUrl = url;
    if (opts.listen !== false) {
      url = await server.listen({ host: config.host, port: config.port });
      adminUrl = url;
      let admin: { host: string; port: number } | null = null;
      if (adminServer && config.adminListen) {
        try {
          adminUrl = await adminServer.listen({
            host: config.adminListen.host,
            port: config.adminListen.port,
          });
        } catch (e) {
          await server.close();
          throw e;
        }
        const a = adminServer.server.address();
        if (a && typeof a === 'object') admin = { host: config.adminListen.host, port: a.port };
      }
      const port = server.server.address();
      if (releaseLock && port && typeof port === 'object')
        recordLockPort(config.dataDir, config.host, port.port, admin);
    } else {
      await server.ready();
      await adminServer?.ready();
    }
    if (config.jobs.enabled) {
      expiry.start();
      notifier.start();
      reconciler.start();
    }

    return {
      config,
      deps,
      recon,
      store,
      server,
      adminServer,
      adminUrl,
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
        await adminServer?.close();
        await deps.channelCalls.flush();
        await closeHttpPools();
        await closeNotifyPools();
        await read?.close();
        if (ownStore) await store.close();
        releaseLock?.();
        await stopTracing?.();
      },
    };
  } catch (e) {
    await read?.close();
    if (ownStore) await store.close();
    releaseLock?.();
    await stopTracing?.();
    throw e;
  }
}
