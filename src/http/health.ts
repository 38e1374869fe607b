import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../services/deps.js';
import { sameText } from '../crypto/tokens.js';
import { applyStoreSnapshot, jobLags, ready, registry, renderMetrics } from '../metrics.js';

/** How long the platform key may take to load for /readyz (it is cached; a reload reads the database). */
const KEY_TIMEOUT_MS = 2_000;

export interface Readiness {
  ready: boolean;
  /** Why not ready (empty when ready): short texts with no secret, e.g. "migration 021-desk not applied". */
  reasons: string[];
}

function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  p.catch(() => undefined);
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Is this instance fit to take traffic: the database answers, every migration this build knows is applied, the
 * platform key loads, and each running background job finished a pass recently (HOSPAY_READY_JOB_STALE, or
 * three intervals when longer). With the database unreachable the checks that need it are not run.
 */
export async function checkReadiness(deps: ServiceDeps): Promise<Readiness> {
  const reasons: string[] = [];
  let dbUp = true;
  try {
    await deps.health.ping();
  } catch {
    dbUp = false;
    reasons.push('database unreachable / 数据库不可达');
  }
  if (dbUp) {
    try {
      for (const m of await deps.health.missingMigrations())
        reasons.push(`migration ${m} not applied / 数据库迁移未执行`);
    } catch {
      reasons.push('migrations unreadable / 无法读取数据库迁移');
    }
    try {
      await within(KEY_TIMEOUT_MS, deps.keys.active());
    } catch {
      reasons.push('platform key not loaded / 平台密钥未加载');
    }
  }
  if (deps.config.jobs.enabled) {
    const lags = jobLags();
    if (lags.length === 0) reasons.push('jobs not running / 后台任务未运行');
    for (const l of lags) {
      const stale = Math.max(deps.config.observability.jobStaleMs, 3 * l.intervalMs);
      if (l.sinceLastMs > stale)
        reasons.push(`job ${l.job} last ran ${Math.round(l.sinceLastMs / 1000)} s ago / 后台任务停滞`);
    }
  }
  ready.set(reasons.length === 0 ? 1 : 0);
  return { ready: reasons.length === 0, reasons };
}

/**
 * GET /readyz on every door (open: it says only whether and why not, never a secret); with `metrics`, GET
 * /metrics (Prometheus text) behind `Authorization: Bearer` with the admin token or HOSPAY_METRICS_TOKEN, which
 * reads metrics and nothing else. /healthz (alive) is server.ts's own.
 */
export async function registerHealthRoutes(
  app: FastifyInstance,
  deps: ServiceDeps,
  opts: { adminToken: string; metrics: boolean },
): Promise<void> {
  app.get('/readyz', async (_req, reply) => {
    const r = await checkReadiness(deps);
    return reply
      .code(r.ready ? 200 : 503)
      .header('cache-control', 'no-store')
      .send(r.ready ? { status: 'ready' } : { status: 'not ready', reasons: r.reasons });
  });
  if (!opts.metrics) return;

  const tokens = [opts.adminToken, deps.config.observability.metricsToken].filter(
    (t): t is string => typeof t === 'string' && t.length > 0,
  );
  app.get('/metrics', async (req, reply) => {
    const m = /^Bearer ([^\s]+)$/.exec(req.headers.authorization ?? '');
    const given = m?.[1];
    // Every token is compared (constant time each), so the time does not tell which one matched.
    const ok = given !== undefined && tokens.map((t) => sameText(given, t)).some(Boolean);
    if (!ok)
      return reply
        .code(401)
        .header('www-authenticate', 'Bearer')
        .send({ code: 'UNAUTHORIZED', message: '需要有效的令牌 / a valid bearer token is required' });
    // The store's gauges: each part under a short deadline; a failed part is an error metric, never a 500.
    // hospay_ready is checked here too, so that it is current whether or not anything probes /readyz.
    const [snapshot] = await Promise.all([deps.health.snapshot(deps.clock.now()), checkReadiness(deps)]);
    applyStoreSnapshot(snapshot);
    const text = await renderMetrics();
    return reply.code(200).header('cache-control', 'no-store').type(registry.contentType).send(text);
  });
}
