/**
 * Load benchmark of hospay against the plain reference (docs/performance.md, issue 16). Not part of `npm test`.
 *
 * For each database (PostgreSQL, then the embedded one), hospay (`node dist/cli/index.js serve --workers 1`) and
 * the references run in their own processes and each path is loaded with autocannon on loopback (50
 * connections), the servers taking turns round by round:
 *
 *   - the PLAIN reference, the headline (PostgreSQL only): bench/plain/reference-server.js, vendored verbatim
 *     from ../shared/perf (Fastify, fast-xml-parser, node:crypto, one pg pool, its own database with 200,000
 *     orders); it does each path's essential work the plainest fast way, so the ratios show hospay's overheads;
 *   - the MIRROR reference (--mirror; on by default only on the embedded database, where the plain one cannot
 *     run): bench/reference-server.ts, which copies hospay's own request handling.
 *
 *   path      hospay                                             plain reference
 *   query     FWC_IF_Barcode_Pay_Query of paid trades             POST /xml-read (one indexed read)
 *   gateway   lc.trade.h5.pay, bodies signed RSA2 before the run  POST /gw-cte (RSA2 verify, one write, sign)
 *   barcode   FWC_IF_Barcode_Pay through the simulator            POST /gw-cte
 *   refund    FWC_IF_Barcode_Pay_Refund, 0.01 at a time            POST /gw-cte
 *   notify    drain of a backlog of N notifications to a local     plainDrain (bench/plain/drainer.ts): the
 *             receiver, then trades paid at a steady rate          same count of signed POSTs, the plainest way
 *   floor     (context lines, plain only) POST /xml (parse and answer) and GET /hello (the HTTP stack)
 *
 * For every path and server: req/s, p50, p99, errors, and against the plain reference the req/s ratio, p99 ratio
 * and CPU ratio, with CPU ms per request of the server (all its processes) and of the PostgreSQL backends, and the
 * CPU the load generator (this process) used meanwhile; each target marked met / not met. Then a soak of barcode
 * pay on hospay (RSS every 5 s: flat or not), worker scaling (`serve --workers N`: query, h5 pay, barcode pay),
 * notification delivery, PostgreSQL round trips per request counted on the wire, PostgreSQL's own ceiling
 * (pgbench) and the history test (bench/history.ts: the same figures with millions of rows of history). Writes
 * bench/results/<date>-<db>.json.
 *
 *   npm run bench                                     everything: PostgreSQL, then embedded
 *   npm run bench -- --db=postgres --paths=barcode,gateway --duration=20 --connections=50
 *   npm run bench -- --db=postgres --paths=barcode --soak=0 --ref=false --cpu-prof   (profile one path)
 *   npx tsx bench/run.ts --db=postgres --duration=5 --rounds=1 --soak=0 --history=0 --out=/tmp/x   (short)
 *
 * Flags: --duration=10 (s per path and server), --rounds=2 (alternating servers), --warmup=2, --connections=50,
 * --db=postgres,embedded, --paths=barcode,query,refund,gateway,notify, --floor=true (/xml and /hello of the
 * plain reference), --soak=60 (s; 0 = none), --soak-db=postgres,embedded, --notify=1000 (backlog),
 * --notify-rate=20 (/s), --notify-live=10 (s), --notify-rounds=3 (hospay's drain and the plain drainer's, alternating), --gateway-rate=6000 (signed bodies made per second of load, for
 * lc.trade.h5.pay and /gw-cte alike), --plain-rows=200000 (pay_order rows of the plain reference),
 * --mirror=true|false (default: false on PostgreSQL, true on embedded), --ref=false (hospay only: neither
 * reference), --workers=1,2 (worker scaling; default 1,2 on PostgreSQL, none on embedded; 0 = skip),
 * --pgbench=true|false (default: true on PostgreSQL when pgbench is found), --pgbench-seconds=10,
 * --pgbench-clients=16, --pgbench-scale=10, --history=2000000 (rows of history; default 2,000,000 on
 * PostgreSQL, 0 = skip, 0 on embedded), --round-trips=false (skip counting them), --pool=10 (PostgreSQL pool of
 * hospay and of both references), --cpu-prof (V8 profile of hospay, summarised), --out=bench/results.
 * The defaults of --workers, --pgbench and --history hold for a whole run: a run given --paths (a focused
 * measurement) leaves those three sections out unless their flag is given.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as prettier from 'prettier';
import {
  benchFlags,
  APP_PUBLIC_PEM,
  WorkersUnsupported,
  startPgCounter,
  backendsCpu,
  backendsDelta,
  merge,
  createDb,
  createPlainDb,
  findPgbench,
  load,
  memoryMb,
  percentile,
  pgbenchCeiling,
  plainKeys,
  plainOrderNo,
  plainXml,
  pool,
  postJson,
  postXml,
  signedGwBodies,
  signedH5Bodies,
  startHospay,
  startPlain,
  startReceiver,
  startReference,
  treeCpu,
  treeDelta,
  treeMemoryMb,
  uniq,
  xml,
  type BenchDb,
  type LoadResult,
  type PgbenchReport,
  type PlainDb,
  type PlainKeys,
  type Receiver,
  type Server,
} from './harness.js';
import { printProfile, summariseProfile, type ProfileSummary } from './profile.js';
// Types only: bench/history.ts and bench/plain/drainer.ts are loaded when their section runs (the history test
// brings hospay's own modules into this process, which the load generator does not need before).
import type { HistoryReport } from './history.js';
import type { PlainDrainResult } from './plain/drainer.js';

const { args, num, list, flag } = benchFlags(process.argv.slice(2));

const ALL_PATHS = ['barcode', 'query', 'refund', 'gateway', 'notify'] as const;
type PathName = (typeof ALL_PATHS)[number];
const LABEL: Record<PathName, string> = {
  barcode: 'barcode pay',
  query: 'query',
  refund: 'refund 0.01',
  gateway: 'lc.trade.h5.pay',
  notify: 'notify delivery',
};
/** The plain reference's endpoint each path is compared with, and the req/s target (hospay ÷ plain). */
const PLAIN: Record<PathName, { endpoint: string; target: number }> = {
  query: { endpoint: '/xml-read', target: 0.8 },
  gateway: { endpoint: '/gw-cte', target: 0.8 },
  barcode: { endpoint: '/gw-cte', target: 0.6 },
  refund: { endpoint: '/gw-cte', target: 0.6 },
  notify: { endpoint: 'plainDrain', target: 0.8 },
};
/** hospay's own process's CPU per request ÷ the plain reference's, and p99 ÷ p99: at most this. */
const CPU_TARGET = 1.5;
const P99_TARGET = 1.5;

const duration = num('duration', 10);
const rounds = Math.max(1, Math.round(num('rounds', 2)));
const warmup = num('warmup', 2);
const connections = num('connections', 50);
const dbs = list('db', 'postgres,embedded') as Array<'postgres' | 'embedded'>;
const paths = list('paths', ALL_PATHS.join(',')) as PathName[];
const soak = num('soak', 60);
const soakDbs = list('soak-db', 'postgres,embedded');
const notifyN = num('notify', 1000);
const notifyRate = num('notify-rate', 20);
const notifyLive = num('notify-live', 10);
const notifyRounds = Math.max(1, num('notify-rounds', 3));
const gatewayRate = num('gateway-rate', 6000);
const plainRows = Math.max(1, Math.round(num('plain-rows', 200_000)));
const withRef = args['ref'] !== 'false';
const withFloor = flag('floor', true);
const cpuProf = args['cpu-prof'] === 'true';
const roundTripProbe = args['round-trips'] !== 'false';
const pgbenchBin = findPgbench();
const pgbenchSeconds = num('pgbench-seconds', 10);
const pgbenchClients = Math.max(1, Math.round(num('pgbench-clients', 16)));
const pgbenchScale = Math.max(1, Math.round(num('pgbench-scale', 10)));
const outDir = args['out'] ?? 'bench/results';
// --pool=N: the database pool of hospay (HOSPAY_DB_POOL, default 10) and of both references (POOL, REF_POOL).
if (args['pool']) {
  process.env['HOSPAY_DB_POOL'] = args['pool'];
  process.env['REF_POOL'] = args['pool'];
}
for (const d of dbs) if (d !== 'postgres' && d !== 'embedded') throw new Error(`--db: unknown ${d}`);
for (const p of paths) if (!ALL_PATHS.includes(p)) throw new Error(`--paths: unknown ${p}`);

/**
 * What runs on one database (some defaults differ between PostgreSQL and the embedded database). The long
 * extra sections (worker scaling, pgbench, history) are on by default in a whole run; a run given --paths is a
 * focused measurement, and runs them only when asked for by their own flag.
 */
