/**
 * Reconciliation benchmark: one business day of N trades (default 100,000) of one app, on PostgreSQL (or the
 * embedded database with --db=embedded), reconciled against the simulator's Alipay and WeChat bills (built in
 * their real file formats and read by the real parsers) and the HIS simulator over HTTP (`hospay his-sim
 * --from-db`, in its own process), with a few injected differences that must all be found.
 *
 *   npm run bench:reconcile
 *   npm run bench:reconcile -- --trades=20000 --db=embedded
 *
 * Reports the time of each stage, the total, and the peak memory (RSS, heap) of the reconciling process.
 * Not part of `npm test`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadConfig } from '../src/config/config.js';
import { startPlatform } from '../src/main.js';
import { reconcileDay, type ReconProgress } from '../src/reconcile/run.js';
import { formatShanghai } from '../src/domain/clock.js';
import { createLogger } from '../src/logging.js';
import { newTradeRow } from '../src/store/trade-row.js';
import { fen, type Fen } from '../src/domain/money.js';
import { createProgress } from '../src/cli/progress.js';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k ?? '', v ?? 'true'];
  }),
);
const N = Number(args['trades'] ?? 100_000);
const DB = args['db'] ?? 'postgres';
const PG_ADMIN = process.env['HOSPAY_TEST_PG_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const DATE = '2026-11-24';
const DAY_START = Date.parse(`${DATE}T00:00:00+08:00`);
/** 5 % of payments are partly refunded the same day, on both channels. */
const isRefunded = (i: number) => i % 40 === 0 || i % 40 === 23;
const FAULTS = { hisDrop: 7, hisAmount: 5, channelLost: 4 };

