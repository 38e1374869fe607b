/**
 * `hospay serve --workers N`: N processes behind one port (node:cluster), on PostgreSQL only.
 *
 * The primary does the first-start work once (migrations, the platform key, the admin token file, the demo app
 * and its banner), then forks the workers; each worker is a whole platform (startPlatform, demo off) serving the
 * public port and, with HOSPAY_ADMIN_LISTEN, the admin address through cluster's shared handles (the primary
 * accepts connections and hands them out round-robin). The background jobs run in every worker: they claim
 * their work in the database (leases, FOR UPDATE SKIP LOCKED, job_claims), so nothing runs twice.
 *
 * Signals (to the primary): SIGTERM or SIGINT stop every worker gracefully (no new connections, in-flight
 * requests answered, keep-alive connections told to close), then the primary exits 0 (1 when a worker had to be
 * killed after STOP_TIMEOUT_MS). SIGHUP restarts the workers one at a time: a new one is forked and listening
 * before an old one stops, so the port is never unserved. A worker that dies is replaced (a warning with its exit
 * code or signal); more than DEATH_LIMIT deaths within DEATH_WINDOW_MS stop everything with exit code 1.
 *
 * GET /metrics, answered by any worker, is the sum over all workers (prom-client's aggregation, through the
 * primary); the store's gauges (notification backlog, open differences, readiness) come from the worker that
 * answered, which has just read them.
 *
 * With one worker (and always on the embedded database) none of this runs: `serve` is the single process it
 * has always been.
 */
import cluster, { type Worker } from 'node:cluster';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Gauge, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { Config } from '../config/config.js';
import { UsageError } from '../domain/errors.js';
import { createLogger } from '../logging.js';
import { startPlatform, type Platform } from '../main.js';
import { registry } from '../metrics.js';
import { publicAddressLines } from './serve-banner.js';

/** The most workers `--workers` / HOSPAY_WORKERS accept. */
export const MAX_WORKERS = 64;
/** More than this many unexpected worker deaths… */
export const DEATH_LIMIT = 5;
/** …within this window stop the whole server (exit code 1): something is wrong that a restart will not fix. */
export const DEATH_WINDOW_MS = 30_000;
/** How long a stopping worker may take (its in-flight requests, its job passes) before it is killed. */
export const STOP_TIMEOUT_MS = 45_000;
/** How long a stopping worker waits for its open connections to finish before closing the idle ones. */
export const DRAIN_MS = 30_000;
/** A connection that has carried no request for this long while draining is closed as idle. */
export const DRAIN_IDLE_MS = 1_000;
/** How long a new worker may take to start listening. */
export const START_TIMEOUT_MS = 60_000;
/** How long the primary waits for the other workers' metrics. */
const METRICS_TIMEOUT_MS = 2_000;
/** The connections all workers together should stay under when HOSPAY_DB_POOL is not set. */
const POOL_BUDGET = 80;

/**
 * How many workers to run: `--workers N`, else HOSPAY_WORKERS, else the number of cores on PostgreSQL and 1 on
 * the embedded database. More than one on the embedded database is refused (a UsageError: exit code 2).
 */
export function resolveWorkers(
  flag: string | undefined,
  config: Pick<Config, 'workers' | 'store'>,
  cores: number = os.availableParallelism(),
): number {
  let n: number;
  let from: string;
  if (flag !== undefined) {
    if (!/^[0-9]{1,3}$/.test(flag) || Number(flag) < 1 || Number(flag) > MAX_WORKERS)
      throw new UsageError(`--workers must be a whole number from 1 to ${MAX_WORKERS}, got "${flag}"`);
    n = Number(flag);
    from = '--workers';
  } else if (config.workers !== null) {
    n = config.workers;
    from = 'HOSPAY_WORKERS';
  } else {
    return config.store.kind === 'postgres' ? Math.max(1, Math.min(MAX_WORKERS, cores)) : 1;
  }
  if (n > 1 && config.store.kind === 'embedded')
    throw new UsageError(
      `${from}=${n}: 内嵌数据库只能由一个进程使用，请去掉 ${from}（或设为 1），或设置 DATABASE_URL 使用 PostgreSQL / ` +
        `the embedded database belongs to one process: drop ${from} (or set it to 1), or set DATABASE_URL to ` +
        `use PostgreSQL, which serves any number of workers`,
    );
  return n;
}

