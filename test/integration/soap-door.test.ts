import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import iconv from 'iconv-lite';
import { XMLParser } from 'fast-xml-parser';
import * as soap from 'soap';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import {
  barcodeFields,
  orderNo,
  parseAnswer,
  postRaw,
  qrFields,
  startTestPlatform,
  xmlDoc,
  type OfflineAnswer,
  type TestPlatform,
} from '../support/platform.js';

/**
 * The SOAP door (issues 12 and 18): the HospitalWS contract at /linkingif.asmx, called by real SOAP clients
 * no one here wrote (the `soap` package's client, Python's zeep) on both ports, each answer compared with the
 * XML door's answer to the same document; envelope errors as Faults, document errors in-band.
 */

const TEMPURI = 'http://tempuri.org/';
const SOAP11 = 'http://schemas.xmlsoap.org/soap/envelope/';
const SOAP12 = 'http://www.w3.org/2003/05/soap-envelope';
/** Each operation of the contract and the offline interface (/offline/<name>) that must answer the same. */
const IFACE: Record<string, string> = {
  FWC_IF_Barcode_Pay: 'FWC_IF_Barcode_Pay',
  FWC_IF_Barcode_Pay_Query: 'FWC_IF_Barcode_Pay_Query',
  FWC_IF_Barcode_Pay_Cancel: 'FWC_IF_Barcode_Pay_Cancel',
  FWC_IF_Barcode_Pay_Refund: 'FWC_IF_Barcode_Pay_Refund',
  FWC_IF_Qrcode_Pay: 'FWC_IF_Qrcode_Pay',
  FWC_IF_Qrcode_Pay_Query: 'FWC_IF_Barcode_Pay_Query',
  FWC_IF_Qrcode_Pay_Cancel: 'FWC_IF_Barcode_Pay_Cancel',
  FWC_IF_Qrcode_Pay_Refund: 'FWC_IF_Barcode_Pay_Refund',
};
const OPERATIONS = Object.keys(IFACE).sort();

type Call = (op: string, xml: string) => Promise<string>;

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** What Apache Axis 1.4 stubs send (SOAP 1.1): soapenv prefix, the operation in the default namespace. */
function axisEnvelope(op: string, xml: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="${SOAP11}" ` +
    `xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">` +
    `<soapenv:Body><${op} xmlns="${TEMPURI}"><xml>${esc(xml)}</xml></${op}></soapenv:Body></soapenv:Envelope>`
  );
}

/** What a .NET proxy sends over SOAP 1.2. */
function soap12Envelope(op: string, xml: string): string {
  return (
    `<?xml version="1.0" encoding="utf-8"?><soap12:Envelope xmlns:soap12="${SOAP12}">` +
    `<soap12:Body><${op} xmlns="${TEMPURI}"><xml>${esc(xml)}</xml></${op}></soap12:Body></soap12:Envelope>`
  );
}

interface Raw {
  status: number;
  type: string;
  text: string;
}

