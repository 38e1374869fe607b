import type { App, Trade } from '../store/schema.js';
import type { PayOutcome } from '../channels/channel.js';
import { Errors, HospayError, declined } from '../domain/errors.js';
import type { Fen } from '../domain/money.js';
import { categorize } from '../domain/categories.js';
import { payTypeFromAuthCode, type OrderType, type PayType } from '../domain/trade.js';
import { appCategories } from '../store/apps.js';
import { sha256Hex } from '../crypto/tokens.js';
import {
  TradeAlreadyPaid,
  checkRepeat,
  channelContext,
  channelFor,
  guarded,
  newTradeNo,
  type ServiceDeps,
} from './deps.js';
import { applyQueryOutcome, queryChannel, refreshTrade } from './sync.js';
import { observeTradeOutcome } from '../metrics.js';

export interface BarcodePayCommand {
  app: App;
  outTradeNo: string;
  authCode: string;
  amountFen: Fen;
  subject: string;
  body?: string | undefined;
  operatorId?: string | undefined;
  patientName: string;
  inhospitalNo: string;
  orderType: OrderType;
  terminalId?: string | undefined;
  payType?: PayType | undefined;
  /** Cnt: how many times to query while the payer confirms. */
  polls?: number | undefined;
}

export interface TradeResult {
  trade: Trade;
  /** Set when the trade is not (yet) what the caller hoped for: declined, still paying, unknown. */
  error?: HospayError;
  /** Set on a success that has something to say: TRADE_HAS_SUCCESS, paid before and nothing charged now. */
  notice?: HospayError;
}

/**
 * Barcode pay (spec 5.1): the cashier scans the patient's payment code.
 * Idempotent on (app, OutTradeNo): a repeat with the same content answers the current state and never charges
 * again; the same number with other content is refused. "User paying" is polled up to Cnt times; an unknown
 * outcome is queried, never assumed failed; whatever is still unpaid at the deadline is cancelled by the job.
 */
export async function barcodePay(deps: ServiceDeps, cmd: BarcodePayCommand): Promise<TradeResult> {
  const detected = payTypeFromAuthCode(cmd.authCode);
  if (cmd.payType && detected && cmd.payType !== detected) {
    throw Errors.invalidField(
      'PayType',
      `与付款码不符（付款码属于 ${detected}）`,
      `does not match the payment code (a ${detected} code)`,
    );
  }
  const payType = cmd.payType ?? detected;
  if (!payType) throw Errors.payTypeUnknown();
  const { id: channelId, channel } = channelFor(deps, cmd.app, payType);
  const now = deps.clock.now();
  // Everything the caller sent except Cnt decides "same content"; the payment code only as a hash.
  const fingerprint = sha256Hex(
    JSON.stringify([
      'barcode',
      cmd.amountFen,
      sha256Hex(cmd.authCode),
      payType,
      cmd.subject,
      cmd.body ?? '',
      cmd.operatorId ?? '',
      cmd.patientName,
      cmd.inhospitalNo,
      cmd.orderType,
      cmd.terminalId ?? '',
    ]),
  );
  const { trade, inserted } = await deps.trades.insertNewOrGet({
    trade_no: newTradeNo(now),
    app_id: cmd.app.id,
    out_trade_no: cmd.outTradeNo,
    kind: 'barcode',
    pay_type: payType,
    channel: channelId,
    category: categorize(cmd.outTradeNo, appCategories(cmd.app)),
    order_type: cmd.orderType,
    total_fen: cmd.amountFen,
    subject: cmd.subject,
    body: cmd.body ?? null,
    operator_id: cmd.operatorId ?? null,
    terminal_id: cmd.terminalId ?? null,
    hospital_id: cmd.app.hospital_id,
    patient_name: cmd.patientName,
    inhospital_no: cmd.inhospitalNo,
    fingerprint,
    created_at: now,
    expires_at: new Date(now.getTime() + deps.config.barcode.deadlineMs),
  });

  if (!inserted) {
    const repeat = anotherCodeForOrder(trade, cmd, fingerprint);
    if (repeat) return repeat;
    return describe(await refreshTrade(deps, trade));
  }

  const ctx = await channelContext(deps, cmd.app.id, channelId);
  const outcome = await guarded<PayOutcome>(
    deps,
    'barcodePay',
    { kind: 'unknown', reason: 'exception' },
    () =>
      channel.barcodePay(ctx, {
        outTradeNo: cmd.outTradeNo,
        payType,
        amountFen: cmd.amountFen,
        authCode: cmd.authCode,
        subject: cmd.subject,
        operatorId: cmd.operatorId,
        terminalId: cmd.terminalId,
        createdAt: trade.created_at,
      }),
  );

  observeTradeOutcome('barcode_pay', payType, channelId, outcome.kind);
  if (outcome.kind === 'paid') {
    const paid =
      (await deps.trades.markPaid(trade.id, outcome, deps.clock.now())) ?? (await deps.trades.byId(trade.id));
    return describe(paid ?? trade);
  }
  if (outcome.kind === 'declined') {
    const closed = (await deps.trades.markClosedUnpaid(trade.id, null, deps.clock.now())) ?? trade;
    return { trade: closed, error: declined(outcome.code, outcome.zh, outcome.en) };
  }

  // "paying" or "unknown": ask the channel again, Cnt times at most.
  const polls = Math.min(cmd.polls ?? deps.config.barcode.defaultPolls, deps.config.barcode.maxPolls);
  let current = trade;
  for (let i = 0; i < polls && current.status === 'WAIT_BUYER_PAY'; i++) {
    if (i > 0 || outcome.kind === 'paying') await deps.sleep(deps.config.barcode.pollIntervalMs);
    current = await applyQueryOutcome(deps, current, await queryChannel(deps, current));
  }
  if (current.status !== 'WAIT_BUYER_PAY') return describe(current);
  return { trade: current, error: outcome.kind === 'paying' ? userPaying() : Errors.channelError() };
}

