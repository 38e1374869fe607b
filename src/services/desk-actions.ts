import { randomBytes } from 'node:crypto';
import { can, seesApp, appScope, type Permission, type Principal } from '../domain/access.js';
import { Errors, HospayError } from '../domain/errors.js';
import { formatFen, parsePositiveYuan, subFen, ZERO_FEN, type Fen } from '../domain/money.js';
import type { App, Notification, Trade } from '../store/schema.js';
import type { DeskRequest } from '../store/desk-requests.js';
import type { ServiceDeps } from './deps.js';
import { isPaid } from './deps.js';
import { queryTrade } from './query.js';
import { resendNotification } from './notify.js';
import { expireTrade } from './expire.js';
import { refundTrade } from './refund.js';
import { cancelTrade } from './cancel.js';
import { refundWindowOver } from './sync.js';
import { scrubText } from '../formats/redact.js';

/**
 * The desk's actions on a trade (docs/operations.md, "Desk actions"), each for a Principal: query the channel now,
 * resend the notification, close an unpaid trade, and the money actions (refund, cancel) with their maker–checker
 * approval. Every action checks the permission and the hospital scope (another hospital's trade is "not found"),
 * goes through the same use case as the HIS's request (query, notify, expire, refund, cancel: the same guards,
 * reservation, lease and idempotency) and writes the audit trail.
 *
 * A money request gets its own OutRequestNo ("DESK" + the form's one-time token): a form submitted twice finds
 * the same request, and executing a request twice asks the refund service twice with one request number, which
 * never refunds twice.
 */

/** The short, fixed outcome codes the pages turn into messages (never the caller's input). */
export const DESK_OUTCOMES = [
  'queried',
  'query_final',
  'resent',
  'no_notification',
  'closed',
  'close_reversed',
  'close_paid',
  'close_not_open',
  'close_became_paid',
  'close_retry',
  'close_failed',
  'refund_pending',
  'refund_done',
  'refund_failed',
  'refund_processing',
  'cancel_pending',
  'cancel_done',
  'cancel_failed',
  'cancel_processing',
  'duplicate',
  'invalid_amount',
  'invalid_reason',
  'invalid_form',
  'refused',
  'self_approval',
  'already_decided',
  'rejected',
  'not_retryable',
  'error',
] as const;
export type DeskOutcome = (typeof DESK_OUTCOMES)[number];

export type DeskActionResult =
  | { kind: 'forbidden' }
  | { kind: 'not_found' }
  | {
      kind: 'done';
      outcome: DeskOutcome;
      /** The use case's error code, when it refused (REFUND_AMOUNT_EXCEEDED, TRADE_NOT_PAID, …). */
      errorCode?: string;
      /** The trade the action was on (the page goes back to it). */
      appId: string;
      outTradeNo: string;
      requestId?: number;
    };

/** What the service stores as a request's result (desk_requests.result, JSON). */
export interface DeskRequestResult {
  status: 'SUCCESS' | 'FAILED' | 'PROCESSING';
  code?: string;
  /** "中文 / English", the use case's own message. */
  message?: string;
  /** A refund: the trade's refunded total afterwards (fen). */
  refundedFen?: number;
  /** A cancel: what it did. */
  action?: 'close' | 'refund';
}

export const REASON_MAX_CHARS = 256;
const FORM_TOKEN = /^[A-F0-9]{20}$/;

/** A one-time token for a money request form: its request number is "DESK" + the token. */
export function newDeskFormToken(): string {
  return randomBytes(10).toString('hex').toUpperCase();
}

// ---- reading ---------------------------------------------------------------------------------------------

export interface TradeActionsView {
  app: App;
  trade: Trade;
  /** Newest first. */
  requests: DeskRequest[];
  notifications: Notification[];
  /** What is left to refund through the channel now (cash part minus everything reserved). */
  refundableFen: Fen;
  /** A new refund may be asked (paid, in its window, something left). */
  refundOpen: boolean;
  /** A cancel may be asked (within the cancel window; unpaid, or paid without any refund). */
  cancelOpen: boolean;
}

