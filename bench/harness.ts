/**
 * The benchmark's machinery (bench/run.ts): a database per run, hospay, the plain reference
 * (bench/plain/reference-server.js) and the mirror reference (bench/reference-server.ts) in their own processes,
 * their memory and CPU (a process and its children), signed gateway bodies made ahead of the load, a
 * notification receiver, one autocannon load with its figures, and pgbench.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import net, { type AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import pg from 'pg';

export const PG_ADMIN = process.env['HOSPAY_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const APP_KEY_PEM = fs.readFileSync('test/fixtures/keys/test-app-2048.pem', 'utf8');
export const APP_PUBLIC_PEM = fs.readFileSync('test/fixtures/keys/test-app-2048.pub.pem', 'utf8');

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Every child this run started, so that a failing or interrupted run leaves none behind. */
const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

// ---- the database of one run --------------------------------------------------------------------------------

export interface BenchDb {
  kind: 'postgres' | 'embedded';
  /** PostgreSQL: the URL of this run's database (hospay's tables and the reference's ref_* tables). */
  url: string | null;
  /** hospay's data directory (embedded: the database itself; PostgreSQL: the admin token file). */
  dataDir: string;
  /** The reference's own embedded database (embedded runs only). */
  refDataDir: string;
  drop(): Promise<void>;
}

export async function createDb(kind: 'postgres' | 'embedded'): Promise<BenchDb> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-bench-'));
  const refDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-bench-ref-'));
  const rmDirs = () => {
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(refDataDir, { recursive: true, force: true });
  };
  if (kind === 'embedded') return { kind, url: null, dataDir, refDataDir, drop: async () => rmDirs() };
  const name = `hospay_bench_${randomBytes(4).toString('hex')}`;
  const c = new pg.Client({ connectionString: PG_ADMIN });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  const url = new URL(PG_ADMIN);
  url.pathname = `/${name}`;
  return {
    kind,
    url: url.toString(),
    dataDir,
    refDataDir,
    async drop() {
      const d = new pg.Client({ connectionString: PG_ADMIN });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
      rmDirs();
    },
  };
}

// ---- servers in their own processes -------------------------------------------------------------------------

export interface Server {
  name: 'hospay' | 'reference' | 'plain';
  proc: ChildProcess;
  pid: number;
  base: string;
  output: () => string;
  stop(): Promise<void>;
}

async function startProcess(
  name: Server['name'],
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
): Promise<{ proc: ChildProcess; base: string; output: () => string }> {
  const proc = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  // Keep the start of the output (banners) and the latest errors, not everything a long run prints.
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 200_000) out = out.slice(0, 20_000) + '\n…\n' + out.slice(-100_000);
  };
  proc.stdout?.on('data', keep);
  proc.stderr?.on('data', keep);
  const deadline = Date.now() + 90_000;
  let m = ready.exec(out);
  while (!m) {
    if (Date.now() > deadline || proc.exitCode !== null)
      throw new Error(`${name} did not start (exit ${proc.exitCode}):\n${out.slice(-4000)}`);
    await sleep(50);
    m = ready.exec(out);
  }
  return { proc, base: m[1] ?? '', output: () => out };
}

async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) {
    children.delete(proc);
    return;
  }
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), 30_000);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    proc.kill('SIGTERM');
  });
  children.delete(proc);
}

export interface HospayOptions {
  jobs: boolean;
  /** Directory for a V8 CPU profile of the server (node --cpu-prof), or null. */
  cpuProfDir: string | null;
  adminToken: string;
  extraEnv?: Record<string, string>;
  /** Connect through this URL instead of the run's database URL (the round-trip counter). */
  dbUrl?: string;
  /**
   * `hospay serve --workers N`: N processes behind one port (measure their CPU with treeCpu). Default 1, always
   * passed, so that the benchmark's servers stay one process whatever serve's own default (the number of cores
   * on PostgreSQL). When serve does not know the flag (an older build), N = 1 falls back to a plain `serve` (one
   * process, the same thing) and N > 1 throws WorkersUnsupported.
   */
  workers?: number;
}

/** `hospay serve` refused `--workers` (an older build): the worker-scaling section prints n/a. */
export class WorkersUnsupported extends Error {}

