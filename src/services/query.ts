import type { App, Trade } from '../store/schema.js';
import { Errors } from '../domain/errors.js';
import type { ServiceDeps } from './deps.js';
import { refreshTrade } from './sync.js';

/** Query (spec 5.2): the trade's state; a trade that is not final is asked at its channel first. */
export async function queryTrade(deps: ServiceDeps, app: App, outTradeNo: string): Promise<Trade> {
  const trade = await deps.trades.byOutTradeNo(app.id, outTradeNo);
  if (!trade) throw Errors.tradeNotExist();
  return refreshTrade(deps, trade);
}
