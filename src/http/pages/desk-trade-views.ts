import { esc } from '../../formats/html.js';
import { fen, formatFenForDisplay } from '../../domain/money.js';
import { formatShanghai } from '../../domain/clock.js';
import { PAY_TYPES, PAY_TYPE_NAMES } from '../../domain/trade.js';
import type { AuditEntry, TradeSearchRow } from '../../services/records.js';
import {
  TRADE_STATUS_LABELS,
  shownText,
  shownUrl,
  type DeskApp,
  type TradePage,
} from '../../services/desk-timeline.js';
import { deskPage, type DeskFlash, type DeskViewer } from './desk-kit.js';

/**
 * The HTML of the desk's trade pages (desk-trades.ts serves them): the search with its filters and list, a trade's
 * page with its facts, action panel and timeline, and the audit trail. No script; every value escaped.
 */

/** The search form's values as typed (shown again as they were). */
export type SearchForm = Record<
  | 'app'
  | 'out_trade_no'
  | 'number'
  | 'inhospital_no'
  | 'patient'
  | 'pay_type'
  | 'channel'
  | 'status'
  | 'category'
  | 'terminal'
  | 'operator'
  | 'min'
  | 'max'
  | 'from'
  | 'to',
  string
>;

export type AuditForm = Record<'app' | 'actor' | 'action' | 'trade' | 'from' | 'to', string>;

const yuan = (n: number) => formatFenForDisplay(fen(n));
const when = (d: Date | null) => (d ? formatShanghai(d) : '');

export function tradeHref(appId: string, outTradeNo: string): string {
  return `/desk/trades/${encodeURIComponent(appId)}/${encodeURIComponent(outTradeNo)}`;
}

function input(
  name: string,
  label: string,
  value: string,
  opts: { type?: string; placeholder?: string } = {},
) {
  return `<label>${esc(label)}<input name="${name}" id="f-${name}" type="${opts.type ?? 'text'}" value="${esc(value)}" maxlength="64"${
    opts.placeholder ? ` placeholder="${esc(opts.placeholder)}"` : ''
  }></label>`;
}

function select(
  name: string,
  label: string,
  value: string,
  options: ReadonlyArray<[string, string]>,
): string {
  return `<label>${esc(label)}<select name="${name}" id="f-${name}">${options
    .map(([v, text]) => `<option value="${esc(v)}"${v === value ? ' selected' : ''}>${esc(text)}</option>`)
    .join('')}</select></label>`;
}

function statusBadge(r: Pick<TradeSearchRow, 'status' | 'kind' | 'refunded_fen'>): string {
  if (r.kind === 'void') return `<span class="badge">${esc(TRADE_STATUS_LABELS['VOID'] ?? 'void')}</span>`;
  const tone =
    r.status === 'TRADE_SUCCESS' || r.status === 'TRADE_FINISHED'
      ? 'ok'
      : r.status === 'WAIT_BUYER_PAY'
        ? 'warn'
        : '';
  const label = (TRADE_STATUS_LABELS[r.status] ?? r.status).split(' / ')[0] ?? r.status;
  return `<span class="badge ${tone}">${esc(label)}</span>${
    r.refunded_fen > 0 ? ` <span class="badge bad">退 ${esc(yuan(r.refunded_fen))}</span>` : ''
  }`;
}

export interface SearchPageInput {
  viewer: DeskViewer;
  apps: readonly DeskApp[];
  channels: readonly string[];
  categories: ReadonlyArray<{ prefix: string; name: string }>;
  form: SearchForm;
  problems: readonly string[];
  rows: readonly TradeSearchRow[] | null;
  /** The query string of the next (older) page, null when this is the last. */
  nextQuery: string | null;
  /** This is not the first page. */
  paged: boolean;
  /** The query string of the first page (the same filters). */
  firstQuery: string;
  /** The search ignored the days (an exact number was given). */
  allDays: boolean;
  pageSize: number;
}

