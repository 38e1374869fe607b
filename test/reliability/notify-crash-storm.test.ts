import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import { openStore } from '../../src/store/db.js';
import { NotificationRepository } from '../../src/store/notifications.js';
import { TEST_DB } from '../support/db.js';
import { gateway } from '../support/gateway.js';
import { submit, visit } from '../support/payer.js';
import { NotifyReceiver } from '../support/receiver.js';
import { HospayHome, randomPort, sleep, type HospayProcess } from '../support/spawn.js';
import { load } from '../support/storm.js';

/**
 * Reliability battery, item 4: `hospay serve` is killed with SIGKILL again and again while it delivers
 * notifications to a local receiver (which answers a little late, so that kills land between its receipt and
 * the server's record of it) and while payers keep paying, giving up and being refunded. After the last
 * restart every committed transition must have been delivered at least once. Reported: duplicates and the
 * longest delay from the transition to its first delivery.
 */

const ROUNDS = Number(process.env['HOSPAY_CRASH_ROUNDS'] ?? 8);
const WORKERS = 10;
const NOTIFY_TIMEOUT_MS = 2_000;
const ADMIN_TOKEN = `admin-${randomUUID()}`;

describe(`reliability: kill -9 during notification delivery (${TEST_DB})`, () => {
  let home: HospayHome;
  let server: HospayProcess | null = null;
  // A delivery cut off by a kill is marked `cut` (the server went away before the answer was written).
  const receiver = new NotifyReceiver();
  const deliveries = receiver.got;
  let notifyUrl = '';
  const port = randomPort();
  const base = `http://127.0.0.1:${port}`;

  before(async () => {
    home = await HospayHome.create('hospay-notify-kill', {
      env: {
        LOG_LEVEL: 'warn',
        PORT: String(port),
        PUBLIC_BASE_URL: base,
        HOSPAY_NOTIFY_INTERVAL: '100ms',
        HOSPAY_NOTIFY_TIMEOUT: `${NOTIFY_TIMEOUT_MS}ms`,
        HOSPAY_RECONCILE_AT: 'off',
        HOSPAY_ADMIN_TOKEN: ADMIN_TOKEN,
        // The receiver listens on 127.0.0.1.
        HOSPAY_NOTIFY_ALLOW_LOOPBACK: '1',
      },
    });
    await receiver.start();
    // The HIS stores it, then answers: a kill in between leaves the server not knowing it was delivered.
    notifyUrl = receiver.url('/notify', () => ({ delayMs: Math.floor(Math.random() * 300) }));
  });
  after(async () => {
    await home.close();
    await receiver.stop();
  });

  async function start(): Promise<void> {
    server = await home.start(['serve'], { timeoutMs: 90_000, pollMs: 50 });
  }
  async function stop(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    await server?.stop(signal);
    server = null;
  }

  it(`${ROUNDS} kills during delivery: every committed transition is delivered at least once`, async (ctx) => {
    const created = home.run(['app', 'create', '--name', '通知崩溃测试医院', '--generate-key', '--json']);
    assert.equal(created.status, 0, created.stderr);
    const app = JSON.parse(created.stdout) as { app_id: string; private_key: string };
    const key: KeyObject = createPrivateKey(app.private_key);

    const gw = async (method: string, biz: Record<string, unknown>) =>
      (await gateway({ url: base, appId: app.app_id }, method, biz, { key })).json;

    /** Transitions the server acknowledged: `${out_trade_no} ${status}` -> when the answer came. */
    const acknowledged = new Map<string, number>();
    let flows = 0;
    const flow = async () => {
      flows++;
      const no = `MZN${Date.now().toString(36)}${Math.floor(Math.random() * 1e9)}`;
      const h5 = await gw('lc.trade.h5.pay', {
        out_trade_no: no,
        total_amount: '12.30',
        subject: '门诊缴费',
        return_url: 'https://his.example.cn/pay/return',
        notify_url: notifyUrl,
        order_type: 'TREATMENT',
      });
      if (h5.code !== '10000') return;
      const chosen = await submit(String(h5.biz_content['goto_url']), 'pay_type=alipay');
      if (chosen.status !== 302) return;
      const giveUp = Math.random() < 0.25;
      const acted = await submit(chosen.location, giveUp ? 'action=abandon' : 'action=pay');
      const back = await visit(acted.location);
      const status = /trade_status%22%3A%22(TRADE_[A-Z]+)/.exec(back.location)?.[1];
      if (back.status === 302 && status) acknowledged.set(`${no} ${status}`, Date.now());
      if (giveUp || Math.random() < 0.5) return;
      const r = await gw('lc.trade.refund', {
        out_trade_no: no,
        refund_amount: '12.30',
        out_request_no: 'F1',
      });
      if (r.code === '10000' && r.biz_content['trade_status'] === 'TRADE_CLOSED')
        acknowledged.set(`${no} TRADE_CLOSED`, Date.now());
    };

    const killsAfter: number[] = [];
    const deliveredAtKill: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await start();
      const workers = load(WORKERS, flow);
      const after = 800 + Math.floor(Math.random() * 1700);
      killsAfter.push(after);
      await sleep(after);
      const killedAt = Date.now();
      await stop('SIGKILL');
      // Deliveries that had reached the receiver in the last 300 ms before the kill (its answers take up to that).
      deliveredAtKill.push(deliveries.filter((d) => d.at > killedAt - 300 && d.at <= killedAt).length);
      await workers.stop();
    }

    // The last start: whatever was claimed by a killed instance is taken over when its lease runs out
    // (4 × HOSPAY_NOTIFY_TIMEOUT + 60 s).
    await start();
    const waitFrom = Date.now();
    let rows: Array<{
      notify_id: string;
      out_trade_no: string;
      trade_status: string;
      status: string;
      created_at: Date;
    }>;
    try {
      for (;;) {
        await sleep(1_000);
        // The admin API shows the outbox of the running server (the embedded database is its own).
        const res = await fetch(`${base}/admin/notifications?limit=500&status=PENDING`, {
          headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        });
        const pending = (await res.json()) as unknown[];
        if (pending.length === 0) break;
        assert.ok(Date.now() - waitFrom < 150_000, `${pending.length} notifications still pending`);
      }
      await stop('SIGTERM');
      const store = await openStore(home.store);
      try {
        rows = await new NotificationRepository(store.db).list({ limit: 1_000_000 });
      } finally {
        await store.close();
      }
    } finally {
      await stop('SIGKILL');
    }

    const problems: string[] = [];
    const byId = new Map<string, typeof deliveries>();
    for (const d of deliveries) byId.set(d.notifyId, [...(byId.get(d.notifyId) ?? []), d]);
    // Every acknowledged transition is in the outbox; every outbox row (committed transition) was delivered.
    for (const key of acknowledged.keys()) {
      const [no, status] = key.split(' ');
      if (!rows.some((r) => r.out_trade_no === no && r.trade_status === status))
        problems.push(`${key}: no notification`);
    }
    let longest = 0;
    let longestKey = '';
    const delays: number[] = [];
    for (const r of rows) {
      const got = byId.get(r.notify_id) ?? [];
      if (got.length === 0)
        problems.push(`${r.out_trade_no} ${r.trade_status}: never delivered (${r.status})`);
      else {
        const first = Math.min(...got.map((d) => d.at));
        const delay = first - new Date(r.created_at).getTime();
        delays.push(delay);
        if (delay > longest) {
          longest = delay;
          longestKey = `${r.out_trade_no} ${r.trade_status}`;
        }
      }
      if (r.status !== 'DELIVERED') problems.push(`${r.out_trade_no} ${r.trade_status}: ${r.status}`);
    }
    const duplicated = [...byId.values()].filter((l) => l.length > 1);
    const extra = duplicated.reduce((s, l) => s + l.length - 1, 0);
    delays.sort((a, b) => a - b);
    const pct = (p: number) =>
      delays[Math.min(delays.length - 1, Math.floor((delays.length * p) / 100))] ?? 0;
    ctx.diagnostic(
      `${ROUNDS} kills at ${killsAfter.join(', ')} ms into each round; deliveries reaching the receiver in the 300 ms ` +
        `before each kill: ${deliveredAtKill.join(', ')}; deliveries whose answer was cut off by a kill: ${deliveries.filter((d) => d.cut).length}`,
    );
    ctx.diagnostic(
      `${flows} payer flows, ${acknowledged.size} transitions acknowledged, ${rows.length} committed (outbox rows); ` +
        `${deliveries.length} deliveries; every committed transition delivered: ${problems.length === 0 ? 'yes' : 'NO'}; ` +
        `duplicates: ${duplicated.length} notifications delivered more than once (${extra} extra deliveries)`,
    );
    ctx.diagnostic(
      `delay from the transition to its first delivery: median ${pct(50)} ms, 95th percentile ${pct(95)} ms, ` +
        `longest ${longest} ms (${longestKey}; a claim held by a killed server is taken over after its lease, ` +
        `4 × HOSPAY_NOTIFY_TIMEOUT ${NOTIFY_TIMEOUT_MS} ms + 60 s); waited ${Math.round((Date.now() - waitFrom) / 1000)} s ` +
        `after the last restart`,
    );
    assert.deepEqual(problems, []);
    assert.ok(rows.length > ROUNDS, 'transitions were made');
  });
});
