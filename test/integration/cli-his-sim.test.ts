import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freshDatabase, TEST_DB, type TestDatabase } from '../support/db.js';
import { barcodeFields, postRaw, xmlDoc } from '../support/platform.js';
import { HisClient } from '../../src/reconcile/his/his-client.js';

const CLI = ['--import', 'tsx', path.resolve('src/cli/index.ts')];

/**
 * `hospay his-sim --from-db --soap` beside a running server, and `hospay app his --protocol`: the simulator
 * sees trades made after it started (issue 12 §4), serves them as SOAP (issue 18 §2), and a reconciliation
 * through the CLI reads them over SOAP.
 */
describe(`hospay his-sim --from-db --soap and app his --protocol (${TEST_DB})`, () => {
  let dataDir: string;
  let db: TestDatabase;
  let env: NodeJS.ProcessEnv;
  const children: ChildProcess[] = [];
  const port = 20000 + Math.floor(Math.random() * 20000);
  const simPort = port + 1;
  let appId = '';
  let token = '';
  const today = () => new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);

  const run = (args: string[]) =>
    spawnSync(process.execPath, [...CLI, ...args], { env, encoding: 'utf8', timeout: 120_000 });

  async function start(args: string[], ready: RegExp): Promise<{ child: ChildProcess; out: () => string }> {
    let out = '';
    const child = spawn(process.execPath, [...CLI, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 60_000;
    while (!ready.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`${args[0]} did not start:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { child, out: () => out };
  }

  const pay = async (amount: string) => {
    const f = barcodeFields({ TotalAmount: amount });
    const a = await postRaw(
      `http://127.0.0.1:${port}/offline/FWC_IF_Barcode_Pay`,
      xmlDoc({ AccessToken: token, ...f }),
    );
    assert.equal(a.rr.IsSuccess, '1', a.text);
    return f.OutTradeNo ?? '';
  };
  /** Today's alipay records as the simulator serves them over SOAP 1.1. */
  const hisRecords = async () => {
    const begin = new Date(`${today()}T00:00:00+08:00`);
    const list = await new HisClient({
      baseUrl: `http://127.0.0.1:${simPort}/HisService.asmx`,
      protocol: 'soap11',
    }).getTradeList({ begin, end: new Date(begin.getTime() + 86_400_000), payType: 'alipay' });
    return list.records.map((r) => r.outTradeNo).sort();
  };

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-cli-his-sim-'));
    db = await freshDatabase();
    env = {
      ...process.env,
      HOSPAY_DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      HOSPAY_JOBS: 'off',
      HOSPAY_BARCODE_POLL_INTERVAL: '5',
    };
    delete env['DATABASE_URL'];
    delete env['HOSPAY_MASTER_KEY'];
    if (db.store.kind === 'postgres') {
      env['DATABASE_URL'] = db.store.url;
      env['HOSPAY_MASTER_KEY'] = 'cd'.repeat(32);
    }
  });
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await db.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('his-sim --from-db runs beside the server and sees trades made after it started, without a restart', async () => {
    await start(['serve', '--port', String(port)], /hospay is serving/);
    const created = run(['app', 'create', '--name', 'SOAP 医院', '--json']);
    assert.equal(created.status, 0, created.stderr);
    ({ app_id: appId, access_token: token } = JSON.parse(created.stdout) as {
      app_id: string;
      access_token: string;
    });
    const first = await pay('12.34');

    const sim = await start(
      ['his-sim', '--port', String(simPort), '--from-db', '--app', appId, '--soap'],
      /HIS simulator on/,
    );
    assert.match(sim.out(), /loaded 1 HIS records/);
    assert.match(sim.out(), new RegExp(`http://127\\.0\\.0\\.1:${simPort}/HisService\\.asmx\\?wsdl`));
    assert.match(sim.out(), /--protocol soap11/);
    assert.deepEqual(await hisRecords(), [first]);

    const second = await pay('56.78');
    assert.deepEqual(await hisRecords(), [first, second].sort(), 'the new trade, no restart');
    const wsdl = await fetch(`http://127.0.0.1:${simPort}/HisService.asmx?WSDL`);
    assert.match(await wsdl.text(), /<wsdl:operation name="IF_Get_Hospital_Trade_List">/);
  });

  it('app his --protocol soap11 --url …/HisService.asmx: reconcile reads the SOAP HIS; bad values are refused', () => {
    const set = run([
      'app',
      'his',
      '--app',
      appId,
      '--url',
      `http://127.0.0.1:${simPort}/HisService.asmx`,
      '--protocol',
      'soap11',
      '--json',
    ]);
    assert.equal(set.status, 0, set.stderr);
    const view = JSON.parse(set.stdout) as { settings: { hisProtocol: string; hisSoapNamespace: string } };
    assert.equal(view.settings.hisProtocol, 'soap11');
    assert.equal(view.settings.hisSoapNamespace, 'http://tempuri.org/');
    const show = run(['app', 'his', '--app', appId]);
    assert.match(show.stdout, /soap11 \(SOAP 1\.1, 命名空间 namespace http:\/\/tempuri\.org\/\)/);

    const r = run(['reconcile', '--date', today(), '--app', appId, '--json']);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const rows = JSON.parse(r.stdout) as Array<{ payType: string; matched: number; hisError?: string }>;
    const alipay = rows.find((x) => x.payType === 'alipay');
    assert.equal(alipay?.hisError, undefined, r.stdout);
    assert.ok((alipay?.matched ?? 0) >= 2, r.stdout);

    // Over plain XML the same URL is no HIS: the protocol is what made it work.
    assert.equal(run(['app', 'his', '--app', appId, '--protocol', 'xml']).status, 0);
    const xml = JSON.parse(run(['reconcile', '--date', today(), '--app', appId, '--json']).stdout) as Array<{
      payType: string;
      hisError?: string;
    }>;
    assert.match(xml.find((x) => x.payType === 'alipay')?.hisError ?? '', /HIS_HTTP_404/);

    const bad = run(['app', 'his', '--app', appId, '--protocol', 'soap13']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /hisProtocol/);
    const badNs = run(['app', 'his', '--app', appId, '--soap-namespace', 'not a uri']);
    assert.equal(badNs.status, 1);
    assert.match(badNs.stderr, /hisSoapNamespace/);
    const usage = run(['his-sim', '--port', '0', '--soap-namespace', 'urn:x:y']);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /--soap-namespace goes with --soap/);
  });
});
