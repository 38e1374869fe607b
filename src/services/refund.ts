import type { App, Refund, Trade } from '../store/schema.js';
import type { RefundOutcome } from '../channels/channel.js';
import { Errors, declined } from '../domain/errors.js';
import type { Fen } from '../domain/money.js';
import type { PayType } from '../domain/trade.js';
import { channelContext, channelOfTrade, guarded, type ServiceDeps } from './deps.js';
import { refreshTrade, refundWindowOver } from './sync.js';
import { observeTradeOutcome } from '../metrics.js';

export interface RefundCommand {
  app: App;
  outTradeNo: string;
  /** Checked when given (the offline door requires it): the channel's trade number or our PlatformTradeNo. */
  tradeNo?: string | undefined;
  amountFen: Fen;
  /** Checked when given (the offline door requires it). */
  totalFen?: Fen | undefined;
  outRequestNo: string;
  reason?: string | undefined;
  hospitalId?: string | undefined;
  terminalId?: string | undefined;
  payType?: PayType | undefined;
}

export interface RefundResult {
  trade: Trade;
  refund: Refund;
  /** Whether this request moved money (RefundChange). */
  fundChange: boolean;
}

/**
 * Refund (spec 5.4): partial and repeated refunds, each identified by OutRequestNo within its trade.
 * The protocol (store/refunds.ts), so that concurrent refunds can never add up to more than was paid and repeating
 * a request number never moves money twice:
 *   1. reserve: the amount is reserved on the trade (guarded UPDATE refund_reserved_fen + x <= the cash part, and
 *      the table's CHECK) and the refund recorded PROCESSING, leased to this request; in the common case in the
 *      very statement that reads the trade (lookupAndReserve);
 *   2. the channel is asked (execute);
 *   3. complete on success, fail on a refusal (the reservation is given back), release the lease when the outcome
 *      is unknown (the amount stays reserved; a repeat asks again).
 * A request number seen before answers its result, or carries it on: a FAILED refund is reserved again
 * (reserveAgain), a PROCESSING one is claimed (one request at the channel at a time) and asked again.
 */
export async function refundTrade(deps: ServiceDeps, cmd: RefundCommand): Promise<RefundResult> {
  const now0 = deps.clock.now();
  // 1. The common case in one statement: every check below holds, so the amount is reserved right away.
  const first = await deps.refunds.lookupAndReserve({
    appId: cmd.app.id,
    outTradeNo: cmd.outTradeNo,
    outRequestNo: cmd.outRequestNo,
    amountFen: cmd.amountFen,
    tradeNo: cmd.tradeNo,
    totalFen: cmd.totalFen,
    payType: cmd.payType,
    paidAfter: new Date(now0.getTime() - deps.config.refundWindowMs),
    reason: cmd.reason ?? null,
    hospitalId: cmd.hospitalId ?? null,
    terminalId: cmd.terminalId ?? null,
    now: now0,
    leaseMs: deps.config.jobs.leaseMs,
  });
  if (first !== 'raced' && first?.refund)
    return execute(deps, cmd.app, first.trade, first.refund, cmd.reason);
  // Not reserved: find out why, and answer it (or reserve after all, if the trade needed bringing up to date).
  const found =
    first === 'raced' ? await deps.refunds.lookup(cmd.app.id, cmd.outTradeNo, cmd.outRequestNo) : first;
  if (!found) throw Errors.tradeNotExist();
  let trade = found.trade;
  if (cmd.tradeNo !== undefined && cmd.tradeNo !== trade.trade_no && cmd.tradeNo !== trade.channel_trade_no) {
    throw Errors.tradeNoMismatch();
  }
  if (cmd.totalFen !== undefined && cmd.totalFen !== trade.total_fen) throw Errors.totalAmountMismatch();
  if (cmd.payType && trade.pay_type && cmd.payType !== trade.pay_type) throw Errors.payTypeMismatch();

  if (found.priorRefundId !== null) return repeatKnown(deps, cmd, trade);

  trade = await refreshTrade(deps, trade);
  if (trade.status === 'WAIT_BUYER_PAY') throw Errors.tradeNotPaid();
  // A trade whose window is over stays TRADE_SUCCESS while an earlier refund is in flight: no new refund either.
  if (
    trade.status === 'TRADE_FINISHED' ||
    (trade.status === 'TRADE_SUCCESS' && refundWindowOver(deps, trade))
  )
    throw Errors.tradeHasFinished();
  if (trade.status === 'TRADE_CLOSED')
    throw trade.paid_at ? Errors.refundAmountExceeded() : Errors.tradeHasClose();
  // Only the cash part goes back through the channel; the insurance part is the national system's.
  if (cmd.amountFen > trade.total_fen - trade.insurance_fen - trade.refund_reserved_fen)
    throw Errors.refundAmountExceeded();

  const r = await deps.refunds.reserve({
    trade,
    outRequestNo: cmd.outRequestNo,
    kind: 'refund',
    amountFen: cmd.amountFen,
    reason: cmd.reason ?? null,
    hospitalId: cmd.hospitalId ?? null,
    terminalId: cmd.terminalId ?? null,
    now: deps.clock.now(),
    leaseMs: deps.config.jobs.leaseMs,
  });
  if (r.result === 'exists') return repeatKnown(deps, cmd, trade);
  if (r.result === 'exceeded') {
    // The same request number, reserved by a concurrent call just before, also leaves no room: a repeat.
    if (await deps.refunds.byRequestNo(trade.id, cmd.outRequestNo)) return repeatKnown(deps, cmd, trade);
    const now = (await deps.trades.byId(trade.id)) ?? trade;
    if (now.status === 'TRADE_FINISHED') throw Errors.tradeHasFinished();
    throw Errors.refundAmountExceeded();
  }
  return execute(deps, cmd.app, trade, r.refund, cmd.reason);
}

