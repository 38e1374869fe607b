import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Errors, HospayError } from '../../domain/errors.js';
import { formatShanghai } from '../../domain/clock.js';
import type { App, Trade } from '../../services/records.js';
import { TradeAlreadyPaid, type ServiceDeps } from '../../services/deps.js';
import { h5Pay } from '../../services/h5-pay.js';
import { inAppOrderForHis } from '../../services/qr-pay.js';
import { NonceReplayError, type GatewayNonce } from '../../services/nonces.js';
import { queryTrade } from '../../services/query.js';
import { cancelTrade } from '../../services/cancel.js';
import { refundTrade } from '../../services/refund.js';
import {
  readFeeDetails,
  recordInsuranceRefund,
  sscTradePay,
  userToken,
  type InsuranceRefundMode,
  type SscTradePayCommand,
} from '../../services/medicare.js';
import { parseSignType, readPublicKey, verifyParams, type SignType } from '../../crypto/signing.js';
import { randomBytes, type KeyObject } from 'node:crypto';

/** Parsed app public keys by their PEM text (a key change is a new PEM, so entries never go stale). */
const publicKeys = new Map<string, KeyObject | null>();
function appPublicKey(pem: string): KeyObject | null {
  let k = publicKeys.get(pem);
  if (k === undefined) {
    k = readPublicKey(pem);
    if (publicKeys.size > 10_000) publicKeys.clear();
    publicKeys.set(pem, k);
  }
  return k;
}
import { parsePayType, unsupportedPayType } from '../../domain/trade.js';
import { decodeUtf8 } from '../../formats/xml.js';
import { BizReader, parseBizContent } from './biz.js';
import { checkReturnUrlParams } from './return-url.js';
import {
  GatewayCode,
  codeOf,
  errorBiz,
  money,
  signedAnswer,
  unsignedAnswer,
  type AnswerEcho,
} from './envelope.js';
import { subFen, ZERO_FEN } from '../../domain/money.js';
import { ENVELOPE_PARAMS, GATEWAY_CONTRACT, MEDICARE_PAYMENT_TYPES } from './contract.js';
import { countRequest } from '../../metrics.js';

export const MAX_GATEWAY_BYTES = 64 * 1024;

type MethodHandler = (
  deps: ServiceDeps,
  app: App,
  biz: BizReader,
  signType: SignType,
  /** Only for the methods in NONCE_WITH_FIRST_WRITE: the request's nonce, not stored yet. */
  nonce: GatewayNonce,
) => Promise<Record<string, unknown>>;

/**
 * Methods whose first write stores the request's nonce in the same statement (one round trip less). For every
 * other method the nonce is stored before the method runs. If such a method fails before its write, the nonce
 * is stored then, and a replay is still answered as a replay.
 */
const NONCE_WITH_FIRST_WRITE = new Set(['lc.trade.h5.pay']);

const isv = (code: string, kind: 'invalid' | 'auth', zh: string, en: string) =>
  new HospayError(code, kind, zh, en);

