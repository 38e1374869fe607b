import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { formatShanghai } from '../../src/domain/clock.js';
import { formatFen } from '../../src/domain/money.js';
import { signParams } from '../../src/crypto/signing.js';
import { openStore } from '../../src/store/db.js';
import { TEST_DB } from '../support/db.js';
import { authCode, orderNo, postRaw, xmlDoc, type OfflineAnswer } from '../support/platform.js';

/**
 * Reliability battery, item 5: PostgreSQL is stopped abruptly (`pg_ctl stop -m immediate`) while `hospay serve`
 * is under load, then started again. No acknowledged write may be lost; requests during the outage must get a
 * clear error (the offline door's IsSuccess=2, the gateway's 20000), not a crash; and the same server process
 * must recover on its own, without a restart.
 *
 * The test never touches the shared PostgreSQL: it makes a private cluster (initdb) on a free port in a
 * temporary directory, and removes it afterwards. As root, PostgreSQL's tools run as the postgres user.
 */

const CLI = ['--import', 'tsx', path.resolve('src/cli/index.ts')];
const WORKERS = 8;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The newest installed PostgreSQL's bin directory (Debian layout), or null. */
function pgBin(): string | null {
  const root = '/usr/lib/postgresql';
  if (!fs.existsSync(root)) return null;
  const versions = fs
    .readdirSync(root)
    .filter((v) => fs.existsSync(path.join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? path.join(root, versions[0], 'bin') : null;
}

const BIN = pgBin();
const skip =
  TEST_DB !== 'postgres'
    ? 'PostgreSQL only: the embedded database lives inside the server process and cannot go away on its own'
    : !BIN
      ? 'no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql'
      : false;

interface Sent {
  kind: 'pay' | 'refund' | 'gateway-query';
  phase: 'before' | 'outage' | 'after';
  at: number;
  order: string;
  fields: Record<string, string>;
  http: number | null;
  answer: OfflineAnswer | null;
  gatewayCode?: string;
}

describe(`reliability: PostgreSQL stopped abruptly under load (${TEST_DB})`, { skip }, () => {
  let dir = '';
  let dataDir = '';
  let env: NodeJS.ProcessEnv;
  let server: ChildProcess | null = null;
  let out = '';
  const pgPort = 30000 + Math.floor(Math.random() * 20000);
  const port = 20000 + Math.floor(Math.random() * 10000);
  const base = `http://127.0.0.1:${port}`;
  const asRoot = process.getuid?.() === 0;

  /** Runs one of PostgreSQL's tools, as the postgres user when we are root (initdb refuses root). */
  function pg(tool: string, args: string[]): string {
    const cmd = path.join(BIN ?? '', tool);
    return asRoot
      ? execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8', cwd: dir })
      : execFileSync(cmd, args, { encoding: 'utf8', cwd: dir });
  }
  const pgStart = () =>
    pg('pg_ctl', [
      '-D',
      path.join(dir, 'data'),
      '-o',
      `-p ${pgPort} -k ${dir}`,
      '-l',
      path.join(dir, 'log'),
      '-w',
      'start',
    ]);
  const pgStopImmediate = () => pg('pg_ctl', ['-D', path.join(dir, 'data'), '-m', 'immediate', '-w', 'stop']);

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-pg-outage-'));
    if (asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
      fs.chownSync(dir, uid, gid);
    }
    pg('initdb', ['-D', path.join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
    pgStart();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-pg-outage-data-'));
    env = {
      ...process.env,
      DATABASE_URL: `postgres://postgres@127.0.0.1:${pgPort}/postgres`,
      HOSPAY_DATA_DIR: dataDir,
      HOSPAY_MASTER_KEY: '5f'.repeat(32),
      LOG_LEVEL: 'warn',
      PORT: String(port),
      PUBLIC_BASE_URL: base,
      HOSPAY_BARCODE_POLL_INTERVAL: '20ms',
      HOSPAY_JOB_LEASE: '2s',
      HOSPAY_JOB_INTERVAL: '500ms',
      HOSPAY_NOTIFY_INTERVAL: '200ms',
      HOSPAY_RECONCILE_AT: 'off',
    };
  });
  after(() => {
    server?.kill('SIGKILL');
    try {
      pg('pg_ctl', ['-D', path.join(dir, 'data'), '-m', 'immediate', 'stop']);
    } catch {
      /* already stopped */
    }
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function start(): Promise<void> {
    out = '';
    const s = spawn(process.execPath, [...CLI, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    server = s;
    s.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    s.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 90_000;
    while (!/hospay is serving/.test(out)) {
      if (Date.now() > deadline || s.exitCode !== null || s.signalCode !== null)
        throw new Error(`server did not start:\n${out}`);
      await sleep(50);
    }
  }

  it('no acknowledged write lost; clear errors during the outage; the same process recovers', async (ctx) => {
    const created = spawnSync(
      process.execPath,
      [...CLI, 'app', 'create', '--name', '停库测试医院', '--generate-key', '--json'],
      { env, encoding: 'utf8', timeout: 60_000 },
    );
    assert.equal(created.status, 0, created.stderr);
    const app = JSON.parse(created.stdout) as { app_id: string; access_token: string; private_key: string };
    const key: KeyObject = createPrivateKey(app.private_key);
    await start();
    const pid = server?.pid;

    const sent: Sent[] = [];
    let phase: Sent['phase'] = 'before';
    const call = async (entry: Sent, name: string) => {
      sent.push(entry);
      try {
        const a = await postRaw(
          `${base}/offline/${name}`,
          xmlDoc({ AccessToken: app.access_token, ...entry.fields }),
        );
        entry.http = a.status;
        entry.answer = a;
      } catch {
        entry.http = null;
      }
    };
    const gatewayQuery = async (entry: Sent) => {
      sent.push(entry);
      const params: Record<string, string> = {
        app_id: app.app_id,
        method: 'lc.trade.query',
        timestamp: formatShanghai(new Date()),
        nonce_str: randomUUID(),
        biz_content: JSON.stringify({ out_trade_no: entry.order }),
        sign_type: 'RSA2',
      };
      params['sign'] = signParams(params, key, 'RSA2');
      try {
        const res = await fetch(`${base}/gateway`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(params).toString(),
        });
        entry.http = res.status;
        const text = await res.text();
        entry.gatewayCode =
          (JSON.parse(text) as { code?: string }).code ?? `unparsable: ${text.slice(0, 80)}`;
      } catch {
        entry.http = null;
      }
    };

    let running = true;
    const worker = async () => {
      while (running) {
        const acked = sent.filter((s) => s.kind === 'pay' && s.answer?.rr.IsSuccess === '1');
        const r = Math.random();
        if (r < 0.5 || acked.length === 0) {
          const order = orderNo('MZ');
          await call(
            {
              kind: 'pay',
              phase,
              at: Date.now(),
              order,
              fields: {
                OutTradeNo: order,
                AuthCode: authCode(r < 0.4 ? '00' : '01'),
                TotalAmount: formatFen(100 + Math.floor(Math.random() * 1900)),
                Caption: '门诊缴费',
                PatientName: '张三',
                InhospitalNo: 'MZ0001',
                OrderType: 'TREATMENT',
                Cnt: '3',
              },
              http: null,
              answer: null,
            },
            'FWC_IF_Barcode_Pay',
          );
        } else if (r < 0.85) {
          const p = acked[Math.floor(Math.random() * acked.length)] as Sent;
          const no = `R${Math.floor(Math.random() * 3)}`;
          await call(
            {
              kind: 'refund',
              phase,
              at: Date.now(),
              order: p.order,
              fields: {
                TradeNo: p.answer?.result.PlatformTradeNo ?? '',
                RefundAmount: formatFen((Number(no.slice(1)) + 1) * 50),
                OutRequestNo: no,
                OutTradeNo: p.order,
                TotalAmount: p.fields['TotalAmount'] ?? '',
              },
              http: null,
              answer: null,
            },
            'FWC_IF_Barcode_Pay_Refund',
          );
        } else {
          const p = acked[Math.floor(Math.random() * acked.length)] as Sent;
          await gatewayQuery({
            kind: 'gateway-query',
            phase,
            at: Date.now(),
            order: p.order,
            fields: {},
            http: null,
            answer: null,
          });
        }
        if (phase === 'outage') await sleep(50); // a HIS does not hammer a failing server in a tight loop
      }
    };
    const workers = Array.from({ length: WORKERS }, () => worker());
    await sleep(1_500);
    const stoppedAt = Date.now();
    pgStopImmediate();
    phase = 'outage';
    await sleep(3_000);
    pgStart();
    const startedAt = Date.now();
    phase = 'after';
    await sleep(4_000);
    running = false;
    await Promise.all(workers);

    // The same process is still there and serving.
    const alive =
      server !== null && server.exitCode === null && server.signalCode === null && server.pid === pid;
    const ok = (s: Sent) =>
      s.kind === 'gateway-query' ? s.gatewayCode === '10000' : s.answer?.rr.IsSuccess === '1';
    const firstOkAfter = sent.filter((s) => s.phase === 'after' && ok(s)).map((s) => s.at)[0];
    const byPhase = (p: Sent['phase']) => sent.filter((s) => s.phase === p);
    const describePhase = (p: Sent['phase']) => {
      const list = byPhase(p);
      const counts = new Map<string, number>();
      for (const s of list) {
        const k =
          s.http === null
            ? 'no answer'
            : s.kind === 'gateway-query'
              ? `gateway HTTP ${s.http} code ${s.gatewayCode}`
              : `HTTP ${s.http} IsSuccess=${s.answer?.rr.IsSuccess} ${s.answer?.rr.SubCode}`;
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
      return `${list.length} requests: ${[...counts].map(([k, v]) => `${k} ×${v}`).join(', ')}`;
    };
    ctx.diagnostic(`before the outage: ${describePhase('before')}`);
    ctx.diagnostic(`PostgreSQL down ${startedAt - stoppedAt} ms: ${describePhase('outage')}`);
    ctx.diagnostic(
      `after PostgreSQL was back: ${describePhase('after')}; first success ` +
        `${firstOkAfter === undefined ? 'never' : `${firstOkAfter - startedAt} ms`} after the restart of PostgreSQL; ` +
        `server process ${pid} ${alive ? 'still the same and running' : 'GONE'}`,
    );
    if (!alive) ctx.diagnostic(`server output:\n${out.slice(-3000)}`);
    assert.ok(alive, `the server process died during the outage:\n${out.slice(-3000)}`);

    // Clear errors: never a 5xx, never an answer the door does not define.
    for (const s of sent) {
      if (s.http === null) continue;
      assert.ok(s.http < 500, `${s.kind} in ${s.phase}: HTTP ${s.http}`);
      if (s.kind !== 'gateway-query')
        assert.ok(['0', '1', '2'].includes(s.answer?.rr.IsSuccess ?? ''), `${s.kind}: ${s.answer?.text}`);
    }
    assert.ok(firstOkAfter !== undefined, 'the server recovered without a restart');
    assert.ok(byPhase('after').filter(ok).length > 10, 'and keeps serving');

    // The HIS then sends again what went unanswered or unknown (the same request), as it must.
    const unsettled = (x: Sent) =>
      x.kind !== 'gateway-query' &&
      (x.answer === null ||
        x.answer.rr.IsSuccess === '2' ||
        ['USER_PAYING', 'REFUND_PROCESSING'].includes(x.answer.rr.SubCode));
    let resent = 0;
    for (const key of new Set(sent.filter(unsettled).map((x) => JSON.stringify([x.kind, x.fields])))) {
      const [kind, fields] = JSON.parse(key) as [Sent['kind'], Record<string, string>];
      for (let i = 0; i < 10; i++) {
        resent++;
        const a = await postRaw(
          `${base}/offline/${kind === 'pay' ? 'FWC_IF_Barcode_Pay' : 'FWC_IF_Barcode_Pay_Refund'}`,
          xmlDoc({ AccessToken: app.access_token, ...fields }),
        );
        if (a.rr.IsSuccess !== '2' && !['USER_PAYING', 'REFUND_PROCESSING'].includes(a.rr.SubCode)) break;
        await sleep(500);
      }
    }

    // No acknowledged write lost: read straight from the cluster.
    const store = await openStore({ kind: 'postgres', url: env['DATABASE_URL'] ?? '', poolSize: 2 });
    try {
      const problems: string[] = [];
      for (const s of sent.filter((x) => x.kind === 'pay' && x.answer?.rr.IsSuccess === '1')) {
        const row = await store.db
          .selectFrom('trades')
          .select(['trade_no', 'channel_trade_no', 'total_fen', 'status'])
          .where('app_id', '=', app.app_id)
          .where('out_trade_no', '=', s.order)
          .executeTakeFirst();
        if (!row) problems.push(`${s.order}: acknowledged pay (${s.phase}) not stored`);
        else if (
          row.trade_no !== s.answer?.result.PlatformTradeNo ||
          row.channel_trade_no !== s.answer.result.TradeNo ||
          formatFen(row.total_fen) !== s.answer.result.TotalAmount ||
          !['TRADE_SUCCESS', 'TRADE_CLOSED'].includes(row.status)
        )
          problems.push(`${s.order}: stored otherwise than answered`);
      }
      for (const s of sent.filter((x) => x.kind === 'refund' && x.answer?.rr.IsSuccess === '1')) {
        const row = await store.db
          .selectFrom('refunds as r')
          .innerJoin('trades as t', 't.id', 'r.trade_id')
          .select(['r.status', 'r.amount_fen'])
          .where('t.app_id', '=', app.app_id)
          .where('t.out_trade_no', '=', s.order)
          .where('r.out_request_no', '=', s.fields['OutRequestNo'] ?? '')
          .executeTakeFirst();
        if (row?.status !== 'SUCCESS' || formatFen(row.amount_fen) !== s.fields['RefundAmount'])
          problems.push(
            `${s.order} ${s.fields['OutRequestNo']}: acknowledged refund is ${row?.status ?? 'missing'}`,
          );
      }
      const doubled = await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM (SELECT 1 FROM sim_ledger WHERE entry = 'charge'
          GROUP BY merchant, out_trade_no HAVING count(*) > 1) d`.execute(store.db);
      const refundDoubled = await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM sim_trades s
        WHERE (SELECT count(*) FROM sim_ledger l WHERE l.merchant = s.merchant AND l.out_trade_no = s.out_trade_no
                 AND l.entry = 'refund')
           <> (SELECT count(*) FROM sim_refunds r WHERE r.merchant = s.merchant AND r.out_trade_no = s.out_trade_no)
           OR s.refunded_fen > s.amount_fen`.execute(store.db);
      // After catching up, the channel's money and the platform's agree, trade by trade.
      const disagree = await sql<{ out_trade_no: string }>`
        SELECT t.out_trade_no FROM trades t
        WHERE (SELECT coalesce(sum(l.amount_fen), 0) FROM sim_ledger l
                WHERE l.merchant = t.app_id AND l.out_trade_no = t.out_trade_no AND l.entry = 'charge')
                <> CASE WHEN t.paid_at IS NULL THEN 0 ELSE t.total_fen END
           OR (SELECT coalesce(-sum(l.amount_fen), 0) FROM sim_ledger l
                WHERE l.merchant = t.app_id AND l.out_trade_no = t.out_trade_no AND l.entry IN ('refund', 'reverse'))
                <> t.refunded_fen
           OR t.refund_reserved_fen <> t.refunded_fen`.execute(store.db);
      for (const d of disagree.rows)
        problems.push(`${d.out_trade_no}: the channel and the platform disagree`);
      const ackedN = sent.filter((x) => x.kind !== 'gateway-query' && x.answer?.rr.IsSuccess === '1').length;
      ctx.diagnostic(
        `${ackedN} acknowledged writes checked in the database: ${problems.length} missing or different; ` +
          `doubled charges ${doubled.rows[0]?.n}, doubled refunds ${refundDoubled.rows[0]?.n}; after ${resent} ` +
          `requests sent again by the HIS, trades where the channel and the platform disagree: ${disagree.rows.length}`,
      );
      assert.deepEqual(problems, []);
      assert.equal(doubled.rows[0]?.n, 0);
      assert.equal(refundDoubled.rows[0]?.n, 0);
    } finally {
      await store.close();
      server?.kill('SIGTERM');
    }
  });
});
