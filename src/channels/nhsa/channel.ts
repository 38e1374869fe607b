/**
 * The national medical-insurance mobile-payment centre (国家医保移动支付中心) as the platform's medical-insurance
 * side: the e-voucher authorisation page, the token step (auth code / identity → payAuthNo), 6201 fee upload,
 * 6202 order, 6301 settlement query and 6203 refund, each call enveloped (SM4 + SM3withSM2, envelope.ts) and each
 * answer read only after the platform's signature verifies.
 *
 * Pessimistic throughout: a timeout, an HTTP error, an unsigned, wrongly signed, undecryptable or unparseable
 * answer is never a settlement. When the 6202 order's outcome is unclear the centre's books are asked (6301).
 */
import type {
  ChannelContext,
  MedicareChannel,
  MedicareFeeDetail,
  MedicareNotifyParse,
  NotifyAck,
} from '../channel.js';
import type { Clock } from '../../domain/clock.js';
import { compactShanghai, formatShanghai } from '../../domain/clock.js';
import { addFen, formatFen, sumFen, ZERO_FEN } from '../../domain/money.js';
import type { HttpClient } from '../http.js';
import { CallRecorder, send } from '../exchange.js';
import { excerpt } from '../../formats/redact.js';
import { readConfig, fillAuthUrl, NhsaConfigError, type NhsaConfig, type NhsaOp } from './config.js';
import { openAnswer, sealRequest, sm3Hex, sm4DecryptHex, sm4EncryptHex } from './envelope.js';
import {
  FAILED_STATES,
  IN_PROGRESS,
  NEVER_SETTLED,
  REVOCABLE_STATES,
  answerOutcome,
  answerRecord,
  classifyAnswer,
  refusalOf,
  requestRecord,
  reversalStep,
  settlementOf,
  str,
  unopenedRecord,
  type CallResult,
  type Settlement,
} from './wire.js';

type TokenInput = Parameters<MedicareChannel['issueToken']>[1] & {
  /**
   * The auth code the region's authorisation page returned, once the platform passes it through (see
   * docs/channels/nhsa.md). Without it the patient's identity (user id, name, ID number) is queried.
   */
  authCode?: string | undefined;
};
type TokenOutcome = Awaited<ReturnType<MedicareChannel['issueToken']>>;
type PreSettleInput = Parameters<MedicareChannel['preSettle']>[1];
type PreSettleOutcome = Awaited<ReturnType<MedicareChannel['preSettle']>>;
type ReverseInput = Parameters<MedicareChannel['reverseSettlement']>[1];
type ReverseOutcome = Awaited<ReturnType<MedicareChannel['reverseSettlement']>>;
type RefundInput = Parameters<MedicareChannel['refundInsurance']>[1];
type RefundOutcome = Awaited<ReturnType<MedicareChannel['refundInsurance']>>;
type QueryOutcome = Awaited<ReturnType<NonNullable<MedicareChannel['querySettlement']>>>;

/** snake_case (the HIS's names of the national fields) to the centre's camelCase: bilg_dept_codg → bilgDeptCodg. */
const camel = (k: string) => k.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());

/** The fee details as the centre's 6201 `feedetailList`. */
export function feedetailList(items: readonly MedicareFeeDetail[]): Array<Record<string, string>> {
  return items.map((d) => {
    const extra: Record<string, string> = {};
    for (const [k, v] of Object.entries(d.extra)) extra[camel(k)] = v;
    return {
      ...extra,
      feedetlSn: d.serialNo,
      medListCodg: d.listCode,
      medinsListCodg: d.institutionCode,
      ...(d.institutionName !== undefined ? { medinsListName: d.institutionName } : {}),
      detItemFeeSumamt: formatFen(d.amountFen),
      cnt: d.count,
      pric: d.price,
      feeOcurTime: d.occurredAt,
    };
  });
}

/** What the platform answers the centre's notification with (the centre's own answer shape). */
const notifyAck = (status: number, code: number, message: string): NotifyAck => ({
  status,
  contentType: 'application/json;charset=UTF-8',
  body: JSON.stringify({ code, message, success: code === 0 }),
});

function failed(
  code: string,
  zh: string,
  en: string,
): { kind: 'failed'; code: string; zh: string; en: string } {
  return { kind: 'failed', code, zh, en };
}