export function searchPage(p: SearchPageInput): string {
  const f = p.form;
  const appName = new Map(p.apps.map((a) => [a.id, a.name]));
  const filters = `<form class="filters" method="get" action="/desk" id="search">
${
  p.apps.length > 1
    ? select('app', '医院 / hospital', f.app, [
        ['', '全部 / all'],
        ...p.apps.map((a): [string, string] => [a.id, `${a.name}（${a.id}）`]),
      ])
    : `<input type="hidden" name="app" value="${esc(f.app)}">`
}
${input('out_trade_no', '订单号 OutTradeNo', f.out_trade_no, { placeholder: 'MZ2026… 或前缀* / or prefix*' })}
${input('number', '平台/渠道交易号 TradeNo', f.number)}
${input('inhospital_no', '住院/门诊号 InhospitalNo', f.inhospital_no)}
${input('patient', '患者姓名（全名）/ patient', f.patient)}
${select('pay_type', '支付方式 / pay type', f.pay_type, [['', '全部 / all'], ...PAY_TYPES.map((t): [string, string] => [t, `${PAY_TYPE_NAMES[t].zh} ${t}`])])}
${select('channel', '渠道 / channel', f.channel, [['', '全部 / all'], ...p.channels.map((c): [string, string] => [c, c])])}
${select('status', '状态 / status', f.status, [['', '全部 / all'], ...Object.entries(TRADE_STATUS_LABELS)])}
${select('category', '分类 / category', f.category, [['', '全部 / all'], ...p.categories.map((c): [string, string] => [c.prefix, `${c.name}（${c.prefix}）`])])}
${input('terminal', '终端 / terminal', f.terminal)}
${input('operator', '收费员 / HIS operator', f.operator)}
${input('min', '最小金额（元）/ min yuan', f.min, { placeholder: '0.01' })}
${input('max', '最大金额（元）/ max yuan', f.max)}
${input('from', '开始日期 / from', f.from, { type: 'date' })}
${input('to', '结束日期 / to', f.to, { type: 'date' })}
<button type="submit" id="do-search">查询 / search</button>
<button type="submit" class="secondary" formaction="/desk/trades.csv" id="do-export">导出 CSV / export</button>
</form>`;
  const problems = p.problems.length
    ? `<div class="flash bad" id="problems" role="alert">${p.problems.map((x) => `<div>${esc(x)}</div>`).join('')}</div>`
    : '';
  let results = '';
  if (p.rows) {
    const rows = p.rows
      .map(
        (r) => `<tr>
<td class="num">${esc(when(r.created_at))}</td>
<td><a href="${esc(tradeHref(r.app_id, r.out_trade_no))}" class="trade-link">${esc(r.out_trade_no)}</a><div class="muted">${esc(r.trade_no)}</div></td>
${p.apps.length > 1 ? `<td>${esc(appName.get(r.app_id) ?? r.app_id)}</td>` : ''}
<td class="num">${esc(yuan(r.total_fen))}</td>
<td>${statusBadge(r)}</td>
<td>${esc(r.pay_type ?? '')}${r.channel ? `<div class="muted">${esc(r.channel)}</div>` : ''}</td>
<td class="patient">${esc(r.patient ?? '')}${r.inhospital_no ? `<div class="muted">${esc(r.inhospital_no)}</div>` : ''}</td>
<td>${esc(r.category)}</td>
<td>${esc(r.terminal_id ?? '')}${r.operator_id ? `<div class="muted">${esc(r.operator_id)}</div>` : ''}</td>
</tr>`,
      )
      .join('');
    results = `<div class="card"><h2>结果 / results <span class="muted" id="count">${p.rows.length}${
      p.nextQuery ? '+' : ''
    } 笔</span></h2>${
      p.allDays ? '<p class="muted">按单号查询，不限日期 / a number searches every day.</p>' : ''
    }${
      p.rows.length === 0
        ? '<p class="muted" id="empty">没有符合条件的交易 / no trade matches.</p>'
        : `<div class="scroll"><table id="results"><thead><tr><th>创建时间</th><th>订单号 / TradeNo</th>${
            p.apps.length > 1 ? '<th>医院</th>' : ''
          }<th class="num">金额</th><th>状态</th><th>支付方式</th><th>患者 / 住院号</th><th>分类</th><th>终端 / 收费员</th></tr></thead><tbody>${rows}</tbody></table></div>`
    }<div class="pager">${p.paged ? `<a class="button secondary" href="/desk?${esc(p.firstQuery)}" id="first-page">第一页 / first</a>` : ''}${
      p.nextQuery
        ? `<a class="button secondary" href="/desk?${esc(p.nextQuery)}" id="next-page">下一页 / older ›</a>`
        : ''
    }<span class="muted">每页 ${p.pageSize} 笔，最新在前 / newest first</span></div></div>`;
  }
  return deskPage(
    '交易查询',
    p.viewer,
    'trades',
    `<div class="card"><h1>交易查询 / Trade search</h1>${problems}${filters}</div>${results}`,
  );
}

