import type { App, Refund, Trade } from '../store/schema.js';
import type { CancelOutcome } from '../channels/channel.js';
import { Errors, HospayError, declined } from '../domain/errors.js';
import { CANCEL_REQUEST_NO, type PayType } from '../domain/trade.js';
import { channelContext, channelOfTrade, guarded, newTradeNo, type ServiceDeps } from './deps.js';
import { refreshTrade } from './sync.js';
import { subFen } from '../domain/money.js';

export type CancelResult =
  | { ok: true; trade: Trade; action: 'close' | 'refund' }
  | { ok: false; trade?: Trade; error: HospayError; retry: boolean };

/**
 * Cancel (spec 5.3): unpaid -> closed (action close); paid -> refunded in full (action refund).
 * Only within the cancel window (24 h by default) of creation; after that, use refund.
 * retry tells the caller whether calling again can succeed (RetryFlag).
 */
export async function cancelTrade(deps: ServiceDeps, app: App, outTradeNo: string): Promise<CancelResult> {
  const found = await deps.trades.byOutTradeNo(app.id, outTradeNo);
  if (!found) {
    // Never seen (the pay request may have been lost on the way): burn the number so it can never be paid.
    const v = await deps.trades.insertVoid(
      app.id,
      outTradeNo,
      newTradeNo(deps.clock.now()),
      deps.clock.now(),
    );
    if (v.inserted) return { ok: true, trade: v.trade, action: 'close' };
    return cancelTrade(deps, app, outTradeNo);
  }
  let trade = found;
  if (trade.status === 'TRADE_CLOSED') return { ok: true, trade, action: closedAction(trade) };
  const now = deps.clock.now();
  if (now.getTime() - trade.created_at.getTime() > deps.config.cancelWindowMs) {
    return {
      ok: false,
      trade,
      error: Errors.cancelWindowExpired(deps.config.cancelWindowMs),
      retry: false,
    };
  }
  trade = await refreshTrade(deps, trade);
  if (trade.status === 'TRADE_CLOSED') return { ok: true, trade, action: closedAction(trade) };
  if (trade.status === 'TRADE_FINISHED')
    return { ok: false, trade, error: Errors.tradeHasFinished(), retry: false };

  if (trade.status === 'WAIT_BUYER_PAY' && !trade.pay_type) {
    // Aggregated code never scanned: no channel trade exists, close it here.
    const closed = await deps.trades.markClosedUnpaid(trade.id, 'close', now);
    if (closed) return { ok: true, trade: closed, action: 'close' };
    return cancelTrade(deps, app, outTradeNo);
  }

  const channel = channelOfTrade(deps, trade);
  if (!channel || !trade.pay_type) return { ok: false, trade, error: Errors.systemError(), retry: true };

  if (trade.status === 'TRADE_SUCCESS' && trade.total_fen === trade.insurance_fen) {
    // No cash part (all paid by insurance): nothing to reverse at a payment channel; the job undoes the settlement.
    const closed = await deps.trades.closeInsuranceOnly(trade.id, now);
    if (closed) return { ok: true, trade: closed, action: 'refund' };
    return cancelTrade(deps, app, outTradeNo);
  }

  let reversal: Refund | undefined;
  if (trade.status === 'TRADE_SUCCESS') {
    const r = await reserveReversal(deps, trade);
    if ('error' in r) return { ok: false, trade, error: r.error, retry: r.retry ?? false };
    if (r.done) return { ok: true, trade: (await deps.trades.byId(trade.id)) ?? trade, action: 'refund' };
    reversal = r.refund;
  }

  const outcome = await guarded<CancelOutcome | { kind: 'exception' }>(
    deps,
    'cancel',
    { kind: 'exception' },
    async () =>
      channel.cancel(await channelContext(deps, app.id, trade.channel ?? ''), {
        outTradeNo: trade.out_trade_no,
        payType: trade.pay_type as PayType,
        createdAt: trade.created_at,
        channelTradeNo: trade.channel_trade_no,
      }),
  );
  const at = deps.clock.now();
  switch (outcome.kind) {
    case 'closed': {
      if (reversal) {
        // The channel says unpaid while we hold it as paid: never guess with money; leave it to a person.
        await deps.refunds.fail(reversal, 'CHANNEL_SAYS_UNPAID', at);
        deps.log.error({ tradeNo: trade.trade_no }, 'cancel: channel reports a paid trade as unpaid');
        return { ok: false, trade, error: Errors.systemError(), retry: false };
      }
      const closed =
        (await deps.trades.markClosedUnpaid(trade.id, 'close', at)) ?? (await deps.trades.byId(trade.id));
      if (closed?.status === 'TRADE_CLOSED') return { ok: true, trade: closed, action: closedAction(closed) };
      // It was paid meanwhile (a late pay answer): cancel again, which now reverses it.
      return cancelTrade(deps, app, outTradeNo);
    }
    case 'refunded': {
      if (reversal) {
        await deps.refunds.complete(reversal, outcome.channelTradeNo, at);
      } else {
        await deps.trades.markPaidAndReversed(trade.id, outcome, at, CANCEL_REQUEST_NO);
      }
      const t = (await deps.trades.byId(trade.id)) ?? trade;
      return { ok: true, trade: t, action: 'refund' };
    }
    case 'retry':
      if (reversal) await deps.refunds.fail(reversal, 'CANCEL_RETRY', at);
      return {
        ok: false,
        trade,
        error: new HospayError(
          'CANCEL_RETRY',
          'system',
          '撤销暂时失败，请重试',
          'the cancel failed for now; call it again',
          {
            retryable: true,
          },
        ),
        retry: true,
      };
    case 'failed':
      if (reversal) await deps.refunds.fail(reversal, outcome.code, at);
      return { ok: false, trade, error: declined(outcome.code, outcome.zh, outcome.en), retry: false };
    case 'exception':
      // Unknown: the reservation stays PROCESSING so no refund can race the reversal; calling again continues it.
      if (reversal) await deps.refunds.release(reversal);
      return { ok: false, trade, error: Errors.channelError(), retry: true };
  }
}

