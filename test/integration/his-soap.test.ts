import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as soap from 'soap';
import { authCode, barcodeFields, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { startHisSimulator, type HisSimulator } from '../../src/reconcile/his/his-sim.js';
import { reconcileDay, type DayOutcome } from '../../src/reconcile/run.js';
import { formatShanghai } from '../../src/domain/clock.js';
import { fen, formatFen } from '../../src/domain/money.js';
import { TEST_DB } from '../support/db.js';
import { OperatorRepository } from '../../src/store/operators.js';

/**
 * A HIS that serves the chapter 7 interfaces as SOAP (issue 18 §2), reconciled through whole runs on the
 * database under test: the same day, the same HIS books, once over plain XML (hospay's HIS simulator) and once
 * over SOAP from PHP's own SoapServer (ext/soap, WSDL mode, a hand-written WSDL: test/fixtures/soap/) — SOAP 1.1
 * and 1.2, another namespace, GBK answers — and from the HIS simulator's own SOAP service; a SOAP Fault is kept
 * with the run, and the AccessToken never travels on when a HIS echoes it in a fault.
 */

const DAY = '2026-11-25';
const HIS_TOKEN = 'HIS-TOKEN-soap-7f3a9c';
const ROUTER = path.resolve('test/fixtures/soap/his-router.php');
const PHP_SOAP = (() => {
  const r = spawnSync('php', ['-m'], { encoding: 'utf8' });
  return r.status === 0 && /^soap$/im.test(r.stdout);
})();
const NO_PHP =
  'php-cli with ext/soap is not installed (Debian: apt-get install php-cli php-soap; .ci/run installs them)';

interface PhpHis {
  url: string;
  write: (data: Record<string, unknown>) => void;
  close: () => Promise<void>;
}

/** PHP's built-in web server running the SoapServer fixture, answering from a JSON file this test writes. */
async function startPhpHis(): Promise<PhpHis> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-php-his-'));
  const dataFile = path.join(dir, 'his.json');
  const write = (data: Record<string, unknown>) => fs.writeFileSync(dataFile, JSON.stringify(data));
  write({ flows: [] });
  for (let tries = 0; ; tries++) {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const child: ChildProcess = spawn('php', ['-S', `127.0.0.1:${port}`, ROUTER], {
      env: { ...process.env, HIS_SOAP_DATA: dataFile },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const url = `http://127.0.0.1:${port}/HisService.asmx`;
    for (let i = 0; i < 100 && child.exitCode === null; i++) {
      try {
        if ((await fetch(`${url}?wsdl`)).status === 200)
          return {
            url,
            write,
            close: async () => {
              child.kill('SIGTERM');
              fs.rmSync(dir, { recursive: true, force: true });
            },
          };
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    child.kill('SIGKILL');
    if (tries >= 3) throw new Error(`php -S did not start: ${err}`);
  }
}

/** The HIS books exactly as the simulator serves them (its faults applied), for the PHP HIS's JSON. */
function servedFlows(sim: HisSimulator): Array<Record<string, string>> {
  return sim
    .flows()
    .filter((f) => !sim.faults.drop.has(f.hisFlowId))
    .map((f) => ({
      hisFlowId: f.hisFlowId,
      outTradeNo: f.outTradeNo,
      tradeNo: f.tradeNo,
      kind: f.kind,
      amount: formatFen(sim.faults.amountFen.get(f.hisFlowId) ?? f.amountFen),
      time: formatShanghai(f.time),
      payType: f.payType,
      cardNo: f.cardNo,
      patientName: f.patientName,
      costType: f.costType,
    }));
}

describe(`reconciling against a HIS that serves SOAP (${TEST_DB})`, () => {
  let t: TestPlatform;
  let xmlHis: Awaited<ReturnType<typeof startHisSimulator>>;
  let soapSim: Awaited<ReturnType<typeof startHisSimulator>>;
  let php: PhpHis | null = null;
  let baseline: { outcome: DayOutcome; differences: string[] };

  before(async () => {
    t = await startTestPlatform();
    xmlHis = await startHisSimulator(0, '127.0.0.1', { accessToken: HIS_TOKEN });
    soapSim = await startHisSimulator(0, '127.0.0.1', {
      accessToken: HIS_TOKEN,
      soap: { namespace: 'urn:his-sim:chapter7' },
    });
    if (PHP_SOAP) php = await startPhpHis();
  });
  after(async () => {
    await php?.close();
    await soapSim.close();
    await xmlHis.close();
    await t.close();
  });

  const settingsPath = () => `/admin/apps/${t.appId}/reconciliation`;
  /** Points the app at a HIS through the admin API, as an operator would. */
  const useHis = async (url: string, settings: Record<string, unknown>) => {
    const r = await t.admin('PUT', settingsPath(), { his_base_url: url, settings });
    assert.equal(r.status, 200, JSON.stringify(r.data));
    return r.data as { settings: { hisProtocol: string; hisSoapNamespace: string } };
  };
  const run = async (): Promise<DayOutcome> => {
    const app = (await t.platform.deps.apps.get(t.appId))!;
    const [o] = await reconcileDay(t.platform.recon, { app, date: DAY, payTypes: ['alipay'] });
    return o!;
  };
  /** The day's differences as kept: code, sides, amounts, the HIS_IF_Query re-check — all of it. */
  // SQL on purpose: diff_key (a difference's identity across runs) is compared too; the repository keeps it inside.
  const differences = async (): Promise<string[]> =>
    (
      await t.store.db
        .selectFrom('recon_differences')
        .select(['diff_key', 'code', 'kind', 'out_trade_no', 'out_request_no', 'detail', 'state'])
        .where('business_date', '=', DAY)
        .where('present', '=', true)
        .orderBy('diff_key')
        .execute()
    ).map((r) => JSON.stringify(r));
  const sameAsXml = async (label: string, outcome: DayOutcome) => {
    assert.equal(outcome.hisError, undefined, `${label}: ${outcome.hisError ?? ''}`);
    assert.deepEqual(
      { ...outcome, payType: 'alipay' },
      { ...baseline.outcome, payType: 'alipay' },
      `${label}: the same counts and totals`,
    );
    assert.deepEqual(await differences(), baseline.differences, `${label}: exactly the same differences`);
  };

  it('the day over plain XML (his-sim): the baseline, with HIS-side differences re-checked', async () => {
    const nos: string[] = [];
    const times = ['01:10:00', '02:20:00', '03:30:00', '04:40:00', '05:50:00'];
    for (const [i, amount] of ['10.00', '20.00', '30.00', '40.00', '50.00'].entries()) {
      t.clock.set(`${DAY}T${times[i]}Z`);
      const f = barcodeFields({ AuthCode: authCode('00', 'alipay'), TotalAmount: amount });
      const a = await t.offline('FWC_IF_Barcode_Pay', f);
      assert.equal(a.rr.IsSuccess, '1', a.text);
      nos.push(f.OutTradeNo ?? '');
    }
    t.clock.set(`${DAY}T06:00:00Z`);
    const paid = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: nos[0] });
    const refund = await t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: paid.result.TradeNo,
      RefundAmount: '4.00',
      OutRequestNo: 'SOAPR1',
      OutTradeNo: nos[0],
      TotalAmount: '10.00',
    });
    assert.equal(refund.rr.IsSuccess, '1', refund.text);

    // The HIS's books: what the platform has, a lost record (长款), another amount, a record with no payment
    // behind it (短款) for a patient with a Chinese name (GBK below).
    const { trades, refunds } = await t.platform.recon.reconciliation.paidMovements();
    const flows = xmlHis.sim.loadFromTrades(trades, refunds);
    assert.equal(flows.length, 6);
    xmlHis.sim.faults.drop.add(xmlHis.sim.paymentOf(nos[1]!)!.hisFlowId);
    xmlHis.sim.faults.amountFen.set(xmlHis.sim.paymentOf(nos[2]!)!.hisFlowId, fen(2999));
    xmlHis.sim.addExtra({
      amountFen: fen(777),
      time: new Date(`${DAY}T07:00:00Z`),
      payType: 'alipay',
      patientName: '张三丰',
      costType: '住院预交金',
    });

    await t.admin('PUT', settingsPath(), { his_access_token: HIS_TOKEN });
    const view = await useHis(xmlHis.url, { hisProtocol: 'xml' });
    assert.equal(view.settings.hisProtocol, 'xml');
    const outcome = await run();
    assert.equal(outcome.hisError, undefined, outcome.hisError);
    baseline = { outcome, differences: await differences() };
    const codes = baseline.differences.map((d) => (JSON.parse(d) as { code: string }).code).sort();
    assert.deepEqual(codes, ['AMOUNT_MISMATCH', 'HIS_MISSING', 'HIS_ONLY']);
    // The re-check with HIS_IF_Query worked (it is part of what must come out the same over SOAP).
    assert.ok(
      baseline.differences.every((d) => !(JSON.parse(d) as { detail: string }).detail.includes('"error"')),
      baseline.differences.join('\n'),
    );
    assert.match(baseline.differences.join(''), /\\"netFen\\":2999/);
  });

  it(
    "SOAP 1.1 from PHP's SoapServer, the same books: exactly the same differences",
    {
      skip: PHP_SOAP ? false : NO_PHP,
    },
    async () => {
      php!.write({ accessToken: HIS_TOKEN, flows: servedFlows(xmlHis.sim) });
      const view = await useHis(php!.url, { hisProtocol: 'soap11' });
      assert.equal(view.settings.hisProtocol, 'soap11');
      assert.equal(view.settings.hisSoapNamespace, 'http://tempuri.org/', 'the default namespace');
      await sameAsXml('SOAP 1.1 (PHP)', await run());
    },
  );

  it(
    'SOAP 1.2 from PHP, in a namespace of the HIS vendor: exactly the same differences',
    {
      skip: PHP_SOAP ? false : NO_PHP,
    },
    async () => {
      const ns = 'http://his.example-vendor.cn/ws';
      php!.write({ namespace: ns, accessToken: HIS_TOKEN, flows: servedFlows(xmlHis.sim) });
      await useHis(php!.url, { hisProtocol: 'soap12', hisSoapNamespace: ns });
      await sameAsXml('SOAP 1.2 (PHP)', await run());

      // The namespace is part of the contract: a wrong one is a HIS error that says which namespace came back.
      await useHis(php!.url, { hisProtocol: 'soap12', hisSoapNamespace: 'http://tempuri.org/' });
      const wrong = await run();
      assert.match(wrong.hisError ?? '', /HIS_SOAP_FAULT|HIS_MALFORMED/);
    },
  );

  it(
    'GBK answers (envelope and documents declared GBK, charset=GBK): decoded, the same differences',
    {
      skip: PHP_SOAP ? false : NO_PHP,
    },
    async () => {
      php!.write({ encoding: 'GBK', accessToken: HIS_TOKEN, flows: servedFlows(xmlHis.sim) });
      await useHis(php!.url, { hisProtocol: 'soap11', hisSoapNamespace: 'http://tempuri.org/' });
      await sameAsXml('GBK (PHP)', await run());
      // The patient's name came through GBK intact, in the evidence kept with the run.
      const answers = (text: string) =>
        t.platform.recon.reconciliation.hisAnswersContaining(t.appId, DAY, 'alipay', text);
      assert.ok(
        (await answers('<PatientName>张三丰</PatientName>')).length > 0,
        'the Chinese name decoded from GBK',
      );
      assert.ok((await answers('encoding="GBK"')).length > 0);
    },
  );

  it(
    'a SOAP Fault from the HIS is a HIS error kept with the run (faultcode and faultstring)',
    {
      skip: PHP_SOAP ? false : NO_PHP,
    },
    async () => {
      php!.write({
        encoding: 'UTF-8',
        fault: { code: 'Server', message: 'HIS 数据库连接失败 ORA-12541: TNS:no listener' },
        flows: servedFlows(xmlHis.sim),
      });
      await useHis(php!.url, { hisProtocol: 'soap11', hisRetries: 0 });
      const outcome = await run();
      assert.match(
        outcome.hisError ?? '',
        /^HIS_SOAP_FAULT: the HIS answered a SOAP Fault \(SOAP-ENV:Server, HTTP 500\)/,
      );
      assert.match(outcome.hisError ?? '', /ORA-12541: TNS:no listener/);
      const kept = await t.platform.recon.reconciliation.run(t.appId, DAY, 'alipay');
      assert.equal(kept?.error, outcome.hisError, 'kept with the run');
      assert.equal(outcome.totals?.his, undefined, 'nothing of the HIS was compared');
    },
  );

  it(
    'a fault that echoes the AccessToken: the token is not kept, reported or logged',
    {
      skip: PHP_SOAP ? false : NO_PHP,
    },
    async () => {
      php!.write({
        fault: { code: 'Server', message: `AccessToken ${HIS_TOKEN} 已过期`, on: 'HIS_IF_Query' },
        flows: servedFlows(xmlHis.sim),
      });
      await useHis(php!.url, { hisProtocol: 'soap11', hisRetries: 0 });
      await run();
      const kept = (await differences()).join('\n');
      assert.match(kept, /HIS_SOAP_FAULT/, 'the re-check says what went wrong');
      assert.match(kept, /AccessToken \*\*\* 已过期/);
      assert.ok(!kept.includes(HIS_TOKEN));
      assert.ok(!t.logs().includes(HIS_TOKEN));
    },
  );

  it("the HIS simulator's own SOAP service (his-sim --soap), SOAP 1.2: exactly the same differences", async () => {
    soapSim.sim.reset();
    for (const f of servedFlows(xmlHis.sim)) {
      const time = new Date(`${f['time']!.replace(' ', 'T')}+08:00`);
      const amountFen = fen(Math.round(Number(f['amount']) * 100));
      if (f['kind'] === 'PAY')
        soapSim.sim.addPayment({
          outTradeNo: f['outTradeNo']!,
          tradeNo: f['tradeNo']!,
          amountFen,
          time,
          payType: 'alipay',
          cardNo: f['cardNo']!,
          patientName: f['patientName']!,
          costType: f['costType']!,
          hisFlowId: f['hisFlowId']!,
        });
      else
        soapSim.sim.addRefund({
          outTradeNo: f['outTradeNo']!,
          amountFen,
          time,
          hisFlowId: f['hisFlowId']!,
        });
    }
    const endpoint = `${soapSim.url}${soapSim.sim.soap!.path}`;
    await useHis(endpoint, {
      hisProtocol: 'soap12',
      hisSoapNamespace: 'urn:his-sim:chapter7',
      hisRetries: 2,
    });
    const before = soapSim.sim.requests.tradeList;
    await sameAsXml('SOAP 1.2 (his-sim)', await run());
    assert.equal(soapSim.sim.requests.tradeList - before, 24, 'one call per hourly slice, over SOAP');
  });

  it('his-sim --soap publishes a WSDL that a SOAP client no one here wrote (npm soap) reads and calls', async () => {
    const endpoint = `${soapSim.url}${soapSim.sim.soap!.path}`;
    const client = await soap.createClientAsync(`${endpoint}?wsdl`);
    const describe = client.describe() as Record<string, Record<string, Record<string, unknown>>>;
    assert.deepEqual(Object.keys(describe['HisService'] ?? {}).sort(), [
      'HisServiceSoap',
      'HisServiceSoap12',
    ]);
    assert.deepEqual(Object.keys(describe['HisService']?.['HisServiceSoap'] ?? {}).sort(), [
      'HIS_IF_Query',
      'IF_Get_Hospital_Trade_List',
    ]);
    const [answer] = (await client['IF_Get_Hospital_Trade_ListAsync']({
      xml:
        '<?xml version="1.0" encoding="utf-8"?><xml><head><BeginDate>2026-11-25 00:00:00</BeginDate>' +
        '<EndDate>2026-11-26 00:00:00</EndDate><PayType>Alipay</PayType></head><body></body><sign></sign></xml>',
    })) as [{ IF_Get_Hospital_Trade_ListResult: string }];
    assert.match(answer.IF_Get_Hospital_Trade_ListResult, /<IsSuccess>1<\/IsSuccess>/);
    assert.match(answer.IF_Get_Hospital_Trade_ListResult, /<PatientName>张三丰<\/PatientName>/);
    // An operation the service does not have is a Fault that names it.
    const r = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'text/xml; charset=utf-8', soapaction: '"urn:his-sim:chapter7/Nope"' },
      body:
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>' +
        '<Nope xmlns="urn:his-sim:chapter7"><xml>x</xml></Nope></s:Body></s:Envelope>',
    });
    assert.equal(r.status, 500);
    assert.match(
      await r.text(),
      /<faultcode>soap:Client<\/faultcode><faultstring>[^<]*unknown operation Nope/,
    );
  });

  it('the finance page says which interface the HIS serves', async () => {
    const ops = new OperatorRepository(t.store.db, t.clock);
    await ops.create({ username: 'fin.soap', displayName: '钱会计', password: 'correct horse battery' });
    const { token } = await ops.createSession('fin.soap');
    const page = async () => {
      const r = await fetch(`${t.url}/finance?app=${encodeURIComponent(t.appId)}&date=${DAY}`, {
        headers: { cookie: `hospay_finance=${token}` },
      });
      assert.equal(r.status, 200);
      return /<p class="muted" id="his-protocol">([^]*?)<\/p>/.exec(await r.text())?.[1] ?? '';
    };
    await useHis(php?.url ?? `${soapSim.url}/HisService.asmx`, {
      hisProtocol: 'soap12',
      hisSoapNamespace: 'http://his.example-vendor.cn/ws',
    });
    assert.match(await page(), /SOAP 1\.2（命名空间 <code>http:\/\/his\.example-vendor\.cn\/ws<\/code>）/);
    await useHis(xmlHis.url, { hisProtocol: 'xml' });
    assert.match(await page(), /XML（HTTP POST）/);
    assert.equal((await t.admin('PUT', settingsPath(), { his_base_url: null })).status, 200);
    assert.match(await page(), /未配置/);
  });
});
