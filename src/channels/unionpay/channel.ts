import crypto, { X509Certificate, type KeyObject } from 'node:crypto';
import type {
  BarcodePayInput,
  CancelOutcome,
  Channel,
  ChannelContext,
  CloseOutcome,
  NotifyAck,
  NotifyParse,
  PaidInfo,
  PayOutcome,
  PrecreateOutcome,
  QueryOutcome,
  RefundInput,
  RefundOutcome,
  TradeRef,
} from '../channel.js';
import type { ChannelDeps } from '../definition.js';
import { HttpError, excerpt } from '../http.js';
import {
  ACP_VERSION,
  SIGN_METHOD_RSA,
  beijingDaysBetween,
  cancelOrderId,
  certIdOf,
  checkSigningCert,
  consumeOrderId,
  dayTxnTime,
  encodeForm,
  exactTxnTime,
  maskAccount,
  parseAnswer,
  parseForm,
  redactFields,
  refundOrderId,
  signFields,
  tradeTime,
  verifyFields,
  type VerifyChain,
} from './acp.js';

/**
 * The UnionPay QuickPass channel: payment-code consume (被扫), query, refund and same-day cancel through
 * UnionPay's online gateway (acp 5.1.0, RSA certificates). Stateless: an order is found again from what the
 * platform stored (order id derived from the outTradeNo; txnTime = the trade's created_at, or for a refund the
 * refund's created_at, to the second in Beijing time), and without those from the earlier convention (txnTime =
 * 00:00:00 of the Beijing day it was sent; see docs/channels/unionpay.md). Every answer's signPubKeyCert is
 * checked against the app's root and middle certificates and owner before its signature, and only then is
 * respCode read; anything unclear is unknown.
 */

export const UNIONPAY_DEFAULTS = {
  expected_cn: '中国银联股份有限公司',
  gateway_url: 'https://gateway.95516.com',
  timeout_ms: '10000',
  access_type: '0',
  lookback_days: '90',
} as const;

const BACK_PATH = '/gateway/api/backTransReq.do';
const QUERY_PATH = '/gateway/api/queryTrans.do';

/** respCode of a synchronous answer that says nothing final: query later. */
const UNCLEAR = new Set(['02', '03', '04', '05', '06', '12', '37']);
/** origRespCode of a queried order that is still being processed. */
const PROCESSING = new Set(['03', '04', '05']);

interface Config {
  merId: string;
  key: KeyObject;
  certId: string;
  chain: VerifyChain;
  gateway: string;
  timeoutMs: number;
  accessType: string;
  acqInsCode: string;
  termId: string;
  lookbackDays: number;
  /** signPubKeyCerts already checked against the chain (PEM → key and validity). */
  trusted: Map<string, { key: KeyObject; from: number; to: number }>;
}

type Answer = { kind: 'answer'; fields: Record<string, string> } | { kind: 'unknown'; reason: string };
type Order =
  | { kind: 'found'; fields: Record<string, string>; txnTime: string }
  | { kind: 'not_found' }
  | { kind: 'unknown'; reason: string };
type OrderState = 'success' | 'processing' | 'failed' | 'unclear';

/** The exact txnTime of a stored instant, or null when none was given. */
function storedTxnTime(at: Date | undefined): string | null {
  return at instanceof Date && Number.isFinite(at.getTime()) ? exactTxnTime(at) : null;
}

/** A stored channel trade number that can be UnionPay's queryId of the payment. */
const QUERY_ID = /^[0-9A-Za-z]{6,64}$/;

function orderState(f: Readonly<Record<string, string>>): OrderState {
  const c = f['origRespCode'] ?? '';
  if (c === '00' || c === 'A6') return 'success';
  if (PROCESSING.has(c)) return 'processing';
  if (/^[0-9A-Z]{2}$/.test(c)) return 'failed';
  return 'unclear';
}

const ACK_OK: NotifyAck = { status: 200, contentType: 'text/plain; charset=utf-8', body: 'ok' };
const ACK_RETRY: NotifyAck = { status: 400, contentType: 'text/plain; charset=utf-8', body: 'fail' };

