import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPrivateKey } from 'node:crypto';
import { TEST_DB } from '../support/db.js';
import { gateway } from '../support/gateway.js';
import { postForm } from '../support/payer.js';
import { NotifyReceiver } from '../support/receiver.js';
import { HospayHome, randomPort, sleep, type HospayProcess } from '../support/spawn.js';

/** A payment committed just before the server is killed with SIGKILL is still notified after the restart. */
describe(`notifications survive kill -9 (${TEST_DB})`, () => {
  let home: HospayHome;
  let server: HospayProcess | null = null;
  const receiver = new NotifyReceiver();
  let receiverUrl = '';
  const port = randomPort();
  const base = `http://127.0.0.1:${port}`;

  before(async () => {
    home = await HospayHome.create('hospay-crash', {
      env: {
        LOG_LEVEL: 'warn',
        PORT: String(port),
        PUBLIC_BASE_URL: base,
        // The receiver listens on 127.0.0.1.
        HOSPAY_NOTIFY_ALLOW_LOOPBACK: '1',
      },
    });
    await receiver.start();
    receiverUrl = receiver.url('/notify');
  });
  after(async () => {
    await home.close();
    await receiver.stop();
  });

  it('pays, is killed before delivering, and delivers after the restart', async () => {
    const created = home.run(['app', 'create', '--name', '崩溃测试医院', '--generate-key', '--json']);
    assert.equal(created.status, 0, created.stderr);
    const app = JSON.parse(created.stdout) as { app_id: string; private_key: string };
    const key = createPrivateKey(app.private_key);

    // The delivery job will not look for an hour: the notification stays in the outbox.
    server = await home.start(['serve'], { env: { HOSPAY_NOTIFY_INTERVAL: '1h' } });
    const outTradeNo = `MZCRASH${Date.now()}`;
    const answer = await gateway(
      { url: base, appId: app.app_id },
      'lc.trade.h5.pay',
      {
        out_trade_no: outTradeNo,
        total_amount: '12.34',
        subject: '门诊缴费',
        notify_url: receiverUrl,
        order_type: 'TREATMENT',
      },
      { key },
    );
    assert.equal(answer.json.code, '10000');
    const chosen = await postForm(String(answer.biz['goto_url']), 'pay_type=weixin');
    const cashier = chosen.headers.get('location') ?? '';
    const paid = await postForm(cashier, 'action=pay');
    assert.equal(paid.status, 303);
    // Coming back makes the transition (and writes the outbox row) in one statement.
    const back = await fetch(paid.headers.get('location') ?? '', { redirect: 'manual' });
    assert.equal(back.status, 200);
    assert.equal(receiver.got.length, 0);

    await server.stop('SIGKILL');

    server = await home.start(['serve'], { env: { HOSPAY_NOTIFY_INTERVAL: '200ms' } });
    const deadline = Date.now() + 30_000;
    while (receiver.got.length === 0 && Date.now() < deadline) await sleep(100);
    assert.equal(receiver.got.length, 1, 'delivered once after the restart');
    const form = receiver.got[0]?.form ?? {};
    assert.equal(form['method'], 'lc.trade.notify');
    const biz = JSON.parse(form['biz_content'] ?? '{}') as Record<string, unknown>;
    assert.equal(biz['out_trade_no'], outTradeNo);
    assert.equal(biz['trade_status'], 'TRADE_SUCCESS');
    await server.stop('SIGTERM');
  });
});
