/**
 * A fake WeChat Pay, built to the published protocol, for the conformance suite and the adapter's unit tests.
 *
 *  - v2 XML: POST /pay/micropay and POST /secapi/pay/reverse (the latter wants the merchant's TLS client
 *    certificate when the fake runs HTTPS: the server asks for one and checks it against the test CA and the
 *    merchant certificate's serial). Requests are checked with the API v2 key (MD5 or HMAC-SHA256); answers are
 *    signed the same way.
 *  - v3 JSON: native and H5 orders, query by out_trade_no, close, refund and refund query, trade bill and its
 *    download. Our Authorization header is verified with the merchant certificate's public key (and its serial,
 *    mchid and timestamp); answers carry Wechatpay-Timestamp/-Nonce/-Signature/-Serial, signed with the fake's
 *    "WeChat Pay public key" (serial PUB_KEY_ID_…) or its platform certificate.
 *  - JSAPI (in-app): v3 POST /v3/pay/transactions/jsapi and v2 POST /pay/unifiedorder (trade_type JSAPI); the payer's
 *    openid must be one the fake's OAuth gave out for that AppID. verifyBridge() checks getBrandWCPayRequest
 *    parameters as the WeChat app would (RSA with the merchant certificate for v3, the v2 sign for v2).
 *  - Service-provider mode (options.partner): mchId/appId are then sp_mchid/sp_appid; the /v3/pay/partner/
 *    endpoints, sub_mchid on refunds, refund queries and bills, sub_mch_id on v2; the direct endpoints refuse
 *    (a service provider cannot take payments itself), and in direct mode the partner ones do.
 *  - OAuth2 (网页授权): GET /connect/oauth2/authorize shows nothing and redirects (302) to redirect_uri with a
 *    one-time code and the state; GET /sns/oauth2/access_token checks appid, secret and code and gives the openid
 *    of (appid, user), the user being whoever asUser() says is at the phone.
 *  - notification(): a v3 TRANSACTION.SUCCESS notification, resource encrypted with AEAD_AES_256_GCM, signed;
 *    v2Notification(): the v2 XML one (for v2 unifiedorder trades).
 *
 * Its crypto is written here again with node:crypto, deliberately not shared with the adapter, so that a mistake in
 * one is not mirrored in the other. Keys and certificates are generated at start (the `openssl` CLI makes the
 * throwaway CA and certificates); nothing private is committed.
 */
import { execFileSync } from 'node:child_process';
import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import type { Behaviour, FakeProvider, FakeTradeState, Operation } from '../conformance/suite.js';
import { buildWechatTradeBill } from '../../src/channels/wechat/bill.js';
import type { BillLine } from '../../src/domain/bill.js';
import { formatShanghai } from '../../src/domain/clock.js';
import { fen } from '../../src/domain/money.js';

// ------------------------------------------------------------------ key material

export interface WechatMaterial {
  /** The throwaway CA that issued every certificate below (trust it for the fake's HTTPS). */
  caCert: string;
  serverCert: string;
  serverKey: string;
  /** The merchant API certificate and key (apiclient_cert.pem / apiclient_key.pem), CN = mch_id. */
  merchantCert: string;
  merchantKey: string;
  merchantSerial: string;
  /** apiclient_cert.p12, base64, passphrase = mch_id. */
  merchantP12Base64: string;
  /** The "WeChat Pay public key" mode: its public key PEM, id, and the fake's private key. */
  wechatPublicKey: string;
  wechatPublicKeyId: string;
  wechatPrivateKey: KeyObject;
  /** The platform certificate mode. */
  platformCert: string;
  platformSerial: string;
  platformPrivateKey: KeyObject;
}

const randomHexSerial = () =>
  `${'1234567'[crypto.randomInt(7)]}${crypto.randomBytes(20).toString('hex').slice(1).toUpperCase()}`;

let cached: { mchId: string; m: WechatMaterial } | undefined;

