/**
 * History benchmark (issue 16, "cost that stays flat as history grows"): the same three measurements on an empty
 * database and on one filled with years of history, and the ratio of each pair.
 *
 *   1. query p50: FWC_IF_Barcode_Pay_Query at 50 connections, of trades paid today;
 *   2. barcode pay: FWC_IF_Barcode_Pay req/s (and CPU ms per request, server + PostgreSQL backends);
 *   3. one hospital-day's reconciliation: reconcileDay (bench/reconcile.ts's way, in this process) of one app
 *      for one business day of `reconTrades` payments and 5 % refunds against the simulator's Alipay and WeChat
 *      bills (no HIS: that side is an HTTP client whose cost does not depend on hospay's history).
 *
 * Two databases: an empty one and one filled with the history; the measurements run in rounds alternating them
 * (E F, F E, …: slow changes of the machine's load fall on both), a server started afresh for each phase; each
 * figure is the median of its rounds (a checkpoint, every 5 minutes by default, lands on one round or another:
 * the rounds' lines say which).
 *
 * The fill (PostgreSQL only, set-based INSERT … SELECT generate_series in chunks): `rows` historical trades of
 * ~20 hospitals (apps) spread over ~2 years of Asia/Shanghai days, in time order as a live system writes them,
 * all kinds, pay types and channels, statuses in realistic proportions; ~5 % refunded (a few cancelled, a few
 * refunds FAILED); a notification for every settled online (QR, H5) trade; delivery attempts and channel call
 * records for the last 90 days only (their default retention: older ones are purged in a live system);
 * reconciliation runs for every app, day and pay type, their evidence for 365 days, and a few differences. Then
 * ANALYZE.
 *
 * Then every hot query of the store is EXPLAINed (ANALYZE, BUFFERS) on the filled database: time, buffers, and
 * whether a big table was read by a sequential scan.
 *
 *   npx tsx bench/history.ts --rows=2000000            (needs `npm run build`: the server runs dist/)
 *   npx tsx bench/history.ts --rows=200000 --duration=5 --recon-trades=5000 --keep
 *
 * Flags: --rows=2000000 (historical trades), --apps=20, --days=730, --duration=8 (s per load), --warmup=2,
 * --connections=50, --recon-trades=5000 (payments of the reconciled day), --rounds=4, --keep (do not drop the
 * filled database: its URL is printed), --filled=<database URL> (measure against a database filled and kept by an
 * earlier run: no fill), --explain-only=<database URL> (EXPLAIN the hot queries of an already filled database).
 * Wired into bench/run.ts as `--history=N`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import {
  benchFlags,
  backendsCpu,
  backendsDelta,
  cpuMs,
  createDb,
  load,
  pool,
  postJson,
  postXml,
  startHospay,
  uniq,
  xml,
  type BenchDb,
  type Server,
} from './harness.js';
import { createProgress } from '../src/cli/progress.js';
import { loadConfig } from '../src/config/config.js';
import { startPlatform } from '../src/main.js';
import { reconcileDay, type ReconProgress } from '../src/reconcile/run.js';
import { createLogger } from '../src/logging.js';

// ---- what the history test reports ------------------------------------------------------------------------------

/** One load of one path: req/s, latency (ms) and CPU per request (server process + PostgreSQL backends). */
export interface HistoryLoad {
  rps: number;
  p50: number;
  p99: number;
  cpuMsPerReq: number;
  dbCpuMsPerReq: number;
  requests: number;
  /** Transport errors + non-2xx + answers that were not IsSuccess 1. */
  failures: number;
  /**
   * PostgreSQL's buffer work during the load: blocks read into shared_buffers (cache misses: from the OS's page
   * cache or the disk) and dirty buffers written out by the backends themselves (to make room), per request;
   * checkpoints that started meanwhile.
   */
  io?: { blksReadPerReq: number; backendWritesPerReq: number; checkpoints: number };
}

export interface HistoryReconcile {
  date: string;
  payments: number;
  refunds: number;
  /** Wall time of each run of the same day (the first cold, then re-runs), ms. */
  runsMs: number[];
  /** The fastest run. */
  bestMs: number;
  /**
   * The fastest run without the channel-bill stage: the platform's reads, the matching and the saving, what
   * hospay's history can slow (the bill is the provider's; here the simulator's own books). The figure compared.
   */
  platformMs: number;
  /** CPU of this process during the fastest run, ms. */
  cpuMs: number;
  /**
   * Where the fastest run (without the bill) went, ms, both pay types together: the platform's reads of the day,
   * the matching, the saving, and the rest (the previous day's pending pool, the HIS side when configured).
   */
  stagesMs: { platform: number; match: number; save: number; other: number };
  matched: number;
  differences: number;
}

export interface HistoryPhase {
  label: 'empty' | 'filled';
  /** Trades in the database when the phase started. */
  trades: number;
  query: HistoryLoad;
  barcode: HistoryLoad;
  reconcile: HistoryReconcile;
}

export interface HistoryExplain {
  name: string;
  /** Where the statement comes from (src/store/…). */
  source: string;
  /** Execution time (ms) of EXPLAIN ANALYZE. */
  ms: number;
  /** Shared buffers hit + read. */
  buffers: number;
  /** Rows the top node returned. */
  rows: number;
  /** Big tables read by a sequential scan (the sign of a missing index). */
  seqScans: string[];
  /** The plan's node types and indexes, outermost first, shortened. */
  plan: string;
}

export interface HistoryReport {
  /** Why nothing was measured (not PostgreSQL), else null. */
  skipped: string | null;
  rows: number;
  apps: number;
  days: number;
  settings: { duration: number; warmup: number; connections: number; reconTrades: number; rounds: number };
  /** Every round of each database, in the order run (empty and filled alternating, each round's order swapped). */
  rounds: { empty: HistoryPhase[]; filled: HistoryPhase[] };
  fillSeconds: number;
  analyzeSeconds: number;
  /** Rows and size (table + indexes + TOAST) of every table with more than 1000 rows after the fill. */
  tables: Array<{ table: string; rows: number; mb: number }>;
  /** Each measure's median over the rounds (the reconciliation: its best run over the rounds). */
  empty: HistoryPhase | null;
  filled: HistoryPhase | null;
  /**
   * filled ÷ empty. Query p50, CPU per request and reconciliation time: ≤ 1.10 is within the target; barcode
   * req/s: ≥ 0.90 is.
   */
  ratios: {
    queryP50: number;
    queryCpu: number;
    barcodeRps: number;
    barcodeCpu: number;
    reconcile: number;
  } | null;
  explains: HistoryExplain[];
  /** Applied migrations (the last one says whether 023's indexes were there). */
  lastMigration: string;
  crashed: string | null;
}

// ---- settings -----------------------------------------------------------------------------------------------------

export interface HistoryOptions {
  db: BenchDb;
  rows: number;
  log: (s: string) => void;
  apps?: number;
  days?: number;
  duration?: number;
  warmup?: number;
  connections?: number;
  reconTrades?: number;
  /** Rounds of the measurements, the empty and filled databases alternating (default 4). */
  rounds?: number;
  /**
   * `db` is already filled by an earlier run (--filled=<url>, a database kept with --keep): no fill; its bench
   * app (hospital HBENCH) is used with a new access token.
   */
  prefilled?: boolean;
}

const MASTER_KEY = 'ab'.repeat(32);
const PAY_FIELDS = {
  AuthCode: '280000000000000000', // an Alipay code the simulator pays at once
  Caption: '门诊缴费',
  PatientName: '张三',
  InhospitalNo: '0001',
  OrderType: 'TREATMENT',
};
const offlineOk = (status: number, body: string) =>
  status === 200 && body.includes('<IsSuccess>1</IsSuccess>');
const r2 = (x: number) => Math.round(x * 100) / 100;
const ratio = (a: number, b: number) => (b > 0 ? r2(a / b) : 0);
const DAY_MS = 86_400_000;
/** The Asia/Shanghai date ('yyyy-MM-dd') `daysAgo` days before now. */
const shanghaiDate = (daysAgo: number) =>
  new Date(Date.now() + 8 * 3_600_000 - daysAgo * DAY_MS).toISOString().slice(0, 10);

// ---- the run ------------------------------------------------------------------------------------------------------

/**
 * The whole test: `o.db` (PostgreSQL; an embedded database is skipped) is filled with the history (unless
 * `prefilled`); a second, empty database is made here (and dropped). Both get the bench app and its reconciled
 * day; then the same measurements run round by round on the empty and the filled database alternately (E F, then
 * F E, …), so that slow changes of the machine's load fall on both; each measure is the median of its rounds.
 * Then the EXPLAINs on the filled database. `o.db` is left for the caller to drop.
 */
