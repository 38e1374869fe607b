import type { ServiceDeps } from './deps.js';
import type { AuditEntry } from '../store/audit.js';
import type {
  DeskChannelCall,
  DeskDifference,
  DeskNotification,
  DeskNotifyAttempt,
  DeskRefund,
  DeskRequestRow,
  DeskRun,
  DeskTrade,
} from '../store/desk.js';
import { seesApp, type Principal } from '../domain/access.js';
import { fen, formatFenForDisplay } from '../domain/money.js';
import { formatShanghai } from '../domain/clock.js';
import { scrubText } from '../formats/redact.js';
import { appCategories } from '../store/apps.js';
import { OTHER_CATEGORY } from '../domain/categories.js';

/**
 * A trade's story for the desk (/desk/trades/:appId/:outTradeNo), assembled only from what is already recorded:
 * the trade row (created, paid, closed), every channel call, the refunds, the notifications and every delivery
 * attempt, the reconciliation's runs and differences, the desk's money requests and audit entries. Oldest first.
 * Texts are masked as the logs are (formats/redact.ts): personal numbers and key material never reach the page.
 */

export type TimelineTone = 'ok' | 'bad' | 'warn' | 'info';

export type TimelineKind =
  | 'created'
  | 'paid'
  | 'closed'
  | 'channel'
  | 'refund'
  | 'notify'
  | 'notify-attempt'
  | 'recon'
  | 'request'
  | 'audit';

export interface TimelineEntry {
  at: Date;
  kind: TimelineKind;
  tone: TimelineTone;
  /** One line: what happened (Chinese, with English where an operator benefits). */
  title: string;
  /** Facts of the entry, each "label: value", already masked. */
  lines: string[];
}

/** A notification with its delivery attempts (oldest first). */
export interface NotificationWithAttempts {
  notification: DeskNotification;
  attempts: DeskNotifyAttempt[];
}

export interface TradePage {
  trade: DeskTrade;
  refunds: DeskRefund[];
  notifications: NotificationWithAttempts[];
  differences: DeskDifference[];
  runs: DeskRun[];
  requests: DeskRequestRow[];
  audit: AuditEntry[];
  calls: DeskChannelCall[];
  timeline: TimelineEntry[];
}

export const TRADE_STATUS_LABELS: Readonly<Record<string, string>> = {
  WAIT_BUYER_PAY: '待支付 / waiting',
  TRADE_SUCCESS: '已支付 / paid',
  TRADE_CLOSED: '已关闭 / closed',
  TRADE_FINISHED: '已完结 / finished',
  REFUNDED: '有退款 / refunded',
  VOID: '已作废 / void',
};

const REFUND_STATUS: Readonly<Record<string, string>> = {
  PROCESSING: '处理中 / processing',
  SUCCESS: '成功 / succeeded',
  FAILED: '失败 / failed',
};

const REQUEST_STATUS: Readonly<Record<string, string>> = {
  PENDING: '待审批 / pending',
  APPROVED: '已批准 / approved',
  REJECTED: '已驳回 / rejected',
  DONE: '已执行 / done',
  FAILED: '执行失败 / failed',
};

const NOTIFY_STATUS: Readonly<Record<string, string>> = {
  PENDING: '投递中 / pending',
  DELIVERED: '已送达 / delivered',
  FAILED: '投递失败 / failed',
};

/** A URL as the page shows it: scheme, host and path; the query (it may carry tokens) cut. */
export function shownUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return scrubText(url.split('?')[0] ?? '').slice(0, 200);
  }
}