/** Generates (once per process and merchant id) a test CA, the fake's server certificate and the merchant's. */
export function makeWechatMaterial(mchId: string): WechatMaterial {
  if (cached?.mchId === mchId) return cached.m;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-wx-'));
  const f = (n: string) => path.join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-sha256',
      '-days',
      '2',
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.pem'),
      '-subj',
      '/CN=hospay throwaway test CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
    const issue = (name: string, subject: string, serial: string, ext: string) => {
      ssl(
        'req',
        '-new',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        f(`${name}.key`),
        '-out',
        f(`${name}.csr`),
        '-subj',
        subject,
      );
      fs.writeFileSync(f(`${name}.ext`), ext);
      ssl(
        'x509',
        '-req',
        '-sha256',
        '-days',
        '2',
        '-in',
        f(`${name}.csr`),
        '-CA',
        f('ca.pem'),
        '-CAkey',
        f('ca.key'),
        '-set_serial',
        `0x${serial}`,
        '-out',
        f(`${name}.pem`),
        '-extfile',
        f(`${name}.ext`),
      );
    };
    issue(
      'server',
      '/CN=localhost',
      randomHexSerial(),
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n',
    );
    const merchantSerial = randomHexSerial();
    issue('merchant', `/CN=${mchId}/O=hospay test merchant`, merchantSerial, 'extendedKeyUsage=clientAuth\n');
    const platformSerial = randomHexSerial();
    issue('platform', '/CN=Tenpay.com sign (test)', platformSerial, 'keyUsage=digitalSignature\n');
    ssl(
      'pkcs12',
      '-export',
      '-in',
      f('merchant.pem'),
      '-inkey',
      f('merchant.key'),
      '-out',
      f('merchant.p12'),
      '-passout',
      `pass:${mchId}`,
      '-name',
      'Tenpay Certificate',
    );
    const read = (n: string) => fs.readFileSync(f(n), 'utf8');
    const pub = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const m: WechatMaterial = {
      caCert: read('ca.pem'),
      serverCert: read('server.pem'),
      serverKey: read('server.key'),
      merchantCert: read('merchant.pem'),
      merchantKey: read('merchant.key'),
      merchantSerial,
      merchantP12Base64: fs.readFileSync(f('merchant.p12')).toString('base64'),
      wechatPublicKey: pub.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      wechatPublicKeyId: `PUB_KEY_ID_0${mchId}${String(crypto.randomInt(1e9)).padStart(9, '0')}`,
      wechatPrivateKey: pub.privateKey,
      platformCert: read('platform.pem'),
      platformSerial,
      platformPrivateKey: crypto.createPrivateKey(read('platform.key')),
    };
    cached = { mchId, m };
    return m;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------ the fake's own protocol code

type SignType = 'MD5' | 'HMAC-SHA256';

function v2sign(p: Record<string, string>, key: string, type: SignType): string {
  const s = `${Object.keys(p)
    .filter((k) => k !== 'sign' && p[k] !== '' && p[k] !== undefined)
    .sort()
    .map((k) => `${k}=${p[k]}`)
    .join('&')}&key=${key}`;
  return (
    type === 'MD5'
      ? crypto.createHash('md5').update(s).digest('hex')
      : crypto.createHmac('sha256', key).update(s).digest('hex')
  ).toUpperCase();
}

function xmlFields(text: string): Record<string, string> | null {
  const root = /^\s*<xml>([\s\S]*)<\/xml>\s*$/.exec(text);
  if (!root) return null;
  const out: Record<string, string> = {};
  const re = /<([A-Za-z_][\w]*)>(?:<!\[CDATA\[([\s\S]*?)\]\]>|([^<]*))<\/\1>/g;
  for (const m of (root[1] ?? '').matchAll(re)) {
    const v = m[2] ?? (m[3] ?? '').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
    out[m[1] as string] = v;
  }
  return out;
}

const toXml = (p: Record<string, string>) =>
  `<xml>\n${Object.entries(p)
    .map(([k, v]) => (/^[0-9]+$/.test(v) ? `<${k}>${v}</${k}>` : `<${k}><![CDATA[${v}]]></${k}>`))
    .join('\n')}\n</xml>`;

const rfc3339 = (d: Date) => `${new Date(d.getTime() + 8 * 3600_000).toISOString().slice(0, 19)}+08:00`;
const compact = (d: Date) => formatShanghai(d).replace(/[-: ]/g, '');
const digits = (n: number) => Array.from({ length: n }, () => crypto.randomInt(10)).join('');

// ------------------------------------------------------------------ the fake

export interface WechatFakeOptions {
  mchId: string;
  appId: string;
  apiV3Key: string;
  apiV2Key: string;
  signTypeV2: SignType;
  material: WechatMaterial;
  /** How the fake signs its answers and notifications. */
  mode: 'public_key' | 'platform_cert';
  /** Serve HTTPS with the test CA's server certificate, asking for client certificates. */
  tls: boolean;
  /** Refunds answer SUCCESS at once instead of PROCESSING (then SUCCESS on the first query). */
  refundImmediate?: boolean;
  /** Service-provider mode: mchId and appId are the provider's sp_mchid and sp_appid. */
  partner?: { subMchId: string; subAppId?: string };
  /** Official accounts the OAuth2 pages know: AppID → AppSecret. */
  oauthApps?: Readonly<Record<string, string>>;
  /** 网页授权域名: the hosts a redirect_uri may name (default: any). */
  oauthDomains?: readonly string[];
}

/** A payment made in the WeChat app (JSAPI): whose openid under which AppID, and the API that created it. */
interface FakePayer {
  field: 'openid' | 'sp_openid' | 'sub_openid';
  openid: string;
}

/** What the fake's OAuth2 authorize page saw. */
export interface OAuthVisit {
  appid: string;
  scope: string;
  redirectUri: string;
  state: string;
  /** The query parameters' names in the order given (WeChat wants appid, redirect_uri, response_type, scope, state). */
  order: string;
  /** Redirected back with a code (false: WeChat's error page). */
  redirected: boolean;
}

interface FakeRefund {
  outRefundNo: string;
  refundId: string;
  amountFen: number;
  status: 'PROCESSING' | 'SUCCESS';
  createdAt: Date;
  successAt?: Date;
}

interface FakeTrade {
  outTradeNo: string;
  state: FakeTradeState;
  amountFen: number;
  refundedFen: number;
  transactionId: string;
  tradeType: 'MICROPAY' | 'NATIVE' | 'MWEB' | 'JSAPI';
  description: string;
  payer?: FakePayer;
  /** Made with the v2 unifiedorder. */
  v2?: boolean;
  paidAt?: Date;
  userPaying?: boolean;
  revoked?: boolean;
  refunds: Map<string, FakeRefund>;
  notifyId?: string;
}

/** Extra behaviours beyond the suite's: a wrong bill hash; a refund that stays PROCESSING. */
export type WechatBehaviour = Behaviour | 'bad_hash' | 'stays_processing' | 'no_client_cert';
export type WechatOp = Operation | 'bill' | 'bill_file' | 'refund_query' | 'oauth_token';

export interface FakeRequest {
  op: WechatOp | string;
  signatureValid: boolean;
  /** v2 /secapi/ only: a client certificate was presented and verified against the test CA and merchant serial. */
  clientCert?: boolean;
  path: string;
}

export class WechatFake implements FakeProvider {
  url = '';
  private server!: http.Server;
  private readonly trades = new Map<string, FakeTrade>();
  private readonly scripted = new Map<string, WechatBehaviour>();
  private readonly log: FakeRequest[] = [];
  private readonly bills = new Map<string, Buffer>();
  private readonly merchantPublicKey: KeyObject;
  private readonly lostKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
  private readonly prepays = new Map<string, { outTradeNo: string; appId: string; api: 'v3' | 'v2' }>();
  private readonly oauthCodes = new Map<
    string,
    { appId: string; user: string; expires: number; used: boolean }
  >();
  private readonly openids = new Map<string, { appId: string; user: string }>();
  private readonly visits: OAuthVisit[] = [];
  private oauthUser = 'patient-1';

  constructor(readonly opts: WechatFakeOptions) {
    this.merchantPublicKey = new crypto.X509Certificate(opts.material.merchantCert).publicKey;
  }

  async start(): Promise<this> {
    const m = this.opts.material;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          this.handle(req, Buffer.concat(chunks), res);
        } catch (e) {
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`fake crashed: ${(e as Error).message}`);
        }
      });
    };
    this.server = this.opts.tls
      ? https.createServer(
          {
            key: m.serverKey,
            cert: m.serverCert,
            ca: [m.caCert],
            requestCert: true,
            rejectUnauthorized: false,
          },
          handler,
        )
      : http.createServer(handler);
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const port = (this.server.address() as { port: number }).port;
    this.url = `${this.opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // -------------------------------------------------------------- FakeProvider

  script(op: WechatOp, behaviour: WechatBehaviour): void {
    this.scripted.set(op, behaviour);
  }

  setTrade(outTradeNo: string, state: FakeTradeState): void {
    const t = this.trades.get(outTradeNo);
    if (!t) throw new Error(`the fake does not know ${outTradeNo}`);
    if ((state === 'paid' || state === 'refunded') && !t.paidAt) t.paidAt = new Date();
    if (state === 'refunded') t.refundedFen = t.amountFen;
    t.userPaying = false;
    t.state = state;
  }

  trade(outTradeNo: string): { state: FakeTradeState; amountFen: number; refundedFen: number } | undefined {
    const t = this.trades.get(outTradeNo);
    return t && { state: t.state, amountFen: t.amountFen, refundedFen: t.refundedFen };
  }

  requests(): FakeRequest[] {
    return [...this.log];
  }

  /** The openid WeChat gives `user` under the official account `appId` (the same each time, as WeChat's). */
  openidFor(appId: string, user: string): string {
    const openid = `o${crypto.createHash('sha256').update(`${appId}|${user}`).digest('base64url').slice(0, 27)}`;
    this.openids.set(openid, { appId, user });
    return openid;
  }

  /** Who is at the phone when the OAuth2 page is opened next. */
  asUser(user: string): void {
    this.oauthUser = user;
  }

  /** What the OAuth2 authorize page saw. */
  oauthVisits(): OAuthVisit[] {
    return [...this.visits];
  }

  /** The payer of a JSAPI trade, as the fake holds it. */
  payerOf(outTradeNo: string): { field: string; openid: string } | undefined {
    const p = this.trades.get(outTradeNo)?.payer;
    return p && { ...p };
  }

  /**
   * Checks getBrandWCPayRequest parameters as the WeChat app does before it shows the payer anything: exactly
   * appId, timeStamp, nonceStr, package, signType, paySign; a prepay_id this fake issued, for that appId; and
   * paySign: v3 orders RSA (SHA256withRSA with the merchant certificate's key over appId, timeStamp, nonceStr,
   * package, each followed by a newline), v2 orders the v2 sign with the API v2 key and the configured type.
   */
  verifyBridge(bridge: Readonly<Record<string, string>>): boolean {
    const keys = Object.keys(bridge).sort().join(',');
    if (keys !== 'appId,nonceStr,package,paySign,signType,timeStamp') return false;
    const { appId = '', timeStamp = '', nonceStr = '', signType = '', paySign = '' } = bridge;
    const pkg = bridge['package'] ?? '';
    const prepay = this.prepays.get(/^prepay_id=(.+)$/.exec(pkg)?.[1] ?? '');
    if (!prepay || prepay.appId !== appId) return false;
    if (!/^[0-9]{10}$/.test(timeStamp) || Math.abs(Date.now() / 1000 - Number(timeStamp)) > 3600)
      return false;
    if (!/^[0-9A-Za-z]{1,32}$/.test(nonceStr)) return false;
    if (prepay.api === 'v3')
      return (
        signType === 'RSA' &&
        crypto
          .createVerify('RSA-SHA256')
          .update(`${appId}\n${timeStamp}\n${nonceStr}\n${pkg}\n`)
          .verify(this.merchantPublicKey, Buffer.from(paySign, 'base64'))
      );
    if (signType !== this.opts.signTypeV2) return false;
    const want = v2sign({ appId, nonceStr, package: pkg, signType, timeStamp }, this.opts.apiV2Key, signType);
    return paySign === want;
  }

  /** Signs `timestamp\nnonce\nbody\n` as WeChat Pay does; answers the four Wechatpay-* headers. */
  signHeaders(
    body: string,
    o: { timestamp?: number; key?: KeyObject; serial?: string } = {},
  ): Record<string, string> {
    const ts = String(o.timestamp ?? Math.floor(Date.now() / 1000));
    const nonce = crypto.randomBytes(16).toString('hex');
    const pk = this.opts.mode === 'public_key';
    const key = o.key ?? (pk ? this.opts.material.wechatPrivateKey : this.opts.material.platformPrivateKey);
    const serial =
      o.serial ?? (pk ? this.opts.material.wechatPublicKeyId : this.opts.material.platformSerial);
    const signature = crypto
      .createSign('RSA-SHA256')
      .update(`${ts}\n${nonce}\n${body}\n`)
      .sign(key, 'base64');
    return {
      'Wechatpay-Timestamp': ts,
      'Wechatpay-Nonce': nonce,
      'Wechatpay-Signature': signature,
      'Wechatpay-Serial': serial,
      'Wechatpay-Signature-Type': 'WECHATPAY2-SHA256-RSA2048',
      'Request-ID': crypto.randomUUID(),
    };
  }

  notification(
    outTradeNo: string,
    o: {
      tamper?: boolean;
      /** Flip a bit of the GCM tag (the signature still verifies: decryption must fail). */
      tamperTag?: boolean;
      /** Shift the signed timestamp, e.g. -600 for a stale one. */
      timestampOffsetS?: number;
      serial?: string;
      eventType?: string;
      /** Encrypt with another APIv3 key. */
      apiV3Key?: string;
      /** Partner mode: name another sub-merchant in the resource. */
      subMchId?: string;
    } = {},
  ): { headers: Record<string, string>; body: Buffer } {
    const t = this.trades.get(outTradeNo);
    if (!t) throw new Error(`the fake does not know ${outTradeNo}`);
    t.notifyId ??= crypto.randomUUID();
    const resource = this.transactionJson(t);
    if (o.subMchId !== undefined) resource['sub_mchid'] = o.subMchId;
    const plain = JSON.stringify(resource);
    const nonce = crypto.randomBytes(6).toString('hex'); // 12 characters, as WeChat's
    const aad = 'transaction';
    const c = crypto.createCipheriv(
      'aes-256-gcm',
      Buffer.from(o.apiV3Key ?? this.opts.apiV3Key, 'utf8'),
      Buffer.from(nonce),
    );
    c.setAAD(Buffer.from(aad));
    const sealed = Buffer.concat([c.update(plain, 'utf8'), c.final(), c.getAuthTag()]);
    if (o.tamperTag) sealed[sealed.length - 1] = (sealed[sealed.length - 1] as number) ^ 0x01;
    const event = {
      id: t.notifyId,
      create_time: rfc3339(t.paidAt ?? new Date()),
      resource_type: 'encrypt-resource',
      event_type: o.eventType ?? 'TRANSACTION.SUCCESS',
      summary: '支付成功',
      resource: {
        original_type: 'transaction',
        algorithm: 'AEAD_AES_256_GCM',
        ciphertext: sealed.toString('base64'),
        associated_data: aad,
        nonce,
      },
    };
    const body = JSON.stringify(event);
    const headers = this.signHeaders(body, {
      timestamp: Math.floor(Date.now() / 1000) + (o.timestampOffsetS ?? 0),
      ...(o.serial ? { serial: o.serial } : {}),
    });
    const sent = o.tamper ? body.replace('"summary":"支付成功"', '"summary":"支付成功 "') : body;
    return { headers, body: Buffer.from(sent, 'utf8') };
  }

  /** The v2 XML payment notification WeChat POSTs for a trade made with the v2 unifiedorder, signed. */
  v2Notification(
    outTradeNo: string,
    o: { tamper?: boolean; subMchId?: string } = {},
  ): { headers: Record<string, string>; body: Buffer } {
    const t = this.trades.get(outTradeNo);
    if (!t) throw new Error(`the fake does not know ${outTradeNo}`);
    const p = this.opts.partner;
    const fields: Record<string, string> = {
      return_code: 'SUCCESS',
      appid: this.opts.appId,
      mch_id: this.opts.mchId,
      ...(p?.subAppId ? { sub_appid: p.subAppId } : {}),
      ...(p ? { sub_mch_id: o.subMchId ?? p.subMchId } : {}),
      nonce_str: crypto.randomBytes(8).toString('hex'),
      result_code: 'SUCCESS',
      ...(t.payer ? { [t.payer.field === 'sub_openid' ? 'sub_openid' : 'openid']: t.payer.openid } : {}),
      is_subscribe: 'N',
      trade_type: 'JSAPI',
      bank_type: 'OTHERS',
      total_fee: String(t.amountFen),
      fee_type: 'CNY',
      cash_fee: String(t.amountFen),
      transaction_id: t.transactionId,
      out_trade_no: t.outTradeNo,
      time_end: compact(t.paidAt ?? new Date()),
    };
    fields['sign'] = v2sign(fields, this.opts.apiV2Key, this.opts.signTypeV2);
    if (o.tamper) fields['total_fee'] = String(t.amountFen + 1);
    return { headers: { 'content-type': 'text/xml' }, body: Buffer.from(toXml(fields), 'utf8') };
  }

  // -------------------------------------------------------------- requests

  private take(op: string): WechatBehaviour {
    const b = this.scripted.get(op) ?? 'ok';
    this.scripted.delete(op);
    return b;
  }

  private handle(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const p = url.pathname;
    const method = req.method ?? 'GET';
    if (method === 'POST' && p === '/pay/micropay') return this.v2(req, body, res, 'pay');
    if (method === 'POST' && p === '/secapi/pay/reverse') return this.v2(req, body, res, 'cancel');
    if (method === 'POST' && p === '/pay/unifiedorder') return this.v2(req, body, res, 'inapp');
    if (method === 'GET' && p === '/connect/oauth2/authorize') return this.oauthAuthorize(req, res);
    if (method === 'GET' && p === '/sns/oauth2/access_token') return this.oauthToken(url, res);
    const partnerRoutes: Array<[string, RegExp, WechatOp]> = [
      ['POST', /^\/v3\/pay\/partner\/transactions\/native$/, 'precreate'],
      ['POST', /^\/v3\/pay\/partner\/transactions\/h5$/, 'wap'],
      ['POST', /^\/v3\/pay\/partner\/transactions\/jsapi$/, 'inapp'],
      ['GET', /^\/v3\/pay\/partner\/transactions\/out-trade-no\/([^/]+)$/, 'query'],
      ['POST', /^\/v3\/pay\/partner\/transactions\/out-trade-no\/([^/]+)\/close$/, 'close'],
    ];
    for (const [m, re, op] of partnerRoutes) {
      const hit = re.exec(p);
      if (m === method && hit)
        return this.v3(req, body, res, op, url, hit[1] ? decodeURIComponent(hit[1]) : '', true);
    }
    const routes: Array<[string, RegExp, WechatOp]> = [
      ['POST', /^\/v3\/pay\/transactions\/native$/, 'precreate'],
      ['POST', /^\/v3\/pay\/transactions\/h5$/, 'wap'],
      ['POST', /^\/v3\/pay\/transactions\/jsapi$/, 'inapp'],
      ['GET', /^\/v3\/pay\/transactions\/out-trade-no\/([^/]+)$/, 'query'],
      ['POST', /^\/v3\/pay\/transactions\/out-trade-no\/([^/]+)\/close$/, 'close'],
      ['POST', /^\/v3\/refund\/domestic\/refunds$/, 'refund'],
      ['GET', /^\/v3\/refund\/domestic\/refunds\/([^/]+)$/, 'refund_query'],
      ['GET', /^\/v3\/bill\/tradebill$/, 'bill'],
      ['GET', /^\/v3\/billdownload\/file$/, 'bill_file'],
    ];
    for (const [m, re, op] of routes) {
      const hit = re.exec(p);
      // Refunds and bills have one endpoint for both (sub_mchid names the sub-merchant).
      const shared = op === 'refund' || op === 'refund_query' || op === 'bill' || op === 'bill_file';
      if (m === method && hit)
        return this.v3(
          req,
          body,
          res,
          op,
          url,
          hit[1] ? decodeURIComponent(hit[1]) : '',
          shared ? 'both' : false,
        );
    }
    res
      .writeHead(404, { 'content-type': 'application/json' })
      .end('{"code":"NOT_FOUND","message":"no such API"}');
  }

  /** Checks our v3 Authorization header. */
  private checkAuthorization(req: http.IncomingMessage, body: Buffer): boolean {
    const auth = req.headers['authorization'] ?? '';
    const m = /^WECHATPAY2-SHA256-RSA2048 (.+)$/.exec(auth);
    if (!m) return false;
    const params: Record<string, string> = {};
    for (const x of (m[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)) params[x[1] as string] = x[2] as string;
    const order = [...(m[1] ?? '').matchAll(/(\w+)="/g)].map((x) => x[1]).join(',');
    if (order !== 'mchid,nonce_str,signature,timestamp,serial_no') return false;
    if (params['mchid'] !== this.opts.mchId) return false;
    if ((params['serial_no'] ?? '').toUpperCase() !== this.opts.material.merchantSerial) return false;
    if (Math.abs(Date.now() / 1000 - Number(params['timestamp'])) > 300) return false;
    if (!req.headers['user-agent'] || !req.headers['accept']) return false;
    const message = `${req.method}\n${req.url}\n${params['timestamp']}\n${params['nonce_str']}\n${body.toString('utf8')}\n`;
    return crypto
      .createVerify('RSA-SHA256')
      .update(message)
      .verify(this.merchantPublicKey, Buffer.from(params['signature'] ?? '', 'base64'));
  }

  private v3(
    req: http.IncomingMessage,
    body: Buffer,
    res: http.ServerResponse,
    op: WechatOp,
    url: URL,
    id: string,
    partnerRoute: boolean | 'both',
  ): void {
    const valid = this.checkAuthorization(req, body);
    this.log.push({ op, signatureValid: valid, path: url.pathname });
    if (!valid) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ code: 'SIGN_ERROR', message: '签名错误' }));
      return;
    }
    // A service provider cannot take payments itself; a direct merchant has no sub-merchants.
    if (partnerRoute !== 'both' && partnerRoute !== (this.opts.partner !== undefined))
      return this.answerJson(res, 403, {
        code: 'NO_AUTH',
        message: partnerRoute
          ? '商户号不是服务商，无权调用服务商接口'
          : '服务商没有收款能力，请使用服务商接口',
      });
    const behaviour = this.take(op);
    if (behaviour === 'http_500') {
      res
        .writeHead(500, { 'content-type': 'text/html' })
        .end('<html><body>500 Internal Server Error</body></html>');
      return;
    }
    if (behaviour === 'system_error')
      return this.answerJson(res, 500, { code: 'SYSTEM_ERROR', message: '系统错误' });
    let json: Record<string, unknown> = {};
    if (body.length > 0) {
      try {
        json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      } catch {
        return this.answerJson(res, 400, { code: 'PARAM_ERROR', message: '请求体不是 JSON' });
      }
    }
    const [status, answer] = this.v3Operation(op, behaviour, json, url, id);
    if (behaviour === 'timeout') return; // processed, answer lost: held until the client gives up
    if (op === 'bill_file' && Buffer.isBuffer(answer)) {
      res.writeHead(status, { 'content-type': 'application/octet-stream' }).end(answer);
      return;
    }
    if (behaviour === 'malformed') {
      const text = '{"code_url":"weixin://wxpay/bizpayurl?pr=';
      res.writeHead(200, { 'content-type': 'application/json', ...this.signHeaders(text) }).end(text);
      return;
    }
    this.answerJson(res, status, answer as Record<string, unknown> | null, behaviour === 'bad_signature');
  }

  private answerJson(
    res: http.ServerResponse,
    status: number,
    json: Record<string, unknown> | null,
    badSig = false,
  ): void {
    const text = json === null ? '' : JSON.stringify(json);
    const headers = this.signHeaders(text, badSig ? { key: this.lostKey } : {});
    res
      .writeHead(status, { ...(json === null ? {} : { 'content-type': 'application/json' }), ...headers })
      .end(text);
  }

  private transactionJson(t: FakeTrade): Record<string, unknown> {
    const paid = t.paidAt !== undefined && (t.state === 'paid' || t.state === 'refunded');
    const state =
      t.state === 'waiting'
        ? t.userPaying
          ? 'USERPAYING'
          : 'NOTPAY'
        : t.state === 'paid'
          ? 'SUCCESS'
          : t.revoked
            ? 'REVOKED'
            : t.state === 'refunded'
              ? 'REFUND'
              : 'CLOSED';
    const p = this.opts.partner;
    const ids = p
      ? {
          sp_appid: this.opts.appId,
          sp_mchid: this.opts.mchId,
          ...(p.subAppId ? { sub_appid: p.subAppId } : {}),
          sub_mchid: p.subMchId,
        }
      : { appid: this.opts.appId, mchid: this.opts.mchId };
    const payer = t.payer
      ? { [t.payer.field]: t.payer.openid }
      : p
        ? { sp_openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' }
        : { openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o' };
    return {
      ...ids,
      out_trade_no: t.outTradeNo,
      ...(t.transactionId ? { transaction_id: t.transactionId } : {}),
      trade_type: t.tradeType === 'MWEB' ? 'MWEB' : t.tradeType,
      trade_state: state,
      trade_state_desc: state === 'SUCCESS' ? '支付成功' : state,
      bank_type: 'OTHERS',
      attach: '',
      ...(paid && t.paidAt ? { success_time: rfc3339(t.paidAt) } : {}),
      payer,
      amount: { total: t.amountFen, payer_total: t.amountFen, currency: 'CNY', payer_currency: 'CNY' },
    };
  }

  /** Why an order's ids are not this merchant's (code, message), or null. */
  private orderIdsWrong(j: Record<string, unknown>): [string, string] | null {
    const p = this.opts.partner;
    if (!p)
      return j['mchid'] === this.opts.mchId && j['appid'] === this.opts.appId && !('sub_mchid' in j)
        ? null
        : ['APPID_MCHID_NOT_MATCH', 'AppID 和 mch_id 不匹配'];
    if (j['sp_mchid'] !== this.opts.mchId || j['sp_appid'] !== this.opts.appId || 'mchid' in j)
      return ['APPID_MCHID_NOT_MATCH', 'sp_appid 和 sp_mchid 不匹配'];
    if (j['sub_mchid'] !== p.subMchId) return ['PARAM_ERROR', '特约商户号 sub_mchid 与服务商不存在受理关系'];
    if (j['sub_appid'] !== undefined && j['sub_appid'] !== p.subAppId)
      return ['PARAM_ERROR', 'sub_appid 与 sub_mchid 不匹配'];
    return null;
  }

  /**
   * The payer of a JSAPI order (v3 `payer`): direct {openid} under appid; partner exactly one of {sp_openid} under
   * sp_appid or {sub_openid} under sub_appid (which the order must then carry). Else WeChat's complaint.
   */
  private jsapiPayer(raw: unknown, subAppId: string | undefined): FakePayer | string {
    const payer = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const keys = Object.keys(payer);
    const field = keys[0];
    if (keys.length !== 1 || typeof field !== 'string') return 'payer 须有且只有一个 openid';
    const openid = payer[field];
    if (typeof openid !== 'string') return 'openid 格式不正确';
    const allowed = this.opts.partner ? ['sp_openid', 'sub_openid'] : ['openid'];
    if (!allowed.includes(field)) return `payer.${field} 不是本接口的参数`;
    const appId = field === 'sub_openid' ? subAppId : this.opts.appId;
    if (field === 'sub_openid' && subAppId === undefined) return '传 sub_openid 时须传 sub_appid';
    if (this.openids.get(openid)?.appId !== appId) return 'appid 和 openid 不匹配';
    return { field: field as FakePayer['field'], openid };
  }

  /** The AppID whose openid paid: the one the app's bridge must name. */
  private payerAppId(payer: FakePayer): string {
    return payer.field === 'sub_openid' ? (this.opts.partner?.subAppId ?? '') : this.opts.appId;
  }

  private newTrade(
    outTradeNo: string,
    amountFen: number,
    tradeType: FakeTrade['tradeType'],
    description: string,
  ): FakeTrade {
    const t: FakeTrade = {
      outTradeNo,
      state: 'waiting',
      amountFen,
      refundedFen: 0,
      transactionId: `4200${digits(24)}`,
      tradeType,
      description,
      refunds: new Map(),
    };
    this.trades.set(outTradeNo, t);
    return t;
  }

  private v3Operation(
    op: WechatOp,
    behaviour: WechatBehaviour,
    j: Record<string, unknown>,
    url: URL,
    id: string,
  ): [number, Record<string, unknown> | null | Buffer] {
    const err = (status: number, code: string, message: string): [number, Record<string, unknown>] => [
      status,
      { code, message },
    ];
    switch (op) {
      case 'precreate':
      case 'wap':
      case 'inapp': {
        if (behaviour === 'declined') return err(400, 'PARAM_ERROR', '参数错误：time_expire 格式不正确');
        const amount = j['amount'] as { total?: unknown; currency?: unknown } | undefined;
        const no = j['out_trade_no'];
        const ids = this.orderIdsWrong(j);
        if (ids) return err(400, ids[0], ids[1]);
        if (
          typeof no !== 'string' ||
          typeof amount?.total !== 'number' ||
          !Number.isInteger(amount.total) ||
          amount.total <= 0
        )
          return err(400, 'PARAM_ERROR', '参数错误');
        if (typeof j['notify_url'] !== 'string' || !/^https?:\/\//.test(j['notify_url']))
          return err(400, 'PARAM_ERROR', 'notify_url 格式不正确');
        if (
          typeof j['time_expire'] !== 'string' ||
          !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00$/.test(j['time_expire'])
        )
          return err(400, 'PARAM_ERROR', 'time_expire 格式不正确');
        if (op === 'wap') {
          const scene = j['scene_info'] as
            { payer_client_ip?: unknown; h5_info?: { type?: unknown } } | undefined;
          if (typeof scene?.payer_client_ip !== 'string' || scene.h5_info?.type === undefined)
            return err(400, 'PARAM_ERROR', '缺少 scene_info');
        }
        let payer: FakePayer | undefined;
        if (op === 'inapp') {
          const got = this.jsapiPayer(
            j['payer'],
            typeof j['sub_appid'] === 'string' ? j['sub_appid'] : undefined,
          );
          if (typeof got === 'string') return err(400, 'PARAM_ERROR', got);
          payer = got;
        }
        const existing = this.trades.get(no);
        if (existing && existing.state !== 'waiting') return err(400, 'ORDERPAID', '该订单已支付');
        if (!existing) {
          const type = op === 'wap' ? 'MWEB' : op === 'inapp' ? 'JSAPI' : 'NATIVE';
          const t = this.newTrade(no, amount.total, type, String(j['description'] ?? ''));
          if (payer) t.payer = payer;
        }
        const prepay = `wx${digits(26)}`;
        if (op === 'inapp' && payer) {
          this.prepays.set(prepay, { outTradeNo: no, appId: this.payerAppId(payer), api: 'v3' });
          return [200, { prepay_id: prepay }];
        }
        return op === 'wap'
          ? [
              200,
              {
                h5_url: `https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=${prepay}&package=${digits(10)}`,
              },
            ]
          : [200, { code_url: `weixin://wxpay/bizpayurl?pr=${crypto.randomBytes(5).toString('hex')}` }];
      }
      case 'query': {
        const p = this.opts.partner;
        if (
          p
            ? url.searchParams.get('sp_mchid') !== this.opts.mchId ||
              url.searchParams.get('sub_mchid') !== p.subMchId
            : url.searchParams.get('mchid') !== this.opts.mchId
        )
          return err(400, 'PARAM_ERROR', 'mchid 不正确');
        const t = this.trades.get(id);
        if (!t) return err(404, 'ORDER_NOT_EXIST', '订单不存在');
        return [200, this.transactionJson(t)];
      }
      case 'close': {
        if (behaviour === 'declined') return err(400, 'INVALID_REQUEST', '订单状态不允许关闭');
        const p = this.opts.partner;
        if (
          p
            ? j['sp_mchid'] !== this.opts.mchId || j['sub_mchid'] !== p.subMchId || 'mchid' in j
            : j['mchid'] !== this.opts.mchId || 'sub_mchid' in j
        )
          return err(400, 'PARAM_ERROR', 'mchid 不正确');
        const t = this.trades.get(id);
        if (!t) return [204, null]; // as WeChat: 204 even for a number it does not know
        if (t.state === 'paid' || t.state === 'refunded') return err(400, 'ORDERPAID', '该订单已支付');
        t.state = 'closed';
        return [204, null];
      }
      case 'refund': {
        if (behaviour === 'declined') return err(403, 'NOT_ENOUGH', '基本账户余额不足，请充值后重新发起');
        if (this.opts.partner ? j['sub_mchid'] !== this.opts.partner.subMchId : 'sub_mchid' in j)
          return err(400, 'PARAM_ERROR', 'sub_mchid 不正确');
        const no = String(j['out_trade_no'] ?? '');
        const outRefundNo = String(j['out_refund_no'] ?? '');
        const amount = j['amount'] as { refund?: unknown; total?: unknown; currency?: unknown } | undefined;
        const t = this.trades.get(no);
        if (!t || t.paidAt === undefined || t.revoked) return err(404, 'RESOURCE_NOT_EXISTS', '订单不存在');
        const r0 = t.refunds.get(outRefundNo);
        if (r0) return [200, this.refundJson(t, r0)];
        const fen = amount?.refund;
        if (typeof fen !== 'number' || !Number.isInteger(fen) || fen <= 0 || amount?.total !== t.amountFen)
          return err(400, 'PARAM_ERROR', '退款金额或订单金额不正确');
        if (t.refundedFen + fen > t.amountFen)
          return err(400, 'INVALID_REQUEST', '申请退款金额超过订单可退金额');
        const r: FakeRefund = {
          outRefundNo,
          refundId: `50${digits(28)}`,
          amountFen: fen,
          status: this.opts.refundImmediate ? 'SUCCESS' : 'PROCESSING',
          createdAt: new Date(),
          ...(this.opts.refundImmediate ? { successAt: new Date() } : {}),
        };
        t.refunds.set(outRefundNo, r);
        t.refundedFen += fen;
        if (t.refundedFen === t.amountFen) t.state = 'refunded';
        return [200, this.refundJson(t, r)];
      }
      case 'refund_query': {
        if ((url.searchParams.get('sub_mchid') ?? undefined) !== this.opts.partner?.subMchId)
          return err(400, 'PARAM_ERROR', 'sub_mchid 不正确');
        for (const t of this.trades.values()) {
          const r = t.refunds.get(id);
          if (!r) continue;
          if (r.status === 'PROCESSING' && behaviour !== 'stays_processing') {
            r.status = 'SUCCESS';
            r.successAt = new Date();
          }
          return [200, this.refundJson(t, r)];
        }
        return err(404, 'RESOURCE_NOT_EXISTS', '退款单不存在');
      }
      case 'bill': {
        const date = url.searchParams.get('bill_date') ?? '';
        if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || url.searchParams.get('bill_type') !== 'ALL')
          return err(400, 'PARAM_ERROR', 'bill_date 或 bill_type 不正确');
        if ((url.searchParams.get('sub_mchid') ?? undefined) !== this.opts.partner?.subMchId)
          return err(400, 'PARAM_ERROR', 'sub_mchid 不正确');
        const file = this.billFile(date);
        if (!file) return err(400, 'NO_STATEMENT_EXIST', '当前账单不存在');
        const token = crypto.randomBytes(12).toString('hex');
        this.bills.set(token, file);
        const sha1 = crypto.createHash('sha1').update(file).digest('hex');
        return [
          200,
          {
            hash_type: 'SHA1',
            hash_value:
              behaviour === 'bad_hash' ? crypto.createHash('sha1').update('other').digest('hex') : sha1,
            download_url: `${this.url}/v3/billdownload/file?token=${token}`,
          },
        ];
      }
      case 'bill_file': {
        const file = this.bills.get(url.searchParams.get('token') ?? '');
        if (!file) return err(400, 'INVALID_REQUEST', '下载链接已失效');
        return [200, file];
      }
      default:
        return err(404, 'NOT_FOUND', 'no such API');
    }
  }

  private refundJson(t: FakeTrade, r: FakeRefund): Record<string, unknown> {
    return {
      refund_id: r.refundId,
      out_refund_no: r.outRefundNo,
      transaction_id: t.transactionId,
      out_trade_no: t.outTradeNo,
      channel: 'ORIGINAL',
      user_received_account: '支付用户零钱',
      ...(r.successAt ? { success_time: rfc3339(r.successAt) } : {}),
      create_time: rfc3339(r.createdAt),
      status: r.status,
      funds_account: 'AVAILABLE',
      amount: {
        total: t.amountFen,
        refund: r.amountFen,
        payer_total: t.amountFen,
        payer_refund: r.amountFen,
        settlement_refund: r.amountFen,
        settlement_total: t.amountFen,
        discount_refund: 0,
        currency: 'CNY',
      },
    };
  }

  /** The day's trade bill in WeChat's format, or null when the day has no trade. */
  billFile(date: string): Buffer | null {
    const day = (d: Date) => formatShanghai(d).slice(0, 10);
    // The fake keeps its books in plain integers (the wire's fen); the bill lines are Fen.
    const fee = (amount: number) => fen(Math.floor((amount * 60 + 5_000) / 10_000));
    const lines: BillLine[] = [];
    for (const t of this.trades.values()) {
      if (t.paidAt && day(t.paidAt) === date)
        lines.push({
          kind: 'payment',
          channelTradeNo: t.transactionId,
          outTradeNo: t.outTradeNo,
          amountFen: fen(t.amountFen),
          feeFen: fee(t.amountFen),
          time: formatShanghai(t.paidAt),
          payType: 'weixin',
          ...(t.description ? { subject: t.description.replace(/[,\t`"\r\n]/g, ' ') } : {}),
        });
      for (const r of t.refunds.values())
        if (r.status === 'SUCCESS' && r.successAt && day(r.successAt) === date)
          lines.push({
            kind: 'refund',
            channelTradeNo: t.transactionId,
            outTradeNo: t.outTradeNo,
            outRequestNo: r.outRefundNo,
            channelRefundNo: r.refundId,
            amountFen: fen(r.amountFen),
            feeFen: fee(r.amountFen),
            time: formatShanghai(r.successAt),
            payType: 'weixin',
          });
    }
    if (lines.length === 0) return null;
    lines.sort((a, b) => a.time.localeCompare(b.time));
    return buildWechatTradeBill(date, lines, {
      appId: this.opts.appId,
      mchId: this.opts.mchId,
      ...(this.opts.partner ? { subMchId: this.opts.partner.subMchId } : {}),
    });
  }

  // -------------------------------------------------------------- OAuth2 (网页授权)

  /** WeChat's authorize page: for snsapi_base it shows nothing and sends the browser back with a one-time code. */
  private oauthAuthorize(req: http.IncomingMessage, res: http.ServerResponse): void {
    const q = new URL(req.url ?? '/', 'http://fake').searchParams;
    const visit: OAuthVisit = {
      appid: q.get('appid') ?? '',
      scope: q.get('scope') ?? '',
      redirectUri: q.get('redirect_uri') ?? '',
      state: q.get('state') ?? '',
      order: [...q.keys()].join(','),
      redirected: false,
    };
    this.visits.push(visit);
    const page = (why: string): void => {
      res
        .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
        .end(`<!doctype html><title>微信</title><p>${why.replace(/[<>&]/g, ' ')}</p>`);
    };
    if (!(visit.appid in (this.opts.oauthApps ?? {}))) return page('参数错误：appid 无效');
    if (visit.order !== 'appid,redirect_uri,response_type,scope,state' || q.get('response_type') !== 'code')
      return page('参数错误：参数顺序或 response_type 不正确');
    if (visit.scope !== 'snsapi_base' && visit.scope !== 'snsapi_userinfo') return page('scope 参数错误');
    let back: URL;
    try {
      back = new URL(visit.redirectUri);
    } catch {
      return page('redirect_uri 参数错误');
    }
    if (this.opts.oauthDomains && !this.opts.oauthDomains.includes(back.host))
      return page('redirect_uri 域名与后台配置不一致，错误码 10003');
    const code = crypto.randomBytes(16).toString('hex');
    this.oauthCodes.set(code, {
      appId: visit.appid,
      user: this.oauthUser,
      expires: Date.now() + 5 * 60_000,
      used: false,
    });
    back.searchParams.append('code', code);
    back.searchParams.append('state', visit.state);
    visit.redirected = true;
    res.writeHead(302, { location: back.toString() }).end();
  }

  /** GET /sns/oauth2/access_token: appid, secret and a one-time code of that appid, for the payer's openid. */
  private oauthToken(url: URL, res: http.ServerResponse): void {
    const q = url.searchParams;
    this.log.push({ op: 'oauth_token', signatureValid: true, path: url.pathname });
    const behaviour = this.take('oauth_token');
    const answer = (j: Record<string, unknown>): void => {
      res.writeHead(200, { 'content-type': 'application/json; encoding=utf-8' }).end(JSON.stringify(j));
    };
    if (behaviour === 'timeout') return;
    if (behaviour === 'http_500') {
      res.writeHead(500, { 'content-type': 'text/html' }).end('<html>500</html>');
      return;
    }
    if (behaviour === 'malformed') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token":"ACCESS');
      return;
    }
    if (behaviour === 'system_error') return answer({ errcode: -1, errmsg: 'system error' });
    const appId = q.get('appid') ?? '';
    const secret = (this.opts.oauthApps ?? {})[appId];
    if (secret === undefined) return answer({ errcode: 40013, errmsg: 'invalid appid' });
    if (q.get('secret') !== secret) return answer({ errcode: 40125, errmsg: 'invalid appsecret, rid: 0' });
    if (q.get('grant_type') !== 'authorization_code')
      return answer({ errcode: 40002, errmsg: 'invalid grant_type' });
    const code = q.get('code') ?? '';
    if (code === '') return answer({ errcode: 41008, errmsg: 'missing code' });
    const c = this.oauthCodes.get(code);
    if (!c || c.appId !== appId || c.expires < Date.now())
      return answer({ errcode: 40029, errmsg: `invalid code, rid: ${crypto.randomUUID()}` });
    if (c.used) return answer({ errcode: 40163, errmsg: 'code been used, rid: 0' });
    c.used = true;
    answer({
      access_token: crypto.randomBytes(24).toString('base64url'),
      expires_in: 7200,
      refresh_token: crypto.randomBytes(24).toString('base64url'),
      openid: this.openidFor(appId, c.user),
      scope: 'snsapi_base',
    });
  }

  // -------------------------------------------------------------- v2

  private v2(
    req: http.IncomingMessage,
    body: Buffer,
    res: http.ServerResponse,
    op: 'pay' | 'cancel' | 'inapp',
  ): void {
    const f = xmlFields(body.toString('utf8'));
    const signType: SignType = f?.['sign_type'] === 'HMAC-SHA256' ? 'HMAC-SHA256' : 'MD5';
    const p = this.opts.partner;
    const valid =
      f !== null &&
      f['appid'] === this.opts.appId &&
      f['mch_id'] === this.opts.mchId &&
      (p
        ? f['sub_mch_id'] === p.subMchId && (f['sub_appid'] === undefined || f['sub_appid'] === p.subAppId)
        : f['sub_mch_id'] === undefined && f['sub_appid'] === undefined) &&
      signType === this.opts.signTypeV2 &&
      f['sign'] === v2sign(f, this.opts.apiV2Key, signType);
    const entry: FakeRequest = { op, signatureValid: valid, path: req.url ?? '' };
    let behaviour = this.take(op);
    if (op === 'cancel' && this.opts.tls) {
      const sock = req.socket as TLSSocket;
      const peer = sock.getPeerCertificate?.();
      entry.clientCert =
        sock.authorized === true &&
        (peer?.serialNumber ?? '').toUpperCase() === this.opts.material.merchantSerial;
      if (!entry.clientCert) behaviour = 'no_client_cert';
    }
    this.log.push(entry);
    const send = (fields: Record<string, string>, signed = true, badSig = false) => {
      const all: Record<string, string> = { ...fields };
      if (signed) {
        all['nonce_str'] = crypto.randomBytes(8).toString('hex');
        all['sign'] = v2sign(all, this.opts.apiV2Key, signType);
        if (badSig) all['sign'] = `${all['sign'].slice(0, -1)}${all['sign'].endsWith('0') ? '1' : '0'}`;
      }
      res.writeHead(200, { 'content-type': 'text/xml; charset=utf-8' }).end(toXml(all));
    };
    if (!f || !valid) return send({ return_code: 'FAIL', return_msg: '签名错误' }, false);
    if (behaviour === 'no_client_cert')
      return send({ return_code: 'FAIL', return_msg: '证书验证失败' }, false);
    if (behaviour === 'http_500') {
      res.writeHead(500, { 'content-type': 'text/html' }).end('<html>500</html>');
      return;
    }
    if (behaviour === 'malformed') {
      res
        .writeHead(200, { 'content-type': 'text/xml' })
        .end('<xml><return_code><![CDATA[SUCCESS]]></return_code><result_');
      return;
    }
    const base = {
      return_code: 'SUCCESS',
      return_msg: 'OK',
      appid: this.opts.appId,
      mch_id: this.opts.mchId,
      ...(p?.subAppId ? { sub_appid: p.subAppId } : {}),
      ...(p ? { sub_mch_id: p.subMchId } : {}),
    };
    const no = f['out_trade_no'] ?? '';
    const fail = (code: string, des: string, extra: Record<string, string> = {}) =>
      send(
        { ...base, result_code: 'FAIL', err_code: code, err_code_des: des, ...extra },
        true,
        behaviour === 'bad_signature',
      );
    if (op === 'inapp') {
      if (behaviour === 'system_error') return fail('SYSTEMERROR', '系统超时');
      if (behaviour === 'declined') return fail('ORDERCLOSED', '订单已关闭');
      const total = Number(f['total_fee']);
      if (
        f['trade_type'] !== 'JSAPI' ||
        !/^[1-9][0-9]*$/.test(f['total_fee'] ?? '') ||
        !f['spbill_create_ip'] ||
        !f['body'] ||
        !/^https?:\/\//.test(f['notify_url'] ?? '') ||
        (f['time_expire'] !== undefined && !/^\d{14}$/.test(f['time_expire']))
      )
        return fail('PARAM_ERROR', '参数错误');
      const given = (['openid', 'sub_openid'] as const).filter((k) => f[k] !== undefined);
      const field = given[0];
      if (given.length !== 1 || field === undefined)
        return fail('PARAM_ERROR', 'openid 与 sub_openid 须传且只传一个');
      if (field === 'sub_openid' && f['sub_appid'] === undefined)
        return fail('PARAM_ERROR', '传 sub_openid 时须传 sub_appid');
      const openid = f[field] ?? '';
      const payerApp = field === 'sub_openid' ? f['sub_appid'] : this.opts.appId;
      if (this.openids.get(openid)?.appId !== payerApp) return fail('PARAM_ERROR', 'appid 和 openid 不匹配');
      const existing = this.trades.get(no);
      if (existing && existing.state !== 'waiting') return fail('ORDERPAID', '该订单已支付');
      if (!existing) {
        const t = this.newTrade(no, total, 'JSAPI', f['body'] ?? '');
        t.payer = { field: field === 'sub_openid' ? 'sub_openid' : p ? 'sp_openid' : 'openid', openid };
        t.v2 = true;
      }
      const prepay = `wx${digits(26)}`;
      this.prepays.set(prepay, { outTradeNo: no, appId: payerApp ?? '', api: 'v2' });
      if (behaviour === 'timeout') return;
      return send(
        { ...base, result_code: 'SUCCESS', trade_type: 'JSAPI', prepay_id: prepay },
        true,
        behaviour === 'bad_signature',
      );
    }
    if (op === 'pay') {
      if (behaviour === 'system_error') return fail('SYSTEMERROR', '系统超时');
      if (behaviour === 'declined') return fail('AUTHCODEEXPIRE', '二维码已过期，请用户在微信上刷新后再试');
      if (!/^1[0-5][0-9]{16}$/.test(f['auth_code'] ?? ''))
        return fail('AUTH_CODE_INVALID', '付款码无效，请重新扫码');
      const total = Number(f['total_fee']);
      if (!/^[1-9][0-9]*$/.test(f['total_fee'] ?? '') || !f['spbill_create_ip'] || !f['body'])
        return fail('PARAM_ERROR', '参数错误');
      if (this.trades.has(no)) return fail('ORDERPAID', '订单已支付');
      const t = this.newTrade(no, total, 'MICROPAY', f['body'] ?? '');
      if (behaviour === 'paying') {
        t.userPaying = true;
        return fail('USERPAYING', '需要用户输入支付密码');
      }
      t.state = 'paid';
      t.paidAt = new Date();
      if (behaviour === 'timeout') return; // paid, the answer is lost
      return send(
        {
          ...base,
          result_code: 'SUCCESS',
          device_info: f['device_info'] ?? '',
          openid: 'oUpF8uMuAJO_M2pxb1Q9zNjWeS6o',
          is_subscribe: 'N',
          trade_type: 'MICROPAY',
          bank_type: 'OTHERS',
          fee_type: 'CNY',
          total_fee: String(total),
          cash_fee: String(total),
          transaction_id: t.transactionId,
          out_trade_no: no,
          time_end: compact(t.paidAt),
        },
        true,
        behaviour === 'bad_signature',
      );
    }
    // reverse
    if (behaviour === 'system_error') return fail('SYSTEMERROR', '系统错误', { recall: 'Y' });
    if (behaviour === 'declined')
      return fail('REVERSE_EXPIRE', '订单已超过可撤销的最大期限', { recall: 'N' });
    const t = this.trades.get(no);
    if (t) {
      if (t.state === 'paid' || (t.state === 'refunded' && !t.revoked)) {
        t.state = 'refunded';
        t.refundedFen = t.amountFen;
      } else if (t.state === 'waiting') t.state = 'closed';
      t.revoked = true;
      t.userPaying = false;
    }
    if (behaviour === 'timeout') return;
    send({ ...base, result_code: 'SUCCESS', recall: 'N' }, true, behaviour === 'bad_signature');
  }
}

/** Starts a fake WeChat Pay. */
export async function startWechatFake(opts: WechatFakeOptions): Promise<WechatFake> {
  return new WechatFake(opts).start();
}