export async function historyBench(o: HistoryOptions): Promise<HistoryReport> {
  const settings = {
    duration: o.duration ?? 8,
    warmup: o.warmup ?? 2,
    connections: o.connections ?? 50,
    reconTrades: o.reconTrades ?? 5000,
    rounds: Math.max(1, o.rounds ?? 4),
  };
  const report: HistoryReport = {
    skipped: null,
    rows: o.rows,
    apps: o.apps ?? 20,
    days: o.days ?? 730,
    settings,
    rounds: { empty: [], filled: [] },
    fillSeconds: 0,
    analyzeSeconds: 0,
    tables: [],
    empty: null,
    filled: null,
    ratios: null,
    explains: [],
    lastMigration: '',
    crashed: null,
  };
  if (o.db.kind !== 'postgres' || !o.db.url) {
    report.skipped = 'the history test runs on PostgreSQL only (the fill is set-based SQL on a real server)';
    return report;
  }
  const adminToken = randomBytes(24).toString('hex');
  // The daily reconciliation job stays off: the reconciliation measured is the one run here.
  const start = (db: BenchDb) =>
    startHospay(db, { jobs: true, cpuProfDir: null, adminToken, extraEnv: { HOSPAY_RECONCILE_AT: 'off' } });
  // Yesterday, reconciled on both databases (the history ends four days ago).
  const day = shanghaiDate(1);
  const filled: Side = { db: o.db, url: o.db.url, sql: new pg.Client({ connectionString: o.db.url }) };
  let emptyDb: BenchDb | null = null;
  let empty: Side | null = null;
  try {
    await filled.sql.connect();
    emptyDb = await createDb('postgres');
    empty = {
      db: emptyDb,
      url: emptyDb.url ?? '',
      sql: new pg.Client({ connectionString: emptyDb.url ?? '' }),
    };
    await empty.sql.connect();
    const e = await newBenchApp(empty, start, adminToken, day, settings.reconTrades);
    let f: BenchApp;
    if (o.prefilled) {
      f = await reuseBenchApp(filled, day, settings.reconTrades);
      report.rows = (await tradeCount(filled.sql)) - settings.reconTrades;
    } else {
      f = await newBenchApp(filled, start, adminToken, day, settings.reconTrades);
      const t0 = Date.now();
      await fillHistory(filled.sql, {
        appId: f.appId,
        rows: o.rows,
        apps: report.apps,
        days: report.days,
        log: o.log,
      });
      report.fillSeconds = Math.round((Date.now() - t0) / 1000);
      const t1 = Date.now();
      o.log(`history: ANALYZE …`);
      await filled.sql.query('VACUUM ANALYZE');
      // The fill's dirty pages written out now, not by a checkpoint during the first filled round.
      await filled.sql.query('CHECKPOINT');
      report.analyzeSeconds = Math.round((Date.now() - t1) / 1000);
    }
    report.tables = await tableSizes(filled.sql);

    for (let r = 0; r < settings.rounds; r++) {
      const order = r % 2 === 0 ? (['empty', 'filled'] as const) : (['filled', 'empty'] as const);
      for (const label of order) {
        const [side, app] = label === 'empty' ? [empty, e] : [filled, f];
        o.log(`history: round ${r + 1} of ${settings.rounds}, the ${label} database, measuring …`);
        // A server of its own for each phase: no plan or cache carried over.
        const server = await start(side.db);
        try {
          report.rounds[label].push(
            await phase(label, server, side.sql, side.url, app.appId, app.token, day, settings, o.log),
          );
        } finally {
          await server.stop();
        }
      }
    }
    const em = medianPhase(report.rounds.empty);
    const fm = medianPhase(report.rounds.filled);
    report.empty = em;
    report.filled = fm;
    report.ratios = {
      queryP50: ratio(fm.query.p50, em.query.p50),
      queryCpu: ratio(
        fm.query.cpuMsPerReq + fm.query.dbCpuMsPerReq,
        em.query.cpuMsPerReq + em.query.dbCpuMsPerReq,
      ),
      barcodeRps: ratio(fm.barcode.rps, em.barcode.rps),
      barcodeCpu: ratio(
        fm.barcode.cpuMsPerReq + fm.barcode.dbCpuMsPerReq,
        em.barcode.cpuMsPerReq + em.barcode.dbCpuMsPerReq,
      ),
      reconcile: ratio(fm.reconcile.platformMs, em.reconcile.platformMs),
    };
    o.log(`history: EXPLAIN the hot queries …`);
    report.explains = await explainHotQueries(filled.sql, f.appId);
    report.lastMigration = await lastMigration(filled.sql);
  } catch (err) {
    report.crashed = err instanceof Error ? (err.stack ?? err.message) : String(err);
    o.log(`history: failed: ${report.crashed}`);
  } finally {
    await filled.sql.end().catch(() => undefined);
    await empty?.sql.end().catch(() => undefined);
    await emptyDb?.drop();
  }
  return report;
}

/** One of the two databases. */
interface Side {
  db: BenchDb;
  url: string;
  sql: pg.Client;
}

/** The bench app of a database: the one whose trades are queried, paid and reconciled. */
interface BenchApp {
  appId: string;
  token: string;
}

/** Creates the bench app (through the admin API) and seeds its reconciled day. */
async function newBenchApp(
  side: Side,
  start: (db: BenchDb) => Promise<Server>,
  adminToken: string,
  day: string,
  reconTrades: number,
): Promise<BenchApp> {
  const server = await start(side.db);
  try {
    const created = (await postJson(
      `${server.base}/admin/apps`,
      { name: '历史基准 history bench', hospital_id: 'HBENCH' },
      adminToken,
    )) as { app_id: string; access_token: string };
    await seedReconDay(side.sql, created.app_id, day, reconTrades);
    await side.sql.query('ANALYZE');
    return { appId: created.app_id, token: created.access_token };
  } finally {
    await server.stop();
  }
}

/**
 * The bench app of a database filled by an earlier run: a new access token (only its SHA-256 is stored), and
 * the reconciled day seeded unless it already is.
 */
