import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyPluginCallback,
} from 'fastify';
import type { Config } from '../config/config.js';
import type { ServiceDeps } from '../services/deps.js';
import type { ReconcileDeps } from '../reconcile/deps.js';
import type { SimulatorProvider } from '../simulator/provider.js';
import { registerOfflineRoutes } from './offline/routes.js';
import { registerSoapRoutes } from './soap/routes.js';
import { registerGatewayRoutes } from './gateway/routes.js';
import { registerSimulatorPages } from '../simulator/pages.js';
import { registerCashierPages } from './pages/cashier.js';
import { registerMedicarePages } from './pages/medicare.js';
import { registerLandingPage } from './pages/landing.js';
import { registerFinancePages } from './pages/finance.js';
import { registerDeskPages } from './pages/desk.js';
import { registerAdminRoutes } from './admin/routes.js';
import { registerChannelNotifyRoutes } from './channels/notify.js';
import { registerMedicareNotifyRoutes } from './channels/medicare-notify.js';
import type { Logger } from 'pino';
import { lazyChild, maskUrlPath } from '../logging.js';
import { registerOpenApiRoutes } from './openapi/routes.js';
import { registerHealthRoutes } from './health.js';

export interface ServerParts {
  deps: ServiceDeps;
  /** The reconciliation's (finance pages, admin API). */
  recon: ReconcileDeps;
  config: Config;
  simulator: SimulatorProvider;
  adminToken: string;
  demoAppId: () => string | null;
  /** @fastify/otel's plugin when traces are on (src/tracing.ts, HOSPAY_OTEL_ENABLED); registered first. */
  otelPlugin?: FastifyPluginCallback | undefined;
}

/**
 * Which doors one Fastify instance serves: all of them (the default), or, with HOSPAY_ADMIN_LISTEN, the public
 * ones on the public port and the operators' ones (admin API, finance pages) on the admin address.
 */
export type Doors = 'all' | 'public' | 'admin';

/** The doors (offline XML, gateway, pages, finance pages, admin) on one Fastify instance. */
export async function buildServer(parts: ServerParts, doors: Doors = 'all'): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: parts.deps.log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // Each request's logger (with its request id) is made when it first logs: at LOG_LEVEL=warn, never.
    childLoggerFactory: (logger, bindings, opts) =>
      lazyChild(logger as unknown as Logger, bindings, opts) as unknown as FastifyBaseLogger,
    bodyLimit: 64 * 1024,
    // An over-long interface name (/offline/:name) gets the door's XML error, not Fastify's 414. A router option:
    // given at the top level, Fastify 5 warns FSTDEP022 at every start.
    routerOptions: { maxParamLength: 1024 },
    // Behind a reverse proxy (HOSPAY_TRUST_PROXY) the payer's address comes from X-Forwarded-For.
    trustProxy: parts.config.trustProxy,
    return503OnClosing: true,
  });
  // Traces (off by default): the HIS request's span, parent of the channel call and DB spans.
  if (parts.otelPlugin) await app.register(parts.otelPlugin);
  // One line per request at info. Not an async hook: Fastify runs a callback hook without a promise.
  app.addHook('onResponse', (req, reply, done) => {
    const log = req.log as FastifyBaseLogger & { isLevelEnabled?: (level: string) => boolean };
    if (log.isLevelEnabled?.('info') !== false) {
      // Without the query; a capability token in the path (cashier, goto, authorisation pages) masked.
      const path = maskUrlPath(req.url);
      req.log.info(
        { method: req.method, path, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
        'request',
      );
    }
    done();
  });
  app.setNotFoundHandler((_req, reply) =>
    reply.code(404).send({ code: 'NOT_FOUND', message: '没有这个地址 / no such path' }),
  );
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (status === 500) req.log.error({ err: err.message, code: err.code }, 'unhandled error');
    return reply.code(status).send({
      code: status === 500 ? 'SYSTEM_ERROR' : (err.code ?? 'BAD_REQUEST'),
      message: status === 500 ? '系统错误 / internal error' : err.message,
    });
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  // The API contract: the gateway everywhere; the admin API too where the admin doors are served.
  await registerOpenApiRoutes(app, { config: parts.config, admin: doors !== 'public' });
  // /readyz on every door; /metrics (token) on the operators' door only.
  await registerHealthRoutes(app, parts.deps, { adminToken: parts.adminToken, metrics: doors !== 'public' });
  if (doors !== 'admin') {
    await registerOfflineRoutes(app, parts.deps);
    await registerSoapRoutes(app, parts.deps);
    await registerGatewayRoutes(app, parts.deps);
    // The simulator's payer pages only while it is on (HOSPAY_SIMULATOR).
    if (parts.config.simulator.enabled) await registerSimulatorPages(app, parts.simulator);
    await registerCashierPages(app, parts.deps);
    await registerMedicarePages(app, parts.deps);
    await registerLandingPage(app, parts.config, parts.demoAppId);
  }
  if (doors !== 'public') {
    await registerFinancePages(app, parts.deps, parts.recon);
    await registerDeskPages(app, parts.deps, parts.recon);
    await registerAdminRoutes(app, parts.deps, parts.adminToken, parts.recon);
  }
  if (doors !== 'admin') await registerChannelNotifyRoutes(app, parts.deps);
  if (doors !== 'admin') await registerMedicareNotifyRoutes(app, parts.deps);
  return app;
}
