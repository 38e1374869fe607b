import { randomBytes } from 'node:crypto';
import type { App, Trade } from '../store/schema.js';
import type { Channel, InAppPayOutcome, WapOutcome } from '../channels/channel.js';
import { Errors, HospayError, declined } from '../domain/errors.js';
import { subFen, type Fen } from '../domain/money.js';
import { categorize } from '../domain/categories.js';
import { parseTimeoutExpress } from '../domain/timeout-express.js';
import type { OrderType, PayType } from '../domain/trade.js';
import { appCategories } from '../store/apps.js';
import { tradeExtra } from '../store/trade-row.js';
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
import { observeTradeOutcome } from '../metrics.js';

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
  const { trade, inserted } = await deps.trades.insertNewOrGet({
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
  });
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
  const outcome = await channelWapOutcome(deps, app, trade, payerClientIp);
  observeTradeOutcome(trade.kind === 'h5' ? 'h5_pay' : 'qr_pay', trade.pay_type, trade.channel, outcome.kind);
  if (outcome.kind === 'created')
    return { channelCodeUrl: outcome.codeUrl, channelTradeNo: outcome.channelTradeNo ?? null };
  // A form to post to the channel's cashier (UnionPay WAP): the payer goes to hospay's form page, which asks the
  // channel for the (locally signed) form again each time and posts it (cashier.ts, /goto/<token>/form).
  if (outcome.kind === 'form')
    return {
      channelCodeUrl: `${cashierUrl(deps, trade.cashier_token ?? '', 'h5')}/form`,
      channelTradeNo: outcome.channelTradeNo ?? null,
    };
  if (outcome.retryable) throw Errors.channelError();
  await deps.trades.markClosedUnpaid(trade.id, null, deps.clock.now());
  throw declined(outcome.code, outcome.zh, outcome.en);
}

/** The channel's answer to precreate (QR) or wap pay (H5) for an open trade, as it is. */
async function channelWapOutcome(
  deps: ServiceDeps,
  app: App | { id: string; channel_map: string },
  trade: Trade,
  payerClientIp?: string,
): Promise<WapOutcome> {
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
    // A channel that finds the trade again by a time of its own (UnionPay's txnTime) sends this one, so that a
    // form asked for again, and the later query, name the same order.
    createdAt: trade.created_at,
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
  return guarded<WapOutcome>(
    deps,
    trade.kind === 'h5' ? 'wapPay' : 'precreate',
    { kind: 'failed', code: 'CHANNEL_ERROR', zh: '', en: '', retryable: true },
    call,
  );
}

/**
 * The payer's id in the in-app channel as the HIS passed it with the trade (lc.trade.h5.pay / lc.ssc.trade.pay
 * biz_content `sub_openid` or `openid`, kept in the trade's extra): sub_openid (the openid under a service
 * provider's sub_appid) first, then openid. Undefined when the HIS passed none.
 */
export function hisPayerId(trade: Pick<Trade, 'extra'>): string | undefined {
  const extra: Record<string, unknown> = tradeExtra(trade);
  for (const k of ['sub_openid', 'openid']) {
    const v = extra[k];
    if (typeof v === 'string' && PAYER_ID.test(v)) return v;
  }
  return undefined;
}

/** An in-app payer id (WeChat openid): 1–128 of [A-Za-z0-9_-]. */
export const PAYER_ID = /^[A-Za-z0-9_-]{1,128}$/;

/** The answer of inAppPay for the page or the HIS: the bridge parameters, as the channel signed them. */
export interface InAppOrder {
  bridge: Readonly<Record<string, string>>;
  channelTradeNo: string | null;
}

/**
 * Creates (or finds again: the same out_trade_no and parameters give the same order at the channel) the in-app
 * order of an open trade for the payer `payerId`, and records it on the trade like openChannelTrade does. The
 * trade's channel_code_url becomes hospay's own cashier page, where the payer pays (in the app). A refusal
 * closes the trade, as for precreate and wap pay; an unclear answer is CHANNEL_ERROR and leaves it open.
 */
