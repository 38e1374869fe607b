import { randomBytes } from 'node:crypto';
import type { App, Trade } from '../store/schema.js';
import type { WapOutcome } from '../channels/channel.js';
import { Errors, HospayError, declined } from '../domain/errors.js';
import { subFen, type Fen } from '../domain/money.js';
import { categorize } from '../domain/categories.js';
import { parseTimeoutExpress } from '../domain/timeout-express.js';
import type { OrderType, PayType } from '../domain/trade.js';
import { appCategories } from '../store/apps.js';
import { newTradeRow } from '../store/trade-row.js';
import { sha256Hex } from '../crypto/tokens.js';
import {
  checkRepeat,
  channelContext,
  channelFor,
  enabledPayTypes,
  guarded,
  newTradeNo,
  type ServiceDeps,
} from './deps.js';

export interface QrPayCommand {
  app: App;
  outTradeNo: string;
  amountFen: Fen;
  subject: string;
  body?: string | undefined;
  tradeDetail?: string | undefined;
  orderType: OrderType;
  timeoutExpress?: string | undefined;
  payType?: PayType | undefined;
  patientName: string;
  tel?: string | undefined;
  inhospitalNo: string;
}

export interface QrPayResult {
  trade: Trade;
  codeUrl: string;
}

export const DEFAULT_TIMEOUT_EXPRESS = '20m';

/**
 * QR pay (spec 5.5): the kiosk shows a code. With PayType, the code is the channel's; without it (aggregated
 * payment) it is our cashier page, which sends the payer on to the channel of the app they scanned with.
 */
export async function qrPay(deps: ServiceDeps, cmd: QrPayCommand): Promise<QrPayResult> {
  const now = deps.clock.now();
  const timeoutExpress = cmd.timeoutExpress ?? DEFAULT_TIMEOUT_EXPRESS;
  const expiresAt = parseTimeoutExpress(timeoutExpress, now);
  if (!expiresAt)
    throw Errors.invalidField('TimeoutExpress', '取值范围 1m～15d 或 1c', 'must be 1m–15d (m, h, d) or 1c');
  const ch = cmd.payType ? channelFor(deps, cmd.app, cmd.payType) : null;
  // Aggregated: the cashier offers the enabled pay types; with none, there is nothing to offer.
  if (!cmd.payType && enabledPayTypes(deps, cmd.app).length === 0) throw Errors.payTypeNotEnabled();
  const fingerprint = sha256Hex(
    JSON.stringify([
      'qrcode',
      cmd.amountFen,
      cmd.payType ?? '',
      cmd.subject,
      cmd.body ?? '',
      cmd.tradeDetail ?? '',
      cmd.orderType,
      timeoutExpress,
      cmd.patientName,
      cmd.tel ?? '',
      cmd.inhospitalNo,
    ]),
  );
  const cashierToken = cmd.payType ? null : randomBytes(18).toString('base64url');
  const { trade, inserted } = await deps.trades.insertOrGet(
    newTradeRow({
      trade_no: newTradeNo(now),
      app_id: cmd.app.id,
      out_trade_no: cmd.outTradeNo,
      kind: 'qrcode',
      pay_type: cmd.payType ?? null,
      channel: ch?.id ?? null,
      category: categorize(cmd.outTradeNo, appCategories(cmd.app)),
      order_type: cmd.orderType,
      total_fen: cmd.amountFen,
      subject: cmd.subject,
      body: cmd.body ?? null,
      hospital_id: cmd.app.hospital_id,
      patient_name: cmd.patientName,
      inhospital_no: cmd.inhospitalNo,
      tel: cmd.tel ?? null,
      trade_detail: cmd.tradeDetail ?? null,
      timeout_express: timeoutExpress,
      fingerprint,
      code_url: cashierToken ? cashierUrl(deps, cashierToken) : null,
      cashier_token: cashierToken,
      created_at: now,
      expires_at: expiresAt,
    }),
  );
  if (!inserted) {
    checkRepeat(trade, 'qrcode', fingerprint, {
      openOnly: true,
      sameOrder: (t) =>
        t.total_fen === cmd.amountFen &&
        t.patient_name === cmd.patientName &&
        t.inhospital_no === cmd.inhospitalNo,
    });
    if (trade.code_url) return { trade, codeUrl: trade.code_url };
  }
  if (!trade.pay_type) {
    // Aggregated: the code is our cashier page; the channel trade is made when the payer scans.
    return { trade, codeUrl: trade.code_url ?? '' };
  }
  const codeUrl = await openChannelTrade(deps, cmd.app, trade);
  await deps.trades.setChannelCode(
    trade.id,
    {
      channelCodeUrl: codeUrl.channelCodeUrl,
      channelTradeNo: codeUrl.channelTradeNo,
      codeUrl: codeUrl.channelCodeUrl,
    },
    deps.clock.now(),
  );
  return { trade, codeUrl: codeUrl.channelCodeUrl };
}