function settingsFor(kind: 'postgres' | 'embedded') {
  const pgOnly = kind === 'postgres';
  const whole = args['paths'] === undefined;
  const workers = list('workers', pgOnly && whole ? '1,2' : '0')
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
  return {
    plain: withRef && pgOnly,
    mirror: withRef && flag('mirror', !pgOnly),
    workers: [...new Set(workers)].sort((a, b) => a - b),
    pgbench: pgOnly && flag('pgbench', whole && pgbenchBin !== null) && pgbenchBin !== null,
    history: Math.round(num('history', pgOnly && whole ? 2_000_000 : 0)),
  };
}

/** hospay's notifier settings (defaults), given to the mirror reference's notifier too. */
const NOTIFY_INTERVAL_MS = 1000;
const NOTIFY_BATCH = 20;

// ---- what a run reports ---------------------------------------------------------------------------------------

interface Measured extends Omit<LoadResult, 'latencies'> {
  /** What was loaded: the path's own request, or the plain reference's endpoint. */
  endpoint: string;
  /** VmHWM of the server's processes after this path (their peaks so far), and VmRSS then. */
  peakMb: number;
  rssMb: number;
  /**
   * CPU time of the server per request (ms): all its processes (`serve --workers N`: the primary and its
   * workers); and of the PostgreSQL backends of its database (null: embedded).
   */
  cpuMsPerReq: number;
  dbCpuMsPerReq: number | null;
  /** The server's CPU use during the load, in cores (1 = one core busy all the time). */
  serverCores: number;
  /** CPU of the load generator (this process: autocannon) per request and in cores, during the same load. */
  loadgenCpuMsPerReq: number;
  loadgenCores: number;
}

/** hospay ÷ a reference: req/s (higher is better), p99 and CPU per request (lower is better). */
interface Ratios {
  rps: number;
  p99: number;
  /** The server process(es) only. */
  cpuPerReq: number;
  /** The PostgreSQL backends (null: embedded). */
  dbCpuPerReq: number | null;
}

interface Verdict {
  target: number;
  value: number;
  met: boolean;
}

/** The issue's targets against the plain reference: req/s ratio ≥ target, CPU and p99 ratios ≤ 1.5. */
interface Targets {
  rps: Verdict;
  cpu: Verdict;
  p99: Verdict | null;
}

interface PathReport {
  path: PathName;
  label: string;
  hospay: Measured;
  plain: Measured | null;
  mirror: Measured | null;
  /** hospay ÷ the plain reference (the headline). */
  ratio: Ratios | null;
  targets: Targets | null;
  /** hospay ÷ the mirror reference. */
  mirrorRatio: Ratios | null;
}

interface SoakReport {
  seconds: number;
  connections: number;
  rps: number;
  p99: number;
  errors: number;
  appFail: number;
  samples: Array<{ t: number; rssMb: number }>;
  firstMb: number;
  at10Mb: number;
  lastMb: number;
  maxMb: number;
  peakMb: number;
  /** The issue's rule of thumb: the last sample ≤ 1.2 × the sample at 10 s (fooled by the GC's saw-tooth). */
  lastVsAt10: boolean;
  /** Median and highest of the 1-s readings of the first 20 s and of the last 20 s. */
  earlyMedianMb: number;
  lateMedianMb: number;
  earlyMaxMb: number;
  lateMaxMb: number;
  /** Least-squares slope of the 1-s readings, MB per minute. */
  slopeMbPerMin: number;
  /** The verdict: median of the last 20 s ≤ 1.2 × median of the first 20 s. */
  flat: boolean;
}

interface NotifySide {
  backlog: number;
  delivered: number;
  /** From the first to the last delivery of the backlog. */
  drainSeconds: number;
  perSecond: number;
  /** From the server (or the reference's notifier) being ready to the first delivery. */
  firstAfterMs: number;
  /** How long the backlog's notifications waited once delivery could start (from ready to arrival). */
  drainWait: { p50: number; p99: number };
  /** CPU of the server (all its processes) and of the PostgreSQL backends per notification of the backlog. */
  cpuMsPerNotification: number;
  dbCpuMsPerNotification: number | null;
  live: { sent: number; delivered: number; rate: number; p50: number; p99: number; max: number };
  duplicates: number;
  peakMb: number;
}

interface NotifyReport {
  intervalMs: number;
  batch: number;
  hospay: NotifySide;
  plain: PlainDrainResult | null;
  /** Why there is no plain figure (no drainer yet, or it failed). */
  plainNote: string | null;
  ratio: { perSecond: number; cpuPerNotification: number } | null;
  targets: { perSecond: Verdict; cpu: Verdict } | null;
  mirror: NotifySide | null;
  mirrorRatio: { perSecond: number; p99: number } | null;
  /**
   * Each round's figures (hospay's drain and the plain drainer's, in alternating order: H P, P H, …). `hospay`
   * and `plain` above are the medians of the rounds (the round of median notifications/s, with the medians of
   * the CPU figures; the live latency is the first round's).
   */
  rounds: Array<{
    hospay: number;
    plain: number | null;
    hospayCpu: number;
    plainCpu: number | null;
    ratio: number | null;
  }>;
}

/** One worker count of the scaling section: null figures when the server could not be started so. */
interface WorkersRun {
  workers: number;
  measured: Measured | null;
  /** hospay's req/s with N workers ÷ with 1 worker. */
  scaling: number | null;
}

interface WorkersReport {
  counts: number[];
  /** Why a count is missing (serve refused --workers, …), per count. */
  notes: Record<string, string>;
  paths: Array<{ path: PathName; label: string; runs: WorkersRun[] }>;
}

interface DbReport {
  db: string;
  date: string;
  meta: Record<string, unknown>;
  paths: PathReport[];
  /** The plain reference's /xml and /hello: the door's and the HTTP stack's floor (context). */
  floor: Measured[];
  notify: NotifyReport | null;
  soak: SoakReport | null;
  workers: WorkersReport | null;
  pgbench: PgbenchReport | null;
  /** bench/history.ts's report, or why it did not run. */
  history: HistoryReport | { skipped: string } | null;
  hospayPeakMb: number;
  plainPeakMb: number | null;
  mirrorPeakMb: number | null;
  /** PostgreSQL round trips and explicit transactions per request (PostgreSQL runs only). */
  roundTrips: RoundTrips[] | null;
  crashed: string | null;
  profile: ProfileSummary | null;
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const ratio = (a: number, b: number) => (b > 0 ? r2(a / b) : 0);

function ratios(h: Measured, r: Measured): Ratios {
  return {
    rps: ratio(h.rps, r.rps),
    p99: ratio(h.p99, r.p99),
    cpuPerReq: ratio(h.cpuMsPerReq, r.cpuMsPerReq),
    dbCpuPerReq:
      h.dbCpuMsPerReq !== null && r.dbCpuMsPerReq !== null ? ratio(h.dbCpuMsPerReq, r.dbCpuMsPerReq) : null,
  };
}

const atLeast = (value: number, target: number): Verdict => ({ target, value, met: value >= target });
const atMost = (value: number, target: number): Verdict => ({
  target,
  value,
  met: value > 0 && value <= target,
});

function gitMeta(): Record<string, unknown> {
  const git = (...a: string[]) => {
    try {
      return execFileSync('git', a, { encoding: 'utf8' }).trimEnd();
    } catch {
      return '';
    }
  };
  return {
    commit: git('rev-parse', '--short', 'HEAD'),
    uncommittedSrc: git('status', '--porcelain', 'src')
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3)),
  };
}

// ---- the servers and their requests ---------------------------------------------------------------------------

const PAY_FIELDS = {
  AuthCode: '280000000000000000', // an Alipay code the simulator pays at once
  Caption: '门诊缴费',
  PatientName: '张三',
  InhospitalNo: '0001',
  OrderType: 'TREATMENT',
};
const offlineOk = (status: number, body: string) =>
  status === 200 && body.includes('<IsSuccess>1</IsSuccess>');
const gatewayOk = (status: number, body: string) => status === 200 && body.includes('"code":"10000"');
const plainReadOk = (status: number, body: string) =>
  status === 200 && body.includes('<status>TRADE_SUCCESS</status>');
const plainGwOk = (status: number, body: string) =>
  status === 200 && body.includes('<return_code>SUCCESS</return_code>');

type Kind = 'hospay' | 'plain' | 'mirror';

interface Target {
  kind: Kind;
  /** Shown in the tables: hospay, hospay ×2 (workers), plain, mirror. */
  name: string;
  server: Server;
  /** The database whose PostgreSQL backends' CPU is this server's (null: embedded). */
  dbUrl: string | null;
  /** hospay and the mirror: the offline door's and the gateway's URLs. */
  offline: (name: string) => string;
  gateway: string;
}

function hospayTarget(s: Server, db: BenchDb, name = 'hospay'): Target {
  return {
    kind: 'hospay',
    name,
    server: s,
    dbUrl: db.url,
    offline: (n) => `${s.base}/offline/${n}`,
    gateway: `${s.base}/gateway`,
  };
}

