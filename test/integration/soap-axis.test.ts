// The SOAP door through the stub the field uses: Apache Axis 1.4 WSDL2Java stubs, generated at test time from the
// HospitalWS contract written by hand (test/fixtures/soap/HospitalWS.contract.wsdl, NOT hospay's own ?wsdl),
// compiled with javac and called by test/fixtures/soap/AxisCaller.java as HIS code calls them. Every operation
// (the barcode ones and the Qrcode aliases), on both ports (SOAP 1.1 and 1.2), must answer what the XML door answers
// for the same document.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  authCode,
  barcodeFields,
  orderNo,
  parseAnswer,
  qrFields,
  startTestPlatform,
  xmlDoc,
  type TestPlatform,
} from '../support/platform.js';

const run = promisify(execFile);

const FIXTURES = path.resolve('test/fixtures/soap');
const WSDL = path.join(FIXTURES, 'HospitalWS.contract.wsdl');
// Where the jars are (Debian's place; HOSPAY_JAVA_LIBS points elsewhere).
const JAVA_DIR = process.env['HOSPAY_JAVA_LIBS'] ?? '/usr/share/java';
// Debian's libaxis-java and its dependencies: WSDL2Java needs wsdl4j; the stubs need all six at run time.
const JARS = [
  'axis.jar',
  'jaxrpc.jar',
  'saaj.jar',
  'wsdl4j.jar',
  'commons-discovery.jar',
  'commons-logging.jar',
].map((j) => path.join(JAVA_DIR, j));
// Only silence Axis's "attachment support is disabled" warning.
const OPTIONAL_JARS = ['javax.activation.jar', 'javax.mail.jar']
  .map((j) => path.join(JAVA_DIR, j))
  .filter((j) => fs.existsSync(j));

function onPath(cmd: string): boolean {
  return (process.env['PATH'] ?? '')
    .split(path.delimiter)
    .some((d) => d !== '' && fs.existsSync(path.join(d, cmd)));
}

const missing = [...['java', 'javac'].filter((c) => !onPath(c)), ...JARS.filter((j) => !fs.existsSync(j))];
// CI installs them (.ci/run); elsewhere the test says what is missing and is skipped.
const skip =
  missing.length > 0 && process.env['CI'] !== 'true'
    ? `missing ${missing.join(', ')} (apt-get install default-jdk-headless libaxis-java)`
    : false;

const classPath = (...extra: string[]) => [...extra, ...JARS, ...OPTIONAL_JARS].join(path.delimiter);

/**
 * Generates the stubs from the contract and compiles them with AxisCaller, once per set of inputs: the classes are
 * kept in the temporary directory under a hash of the sources and jars, so the second database's run reuses them.
 */
async function buildStubs(): Promise<string> {
  const hash = crypto.createHash('sha256');
  for (const f of [WSDL, path.join(FIXTURES, 'AxisCaller.java'), path.join(FIXTURES, 'AxisWsdl2Java.java')]) {
    hash.update(fs.readFileSync(f));
  }
  for (const j of [...JARS, ...OPTIONAL_JARS]) hash.update(`${j}:${fs.statSync(j).size}`);
  const dir = path.join(os.tmpdir(), `hospay-axis-${hash.digest('hex').slice(0, 16)}`);
  if (fs.existsSync(path.join(dir, 'classes', 'AxisCaller.class'))) return path.join(dir, 'classes');

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-axis-build-'));
  const tool = path.join(work, 'tool');
  const src = path.join(work, 'src');
  const classes = path.join(work, 'classes');
  fs.mkdirSync(tool);
  fs.mkdirSync(classes);
  // WSDL2Java as Axis 1.4 shipped (with wsdl4j 1.5.1's view of soap12:), so that it generates both ports.
  await run('javac', ['-nowarn', '-d', tool, '-cp', classPath(), path.join(FIXTURES, 'AxisWsdl2Java.java')]);
  await run('java', ['-cp', classPath(tool), 'AxisWsdl2Java', '-o', src, WSDL]);
  const generated = fs.readdirSync(path.join(src, 'org', 'tempuri')).sort();
  assert.deepEqual(generated, [
    'HospitalWS.java',
    'HospitalWSLocator.java',
    'HospitalWSSoap.java',
    'HospitalWSSoap12Stub.java',
    'HospitalWSSoapStub.java',
  ]);
  await run('javac', [
    '-nowarn',
    '-encoding',
    'UTF-8',
    '-d',
    classes,
    '-cp',
    classPath(),
    ...generated.map((f) => path.join(src, 'org', 'tempuri', f)),
    path.join(FIXTURES, 'AxisCaller.java'),
  ]);
  try {
    fs.renameSync(work, dir);
  } catch {
    // Another run put it there first: use that one.
    fs.rmSync(work, { recursive: true, force: true });
  }
  return path.join(dir, 'classes');
}