async function post(url: string, body: string | Buffer, headers: Record<string, string>): Promise<Raw> {
  const res = await fetch(url, { method: 'POST', headers, body });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

const unescape = (s: string) =>
  s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#xD;/g, '\r')
    .replace(/&amp;/g, '&');

/** The `<Op>Result` string of an answer envelope. */
function resultOf(op: string, text: string): string {
  const m = new RegExp(
    `<${op}Response xmlns="${TEMPURI}"><${op}Result>([\\s\\S]*)</${op}Result></${op}Response>`,
  ).exec(text);
  assert.ok(m, `an ${op}Response with ${op}Result: ${text.slice(0, 300)}`);
  return unescape(m[1] ?? '');
}

const faultParser = new XMLParser({ removeNSPrefix: true, parseTagValue: false, ignoreAttributes: true });

/** A Fault's code, text and hospay SubCode, in either SOAP version. */
function faultOf(text: string): { code: string; message: string; subCode: string } {
  const doc = faultParser.parse(text) as {
    Envelope?: { Body?: { Fault?: Record<string, unknown> } };
  };
  const f = doc.Envelope?.Body?.Fault;
  assert.ok(f, `a SOAP Fault: ${text.slice(0, 300)}`);
  if ('faultcode' in f) {
    const detail = f['detail'] as { SubCode?: string } | undefined;
    return {
      code: String(f['faultcode']),
      message: String(f['faultstring']),
      subCode: detail?.SubCode ?? '',
    };
  }
  const code = (f['Code'] as { Value: string }).Value;
  const texts = (f['Reason'] as { Text: string | string[] }).Text;
  const detail = f['Detail'] as { SubCode?: string } | undefined;
  return {
    code,
    message: Array.isArray(texts) ? texts.join(' | ') : texts,
    subCode: detail?.SubCode ?? '',
  };
}

/** Calls one port of a `soap` package client (document/literal wrapped: `{ xml }` in, `<Op>Result` out). */
function soapPackageCall(client: soap.Client, port: string, op: string, xml: string): Promise<string> {
  const ports = (client as unknown as Record<string, Record<string, Record<string, unknown>>>)['HospitalWS'];
  const method = ports?.[port]?.[op] as
    ((args: unknown, cb: (err: unknown, result: Record<string, unknown> | null) => void) => void) | undefined;
  assert.ok(method, `the soap client offers ${port}.${op}`);
  return new Promise((resolve, reject) =>
    method({ xml }, (err, result) => {
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve(String(result?.[`${op}Result`] ?? ''));
    }),
  );
}

/** Python's zeep, one process serving many calls (test/support/zeep-client.py). */
class Zeep {
  private lines: AsyncIterableIterator<string>;
  private constructor(private proc: ChildProcessWithoutNullStreams) {
    this.lines = readline.createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  }

  static async start(wsdl: string): Promise<{ zeep: Zeep; operations: Record<string, string[]> }> {
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '../support/zeep-client.py');
    const proc = spawn(PYTHON, [script, wsdl], {
      env: { ...process.env, NO_PROXY: '127.0.0.1,localhost', no_proxy: '127.0.0.1,localhost' },
    });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    const zeep = new Zeep(proc);
    const first = await zeep.lines.next();
    const ready = JSON.parse(first.done ? '{}' : first.value) as {
      ready?: boolean;
      operations?: Record<string, string[]>;
      error?: string;
    };
    if (!ready.ready) {
      proc.kill();
      throw new Error(`zeep did not start: ${ready.error ?? stderr}`);
    }
    return { zeep, operations: ready.operations ?? {} };
  }

  async call(port: string, op: string, xml: string): Promise<string> {
    this.proc.stdin.write(`${JSON.stringify({ port, op, xml })}\n`);
    const line = await this.lines.next();
    assert.ok(!line.done, 'zeep answered');
    const out = JSON.parse(line.value) as {
      answer?: string | null;
      fault?: { code: string; message: string };
      error?: string;
    };
    if (out.fault) throw new Error(`SOAP Fault ${out.fault.code}: ${out.fault.message}`);
    if (out.error !== undefined) throw new Error(`zeep: ${out.error}`);
    return out.answer ?? '';
  }

  close(): void {
    this.proc.stdin.end();
    this.proc.kill();
  }
}

const PYTHON = '/usr/bin/python3';
const zeepMissing = (() => {
  const r = spawnSync(PYTHON, ['-c', 'import zeep'], { encoding: 'utf8' });
  return r.status === 0
    ? false
    : `zeep tests skipped: ${PYTHON} cannot import zeep (install Debian's python3-zeep, as .ci/run does)`;
})();