function mirrorTarget(s: Server, db: BenchDb): Target {
  return {
    kind: 'mirror',
    name: 'mirror',
    server: s,
    dbUrl: db.url,
    offline: (n) => `${s.base}/ref/offline/${n}`,
    gateway: `${s.base}/ref/gateway`,
  };
}

function plainTarget(s: Server, pdb: PlainDb): Target {
  return { kind: 'plain', name: 'plain', server: s, dbUrl: pdb.url, offline: () => '', gateway: '' };
}

type Paid = Array<{ no: string; tradeNo: string }>;

async function paidTrades(t: Target, token: string, n: number): Promise<Paid> {
  return pool(Array.from({ length: n }), 10, async () => {
    const no = uniq('ZY');
    const text = await postXml(t.offline('FWC_IF_Barcode_Pay'), {
      AccessToken: token,
      OutTradeNo: no,
      ...PAY_FIELDS,
      TotalAmount: '99999.00',
    });
    const tradeNo = /<TradeNo>(\d+)<\/TradeNo>/.exec(text)?.[1];
    if (!tradeNo) throw new Error(`${t.name}: a trade for query/refund was not paid:\n${text.slice(0, 600)}`);
    return { no, tradeNo };
  });
}

type LoadOptions = {
  endpoint: string;
  url: string;
  method?: 'GET' | 'POST';
  contentType: string;
  body: () => string | null;
  ok: (status: number, body: string) => boolean;
};

/** What one target is given for one path: its paid trades, its pre-signed bodies. */
interface Inputs {
  token: string;
  trades: Paid;
  /** lc.trade.h5.pay forms (hospay, mirror). */
  h5: string[];
  /** /gw-cte bodies (plain). */
  gw: string[];
  /** pay_order rows of the plain reference. */
  rows: number;
}

/** Hands out pre-made bodies one by one; null when they ran out (the load stops and says so). */
const handOut = (bodies: string[]) => {
  let g = 0;
  return () => (g < bodies.length ? (bodies[g++] ?? null) : null);
};

/** The requests of one path against one target: each body made (or handed out) when autocannon asks for it. */
function optionsFor(p: PathName, t: Target, inp: Inputs): LoadOptions {
  if (t.kind === 'plain') {
    const base = t.server.base;
    if (p === 'query')
      return {
        endpoint: 'POST /xml-read',
        url: `${base}/xml-read`,
        contentType: 'application/xml',
        // Any of the rows, at random (all of them fit in PostgreSQL's cache, as hospay's 500 trades do).
        body: () => plainXml({ out_trade_no: plainOrderNo(1 + Math.floor(Math.random() * inp.rows)) }),
        ok: plainReadOk,
      };
    return {
      endpoint: 'POST /gw-cte',
      url: `${base}/gw-cte`,
      contentType: 'application/xml',
      body: handOut(inp.gw),
      ok: plainGwOk,
    };
  }
  let i = 0;
  const next = () => inp.trades[i++ % inp.trades.length] ?? { no: '', tradeNo: '' };
  switch (p) {
    case 'barcode':
      return {
        endpoint: 'FWC_IF_Barcode_Pay',
        url: t.offline('FWC_IF_Barcode_Pay'),
        contentType: 'text/xml',
        body: () =>
          xml({ AccessToken: inp.token, OutTradeNo: uniq('MZ'), ...PAY_FIELDS, TotalAmount: '88.88' }),
        ok: offlineOk,
      };
    case 'query':
      return {
        endpoint: 'FWC_IF_Barcode_Pay_Query',
        url: t.offline('FWC_IF_Barcode_Pay_Query'),
        contentType: 'text/xml',
        body: () => xml({ AccessToken: inp.token, OutTradeNo: next().no }),
        ok: offlineOk,
      };
    case 'refund':
      return {
        endpoint: 'FWC_IF_Barcode_Pay_Refund',
        url: t.offline('FWC_IF_Barcode_Pay_Refund'),
        contentType: 'text/xml',
        body: () => {
          const x = next();
          return xml({
            AccessToken: inp.token,
            TradeNo: x.tradeNo,
            RefundAmount: '0.01',
            OutRequestNo: uniq('R'),
            OutTradeNo: x.no,
            TotalAmount: '99999.00',
          });
        },
        ok: offlineOk,
      };
    default:
      return {
        endpoint: 'lc.trade.h5.pay',
        url: t.gateway,
        contentType: H5_CT,
        body: handOut(inp.h5),
        ok: gatewayOk,
      };
  }
}

/** The plain reference's floor: /xml (parse and answer, no database) and /hello (nothing). */
function floorOptions(t: Target): LoadOptions[] {
  return [
    {
      endpoint: 'POST /xml',
      url: `${t.server.base}/xml`,
      contentType: 'application/xml',
      body: () => plainXml({ out_trade_no: uniq('X'), total_fee: '8888' }),
      ok: (s, b) => s === 200 && b.includes('<return_code>SUCCESS</return_code>'),
    },
    {
      endpoint: 'GET /hello',
      url: `${t.server.base}/hello`,
      method: 'GET',
      contentType: '',
      body: () => null,
      ok: (s) => s === 200,
    },
  ];
}

const gwBodiesFor = (n: number) => (keys: PlainKeys) =>
  signedGwBodies(keys.merchantPriv, n, `GC${randomBytes(2).toString('hex')}`);

const h5BodiesFor = (appId: string, n: number, prefix: string) =>
  signedH5Bodies(appId, n, {
    prefix: `${prefix}${randomBytes(2).toString('hex')}`,
    notifyUrl: 'https://his.example.cn/pay/notify',
    returnUrl: 'https://his.example.cn/pay/return',
  });

// ---- round trips ----------------------------------------------------------------------------------------------

interface Trips {
  roundTrips: number;
  transactions: number;
  /** The statements of one request, in order (their first words). */
  statements: string[];
}

interface RoundTrips {
  path: PathName;
  hospay: Trips;
  plain: Trips | null;
  mirror: Trips | null;
}

/**
 * PostgreSQL round trips per request, counted on the wire: hospay and the references started once more with
 * their database connection through a counting relay, and each path sent `n` times one after the other.
 */
async function probeRoundTrips(
  db: BenchDb,
  s: ReturnType<typeof settingsFor>,
  ids: { adminToken: string; appId: string; token: string },
  plain: { pdb: PlainDb; keys: PlainKeys } | null,
  n = 50,
): Promise<RoundTrips[]> {
  const counter = await startPgCounter(db.url ?? '');
  const out: RoundTrips[] = [];
  const servers: Server[] = [];
  try {
    const h = await startHospay(db, {
      jobs: false,
      cpuProfDir: null,
      adminToken: ids.adminToken,
      dbUrl: counter.url,
      workers: 1,
    });
    servers.push(h);
    const targets: Target[] = [hospayTarget(h, db)];
    if (plain) {
      const pl = await startPlain(plain.pdb, plain.keys, counter.url);
      servers.push(pl);
      targets.push(plainTarget(pl, plain.pdb));
    }
    if (s.mirror) {
      const r = await startReference(
        db,
        { intervalMs: NOTIFY_INTERVAL_MS, batch: NOTIFY_BATCH },
        counter.url,
      );
      servers.push(r);
      await postJson(`${r.base}/ref/setup`, {
        app_id: ids.appId,
        access_token: ids.token,
        public_key: APP_PUBLIC_PEM,
      });
      await postJson(`${r.base}/ref/notify/pause`, {});
      targets.push(mirrorTarget(r, db));
    }
    const h5 = await h5BodiesFor(ids.appId, n, 'RT');
    const gw = plain ? await gwBodiesFor(n * 4)(plain.keys) : [];
    const paid = new Map<Target, Paid>();
    for (const t of targets) paid.set(t, t.kind === 'plain' ? [] : await paidTrades(t, ids.token, 10));
    for (const p of paths.filter((x) => x !== 'notify')) {
      const counts = new Map<Kind, Trips>();
      for (const t of targets) {
        const o = optionsFor(p, t, {
          token: ids.token,
          trades: paid.get(t) ?? [],
          h5,
          gw: t.kind === 'plain' ? gw.splice(0, n) : [],
          rows: plain?.pdb.rows ?? 1,
        });
        await new Promise((res) => setTimeout(res, 300));
        counter.reset();
        let statements: string[] = [];
        for (let k = 0; k < n; k++) {
          // The statements of the last request (the earlier ones warmed every cache up).
          counter.capture = k === n - 1;
          const res = await fetch(o.url, {
            method: 'POST',
            headers: { 'content-type': o.contentType },
            body: o.body() ?? '',
          });
          const text = await res.text();
          if (!o.ok(res.status, text))
            throw new Error(`round-trip probe ${p} (${t.name}): ${text.slice(0, 400)}`);
          if (k === n - 1) statements = [...counter.statements];
          counter.capture = false;
        }
        // hospay records its channel calls after answering: let the last one land.
        await new Promise((res) => setTimeout(res, 300));
        counts.set(t.kind, {
          roundTrips: r2(counter.counts.roundTrips / n),
          transactions: r2(counter.counts.begins / n),
          statements,
        });
      }
      out.push({
        path: p,
        hospay: counts.get('hospay') ?? { roundTrips: 0, transactions: 0, statements: [] },
        plain: counts.get('plain') ?? null,
        mirror: counts.get('mirror') ?? null,
      });
    }
  } finally {
    for (const x of servers) await x.stop();
    await counter.close();
  }
  return out;
}

