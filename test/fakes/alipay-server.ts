/**
 * A fake Alipay OpenAPI gateway, built to Alipay's published protocol, for the adapter's conformance and unit
 * tests. A real HTTP server:
 *  - it verifies every request's RSA/RSA2 signature with the app's public key (all parameters but `sign`,
 *    empty ones left out, sorted, raw values), and in certificate mode the app_cert_sn / alipay_root_cert_sn
 *    it was sent against its own computation; each request is kept with `signatureValid`;
 *  - it keeps trade books (state, amount, refunds by out_request_no) and answers alipay.trade.pay, precreate,
 *    wap.pay (the cashier page), query, cancel, close, refund, fastpay.refund.query and
 *    data.dataservice.bill.downloadurl.query the way Alipay does;
 *  - its answers are `{"<method>_response":{...},"sign":"..."}`, signed with its own key over the response
 *    object's exact text (slashes escaped as Alipay writes them, so a re-serialisation would not verify);
 *  - told to (script), it answers "user paying", declines, system errors, HTTP 500, a malformed or a wrongly
 *    signed answer, or nothing at all (timeout). A misbehaving answer never changes the books;
 *  - it serves the day's bill ZIP (GBK CSV in Alipay's format, from the real builder) at the URL it hands out;
 *  - it writes the asynchronous notifications Alipay would POST, signed (or tampered with);
 *  - third-party app (ISV) mode, when told the authorised hospitals (`appAuthTokens`: app_auth_token →
 *    auth_app_id): every request must carry a known app_auth_token (a signed public parameter). An unknown one is
 *    answered as Alipay does (20001 Insufficient Token Permissions, aop.invalid-app-auth-token), a missing one as
 *    the third-party app acting for itself without the product (40006, isv.insufficient-isv-permissions); each
 *    hospital sees only its own trades, and notifications carry app_id (the third-party app) and auth_app_id
 *    (the hospital).
 *
 * Keys are generated at test start; certificates (cert mode) by the `openssl` command at test time.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  createSign,
  createVerify,
  generateKeyPairSync,
  randomBytes,
  X509Certificate,
  type KeyObject,
} from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Behaviour, FakeProvider, FakeTradeState, Operation } from '../conformance/suite.js';
import { formatShanghai } from '../../src/domain/clock.js';
import {
  addFen,
  fen,
  formatFen,
  parseYuanToFen,
  subFen,
  ZERO_FEN,
  type Fen,
} from '../../src/domain/money.js';
import { buildAlipayTradeBill } from '../../src/channels/alipay/bill.js';
import type { BillLine } from '../../src/domain/bill.js';

export type AlipayOp = Operation | 'refund_query' | 'bill' | 'unknown';

const OPS: Record<string, AlipayOp> = {
  'alipay.trade.pay': 'pay',
  'alipay.trade.precreate': 'precreate',
  'alipay.trade.wap.pay': 'wap',
  'alipay.trade.query': 'query',
  'alipay.trade.refund': 'refund',
  'alipay.trade.fastpay.refund.query': 'refund_query',
  'alipay.trade.cancel': 'cancel',
  'alipay.trade.close': 'close',
  'alipay.data.dataservice.bill.downloadurl.query': 'bill',
};

export const FAKE_SELLER_ID = '2088101106499364';
export const FAKE_BUYER_ID = '2088102122524333';
export const FAKE_BUYER_LOGON_ID = '159****5620';

/** Alipay's signing content: every parameter but the excluded ones and empty values, sorted, raw values. */
export function alipaySigningContent(
  params: Readonly<Record<string, string>>,
  exclude: readonly string[],
): string {
  return Object.keys(params)
    .filter((k) => !exclude.includes(k) && params[k] !== undefined && params[k] !== '')
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join('&');
}

const ALG = { RSA2: 'RSA-SHA256', RSA: 'RSA-SHA1' } as const;

export function rsaSign(content: string, key: KeyObject, signType: 'RSA2' | 'RSA'): string {
  return createSign(ALG[signType]).update(content, 'utf8').sign(key, 'base64');
}

export function rsaVerify(content: string, sign: string, key: KeyObject, signType: 'RSA2' | 'RSA'): boolean {
  try {
    return createVerify(ALG[signType]).update(content, 'utf8').verify(key, sign, 'base64');
  } catch {
    return false;
  }
}

/**
 * A certificate's serial number as Alipay defines it, computed here independently of the SDK:
 * md5(issuer DN in RFC 2253 order "CN=…,OU=…,O=…,C=…" + the serial number in decimal).
 */
export function alipayCertSn(pem: string): string {
  const cert = new X509Certificate(pem);
  const issuer = cert.issuer.split('\n').reverse().join(',');
  return createHash('md5')
    .update(issuer + BigInt(`0x${cert.serialNumber}`).toString(10), 'utf8')
    .digest('hex');
}

