import type { ServiceDeps } from '../../services/deps.js';
import type { DeskRequest } from '../../services/records.js';
import {
  DESK_OUTCOMES,
  REASON_MAX_CHARS,
  mayDecide,
  newDeskFormToken,
  requestResult,
  tradeActions,
  type DeskOutcome,
} from '../../services/desk-actions.js';
import { can } from '../../domain/access.js';
import { fen, formatFen, formatFenForDisplay } from '../../domain/money.js';
import { formatShanghai } from '../../domain/clock.js';
import { esc } from '../../formats/html.js';
import { csrfInput, type DeskFlash, type DeskViewer } from './desk-kit.js';

/**
 * The action panel of a trade's desk page (/desk/trades/:appId/:outTradeNo): the buttons and forms the viewer's
 * role allows and the trade's state permits (query the channel now, resend the notification, close an unpaid
 * trade, request a refund or cancel), and the trade's money requests with their status and, for those who may,
 * approve / reject. Rendered by desk-trades.ts; the forms post to the routes of desk-actions.ts. '' when the
 * viewer does not see the trade.
 */
export async function actionPanel(
  deps: ServiceDeps,
  viewer: DeskViewer,
  appId: string,
  outTradeNo: string,
): Promise<string> {
  const p = viewer.principal;
  const v = await tradeActions(deps, p, appId, outTradeNo);
  if (!v) return '';
  const { trade, app } = v;
  const base = `/desk/trades/${encodeURIComponent(app.id)}/${encodeURIComponent(trade.out_trade_no)}`;
  const parts: string[] = [];
  const buttons: string[] = [];
  if (can(p, 'trades.query') && trade.status === 'WAIT_BUYER_PAY')
    buttons.push(postButton(viewer, `${base}/query`, '向渠道查询 / query the channel now', 'act-query'));
  if (can(p, 'notify.resend') && v.notifications.length > 0)
    buttons.push(
      postButton(viewer, `${base}/resend`, '重发通知 / resend the notification', 'act-resend', true),
    );
  if (can(p, 'trades.close') && trade.status === 'WAIT_BUYER_PAY')
    buttons.push(
      postButton(viewer, `${base}/close`, '关闭未支付交易 / close (unpaid)', 'act-close', false, true),
    );
  if (buttons.length > 0) parts.push(`<div class="toolbar" id="actions">${buttons.join('')}</div>`);

  // The trade's requests first (what someone opening the trade after a request wants to see), then the forms.
  if (v.requests.length > 0) parts.push(requestsTable(viewer, v.requests, { showTrade: false }));
  if (can(p, 'money.request')) {
    const approvalNote = app.desk_approval
      ? '本院的退款和撤销需另一位有审批权限的人员批准后才执行。Refunds and cancels here need a second person’s approval.'
      : '本院的退款和撤销无需审批，提交即执行。Refunds and cancels here are executed at once (no approval).';
    const money: string[] = [];
    if (v.refundOpen) {
      money.push(`<form method="post" action="${base}/refund" class="stack" id="refund-form">${csrfInput(viewer)}
<input type="hidden" name="token" value="${newDeskFormToken()}">
<h2>申请退款 / request a refund</h2>
<label>金额（元）/ amount (yuan)，最多 ${esc(formatFen(v.refundableFen))}<input name="amount" inputmode="decimal" required maxlength="16" pattern="[0-9]+(\\.[0-9]{1,2})?" value="${esc(formatFen(v.refundableFen))}"></label>
<label>原因 / reason（必填，最多 ${REASON_MAX_CHARS} 字）<textarea name="reason" required maxlength="${REASON_MAX_CHARS}" rows="2"></textarea></label>
<div><button type="submit" id="act-refund">${app.desk_approval ? '提交退款申请 / request' : '立即退款 / refund now'}</button></div>
</form>`);
    }
    if (v.cancelOpen) {
      money.push(`<form method="post" action="${base}/cancel" class="stack" id="cancel-form">${csrfInput(viewer)}
<input type="hidden" name="token" value="${newDeskFormToken()}">
<h2>撤销交易 / cancel the trade</h2>
<div class="muted">全额退回 ${esc(formatFenForDisplay(fen(trade.total_fen - trade.insurance_fen)))}（撤销期限内，未有退款）。Reverses the whole payment.</div>
<label>原因 / reason<textarea name="reason" required maxlength="${REASON_MAX_CHARS}" rows="2"></textarea></label>
<div><button type="submit" class="danger" id="act-cancel">${app.desk_approval ? '提交撤销申请 / request a cancel' : '立即撤销 / cancel now'}</button></div>
</form>`);
    }
    if (money.length > 0)
      parts.push(
        `<p class="muted" id="approval-note">${esc(approvalNote)}</p><div class="grid2">${money.join('')}</div>`,
      );
  }

  if (parts.length === 0)
    return '<p class="muted" id="no-actions">没有可执行的操作。No action available.</p>';
  return `<div id="action-panel">${parts.join('\n')}</div>`;
}