export async function openInAppTrade(
  deps: ServiceDeps,
  app: App | { id: string },
  trade: Trade,
  payerId: string,
  payerClientIp?: string,
): Promise<InAppOrder> {
  const channel = trade.channel ? deps.channels.get(trade.channel) : undefined;
  const inAppPay = channel?.inAppPay?.bind(channel);
  if (!inAppPay) throw Errors.payTypeNotEnabled(trade.pay_type ?? '');
  if (!PAYER_ID.test(payerId)) throw Errors.invalidField('openid', '格式无效', 'is not a valid openid');
  const ctx = await channelContext(deps, app.id, trade.channel ?? '');
  const outcome = await guarded<InAppPayOutcome>(
    deps,
    'inAppPay',
    { kind: 'failed', code: 'CHANNEL_ERROR', zh: '', en: '', retryable: true },
    () =>
      inAppPay(ctx, {
        outTradeNo: trade.out_trade_no,
        payType: trade.pay_type as PayType,
        amountFen: subFen(trade.total_fen, trade.insurance_fen),
        subject: trade.subject,
        expiresAt: trade.expires_at,
        payerId,
        ...(payerClientIp ? { payerClientIp } : {}),
      }),
  );
  observeTradeOutcome('in_app_pay', trade.pay_type, trade.channel, outcome.kind);
  if (outcome.kind === 'created') {
    const channelTradeNo = outcome.channelTradeNo ?? trade.channel_trade_no ?? null;
    await deps.trades.setChannelCode(
      trade.id,
      { channelCodeUrl: inAppMarker(deps, trade), channelTradeNo },
      deps.clock.now(),
    );
    return { bridge: outcome.bridge, channelTradeNo };
  }
  if (outcome.retryable) throw Errors.channelError();
  await deps.trades.markClosedUnpaid(trade.id, null, deps.clock.now());
  throw declined(outcome.code, outcome.zh, outcome.en);
}

/** What an in-app trade's channel_code_url holds: hospay's own cashier page for it (the payer pays in the app). */
function inAppMarker(deps: ServiceDeps, trade: Trade): string {
  return cashierUrl(deps, trade.cashier_token ?? '', trade.kind === 'h5' ? 'h5' : 'qrcode');
}

/**
 * The form an H5 trade's channel posts to its cashier (UnionPay WAP), asked for again (it is signed locally, no
 * call to the provider). Null when the trade is not open at a channel that answers with a form. The action is
 * the channel's (from the app's configuration), never the caller's; it must be https, or http on a loopback
 * host (the test fakes).
 */
export async function channelForm(
  deps: ServiceDeps,
  trade: Trade,
  payerClientIp?: string,
): Promise<{ action: string; fields: Readonly<Record<string, string>> } | { error: HospayError } | null> {
  if (trade.kind !== 'h5' || trade.status !== 'WAIT_BUYER_PAY' || !trade.pay_type || !trade.channel)
    return null;
  const app = await deps.apps.get(trade.app_id);
  if (!app) return null;
  const outcome = await channelWapOutcome(deps, app, trade, payerClientIp);
  if (outcome.kind !== 'form') {
    if (outcome.kind === 'failed') return { error: Errors.channelError() };
    return null;
  }
  if (!safeFormAction(outcome.action)) {
    deps.log.warn({ channel: trade.channel }, 'channel form action is not https: refused');
    return { error: Errors.channelError() };
  }
  return { action: outcome.action, fields: outcome.fields };
}

/** An https URL, or http on a loopback host (a test fake); no userinfo. */
export function safeFormAction(action: string): boolean {
  let u: URL;
  try {
    u = new URL(action);
  } catch {
    return false;
  }
  if (u.username !== '' || u.password !== '') return false;
  if (u.protocol === 'https:') return true;
  return (
    u.protocol === 'http:' &&
    (u.hostname === '127.0.0.1' || u.hostname === 'localhost' || u.hostname === '[::1]')
  );
}

export type CashierChoice =
  | { kind: 'redirect'; url: string }
  | { kind: 'status'; trade: Trade }
  | { kind: 'other_pay_type'; trade: Trade }
  | { kind: 'error'; error: HospayError; trade: Trade }
  /** In the app: the page hands `bridge` to the app's JS bridge. */
  | { kind: 'in_app'; trade: Trade; bridge: Readonly<Record<string, string>> }
  /** In the app, payer unknown: send the payer to the provider's OAuth (silent), back to redirectUri. */
  | { kind: 'authorize'; trade: Trade; url: string }
  /** In the app, payer unknown and no OAuth: the app refuses mobile-web pay inside it; open in a browser. */
  | { kind: 'open_in_browser'; trade: Trade }
  /** Outside the app, for a trade already ordered in the app: pay in the app. */
  | { kind: 'in_app_only'; trade: Trade };

/** How the page was opened inside the provider's own app (WeChat): who the payer is, or how to ask. */
export interface InAppContext {
  /** The payer's id learned through OAuth on this browser (the HIS-passed one in the trade wins). */
  payerId?: string | undefined;
  /** Where the OAuth sends the payer back (hospay's own fixed path) and the state bound to this browser. */
  authorize: { redirectUri: string; state: string };
}

/**
 * The payer scanned an aggregated code with `payType`'s app. The first choice sticks: a trade is never open at
 * two channels at once, so it can never be paid twice.
 *
 * `inApp`: the page is open inside the app of `payType` (WeChat). When the channel pays in the app (inAppPay),
 * the payer's id comes from the HIS (the trade's openid), or from `inApp.payerId` (OAuth done), or the payer is
 * sent to the OAuth; with neither, an H5 trade gets "open in a browser" (WeChat refuses H5 pay inside WeChat),
 * a QR trade today's path.
 */
