/**
 * A plain signed-POST drainer: the yardstick for hospay's notification delivery (issue 16, `npm run bench`).
 *
 * The plainest fast way to do what hospay's notifier does, in its own child process (so that its CPU can be read
 * from /proc): its own outbox table (plain_notify_outbox) in the given database, filled with `count` due rows
 * holding what hospay's notification and its trade hold; then, until none is left, a loop that
 *
 *   1. claims a batch of due rows in one statement (UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED
 *      LIMIT n) RETURNING …, with a lease: several drainers could run at once),
 *   2. builds each lc.trade.notify form as hospay does (the same fields, biz_content JSON, RSA2 = SHA256withRSA
 *      with a 2048-bit key, signed on libuv's thread pool as hospay signs), and POSTs it with keep-alive (undici)
 *      to the receiver, at most CONCURRENCY at a time,
 *   3. marks the batch in one statement (delivered: status, delivered_at, attempts; not delivered: due again
 *      after 4 minutes, Alipay's second delay), and goes on at once.
 *
 * Per notification: 1 signature, 1 POST, and 2/BATCH statements (each its own commit). It keeps no delivery
 * record per attempt (hospay writes one per attempt: notify_attempts) and no per-notification log line.
 *
 * plainDrain() sets the table up and waits for the child to be connected and warm (key made, one connection
 * to the receiver open), then times the drain alone: wall time from "go" to "none left", the child's CPU
 * (/proc/<pid>/stat) and the PostgreSQL backends' CPU (backendsCpu / backendsDelta) over the same span.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  generateKeyPairSync,
  randomBytes,
  randomUUID,
  sign as cryptoSign,
  type KeyObject,
} from 'node:crypto';
import { Agent, request } from 'undici';
import pg from 'pg';
import { backendsCpu, backendsDelta, cpuMs } from '../harness.js';

export interface PlainDrainResult {
  notifications: number;
  seconds: number;
  perSecond: number;
  cpuMsPerNotification: number;
  dbCpuMsPerNotification: number | null;
}

/** Rows claimed per statement. */
const BATCH = 100;
/** POSTs in flight at most: hospay's default batch (HOSPAY_NOTIFY_BATCH = 20) is its in-flight bound too. */
const CONCURRENCY = 20;
const TABLE = 'plain_notify_outbox';
const CHILD_FLAG = 'HOSPAY_PLAIN_DRAINER_CHILD';

type ToChild = { type: 'go' } | { type: 'end' };
type FromChild =
  | { type: 'ready' }
  | { type: 'done'; notifications: number; seconds: number }
  | { type: 'error'; message: string };

export async function plainDrain(o: {
  pgUrl: string;
  receiverUrl: string;
  count: number;
}): Promise<PlainDrainResult> {
  await setUp(o.pgUrl, o.count, o.receiverUrl);
  // HOSPAY_PLAIN_DRAINER_CPU_PROF=<dir>: a V8 CPU profile of the drainer (bench/profile.ts summarises it).
  const prof = process.env['HOSPAY_PLAIN_DRAINER_CPU_PROF'];
  const nodeArgs = prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [];
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', fileURLToPath(import.meta.url)], {
    env: { ...process.env, [CHILD_FLAG]: '1', PLAIN_PG_URL: o.pgUrl, PLAIN_RECEIVER_URL: o.receiverUrl },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  child.stderr?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-4000)));
  const next = () =>
    new Promise<FromChild>((resolve, reject) => {
      const onExit = (code: number | null) =>
        reject(new Error(`the plain drainer exited (${code}) before answering:\n${out}`));
      child.once('exit', onExit);
      child.once('message', (m: FromChild) => {
        child.off('exit', onExit);
        if (m.type === 'error') reject(new Error(`the plain drainer failed: ${m.message}\n${out}`));
        else resolve(m);
      });
    });
  try {
    const ready = await next();
    if (ready.type !== 'ready') throw new Error(`the plain drainer said ${ready.type} before ready`);
    const pid = child.pid ?? 0;
    const db0 = await backendsCpu(o.pgUrl);
    const cpu0 = cpuMs(pid);
    const answer = next();
    child.send({ type: 'go' } satisfies ToChild);
    const done = await answer;
    const cpu1 = cpuMs(pid);
    const db1 = await backendsCpu(o.pgUrl);
    if (done.type !== 'done') throw new Error(`the plain drainer said ${done.type} instead of done`);
    if (done.notifications !== o.count)
      throw new Error(`the plain drainer delivered ${done.notifications} of ${o.count}`);
    const n = Math.max(1, done.notifications);
    return {
      notifications: done.notifications,
      seconds: Math.round(done.seconds * 1000) / 1000,
      perSecond: Math.round(done.notifications / Math.max(done.seconds, 0.001)),
      cpuMsPerNotification: Math.round(((cpu1 - cpu0) / n) * 1000) / 1000,
      dbCpuMsPerNotification: Math.round((backendsDelta(db0, db1) / n) * 1000) / 1000,
    };
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      if (child.connected) child.send({ type: 'end' } satisfies ToChild);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await tearDown(o.pgUrl);
  }
}