/**
 * The settlement number the platform keeps: the centre's payOrdId and, sealed with the app's SM4 key, the
 * order's payToken (6301 and 6203 need it and the platform keeps no other place for it).
 */
export function settlementNumber(cfg: NhsaConfig, payOrdId: string, payToken: string): string {
  return `${payOrdId}.${sm4EncryptHex(payToken, cfg.keys.sm4Key)}`;
}

export function readSettlementNumber(
  cfg: NhsaConfig,
  settlementNo: string,
): { payOrdId: string; payToken: string | undefined } {
  const dot = settlementNo.lastIndexOf('.');
  if (dot <= 0) return { payOrdId: settlementNo, payToken: undefined };
  const payOrdId = settlementNo.slice(0, dot);
  try {
    return { payOrdId, payToken: sm4DecryptHex(settlementNo.slice(dot + 1), cfg.keys.sm4Key) };
  } catch {
    // Sealed under an app secret that has since changed: the query goes without it.
    return { payOrdId, payToken: undefined };
  }
}

/** The reversal's refund number (6203 appRefdSn): one per order, so a retried reversal is the same refund. */
export const reversalSerial = (orgCode: string, payOrdId: string) =>
  `RV${sm3Hex(`${orgCode}|${payOrdId}`).slice(0, 30).toUpperCase()}`;

/** An insurance refund's number (6203 appRefdSn): one per order and out_request_no. */
export const refundSerial = (orgCode: string, payOrdId: string, outRequestNo: string) =>
  `HI${sm3Hex(`${orgCode}|${payOrdId}|${outRequestNo}`).slice(0, 30).toUpperCase()}`;

export class NhsaMedicare implements MedicareChannel {
  readonly id = 'nhsa';

  constructor(private readonly deps: { http: HttpClient; clock: Clock; publicBaseUrl: () => string }) {}

  /**
   * The region's e-voucher authorisation page for a platform authorisation request. The page depends on the
   * app's configuration, so it needs the call's context: the port's one-argument form cannot know which region
   * to send the patient to and refuses (docs/channels/nhsa.md, "What the platform must pass").
   */
  authorisationUrl(authId: string, ctx?: ChannelContext): string {
    if (!ctx)
      throw new Error(
        '国家医保授权页取决于应用的地区配置，平台须传入调用上下文 / the national authorisation page depends on the ' +
          "app's region settings: the platform must pass the call context",
      );
    const cfg = readConfig(ctx.merchant);
    return fillAuthUrl(cfg.authUrl, {
      appId: cfg.keys.appId,
      orgCode: cfg.orgCode,
      cityCode: cfg.cityCode,
      redirect: `${this.deps.publicBaseUrl()}/oauth2/medicareAuth/${encodeURIComponent(authId)}/decision`,
      state: authId,
    });
  }

  async issueToken(ctx: ChannelContext, input: TokenInput): Promise<TokenOutcome> {
    const cfg = this.config(ctx, 'token');
    if ('kind' in cfg) return cfg;
    const r = await this.call(ctx, cfg, 'token', undefined, {
      orgCodg: cfg.orgCode,
      orgName: cfg.orgName,
      appUserId: input.userId,
      authCode: input.authCode,
      userName: input.patientName,
      idNo: input.patientCardNo,
      idType: input.patientCardNo ? '01' : undefined,
      insuplcAdmdvs: input.cityCode ?? cfg.cityCode,
    });
    if (r.kind === 'unknown')
      return failed(
        'UNKNOWN',
        `医保授权查询结果未知（${r.reason}），请重新授权后再试`,
        `the insurance authorisation query had no clear answer (${r.reason}); authorise again and retry`,
      );
    if (r.kind === 'refused') return refusalOf(r);
    const payAuthNo = str(r.data['payAuthNo']);
    if (!payAuthNo)
      return failed(
        'NHSA_NO_PAY_AUTH_NO',
        '医保移动支付中心未返回支付授权码',
        'the centre answered without a payAuthNo',
      );
    return {
      kind: 'issued',
      payAuthNo,
      qrCode: str(r.data['ecQrCode']) ?? str(r.data['qrCode']) ?? '',
      cityCode: str(r.data['insuplcAdmdvs']) ?? str(r.data['cityCode']) ?? input.cityCode ?? cfg.cityCode,
      cardInfo: str(r.data['cardInfo']) ?? '',
    };
  }

