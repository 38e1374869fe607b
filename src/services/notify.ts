import { randomUUID, type KeyObject } from 'node:crypto';
import type { ServiceDeps } from './deps.js';
import type { Notification } from '../store/schema.js';
import type {
  AttemptRecord,
  ClaimedNotification,
  DeliveryNotification,
  NotificationRepository,
  NotifyTrade,
} from '../store/notifications.js';
import { formatShanghai } from '../domain/clock.js';
import { formatFen, subFen, type Fen } from '../domain/money.js';
import { parseSignType, signPlatformParamsAsync, splitProofJson } from '../crypto/signing.js';
import { tradeExtra } from './h5-pay.js';
import { scrubText } from '../logging.js';
import { storableText } from '../store/channel-calls.js';
import { bareHost, classifyAddress, notifyPolicy, type NotifyPolicy } from './notify-target.js';
import { NotifyTargetRefused, postNotification, systemResolver } from './notify-http.js';

/**
 * Asynchronous notification (spec 6.2, lc.trade.notify): the platform POSTs a signed form to the trade's
 * notify_url whenever the trade becomes TRADE_SUCCESS or TRADE_CLOSED. The notification row is written in the
 * same statement as the state change (the outbox, see TradeRepository.transition); this module delivers it.
 * Delivery is at-least-once: the HIS dedupes by notify_id, which stays the same across attempts.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/**
 * Alipay's schedule: the delay before attempt n+1, counted from attempt n (for the first attempt: from the
 * moment the notification was written). 8 attempts in all, over 24 h 24 min; then the notification is FAILED.
 */
export const NOTIFY_SCHEDULE_MS: readonly number[] = Object.freeze([
  0,
  4 * MINUTE,
  10 * MINUTE,
  10 * MINUTE,
  1 * HOUR,
  2 * HOUR,
  6 * HOUR,
  15 * HOUR,
]);

export const NOTIFY_MAX_ATTEMPTS = NOTIFY_SCHEDULE_MS.length;

/**
 * How long to wait before the next attempt, when `attemptsMade` attempts have been made (and failed);
 * null = give up (the notification becomes FAILED).
 */
export function nextAttemptDelayMs(attemptsMade: number): number | null {
  if (!Number.isSafeInteger(attemptsMade) || attemptsMade < 0)
    throw new RangeError(`attemptsMade must be a whole number >= 0, got ${attemptsMade}`);
  return NOTIFY_SCHEDULE_MS[attemptsMade] ?? null;
}

export const NOTIFY_STATUSES = ['PENDING', 'DELIVERED', 'FAILED'] as const;
export type NotifyStatus = (typeof NOTIFY_STATUSES)[number];

export function parseNotifyStatus(text: string | undefined): NotifyStatus | null {
  const upper = (text ?? '').toUpperCase();
  return (NOTIFY_STATUSES as readonly string[]).includes(upper) ? (upper as NotifyStatus) : null;
}

// ---- the form --------------------------------------------------------------------------------------------

/**
 * The biz_content JSON text, written by hand so that amounts are JSON numbers with exactly two decimals
 * (`88.80`), never passed through a float. Absent values are left out (except trade_no).
 */
export function notifyBizContent(trade: NotifyTrade, tradeStatus: string): string {
  const members: string[] = [];
  const str = (key: string, value: string | null | undefined) => {
    if (value !== null && value !== undefined && value !== '')
      members.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
  };
  const amount = (key: string, fen: Fen) => members.push(`${JSON.stringify(key)}:${formatFen(fen)}`);
  str('out_trade_no', trade.out_trade_no);
  // As everywhere in the gateway: trade_no is the channel's number ("" while none exists; the spec makes it
  // required), platform_trade_no is hospay's own.
  members.push(`"trade_no":${JSON.stringify(trade.channel_trade_no ?? '')}`);
  str('platform_trade_no', trade.trade_no);
  str('user_id', trade.buyer_user_id);
  str('trade_status', tradeStatus);
  amount('total_amount', trade.total_fen);
  if (trade.insurance_fen > 0) {
    amount('insurance_fee', trade.insurance_fen);
    amount('cash_fee', subFen(trade.total_fen, trade.insurance_fen));
  }
  str('gmt_payment', trade.paid_at ? formatShanghai(trade.paid_at) : null);
  if (tradeStatus === 'TRADE_CLOSED')
    str('gmt_close', trade.closed_at ? formatShanghai(trade.closed_at) : null);
  str('payment_type', trade.pay_type);
  amount('refund_fee', trade.refunded_fen);
  return splitProofJson(`{${members.join(',')}}`);
}