// ---- the table --------------------------------------------------------------------------------------------

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** A fresh outbox with `count` due notifications: what hospay's notification row and its trade row hold. */
function setUp(url: string, count: number, receiverUrl: string): Promise<void> {
  const prefix = `PD${randomBytes(3).toString('hex')}`;
  return withClient(url, async (c) => {
    await c.query(`DROP TABLE IF EXISTS ${TABLE}`);
    await c.query(`CREATE TABLE ${TABLE} (
      id bigserial PRIMARY KEY,
      notify_id text NOT NULL UNIQUE,
      app_id text NOT NULL,
      url text NOT NULL,
      out_trade_no text NOT NULL,
      trade_no text NOT NULL,
      channel_trade_no text,
      buyer_user_id text,
      trade_status text NOT NULL,
      total_fen bigint NOT NULL,
      refunded_fen bigint NOT NULL DEFAULT 0,
      pay_type text NOT NULL,
      paid_at timestamptz,
      status text NOT NULL DEFAULT 'PENDING',
      attempts integer NOT NULL DEFAULT 0,
      next_attempt_at timestamptz NOT NULL DEFAULT now(),
      lease_until timestamptz,
      lease_owner text,
      delivered_at timestamptz
    )`);
    await c.query(`CREATE INDEX ${TABLE}_due ON ${TABLE} (next_attempt_at, id) WHERE status = 'PENDING'`);
    await c.query(
      `INSERT INTO ${TABLE} (notify_id, app_id, url, out_trade_no, trade_no, channel_trade_no, buyer_user_id,
         trade_status, total_fen, pay_type, paid_at)
       SELECT replace(gen_random_uuid()::text, '-', ''), 'plain-app', $1, $2 || i, 'P' || to_char(now(), 'YYYYMMDD') || lpad(i::text, 12, '0'),
         '2026' || lpad(i::text, 24, '0'), '2088' || lpad(i::text, 12, '0'), 'TRADE_SUCCESS', 8888, 'ALIPAY_H5', now()
       FROM generate_series(1, $3::int) AS i`,
      [receiverUrl, prefix, count],
    );
    await c.query(`ANALYZE ${TABLE}`);
  });
}

function tearDown(url: string): Promise<void> {
  return withClient(url, async (c) => {
    await c.query(`DROP TABLE IF EXISTS ${TABLE}`);
  });
}

// ---- the child: the drainer itself ------------------------------------------------------------------------

interface Row {
  id: string;
  notify_id: string;
  app_id: string;
  url: string;
  out_trade_no: string;
  trade_no: string;
  channel_trade_no: string | null;
  buyer_user_id: string | null;
  trade_status: string;
  total_fen: string;
  refunded_fen: string;
  pay_type: string;
  paid_at: Date | null;
}

const yuan = (fen: string) => {
  const f = BigInt(fen);
  return `${f / 100n}.${(f % 100n).toString().padStart(2, '0')}`;
};

/** yyyy-MM-dd HH:mm:ss in Asia/Shanghai (UTC+8, no daylight saving), as hospay writes timestamps. */
const shanghai = (d: Date) =>
  new Date(d.getTime() + 8 * 3_600_000).toISOString().slice(0, 19).replace('T', ' ');

function form(r: Row, now: Date): Record<string, string> {
  const biz: string[] = [`"out_trade_no":${JSON.stringify(r.out_trade_no)}`];
  biz.push(`"trade_no":${JSON.stringify(r.channel_trade_no ?? '')}`);
  biz.push(`"platform_trade_no":${JSON.stringify(r.trade_no)}`);
  if (r.buyer_user_id) biz.push(`"user_id":${JSON.stringify(r.buyer_user_id)}`);
  biz.push(`"trade_status":${JSON.stringify(r.trade_status)}`, `"total_amount":${yuan(r.total_fen)}`);
  if (r.paid_at) biz.push(`"gmt_payment":"${shanghai(r.paid_at)}"`);
  biz.push(`"payment_type":${JSON.stringify(r.pay_type)}`, `"refund_fee":${yuan(r.refunded_fen)}`);
  return {
    app_id: r.app_id,
    method: 'lc.trade.notify',
    timestamp: shanghai(now),
    nonce_str: randomUUID().replace(/-/g, ''),
    notify_id: r.notify_id,
    charset: 'utf-8',
    version: '1.0',
    biz_content: `{${biz.join(',')}}`.replace(/&/g, '\\u0026'),
    sign_type: 'RSA2',
  };
}