export const GatewayErrors = {
  missing: (param: string) =>
    isv(
      `isv.missing-${param.replace(/_/g, '-')}`,
      'invalid',
      `缺少公共参数 ${param}`,
      `the common parameter ${param} is missing`,
    ),
  repeated: (param: string) =>
    isv(
      'isv.repeated-parameter',
      'invalid',
      `参数 ${param} 重复`,
      `parameter ${param} appears more than once`,
    ),
  contentType: () =>
    isv(
      'isv.invalid-content-type',
      'invalid',
      '请使用 application/x-www-form-urlencoded 表单',
      'send an application/x-www-form-urlencoded form',
    ),
  tooLarge: () =>
    isv(
      'isv.request-too-large',
      'invalid',
      `请求超过 ${MAX_GATEWAY_BYTES / 1024} KB`,
      `the request is larger than ${MAX_GATEWAY_BYTES / 1024} KB`,
    ),
  encoding: () =>
    isv('isv.invalid-encoding', 'invalid', '请求不是有效的 UTF-8', 'the request is not valid UTF-8'),
  appId: () =>
    isv('isv.invalid-app-id', 'auth', 'app_id 无效或应用已停用', 'app_id is unknown or the app is disabled'),
  noKey: () =>
    isv(
      'isv.missing-app-public-key',
      'auth',
      '应用未登记公钥，不能使用网关',
      'the app has no public key registered for the gateway',
    ),
  signType: () =>
    isv(
      'isv.invalid-signature-type',
      'invalid',
      'sign_type 须为 RSA2 或 RSA',
      'sign_type must be RSA2 or RSA',
    ),
  legacySignType: () =>
    isv(
      'isv.invalid-signature-type',
      'invalid',
      'sign_type RSA（SHA1）仅限已开启旧式签名的应用，请使用 RSA2',
      'sign_type RSA (SHA-1) is only for apps with legacy signing turned on; use RSA2',
    ),
  weakKey: () =>
    isv(
      'isv.weak-app-public-key',
      'auth',
      '应用公钥短于 2048 位，仅限已开启旧式签名的应用；请登记 2048 位密钥',
      "the app's public key is shorter than 2048 bits, which only apps with legacy signing may use; register a 2048-bit key",
    ),
  signature: () => isv('isv.invalid-signature', 'invalid', '验签失败', 'the signature does not verify'),
  timestampFormat: () =>
    isv(
      'isv.invalid-timestamp',
      'invalid',
      "timestamp 格式须为 'yyyy-MM-dd HH:mm:ss'",
      "timestamp must be 'yyyy-MM-dd HH:mm:ss'",
    ),
  stale: (minutes: number) =>
    isv(
      'isv.stale-timestamp',
      'invalid',
      `timestamp 与服务器时间相差超过 ${minutes} 分钟`,
      `timestamp is more than ${minutes} minutes from the server's clock`,
    ),
  replay: () =>
    isv('isv.repeated-nonce', 'invalid', 'nonce_str 已使用过（重放）', 'nonce_str was already used (replay)'),
  nonceFormat: () =>
    isv(
      'isv.invalid-nonce',
      'invalid',
      'nonce_str 须为 1～64 位字母数字或 -_',
      'nonce_str must be 1–64 letters, digits, - or _',
    ),
  method: (m: string) =>
    isv(
      'isv.invalid-method',
      'invalid',
      `不支持的接口 ${m.slice(0, 64)}`,
      `unknown method ${m.slice(0, 64)}`,
    ),
};

/** 'yyyy-MM-dd HH:mm:ss' in Asia/Shanghai. */
export function parseGatewayTimestamp(text: string): Date | null {
  const m = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/.exec(text);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  const t = Date.UTC(y, mo - 1, d, h - 8, mi, s);
  const check = new Date(t + 8 * 3_600_000);
  if (
    check.getUTCFullYear() !== y ||
    check.getUTCMonth() !== mo - 1 ||
    check.getUTCDate() !== d ||
    h > 23 ||
    mi > 59 ||
    s > 59
  )
    return null;
  return new Date(t);
}

function tradeBiz(t: Trade): Record<string, unknown> {
  const out: Record<string, unknown> = {
    trade_no: t.channel_trade_no ?? '',
    platform_trade_no: t.trade_no,
    out_trade_no: t.out_trade_no,
    trade_status: t.status,
    total_amount: money(t.total_fen),
    refund_fee: money(t.refunded_fen),
    gmt_payment: t.paid_at ? formatShanghai(t.paid_at) : '',
    payment_type: t.pay_type ?? '',
    buyer_user_id: t.buyer_user_id ?? '',
  };
  if (t.insurance_fen > 0) {
    out['insurance_fee'] = money(t.insurance_fen);
    out['cash_fee'] = money(subFen(t.total_fen, t.insurance_fen));
    out['insurance_refund_fee'] = money(t.insurance_refunded_fen);
  }
  return out;
}