function postButton(
  viewer: DeskViewer,
  action: string,
  label: string,
  id: string,
  secondary = false,
  danger = false,
): string {
  const cls = danger ? ' class="danger"' : secondary ? ' class="secondary"' : '';
  return `<form method="post" action="${esc(action)}" class="inline">${csrfInput(viewer)}<button type="submit" id="${id}"${cls}>${esc(label)}</button></form>`;
}

const STATUS_LABELS: Record<DeskRequest['status'], { text: string; cls: string }> = {
  PENDING: { text: '待审批 / pending', cls: 'warn' },
  APPROVED: { text: '已批准，处理中 / approved, processing', cls: 'warn' },
  REJECTED: { text: '已驳回 / rejected', cls: 'bad' },
  DONE: { text: '已完成 / done', cls: 'ok' },
  FAILED: { text: '失败 / failed', cls: 'bad' },
};

const KIND_LABELS: Record<DeskRequest['kind'], string> = { refund: '退款 / refund', cancel: '撤销 / cancel' };

/** The requests (one card each), with their status and, for those who may, the approve / reject / retry forms. */
export function requestsTable(
  viewer: DeskViewer,
  requests: readonly DeskRequest[],
  opts: { showTrade: boolean; back?: 'trade' | 'approvals' },
): string {
  const p = viewer.principal;
  const back = opts.back ?? (opts.showTrade ? 'approvals' : 'trade');
  const cards = requests.map((r) => {
    const st = STATUS_LABELS[r.status];
    const res = requestResult(r);
    let act = '';
    if (r.status === 'PENDING') {
      if (mayDecide(p, r)) {
        act = `<div class="toolbar"><form method="post" action="/desk/approvals/${r.id}/approve" class="inline">${csrfInput(viewer)}<input type="hidden" name="back" value="${back}"><button type="submit" id="approve-${r.id}">批准 / approve</button></form></div>
<form method="post" action="/desk/approvals/${r.id}/reject" class="stack">${csrfInput(viewer)}<input type="hidden" name="back" value="${back}"><label>驳回原因 / reason for rejecting<input name="reason" required maxlength="${REASON_MAX_CHARS}"></label><div><button type="submit" class="secondary" id="reject-${r.id}">驳回 / reject</button></div></form>`;
      } else if (r.requested_by === p.username) {
        act = '<p class="muted waiting">等待他人审批 / waiting for someone else</p>';
      } else {
        act = '<p class="muted">等待有审批权限的人员处理 / waiting for approval</p>';
      }
    } else if (r.status === 'APPROVED' && can(p, 'money.request')) {
      act = `<div class="toolbar"><form method="post" action="/desk/approvals/${r.id}/retry" class="inline">${csrfInput(viewer)}<input type="hidden" name="back" value="${back}"><button type="submit" class="secondary" id="retry-${r.id}">再次执行 / try again</button></form><span class="muted">同一退款请求号，不会重复退款 / same request number: never refunds twice</span></div>`;
    }
    const trade = opts.showTrade
      ? `<dt>交易 / trade</dt><dd><a href="/desk/trades/${encodeURIComponent(r.app_id)}/${encodeURIComponent(r.out_trade_no)}">${esc(r.out_trade_no)}</a> <span class="muted">${esc(r.app_id)}</span></dd>`
      : '';
    const result = res?.message
      ? `<dt>结果 / result</dt><dd class="${r.status === 'DONE' ? 'ok' : r.status === 'APPROVED' ? 'warn' : 'bad'} result">${esc(res.code ? `${res.code}: ` : '')}${esc(res.message)}</dd>`
      : r.status === 'DONE'
        ? '<dt>结果 / result</dt><dd class="ok result">成功 / succeeded</dd>'
        : '';
    const decided = r.decided_by
      ? `<dt>审批 / decided by</dt><dd>${esc(r.decided_by)} <span class="muted">${esc(formatShanghai(r.decided_at ?? r.requested_at))}</span></dd>`
      : '';
    const amount = r.amount_fen === null ? '全额 / in full' : formatFenForDisplay(fen(r.amount_fen));
    return `<div class="card" id="request-${r.id}" data-status="${r.status}"><h2>#${r.id} ${esc(KIND_LABELS[r.kind])} <span class="num">${esc(amount)}</span> <span class="badge ${st.cls} status">${esc(st.text)}</span></h2><dl>${trade}<dt>原因 / reason</dt><dd>${esc(r.reason)}</dd><dt>申请 / asked by</dt><dd>${esc(r.requested_by)} <span class="muted">${esc(formatShanghai(r.requested_at))}</span></dd>${decided}${result}<dt>请求号 / request no.</dt><dd><code>${esc(r.out_request_no)}</code></dd></dl>${act}</div>`;
  });
  return `<h2>退款 / 撤销申请 · money requests</h2><div class="grid2" id="requests">${cards.join('')}</div>`;
}