/** A trade the principal may see, with what the action panel needs; undefined when not found or not visible. */
export async function tradeActions(
  deps: ServiceDeps,
  p: Principal,
  appId: string,
  outTradeNo: string,
): Promise<TradeActionsView | undefined> {
  const found = await visibleTrade(deps, p, appId, outTradeNo);
  if (!found) return undefined;
  const { app, trade } = found;
  const [requests, notifications] = await Promise.all([
    deps.deskRequests.ofTrade(trade.id),
    deps.notifications.ofTrades([trade.id]),
  ]);
  const refundableFen = refundable(trade);
  const now = deps.clock.now().getTime();
  return {
    app,
    trade,
    requests,
    notifications,
    refundableFen,
    refundOpen: trade.status === 'TRADE_SUCCESS' && !refundWindowOver(deps, trade) && refundableFen > 0,
    cancelOpen:
      now - trade.created_at.getTime() <= deps.config.cancelWindowMs &&
      trade.status === 'TRADE_SUCCESS' &&
      trade.refund_reserved_fen === 0,
  };
}

/** Requests in these states of the hospitals the principal sees, oldest first. */
export async function deskRequestsFor(
  deps: ServiceDeps,
  p: Principal,
  statuses: readonly DeskRequest['status'][],
  limit = 200,
): Promise<DeskRequest[]> {
  if (!can(p, 'money.request') && !can(p, 'money.approve')) return [];
  return deps.deskRequests.list(appScope(p), statuses, limit);
}

/** Whether this principal may approve or reject this request (another person, with money.approve). */
export function mayDecide(p: Principal, r: DeskRequest): boolean {
  return can(p, 'money.approve') && seesApp(p, r.app_id) && r.requested_by !== p.username;
}

/** A stored result, read back (null when none or unreadable). */
export function requestResult(r: DeskRequest): DeskRequestResult | null {
  if (!r.result) return null;
  try {
    const v = JSON.parse(r.result) as unknown;
    return typeof v === 'object' && v !== null ? (v as DeskRequestResult) : null;
  } catch {
    return null;
  }
}

// ---- actions on a trade ----------------------------------------------------------------------------------

/** Query the channel now (the query service: a trade that is not final is asked at its channel). */
export async function deskQuery(
  deps: ServiceDeps,
  p: Principal,
  appId: string,
  outTradeNo: string,
): Promise<DeskActionResult> {
  return onTrade(deps, p, 'trades.query', 'trade.query', appId, outTradeNo, async ({ app, trade }) => {
    const wasFinal = trade.status !== 'WAIT_BUYER_PAY' || !trade.pay_type;
    const after = await queryTrade(deps, app, outTradeNo);
    return {
      outcome: wasFinal ? 'query_final' : 'queried',
      audit: 'ok',
      detail: { before: trade.status, after: after.status },
    };
  });
}

/** Resend the trade's (latest) notification to the HIS now (the notify service's resend). */
export async function deskResend(
  deps: ServiceDeps,
  p: Principal,
  appId: string,
  outTradeNo: string,
): Promise<DeskActionResult> {
  return onTrade(deps, p, 'notify.resend', 'notify.resend', appId, outTradeNo, async ({ trade }) => {
    const list = await deps.notifications.ofTrades([trade.id]);
    const last = list[list.length - 1];
    if (!last) return { outcome: 'no_notification', audit: 'refused' };
    const ok = await resendNotification(deps, last.notify_id);
    return ok
      ? { outcome: 'resent', audit: 'ok', detail: { notifyStatus: last.status, attempts: last.attempts } }
      : { outcome: 'no_notification', audit: 'refused' };
  });
}

/**
 * Close an unpaid trade: the expiry's path (ask the channel first; a barcode trade is cancelled, a QR / H5 trade
 * closed). A paid trade is refused: that is a refund (or a cancel), with its approval.
 */
export async function deskClose(
  deps: ServiceDeps,
  p: Principal,
  appId: string,
  outTradeNo: string,
): Promise<DeskActionResult> {
  return onTrade(deps, p, 'trades.close', 'trade.close', appId, outTradeNo, async ({ trade }) => {
    if (isPaid(trade)) return { outcome: 'close_paid', audit: 'refused', detail: { status: trade.status } };
    if (trade.status !== 'WAIT_BUYER_PAY')
      return { outcome: 'close_not_open', audit: 'refused', detail: { status: trade.status } };
    const r = await expireTrade(deps, trade);
    switch (r) {
      case 'closed':
        return { outcome: 'closed', audit: 'ok' };
      case 'reversed':
        return { outcome: 'close_reversed', audit: 'ok', detail: { reversed: true } };
      case 'paid':
        return { outcome: 'close_became_paid', audit: 'refused', detail: { status: 'TRADE_SUCCESS' } };
      case 'retry':
        return { outcome: 'close_retry', audit: 'failed' };
      case 'failed':
        return { outcome: 'close_failed', audit: 'failed' };
    }
  });
}

