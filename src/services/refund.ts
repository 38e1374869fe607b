import type { App, Refund, Trade } from '../store/schema.js';
import type { RefundOutcome } from '../channels/channel.js';
import { Errors, declined } from '../domain/errors.js';
import type { Fen } from '../domain/money.js';
import type { PayType } from '../domain/trade.js';
import { channelContext, channelOfTrade, guarded, type ServiceDeps } from './deps.js';
import { refreshTrade, refundWindowOver } from './sync.js';

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
 * The amount is reserved on the trade before the channel is called (guarded UPDATE + CHECK), so concurrent
 * refunds can never add up to more than was paid; repeating a request number never moves money twice.
 */
export async function refundTrade(deps: ServiceDeps, cmd: RefundCommand): Promise<RefundResult> {
  const now0 = deps.clock.now();
  // The common case in one statement: every check below holds, so the amount is reserved right away.
  const first = await deps.trades.forRefundReserving({
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
    first === 'raced' ? await deps.trades.forRefund(cmd.app.id, cmd.outTradeNo, cmd.outRequestNo) : first;
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

  const r = await deps.trades.reserveRefund({
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
    if (await deps.trades.refundByRequestNo(trade.id, cmd.outRequestNo)) return repeatKnown(deps, cmd, trade);
    const now = (await deps.trades.byId(trade.id)) ?? trade;
    if (now.status === 'TRADE_FINISHED') throw Errors.tradeHasFinished();
    throw Errors.refundAmountExceeded();
  }
  return execute(deps, cmd.app, trade, r.refund, cmd.reason);
}

/** A request number known for this trade: read it and answer as a repeat. */
async function repeatKnown(deps: ServiceDeps, cmd: RefundCommand, trade: Trade): Promise<RefundResult> {
  const p = await deps.trades.refundByRequestNo(trade.id, cmd.outRequestNo);
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
    const again = await deps.trades.reReserveFailed(prior, deps.clock.now(), deps.config.jobs.leaseMs);
    if (again === 'exceeded') throw Errors.refundAmountExceeded();
    if (again === 'busy') {
      const p = await deps.trades.refundByRequestNo(trade.id, cmd.outRequestNo);
      if (!p) throw Errors.systemError();
      return repeat(deps, cmd, trade, p);
    }
    return execute(deps, cmd.app, trade, { ...prior, status: 'PROCESSING' }, cmd.reason);
  }
  // PROCESSING: an earlier outcome was unknown (ask the channel again: it is idempotent on the request number),
  // or another request is at the channel right now (then answer "processing").
  const claimed = await deps.trades.claimRefund(prior, deps.clock.now(), deps.config.jobs.leaseMs);
  if (!claimed) {
    const now = await deps.trades.refundByRequestNo(trade.id, cmd.outRequestNo);
    if (now && now.status !== 'PROCESSING') return repeat(deps, cmd, trade, now);
    throw Errors.refundProcessing();
  }
  return execute(deps, cmd.app, trade, claimed, cmd.reason);
}

async function execute(
  deps: ServiceDeps,
  app: App,
  trade: Trade,
  refund: Refund,
  reason: string | undefined,
): Promise<RefundResult> {
  const channel = channelOfTrade(deps, trade);
  if (!channel || !trade.pay_type) throw Errors.systemError();
  const channelId = trade.channel ?? '';
  const outcome = await guarded<RefundOutcome>(
    deps,
    'refund',
    { kind: 'unknown', reason: 'exception' },
    async () =>
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
  const now = deps.clock.now();
  if (outcome.kind === 'success') {
    const moved = await deps.trades.completeRefund(refund, outcome.channelRefundNo, now);
    if (moved) {
      // What completeRefund stored, without reading it back.
      const done: Refund = {
        ...refund,
        status: 'SUCCESS',
        channel_refund_no: outcome.channelRefundNo,
        updated_at: now,
        finished_at: now,
        lease_until: null,
      };
      return { trade: moved, refund: done, fundChange: true };
    }
    // Completed by someone else meanwhile (a repeat after our lease ran out): read what they stored.
    const t = (await deps.trades.byId(trade.id)) ?? trade;
    const r = (await deps.trades.refundByRequestNo(trade.id, refund.out_request_no)) ?? refund;
    return { trade: t, refund: r, fundChange: false };
  }
  if (outcome.kind === 'failed') {
    await deps.trades.failRefund(refund, outcome.code, now);
    throw declined(outcome.code, outcome.zh, outcome.en);
  }
  await deps.trades.releaseRefund(refund);
  throw Errors.refundProcessing();
}