/**
 * A pay method for an order that is already paid: 40004 TRADE_HAS_SUCCESS, as the spec's samples, with the paid
 * trade (trade_status, trade_no, total_amount, gmt_payment, ...) so the HIS records it and never charges again.
 */
async function answerPaidOrder<T>(pay: () => Promise<T>): Promise<T> {
  try {
    return await pay();
  } catch (e) {
    if (e instanceof TradeAlreadyPaid) throw new BizError(e, tradeBiz(e.trade));
    throw e;
  }
}

/** The gateway's methods (spec chapter 6), by name. A new method is one more entry. */
export const GATEWAY_METHODS: Record<string, MethodHandler> = {
  async 'lc.trade.h5.pay'(deps, app, b, signType, nonce) {
    const cmd = {
      app,
      outTradeNo: b.req('out_trade_no'),
      amountFen: b.amountField('total_amount'),
      subject: b.req('subject'),
      body: b.opt('body'),
      timeoutExpress: b.opt('timeout_express'),
      returnUrl: b.urlField('return_url'),
      notifyUrl: b.urlField('notify_url'),
      orderType: b.orderTypeField('order_type'),
      extra: {
        sign_type: signType,
        disable_pay_channels: b.opt('disable_pay_channels'),
        business_params: b.jsonField('business_params'),
        agreement_sign_params: b.jsonField('agreement_sign_params'),
        // hospay's extension: the payer's WeChat openid, known to the HIS (its own official account): the
        // cashier inside WeChat then orders at once, without the OAuth round trip (docs/gateway.md).
        ...payerIdFields(b),
      },
      nonce,
    };
    checkReturnUrlParams('return_url', cmd.returnUrl);
    const r = await answerPaidOrder(() => h5Pay(deps, cmd));
    return { out_trade_no: r.trade.out_trade_no, platform_trade_no: r.trade.trade_no, goto_url: r.gotoUrl };
  },

  async 'lc.trade.query'(deps, app, b) {
    return tradeBiz(await queryTrade(deps, app, b.req('out_trade_no')));
  },

  async 'lc.trade.cancel'(deps, app, b) {
    const outTradeNo = b.req('out_trade_no');
    b.opt('operator_id');
    b.opt('terminal_id');
    const r = await cancelTrade(deps, app, outTradeNo);
    const base = {
      trade_no: r.trade?.channel_trade_no ?? '',
      platform_trade_no: r.trade?.trade_no ?? '',
      out_trade_no: outTradeNo,
    };
    if (r.ok) return { ...base, retry_flag: 'N', action: r.action, trade_status: r.trade.status };
    throw new BizError(r.error, { ...base, retry_flag: r.retry ? 'Y' : 'N', action: '' });
  },

  async 'lc.trade.refund'(deps, app, b) {
    const r = await refundTrade(deps, {
      app,
      outTradeNo: b.req('out_trade_no'),
      tradeNo: b.opt('trade_no'),
      amountFen: b.amountField('refund_amount'),
      outRequestNo: b.req('out_request_no'),
      reason: b.opt('refund_reason'),
      terminalId: b.opt('terminal_id'),
    });
    return {
      trade_no: r.trade.channel_trade_no ?? '',
      platform_trade_no: r.trade.trade_no,
      out_trade_no: r.trade.out_trade_no,
      out_request_no: r.refund.out_request_no,
      refund_amount: money(r.refund.amount_fen),
      refund_fee: money(r.trade.refunded_fen),
      fund_change: r.fundChange ? 'Y' : 'N',
      trade_status: r.trade.status,
    };
  },
};

function paymentType(b: BizReader): string {
  const v = b.req('payment_type').toLowerCase();
  if (!(MEDICARE_PAYMENT_TYPES as readonly string[]).includes(v)) {
    throw Errors.invalidField(
      'payment_type',
      '须为 alipay、weixin、unionpay、eshimin 或 elecny',
      'must be alipay, weixin, unionpay, eshimin or elecny',
    );
  }
  return v;
}