function facts(pairs: ReadonlyArray<[string, string | null | undefined]>): string {
  return `<dl>${pairs
    .filter((x): x is [string, string] => x[1] !== null && x[1] !== undefined && x[1] !== '')
    .map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`)
    .join('')}</dl>`;
}

export function tradePageHtml(
  viewer: DeskViewer,
  page: TradePage,
  appName: string,
  panel: string,
  flash: DeskFlash | null,
): string {
  const t = page.trade;
  const header = `<div class="card"><div class="toolbar"><a href="/desk" class="button secondary">‹ 返回查询 / back</a></div>
<h1>交易 <code id="out-trade-no">${esc(t.out_trade_no)}</code> ${statusBadge(t)}</h1>
<div class="grid2"><div>${facts([
    ['金额', yuan(t.total_fen)],
    ['已退款', t.refunded_fen > 0 ? yuan(t.refunded_fen) : null],
    ['退款中', t.refund_reserved_fen > t.refunded_fen ? yuan(t.refund_reserved_fen) : null],
    ['医保部分', t.insurance_fen > 0 ? `${yuan(t.insurance_fen)}（${t.insurance_state}）` : null],
    ['状态', TRADE_STATUS_LABELS[t.kind === 'void' ? 'VOID' : t.status] ?? t.status],
    ['支付方式', t.pay_type],
    ['渠道', t.channel],
    ['分类', t.category],
    ['订单类型', t.order_type],
    ['摘要', t.subject],
  ])}</div><div>${facts([
    ['医院', `${appName}（${t.app_id}）`],
    ['TradeNo', t.trade_no],
    ['渠道交易号', t.channel_trade_no],
    ['患者', t.patient],
    ['住院号', t.inhospital_no],
    ['终端', t.terminal_id],
    ['收费员', t.operator_id],
    ['付款账户', t.buyer],
    ['创建', when(t.created_at)],
    ['支付', when(t.paid_at)],
    ['关闭', when(t.closed_at)],
    ['通知地址', t.notify_url ? shownUrl(t.notify_url) : null],
  ])}</div></div></div>`;
  const actions = `<div class="card" id="actions"><h2>操作 / actions</h2>${
    panel || '<p class="muted">您的角色在此无可用操作 / no action available to your role here.</p>'
  }</div>`;
  const refunds = page.refunds.length
    ? `<div class="card"><h2>退款 / refunds</h2><div class="scroll"><table id="refunds"><thead><tr><th>请求号 OutRequestNo</th><th>类型</th><th class="num">金额</th><th>状态</th><th>创建</th><th>完成</th></tr></thead><tbody>${page.refunds
        .map(
          (r) =>
            `<tr><td>${esc(r.out_request_no)}</td><td>${esc(r.kind)}</td><td class="num">${esc(yuan(r.amount_fen))}</td><td><span class="badge ${
              r.status === 'SUCCESS' ? 'ok' : r.status === 'FAILED' ? 'bad' : 'warn'
            }">${esc(r.status)}</span>${r.fail_code ? ` <span class="muted">${esc(shownText(r.fail_code, 60))}</span>` : ''}</td><td class="num">${esc(
              when(r.created_at),
            )}</td><td class="num">${esc(when(r.finished_at))}</td></tr>`,
        )
        .join('')}</tbody></table></div></div>`
    : '';
  const timeline = `<div class="card"><h2>时间线 / timeline <span class="muted">（最早在前 / oldest first）</span></h2><ol class="timeline" id="timeline">${page.timeline
    .map(
      (e) =>
        `<li class="${e.tone === 'info' ? '' : e.tone}" data-kind="${esc(e.kind)}"><div class="when">${esc(
          when(e.at),
        )}</div><strong>${esc(e.title)}</strong>${e.lines.map((l) => `<div class="muted">${esc(l)}</div>`).join('')}</li>`,
    )
    .join('')}</ol></div>`;
  return deskPage(
    `交易 ${t.out_trade_no}`,
    viewer,
    'trades',
    `${header}${actions}${refunds}${timeline}`,
    flash,
  );
}

export interface AuditPageInput {
  viewer: DeskViewer;
  apps: readonly DeskApp[];
  form: AuditForm;
  problems: readonly string[];
  entries: readonly AuditEntry[] | null;
  nextQuery: string | null;
  firstQuery: string;
  paged: boolean;
  pageSize: number;
}

export function auditPage(p: AuditPageInput): string {
  const f = p.form;
  const form = `<form class="filters" method="get" action="/desk/audit" id="audit-filters">