/**
 * The connection pool of each worker when HOSPAY_DB_POOL is not set: the single process's 10, less when many
 * workers would together pass POOL_BUDGET connections (PostgreSQL's default max_connections is 100), never
 * under 2. Null: HOSPAY_DB_POOL is set, and each worker takes it as it is.
 */
export function workerPoolSize(workers: number, env: NodeJS.ProcessEnv): number | null {
  if (env['HOSPAY_DB_POOL']) return null;
  return Math.max(2, Math.min(10, Math.floor(POOL_BUDGET / workers)));
}

/** Unexpected worker deaths in a sliding window: too many means stop, else the delay before the next fork. */
export class DeathWindow {
  private readonly deaths: number[] = [];

  constructor(
    private readonly limit = DEATH_LIMIT,
    private readonly windowMs = DEATH_WINDOW_MS,
  ) {}

  /** Records one death at `now` (ms); `stop` when more than `limit` happened within the window. */
  record(now: number): { recent: number; stop: boolean; delayMs: number } {
    this.deaths.push(now);
    while (this.deaths.length && (this.deaths[0] ?? now) <= now - this.windowMs) this.deaths.shift();
    const recent = this.deaths.length;
    // The first replacement at once; then 250 ms, 500 ms, 1 s … (up to 4 s) while deaths keep coming.
    const delayMs = recent <= 1 ? 0 : Math.min(4_000, 250 * 2 ** (recent - 2));
    return { recent, stop: recent > this.limit, delayMs };
  }
}

// --- metrics across workers ---------------------------------------------------------------------------------

/**
 * How the workers' values of a metric combine, where summing (prom-client's default) would be wrong: the
 * store's gauges are the same database read by whichever worker was scraped last (the answering worker's fresh
 * value is first), and a job's lag is the worst worker's.
 */
export const CLUSTER_AGGREGATORS: Readonly<Record<string, 'first' | 'max'>> = {
  hospay_notify_backlog: 'first',
  hospay_notify_oldest_due_age_seconds: 'first',
  hospay_recon_open_differences: 'first',
  hospay_recon_oldest_open_difference_days: 'first',
  hospay_scrape_store_ok: 'first',
  hospay_ready: 'first',
  hospay_job_lag_seconds: 'max',
};

type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/**
 * The workers' metrics (getMetricsAsJSON of each; the answering worker's first) as one Prometheus text: summed
 * by default, CLUSTER_AGGREGATORS where that would be wrong, prom-client's own choice for its default metrics.
 */
export async function aggregateMetrics(perWorker: MetricsJson[]): Promise<string> {
  const fixed = perWorker.map((metrics) =>
    metrics.map((m) => {
      const aggregator = CLUSTER_AGGREGATORS[m.name];
      return aggregator ? { ...m, aggregator } : m;
    }),
  );
  return AggregatorRegistry.aggregate(fixed).metrics();
}

// --- messages between the primary and the workers ----------------------------------------------------------

type ToWorker =
  | { type: 'hospay:stop' }
  | { type: 'hospay:metrics-json'; id: number }
  | { type: 'hospay:metrics-text'; id: number; text: string | null };
type ToPrimary =
  | { type: 'hospay:ready'; url: string; adminUrl: string; admin: boolean }
  | { type: 'hospay:metrics'; id: number; own: MetricsJson }
  | { type: 'hospay:metrics-json'; id: number; metrics: MetricsJson };