/**
 * hospay's extension to lc.trade.h5.pay and lc.ssc.trade.pay: the payer's WeChat openid (under the merchant's
 * AppID, or a service provider's sp_appid) and sub_openid (under the sub-merchant's sub_appid), each at most 128
 * of [A-Za-z0-9_-]. Kept with the trade (its extra, part of what an idempotent repeat compares).
 */
function payerIdFields(b: BizReader): { openid?: string; sub_openid?: string } {
  const openid = b.opt('openid');
  const subOpenid = b.opt('sub_openid');
  return { ...(openid ? { openid } : {}), ...(subOpenid ? { sub_openid: subOpenid } : {}) };
}

/** ID numbers are kept masked: 4401**********123X. */
function maskIdCard(no: string): string {
  return `${no.slice(0, 4)}${'*'.repeat(Math.max(no.length - 8, 0))}${no.slice(-4)}`;
}

Object.assign(GATEWAY_METHODS, {
  /** Spec 6.5: auth_code → pay_auth_no (national), qr_code, city_code, card_info. */
  async 'lc.ssc.user.token'(deps: ServiceDeps, app: App, b: BizReader) {
    const type = paymentType(b);
    const alipay = type === 'alipay';
    // Every field is checked before the single-use auth_code is spent.
    b.opt('kinsfolk_card_no');
    b.opt('kinsfolk_name');
    b.opt('third_open_id');
    const userId = b.req('user_id');
    const authCode = b.req('auth_code');
    const fields = {
      patientName: b.reqWhen('patient_name', alipay),
      patientCardNo: b.reqWhen('patient_card_no', alipay),
      bizCityCode: b.reqWhen('biz_city_code', alipay),
      sscInsType: b.reqWhen('ssc_ins_type', alipay),
    };
    const r = await userToken(deps, {
      app,
      userId,
      paymentType: type,
      authCode,
      ...fields,
    });
    return { qr_code: r.qrCode, city_code: r.cityCode, card_info: r.cardInfo, pay_auth_no: r.payAuthNo };
  },

  /** Spec 6.6: mixed payment, insurance part + cash part. */
  async 'lc.ssc.trade.pay'(deps: ServiceDeps, app: App, b: BizReader, signType: SignType) {
    const type = paymentType(b);
    const unsupported = unsupportedPayType(type);
    if (unsupported) throw Errors.payTypeNotSupported(unsupported);
    const payType = parsePayType(type);
    if (!payType) throw Errors.payTypeNotEnabled(type);
    const serialNo = b.opt('ssc_serial_no');
    const requestContent = b.opt('request_content');
    if (type === 'alipay' && !serialNo && !requestContent) throw Errors.missingField('ssc_serial_no');
    const cardNo = b.req('patient_card_no');
    const returnUrl = b.urlField('return_url') ?? '';
    checkReturnUrlParams('return_url', returnUrl);
    const totalFen = b.amountField('total_amount');
    // hospay's extension: item-level fee details for the centre's fee upload (docs/gateway.md, fee_details).
    const feeDetailsText = b.jsonField('fee_details');
    const feeDetails = feeDetailsText === undefined ? undefined : readFeeDetails(feeDetailsText, totalFen);
    const sscCmd: SscTradePayCommand = {
      app,
      outTradeNo: b.req('out_trade_no'),
      sscScene: b.req('ssc_scene'),
      subject: b.req('subject'),
      notifyUrl: b.urlField('notify_url') ?? '',
      returnUrl,
      totalFen,
      cashFen: b.amountOrZeroField('cash_fee') ?? ZERO_FEN,
      insuranceFen: b.amountOrZeroField('insurance_fee') ?? ZERO_FEN,
      reducedFen: b.amountOrZeroField('reduced_fee') ?? ZERO_FEN,
      paymentType: payType,
      userId: b.req('user_id'),
      payAuthNo: b.req('pay_auth_no'),
      patientName: b.req('patient_name'),
      operatorId: b.opt('operator_id'),
      timeoutExpress: b.opt('timeout_express'),
      body: b.opt('body'),
      serialNo,
      feeDetails,
      medical: {
        ssc_scene: b.req('ssc_scene'),
        org_no: b.req('org_no'),
        org_name: b.req('org_name'),
        city_code: b.req('city_code'),
        ssc_ins_type: b.req('ssc_ins_type'),
        ssc_serial_no: serialNo,
        ssc_bill_no: b.opt('ssc_bill_no'),
        credit_org: b.opt('credit_org'),
        pay_scene: b.opt('pay_scene'),
        patient_card_no: maskIdCard(cardNo),
        sign_type: signType,
        ...payerIdFields(b),
      },
    };
    const r = await answerPaidOrder(() => sscTradePay(deps, sscCmd));
    // The spec's paystr keys, in its order, for a JSSDK pay call at the patient's channel. For weixin with the
    // payer's openid (openid / sub_openid), the JSAPI order for the cash part is made now and the keys carry its
    // getBrandWCPayRequest parameters (prepayId, appId, package, noncestr, timestamp, sign = paySign, and
    // signType); partnerId stays "" (JSAPI has none). Otherwise hospay opens the channel trade when the patient
    // reaches goto_url, so those are "" (docs/gateway.md, "paystr"). pay_url (= goto_url) is hospay's extension.
    const order = payType === 'weixin' ? await inAppOrderForHis(deps, app, r.trade) : null;
    const bridge = order?.bridge ?? {};
    const pkg = bridge['package'] ?? '';
    const paystr = JSON.stringify({
      timestamp: bridge['timeStamp'] ?? String(Math.floor(deps.clock.now().getTime() / 1000)),
      partnerId: bridge['partnerId'] ?? '',
      prepayId: /^prepay_id=(.+)$/.exec(pkg)?.[1] ?? '',
      appId: bridge['appId'] ?? '',
      package: pkg,
      noncestr: bridge['nonceStr'] ?? randomBytes(16).toString('hex').toUpperCase(),
      sign: bridge['paySign'] ?? '',
      ...(order ? { signType: bridge['signType'] ?? '' } : {}),
      pay_url: r.gotoUrl,
    });
    return {
      out_trade_no: r.trade.out_trade_no,
      platform_trade_no: r.trade.trade_no,
      trade_status: r.trade.status,
      goto_url: r.gotoUrl,
      paystr,
    };
  },

  /**
   * The insurance part refunded through the medical-insurance centre (insurance_refund_mode CENTRE, the default),
   * or only recorded when the hospital refunded it through the national process (RECORD: no money moves here).
   */
  async 'lc.ssc.insurance.refund'(deps: ServiceDeps, app: App, b: BizReader) {
    const mode = (b.opt('insurance_refund_mode') ?? 'CENTRE') as InsuranceRefundMode;
    const r = await recordInsuranceRefund(deps, {
      mode,
      app,
      outTradeNo: b.req('out_trade_no'),
      outRequestNo: b.req('out_request_no'),
      amountFen: b.amountField('insurance_refund_fee'),
    });
    return {
      out_trade_no: r.trade.out_trade_no,
      platform_trade_no: r.trade.trade_no,
      insurance_fee: money(r.trade.insurance_fen),
      insurance_refund_fee: money(r.trade.insurance_refunded_fen),
      recorded: r.recorded ? 'Y' : 'N',
      insurance_refund_mode: r.via,
      ...(r.refundNo !== null ? { insurance_refund_no: r.refundNo } : {}),
    };
  },
} satisfies Record<string, MethodHandler>);