/** Whether this build's `serve` accepts `--workers`: unknown until a server was started with it. */
let workersFlag: boolean | null = null;

export async function startHospay(db: BenchDb, o: HospayOptions): Promise<Server> {
  const port = 21000 + Math.floor(Math.random() * 20000);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LOG_LEVEL: 'warn',
    PORT: String(port),
    HOST: '127.0.0.1',
    PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    HOSPAY_DATA_DIR: db.dataDir,
    HOSPAY_ADMIN_TOKEN: o.adminToken,
    HOSPAY_MASTER_KEY: 'ab'.repeat(32),
    HOSPAY_JOBS: o.jobs ? 'on' : 'off',
    // The benchmark's notification receiver listens on 127.0.0.1.
    HOSPAY_NOTIFY_ALLOW_LOOPBACK: '1',
    ...o.extraEnv,
  };
  if (db.url) env['DATABASE_URL'] = o.dbUrl ?? db.url;
  else delete env['DATABASE_URL'];
  const nodeArgs = o.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfDir}`] : [];
  const n = o.workers ?? 1;
  if (n > 1 && workersFlag === false) throw new WorkersUnsupported('hospay serve does not accept --workers');
  const withFlag = workersFlag !== false;
  let p: Awaited<ReturnType<typeof startProcess>>;
  try {
    p = await startProcess(
      'hospay',
      [...nodeArgs, 'dist/cli/index.js', 'serve', ...(withFlag ? ['--workers', String(n)] : [])],
      env,
      /hospay is serving on (http:\/\/\S+)/,
    );
    if (withFlag) workersFlag = true;
  } catch (e) {
    const text = e instanceof Error ? e.message : String(e);
    // parseArgs' refusal: "Unknown option '--workers'" (a usage error, before anything is started).
    if (!withFlag || !/unknown option '--workers'/i.test(text)) throw e;
    workersFlag = false;
    if (n > 1) throw new WorkersUnsupported('hospay serve does not accept --workers');
    return startHospay(db, o);
  }
  return {
    name: 'hospay',
    proc: p.proc,
    pid: p.proc.pid ?? 0,
    base: `http://127.0.0.1:${port}`,
    output: p.output,
    stop: () => stopTree(p.proc),
  };
}

/** Stops a server and then any process it had started that outlived it (workers of `serve --workers`). */
async function stopTree(proc: ChildProcess): Promise<void> {
  const kids = proc.pid ? descendants(proc.pid) : [];
  await stopProcess(proc);
  const deadline = Date.now() + 10_000;
  for (const pid of kids) {
    while (alive(pid) && Date.now() < deadline) await sleep(50);
    if (alive(pid)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone meanwhile */
      }
    }
  }
}

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

export async function startReference(
  db: BenchDb,
  notify: { intervalMs: number; batch: number },
  dbUrl?: string,
): Promise<Server> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    REF_PORT: '0',
    REF_NOTIFY_INTERVAL_MS: String(notify.intervalMs),
    REF_NOTIFY_BATCH: String(notify.batch),
  };
  if (db.url) env['REF_DATABASE_URL'] = dbUrl ?? db.url;
  else env['REF_DATA_DIR'] = db.refDataDir;
  const p = await startProcess(
    'reference',
    ['--import', 'tsx', 'bench/reference-server.ts'],
    env,
    /reference serving on (http:\/\/\S+)/,
  );
  return {
    name: 'reference',
    proc: p.proc,
    pid: p.proc.pid ?? 0,
    base: p.base,
    output: p.output,
    stop: () => stopProcess(p.proc),
  };
}

// ---- the plain reference (bench/plain/reference-server.js, vendored from ../shared/perf) -------------------

/** What the plain reference reads from keys.json (../shared/perf/genkeys.js's logic, made at run time). */
export interface PlainKeys {
  /** Signs the load's /gw-cte bodies; the reference verifies them with merchantPub. */
  merchantPriv: string;
  merchantPub: string;
  /** The reference signs its answers with gwPriv. */
  gwPriv: string;
  gwPub: string;
}

