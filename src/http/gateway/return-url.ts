import { randomUUID } from 'node:crypto';
import type { Trade } from '../../store/schema.js';
import type { ServiceDeps } from '../../services/deps.js';
import { tradeExtra } from '../../services/h5-pay.js';
import { formatShanghai } from '../../domain/clock.js';
import { parseSignType, signParamsAsync } from '../../crypto/signing.js';
import { bizText, money } from './envelope.js';

/**
 * The redirect to the HIS's return_url after an H5 payment, exactly as the spec's example: method
 * lc.trade.h5.pay.return, code 10000, msg 支付回调, biz_content with trade_status, out_trade_no, trade_no,
 * total_amount, and sub_code 5001 (用户取消) when the payer gave up. Signed with the platform key by the
 * gateway's rule, with the sign_type the HIS used for lc.trade.h5.pay.
 */
export async function signedReturnUrl(deps: ServiceDeps, trade: Trade): Promise<string> {
  const cancelled = trade.status === 'TRADE_CLOSED' && !trade.paid_at;
  const biz = {
    ...(cancelled ? { sub_code: '5001', sub_msg: '用户取消' } : {}),
    out_trade_no: trade.out_trade_no,
    trade_no: trade.channel_trade_no ?? '',
    platform_trade_no: trade.trade_no,
    total_amount: money(trade.total_fen),
    trade_status: trade.status,
  };
  const signType = parseSignType(tradeExtra(trade)['sign_type']) ?? 'RSA2';
  const url = new URL(trade.return_url ?? '');
  // The HIS's own query parameters stay, and are signed too: "every parameter except sign" verifies as it is.
  const params: Record<string, string> = Object.fromEntries(url.searchParams);
  Object.assign(params, {
    app_id: trade.app_id,
    biz_content: bizText(biz),
    code: '10000',
    method: 'lc.trade.h5.pay.return',
    msg: '支付回调',
    nonce_str: randomUUID(),
    sign_type: signType,
    timestamp: formatShanghai(deps.clock.now()),
  });
  delete params['sign'];
  const key = await deps.keys.active();
  params['sign'] = await signParamsAsync(params, key.privateKey, signType);
  url.search = new URLSearchParams(params).toString();
  return url.toString();
}
