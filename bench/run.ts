/**
 * Load benchmark of hospay against its reference (docs/performance.md). Not part of `npm test`.
 *
 * For each database (PostgreSQL, then the embedded one), hospay (`node dist/cli/index.js serve`) and the
 * reference (bench/reference-server.ts: bare Fastify, one round trip per request) run in their own processes and
 * each path is loaded with autocannon on loopback, first hospay, then the reference:
 *
 *   barcode   FWC_IF_Barcode_Pay through the simulator (paid at once)
 *   query     FWC_IF_Barcode_Pay_Query of paid trades
 *   refund    FWC_IF_Barcode_Pay_Refund, 0.01 at a time, of paid trades
 *   gateway   lc.trade.h5.pay: bodies signed RSA2 before the run (own out_trade_no and nonce_str each)
 *   notify    notification delivery: a backlog of N paid trades drained (notifications/s), then trades paid at
 *             a steady rate (delivery latency from payment to arrival at a local receiver answering "success")
 *
 * then a soak of barcode pay on hospay (RSS every 5 s: flat or not). Prints a table with req/s, p50, p99,
 * errors and each figure as a ratio to the reference; writes bench/results/<date>-<db>.json.
 *
 *   npm run bench                                     everything: PostgreSQL, then embedded
 *   npm run bench -- --db=postgres --paths=barcode,gateway --duration=20 --connections=50
 *   npm run bench -- --db=postgres --paths=barcode --soak=0 --ref=false --cpu-prof   (profile one path)
 *
 * Flags: --duration=10 (s per path and server), --rounds=2 (alternating hospay / reference), --warmup=2,
 * --connections=50, --db=postgres,embedded, --paths=barcode,query,refund,gateway,notify, --soak=60 (s; 0 = none),
 * --soak-db=postgres,embedded, --notify=1000 (backlog), --notify-rate=20 (/s), --notify-live=10 (s),
 * --gateway-rate=2500 (signed bodies made per second of load), --round-trips=false (skip counting them),
 * --pool=10 (PostgreSQL pool of both servers), --ref=false (hospay only), --cpu-prof (V8 profile of hospay,
 * summarised), --out=bench/results.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as prettier from 'prettier';
import {
  APP_PUBLIC_PEM,
  startPgCounter,
  backendsCpu,
  backendsDelta,
  cpuMs,
  merge,
  createDb,
  load,
  memoryMb,
  percentile,
  pool,
  postJson,
  postXml,
  signedH5Bodies,
  startHospay,
  startReceiver,
  startReference,
  uniq,
  xml,
  type BenchDb,
  type LoadResult,
  type Receiver,
  type Server,
} from './harness.js';
import { printProfile, summariseProfile, type ProfileSummary } from './profile.js';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k ?? '', v ?? 'true'];
  }),
);
const num = (k: string, d: number) => {
  const v = Number(args[k] ?? d);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${k} must be a number`);
  return v;
};
const list = (k: string, d: string) => (args[k] ?? d).split(',').filter(Boolean);

const ALL_PATHS = ['barcode', 'query', 'refund', 'gateway', 'notify'] as const;
type PathName = (typeof ALL_PATHS)[number];
const LABEL: Record<PathName, string> = {
  barcode: 'barcode pay',
  query: 'query',
  refund: 'refund 0.01',
  gateway: 'lc.trade.h5.pay',
  notify: 'notify delivery',
};

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
const gatewayRate = num('gateway-rate', 2500);
const withRef = args['ref'] !== 'false';
const cpuProf = args['cpu-prof'] === 'true';
const roundTripProbe = args['round-trips'] !== 'false';
const outDir = args['out'] ?? 'bench/results';
// --pool=N: the database pool of hospay (HOSPAY_DB_POOL, default 10) and of the reference, alike.
if (args['pool']) {
  process.env['HOSPAY_DB_POOL'] = args['pool'];
  process.env['REF_POOL'] = args['pool'];
}
for (const d of dbs) if (d !== 'postgres' && d !== 'embedded') throw new Error(`--db: unknown ${d}`);
for (const p of paths) if (!ALL_PATHS.includes(p)) throw new Error(`--paths: unknown ${p}`);

/** hospay's notifier settings (defaults), given to the reference's notifier too. */
const NOTIFY_INTERVAL_MS = 1000;
const NOTIFY_BATCH = 20;