export function plainKeys(): PlainKeys {
  const m = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const g = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    merchantPriv: m.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    merchantPub: m.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    gwPriv: g.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    gwPub: g.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** The plain reference's own database: its README's two tables and index, pay_order filled for /xml-read. */
export interface PlainDb {
  url: string;
  name: string;
  /** Rows put in pay_order before the run; their order numbers are plainOrderNo(1 … rows). */
  rows: number;
  drop(): Promise<void>;
}

export const plainOrderNo = (i: number) => `PO${i}`;

/**
 * A database of its own (not hospay's), so that the PostgreSQL CPU read for the plain reference is that of its
 * own backends only, and hospay's tables never see the reference's.
 */
export async function createPlainDb(rows: number): Promise<PlainDb> {
  const name = `hospay_bench_plain_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(PG_ADMIN);
  url.pathname = `/${name}`;
  const c = new pg.Client({ connectionString: url.toString() });
  await c.connect();
  try {
    // As ../shared/perf/README.md says.
    await c.query(
      'CREATE TABLE pay_order(id bigserial primary key, out_trade_no text not null, merchant_id int, amount_fen bigint, status text)',
    );
    await c.query(
      'CREATE TABLE outbox(id bigserial primary key, order_id bigint, event text, payload jsonb)',
    );
    await c.query(
      `INSERT INTO pay_order(out_trade_no, merchant_id, amount_fen, status)
       SELECT 'PO' || g, 1, 9999900, 'TRADE_SUCCESS' FROM generate_series(1, $1::int) g`,
      [rows],
    );
    await c.query('CREATE INDEX ON pay_order(out_trade_no)');
    await c.query('ANALYZE pay_order');
  } finally {
    await c.end();
  }
  return {
    url: url.toString(),
    name,
    rows,
    async drop() {
      const d = new pg.Client({ connectionString: PG_ADMIN });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    },
  };
}

const PLAIN_SERVER = path.resolve('bench/plain/reference-server.js');

/**
 * Starts the vendored plain reference unchanged: copied into a temporary directory with its keys.json (it is
 * CommonJS and reads ./keys.json; this package is ESM), run with NODE_PATH=<repo>/node_modules, PGDATABASE,
 * PGPORT (of `dbUrl`, e.g. the round-trip counter, or of the plain database) and POOL (REF_POOL, from --pool).
 * The reference always connects to 127.0.0.1 as postgres.
 */
export async function startPlain(pdb: PlainDb, keys: PlainKeys, dbUrl?: string): Promise<Server> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-bench-plain-'));
  const file = path.join(dir, 'reference-server.js');
  fs.copyFileSync(PLAIN_SERVER, file);
  fs.writeFileSync(path.join(dir, 'keys.json'), JSON.stringify(keys));
  const port = 21000 + Math.floor(Math.random() * 20000);
  const via = new URL(dbUrl ?? pdb.url);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_PATH: path.resolve('node_modules'),
    PORT: String(port),
    PGDATABASE: pdb.name,
    PGPORT: via.port || '5432',
  };
  if (process.env['REF_POOL']) env['POOL'] = process.env['REF_POOL'];
  let p: Awaited<ReturnType<typeof startProcess>>;
  try {
    p = await startProcess('plain', [file], env, /listening (\d+)/);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    name: 'plain',
    proc: p.proc,
    pid: p.proc.pid ?? 0,
    base: `http://127.0.0.1:${port}`,
    output: p.output,
    async stop() {
      await stopProcess(p.proc);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- memory ---------------------------------------------------------------------------------------------------

/** VmHWM (peak resident set) and VmRSS (now) of a process, in MB; 0 when it cannot be read. */
export function memoryMb(pid: number): { peak: number; rss: number } {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { peak: Math.round(kb('VmHWM') / 1024), rss: Math.round(kb('VmRSS') / 1024) };
  } catch {
    return { peak: 0, rss: 0 };
  }
}

// ---- CPU -------------------------------------------------------------------------------------------------------

/** CPU time (user + system) a process has used so far, in ms (Linux clock ticks of 10 ms); 0 if unreadable. */
export function cpuMs(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}

/** The parent pid of a process (0 if unreadable). */
function ppidOf(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * Every live descendant of a process (children, their children, …), found by scanning /proc for parent pids
 * (a process's threads, e.g. worker_threads, are in its own figures already).
 */
export function descendants(root: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const e of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    const pp = ppidOf(pid);
    if (!pp) continue;
    const list = byParent.get(pp);
    if (list) list.push(pid);
    else byParent.set(pp, [pid]);
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const c of byParent.get(pid) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(root);
  return out;
}

/**
 * CPU time of a process and its live descendants so far, per pid (ms). Taken before and after a load, the
 * difference (treeDelta) is what `serve --workers N` used in all its processes.
 */
export function treeCpu(pid: number): Map<number, number> {
  return new Map([pid, ...descendants(pid)].map((p) => [p, cpuMs(p)]));
}

/** CPU ms a process tree used between two snapshots (a process that appeared in between counts in full). */
export function treeDelta(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, ms] of after) sum += Math.max(0, ms - (before.get(pid) ?? 0));
  return sum;
}

/** memoryMb summed over a process and its live descendants (one process: the same as memoryMb). */
export function treeMemoryMb(pid: number): { peak: number; rss: number } {
  const all = [pid, ...descendants(pid)].map(memoryMb);
  return { peak: all.reduce((a, m) => a + m.peak, 0), rss: all.reduce((a, m) => a + m.rss, 0) };
}

/**
 * CPU time of the PostgreSQL backends serving one database, per backend pid (the server must run on this
 * machine, as in the benchmark). Taken before and after a load, the difference is the database's share of it.
 */
export async function backendsCpu(url: string): Promise<Map<number, number>> {
  const name = new URL(url).pathname.slice(1);
  const c = new pg.Client({ connectionString: PG_ADMIN });
  await c.connect();
  try {
    const r = await c.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name]);
    return new Map(r.rows.map((row) => [row.pid, cpuMs(row.pid)]));
  } finally {
    await c.end();
  }
}

