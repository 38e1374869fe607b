/**
 * A fake national medical-insurance mobile-payment centre, built to the published protocol and written apart
 * from the adapter (its SM4 and SM3 come from node:crypto, not from sm-crypto-v2): it decrypts our SM4 payload,
 * verifies our SM3withSM2 signature, keeps its own books (authorisations, orders: uploaded → paid → refunded)
 * and answers enveloped, SM2-signed with a key pair it generates at start.
 *
 * Misbehaviour is scripted per interface, once each: ok, declined (a signed refusal), system_error (a signed
 * system error), timeout (no answer until the client gives up), http_500, malformed (not JSON), bad_signature
 * (signed with another key). By default a misbehaving answer means the request was not processed; with
 * `{ effect: true }` it was processed and only the answer is lost or spoiled.
 */
import http from 'node:http';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import { sm2 } from 'sm-crypto-v2';

export type NhsaFakeOp = 'token' | '6201' | '6202' | '6203' | '6301' | '6401';
export type NhsaBehaviour =
  'ok' | 'declined' | 'system_error' | 'timeout' | 'http_500' | 'malformed' | 'bad_signature';

export const NHSA_FAKE_PATHS: Record<NhsaFakeOp, string> = {
  token: '/fake/ec/payAuthNo',
  '6201': '/org/local/api/hos/uldFeeInfo',
  '6202': '/org/local/api/hos/pay_order',
  '6203': '/org/local/api/hos/refund_Order',
  '6301': '/org/local/api/hos/query_order_info',
  '6401': '/org/local/api/hos/revoke_order',
};

export interface NhsaFakeOrder {
  payOrdId: string;
  payToken: string;
  medOrgOrd: string;
  payAuthNo: string;
  state: 'uploaded' | 'paid' | 'refunded' | 'revoked';
  ordStas: string;
  totalFen: number;
  /** What the HIS declared (6201) … */
  declaredCashFen: number;
  declaredInsuranceFen: number;
  /** … and what the centre settled (6202). */
  cashFen: number;
  fundFen: number;
  acctFen: number;
  refunds: Array<{ appRefdSn: string; refdType: string; totalFen: number }>;
  /** The item-level fee details uploaded with 6201 (feedetailList), as sent. */
  feedetailList: Array<Record<string, unknown>>;
}

export interface NhsaFakeRequest {
  op: NhsaFakeOp | 'unknown';
  signatureValid: boolean;
  /** The decrypted business data (to check what the adapter sent). */
  data: Record<string, unknown>;
}

export interface NhsaFakeOptions {
  appId: string;
  appSecret: string;
  /** The institution's public key (04‖X‖Y hex): our requests must verify with it. */
  orgPublicKeyHex: string;
  orgCode: string;
  sm2UserId?: string;
  /** How long a scripted timeout holds the answer (default 30 s; the client gives up long before). */
  hangMs?: number;
}

export interface NhsaFake {
  url: string;
  /** The fake's SM2 public key (130 hex), for the adapter's platform_public_key. */
  publicKeyHex: string;
  /** Its authorisation page, as an auth_url template. */
  authUrl: string;
  paths: Record<NhsaFakeOp, string>;
  script(op: NhsaFakeOp, behaviour: NhsaBehaviour, opts?: { effect?: boolean; cashFen?: number }): void;
  order(medOrgOrd: string): NhsaFakeOrder | undefined;
  orders(): NhsaFakeOrder[];
  /** Sets an order's state as the centre's own processes would (e.g. '9': only its cash part refunded). */
  setOrderState(payOrdId: string, ordStas: string): void;
  requests(): NhsaFakeRequest[];
  tokens(): Array<{ payAuthNo: string; appUserId: string }>;
  /** The last auth code its authorisation page issued. */
  lastAuthCode(): string | undefined;
  /**
   * POSTs the centre's settlement notification for an order to `url` (the platform's notify door): the same
   * envelope as its answers, signed with its key; `spoil` sends it unsigned, signed with another key, or with
   * its data changed after signing.
   */
  notify(
    url: string,
    medOrgOrd: string,
    spoil?: 'unsigned' | 'bad_signature' | 'tampered',
  ): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

// --- the protocol, written independently of src/channels/nhsa -------------------------------------------------

function sm4Ecb(key: Buffer, data: Buffer, decrypt = false): Buffer {
  const c = decrypt ? createDecipheriv('sm4-ecb', key, null) : createCipheriv('sm4-ecb', key, null);
  return Buffer.concat([c.update(data), c.final()]);
}

function envelopeKey(appId: string, appSecret: string): Buffer {
  const outer = sm4Ecb(Buffer.from(appId.slice(0, 16), 'utf8'), Buffer.from(appSecret, 'utf8'));
  return Buffer.from(outer.toString('hex').toUpperCase().slice(0, 16), 'utf8');
}

function pruned(v: unknown): unknown {
  if (v === null || v === undefined || v === '') return undefined;
  if (Array.isArray(v)) {
    const a = v.map(pruned).filter((x) => x !== undefined);
    return a.length ? a : undefined;
  }
  if (typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v as object).sort()) {
      const x = pruned((v as Record<string, unknown>)[k]);
      if (x !== undefined) o[k] = x;
    }
    return Object.keys(o).length ? o : undefined;
  }
  return v;
}