export interface NotifyFormInput {
  notification: Pick<Notification, 'notify_id' | 'app_id' | 'trade_status'>;
  trade: NotifyTrade;
  now: Date;
  privateKey: KeyObject;
  /** A new one per attempt; random unless given (tests). */
  nonce?: string;
}

/**
 * The signed form POSTed to the HIS (every field but `sign`, see crypto/signing.ts), with the sign_type the HIS
 * used when it created the trade (RSA2 unless it signs RSA), so a legacy SHA1 system can verify it too.
 */
export async function buildNotifyForm(input: NotifyFormInput): Promise<Record<string, string>> {
  const signType = parseSignType(tradeExtra(input.trade)['sign_type']) ?? 'RSA2';
  const form: Record<string, string> = {
    app_id: input.notification.app_id,
    method: 'lc.trade.notify',
    timestamp: formatShanghai(input.now),
    nonce_str: input.nonce ?? randomUUID().replace(/-/g, ''),
    notify_id: input.notification.notify_id,
    charset: 'utf-8',
    version: '1.0',
    biz_content: notifyBizContent(input.trade, input.notification.trade_status),
    sign_type: signType,
  };
  form['sign'] = await signPlatformParamsAsync(form, input.privateKey, signType);
  return form;
}

// ---- claiming and delivering -----------------------------------------------------------------------------

/**
 * Claims due notifications for one delivery pass (PENDING, due, not leased or their lease run out), each with
 * its trade and its app's notify allow-list, in one statement (NotificationRepository.claimDueWithTrades).
 * FOR UPDATE SKIP LOCKED plus the lease means two instances never deliver the same notification at once;
 * `claim` identifies the pass and is the lease_owner of every claimed row.
 */
export function claimDueNotifications(
  deps: Pick<ServiceDeps, 'notifications' | 'clock'>,
  claim: string,
  leaseMs: number,
  limit: number,
): Promise<ClaimedNotification[]> {
  return deps.notifications.claimDueWithTrades(deps.clock.now(), claim, leaseMs, limit);
}

export type DeliveryOutcome = 'delivered' | 'retry' | 'failed';

const CONTENT_TYPE = 'application/x-www-form-urlencoded; charset=utf-8';
/** The HIS must answer exactly these 7 bytes (no BOM, no whitespace, no newline). */
const SUCCESS = Buffer.from('success', 'utf8');
const MAX_BODY_BYTES = 4096;
const EXCERPT_CHARS = 200;

interface AttemptResult {
  httpStatus: number | null;
  body: Buffer | null;
  error: string | null;
}

/**
 * One delivery attempt of a claimed notification (its lease_owner is the claim): POST, then one statement
 * that records the attempt and makes a guarded update: DELIVERED, or due again after the schedule's next
 * delay, or FAILED after the last attempt. If the claim was lost meanwhile (lease run out and taken over), the
 * outcome is recorded as an attempt but the notification is left to its new holder.
 * `trade`: the notification's trade when already read (claimDueNotifications; null = missing);
 * undefined = read it here. `notifyPrivateCidrs`: the app's notify allow-list when already read (likewise);
 * undefined = read it here, only if the target needs it (see notify-target.ts).
 * `recorder`: writes the record (several deliveries' records share one statement, see AttemptRecorder); by
 * default a statement of its own. `ended`: called once the attempt itself has ended, just before its record is
 * handed to the recorder (the caller may start another delivery meanwhile). `prepared`: the attempt's form,
 * already built and signed (prepareAttempt, from the same notification, trade and allow-list); by default it is
 * prepared here.
 */
