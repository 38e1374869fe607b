import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fen, formatFen } from '../../src/domain/money.js';
import { openStore } from '../../src/store/db.js';
import { RefundRepository } from '../../src/store/refunds.js';
import { TradeRepository } from '../../src/store/trades.js';
import { channelDoubles, readBooks } from '../support/books.js';
import { TEST_DB } from '../support/db.js';
import { gatewayRaw } from '../support/gateway.js';
import { authCode, orderNo, postRaw, xmlDoc, type OfflineAnswer } from '../support/platform.js';
import { HospayHome, randomPort, sleep, type HospayProcess } from '../support/spawn.js';
import { load } from '../support/storm.js';

/**
 * Reliability battery, item 5: PostgreSQL is stopped abruptly (`pg_ctl stop -m immediate`) while `hospay serve`
 * is under load, then started again. No acknowledged write may be lost; requests during the outage must get a
 * clear error (the offline door's IsSuccess=2, the gateway's 20000), not a crash; and the same server process
 * must recover on its own, without a restart.
 *
 * The test never touches the shared PostgreSQL: it makes a private cluster (initdb) on a free port in a
 * temporary directory, and removes it afterwards. As root, PostgreSQL's tools run as the postgres user.
 */

const WORKERS = 8;

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
  let home: HospayHome;
  let server: HospayProcess | null = null;
  const pgPort = randomPort(30000);
  const port = randomPort(20000, 10000);
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

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-pg-outage-'));
    if (asRoot) {
      const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
      fs.chownSync(dir, uid, gid);
    }
    pg('initdb', ['-D', path.join(dir, 'data'), '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
    pgStart();
    // The private cluster's database; the cluster itself is removed with its directory.
    const url = `postgres://postgres@127.0.0.1:${pgPort}/postgres`;
    home = await HospayHome.create('hospay-pg-outage-data', {
      database: { store: { kind: 'postgres', url, poolSize: 2 }, drop: async () => {} },
      env: {
        LOG_LEVEL: 'warn',
        PORT: String(port),
        PUBLIC_BASE_URL: base,
        HOSPAY_BARCODE_POLL_INTERVAL: '20ms',
        HOSPAY_JOB_LEASE: '2s',
        HOSPAY_JOB_INTERVAL: '500ms',
        HOSPAY_NOTIFY_INTERVAL: '200ms',
        HOSPAY_RECONCILE_AT: 'off',
      },
    });
  });
  after(async () => {
    await home.close();
    try {
      pg('pg_ctl', ['-D', path.join(dir, 'data'), '-m', 'immediate', 'stop']);
    } catch {
      /* already stopped */
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('no acknowledged write lost; clear errors during the outage; the same process recovers', async (ctx) => {
    const created = home.run(['app', 'create', '--name', '停库测试医院', '--generate-key', '--json']);
    assert.equal(created.status, 0, created.stderr);
    const app = JSON.parse(created.stdout) as { app_id: string; access_token: string; private_key: string };
    const key: KeyObject = createPrivateKey(app.private_key);
    server = await home.start(['serve'], { timeoutMs: 90_000, pollMs: 50 });
    const pid = server.pid;
    const out = () => server?.out() ?? '';

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
      try {
        const res = await gatewayRaw(
          { url: base, appId: app.app_id },
          'lc.trade.query',
          { out_trade_no: entry.order },
          { key },
        );
        entry.http = res.status;
        const text = res.raw;
        entry.gatewayCode =
          (JSON.parse(text) as { code?: string }).code ?? `unparsable: ${text.slice(0, 80)}`;
      } catch {
        entry.http = null;
      }
    };

    const step = async () => {
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
              TotalAmount: formatFen(fen(100 + Math.floor(Math.random() * 1900))),
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
              RefundAmount: formatFen(fen((Number(no.slice(1)) + 1) * 50)),
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
    };
    const workers = load(WORKERS, step);
    await sleep(1_500);
    const stoppedAt = Date.now();
    pgStopImmediate();
    phase = 'outage';
    await sleep(3_000);
    pgStart();
    const startedAt = Date.now();
    phase = 'after';
    await sleep(4_000);
    await workers.stop();

    // The same process is still there and serving.
    const alive = server !== null && server.running && server.pid === pid;
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
    if (!alive) ctx.diagnostic(`server output:\n${out().slice(-3000)}`);
    assert.ok(alive, `the server process died during the outage:\n${out().slice(-3000)}`);

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
    const store = await openStore(home.store);
    try {
      const problems: string[] = [];
      const trades = new TradeRepository(store.db);
      const refunds = new RefundRepository(store.db);
      for (const s of sent.filter((x) => x.kind === 'pay' && x.answer?.rr.IsSuccess === '1')) {
        const row = await trades.byOutTradeNo(app.app_id, s.order);
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
        const trade = await trades.byOutTradeNo(app.app_id, s.order);
        const row = trade && (await refunds.byRequestNo(trade.id, s.fields['OutRequestNo'] ?? ''));
        if (row?.status !== 'SUCCESS' || formatFen(row.amount_fen) !== s.fields['RefundAmount'])
          problems.push(
            `${s.order} ${s.fields['OutRequestNo']}: acknowledged refund is ${row?.status ?? 'missing'}`,
          );
      }
      const doubled = await channelDoubles(store.db);
      // After catching up, the channel's money and the platform's agree, trade by trade.
      const disagree = (await readBooks(store.db)).filter(
        (b) =>
          b.charged_fen !== (b.paid ? b.total_fen : 0) ||
          b.channel_refunded_fen !== b.refunded_fen ||
          b.reserved_fen !== b.refunded_fen,
      );
      for (const d of disagree) problems.push(`${d.out_trade_no}: the channel and the platform disagree`);
      const ackedN = sent.filter((x) => x.kind !== 'gateway-query' && x.answer?.rr.IsSuccess === '1').length;
      ctx.diagnostic(
        `${ackedN} acknowledged writes checked in the database: ${problems.length} missing or different; ` +
          `doubled charges ${doubled.charges.length}, doubled refunds ${doubled.refunds.length}; after ${resent} ` +
          `requests sent again by the HIS, trades where the channel and the platform disagree: ${disagree.length}`,
      );
      assert.deepEqual(problems, []);
      assert.equal(doubled.charges.length, 0);
      assert.equal(doubled.refunds.length, 0);
    } finally {
      await store.close();
      await server?.stop('SIGTERM');
    }
  });
});