function isMessage(m: unknown): m is { type: string } {
  return typeof m === 'object' && m !== null && typeof (m as { type?: unknown }).type === 'string';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// --- the primary --------------------------------------------------------------------------------------------

interface WorkerState {
  worker: Worker;
  ready: boolean;
  /** Asked to stop (a restart, the server stopping): its exit is expected. */
  retiring: boolean;
  exited: Promise<void>;
}

/**
 * The primary of `serve --workers N` (N > 1, PostgreSQL): first-start work once, N workers, the banner, then
 * signals. Never resolves: exits the process when stopped.
 */
export async function servePrimary(config: Config, n: number, env: NodeJS.ProcessEnv): Promise<number> {
  const log = createLogger(config.logLevel).child({ worker: 'primary' });
  // First-start work, once: migrations, the platform key, the admin token file, the demo app. No listening, no
  // jobs, no traces here (the workers do those).
  const first = await startPlatform({
    config: { ...config, jobs: { ...config.jobs, enabled: false } },
    listen: false,
    tracing: null,
    log,
  });
  const demo = first.demo;
  const pool = workerPoolSize(n, env);
  const perWorker = pool ?? (config.store.kind === 'postgres' ? (config.store.poolSize ?? 10) : 1);
  try {
    await warnAboutConnections(first, n, perWorker, log);
  } finally {
    await first.close();
  }

  cluster.setupPrimary({ serialization: 'advanced' });
  const workerEnv: Record<string, string> = pool === null ? {} : { HOSPAY_DB_POOL: String(pool) };
  const states = new Map<Worker, WorkerState>();
  const deaths = new DeathWindow();
  let stopping = false;
  let restarting = false;

  /** Forks a worker and waits until it listens; rejects (with its exit) when it exits first or takes too long. */
  const forkReady = (): Promise<{ state: WorkerState; url: string; adminUrl: string; admin: boolean }> => {
    const worker = cluster.fork(workerEnv);
    let onExit: (code: number | null, signal: string | null) => void = () => {};
    const exited = new Promise<void>((resolve) => {
      onExit = () => resolve();
    });
    const state: WorkerState = { worker, ready: false, retiring: false, exited };
    states.set(worker, state);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`worker ${worker.id} did not start within ${START_TIMEOUT_MS / 1000} s`));
        worker.process.kill('SIGKILL');
      }, START_TIMEOUT_MS);
      worker.on('message', (m: unknown) => {
        if (!isMessage(m) || m.type !== 'hospay:ready' || state.ready) return;
        const r = m as Extract<ToPrimary, { type: 'hospay:ready' }>;
        state.ready = true;
        clearTimeout(timer);
        resolve({ state, url: r.url, adminUrl: r.adminUrl, admin: r.admin });
      });
      worker.once('exit', (code: number | null, signal: string | null) => {
        onExit(code, signal);
        states.delete(worker);
        clearTimeout(timer);
        if (!state.ready) {
          reject(
            new Error(
              `worker ${worker.id} (pid ${worker.process.pid ?? '?'}) exited before listening ` +
                `(${signal ? `signal ${signal}` : `exit code ${code ?? '?'}`})`,
            ),
          );
          return;
        }
        if (state.retiring || stopping) return;
        void replaceDead(worker, code, signal);
      });
    });
  };

  /** Asks a worker to stop and waits for its exit; kills it after STOP_TIMEOUT_MS. True: it exited by itself. */
  const retire = async (state: WorkerState): Promise<boolean> => {
    state.retiring = true;
    const { worker } = state;
    try {
      if (worker.isConnected()) worker.send({ type: 'hospay:stop' } satisfies ToWorker);
      else worker.process.kill('SIGTERM');
    } catch {
      worker.process.kill('SIGTERM');
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      state.exited.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), STOP_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    if (!timedOut) return true;
    log.warn({ pid: worker.process.pid }, 'worker did not stop in time: killed');
    worker.process.kill('SIGKILL');
    await state.exited;
    return false;
  };

  const stopAll = async (why: string, code: number): Promise<never> => {
    if (!stopping) {
      stopping = true;
      console.log(`${why}: stopping`);
    }
    const results = await Promise.all([...states.values()].map(retire));
    process.exit(results.every(Boolean) ? code : code || 1);
  };

  /** A worker died on its own: a warning, and a new one in its place (unless workers keep dying). */
  const replaceDead = async (dead: Worker, code: number | null, signal: string | null): Promise<void> => {
    let d = deaths.record(Date.now());
    log.warn(
      { pid: dead.process.pid, exitCode: code, signal, recentDeaths: d.recent },
      '工作进程意外退出，正在替换 / a worker died unexpectedly: replacing it',
    );
    for (;;) {
      if (d.stop) {
        log.error(
          { deaths: d.recent, windowSeconds: DEATH_WINDOW_MS / 1000 },
          '工作进程反复退出，服务停止 / workers keep dying: stopping the server (see the errors above)',
        );
        console.error(
          `hospay: workers keep dying (${d.recent} deaths within ${DEATH_WINDOW_MS / 1000} s): stopping / ` +
            '工作进程反复退出，服务已停止',
        );
        await stopAll('workers keep dying', 1);
      }
      if (d.delayMs) await sleep(d.delayMs);
      if (stopping) return;
      try {
        const fresh = await forkReady();
        log.info({ pid: fresh.state.worker.process.pid }, 'replacement worker listening');
        return;
      } catch (e) {
        if (stopping) return;
        log.warn({ err: e instanceof Error ? e.message : String(e) }, 'replacement worker failed to start');
        d = deaths.record(Date.now());
      }
    }
  };

  /** SIGHUP: each worker in turn is replaced by a new one, which listens before the old one stops. */
  const restart = async (): Promise<void> => {
    if (stopping) return;
    if (restarting) {
      log.warn('SIGHUP: a restart is already under way');
      return;
    }
    restarting = true;
    log.info({ workers: states.size }, 'SIGHUP: restarting the workers one at a time');
    try {
      for (const old of [...states.values()]) {
        if (stopping) return;
        if (!states.has(old.worker) || old.retiring) continue; // died meanwhile (and was replaced)
        let fresh;
        try {
          fresh = await forkReady();
        } catch (e) {
          log.error(
            { err: e instanceof Error ? e.message : String(e) },
            '重启中止：新工作进程未能启动，旧进程继续服务 / restart stopped: a new worker did not start; the old ones keep serving',
          );
          return;
        }
        await retire(old);
        log.info(
          { old: old.worker.process.pid, new: fresh.state.worker.process.pid },
          'worker replaced (SIGHUP)',
        );
      }
      log.info({ workers: states.size }, 'SIGHUP: every worker restarted');
    } finally {
      restarting = false;
    }
  };

  // /metrics on any worker: the primary gathers the other workers' metrics for it.
  let nextId = 1;
  const waiting = new Map<number, { got: MetricsJson[]; left: number; done: () => void }>();
  cluster.on('message', (worker: Worker, m: unknown) => {
    if (!isMessage(m)) return;
    if (m.type === 'hospay:metrics') {
      const req = m as Extract<ToPrimary, { type: 'hospay:metrics' }>;
      void gather(worker, req.own).then(
        (text) => sendTo(worker, { type: 'hospay:metrics-text', id: req.id, text }),
        () => sendTo(worker, { type: 'hospay:metrics-text', id: req.id, text: null }),
      );
    } else if (m.type === 'hospay:metrics-json') {
      const res = m as Extract<ToPrimary, { type: 'hospay:metrics-json' }>;
      const w = waiting.get(res.id);
      if (!w) return;
      w.got.push(res.metrics);
      if (--w.left === 0) w.done();
    }
  });
  const gather = async (asker: Worker, own: MetricsJson): Promise<string> => {
    const others = [...states.values()].filter(
      (s) => s.worker !== asker && s.ready && !s.retiring && s.worker.isConnected(),
    );
    const id = nextId++;
    const got: MetricsJson[] = [];
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, METRICS_TIMEOUT_MS);
      waiting.set(id, {
        got,
        left: others.length,
        done: () => {
          clearTimeout(timer);
          resolve();
        },
      });
      if (others.length === 0) resolve();
      for (const s of others) sendTo(s.worker, { type: 'hospay:metrics-json', id });
    });
    waiting.delete(id);
    const text = await aggregateMetrics([own, ...got]);
    return `# hospay workers: ${got.length + 1} of ${others.length + 1} answered (sums over workers)\n${text}`;
  };

  // Start: one worker first (a start-up error is printed once, by it), then the others together.
  let started: Awaited<ReturnType<typeof forkReady>>;
  try {
    started = await forkReady();
    await Promise.all(Array.from({ length: n - 1 }, () => forkReady()));
  } catch (e) {
    stopping = true;
    await Promise.all([...states.values()].map(retire));
    throw new WorkerStartError(e instanceof Error ? e.message : String(e));
  }
  process.on('SIGINT', () => void stopAll('SIGINT', 0));
  process.on('SIGTERM', () => void stopAll('SIGTERM', 0));
  process.on('SIGHUP', () => void restart());

  const lines: string[] = [];
  if (demo)
    lines.push(
      '',
      '  首次启动：已创建演示应用 / first start: a demo app was created',
      `  app_id:      ${demo.appId}`,
      `  AccessToken: ${demo.accessToken}`,
      '  (只显示这一次 / shown only this once)',
      `  Landing page with a first call: ${config.publicBaseUrl}/`,
      '',
    );
  const pids = [...states.values()].map((s) => s.worker.process.pid ?? 0);
  lines.push(
    `hospay is serving on ${started.url} (PostgreSQL); ` +
      (config.simulator.enabled ? 'simulator on' : 'simulator off (HOSPAY_SIMULATOR=off)'),
    ...publicAddressLines({
      publicBaseUrl: config.publicBaseUrl,
      host: config.host,
      port: config.port,
      fromEnv: Boolean(env['PUBLIC_BASE_URL']),
    }),
    `  ${n} 个工作进程 / ${n} workers (pids ${pids.join(', ')}; primary ${process.pid}); ` +
      'SIGHUP 逐个重启 / SIGHUP restarts them one at a time',
  );
  if (started.admin)
    lines.push(`admin API and finance pages (only) on ${started.adminUrl} (HOSPAY_ADMIN_LISTEN)`);
  // Straight to the terminal, never to the log: the demo token is shown once, here.
  process.stdout.write(`${lines.join('\n')}\n`);
  return new Promise<number>(() => {
    /* runs until a signal */
  });
}