export interface AlipayTestCerts {
  /** The app's private key (PKCS#8 PEM) and its certificate appCertPublicKey_<APPID>.crt. */
  appKeyPem: string;
  appCertPem: string;
  /** Alipay's (the fake's) private key and its certificate alipayCertPublicKey_RSA2.crt. */
  alipayKeyPem: string;
  alipayCertPem: string;
  /** alipayRootCert.crt: an RSA-signed CA and an EC one (left out of the serial number, as Alipay's SM2 root is). */
  rootCertPem: string;
  /** The serial numbers, computed here (alipayCertSn), not by the SDK. */
  appCertSn: string;
  alipayCertSn: string;
  alipayRootCertSn: string;
}

/** The issuer DN and serial of the app certificate in alipay-sdk's own tests (SN 866efef280dec9137a87d047ac446315). */
export const KNOWN_APP_CERT = {
  caSubject:
    '/C=CN/O=Ant Financial/OU=Certification Authority/CN=Ant Financial Certification Authority Class 1 R1',
  serialHex: '2020051862039D4090897BA4D51C2126',
  sn: '866efef280dec9137a87d047ac446315',
};

/**
 * Test-only certificates made with the `openssl` command (node cannot issue certificates): a CA with the DN
 * of Alipay's class 1 CA, the app's and Alipay's certificates issued by it, and an EC CA beside it in the
 * root file. Null when openssl is not installed. Nothing here is secret or real.
 */
