/**
 * A fake UnionPay online gateway (全渠道 acp 5.1.0, signMethod 01), built to the published protocol and
 * independent of the adapter's code: form-encoded POSTs to /gateway/api/backTransReq.do (consume 01/06,
 * refund 04, cancel 31) and /gateway/api/queryTrans.do (query 00), answered as raw `k=v&…` text signed with
 * its own signing certificate, which it sends as signPubKeyCert. Its certificate chain (root → middle →
 * signing certificate naming 中国银联股份有限公司) and the merchant's certificate are generated at test
 * time with the openssl CLI, plus a certificate naming someone else and a whole second ("rogue") chain.
 * It verifies the merchant's signature on every request (certId = the merchant certificate's serial) and
 * keeps books of orders by (orderId, txnTime).
 *
 * Beyond the payment code: QR orders (consume 01/07, answered with a qrCode the test "scans" with payQr), the
 * mobile web cashier (POST /gateway/api/frontTransReq.do from the payer's browser: the signed form is verified,
 * a page offers to pay; POST /gateway/cashier/confirm pays, sends the signed back-channel notice to backUrl and
 * answers with an auto-posting signed form to frontUrl, as the real cashier does), and the reconciliation file
 * (fileTransfer 76 at POST /, the file URL: a ZM file built from its books for the settlement day, zipped,
 * deflated, Base64).
 */
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Behaviour, FakeProvider, FakeTradeState, Operation } from '../conformance/suite.js';
import { buildUnionPayFileContent, type ZmLineInput } from '../../src/channels/unionpay/bill.js';

export interface UnionPayCerts {
  /** UnionPay's verify chain (what an app configures as root_cert / middle_cert). */
  root: string;
  middle: string;
  /** UnionPay's signing key and certificate (CN 041@…@中国银联股份有限公司@00000001). */
  signKey: string;
  signCert: string;
  /** Issued by the genuine middle certificate, but naming another owner. */
  wrongCnKey: string;
  wrongCnCert: string;
  /** Names UnionPay, but chains to another root. */
  rogueKey: string;
  rogueCert: string;
  rogueRoot: string;
  rogueMiddle: string;
  /** The merchant's signing key and certificate (serial MERCHANT_SERIAL). */
  merchantKey: string;
  merchantCert: string;
}

/** The merchant certificate's serial number, i.e. the certId our requests must carry. */
export const MERCHANT_SERIAL = '68759663125';
export const UNIONPAY_CN = '041@Z2026-01-01@中国银联股份有限公司@00000001';

let cached: UnionPayCerts | undefined;