  /**
   * 6201 (fee upload) then 6202 (order). Settled only when a signed answer (6202, or 6301 when 6202 was unclear)
   * shows a settled order state whose total and cash part are the HIS's. A signed refusal fails with the
   * centre's code (NHSA_<code>). When even 6301 cannot tell, the result is `UNKNOWN`: the trade is closed
   * unpaid and the operator checks the recorded payOrdId at the centre; the HIS may retry with a new order
   * number and a new authorisation.
   */
  async preSettle(ctx: ChannelContext, input: PreSettleInput): Promise<PreSettleOutcome> {
    const cfg = this.config(ctx, '6201');
    if ('kind' in cfg) return cfg;
    const now = this.deps.clock.now();
    const batch = input.serialNo ?? input.outTradeNo;
    const upload = await this.call(ctx, cfg, '6201', input.outTradeNo, {
      // Constants a region may override through interface_extra.6201 …
      medType: '11',
      feeType: '01',
      psnSetlway: '01',
      pubHospRfomFlag: '0',
      rxCircFlag: '0',
      acctUsedFlag: cfg.acctUsedFlag,
      mdtrtareaAdmvs: cfg.cityCode,
      ...cfg.extra['6201'],
      // … and what identifies this order and its money, which it may not.
      orgCodg: cfg.orgCode,
      orgName: cfg.orgName,
      medOrgOrd: input.outTradeNo,
      payAuthNo: input.payAuthNo,
      chrgBchno: batch,
      iptOtpNo: batch,
      begntime: formatShanghai(now),
      medfeeSumamt: formatFen(input.totalFen),
      fulamtOwnpayAmt: formatFen(input.cashFen),
      preselfpayAmt: '0.00',
      inscpScpAmt: formatFen(input.insuranceFen),
      // Item-level details when the HIS gave them (their sum is the total: checked at the door).
      feedetailList: input.feeDetails?.length ? feedetailList(input.feeDetails) : undefined,
    });
    if (upload.kind === 'refused') return refusalOf(upload);
    if (upload.kind === 'unknown')
      // An upload moves no money: nothing to resolve.
      return failed(
        'UNKNOWN',
        `医保费用明细上传结果未知（${upload.reason}），可换订单号重试`,
        `the fee upload (6201) had no clear answer (${upload.reason}); retry with a new order number`,
      );
    const payOrdId = str(upload.data['payOrdId']);
    const payToken = str(upload.data['payToken']);
    if (!payOrdId || !payToken)
      return failed(
        'UNKNOWN',
        '医保费用明细上传的应答缺少支付订单号',
        'the fee upload (6201) answer lacks payOrdId or payToken',
      );

    // From here on the centre holds an upload: a failure names it, for the platform to revoke (6401) or, if it
    // was settled after all, refund (reverseSettlement decides with 6301).
    const uploaded = settlementNumber(cfg, payOrdId, payToken);
    const withUpload = (f: ReturnType<typeof failed>) => ({ ...f, uploaded });
    const order = await this.call(ctx, cfg, '6202', input.outTradeNo, {
      acctUsedFlag: cfg.acctUsedFlag,
      feeType: '01',
      ...cfg.extra['6202'],
      orgCodg: cfg.orgCode,
      payAuthNo: input.payAuthNo,
      payOrdId,
      payToken,
      orgBizSer: input.outTradeNo,
      chrgBchno: batch,
      mdtrtId: str(upload.data['mdtrtId']),
    });
    if (order.kind === 'ok') {
      const decided = await this.decide(ctx, cfg, input, payOrdId, payToken, settlementOf(order.data));
      if (decided) return decided;
    }
    // Refused, unclear or in progress: the centre's books say what happened.
    const q = await this.query(ctx, cfg, input.outTradeNo, payOrdId, payToken);
    if (q.kind === 'ok') {
      const s = settlementOf(q.data);
      const decided = await this.decide(ctx, cfg, input, payOrdId, payToken, s);
      if (decided) return decided;
      if (order.kind === 'refused' && s.ordStas !== undefined && !IN_PROGRESS.has(s.ordStas))
        return withUpload(refusalOf(order));
      if (s.ordStas !== undefined && NEVER_SETTLED.has(s.ordStas) && !cfg.settledStates.has(s.ordStas))
        return withUpload(
          failed(
            'NHSA_NOT_SETTLED',
            `医保未结算（订单状态 ${s.ordStas}）`,
            `the insurance part was not settled (order state ${s.ordStas})`,
          ),
        );
    }
    const why =
      order.kind === 'unknown' ? order.reason : order.kind === 'refused' ? order.code : 'in progress';
    return withUpload(
      failed(
        'UNKNOWN',
        `医保结算结果未知（${why}），请核对支付订单 ${payOrdId}`,
        `the insurance settlement is unknown (${why}); check payment order ${payOrdId} at the centre`,
      ),
    );
  }