/** Sorted keys (JSON.stringify keeps insertion order, and pruned() inserts sorted) and empties removed. */
const sortedJson = (v: unknown): string => {
  const p = pruned(v);
  return p === undefined ? '' : JSON.stringify(p);
};

function textToSign(fields: Record<string, unknown>, appSecret: string): string {
  const parts = Object.keys(fields)
    .filter((k) => !['signData', 'encData', 'extra'].includes(k))
    .sort()
    .map((k) => {
      const v = fields[k];
      const t =
        typeof v === 'object' && v !== null ? sortedJson(v) : v === undefined || v === null ? '' : String(v);
      return t === '' ? null : `${k}=${t}`;
    })
    .filter((x): x is string => x !== null);
  return `${parts.join('&')}&key=${appSecret}`;
}

const signB64 = (text: string, priv: string, pub: string, userId: string) =>
  Buffer.from(
    sm2.doSignature(new Uint8Array(Buffer.from(text, 'utf8')), priv, { hash: true, publicKey: pub, userId }),
    'hex',
  ).toString('base64');

function verifyB64(text: string, sigB64: string, pub: string, userId: string): boolean {
  const raw = Buffer.from(sigB64, 'base64');
  if (raw.length !== 64) return false;
  try {
    return sm2.doVerifySignature(new Uint8Array(Buffer.from(text, 'utf8')), raw.toString('hex'), pub, {
      hash: true,
      userId,
    });
  } catch {
    return false;
  }
}

function fenOf(v: unknown): number | null {
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]*)(\.[0-9]{1,2})?$/.test(v)) return null;
  const [w = '0', f = ''] = v.split('.');
  return Number(w) * 100 + Number(f.padEnd(2, '0'));
}

const yuan = (fen: number) => `${Math.floor(fen / 100)}.${String(fen % 100).padStart(2, '0')}`;