export interface MoneyRequestInput {
  kind: 'refund' | 'cancel';
  /** A refund's amount in yuan ("12.34"); ignored for a cancel. */
  amountText?: string;
  reason: string;
  /** The form's one-time token (newDeskFormToken). */
  formToken: string;
}

/**
 * Ask for a refund or cancel. When the app asks for a second person's approval (apps.desk_approval, on by
 * default) the request waits (PENDING); otherwise it is executed at once through the refund or cancel service.
 */
export async function deskRequestMoney(
  deps: ServiceDeps,
  p: Principal,
  appId: string,
  outTradeNo: string,
  input: MoneyRequestInput,
): Promise<DeskActionResult> {
  const action = `${input.kind}.request`;
  return onTrade(deps, p, 'money.request', action, appId, outTradeNo, async ({ app, trade }) => {
    if (!FORM_TOKEN.test(input.formToken)) return { outcome: 'invalid_form', audit: 'refused' };
    // Free text: personal numbers (a phone, an ID number) are masked before it is stored or sent anywhere.
    const reason = scrubText(input.reason.trim());
    if (reason.length === 0 || [...reason].length > REASON_MAX_CHARS)
      return { outcome: 'invalid_reason', audit: 'refused' };
    let amountFen: Fen | null = null;
    if (input.kind === 'refund') {
      amountFen = parsePositiveYuan((input.amountText ?? '').trim());
      if (amountFen === null) return { outcome: 'invalid_amount', audit: 'refused' };
    }
    const outRequestNo = `DESK${input.formToken}`;
    // The form sent again (a double click, a reload): the request it made, never a second one.
    const prior = await deps.deskRequests.byRequestNo(app.id, outRequestNo);
    if (prior) return duplicate(prior, trade, input.kind, amountFen);

    // What the services would refuse anyway, refused before anyone is asked to approve it.
    const early =
      input.kind === 'refund' ? refundRefusal(deps, trade, amountFen as Fen) : cancelRefusal(deps, trade);
    if (early)
      return {
        outcome: 'refused',
        errorCode: early.code,
        audit: 'refused',
        detail: refusalDetail(early, amountFen),
      };

    const approval = app.desk_approval;
    const made = await deps.deskRequests.create({
      appId: app.id,
      tradeId: trade.id,
      outTradeNo: trade.out_trade_no,
      kind: input.kind,
      amountFen,
      reason,
      outRequestNo,
      status: approval ? 'PENDING' : 'APPROVED',
      requestedBy: p.username,
      requestedAt: deps.clock.now(),
    });
    if (!made.created) return duplicate(made.request, trade, input.kind, amountFen);
    const request = made.request;
    const detail = {
      requestNo: outRequestNo,
      ...(amountFen !== null ? { amount: formatFen(amountFen) } : {}),
      approval: approval ? 'required' : 'off',
    };
    if (approval) {
      return { outcome: `${input.kind}_pending`, audit: 'pending', detail, requestId: request.id };
    }
    await audit(deps, p, action, request.app_id, request.out_trade_no, 'ok', detail, request.id);
    const executed = await execute(deps, p, app, request);
    return { ...executed, requestId: request.id, skipAudit: true };
  });
}

// ---- approvals -------------------------------------------------------------------------------------------

/** Approve someone else's request, then execute it through the refund or cancel service. */
export async function deskApprove(deps: ServiceDeps, p: Principal, id: number): Promise<DeskActionResult> {
  return onRequest(deps, p, id, 'approve', async (request, app) => {
    const decided = await deps.deskRequests.decide(request.id, 'APPROVED', p.username, deps.clock.now());
    if (!decided) {
      const now = await deps.deskRequests.get(request.id);
      if (now?.status === 'PENDING' && now.requested_by === p.username)
        return { outcome: 'self_approval', audit: 'refused' };
      return { outcome: 'already_decided', audit: 'refused', detail: { status: now?.status ?? 'unknown' } };
    }
    await audit(
      deps,
      p,
      `${request.kind}.approve`,
      request.app_id,
      request.out_trade_no,
      'ok',
      {
        requestNo: request.out_request_no,
      },
      request.id,
    );
    const executed = await execute(deps, p, app, decided);
    return { ...executed, skipAudit: true };
  });
}