describe('SOAP door (HospitalWS at /linkingif.asmx)', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_SOAP_PATHS: '/ws/LinkingIF.asmx' } });
  });
  after(async () => {
    await t.close();
  });

  const doc = (fields: Record<string, string | undefined>) => xmlDoc({ AccessToken: t.token, ...fields });

  /**
   * Calls through SOAP (the call that acts), then sends the same document again to the XML door and through
   * SOAP: the two repeats meet the same state and must get the same answer, byte for byte. (A repeat may
   * differ from the first call: a repeated refund says RefundChange=N, nothing moved this time.)
   */
  async function same(call: Call, op: string, xml: string): Promise<OfflineAnswer> {
    const first = await call(op, xml);
    const viaXml = await postRaw(`${t.url}/offline/${IFACE[op]}`, xml);
    const viaSoap = await call(op, xml);
    assert.equal(viaSoap, viaXml.text, `${op}: the SOAP answer is the XML door's answer`);
    return parseAnswer(200, first);
  }

  /** Every operation of the contract (aliases too), and in-band errors, through one client. */
  async function everyOperation(call: Call): Promise<void> {
    // Escaped twice on the wire (in the document, then in the envelope): unescaped once by each parser.
    const pay = barcodeFields({ TotalAmount: '10.00', Caption: '门诊 A&B <1> "x" &amp;' });
    const paid = await same(call, 'FWC_IF_Barcode_Pay', doc(pay));
    assert.equal(paid.head.Caption, '门诊 A&B <1> "x" &amp;');
    assert.equal(paid.rr.IsSuccess, '1', paid.text);
    assert.equal(paid.result.TradeStatus, 'TRADE_SUCCESS');
    const q = await same(call, 'FWC_IF_Barcode_Pay_Query', doc({ OutTradeNo: pay.OutTradeNo }));
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS');
    const refund = (op: string, amount: string) =>
      same(
        call,
        op,
        doc({
          TradeNo: paid.result.TradeNo,
          RefundAmount: amount,
          OutRequestNo: orderNo('R'),
          OutTradeNo: pay.OutTradeNo,
          TotalAmount: '10.00',
        }),
      );
    const r1 = await refund('FWC_IF_Barcode_Pay_Refund', '1.00');
    assert.equal(r1.rr.IsSuccess, '1', r1.text);
    assert.equal(r1.result.RefundFee, '1.00');
    const r2 = await refund('FWC_IF_Qrcode_Pay_Refund', '2.00');
    assert.equal(r2.rr.IsSuccess, '1', r2.text);
    assert.equal(r2.result.RefundFee, '3.00');

    const qr = qrFields();
    const code = await same(call, 'FWC_IF_Qrcode_Pay', doc(qr));
    assert.equal(code.rr.IsSuccess, '1', code.text);
    assert.ok(code.result.TwoDimensionCode);
    const qq = await same(call, 'FWC_IF_Qrcode_Pay_Query', doc({ OutTradeNo: qr.OutTradeNo }));
    assert.equal(qq.result.TradeStatus, 'WAIT_BUYER_PAY');
    const qc = await same(call, 'FWC_IF_Qrcode_Pay_Cancel', doc({ OutTradeNo: qr.OutTradeNo }));
    assert.equal(qc.rr.IsSuccess, '1', qc.text);
    assert.equal(qc.result.TradeStatus, 'TRADE_CLOSED');

    const pay2 = barcodeFields({ TotalAmount: '5.00' });
    await same(call, 'FWC_IF_Barcode_Pay', doc(pay2));
    const c = await same(call, 'FWC_IF_Barcode_Pay_Cancel', doc({ OutTradeNo: pay2.OutTradeNo }));
    assert.equal(c.rr.IsSuccess, '1', c.text);
    assert.equal(c.result.CancelAction, 'refund');

    // The document's own errors stay in-band, exactly as the XML door answers them.
    const token = await same(
      call,
      'FWC_IF_Barcode_Pay',
      xmlDoc({ AccessToken: 'x'.repeat(43), ...barcodeFields() }),
    );
    assert.equal(token.rr.IsSuccess, '3');
    const missing = await same(call, 'FWC_IF_Qrcode_Pay', doc({ ...qrFields(), TotalAmount: undefined }));
    assert.equal(missing.rr.SubCode, 'MISSING_FIELD.TotalAmount');
    const broken = await same(call, 'FWC_IF_Barcode_Pay_Query', '<xml><head><OutTradeNo>1</head></xml>');
    assert.equal(broken.rr.SubCode, 'XML_MALFORMED');
    const dtd = await same(
      call,
      'FWC_IF_Barcode_Pay_Query',
      '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><xml><head><OutTradeNo>&a;</OutTradeNo></head></xml>',
    );
    assert.equal(dtd.rr.SubCode, 'XML_DOCTYPE_FORBIDDEN');
  }

  describe('WSDL', () => {
    it('?wsdl and ?WSDL on every path: the HospitalWS contract, both ports, every operation and alias', async () => {
      for (const p of ['/linkingif.asmx', '/HospitalWS.asmx', '/ws/LinkingIF.asmx']) {
        for (const q of ['wsdl', 'WSDL']) {
          const res = await fetch(`${t.url}${p}?${q}`);
          assert.equal(res.status, 200, `${p}?${q}`);
          assert.match(res.headers.get('content-type') ?? '', /^text\/xml/);
          const w = await res.text();
          assert.match(w, /targetNamespace="http:\/\/tempuri\.org\/"/);
          assert.match(w, /<wsdl:service name="HospitalWS">/);
          assert.match(w, /<wsdl:port name="HospitalWSSoap" binding="tns:HospitalWSSoap">/);
          assert.match(w, /<wsdl:port name="HospitalWSSoap12" binding="tns:HospitalWSSoap12">/);
          assert.ok(w.includes(`<soap:address location="${t.url}${p}" />`), 'SOAP 1.1 address');
          assert.ok(w.includes(`<soap12:address location="${t.url}${p}" />`), 'SOAP 1.2 address');
          for (const op of OPERATIONS) {
            assert.ok(w.includes(`<s:element name="${op}">`), op);
            assert.ok(w.includes(`name="${op}Result" type="s:string"`), `${op}Result`);
            assert.equal(w.split(`soapAction="http://tempuri.org/${op}" style="document"`).length, 3, op);
          }
          assert.ok(w.includes('<s:element minOccurs="0" maxOccurs="1" name="xml" type="s:string" />'));
        }
      }
    });

    it("the address is PUBLIC_BASE_URL's, never the Host header's", async () => {
      const port = new URL(t.url).port;
      const text = await new Promise<string>((resolve, reject) => {
        const req = http.request(
          { host: '127.0.0.1', port, path: '/linkingif.asmx?wsdl', headers: { host: 'evil.example:666' } },
          (res) => {
            let s = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (s += d));
            res.on('end', () => resolve(s));
          },
        );
        req.on('error', reject);
        req.end();
      });
      assert.ok(text.includes(`location="${t.url}/linkingif.asmx"`));
      assert.doesNotMatch(text, /evil/);
    });

    it('a GET without ?wsdl says what the service is', async () => {
      const res = await fetch(`${t.url}/linkingif.asmx`);
      assert.equal(res.status, 200);
      const text = await res.text();
      assert.ok(text.includes(`${t.url}/linkingif.asmx?wsdl`));
      for (const op of OPERATIONS) assert.ok(text.includes(op), op);
    });
  });

  describe('the soap package client (reads ?wsdl)', () => {
    it('SOAP 1.1, port HospitalWSSoap: every operation answers as the XML door', async () => {
      // preserveWhitespace: the answer string as sent (the client trims text by default).
      const client = await soap.createClientAsync(`${t.url}/linkingif.asmx?wsdl`, {
        preserveWhitespace: true,
      });
      const described = client.describe() as Record<string, Record<string, Record<string, unknown>>>;
      assert.deepEqual(Object.keys(described['HospitalWS'] ?? {}).sort(), [
        'HospitalWSSoap',
        'HospitalWSSoap12',
      ]);
      assert.deepEqual(Object.keys(described['HospitalWS']?.['HospitalWSSoap'] ?? {}).sort(), OPERATIONS);
      await everyOperation((op, xml) => soapPackageCall(client, 'HospitalWSSoap', op, xml));
      assert.ok(client.lastRequest?.includes(SOAP11), 'a SOAP 1.1 envelope was sent');
    });

    it('SOAP 1.2 (forceSoap12Headers), port HospitalWSSoap12: every operation answers as the XML door', async () => {
      const client = await soap.createClientAsync(`${t.url}/HospitalWS.asmx?WSDL`, {
        forceSoap12Headers: true,
        preserveWhitespace: true,
      });
      const described = client.describe() as Record<string, Record<string, Record<string, unknown>>>;
      assert.deepEqual(Object.keys(described['HospitalWS']?.['HospitalWSSoap12'] ?? {}).sort(), OPERATIONS);
      await everyOperation((op, xml) => soapPackageCall(client, 'HospitalWSSoap12', op, xml));
      assert.ok(client.lastRequest?.includes(SOAP12), 'a SOAP 1.2 envelope was sent');
    });

    it('a SOAPAction naming another operation than the Body gets a Fault; nothing is charged', async () => {
      const client = await soap.createClientAsync(`${t.url}/linkingif.asmx?wsdl`);
      client.setSOAPAction('http://tempuri.org/FWC_IF_Barcode_Pay_Query'); // the client quotes it
      const pay = barcodeFields();
      await assert.rejects(
        soapPackageCall(client, 'HospitalWSSoap', 'FWC_IF_Barcode_Pay', doc(pay)),
        (e: Error & { root?: { Envelope?: { Body?: { Fault?: { faultcode?: string } } } } }) => {
          assert.equal(e.root?.Envelope?.Body?.Fault?.faultcode, 'soap:Client', e.message);
          assert.match(e.message, /FWC_IF_Barcode_Pay_Query/);
          return true;
        },
      );
      const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: pay.OutTradeNo });
      assert.equal(q.result.TradeStatus, 'TRADE_NOT_EXIST');
    });
  });

  describe('Python zeep (reads ?wsdl)', { skip: zeepMissing }, () => {
    let zeep: Zeep;
    let operations: Record<string, string[]>;
    before(async () => {
      ({ zeep, operations } = await Zeep.start(`${t.url}/linkingif.asmx?wsdl`));
    });
    after(() => zeep?.close());

    it('sees every operation on both ports', () => {
      assert.deepEqual(operations['HospitalWSSoap'], OPERATIONS);
      assert.deepEqual(operations['HospitalWSSoap12'], OPERATIONS);
    });

    it('SOAP 1.1, port HospitalWSSoap: every operation answers as the XML door', async () => {
      await everyOperation((op, xml) => zeep.call('HospitalWSSoap', op, xml));
    });

    it('SOAP 1.2, port HospitalWSSoap12: every operation answers as the XML door', async () => {
      await everyOperation((op, xml) => zeep.call('HospitalWSSoap12', op, xml));
    });
  });

  describe('what field stubs send', () => {
    const query = () => doc({ OutTradeNo: orderNo() });
    const viaXmlDoor = async (iface: string, xml: string) =>
      (await postRaw(`${t.url}/offline/${iface}`, xml)).text;

    it('an Axis 1.4 style SOAP 1.1 request, with the SOAPAction quoted, unquoted, bare, empty or missing', async () => {
      const op = 'FWC_IF_Barcode_Pay_Query';
      for (const action of [
        `"${TEMPURI}${op}"`,
        `${TEMPURI}${op}`,
        op,
        '""',
        '',
        undefined,
        `"${TEMPURI}FWC_IF_Qrcode_Pay_Query"`, // an alias of the same interface
        '"urn:something-else"', // names no operation of the service: the Body decides
      ]) {
        const xml = query();
        const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8' };
        if (action !== undefined) headers['soapaction'] = action;
        const r = await post(`${t.url}/linkingif.asmx`, axisEnvelope(op, xml), headers);
        assert.equal(r.status, 200, `${String(action)}: ${r.text}`);
        assert.equal(r.type, 'text/xml; charset=utf-8');
        assert.equal(resultOf(op, r.text), await viaXmlDoor(op, xml));
      }
      // Naming another operation, however quoted: a Fault, and the pay is not made.
      const pay = barcodeFields();
      const r = await post(`${t.url}/linkingif.asmx`, axisEnvelope('FWC_IF_Barcode_Pay', doc(pay)), {
        'content-type': 'text/xml; charset=utf-8',
        soapaction: `""${TEMPURI}FWC_IF_Barcode_Pay_Cancel""`,
      });
      assert.equal(r.status, 500, r.text);
      assert.deepEqual(
        [faultOf(r.text).code, faultOf(r.text).subCode],
        ['soap:Client', 'SOAP_ACTION_MISMATCH'],
      );
      const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: pay.OutTradeNo });
      assert.equal(q.result.TradeStatus, 'TRADE_NOT_EXIST', 'nothing was charged');
    });

    it('SOAP 1.2 with or without the action parameter; a conflicting one is a Sender Fault', async () => {
      const op = 'FWC_IF_Barcode_Pay_Query';
      for (const ct of [
        `application/soap+xml; charset=utf-8; action="${TEMPURI}${op}"`,
        'application/soap+xml; charset=utf-8',
        'application/soap+xml',
      ]) {
        const xml = query();
        const r = await post(`${t.url}/linkingif.asmx`, soap12Envelope(op, xml), { 'content-type': ct });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.type, 'application/soap+xml; charset=utf-8');
        assert.ok(r.text.includes(`<env:Envelope xmlns:env="${SOAP12}"`));
        assert.equal(resultOf(op, r.text), await viaXmlDoor(op, xml));
      }
      const pay = barcodeFields();
      const r = await post(`${t.url}/linkingif.asmx`, soap12Envelope('FWC_IF_Barcode_Pay', doc(pay)), {
        'content-type': `application/soap+xml; charset=utf-8; action="${TEMPURI}FWC_IF_Barcode_Pay_Cancel"`,
      });
      assert.equal(r.status, 500);
      assert.equal(r.type, 'application/soap+xml; charset=utf-8');
      const f = faultOf(r.text);
      assert.equal(f.code, 'env:Sender');
      assert.equal(f.subCode, 'SOAP_ACTION_MISMATCH');
      const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: pay.OutTradeNo });
      assert.equal(q.result.TradeStatus, 'TRADE_NOT_EXIST', 'nothing was charged');
    });

    it('prefixed operation, unqualified <xml>, CDATA, and a configured path', async () => {
      const op = 'FWC_IF_Qrcode_Pay_Query';
      const xml = query();
      const prefixed =
        `<s:Envelope xmlns:s="${SOAP11}"><s:Header/><s:Body><t:${op} xmlns:t="${TEMPURI}">` +
        `<xml>${esc(xml)}</xml></t:${op}></s:Body></s:Envelope>`;
      const cdata = `<s:Envelope xmlns:s="${SOAP11}"><s:Body><${op} xmlns="${TEMPURI}"><xml><![CDATA[${xml}]]></xml></${op}></s:Body></s:Envelope>`;
      const expected = await viaXmlDoor('FWC_IF_Barcode_Pay_Query', xml);
      for (const [p, body] of [
        ['/linkingif.asmx', prefixed],
        ['/HospitalWS.asmx', cdata],
        ['/ws/LinkingIF.asmx', axisEnvelope(op, xml)],
      ] as const) {
        const r = await post(`${t.url}${p}`, body, { 'content-type': 'text/xml' });
        assert.equal(r.status, 200, r.text);
        assert.equal(resultOf(op, r.text), expected);
      }
    });

    it('GBK: an envelope in GBK bytes, and a document declaring encoding="GBK"', async () => {
      const pay = barcodeFields({ PatientName: '张三丰', Caption: '门诊缴费' });
      const xml = doc(pay);
      const gbkBody = iconv.encode(
        axisEnvelope('FWC_IF_Barcode_Pay', xml).replace('encoding="UTF-8"', 'encoding="GBK"'),
        'gbk',
      );
      const r = await post(`${t.url}/linkingif.asmx`, gbkBody, {
        'content-type': 'text/xml; charset=GBK',
        soapaction: `"${TEMPURI}FWC_IF_Barcode_Pay"`,
      });
      assert.equal(r.status, 200, r.text);
      const answer = resultOf('FWC_IF_Barcode_Pay', r.text);
      assert.equal(parseAnswer(200, answer).rr.IsSuccess, '1', answer);
      assert.ok(answer.includes('<PatientName>张三丰</PatientName>'));
      assert.equal(answer, await viaXmlDoor('FWC_IF_Barcode_Pay', xml));

      const q = doc({ OutTradeNo: pay.OutTradeNo });
      const declaredGbk = q.replace('encoding="utf-8"', 'encoding="GBK"');
      assert.notEqual(declaredGbk, q);
      const r2 = await post(
        `${t.url}/linkingif.asmx`,
        axisEnvelope('FWC_IF_Barcode_Pay_Query', declaredGbk),
        {
          'content-type': 'text/xml; charset=utf-8',
        },
      );
      assert.equal(r2.status, 200, r2.text);
      assert.equal(
        resultOf('FWC_IF_Barcode_Pay_Query', r2.text),
        await viaXmlDoor('FWC_IF_Barcode_Pay_Query', q),
      );
    });

    it('a document over 64 KB is answered in-band REQUEST_TOO_LARGE, as the XML door answers it', async () => {
      const xml = doc({ ...qrFields(), TradeDetail: 'a'.repeat(70 * 1024) });
      const r = await post(`${t.url}/linkingif.asmx`, axisEnvelope('FWC_IF_Qrcode_Pay', xml), {
        'content-type': 'text/xml',
      });
      assert.equal(r.status, 200, r.text);
      const answer = resultOf('FWC_IF_Qrcode_Pay', r.text);
      assert.equal(parseAnswer(200, answer).rr.SubCode, 'REQUEST_TOO_LARGE');
      assert.equal(answer, await viaXmlDoor('FWC_IF_Qrcode_Pay', xml));
    });
  });

  describe('envelope errors: a SOAP Fault, HTTP 500, in the request’s SOAP version', () => {
    const cases: Array<[string, string | Buffer, string, string]> = [
      [
        'broken XML',
        `<soapenv:Envelope xmlns:soapenv="${SOAP11}"><soapenv:Body>`,
        'soap:Client',
        'XML_MALFORMED',
      ],
      [
        'a DTD with an entity',
        `<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x "y">]><soapenv:Envelope xmlns:soapenv="${SOAP11}"><soapenv:Body><FWC_IF_Barcode_Pay_Query xmlns="${TEMPURI}"><xml>&x;</xml></FWC_IF_Barcode_Pay_Query></soapenv:Body></soapenv:Envelope>`,
        'soap:Client',
        'XML_DOCTYPE_FORBIDDEN',
      ],
      [
        'a wrong envelope namespace',
        `<e:Envelope xmlns:e="http://example.com/not-soap"><e:Body/></e:Envelope>`,
        'soap:VersionMismatch',
        'SOAP_VERSION_MISMATCH',
      ],
      ['not an Envelope', `<FWC_IF_Barcode_Pay xmlns="${TEMPURI}"/>`, 'soap:Client', 'SOAP_ENVELOPE'],
      [
        'no Body',
        `<soapenv:Envelope xmlns:soapenv="${SOAP11}"><soapenv:Header/></soapenv:Envelope>`,
        'soap:Client',
        'SOAP_NO_BODY',
      ],
      [
        'an empty Body',
        `<soapenv:Envelope xmlns:soapenv="${SOAP11}"><soapenv:Body/></soapenv:Envelope>`,
        'soap:Client',
        'SOAP_NO_OPERATION',
      ],
      [
        'an unknown operation',
        `<soapenv:Envelope xmlns:soapenv="${SOAP11}"><soapenv:Body><IF_Get_Card_Info xmlns="${TEMPURI}"><xml>x</xml></IF_Get_Card_Info></soapenv:Body></soapenv:Envelope>`,
        'soap:Client',
        'SOAP_UNKNOWN_OPERATION',
      ],
      [
        'an operation outside http://tempuri.org/',
        `<soapenv:Envelope xmlns:soapenv="${SOAP11}"><soapenv:Body><FWC_IF_Barcode_Pay xmlns="http://example.com/"><xml>x</xml></FWC_IF_Barcode_Pay></soapenv:Body></soapenv:Envelope>`,
        'soap:Client',
        'SOAP_UNKNOWN_OPERATION',
      ],
      [
        'the document as elements, not a string',
        `<soapenv:Envelope xmlns:soapenv="${SOAP11}"><soapenv:Body><FWC_IF_Barcode_Pay_Query xmlns="${TEMPURI}"><xml><xml><head/></xml></xml></FWC_IF_Barcode_Pay_Query></soapenv:Body></soapenv:Envelope>`,
        'soap:Client',
        'SOAP_PARAMETER',
      ],
      [
        'a header that must be understood',
        `<soapenv:Envelope xmlns:soapenv="${SOAP11}"><soapenv:Header><w:Security xmlns:w="urn:x" soapenv:mustUnderstand="1"/></soapenv:Header><soapenv:Body><FWC_IF_Barcode_Pay_Query xmlns="${TEMPURI}"><xml>x</xml></FWC_IF_Barcode_Pay_Query></soapenv:Body></soapenv:Envelope>`,
        'soap:MustUnderstand',
        'SOAP_MUST_UNDERSTAND',
      ],
      [
        'elements nested deeper than the limit',
        `<soapenv:Envelope xmlns:soapenv="${SOAP11}"><soapenv:Body><FWC_IF_Barcode_Pay_Query xmlns="${TEMPURI}">${'<a>'.repeat(20)}${'</a>'.repeat(20)}<xml>x</xml></FWC_IF_Barcode_Pay_Query></soapenv:Body></soapenv:Envelope>`,
        'soap:Client',
        'XML_MALFORMED',
      ],
      ['an empty body', '', 'soap:Client', 'XML_EMPTY'],
      [
        'bytes that are not UTF-8',
        iconv.encode(
          `<soapenv:Envelope xmlns:soapenv="${SOAP11}"><soapenv:Body>张</soapenv:Body></soapenv:Envelope>`,
          'gbk',
        ),
        'soap:Client',
        'XML_ENCODING',
      ],
      [
        'over the size limit',
        `<soapenv:Envelope xmlns:soapenv="${SOAP11}"><soapenv:Body><FWC_IF_Barcode_Pay xmlns="${TEMPURI}"><xml>${'a'.repeat(300 * 1024)}</xml></FWC_IF_Barcode_Pay></soapenv:Body></soapenv:Envelope>`,
        'soap:Client',
        'REQUEST_TOO_LARGE',
      ],
    ];

    for (const [what, body, code, subCode] of cases) {
      it(`${what} → ${code} ${subCode}`, async () => {
        const r = await post(`${t.url}/linkingif.asmx`, body, { 'content-type': 'text/xml; charset=utf-8' });
        assert.equal(r.status, 500, r.text);
        assert.equal(r.type, 'text/xml; charset=utf-8');
        const f = faultOf(r.text);
        assert.equal(f.code, code, r.text);
        assert.equal(f.subCode, subCode, r.text);
        assert.match(f.message, / \/ /, 'a Chinese and an English message');
        assert.doesNotMatch(r.text, /at .*\.(ts|js):\d+|Error:|stack/i, 'no stack trace');
      });
    }

    it('the unknown operation is named in the Fault', async () => {
      const r = await post(`${t.url}/linkingif.asmx`, cases[6]?.[1] ?? '', { 'content-type': 'text/xml' });
      assert.match(faultOf(r.text).message, /IF_Get_Card_Info/);
    });

    it('SOAP 1.2 requests get SOAP 1.2 Faults (env:Sender, env:VersionMismatch, application/soap+xml)', async () => {
      const ct = 'application/soap+xml; charset=utf-8';
      const dtd = await post(
        `${t.url}/linkingif.asmx`,
        `<!DOCTYPE e><env:Envelope xmlns:env="${SOAP12}"><env:Body/></env:Envelope>`,
        { 'content-type': ct },
      );
      assert.equal(dtd.status, 500);
      assert.equal(dtd.type, ct);
      assert.deepEqual(
        [faultOf(dtd.text).code, faultOf(dtd.text).subCode],
        ['env:Sender', 'XML_DOCTYPE_FORBIDDEN'],
      );
      const unknown = await post(
        `${t.url}/linkingif.asmx`,
        `<env:Envelope xmlns:env="${SOAP12}"><env:Body><FWC_IF_Nope xmlns="${TEMPURI}"/></env:Body></env:Envelope>`,
        { 'content-type': ct },
      );
      assert.deepEqual(
        [faultOf(unknown.text).code, faultOf(unknown.text).subCode],
        ['env:Sender', 'SOAP_UNKNOWN_OPERATION'],
      );
      const version = await post(`${t.url}/linkingif.asmx`, `<Envelope xmlns="urn:x"/>`, {
        'content-type': ct,
      });
      assert.equal(version.type, ct);
      assert.equal(faultOf(version.text).code, 'env:VersionMismatch');
    });

    it('another content type is refused with a Fault that says what to send', async () => {
      const r = await post(`${t.url}/linkingif.asmx`, '{}', { 'content-type': 'application/json' });
      assert.equal(r.status, 500);
      const f = faultOf(r.text);
      assert.equal(f.subCode, 'UNSUPPORTED_CONTENT_TYPE');
      assert.match(f.message, /text\/xml/);
    });
  });

  it('logs name the door and the operation, never the document, the AccessToken or the payment code', async () => {
    const pay = barcodeFields();
    const r = await post(`${t.url}/linkingif.asmx`, axisEnvelope('FWC_IF_Barcode_Pay', doc(pay)), {
      'content-type': 'text/xml',
    });
    assert.equal(r.status, 200);
    const logs = t.logs();
    assert.match(logs, /"door":"soap"[^\n]*"op":"FWC_IF_Barcode_Pay"[^\n]*"msg":"offline call"/);
    assert.ok(!logs.includes(t.token), 'no AccessToken');
    assert.ok(!logs.includes(pay.AuthCode ?? '-'), 'no payment code');
    assert.ok(!logs.includes('PatientName'), 'no document');
  });
});

describe('HOSPAY_SOAP_PATHS', () => {
  it('adds paths to /linkingif.asmx and /HospitalWS.asmx; refuses malformed ones and other doors’ paths', () => {
    assert.deepEqual(loadConfig({}).soapPaths, ['/linkingif.asmx', '/HospitalWS.asmx']);
    assert.deepEqual(loadConfig({ HOSPAY_SOAP_PATHS: '/LinkingIF.asmx, /his/HospitalWS.asmx' }).soapPaths, [
      '/linkingif.asmx',
      '/HospitalWS.asmx',
      '/LinkingIF.asmx',
      '/his/HospitalWS.asmx',
    ]);
    for (const bad of ['linkingif.asmx', '/offline/x', '/a/../b', '/a b', '/finance', '/x/'])
      assert.throws(() => loadConfig({ HOSPAY_SOAP_PATHS: bad }), ConfigError, bad);
  });
});