function shanghai(d: Date): string {
  return new Date(d.getTime() + 8 * 3600_000).toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

type Outcome = { code: string | number; message: string; data?: Record<string, unknown> };

export async function startNhsaFake(opts: NhsaFakeOptions): Promise<NhsaFake> {
  const keys = sm2.generateKeyPairHex();
  const impostor = sm2.generateKeyPairHex();
  const userId = opts.sm2UserId ?? '1234567812345678';
  const key = envelopeKey(opts.appId, opts.appSecret);
  const hangMs = opts.hangMs ?? 30_000;
  const scripts = new Map<
    NhsaFakeOp,
    Array<{ behaviour: NhsaBehaviour; effect: boolean; cashFen?: number }>
  >();
  const orders = new Map<string, NhsaFakeOrder>();
  const byMedOrgOrd = new Map<string, string>();
  const tokens = new Map<string, { appUserId: string; usedBy: string | null }>();
  const authCodes = new Map<string, boolean>();
  const requests: NhsaFakeRequest[] = [];
  const sockets = new Set<Socket>();
  const hanging = new Set<NodeJS.Timeout>();
  let lastAuthCode: string | undefined;
  let seq = 0;
  const opOf = (path: string): NhsaFakeOp | undefined =>
    (Object.keys(NHSA_FAKE_PATHS) as NhsaFakeOp[]).find((op) => NHSA_FAKE_PATHS[op] === path);

  const refuse = (code: string, message: string): Outcome => ({ code, message });
  const ok = (data: Record<string, unknown>): Outcome => ({ code: 0, message: '成功', data });

  function settlementView(o: NhsaFakeOrder): Record<string, unknown> {
    const base = { payOrdId: o.payOrdId, ordStas: o.ordStas, medOrgOrd: o.medOrgOrd, setlType: 'ALL' };
    if (o.state === 'uploaded' || o.state === 'revoked') return base;
    return {
      ...base,
      feeSumamt: yuan(o.totalFen),
      ownPayAmt: yuan(o.cashFen),
      psnAcctPay: yuan(o.acctFen),
      fundPay: yuan(o.fundFen),
      deposit: '0.00',
      traceTime: shanghai(new Date()),
      callType: '02',
      revsToken: randomBytes(8).toString('hex'),
    };
  }

  function process(op: NhsaFakeOp, d: Record<string, unknown>, cashOverride?: number): Outcome {
    const s = (k: string) => (typeof d[k] === 'string' ? (d[k] as string) : undefined);
    if (op !== 'token' && s('orgCodg') !== opts.orgCode) return refuse('2001', '机构编码不符');
    switch (op) {
      case 'token': {
        const appUserId = s('appUserId');
        if (!appUserId) return refuse('2101', '缺少用户标识');
        const code = s('authCode');
        if (code !== undefined) {
          if (authCodes.get(code) !== true) return refuse('2102', '授权码无效或已使用');
          authCodes.set(code, false);
        }
        if (s('idNo')?.endsWith('0000')) return refuse('2103', '未查询到参保信息');
        const area = s('insuplcAdmdvs') ?? '440100';
        const payAuthNo = `AUTH${area}${shanghai(new Date())}${String(++seq).padStart(6, '0')}`;
        tokens.set(payAuthNo, { appUserId, usedBy: null });
        return ok({
          payAuthNo,
          insuplcAdmdvs: area,
          ecQrCode: `https://nhsa.fake/qr/${payAuthNo}`,
          cardInfo: randomBytes(12).toString('base64'),
        });
      }
      case '6201': {
        const medOrgOrd = s('medOrgOrd');
        const payAuthNo = s('payAuthNo');
        const total = fenOf(d['medfeeSumamt']);
        const cash = fenOf(d['fulamtOwnpayAmt']);
        const ins = fenOf(d['inscpScpAmt']);
        const pre = d['preselfpayAmt'] === undefined ? 0 : fenOf(d['preselfpayAmt']);
        if (!medOrgOrd || !payAuthNo || total === null || cash === null || ins === null || pre === null)
          return refuse('2201', '费用明细不完整');
        if (cash + pre + ins !== total) return refuse('2202', '费用合计不符');
        const list = Array.isArray(d['feedetailList'])
          ? (d['feedetailList'] as Array<Record<string, unknown>>)
          : [];
        if (list.length > 0) {
          let sum = 0;
          for (const item of list) {
            const f = fenOf(item['detItemFeeSumamt']);
            if (
              f === null ||
              typeof item['feedetlSn'] !== 'string' ||
              typeof item['medListCodg'] !== 'string'
            )
              return refuse('2205', '费用明细项不完整');
            sum += f;
          }
          if (sum !== total) return refuse('2206', '费用明细合计与总额不符');
        }
        const existing = byMedOrgOrd.get(medOrgOrd);
        if (existing) {
          const o = orders.get(existing);
          if (o)
            return ok({ payOrdId: o.payOrdId, payToken: o.payToken, medOrgOrd, mdtrtId: `MD${o.payOrdId}` });
        }
        const token = tokens.get(payAuthNo);
        if (!token) return refuse('2203', 'payAuthNo 无效');
        if (token.usedBy !== null) return refuse('2204', 'payAuthNo 已使用');
        const payOrdId = `ORD${shanghai(new Date())}${String(++seq).padStart(6, '0')}`;
        token.usedBy = payOrdId;
        orders.set(payOrdId, {
          payOrdId,
          payToken: randomBytes(16).toString('hex'),
          medOrgOrd,
          payAuthNo,
          state: 'uploaded',
          ordStas: '0',
          totalFen: total,
          declaredCashFen: cash + pre,
          declaredInsuranceFen: ins,
          cashFen: 0,
          fundFen: 0,
          acctFen: 0,
          refunds: [],
          feedetailList: list,
        });
        byMedOrgOrd.set(medOrgOrd, payOrdId);
        const o = orders.get(payOrdId);
        return ok({ payOrdId, payToken: o?.payToken, medOrgOrd, mdtrtId: `MD${payOrdId}` });
      }
      case '6202': {
        const o = orders.get(s('payOrdId') ?? '');
        if (!o) return refuse('2301', '订单不存在');
        if (s('payToken') !== o.payToken) return refuse('2302', 'payToken 不符');
        if (s('payAuthNo') !== o.payAuthNo) return refuse('2303', 'payAuthNo 不符');
        if (o.state === 'refunded') return refuse('2304', '订单已退费');
        if (o.state === 'revoked') return refuse('2305', '订单已撤销');
        if (o.state === 'uploaded') {
          const cash = cashOverride ?? o.declaredCashFen;
          const ins = o.totalFen - cash;
          o.fundFen = Math.floor((ins * 7) / 10);
          o.acctFen = ins - o.fundFen;
          o.cashFen = cash;
          o.state = 'paid';
          o.ordStas = '4';
        }
        return ok(settlementView(o));
      }
      case '6301': {
        const o = orders.get(s('payOrdId') ?? '');
        if (!o) return refuse('2401', '订单不存在');
        if (s('payToken') !== undefined && s('payToken') !== o.payToken)
          return refuse('2402', 'payToken 不符');
        return ok(settlementView(o));
      }
      case '6203': {
        const o = orders.get(s('payOrdId') ?? '');
        if (!o) return refuse('2501', '订单不存在');
        if (s('ecToken') !== undefined && s('ecToken') !== o.payToken) return refuse('2502', 'ecToken 不符');
        const sn = s('appRefdSn');
        const type = s('refdType');
        if (!sn || !/^[0-9]{14}$/.test(s('appRefdTime') ?? '')) return refuse('2503', '退费流水号或时间缺失');
        const done = o.refunds.find((r) => r.appRefdSn === sn);
        const answer = () =>
          ok({
            payOrdId: o.payOrdId,
            appRefdSn: sn,
            refdSn: `RF${o.payOrdId}`,
            hiRefdSn: `HI${o.payOrdId}`,
            hiTrnsDate: shanghai(new Date()).slice(0, 8),
            hiTrnsTime: shanghai(new Date()).slice(8),
            refStatus: 'SUCC',
          });
        if (done) return answer();
        if (!(o.state === 'paid' || ['9', '10'].includes(o.ordStas)))
          return refuse('2504', '订单状态不允许退费');
        const total = fenOf(d['totlRefdAmt']);
        const fund = fenOf(d['fundRefdAmt'] ?? '0');
        const acct = fenOf(d['psnAcctRefdAmt'] ?? '0');
        const cash = fenOf(d['cashRefdAmt'] ?? '0');
        const exact =
          type === 'ALL'
            ? total === o.totalFen && fund === o.fundFen && acct === o.acctFen && cash === o.cashFen
            : type === 'HI'
              ? total === o.fundFen + o.acctFen && fund === o.fundFen && acct === o.acctFen && cash === 0
              : false;
        if (!exact) return refuse('2505', '退费金额与结算不符');
        o.refunds.push({ appRefdSn: sn, refdType: type ?? '', totalFen: total ?? 0 });
        o.state = 'refunded';
        o.ordStas = type === 'ALL' ? '7' : '8';
        return answer();
      }
      case '6401': {
        const o = orders.get(s('payOrdId') ?? '');
        if (!o) return refuse('2601', '订单不存在');
        if (s('payToken') !== undefined && s('payToken') !== o.payToken)
          return refuse('2602', 'payToken 不符');
        if (o.state === 'revoked') return ok({ payOrdId: o.payOrdId });
        if (o.state !== 'uploaded') return refuse('2603', '订单已结算，不能撤销');
        o.state = 'revoked';
        o.ordStas = '12';
        return ok({ payOrdId: o.payOrdId });
      }
    }
  }

  function envelope(outcome: Outcome, signer: { privateKey: string; publicKey: string }): string {
    const fields: Record<string, unknown> = {
      code: outcome.code,
      message: outcome.message,
      success: outcome.code === 0,
      appId: opts.appId,
      timestamp: String(Date.now()),
      encType: 'SM4',
      signType: 'SM2',
      version: '2.0.1',
    };
    const plain = outcome.data ? sortedJson(outcome.data) : '';
    if (plain) fields['encData'] = sm4Ecb(key, Buffer.from(plain, 'utf8')).toString('hex').toUpperCase();
    fields['signData'] = signB64(
      textToSign({ ...fields, data: plain || undefined }, opts.appSecret),
      signer.privateKey,
      signer.publicKey,
      userId,
    );
    return JSON.stringify(fields);
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const u = new URL(req.url ?? '/', 'http://fake');
    if (req.method === 'GET' && u.pathname === '/auth') {
      const redirect = u.searchParams.get('redirect') ?? '';
      const state = u.searchParams.get('state') ?? '';
      if (u.searchParams.get('decision') === 'grant') {
        const code = randomBytes(12).toString('hex');
        authCodes.set(code, true);
        lastAuthCode = code;
        const back = new URL(redirect);
        back.searchParams.set('authCode', code);
        back.searchParams.set('state', state);
        res.writeHead(302, { location: back.toString() }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<h1>医保电子凭证授权（模拟地区页面）</h1><p>appId ${u.searchParams.get('appId') ?? ''}</p>`);
      return;
    }
    const op = req.method === 'POST' ? opOf(u.pathname) : undefined;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (!op) {
      res.writeHead(404).end();
      return;
    }
    const reply = (outcome: Outcome) => {
      res.writeHead(200, { 'content-type': 'application/json;charset=UTF-8' });
      res.end(envelope(outcome, keys));
    };
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      requests.push({ op, signatureValid: false, data: {} });
      return reply(refuse('1000', '报文不是 JSON'));
    }
    if (body['appId'] !== opts.appId) {
      requests.push({ op, signatureValid: false, data: {} });
      return reply(refuse('1001', 'appId 不符'));
    }
    let data: Record<string, unknown>;
    try {
      data = JSON.parse(
        sm4Ecb(key, Buffer.from(String(body['encData']), 'hex'), true).toString('utf8'),
      ) as Record<string, unknown>;
    } catch {
      requests.push({ op, signatureValid: false, data: {} });
      return reply(refuse('1002', '解密失败'));
    }
    const signatureValid = verifyB64(
      textToSign({ ...body, data }, opts.appSecret),
      String(body['signData'] ?? ''),
      opts.orgPublicKeyHex,
      userId,
    );
    requests.push({ op, signatureValid, data });
    if (!signatureValid) return reply(refuse('1003', '签名验证失败'));

    const plan = scripts.get(op)?.shift() ?? { behaviour: 'ok' as const, effect: true };
    const run = () => process(op, data, plan.cashFen);
    switch (plan.behaviour) {
      case 'ok':
        return reply(run());
      case 'declined':
        return reply(refuse('3001', '不符合医保结算条件（模拟拒绝）'));
      case 'system_error':
        if (plan.effect) run();
        return reply(refuse('-1', '系统繁忙，请稍后再试'));
      case 'timeout': {
        if (plan.effect) run();
        const t = setTimeout(() => {
          hanging.delete(t);
          reply(refuse('-1', 'late'));
        }, hangMs);
        hanging.add(t);
        return;
      }
      case 'http_500':
        if (plan.effect) run();
        res.writeHead(500, { 'content-type': 'text/plain' }).end('Internal Server Error');
        return;
      case 'malformed':
        if (plan.effect) run();
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"code":0,"encData":"6A1F');
        return;
      case 'bad_signature': {
        const outcome = plan.effect ? run() : ok({ payOrdId: 'FORGED', ordStas: '4', refStatus: 'SUCC' });
        res.writeHead(200, { 'content-type': 'application/json;charset=UTF-8' });
        res.end(envelope(outcome, impostor));
        return;
      }
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    publicKeyHex: keys.publicKey,
    authUrl: `${url}/auth?appId={appId}&org={orgCode}&redirect={redirect}&state={state}`,
    paths: { ...NHSA_FAKE_PATHS },
    script(op, behaviour, o = {}) {
      const list = scripts.get(op) ?? [];
      list.push({
        behaviour,
        effect: o.effect ?? false,
        ...(o.cashFen !== undefined ? { cashFen: o.cashFen } : {}),
      });
      scripts.set(op, list);
    },
    order: (medOrgOrd) => {
      const id = byMedOrgOrd.get(medOrgOrd);
      return id ? orders.get(id) : undefined;
    },
    orders: () => [...orders.values()],
    setOrderState(payOrdId, ordStas) {
      const o = orders.get(payOrdId);
      if (o) o.ordStas = ordStas;
    },
    requests: () => [...requests],
    tokens: () => [...tokens.entries()].map(([payAuthNo, t]) => ({ payAuthNo, appUserId: t.appUserId })),
    lastAuthCode: () => lastAuthCode,
    async notify(url, medOrgOrd, spoil) {
      const id = byMedOrgOrd.get(medOrgOrd);
      const o = id ? orders.get(id) : undefined;
      const data = o ? settlementView(o) : { payOrdId: 'ORD-NONE', medOrgOrd, ordStas: '4' };
      const signer = spoil === 'bad_signature' ? impostor : keys;
      const fields = JSON.parse(envelope({ code: 0, message: '结算通知', data }, signer)) as Record<
        string,
        unknown
      >;
      if (spoil === 'unsigned') delete fields['signData'];
      if (spoil === 'tampered') {
        const plain = JSON.stringify({ ...data, ordStas: '7' });
        fields['encData'] = sm4Ecb(key, Buffer.from(plain, 'utf8')).toString('hex').toUpperCase();
      }
      const r = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json;charset=UTF-8' },
        body: JSON.stringify(fields),
      });
      return { status: r.status, body: await r.text() };
    },
    async close() {
      for (const t of hanging) clearTimeout(t);
      hanging.clear();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