/** Generates the certificates once per process (openssl CLI; tests only). */
export function unionPayCerts(): UnionPayCerts {
  if (cached) return cached;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-unionpay-'));
  const f = (name: string) => path.join(dir, name);
  const ssl = (...args: string[]) =>
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  fs.writeFileSync(f('ca.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n');
  fs.writeFileSync(f('leaf.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n');
  const root = (name: string, cn: string) =>
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '3650',
      '-subj',
      `/C=CN/O=Fake UnionPay/CN=${cn}`,
      '-utf8',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
  const issue = (
    name: string,
    subject: string,
    issuer: string,
    ext: string,
    days: number,
    serial?: string,
  ) => {
    ssl(
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      subject,
      '-utf8',
    );
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${issuer}.pem`,
      '-CAkey',
      `${issuer}.key`,
      ...(serial ? ['-set_serial', serial] : ['-CAcreateserial']),
      '-out',
      `${name}.pem`,
      '-days',
      String(days),
      '-sha256',
      '-extfile',
      ext,
    );
  };
  root('root', 'Fake CFCA Root');
  issue('middle', '/C=CN/O=Fake UnionPay/CN=Fake CFCA OCA1', 'root', 'ca.ext', 3650);
  issue('sign', `/C=CN/O=China UnionPay/OU=CUPRA/CN=${UNIONPAY_CN}`, 'middle', 'leaf.ext', 365);
  issue(
    'wrongcn',
    '/C=CN/O=Someone/OU=CUPRA/CN=041@Z2026-01-01@某某科技有限公司@00000001',
    'middle',
    'leaf.ext',
    365,
  );
  root('rogueroot', 'Rogue Root');
  issue('roguemiddle', '/C=CN/O=Rogue/CN=Rogue OCA1', 'rogueroot', 'ca.ext', 3650);
  issue('rogue', `/C=CN/O=China UnionPay/OU=CUPRA/CN=${UNIONPAY_CN}`, 'roguemiddle', 'leaf.ext', 365);
  issue(
    'merchant',
    '/C=CN/O=Fake CFCA/OU=Enterprises/CN=041@Z2026@777290058110097@00000001',
    'root',
    'leaf.ext',
    365,
    MERCHANT_SERIAL,
  );
  const r = (name: string) => fs.readFileSync(f(name), 'utf8');
  cached = {
    root: r('root.pem'),
    middle: r('middle.pem'),
    signKey: r('sign.key'),
    signCert: r('sign.pem'),
    wrongCnKey: r('wrongcn.key'),
    wrongCnCert: r('wrongcn.pem'),
    rogueKey: r('rogue.key'),
    rogueCert: r('rogue.pem'),
    rogueRoot: r('rogueroot.pem'),
    rogueMiddle: r('roguemiddle.pem'),
    merchantKey: r('merchant.key'),
    merchantCert: r('merchant.pem'),
  };
  fs.rmSync(dir, { recursive: true, force: true });
  return cached;
}

// ---- the protocol, written out again on this side ------------------------------------------------------

function signedText(fields: Record<string, string>): string {
  return Object.keys(fields)
    .filter((k) => k !== 'signature')
    .sort()
    .map((k) => `${k}=${fields[k]}`)
    .join('&');
}

function sha256Hex(text: string): string {
  return crypto.createHash('sha256').update(text, 'utf8').digest('hex');
}

function sign(fields: Record<string, string>, keyPem: string, certPem: string): Record<string, string> {
  const out: Record<string, string> = {
    ...fields,
    signMethod: '01',
    version: '5.1.0',
    signPubKeyCert: certPem,
  };
  out['signature'] = crypto
    .sign('sha256', Buffer.from(sha256Hex(signedText(out)), 'utf8'), keyPem)
    .toString('base64');
  return out;
}

/** A synchronous answer: raw `k=v` pairs joined with `&`, not percent-encoded. */
function answerText(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

const beijingDay = (d: Date) =>
  new Date(d.getTime() + 8 * 3_600_000).toISOString().slice(0, 10).replace(/-/g, '');
const traceTime = (d: Date) => {
  const s = new Date(d.getTime() + 8 * 3_600_000).toISOString();
  return s.slice(5, 7) + s.slice(8, 10) + s.slice(11, 13) + s.slice(14, 16) + s.slice(17, 19);
};

export type FakeBehaviour = Behaviour | 'rogue_chain' | 'wrong_cn' | 'no_cert' | 'other_order';

interface Order {
  kind: 'consume' | 'refund' | 'cancel';
  /** consume: 06 payment code, 07 QR, 01 mobile web. */
  txnSubType: string;
  /** QR and mobile web: yyyyMMddHHmmss after which the order can no longer be paid. */
  payTimeout?: string;
  /** Mobile web: where the payer goes back, and where the notice goes. */
  frontUrl?: string;
  backUrl?: string;
  orderId: string;
  txnTime: string;
  queryId: string;
  amountFen: number;
  /** The order's result as a query reports it (00 success, 05 processing, others failed). */
  origRespCode: string;
  outTradeNo: string;
  createdAt: Date;
  /** consume only */
  state: FakeTradeState;
  refundedFen: number;
  accNo: string;
  /** refund / cancel: the payment's queryId. */
  origQryId?: string;
}

const RESP_MSG: Record<string, string> = {
  '00': '成功[0000000]',
  '01': '交易失败[9100004]',
  '03': '交易通讯超时，请发起查询交易[9100003]',
  '05': '交易已受理，请稍后查询交易结果[9100005]',
  '11': '验证签名失败[9100011]',
  '12': '重复交易[9100012]',
  '13': '报文交易要素缺失[9100013]',
  '30': '交易未通过，请尝试使用其他银联卡支付或联系95516[1000030]',
  '34': '查无此交易[2011000]',
  '35': '原交易不存在或状态不正确[2011035]',
  '36': '与原交易信息不符[2011036]',
};

export interface FakeUnionPay extends FakeProvider {
  certs: UnionPayCerts;
  /** The merchant id the fake serves. */
  merId: string;
  script(op: Operation | string, behaviour: FakeBehaviour): void;
  /** Every request received, with its fields (qrNo included: the fake is not a record). */
  received(): Array<{ op: string; fields: Record<string, string>; signatureValid: boolean }>;
  notification(
    outTradeNo: string,
    opts?: { tamper?: boolean; signer?: 'rogue' | 'wrong_cn' },
  ): { headers: Record<string, string>; body: Buffer };
  /** Moves every order's txnTime day, as if they had been sent `days` days earlier. */
  age(outTradeNo: string, days: number): void;
  /** The payer posts a mobile web form to the cashier and confirms (the notice goes to backUrl). */
  payForm(action: string, fields: Readonly<Record<string, string>>): Promise<void>;
  /** The payer scans a QR code the fake gave and pays it (the notice is not sent: see notification). */
  payQr(qrCode: string): string;
  /** Extra lines for the next reconciliation files (a movement the platform does not know of). */
  plantBillLine(date: string, line: Omit<ZmLineInput, 'merId'>): void;
  /** Back-channel notices the cashier sent: where, and the HTTP status it got. */
  sentNotices(): Array<{ url: string; status: number; outTradeNo: string }>;
  /** The fee the reconciliation file charges, in basis points of each payment (default 0). */
  feeBps: number;
}

/** The page the fake cashier shows, and the form it answers a confirm with (auto-posting to frontUrl). */
const esc = (v: string) =>
  v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
function formPage(action: string, fields: Record<string, string>, title: string, auto: boolean): string {
  const inputs = Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join('');
  return (
    `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head>` +
    `<body${auto ? ' onload="document.forms[0].submit()"' : ''}><h1>${esc(title)}</h1>` +
    `<form id="f" method="post" action="${esc(action)}">${inputs}<button type="submit">${auto ? '返回商户' : '确认付款'}</button></form></body></html>`
  );
}

const beijingStamp = (d: Date) =>
  new Date(d.getTime() + 8 * 3_600_000).toISOString().replace(/[-:T]/g, '').slice(0, 14);

export async function startFakeUnionPay(
  opts: { merId?: string; now?: () => Date } = {},
): Promise<FakeUnionPay> {
  const clockNow = opts.now ?? (() => new Date());
  const planted = new Map<string, Array<Omit<ZmLineInput, 'merId'>>>();
  const notices: Array<{ url: string; status: number; outTradeNo: string }> = [];
  let feeBps = 0;
  /** A QR or web order whose payTimeout passed unpaid is closed. */
  const expire = (o: Order, now: Date) => {
    if (o.state === 'waiting' && o.payTimeout && beijingStamp(now) > o.payTimeout) {
      o.state = 'closed';
      o.origRespCode = '30';
    }
  };
  const certs = unionPayCerts();
  const merId = opts.merId ?? '777290058110097';
  const merchantCert = new crypto.X509Certificate(certs.merchantCert);
  const certId = BigInt(`0x${merchantCert.serialNumber}`).toString(10);
  const orders = new Map<string, Order>();
  const scripts = new Map<string, FakeBehaviour[]>();
  const log: Array<{ op: string; fields: Record<string, string>; signatureValid: boolean }> = [];
  const timers = new Set<NodeJS.Timeout>();
  let seq = 0;
  const newQueryId = () =>
    `${beijingDay(new Date())}${String(Date.now() % 1e7).padStart(7, '0')}${String(++seq).padStart(6, '0')}`;
  const key = (orderId: string, txnTime: string) => `${orderId}|${txnTime}`;
  const consumeOf = (outTradeNo: string) =>
    [...orders.values()].find(
      (o) => o.kind === 'consume' && (o.outTradeNo === outTradeNo || o.orderId === outTradeNo),
    );

  const verifyRequest = (f: Record<string, string>): boolean => {
    const sig = f['signature'];
    if (!sig || f['certId'] !== certId || f['signMethod'] !== '01' || f['version'] !== '5.1.0') return false;
    try {
      return crypto.verify(
        'sha256',
        Buffer.from(sha256Hex(signedText(f)), 'utf8'),
        merchantCert.publicKey,
        Buffer.from(sig, 'base64'),
      );
    } catch {
      return false;
    }
  };

  const respond = (res: http.ServerResponse, fields: Record<string, string>, behaviour: FakeBehaviour) => {
    let signed: Record<string, string>;
    switch (behaviour) {
      case 'rogue_chain':
        signed = sign(fields, certs.rogueKey, certs.rogueCert);
        break;
      case 'wrong_cn':
        signed = sign(fields, certs.wrongCnKey, certs.wrongCnCert);
        break;
      case 'no_cert':
        signed = sign(fields, certs.signKey, certs.signCert);
        delete signed['signPubKeyCert'];
        break;
      case 'other_order':
        signed = sign({ ...fields, orderId: `X${fields['orderId'] ?? ''}` }, certs.signKey, certs.signCert);
        break;
      default:
        signed = sign(fields, certs.signKey, certs.signCert);
    }
    if (behaviour === 'bad_signature') signed['respMsg'] = `${signed['respMsg'] ?? ''}(altered)`;
    res.writeHead(200, { 'content-type': 'text/plain;charset=UTF-8' });
    res.end(answerText(signed));
  };

  const common = (f: Record<string, string>) => ({
    encoding: 'UTF-8',
    bizType: f['bizType'] ?? '000000',
    txnType: f['txnType'] ?? '',
    txnSubType: f['txnSubType'] ?? '',
    accessType: f['accessType'] ?? '0',
    merId: f['merId'] ?? '',
    orderId: f['orderId'] ?? '',
    txnTime: f['txnTime'] ?? '',
  });
  const code = (rc: string) => ({ respCode: rc, respMsg: RESP_MSG[rc] ?? `失败[${rc}]` });

  const handle = (op: string, f: Record<string, string>): Record<string, string> => {
    const base = common(f);
    if (
      f['merId'] !== merId ||
      !/^\d{14}$/.test(f['txnTime'] ?? '') ||
      !/^[A-Za-z0-9]{8,40}$/.test(f['orderId'] ?? '')
    )
      return { ...base, ...code('13') };
    const now = clockNow();
    if (op === 'query') {
      const o = orders.get(key(f['orderId'] ?? '', f['txnTime'] ?? ''));
      if (!o) return { ...base, ...code('34') };
      expire(o, now);
      const orig = o.origRespCode;
      return {
        ...base,
        ...code('00'),
        origRespCode: orig,
        origRespMsg: RESP_MSG[orig] ?? `失败[${orig}]`,
        queryId: o.queryId,
        txnAmt: String(o.amountFen),
        currencyCode: '156',
        traceNo: o.queryId.slice(-6),
        traceTime: traceTime(o.createdAt),
        ...(orig === '00'
          ? {
              settleAmt: String(o.amountFen),
              settleCurrencyCode: '156',
              settleDate: traceTime(o.createdAt).slice(0, 4),
            }
          : {}),
        ...(o.kind === 'consume' && orig === '00' ? { accNo: o.accNo } : {}),
        ...(o.outTradeNo !== o.orderId ? { reqReserved: o.outTradeNo } : {}),
      };
    }
    const k = key(f['orderId'] ?? '', f['txnTime'] ?? '');
    if (orders.has(k)) return { ...base, ...code('12') };
    const amount = Number(f['txnAmt']);
    if (!/^\d{1,12}$/.test(f['txnAmt'] ?? '') || amount <= 0) return { ...base, ...code('13') };
    const outTradeNo = f['reqReserved'] || (f['orderId'] ?? '');
    if (op === 'precreate') {
      if (
        f['bizType'] !== '000000' ||
        f['txnSubType'] !== '07' ||
        f['channelType'] !== '08' ||
        f['currencyCode'] !== '156' ||
        !/^https?:\/\//.test(f['backUrl'] ?? '') ||
        !/^\d{14}$/.test(f['payTimeout'] ?? '')
      )
        return { ...base, ...code('13') };
      const queryId = newQueryId();
      orders.set(k, {
        kind: 'consume',
        txnSubType: '07',
        payTimeout: f['payTimeout'] ?? '',
        backUrl: f['backUrl'] ?? '',
        orderId: f['orderId'] ?? '',
        txnTime: f['txnTime'] ?? '',
        queryId,
        amountFen: amount,
        origRespCode: '05',
        outTradeNo,
        createdAt: now,
        state: 'waiting',
        refundedFen: 0,
        accNo: '6216261000000000018',
      });
      return { ...base, ...code('00'), qrCode: `https://qr.95516.com/00010000/${queryId}` };
    }
    if (op === 'pay') {
      if (
        f['bizType'] !== '000000' ||
        f['txnSubType'] !== '06' ||
        f['channelType'] !== '08' ||
        f['currencyCode'] !== '156'
      )
        return { ...base, ...code('13') };
      if (!/^62\d{17}$/.test(f['qrNo'] ?? '')) return { ...base, ...code('30') };
      const queryId = newQueryId();
      orders.set(k, {
        kind: 'consume',
        txnSubType: '06',
        orderId: f['orderId'] ?? '',
        txnTime: f['txnTime'] ?? '',
        queryId,
        amountFen: amount,
        origRespCode: '00',
        outTradeNo,
        createdAt: now,
        state: 'paid',
        refundedFen: 0,
        accNo: '6216261000000000018',
      });
      return { ...base, ...code('00'), queryId, txnAmt: String(amount), currencyCode: '156' };
    }
    // refund and cancel: the original order by its queryId
    const orig = [...orders.values()].find((o) => o.kind === 'consume' && o.queryId === f['origQryId']);
    if (!orig || orig.state !== 'paid' || orig.origRespCode !== '00') return { ...base, ...code('35') };
    if (op === 'cancel') {
      if (amount !== orig.amountFen || orig.refundedFen > 0) return { ...base, ...code('36') };
      if (beijingDay(orig.createdAt) !== beijingDay(now) || orig.txnTime.slice(0, 8) !== beijingDay(now))
        return { ...base, ...code('35') };
      orig.state = 'refunded';
      orig.refundedFen = orig.amountFen;
    } else {
      if (amount > orig.amountFen - orig.refundedFen) return { ...base, ...code('36') };
      orig.refundedFen += amount;
      if (orig.refundedFen === orig.amountFen) orig.state = 'refunded';
    }
    const queryId = newQueryId();
    orders.set(k, {
      kind: op === 'cancel' ? 'cancel' : 'refund',
      txnSubType: '00',
      origQryId: orig.queryId,
      orderId: f['orderId'] ?? '',
      txnTime: f['txnTime'] ?? '',
      queryId,
      amountFen: amount,
      origRespCode: '00',
      outTradeNo,
      createdAt: now,
      state: 'paid',
      refundedFen: 0,
      accNo: '',
    });
    return { ...base, ...code('00'), queryId, origQryId: f['origQryId'] ?? '', txnAmt: String(amount) };
  };

  /** The mobile web cashier: verifies the posted form and shows a page with a "pay" button (or why not). */
  const cashier = (
    res: http.ServerResponse,
    f: Record<string, string>,
    signatureValid: boolean,
    behaviour: FakeBehaviour,
  ) => {
    const page = (status: number, title: string, body = '') =>
      res
        .writeHead(status, { 'content-type': 'text/html;charset=utf-8' })
        .end(
          `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title></head><body><h1>${esc(title)}</h1>${body}</body></html>`,
        );
    if (!signatureValid || behaviour === 'bad_signature')
      return page(400, '验证签名失败 / signature invalid');
    if (behaviour === 'http_500' || behaviour === 'system_error') return page(500, '系统繁忙 / system busy');
    if (
      f['merId'] !== merId ||
      f['bizType'] !== '000201' ||
      f['txnSubType'] !== '01' ||
      f['channelType'] !== '08' ||
      f['currencyCode'] !== '156' ||
      !/^\d{1,12}$/.test(f['txnAmt'] ?? '') ||
      !/^https?:\/\//.test(f['frontUrl'] ?? '') ||
      !/^https?:\/\//.test(f['backUrl'] ?? '') ||
      !/^\d{14}$/.test(f['txnTime'] ?? '') ||
      !/^[A-Za-z0-9]{8,40}$/.test(f['orderId'] ?? '')
    )
      return page(400, '报文交易要素缺失 / fields missing');
    const k = key(f['orderId'] ?? '', f['txnTime'] ?? '');
    let o = orders.get(k);
    if (!o) {
      o = {
        kind: 'consume',
        txnSubType: '01',
        payTimeout: f['payTimeout'] ?? '',
        frontUrl: f['frontUrl'] ?? '',
        backUrl: f['backUrl'] ?? '',
        orderId: f['orderId'] ?? '',
        txnTime: f['txnTime'] ?? '',
        queryId: newQueryId(),
        amountFen: Number(f['txnAmt']),
        origRespCode: '05',
        outTradeNo: f['reqReserved'] || (f['orderId'] ?? ''),
        createdAt: clockNow(),
        state: 'waiting',
        refundedFen: 0,
        accNo: '6216261000000000018',
      };
      orders.set(k, o);
    } else if (o.amountFen !== Number(f['txnAmt'])) return page(400, '与原交易信息不符 / not the same order');
    expire(o, clockNow());
    if (o.state !== 'waiting')
      return page(200, o.state === 'closed' ? '订单已关闭 / closed' : '订单已支付 / paid');
    return res
      .writeHead(200, { 'content-type': 'text/html;charset=utf-8' })
      .end(
        formPage(
          '/gateway/cashier/confirm',
          { order: k },
          `银联在线支付 ¥${(o.amountFen / 100).toFixed(2)}`,
          false,
        ),
      );
  };

  /** The payer confirms: paid, notice to backUrl, signed front notice auto-posted to frontUrl. */
  const confirm = async (res: http.ServerResponse, k: string) => {
    const o = orders.get(k);
    if (!o || o.txnSubType !== '01' || !o.frontUrl) {
      res.writeHead(404).end();
      return;
    }
    expire(o, clockNow());
    if (o.state === 'waiting') {
      o.state = 'paid';
      o.origRespCode = '00';
      const n = notify(o, false);
      let status: number;
      try {
        const r = await fetch(o.backUrl ?? '', {
          method: 'POST',
          headers: n.headers,
          body: n.body,
          signal: AbortSignal.timeout(3000),
        });
        status = r.status;
        await r.text();
      } catch {
        status = -1;
      }
      notices.push({ url: o.backUrl ?? '', status, outTradeNo: o.outTradeNo });
    }
    const front = Object.fromEntries(new URLSearchParams(notify(o, false).body.toString('utf8')));
    res
      .writeHead(200, { 'content-type': 'text/html;charset=utf-8' })
      .end(formPage(o.frontUrl, front, '支付完成，正在返回商户 / paid, returning', true));
  };

  /** fileTransfer: the ZM file of the settlement day (MMDD) from the books, plus planted lines. */
  const billAnswer = (f: Record<string, string>): Record<string, string> => {
    const base = {
      encoding: 'UTF-8',
      bizType: f['bizType'] ?? '000000',
      txnType: '76',
      txnSubType: f['txnSubType'] ?? '',
      accessType: f['accessType'] ?? '0',
      merId: f['merId'] ?? '',
      txnTime: f['txnTime'] ?? '',
      settleDate: f['settleDate'] ?? '',
      fileType: f['fileType'] ?? '',
    };
    const mmdd = f['settleDate'] ?? '';
    if (f['merId'] !== merId || !/^\d{4}$/.test(mmdd) || f['fileType'] !== '00' || f['txnSubType'] !== '01')
      return { ...base, ...code('13') };
    const now = clockNow();
    let year = Number(beijingDay(now).slice(0, 4));
    if (mmdd > beijingDay(now).slice(4)) year -= 1;
    const date = `${year}-${mmdd.slice(0, 2)}-${mmdd.slice(2)}`;
    const lines: ZmLineInput[] = [];
    for (const o of orders.values()) {
      if (beijingDay(o.createdAt) !== date.replace(/-/g, '')) continue;
      if (o.origRespCode !== '00' || (o.kind === 'consume' && o.state === 'waiting')) continue;
      lines.push({
        kind: o.kind === 'consume' ? 'payment' : o.kind,
        traceTime: traceTime(o.createdAt),
        amountFen: o.amountFen,
        feeFen: o.kind === 'consume' ? Math.floor((o.amountFen * feeBps + 5000) / 10000) : 0,
        queryId: o.queryId,
        orderId: o.orderId,
        ...(o.origQryId ? { origQryId: o.origQryId } : {}),
        merId,
        reqReserved: o.outTradeNo,
        ...(o.kind === 'consume' ? { accNo: '621626*********0018' } : {}),
      });
    }
    for (const l of planted.get(date) ?? []) lines.push({ ...l, merId });
    return {
      ...base,
      ...code('00'),
      fileName: `${merId}_${date.replace(/-/g, '')}.zip`,
      fileContent: buildUnionPayFileContent(date, merId, lines),
    };
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = req.url ?? '';
      const params = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
      const fields: Record<string, string> = {};
      for (const [k, v] of params) fields[k] = v;
      let op: string;
      if (req.method !== 'POST') op = 'other';
      else if (url === '/gateway/api/queryTrans.do' && fields['txnType'] === '00') op = 'query';
      else if (url === '/gateway/api/backTransReq.do' && fields['txnType'] === '01')
        op = fields['txnSubType'] === '07' ? 'precreate' : 'pay';
      else if (url === '/gateway/api/frontTransReq.do') op = 'wap';
      else if (url === '/gateway/cashier/confirm') op = 'confirm';
      else if (url === '/' && fields['txnType'] === '76') op = 'bill';
      else if (url === '/gateway/api/backTransReq.do' && fields['txnType'] === '04') op = 'refund';
      else if (url === '/gateway/api/backTransReq.do' && fields['txnType'] === '31') op = 'cancel';
      else op = 'other';
      if (op === 'other') {
        res.writeHead(404).end();
        return;
      }
      if (op === 'confirm') {
        void confirm(res, fields['order'] ?? '');
        return;
      }
      const signatureValid = verifyRequest(fields);
      log.push({ op, fields, signatureValid });
      const behaviour = scripts.get(op)?.shift() ?? 'ok';
      if (behaviour === 'timeout') {
        const t = setTimeout(() => {
          timers.delete(t);
          if (!res.writableEnded) res.end('respCode=03');
        }, 10_000);
        timers.add(t);
        return;
      }
      if (behaviour === 'http_500') {
        res
          .writeHead(500, { 'content-type': 'text/html' })
          .end('<html><body>500 Internal Server Error</body></html>');
        return;
      }
      if (behaviour === 'malformed') {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>');
        return;
      }
      if (op === 'wap') {
        cashier(res, fields, signatureValid, behaviour);
        return;
      }
      if (!signatureValid) {
        respond(res, { ...common(fields), ...code('11') }, 'ok');
        return;
      }
      if (op === 'bill' && behaviour !== 'system_error' && behaviour !== 'declined') {
        respond(res, billAnswer(fields), behaviour);
        return;
      }
      if (behaviour === 'system_error') {
        respond(res, { ...common(fields), ...code('03') }, 'ok');
        return;
      }
      if (behaviour === 'declined') {
        if (op === 'pay') {
          const answer = handle(op, fields);
          const o = orders.get(key(fields['orderId'] ?? '', fields['txnTime'] ?? ''));
          if (o) {
            o.origRespCode = '30';
            o.state = 'closed';
          }
          respond(res, { ...answer, ...code('30') }, 'ok');
        } else respond(res, { ...common(fields), ...code(op === 'query' ? '34' : '01') }, 'ok');
        return;
      }
      const answer = handle(op, fields);
      if (behaviour === 'paying' && op === 'pay' && answer['respCode'] === '00') {
        const o = orders.get(key(fields['orderId'] ?? '', fields['txnTime'] ?? ''));
        if (o) {
          o.origRespCode = '05';
          o.state = 'waiting';
        }
      }
      respond(res, answer, behaviour);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  const notify = (o: Order, tamper: boolean, signer?: 'rogue' | 'wrong_cn') => {
    const fields: Record<string, string> = {
      accessType: '0',
      bizType: '000000',
      currencyCode: '156',
      encoding: 'UTF-8',
      merId,
      orderId: o.orderId,
      queryId: o.queryId,
      respCode: '00',
      respMsg: RESP_MSG['00'] ?? '',
      settleAmt: String(o.amountFen),
      settleCurrencyCode: '156',
      settleDate: traceTime(o.createdAt).slice(0, 4),
      traceNo: o.queryId.slice(-6),
      traceTime: traceTime(o.createdAt),
      txnAmt: String(o.amountFen),
      txnSubType: o.txnSubType,
      txnTime: o.txnTime,
      txnType: '01',
      accNo: o.accNo,
      ...(o.outTradeNo !== o.orderId ? { reqReserved: o.outTradeNo } : {}),
    };
    const signed =
      signer === 'rogue'
        ? sign(fields, certs.rogueKey, certs.rogueCert)
        : signer === 'wrong_cn'
          ? sign(fields, certs.wrongCnKey, certs.wrongCnCert)
          : sign(fields, certs.signKey, certs.signCert);
    if (tamper) signed['txnAmt'] = String(o.amountFen + 100);
    return {
      headers: { 'content-type': 'application/x-www-form-urlencoded;charset=UTF-8' },
      body: Buffer.from(new URLSearchParams(signed).toString(), 'utf8'),
    };
  };

  return {
    url: `http://127.0.0.1:${port}`,
    certs,
    merId,
    script(op, behaviour) {
      const list = scripts.get(op) ?? [];
      list.push(behaviour);
      scripts.set(op, list);
    },
    setTrade(outTradeNo, state) {
      const o = consumeOf(outTradeNo);
      if (!o) throw new Error(`the fake UnionPay has no payment ${outTradeNo}`);
      o.state = state;
      o.origRespCode = state === 'waiting' ? '05' : state === 'closed' ? '30' : '00';
      if (state === 'refunded') o.refundedFen = o.amountFen;
    },
    trade(outTradeNo) {
      const o = consumeOf(outTradeNo);
      return o ? { state: o.state, amountFen: o.amountFen, refundedFen: o.refundedFen } : undefined;
    },
    // The adapter's own requests: the mobile web form is posted by the payer's browser (payForm), not the adapter.
    requests: () =>
      log.filter((r) => r.op !== 'wap').map(({ op, signatureValid }) => ({ op, signatureValid })),
    received: () => log.map((r) => ({ ...r, fields: { ...r.fields } })),
    notification(outTradeNo, o = {}) {
      const c = consumeOf(outTradeNo);
      if (!c) throw new Error(`the fake UnionPay has no payment ${outTradeNo}`);
      return notify(c, o.tamper ?? false, o.signer);
    },
    age(outTradeNo, days) {
      for (const [k, o] of [...orders.entries()]) {
        if (o.outTradeNo !== outTradeNo) continue;
        const at = new Date(o.createdAt.getTime() - days * 86_400_000);
        orders.delete(k);
        o.createdAt = at;
        o.txnTime = `${beijingDay(at)}${o.txnTime.slice(8)}`;
        orders.set(key(o.orderId, o.txnTime), o);
      }
    },
    async payForm(action, fields) {
      const page = await fetch(action, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams(fields as Record<string, string>).toString(),
      });
      const html = await page.text();
      const order = /name="order" value="([^"]+)"/.exec(html)?.[1];
      if (page.status !== 200 || !order)
        throw new Error(`the fake cashier refused the form: ${page.status} ${html}`);
      const done = await fetch(new URL('/gateway/cashier/confirm', action), {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ order: order.replace(/&amp;/g, '&') }).toString(),
      });
      await done.text();
      if (done.status !== 200) throw new Error(`the fake cashier's confirm answered ${done.status}`);
    },
    payQr(qrCode) {
      const o = [...orders.values()].find((x) => qrCode === `https://qr.95516.com/00010000/${x.queryId}`);
      if (!o) throw new Error(`the fake UnionPay gave no code ${qrCode}`);
      expire(o, clockNow());
      if (o.state !== 'waiting') throw new Error(`the QR order is ${o.state}`);
      o.state = 'paid';
      o.origRespCode = '00';
      return o.outTradeNo;
    },
    plantBillLine(date, line) {
      const list = planted.get(date) ?? [];
      list.push(line);
      planted.set(date, list);
    },
    sentNotices: () => notices.map((n) => ({ ...n })),
    get feeBps() {
      return feeBps;
    },
    set feeBps(v: number) {
      feeBps = v;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