/** A request number known for this trade: read it and answer as a repeat. */
async function repeatKnown(deps: ServiceDeps, cmd: RefundCommand, trade: Trade): Promise<RefundResult> {
  const p = await deps.refunds.byRequestNo(trade.id, cmd.outRequestNo);
  if (!p) throw Errors.systemError();
  return repeat(deps, cmd, trade, p);
}

/** A request number seen before: the earlier result, or (if still open) carry it on with the channel. */
async function repeat(
  deps: ServiceDeps,
  cmd: RefundCommand,
  trade: Trade,
  prior: Refund,
): Promise<RefundResult> {
  if (prior.amount_fen !== cmd.amountFen || prior.kind !== 'refund') throw Errors.outRequestNoConflict();
  if (prior.status === 'SUCCESS') return { trade, refund: prior, fundChange: false };
  if (prior.status === 'FAILED') {
    const again = await deps.refunds.reserveAgain(prior, deps.clock.now(), deps.config.jobs.leaseMs);
    if (again === 'exceeded') throw Errors.refundAmountExceeded();
    if (again === 'busy') {
      const p = await deps.refunds.byRequestNo(trade.id, cmd.outRequestNo);
      if (!p) throw Errors.systemError();
      return repeat(deps, cmd, trade, p);
    }
    return execute(deps, cmd.app, trade, { ...prior, status: 'PROCESSING' }, cmd.reason);
  }
  // PROCESSING: an earlier outcome was unknown (ask the channel again: it is idempotent on the request number),
  // or another request is at the channel right now (then answer "processing").
  const claimed = await deps.refunds.claim(prior, deps.clock.now(), deps.config.jobs.leaseMs);
  if (!claimed) {
    const now = await deps.refunds.byRequestNo(trade.id, cmd.outRequestNo);
    if (now && now.status !== 'PROCESSING') return repeat(deps, cmd, trade, now);
    throw Errors.refundProcessing();
  }
  return execute(deps, cmd.app, trade, claimed, cmd.reason);
}

/** 2. and 3.: asks the channel for a reserved (or claimed) refund, and completes, fails or releases it. */
async function execute(
  deps: ServiceDeps,
  app: App,
  trade: Trade,
  refund: Refund,
  reason: string | undefined,
): Promise<RefundResult> {
  const outcome = await askChannel(deps, app, trade, refund, reason);
  observeTradeOutcome('refund', trade.pay_type, trade.channel, outcome.kind);
  const now = deps.clock.now();
  if (outcome.kind === 'success') return complete(deps, trade, refund, outcome.channelRefundNo, now);
  if (outcome.kind === 'failed') {
    await deps.refunds.fail(refund, outcome.code, now);
    throw declined(outcome.code, outcome.zh, outcome.en);
  }
  // Unknown: the amount stays reserved and the refund PROCESSING; a repeat asks the channel again.
  await deps.refunds.release(refund);
  throw Errors.refundProcessing();
}

/** The channel's answer for the refund; a thrown error is an unknown outcome. */
async function askChannel(
  deps: ServiceDeps,
  app: App,
  trade: Trade,
  refund: Refund,
  reason: string | undefined,
): Promise<RefundOutcome> {
  const channel = channelOfTrade(deps, trade);
  if (!channel || !trade.pay_type) throw Errors.systemError();
  const channelId = trade.channel ?? '';
  return guarded<RefundOutcome>(deps, 'refund', { kind: 'unknown', reason: 'exception' }, async () =>
    channel.refund(await channelContext(deps, app.id, channelId), {
      outTradeNo: trade.out_trade_no,
      payType: trade.pay_type as PayType,
      outRequestNo: refund.out_request_no,
      amountFen: refund.amount_fen,
      totalFen: trade.total_fen,
      reason: reason ?? refund.reason ?? undefined,
      createdAt: trade.created_at,
      channelTradeNo: trade.channel_trade_no,
      requestedAt: refund.created_at,
    }),
  );
}

/** The channel refunded: SUCCESS, unless a repeat that took the refund over (our lease ran out) completed it first. */
async function complete(
  deps: ServiceDeps,
  trade: Trade,
  refund: Refund,
  channelRefundNo: string,
  now: Date,
): Promise<RefundResult> {
  const moved = await deps.refunds.complete(refund, channelRefundNo, now);
  if (moved) {
    // What complete stored, without reading it back.
    const done: Refund = {
      ...refund,
      status: 'SUCCESS',
      channel_refund_no: channelRefundNo,
      updated_at: now,
      finished_at: now,
      lease_until: null,
    };
    return { trade: moved, refund: done, fundChange: true };
  }
  // Completed by someone else meanwhile (a repeat after our lease ran out): read what they stored.
  const t = (await deps.trades.byId(trade.id)) ?? trade;
  const r = (await deps.refunds.byRequestNo(trade.id, refund.out_request_no)) ?? refund;
  return { trade: t, refund: r, fundChange: false };
}
