import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { formatShanghai } from '../../src/domain/clock.js';
import { signParams } from '../../src/crypto/signing.js';
import { freshDatabase, TEST_DB, type TestDatabase } from '../support/db.js';

const CLI = ['--import', 'tsx', path.resolve('src/cli/index.ts')];

/** A payment committed just before the server is killed with SIGKILL is still notified after the restart. */
describe(`notifications survive kill -9 (${TEST_DB})`, () => {
  let db: TestDatabase;
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  let server: ChildProcess | null = null;
  let receiver: http.Server;
  let receiverUrl = '';
  const received: URLSearchParams[] = [];
  const port = 20000 + Math.floor(Math.random() * 20000);
  const base = `http://127.0.0.1:${port}`;

  before(async () => {
    db = await freshDatabase();
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-crash-'));
    env = {
      ...process.env,
      HOSPAY_DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      PORT: String(port),
      PUBLIC_BASE_URL: base,
      // The receiver listens on 127.0.0.1.
      HOSPAY_NOTIFY_ALLOW_LOOPBACK: '1',
    };
    delete env['DATABASE_URL'];
    if (db.store.kind === 'postgres') {
      env['DATABASE_URL'] = db.store.url;
      // With PostgreSQL the platform key is sealed with HOSPAY_MASTER_KEY: no start without it.
      env['HOSPAY_MASTER_KEY'] = '5f'.repeat(32);
    }
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push(new URLSearchParams(body));
        res.end('success');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const a = receiver.address();
    receiverUrl = `http://127.0.0.1:${a && typeof a === 'object' ? a.port : 0}/notify`;
  });
  after(async () => {
    server?.kill('SIGKILL');
    await new Promise<void>((r) => receiver.close(() => r()));
    await db.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  async function start(extra: NodeJS.ProcessEnv): Promise<void> {
    let out = '';
    server = spawn(process.execPath, [...CLI, 'serve'], {
      env: { ...env, ...extra },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    server.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 60_000;
    while (!/hospay is serving/.test(out)) {
      if (Date.now() > deadline || server.exitCode !== null) throw new Error(`server did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('pays, is killed before delivering, and delivers after the restart', async () => {
    const created = spawnSync(
      process.execPath,
      [...CLI, 'app', 'create', '--name', '崩溃测试医院', '--generate-key', '--json'],
      { env, encoding: 'utf8' },
    );
    assert.equal(created.status, 0, created.stderr);
    const app = JSON.parse(created.stdout) as { app_id: string; private_key: string };
    const key = createPrivateKey(app.private_key);

    // The delivery job will not look for an hour: the notification stays in the outbox.
    await start({ HOSPAY_NOTIFY_INTERVAL: '1h' });
    const outTradeNo = `MZCRASH${Date.now()}`;
    const params: Record<string, string> = {
      app_id: app.app_id,
      method: 'lc.trade.h5.pay',
      timestamp: formatShanghai(new Date()),
      nonce_str: randomUUID(),
      biz_content: JSON.stringify({
        out_trade_no: outTradeNo,
        total_amount: '12.34',
        subject: '门诊缴费',
        notify_url: receiverUrl,
        order_type: 'TREATMENT',
      }),
      sign_type: 'RSA2',
    };
    params['sign'] = signParams(params, key, 'RSA2');
    const res = await fetch(`${base}/gateway`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params).toString(),
    });
    const answer = JSON.parse(await res.text()) as { code: string; biz_content: { goto_url: string } };
    assert.equal(answer.code, '10000');
    const chosen = await fetch(answer.biz_content.goto_url, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'pay_type=weixin',
    });
    const cashier = chosen.headers.get('location') ?? '';
    const paid = await fetch(cashier, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'action=pay',
    });
    assert.equal(paid.status, 303);
    // Coming back makes the transition (and writes the outbox row) in one statement.
    const back = await fetch(paid.headers.get('location') ?? '', { redirect: 'manual' });
    assert.equal(back.status, 200);
    assert.equal(received.length, 0);

    server?.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 300));
    server = null;

    await start({ HOSPAY_NOTIFY_INTERVAL: '200ms' });
    const deadline = Date.now() + 30_000;
    while (received.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(received.length, 1, 'delivered once after the restart');
    const form = received[0] as URLSearchParams;
    assert.equal(form.get('method'), 'lc.trade.notify');
    const biz = JSON.parse(form.get('biz_content') ?? '{}') as Record<string, unknown>;
    assert.equal(biz['out_trade_no'], outTradeNo);
    assert.equal(biz['trade_status'], 'TRADE_SUCCESS');
    (server as ChildProcess | null)?.kill('SIGTERM');
  });
});
