import { randomBytes } from 'node:crypto';
import type { App, Trade } from '../store/schema.js';
import type { GatewayNonce } from '../store/nonces.js';
import { Errors } from '../domain/errors.js';
import { ZERO_FEN, type Fen } from '../domain/money.js';
import { categorize } from '../domain/categories.js';
import { parseTimeoutExpress } from '../domain/timeout-express.js';
import type { OrderType } from '../domain/trade.js';
import { appCategories } from '../store/apps.js';
import { sha256Hex } from '../crypto/tokens.js';
import { checkRepeat, enabledPayTypes, newTradeNo, type ServiceDeps } from './deps.js';
import { cashierUrl, DEFAULT_TIMEOUT_EXPRESS } from './qr-pay.js';
import { checkNotifyUrlText, notifyPolicy } from './notify-target.js';

export interface H5PayCommand {
  app: App;
  outTradeNo: string;
  amountFen: Fen;
  subject: string;
  body?: string | undefined;
  timeoutExpress?: string | undefined;
  returnUrl?: string | undefined;
  notifyUrl?: string | undefined;
  orderType: OrderType;
  /** Kept with the trade: disable_pay_channels, business_params, agreement_sign_params, the request's sign_type. */
  extra: Record<string, string | undefined>;
  /** Mixed payment (lc.ssc.trade.pay): the insurance part and the hospital's reduction. */
  insuranceFen?: Fen | undefined;
  reducedFen?: Fen | undefined;
  patientName?: string | undefined;
  operatorId?: string | undefined;
  /** The gateway request's nonce, stored with the trade in one statement (see TradeRepository.insertOrGet). */
  nonce?: GatewayNonce | undefined;
}

/**
 * Refuses a notify_url that visibly points inside (INVALID_FIELD.notify_url): an IP address that is loopback,
 * link-local, metadata, reserved, or private and not in the app's allow-list; `localhost`; userinfo; not http(s).
 * A host name is checked again, with the addresses it resolves to, at each delivery (notify-http.ts).
 */
export function checkNotifyUrlFor(
  deps: Pick<ServiceDeps, 'config'>,
  app: Pick<App, 'notify_private_cidrs'>,
  url: string | undefined,
): void {
  if (url === undefined) return;
  const why = checkNotifyUrlText(
    url,
    notifyPolicy(deps.config.notify.allowLoopback, app.notify_private_cidrs),
  );
  if (why) throw Errors.invalidField('notify_url', why.zh, why.en);
}

/**
 * H5 pay (spec 6.1): creates the trade and answers goto_url, our hosted page, which sends the payer to the
 * cashier of the app they opened it in (Alipay / WeChat / UnionPay), or lets them choose.
 * Same validation and idempotency as the offline door: the same out_trade_no with the same content answers the
 * same goto_url; with other content it is refused; for a paid order it answers TradeAlreadyPaid (the paid trade).
 */
export async function h5Pay(
  deps: ServiceDeps,
  cmd: H5PayCommand,
): Promise<{ trade: Trade; gotoUrl: string }> {
  checkNotifyUrlFor(deps, cmd.app, cmd.notifyUrl);
  const now = deps.clock.now();
  // The payer chooses among the app's enabled pay types on the goto page; with none, there is nothing to offer.
  if (enabledPayTypes(deps, cmd.app).length === 0) throw Errors.payTypeNotEnabled();
  const timeoutExpress = cmd.timeoutExpress ?? DEFAULT_TIMEOUT_EXPRESS;
  const expiresAt = parseTimeoutExpress(timeoutExpress, now);
  if (!expiresAt)
    throw Errors.invalidField('timeout_express', '取值范围 1m～15d 或 1c', 'must be 1m–15d (m, h, d) or 1c');
  const extra = Object.fromEntries(Object.entries(cmd.extra).filter(([, v]) => v !== undefined));
  const fingerprint = sha256Hex(
    JSON.stringify([
      'h5',
      cmd.amountFen,
      cmd.subject,
      cmd.body ?? '',
      timeoutExpress,
      cmd.returnUrl ?? '',
      cmd.notifyUrl ?? '',
      cmd.orderType,
      cmd.insuranceFen ?? 0,
      cmd.reducedFen ?? 0,
      // The signature type is how the request was signed, not what was ordered.
      Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'sign_type')),
    ]),
  );
  const token = randomBytes(18).toString('base64url');
  const { trade, inserted } = await deps.trades.insertNewOrGet(
    {
      trade_no: newTradeNo(now),
      app_id: cmd.app.id,
      out_trade_no: cmd.outTradeNo,
      kind: 'h5',
      category: categorize(cmd.outTradeNo, appCategories(cmd.app)),
      order_type: cmd.orderType,
      total_fen: cmd.amountFen,
      subject: cmd.subject,
      body: cmd.body ?? null,
      operator_id: cmd.operatorId ?? null,
      hospital_id: cmd.app.hospital_id,
      patient_name: cmd.patientName ?? null,
      timeout_express: timeoutExpress,
      fingerprint,
      code_url: cashierUrl(deps, token, 'h5'),
      cashier_token: token,
      created_at: now,
      expires_at: expiresAt,
      notify_url: cmd.notifyUrl ?? null,
      return_url: cmd.returnUrl ?? null,
      extra: JSON.stringify(extra),
      insurance_fen: cmd.insuranceFen ?? ZERO_FEN,
      reduced_fen: cmd.reducedFen ?? ZERO_FEN,
    },
    cmd.nonce,
  );
  if (!inserted)
    checkRepeat(trade, 'h5', fingerprint, {
      openOnly: true,
      sameOrder: (t) => t.total_fen === cmd.amountFen,
    });
  return { trade, gotoUrl: trade.code_url ?? '' };
}

export { tradeExtra } from '../store/trade-row.js';