type Port = 'HospitalWSSoap' | 'HospitalWSSoap12';

type Fields = Record<string, string | undefined>;

interface Call {
  op: string;
  doc: string;
}

interface AxisResult {
  answer?: string;
  fault?: string;
}

const ALIASES: Record<string, string> = {
  FWC_IF_Qrcode_Pay_Query: 'FWC_IF_Barcode_Pay_Query',
  FWC_IF_Qrcode_Pay_Cancel: 'FWC_IF_Barcode_Pay_Cancel',
  FWC_IF_Qrcode_Pay_Refund: 'FWC_IF_Barcode_Pay_Refund',
};

/** The values that differ between two trades made from twin documents, masked. */
const VOLATILE =
  /<(TradeNo|PlatformTradeNo|PaymentDateTime|ExpireTime|TwoDimensionCode|BuyerLogonId|Buyer_user_id)>[^<]+<\/\1>/g;

function masked(text: string, ids: Record<string, string | undefined>): string {
  let s = text;
  for (const [label, value] of Object.entries(ids)) if (value) s = s.split(value).join(`{${label}}`);
  return s.replace(VOLATILE, '<$1>*</$1>');
}

for (const { port, soap, asmx } of [
  { port: 'HospitalWSSoap' as Port, soap: 'SOAP 1.1', asmx: '/linkingif.asmx' },
  { port: 'HospitalWSSoap12' as Port, soap: 'SOAP 1.2', asmx: '/HospitalWS.asmx' },
]) {
  describe(
    `Apache Axis 1.4 stubs from the hand-written contract, port ${port} (${soap}, ${asmx})`,
    { skip },
    () => {
      let t: TestPlatform;
      let classes = '';
      let batchDir = '';
      let batches = 0;

      before(async () => {
        classes = await buildStubs();
        batchDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-axis-calls-'));
        t = await startTestPlatform();
      });
      after(async () => {
        await t?.close();
        if (batchDir) fs.rmSync(batchDir, { recursive: true, force: true });
      });

      /** One JVM calls the whole batch through the stub; the answer strings (or faults) in order. */
      const axis = async (calls: Call[]): Promise<AxisResult[]> => {
        const dir = path.join(batchDir, String(++batches));
        fs.mkdirSync(dir);
        const args: string[] = [];
        calls.forEach((c, i) => {
          const file = path.join(dir, `${i}.xml`);
          fs.writeFileSync(file, c.doc, 'utf8');
          args.push(c.op, file);
        });
        // Asynchronous: the platform answering the calls runs in this process.
        const out = await run('java', [
          '-cp',
          classPath(classes),
          'AxisCaller',
          port,
          `${t.url}${asmx}`,
          ...args,
        ]);
        assert.match(out.stdout, new RegExp(`DONE ${calls.length} call\\(s\\)`), out.stdout + out.stderr);
        return calls.map((_c, i) => {
          const file = path.join(dir, `${i}.xml`);
          if (fs.existsSync(`${file}.answer`)) return { answer: fs.readFileSync(`${file}.answer`, 'utf8') };
          return { fault: fs.readFileSync(`${file}.fault`, 'utf8') };
        });
      };
      const answerOf = (r: AxisResult | undefined): string => {
        assert.ok(r, 'one result per call');
        assert.equal(r.fault, undefined, `a SOAP answer, not a fault: ${r.fault ?? ''}`);
        return r.answer ?? '';
      };

      /** The XML door's answer text for the same document (the Qrcode aliases are the barcode interfaces there). */
      const xmlDoor = async (op: string, doc: string): Promise<string> => {
        const res = await fetch(`${t.url}/offline/${ALIASES[op] ?? op}`, {
          method: 'POST',
          headers: { 'content-type': 'text/xml; charset=utf-8' },
          body: doc,
        });
        assert.equal(res.status, 200);
        return res.text();
      };

      const doc = (fields: Fields, token: string | null = t.token) =>
        xmlDoc(token === null ? fields : { AccessToken: token, ...fields });

      it('calls every operation and each answer equals the XML door answer for the same document', async () => {
        // Twin documents: the same fields, their own order numbers and payment codes (A through Axis, B through XML).
        const payA1 = barcodeFields();
        const payB1: Fields = { ...payA1, OutTradeNo: orderNo(), AuthCode: authCode() };
        const payA2 = barcodeFields({ TotalAmount: '12.34', AuthCode: authCode('00', 'weixin') });
        const payB2: Fields = { ...payA2, OutTradeNo: orderNo(), AuthCode: authCode('00', 'weixin') };
        const qrA = qrFields({ Caption: '门诊缴费', PatientName: '张三' });
        const qrB: Fields = { ...qrA, OutTradeNo: orderNo('ZJMZ') };

        // 1. Payments, through Axis and, for the twins, through the XML door.
        const [a1, a2, aq] = await axis([
          { op: 'FWC_IF_Barcode_Pay', doc: doc(payA1) },
          { op: 'FWC_IF_Barcode_Pay', doc: doc(payA2) },
          { op: 'FWC_IF_Qrcode_Pay', doc: doc(qrA) },
        ]);
        const pays = [
          { axis: answerOf(a1), a: payA1, b: payB1, op: 'FWC_IF_Barcode_Pay' },
          { axis: answerOf(a2), a: payA2, b: payB2, op: 'FWC_IF_Barcode_Pay' },
          { axis: answerOf(aq), a: qrA, b: qrB, op: 'FWC_IF_Qrcode_Pay' },
        ];
        for (const p of pays) {
          const twin = await xmlDoor(p.op, doc(p.b));
          assert.equal(
            masked(p.axis, { OUT: p.a.OutTradeNo, AUTH: p.a.AuthCode }),
            masked(twin, { OUT: p.b.OutTradeNo, AUTH: p.b.AuthCode }),
            `${p.op}: the Axis answer is the XML door's`,
          );
        }
        const A1 = parseAnswer(200, pays[0]?.axis ?? '');
        assert.equal(A1.rr.IsSuccess, '1');
        assert.equal(A1.rr.SubCode, 'SUCCESS');
        assert.equal(A1.result.TradeStatus, 'TRADE_SUCCESS');
        assert.equal(A1.result.OutTradeNo, payA1.OutTradeNo);
        assert.equal(A1.result.TotalAmount, '88.88');
        const A2 = parseAnswer(200, pays[1]?.axis ?? '');
        assert.equal(A2.result.TradeStatus, 'TRADE_SUCCESS');
        assert.equal(A2.result.PayType, 'weixin');
        const Q = parseAnswer(200, pays[2]?.axis ?? '');
        assert.equal(Q.rr.IsSuccess, '1');
        assert.match(Q.result.TwoDimensionCode ?? '', /^https?:\/\//);
        const B1 = parseAnswer(
          200,
          await xmlDoor('FWC_IF_Barcode_Pay_Query', doc({ OutTradeNo: payB1.OutTradeNo })),
        );
        const B2 = { OutTradeNo: payB2.OutTradeNo };
        const QB = { OutTradeNo: qrB.OutTradeNo };

        // 2. Queries (read-only: the very same answer text), refunds, cancels; the Qrcode aliases among them.
        const queries: Call[] = [
          { op: 'FWC_IF_Barcode_Pay_Query', doc: doc({ OutTradeNo: payA1.OutTradeNo }) },
          { op: 'FWC_IF_Qrcode_Pay_Query', doc: doc({ OutTradeNo: payA1.OutTradeNo }) },
          { op: 'FWC_IF_Qrcode_Pay_Query', doc: doc({ OutTradeNo: qrA.OutTradeNo }) },
        ];
        const expectedQueries: string[] = [];
        for (const q of queries) expectedQueries.push(await xmlDoor(q.op, q.doc));
        const refund = (pay: Fields, tradeNo: string, amount: string, outRequestNo: string) => ({
          TradeNo: tradeNo,
          RefundAmount: amount,
          OutRequestNo: outRequestNo,
          RefundmentReason: '患者退费',
          OutTradeNo: pay.OutTradeNo,
          TotalAmount: pay.TotalAmount,
        });
        const r1 = refund(payA1, A1.result.PlatformTradeNo ?? '', '10.00', orderNo('R'));
        const r2 = refund(payA1, A1.result.TradeNo ?? '', '20.00', orderNo('R'));
        const mutations: Call[] = [
          { op: 'FWC_IF_Barcode_Pay_Refund', doc: doc(r1) },
          { op: 'FWC_IF_Qrcode_Pay_Refund', doc: doc(r2) },
          { op: 'FWC_IF_Barcode_Pay_Cancel', doc: doc({ OutTradeNo: payA2.OutTradeNo }) },
          { op: 'FWC_IF_Qrcode_Pay_Cancel', doc: doc({ OutTradeNo: qrA.OutTradeNo }) },
        ];
        const results = await axis([...queries, ...mutations]);
        queries.forEach((q, i) =>
          assert.equal(answerOf(results[i]), expectedQueries[i], `${q.op}: the XML door's answer`),
        );
        const q1 = parseAnswer(200, answerOf(results[0]));
        assert.equal(q1.result.TradeStatus, 'TRADE_SUCCESS');
        assert.equal(q1.result.RefundFee, '0.00');
        assert.equal(parseAnswer(200, answerOf(results[2])).result.TradeStatus, 'WAIT_BUYER_PAY');

        const s1 = refund(payB1, B1.result.PlatformTradeNo ?? '', '10.00', orderNo('R'));
        const s2 = refund(payB1, B1.result.TradeNo ?? '', '20.00', orderNo('R'));
        const twins = [
          { op: 'FWC_IF_Barcode_Pay_Refund', a: { OUT: payA1.OutTradeNo, REQ: r1.OutRequestNo }, b: s1 },
          { op: 'FWC_IF_Qrcode_Pay_Refund', a: { OUT: payA1.OutTradeNo, REQ: r2.OutRequestNo }, b: s2 },
          { op: 'FWC_IF_Barcode_Pay_Cancel', a: { OUT: payA2.OutTradeNo }, b: B2 },
          { op: 'FWC_IF_Qrcode_Pay_Cancel', a: { OUT: qrA.OutTradeNo }, b: QB },
        ];
        for (const [i, tw] of twins.entries()) {
          const axisText = answerOf(results[queries.length + i]);
          const twin = await xmlDoor(tw.op, doc(tw.b));
          const b: Fields = tw.b;
          assert.equal(
            masked(axisText, tw.a),
            masked(twin, { OUT: b.OutTradeNo, REQ: b.OutRequestNo }),
            `${tw.op}: the Axis answer is the XML door's`,
          );
        }
        const refunded2 = parseAnswer(200, answerOf(results[queries.length + 1]));
        assert.equal(refunded2.rr.IsSuccess, '1');
        assert.equal(refunded2.result.RefundAmount, '20.00');
        assert.equal(
          refunded2.result.RefundFee,
          '30.00',
          'the alias refunded the same trade as the barcode refund',
        );
        const cancelled = parseAnswer(200, answerOf(results[queries.length + 2]));
        assert.equal(cancelled.rr.IsSuccess, '1');
        assert.equal(cancelled.result.CancelAction, 'refund');
        const closed = parseAnswer(200, answerOf(results[queries.length + 3]));
        assert.equal(closed.rr.IsSuccess, '1');
        assert.equal(closed.result.CancelAction, 'close');
        assert.equal(closed.result.TradeStatus, 'TRADE_CLOSED');

        // The money side agrees: what Axis did is in the books.
        const books = parseAnswer(
          200,
          await xmlDoor('FWC_IF_Barcode_Pay_Query', doc({ OutTradeNo: payA1.OutTradeNo })),
        );
        assert.equal(books.result.RefundFee, '30.00');
      });

      it('carries Chinese text both ways (PatientName 张三, Caption 门诊缴费)', async () => {
        const f = barcodeFields({
          PatientName: '张三',
          Caption: '门诊缴费',
          Descriptive: '西药费；检查费 & 化验费 <急诊>',
        });
        const [r] = await axis([{ op: 'FWC_IF_Barcode_Pay', doc: doc(f) }]);
        const text = answerOf(r);
        const a = parseAnswer(200, text);
        assert.equal(a.rr.IsSuccess, '1');
        assert.equal(a.head.PatientName, '张三');
        assert.equal(a.head.Caption, '门诊缴费');
        assert.equal(a.head.Descriptive, '西药费；检查费 & 化验费 <急诊>');
        const row = await t.trade(f.OutTradeNo ?? '');
        assert.equal(row.patient_name, '张三');
        assert.equal(row.subject, '门诊缴费');
      });

      it('answers a bad document in-band, exactly as the XML door does', async () => {
        const bad: Call[] = [
          // A required field missing: IsSuccess 0.
          { op: 'FWC_IF_Barcode_Pay', doc: doc(barcodeFields({ Caption: undefined })) },
          // A wrong AccessToken: IsSuccess 3.
          { op: 'FWC_IF_Qrcode_Pay_Query', doc: doc({ OutTradeNo: orderNo() }, 'not-a-valid-token') },
          // An order that does not exist.
          { op: 'FWC_IF_Barcode_Pay_Query', doc: doc({ OutTradeNo: orderNo() }) },
          // Not XML at all, and a document with a DTD (refused by the hardened parser): in-band, not a SOAP Fault.
          { op: 'FWC_IF_Qrcode_Pay_Refund', doc: 'this is not xml' },
          {
            op: 'FWC_IF_Barcode_Pay_Cancel',
            doc: `<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY e "x">]><xml><head><AccessToken>${t.token}</AccessToken><OutTradeNo>&e;</OutTradeNo></head></xml>`,
          },
          // An empty document.
          { op: 'FWC_IF_Qrcode_Pay', doc: '' },
        ];
        const results = await axis(bad);
        const codes: string[] = [];
        for (const [i, c] of bad.entries()) {
          const text = answerOf(results[i]);
          assert.equal(text, await xmlDoor(c.op, c.doc), `${c.op}: the XML door's answer`);
          const a = parseAnswer(200, text);
          codes.push(`${a.rr.IsSuccess}:${a.rr.SubCode}`);
        }
        assert.match(codes[0] ?? '', /^0:/);
        assert.match(codes[1] ?? '', /^3:/);
        assert.match(codes[2] ?? '', /^0:TRADE_NOT_EXIST$/);
        for (const c of codes.slice(3)) assert.doesNotMatch(c, /^1:/);
      });
    },
  );
}