/** Reject someone else's request (with a reason). */
export async function deskReject(
  deps: ServiceDeps,
  p: Principal,
  id: number,
  reasonText: string,
): Promise<DeskActionResult> {
  return onRequest(deps, p, id, 'reject', async (request) => {
    const reason = scrubText(reasonText.trim());
    if (reason.length === 0 || [...reason].length > REASON_MAX_CHARS)
      return { outcome: 'invalid_reason', audit: 'refused' };
    const result = JSON.stringify({ status: 'FAILED', code: 'REJECTED', message: reason });
    const decided = await deps.deskRequests.decide(
      request.id,
      'REJECTED',
      p.username,
      deps.clock.now(),
      result,
    );
    if (!decided) {
      const now = await deps.deskRequests.get(request.id);
      if (now?.status === 'PENDING' && now.requested_by === p.username)
        return { outcome: 'self_approval', audit: 'refused' };
      return { outcome: 'already_decided', audit: 'refused', detail: { status: now?.status ?? 'unknown' } };
    }
    return { outcome: 'rejected', audit: 'ok', detail: { requestNo: request.out_request_no } };
  });
}

/**
 * Ask the service again for an APPROVED request whose outcome was unknown (the channel did not answer clearly):
 * the same request number, so it is carried on, never made twice.
 */
export async function deskRetry(deps: ServiceDeps, p: Principal, id: number): Promise<DeskActionResult> {
  return onRequest(deps, p, id, 'retry', async (request, app) => {
    if (request.status !== 'APPROVED') return { outcome: 'not_retryable', audit: 'refused' };
    const executed = await execute(deps, p, app, request);
    return { ...executed, skipAudit: true };
  });
}

// ---- the parts -------------------------------------------------------------------------------------------

type AuditOutcome = 'ok' | 'refused' | 'failed' | 'pending';

interface StepResult {
  outcome: DeskOutcome;
  audit: AuditOutcome;
  errorCode?: string;
  detail?: Record<string, unknown>;
  requestId?: number;
  /** The step wrote its own audit entries. */
  skipAudit?: boolean;
}

async function visibleTrade(
  deps: ServiceDeps,
  p: Principal,
  appId: string,
  outTradeNo: string,
): Promise<{ app: App; trade: Trade } | undefined> {
  if (appId.length === 0 || appId.length > 64 || outTradeNo.length === 0 || outTradeNo.length > 64)
    return undefined;
  if (!seesApp(p, appId)) return undefined;
  const app = await deps.apps.get(appId);
  if (!app) return undefined;
  const trade = await deps.trades.byOutTradeNo(app.id, outTradeNo);
  if (!trade || trade.kind === 'void') return undefined;
  return { app, trade };
}

async function onTrade(
  deps: ServiceDeps,
  p: Principal,
  permission: Permission,
  action: string,
  appId: string,
  outTradeNo: string,
  step: (t: { app: App; trade: Trade }) => Promise<StepResult>,
): Promise<DeskActionResult> {
  if (!can(p, permission)) {
    await audit(deps, p, action, null, null, 'refused', { reason: 'forbidden' });
    return { kind: 'forbidden' };
  }
  const found = await visibleTrade(deps, p, appId, outTradeNo);
  // Another hospital's trade answers as a missing one; the attempt is noted without naming it.
  if (!found) {
    await audit(deps, p, action, null, null, 'refused', { reason: 'not_found' });
    return { kind: 'not_found' };
  }
  const r = await guardedStep(deps, action, () => step(found));
  if (!r.skipAudit)
    await audit(
      deps,
      p,
      action,
      found.app.id,
      found.trade.out_trade_no,
      r.audit,
      {
        ...(r.detail ?? {}),
        ...(r.errorCode ? { code: r.errorCode } : {}),
        result: r.outcome,
      },
      r.requestId ?? null,
    );
  return {
    kind: 'done',
    outcome: r.outcome,
    appId: found.app.id,
    outTradeNo: found.trade.out_trade_no,
    ...(r.errorCode ? { errorCode: r.errorCode } : {}),
    ...(r.requestId !== undefined ? { requestId: r.requestId } : {}),
  };
}