/** A refusal that still carries result fields (cancel's retry_flag). */
class BizError extends Error {
  constructor(
    readonly error: HospayError,
    readonly fields: Record<string, unknown>,
  ) {
    super(error.message);
  }
}

/** The common parameters, all required, in the order they are checked (contract.ts). */
const REQUIRED = Object.keys(ENVELOPE_PARAMS);

function readForm(req: FastifyRequest): Record<string, string> {
  const body = req.body;
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (type !== 'application/x-www-form-urlencoded') throw GatewayErrors.contentType();
  if (!Buffer.isBuffer(body) || body.length === 0) throw GatewayErrors.missing('app_id');
  let text: string;
  try {
    text = decodeUtf8(body);
  } catch {
    throw GatewayErrors.encoding();
  }
  const form = new URLSearchParams(text);
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of form) {
    if (Object.hasOwn(params, k)) throw GatewayErrors.repeated(k.slice(0, 32));
    if (v.includes('\ufffd') || v.includes('\u0000')) throw GatewayErrors.encoding();
    params[k] = v;
  }
  return params;
}

/** How far a request got in authentication: what the answer may echo and whether it may be signed. */
interface AuthProgress {
  /** The app named by app_id, once it was found (a real, active app). */
  app?: App;
  /** The request's signature verified with that app's key: the caller is the app. */
  verified: boolean;
}