export async function deliverOne(
  deps: ServiceDeps,
  n: DeliveryNotification,
  trade?: NotifyTrade | null,
  notifyPrivateCidrs?: string | null,
  recorder?: AttemptRecorder,
  ended?: () => void,
  prepared?: Promise<PreparedAttempt>,
): Promise<DeliveryOutcome> {
  const claim = n.lease_owner;
  if (!claim) throw new Error('deliverOne needs a claimed notification');
  const attempt = n.attempts + 1;
  const ready = await (prepared ?? prepareAttempt(deps, n, trade, notifyPrivateCidrs));
  const startedAt = ready.startedAt;
  const t0 = performance.now();
  const result = await sendAttempt(deps, ready);
  // The HIS's time to answer (the form was ready before the POST started).
  const latencyMs = Math.max(0, Math.round(performance.now() - t0));
  const finishedAt = deps.clock.now();

  const ok =
    result.error === null &&
    result.httpStatus !== null &&
    result.httpStatus >= 200 &&
    result.httpStatus < 300 &&
    result.body !== null &&
    result.body.equals(SUCCESS);
  const delay = nextAttemptDelayMs(attempt);
  const outcome: DeliveryOutcome = ok ? 'delivered' : delay === null ? 'failed' : 'retry';
  const lastError = ok
    ? null
    : (result.error ??
      (result.httpStatus !== null && (result.httpStatus < 200 || result.httpStatus >= 300)
        ? `HTTP ${result.httpStatus}`
        : `HTTP ${result.httpStatus ?? '-'}: the answer was not "success"`));
  // The usual answer, exactly `success`, needs no decoding or scrubbing.
  const excerpt = result.body === null ? null : ok ? 'success' : bodyExcerpt(result.body);

  // The attempt is recorded whatever happens, the notification is updated only while this pass still holds
  // its claim (kept). A resend that arrived during this attempt marked the claim: the notification then stays
  // due now.
  const record: AttemptRecord = {
    notificationId: n.id,
    claim,
    attempt,
    delivered: ok,
    status: ok ? 'DELIVERED' : delay === null ? 'FAILED' : 'PENDING',
    nextAttemptAt: new Date(finishedAt.getTime() + (delay ?? 0)),
    startedAt,
    finishedAt,
    lastError,
    httpStatus: result.httpStatus,
    latencyMs,
    bodyExcerpt: excerpt,
    error: result.error,
  };
  // Synchronously before the record is queued: a notifier waiting for its deliveries to end finds it queued.
  ended?.();
  const kept = recorder ? await recorder.record(record) : await deps.notifications.recordAttempt(record);

  const logFields = {
    notifyId: n.notify_id,
    tradeId: n.trade_id,
    attempt,
    httpStatus: result.httpStatus,
    outcome,
  };
  if (!kept) deps.log.warn(logFields, 'notify: claim lost during the attempt; left to its new holder');
  else if (outcome === 'failed') deps.log.warn(logFields, 'notify: gave up after the last attempt');
  else deps.log.info(logFields, 'notify attempt');
  return outcome;
}

/** A finished attempt waiting to be written, and its caller (deliverOne) waiting for that. */
export interface PendingRecord {
  record: AttemptRecord;
  resolve: (kept: boolean) => void;
  reject: (err: unknown) => void;
}

/**
 * Writes delivery records in groups. Released (the default), it is a group commit: a record is written by the
 * next statement, which starts as soon as the previous one has ended, with every record that arrived meanwhile
 * (NotificationRepository.recordAttempts). Held (hold), records wait to be taken (take) and written by the
 * notifier with its next claim, in the same statement (recordAndClaimNotifications), and `onQueued` is called
 * at each arrival. Each caller waits for its own record's statement, so a delivery counts as done only once
 * it is recorded; a failed statement fails the records it carried (their claims then run out and the
 * notifications are tried again).
 */
export class AttemptRecorder {
  private queue: PendingRecord[] = [];
  private writing = false;
  private onQueued: (() => void) | null = null;

  constructor(private readonly notifications: Pick<NotificationRepository, 'recordAttempts'>) {}

  record(record: AttemptRecord): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.queue.push({ record, resolve, reject });
      if (this.onQueued) this.onQueued();
      else this.schedule();
    });
  }

  /** From now on records wait for take(); `onQueued` is called when one arrives. */
  hold(onQueued: () => void): void {
    this.onQueued = onQueued;
  }

  /** Back to writing records in groups, starting with those waiting. */
  release(): void {
    this.onQueued = null;
    if (this.queue.length > 0) this.schedule();
  }

  /** The records waiting (the caller writes them, then settles them with settle()). */
  take(): PendingRecord[] {
    const taken = this.queue;
    this.queue = [];
    return taken;
  }

  private schedule(): void {
    if (this.writing) return;
    this.writing = true;
    // After this turn of the event loop: the answers that arrived together go into one statement.
    setImmediate(() => void this.write());
  }

  private async write(): Promise<void> {
    while (this.queue.length > 0 && !this.onQueued) {
      const group = this.take();
      try {
        settle(group, await this.notifications.recordAttempts(group.map((g) => g.record)));
      } catch (err) {
        settle(group, err);
      }
    }
    this.writing = false;
  }
}