export function generateAlipayCerts(): AlipayTestCerts | null {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    return null;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-alipay-certs-'));
  const f = (name: string) => path.join(dir, name);
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  try {
    run(
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt')].concat([
        '-days',
        '3650',
        '-sha256',
        '-utf8',
        '-set_serial',
        '1',
        '-subj',
        KNOWN_APP_CERT.caSubject,
      ]),
    );
    run(
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
        '-keyout',
        f('ec.key'),
        '-out',
        f('ec.crt'),
        '-days',
        '3650',
        '-subj',
        '/C=CN/O=Hospay Test/CN=EC Root',
      ]),
    );
    const issue = (name: string, subject: string, serial: string) => {
      run(
        [
          'req',
          '-new',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          f(`${name}.key`),
          '-out',
          f(`${name}.csr`),
        ].concat(['-utf8', '-subj', subject]),
      );
      run(
        ['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key')].concat([
          '-set_serial',
          serial,
          '-days',
          '365',
          '-sha256',
          '-out',
          f(`${name}.crt`),
        ]),
      );
    };
    issue(
      'app',
      '/C=CN/O=测试医院/OU=Alipay/CN=2088000000000000-2021000000000001',
      `0x${KNOWN_APP_CERT.serialHex}`,
    );
    issue('alipay', '/C=CN/O=Hospay Test Alipay/OU=Alipay/CN=Alipay Test Public Key', '0x0B');
    const read = (name: string) => fs.readFileSync(f(name), 'utf8');
    const rootCertPem = read('ca.crt') + read('ec.crt');
    return {
      appKeyPem: read('app.key'),
      appCertPem: read('app.crt'),
      alipayKeyPem: read('alipay.key'),
      alipayCertPem: read('alipay.crt'),
      rootCertPem,
      appCertSn: alipayCertSn(read('app.crt')),
      alipayCertSn: alipayCertSn(read('alipay.crt')),
      alipayRootCertSn: alipayCertSn(read('ca.crt')),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export interface AlipayFakeOptions {
  appId: string;
  /** The app's public key: the fake verifies our requests with it. */
  appPublicKey: KeyObject | string;
  signType?: 'RSA2' | 'RSA';
  /** The fake's own (Alipay's) key; generated when not given. */
  alipayPrivateKey?: KeyObject | string;
  /** Certificate mode: the serial numbers requests must carry, and the one answers name. */
  cert?: { appCertSn: string; alipayRootCertSn: string; alipayCertSn: string };
  /**
   * Third-party app mode: `appId` is the third-party app's, and these are the hospitals that authorised it, by
   * their app_auth_token (→ the hospital's APPID, auth_app_id). Every request must carry one of them.
   */
  appAuthTokens?: Record<string, string>;
}

interface Refund {
  amountFen: Fen;
  at: Date;
}

export interface FakeAlipayTrade {
  outTradeNo: string;
  tradeNo: string;
  state: FakeTradeState;
  amountFen: Fen;
  refundedFen: Fen;
  subject: string;
  createdAt: Date;
  paidAt?: Date;
  refunds: Map<string, Refund>;
  notifyId: string;
  /** Third-party app mode: the hospital (auth_app_id) whose trade this is. */
  authAppId?: string;
}

export interface FakeRequest {
  op: AlipayOp;
  method: string;
  signatureValid: boolean;
  /** Third-party app mode: the hospital the request's app_auth_token names (undefined: none or unknown). */
  authAppId?: string | undefined;
  params: Record<string, string>;
  biz: Record<string, unknown>;
}

export interface AlipayFake extends FakeProvider {
  /** The gateway URL to configure (gateway_url). */
  gatewayUrl: string;
  /** The fake's public key, bare Base64 of the DER, as the open platform shows it (alipay_public_key). */
  alipayPublicKey: string;
  script(op: AlipayOp, behaviour: Behaviour): void;
  requests(): FakeRequest[];
  books(outTradeNo: string): FakeAlipayTrade | undefined;
  /** The parameters of the notification about a trade, signed (Alipay's notify rule: sign and sign_type out). */
  notifyParams(outTradeNo: string): Record<string, string>;
  /** A form body (and its headers) from notification parameters. */
  notifyRequest(params: Record<string, string>): { headers: Record<string, string>; body: Buffer };
  /** Bill ZIPs handed out, by URL path. */
  billDownloads(): string[];
}

const digits = (n: number) => Array.from(randomBytes(n), (b) => String(b % 10)).join('');
const keyOf = (k: KeyObject | string, pub: boolean) =>
  typeof k === 'string' ? (pub ? createPublicKey(k) : createPrivateKey(k)) : k;

export async function startAlipayFake(opts: AlipayFakeOptions): Promise<AlipayFake> {
  const signType = opts.signType ?? 'RSA2';
  const appPublicKey = keyOf(opts.appPublicKey, true);
  const alipayKey = opts.alipayPrivateKey
    ? keyOf(opts.alipayPrivateKey, false)
    : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const impostorKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  const alipayPublicKey = createPublicKey(alipayKey)
    .export({ type: 'spki', format: 'der' })
    .toString('base64');

  const trades = new Map<string, FakeAlipayTrade>();
  const scripts = new Map<AlipayOp, Behaviour>();
  const log: FakeRequest[] = [];
  const hanging = new Set<http.ServerResponse>();
  const bills = new Map<string, { date: string; until: number; authAppId: string | undefined }>();
  const tokens = opts.appAuthTokens ?? null;
  const downloads: string[] = [];
  let base = '';

  const newTradeNo = (now: Date) =>
    `${formatShanghai(now).slice(0, 10).replaceAll('-', '')}22001${digits(15)}`;

  function responseBody(method: string, obj: Record<string, unknown>, impostor = false): string {
    const key = `${method.replaceAll('.', '_')}_response`;
    // Alipay escapes slashes in its JSON; the signature covers the text exactly as sent.
    const text = JSON.stringify(obj).replace(/\//g, '\\/');
    const sign = rsaSign(text, impostor ? impostorKey : alipayKey, signType);
    const sn = opts.cert ? `"alipay_cert_sn":"${opts.cert.alipayCertSn}",` : '';
    return `{"${key}":${text},${sn}"sign":"${sign}"}`;
  }

  function send(res: http.ServerResponse, status: number, body: string, type = 'text/html;charset=utf-8') {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }

  const ok = (fields: Record<string, unknown> = {}) => ({ code: '10000', msg: 'Success', ...fields });
  const fail = (sub: string, subMsg: string, extra: Record<string, unknown> = {}) => ({
    code: '40004',
    msg: 'Business Failed',
    sub_code: sub,
    sub_msg: subMsg,
    ...extra,
  });
  const systemError = () => ({
    code: '20000',
    msg: 'Service Currently Unavailable',
    sub_code: 'isp.unknow-error',
    sub_msg: '系统繁忙',
  });

  function paidFields(t: FakeAlipayTrade) {
    const amount = formatFen(t.amountFen);
    return {
      trade_no: t.tradeNo,
      out_trade_no: t.outTradeNo,
      buyer_logon_id: FAKE_BUYER_LOGON_ID,
      buyer_user_id: FAKE_BUYER_ID,
      total_amount: amount,
      receipt_amount: amount,
      buyer_pay_amount: amount,
      invoice_amount: amount,
      point_amount: '0.00',
      fund_bill_list: [{ fund_channel: 'ALIPAYACCOUNT', amount }],
    };
  }

  function queryFields(t: FakeAlipayTrade) {
    const status =
      t.state === 'paid' ? 'TRADE_SUCCESS' : t.state === 'waiting' ? 'WAIT_BUYER_PAY' : 'TRADE_CLOSED';
    const head = {
      trade_no: t.tradeNo,
      out_trade_no: t.outTradeNo,
      trade_status: status,
      total_amount: formatFen(t.amountFen),
    };
    if (!t.paidAt) return { ...head, buyer_pay_amount: '0.00', receipt_amount: '0.00' };
    return {
      ...paidFields(t),
      ...head,
      send_pay_date: formatShanghai(t.paidAt),
    };
  }

  /** What a plausible success of `op` would look like (the wrongly signed answers say "success"). */
  function fakeSuccess(op: AlipayOp, biz: Record<string, unknown>) {
    const no = String(biz['out_trade_no'] ?? '');
    const tradeNo = newTradeNo(new Date());
    const amount = String(biz['total_amount'] ?? biz['refund_amount'] ?? '0.01');
    switch (op) {
      case 'query':
        return ok({
          trade_no: tradeNo,
          out_trade_no: no,
          trade_status: 'TRADE_SUCCESS',
          total_amount: amount,
          send_pay_date: formatShanghai(new Date()),
        });
      case 'precreate':
        return ok({ out_trade_no: no, qr_code: `https://qr.alipay.com/bax0${digits(8)}` });
      case 'refund':
        return ok({
          trade_no: tradeNo,
          out_trade_no: no,
          fund_change: 'Y',
          refund_fee: amount,
          gmt_refund_pay: formatShanghai(new Date()),
        });
      case 'cancel':
        return ok({ trade_no: tradeNo, out_trade_no: no, retry_flag: 'N', action: 'close' });
      case 'close':
        return ok({ trade_no: tradeNo, out_trade_no: no });
      default:
        return ok({
          trade_no: tradeNo,
          out_trade_no: no,
          total_amount: amount,
          gmt_payment: formatShanghai(new Date()),
          buyer_logon_id: FAKE_BUYER_LOGON_ID,
        });
    }
  }

  function declined(op: AlipayOp) {
    switch (op) {
      case 'pay':
        return fail(
          'ACQ.PAYMENT_AUTH_CODE_INVALID',
          '支付失败，获取顾客账户信息失败，请顾客刷新付款码后重新收款',
        );
      case 'precreate':
        return fail('ACQ.TOTAL_FEE_EXCEED', '订单金额超过限额');
      case 'refund':
        return fail('ACQ.SELLER_BALANCE_NOT_ENOUGH', '卖家余额不足');
      case 'cancel':
        return fail('ACQ.REASON_TRADE_BEEN_FREEZEN', '当前交易被冻结，不允许进行撤销', { retry_flag: 'N' });
      case 'query':
        return fail('ACQ.TRADE_NOT_EXIST', '交易不存在');
      default:
        return fail('ACQ.TRADE_STATUS_ERROR', '交易状态不合法');
    }
  }

  function systemErrorOf(op: AlipayOp) {
    if (op === 'pay') return fail('ACQ.SYSTEM_ERROR', '系统错误');
    if (op === 'cancel') return fail('ACQ.SYSTEM_ERROR', '系统错误', { retry_flag: 'Y' });
    return systemError();
  }

  function pay(biz: Record<string, unknown>, behaviour: Behaviour | undefined) {
    const no = String(biz['out_trade_no'] ?? '');
    const authCode = String(biz['auth_code'] ?? '');
    const amountFen = parseYuanToFen(String(biz['total_amount'] ?? ''));
    if (!no || biz['scene'] !== 'bar_code' || !authCode || !amountFen)
      return fail('ACQ.INVALID_PARAMETER', '参数无效');
    if (!/^(2[5-9]|30)[0-9]{14,22}$/.test(authCode))
      return fail('ACQ.PAYMENT_AUTH_CODE_INVALID', '支付失败，获取顾客账户信息失败');
    const existing = trades.get(no);
    if (existing?.state === 'paid') return fail('ACQ.TRADE_HAS_SUCCESS', '交易已被支付');
    if (existing && existing.state !== 'waiting') return fail('ACQ.TRADE_HAS_CLOSE', '交易已经关闭');
    const now = new Date();
    const t: FakeAlipayTrade = existing ?? {
      outTradeNo: no,
      tradeNo: newTradeNo(now),
      state: 'waiting',
      amountFen,
      refundedFen: ZERO_FEN,
      subject: String(biz['subject'] ?? ''),
      createdAt: now,
      refunds: new Map(),
      notifyId: `2024${digits(20)}`,
    };
    trades.set(no, t);
    if (behaviour === 'paying' || existing) {
      return {
        code: '10003',
        msg: ' order success pay inprocess',
        trade_no: t.tradeNo,
        out_trade_no: no,
        buyer_logon_id: FAKE_BUYER_LOGON_ID,
        total_amount: formatFen(t.amountFen),
      };
    }
    t.state = 'paid';
    t.paidAt = now;
    return ok({ ...paidFields(t), gmt_payment: formatShanghai(now) });
  }

  function openTrade(
    biz: Record<string, unknown>,
  ): { trade: FakeAlipayTrade } | { error: Record<string, unknown> } {
    const no = String(biz['out_trade_no'] ?? '');
    const amountFen = parseYuanToFen(String(biz['total_amount'] ?? ''));
    if (!no || !amountFen || !biz['subject']) return { error: fail('ACQ.INVALID_PARAMETER', '参数无效') };
    const existing = trades.get(no);
    if (existing?.state === 'paid') return { error: fail('ACQ.TRADE_HAS_SUCCESS', '交易已被支付') };
    if (existing && existing.state !== 'waiting')
      return { error: fail('ACQ.TRADE_HAS_CLOSE', '交易已经关闭') };
    if (existing && existing.amountFen !== amountFen)
      return { error: fail('ACQ.CONTEXT_INCONSISTENT', '交易信息被篡改') };
    const now = new Date();
    const t = existing ?? {
      outTradeNo: no,
      tradeNo: newTradeNo(now),
      state: 'waiting' as const,
      amountFen,
      refundedFen: ZERO_FEN,
      subject: String(biz['subject']),
      createdAt: now,
      refunds: new Map<string, Refund>(),
      notifyId: `2024${digits(20)}`,
    };
    trades.set(no, t);
    return { trade: t };
  }

  function refund(biz: Record<string, unknown>) {
    const no = String(biz['out_trade_no'] ?? '');
    const requestNo = String(biz['out_request_no'] ?? no);
    const amountFen = parseYuanToFen(String(biz['refund_amount'] ?? ''));
    if (!amountFen) return fail('ACQ.INVALID_PARAMETER', '参数无效');
    const t = trades.get(no);
    if (!t) return fail('ACQ.TRADE_NOT_EXIST', '交易不存在');
    const prior = t.refunds.get(requestNo);
    const answer = (fundChange: 'Y' | 'N', at: Date) =>
      ok({
        trade_no: t.tradeNo,
        out_trade_no: no,
        buyer_logon_id: FAKE_BUYER_LOGON_ID,
        buyer_user_id: FAKE_BUYER_ID,
        fund_change: fundChange,
        refund_fee: formatFen(t.refundedFen),
        gmt_refund_pay: formatShanghai(at),
      });
    if (prior) {
      if (prior.amountFen !== amountFen) return fail('ACQ.DISCORDANT_REPEAT_REQUEST', '请求信息不一致');
      return answer('N', prior.at);
    }
    if (t.state !== 'paid') return fail('ACQ.TRADE_STATUS_ERROR', '交易状态不合法');
    if (t.refundedFen + amountFen > t.amountFen)
      return fail('ACQ.REFUND_AMT_NOT_EQUAL_TOTAL', '退款金额超限');
    const at = new Date();
    t.refunds.set(requestNo, { amountFen, at });
    t.refundedFen = addFen(t.refundedFen, amountFen);
    if (t.refundedFen === t.amountFen) t.state = 'refunded';
    return answer('Y', at);
  }

  function refundQuery(biz: Record<string, unknown>) {
    const no = String(biz['out_trade_no'] ?? '');
    const requestNo = String(biz['out_request_no'] ?? '');
    const t = trades.get(no);
    if (!t) return fail('ACQ.TRADE_NOT_EXIST', '交易不存在');
    const r = t.refunds.get(requestNo);
    // "If the answer carries refund data the refund succeeded; if not, it did not (yet)."
    if (!r) return ok({ trade_no: t.tradeNo, out_trade_no: no, out_request_no: requestNo });
    return ok({
      trade_no: t.tradeNo,
      out_trade_no: no,
      out_request_no: requestNo,
      total_amount: formatFen(t.amountFen),
      refund_amount: formatFen(r.amountFen),
      refund_status: 'REFUND_SUCCESS',
      gmt_refund_pay: formatShanghai(r.at),
    });
  }

  function cancel(biz: Record<string, unknown>) {
    const no = String(biz['out_trade_no'] ?? '');
    const t = trades.get(no);
    const now = new Date();
    if (!t) {
      // Alipay closes an order it never saw (so a late pay cannot succeed) and answers success, no action.
      trades.set(no, {
        outTradeNo: no,
        tradeNo: newTradeNo(now),
        state: 'closed',
        amountFen: ZERO_FEN,
        refundedFen: ZERO_FEN,
        subject: '',
        createdAt: now,
        refunds: new Map(),
        notifyId: `2024${digits(20)}`,
      });
      return ok({ out_trade_no: no, retry_flag: 'N' });
    }
    if (t.state === 'waiting' || t.state === 'closed') {
      t.state = 'closed';
      return ok({ trade_no: t.tradeNo, out_trade_no: no, retry_flag: 'N', action: 'close' });
    }
    if (t.state === 'paid') {
      const left = subFen(t.amountFen, t.refundedFen);
      if (left > 0) t.refunds.set(no, { amountFen: left, at: now });
      t.refundedFen = t.amountFen;
      t.state = 'refunded';
    }
    return ok({
      trade_no: t.tradeNo,
      out_trade_no: no,
      retry_flag: 'N',
      action: 'refund',
      gmt_refund_pay: formatShanghai(t.refunds.get(no)?.at ?? now),
    });
  }

  function close(biz: Record<string, unknown>) {
    const no = String(biz['out_trade_no'] ?? '');
    const t = trades.get(no);
    if (!t) return fail('ACQ.TRADE_NOT_EXIST', '交易不存在');
    if (t.state !== 'waiting') return fail('ACQ.TRADE_STATUS_ERROR', '交易状态不合法');
    t.state = 'closed';
    return ok({ trade_no: t.tradeNo, out_trade_no: no });
  }

  function billUrl(biz: Record<string, unknown>, authAppId: string | undefined) {
    const date = String(biz['bill_date'] ?? '');
    if (biz['bill_type'] !== 'trade') return fail('isp.bill_type_error', '账单类型错误');
    if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) return fail('isp.bill_date_error', '账单日期格式错误');
    if (date > formatShanghai(new Date()).slice(0, 10)) return fail('isp.bill_not_exist', '账单不存在');
    const token = randomBytes(12).toString('hex');
    bills.set(token, { date, until: Date.now() + 30_000, authAppId });
    return ok({
      bill_download_url: `${base}/bill/${token}?downloadFileName=${FAKE_SELLER_ID}_${date.replaceAll('-', '')}.csv.zip`,
    });
  }

  function billZip(date: string, authAppId: string | undefined): Buffer {
    const fee = (amount: Fen) => fen(Math.floor((amount * 60 + 5_000) / 10_000));
    const onDay = (d: Date) => formatShanghai(d).slice(0, 10) === date;
    const lines: Array<BillLine & { at: number }> = [];
    for (const t of trades.values()) {
      if (t.authAppId !== authAppId) continue;
      const subject = t.subject.replace(/[,\t`"\r\n]/g, ' ') || undefined;
      if (t.paidAt && onDay(t.paidAt))
        lines.push({
          kind: 'payment',
          channelTradeNo: t.tradeNo,
          outTradeNo: t.outTradeNo,
          amountFen: t.amountFen,
          feeFen: fee(t.amountFen),
          time: formatShanghai(t.paidAt),
          payType: 'alipay',
          at: t.paidAt.getTime(),
          ...(subject ? { subject } : {}),
        });
      for (const [requestNo, r] of t.refunds)
        if (onDay(r.at))
          lines.push({
            kind: 'refund',
            channelTradeNo: t.tradeNo,
            outTradeNo: t.outTradeNo,
            outRequestNo: requestNo,
            amountFen: r.amountFen,
            feeFen: fee(r.amountFen),
            time: formatShanghai(r.at),
            payType: 'alipay',
            at: r.at.getTime(),
            ...(subject ? { subject } : {}),
          });
    }
    lines.sort((a, b) => a.at - b.at);
    return buildAlipayTradeBill(
      date,
      lines.map(({ at: _at, ...l }) => l),
      { pid: FAKE_SELLER_ID },
    );
  }

  function verifyRequest(params: Record<string, string>): boolean {
    const sign = params['sign'];
    if (!sign || params['app_id'] !== opts.appId || params['sign_type'] !== signType) return false;
    if (params['charset']?.toLowerCase() !== 'utf-8' || params['version'] !== '1.0') return false;
    if (!/^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/.test(params['timestamp'] ?? '')) return false;
    if (opts.cert) {
      if (params['app_cert_sn'] !== opts.cert.appCertSn) return false;
      if (params['alipay_root_cert_sn'] !== opts.cert.alipayRootCertSn) return false;
    } else if (params['app_cert_sn'] || params['alipay_root_cert_sn']) return false;
    return rsaVerify(alipaySigningContent(params, ['sign']), sign, appPublicKey, signType);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', base);
    if (req.method === 'GET' && url.pathname.startsWith('/bill/')) {
      const b = bills.get(url.pathname.slice(6));
      if (!b || b.until < Date.now()) return send(res, 404, 'expired or unknown bill link', 'text/plain');
      downloads.push(url.pathname);
      const zip = billZip(b.date, b.authAppId);
      res.writeHead(200, { 'content-type': 'application/zip', 'content-length': zip.length });
      res.end(zip);
      return;
    }
    if (url.pathname !== '/gateway.do') return send(res, 404, 'not found', 'text/plain');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const params: Record<string, string> = {};
    for (const [k, v] of url.searchParams) params[k] = v;
    if (req.method === 'POST')
      for (const [k, v] of new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) params[k] = v;
    const method = params['method'] ?? '';
    const op = OPS[method] ?? 'unknown';
    const signatureValid = verifyRequest(params);
    let biz: Record<string, unknown> = {};
    try {
      const parsed = JSON.parse(params['biz_content'] ?? '{}') as unknown;
      if (parsed && typeof parsed === 'object') biz = parsed as Record<string, unknown>;
    } catch {
      biz = {};
    }
    const token = params['app_auth_token'];
    const authAppId = tokens && token && Object.hasOwn(tokens, token) ? tokens[token] : undefined;
    log.push({ op, method, signatureValid, authAppId, params, biz });
    // Third-party app mode: who is asked for (checked after the signature, as the gateway does).
    const invalidToken = {
      code: '20001',
      msg: 'Insufficient Token Permissions',
      sub_code: 'aop.invalid-app-auth-token',
      sub_msg: '无效的应用授权令牌',
    };
    const tokenRefusal = (): Record<string, unknown> | null => {
      if (!tokens) return token ? invalidToken : null;
      if (!token)
        return {
          code: '40006',
          msg: 'Insufficient Permissions',
          sub_code: 'isv.insufficient-isv-permissions',
          sub_msg: 'ISV权限不足，建议在开发者中心检查签约是否已经生效',
        };
      if (!authAppId) return invalidToken;
      return null;
    };
    // Each authorising hospital sees only its own trades.
    const no = String(biz['out_trade_no'] ?? '');
    const foreign = trades.get(no);
    const othersTrade = !!no && !!foreign && foreign.authAppId !== authAppId;

    if (op === 'wap') {
      // The payer's browser opens the cashier: a page, not JSON.
      if (!signatureValid)
        return send(res, 200, '<html><body>错误代码 invalid-signature 验签出错</body></html>');
      const refused = tokenRefusal();
      if (refused) return send(res, 200, `<html><body>错误代码 ${String(refused['sub_code'])}</body></html>`);
      if (othersTrade) return send(res, 200, '<html><body>ACQ.TRADE_HAS_CLOSE</body></html>');
      const o = openTrade(biz);
      if (!('error' in o) && o.trade.authAppId === undefined && authAppId) o.trade.authAppId = authAppId;
      if ('error' in o) return send(res, 200, `<html><body>${String(o.error['sub_code'])}</body></html>`);
      const t = o.trade;
      return send(
        res,
        200,
        `<html><body>支付宝收银台（fake）${t.outTradeNo} ¥${formatFen(t.amountFen)}</body></html>`,
      );
    }
    if (op === 'unknown')
      return send(
        res,
        200,
        '{"error_response":{"code":"40002","msg":"Invalid Arguments","sub_code":"isv.invalid-method","sub_msg":"不存在的方法名"}}',
      );
    if (!signatureValid)
      return send(
        res,
        200,
        responseBody(method, {
          code: '40002',
          msg: 'Invalid Arguments',
          sub_code: 'isv.invalid-signature',
          sub_msg: '验签出错',
        }),
      );

    const refused = tokenRefusal();
    if (refused) return send(res, 200, responseBody(method, refused));
    if (othersTrade) return send(res, 200, responseBody(method, fail('ACQ.TRADE_NOT_EXIST', '交易不存在')));

    const behaviour = scripts.get(op);
    scripts.delete(op);
    switch (behaviour) {
      case 'timeout':
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      case 'http_500':
        return send(res, 500, '<html><body><h1>500 Internal Server Error</h1></body></html>');
      case 'malformed': {
        const full = responseBody(method, fakeSuccess(op, biz));
        return send(res, 200, full.slice(0, Math.floor(full.length / 2)));
      }
      case 'bad_signature':
        return send(res, 200, responseBody(method, fakeSuccess(op, biz), true));
      case 'system_error':
        return send(res, 200, responseBody(method, systemErrorOf(op)));
      case 'declined':
        return send(res, 200, responseBody(method, declined(op)));
      default:
        break;
    }
    let answer: Record<string, unknown>;
    switch (op) {
      case 'pay':
        answer = pay(biz, behaviour);
        break;
      case 'precreate': {
        const o = openTrade(biz);
        answer =
          'error' in o
            ? o.error
            : ok({
                out_trade_no: o.trade.outTradeNo,
                qr_code: `https://qr.alipay.com/bax0${o.trade.tradeNo.slice(-12)}`,
              });
        break;
      }
      case 'query': {
        const t = trades.get(String(biz['out_trade_no'] ?? ''));
        if (!t || (t.amountFen === 0 && t.state === 'closed'))
          answer = fail('ACQ.TRADE_NOT_EXIST', '交易不存在');
        else if (behaviour === 'paying') answer = ok({ ...queryFields(t), trade_status: 'WAIT_BUYER_PAY' });
        else answer = ok(queryFields(t));
        break;
      }
      case 'refund':
        answer = refund(biz);
        break;
      case 'refund_query':
        answer = refundQuery(biz);
        break;
      case 'cancel':
        answer = cancel(biz);
        break;
      case 'close':
        answer = close(biz);
        break;
      case 'bill':
        answer = billUrl(biz, authAppId);
        break;
      default:
        answer = systemError();
    }
    const touched = trades.get(no);
    if (touched && touched.authAppId === undefined && authAppId) touched.authAppId = authAppId;
    send(res, 200, responseBody(method, answer));
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent)
        send(res, 500, `fake error: ${e instanceof Error ? e.message : String(e)}`, 'text/plain');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  function notifyParams(outTradeNo: string): Record<string, string> {
    const t = trades.get(outTradeNo);
    if (!t) throw new Error(`the fake never saw ${outTradeNo}`);
    const now = new Date();
    const amount = formatFen(t.amountFen);
    const status =
      t.state === 'paid' ? 'TRADE_SUCCESS' : t.state === 'waiting' ? 'WAIT_BUYER_PAY' : 'TRADE_CLOSED';
    const params: Record<string, string> = {
      gmt_create: formatShanghai(t.createdAt),
      charset: 'utf-8',
      seller_email: 'hospital@example.com',
      subject: t.subject,
      buyer_id: FAKE_BUYER_ID,
      invoice_amount: amount,
      notify_id: t.notifyId,
      fund_bill_list: JSON.stringify([{ amount, fundChannel: 'ALIPAYACCOUNT' }]),
      notify_type: 'trade_status_sync',
      trade_status: status,
      receipt_amount: amount,
      app_id: opts.appId,
      buyer_pay_amount: amount,
      seller_id: FAKE_SELLER_ID,
      notify_time: formatShanghai(now),
      version: '1.0',
      out_trade_no: t.outTradeNo,
      total_amount: amount,
      trade_no: t.tradeNo,
      auth_app_id: t.authAppId ?? opts.appId,
      buyer_logon_id: FAKE_BUYER_LOGON_ID,
      point_amount: '0.00',
      sign_type: signType,
    };
    if (t.paidAt) params['gmt_payment'] = formatShanghai(t.paidAt);
    if (t.refundedFen > 0) {
      params['refund_fee'] = formatFen(t.refundedFen);
      params['gmt_refund'] = formatShanghai(now);
    }
    // Alipay's notify rule: every parameter but sign and sign_type, sorted, raw values.
    params['sign'] = rsaSign(alipaySigningContent(params, ['sign', 'sign_type']), alipayKey, signType);
    return params;
  }

  const notifyRequest = (params: Record<string, string>) => ({
    headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    body: Buffer.from(new URLSearchParams(params).toString(), 'utf8'),
  });

  return {
    url: base,
    gatewayUrl: `${base}/gateway.do`,
    alipayPublicKey,
    script(op, behaviour) {
      scripts.set(op, behaviour);
    },
    setTrade(outTradeNo, state) {
      const now = new Date();
      let t = trades.get(outTradeNo);
      if (!t) {
        t = {
          outTradeNo,
          tradeNo: newTradeNo(now),
          state,
          amountFen: fen(1),
          refundedFen: ZERO_FEN,
          subject: '',
          createdAt: now,
          refunds: new Map(),
          notifyId: `2024${digits(20)}`,
        };
        trades.set(outTradeNo, t);
      }
      t.state = state;
      if ((state === 'paid' || state === 'refunded') && !t.paidAt) t.paidAt = now;
      if (state === 'refunded') t.refundedFen = t.amountFen;
    },
    trade(outTradeNo) {
      const t = trades.get(outTradeNo);
      return t && { state: t.state, amountFen: t.amountFen, refundedFen: t.refundedFen };
    },
    books: (outTradeNo) => trades.get(outTradeNo),
    requests: () => log,
    notification(outTradeNo, o) {
      const params = notifyParams(outTradeNo);
      if (o?.tamper) params['total_amount'] = formatFen(addFen(trades.get(outTradeNo)!.amountFen, fen(100)));
      return notifyRequest(params);
    },
    notifyParams,
    notifyRequest,
    billDownloads: () => downloads,
    async close() {
      for (const r of hanging) r.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
