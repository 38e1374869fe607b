import type { Trade } from '../store/schema.js';
import type { QueryOutcome } from '../channels/channel.js';
import { channelContext, channelOfTrade, guarded, type ServiceDeps } from './deps.js';
import { CANCEL_REQUEST_NO, type PayType } from '../domain/trade.js';
import { observeTradeOutcome } from '../metrics.js';

/**
 * Applies what a channel says about a waiting trade. Only clear answers change anything; "waiting",
 * "not found" and "unknown" leave the trade waiting (to be queried again or closed by the expiry job).
 */
export async function applyQueryOutcome(deps: ServiceDeps, trade: Trade, q: QueryOutcome): Promise<Trade> {
  const now = deps.clock.now();
  let updated: Trade | undefined;
  switch (q.kind) {
    case 'paid':
      updated = await deps.trades.markPaid(trade.id, q, now);
      break;
    case 'refunded':
      updated = await deps.trades.markPaidAndReversed(trade.id, q, now, CANCEL_REQUEST_NO);
      break;
    case 'closed':
      updated = await deps.trades.markClosedUnpaid(trade.id, null, now);
      break;
    case 'waiting':
    case 'not_found':
    case 'unknown':
      return trade;
  }
  // A lost race means someone else moved the trade: read what they wrote.
  return updated ?? (await deps.trades.byId(trade.id)) ?? trade;
}

/** Asks the channel about a trade that is not final yet. */
export async function queryChannel(deps: ServiceDeps, trade: Trade): Promise<QueryOutcome> {
  const channel = channelOfTrade(deps, trade);
  if (!channel || !trade.pay_type) return { kind: 'not_found' };
  const ref = {
    outTradeNo: trade.out_trade_no,
    payType: trade.pay_type as PayType,
    createdAt: trade.created_at,
    channelTradeNo: trade.channel_trade_no,
  };
  const outcome = await guarded(
    deps,
    'query',
    { kind: 'unknown', reason: 'exception' } as QueryOutcome,
    async () => channel.query(await channelContext(deps, trade.app_id, trade.channel ?? ''), ref),
  );
  observeTradeOutcome('query', trade.pay_type, trade.channel, outcome.kind);
  return outcome;
}

/**
 * Brings a trade up to date: a waiting trade is queried at its channel; a paid trade whose refund window is
 * over becomes TRADE_FINISHED.
 */
export async function refreshTrade(deps: ServiceDeps, trade: Trade): Promise<Trade> {
  if (trade.status === 'WAIT_BUYER_PAY' && trade.pay_type) {
    return applyQueryOutcome(deps, trade, await queryChannel(deps, trade));
  }
  if (trade.status === 'TRADE_SUCCESS' && trade.paid_at) {
    const now = deps.clock.now();
    const paidBefore = new Date(now.getTime() - deps.config.refundWindowMs);
    if (refundWindowOver(deps, trade)) {
      return (
        (await deps.trades.markFinished(trade.id, paidBefore, now)) ??
        (await deps.trades.byId(trade.id)) ??
        trade
      );
    }
  }
  return trade;
}

/** Whether a paid trade's refund window (HOSPAY_REFUND_WINDOW, counted from the payment) is over. */
export function refundWindowOver(deps: Pick<ServiceDeps, 'clock' | 'config'>, trade: Trade): boolean {
  return (
    trade.paid_at !== null &&
    trade.paid_at.getTime() <= deps.clock.now().getTime() - deps.config.refundWindowMs
  );
}
