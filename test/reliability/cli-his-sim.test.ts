import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_DB } from '../support/db.js';
import { barcodeFields, postRaw, xmlDoc } from '../support/platform.js';
import { HospayHome, randomPort } from '../support/spawn.js';
import { HisClient } from '../../src/reconcile/his/his-client.js';

/**
 * `hospay his-sim --from-db --soap` beside a running server, and `hospay app his --protocol`: the simulator
 * sees trades made after it started (issue 12 §4), serves them as SOAP (issue 18 §2), and a reconciliation
 * through the CLI reads them over SOAP.
 */
describe(`hospay his-sim --from-db --soap and app his --protocol (${TEST_DB})`, () => {
  let home: HospayHome;
  const port = randomPort();
  const simPort = port + 1;
  let appId = '';
  let token = '';
  const today = () => new Date(Date.now() + 8 * 3_600_000).toISOString().slice(0, 10);

  const run = (args: string[]) => home.run(args, { timeout: 120_000 });

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
    home = await HospayHome.create('hospay-cli-his-sim', {
      masterKey: 'cd'.repeat(32),
      env: { LOG_LEVEL: 'warn', HOSPAY_JOBS: 'off', HOSPAY_BARCODE_POLL_INTERVAL: '5' },
    });
  });
  after(async () => {
    await home.close();
  });

  it('his-sim --from-db runs beside the server and sees trades made after it started, without a restart', async () => {
    await home.start(['serve', '--port', String(port)]);
    const created = run(['app', 'create', '--name', 'SOAP 医院', '--json']);
    assert.equal(created.status, 0, created.stderr);
    ({ app_id: appId, access_token: token } = JSON.parse(created.stdout) as {
      app_id: string;
      access_token: string;
    });
    const first = await pay('12.34');

    const sim = await home.start(
      ['his-sim', '--port', String(simPort), '--from-db', '--app', appId, '--soap'],
      {
        ready: /HIS simulator on/,
      },
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