export async function chooseCashierPayType(
  deps: ServiceDeps,
  token: string,
  payType: PayType,
  payerClientIp?: string,
  inApp?: InAppContext,
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
  const channel: Channel | undefined = trade.channel ? deps.channels.get(trade.channel) : undefined;
  try {
    // A trade already ordered for mobile web (its channel_code_url is the channel's page) stays on that path:
    // the channel would refuse a second kind of order under the same out_trade_no.
    const orderedElsewhere = !!trade.channel_code_url && trade.channel_code_url !== inAppMarker(deps, trade);
    if (inApp && channel?.inAppPay && !orderedElsewhere) {
      const payerId = hisPayerId(trade) ?? inApp.payerId;
      if (payerId) {
        const order = await openInAppTrade(deps, app, trade, payerId, payerClientIp);
        return { kind: 'in_app', trade, bridge: order.bridge };
      }
      const ctx = await channelContext(deps, app.id, trade.channel ?? '');
      let url: string | null = null;
      try {
        url = channel.payerIdAuthorizeUrl?.(ctx, inApp.authorize) ?? null;
      } catch (e) {
        deps.log.warn(
          { channel: trade.channel, err: e instanceof Error ? e.message : String(e) },
          'payer OAuth URL refused',
        );
      }
      if (url) return { kind: 'authorize', trade, url };
      if (trade.kind === 'h5') return { kind: 'open_in_browser', trade };
    }
    if (trade.channel_code_url) {
      if (trade.channel_code_url === inAppMarker(deps, trade)) return { kind: 'in_app_only', trade };
      return { kind: 'redirect', url: trade.channel_code_url };
    }
    const opened = await openChannelTrade(deps, app, trade, payerClientIp);
    await deps.trades.setChannelCode(trade.id, opened, deps.clock.now());
    return { kind: 'redirect', url: opened.channelCodeUrl };
  } catch (e) {
    if (e instanceof HospayError) return { kind: 'error', error: e, trade };
    throw e;
  }
}

/** How long an OAuth code is remembered as spent (WeChat's codes live 5 minutes). */
const PAYER_CODE_MEMORY_MS = 10 * 60_000;

export type PayerIdResult =
  { kind: 'ok'; payerId: string } | { kind: 'replayed' } | { kind: 'failed'; zh: string; en: string };

/**
 * The OAuth came back with `code` for an open trade: the code is spent once (a second use is refused before the
 * provider is asked, remembered with the gateway's spent nonces, per app, as `oauth:<sha256(code)>`), then
 * exchanged for the payer's id. The id is returned, never logged or recorded in clear.
 */
export async function payerIdFromOAuthCode(
  deps: ServiceDeps,
  trade: Trade,
  code: string,
): Promise<PayerIdResult> {
  const channel = trade.channel ? deps.channels.get(trade.channel) : undefined;
  const exchange = channel?.payerIdFromCode?.bind(channel);
  if (!exchange)
    return { kind: 'failed', zh: '该支付渠道不支持网页授权', en: 'the channel has no payer OAuth' };
  const fresh = await deps.nonces.claim({
    appId: trade.app_id,
    nonce: `oauth:${sha256Hex(code)}`,
    expiresAt: new Date(deps.clock.now().getTime() + PAYER_CODE_MEMORY_MS),
    consumed: false,
  });
  if (!fresh) return { kind: 'replayed' };
  const ctx = await channelContext(deps, trade.app_id, trade.channel ?? '');
  const r = await guarded<Awaited<ReturnType<typeof exchange>>>(
    deps,
    'payerIdFromCode',
    { kind: 'failed', code: 'CHANNEL_ERROR', zh: '渠道无应答', en: 'no answer from the channel' },
    () => exchange(ctx, { code }),
  );
  if (r.kind === 'ok' && PAYER_ID.test(r.payerId)) return { kind: 'ok', payerId: r.payerId };
  if (r.kind === 'ok')
    return { kind: 'failed', zh: '渠道返回的用户标识无效', en: 'the channel gave an invalid payer id' };
  return { kind: 'failed', zh: r.zh, en: r.en };
}

/**
 * lc.ssc.trade.pay with the payer's openid (sub_openid / openid in biz_content): the in-app (JSAPI) order for
 * the cash part at once, so the HIS can call the JS bridge itself (paystr). Null when there is nothing to order
 * that way: no openid, the trade is not open (e.g. nothing left to pay in cash), or its channel has no in-app pay
 * (e.g. the simulator). A channel failure throws (CHANNEL_ERROR, or the refusal, which closes the trade).
 */
export async function inAppOrderForHis(
  deps: ServiceDeps,
  app: App,
  trade: Trade,
): Promise<InAppOrder | null> {
  const payerId = hisPayerId(trade);
  if (!payerId || trade.status !== 'WAIT_BUYER_PAY' || !trade.pay_type || !trade.channel) return null;
  if (!deps.channels.get(trade.channel)?.inAppPay) return null;
  return openInAppTrade(deps, app, trade, payerId);
}