function closedAction(trade: Trade): 'close' | 'refund' {
  return trade.cancel_action ?? (trade.refunded_fen > 0 ? 'refund' : 'close');
}

/** Reserves the whole amount for a reversal, unless other refunds exist (then cancel is refused). */
async function reserveReversal(
  deps: ServiceDeps,
  trade: Trade,
): Promise<{ refund: Refund; done?: false } | { done: true } | { error: HospayError; retry?: boolean }> {
  const now = deps.clock.now();
  const existing = await deps.refunds.byRequestNo(trade.id, CANCEL_REQUEST_NO);
  if (existing) {
    if (existing.kind !== 'cancel') return { error: Errors.tradeHasRefund() };
    if (existing.status === 'SUCCESS') return { done: true };
    if (existing.status === 'PROCESSING') {
      const claimed = await deps.refunds.claim(existing, now, deps.config.jobs.leaseMs);
      if (claimed) return { refund: claimed };
      return { error: cancelInProgress(), retry: true };
    }
    const again = await deps.refunds.reserveAgain(existing, now, deps.config.jobs.leaseMs);
    if (again === 'reserved') return { refund: { ...existing, status: 'PROCESSING' } };
    if (again === 'busy') return reserveReversal(deps, trade);
    return { error: Errors.tradeHasRefund() };
  }
  if (trade.refund_reserved_fen > 0) return { error: Errors.tradeHasRefund() };
  const r = await deps.refunds.reserve({
    trade,
    outRequestNo: CANCEL_REQUEST_NO,
    kind: 'cancel',
    amountFen: subFen(trade.total_fen, trade.insurance_fen),
    reason: 'cancel',
    hospitalId: null,
    terminalId: null,
    now,
    leaseMs: deps.config.jobs.leaseMs,
  });
  if (r.result === 'reserved') return { refund: r.refund };
  if (r.result === 'exists') return reserveReversal(deps, trade);
  // Refused: other refunds hold the amount, or a concurrent cancel reserved it first (then go on with that one).
  if (await deps.refunds.byRequestNo(trade.id, CANCEL_REQUEST_NO)) return reserveReversal(deps, trade);
  return { error: Errors.tradeHasRefund() };
}

function cancelInProgress(): HospayError {
  return new HospayError(
    'CANCEL_IN_PROGRESS',
    'system',
    '撤销正在处理中，请稍后重试',
    'a cancel of this trade is in progress; call again shortly',
    {
      retryable: true,
    },
  );
}