// ---- one path on every target ---------------------------------------------------------------------------------

/**
 * One path on every target: a warm-up each, then `rounds` alternating rounds (hospay, plain, mirror, hospay, …)
 * of duration ÷ rounds seconds, so that a machine getting busier or quieter during the run weighs on all alike.
 * CPU is read around each round only: the server's processes (/proc), its database's PostgreSQL backends, and
 * this process (the load generator).
 */
async function measureAll(
  targets: Target[],
  opts: Map<Target, LoadOptions>,
  warmupOf: (t: Target) => number = () => warmup,
): Promise<Measured[]> {
  const parts = new Map<Target, LoadResult[]>(targets.map((t) => [t, []]));
  const cpu = new Map(targets.map((t) => [t, { server: 0, db: 0, loadgen: 0 }]));
  const check = (t: Target) => {
    if (t.server.proc.exitCode !== null || t.server.proc.signalCode !== null)
      throw new Error(`${t.name} exited during the load:\n${t.server.output().slice(-4000)}`);
  };
  const loadOf = (t: Target, seconds: number) => {
    const { endpoint: _e, ...o } = opts.get(t) as LoadOptions;
    return load({ ...o, connections, duration: seconds });
  };
  for (const t of targets) if (warmupOf(t) > 0) await loadOf(t, warmupOf(t));
  for (let k = 0; k < rounds; k++) {
    for (const t of targets) {
      const c = cpu.get(t) as { server: number; db: number; loadgen: number };
      const db0 = t.dbUrl ? await backendsCpu(t.dbUrl) : null;
      const s0 = treeCpu(t.server.pid);
      const l0 = process.cpuUsage();
      parts.get(t)?.push(await loadOf(t, duration / rounds));
      const l = process.cpuUsage(l0);
      c.loadgen += (l.user + l.system) / 1000;
      c.server += treeDelta(s0, treeCpu(t.server.pid));
      if (t.dbUrl && db0) c.db += backendsDelta(db0, await backendsCpu(t.dbUrl));
      check(t);
    }
  }
  return targets.map((t) => {
    const m = treeMemoryMb(t.server.pid);
    const { latencies: _all, ...merged } = merge(parts.get(t) ?? []);
    const c = cpu.get(t) as { server: number; db: number; loadgen: number };
    const per = (ms: number) => (merged.requests ? Math.round((ms / merged.requests) * 1000) / 1000 : 0);
    const cores = (ms: number) => r2(ms / 1000 / Math.max(merged.seconds, 0.001));
    return {
      ...merged,
      endpoint: (opts.get(t) as LoadOptions).endpoint,
      cpuMsPerReq: per(c.server),
      dbCpuMsPerReq: t.dbUrl ? per(c.db) : null,
      serverCores: cores(c.server),
      loadgenCpuMsPerReq: per(c.loadgen),
      loadgenCores: cores(c.loadgen),
      peakMb: m.peak,
      rssMb: m.rss,
    };
  });
}

// ---- notification delivery ------------------------------------------------------------------------------------

const H5_CT = 'application/x-www-form-urlencoded; charset=utf-8';

/**
 * One H5 payment the way a payer makes it: lc.trade.h5.pay, the goto page (opened in Alipay), the simulator's
 * cashier (pay), back to hospay (which learns the outcome: the trade is paid and its notification written).
 * Returns the order number and when the payment was complete.
 */
async function payH5(base: string, body: string): Promise<{ no: string; paidAt: number }> {
  const res = await fetch(`${base}/gateway`, { method: 'POST', headers: { 'content-type': H5_CT }, body });
  const answer = JSON.parse(await res.text()) as { code: string; biz_content: Record<string, string> };
  if (answer.code !== '10000') throw new Error(`lc.trade.h5.pay: ${JSON.stringify(answer.biz_content)}`);
  const no = answer.biz_content['out_trade_no'] ?? '';
  const local = (u: string) => {
    const x = new URL(u, base);
    return `${base}${x.pathname}${x.search}`;
  };
  const goto = await fetch(local(answer.biz_content['goto_url'] ?? ''), {
    redirect: 'manual',
    headers: { 'user-agent': 'Mozilla/5.0 (Linux; Android 14) AlipayClient/10.6.0' },
  });
  await goto.text();
  const cashier = goto.headers.get('location');
  if (!cashier) throw new Error(`goto page did not send the payer to the cashier (HTTP ${goto.status})`);
  const paid = await fetch(local(cashier), {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'action=pay',
  });
  await paid.text();
  const back = paid.headers.get('location');
  if (!back) throw new Error(`the simulator's cashier did not send the payer back (HTTP ${paid.status})`);
  const ret = await fetch(local(back), { redirect: 'manual' });
  await ret.text();
  return { no, paidAt: performance.now() };
}

/** Runs `fn` `n` times at `rate` per second (started on schedule, whatever the previous ones are doing). */
async function paced<R>(n: number, rate: number, fn: (i: number) => Promise<R>): Promise<R[]> {
  const t0 = performance.now();
  const runs: Array<Promise<R>> = [];
  for (let i = 0; i < n; i++) {
    const wait = t0 + (i * 1000) / rate - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    runs.push(fn(i));
  }
  return Promise.all(runs);
}

function notifySide(
  receiver: Receiver,
  backlog: string[],
  readyAt: number,
  live: Array<{ no: string; paidAt: number }>,
  peakMb: number,
  duplicatesBefore: number,
  cpu: { server: number; db: number | null },
): NotifySide {
  const at = backlog.map((k) => receiver.arrivals.get(k)).filter((x): x is number => x !== undefined);
  const first = Math.min(...at);
  const last = Math.max(...at);
  const lat = live
    .map((l) => {
      const a = receiver.arrivals.get(l.no);
      return a === undefined ? null : a - l.paidAt;
    })
    .filter((x): x is number => x !== null)
    .sort((a, b) => a - b);
  const drain = at.length > 1 ? (last - first) / 1000 : 0;
  const waits = at.map((a) => a - readyAt).sort((a, b) => a - b);
  const per = (ms: number) => (at.length ? Math.round((ms / at.length) * 1000) / 1000 : 0);
  return {
    backlog: backlog.length,
    delivered: at.length,
    drainSeconds: r2(drain),
    perSecond: drain > 0 ? Math.round((at.length - 1) / drain) : 0,
    firstAfterMs: at.length ? Math.round(first - readyAt) : 0,
    drainWait: {
      p50: Math.round(percentile(waits, 50)),
      p99: Math.round(percentile(waits, 99)),
    },
    cpuMsPerNotification: per(cpu.server),
    dbCpuMsPerNotification: cpu.db === null ? null : per(cpu.db),
    live: {
      sent: live.length,
      delivered: lat.length,
      rate: notifyRate,
      p50: Math.round(percentile(lat, 50)),
      p99: Math.round(percentile(lat, 99)),
      max: Math.round(lat[lat.length - 1] ?? 0),
    },
    duplicates: receiver.duplicates - duplicatesBefore,
    peakMb,
  };
}

async function notifyHospay(
  db: BenchDb,
  adminToken: string,
  appId: string,
  receiver: Receiver,
  withLive: boolean,
) {
  const liveN = withLive ? Math.round(notifyRate * notifyLive) : 0;
  const bodies = await signedH5Bodies(appId, notifyN + liveN, {
    prefix: `NT${randomBytes(2).toString('hex')}`,
    notifyUrl: receiver.url,
    returnUrl: 'https://his.example.cn/pay/return',
  });
  // The backlog: paid by a server whose jobs are off, so nothing is delivered yet.
  const maker = await startHospay(db, { jobs: false, cpuProfDir: null, adminToken, workers: 1 });
  let backlog: string[];
  try {
    backlog = (await pool(bodies.slice(0, notifyN), 16, (b) => payH5(maker.base, b))).map((p) => p.no);
  } finally {
    await maker.stop();
  }
  const dup0 = receiver.duplicates;
  // HOSPAY_NOTIFY_CPU_PROF=<dir>: a V8 CPU profile of the delivering server (bench/profile.ts summarises it).
  const prof = process.env['HOSPAY_NOTIFY_CPU_PROF'] ?? null;
  const server = await startHospay(db, { jobs: true, cpuProfDir: prof, adminToken, workers: 1 });
  const readyAt = performance.now();
  const s0 = treeCpu(server.pid);
  const db0 = db.url ? await backendsCpu(db.url) : null;
  try {
    const drained = await receiver.waitFor(backlog, 300_000);
    if (!drained) console.warn('  hospay: not every notification of the backlog arrived within 300 s');
    const cpu = {
      server: treeDelta(s0, treeCpu(server.pid)),
      db: db.url && db0 ? backendsDelta(db0, await backendsCpu(db.url)) : null,
    };
    const live =
      liveN > 0 ? await paced(liveN, notifyRate, (i) => payH5(server.base, bodies[notifyN + i] ?? '')) : [];
    await receiver.waitFor(
      live.map((l) => l.no),
      60_000,
    );
    return notifySide(receiver, backlog, readyAt, live, treeMemoryMb(server.pid).peak, dup0, cpu);
  } finally {
    await server.stop();
  }
}