/** CPU ms the backends used between two snapshots (a backend that appeared in between counts in full). */
export function backendsDelta(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [pid, ms] of after) sum += Math.max(0, ms - (before.get(pid) ?? 0));
  return sum;
}

// ---- counting database round trips -----------------------------------------------------------------------------

export interface PgCounter {
  /** A URL of the same database through the counter. */
  url: string;
  /** Round trips (a simple Query, or a Sync ending an extended-protocol query), explicit BEGINs. */
  counts: { roundTrips: number; begins: number };
  /** The statements sent since the last reset (their first words), when `capture` is on. */
  statements: string[];
  capture: boolean;
  reset(): void;
  close(): Promise<void>;
}

/**
 * A TCP relay in front of PostgreSQL that reads the frontend messages going through it and counts the round
 * trips the client makes: every 'Q' (simple query) and every 'S' (Sync, which ends an extended-protocol query
 * and waits for its answer). Only for a short sequential probe; never under load.
 */
export async function startPgCounter(url: string): Promise<PgCounter> {
  const target = new URL(url);
  const counts = { roundTrips: 0, begins: 0 };
  const self = { capture: false, statements: [] as string[] };
  const head = (text: string) => text.replace(/\s+/g, ' ').trim().slice(0, 90);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    let buf = Buffer.alloc(0);
    let started = false;
    const prepared = new Map<string, string>();
    client.on('data', (d: Buffer) => {
      upstream.write(d);
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (!started) {
          if (buf.length < 8) break;
          const len = buf.readInt32BE(0);
          if (buf.length < len) break;
          const code = buf.readInt32BE(4);
          if (code !== 80877103 && code !== 80877104) started = true; // not an SSL/GSS request: the startup
          buf = buf.subarray(len);
          continue;
        }
        if (buf.length < 5) break;
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) break;
        const type = String.fromCharCode(buf[0] ?? 0);
        if (type === 'Q' || type === 'S') counts.roundTrips++;
        if (type === 'Q') {
          const text = buf.toString('utf8', 5, 1 + len - 1);
          if (/^\s*(begin|start transaction)/i.test(text)) counts.begins++;
          if (self.capture) self.statements.push(head(text));
        }
        if (type === 'P') {
          // Parse: statement name, then the query text, each NUL-terminated. A named (prepared) statement is
          // parsed once per connection and later only bound by its name: remember its text.
          const nameEnd = buf.indexOf(0, 5);
          const queryEnd = buf.indexOf(0, nameEnd + 1);
          if (nameEnd > 0 && queryEnd > nameEnd) {
            const name = buf.toString('utf8', 5, nameEnd);
            const text = buf.toString('utf8', nameEnd + 1, queryEnd);
            if (name) prepared.set(name, text);
            else if (self.capture) self.statements.push(head(text));
          }
        }
        if (type === 'B' && self.capture) {
          // Bind: portal name, then statement name, each NUL-terminated.
          const portalEnd = buf.indexOf(0, 5);
          const nameEnd = buf.indexOf(0, portalEnd + 1);
          const name =
            portalEnd > 0 && nameEnd > portalEnd ? buf.toString('utf8', portalEnd + 1, nameEnd) : '';
          if (name) self.statements.push(head(prepared.get(name) ?? `(prepared statement ${name})`));
        }
        buf = buf.subarray(1 + len);
      }
    });
    upstream.on('data', (d: Buffer) => client.write(d));
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const via = new URL(url);
  via.hostname = '127.0.0.1';
  via.port = String((server.address() as AddressInfo).port);
  return {
    url: via.toString(),
    counts,
    get statements() {
      return self.statements;
    },
    get capture() {
      return self.capture;
    },
    set capture(on: boolean) {
      self.capture = on;
    },
    reset() {
      counts.roundTrips = 0;
      counts.begins = 0;
      self.statements = [];
    },
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

// ---- HTTP helpers ---------------------------------------------------------------------------------------------

export async function postJson(
  url: string,
  body: unknown,
  token?: string,
  method = 'POST',
): Promise<unknown> {
  const res = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${url}: HTTP ${res.status} ${text.slice(0, 300)}`);
  return text ? (JSON.parse(text) as unknown) : null;
}

export const xml = (fields: Record<string, string>) =>
  `<?xml version="1.0" encoding="utf-8"?><xml><head>${Object.entries(fields)
    .map(([k, v]) => `<${k}>${v}</${k}>`)
    .join('')}</head><body></body><sign></sign></xml>`;

export async function postXml(url: string, fields: Record<string, string>): Promise<string> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'text/xml' }, body: xml(fields) });
  return r.text();
}

let seq = 0;
/** A unique order number: letters, digits; at most 32 characters. */
export const uniq = (prefix: string) =>
  `${prefix}${Date.now().toString(36)}${(seq++).toString(36)}${randomBytes(3).toString('hex')}`;

/** Runs `fn` over `items` with at most `n` at a time. */
export async function pool<T, R>(
  items: T[],
  n: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i] as T, i);
      }
    }),
  );
  return out;
}

// ---- signed gateway bodies, made before the load --------------------------------------------------------------

const H5_SIGNER = `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const key = crypto.createPrivateKey(workerData.pem);
const out = [];
for (const p of workerData.items) {
  const content = Object.keys(p).filter((k) => p[k] !== '').sort().map((k) => k + '=' + p[k]).join('&');
  const sign = crypto.createSign('RSA-SHA256').update(content, 'utf8').sign(key, 'base64');
  out.push(new URLSearchParams({ ...p, sign }).toString());
}
parentPort.postMessage(out);
`;

/** The plain reference's rule (its `canon`): every field but sign, empty ones left out, sorted, k=v joined by &. */
const GW_SIGNER = `
const { parentPort, workerData } = require('node:worker_threads');
const crypto = require('node:crypto');
const key = crypto.createPrivateKey(workerData.pem);
const out = [];
for (const p of workerData.items) {
  const canon = Object.keys(p).filter((k) => k !== 'sign' && p[k] !== '').sort().map((k) => k + '=' + p[k]).join('&');
  const sign = crypto.sign('sha256', Buffer.from(canon), key).toString('base64');
  out.push('<xml>' + Object.keys(p).map((k) => '<' + k + '>' + p[k] + '</' + k + '>').join('') +
    '<sign>' + sign + '</sign></xml>');
}
parentPort.postMessage(out);
`;

/** Signs `items` with `code` (one of the signers above) on worker threads; the bodies in order. */
async function signOnWorkers(
  code: string,
  pem: string,
  items: Array<Record<string, string>>,
): Promise<string[]> {
  const workers = Math.max(1, Math.min(os.cpus().length, 4));
  const per = Math.ceil(items.length / workers);
  const parts = await Promise.all(
    Array.from(
      { length: workers },
      (_, w) =>
        new Promise<string[]>((resolve, reject) => {
          const worker = new Worker(code, {
            eval: true,
            workerData: { pem, items: items.slice(w * per, (w + 1) * per) },
          });
          worker.once('message', (m: string[]) => {
            resolve(m);
            void worker.terminate();
          });
          worker.once('error', reject);
        }),
    ),
  );
  return parts.flat();
}

function shanghai(d: Date): string {
  const l = new Date(d.getTime() + 8 * 3_600_000);
  return l.toISOString().slice(0, 19).replace('T', ' ');
}

/**
 * `n` signed lc.trade.h5.pay forms (RSA2 with the public test key), each with its own out_trade_no and
 * nonce_str, signed on worker threads so that the load generator only hands them out.
 */
export async function signedH5Bodies(
  appId: string,
  n: number,
  o: { prefix: string; notifyUrl: string; returnUrl: string },
): Promise<string[]> {
  const timestamp = shanghai(new Date());
  const items = Array.from({ length: n }, (_, i) => ({
    app_id: appId,
    method: 'lc.trade.h5.pay',
    timestamp,
    nonce_str: `${o.prefix}${i.toString(36)}${randomBytes(6).toString('hex')}`,
    biz_content: JSON.stringify({
      out_trade_no: `${o.prefix}${Date.now().toString(36)}${i.toString(36).padStart(5, '0')}`,
      total_amount: 88.88,
      subject: '门诊缴费',
      return_url: o.returnUrl,
      notify_url: o.notifyUrl,
      order_type: 'TREATMENT',
    }),
    sign_type: 'RSA2',
  }));
  return signOnWorkers(H5_SIGNER, APP_KEY_PEM, items);
}

/**
 * `n` bodies for the plain reference's /gw-cte: `<xml>` with appid, mch_id, nonce_str, out_trade_no, total_fee,
 * body and sign (RSA2 with the merchant key over the Alipay-style content), each with its own out_trade_no.
 */
export async function signedGwBodies(merchantPriv: string, n: number, prefix: string): Promise<string[]> {
  const stamp = Date.now().toString(36);
  const items = Array.from({ length: n }, (_, i) => ({
    appid: 'bench',
    mch_id: '1',
    nonce_str: randomBytes(8).toString('hex'),
    out_trade_no: `${prefix}${stamp}${i.toString(36).padStart(5, '0')}`,
    total_fee: '8888',
    body: '门诊缴费',
  }));
  return signOnWorkers(GW_SIGNER, merchantPriv, items);
}

/** A body for the plain reference's /xml-read (and /xml): the fields it reads. */
export const plainXml = (fields: Record<string, string>) =>
  `<xml>${Object.entries(fields)
    .map(([k, v]) => `<${k}>${v}</${k}>`)
    .join('')}</xml>`;

// ---- a HIS that receives notifications ------------------------------------------------------------------------

export interface Receiver {
  url: string;
  /** First arrival time (performance.now()) per out_trade_no. */
  arrivals: Map<string, number>;
  duplicates: number;
  waitFor(keys: Iterable<string>, timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const arrivals = new Map<string, number>();
  let duplicates = 0;
  /** The keys each waitFor still waits for, and how to tell it they all came: checked at each arrival. */
  const waiters = new Set<{ missing: Set<string>; done: () => void }>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const no = /"out_trade_no":"([^"]+)"/.exec(form.get('biz_content') ?? '')?.[1];
      if (no) {
        if (arrivals.has(no)) duplicates++;
        else {
          arrivals.set(no, at);
          for (const w of waiters) if (w.missing.delete(no) && w.missing.size === 0) w.done();
        }
      }
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('success');
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/notify`,
    arrivals,
    get duplicates() {
      return duplicates;
    },
    // Told by the arrivals themselves, not by polling: the receiver shares the machine with the server being
    // measured, and scanning thousands of keys every few milliseconds would take CPU from it.
    waitFor(keys, timeoutMs) {
      const missing = new Set([...keys].filter((k) => !arrivals.has(k)));
      if (missing.size === 0) return Promise.resolve(true);
      return new Promise<boolean>((resolve) => {
        const w = {
          missing,
          done: () => {
            clearTimeout(timer);
            waiters.delete(w);
            resolve(true);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          resolve(false);
        }, timeoutMs);
        waiters.add(w);
      });
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

// ---- one load -------------------------------------------------------------------------------------------------

export interface LoadResult {
  rps: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  requests: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  /** Answers that were not the business success the path expects (IsSuccess 1, code 10000). */
  appFail: number;
  /** The pre-made bodies ran out before the time was up (the run was cut short; req/s is still right). */
  exhausted: boolean;
  seconds: number;
  /** Every response time (ms), to merge rounds into exact percentiles. */
  latencies: number[];
}

export async function load(o: {
  url: string;
  /** POST (default, with the bodies) or GET (no body: `body` is not called). */
  method?: 'GET' | 'POST';
  contentType: string;
  connections: number;
  duration: number;
  /** The next body; null when there are no more (the run stops). */
  body: () => string | null;
  ok: (status: number, body: string) => boolean;
}): Promise<LoadResult> {
  let appFail = 0;
  let exhausted = false;
  let last = '';
  const latencies: number[] = [];
  return new Promise<LoadResult>((resolve, reject) => {
    const instance: autocannon.Instance = autocannon(
      {
        url: o.url,
        method: o.method ?? 'POST',
        ...(o.method === 'GET' ? {} : { headers: { 'content-type': o.contentType } }),
        connections: o.connections,
        duration: o.duration,
        timeout: 30,
        requests: [
          {
            setupRequest: (req) => {
              if (o.method === 'GET') return req;
              const b = o.body();
              if (b === null) {
                if (!exhausted) {
                  exhausted = true;
                  setImmediate(() => instance.stop());
                }
                return { ...req, body: last };
              }
              last = b;
              return { ...req, body: b };
            },
            onResponse: (status, resBody) => {
              if (!o.ok(status, resBody)) appFail++;
            },
          },
        ],
      },
      (err, r) => {
        if (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        resolve({
          rps: Math.round(r.requests.total / Math.max(r.duration, 0.001)),
          p50: r.latency.p50,
          p90: r.latency.p90,
          p99: r.latency.p99,
          max: r.latency.max,
          requests: r.requests.total,
          errors: r.errors,
          timeouts: r.timeouts,
          non2xx: r.non2xx,
          appFail,
          exhausted,
          seconds: r.duration,
          latencies,
        });
      },
    );
    instance.on('response', (_client, _status, _bytes, responseTime) => latencies.push(responseTime));
  });
}

/** Rounds of one load taken together: req/s over all their time, percentiles over all their responses. */
export function merge(parts: LoadResult[]): LoadResult {
  const latencies = parts.flatMap((p) => p.latencies).sort((a, b) => a - b);
  const sum = (f: (p: LoadResult) => number) => parts.reduce((a, p) => a + f(p), 0);
  const seconds = sum((p) => p.seconds);
  const ms = (x: number) => Math.round(x * 10) / 10;
  return {
    rps: Math.round(sum((p) => p.requests) / Math.max(seconds, 0.001)),
    p50: ms(percentile(latencies, 50)),
    p90: ms(percentile(latencies, 90)),
    p99: ms(percentile(latencies, 99)),
    max: ms(latencies[latencies.length - 1] ?? 0),
    requests: sum((p) => p.requests),
    errors: sum((p) => p.errors),
    timeouts: sum((p) => p.timeouts),
    non2xx: sum((p) => p.non2xx),
    appFail: sum((p) => p.appFail),
    exhausted: parts.some((p) => p.exhausted),
    seconds: Math.round(seconds * 10) / 10,
    latencies: [],
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? 0;
}

// ---- PostgreSQL's own ceiling: pgbench -------------------------------------------------------------------------

/** pgbench of PostgreSQL 15 (Debian's path) or the one on PATH; null if there is none. */
export function findPgbench(): string | null {
  const candidates = ['/usr/lib/postgresql/15/bin/pgbench'];
  for (const dir of (process.env['PATH'] ?? '').split(':').filter(Boolean))
    candidates.push(path.join(dir, 'pgbench'));
  for (const c of candidates) {
    try {
      fs.accessSync(c, fs.constants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  return null;
}

export interface PgbenchRun {
  name: string;
  /** What one transaction does. */
  what: string;
  clients: number;
  threads: number;
  seconds: number;
  /** Transactions (each one commit) per second, without the initial connection time. */
  tps: number;
  latencyMs: number | null;
  transactions: number;
  failed: number;
}

export interface PgbenchReport {
  binary: string;
  scale: number;
  initSeconds: number;
  /** The server settings that decide the cost of a commit. */
  settings: Record<string, string>;
  runs: PgbenchRun[];
}

function run(bin: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(bin, args, { env, maxBuffer: 16 * 2 ** 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(bin)} ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(`${stdout}\n${stderr}`);
    }),
  );
}

/**
 * pgbench on a scratch database: initialised at `scale`, then `seconds` of the built-in tpcb-like transaction
 * (3 UPDATEs, a SELECT, an INSERT, one commit) and of a single-INSERT transaction (one row, one commit: the
 * cheapest durable write), `clients` clients on `threads` threads. The database is dropped afterwards.
 */
export async function pgbenchCeiling(o: {
  bin: string;
  scale: number;
  seconds: number;
  clients: number;
  threads: number;
}): Promise<PgbenchReport> {
  const admin = new URL(PG_ADMIN);
  const name = `hospay_pgbench_${randomBytes(4).toString('hex')}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PGHOST: admin.hostname,
    PGPORT: admin.port || '5432',
    PGUSER: decodeURIComponent(admin.username || 'postgres'),
  };
  if (admin.password) env['PGPASSWORD'] = decodeURIComponent(admin.password);
  const c = new pg.Client({ connectionString: PG_ADMIN });
  await c.connect();
  const settings: Record<string, string> = {};
  const script = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-pgbench-')), 'insert.sql');
  try {
    for (const k of ['synchronous_commit', 'fsync', 'wal_sync_method', 'commit_delay', 'shared_buffers'])
      settings[k] = String((await c.query<Record<string, string>>(`SHOW ${k}`)).rows[0]?.[k] ?? '');
    await c.query(`CREATE DATABASE ${name}`);
    const t0 = performance.now();
    await run(o.bin, ['-i', '-q', '-s', String(o.scale), name], env);
    const initSeconds = Math.round((performance.now() - t0) / 100) / 10;
    const url = new URL(PG_ADMIN);
    url.pathname = `/${name}`;
    const d = new pg.Client({ connectionString: url.toString() });
    await d.connect();
    await d.query(
      'CREATE TABLE bench_insert(id bigserial primary key, k text not null, v bigint, at timestamptz default now())',
    );
    await d.end();
    fs.writeFileSync(
      script,
      "\\set v random(1, 1000000000)\nINSERT INTO bench_insert(k, v) VALUES ('k' || :v, :v);\n",
    );
    const common = ['-n', '-M', 'prepared', '-c', String(o.clients), '-j', String(o.threads)];
    const runs: PgbenchRun[] = [];
    for (const [runName, what, extra] of [
      ['tpcb-like', '3 UPDATEs, 1 SELECT, 1 INSERT, 1 commit', ['-b', 'tpcb-like']],
      ['insert', '1 INSERT, 1 commit', ['-f', script]],
    ] as const) {
      const out = await run(o.bin, [...common, '-T', String(o.seconds), ...extra, name], env);
      const num = (re: RegExp) => {
        const m = re.exec(out);
        return m ? Number(m[1]) : null;
      };
      runs.push({
        name: runName,
        what,
        clients: o.clients,
        threads: o.threads,
        seconds: o.seconds,
        tps: Math.round(num(/tps = ([\d.]+) \(without initial connection time\)/) ?? 0),
        latencyMs: num(/latency average = ([\d.]+) ms/),
        transactions: num(/number of transactions actually processed: (\d+)/) ?? 0,
        failed: num(/number of failed transactions: (\d+)/) ?? 0,
      });
    }
    return { binary: o.bin, scale: o.scale, initSeconds, settings, runs };
  } finally {
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
    await c.end();
    fs.rmSync(path.dirname(script), { recursive: true, force: true });
  }
}

// ---- command-line flags ---------------------------------------------------------------------------------------

/** `--k=v` flags (`--k` alone is `true`), with readers for a non-negative number, a comma list and a boolean. */
export function benchFlags(argv: string[]) {
  const args: Record<string, string> = Object.fromEntries(
    argv.map((a) => {
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
  const flag = (k: string, d: boolean) => (args[k] === undefined ? d : args[k] !== 'false');
  return { args, num, list, flag };
}