/** The workers could not start (the first one's error is printed above by it). */
export class WorkerStartError extends Error {
  constructor(detail: string) {
    super(
      `工作进程未能启动，服务未启动 / a worker failed to start, not serving: ${detail} (its error is above)`,
    );
    this.name = 'WorkerStartError';
  }
}

function sendTo(worker: Worker, message: ToWorker): void {
  try {
    if (worker.isConnected()) worker.send(message);
  } catch {
    /* gone meanwhile */
  }
}

/** A warning when the workers' pools together could use more connections than PostgreSQL allows. */
async function warnAboutConnections(p: Platform, n: number, perWorker: number, log: Logger): Promise<void> {
  if (p.store.kind !== 'postgres') return;
  try {
    const r = await sql<{ max_connections: string }>`SHOW max_connections`.execute(p.store.db);
    const max = Number(r.rows[0]?.max_connections ?? NaN);
    if (Number.isFinite(max) && n * perWorker > max - 5)
      log.warn(
        { workers: n, poolPerWorker: perWorker, maxConnections: max },
        'the workers may open more connections than PostgreSQL allows (max_connections): lower HOSPAY_DB_POOL or ' +
          'HOSPAY_WORKERS, or put a pooler (PgBouncer) in front',
      );
  } catch {
    /* only a warning */
  }
}