async function notifyMirror(db: BenchDb, ref: Server, appId: string, receiver: Receiver) {
  const liveN = Math.round(notifyRate * notifyLive);
  const prefix = `RS${randomBytes(2).toString('hex')}`;
  await postJson(`${ref.base}/ref/notify/pause`, {});
  await postJson(`${ref.base}/ref/notify/seed`, { app_id: appId, n: notifyN, url: receiver.url, prefix });
  const backlog = Array.from({ length: notifyN }, (_, i) => `${prefix}${i + 1}`);
  const dup0 = receiver.duplicates;
  const s0 = treeCpu(ref.pid);
  const db0 = db.url ? await backendsCpu(db.url) : null;
  await postJson(`${ref.base}/ref/notify/resume`, {});
  const readyAt = performance.now();
  const drained = await receiver.waitFor(backlog, 300_000);
  if (!drained) console.warn('  mirror: not every notification of the backlog arrived within 300 s');
  const cpu = {
    server: treeDelta(s0, treeCpu(ref.pid)),
    db: db.url && db0 ? backendsDelta(db0, await backendsCpu(db.url)) : null,
  };
  const live = await paced(liveN, notifyRate, async () => {
    const no = uniq('RL');
    await postJson(`${ref.base}/ref/notify/pay`, { app_id: appId, out_trade_no: no, url: receiver.url });
    return { no, paidAt: performance.now() };
  });
  await receiver.waitFor(
    live.map((l) => l.no),
    60_000,
  );
  return notifySide(receiver, backlog, readyAt, live, memoryMb(ref.pid).peak, dup0, cpu);
}

const middle = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
};

/** Rounds as one: the round of median notifications/s, with the medians of the CPU figures. */
function medianRound<
  T extends { perSecond: number; cpuMsPerNotification: number; dbCpuMsPerNotification: number | null },
>(rounds: T[]): T {
  const byRate = [...rounds].sort((a, b) => a.perSecond - b.perSecond);
  const dbs = rounds.map((r) => r.dbCpuMsPerNotification).filter((x): x is number => x !== null);
  return {
    ...(byRate[Math.floor((byRate.length - 1) / 2)] as T),
    cpuMsPerNotification: middle(rounds.map((r) => r.cpuMsPerNotification)),
    dbCpuMsPerNotification: dbs.length === rounds.length ? middle(dbs) : null,
  };
}

/** hospay's rounds as one (medianRound), with round 1's live latency and every round's duplicates and peak. */
function medianNotifySide(rounds: NotifySide[]): NotifySide {
  return {
    ...medianRound(rounds),
    live: (rounds[0] as NotifySide).live,
    duplicates: rounds.reduce((sum, r) => sum + r.duplicates, 0),
    peakMb: Math.max(...rounds.map((r) => r.peakMb)),
  };
}

/** The plain drainer (bench/plain/drainer.ts, written by another helper): its result, or why there is none. */
async function notifyPlain(pdb: PlainDb): Promise<{ result: PlainDrainResult | null; note: string | null }> {
  let mod: typeof import('./plain/drainer.js');
  try {
    mod = await import('./plain/drainer.js');
  } catch (e) {
    return {
      result: null,
      note: `bench/plain/drainer.ts not loaded: ${e instanceof Error ? e.message : String(e)}`,
    };
  }
  const receiver = await startReceiver();
  try {
    return {
      result: await mod.plainDrain({ pgUrl: pdb.url, receiverUrl: receiver.url, count: notifyN }),
      note: null,
    };
  } catch (e) {
    return { result: null, note: `plainDrain failed: ${e instanceof Error ? e.message : String(e)}` };
  } finally {
    await receiver.close();
  }
}

// ---- soak -----------------------------------------------------------------------------------------------------

async function soakRun(t: Target, token: string): Promise<SoakReport> {
  // RSS read every second; every fifth reading is the 5-s series shown. The verdict uses the medians of the
  // 1-s readings of the first and the last 20 s, which a garbage collection's saw-tooth tops do not sway.
  const every: Array<{ t: number; rssMb: number }> = [];
  const t0 = Date.now();
  const timer = setInterval(() => {
    every.push({ t: Math.round((Date.now() - t0) / 1000), rssMb: treeMemoryMb(t.server.pid).rss });
  }, 1000);
  let r: LoadResult;
  try {
    r = await load({
      url: t.offline('FWC_IF_Barcode_Pay'),
      contentType: 'text/xml',
      connections,
      duration: soak,
      body: () => xml({ AccessToken: token, OutTradeNo: uniq('SK'), ...PAY_FIELDS, TotalAmount: '88.88' }),
      ok: offlineOk,
    });
  } finally {
    clearInterval(timer);
  }
  const samples = every.filter((x) => x.t > 0 && x.t % 5 === 0);
  const v = samples.map((x) => x.rssMb);
  const at10 = samples.find((x) => x.t >= 10)?.rssMb ?? v[0] ?? 0;
  const last = v[v.length - 1] ?? 0;
  const median = (xs: number[]) =>
    percentile(
      [...xs].sort((a, b) => a - b),
      50,
    );
  const early = every.filter((x) => x.t <= 20).map((x) => x.rssMb);
  const late = every.filter((x) => x.t > soak - 20).map((x) => x.rssMb);
  const mt = every.reduce((a, x) => a + x.t, 0) / Math.max(every.length, 1);
  const mv = every.reduce((a, x) => a + x.rssMb, 0) / Math.max(every.length, 1);
  const sxx = every.reduce((a, x) => a + (x.t - mt) ** 2, 0);
  const slope = sxx > 0 ? (every.reduce((a, x) => a + (x.t - mt) * (x.rssMb - mv), 0) / sxx) * 60 : 0;
  return {
    seconds: soak,
    connections,
    rps: r.rps,
    p99: r.p99,
    errors: r.errors + r.non2xx,
    appFail: r.appFail,
    samples,
    firstMb: v[0] ?? 0,
    at10Mb: at10,
    lastMb: last,
    maxMb: Math.max(0, ...every.map((x) => x.rssMb)),
    peakMb: treeMemoryMb(t.server.pid).peak,
    lastVsAt10: last <= 1.2 * at10,
    earlyMedianMb: median(early),
    lateMedianMb: median(late),
    earlyMaxMb: Math.max(0, ...early),
    lateMaxMb: Math.max(0, ...late),
    slopeMbPerMin: r2(slope),
    flat: median(late) <= 1.2 * median(early),
  };
}

// ---- worker scaling -------------------------------------------------------------------------------------------

const WORKER_PATHS: PathName[] = ['query', 'gateway', 'barcode'];

/**
 * `hospay serve --workers N` for each N, all started at once on the same database (jobs on, claimed as in
 * production), each of query, h5 pay and barcode pay loaded on them in alternating rounds. A count that serve
 * refuses (an older build without --workers, or the embedded database, which allows 1) is n/a.
 */