async function onRequest(
  deps: ServiceDeps,
  p: Principal,
  id: number,
  verb: 'approve' | 'reject' | 'retry',
  step: (r: DeskRequest, app: App) => Promise<StepResult>,
): Promise<DeskActionResult> {
  const permission: Permission = verb === 'retry' ? 'money.request' : 'money.approve';
  const request = await deps.deskRequests.get(id);
  const action = `${request?.kind ?? 'request'}.${verb}`;
  if (!can(p, permission)) {
    await audit(deps, p, action, null, null, 'refused', { reason: 'forbidden' });
    return { kind: 'forbidden' };
  }
  const app = request && seesApp(p, request.app_id) ? await deps.apps.get(request.app_id) : undefined;
  if (!request || !app) {
    await audit(deps, p, action, null, null, 'refused', { reason: 'not_found' });
    return { kind: 'not_found' };
  }
  if (verb !== 'retry' && request.requested_by === p.username) {
    await audit(
      deps,
      p,
      action,
      request.app_id,
      request.out_trade_no,
      'refused',
      {
        reason: 'self_approval',
        requestNo: request.out_request_no,
      },
      request.id,
    );
    return {
      kind: 'done',
      outcome: 'self_approval',
      appId: app.id,
      outTradeNo: request.out_trade_no,
      requestId: request.id,
    };
  }
  const r = await guardedStep(deps, action, () => step(request, app));
  if (!r.skipAudit)
    await audit(
      deps,
      p,
      action,
      request.app_id,
      request.out_trade_no,
      r.audit,
      {
        ...(r.detail ?? {}),
        result: r.outcome,
      },
      request.id,
    );
  return {
    kind: 'done',
    outcome: r.outcome,
    appId: app.id,
    outTradeNo: request.out_trade_no,
    requestId: request.id,
    ...(r.errorCode ? { errorCode: r.errorCode } : {}),
  };
}

/** An unexpected error of a step: logged (without input), answered as "error", audited as failed. */
async function guardedStep(
  deps: ServiceDeps,
  action: string,
  step: () => Promise<StepResult>,
): Promise<StepResult> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof HospayError)
      return { outcome: 'refused', audit: 'refused', errorCode: err.code, detail: { code: err.code } };
    deps.log.error({ err: err instanceof Error ? err.message : String(err), action }, 'desk action failed');
    return { outcome: 'error', audit: 'failed' };
  }
}

/**
 * Executes an APPROVED request through the refund or cancel service and stores the answer: DONE, FAILED (with the
 * service's code and message), or still APPROVED when the outcome is unknown (retry asks again).
 */