${
  p.apps.length > 1
    ? select('app', '医院 / hospital', f.app, [
        ['', '全部 / all'],
        ...p.apps.map((a): [string, string] => [a.id, `${a.name}（${a.id}）`]),
      ])
    : `<input type="hidden" name="app" value="${esc(f.app)}">`
}
${input('actor', '操作人 / actor', f.actor)}
${input('action', '操作 / action', f.action, { placeholder: 'refund.request' })}
${input('trade', '订单号 OutTradeNo', f.trade)}
${input('from', '开始日期 / from', f.from, { type: 'date' })}
${input('to', '结束日期 / to', f.to, { type: 'date' })}
<div class="toolbar"><button type="submit">查询 / search</button></div>
</form>`;
  const problems = p.problems.length
    ? `<div class="flash bad" id="problems" role="alert">${p.problems.map((x) => `<div>${esc(x)}</div>`).join('')}</div>`
    : '';
  let list = '';
  if (p.entries) {
    list = `<div class="card"><h2>记录 / entries</h2>${
      p.entries.length === 0
        ? '<p class="muted" id="empty">没有记录 / no entries.</p>'
        : `<div class="scroll"><table id="audit"><thead><tr><th>时间</th><th>操作人</th><th>操作</th><th>结果</th><th>医院 / 订单号</th><th>详情</th></tr></thead><tbody>${p.entries
            .map(
              (e) =>
                `<tr><td class="num">${esc(when(e.at))}</td><td>${esc(e.actor)}<div class="muted">${esc(e.role)} · ${esc(e.via)}</div></td><td><code>${esc(
                  e.action,
                )}</code></td><td>${esc(e.outcome)}</td><td>${esc(e.app_id ?? '')}${
                  e.app_id && e.out_trade_no
                    ? `<div><a href="${esc(tradeHref(e.app_id, e.out_trade_no))}">${esc(e.out_trade_no)}</a></div>`
                    : ''
                }</td><td class="muted">${esc(e.detail === '{}' ? '' : shownText(e.detail, 300))}</td></tr>`,
            )
            .join('')}</tbody></table></div>`
    }<div class="pager">${p.paged ? `<a class="button secondary" href="/desk/audit?${esc(p.firstQuery)}">第一页 / first</a>` : ''}${
      p.nextQuery
        ? `<a class="button secondary" href="/desk/audit?${esc(p.nextQuery)}" id="next-page">下一页 / older ›</a>`
        : ''
    }<span class="muted">每页 ${p.pageSize} 条 / per page</span></div></div>`;
  }
  return deskPage(
    '操作记录',
    p.viewer,
    'audit',
    `<div class="card"><h1>操作记录 / Audit trail</h1>${problems}${form}</div>${list}`,
  );
}