/** Free text from a record (an error, an answer excerpt, a reason): masked and cut. */
export function shownText(text: string | null, max = 300): string {
  if (text === null) return '';
  const t = scrubText(text);
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

function yuan(n: number): string {
  return formatFenForDisplay(fen(n));
}

function when(d: Date): string {
  return formatShanghai(d);
}

function callTone(outcome: string, error: string | null): TimelineTone {
  if (/^(paid|success|ok|closed|cancelled|refunded|created|precreated|delivered)$/i.test(outcome))
    return 'ok';
  if (/unknown|retry|paying|timeout/i.test(outcome)) return 'warn';
  if (error !== null || /declin|fail|error|refus|reject/i.test(outcome)) return 'bad';
  return 'info';
}

function attemptOk(a: DeskNotifyAttempt): boolean {
  return (
    a.error === null &&
    a.http_status !== null &&
    a.http_status >= 200 &&
    a.http_status < 300 &&
    a.body_excerpt === 'success'
  );
}

/** The timeline's entries, oldest first (stable: records of one instant keep the order they were added in). */
export function buildTimeline(p: Omit<TradePage, 'timeline'>): TimelineEntry[] {
  const out: TimelineEntry[] = [];
  const t = p.trade;
  out.push({
    at: t.created_at,
    kind: 'created',
    tone: 'info',
    title: t.kind === 'void' ? '订单号作废 / order number voided' : `交易创建 / trade created (${t.kind})`,
    lines: [
      `金额 / amount: ${yuan(t.total_fen)}`,
      ...(t.pay_type ? [`支付方式 / pay type: ${t.pay_type}${t.channel ? ` · ${t.channel}` : ''}`] : []),
      ...(t.terminal_id ? [`终端 / terminal: ${t.terminal_id}`] : []),
      ...(t.operator_id ? [`操作员 / operator: ${t.operator_id}`] : []),
    ],
  });
  for (const c of p.calls) {
    out.push({
      at: c.started_at,
      kind: 'channel',
      tone: callTone(c.outcome, c.error),
      title: `渠道调用 / channel call: ${c.channel_id} ${c.operation} → ${c.outcome}`,
      lines: [
        `耗时 / latency: ${c.latency_ms} ms`,
        ...(c.http_status !== null ? [`HTTP ${c.http_status}`] : []),
        ...(c.error ? [`错误 / error: ${shownText(c.error)}`] : []),
      ],
    });
  }
  if (t.paid_at)
    out.push({
      at: t.paid_at,
      kind: 'paid',
      tone: 'ok',
      title: '已支付 / paid',
      lines: [
        ...(t.channel_trade_no ? [`渠道交易号 / channel trade no: ${t.channel_trade_no}`] : []),
        ...(t.buyer ? [`付款账户 / buyer: ${t.buyer}`] : []),
      ],
    });
  if (t.closed_at)
    out.push({
      at: t.closed_at,
      kind: 'closed',
      tone: t.paid_at ? 'warn' : 'info',
      title: t.paid_at
        ? '已撤销（全额退回）/ cancelled (refunded in full)'
        : `已关闭 / closed${t.cancel_action === 'close' ? '（撤销）/ cancelled' : ''}`,
      lines: [],
    });
  for (const r of p.refunds) {
    const label = r.kind === 'cancel' ? '撤销' : r.kind === 'insurance' ? '医保退费' : '退款';
    out.push({
      at: r.created_at,
      kind: 'refund',
      tone: r.status === 'SUCCESS' ? 'ok' : r.status === 'FAILED' ? 'bad' : 'warn',
      title: `${label} / ${r.kind} ${yuan(r.amount_fen)}：${REFUND_STATUS[r.status] ?? r.status}`,
      lines: [
        `退款请求号 / OutRequestNo: ${r.out_request_no}`,
        ...(r.reason ? [`原因 / reason: ${shownText(r.reason, 120)}`] : []),
        ...(r.channel_refund_no ? [`渠道退款号 / channel refund no: ${r.channel_refund_no}`] : []),
        ...(r.fail_code ? [`失败码 / fail code: ${shownText(r.fail_code, 80)}`] : []),
        ...(r.finished_at ? [`完成 / finished: ${when(r.finished_at)}`] : []),
      ],
    });
  }
  for (const { notification: n, attempts } of p.notifications) {
    out.push({
      at: n.created_at,
      kind: 'notify',
      tone: n.status === 'DELIVERED' ? 'ok' : n.status === 'FAILED' ? 'bad' : 'warn',
      title: `通知医院 / notification (${n.trade_status})：${NOTIFY_STATUS[n.status] ?? n.status}`,
      lines: [
        `地址 / url: ${shownUrl(n.url)}`,
        `尝试次数 / attempts: ${n.attempts}`,
        ...(n.delivered_at ? [`送达 / delivered: ${when(n.delivered_at)}`] : []),
        ...(n.status === 'PENDING' && n.attempts > 0 ? [`下次 / next: ${when(n.next_attempt_at)}`] : []),
        ...(n.last_error ? [`最后错误 / last error: ${shownText(n.last_error)}`] : []),
      ],
    });
    for (const a of attempts) {
      const ok = attemptOk(a);
      out.push({
        at: a.started_at,
        kind: 'notify-attempt',
        tone: ok ? 'ok' : 'bad',
        title: `通知投递第 ${a.attempt} 次 / delivery attempt ${a.attempt}：${ok ? '成功 / delivered' : '失败 / failed'}`,
        lines: [
          `HTTP ${a.http_status ?? '-'} · ${a.latency_ms} ms`,
          ...(a.error ? [`错误 / error: ${shownText(a.error)}`] : []),
          ...(a.body_excerpt !== null && !ok ? [`应答 / answer: ${shownText(a.body_excerpt, 120)}`] : []),
        ],
      });
    }
  }
  for (const run of p.runs) {
    const mine = p.differences.filter((d) => d.business_date === run.business_date);
    out.push({
      at: run.finished_at,
      kind: 'recon',
      tone: run.status !== 'DONE' ? 'warn' : mine.some((d) => d.present && d.state === 'OPEN') ? 'bad' : 'ok',
      title: `对账 ${run.business_date} / reconciliation: ${
        run.status !== 'DONE'
          ? `未完成 / ${run.status.toLowerCase()}`
          : mine.length === 0
            ? '一致 / matched'
            : `有差异 / ${mine.length} difference(s)`
      }`,
      lines: [`本日 / that day: ${run.matched} matched, ${run.differences} difference(s)`],
    });
  }
  for (const d of p.differences) {
    let label = '';
    try {
      const detail = JSON.parse(d.detail) as { label?: unknown };
      if (typeof detail.label === 'string') label = detail.label;
    } catch {
      // not JSON: shown by code only
    }
    out.push({
      at: d.created_at,
      kind: 'recon',
      tone: d.state === 'RESOLVED' || !d.present ? 'info' : 'bad',
      title: `对账差异 / difference ${d.code}${label ? ` ${shownText(label, 60)}` : ''}（${d.business_date}）：${
        d.state === 'RESOLVED' ? '已处理 / resolved' : d.present ? '未处理 / open' : '已消失 / gone'
      }`,
      lines: [
        `类型 / kind: ${d.kind}`,
        ...(d.out_request_no ? [`退款请求号 / OutRequestNo: ${d.out_request_no}`] : []),
        ...(d.resolved_by
          ? [
              `处理人 / resolved by: ${d.resolved_by}${d.resolved_at ? ` ${when(d.resolved_at)}` : ''}${
                d.resolved_note ? ` — ${shownText(d.resolved_note, 120)}` : ''
              }`,
            ]
          : []),
      ],
    });
  }
  for (const r of p.requests) {
    out.push({
      at: r.requested_at,
      kind: 'request',
      tone: r.status === 'DONE' ? 'ok' : r.status === 'FAILED' || r.status === 'REJECTED' ? 'bad' : 'warn',
      title: `运维台${r.kind === 'cancel' ? '撤销' : '退款'}申请 #${r.id} / desk ${r.kind} request${
        r.amount_fen !== null ? ` ${yuan(r.amount_fen)}` : ''
      }：${REQUEST_STATUS[r.status] ?? r.status}`,
      lines: [
        `申请人 / requested by: ${r.requested_by}`,
        `原因 / reason: ${shownText(r.reason, 120)}`,
        ...(r.decided_by
          ? [`审批人 / decided by: ${r.decided_by}${r.decided_at ? ` ${when(r.decided_at)}` : ''}`]
          : []),
      ],
    });
  }
  for (const a of p.audit) {
    out.push({
      at: a.at,
      kind: 'audit',
      tone: a.outcome === 'ok' || a.outcome === 'done' ? 'info' : a.outcome === 'pending' ? 'warn' : 'bad',
      title: `运维操作 / desk action: ${a.action} → ${a.outcome}`,
      lines: [
        `操作人 / by: ${a.actor}（${a.role} · ${a.via}）`,
        ...(a.detail !== '{}' ? [`详情 / detail: ${shownText(a.detail, 300)}`] : []),
      ],
    });
  }
  return out
    .map((e, i) => ({ e, i }))
    .sort((x, y) => x.e.at.getTime() - y.e.at.getTime() || x.i - y.i)
    .map((x) => x.e);
}

/**
 * One trade's page for the viewer; null when it does not exist OR belongs to a hospital the viewer does not see
 * (the door answers both with the same 404). The scope is checked before anything is read.
 */
export async function tradePage(
  deps: ServiceDeps,
  viewer: Principal,
  appId: string,
  outTradeNo: string,
): Promise<TradePage | null> {
  if (!seesApp(viewer, appId)) return null;
  // The channel calls are written in batches: the page shows the latest ones too.
  await deps.channelCalls.flush();
  const r = await deps.desk.tradeRecords(appId, outTradeNo);
  if (!r) return null;
  const audit = await deps.audit.forTrade(appId, outTradeNo);
  const notifications = r.notifications.map((n) => ({
    notification: n,
    attempts: r.attempts.filter((a) => a.notification_id === n.id),
  }));
  const base = {
    trade: r.trade,
    refunds: r.refunds,
    notifications,
    differences: r.differences,
    runs: r.runs,
    requests: r.requests,
    audit,
    calls: r.calls,
  };
  return { ...base, timeline: buildTimeline(base) };
}

/** A hospital (app) the viewer sees, as the desk's choices show it. */
export interface DeskApp {
  id: string;
  name: string;
  /** Its OutTradeNo categories (prefix, name). */
  categories: ReadonlyArray<{ prefix: string; name: string }>;
}

/** The hospitals the viewer sees (the app list is small; trades are always scoped in their SQL). */
export async function visibleApps(deps: ServiceDeps, viewer: Principal): Promise<DeskApp[]> {
  return (await deps.apps.list())
    .filter((a) => seesApp(viewer, a.id))
    .map((a) => ({ id: a.id, name: a.name, categories: appCategories(a) }));
}

/** The categories of the given apps (by prefix, first name wins), then OTHER. */
export function categoryChoices(apps: readonly DeskApp[]): Array<{ prefix: string; name: string }> {
  const seen = new Map<string, string>();
  for (const a of apps) for (const c of a.categories) if (!seen.has(c.prefix)) seen.set(c.prefix, c.name);
  return [
    ...[...seen].map(([prefix, name]) => ({ prefix, name })),
    { prefix: OTHER_CATEGORY, name: '其他 / other' },
  ];
}