async function workersRun(
  db: BenchDb,
  counts: number[],
  ids: { adminToken: string; appId: string; token: string },
  trades: Paid,
): Promise<WorkersReport> {
  const report: WorkersReport = { counts, notes: {}, paths: [] };
  const started: Array<{ n: number; t: Target }> = [];
  try {
    for (const n of counts) {
      try {
        const s = await startHospay(db, {
          jobs: true,
          cpuProfDir: null,
          adminToken: ids.adminToken,
          workers: n,
        });
        started.push({ n, t: hospayTarget(s, db, `hospay ×${n}`) });
      } catch (e) {
        const why =
          e instanceof WorkersUnsupported
            ? 'n/a: hospay serve does not accept --workers'
            : `n/a: ${(e instanceof Error ? e.message : String(e)).split('\n').slice(0, 3).join(' ')}`;
        report.notes[String(n)] = why;
        console.log(`  workers ${n}: ${why}`);
      }
    }
    if (started.length === 0) return report;
    const first = (started[0] as { t: Target }).t;
    const paid = trades.length ? trades : await paidTrades(first, ids.token, 500);
    for (const p of WORKER_PATHS.filter((x) => paths.includes(x))) {
      console.log(`  workers: ${LABEL[p]} …`);
      // Enough signed bodies for each target's warm-up (5 s per worker, below) and measured time: a target that
      // runs out re-sends its last body, whose nonce is then a replay (counted as a failure).
      const longestWarmup = Math.max(...started.map((x) => Math.max(warmup, 5 * x.n)));
      const bodies =
        p === 'gateway'
          ? await h5BodiesFor(
              ids.appId,
              Math.ceil(gatewayRate * (duration + longestWarmup)) * started.length,
              'WK',
            )
          : [];
      const per = Math.floor(bodies.length / Math.max(started.length, 1));
      const opts = new Map<Target, LoadOptions>();
      started.forEach(({ t }, k) =>
        opts.set(
          t,
          optionsFor(p, t, {
            token: ids.token,
            trades: paid,
            h5: bodies.slice(k * per, (k + 1) * per),
            gw: [],
            rows: 1,
          }),
        ),
      );
      // Each worker JIT-compiles on its own: N workers need about N times the warm-up of one (5 s each here).
      const workersOf = new Map(started.map((x) => [x.t, x.n]));
      const measured = await measureAll(
        started.map((x) => x.t),
        opts,
        (t) => Math.max(warmup, 5 * (workersOf.get(t) ?? 1)),
      );
      const byN = new Map(started.map((x, k) => [x.n, measured[k] ?? null]));
      const one = byN.get(1) ?? null;
      const runs = counts.map((n) => {
        const m = byN.get(n) ?? null;
        return { workers: n, measured: m, scaling: m && one && one.rps > 0 ? r2(m.rps / one.rps) : null };
      });
      report.paths.push({ path: p, label: LABEL[p], runs });
      printWorkers(report.paths[report.paths.length - 1] as WorkersReport['paths'][number], report.notes);
    }
  } finally {
    for (const { t } of started) await t.server.stop();
  }
  return report;
}

// ---- history --------------------------------------------------------------------------------------------------

/**
 * bench/history.ts on a database of its own (its empty phase must be empty), with this run's load settings;
 * the database is dropped afterwards.
 */
async function historyRun(
  kind: 'postgres' | 'embedded',
  rows: number,
): Promise<{ report: HistoryReport | { skipped: string }; text: string }> {
  let mod: typeof import('./history.js');
  try {
    mod = await import('./history.js');
  } catch (e) {
    const why = `bench/history.ts not loaded: ${e instanceof Error ? e.message : String(e)}`;
    return { report: { skipped: why }, text: `  history: ${why}` };
  }
  const db = await createDb(kind);
  try {
    const report = await mod.historyBench({
      db,
      rows,
      log: (x) => console.log(`  ${x}`),
      duration,
      warmup,
      connections,
    });
    return { report, text: mod.printHistory(report) };
  } finally {
    await db.drop();
  }
}

// ---- one database ---------------------------------------------------------------------------------------------

async function benchDb(kind: 'postgres' | 'embedded'): Promise<DbReport> {
  const started = Date.now();
  const s = settingsFor(kind);
  const report: DbReport = {
    db: kind,
    date: new Date().toISOString(),
    meta: {
      ...gitMeta(),
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? '',
      memGb: Math.round(os.totalmem() / 2 ** 30),
      loadavgBefore: os.loadavg().map(r2),
      duration,
      rounds,
      warmup,
      connections,
      logLevel: 'warn',
      dbPool: Number(process.env['HOSPAY_DB_POOL'] ?? 10),
      notifyIntervalMs: NOTIFY_INTERVAL_MS,
      notifyBatch: NOTIFY_BATCH,
      plainReference: s.plain,
      plainRows: s.plain ? plainRows : null,
      mirrorReference: s.mirror,
      hospayWorkers: 1,
      gatewayRate,
    },
    paths: [],
    floor: [],
    notify: null,
    soak: null,
    workers: null,
    pgbench: null,
    history: null,
    hospayPeakMb: 0,
    plainPeakMb: null,
    mirrorPeakMb: null,
    roundTrips: null,
    crashed: null,
    profile: null,
  };
  const adminToken = randomBytes(24).toString('hex');
  const profDir = cpuProf ? fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-prof-')) : null;
  const db = await createDb(kind);
  let pdb: PlainDb | null = null;
  const keys = s.plain ? plainKeys() : null;
  let hospay: Server | null = null;
  let plain: Server | null = null;
  let mirror: Server | null = null;
  let receiver: Receiver | null = null;
  try {
    // One process, like the references: the headline compares one process with one process.
    hospay = await startHospay(db, { jobs: true, cpuProfDir: profDir, adminToken, workers: 1 });
    const created = (await postJson(
      `${hospay.base}/admin/apps`,
      { name: '基准测试 bench', hospital_id: 'BENCH' },
      adminToken,
    )) as { app_id: string; access_token: string };
    const appId = created.app_id;
    const token = created.access_token;
    const ids = { adminToken, appId, token };
    await postJson(
      `${hospay.base}/admin/apps/${appId}/public-key`,
      { public_key: APP_PUBLIC_PEM },
      adminToken,
      'PUT',
    );
    const targets: Target[] = [hospayTarget(hospay, db)];
    if (s.plain && keys) {
      console.log(`[${kind}] plain reference: its own database with ${plainRows} orders …`);
      pdb = await createPlainDb(plainRows);
      plain = await startPlain(pdb, keys);
      targets.push(plainTarget(plain, pdb));
    }
    if (s.mirror) {
      mirror = await startReference(db, { intervalMs: NOTIFY_INTERVAL_MS, batch: NOTIFY_BATCH });
      await postJson(`${mirror.base}/ref/setup`, {
        app_id: appId,
        access_token: token,
        public_key: APP_PUBLIC_PEM,
        hospital_id: 'BENCH',
      });
      targets.push(mirrorTarget(mirror, db));
    }
    const byKind = (k: Kind) => targets.find((t) => t.kind === k) ?? null;
    const bodiesNeeded = Math.ceil(gatewayRate * (duration + warmup));

    const paid = new Map<Target, Paid>();
    for (const p of paths.filter((x) => x !== 'notify')) {
      console.log(`[${kind}] ${LABEL[p]} …`);
      if ((p === 'query' || p === 'refund') && paid.size === 0)
        for (const t of targets) paid.set(t, t.kind === 'plain' ? [] : await paidTrades(t, token, 500));
      const h5 = p === 'gateway' ? await h5BodiesFor(appId, bodiesNeeded, 'GW') : [];
      const gw = keys && p !== 'query' ? await gwBodiesFor(bodiesNeeded)(keys) : [];
      const opts = new Map<Target, LoadOptions>();
      for (const t of targets)
        opts.set(t, optionsFor(p, t, { token, trades: paid.get(t) ?? [], h5, gw, rows: plainRows }));
      const results = await measureAll(targets, opts);
      const of = (k: Kind) => {
        const t = byKind(k);
        return t ? (results[targets.indexOf(t)] ?? null) : null;
      };
      const hs = of('hospay') as Measured;
      const ps = of('plain');
      const ms = of('mirror');
      const rt = ps ? ratios(hs, ps) : null;
      report.paths.push({
        path: p,
        label: LABEL[p],
        hospay: hs,
        plain: ps,
        mirror: ms,
        ratio: rt,
        targets: rt
          ? {
              rps: atLeast(rt.rps, PLAIN[p].target),
              cpu: atMost(rt.cpuPerReq, CPU_TARGET),
              p99: atMost(rt.p99, P99_TARGET),
            }
          : null,
        mirrorRatio: ms ? ratios(hs, ms) : null,
      });
      printPath(report.paths[report.paths.length - 1] as PathReport);
    }

    const pt = byKind('plain');
    if (pt && withFloor) {
      console.log(`[${kind}] the plain reference's floor: /xml and /hello …`);
      for (const o of floorOptions(pt)) {
        const [m] = await measureAll([pt], new Map([[pt, o]]));
        if (m) {
          report.floor.push(m);
          console.log(`  ${lineOf('floor', `plain ${o.endpoint.split(' ')[1] ?? ''}`, m, null, null)}`);
        }
      }
    }

    if (soak > 0 && soakDbs.includes(kind)) {
      console.log(`[${kind}] soak: barcode pay for ${soak} s …`);
      report.soak = await soakRun(targets[0] as Target, token);
    }
    report.hospayPeakMb = treeMemoryMb(hospay.pid).peak;
    const hospayTrades = paid.get(targets[0] as Target) ?? [];
    await hospay.stop();
    hospay = null;

    if (s.workers.length > 0) {
      console.log(`[${kind}] worker scaling: serve --workers ${s.workers.join(', ')} …`);
      report.workers = await workersRun(db, s.workers, ids, hospayTrades);
    }

    if (paths.includes('notify')) {
      console.log(
        `[${kind}] notification delivery: backlog of ${notifyN}, then ${notifyRate}/s for ${notifyLive} s; ` +
          `${notifyRounds} alternating round(s) with the plain drainer …`,
      );
      receiver = await startReceiver();
      // Alternating rounds (H P, P H, …), medians: one drain each swings by a tenth or more on a shared machine.
      const hsRounds: NotifySide[] = [];
      const plRounds: Array<PlainDrainResult | null> = [];
      let plNote: string | null = null;
      for (let r = 0; r < notifyRounds; r++) {
        const hospayFirst = r % 2 === 0;
        for (const who of hospayFirst ? ['hospay', 'plain'] : ['plain', 'hospay']) {
          if (who === 'hospay') hsRounds.push(await notifyHospay(db, adminToken, appId, receiver, r === 0));
          else if (pdb) {
            const one = await notifyPlain(pdb);
            plRounds.push(one.result);
            plNote ??= one.note;
          }
        }
        const h = hsRounds[hsRounds.length - 1] as NotifySide;
        const p = plRounds[plRounds.length - 1] ?? null;
        if (notifyRounds > 1)
          console.log(
            `  round ${r + 1}/${notifyRounds} (${hospayFirst ? 'hospay first' : 'plain first'}): hospay ${h.perSecond}/s, ` +
              `plain ${p ? `${p.perSecond}/s, ratio ${pct(ratio(h.perSecond, p.perSecond))}` : 'n/a'}`,
          );
      }
      const hs = medianNotifySide(hsRounds);
      const plDone = plRounds.filter((x): x is PlainDrainResult => x !== null);
      const pl = {
        result: plDone.length === plRounds.length && plDone.length > 0 ? medianRound(plDone) : null,
        note: plNote,
      };
      const ms = mirror ? await notifyMirror(db, mirror, appId, receiver) : null;
      const rt = pl.result
        ? {
            perSecond: ratio(hs.perSecond, pl.result.perSecond),
            cpuPerNotification: ratio(hs.cpuMsPerNotification, pl.result.cpuMsPerNotification),
          }
        : null;
      report.notify = {
        intervalMs: NOTIFY_INTERVAL_MS,
        batch: NOTIFY_BATCH,
        hospay: hs,
        plain: pl.result,
        plainNote: pl.note,
        ratio: rt,
        targets: rt
          ? {
              perSecond: atLeast(rt.perSecond, PLAIN.notify.target),
              cpu: atMost(rt.cpuPerNotification, CPU_TARGET),
            }
          : null,
        mirror: ms,
        mirrorRatio: ms
          ? { perSecond: ratio(hs.perSecond, ms.perSecond), p99: ratio(hs.live.p99, ms.live.p99) }
          : null,
        rounds: hsRounds.map((h, i) => {
          const p = plRounds[i] ?? null;
          return {
            hospay: h.perSecond,
            plain: p?.perSecond ?? null,
            hospayCpu: h.cpuMsPerNotification,
            plainCpu: p?.cpuMsPerNotification ?? null,
            ratio: p ? ratio(h.perSecond, p.perSecond) : null,
          };
        }),
      };
      report.hospayPeakMb = Math.max(report.hospayPeakMb, ...hsRounds.map((h) => h.peakMb));
    }
    if (plain) report.plainPeakMb = memoryMb(plain.pid).peak;
    if (mirror) report.mirrorPeakMb = memoryMb(mirror.pid).peak;
    await plain?.stop();
    plain = null;
    await mirror?.stop();
    mirror = null;
    if (kind === 'postgres' && roundTripProbe && paths.some((p) => p !== 'notify')) {
      console.log(`[${kind}] counting database round trips per request …`);
      report.roundTrips = await probeRoundTrips(db, s, ids, pdb && keys ? { pdb, keys } : null);
    }
    if (s.pgbench && pgbenchBin) {
      console.log(
        `[${kind}] PostgreSQL's ceiling: pgbench -i -s ${pgbenchScale}, then ${pgbenchSeconds} s each of ` +
          `tpcb-like and one INSERT per transaction, -c ${pgbenchClients} -j 2 …`,
      );
      report.pgbench = await pgbenchCeiling({
        bin: pgbenchBin,
        scale: pgbenchScale,
        seconds: pgbenchSeconds,
        clients: pgbenchClients,
        threads: 2,
      });
    }
    if (s.history > 0) {
      console.log(`[${kind}] history: ${s.history} rows …`);
      const h = await historyRun(kind, s.history);
      report.history = h.report;
      historyText.set(kind, h.text);
      console.log(h.text);
    }
  } catch (e) {
    report.crashed = e instanceof Error ? (e.stack ?? e.message) : String(e);
    console.error(`[${kind}] run failed: ${report.crashed}`);
  } finally {
    await receiver?.close();
    await hospay?.stop();
    await plain?.stop();
    await mirror?.stop();
    await db.drop();
    await pdb?.drop();
  }
  if (profDir) {
    const file = fs.readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
    if (file) {
      const dest = path.join(outDir, `profile-${kind}-${paths.join('-')}.cpuprofile`);
      fs.mkdirSync(outDir, { recursive: true });
      fs.copyFileSync(path.join(profDir, file), dest);
      report.profile = summariseProfile(dest);
      printProfile(report.profile);
    }
    fs.rmSync(profDir, { recursive: true, force: true });
  }
  report.meta['loadavgAfter'] = os.loadavg().map(r2);
  report.meta['seconds'] = Math.round((Date.now() - started) / 1000);
  return report;
}

