import type { Trade } from '../store/schema.js';
import type { CancelOutcome, CloseOutcome } from '../channels/channel.js';
import { CANCEL_REQUEST_NO, type PayType } from '../domain/trade.js';
import { channelContext, channelOfTrade, guarded, type ServiceDeps } from './deps.js';
import { applyQueryOutcome, queryChannel } from './sync.js';

export type ExpireResult = 'paid' | 'closed' | 'reversed' | 'retry' | 'failed';

/**
 * Closes the loop on one unpaid trade past its deadline ("no one-sided accounts"): ask the channel first
 * (it may have been paid); then a barcode trade is cancelled (reversed if it was paid after all) and a QR / H5
 * trade is closed. Transient failures are retried later by the job.
 */
export async function expireTrade(deps: ServiceDeps, trade: Trade): Promise<ExpireResult> {
  const now = deps.clock.now();
  if (!trade.pay_type) {
    // Aggregated code that nobody scanned: there is no channel trade to close.
    return (await deps.trades.markClosedUnpaid(trade.id, null, now)) ? 'closed' : 'retry';
  }
  const after = await applyQueryOutcome(deps, trade, await queryChannel(deps, trade));
  if (after.status === 'TRADE_SUCCESS') return 'paid';
  if (after.status !== 'WAIT_BUYER_PAY') return 'closed';

  const channel = channelOfTrade(deps, trade);
  if (!channel) return 'failed';
  const ref = {
    outTradeNo: trade.out_trade_no,
    payType: trade.pay_type as PayType,
    createdAt: trade.created_at,
    channelTradeNo: trade.channel_trade_no,
  };
  const ctx = await channelContext(deps, trade.app_id, trade.channel ?? '');
  if (trade.kind === 'barcode') {
    const c = await guarded<CancelOutcome>(deps, 'cancel', { kind: 'retry', reason: 'exception' }, () =>
      channel.cancel(ctx, ref),
    );
    const at = deps.clock.now();
    if (c.kind === 'closed')
      return (await deps.trades.markClosedUnpaid(trade.id, 'close', at)) ? 'closed' : 'retry';
    if (c.kind === 'refunded') {
      return (await deps.trades.markPaidAndReversed(trade.id, c, at, CANCEL_REQUEST_NO))
        ? 'reversed'
        : 'retry';
    }
    if (c.kind === 'failed') {
      deps.log.error(
        { tradeNo: trade.trade_no, code: c.code },
        'expiry: cancel refused by the channel; needs an operator',
      );
      return 'failed';
    }
    return 'retry';
  }
  const c = await guarded<CloseOutcome>(deps, 'close', { kind: 'retry', reason: 'exception' }, () =>
    channel.close(ctx, ref),
  );
  const at = deps.clock.now();
  if (c.kind === 'closed')
    return (await deps.trades.markClosedUnpaid(trade.id, null, at)) ? 'closed' : 'retry';
  if (c.kind === 'paid') return (await deps.trades.markPaid(trade.id, c, at)) ? 'paid' : 'retry';
  return 'retry';
}