function sign(f: Record<string, string>, key: KeyObject): Promise<string> {
  const content = Object.keys(f)
    .filter((k) => f[k] !== '')
    .sort()
    .map((k) => `${k}=${f[k]}`)
    .join('&');
  return new Promise((resolve, reject) =>
    cryptoSign('sha256', Buffer.from(content, 'utf8'), key, (err, s) =>
      err ? reject(err) : resolve(s.toString('base64')),
    ),
  );
}

async function child(): Promise<void> {
  const pgUrl = process.env['PLAIN_PG_URL'] ?? '';
  const receiverUrl = process.env['PLAIN_RECEIVER_URL'] ?? '';
  const send = (m: FromChild) => process.send?.(m);
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const db = new pg.Client({ connectionString: pgUrl });
  await db.connect();
  const agent = new Agent({ connections: CONCURRENCY, keepAliveTimeout: 30_000, pipelining: 1 });
  const owner = `plain-${randomBytes(4).toString('hex')}`;
  const post = async (url: string, body: string): Promise<boolean> => {
    const res = await request(url, {
      method: 'POST',
      dispatcher: agent,
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body,
      headersTimeout: 15_000,
      bodyTimeout: 15_000,
    });
    const text = await res.body.text();
    return res.statusCode >= 200 && res.statusCode < 300 && text === 'success';
  };
  // Warm: one connection open to the receiver, the table in the cache.
  await post(receiverUrl, 'warm-up=1');
  await db.query(`SELECT count(*) FROM ${TABLE} WHERE status = 'PENDING'`);
  send({ type: 'ready' });
  await new Promise<void>((resolve) => process.once('message', (m: ToChild) => m.type === 'go' && resolve()));

  const t0 = performance.now();
  let delivered = 0;
  for (;;) {
    const claimed = await db.query<Row>(
      `UPDATE ${TABLE} SET lease_owner = $1, lease_until = now() + interval '2 minutes'
       WHERE id IN (SELECT id FROM ${TABLE}
                    WHERE status = 'PENDING' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until < now())
                    ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED)
       RETURNING id, notify_id, app_id, url, out_trade_no, trade_no, channel_trade_no, buyer_user_id, trade_status,
         total_fen, refunded_fen, pay_type, paid_at`,
      [owner, BATCH],
    );
    const rows = claimed.rows;
    if (rows.length === 0) break;
    const ok: string[] = [];
    const failed: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, rows.length) }, async () => {
        while (next < rows.length) {
          const r = rows[next++] as Row;
          try {
            const f = form(r, new Date());
            f['sign'] = await sign(f, privateKey);
            ((await post(r.url, new URLSearchParams(f).toString())) ? ok : failed).push(r.id);
          } catch {
            failed.push(r.id);
          }
        }
      }),
    );
    await db.query(
      `UPDATE ${TABLE} SET
         status = CASE WHEN id = ANY($2::bigint[]) THEN 'DELIVERED' ELSE status END,
         delivered_at = CASE WHEN id = ANY($2::bigint[]) THEN now() ELSE delivered_at END,
         next_attempt_at = CASE WHEN id = ANY($2::bigint[]) THEN next_attempt_at ELSE now() + interval '4 minutes' END,
         attempts = attempts + 1, lease_owner = NULL, lease_until = NULL
       WHERE id = ANY($1::bigint[]) AND lease_owner = $3`,
      [[...ok, ...failed], ok, owner],
    );
    delivered += ok.length;
  }
  const seconds = (performance.now() - t0) / 1000;
  send({ type: 'done', notifications: delivered, seconds });
  // Connected until told to end: the parent reads the backend's CPU first (an ended backend is gone from /proc).
  await new Promise<void>((resolve) =>
    process.once('message', (m: ToChild) => m.type === 'end' && resolve()),
  );
  await db.end();
  await agent.close();
}

if (process.env[CHILD_FLAG] === '1') {
  child().then(
    () => process.disconnect?.(),
    (err: unknown) => {
      process.send?.({
        type: 'error',
        message: err instanceof Error ? err.message : String(err),
      } satisfies FromChild);
      process.exitCode = 1;
      process.disconnect?.();
    },
  );
}