/** printHistory's text per database, printed again in the final report. */
const historyText = new Map<string, string>();

// ---- printing -------------------------------------------------------------------------------------------------

const col = (s: string | number, w: number, left = false) =>
  left ? String(s).padEnd(w) : String(s).padStart(w);
const pct = (x: number) => `${Math.round(x * 100)} %`;
const times = (x: number | null | undefined) => (x === null || x === undefined ? '' : `${x}×`);
const cpuCell = (server: number, db: number | null) =>
  `${server.toFixed(2)}${db !== null ? `+${db.toFixed(2)}` : ''}`;

/** A row; on a reference's row, the ratio columns are hospay ÷ that reference. */
function lineOf(label: string, who: string, m: Measured, r: Ratios | null, note: string | null): string {
  return [
    col(label, 16, true),
    col(who, 16, true),
    col(m.rps, 7),
    col(m.p50, 6),
    col(m.p99, 7),
    col(`${m.errors}/${m.non2xx}/${m.appFail}`, 12),
    col(r ? pct(r.rps) : '', 8),
    col(r ? times(r.p99) : '', 7),
    col(r ? times(r.cpuPerReq) : '', 7),
    col(cpuCell(m.cpuMsPerReq, m.dbCpuMsPerReq), 11),
    col(m.serverCores.toFixed(2), 5),
    col(`${m.loadgenCpuMsPerReq.toFixed(2)} (${m.loadgenCores.toFixed(2)})`, 13),
    col(m.peakMb, 6),
    m.exhausted ? '  (bodies ran out)' : '',
    note ?? '',
  ].join(' ');
}

const HEADER = [
  col('path', 16, true),
  col('server', 16, true),
  col('req/s', 7),
  col('p50', 6),
  col('p99', 7),
  col('err/non2xx/fail', 12),
  col('req/s ÷', 8),
  col('p99 ÷', 7),
  col('cpu ÷', 7),
  col('cpu ms/req', 11),
  col('cores', 5),
  col('loadgen ms/r', 13),
  col('peakMB', 6),
].join(' ');

const verdict = (name: string, v: Verdict | null, show: (x: number) => string, rel: string) =>
  v ? `${name} ${rel} ${show(v.target)}: ${v.met ? 'met' : 'NOT met'} (${show(v.value)})` : `${name}: n/a`;

function printPath(p: PathReport): void {
  console.log(`  ${lineOf(p.label, 'hospay', p.hospay, null, null)}`);
  if (p.plain)
    console.log(`  ${lineOf('', `plain ${p.plain.endpoint.split(' ')[1] ?? ''}`, p.plain, p.ratio, null)}`);
  if (p.mirror) console.log(`  ${lineOf('', 'mirror', p.mirror, p.mirrorRatio, null)}`);
  const t = p.targets;
  if (t)
    console.log(
      `  ${col('', 16)} targets vs plain: ${verdict('req/s', t.rps, pct, '≥')}; ` +
        `${verdict('CPU of hospay’s process', t.cpu, times, '≤')}; ${verdict('p99', t.p99, times, '≤')}`,
    );
}