  /**
   * A settled/failed decision from a signed order state, or null when it is not final (in progress, unknown
   * state). A settled order whose total or cash part differs from the HIS's is refunded at once (6203).
   */
  private async decide(
    ctx: ChannelContext,
    cfg: NhsaConfig,
    input: PreSettleInput,
    payOrdId: string,
    payToken: string,
    s: Settlement,
  ): Promise<PreSettleOutcome | null> {
    if (s.ordStas === undefined) return null;
    // A failure leaves the upload for the platform to undo, unless it was refunded here.
    const uploaded = settlementNumber(cfg, payOrdId, payToken);
    if (s.payOrdId !== undefined && s.payOrdId !== payOrdId) return null;
    if (cfg.settledStates.has(s.ordStas)) {
      if (s.totalFen === input.totalFen && s.cashFen === input.cashFen)
        return { kind: 'settled', settlementNo: settlementNumber(cfg, payOrdId, payToken) };
      const undone = await this.refund(ctx, cfg, input.outTradeNo, payOrdId, payToken, cfg.refundType, s);
      const mismatch = failed(
        'NHSA_SPLIT_MISMATCH',
        `医保结算金额与医院不符（总额 ${s.totalFen ?? '?'} 分、自付 ${s.cashFen ?? '?'} 分），${undone.kind === 'reversed' ? '已退回' : '退回未完成，平台将继续退回'}`,
        `the centre settled another split (total ${s.totalFen ?? '?'}, cash ${s.cashFen ?? '?'} fen); ${undone.kind === 'reversed' ? 'refunded' : 'the refund did not complete: the platform keeps trying'}`,
      );
      // Refunded: nothing left at the centre to undo; otherwise the platform keeps trying.
      return undone.kind === 'reversed' ? mismatch : { ...mismatch, uploaded };
    }
    if (FAILED_STATES.has(s.ordStas))
      return {
        ...failed(
          `NHSA_ORDER_${s.ordStas}`,
          `医保结算失败（订单状态 ${s.ordStas}）`,
          `the insurance settlement failed (order state ${s.ordStas})`,
        ),
        uploaded,
      };
    return null;
  }

  /**
   * 6301 first: an order already refunded (or never settled) needs nothing; a settled one is refunded with 6203
   * (refdType ALL by default, HI when only its cash part was refunded) with the centre's own split.
   */
  async reverseSettlement(ctx: ChannelContext, input: ReverseInput): Promise<ReverseOutcome> {
    const cfg = this.config(ctx, '6203');
    if ('kind' in cfg) return cfg;
    const { payOrdId, payToken } = readSettlementNumber(cfg, input.settlementNo);
    if (!payOrdId) return failed('NHSA_NO_SETTLEMENT', '缺少医保支付订单号', 'no settlement number');
    const q = await this.query(ctx, cfg, input.outTradeNo, payOrdId, payToken);
    if (q.kind === 'unknown') return { kind: 'retry', reason: `6301: ${q.reason}` };
    if (q.kind === 'refused') return refusalOf(q);
    const s = settlementOf(q.data);
    const st = s.ordStas;
    if (st === undefined) return { kind: 'retry', reason: '6301 without an order state' };
    switch (reversalStep(st, cfg.settledStates)) {
      case 'already_reversed':
        return { kind: 'reversed' };
      case 'never_settled':
        // An upload never paid is revoked (6401); a failed or cancelled one needs nothing.
        return REVOCABLE_STATES.has(st)
          ? this.revoke(ctx, cfg, input.outTradeNo, payOrdId, payToken)
          : { kind: 'reversed' };
      case 'in_progress':
        return { kind: 'retry', reason: `order state ${st}: in progress` };
      case 'abnormal':
        return failed(
          `NHSA_ORDER_${st}`,
          `医保订单异常（状态 ${st}）`,
          `the centre reports the order abnormal (${st})`,
        );
      case 'refund':
        return this.refund(ctx, cfg, input.outTradeNo, payOrdId, payToken, cfg.refundType, s);
      case 'refund_insurance':
        return this.refund(ctx, cfg, input.outTradeNo, payOrdId, payToken, 'HI', s);
      case 'not_understood':
        return { kind: 'retry', reason: `order state ${st} not understood` };
    }
  }

