import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { TEST_DB } from '../support/db.js';
import { barcodeFields, postRaw, xmlDoc } from '../support/platform.js';
import { HospayHome, randomPort, type HospayProcess } from '../support/spawn.js';

describe(`hospay CLI (${TEST_DB})`, () => {
  let home: HospayHome;
  let server: HospayProcess | null = null;

  before(async () => {
    home = await HospayHome.create('hospay-cli', { env: { LOG_LEVEL: 'warn', HOSPAY_JOBS: 'off' } });
  });
  after(async () => {
    await home.close();
  });

  const run = (args: string[]) => home.run(args);

  async function startServer(port: number): Promise<void> {
    server = await home.start(['serve', '--port', String(port)]);
  }

  async function stopServer(): Promise<number | null> {
    const s = server;
    if (!s) return null;
    server = null;
    return s.stop('SIGTERM');
  }
  const serverOut = () => server?.out() ?? '';

  const port = randomPort();
  const pay = (token: string) =>
    postRaw(
      `http://127.0.0.1:${port}/offline/FWC_IF_Barcode_Pay`,
      xmlDoc({ AccessToken: token, ...barcodeFields() }),
    );

  it('first start creates a demo app, prints its AccessToken and serves a landing page', async () => {
    await startServer(port);
    const token = /AccessToken: (\S+)/.exec(serverOut())?.[1];
    assert.ok(token, serverOut());
    const landing = await fetch(`http://127.0.0.1:${port}/`);
    assert.match(await landing.text(), /FWC_IF_Barcode_Pay/);
    const a = await pay(token);
    assert.equal(a.rr.IsSuccess, '1', a.text);
  });

  it('app create --json while the server runs: a working token at once', async () => {
    const r = run(['app', 'create', '--name', '市第一医院', '--hospital-id', 'H42', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const created = JSON.parse(r.stdout) as { app_id: string; access_token: string; hospital_id: string };
    assert.match(created.app_id, /^hp[0-9a-f]{16}$/);
    assert.equal(created.hospital_id, 'H42');
    const a = await pay(created.access_token);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    const list = run(['app', 'list', '--json']);
    assert.equal(list.status, 0, list.stderr);
    assert.ok(
      (JSON.parse(list.stdout) as Array<{ app_id: string }>).some((x) => x.app_id === created.app_id),
    );
  });

  it('app disable/enable and categories, through the running server', async () => {
    const created = JSON.parse(run(['app', 'create', '--name', '分院', '--json']).stdout) as {
      app_id: string;
      access_token: string;
    };
    assert.equal(run(['app', 'disable', '--app', created.app_id]).status, 0);
    assert.equal((await pay(created.access_token)).rr.IsSuccess, '3');
    assert.equal(run(['app', 'enable', '--app', created.app_id]).status, 0);
    assert.equal((await pay(created.access_token)).rr.IsSuccess, '1');
    const shown = run(['app', 'categories', '--app', created.app_id, '--json']);
    assert.deepEqual(
      (JSON.parse(shown.stdout) as Array<{ prefix: string }>).map((c) => c.prefix),
      ['MZ', 'ZY', 'ZJMZ', 'ZHZY'],
    );
    const set = run(['app', 'categories', '--app', created.app_id, '--set', 'TJ=体检,MZ=门诊', '--json']);
    assert.equal(set.status, 0, set.stderr);
    assert.deepEqual(JSON.parse(set.stdout), [
      { prefix: 'TJ', name: '体检' },
      { prefix: 'MZ', name: '门诊' },
    ]);
    const bad = run(['app', 'categories', '--app', created.app_id, '--set', 'T-J=x']);
    assert.equal(bad.status, 2);
    const unknown = run(['app', 'disable', '--app', 'hpnosuchapp']);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /no such app/);
  });

  it('migrate says clearly when the embedded database is in use; stops cleanly on SIGTERM', async () => {
    if (TEST_DB === 'embedded') {
      const r = run(['migrate']);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /正被进程 \d+ 使用/);
      assert.match(r.stderr, /in use by process/);
    }
    assert.equal(await stopServer(), 0);
    assert.equal(fs.existsSync(path.join(home.dataDir, 'hospay.lock')), false);
  });

  it('with the server stopped, app create and migrate work directly on the database', async () => {
    const r = run(['app', 'create', '--name', '离线创建', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const created = JSON.parse(r.stdout) as { access_token: string };
    const m = run(['migrate']);
    assert.equal(m.status, 0, m.stderr);
    assert.match(m.stdout, /up to date/);
    await startServer(port);
    assert.doesNotMatch(serverOut(), /AccessToken:/, 'no second demo app');
    const a = await pay(created.access_token);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    await stopServer();
  });

  it('usage errors exit 2 with help; a bad setting names its key', () => {
    const r = run(['frobnicate']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command/);
    const noName = run(['app', 'create']);
    assert.equal(noName.status, 2);
    assert.match(noName.stderr, /--name is required/);
    const badEnv = home.run(['serve'], { env: { PORT: 'eighty' } });
    assert.equal(badEnv.status, 1);
    assert.match(badEnv.stderr, /PORT/);
  });

  it("his-sim --from-db serves the platform's paid trades as a HIS would record them", async () => {
    const simPort = randomPort();
    const sim = await home.start(['his-sim', '--port', String(simPort), '--from-db'], {
      ready: /HIS simulator on/,
    });
    const out = sim.out();
    try {
      const loaded = Number(/loaded (\d+) HIS records/.exec(out)?.[1] ?? 0);
      assert.ok(loaded >= 3, out);
      const day = new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);
      const r = await fetch(`http://127.0.0.1:${simPort}/IF_Get_Hospital_Trade_List`, {
        method: 'POST',
        headers: { 'content-type': 'text/xml' },
        body: `<xml><head><BeginDate>${day} 00:00:00</BeginDate><EndDate>${day} 23:59:59</EndDate><PayType>Alipay</PayType></head></xml>`,
      });
      const text = await r.text();
      assert.match(text, /<IsSuccess>1<\/IsSuccess>/);
      assert.match(text, /<GetHospitalTradeList>/);
      assert.match(text, /<Amount>88\.88<\/Amount>/);
    } finally {
      await sim.stop('SIGTERM');
    }
  });

  it("reconcile --date: the day's payments against the simulator's bills, exit 0 when nothing is open", () => {
    const day = new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);
    const r = run(['reconcile', '--date', day, '--json']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const rows = JSON.parse(r.stdout) as Array<{ payType: string; matched: number; differences: number }>;
    const alipay = rows.filter((x) => x.payType === 'alipay');
    assert.ok(
      alipay.some((x) => x.matched > 0),
      r.stdout,
    );
    assert.ok(
      rows.every((x) => x.differences === 0),
      r.stdout,
    );
    const bad = run(['reconcile', '--date', 'yesterday']);
    assert.equal(bad.status, 2);
  });
});
