import { randomUUID } from 'node:crypto';
import type { Trade } from '../../services/records.js';
import type { ServiceDeps } from '../../services/deps.js';
import { tradeExtra } from '../../services/h5-pay.js';
import { formatShanghai } from '../../domain/clock.js';
import { parseSignType, signPlatformParamsAsync, unsignableReason } from '../../crypto/signing.js';
import { Errors } from '../../domain/errors.js';
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
  // Only those that cannot split the signed content (checked at lc.trade.h5.pay; a return_url stored before
  // that check keeps only its safe parameters).
  const params: Record<string, string> = {};
  for (const [k, v] of url.searchParams)
    if (!RESERVED.has(k) && unsignableReason({ [k]: v }) === null) params[k] = v;
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
  params['sign'] = await signPlatformParamsAsync(params, key.privateKey, signType);
  url.search = new URLSearchParams(params).toString();
  return url.toString();
}

/** The parameters the platform sets on a return redirect; a return_url may not bring its own. */
const RESERVED = new Set([
  'app_id',
  'biz_content',
  'charset',
  'code',
  'method',
  'msg',
  'nonce_str',
  'notify_id',
  'sign',
  'sign_type',
  'timestamp',
  'version',
]);

/**
 * Checks a return_url's own query parameters at lc.trade.h5.pay: they are signed with the redirect, so each
 * must be a plain key ([A-Za-z0-9_]) with a value free of `&` (after decoding), and none may be one of the
 * redirect's own parameters. Otherwise the HIS could have the platform sign text of its choosing.
 */
export function checkReturnUrlParams(field: string, returnUrl: string | undefined): void {
  if (!returnUrl) return;
  const url = new URL(returnUrl);
  const seen = new Set<string>();
  for (const [k, v] of url.searchParams) {
    if (RESERVED.has(k) || seen.has(k) || unsignableReason({ [k]: v }) !== null)
      throw Errors.invalidField(
        field,
        `查询参数 ${k.slice(0, 32)} 不可用：参数名须为字母、数字或下划线，不得重复或与回调参数同名，值不得含 &`,
        `query parameter ${k.slice(0, 32)} is not allowed: names must be letters, digits or _, unique and not one of the redirect's own parameters, and values must not contain &`,
      );
    seen.add(k);
  }
}
