import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_DB } from '../support/db.js';
import { barcodeFields, postRaw, xmlDoc } from '../support/platform.js';
import { HospayHome, randomPort, type HospayProcess } from '../support/spawn.js';

/**
 * The reconciliation commands as an operator types them: `app his` (settings, token from stdin), `his-sim`
 * with faults, and `reconcile` while the server runs (through its admin API with the embedded database).
 */
describe(`hospay CLI: HIS settings, his-sim faults, reconcile (${TEST_DB})`, () => {
  let home: HospayHome;
  /** The server and the HIS simulator, while they run. */
  let server: HospayProcess | null = null;
  let sim: HospayProcess | null = null;
  const port = randomPort();
  const simPort = port + 1;
  let appId = '';
  let token = '';
  const orders: string[] = [];

  const run = (args: string[], input?: string) =>
    home.run(args, { timeout: 120_000, ...(input !== undefined ? { input } : {}) });
  const startServer = async () => {
    server = await home.start(['serve', '--port', String(port)]);
    return server;
  };
  const stopServer = async () => {
    await server?.stop('SIGTERM');
    server = null;
  };

  before(async () => {
    // With PostgreSQL, no master key until the first test has shown that storing the HIS token needs one.
    home = await HospayHome.create('hospay-cli-recon', {
      masterKey: null,
      env: { LOG_LEVEL: 'warn', HOSPAY_JOBS: 'off', HOSPAY_BARCODE_POLL_INTERVAL: '5' },
    });
  });
  after(async () => {
    await home.close();
  });

  it(
    'with PostgreSQL, storing the HIS token needs HOSPAY_MASTER_KEY and says so',
    { skip: TEST_DB !== 'postgres' },
    () => {
      const created = run(['app', 'create', '--name', '对账医院', '--json']);
      assert.equal(created.status, 0, created.stderr);
      const id = (JSON.parse(created.stdout) as { app_id: string }).app_id;
      const r = run(['app', 'his', '--app', id, '--token-stdin'], 'T0K3N\n');
      assert.equal(r.status, 1);
      assert.match(r.stderr, /HOSPAY_MASTER_KEY/);
      assert.ok(!r.stderr.includes('T0K3N'));
      home.env['HOSPAY_MASTER_KEY'] = 'ab'.repeat(32);
    },
  );

  it('payments through the server; app his sets the HIS and settings (token from stdin, never echoed)', async () => {
    const serving = await startServer();
    const created = run(['app', 'create', '--name', '对账医院二', '--json']);
    assert.equal(created.status, 0, created.stderr);
    ({ app_id: appId, access_token: token } = JSON.parse(created.stdout) as {
      app_id: string;
      access_token: string;
    });
    for (const amount of ['10.00', '20.00', '30.00']) {
      const f = barcodeFields({ TotalAmount: amount });
      const a = await postRaw(
        `http://127.0.0.1:${port}/offline/FWC_IF_Barcode_Pay`,
        xmlDoc({ AccessToken: token, ...f }),
      );
      assert.equal(a.rr.IsSuccess, '1', a.text);
      orders.push(f.OutTradeNo ?? '');
    }

    const set = run(
      [
        'app',
        'his',
        '--app',
        appId,
        '--url',
        `http://127.0.0.1:${simPort}`,
        '--token-stdin',
        '--slice-minutes',
        '120',
        '--fee-rate',
        'alipay=0.6%',
        '--json',
      ],
      'HIS-CLI-TOKEN\n',
    );
    assert.equal(set.status, 0, set.stderr);
    const view = JSON.parse(set.stdout) as {
      his_base_url: string;
      his_access_token: string;
      settings: { hisSliceMinutes: number; feeRateBps: Record<string, number> };
    };
    assert.equal(view.his_base_url, `http://127.0.0.1:${simPort}`);
    assert.equal(view.his_access_token, 'set');
    assert.equal(view.settings.hisSliceMinutes, 120);
    assert.deepEqual(view.settings.feeRateBps, { alipay: 60 });
    assert.ok(!set.stdout.includes('HIS-CLI-TOKEN'));

    const show = run(['app', 'his', '--app', appId]);
    assert.equal(show.status, 0, show.stderr);
    assert.match(show.stdout, /已设置 set \(sealed\)/);
    assert.match(show.stdout, /alipay=0\.60%/);

    const bad = run(['app', 'his', '--app', appId, '--slice-minutes', '7']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /hisSliceMinutes/);
    const unknown = run(['app', 'his', '--app', 'NOPE']);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /NOPE/);
    // Fastify's router options are given where Fastify 5 wants them: no deprecation warning at start.
    assert.doesNotMatch(serving.out(), /FSTDEP022|maxParamLength/);
  });

  it('his-sim with faults from the command line; reconcile finds them and exits 3', async () => {
    // The HIS simulator reads the platform's trades once at start; the embedded database is the server's.
    if (TEST_DB === 'embedded') await stopServer();
    sim = await home.start(
      [
        'his-sim',
        '--port',
        String(simPort),
        '--from-db',
        '--app',
        appId,
        '--access-token',
        'HIS-CLI-TOKEN',
        '--drop',
        orders[0] ?? '',
        '--amount',
        `${orders[1] ?? ''}=19.99`,
        '--extra',
        `7.77@${new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10)} 12:00:01`,
      ],
      { ready: /HIS simulator on/ },
    );
    assert.match(sim.out(), /loaded 3 HIS records/);
    if (TEST_DB === 'embedded') await startServer();

    const day = new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);
    const r = run(['reconcile', '--date', day, '--app', appId]);
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /未处理差异 3 条 \/ 3 open differences/);
    const json = run(['reconcile', '--date', day, '--app', appId, '--json']);
    assert.equal(json.status, 3);
    const rows = JSON.parse(json.stdout) as Array<{
      payType: string;
      differences: number;
      hisError?: string;
    }>;
    const alipay = rows.find((x) => x.payType === 'alipay');
    assert.equal(alipay?.differences, 3, json.stdout);
    assert.equal(alipay?.hisError, undefined);

    const badFault = run(['his-sim', '--port', '0', '--drop', 'NO-SUCH-ORDER']);
    assert.equal(badFault.status, 2);
    assert.match(badFault.stderr, /NO-SUCH-ORDER/);
    const badDate = run(['reconcile', '--date', '2026-02-30']);
    assert.equal(badDate.status, 2);
    const noApp = run(['reconcile', '--date', day, '--app', 'NOPE']);
    assert.equal(noApp.status, 1);
    assert.match(noApp.stderr, /NOPE/);
  });

  it('reconcile differences lists the day (exit 3 while some are open); reconcile resolve records admin:<by>', async () => {
    const day = new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);
    const differences = (...extra: string[]) =>
      run(['reconcile', 'differences', '--date', day, '--app', appId, ...extra]);
    // With the embedded database this goes through the running server's admin API.
    const json = differences('--json');
    assert.equal(json.status, 3, json.stdout + json.stderr);
    const list = JSON.parse(json.stdout) as {
      date: string;
      app_id: string;
      differences: Array<{ id: number; code: string; out_trade_no: string; state: string; present: boolean }>;
    };
    assert.equal(list.date, day);
    assert.equal(list.app_id, appId);
    assert.deepEqual(list.differences.map((d) => d.code).sort(), [
      'AMOUNT_MISMATCH',
      'HIS_MISSING',
      'HIS_ONLY',
    ]);
    const missing = list.differences.find((d) => d.code === 'HIS_MISSING');
    assert.equal(missing?.out_trade_no, orders[0]);
    const table = differences();
    assert.equal(table.status, 3);
    assert.match(table.stdout, /^ID +PAY TYPE +CODE +KIND +OUT_TRADE_NO/);
    assert.match(table.stdout, new RegExp(`${missing?.id ?? 0} +alipay +HIS_MISSING +payment +${orders[0]}`));
    assert.match(table.stdout, /3 differences, 3 open/);

    const resolved = run([
      'reconcile',
      'resolve',
      '--id',
      String(missing?.id),
      '--note',
      '已原路退款给患者',
      '--by',
      '王会计',
    ]);
    assert.equal(resolved.status, 0, resolved.stderr);
    assert.match(resolved.stdout, /resolved by admin:王会计/);
    const again = run(['reconcile', 'resolve', '--id', String(missing?.id), '--note', 'x', '--by', 'y']);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already resolved/);
    const unknown = run(['reconcile', 'resolve', '--id', '999999', '--note', 'x', '--by', 'y']);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /no such difference: 999999/);
    const done = JSON.parse(differences('--state', 'RESOLVED', '--json').stdout) as {
      differences: Array<{ id: number; resolved_by: string; resolved_note: string }>;
    };
    assert.deepEqual(
      done.differences.map((d) => [d.id, d.resolved_by, d.resolved_note]),
      [[missing?.id, 'admin:王会计', '已原路退款给患者']],
    );
    assert.equal(differences('--state', 'RESOLVED').status, 0, 'nothing open among those listed');
    assert.equal(differences('--pay-type', 'weixin').status, 0);

    // Usage errors exit 2, before anything is asked; an unknown app exits 1.
    for (const args of [
      ['reconcile', 'differences', '--app', appId],
      ['reconcile', 'differences', '--date', day, '--app', appId, '--state', 'CLOSED'],
      ['reconcile', 'resolve', '--id', 'abc', '--note', 'x', '--by', 'y'],
      ['reconcile', 'resolve', '--id', '1', '--by', 'y'],
      ['reconcile', 'resolve', '--id', '1', '--note', '账'.repeat(501), '--by', 'y'],
      ['reconcile', 'resolve', '--id', '1', '--note', 'x'],
    ]) {
      const r = run(args);
      assert.equal(r.status, 2, `${args.join(' ').slice(0, 80)}: ${r.stderr.slice(0, 200)}`);
    }
    const noApp = run(['reconcile', 'differences', '--date', day, '--app', 'NOPE']);
    assert.equal(noApp.status, 1);
    assert.match(noApp.stderr, /no such app: NOPE/);

    // Without a running server the CLI works on the database itself, with the same answers.
    if (TEST_DB === 'embedded') await stopServer();
    for (const d of list.differences.filter((x) => x.id !== missing?.id)) {
      const r = run([
        'reconcile',
        'resolve',
        '--id',
        String(d.id),
        '--note',
        '已与 HIS 核对',
        '--by',
        'ops',
        '--json',
      ]);
      assert.equal(r.status, 0, r.stderr);
      const shown = JSON.parse(r.stdout) as { state: string; audit: Array<{ actor: string; note: string }> };
      assert.equal(shown.state, 'RESOLVED');
      assert.deepEqual(
        shown.audit.map((a) => [a.actor, a.note]),
        [['admin:ops', '已与 HIS 核对']],
      );
    }
    const all = differences();
    assert.equal(all.status, 0, all.stdout + all.stderr);
    assert.match(all.stdout, /3 differences, 0 open/);
    assert.match(all.stdout, /admin:王会计/);
  });

  it('the HIS down: reconcile exits 4 and says 未完成, never 无未处理差异 alone; --date defaults to yesterday in Asia/Shanghai', async () => {
    const day = new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);
    await sim?.stop('SIGTERM');
    sim = null;
    const r = run(['reconcile', '--date', day, '--app', appId]);
    assert.equal(r.status, 4, r.stdout + r.stderr);
    assert.match(r.stdout, /alipay +matched .*未完成 INCOMPLETE, HIS: /);
    assert.match(r.stdout, /对账未完成：\d 个支付方式未能与 HIS 核对/);
    assert.doesNotMatch(r.stdout, /^无未处理差异/m);
    const json = run(['reconcile', '--date', day, '--app', appId, '--json']);
    assert.equal(json.status, 4);
    const rows = JSON.parse(json.stdout) as Array<{ payType: string; status?: string; hisError?: string }>;
    const alipay = rows.find((x) => x.payType === 'alipay');
    assert.equal(alipay?.status, 'INCOMPLETE', json.stdout);
    assert.ok(alipay?.hisError);

    // No --date: yesterday in Asia/Shanghai, whatever the host's time zone (the child runs with TZ=UTC).
    const yesterday = new Date(Date.now() + 8 * 3_600_000 - 86_400_000).toISOString().slice(0, 10);
    const dflt = home.run(['reconcile', '--app', appId], { env: { TZ: 'UTC' }, timeout: 120_000 });
    assert.ok(dflt.status === 0 || dflt.status === 3 || dflt.status === 4, dflt.stdout + dflt.stderr);
    assert.match(dflt.stdout, new RegExp(`^业务日期 / business date ${yesterday} \\(Asia/Shanghai\\)$`, 'm'));

    // operator create prints where the finance page really is (PUBLIC_BASE_URL), not a placeholder.
    const op = home.run(['operator', 'create', '--username', 'cw.recon', '--name', '对账员'], {
      env: { PUBLIC_BASE_URL: 'https://pay.example-hospital.cn/' },
      timeout: 120_000,
    });
    assert.equal(op.status, 0, op.stdout + op.stderr);
    assert.match(op.stdout, /log in at: https:\/\/pay\.example-hospital\.cn\/finance$/m);
    assert.doesNotMatch(op.stdout, /<PUBLIC_BASE_URL>/);
  });
});