async function execute(deps: ServiceDeps, p: Principal, app: App, request: DeskRequest): Promise<StepResult> {
  const action = `${request.kind}.execute`;
  let status: 'DONE' | 'FAILED' | 'APPROVED';
  let result: DeskRequestResult;
  if (request.kind === 'refund') {
    try {
      const r = await refundTrade(deps, {
        app,
        outTradeNo: request.out_trade_no,
        amountFen: request.amount_fen as Fen,
        outRequestNo: request.out_request_no,
        reason: request.reason,
      });
      status = 'DONE';
      result = { status: 'SUCCESS', refundedFen: r.trade.refunded_fen };
    } catch (err) {
      if (!(err instanceof HospayError)) {
        deps.log.error(
          { err: err instanceof Error ? err.message : String(err), action },
          'desk refund failed',
        );
        status = 'APPROVED';
        result = { status: 'PROCESSING', code: 'SYSTEM_ERROR', message: Errors.systemError().bilingual };
      } else if (err.code === 'REFUND_PROCESSING' || err.extra.retryable) {
        status = 'APPROVED';
        result = { status: 'PROCESSING', code: err.code, message: err.bilingual };
      } else {
        status = 'FAILED';
        result = { status: 'FAILED', code: err.code, message: err.bilingual };
      }
    }
  } else {
    const r = await cancelTrade(deps, app, request.out_trade_no);
    if (r.ok) {
      status = 'DONE';
      result = { status: 'SUCCESS', action: r.action };
    } else {
      status = r.retry ? 'APPROVED' : 'FAILED';
      result = { status: r.retry ? 'PROCESSING' : 'FAILED', code: r.error.code, message: r.error.bilingual };
    }
  }
  const stored = await deps.deskRequests.finish(request.id, status, JSON.stringify(result));
  const outcome: DeskOutcome =
    status === 'DONE'
      ? `${request.kind}_done`
      : status === 'FAILED'
        ? `${request.kind}_failed`
        : `${request.kind}_processing`;
  const auditOutcome: AuditOutcome = status === 'DONE' ? 'ok' : status === 'FAILED' ? 'failed' : 'pending';
  await audit(
    deps,
    p,
    action,
    request.app_id,
    request.out_trade_no,
    auditOutcome,
    {
      requestNo: request.out_request_no,
      ...(request.amount_fen !== null ? { amount: formatFen(request.amount_fen as Fen) } : {}),
      status: result.status,
      ...(result.code ? { code: result.code } : {}),
      ...(stored ? {} : { note: 'request was no longer APPROVED' }),
    },
    request.id,
  );
  return {
    outcome,
    audit: auditOutcome,
    ...(result.code ? { errorCode: result.code } : {}),
    requestId: request.id,
  };
}

function duplicate(
  prior: DeskRequest,
  trade: Trade,
  kind: 'refund' | 'cancel',
  amountFen: Fen | null,
): StepResult {
  const same = prior.trade_id === trade.id && prior.kind === kind && prior.amount_fen === amountFen;
  return same
    ? {
        outcome: 'duplicate',
        audit: 'refused',
        requestId: prior.id,
        detail: { requestNo: prior.out_request_no },
      }
    : { outcome: 'invalid_form', audit: 'refused' };
}

/** The cash part left to refund (the insurance part is the national system's). */
function refundable(trade: Trade): Fen {
  const left = subFen(subFen(trade.total_fen, trade.insurance_fen), trade.refund_reserved_fen);
  return left > 0 ? left : ZERO_FEN;
}

/** The refund service's own refusal for a request it would certainly refuse now, or null. */
function refundRefusal(deps: ServiceDeps, trade: Trade, amountFen: Fen): HospayError | null {
  if (trade.status === 'WAIT_BUYER_PAY') return Errors.tradeNotPaid();
  if (
    trade.status === 'TRADE_FINISHED' ||
    (trade.status === 'TRADE_SUCCESS' && refundWindowOver(deps, trade))
  )
    return Errors.tradeHasFinished();
  if (trade.status === 'TRADE_CLOSED')
    return trade.paid_at ? Errors.refundAmountExceeded() : Errors.tradeHasClose();
  if (amountFen > refundable(trade)) return Errors.refundAmountExceeded();
  return null;
}

/** The cancel service's own refusal for a request it would certainly refuse now, or null. */
function cancelRefusal(deps: ServiceDeps, trade: Trade): HospayError | null {
  if (deps.clock.now().getTime() - trade.created_at.getTime() > deps.config.cancelWindowMs)
    return Errors.cancelWindowExpired(deps.config.cancelWindowMs);
  if (trade.status === 'TRADE_FINISHED') return Errors.tradeHasFinished();
  if (trade.status === 'TRADE_CLOSED') return Errors.tradeHasClose();
  if (trade.status === 'WAIT_BUYER_PAY') return Errors.tradeNotPaid();
  if (trade.refund_reserved_fen > 0) return Errors.tradeHasRefund();
  return null;
}

function refusalDetail(e: HospayError, amountFen: Fen | null): Record<string, unknown> {
  return { code: e.code, ...(amountFen !== null ? { amount: formatFen(amountFen) } : {}) };
}

function audit(
  deps: ServiceDeps,
  p: Principal,
  action: string,
  appId: string | null,
  outTradeNo: string | null,
  outcome: AuditOutcome,
  detail: Record<string, unknown>,
  requestId: number | null = null,
): Promise<void> {
  return deps.audit.recordBy(p, deps.clock.now(), { action, appId, outTradeNo, requestId, outcome, detail });
}