async function reuseBenchApp(side: Side, day: string, reconTrades: number): Promise<BenchApp> {
  const r = await side.sql.query<{ id: string }>(`SELECT id FROM apps WHERE hospital_id = 'HBENCH' LIMIT 1`);
  const appId = r.rows[0]?.id;
  if (!appId) throw new Error('--filled: the database has no bench app (hospital HBENCH)');
  const token = randomBytes(24).toString('hex');
  await side.sql.query(
    `UPDATE apps SET token_hash = encode(sha256(convert_to($2, 'UTF8')), 'hex') WHERE id = $1`,
    [appId, token],
  );
  const seeded = await side.sql.query(
    `SELECT 1 FROM trades WHERE app_id = $1 AND out_trade_no LIKE $2 LIMIT 1`,
    [appId, `RC${day.replace(/-/g, '')}%`],
  );
  if (seeded.rowCount === 0) {
    await seedReconDay(side.sql, appId, day, reconTrades);
    await side.sql.query('ANALYZE');
  }
  return { appId, token };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] ?? 0) : r2(((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2);
};

/** Each load's figures as their medians over the rounds; the reconciliation's best run over all rounds. */
function medianPhase(phases: HistoryPhase[]): HistoryPhase {
  const first = phases[0];
  if (!first) throw new Error('no round was measured');
  const loadOf = (pick: (p: HistoryPhase) => HistoryLoad): HistoryLoad => {
    const ls = phases.map(pick);
    return {
      rps: median(ls.map((l) => l.rps)),
      p50: median(ls.map((l) => l.p50)),
      p99: median(ls.map((l) => l.p99)),
      cpuMsPerReq: median(ls.map((l) => l.cpuMsPerReq)),
      dbCpuMsPerReq: median(ls.map((l) => l.dbCpuMsPerReq)),
      requests: ls.reduce((a, l) => a + l.requests, 0),
      failures: ls.reduce((a, l) => a + l.failures, 0),
      io: {
        blksReadPerReq: median(ls.map((l) => l.io?.blksReadPerReq ?? 0)),
        backendWritesPerReq: median(ls.map((l) => l.io?.backendWritesPerReq ?? 0)),
        checkpoints: ls.reduce((a, l) => a + (l.io?.checkpoints ?? 0), 0),
      },
    };
  };
  const best = phases.reduce((a, p) => (p.reconcile.platformMs < a.reconcile.platformMs ? p : a), first);
  return {
    label: first.label,
    trades: first.trades,
    query: loadOf((p) => p.query),
    barcode: loadOf((p) => p.barcode),
    reconcile: {
      ...best.reconcile,
      runsMs: phases.flatMap((p) => p.reconcile.runsMs),
      bestMs: Math.min(...phases.map((p) => p.reconcile.bestMs)),
    },
  };
}

async function lastMigration(sql: pg.Client): Promise<string> {
  const r = await sql.query<{ name: string }>(
    'SELECT name FROM kysely_migration ORDER BY timestamp DESC, name DESC LIMIT 1',
  );
  return r.rows[0]?.name ?? '';
}

async function tradeCount(sql: pg.Client): Promise<number> {
  const r = await sql.query<{ n: string }>('SELECT count(*) AS n FROM trades');
  return Number(r.rows[0]?.n ?? 0);
}

/** One phase: today's paid trades to query, the two loads, the reconciliation of `day`. */
async function phase(
  label: HistoryPhase['label'],
  server: Server,
  sql: pg.Client,
  url: string,
  appId: string,
  token: string,
  day: string,
  s: HistoryReport['settings'],
  log: (s: string) => void,
): Promise<HistoryPhase> {
  const trades = await tradeCount(sql);
  const offline = (n: string) => `${server.base}/offline/${n}`;
  // Today's trades to query: paid through the door, as run.ts does.
  const paid = await pool(Array.from({ length: 500 }), 10, async () => {
    const no = uniq('HQ');
    const text = await postXml(offline('FWC_IF_Barcode_Pay'), {
      AccessToken: token,
      OutTradeNo: no,
      ...PAY_FIELDS,
      TotalAmount: '12.34',
    });
    if (!text.includes('<IsSuccess>1</IsSuccess>'))
      throw new Error(`a trade to query was not paid: ${text.slice(0, 400)}`);
    return no;
  });
  let i = 0;
  log(`  [${label}] query …`);
  const query = await measure(server, url, s, {
    url: offline('FWC_IF_Barcode_Pay_Query'),
    body: () => xml({ AccessToken: token, OutTradeNo: paid[i++ % paid.length] ?? '' }),
  });
  log(`    p50 ${query.p50} ms, ${query.rps} req/s, cpu ${query.cpuMsPerReq}+${query.dbCpuMsPerReq} ms/req`);
  log(`  [${label}] barcode pay …`);
  const barcode = await measure(server, url, s, {
    url: offline('FWC_IF_Barcode_Pay'),
    body: () => xml({ AccessToken: token, OutTradeNo: uniq('HB'), ...PAY_FIELDS, TotalAmount: '88.88' }),
  });
  log(
    `    ${barcode.rps} req/s, p50 ${barcode.p50} ms, cpu ${barcode.cpuMsPerReq}+${barcode.dbCpuMsPerReq} ms/req; ` +
      `blocks read ${barcode.io?.blksReadPerReq}/req, backends' own writes ${barcode.io?.backendWritesPerReq}/req, ` +
      `checkpoints ${barcode.io?.checkpoints}`,
  );
  log(`  [${label}] reconciliation of ${day} …`);
  const reconcile = await reconcileOnce(url, appId, day);
  log(
    `    ${reconcile.runsMs.join(' ms, ')} ms; without the bill ${reconcile.platformMs} ms ` +
      `(matched ${reconcile.matched}, differences ${reconcile.differences}; platform's reads ` +
      `${reconcile.stagesMs.platform}, match ${reconcile.stagesMs.match}, save ${reconcile.stagesMs.save}, ` +
      `other ${reconcile.stagesMs.other} ms)`,
  );
  return { label, trades, query, barcode, reconcile };
}

async function measure(
  server: Server,
  dbUrl: string,
  s: HistoryReport['settings'],
  o: { url: string; body: () => string },
): Promise<HistoryLoad> {
  const opts = {
    url: o.url,
    contentType: 'text/xml',
    connections: s.connections,
    body: o.body,
    ok: offlineOk,
  };
  if (s.warmup > 0) await load({ ...opts, duration: s.warmup });
  const io0 = await bufferWork(dbUrl);
  const c0 = cpuMs(server.pid);
  const b0 = await backendsCpu(dbUrl);
  const r = await load({ ...opts, duration: s.duration });
  const c1 = cpuMs(server.pid);
  const b1 = await backendsCpu(dbUrl);
  const io1 = await bufferWork(dbUrl);
  const n = Math.max(r.requests, 1);
  return {
    rps: r.rps,
    p50: r.p50,
    p99: r.p99,
    cpuMsPerReq: r2((c1 - c0) / n),
    dbCpuMsPerReq: r2(backendsDelta(b0, b1) / n),
    requests: r.requests,
    failures: r.errors + r.non2xx + r.appFail,
    io: {
      blksReadPerReq: r2((io1.blksRead - io0.blksRead) / n),
      backendWritesPerReq: r2((io1.backendWrites - io0.backendWrites) / n),
      checkpoints: io1.checkpoints - io0.checkpoints,
    },
  };
}

/** The database's blocks read into shared_buffers, the backends' own buffer writes and the checkpoints so far. */
async function bufferWork(
  url: string,
): Promise<{ blksRead: number; backendWrites: number; checkpoints: number }> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const r = await c.query<{ blks_read: string; buffers_backend: string; checkpoints: string }>(
      `SELECT d.blks_read, b.buffers_backend, b.checkpoints_timed + b.checkpoints_req AS checkpoints
         FROM pg_stat_database d, pg_stat_bgwriter b WHERE d.datname = current_database()`,
    );
    const row = r.rows[0];
    return {
      blksRead: Number(row?.blks_read ?? 0),
      backendWrites: Number(row?.buffers_backend ?? 0),
      checkpoints: Number(row?.checkpoints ?? 0),
    };
  } finally {
    await c.end();
  }
}