// ---- the flash message after an action (a fixed text per code: the query string never carries text) ------

const OUTCOME_TEXT: Record<DeskOutcome, DeskFlash> = {
  queried: {
    kind: 'ok',
    text: '已向渠道查询，交易状态已更新。Queried the channel; the trade is up to date.',
  },
  query_final: {
    kind: 'ok',
    text: '交易已是最终状态，无需向渠道查询。The trade is final; nothing to ask the channel.',
  },
  resent: {
    kind: 'ok',
    text: '通知已重新排队，马上发送给 HIS。The notification is due again and will be sent now.',
  },
  no_notification: { kind: 'warn', text: '该交易没有通知可重发。The trade has no notification to resend.' },
  closed: { kind: 'ok', text: '交易已关闭（未支付）。The unpaid trade is closed.' },
  close_reversed: {
    kind: 'warn',
    text: '渠道显示患者刚刚付款，已撤销并全额退回。The channel had just taken the payment; it was reversed in full.',
  },
  close_paid: {
    kind: 'bad',
    text: '交易已支付，不能关闭；如需退钱请申请退款或撤销。The trade is paid: it cannot be closed; request a refund or cancel.',
  },
  close_not_open: { kind: 'warn', text: '交易已是最终状态，无需关闭。The trade is already final.' },
  close_became_paid: {
    kind: 'warn',
    text: '向渠道查询时发现交易已支付，未关闭。The channel says the trade is paid; it was not closed.',
  },
  close_retry: {
    kind: 'bad',
    text: '渠道暂时未能关闭交易，请稍后再试。The channel could not close the trade now; try again later.',
  },
  close_failed: {
    kind: 'bad',
    text: '渠道拒绝关闭交易，请联系渠道核实。The channel refused to close the trade; check with the provider.',
  },
  refund_pending: {
    kind: 'ok',
    text: '退款申请已提交，等待另一位人员审批。The refund request waits for a second person’s approval.',
  },
  refund_done: { kind: 'ok', text: '退款成功。The refund is done.' },
  refund_failed: {
    kind: 'bad',
    text: '退款失败，原因见下方申请记录；预留金额已释放。The refund failed (see the request below); nothing is held.',
  },
  refund_processing: {
    kind: 'warn',
    text: '退款结果未知，请稍后点“再次执行”（不会重复退款）。Outcome unknown: try again later (it never refunds twice).',
  },
  cancel_pending: {
    kind: 'ok',
    text: '撤销申请已提交，等待另一位人员审批。The cancel request waits for a second person’s approval.',
  },
  cancel_done: { kind: 'ok', text: '撤销成功。The cancel is done.' },
  cancel_failed: {
    kind: 'bad',
    text: '撤销失败，原因见下方申请记录。The cancel failed (see the request below).',
  },
  cancel_processing: {
    kind: 'warn',
    text: '撤销结果未知，请稍后点“再次执行”。Outcome unknown: try again later.',
  },
  duplicate: {
    kind: 'warn',
    text: '该申请已提交过（重复提交），未再次执行。This form was already submitted; nothing was done twice.',
  },
  invalid_amount: {
    kind: 'bad',
    text: '金额无效：请填写大于 0 的金额，最多两位小数，如 12.34。Invalid amount: a positive yuan amount such as 12.34.',
  },
  invalid_reason: {
    kind: 'bad',
    text: `请填写原因（最多 ${REASON_MAX_CHARS} 字）。A reason is required (at most ${REASON_MAX_CHARS} characters).`,
  },
  invalid_form: {
    kind: 'bad',
    text: '表单已失效，请刷新页面后重新提交。The form is stale; reload the page and submit again.',
  },
  refused: { kind: 'bad', text: '操作被拒绝。The action was refused.' },
  self_approval: {
    kind: 'bad',
    text: '不能审批自己提交的申请，需由另一位人员审批。You cannot approve or reject your own request.',
  },
  already_decided: {
    kind: 'warn',
    text: '该申请已被处理（批准或驳回），未重复执行。The request was already decided; nothing was done twice.',
  },
  rejected: { kind: 'ok', text: '申请已驳回。The request is rejected.' },
  not_retryable: { kind: 'warn', text: '该申请不在处理中，无需再次执行。The request is not in progress.' },
  error: { kind: 'bad', text: '系统错误，请稍后重试。Internal error; try again later.' },
};