/** Tells the callers of written records whether their claims still held (or that the statement failed). */
export function settle(records: readonly PendingRecord[], kept: readonly boolean[] | unknown): void {
  records.forEach((g, i) => {
    if (Array.isArray(kept)) g.resolve(Boolean(kept[i]));
    else g.reject(kept);
  });
}

/**
 * Writes the records taken from a held AttemptRecorder and claims due notifications with their trades, in one
 * statement (NotificationRepository.recordAndClaim), never one of `busy` (the caller's deliveries in flight);
 * settles the records. With no record and nothing busy, claimDueNotifications.
 */
export async function recordAndClaimNotifications(
  deps: Pick<ServiceDeps, 'notifications' | 'clock'>,
  records: readonly PendingRecord[],
  claim: string,
  leaseMs: number,
  limit: number,
  busy: readonly number[] = [],
): Promise<ClaimedNotification[]> {
  if (records.length === 0 && busy.length === 0) return claimDueNotifications(deps, claim, leaseMs, limit);
  try {
    const r = await deps.notifications.recordAndClaim(
      records.map((g) => g.record),
      deps.clock.now(),
      claim,
      leaseMs,
      limit,
      busy,
    );
    settle(records, r.kept);
    return r.claimed;
  } catch (err) {
    settle(records, err);
    throw err;
  }
}

/**
 * An attempt made ready to send: the form built and signed, or the reason it cannot be sent (then sendAttempt
 * answers that reason without a connection). `startedAt`: when it was prepared, the form's `timestamp`.
 */
export type PreparedAttempt =
  | { startedAt: Date; failed: AttemptResult }
  | { startedAt: Date; failed: null; url: URL; body: string; policy: NotifyPolicy };

/**
 * Prepares one attempt of a claimed notification: checks its URL, reads its trade and its app's allow-list unless
 * given (see deliverOne), and builds and signs the form (on the thread pool). The notifier prepares the next
 * deliveries while the running ones wait for their answers, so that a delivery's slot is taken by the POST alone;
 * a form is then sent at most one attempt's time limit after it was signed. Rejects only when the form cannot be
 * signed (the platform key cannot be read): the notification is then tried again once its claim runs out.
 */
export async function prepareAttempt(
  deps: ServiceDeps,
  n: DeliveryNotification,
  given: NotifyTrade | null | undefined,
  givenCidrs: string | null | undefined,
): Promise<PreparedAttempt> {
  const startedAt = deps.clock.now();
  const failed = (error: string): PreparedAttempt => ({
    startedAt,
    failed: { httpStatus: null, body: null, error },
  });
  let url: URL;
  try {
    url = new URL(n.url);
  } catch {
    return failed('notify_url is not a valid URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return failed('notify_url must be http or https');
  const trade = given === undefined ? await deps.trades.byId(n.trade_id) : given;
  if (!trade) return failed('the trade of this notification is missing');
  // The app's allow-list comes with the claim; otherwise it is read only when it matters: for a host name or
  // a private address (a public or loopback address does not depend on it).
  const literal = classifyAddress(bareHost(url));
  const cidrs =
    givenCidrs !== undefined || (literal !== null && literal.kind !== 'private')
      ? (givenCidrs ?? null)
      : ((await deps.apps.get(n.app_id))?.notify_private_cidrs ?? null);
  const policy = notifyPolicy(deps.config.notify.allowLoopback, cidrs);
  const key = await deps.keys.active();
  const form = await buildNotifyForm({ notification: n, trade, now: startedAt, privateKey: key.privateKey });
  return { startedAt, failed: null, url, body: new URLSearchParams(form).toString(), policy };
}

/** POSTs a prepared attempt (or answers why it could not be prepared). */
async function sendAttempt(deps: ServiceDeps, ready: PreparedAttempt): Promise<AttemptResult> {
  if (ready.failed) return ready.failed;
  const timeoutMs = deps.config.notify.timeoutMs;
  try {
    // A redirect is not an answer (a POST turned into a GET would lose the form): never followed.
    const res = await postNotification(ready.url, ready.body, {
      contentType: CONTENT_TYPE,
      policy: ready.policy,
      resolve: deps.notifyResolver ?? systemResolver,
      timeoutMs,
      maxBytes: MAX_BODY_BYTES,
    });
    return { httpStatus: res.httpStatus, body: res.body, error: null };
  } catch (err) {
    // An address the policy refuses: no connection was made; recorded as a failed attempt with the reason.
    if (err instanceof NotifyTargetRefused)
      return { httpStatus: null, body: null, error: scrubText(err.message).slice(0, 500) };
    return { httpStatus: null, body: null, error: describeError(err, timeoutMs) };
  }
}

function bodyExcerpt(body: Buffer): string {
  const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(body);
  // NUL escaped (PostgreSQL's text refuses it: the attempt would not be recorded, nor counted).
  return storableText(scrubText(Array.from(text).slice(0, EXCERPT_CHARS).join('')));
}

/** What went wrong, without the form or anything secret: the error's kind and the network cause. */
function describeError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError'))
    return `timeout: no complete answer within ${timeoutMs} ms`;
  if (!(err instanceof Error)) return 'delivery failed';
  const cause = (err as { cause?: unknown }).cause;
  let text = `${err.name}: ${err.message}`;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    text += ` (${typeof code === 'string' ? `${code}: ` : ''}${cause.message})`;
  }
  return scrubText(text).slice(0, 500);
}