/** One app's business day reconciled three times in this process (the platform on the same database), timed. */
async function reconcileOnce(url: string, appId: string, date: string): Promise<HistoryReconcile> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-history-recon-'));
  const config = loadConfig({
    DATABASE_URL: url,
    HOSPAY_DATA_DIR: dataDir,
    HOSPAY_JOBS: 'off',
    LOG_LEVEL: 'warn',
    HOSPAY_MASTER_KEY: MASTER_KEY,
  });
  const platform = await startPlatform({ config, listen: false, demo: false, log: createLogger('warn') });
  try {
    const app = await platform.deps.apps.get(appId);
    if (!app) throw new Error(`app ${appId} not found`);
    const runsMs: number[] = [];
    let matched = 0;
    let differences = 0;
    let platformMs = Infinity;
    let cpu = 0;
    let stagesMs = { platform: 0, match: 0, save: 0, other: 0 };
    for (let k = 0; k < 3; k++) {
      // Each stage's time, from its first progress report (done 0) to its last (done = total).
      const spent = new Map<ReconProgress['stage'], number>();
      const from = new Map<ReconProgress['stage'], number>();
      const onProgress = (p: ReconProgress) => {
        if (p.done === 0) from.set(p.stage, performance.now());
        else if (p.done === p.total)
          spent.set(p.stage, (spent.get(p.stage) ?? 0) + performance.now() - (from.get(p.stage) ?? 0));
      };
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const outcomes = await reconcileDay(platform.recon, {
        app,
        date,
        payTypes: ['alipay', 'weixin'],
        onProgress,
      });
      const ms = Math.round(performance.now() - t0);
      const c = process.cpuUsage(c0);
      if (ms < Math.min(...runsMs, Infinity)) cpu = Math.round((c.user + c.system) / 1000);
      runsMs.push(ms);
      const billMs = spent.get('bill') ?? 0;
      if (Math.round(ms - billMs) < platformMs) {
        platformMs = Math.round(ms - billMs);
        const st = (x: ReconProgress['stage']) => Math.round((spent.get(x) ?? 0) * 10) / 10;
        stagesMs = { platform: st('platform'), match: st('match'), save: st('save'), other: 0 };
        stagesMs.other =
          Math.round((ms - billMs - stagesMs.platform - stagesMs.match - stagesMs.save) * 10) / 10;
      }
      matched = outcomes.reduce((a, x) => a + x.matched, 0);
      differences = outcomes.reduce((a, x) => a + x.differences, 0);
    }
    const counts = await platform.store.db
      .selectFrom('refunds')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('app_id', '=', appId)
      .where('out_request_no', 'like', `RR${date.replace(/-/g, '')}%`)
      .executeTakeFirstOrThrow();
    const payments = await platform.store.db
      .selectFrom('trades')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('app_id', '=', appId)
      .where('out_trade_no', 'like', `RC${date.replace(/-/g, '')}%`)
      .executeTakeFirstOrThrow();
    return {
      date,
      payments: Number(payments.n),
      refunds: Number(counts.n),
      runsMs,
      bestMs: Math.min(...runsMs),
      platformMs,
      cpuMs: cpu,
      stagesMs,
      matched,
      differences,
    };
  } finally {
    await platform.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---- the reconciled day of the bench app ---------------------------------------------------------------------------

/**
 * `n` payments of the bench app on business day `date` (07:00–19:00, Asia/Shanghai), 60 % Alipay and 40 % WeChat
 * through the simulator, and a same-day partial refund (1.00) of every 20th, in the platform's books and the
 * simulator's (bench/reconcile.ts's day, in SQL).
 */
async function seedReconDay(sql: pg.Client, appId: string, date: string, n: number): Promise<void> {
  const tag = date.replace(/-/g, '');
  await sql.query(
    `
    WITH g AS (
      SELECT i, ($3::date::timestamp AT TIME ZONE 'Asia/Shanghai')
               + interval '7 hours' + (i::float8 / $4::int) * interval '12 hours' AS at,
             CASE WHEN i % 5 < 3 THEN 'alipay' ELSE 'weixin' END AS pay_type,
             100 + (i * 7919) % 99900 AS fen,
             'RC' || $2 || lpad(i::text, 8, '0') AS no
        FROM generate_series(1, $4::int) i),
    s AS (
      INSERT INTO sim_trades (merchant, out_trade_no, pay_type, channel_trade_no, amount_fen, subject, status, rule,
                              refunded_fen, created_at, paid_at)
      SELECT $1, no, pay_type, 'SIM' || no, fen, '门诊缴费', 'PAID', '00', CASE WHEN i % 20 = 0 THEN 100 ELSE 0 END,
             at, at FROM g)
    INSERT INTO trades (trade_no, app_id, out_trade_no, kind, status, pay_type, channel, category, order_type,
                        total_fen, refund_reserved_fen, refunded_fen, subject, operator_id, terminal_id, hospital_id,
                        fingerprint, channel_trade_no, created_at, updated_at, expires_at, paid_at)
    SELECT 'HP' || $2 || '8' || lpad(i::text, 11, '0'), $1, no, 'barcode', 'TRADE_SUCCESS', pay_type, 'simulator',
           'MZ', 'TREATMENT', fen, CASE WHEN i % 20 = 0 THEN 100 ELSE 0 END, CASE WHEN i % 20 = 0 THEN 100 ELSE 0 END,
           '门诊缴费', 'OP' || (i % 7), 'T' || (i % 12), 'HBENCH', 'bench', 'SIM' || no, at, at, at + interval '2 hours',
           at
      FROM g`,
    [appId, tag, date, n],
  );
  await sql.query(
    `
    WITH r AS (
      SELECT t.id, t.out_trade_no, t.paid_at + interval '10 minutes' AS at
        FROM trades t
       WHERE t.app_id = $1 AND t.out_trade_no LIKE 'RC' || $2 || '%' AND t.refunded_fen > 0),
    s AS (
      INSERT INTO sim_refunds (merchant, out_trade_no, out_request_no, amount_fen, refund_no, created_at)
      SELECT $1, out_trade_no, 'RR' || substr(out_trade_no, 3), 100, 'SIMR' || out_trade_no, at FROM r)
    INSERT INTO refunds (trade_id, app_id, out_request_no, kind, amount_fen, status, hospital_id, channel_refund_no,
                         created_at, updated_at, finished_at)
    SELECT id, $1, 'RR' || substr(out_trade_no, 3), 'refund', 100, 'SUCCESS', 'HBENCH', 'SIMR' || out_trade_no, at, at,
           at FROM r`,
    [appId, tag],
  );
}

// ---- the fill -------------------------------------------------------------------------------------------------------

/** Trades per INSERT statement. */
const CHUNK = 100_000;

/**
 * `rows` historical trades of `apps` apps (the bench app and apps-1 others) over `days` business days ending
 * four days ago, with their refunds, notifications, delivery attempts, channel calls and reconciliation records.
 */
export async function fillHistory(
  sql: pg.Client,
  o: { appId: string; rows: number; apps: number; days: number; log: (s: string) => void },
): Promise<void> {
  await sql.query('SET synchronous_commit = off');
  const others = Array.from(
    { length: Math.max(0, o.apps - 1) },
    (_, k) => `HIST${String(k + 1).padStart(3, '0')}`,
  );
  for (const id of others)
    await sql.query(
      `INSERT INTO apps (id, name, hospital_id, token_hash, created_at)
       VALUES ($1, $2, $3, $4, now() - interval '3 years') ON CONFLICT (id) DO NOTHING`,
      [id, `历史医院 ${id}`, `H${id}`, randomBytes(32).toString('hex')],
    );
  const apps = [o.appId, ...others];
  // The first day of the history (Asia/Shanghai), so that the last is four days ago: refunds (up to a day after
  // their payment) end before the two days the phases reconcile.
  const first = shanghaiDate(o.days + 3);
  const retentionFrom = new Date(Date.now() - 90 * DAY_MS);
  const progress = createProgress({ label: '历史 history fill', total: o.rows, unit: 'trades' });
  const idBefore = Number(
    (await sql.query<{ m: string }>('SELECT coalesce(max(id), 0) AS m FROM trades')).rows[0]?.m,
  );
  for (let from = 1; from <= o.rows; from += CHUNK) {
    const to = Math.min(o.rows, from + CHUNK - 1);
    await sql.query('SELECT setseed($1)', [((from / o.rows) % 1) - 0.5]);
    await sql.query(TRADES_SQL, [from, to, o.rows, o.days, first, apps]);
    progress.tick(to - from + 1);
  }
  progress.done();
  const steps: Array<[string, string, unknown[]]> = [
    ['refunds', REFUNDS_SQL, [idBefore]],
    ['notifications', NOTIFICATIONS_SQL, [idBefore]],
    ['notify_attempts', ATTEMPTS_SQL, [idBefore, retentionFrom]],
    ['channel_calls', CALLS_SQL, [idBefore, retentionFrom]],
    ['recon_runs', RUNS_SQL, [apps, first, o.days]],
    ['recon_evidence', EVIDENCE_SQL, [apps, first, o.days]],
    ['recon_differences', DIFFERENCES_SQL, [idBefore]],
    ['recon_audit', AUDIT_SQL, []],
    ['job_claims', CLAIMS_SQL, [first, o.days]],
  ];
  for (const [table, text, params] of steps) {
    const t0 = Date.now();
    const r = await sql.query(text, params);
    o.log(`  ${table}: ${r.rowCount ?? 0} rows in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}

/**
 * One chunk of trades, g in [$1, $2] of $3, in time order over $4 days from $5 (07:00–18:00 Asia/Shanghai),
 * app $6[1 + g % n]. Proportions: barcode 55 %, QR 30 %, H5 14.8 %, void 0.2 %; Alipay 45 %, WeChat 45 %,
 * UnionPay 7 %, e-CNY 3 %; paid 92 % of barcode and 80 % of QR/H5 payments (the rest closed unpaid, as the
 * expirer leaves them); of the paid: 10 % finished (refund window over), 1 % cancelled (reversed in full),
 * 5 % partly refunded, 6 % mixed with medical insurance.
 */
const TRADES_SQL = `
WITH g AS (
  SELECT g, random() AS r1, random() AS r2, random() AS r3, random() AS r4, random() AS r5, random() AS r6,
         (g - 1)::float8 * $4 / $3 AS x
    FROM generate_series($1::bigint, $2::bigint) g),
b AS (
  SELECT g, r1, r2, r3, r4, r5, r6,
         ($5::date + floor(x)::int)::timestamp AT TIME ZONE 'Asia/Shanghai'
           + interval '7 hours' + (x - floor(x)) * interval '11 hours' AS at,
         ($6::text[])[1 + (g % array_length($6::text[], 1))] AS app_id,
         CASE WHEN r1 < 0.55 THEN 'barcode' WHEN r1 < 0.85 THEN 'qrcode' WHEN r1 < 0.998 THEN 'h5' ELSE 'void' END
           AS kind,
         CASE WHEN r2 < 0.45 THEN 'alipay' WHEN r2 < 0.90 THEN 'weixin' WHEN r2 < 0.97 THEN 'unionpay' ELSE 'elecny'
           END AS pay_type,
         100 + floor(r4 * r4 * 200000)::bigint AS total
    FROM g),
c AS (
  SELECT b.*,
         kind <> 'void' AND r3 < CASE WHEN kind = 'barcode' THEN 0.92 ELSE 0.80 END AS paid,
         -- r5 chooses what happened after payment (scaled to the paid share)
         CASE WHEN r5 < 0.01 THEN 'cancel' WHEN r5 < 0.06 THEN 'refund' WHEN r5 < 0.16 THEN 'finished' ELSE 'paid' END
           AS fate,
         CASE WHEN r6 < 0.06 AND kind <> 'void' THEN floor(total * 0.6)::bigint ELSE 0 END AS insurance
    FROM b),
d AS (
  SELECT c.*,
         CASE WHEN NOT paid THEN 0 WHEN fate = 'cancel' THEN total
              WHEN fate = 'refund' THEN greatest(1, (total - insurance) / 2) ELSE 0 END AS refunded,
         CASE WHEN fate = 'cancel' THEN 0 ELSE insurance END AS ins,
         at + make_interval(secs => 3 + (g % 50)) AS paid_at
    FROM c)
INSERT INTO trades (trade_no, app_id, out_trade_no, kind, status, pay_type, channel, category, order_type, total_fen,
                    refund_reserved_fen, refunded_fen, subject, operator_id, terminal_id, hospital_id, patient_name,
                    inhospital_no, fingerprint, channel_trade_no, code_url, buyer_logon_id, buyer_user_id,
                    cancel_action, created_at, updated_at, expires_at, paid_at, closed_at, notify_url, return_url,
                    insurance_fen, insurance_state, settlement_no, insurance_refunded_fen)
SELECT 'HP' || to_char(at AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDDHH24MISS') || '9' || lpad(g::text, 9, '0'),
       app_id,
       CASE WHEN kind = 'void' THEN 'XX' ELSE (ARRAY['MZ', 'ZY', 'ZJMZ', 'ZHZY'])[1 + (g % 20 / 12) + (g % 20 / 17) + (g % 20 / 19)] END
         || to_char(at AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD') || lpad(g::text, 10, '0'),
       kind,
       CASE WHEN kind = 'void' OR NOT paid THEN 'TRADE_CLOSED' WHEN fate = 'cancel' THEN 'TRADE_CLOSED'
            WHEN fate = 'finished' THEN 'TRADE_FINISHED' ELSE 'TRADE_SUCCESS' END,
       CASE WHEN kind = 'void' THEN NULL ELSE pay_type END,
       CASE WHEN kind = 'void' THEN NULL WHEN pay_type = 'alipay' THEN 'alipay' WHEN pay_type = 'weixin' THEN 'wechat'
            ELSE 'unionpay' END,
       CASE WHEN kind = 'void' THEN 'VOID' ELSE (ARRAY['MZ', 'ZY', 'ZJMZ', 'ZHZY'])[1 + (g % 20 / 12) + (g % 20 / 17) + (g % 20 / 19)]
         END,
       CASE WHEN kind = 'void' THEN '' WHEN g % 10 = 0 THEN 'REGISTER' ELSE 'TREATMENT' END,
       CASE WHEN kind = 'void' THEN 0 ELSE total END,
       refunded, refunded,
       CASE WHEN kind = 'void' THEN '' WHEN g % 10 = 0 THEN '挂号费' ELSE '门诊缴费' END,
       'OP' || (g % 40), CASE WHEN kind = 'barcode' THEN 'T' || (g % 25) END, 'H' || app_id,
       CASE WHEN kind <> 'void' THEN '患者' || (g % 97003) END,
       CASE WHEN kind <> 'void' THEN lpad((g % 300007)::text, 8, '0') END,
       md5(g::text),
       CASE WHEN paid THEN 'CH' || to_char(at AT TIME ZONE 'Asia/Shanghai', 'YYYYMMDD') || lpad(g::text, 12, '0') END,
       CASE WHEN kind = 'qrcode' THEN 'https://qr.alipay.com/bax0' || g END,
       CASE WHEN paid AND pay_type = 'alipay' THEN 'pat***@example.cn' END,
       CASE WHEN paid THEN '2088' || lpad((g % 1000003)::text, 12, '0') END,
       CASE WHEN kind = 'void' THEN 'close' WHEN paid AND fate = 'cancel' THEN 'refund' END,
       at,
       CASE WHEN paid AND fate = 'cancel' THEN paid_at + interval '5 minutes' WHEN paid THEN paid_at
            ELSE at + interval '2 hours' END,
       at + CASE WHEN kind = 'barcode' THEN interval '5 minutes' ELSE interval '2 hours' END,
       CASE WHEN paid THEN paid_at END,
       CASE WHEN kind = 'void' THEN at WHEN NOT paid THEN at + interval '2 hours'
            WHEN fate = 'cancel' THEN paid_at + interval '5 minutes' END,
       CASE WHEN kind IN ('qrcode', 'h5') THEN 'https://his.example.cn/pay/notify' END,
       CASE WHEN kind = 'h5' THEN 'https://his.example.cn/pay/return' END,
       ins,
       CASE WHEN ins > 0 AND paid THEN 'SETTLED' WHEN ins > 0 THEN 'REVERSED' ELSE 'NONE' END,
       CASE WHEN ins > 0 THEN 'JS' || lpad(g::text, 16, '0') END,
       CASE WHEN ins > 0 AND NOT paid THEN ins ELSE 0 END
  FROM d`;

/**
 * The refunds of the history's trades: one SUCCESS refund (or cancel) per refunded trade, a day at most after
 * its payment; and a FAILED refund for 1 in 200 paid trades (nothing reserved).
 */
const REFUNDS_SQL = `
INSERT INTO refunds (trade_id, app_id, out_request_no, kind, amount_fen, status, reason, hospital_id, terminal_id,
                     channel_refund_no, fail_code, created_at, updated_at, finished_at)
SELECT id, app_id, 'TK' || lpad(id::text, 12, '0'),
       CASE WHEN cancel_action = 'refund' THEN 'cancel' ELSE 'refund' END, refunded_fen, 'SUCCESS',
       CASE WHEN cancel_action = 'refund' THEN 'cancel' ELSE '退费' END, hospital_id, terminal_id,
       'CHR' || lpad(id::text, 14, '0'), NULL,
       paid_at + make_interval(mins => (id % 1440)::int), paid_at + make_interval(mins => (id % 1440)::int, secs => 2),
       paid_at + make_interval(mins => (id % 1440)::int, secs => 2)
  FROM trades WHERE id > $1 AND refunded_fen > 0
UNION ALL
SELECT id, app_id, 'TF' || lpad(id::text, 12, '0'), 'refund', greatest(1, (total_fen - insurance_fen) / 3),
       'FAILED', '退费', hospital_id, terminal_id, NULL, 'ACQ.TRADE_HAS_FINISHED',
       paid_at + interval '3 hours', paid_at + interval '3 hours 2 seconds', NULL
  FROM trades WHERE id > $1 AND paid_at IS NOT NULL AND id % 200 = 7`;

/** One notification per settled online trade (the outbox row of its last change): 0.5 % FAILED after 8 tries. */
const NOTIFICATIONS_SQL = `
INSERT INTO notifications (notify_id, app_id, trade_id, url, trade_status, status, attempts, next_attempt_at,
                           created_at, delivered_at, last_error)
SELECT md5('n' || id), app_id, id, notify_url, CASE WHEN paid_at IS NULL THEN 'TRADE_CLOSED' ELSE 'TRADE_SUCCESS' END,
       CASE WHEN id % 200 = 3 THEN 'FAILED' ELSE 'DELIVERED' END,
       CASE WHEN id % 200 = 3 THEN 8 ELSE 1 END,
       CASE WHEN id % 200 = 3 THEN coalesce(paid_at, closed_at) + interval '25 hours'
            ELSE coalesce(paid_at, closed_at) END,
       coalesce(paid_at, closed_at),
       CASE WHEN id % 200 = 3 THEN NULL ELSE coalesce(paid_at, closed_at) + interval '150 milliseconds' END,
       CASE WHEN id % 200 = 3 THEN 'HTTP 502' END
  FROM trades WHERE id > $1 AND notify_url IS NOT NULL AND status <> 'WAIT_BUYER_PAY'`;

/** The delivery attempts of the notifications of the last 90 days (the default HOSPAY_ATTEMPT_RETENTION). */
const ATTEMPTS_SQL = `
INSERT INTO notify_attempts (notification_id, attempt, started_at, http_status, latency_ms, body_excerpt, error)
SELECT n.id, k, n.created_at + (k - 1) * interval '3 hours', CASE WHEN n.status = 'FAILED' THEN 502 ELSE 200 END,
       20 + n.id % 200, CASE WHEN n.status = 'FAILED' THEN 'Bad Gateway' ELSE 'success' END,
       CASE WHEN n.status = 'FAILED' THEN 'HTTP 502' END
  FROM notifications n CROSS JOIN LATERAL generate_series(1, n.attempts) k
 WHERE n.trade_id > $1 AND n.created_at >= $2`;

/**
 * The channel calls of the last 90 days (the default HOSPAY_CALL_RETENTION): barcode pay; QR precreate and one
 * query; H5 pay; a refund call per refund; redacted request and response excerpts as CallRecorder keeps them.
 */
const CALLS_SQL = `
INSERT INTO channel_calls (app_id, channel_id, operation, out_trade_no, started_at, latency_ms, http_status, outcome,
                           request, response, error)
SELECT t.app_id, t.channel, op, t.out_trade_no, t.created_at + k * interval '2 seconds', 80 + t.id % 400, 200,
       CASE WHEN t.paid_at IS NULL THEN 'paying' ELSE 'paid' END,
       '{"method":"' || op || '","out_trade_no":"' || t.out_trade_no || '","total_amount":"' || t.total_fen ||
         '","auth_code":"28**************00","sign":"***"}',
       '{"code":"10000","msg":"Success","trade_no":"' || coalesce(t.channel_trade_no, '') ||
         '","buyer_logon_id":"pat***@example.cn"}',
       NULL
  FROM trades t
  CROSS JOIN LATERAL unnest(CASE t.kind WHEN 'barcode' THEN ARRAY['pay'] WHEN 'qrcode' THEN ARRAY['precreate', 'query']
                                        ELSE ARRAY['h5pay'] END) WITH ORDINALITY AS o(op, k)
 WHERE t.id > $1 AND t.created_at >= $2 AND t.kind <> 'void'
UNION ALL
SELECT r.app_id, t.channel, 'refund', t.out_trade_no, r.created_at, 120, 200, 'refunded',
       '{"out_request_no":"' || r.out_request_no || '"}', '{"code":"10000"}', NULL
  FROM refunds r JOIN trades t ON t.id = r.trade_id
 WHERE r.trade_id > $1 AND r.created_at >= $2`;

/** A run per app, business day and pay type (Alipay and WeChat reconciled every day). */
const RUNS_SQL = `
INSERT INTO recon_runs (app_id, business_date, pay_type, status, matched, differences, totals, pending, error,
                        started_at, finished_at)
SELECT a, to_char($2::date + d, 'YYYY-MM-DD'), p, 'DONE', 100, 0, '{}', '[]', NULL,
       ($2::date + d + 1)::timestamp AT TIME ZONE 'Asia/Shanghai' + interval '10 hours',
       ($2::date + d + 1)::timestamp AT TIME ZONE 'Asia/Shanghai' + interval '10 hours 20 seconds'
  FROM unnest($1::text[]) a, generate_series(0, $3 - 1) d, unnest(ARRAY['alipay', 'weixin']) p
ON CONFLICT DO NOTHING`;

/** The evidence of the runs of the last 365 days (the default HOSPAY_EVIDENCE_RETENTION): the bill's request. */
const EVIDENCE_SQL = `
INSERT INTO recon_evidence (app_id, business_date, pay_type, source, seq, request, records, raw, fetched_at)
SELECT a, to_char($2::date + d, 'YYYY-MM-DD'), p, 'CHANNEL_BILL', 0, '{"bill_date":"' || ($2::date + d) || '"}', 100,
       NULL, ($2::date + d + 1)::timestamp AT TIME ZONE 'Asia/Shanghai' + interval '10 hours'
  FROM unnest($1::text[]) a, generate_series(greatest(0, $3 - 365), $3 - 1) d, unnest(ARRAY['alipay', 'weixin']) p
ON CONFLICT DO NOTHING`;

/** A difference for 1 in 2000 paid trades, resolved but for 1 in 20 of them. */
const DIFFERENCES_SQL = `
INSERT INTO recon_differences (app_id, business_date, pay_type, diff_key, code, kind, out_trade_no, out_request_no,
                               detail, present, state, resolved_by, resolved_note, resolved_at, created_at, updated_at)
SELECT app_id, to_char(paid_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD'), pay_type, 'P:' || out_trade_no,
       'CHANNEL_ONLY', 'payment', out_trade_no, NULL, '{"platform":null}', true,
       CASE WHEN id % 20 = 0 THEN 'OPEN' ELSE 'RESOLVED' END,
       CASE WHEN id % 20 = 0 THEN NULL ELSE 'finance' END, CASE WHEN id % 20 = 0 THEN NULL ELSE '已核实' END,
       CASE WHEN id % 20 = 0 THEN NULL ELSE paid_at + interval '2 days' END, paid_at + interval '1 day',
       paid_at + interval '1 day'
  FROM trades WHERE id > $1 AND paid_at IS NOT NULL AND pay_type IN ('alipay', 'weixin') AND id % 2000 = 11
ON CONFLICT DO NOTHING`;

const AUDIT_SQL = `
INSERT INTO recon_audit (difference_id, at, actor, action, note)
SELECT id, resolved_at, resolved_by, 'RESOLVE', resolved_note FROM recon_differences
 WHERE state = 'RESOLVED' AND NOT EXISTS (SELECT 1 FROM recon_audit a WHERE a.difference_id = recon_differences.id)`;

const CLAIMS_SQL = `
INSERT INTO job_claims (job, key, owner, claimed_at, finished_at, result)
SELECT 'daily-reconcile', to_char($1::date + d, 'YYYY-MM-DD'), 'reconciler-history',
       ($1::date + d + 1)::timestamp AT TIME ZONE 'Asia/Shanghai' + interval '10 hours',
       ($1::date + d + 1)::timestamp AT TIME ZONE 'Asia/Shanghai' + interval '10 hours 5 minutes',
       '{"open":0,"errors":[],"retry":[]}'
  FROM generate_series(0, $2 - 1) d
ON CONFLICT DO NOTHING`;

async function tableSizes(sql: pg.Client): Promise<HistoryReport['tables']> {
  const r = await sql.query<{ table: string; rows: string; bytes: string }>(`
    SELECT c.relname AS table, c.reltuples::bigint AS rows, pg_total_relation_size(c.oid) AS bytes
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.reltuples > 1000
     ORDER BY pg_total_relation_size(c.oid) DESC`);
  return r.rows.map((x) => ({
    table: x.table,
    rows: Number(x.rows),
    mb: Math.round(Number(x.bytes) / 1024 / 1024),
  }));
}

// ---- EXPLAIN of the hot queries ---------------------------------------------------------------------------------

/** Tables big enough that a sequential scan of them is a finding. */
const BIG_TABLES = new Set([
  'trades',
  'refunds',
  'notifications',
  'notify_attempts',
  'channel_calls',
  'recon_runs',
  'recon_differences',
  'recon_evidence',
  'recon_audit',
  'sim_trades',
]);

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
}

function walk(node: PlanNode, out: { seq: string[]; parts: string[] }): void {
  const rel = node['Relation Name'];
  if (node['Node Type'] === 'Seq Scan' && rel && BIG_TABLES.has(rel)) out.seq.push(rel);
  const idx = node['Index Name'];
  if (out.parts.length < 8) out.parts.push(`${node['Node Type']}${idx ? ` ${idx}` : rel ? ` ${rel}` : ''}`);
  for (const p of node.Plans ?? []) walk(p, out);
}

/**
 * The statements of the store's hot paths, as the repositories send them (parameters inlined with values
 * typical of the filled database), each EXPLAINed (ANALYZE, BUFFERS) in a transaction that is rolled back.
 */
export async function explainHotQueries(sql: pg.Client, appId: string): Promise<HistoryExplain[]> {
  // A history app and a day in the middle of the history, and a trade of it.
  const histApp = 'HIST001';
  const mid = await sql.query<{ day: string; no: string; id: string }>(
    `SELECT to_char(created_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD') AS day, out_trade_no AS no, id
       FROM trades WHERE app_id = $1 AND paid_at IS NOT NULL AND kind = 'qrcode'
      ORDER BY id OFFSET (SELECT count(*) / 2 FROM trades WHERE app_id = $1 AND paid_at IS NOT NULL AND kind = 'qrcode')
      LIMIT 1`,
    [histApp],
  );
  const day = mid.rows[0]?.day ?? shanghaiDate(30);
  const no = mid.rows[0]?.no ?? 'none';
  const tradeId = mid.rows[0]?.id ?? '0';
  const dayStart = `'${day}T00:00:00+08:00'::timestamptz`;
  const dayEnd = `('${day}T00:00:00+08:00'::timestamptz + interval '1 day')`;
  const now = `now()`;
  const today = shanghaiDate(0);
  const todayStart = `'${today}T00:00:00+08:00'::timestamptz`;
  const q: Array<{ name: string; source: string; text: string }> = [
    {
      name: 'query: trade by (app, OutTradeNo)',
      source: 'trades.ts byOutTradeNo',
      text: `SELECT * FROM trades WHERE app_id = '${histApp}' AND out_trade_no = '${no}'`,
    },
    {
      name: 'pay: insert trade ON CONFLICT',
      source: 'trades.ts insertOrGet',
      text: `INSERT INTO trades (trade_no, app_id, out_trade_no, kind, status, category, order_type, total_fen, subject,
               fingerprint, created_at, updated_at, expires_at)
             VALUES ('HPX1', '${appId}', 'XPLAIN1', 'barcode', 'WAIT_BUYER_PAY', 'MZ', 'TREATMENT', 100, 's', 'f',
               ${now}, ${now}, ${now} + interval '5 minutes')
             ON CONFLICT (app_id, out_trade_no) DO NOTHING RETURNING *`,
    },
    {
      name: 'expirer: claim expired unpaid trades',
      source: 'trades.ts claimExpired',
      text: `UPDATE trades SET lease_until = ${now} + interval '1 minute', lease_owner = 'x', job_attempts = job_attempts + 1
             WHERE id IN (SELECT id FROM trades WHERE status = 'WAIT_BUYER_PAY' AND expires_at <= ${now}
               AND (lease_until IS NULL OR lease_until < ${now}) ORDER BY expires_at LIMIT 50 FOR UPDATE SKIP LOCKED)
             RETURNING *`,
    },
    {
      name: 'expirer: insurance reversals',
      source: 'trades.ts claimInsuranceReversals',
      text: `UPDATE trades SET lease_until = ${now}, lease_owner = 'x' WHERE id IN (
               SELECT id FROM trades WHERE insurance_state = 'SETTLED' AND status = 'TRADE_CLOSED'
                 AND (paid_at IS NULL OR cancel_action = 'refund') AND (lease_until IS NULL OR lease_until < ${now})
               ORDER BY id LIMIT 50 FOR UPDATE SKIP LOCKED) RETURNING *`,
    },
    {
      name: 'notifier: claim due notifications',
      source: 'notifications.ts claimStatement',
      text: `UPDATE notifications SET lease_until = ${now}, lease_owner = 'x' WHERE id IN (
               SELECT id FROM notifications WHERE status = 'PENDING' AND next_attempt_at <= ${now}
                 AND (lease_until IS NULL OR lease_until < ${now}) ORDER BY next_attempt_at, id LIMIT 20
               FOR UPDATE SKIP LOCKED) RETURNING *`,
    },
    {
      name: 'medicare: revocations due',
      source: 'medicare.ts claimRevocations',
      text: `SELECT id FROM medicare_revocations WHERE status <> 'DONE' AND next_at <= ${now}
               AND (lease_until IS NULL OR lease_until < ${now}) ORDER BY next_at LIMIT 20`,
    },
    {
      name: 'retention: channel_calls purge batch',
      source: 'retention.ts purgeExpiredRecords',
      text: `DELETE FROM channel_calls WHERE id IN (
               SELECT c.id FROM channel_calls c WHERE c.started_at < ${now} - interval '90 days'
                 AND (c.out_trade_no IS NULL OR (NOT EXISTS (SELECT 1 FROM trades t
                   WHERE t.app_id = c.app_id AND t.out_trade_no = c.out_trade_no AND (t.status = 'WAIT_BUYER_PAY'
                     OR (t.status = 'TRADE_CLOSED' AND t.insurance_state = 'SETTLED')
                     OR EXISTS (SELECT 1 FROM refunds r WHERE r.trade_id = t.id AND r.status = 'PROCESSING')))
                 AND NOT EXISTS (SELECT 1 FROM recon_differences d WHERE d.app_id = c.app_id
                   AND d.out_trade_no = c.out_trade_no AND d.state = 'OPEN')))
               ORDER BY c.id LIMIT 1000 FOR UPDATE OF c SKIP LOCKED) RETURNING id`,
    },
    {
      name: 'retention: notify_attempts purge batch',
      source: 'retention.ts purgeExpiredRecords',
      text: `DELETE FROM notify_attempts WHERE id IN (
               SELECT a.id FROM notify_attempts a WHERE a.started_at < ${now} - interval '90 days'
                 AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.id = a.notification_id AND n.status = 'PENDING')
               ORDER BY a.id LIMIT 1000 FOR UPDATE OF a SKIP LOCKED) RETURNING id`,
    },
    {
      name: 'retention: recon_evidence purge batch',
      source: 'retention.ts purgeExpiredRecords',
      text: `DELETE FROM recon_evidence WHERE id IN (
               SELECT e.id FROM recon_evidence e WHERE e.fetched_at < ${now} - interval '365 days'
                 AND NOT EXISTS (SELECT 1 FROM recon_differences d WHERE d.app_id = e.app_id
                   AND d.business_date = e.business_date AND d.pay_type = e.pay_type AND d.state = 'OPEN')
               ORDER BY e.id LIMIT 1000 FOR UPDATE OF e SKIP LOCKED) RETURNING id`,
    },
    {
      name: 'retention: spent nonces purge batch',
      source: 'retention.ts purgeSpentNonces',
      text: `DELETE FROM gateway_nonces WHERE (app_id, nonce) IN (SELECT n.app_id, n.nonce FROM gateway_nonces n
               WHERE n.expires_at < ${now} ORDER BY n.expires_at LIMIT 1000 FOR UPDATE SKIP LOCKED) RETURNING nonce`,
    },
    {
      name: 'reconcile: the day’s paid trades',
      source: 'reconciliation.ts movements',
      text: `SELECT id, trade_no, out_trade_no, channel_trade_no, status, total_fen, insurance_fen, paid_at, category, kind,
               created_at FROM trades WHERE app_id = '${histApp}' AND pay_type = 'alipay'
               AND paid_at >= ${dayStart} AND paid_at < ${dayEnd}`,
    },
    {
      name: 'reconcile: the day’s unpaid trades',
      source: 'reconciliation.ts movements',
      text: `SELECT id, out_trade_no FROM trades WHERE app_id = '${histApp}' AND pay_type = 'alipay' AND paid_at IS NULL
               AND created_at >= ${dayStart} - interval '1 day' AND created_at < ${dayEnd} AND kind <> 'void'`,
    },
    {
      name: 'reconcile: the day’s finished refunds',
      source: 'reconciliation.ts movements',
      text: `SELECT r.trade_id, r.out_request_no, r.amount_fen FROM refunds r JOIN trades t ON t.id = r.trade_id
               WHERE r.app_id = '${histApp}' AND t.pay_type = 'alipay'
               AND r.finished_at >= ${dayStart} AND r.finished_at < ${dayEnd}`,
    },
    {
      name: 'reconcile: the day’s processing refunds',
      source: 'reconciliation.ts movements',
      text: `SELECT r.trade_id FROM refunds r JOIN trades t ON t.id = r.trade_id
               WHERE r.app_id = '${histApp}' AND t.pay_type = 'alipay' AND r.finished_at IS NULL
               AND r.status = 'PROCESSING' AND r.created_at >= ${dayStart} - interval '1 day' AND r.created_at < ${dayEnd}`,
    },
    {
      name: 'reconcile: previous pending pool',
      source: 'reconciliation.ts previousPending',
      text: `SELECT pending FROM recon_runs WHERE app_id = '${histApp}' AND pay_type = 'alipay'
               AND business_date < '${day}' ORDER BY business_date DESC LIMIT 1`,
    },
    {
      name: 'reconcile: the day’s differences (all apps)',
      source: 'reconciliation.ts differences',
      text: `SELECT * FROM recon_differences WHERE business_date = '${day}' ORDER BY id`,
    },
    {
      name: 'reconcile: open counts of a day (all apps)',
      source: 'reconciliation.ts openCounts',
      text: `SELECT app_id, pay_type, count(*) FROM recon_differences WHERE business_date = '${day}'
               AND present AND state = 'OPEN' GROUP BY app_id, pay_type`,
    },
    {
      name: 'reconcile: the runs of a day (all apps)',
      source: 'reconciliation.ts runs',
      text: `SELECT * FROM recon_runs WHERE business_date = '${day}' ORDER BY app_id, pay_type`,
    },
    {
      name: 'report: day aggregate, one app',
      source: 'reports.ts dayAggregate',
      text: dayAggregateSql(dayStart, dayEnd, histApp),
    },
    {
      name: 'report: day aggregate, all apps',
      source: 'reports.ts dayAggregate',
      text: dayAggregateSql(dayStart, dayEnd, null),
    },
    {
      name: 'desk: one hospital, today, newest first',
      source: 'desk.ts search',
      text: `SELECT id, out_trade_no FROM trades t WHERE t.app_id IN ('${histApp}') AND t.created_at >= ${todayStart}
               AND t.created_at < ${todayStart} + interval '1 day' ORDER BY t.created_at DESC, t.id DESC LIMIT 50`,
    },
    {
      name: 'desk: one hospital, a past day, newest first',
      source: 'desk.ts search',
      text: `SELECT id, out_trade_no FROM trades t WHERE t.app_id IN ('${histApp}') AND t.created_at >= ${dayStart}
               AND t.created_at < ${dayEnd} ORDER BY t.created_at DESC, t.id DESC LIMIT 50`,
    },
    {
      name: 'desk: every hospital, a past day, status filter',
      source: 'desk.ts search',
      text: `SELECT id, out_trade_no FROM trades t WHERE t.created_at >= ${dayStart} AND t.created_at < ${dayEnd}
               AND t.status = 'TRADE_CLOSED' AND t.kind <> 'void' ORDER BY t.created_at DESC, t.id DESC LIMIT 50`,
    },
    {
      name: 'desk: OutTradeNo prefix, 31 days, every hospital',
      source: 'desk.ts search',
      text: `SELECT id FROM trades t WHERE t.out_trade_no LIKE '${no.slice(0, 10)}%' ESCAPE '\\'
               AND t.created_at >= ${dayStart} - interval '30 days' AND t.created_at < ${dayEnd}
               ORDER BY t.created_at DESC, t.id DESC LIMIT 50`,
    },
    {
      name: 'desk: patient name, 31 days',
      source: 'desk.ts search',
      text: `SELECT id FROM trades t WHERE t.app_id IN ('${histApp}') AND t.patient_name = '患者1234'
               AND t.created_at >= ${dayStart} - interval '30 days' AND t.created_at < ${dayEnd}
               ORDER BY t.created_at DESC, t.id DESC LIMIT 50`,
    },
    {
      name: 'desk: a trade’s channel calls',
      source: 'desk.ts tradeRecords',
      text: `SELECT id FROM channel_calls WHERE app_id = '${histApp}' AND out_trade_no = '${no}' ORDER BY id DESC LIMIT 501`,
    },
    {
      name: 'desk: a trade’s notifications',
      source: 'desk.ts tradeRecords',
      text: `SELECT * FROM notifications WHERE trade_id = ${tradeId} ORDER BY id`,
    },
    {
      name: 'desk: a trade’s refunds',
      source: 'desk.ts tradeRecords / refunds.ts',
      text: `SELECT * FROM refunds WHERE trade_id = ${tradeId} ORDER BY id`,
    },
    {
      name: 'admin: failed notifications, newest first',
      source: 'notifications.ts list',
      text: `SELECT n.id FROM notifications n JOIN trades t ON t.id = n.trade_id WHERE n.status = 'FAILED'
               ORDER BY n.id DESC LIMIT 50`,
    },
    {
      name: 'admin: one app’s channel calls, newest first',
      source: 'channel-calls.ts list',
      text: `SELECT id FROM channel_calls WHERE app_id = '${histApp}' ORDER BY id DESC LIMIT 50`,
    },
  ];
  const out: HistoryExplain[] = [];
  for (const x of q) {
    await sql.query('BEGIN');
    try {
      const r = await sql.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode; 'Execution Time': number }> }>(
        `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${x.text}`,
      );
      const top = r.rows[0]?.['QUERY PLAN'][0];
      if (!top) continue;
      const w = { seq: [] as string[], parts: [] as string[] };
      walk(top.Plan, w);
      out.push({
        name: x.name,
        source: x.source,
        ms: r2(top['Execution Time']),
        buffers: (top.Plan['Shared Hit Blocks'] ?? 0) + (top.Plan['Shared Read Blocks'] ?? 0),
        rows: top.Plan['Actual Rows'] ?? 0,
        seqScans: [...new Set(w.seq)],
        plan: w.parts.join(' > '),
      });
    } finally {
      await sql.query('ROLLBACK');
    }
  }
  return out;
}

/** reports.ts dayAggregate's statement (its SELECT list shortened to what decides the plan). */
function dayAggregateSql(from: string, to: string, appId: string | null): string {
  const appT = appId ? `AND t.app_id = '${appId}'` : 'AND t.app_id IN (SELECT id FROM apps)';
  const appR = appId ? `AND r.app_id = '${appId}'` : 'AND r.app_id IN (SELECT id FROM apps)';
  return `
    WITH m AS (
      SELECT coalesce(t.pay_type, '') AS pay_type, t.category, 1 AS is_payment, t.total_fen - t.insurance_fen AS cash_fen
        FROM trades t
       WHERE t.paid_at >= ${from} AND t.paid_at < ${to} AND t.kind <> 'void'
         AND t.status IN ('TRADE_SUCCESS', 'TRADE_FINISHED', 'TRADE_CLOSED') ${appT}
      UNION ALL
      SELECT coalesce(t.pay_type, ''), t.category, 0, r.amount_fen
        FROM refunds r JOIN trades t ON t.id = r.trade_id
       WHERE r.status = 'SUCCESS'
         AND coalesce(r.finished_at, r.updated_at) >= ${from} AND coalesce(r.finished_at, r.updated_at) < ${to} ${appR}
      UNION ALL
      SELECT x.pay_type, x.category, 0, x.reversed_fen FROM (
        SELECT coalesce(t.pay_type, '') AS pay_type, t.category,
               t.insurance_fen - coalesce((SELECT sum(i.amount_fen) FROM refunds i
                 WHERE i.trade_id = t.id AND i.kind = 'insurance' AND i.status = 'SUCCESS'), 0) AS reversed_fen
          FROM trades t
         WHERE t.insurance_state = 'REVERSED' AND t.paid_at IS NOT NULL
           AND t.closed_at >= ${from} AND t.closed_at < ${to} AND t.kind <> 'void' ${appT}) x
       WHERE x.reversed_fen > 0)
    SELECT pay_type, category, count(*), sum(cash_fen) FROM m GROUP BY GROUPING SETS ((), (pay_type), (category))`;
}

// ---- printing -------------------------------------------------------------------------------------------------------

export function printHistory(r: HistoryReport): string {
  const lines: string[] = [];
  if (r.skipped) return `history test: skipped (${r.skipped})`;
  lines.push(
    `history test: ${r.rows.toLocaleString('en')} historical trades of ${r.apps} hospitals over ${r.days} days ` +
      `(filled in ${r.fillSeconds} s, VACUUM ANALYZE ${r.analyzeSeconds} s); ${r.settings.connections} connections, ` +
      `${r.settings.duration} s per load, ${r.settings.rounds} rounds alternating the empty and filled databases ` +
      `(medians); migrations up to ${r.lastMigration || '?'}`,
  );
  if (r.crashed) lines.push(`  FAILED: ${r.crashed.slice(0, 2000)}`);
  if (r.tables.length)
    lines.push(
      `  tables: ${r.tables.map((t) => `${t.table} ${t.rows.toLocaleString('en')} rows ${t.mb} MB`).join('; ')}`,
    );
  const e = r.empty;
  const f = r.filled;
  if (e && f && r.ratios) {
    const pct = (x: number) => `${Math.round(x * 100)} %`;
    const cpu = (l: HistoryLoad) => `${l.cpuMsPerReq.toFixed(2)}+${l.dbCpuMsPerReq.toFixed(2)}`;
    const ok = (good: boolean) => (good ? 'within 10 %' : 'NOT within 10 %');
    lines.push(
      `  ${'measure'.padEnd(34)} ${'empty'.padStart(12)} ${'filled'.padStart(12)} ${'filled÷empty'.padStart(13)}`,
    );
    const row = (label: string, a: string, b: string, x: number, good: boolean) =>
      lines.push(
        `  ${label.padEnd(34)} ${a.padStart(12)} ${b.padStart(12)} ${pct(x).padStart(13)}  ${ok(good)}`,
      );
    lines.push(
      `  (trades in the database: ${e.trades.toLocaleString('en')} → ${f.trades.toLocaleString('en')})`,
    );
    row(
      'query p50 (ms)',
      String(e.query.p50),
      String(f.query.p50),
      r.ratios.queryP50,
      r.ratios.queryP50 <= 1.1,
    );
    row(
      'query cpu ms/req (server+db)',
      cpu(e.query),
      cpu(f.query),
      r.ratios.queryCpu,
      r.ratios.queryCpu <= 1.1,
    );
    row(
      'barcode pay req/s',
      String(e.barcode.rps),
      String(f.barcode.rps),
      r.ratios.barcodeRps,
      r.ratios.barcodeRps >= 0.9,
    );
    row(
      'barcode cpu ms/req (server+db)',
      cpu(e.barcode),
      cpu(f.barcode),
      r.ratios.barcodeCpu,
      r.ratios.barcodeCpu <= 1.1,
    );
    row(
      `reconcile app-day, no bill (ms)`,
      String(e.reconcile.platformMs),
      String(f.reconcile.platformMs),
      r.ratios.reconcile,
      r.ratios.reconcile <= 1.1,
    );
    lines.push(
      `  ${'reconcile app-day, whole (ms, best)'.padEnd(34)} ${String(e.reconcile.bestMs).padStart(12)} ` +
        `${String(f.reconcile.bestMs).padStart(12)} ${pct(ratio(f.reconcile.bestMs, e.reconcile.bestMs)).padStart(13)}` +
        `  (cpu ${e.reconcile.cpuMs} → ${f.reconcile.cpuMs} ms; the bill is the simulator's books)`,
    );
    const stages = (x: HistoryReconcile) =>
      `${x.stagesMs.platform}/${x.stagesMs.match}/${x.stagesMs.save}/${x.stagesMs.other}`;
    lines.push(
      `  (reconciliation without the bill, ms: platform's reads/match/save/other ${stages(e.reconcile)} → ` +
        `${stages(f.reconcile)})`,
    );
    const each = (ps: HistoryPhase[], pick: (p: HistoryPhase) => string) => ps.map(pick).join(', ');
    lines.push(
      `  (each round, empty → filled: barcode req/s ${each(r.rounds.empty, (p) => String(p.barcode.rps))} → ` +
        `${each(r.rounds.filled, (p) => String(p.barcode.rps))}; barcode cpu ` +
        `${each(r.rounds.empty, (p) => cpu(p.barcode))} → ${each(r.rounds.filled, (p) => cpu(p.barcode))}; ` +
        `reconcile no bill ${each(r.rounds.empty, (p) => String(p.reconcile.platformMs))} → ` +
        `${each(r.rounds.filled, (p) => String(p.reconcile.platformMs))} ms; checkpoints during barcode pay ` +
        `${each(r.rounds.empty, (p) => String(p.barcode.io?.checkpoints ?? '?'))} → ` +
        `${each(r.rounds.filled, (p) => String(p.barcode.io?.checkpoints ?? '?'))})`,
    );
    lines.push(
      `  (query p99 ${e.query.p99} → ${f.query.p99} ms, ${e.query.rps} → ${f.query.rps} req/s; barcode p50 ` +
        `${e.barcode.p50} → ${f.barcode.p50} ms; failures ${e.query.failures + e.barcode.failures} → ` +
        `${f.query.failures + f.barcode.failures}; reconciled ${e.reconcile.payments} payments + ` +
        `${e.reconcile.refunds} refunds: runs ${e.reconcile.runsMs.join('/')} → ${f.reconcile.runsMs.join('/')} ms)`,
    );
  }
  if (r.explains.length) {
    lines.push(`  hot queries on the filled database (EXPLAIN ANALYZE): ms, buffers, rows, plan`);
    for (const x of r.explains)
      lines.push(
        `    ${x.name.padEnd(48)} ${x.ms.toFixed(2).padStart(9)} ${String(x.buffers).padStart(7)} ` +
          `${String(x.rows).padStart(6)}  ${x.seqScans.length ? `SEQ SCAN ${x.seqScans.join(',')}: ` : ''}${x.plan}`,
      );
  }
  return lines.join('\n');
}

// ---- alone: npx tsx bench/history.ts --rows=2000000 ------------------------------------------------------------------

async function main(): Promise<void> {
  const { args, num } = benchFlags(process.argv.slice(2));
  const log = (s: string) => console.log(s);
  if (args['explain-only']) {
    const c = new pg.Client({ connectionString: args['explain-only'] });
    await c.connect();
    try {
      const app = await c.query<{ id: string }>(`SELECT id FROM apps WHERE hospital_id = 'HBENCH' LIMIT 1`);
      const report: HistoryReport = {
        skipped: null,
        rows: 0,
        apps: 0,
        days: 0,
        settings: { duration: 0, warmup: 0, connections: 0, reconTrades: 0, rounds: 0 },
        rounds: { empty: [], filled: [] },
        fillSeconds: 0,
        analyzeSeconds: 0,
        tables: await tableSizes(c),
        empty: null,
        filled: null,
        ratios: null,
        explains: await explainHotQueries(c, app.rows[0]?.id ?? 'none'),
        lastMigration: await lastMigration(c),
        crashed: null,
      };
      console.log(printHistory(report));
    } finally {
      await c.end();
    }
    return;
  }
  const given = args['filled'];
  const db: BenchDb = given
    ? {
        kind: 'postgres',
        url: given,
        dataDir: fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-history-')),
        refDataDir: fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-history-ref-')),
        drop: async () => undefined,
      }
    : await createDb('postgres');
  const keep = args['keep'] === 'true' || Boolean(given);
  try {
    const report = await historyBench({
      db,
      prefilled: Boolean(given),
      rounds: num('rounds', 4),
      rows: num('rows', 2_000_000),
      apps: num('apps', 20),
      days: num('days', 730),
      duration: num('duration', 8),
      warmup: num('warmup', 2),
      connections: num('connections', 50),
      reconTrades: num('recon-trades', 5000),
      log,
    });
    console.log(printHistory(report));
    if (args['out']) {
      fs.mkdirSync(args['out'], { recursive: true });
      const file = path.join(args['out'], `${new Date().toISOString().slice(0, 10)}-history.json`);
      fs.writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
      console.log(`written to ${file}`);
    }
    if (report.crashed) process.exitCode = 1;
  } finally {
    if (keep) console.log(`database kept: ${db.url ?? ''}`);
    else await db.drop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