/** A provider's text as kept in a record when it could not be read: short, long digit runs hidden. */
function scrub(text: string): string {
  return excerpt(
    text
      .replace(/-----BEGIN[\s\S]*?-----END[^-]*-----/g, '[PEM]')
      .replace(/(signature|qrNo)=[^&]*/g, '$1=***')
      .replace(/\d{12,}/g, '***'),
    500,
  );
}

export class UnionPayChannel implements Channel {
  readonly id = 'unionpay';
  readonly payTypes = ['unionpay'] as const;
  private readonly configs = new Map<string, Config>();

  constructor(private readonly deps: Pick<ChannelDeps, 'http' | 'clock'>) {}

  // ---- configuration ---------------------------------------------------------------------------------

  private config(ctx: ChannelContext): Config | { error: string } {
    const m = ctx.merchant;
    const cacheKey = crypto
      .createHash('sha256')
      .update(JSON.stringify(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : 1))))
      .digest('hex');
    const hit = this.configs.get(cacheKey);
    if (hit) return hit;
    const v = (name: keyof typeof UNIONPAY_DEFAULTS | string): string =>
      m[name] || (UNIONPAY_DEFAULTS as Record<string, string>)[name] || '';
    try {
      const merId = v('mer_id');
      if (!/^\d{15}$/.test(merId)) return { error: 'mer_id' };
      const key = crypto.createPrivateKey(v('sign_key_pem'));
      const cert = new X509Certificate(v('sign_cert_pem'));
      const timeoutMs = Number(v('timeout_ms'));
      const lookbackDays = Number(v('lookback_days'));
      const cfg: Config = {
        merId,
        key,
        certId: certIdOf(cert),
        chain: {
          root: new X509Certificate(v('root_cert')),
          middle: new X509Certificate(v('middle_cert')),
          expectedCn: v('expected_cn'),
        },
        gateway: v('gateway_url').replace(/\/+$/, ''),
        timeoutMs: Number.isInteger(timeoutMs) && timeoutMs >= 100 ? Math.min(timeoutMs, 60_000) : 10_000,
        accessType: v('access_type'),
        acqInsCode: v('acq_ins_code'),
        termId: v('term_id'),
        lookbackDays: Number.isInteger(lookbackDays) && lookbackDays >= 1 ? Math.min(lookbackDays, 400) : 90,
        trusted: new Map(),
      };
      new URL(cfg.gateway);
      if (this.configs.size >= 32) this.configs.clear();
      this.configs.set(cacheKey, cfg);
      return cfg;
    } catch {
      return { error: 'unreadable key, certificate or gateway_url' };
    }
  }

  // ---- one exchange ------------------------------------------------------------------------------------

  private base(
    cfg: Config,
    txnType: string,
    txnSubType: string,
    orderId: string,
    txnTime: string,
  ): Record<string, string> {
    const f: Record<string, string> = {
      version: ACP_VERSION,
      encoding: 'UTF-8',
      signMethod: SIGN_METHOD_RSA,
      certId: cfg.certId,
      txnType,
      txnSubType,
      bizType: '000000',
      accessType: cfg.accessType,
      merId: cfg.merId,
      orderId,
      txnTime,
    };
    if (cfg.accessType === '1' && cfg.acqInsCode) f['acqInsCode'] = cfg.acqInsCode;
    return f;
  }

  private trust(
    cfg: Config,
    pem: string,
    now: Date,
  ): { ok: true; key: KeyObject } | { ok: false; reason: string } {
    const hit = cfg.trusted.get(pem);
    if (hit && hit.from <= now.getTime() && now.getTime() <= hit.to) return { ok: true, key: hit.key };
    const r = checkSigningCert(pem, cfg.chain, now);
    if (r.ok) {
      const c = new X509Certificate(pem);
      if (cfg.trusted.size >= 16) cfg.trusted.clear();
      cfg.trusted.set(pem, {
        key: r.key,
        from: new Date(c.validFrom).getTime(),
        to: new Date(c.validTo).getTime(),
      });
    }
    return r;
  }

  /** Why a signed field set (answer or notice) is not to be believed, or null. */
  private distrust(cfg: Config, f: Readonly<Record<string, string>>): string | null {
    if (f['signMethod'] !== SIGN_METHOD_RSA)
      return `not RSA-signed (signMethod ${f['signMethod'] ?? 'missing'})`;
    if (f['version'] !== undefined && f['version'] !== ACP_VERSION) return `version ${f['version']}`;
    const pem = f['signPubKeyCert'];
    if (!pem) return 'no signPubKeyCert';
    const t = this.trust(cfg, pem, this.deps.clock.now());
    if (!t.ok) return t.reason;
    if (!verifyFields(f, t.key)) return 'signature invalid';
    if (f['merId'] !== undefined && f['merId'] !== cfg.merId) return 'for another merchant';
    return null;
  }

  /**
   * Signs and sends one request, reads and verifies the answer. Only a verified answer about this order
   * comes back as an answer; everything else (timeout, HTTP error, unreadable, unverifiable) is unknown.
   */
  private async exchange(
    ctx: ChannelContext,
    cfg: Config,
    operation: string,
    path: string,
    outTradeNo: string,
    fields: Record<string, string>,
  ): Promise<Answer> {
    const body = { ...fields };
    body['signature'] = signFields(body, cfg.key);
    const started = performance.now();
    let status: number | undefined;
    let text = '';
    let parsed: Record<string, string> | null = null;
    let result: Answer;
    try {
      const res = await this.deps.http({
        method: 'POST',
        url: `${cfg.gateway}${path}`,
        headers: { 'content-type': 'application/x-www-form-urlencoded;charset=UTF-8' },
        body: encodeForm(body),
        timeoutMs: cfg.timeoutMs,
        maxBytes: 1024 * 1024,
      });
      status = res.status;
      text = res.body.toString('utf8');
      parsed = res.status === 200 ? parseAnswer(text) : null;
      const why =
        res.status !== 200
          ? `HTTP ${res.status}`
          : !parsed
            ? 'unparseable answer'
            : (this.distrust(cfg, parsed) ??
              ((parsed['orderId'] !== undefined && parsed['orderId'] !== fields['orderId']) ||
              (parsed['txnTime'] !== undefined && parsed['txnTime'] !== fields['txnTime'])
                ? 'answer about another order'
                : null));
      result =
        why || !parsed
          ? { kind: 'unknown', reason: why ?? 'unparseable answer' }
          : { kind: 'answer', fields: parsed };
    } catch (e) {
      result = {
        kind: 'unknown',
        reason: e instanceof HttpError ? `${e.kind}: ${e.message}` : `error: ${(e as Error).message}`,
      };
    }
    const a = result.kind === 'answer' ? result.fields : undefined;
    ctx.record({
      operation,
      outTradeNo,
      httpStatus: status,
      latencyMs: Math.round(performance.now() - started),
      outcome: a
        ? [`respCode ${a['respCode'] ?? '-'}`, a['origRespCode'] ? `origRespCode ${a['origRespCode']}` : '']
            .filter(Boolean)
            .join(' ') + (a['respMsg'] ? ` ${a['respMsg']}` : '')
        : `unknown: ${result.kind === 'unknown' ? result.reason : ''}`,
      request: excerpt(redactFields(body)),
      response: parsed ? excerpt(redactFields(parsed)) : text ? scrub(text) : undefined,
      error: result.kind === 'unknown' ? result.reason : undefined,
    });
    return result;
  }

  /** Asks for one order (order id + the day it was sent). */
  private async queryOrder(
    ctx: ChannelContext,
    cfg: Config,
    outTradeNo: string,
    orderId: string,
    txnTime: string,
  ): Promise<Order> {
    const a = await this.exchange(
      ctx,
      cfg,
      'unionpay.query',
      QUERY_PATH,
      outTradeNo,
      this.base(cfg, '00', '00', orderId, txnTime),
    );
    if (a.kind === 'unknown') return a;
    const rc = a.fields['respCode'] ?? '';
    if (rc === '00') {
      return a.fields['orderId'] === orderId
        ? { kind: 'found', fields: a.fields, txnTime }
        : { kind: 'unknown', reason: 'query answer does not name the order' };
    }
    if (rc === '34') return { kind: 'not_found' };
    return { kind: 'unknown', reason: `query answered respCode ${rc || 'missing'}` };
  }

  /**
   * Finds an order by the txnTimes it may have been sent with, each asked once, in order: `exact` (the stored
   * time this version sends orders with) first, then the midnights of the earlier convention.
   */
  private async findOrder(
    ctx: ChannelContext,
    cfg: Config,
    outTradeNo: string,
    orderId: string,
    exact: string | null,
    midnights: readonly string[],
  ): Promise<Order> {
    const asked = new Set<string>();
    for (const txnTime of exact === null ? midnights : [exact, ...midnights]) {
      if (asked.has(txnTime)) continue;
      asked.add(txnTime);
      const o = await this.queryOrder(ctx, cfg, outTradeNo, orderId, txnTime);
      if (o.kind !== 'not_found') return o;
    }
    return { kind: 'not_found' };
  }

  /** The midnight txnTimes of the last `days` Beijing days, today first. */
  private midnights(days: number): string[] {
    const now = this.deps.clock.now();
    return Array.from({ length: Math.max(days, 0) }, (_, back) => dayTxnTime(now, back));
  }

  /** Finds an order sent on one of the last `days` Beijing days (today first), by the midnight convention. */
  private locate(
    ctx: ChannelContext,
    cfg: Config,
    outTradeNo: string,
    orderId: string,
    days: number,
  ): Promise<Order> {
    return this.findOrder(ctx, cfg, outTradeNo, orderId, null, this.midnights(days));
  }

  /**
   * Finds the payment order. Given the trade's creation time: one exact question (the consume was sent with it);
   * only if UnionPay has no such order, the midnight convention of the previous version (trades sent before the
   * upgrade): the creation day (and the next, for a trade created on the stroke of midnight), then the last
   * `days` days. Without it: the last `days` days.
   */
  private findPayment(ctx: ChannelContext, cfg: Config, ref: TradeRef, days: number): Promise<Order> {
    const exact = storedTxnTime(ref.createdAt);
    const created =
      exact !== null && ref.createdAt
        ? [dayTxnTime(ref.createdAt), dayTxnTime(new Date(ref.createdAt.getTime() + 60_000))]
        : [];
    const out = ref.outTradeNo;
    return this.findOrder(ctx, cfg, out, consumeOrderId(out), exact, [...created, ...this.midnights(days)]);
  }

  private paidInfo(f: Readonly<Record<string, string>>): PaidInfo {
    const acc = f['accNo'];
    return {
      channelTradeNo: f['queryId'] ?? '',
      paidAt: tradeTime(f, this.deps.clock.now()),
      buyerLogonId: acc ? maskAccount(acc) : undefined,
    };
  }

  private static declined(f: Readonly<Record<string, string>>, codeField: 'respCode' | 'origRespCode') {
    const code = f[codeField] ?? '';
    const msg = (codeField === 'respCode' ? f['respMsg'] : f['origRespMsg']) ?? '';
    return {
      code: `UNIONPAY_${code}`,
      zh: msg || `银联拒绝（应答码 ${code}）`,
      en: `UnionPay refused it (${codeField} ${code})`,
    };
  }

  // ---- operations ----------------------------------------------------------------------------------------

  async barcodePay(ctx: ChannelContext, input: BarcodePayInput): Promise<PayOutcome> {
    const cfg = this.config(ctx);
    if ('error' in cfg)
      return {
        kind: 'declined',
        code: 'CHANNEL_CONFIG_INVALID',
        zh: `银联渠道配置不可用：${cfg.error}`,
        en: `UnionPay configuration unusable: ${cfg.error}`,
      };
    if (input.payType !== 'unionpay')
      return {
        kind: 'declined',
        code: 'PAY_TYPE_UNSUPPORTED',
        zh: '银联渠道只收云闪付',
        en: 'the UnionPay channel takes UnionPay only',
      };
    const orderId = consumeOrderId(input.outTradeNo);
    // The trade's creation second (stored, so every later call finds the order in one question).
    const txnTime = storedTxnTime(input.createdAt) ?? dayTxnTime(this.deps.clock.now());
    const fields: Record<string, string> = {
      ...this.base(cfg, '01', '06', orderId, txnTime),
      channelType: '08',
      txnAmt: String(input.amountFen),
      currencyCode: '156',
      qrNo: input.authCode,
      backUrl: ctx.notifyUrl,
      reqReserved: input.outTradeNo,
    };
    const termId = /^[A-Za-z0-9]{8}$/.test(input.terminalId ?? '') ? (input.terminalId ?? '') : cfg.termId;
    if (termId) fields['termId'] = termId;
    const a = await this.exchange(ctx, cfg, 'unionpay.consume', BACK_PATH, input.outTradeNo, fields);
    if (a.kind === 'unknown') return a;
    const rc = a.fields['respCode'] ?? '';
    if (rc === '05') return { kind: 'paying', channelTradeNo: a.fields['queryId'] };
    if (UNCLEAR.has(rc) || rc === '')
      return { kind: 'unknown', reason: `consume answered respCode ${rc || 'missing'}` };
    if (rc !== '00') return { kind: 'declined', ...UnionPayChannel.declined(a.fields, 'respCode') };

    // 00 only means accepted: the result is the order's state.
    const q = await this.queryOrder(ctx, cfg, input.outTradeNo, orderId, txnTime);
    if (q.kind !== 'found') return { kind: 'paying', channelTradeNo: a.fields['queryId'] };
    switch (orderState(q.fields)) {
      case 'success':
        if (q.fields['txnAmt'] !== String(input.amountFen) || !q.fields['queryId'])
          return { kind: 'unknown', reason: 'the paid order does not match (amount or queryId)' };
        return { kind: 'paid', ...this.paidInfo(q.fields) };
      case 'failed':
        return { kind: 'declined', ...UnionPayChannel.declined(q.fields, 'origRespCode') };
      default:
        return { kind: 'paying', channelTradeNo: q.fields['queryId'] ?? a.fields['queryId'] };
    }
  }

  precreate(): Promise<PrecreateOutcome> {
    return Promise.resolve({
      kind: 'failed',
      code: 'CHANNEL_UNSUPPORTED',
      zh: '银联渠道不支持二维码下单（仅支持付款码）',
      en: 'the UnionPay channel has no QR precreate (payment codes only)',
      retryable: false,
    });
  }

  async query(ctx: ChannelContext, ref: TradeRef): Promise<QueryOutcome> {
    const cfg = this.config(ctx);
    if ('error' in cfg) return { kind: 'unknown', reason: `configuration: ${cfg.error}` };
    const c = await this.findPayment(ctx, cfg, ref, 2);
    if (c.kind !== 'found') return c;
    switch (orderState(c.fields)) {
      case 'processing':
        return { kind: 'waiting', channelTradeNo: c.fields['queryId'] };
      case 'failed':
        return { kind: 'closed' };
      case 'unclear':
        return { kind: 'unknown', reason: `origRespCode ${c.fields['origRespCode'] ?? 'missing'}` };
      case 'success': {
        if (!c.fields['queryId']) return { kind: 'unknown', reason: 'paid order without queryId' };
        // A consume stays "00" after a cancel: look at our cancel order too.
        const x = await this.queryOrder(ctx, cfg, ref.outTradeNo, cancelOrderId(ref.outTradeNo), c.txnTime);
        if (x.kind === 'unknown') return x;
        if (x.kind === 'found') {
          const s = orderState(x.fields);
          if (s === 'success') return { kind: 'refunded', ...this.paidInfo(c.fields) };
          if (s !== 'failed') return { kind: 'unknown', reason: 'a cancel of this trade is in progress' };
        }
        return { kind: 'paid', ...this.paidInfo(c.fields) };
      }
    }
  }

  async cancel(ctx: ChannelContext, ref: TradeRef): Promise<CancelOutcome> {
    const cfg = this.config(ctx);
    if ('error' in cfg) return { kind: 'retry', reason: `configuration: ${cfg.error}` };
    const out = ref.outTradeNo;
    const c = await this.findPayment(ctx, cfg, ref, 2);
    if (c.kind === 'unknown') return { kind: 'retry', reason: c.reason };
    if (c.kind === 'not_found') return { kind: 'closed' };
    const state = orderState(c.fields);
    if (state === 'failed') return { kind: 'closed' };
    if (state !== 'success') return { kind: 'retry', reason: 'the payment is still being processed' };
    const origQryId = c.fields['queryId'] ?? '';
    const amount = c.fields['txnAmt'] ?? '';
    if (!origQryId || !/^\d+$/.test(amount))
      return { kind: 'retry', reason: 'paid order without queryId or amount' };

    // The cancel order: derived from the trade, sent with the payment's txnTime (query finds it from the trade).
    const cancelId = cancelOrderId(out);
    const seen = await this.queryOrder(ctx, cfg, out, cancelId, c.txnTime);
    if (seen.kind === 'unknown') return { kind: 'retry', reason: seen.reason };
    if (seen.kind === 'found') {
      const s = orderState(seen.fields);
      if (s === 'success') return { kind: 'refunded', ...this.paidInfo(c.fields) };
      if (s === 'failed') return { kind: 'failed', ...UnionPayChannel.declined(seen.fields, 'origRespCode') };
      return { kind: 'retry', reason: 'the cancel is being processed' };
    }
    const a = await this.exchange(ctx, cfg, 'unionpay.cancel', BACK_PATH, out, {
      ...this.base(cfg, '31', '00', cancelId, c.txnTime),
      channelType: '08',
      txnAmt: amount,
      origQryId,
      backUrl: ctx.notifyUrl,
      reqReserved: out,
    });
    if (a.kind === 'unknown') return { kind: 'retry', reason: a.reason };
    const rc = a.fields['respCode'] ?? '';
    if (UNCLEAR.has(rc) || rc === '')
      return { kind: 'retry', reason: `cancel answered respCode ${rc || 'missing'}` };
    if (rc !== '00') return { kind: 'failed', ...UnionPayChannel.declined(a.fields, 'respCode') };
    const done = await this.queryOrder(ctx, cfg, out, cancelId, c.txnTime);
    if (done.kind !== 'found') return { kind: 'retry', reason: 'cancel accepted, result not known yet' };
    const s = orderState(done.fields);
    if (s === 'success') return { kind: 'refunded', ...this.paidInfo(c.fields) };
    if (s === 'failed') return { kind: 'failed', ...UnionPayChannel.declined(done.fields, 'origRespCode') };
    return { kind: 'retry', reason: 'cancel accepted, being processed' };
  }

  /** UnionPay cannot close a payment-code order: it is closed only once UnionPay reports it final. */
  async close(ctx: ChannelContext, ref: TradeRef): Promise<CloseOutcome> {
    const q = await this.query(ctx, ref);
    switch (q.kind) {
      case 'paid':
      case 'refunded':
        return {
          kind: 'paid',
          channelTradeNo: q.channelTradeNo,
          paidAt: q.paidAt,
          buyerLogonId: q.buyerLogonId,
          buyerUserId: q.buyerUserId,
        };
      case 'closed':
      case 'not_found':
        return { kind: 'closed' };
      case 'waiting':
        return { kind: 'retry', reason: 'the payment is still being processed' };
      case 'unknown':
        return { kind: 'retry', reason: q.reason };
    }
  }

  async refund(ctx: ChannelContext, input: RefundInput): Promise<RefundOutcome> {
    const cfg = this.config(ctx);
    if ('error' in cfg) return { kind: 'unknown', reason: `configuration: ${cfg.error}` };
    const out = input.outTradeNo;
    const refundId = refundOrderId(out, input.outRequestNo);
    const settled = (f: Readonly<Record<string, string>>): RefundOutcome => {
      const s = orderState(f);
      if (s === 'success') {
        return f['queryId']
          ? {
              kind: 'success',
              channelRefundNo: f['queryId'],
              refundedAt: tradeTime(f, this.deps.clock.now()),
            }
          : { kind: 'unknown', reason: 'refund without queryId' };
      }
      if (s === 'failed') return { kind: 'failed', ...UnionPayChannel.declined(f, 'origRespCode') };
      return { kind: 'unknown', reason: 'the refund is being processed' };
    };

    // A repeat of a refund request already sent reads its result: no second refund. The refund order is sent
    // with the time the request was first made (stored, the same on every repeat): one exact question finds it
    // however much later the repeat comes. Only if UnionPay has no such order, the midnights from that day to
    // today (a refund first sent by the previous version); without a stored time, today and yesterday.
    const now = this.deps.clock.now();
    const requested = storedTxnTime(input.requestedAt);
    const sinceDays = input.requestedAt ? Math.max(beijingDaysBetween(input.requestedAt, now), 0) + 1 : 2;
    const seen =
      requested !== null
        ? await this.findOrder(
            ctx,
            cfg,
            out,
            refundId,
            requested,
            this.midnights(Math.min(sinceDays, cfg.lookbackDays)),
          )
        : await this.locate(ctx, cfg, out, refundId, 2);
    if (seen.kind === 'unknown') return seen;
    if (seen.kind === 'found') return settled(seen.fields);

    // The payment's queryId: the one stored with the trade, else the payment found at UnionPay.
    let origQryId = input.channelTradeNo ?? '';
    if (!QUERY_ID.test(origQryId)) {
      const c = await this.findPayment(ctx, cfg, input, cfg.lookbackDays);
      if (c.kind === 'unknown') return c;
      if (c.kind === 'not_found')
        return {
          kind: 'failed',
          code: 'UNIONPAY_TRADE_NOT_FOUND',
          zh: `银联在最近 ${cfg.lookbackDays} 天内查无此交易`,
          en: `UnionPay has no such payment in the last ${cfg.lookbackDays} days`,
        };
      const state = orderState(c.fields);
      if (state !== 'success') {
        return state === 'failed'
          ? { kind: 'failed', code: 'TRADE_NOT_PAID', zh: '原交易未成功', en: 'the payment did not succeed' }
          : { kind: 'unknown', reason: 'the payment is still being processed' };
      }
      origQryId = c.fields['queryId'] ?? '';
      if (!origQryId) return { kind: 'unknown', reason: 'paid order without queryId' };
    }

    const txnTime = requested ?? dayTxnTime(now);
    const a = await this.exchange(ctx, cfg, 'unionpay.refund', BACK_PATH, out, {
      ...this.base(cfg, '04', '00', refundId, txnTime),
      channelType: '08',
      txnAmt: String(input.amountFen),
      origQryId,
      backUrl: ctx.notifyUrl,
      reqReserved: out,
    });
    if (a.kind === 'unknown') return a;
    const rc = a.fields['respCode'] ?? '';
    if (UNCLEAR.has(rc) || rc === '')
      return { kind: 'unknown', reason: `refund answered respCode ${rc || 'missing'}` };
    if (rc !== '00') return { kind: 'failed', ...UnionPayChannel.declined(a.fields, 'respCode') };
    const done = await this.queryOrder(ctx, cfg, out, refundId, txnTime);
    if (done.kind !== 'found') return { kind: 'unknown', reason: 'refund accepted, result not known yet' };
    return settled(done.fields);
  }

  /**
   * A backUrl notice (form POST, signed like an answer). Its outTradeNo is our reqReserved (sent with every
   * order), or the order id of a payment whose outTradeNo is used as it is.
   */
  parseNotify(
    ctx: ChannelContext,
    input: { headers: Readonly<Record<string, string>>; body: Buffer },
  ): Promise<NotifyParse> {
    const started = performance.now();
    const result = ((): NotifyParse => {
      const cfg = this.config(ctx);
      if ('error' in cfg) return { kind: 'rejected', reason: `configuration: ${cfg.error}`, ack: ACK_RETRY };
      const f = parseForm(input.body.toString('utf8'));
      if (!f) return { kind: 'rejected', reason: 'not a UnionPay notice', ack: ACK_RETRY };
      const why = this.distrust(cfg, f);
      if (why) return { kind: 'rejected', reason: `notice not verified: ${why}`, ack: ACK_RETRY };
      const orderId = f['orderId'] ?? '';
      const reserved = f['reqReserved'] ?? '';
      let outTradeNo: string | null = null;
      if (/^[A-Za-z0-9_-]{1,64}$/.test(reserved)) outTradeNo = reserved;
      else if (f['txnType'] === '01' && consumeOrderId(orderId) === orderId) outTradeNo = orderId;
      if (!outTradeNo) return { kind: 'ignored', ack: ACK_OK };
      return { kind: 'trade', outTradeNo, ack: ACK_OK };
    })();
    const fields = parseForm(input.body.toString('utf8'));
    ctx.record({
      operation: 'unionpay.notify',
      outTradeNo: result.kind === 'trade' ? result.outTradeNo : undefined,
      latencyMs: Math.round(performance.now() - started),
      outcome: result.kind === 'rejected' ? `rejected: ${result.reason}` : result.kind,
      request: fields ? excerpt(redactFields(fields)) : scrub(input.body.toString('utf8')),
    });
    return Promise.resolve(result);
  }
}