// --- a worker -----------------------------------------------------------------------------------------------

/**
 * Requests on a worker's servers, for a graceful stop: `drain` stops taking connections (the primary hands them
 * to the other workers), answers every request from then on with `Connection: close` (so a keep-alive client
 * opens its next connection elsewhere), waits for the requests under way, and closes connections left idle.
 */
export function requestTracker(servers: HttpServer[]): { drain(maxMs?: number): Promise<void> } {
  let draining = false;
  const live = new Set<ServerResponse>();
  const onRequest = (_req: IncomingMessage, res: ServerResponse) => {
    if (draining) res.setHeader('connection', 'close');
    live.add(res);
    res.once('close', () => live.delete(res));
  };
  // Before Fastify's own listener, so the header is set before any answer is written.
  for (const s of servers) s.prependListener('request', onRequest);
  const connections = () =>
    Promise.all(
      servers.map((s) => new Promise<number>((r) => s.getConnections((_e, count) => r(count ?? 0)))),
    ).then((counts) => counts.reduce((a, b) => a + b, 0));
  return {
    async drain(maxMs = DRAIN_MS) {
      draining = true;
      for (const res of live) if (!res.headersSent) res.setHeader('connection', 'close');
      // net.Server's close, not http.Server's: it stops listening but does not cut idle keep-alive connections
      // at once (a client may be writing its next request on one just then).
      for (const s of servers)
        if (s.listening)
          net.Server.prototype.close.call(s, () => {
            /* the 'close' event: no connections left */
          });
      const started = Date.now();
      let lastBusy = started;
      while (Date.now() - started < maxMs) {
        if ((await connections()) === 0) return;
        if (live.size > 0) lastBusy = Date.now();
        else if (Date.now() - lastBusy >= DRAIN_IDLE_MS) {
          for (const s of servers) s.closeIdleConnections();
        }
        await sleep(20);
      }
    },
  };
}

/**
 * A worker of `serve --workers N`: the whole platform (without the demo app) on the shared ports, its logs
 * marked with its worker id. Stops gracefully when the primary asks, on SIGTERM, or when the primary is gone.
 */