/**
 * Whether a stored trade is the order this request asks for: the same amount, patient and order type. A new
 * payment code, another PayType, operator or terminal (the cashier scanning again after a time-out) is the same
 * order paid another way.
 */
function sameOrder(trade: Trade, cmd: BarcodePayCommand): boolean {
  return (
    trade.total_fen === cmd.amountFen &&
    trade.patient_name === cmd.patientName &&
    trade.inhospital_no === cmd.inhospitalNo &&
    trade.order_type === cmd.orderType
  );
}

/**
 * A repeat of a used OutTradeNo that is not identical, answered from the stored trade without any channel call
 * (the new payment code is never charged): a paid order is paid (TRADE_HAS_SUCCESS; a success when it is the
 * same order); the same order still being paid with the earlier code is USER_PAYING; closed, TRADE_HAS_CLOSE.
 * Other content for an unpaid order is refused (OUT_TRADE_NO_CONFLICT). Null for an identical repeat.
 */
function anotherCodeForOrder(trade: Trade, cmd: BarcodePayCommand, fingerprint: string): TradeResult | null {
  try {
    checkRepeat(trade, 'barcode', fingerprint, { sameOrder: (t) => sameOrder(t, cmd) });
    return null;
  } catch (e) {
    if (e instanceof TradeAlreadyPaid)
      return e.sameOrder ? { trade: e.trade, notice: e } : { trade: e.trade, error: e };
    if (e instanceof HospayError && e.code === 'OUT_TRADE_NO_CONFLICT' && trade.kind === 'barcode') {
      if (sameOrder(trade, cmd)) {
        if (trade.status === 'WAIT_BUYER_PAY') return { trade, error: payingWithEarlierCode() };
        if (trade.status === 'TRADE_CLOSED') return { trade, error: Errors.tradeHasClose() };
      }
    }
    throw e;
  }
}

function payingWithEarlierCode(): HospayError {
  return new HospayError(
    'USER_PAYING',
    'business',
    '该订单正在用先前的付款码支付，请查询结果，勿用新订单号重复收费',
    'this order is being paid with an earlier payment code; query it, do not charge again under a new number',
  );
}

function userPaying(): HospayError {
  return new HospayError(
    'USER_PAYING',
    'business',
    '等待用户确认支付，请稍后查询',
    'waiting for the payer to confirm; query the trade later',
  );
}

/** The result for a trade's current state, as a repeated request sees it. */
export function describe(trade: Trade): TradeResult {
  switch (trade.status) {
    case 'TRADE_SUCCESS':
    case 'TRADE_FINISHED':
      return { trade };
    case 'WAIT_BUYER_PAY':
      return { trade, error: userPaying() };
    case 'TRADE_CLOSED':
      return { trade, error: Errors.tradeHasClose() };
  }
}