const NONCE_FORMAT = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The request values an answer may echo: only those checked to be well-formed (the app found by app_id, a
 * listed method, a nonce of the documented format). Everything else is echoed as "".
 */
function echoOf(p: Record<string, string>, progress: AuthProgress): AnswerEcho {
  const method = p['method'] ?? '';
  const nonce = p['nonce_str'] ?? '';
  return {
    app_id: progress.app?.id,
    method: Object.hasOwn(GATEWAY_METHODS, method) ? method : undefined,
    nonce_str: NONCE_FORMAT.test(nonce) ? nonce : undefined,
  };
}

/**
 * Who is calling, and may they: the app, its key, the signature over every parameter, a fresh timestamp and an
 * unused nonce — in that order. A refused request changes nothing (the nonce is stored only after all else).
 * `progress` records how far it got: answers before the signature verifies are not signed.
 */
async function authenticate(
  deps: ServiceDeps,
  p: Record<string, string>,
  deferNonce: boolean,
  progress: AuthProgress,
): Promise<{ app: App; signType: SignType; nonce: GatewayNonce }> {
  for (const name of REQUIRED) if (!p[name]) throw GatewayErrors.missing(name);
  const appId = p['app_id'] ?? '';
  const app = appId.length <= 64 ? await deps.apps.getActive(appId) : undefined;
  if (!app) throw GatewayErrors.appId();
  progress.app = app;
  if (!app.public_key) throw GatewayErrors.noKey();
  const signType = parseSignType(p['sign_type']);
  if (!signType) throw GatewayErrors.signType();
  const key = appPublicKey(app.public_key);
  // SHA-1 and short keys only for apps that chose legacy signing (the spec's old samples use them).
  if (signType === 'RSA' && !app.legacy_sign) throw GatewayErrors.legacySignType();
  if (key && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048 && !app.legacy_sign)
    throw GatewayErrors.weakKey();
  // On this thread: cheaper than a round trip through the thread pool (crypto/signing.ts verifyContent).
  if (!key || !verifyParams(p, key, signType)) throw GatewayErrors.signature();
  progress.verified = true;
  const ts = parseGatewayTimestamp(p['timestamp'] ?? '');
  if (!ts) throw GatewayErrors.timestampFormat();
  const now = deps.clock.now();
  const skew = deps.config.gateway.clockSkewMs;
  if (Math.abs(now.getTime() - ts.getTime()) > skew) throw GatewayErrors.stale(Math.round(skew / 60_000));
  const nonce = p['nonce_str'] ?? '';
  if (!NONCE_FORMAT.test(nonce)) throw GatewayErrors.nonceFormat();
  const claim: GatewayNonce = {
    appId: app.id,
    nonce,
    expiresAt: new Date(now.getTime() + 2 * skew),
    consumed: false,
  };
  if (!deferNonce) await storeNonce(deps, claim);
  return { app, signType, nonce: claim };
}

/** Stores a request's nonce; a nonce used before is a replay. */
async function storeNonce(deps: ServiceDeps, n: GatewayNonce): Promise<void> {
  if (!(await deps.nonces.claim(n))) throw GatewayErrors.replay();
}