const mb = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MB`;
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-bench-recon-'));
  const env: Record<string, string> = {
    HOSPAY_DATA_DIR: dataDir,
    HOSPAY_JOBS: 'off',
    LOG_LEVEL: 'warn',
    HOSPAY_MASTER_KEY: 'cd'.repeat(32),
  };
  let dropDb = async () => {};
  if (DB === 'postgres') {
    const name = `hospay_bench_${randomBytes(4).toString('hex')}`;
    const c = new pg.Client({ connectionString: PG_ADMIN });
    await c.connect();
    await c.query(`CREATE DATABASE ${name}`);
    await c.end();
    const url = new URL(PG_ADMIN);
    url.pathname = `/${name}`;
    env['DATABASE_URL'] = url.toString();
    dropDb = async () => {
      const d = new pg.Client({ connectionString: PG_ADMIN });
      await d.connect();
      await d.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await d.end();
    };
  }
  const config = loadConfig(env);
  let platform = await startPlatform({ config, listen: false, demo: false, log: createLogger('warn') });
  let his: ChildProcess | null = null;
  try {
    const created = await platform.deps.apps.create({ name: '基准医院', hospitalId: 'BENCH' });
    const appId = created.appId;
    const db = platform.store.db;

    // 1. The day's trades as the platform and the simulated channel recorded them.
    const t0 = Date.now();
    const orders: Array<{ no: string; payType: 'alipay' | 'weixin'; fen: Fen; at: Date }> = [];
    const categories = ['MZ', 'ZY', 'ZJMZ', 'ZHZY'];
    for (let i = 0; i < N; i++) {
      // Spread over the day, away from the ends (the pending pool is not what is measured here).
      const at = new Date(DAY_START + 3_600_000 + Math.floor((i / N) * 22 * 3_600_000));
      orders.push({
        no: `${categories[i % 4]}B${String(i).padStart(9, '0')}`,
        payType: i % 5 < 3 ? 'alipay' : 'weixin',
        fen: fen(100 + ((i * 7919) % 99_900)),
        at,
      });
    }
    const BATCH = 1000;
    const filling = createProgress({ label: '写入交易 fill trades', total: N, unit: 'trades' });
    for (let i = 0; i < N; i += BATCH) {
      const chunk = orders.slice(i, i + BATCH);
      await db
        .insertInto('trades')
        .values(
          chunk.map((o) =>
            newTradeRow({
              trade_no: `HPB${o.no}`,
              app_id: appId,
              out_trade_no: o.no,
              kind: 'barcode',
              status: 'TRADE_SUCCESS',
              pay_type: o.payType,
              channel: 'simulator',
              category: o.no.slice(0, o.no.indexOf('B')),
              order_type: 'TREATMENT',
              total_fen: o.fen,
              refund_reserved_fen: fen(0),
              refunded_fen: fen(0),
              subject: '门诊缴费',
              operator_id: `OP${o.no.length % 7}`,
              terminal_id: `T${Number(o.no.slice(-3)) % 12}`,
              hospital_id: 'BENCH',
              fingerprint: 'bench',
              channel_trade_no: `SIM${o.no}`,
              created_at: o.at,
              expires_at: o.at,
              paid_at: o.at,
            }),
          ),
        )
        .execute();
      await db
        .insertInto('sim_trades')
        .values(
          chunk.map((o) => ({
            merchant: appId,
            out_trade_no: o.no,
            pay_type: o.payType,
            channel_trade_no: `SIM${o.no}`,
            amount_fen: o.fen,
            subject: '门诊缴费',
            status: 'PAID' as const,
            rule: '00',
            refunded_fen: fen(0),
            buyer_logon_id: null,
            buyer_user_id: null,
            created_at: o.at,
            paid_at: o.at,
          })),
        )
        .execute();
      filling.tick(chunk.length);
    }
    filling.done();
    // Same-day partial refunds (1.00 yuan) of every 20th payment, on both sides.
    const refunded = orders.filter((_o, i) => isRefunded(i));
    const ids = new Map(
      (await db.selectFrom('trades').select(['id', 'out_trade_no']).execute()).map((r) => [
        r.out_trade_no,
        r.id,
      ]),
    );
    for (let i = 0; i < refunded.length; i += BATCH) {
      const chunk = refunded.slice(i, i + BATCH);
      const at = (o: (typeof orders)[number]) => new Date(o.at.getTime() + 600_000);
      await db
        .insertInto('refunds')
        .values(
          chunk.map((o) => ({
            trade_id: ids.get(o.no) ?? 0,
            app_id: appId,
            out_request_no: `R${o.no}`,
            kind: 'refund' as const,
            amount_fen: fen(100),
            status: 'SUCCESS' as const,
            reason: null,
            hospital_id: 'BENCH',
            terminal_id: null,
            channel_refund_no: `SIMR${o.no}`,
            fail_code: null,
            created_at: at(o),
            updated_at: at(o),
            finished_at: at(o),
          })),
        )
        .execute();
      await db
        .insertInto('sim_refunds')
        .values(
          chunk.map((o) => ({
            merchant: appId,
            out_trade_no: o.no,
            out_request_no: `R${o.no}`,
            amount_fen: fen(100),
            refund_no: `SIMR${o.no}`,
            created_at: at(o),
          })),
        )
        .execute();
    }
    await db
      .updateTable('trades')
      .set({ refunded_fen: fen(100), refund_reserved_fen: fen(100) })
      .where('id', 'in', (eb) => eb.selectFrom('refunds').select('trade_id'))
      .execute();
    // Channel-side fault: payments the channel's books lost (PLATFORM_ONLY).
    const lost = orders.slice(1, 1 + FAULTS.channelLost).map((o) => o.no);
    await db.deleteFrom('sim_trades').where('out_trade_no', 'in', lost).execute();
    const seeded = Date.now() - t0;

    // 2. The HIS simulator in its own process, fed from the platform's trades, with faults.
    const hisPort = 22000 + Math.floor(Math.random() * 20000);
    const drop = orders.slice(100, 100 + FAULTS.hisDrop).map((o) => o.no);
    const amount = orders.slice(200, 200 + FAULTS.hisAmount).map((o) => o.no);
    if (DB === 'embedded') await platform.close(); // the simulator reads the embedded database itself
    his = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        path.resolve('src/cli/index.ts'),
        'his-sim',
        '--port',
        String(hisPort),
        '--from-db',
        '--app',
        appId,
        ...drop.flatMap((no) => ['--drop', no]),
        ...amount.flatMap((no) => ['--amount', `${no}=0.01`]),
      ],
      { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let hisOut = '';
    his.stdout?.on('data', (d: Buffer) => (hisOut += d.toString()));
    his.stderr?.on('data', (d: Buffer) => (hisOut += d.toString()));
    const deadline = Date.now() + 300_000;
    while (!/HIS simulator on/.test(hisOut)) {
      if (Date.now() > deadline || his.exitCode !== null)
        throw new Error(`his-sim did not start:\n${hisOut}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    if (DB === 'embedded')
      platform = await startPlatform({ config, listen: false, demo: false, log: createLogger('warn') });
    await platform.deps.apps.setReconciliation(appId, { hisBaseUrl: `http://127.0.0.1:${hisPort}` });

    // 3. Reconcile, sampling memory.
    const app = (await platform.deps.apps.get(appId))!;
    global.gc?.();
    const base = process.memoryUsage();
    let peakRss = base.rss;
    let peakHeap = base.heapUsed;
    const sampler = setInterval(() => {
      const m = process.memoryUsage();
      peakRss = Math.max(peakRss, m.rss);
      peakHeap = Math.max(peakHeap, m.heapUsed);
    }, 25);
    const stageStart = new Map<string, number>();
    const stageMs = new Map<string, number>();
    const onProgress = (p: ReconProgress) => {
      const key = `${p.payType} ${p.stage}`;
      if (!stageStart.has(key)) stageStart.set(key, Date.now());
      if (p.done === p.total) stageMs.set(key, Date.now() - (stageStart.get(key) ?? Date.now()));
    };
    const t1 = Date.now();
    const outcomes = await reconcileDay(platform.recon, {
      app,
      date: DATE,
      payTypes: ['alipay', 'weixin'],
      onProgress,
    });
    const total = Date.now() - t1;
    clearInterval(sampler);

    const rows = await platform.store.db
      .selectFrom('recon_differences')
      .select(['code', 'out_trade_no'])
      .where('business_date', '=', DATE)
      .where('present', '=', true)
      .execute();
    const found = (code: string, nos: string[]) =>
      nos.filter((no) => rows.some((r) => r.code === code && r.out_trade_no === no)).length;

    console.log(`\nreconciliation benchmark — ${DB}, ${N.toLocaleString('en')} trades on ${DATE}`);
    console.log(
      `  seeded ${N} payments + ${refunded.length} refunds (platform and simulator books) in ${secs(seeded)}`,
    );
    for (const o of outcomes)
      console.log(
        `  ${o.payType.padEnd(7)} matched ${o.matched}, differences ${o.differences}, pending ${o.pending}` +
          `, channel ${o.totals?.channel.payment.count ?? 0} payments / ${o.totals?.channel.refund.count ?? 0} refunds` +
          (o.hisError ? `, HIS error: ${o.hisError}` : ''),
      );
    for (const [k, ms] of stageMs) console.log(`    ${k.padEnd(18)} ${secs(ms)}`);
    console.log(`  total ${secs(total)} (${Math.round((N + refunded.length) / (total / 1000))} movements/s)`);
    console.log(
      `  memory: RSS ${mb(base.rss)} before, peak ${mb(peakRss)} (+${mb(peakRss - base.rss)}); heap peak ${mb(peakHeap)}`,
    );
    console.log(
      `  injected faults found: HIS_MISSING ${found('HIS_MISSING', drop)}/${drop.length}, AMOUNT_MISMATCH ${found('AMOUNT_MISMATCH', amount)}/${amount.length}, PLATFORM_ONLY ${found('PLATFORM_ONLY', lost)}/${lost.length}; other differences ${rows.length - drop.length - amount.length - lost.length}`,
    );
    console.log(`  (at ${formatShanghai(new Date())})`);
  } finally {
    his?.kill('SIGTERM');
    await platform.close();
    await dropDb();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