  /** 6401: revokes an upload that was never paid. */
  private async revoke(
    ctx: ChannelContext,
    cfg: NhsaConfig,
    outTradeNo: string,
    payOrdId: string,
    payToken: string | undefined,
  ): Promise<ReverseOutcome> {
    const r = await this.call(ctx, cfg, '6401', outTradeNo, {
      ...cfg.extra['6401'],
      orgCodg: cfg.orgCode,
      payOrdId,
      payToken,
    });
    if (r.kind === 'unknown') return { kind: 'retry', reason: `6401: ${r.reason}` };
    if (r.kind === 'refused') return refusalOf(r);
    return { kind: 'reversed' };
  }

  /**
   * The insurance part of a paid trade refunded through the centre (6203, refdType HI), after 6301: the centre
   * refunds the insurance part whole (its fund and personal-account parts as settled), so the amount must be
   * all of it. The refund number is derived from the order and `outRequestNo`: asking again is the same refund,
   * which the centre answers as done.
   */
  async refundInsurance(ctx: ChannelContext, input: RefundInput): Promise<RefundOutcome> {
    const cfg = this.config(ctx, '6203');
    if ('kind' in cfg) return cfg;
    const { payOrdId, payToken } = readSettlementNumber(cfg, input.settlementNo);
    if (!payOrdId) return failed('NHSA_NO_SETTLEMENT', '缺少医保支付订单号', 'no settlement number');
    const q = await this.query(ctx, cfg, input.outTradeNo, payOrdId, payToken);
    if (q.kind === 'unknown') return { kind: 'unknown', reason: `6301: ${q.reason}` };
    if (q.kind === 'refused') return refusalOf(q);
    const s = settlementOf(q.data);
    const st = s.ordStas;
    if (st === undefined) return { kind: 'unknown', reason: '6301 without an order state' };
    switch (reversalStep(st, cfg.settledStates)) {
      case 'in_progress':
      case 'not_understood':
        return { kind: 'unknown', reason: `order state ${st}` };
      case 'abnormal':
        return failed(
          `NHSA_ORDER_${st}`,
          `医保订单异常（状态 ${st}）`,
          `the centre reports the order abnormal (${st})`,
        );
      case 'never_settled':
        return failed(
          'NHSA_NOT_SETTLED',
          `医保未结算（订单状态 ${st}）`,
          `the insurance part was not settled (${st})`,
        );
      case 'refund':
      case 'refund_insurance':
      case 'already_reversed':
        // Already refunded: maybe by this very refund, whose answer was lost; the centre knows its number.
        break;
    }
    const fund = s.fundFen;
    const acct = s.acctFen;
    if (fund === null || acct === null)
      return failed('NHSA_NO_SPLIT', '医保订单缺少结算金额，无法退费', 'the order has no split to refund');
    const whole = addFen(fund, acct);
    if (input.amountFen !== whole || input.refundedFen !== 0)
      return failed(
        'NHSA_PARTIAL_REFUND',
        `医保移动支付中心只能整笔退还医保部分（${formatFen(whole)} 元），部分退款请走医保经办流程后登记（insurance_refund_mode=RECORD）`,
        `the centre refunds the insurance part whole (${formatFen(whole)} yuan); record a partial refund made through the national process with insurance_refund_mode=RECORD`,
      );
    const r = await this.call(ctx, cfg, '6203', input.outTradeNo, {
      ...cfg.extra['6203'],
      orgCodg: cfg.orgCode,
      payOrdId,
      ecToken: payToken,
      appRefdSn: refundSerial(cfg.orgCode, payOrdId, input.outRequestNo),
      appRefdTime: compactShanghai(this.deps.clock.now()),
      refdType: 'HI',
      totlRefdAmt: formatFen(whole),
      fundRefdAmt: formatFen(fund),
      psnAcctRefdAmt: formatFen(acct),
      cashRefdAmt: formatFen(ZERO_FEN),
    });
    if (r.kind === 'unknown') return { kind: 'unknown', reason: `6203: ${r.reason}` };
    if (r.kind === 'refused') return refusalOf(r);
    const status = str(r.data['refStatus']);
    if (status === 'SUCC')
      return {
        kind: 'refunded',
        refundNo:
          str(r.data['refdSn']) ??
          str(r.data['hiRefdSn']) ??
          refundSerial(cfg.orgCode, payOrdId, input.outRequestNo),
      };
    if (status === 'FAIL')
      return failed('NHSA_REFUND_FAIL', '医保退费失败', 'the centre refused the refund (refStatus FAIL)');
    return { kind: 'unknown', reason: `6203 refStatus ${status ?? '(none)'}` };
  }