function printWorkers(w: WorkersReport['paths'][number], notes: Record<string, string>): void {
  for (const r of w.runs) {
    const m = r.measured;
    if (!m) {
      console.log(
        `  ${col(w.label, 16, true)} ${col(`workers ${r.workers}`, 11, true)} ${notes[String(r.workers)] ?? 'n/a'}`,
      );
      continue;
    }
    console.log(
      `  ${col(w.label, 16, true)} ${col(`workers ${r.workers}`, 11, true)} ${col(m.rps, 7)} req/s ` +
        `(scaling ${r.scaling === null ? 'n/a' : `${r.scaling}×`}), p50 ${m.p50} p99 ${m.p99} ms, ` +
        `errors ${m.errors}/${m.non2xx}/${m.appFail}; cpu ms/req ${cpuCell(m.cpuMsPerReq, m.dbCpuMsPerReq)}, ` +
        `server ${m.serverCores.toFixed(2)} cores, load generator ${m.loadgenCores.toFixed(2)} cores` +
        (m.exhausted ? '  (bodies ran out: the last one re-sent, its nonce a replay)' : ''),
    );
  }
}

function printNotify(n: NotifyReport): void {
  const side = (who: string, s: NotifySide, extra: string) =>
    console.log(
      `  ${col('notify delivery', 16, true)} ${col(who, 16, true)} ${col(s.perSecond, 7)} notifications/s ` +
        `(backlog ${s.delivered}/${s.backlog} in ${s.drainSeconds} s, first after ${s.firstAfterMs} ms, ` +
        `waited p50 ${s.drainWait.p50} p99 ${s.drainWait.p99} ms; ` +
        `cpu ms/notification ${cpuCell(s.cpuMsPerNotification, s.dbCpuMsPerNotification)}); ` +
        `live ${s.live.rate}/s: latency p50 ${s.live.p50} ms p99 ${s.live.p99} ms ` +
        `(${s.live.delivered}/${s.live.sent})${s.duplicates ? `, ${s.duplicates} duplicates` : ''}${extra}`,
    );
  if (n.rounds.length > 1)
    console.log(
      `  ${col('notify delivery', 16, true)} ${n.rounds.length} alternating rounds (medians below): ` +
        n.rounds
          .map(
            (r) =>
              `${r.hospay}/${r.plain ?? 'n/a'} /s${r.ratio === null ? '' : ` (${pct(r.ratio)})`}, ` +
              `cpu ${r.hospayCpu}/${r.plainCpu ?? 'n/a'}`,
          )
          .join('; '),
    );
  side('hospay', n.hospay, '');
  if (n.plain) {
    const pl = n.plain;
    console.log(
      `  ${col('', 16)} ${col('plain drainer', 16, true)} ${col(pl.perSecond, 7)} notifications/s ` +
        `(${pl.notifications} in ${pl.seconds} s; cpu ms/notification ` +
        `${cpuCell(pl.cpuMsPerNotification, pl.dbCpuMsPerNotification)})` +
        `${n.ratio ? `; hospay ÷ plain: ${pct(n.ratio.perSecond)} /s, cpu ${times(n.ratio.cpuPerNotification)}` : ''}`,
    );
  } else if (n.plainNote)
    console.log(`  ${col('', 16)} ${col('plain drainer', 16, true)} n/a (${n.plainNote})`);
  if (n.targets)
    console.log(
      `  ${col('', 16)} targets vs plain: ${verdict('notifications/s', n.targets.perSecond, pct, '≥')}; ` +
        `${verdict('CPU of hospay’s process', n.targets.cpu, times, '≤')}`,
    );
  if (n.mirror)
    side(
      'mirror',
      n.mirror,
      n.mirrorRatio ? `; hospay ÷ mirror ${pct(n.mirrorRatio.perSecond)} /s, p99 ${n.mirrorRatio.p99}×` : '',
    );
}

function printPgbench(p: PgbenchReport): void {
  const set = Object.entries(p.settings)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  console.log(`  PostgreSQL's own ceiling (pgbench, scale ${p.scale}, init ${p.initSeconds} s; ${set}):`);
  for (const r of p.runs)
    console.log(
      `    ${col(r.name, 10, true)} ${col(r.tps, 6)} commits/s at -c ${r.clients} -j ${r.threads} for ${r.seconds} s ` +
        `(${r.what}; latency ${r.latencyMs ?? '?'} ms; ${r.transactions} transactions, ${r.failed} failed)`,
    );
}

function printReport(r: DbReport): void {
  const m = r.meta;
  console.log(
    `\n== ${r.db}: ${connections} connections, ${duration} s per path and server (after ${warmup} s warm-up), ` +
      `${String(m['cpus'])} cores, Node ${String(m['node'])}, commit ${String(m['commit'])}` +
      `${(m['uncommittedSrc'] as string[]).length ? ' + uncommitted src changes' : ''}, ` +
      `load average ${JSON.stringify(m['loadavgBefore'])} → ${JSON.stringify(m['loadavgAfter'])}`,
  );
  if (r.crashed) console.log(`  RUN FAILED: ${r.crashed.slice(0, 2000)}`);
  console.log(
    `  latency in ms. On a reference's row, the ratios are hospay ÷ that reference (plain: the plain reference, ` +
      `the headline; mirror: bench/reference-server.ts). cpu ms/req = the server's processes + its database's ` +
      `PostgreSQL backends; cores = the server's CPU use during the load; loadgen ms/r = this process ` +
      `(autocannon) per request (and in cores): the ${String(m['cpus'])} cores were shared with it.`,
  );
  console.log(`  ${HEADER}`);
  for (const p of r.paths) printPath(p);
  for (const f of r.floor)
    console.log(`  ${lineOf('floor', `plain ${f.endpoint.split(' ')[1] ?? ''}`, f, null, null)}`);
  if (r.notify) printNotify(r.notify);
  if (r.workers) {
    console.log(
      `  worker scaling (hospay serve --workers N, all on one database, alternating rounds; ` +
        `cpu = all of its processes):`,
    );
    for (const w of r.workers.paths) printWorkers(w, r.workers.notes);
    if (r.workers.paths.length === 0)
      for (const [n, why] of Object.entries(r.workers.notes)) console.log(`    workers ${n}: ${why}`);
  }
  if (r.roundTrips) {
    console.log(`  PostgreSQL round trips per request (explicit transactions), counted on the wire:`);
    for (const x of r.roundTrips)
      console.log(
        `    ${col(LABEL[x.path], 16, true)} hospay ${x.hospay.roundTrips} (${x.hospay.transactions})` +
          `${x.plain ? `, plain ${x.plain.roundTrips} (${x.plain.transactions})` : ''}` +
          `${x.mirror ? `, mirror ${x.mirror.roundTrips} (${x.mirror.transactions})` : ''}`,
      );
  }
  if (r.soak) {
    const s = r.soak;
    console.log(
      `  soak: barcode pay ${s.seconds} s at ${s.connections} connections: ${s.rps} req/s, p99 ${s.p99} ms, ` +
        `errors ${s.errors}, failures ${s.appFail}; RSS MB every 5 s: ${s.samples.map((x) => x.rssMb).join(' ')}` +
        ` (first ${s.firstMb}, at 10 s ${s.at10Mb}, last ${s.lastMb}, max ${s.maxMb}; median of the first ` +
        `20 s ${s.earlyMedianMb}, of the last 20 s ${s.lateMedianMb}; slope ${s.slopeMbPerMin} MB/min): ` +
        `${s.flat ? 'flat' : 'NOT flat'} (last 20 s median ≤ 1.2 × first 20 s median; ` +
        `last ≤ 1.2 × at 10 s: ${s.lastVsAt10 ? 'yes' : 'no'})`,
    );
  }
  if (r.pgbench) printPgbench(r.pgbench);
  const h = historyText.get(r.db);
  if (h) console.log(h);
  console.log(
    `  peak RSS (VmHWM): hospay ${r.hospayPeakMb} MB` +
      `${r.plainPeakMb !== null ? `, plain ${r.plainPeakMb} MB` : ''}` +
      `${r.mirrorPeakMb !== null ? `, mirror ${r.mirrorPeakMb} MB` : ''}; run took ${String(m['seconds'])} s`,
  );
}

// ---- main -----------------------------------------------------------------------------------------------------

const reports: DbReport[] = [];
for (const db of dbs) {
  const r = await benchDb(db);
  reports.push(r);
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `${r.date.slice(0, 10)}-${db}.json`);
  // Written as prettier writes JSON in this repository (its config, wherever --out points), so that a results
  // file committed for the docs passes `npm run lint`.
  const repoFile = path.join(
    path.dirname(fileURLToPath(import.meta.url)),
    '..',
    'bench',
    'results',
    'x.json',
  );
  const options = { ...((await prettier.resolveConfig(repoFile)) ?? {}), parser: 'json' };
  fs.writeFileSync(file, await prettier.format(JSON.stringify(r, null, 2), options));
  console.log(`[${db}] results written to ${file}`);
}
for (const r of reports) printReport(r);
process.exitCode = reports.some((r) => r.crashed) ? 1 : 0;