export async function registerGatewayRoutes(app: FastifyInstance, deps: ServiceDeps): Promise<void> {
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_GATEWAY_BYTES }, (_req, body, done) =>
      done(null, body),
    );

    /**
     * The answer: signed with the platform key once the caller's signature verified, unsigned before (the
     * platform never signs for a caller it does not know). Either way it echoes only well-formed values.
     */
    const send = async (
      reply: FastifyReply,
      p: Record<string, string>,
      progress: AuthProgress,
      signType: SignType,
      code: GatewayCode,
      biz: Record<string, unknown>,
    ) => {
      const echo = echoOf(p, progress);
      const now = deps.clock.now();
      const a = progress.verified
        ? await signedAnswer(echo, code, biz, (await deps.keys.active()).privateKey, signType, now)
        : unsignedAnswer(echo, code, biz, now);
      return reply.code(200).type('application/json; charset=utf-8').send(a.body);
    };

    scope.setErrorHandler(async (err: Error & { code?: string }, req, reply) => {
      const error =
        err.code === 'FST_ERR_CTP_BODY_TOO_LARGE'
          ? GatewayErrors.tooLarge()
          : err.code?.startsWith('FST_ERR_CTP')
            ? GatewayErrors.contentType()
            : Errors.systemError();
      if (error.kind === 'system')
        req.log.error({ err: err.message, code: err.code }, 'gateway: unexpected error');
      return send(reply, {}, { verified: false }, 'RSA2', codeOf(error), errorBiz(error));
    });

    scope.post('/gateway', async (req, reply) => {
      let p: Record<string, string> = {};
      let signType: SignType = 'RSA2';
      let appId: string | undefined;
      let nonce: GatewayNonce | undefined;
      const progress: AuthProgress = { verified: false };
      try {
        p = readForm(req);
        signType = parseSignType(p['sign_type']) ?? 'RSA2';
        const method = p['method'] ?? '';
        const auth = await authenticate(deps, p, NONCE_WITH_FIRST_WRITE.has(method), progress);
        appId = auth.app.id;
        nonce = auth.nonce;
        const handler = Object.hasOwn(GATEWAY_METHODS, method) ? GATEWAY_METHODS[method] : undefined;
        if (!handler) throw GatewayErrors.method(method);
        const biz = new BizReader(parseBizContent(p['biz_content'] ?? ''), GATEWAY_CONTRACT[method]?.fields);
        const result = await handler(deps, auth.app, biz, auth.signType, auth.nonce);
        if (!nonce.consumed) await storeNonce(deps, nonce);
        req.log.info({ method, app: appId, code: GatewayCode.SUCCESS }, 'gateway call');
        countRequest('gateway', method, 'SUCCESS');
        return send(reply, p, progress, signType, GatewayCode.SUCCESS, {
          sub_code: '',
          sub_msg: '',
          ...result,
        });
      } catch (caught) {
        let e = caught instanceof NonceReplayError ? GatewayErrors.replay() : caught;
        // A method that stores its nonce with its first write and failed before it: a replay stays a replay.
        if (nonce && !nonce.consumed) {
          try {
            await storeNonce(deps, nonce);
          } catch (replay) {
            e = replay;
          }
        }
        const fields = e instanceof BizError ? e.fields : {};
        const error = e instanceof BizError ? e.error : e instanceof HospayError ? e : Errors.systemError();
        if (!(e instanceof HospayError) && !(e instanceof BizError)) {
          req.log.error(
            { err: e instanceof Error ? e.message : String(e), method: p['method'] },
            'gateway method failed',
          );
        }
        req.log.info({ method: p['method']?.slice(0, 64), app: appId, subCode: error.code }, 'gateway call');
        const m = p['method'] ?? '';
        countRequest('gateway', Object.hasOwn(GATEWAY_METHODS, m) ? m : 'unknown', error.code);
        return send(reply, p, progress, signType, codeOf(error), errorBiz(error, fields));
      }
    });
  });
}