export function cashierUrl(deps: ServiceDeps, token: string, kind: 'qrcode' | 'h5' = 'qrcode'): string {
  return kind === 'h5'
    ? `${deps.config.publicBaseUrl}/goto/${token}`
    : `${deps.config.publicBaseUrl}/cashier/qr/${token}`;
}

/**
 * Creates the trade at its channel: precreate for a QR code, wap pay for H5. Only the cash part is paid there.
 * A refusal closes our trade; an unknown outcome leaves it open.
 */
export async function openChannelTrade(
  deps: ServiceDeps,
  app: App | { id: string; channel_map: string },
  trade: Trade,
  payerClientIp?: string,
): Promise<{ channelCodeUrl: string; channelTradeNo: string | null }> {
  const payType = trade.pay_type as PayType;
  const channel = trade.channel ? deps.channels.get(trade.channel) : undefined;
  if (!channel) throw Errors.payTypeNotEnabled(payType);
  const ctx = await channelContext(deps, app.id, trade.channel ?? '');
  const input = {
    outTradeNo: trade.out_trade_no,
    payType,
    amountFen: subFen(trade.total_fen, trade.insurance_fen),
    subject: trade.subject,
    expiresAt: trade.expires_at,
  };
  let call: () => Promise<WapOutcome>;
  if (trade.kind === 'h5') {
    const wapPay = channel.wapPay?.bind(channel);
    if (!wapPay) throw Errors.payTypeNotEnabled(payType);
    const returnUrl = `${deps.config.publicBaseUrl}/goto/${trade.cashier_token ?? ''}/return`;
    call = () => wapPay(ctx, { ...input, returnUrl, ...(payerClientIp ? { payerClientIp } : {}) });
  } else {
    const precreate = channel.precreate?.bind(channel);
    if (!precreate) throw Errors.payTypeNotEnabled(payType);
    call = () => precreate(ctx, input);
  }
  const outcome = await guarded<WapOutcome>(
    deps,
    trade.kind === 'h5' ? 'wapPay' : 'precreate',
    { kind: 'failed', code: 'CHANNEL_ERROR', zh: '', en: '', retryable: true },
    call,
  );
  if (outcome.kind === 'created')
    return { channelCodeUrl: outcome.codeUrl, channelTradeNo: outcome.channelTradeNo ?? null };
  // TODO(issue 14 §3): a form to post to the channel's cashier (UnionPay WAP) is served by the hosted cashier.
  if (outcome.kind === 'form') throw Errors.channelError();
  if (outcome.retryable) throw Errors.channelError();
  await deps.trades.markClosedUnpaid(trade.id, null, deps.clock.now());
  throw declined(outcome.code, outcome.zh, outcome.en);
}

export type CashierChoice =
  | { kind: 'redirect'; url: string }
  | { kind: 'status'; trade: Trade }
  | { kind: 'other_pay_type'; trade: Trade }
  | { kind: 'error'; error: HospayError; trade: Trade };

/**
 * The payer scanned an aggregated code with `payType`'s app. The first choice sticks: a trade is never open at
 * two channels at once, so it can never be paid twice.
 */
export async function chooseCashierPayType(
  deps: ServiceDeps,
  token: string,
  payType: PayType,
  payerClientIp?: string,
): Promise<CashierChoice | null> {
  let trade = await deps.trades.byCashierToken(token);
  if (!trade) return null;
  if (trade.status !== 'WAIT_BUYER_PAY') return { kind: 'status', trade };
  const app = await deps.apps.get(trade.app_id);
  if (!app) return null;
  if (!trade.pay_type) {
    let ch;
    try {
      ch = channelFor(deps, app, payType);
    } catch (e) {
      if (e instanceof HospayError) return { kind: 'error', error: e, trade };
      throw e;
    }
    trade =
      (await deps.trades.choosePayType(trade.id, payType, ch.id, deps.clock.now())) ??
      (await deps.trades.byId(trade.id)) ??
      trade;
  }
  if (trade.pay_type !== payType) return { kind: 'other_pay_type', trade };
  if (trade.channel_code_url) return { kind: 'redirect', url: trade.channel_code_url };
  try {
    const opened = await openChannelTrade(deps, app, trade, payerClientIp);
    await deps.trades.setChannelCode(trade.id, opened, deps.clock.now());
    return { kind: 'redirect', url: opened.channelCodeUrl };
  } catch (e) {
    if (e instanceof HospayError) return { kind: 'error', error: e, trade };
    throw e;
  }
}