export async function serveWorker(config: Config): Promise<number> {
  const id = cluster.worker?.id ?? 0;
  const log = createLogger(config.logLevel).child({ worker: id });
  // Asked to stop while still starting (the server stopping, a restart given up): stop once started.
  let stopAsked: string | null = null;
  const early = (m: unknown) => {
    if (isMessage(m) && m.type === 'hospay:stop') stopAsked ??= 'asked by the primary';
  };
  const earlyGone = () => (stopAsked ??= 'the primary is gone');
  process.on('message', early);
  process.on('disconnect', earlyGone);
  const platform = await startPlatform({ config, log, demo: false });
  process.off('message', early);
  process.off('disconnect', earlyGone);
  const servers = [platform.server.server, platform.adminServer?.server].filter(
    (s): s is HttpServer => s !== undefined,
  );
  const tracker = requestTracker(servers);

  // /metrics: every worker's, aggregated by the primary; this worker's own when the primary does not answer.
  const pending = new Map<number, (text: string | null) => void>();
  let nextId = 1;
  const local = registry.metrics.bind(registry);
  (registry as { metrics: () => Promise<string> }).metrics = async () => {
    const own = await ownMetrics(platform);
    const reqId = nextId++;
    const text = await new Promise<string | null>((resolve) => {
      const timer = setTimeout(() => {
        pending.delete(reqId);
        resolve(null);
      }, METRICS_TIMEOUT_MS + 1_000);
      pending.set(reqId, (t) => {
        clearTimeout(timer);
        pending.delete(reqId);
        resolve(t);
      });
      try {
        process.send?.({ type: 'hospay:metrics', id: reqId, own } satisfies ToPrimary);
      } catch {
        pending.get(reqId)?.(null);
      }
    });
    if (text !== null) return text;
    log.warn('metrics: the primary did not answer, this worker only');
    return `# hospay workers: this worker only (the primary did not answer)\n${await local()}`;
  };

  let stopping: Promise<void> | null = null;
  const stop = (why: string) => {
    stopping ??= (async () => {
      log.info({ why }, 'worker stopping');
      let code = 0;
      try {
        await tracker.drain();
        await platform.close();
      } catch (e) {
        code = 1;
        log.error({ err: e instanceof Error ? e.message : String(e) }, 'worker stop failed');
      }
      process.exit(code);
    })();
  };
  process.on('message', (m: unknown) => {
    if (!isMessage(m)) return;
    if (m.type === 'hospay:stop') stop('asked by the primary');
    else if (m.type === 'hospay:metrics-json') {
      const req = m as Extract<ToWorker, { type: 'hospay:metrics-json' }>;
      void ownMetrics(platform).then((metrics) => {
        try {
          process.send?.({ type: 'hospay:metrics-json', id: req.id, metrics } satisfies ToPrimary);
        } catch {
          /* the primary is gone */
        }
      });
    } else if (m.type === 'hospay:metrics-text') {
      const res = m as Extract<ToWorker, { type: 'hospay:metrics-text' }>;
      pending.get(res.id)?.(res.text);
    }
  });
  // The primary gone (killed): nobody hands out connections any more; finish what is under way and go.
  process.on('disconnect', () => stop('the primary is gone'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // A terminal's Ctrl-C or hang-up reaches every process of the group: the primary decides what they mean.
  process.on('SIGINT', () => {});
  process.on('SIGHUP', () => {});

  if (stopAsked !== null) {
    stop(stopAsked);
    return new Promise<number>(() => {});
  }
  process.send?.({
    type: 'hospay:ready',
    url: platform.url,
    adminUrl: platform.adminUrl,
    admin: platform.adminServer !== null,
  } satisfies ToPrimary);
  return new Promise<number>(() => {
    /* runs until stopped */
  });
}

/** This worker's metrics, its pool gauge current (each worker has its own pool: they add up). */
async function ownMetrics(platform: Platform): Promise<MetricsJson> {
  const stats = platform.store.poolStats?.();
  const pool = registry.getSingleMetric('hospay_db_pool_connections') as Gauge | undefined;
  if (pool && stats) {
    pool.reset();
    for (const [state, v] of Object.entries(stats)) pool.set({ state }, v);
  }
  return (await registry.getMetricsAsJSON()) as MetricsJson;
}