  /** The centre's view of a settlement (6301), as the platform syncs it after a notification. */
  async querySettlement(
    ctx: ChannelContext,
    input: { settlementNo: string; outTradeNo: string },
  ): Promise<QueryOutcome> {
    const cfg = this.config(ctx, '6301');
    if ('kind' in cfg) return { kind: 'unknown', reason: 'configuration' };
    const { payOrdId, payToken } = readSettlementNumber(cfg, input.settlementNo);
    const q = await this.query(ctx, cfg, input.outTradeNo, payOrdId, payToken);
    if (q.kind !== 'ok')
      return { kind: 'unknown', reason: q.kind === 'refused' ? `refused ${q.code}` : q.reason };
    const st = str(q.data['ordStas']);
    if (st === undefined) return { kind: 'unknown', reason: '6301 without an order state' };
    const step = reversalStep(st, cfg.settledStates);
    const state =
      step === 'refund' || step === 'refund_insurance'
        ? 'settled'
        : step === 'already_reversed'
          ? 'reversed'
          : step === 'never_settled'
            ? 'never_settled'
            : step === 'in_progress'
              ? 'in_progress'
              : 'other';
    return { kind: 'state', state, code: st };
  }

  /**
   * The centre's notification about a settlement: the same envelope as its answers, read only when the
   * platform's signature over all its fields verifies (openAnswer). It must name the order (medOrgOrd) and the
   * centre's order id (payOrdId); its state is never taken from it: the platform asks 6301.
   */
  parseSettlementNotify(ctx: ChannelContext, body: Buffer): MedicareNotifyParse {
    const rec = new CallRecorder(ctx, 'nhsa.notify');
    const reject = (reason: string): MedicareNotifyParse => {
      rec.done(`rejected: ${reason}`, { error: reason });
      return { kind: 'rejected', reason, ack: notifyAck(400, -1, `rejected: ${reason}`) };
    };
    let cfg: NhsaConfig;
    try {
      cfg = readConfig(ctx.merchant);
    } catch {
      return reject('the nhsa channel is misconfigured');
    }
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(body);
    } catch {
      return reject('not UTF-8');
    }
    const opened = openAnswer(cfg.keys, text);
    if (!opened.ok) return reject(opened.reason);
    const outTradeNo = str(opened.data['medOrgOrd']);
    const orderId = str(opened.data['payOrdId']);
    if (!outTradeNo || !orderId || outTradeNo.length > 64 || orderId.length > 64)
      return reject('no medOrgOrd or payOrdId');
    rec.done(`ok ordStas=${str(opened.data['ordStas']) ?? '?'}`, {
      outTradeNo,
      response: answerRecord(classifyAnswer(opened), opened.data),
    });
    return {
      kind: 'settlement',
      outTradeNo,
      orderId,
      ack: notifyAck(200, 0, '成功'),
      retryAck: notifyAck(503, -1, '稍后重试 / retry later'),
    };
  }

  /** 6203 for a settled order with the centre's split; the refund number is derived, so a retry is the same refund. */
  private async refund(
    ctx: ChannelContext,
    cfg: NhsaConfig,
    outTradeNo: string,
    payOrdId: string,
    payToken: string | undefined,
    refdType: 'ALL' | 'HI',
    s: Settlement,
  ): Promise<ReverseOutcome> {
    const fund = s.fundFen;
    const acct = s.acctFen;
    const cash = s.cashFen;
    if (fund === null || acct === null || cash === null)
      return failed('NHSA_NO_SPLIT', '医保订单缺少结算金额，无法退费', 'the order has no split to refund');
    const total = refdType === 'ALL' ? sumFen([fund, acct, cash]) : addFen(fund, acct);
    const r = await this.call(ctx, cfg, '6203', outTradeNo, {
      ...cfg.extra['6203'],
      orgCodg: cfg.orgCode,
      payOrdId,
      ecToken: payToken,
      appRefdSn: reversalSerial(cfg.orgCode, payOrdId),
      appRefdTime: compactShanghai(this.deps.clock.now()),
      refdType,
      totlRefdAmt: formatFen(total),
      fundRefdAmt: formatFen(fund),
      psnAcctRefdAmt: formatFen(acct),
      cashRefdAmt: formatFen(refdType === 'ALL' ? cash : ZERO_FEN),
    });
    if (r.kind === 'unknown') return { kind: 'retry', reason: `6203: ${r.reason}` };
    if (r.kind === 'refused') return refusalOf(r);
    const status = str(r.data['refStatus']);
    if (status === 'SUCC') return { kind: 'reversed' };
    if (status === 'FAIL')
      return failed('NHSA_REFUND_FAIL', '医保退费失败', 'the centre refused the refund (refStatus FAIL)');
    return { kind: 'retry', reason: `6203 refStatus ${status ?? '(none)'}` };
  }

  private query(
    ctx: ChannelContext,
    cfg: NhsaConfig,
    outTradeNo: string,
    payOrdId: string,
    payToken?: string,
  ) {
    return this.call(ctx, cfg, '6301', outTradeNo, {
      ...cfg.extra['6301'],
      orgCodg: cfg.orgCode,
      payOrdId,
      payToken,
    });
  }

  private config(ctx: ChannelContext, op: NhsaOp): NhsaConfig | ReturnType<typeof failed> {
    try {
      return readConfig(ctx.merchant);
    } catch (e) {
      const field = e instanceof NhsaConfigError ? e.field : '(config)';
      new CallRecorder(ctx, `nhsa.${op}`).done('failed NHSA_CONFIG', { error: `configuration: ${field}` });
      return failed(
        'NHSA_CONFIG',
        `国家医保渠道配置有误：${field}`,
        `the nhsa channel is misconfigured: ${field}`,
      );
    }
  }

  /** One enveloped exchange, recorded (redacted). */
  private async call(
    ctx: ChannelContext,
    cfg: NhsaConfig,
    op: NhsaOp,
    outTradeNo: string | undefined,
    data: Record<string, unknown>,
  ): Promise<CallResult> {
    const rec = new CallRecorder(ctx, `nhsa.${op}`, outTradeNo);
    const timestamp = String(this.deps.clock.now().getTime());
    const sealed = sealRequest(cfg.keys, data, timestamp);
    const request = requestRecord(cfg, op, sealed, data, timestamp);
    const t = await send(this.deps.http, {
      method: 'POST',
      url: `${cfg.apiBaseUrl}${cfg.paths[op]}`,
      headers: {
        'content-type': 'application/json;charset=UTF-8',
        accept: 'application/json',
        ...cfg.headers,
      },
      body: sealed.body,
      timeoutMs: cfg.timeoutMs,
      maxBytes: 1024 * 1024,
    });
    if (!t.ok) {
      rec.done(`unknown: ${t.fault}`, { request, error: t.reason });
      return { kind: 'unknown', reason: t.fault };
    }
    const text = t.body.toString('utf8');
    if (t.status !== 200) {
      const reason = `HTTP ${t.status}`;
      rec.done(`unknown: ${reason}`, { httpStatus: t.status, request, response: excerpt(text, 300) });
      return { kind: 'unknown', reason };
    }
    const opened = openAnswer(cfg.keys, text);
    if (!opened.ok) {
      rec.done(`unknown: ${opened.reason}`, {
        httpStatus: t.status,
        request,
        response: unopenedRecord(opened, text),
        error: opened.reason,
      });
      return { kind: 'unknown', reason: opened.reason };
    }
    const answer = classifyAnswer(opened);
    rec.done(answerOutcome(answer.result, opened.data, answer.code), {
      httpStatus: t.status,
      request,
      response: answerRecord(answer, opened.data),
    });
    return answer.result;
  }
}