// ---- operator tools --------------------------------------------------------------------------------------

/**
 * Makes a notification due now again (PENDING, next attempt now), whatever its state; false when unknown.
 * The attempt counter is kept: after the schedule is exhausted, one failed attempt makes it FAILED again.
 * If an attempt is in flight, it is marked so that the notification stays due once that attempt ends.
 */
export async function resendNotification(
  deps: Pick<ServiceDeps, 'notifications' | 'clock'>,
  notifyId: string,
): Promise<boolean> {
  return deps.notifications.resend(notifyId, deps.clock.now());
}

export interface NotifyAttemptView {
  attempt: number;
  started_at: string;
  http_status: number | null;
  latency_ms: number;
  body_excerpt: string | null;
  error: string | null;
}

export interface NotificationView {
  notify_id: string;
  app_id: string;
  out_trade_no: string;
  /** The channel's trade number ('' while none exists), as in the gateway's answers. */
  trade_no: string;
  /** hospay's trade number. */
  platform_trade_no: string;
  trade_status: string;
  url: string;
  status: NotifyStatus;
  /** Attempts made so far. */
  attempts: number;
  /** When the next attempt is due; null unless PENDING. */
  next_attempt_at: string | null;
  created_at: string;
  /** The last successful delivery. */
  delivered_at: string | null;
  last_error: string | null;
  attempt_log: NotifyAttemptView[];
}

export interface NotificationFilter {
  appId?: string | undefined;
  status?: NotifyStatus | undefined;
  outTradeNo?: string | undefined;
  limit: number;
}

export const MAX_LIST_LIMIT = 500;

/** Notifications, newest first, with every attempt. */
export async function listNotifications(
  deps: Pick<ServiceDeps, 'notifications'>,
  filter: NotificationFilter,
): Promise<NotificationView[]> {
  const limit = Math.min(Math.max(Math.trunc(filter.limit), 1), MAX_LIST_LIMIT);
  const rows = await deps.notifications.list({
    appId: filter.appId,
    status: filter.status,
    outTradeNo: filter.outTradeNo,
    limit,
  });
  if (rows.length === 0) return [];
  const attempts = await deps.notifications.attemptsOf(rows.map((r) => r.id));
  const byNotification = new Map<number, NotifyAttemptView[]>();
  for (const a of attempts) {
    const list = byNotification.get(a.notification_id) ?? [];
    list.push({
      attempt: a.attempt,
      started_at: a.started_at.toISOString(),
      http_status: a.http_status,
      latency_ms: a.latency_ms,
      body_excerpt: a.body_excerpt,
      error: a.error,
    });
    byNotification.set(a.notification_id, list);
  }
  return rows.map((r) => ({
    notify_id: r.notify_id,
    app_id: r.app_id,
    out_trade_no: r.out_trade_no,
    trade_no: r.channel_trade_no ?? '',
    platform_trade_no: r.trade_no,
    trade_status: r.trade_status,
    url: r.url,
    status: r.status,
    attempts: r.attempts,
    next_attempt_at: r.status === 'PENDING' ? r.next_attempt_at.toISOString() : null,
    created_at: r.created_at.toISOString(),
    delivered_at: r.delivered_at ? r.delivered_at.toISOString() : null,
    last_error: r.last_error,
    attempt_log: byNotification.get(r.id) ?? [],
  }));
}