/** The use cases' refusals the desk explains (the code is shown with its fixed text; others: see the record). */
const ERROR_TEXT: Readonly<Record<string, string>> = {
  TRADE_NOT_PAID: '交易未支付，不能退款或撤销 / the trade is not paid',
  TRADE_HAS_FINISHED: '交易已结束，超过可退款期限 / the refund window is over',
  TRADE_HAS_CLOSE: '交易已关闭 / the trade is closed',
  REFUND_AMOUNT_EXCEEDED: '退款金额超过可退金额 / the amount exceeds what is left to refund',
  TRADE_HAS_REFUND: '交易已有退款，不能撤销，请申请退款 / the trade has refunds: request a refund instead',
  CANCEL_WINDOW_EXPIRED: '已超过撤销期限，请申请退款 / past the cancel window: request a refund instead',
  OUT_REQUEST_NO_CONFLICT: '退款请求号冲突 / the request number was used differently',
  REFUND_PROCESSING: '退款结果未知 / the refund outcome is unknown',
  REFUND_DECLINED: '渠道拒绝退款 / the channel declined the refund',
  CANCEL_RETRY: '撤销暂时失败 / the cancel failed for now',
  CHANNEL_ERROR: '支付渠道暂时不可用 / the channel is unavailable',
  SYSTEM_ERROR: '系统繁忙 / internal error',
};

/** The query string of the page an action goes back to: fixed codes only. */
export function flashQuery(outcome: DeskOutcome, errorCode?: string): string {
  const q = new URLSearchParams({ m: outcome });
  if (errorCode && Object.hasOwn(ERROR_TEXT, errorCode)) q.set('c', errorCode);
  return q.toString();
}

/**
 * The flash message of a page an action came back to (?m=…&c=…), or null. Unknown codes are ignored, so a
 * crafted link can never put text on the page. desk-trades.ts passes the trade page's query here.
 */
export function actionFlash(query: unknown): DeskFlash | null {
  if (typeof query !== 'object' || query === null) return null;
  const q = query as Record<string, unknown>;
  const m = q['m'];
  if (typeof m !== 'string' || !(DESK_OUTCOMES as readonly string[]).includes(m)) return null;
  const base = OUTCOME_TEXT[m as DeskOutcome];
  const c = q['c'];
  const why = typeof c === 'string' && Object.hasOwn(ERROR_TEXT, c) ? ERROR_TEXT[c] : undefined;
  return why ? { kind: base.kind, text: `${base.text}（${c as string}：${why}）` } : base;
}