// ---- what a run reports ---------------------------------------------------------------------------------------

interface Measured extends Omit<LoadResult, 'latencies'> {
  /** VmHWM of the server process after this path (its peak so far), and VmRSS then. */
  peakMb: number;
  rssMb: number;
  /** CPU time of the server process per request (ms), and of the PostgreSQL backends (null: embedded). */
  cpuMsPerReq: number;
  dbCpuMsPerReq: number | null;
  /** The server's CPU use during the load, in cores (1 = one core busy all the time). */
  serverCores: number;
}

interface PathReport {
  path: PathName;
  label: string;
  hospay: Measured;
  reference: Measured | null;
  /** hospay ÷ reference: req/s (higher is better, target ≥ 0.7) and p99 (lower is better). */
  ratio: { rps: number; p99: number; cpuPerReq: number } | null;
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
  live: { sent: number; delivered: number; rate: number; p50: number; p99: number; max: number };
  duplicates: number;
  peakMb: number;
}

interface NotifyReport {
  intervalMs: number;
  batch: number;
  hospay: NotifySide;
  reference: NotifySide | null;
  ratio: { perSecond: number; p99: number } | null;
}

interface DbReport {
  db: string;
  date: string;
  meta: Record<string, unknown>;
  paths: PathReport[];
  notify: NotifyReport | null;
  soak: SoakReport | null;
  hospayPeakMb: number;
  referencePeakMb: number | null;
  /** PostgreSQL round trips and explicit transactions per request (PostgreSQL runs only). */
  roundTrips: RoundTrips[] | null;
  crashed: string | null;
  profile: ProfileSummary | null;
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const ratio = (a: number, b: number) => (b > 0 ? r2(a / b) : 0);

function gitMeta(): Record<string, unknown> {
  const git = (...a: string[]) => {
    try {
      return execFileSync('git', a, { encoding: 'utf8' }).trim();
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

// ---- the offline door's requests ------------------------------------------------------------------------------

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

interface Target {
  server: Server;
  offline: (name: string) => string;
  gateway: string;
}

async function paidTrades(
  t: Target,
  token: string,
  n: number,
): Promise<Array<{ no: string; tradeNo: string }>> {
  return pool(Array.from({ length: n }), 10, async () => {
    const no = uniq('ZY');
    const text = await postXml(t.offline('FWC_IF_Barcode_Pay'), {
      AccessToken: token,
      OutTradeNo: no,
      ...PAY_FIELDS,
      TotalAmount: '99999.00',
    });
    const tradeNo = /<TradeNo>(\d+)<\/TradeNo>/.exec(text)?.[1];
    if (!tradeNo)
      throw new Error(`${t.server.name}: a trade for query/refund was not paid:\n${text.slice(0, 600)}`);
    return { no, tradeNo };
  });
}

type LoadOptions = { url: string; contentType: string; body: () => string | null; ok: typeof offlineOk };

type Paid = Array<{ no: string; tradeNo: string }>;

/** The requests of one path against one target: each body made when autocannon asks for it. */
function optionsFor(
  p: PathName,
  t: Target,
  token: string,
  trades: Paid,
  gatewayBodies: string[],
): LoadOptions {
  let i = 0;
  const next = () => trades[i++ % trades.length] ?? { no: '', tradeNo: '' };
  let g = 0;
  switch (p) {
    case 'barcode':
      return {
        url: t.offline('FWC_IF_Barcode_Pay'),
        contentType: 'text/xml',
        body: () => xml({ AccessToken: token, OutTradeNo: uniq('MZ'), ...PAY_FIELDS, TotalAmount: '88.88' }),
        ok: offlineOk,
      };
    case 'query':
      return {
        url: t.offline('FWC_IF_Barcode_Pay_Query'),
        contentType: 'text/xml',
        body: () => xml({ AccessToken: token, OutTradeNo: next().no }),
        ok: offlineOk,
      };
    case 'refund':
      return {
        url: t.offline('FWC_IF_Barcode_Pay_Refund'),
        contentType: 'text/xml',
        body: () => {
          const x = next();
          return xml({
            AccessToken: token,
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
        url: t.gateway,
        contentType: H5_CT,
        body: () => (g < gatewayBodies.length ? (gatewayBodies[g++] ?? null) : null),
        ok: gatewayOk,
      };
  }
}

interface Trips {
  roundTrips: number;
  transactions: number;
  /** The statements of one request, in order (their first words). */
  statements: string[];
}

interface RoundTrips {
  path: PathName;
  hospay: Trips;
  reference: Trips | null;
}

/**
 * PostgreSQL round trips per request, counted on the wire: hospay and the reference started once more with their
 * database connection through a counting relay, and each path sent `n` times one after the other.
 */
async function probeRoundTrips(db: BenchDb, adminToken: string, appId: string, token: string, n = 50) {
  const counter = await startPgCounter(db.url ?? '');
  const out: RoundTrips[] = [];
  let h: Server | null = null;
  let r: Server | null = null;
  try {
    h = await startHospay(db, { jobs: false, cpuProfDir: null, adminToken, dbUrl: counter.url });
    const hb = h.base;
    const targets: Target[] = [{ server: h, offline: (x) => `${hb}/offline/${x}`, gateway: `${hb}/gateway` }];
    if (withRef) {
      r = await startReference(db, { intervalMs: NOTIFY_INTERVAL_MS, batch: NOTIFY_BATCH }, counter.url);
      await postJson(`${r.base}/ref/setup`, {
        app_id: appId,
        access_token: token,
        public_key: APP_PUBLIC_PEM,
      });
      await postJson(`${r.base}/ref/notify/pause`, {});
      const rb = r.base;
      targets.push({ server: r, offline: (x) => `${rb}/ref/offline/${x}`, gateway: `${rb}/ref/gateway` });
    }
    const bodies = await signedH5Bodies(appId, n, {
      prefix: `RT${randomBytes(2).toString('hex')}`,
      notifyUrl: 'https://his.example.cn/pay/notify',
      returnUrl: 'https://his.example.cn/pay/return',
    });
    const paid = new Map<Target, Paid>();
    for (const t of targets) paid.set(t, await paidTrades(t, token, 10));
    for (const p of paths.filter((x) => x !== 'notify')) {
      const counts: Trips[] = [];
      for (const t of targets) {
        const o = optionsFor(p, t, token, paid.get(t) ?? [], bodies);
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
          if (!o.ok(res.status, text)) throw new Error(`round-trip probe ${p}: ${text.slice(0, 400)}`);
          if (k === n - 1) statements = [...counter.statements];
          counter.capture = false;
        }
        // hospay records its channel calls after answering: let the last one land.
        await new Promise((res) => setTimeout(res, 300));
        counts.push({
          roundTrips: r2(counter.counts.roundTrips / n),
          transactions: r2(counter.counts.begins / n),
          statements,
        });
      }
      out.push({
        path: p,
        hospay: counts[0] ?? { roundTrips: 0, transactions: 0, statements: [] },
        reference: counts[1] ?? null,
      });
    }
  } finally {
    await h?.stop();
    await r?.stop();
    await counter.close();
  }
  return out;
}

/**
 * One path on every target: a warm-up each, then `rounds` alternating rounds (hospay, reference, hospay, …) of
 * duration ÷ rounds seconds, so that a machine getting busier or quieter during the run weighs on both alike.
 */
async function measureAll(
  db: BenchDb,
  targets: Target[],
  opts: Map<Target, LoadOptions>,
): Promise<Measured[]> {
  const parts = new Map<Target, LoadResult[]>(targets.map((t) => [t, []]));
  const cpu = new Map<Target, { server: number; db: number }>(targets.map((t) => [t, { server: 0, db: 0 }]));
  const check = (t: Target) => {
    if (t.server.proc.exitCode !== null || t.server.proc.signalCode !== null)
      throw new Error(`${t.server.name} exited during the load:\n${t.server.output().slice(-4000)}`);
  };
  if (warmup > 0)
    for (const t of targets) await load({ ...(opts.get(t) as LoadOptions), connections, duration: warmup });
  for (let k = 0; k < rounds; k++) {
    for (const t of targets) {
      const c = cpu.get(t) as { server: number; db: number };
      const db0 = db.url ? await backendsCpu(db.url) : null;
      const s0 = cpuMs(t.server.pid);
      parts
        .get(t)
        ?.push(await load({ ...(opts.get(t) as LoadOptions), connections, duration: duration / rounds }));
      c.server += cpuMs(t.server.pid) - s0;
      if (db.url && db0) c.db += backendsDelta(db0, await backendsCpu(db.url));
      check(t);
    }
  }
  return targets.map((t) => {
    const m = memoryMb(t.server.pid);
    const { latencies: _all, ...merged } = merge(parts.get(t) ?? []);
    const c = cpu.get(t) as { server: number; db: number };
    const per = (ms: number) => (merged.requests ? Math.round((ms / merged.requests) * 1000) / 1000 : 0);
    return {
      ...merged,
      cpuMsPerReq: per(c.server),
      dbCpuMsPerReq: db.url ? per(c.db) : null,
      serverCores: r2(c.server / 1000 / Math.max(merged.seconds, 0.001)),
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

async function notifyHospay(db: BenchDb, adminToken: string, appId: string, receiver: Receiver) {
  const liveN = Math.round(notifyRate * notifyLive);
  const bodies = await signedH5Bodies(appId, notifyN + liveN, {
    prefix: `NT${randomBytes(2).toString('hex')}`,
    notifyUrl: receiver.url,
    returnUrl: 'https://his.example.cn/pay/return',
  });
  // The backlog: paid by a server whose jobs are off, so nothing is delivered yet.
  const maker = await startHospay(db, { jobs: false, cpuProfDir: null, adminToken });
  let backlog: string[];
  try {
    backlog = (await pool(bodies.slice(0, notifyN), 16, (b) => payH5(maker.base, b))).map((p) => p.no);
  } finally {
    await maker.stop();
  }
  const dup0 = receiver.duplicates;
  const server = await startHospay(db, { jobs: true, cpuProfDir: null, adminToken });
  const readyAt = performance.now();
  try {
    const drained = await receiver.waitFor(backlog, 300_000);
    if (!drained) console.warn('  hospay: not every notification of the backlog arrived within 300 s');
    const live = await paced(liveN, notifyRate, (i) => payH5(server.base, bodies[notifyN + i] ?? ''));
    await receiver.waitFor(
      live.map((l) => l.no),
      60_000,
    );
    return notifySide(receiver, backlog, readyAt, live, memoryMb(server.pid).peak, dup0);
  } finally {
    await server.stop();
  }
}

async function notifyReference(ref: Server, appId: string, receiver: Receiver) {
  const liveN = Math.round(notifyRate * notifyLive);
  const prefix = `RS${randomBytes(2).toString('hex')}`;
  await postJson(`${ref.base}/ref/notify/pause`, {});
  await postJson(`${ref.base}/ref/notify/seed`, { app_id: appId, n: notifyN, url: receiver.url, prefix });
  const backlog = Array.from({ length: notifyN }, (_, i) => `${prefix}${i + 1}`);
  const dup0 = receiver.duplicates;
  await postJson(`${ref.base}/ref/notify/resume`, {});
  const readyAt = performance.now();
  const drained = await receiver.waitFor(backlog, 300_000);
  if (!drained) console.warn('  reference: not every notification of the backlog arrived within 300 s');
  const live = await paced(liveN, notifyRate, async () => {
    const no = uniq('RL');
    await postJson(`${ref.base}/ref/notify/pay`, { app_id: appId, out_trade_no: no, url: receiver.url });
    return { no, paidAt: performance.now() };
  });
  await receiver.waitFor(
    live.map((l) => l.no),
    60_000,
  );
  return notifySide(receiver, backlog, readyAt, live, memoryMb(ref.pid).peak, dup0);
}

// ---- one database ---------------------------------------------------------------------------------------------

async function soakRun(t: Target, token: string): Promise<SoakReport> {
  // RSS read every second; every fifth reading is the 5-s series shown. The verdict uses the medians of the
  // 1-s readings of the first and the last 20 s, which a garbage collection's saw-tooth tops do not sway.
  const every: Array<{ t: number; rssMb: number }> = [];
  const t0 = Date.now();
  const timer = setInterval(() => {
    every.push({ t: Math.round((Date.now() - t0) / 1000), rssMb: memoryMb(t.server.pid).rss });
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
    peakMb: memoryMb(t.server.pid).peak,
    lastVsAt10: last <= 1.2 * at10,
    earlyMedianMb: median(early),
    lateMedianMb: median(late),
    earlyMaxMb: Math.max(0, ...early),
    lateMaxMb: Math.max(0, ...late),
    slopeMbPerMin: r2(slope),
    flat: median(late) <= 1.2 * median(early),
  };
}

async function benchDb(kind: 'postgres' | 'embedded'): Promise<DbReport> {
  const started = Date.now();
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
    },
    paths: [],
    notify: null,
    soak: null,
    hospayPeakMb: 0,
    referencePeakMb: null,
    roundTrips: null,
    crashed: null,
    profile: null,
  };
  const adminToken = randomBytes(24).toString('hex');
  const profDir = cpuProf ? fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-prof-')) : null;
  const db = await createDb(kind);
  let hospay: Server | null = null;
  let ref: Server | null = null;
  let receiver: Receiver | null = null;
  try {
    hospay = await startHospay(db, { jobs: true, cpuProfDir: profDir, adminToken });
    const created = (await postJson(
      `${hospay.base}/admin/apps`,
      { name: '基准测试 bench', hospital_id: 'BENCH' },
      adminToken,
    )) as { app_id: string; access_token: string };
    const appId = created.app_id;
    const token = created.access_token;
    await postJson(
      `${hospay.base}/admin/apps/${appId}/public-key`,
      { public_key: APP_PUBLIC_PEM },
      adminToken,
      'PUT',
    );
    if (withRef) {
      ref = await startReference(db, { intervalMs: NOTIFY_INTERVAL_MS, batch: NOTIFY_BATCH });
      await postJson(`${ref.base}/ref/setup`, {
        app_id: appId,
        access_token: token,
        public_key: APP_PUBLIC_PEM,
        hospital_id: 'BENCH',
      });
    }
    const h = hospay;
    const targets: Target[] = [
      { server: h, offline: (n) => `${h.base}/offline/${n}`, gateway: `${h.base}/gateway` },
    ];
    if (ref) {
      const r = ref;
      targets.push({
        server: r,
        offline: (n) => `${r.base}/ref/offline/${n}`,
        gateway: `${r.base}/ref/gateway`,
      });
    }

    const paid = new Map<Target, Array<{ no: string; tradeNo: string }>>();
    let gatewayBodies: string[] = [];
    for (const p of paths.filter((x) => x !== 'notify')) {
      console.log(`[${kind}] ${LABEL[p]} …`);
      if ((p === 'query' || p === 'refund') && paid.size === 0)
        for (const t of targets) paid.set(t, await paidTrades(t, token, 500));
      if (p === 'gateway')
        gatewayBodies = await signedH5Bodies(appId, Math.ceil(gatewayRate * (duration + warmup)), {
          prefix: `GW${randomBytes(2).toString('hex')}`,
          notifyUrl: 'https://his.example.cn/pay/notify',
          returnUrl: 'https://his.example.cn/pay/return',
        });
      const opts = new Map<Target, LoadOptions>();
      for (const t of targets) {
        const o = optionsFor(p, t, token, paid.get(t) ?? [], gatewayBodies);
        opts.set(t, o);
      }
      const results = await measureAll(db, targets, opts);
      const [hs, rs] = results as [Measured, Measured | undefined];
      report.paths.push({
        path: p,
        label: LABEL[p],
        hospay: hs,
        reference: rs ?? null,
        ratio: rs
          ? {
              rps: ratio(hs.rps, rs.rps),
              p99: ratio(hs.p99, rs.p99),
              cpuPerReq: ratio(hs.cpuMsPerReq, rs.cpuMsPerReq),
            }
          : null,
      });
      printPath(report.paths[report.paths.length - 1] as PathReport);
    }
    gatewayBodies = [];

    if (soak > 0 && soakDbs.includes(kind)) {
      console.log(`[${kind}] soak: barcode pay for ${soak} s …`);
      report.soak = await soakRun(targets[0] as Target, token);
    }
    report.hospayPeakMb = memoryMb(h.pid).peak;
    await h.stop();
    hospay = null;

    if (paths.includes('notify')) {
      console.log(
        `[${kind}] notification delivery: backlog of ${notifyN}, then ${notifyRate}/s for ${notifyLive} s …`,
      );
      receiver = await startReceiver();
      const hs = await notifyHospay(db, adminToken, appId, receiver);
      const rs = ref ? await notifyReference(ref, appId, receiver) : null;
      report.notify = {
        intervalMs: NOTIFY_INTERVAL_MS,
        batch: NOTIFY_BATCH,
        hospay: hs,
        reference: rs,
        ratio: rs
          ? { perSecond: ratio(hs.perSecond, rs.perSecond), p99: ratio(hs.live.p99, rs.live.p99) }
          : null,
      };
      report.hospayPeakMb = Math.max(report.hospayPeakMb, hs.peakMb);
    }
    if (ref) report.referencePeakMb = memoryMb(ref.pid).peak;
    await ref?.stop();
    ref = null;
    if (kind === 'postgres' && roundTripProbe && paths.some((p) => p !== 'notify')) {
      console.log(`[${kind}] counting database round trips per request …`);
      report.roundTrips = await probeRoundTrips(db, adminToken, appId, token);
    }
  } catch (e) {
    report.crashed = e instanceof Error ? e.message : String(e);
    console.error(`[${kind}] run failed: ${report.crashed}`);
  } finally {
    await receiver?.close();
    await hospay?.stop();
    await ref?.stop();
    await db.drop();
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

// ---- printing -------------------------------------------------------------------------------------------------

const col = (s: string | number, w: number, left = false) =>
  left ? String(s).padEnd(w) : String(s).padStart(w);
const pct = (x: number) => `${Math.round(x * 100)} %`;

function lineOf(label: string, who: string, m: Measured, r: PathReport['ratio']): string {
  return [
    col(label, 16, true),
    col(who, 10, true),
    col(m.rps, 7),
    col(m.p50, 6),
    col(m.p99, 6),
    col(`${m.errors}/${m.non2xx}/${m.appFail}`, 12),
    col(r ? pct(r.rps) : '', 9),
    col(r ? `${r.p99}×` : '', 8),
    col(m.peakMb, 6),
    col(`${m.cpuMsPerReq.toFixed(2)}${m.dbCpuMsPerReq !== null ? `+${m.dbCpuMsPerReq.toFixed(2)}` : ''}`, 11),
    col(m.serverCores.toFixed(2), 5),
    m.exhausted ? '  (bodies ran out)' : '',
  ].join(' ');
}

const HEADER = [
  col('path', 16, true),
  col('server', 10, true),
  col('req/s', 7),
  col('p50', 6),
  col('p99', 6),
  col('err/non2xx/fail', 12),
  col('req/s÷ref', 9),
  col('p99÷ref', 8),
  col('peakMB', 6),
  col('cpu ms/req', 11),
  col('cores', 5),
].join(' ');

function printPath(p: PathReport): void {
  console.log(`  ${lineOf(p.label, 'hospay', p.hospay, p.ratio)}`);
  if (p.reference) console.log(`  ${lineOf('', 'reference', p.reference, null)}`);
}

function printReport(r: DbReport): void {
  const m = r.meta;
  console.log(
    `\n== ${r.db}: ${connections} connections, ${duration} s per path (after ${warmup} s warm-up), ` +
      `${String(m['cpus'])} cores, Node ${String(m['node'])}, commit ${String(m['commit'])}` +
      `${(m['uncommittedSrc'] as string[]).length ? ' + uncommitted src changes' : ''}, ` +
      `load average ${JSON.stringify(m['loadavgBefore'])} → ${JSON.stringify(m['loadavgAfter'])}`,
  );
  if (r.crashed) console.log(`  RUN FAILED: ${r.crashed.slice(0, 2000)}`);
  console.log(
    `  latency in ms; ratios hospay ÷ reference (req/s target ≥ 70 %, p99 target < 50 ms); ` +
      `cpu ms/req = server process (+ PostgreSQL backends); cores = the server's CPU use during the load`,
  );
  console.log(`  ${HEADER}`);
  for (const p of r.paths) printPath(p);
  const n = r.notify;
  if (n) {
    const side = (who: string, s: NotifySide, rt: NotifyReport['ratio']) =>
      console.log(
        `  ${col('notify delivery', 16, true)} ${col(who, 10, true)} ${col(s.perSecond, 7)} notifications/s ` +
          `(backlog ${s.delivered}/${s.backlog} in ${s.drainSeconds} s, first after ${s.firstAfterMs} ms, ` +
          `waited p50 ${s.drainWait.p50} p99 ${s.drainWait.p99} ms); ` +
          `live ${s.live.rate}/s: latency p50 ${s.live.p50} ms p99 ${s.live.p99} ms ` +
          `(${s.live.delivered}/${s.live.sent})${s.duplicates ? `, ${s.duplicates} duplicates` : ''}` +
          `${rt ? `; ÷ref ${pct(rt.perSecond)} /s, p99 ${rt.p99}×` : ''}`,
      );
    side('hospay', n.hospay, n.ratio);
    if (n.reference) side('reference', n.reference, null);
  }
  if (r.roundTrips) {
    console.log(`  PostgreSQL round trips per request (explicit transactions), counted on the wire:`);
    for (const x of r.roundTrips)
      console.log(
        `    ${col(LABEL[x.path], 16, true)} hospay ${x.hospay.roundTrips} (${x.hospay.transactions})` +
          `${x.reference ? `, reference ${x.reference.roundTrips} (${x.reference.transactions})` : ''}`,
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
  console.log(
    `  peak RSS (VmHWM): hospay ${r.hospayPeakMb} MB` +
      `${r.referencePeakMb !== null ? `, reference ${r.referencePeakMb} MB` : ''}; run took ${String(m['seconds'])} s`,
  );
}

// ---- main -----------------------------------------------------------------------------------------------------

const reports: DbReport[] = [];
for (const db of dbs) {
  const r = await benchDb(db);
  reports.push(r);
  fs.mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `${r.date.slice(0, 10)}-${db}.json`);
  // Written as prettier writes JSON, so that a results file committed for the docs passes `npm run lint`.
  const options = { ...((await prettier.resolveConfig(file)) ?? {}), parser: 'json' };
  fs.writeFileSync(file, await prettier.format(JSON.stringify(r, null, 2), options));
  console.log(`[${db}] results written to ${file}`);
}
for (const r of reports) printReport(r);
process.exitCode = reports.some((r) => r.crashed) ? 1 : 0;
