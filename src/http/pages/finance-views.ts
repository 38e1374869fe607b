import { absFen, fen, formatFenForDisplay, subFen, type Fen } from '../../domain/money.js';
import { formatShanghai } from '../../domain/clock.js';
import { DIFFERENCE_INFO, type DifferenceCode } from '../../reconcile/matcher.js';
import { cspWithStyle, esc } from '../../formats/html.js';

/**
 * The finance pages' HTML: plain server-rendered pages, no script, no external asset. Every value from the
 * database or the request goes through esc(); numbers are formatted here.
 */

const CSS = `
body { font-family: -apple-system, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif; margin: 0; background: #f4f6f8; color: #1f2d3d; font-size: 14px; }
header.top { display: flex; align-items: center; gap: 16px; padding: 10px 20px; background: #1f2d3d; color: #fff; }
header.top .brand { font-weight: 600; font-size: 16px; flex: 1; }
header.top form { margin: 0; }
header.top a { color: #c9d6e3; }
header.top button { background: #3a4a5c; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 16px; }
.card { background: #fff; border-radius: 8px; padding: 16px 20px; margin-bottom: 16px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h1 { font-size: 20px; margin: 0 0 12px; } h2 { font-size: 16px; margin: 0 0 10px; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #e6eaef; padding: 6px 8px; text-align: left; vertical-align: top; }
th { background: #f7f9fb; font-weight: 600; white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; }
.muted { color: #6b7b8c; }
.flash { padding: 10px 14px; border-radius: 6px; margin-bottom: 16px; }
.flash.ok { background: #e7f6ec; color: #0a6b2e; } .flash.warn { background: #fff4e0; color: #8a5300; } .flash.bad { background: #fdecea; color: #a12a1e; }
button, .button { font-size: 14px; padding: 7px 14px; border: 0; border-radius: 6px; cursor: pointer; background: #1677ff; color: #fff; text-decoration: none; display: inline-block; }
.button.secondary, button.secondary { background: #e8ecf1; color: #1f2d3d; }
.filters a { margin-right: 14px; } .filters a.current { font-weight: 600; color: #1f2d3d; text-decoration: none; }
.state-open { color: #c0392b; } .state-resolved { color: #0a8a3a; } .state-gone { color: #6b7b8c; }
.bad { color: #c0392b; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; background: #f1f3f5; padding: 1px 4px; border-radius: 3px; }
#his-protocol code { overflow-wrap: anywhere; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 6px 16px; margin: 0; } dt { color: #6b7b8c; } dd { margin: 0; word-break: break-all; }
textarea { width: 100%; box-sizing: border-box; font: inherit; padding: 8px; }
input, select { font: inherit; padding: 5px 8px; }
form.inline { display: inline; }
.toolbar { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; }
.login { max-width: 380px; margin: 60px auto; }
.login label { display: block; margin: 12px 0 4px; }
.login input { width: 100%; box-sizing: border-box; }
.login button { margin-top: 16px; width: 100%; }
pre { background: #f7f9fb; padding: 10px; border-radius: 6px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
.note { white-space: pre-wrap; word-break: break-all; }
svg text { font-size: 12px; fill: #1f2d3d; }
.charts { display: flex; flex-wrap: wrap; gap: 16px 40px; margin-bottom: 12px; } h2.chart-heading { margin-top: 18px; }
.run-incomplete { white-space: nowrap; }
.charts svg { flex: 1 1 300px; min-width: 0; max-width: 360px; height: auto; }
svg text.chart-gap { fill: #c0392b; font-weight: 600; } svg text.chart-same { fill: #0a8a3a; } svg text.muted { fill: #6b7b8c; }
.incomplete { background: #fff4e0; color: #8a5300; padding: 10px 14px; border-radius: 6px; margin-bottom: 12px; }
`;

/** The Content-Security-Policy of every finance page: nothing but this page's own style block. */
export const FINANCE_CSP = cspWithStyle(CSS, ["form-action 'self'"]);

export const PAY_TYPE_NAMES: Readonly<Record<string, string>> = {
  alipay: '支付宝',
  weixin: '微信支付',
  unionpay: '云闪付',
  elecny: '数字人民币',
};
export const PAY_TYPE_ORDER = ['alipay', 'weixin', 'unionpay', 'elecny'];

const SIDE_NAMES: Readonly<Record<string, string>> = { platform: '平台', channel: '渠道', his: 'HIS' };
const KIND_NAMES: Readonly<Record<string, string>> = { payment: '收款', refund: '退款' };
const STATUS_NAMES: Readonly<Record<string, string>> = {
  TRADE_SUCCESS: '支付成功',
  TRADE_FINISHED: '交易结束',
  TRADE_CLOSED: '已关闭',
  WAIT_BUYER_PAY: '待支付',
  TRADE_CLOSED_UNPAID: '已关闭（未付款）',
  PROCESSING: '处理中',
  SUCCESS: '成功',
  FAILED: '失败',
  PAID: '已付款',
  REFUNDED: '已退款',
};

export function payTypeName(p: string): string {
  return PAY_TYPE_NAMES[p] ?? p;
}

export function codeName(code: string): string {
  const info = (DIFFERENCE_INFO as Readonly<Record<string, { label: { zh: string } }>>)[code];
  return info ? info.label.zh : code;
}

function codeInfo(code: string): (typeof DIFFERENCE_INFO)[DifferenceCode] | undefined {
  return (DIFFERENCE_INFO as Readonly<Record<string, (typeof DIFFERENCE_INFO)[DifferenceCode]>>)[code];
}

/** An amount for the page: ¥ and yuan with thousands separators (¥12,345.67; -¥20.00 for a negative one), or —. */
function yuan(amount: Fen | undefined): string {
  return amount === undefined || !Number.isSafeInteger(amount) ? '—' : formatFenForDisplay(amount);
}

function when(d: Date | string | null | undefined): string {
  if (d === null || d === undefined) return '—';
  const date = typeof d === 'string' ? new Date(d) : d;
  return Number.isNaN(date.getTime()) ? esc(String(d)) : `${formatShanghai(date)}`;
}

export interface Viewer {
  username: string;
  displayName: string;
  csrfToken: string;
  /** The role may re-run a day and resolve a difference (recon.write); the forms are hidden otherwise. */
  canWrite?: boolean;
}

export interface Flash {
  kind: 'ok' | 'warn' | 'bad';
  text: string;
}

function flashHtml(flash: Flash | null | undefined): string {
  return flash ? `<div class="flash ${flash.kind}" id="flash" role="status">${esc(flash.text)}</div>` : '';
}

export function csrfField(viewer: Viewer): string {
  return `<input type="hidden" name="csrf" value="${esc(viewer.csrfToken)}">`;
}

/** The frame of every finance page. */
export function financePage(title: string, body: string, viewer: Viewer | null): string {
  const who = viewer
    ? `<a href="/desk" id="to-desk">运维台 / desk</a><span id="who">${esc(viewer.displayName)}（${esc(viewer.username)}）</span>
<form method="post" action="/finance/logout">${csrfField(viewer)}<button type="submit" id="logout">退出登录</button></form>`
    : '';
  return `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<header class="top"><span class="brand">hospay 财务对账</span>${who}</header>
<main>
${body}
</main>
</body>
</html>`;
}

export function loginView(opts: {
  csrf: string;
  next: string | null;
  username?: string;
  error?: string | null;
  info?: string | null;
}): string {
  return financePage(
    '登录 · hospay 财务对账',
    `<div class="card login"><h1>财务对账登录</h1>
${opts.info ? `<div class="flash ok" id="flash">${esc(opts.info)}</div>` : ''}
${opts.error ? `<div class="flash bad" id="login-error" role="alert">${esc(opts.error)}</div>` : ''}
<form method="post" action="/finance/login">
<input type="hidden" name="csrf" value="${esc(opts.csrf)}">
${opts.next ? `<input type="hidden" name="next" value="${esc(opts.next)}">` : ''}
<label for="username">用户名</label>
<input id="username" name="username" autocomplete="username" required maxlength="32" value="${esc(opts.username ?? '')}">
<label for="password">密码</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="256">
<button type="submit" id="login">登录</button>
</form>
<p class="muted">账号由管理员用 <code>hospay operator create</code> 创建。Accounts are created with the CLI.</p></div>`,
    null,
  );
}

export function messageView(
  title: string,
  text: string,
  viewer: Viewer | null,
  link?: { href: string; text: string },
): string {
  return financePage(
    title,
    `<div class="card"><h1>${esc(title)}</h1><p>${esc(text)}</p>${
      link ? `<p><a href="${esc(link.href)}">${esc(link.text)}</a></p>` : ''
    }</div>`,
    viewer,
  );
}

// ------------------------------------------------------------------------------------------------- the day

export interface CountFen {
  count: number;
  fen: Fen;
}
export interface SideTotals {
  payment: CountFen;
  refund: CountFen;
}
export interface RunTotals {
  platform: SideTotals;
  channel: SideTotals & { feeFen: Fen };
  his?: SideTotals;
}

export interface PendingView {
  pair: string;
  side: string;
  kind: string;
  outTradeNo: string;
  outRequestNo?: string;
  amountFen: Fen;
  time: string;
  sinceDayStart: string;
}

export interface RunView {
  payType: string;
  status: string;
  matched: number;
  differences: number;
  open: number;
  pending: PendingView[];
  totals: RunTotals;
  error: string | null;
  finishedAt: Date;
}

export interface DifferenceRow {
  id: number;
  payType: string;
  code: string;
  kind: string;
  outTradeNo: string;
  outRequestNo: string | null;
  amounts: Partial<Record<'platform' | 'channel' | 'his', Fen>>;
  state: 'OPEN' | 'RESOLVED';
  present: boolean;
  resolvedBy: string | null;
}

export type DiffFilter = 'open' | 'resolved' | 'all';

export interface DayViewModel {
  viewer: Viewer;
  apps: Array<{ id: string; name: string; status: string }>;
  appId: string;
  appName: string;
  date: string;
  filter: DiffFilter;
  runs: RunView[];
  counts: Record<DiffFilter, number>;
  differences: DifferenceRow[];
  flash: Flash | null;
  /** Whether the CSV / XLSX exports can be offered. */
  exports: boolean;
  /** How the app's HIS is reached (reconciliation settings), or null when no HIS is configured. */
  his?: { protocol: string; soapNamespace: string } | null;
}

/** Which interface the app's HIS serves, one line for the summary card. */
function hisInterfaceHtml(his: DayViewModel['his']): string {
  if (his === undefined) return '';
  const what =
    his === null
      ? '未配置（不与 HIS 核对）/ none: no HIS comparison'
      : his.protocol === 'soap11' || his.protocol === 'soap12'
        ? `SOAP ${his.protocol === 'soap11' ? '1.1' : '1.2'}（命名空间 <code>${esc(his.soapNamespace)}</code>）`
        : 'XML（HTTP POST）';
  return `<p class="muted" id="his-protocol">HIS 接口 / HIS interface：${what}</p>`;
}

export function dayQuery(appId: string, date: string, extra: Record<string, string> = {}): string {
  return new URLSearchParams({ app: appId, date, ...extra }).toString();
}

function stateHtml(d: { state: string; present: boolean }): string {
  if (d.state === 'RESOLVED') return '<span class="state-resolved">已处理</span>';
  if (!d.present) return '<span class="state-gone">未处理（重跑后未再出现）</span>';
  return '<span class="state-open">未处理</span>';
}

/** A run's state: 完成, 未完成 (a side could not be read: INCOMPLETE, or an older DONE with a HIS error), 失败. */
function runStatus(r: RunView): string {
  if (r.status === 'INCOMPLETE' || (r.status === 'DONE' && r.error))
    return '<span class="bad run-incomplete">未完成（HIS 未核对）</span>';
  if (r.status !== 'DONE') return '<span class="bad">失败</span>';
  return '完成';
}

function isIncompleteRun(r: RunView): boolean {
  return r.status === 'INCOMPLETE' || (r.status === 'DONE' && r.error !== null);
}

/**
 * The day's payments per pay type, one small chart each: a bar for the platform, the channel and the HIS, a
 * dashed line at the platform's amount, and under the channel's and the HIS's bar how far they are from the
 * platform. A gap is drawn as its own red segment (missing: outlined; extra: filled), at least 3 px wide, so
 * even one fen apart shows; equal bars say 与平台一致.
 */
export function chartSvg(runs: readonly RunView[]): string {
  return `<div id="chart" class="charts" role="group" aria-label="各支付方式当日收款：平台、渠道、HIS 及其差额">
${runs.map(payTypeChart).join('\n')}
</div>`;
}

function payTypeChart(r: RunView, index: number): string {
  const colors = { platform: '#1677ff', channel: '#13a8a8', his: '#fa8c16' } as const;
  const sides = ['platform', 'channel', 'his'] as const;
  const W = 360;
  const barMax = W - 4;
  const rowH = 58;
  const top = 30;
  const height = top + sides.length * rowH;
  const totals = {
    platform: r.totals.platform.payment,
    channel: r.totals.channel.payment,
    his: r.totals.his?.payment,
  };
  const max = Math.max(1, ...sides.map((s) => totals[s]?.fen ?? 0));
  const x = (fen: number) => Math.round((Math.max(0, fen) / max) * barMax);
  const refFen = totals.platform.fen;
  const refX = x(refFen);
  const name = payTypeName(r.payType);
  const parts: string[] = [
    `<text x="0" y="16" font-weight="600" class="chart-pay-type">${esc(name)}</text>` +
      `<text x="${W}" y="16" text-anchor="end" class="muted">当日收款 / payments</text>`,
  ];
  sides.forEach((s, i) => {
    const y = top + i * rowH;
    const t = totals[s];
    const label = t === undefined ? '未核对' : `${yuan(t.fen)}（${t.count} 笔）`;
    parts.push(
      `<text x="0" y="${y + 12}"><tspan font-weight="600">${SIDE_NAMES[s]}</tspan> <tspan class="chart-value" data-side="${s}">${label}</tspan></text>`,
    );
    const barY = y + 18;
    if (t === undefined) {
      parts.push(
        `<rect x="0" y="${barY}" width="${barMax}" height="14" fill="none" stroke="#c5ccd4" stroke-dasharray="4 3"></rect>`,
      );
      return;
    }
    const w = Math.max(t.fen > 0 ? 2 : 0, x(t.fen));
    parts.push(
      `<rect x="0" y="${barY}" width="${w}" height="14" fill="${colors[s]}"><title>${esc(name)} ${SIDE_NAMES[s]} ${label}</title></rect>`,
    );
    if (s === 'platform') return;
    const gap = subFen(t.fen, refFen);
    if (gap === 0) {
      parts.push(
        `<text x="0" y="${barY + 28}" class="chart-same" data-side="${s}">✓ 与平台一致 / same as the platform</text>`,
      );
      return;
    }
    // The gap as its own segment: what is missing against the platform (outlined) or extra (filled red).
    const from = gap < 0 ? w : Math.min(refX, w);
    const gapW = Math.max(3, Math.abs(x(t.fen) - refX));
    const segX = gap < 0 ? from : Math.min(from, barMax - gapW);
    parts.push(
      gap < 0
        ? `<rect x="${segX}" y="${barY}" width="${gapW}" height="14" fill="#fdecea" stroke="#c0392b" stroke-dasharray="3 2" class="chart-gap-bar"></rect>`
        : `<rect x="${segX}" y="${barY}" width="${gapW}" height="14" fill="#c0392b" class="chart-gap-bar"></rect>`,
      `<text x="0" y="${barY + 28}" class="chart-gap" data-side="${s}" data-gap-fen="${gap}">${
        gap < 0 ? '▼ 比平台少' : '▲ 比平台多'
      } ${yuan(absFen(gap))}</text>`,
    );
  });
  // The platform's amount as a reference line through the three bars.
  parts.push(
    `<line x1="${refX}" x2="${refX}" y1="${top + 14}" y2="${height - 18}" stroke="#1f2d3d" stroke-width="1" stroke-dasharray="4 3"></line>`,
  );
  return `<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${height}" viewBox="0 0 ${W} ${height}" role="img" aria-labelledby="chart-title-${index}" data-pay-type="${esc(r.payType)}">
<title id="chart-title-${index}">${esc(name)}当日收款：平台、渠道、HIS 及其与平台的差额</title>
${parts.join('\n')}
</svg>`;
}

function pendingHtml(r: RunView): string {
  if (r.pending.length === 0) return '';
  const rows = r.pending
    .map(
      (p) =>
        `<tr><td>${esc(p.pair === 'his' ? '资金 ↔ HIS' : '平台 ↔ 渠道')}</td><td>${esc(SIDE_NAMES[p.side] ?? p.side)}</td><td>${esc(KIND_NAMES[p.kind] ?? p.kind)}</td><td>${esc(p.outTradeNo)}</td><td>${esc(p.outRequestNo ?? '')}</td><td class="num">${yuan(p.amountFen)}</td><td>${when(p.time)}</td><td>${when(p.sinceDayStart).slice(0, 10)}</td></tr>`,
    )
    .join('');
  return `<details><summary>${esc(payTypeName(r.payType))}：挂账待核 ${r.pending.length} 笔 / pending</summary>
<div class="scroll"><table><thead><tr><th>比对</th><th>有记录的一方</th><th>方向</th><th>商户订单号</th><th>退款请求号</th><th class="num">金额</th><th>时间</th><th>挂账起始日</th></tr></thead><tbody>${rows}</tbody></table></div></details>`;
}

export function dayView(m: DayViewModel): string {
  const q = (extra: Record<string, string> = {}) => dayQuery(m.appId, m.date, extra);
  const appPicker =
    m.apps.length > 1
      ? `<label>应用 <select name="app" id="app">${m.apps
          .map(
            (a) =>
              `<option value="${esc(a.id)}"${a.id === m.appId ? ' selected' : ''}>${esc(a.name)}${a.status === 'active' ? '' : '（已停用）'}</option>`,
          )
          .join('')}</select></label>`
      : `<input type="hidden" name="app" value="${esc(m.appId)}"><span>${esc(m.appName)}</span>`;
  const picker = `<form method="get" action="/finance" class="toolbar" id="day-form">
${appPicker}
<label>业务日期 <input type="date" name="date" id="date" value="${esc(m.date)}" required></label>
<input type="hidden" name="filter" value="${esc(m.filter)}">
<button type="submit" id="show">查看</button>
</form>`;

  const summaryRows = m.runs
    .map((r) => {
      const his = r.totals.his;
      return `<tr data-pay-type="${esc(r.payType)}"><td>${esc(payTypeName(r.payType))}</td><td>${runStatus(r)}</td>
<td class="num">${r.matched}</td><td class="num">${r.differences}</td><td class="num">${r.open}</td><td class="num">${r.pending.length}</td>
<td class="num">${yuan(r.totals.platform.payment.fen)}<br><span class="muted">${r.totals.platform.payment.count} 笔</span></td>
<td class="num">${yuan(r.totals.channel.payment.fen)}<br><span class="muted">${r.totals.channel.payment.count} 笔</span></td>
<td class="num">${his ? `${yuan(his.payment.fen)}<br><span class="muted">${his.payment.count} 笔</span>` : '未核对'}</td>
<td class="num">${yuan(r.totals.platform.refund.fen)}</td><td class="num">${yuan(r.totals.channel.refund.fen)}</td>
<td class="num">${his ? yuan(his.refund.fen) : '—'}</td><td class="num">${yuan(r.totals.channel.feeFen)}</td>
<td>${when(r.finishedAt)}</td></tr>${
        r.error
          ? `<tr class="his-error"><td colspan="14" class="bad">未完成：HIS 读取失败，未与 HIS 核对（请 HIS 恢复后重新对账）/ incomplete: the HIS could not be read：${esc(r.error)}</td></tr>`
          : ''
      }`;
    })
    .join('\n');
  const incomplete = m.runs.filter(isIncompleteRun);
  const summary = m.runs.length
    ? `${
        incomplete.length
          ? `<div class="incomplete" id="incomplete" role="status">本日对账未完成：${incomplete
              .map((r) => esc(payTypeName(r.payType)))
              .join(
                '、',
              )}未能与 HIS 核对，差异可能不全。请 HIS 恢复后点击「重新对账」。/ incomplete: not compared with the HIS; re-run the day when the HIS is back.</div>`
          : ''
      }<div class="scroll"><table id="summary"><thead><tr><th>支付方式</th><th>状态</th><th class="num">匹配</th><th class="num">差异</th><th class="num">未处理</th><th class="num">挂账待核</th>
<th class="num">平台收款</th><th class="num">渠道收款</th><th class="num">HIS 收款</th><th class="num">平台退款</th><th class="num">渠道退款</th><th class="num">HIS 退款</th><th class="num">渠道手续费</th><th>对账时间</th></tr></thead>
<tbody>${summaryRows}</tbody></table></div>
${m.runs.map(pendingHtml).join('')}`
    : '<p id="no-run">该日尚未对账 / this day has not been reconciled yet. 可点击「重新对账」立即对账。</p>';

  const actions = `<div class="toolbar">
${
  m.viewer.canWrite === false
    ? ''
    : `<form method="post" action="/finance/rerun" class="inline" id="rerun-form">${csrfField(m.viewer)}
<input type="hidden" name="app" value="${esc(m.appId)}"><input type="hidden" name="date" value="${esc(m.date)}">
<button type="submit" id="rerun">重新对账 / re-run</button></form>`
}
${
  m.exports
    ? `<a class="button secondary" id="export-csv" href="/finance/export?${esc(q({ format: 'csv' }))}">下载 CSV</a>
<a class="button secondary" id="export-xlsx" href="/finance/export?${esc(q({ format: 'xlsx' }))}">下载 Excel (XLSX)</a>`
    : ''
}
</div>`;

  const filters = (['open', 'resolved', 'all'] as const)
    .map((f) => {
      const label = { open: '未处理', resolved: '已处理', all: '全部' }[f];
      return `<a href="/finance?${esc(q({ filter: f }))}" id="filter-${f}"${f === m.filter ? ' class="current" aria-current="page"' : ''}>${label}（${m.counts[f]}）</a>`;
    })
    .join('');
  const diffRows = m.differences
    .map(
      (
        d,
      ) => `<tr id="diff-${d.id}"><td><a href="/finance/differences/${d.id}">#${d.id}</a></td><td>${esc(payTypeName(d.payType))}</td>
<td>${esc(codeName(d.code))}<br><code>${esc(d.code)}</code></td><td>${esc(KIND_NAMES[d.kind] ?? d.kind)}</td>
<td><a href="/finance/differences/${d.id}" class="out-trade-no">${esc(d.outTradeNo)}</a>${d.outRequestNo ? `<br><span class="muted">退款请求号 ${esc(d.outRequestNo)}</span>` : ''}</td>
<td class="num">${yuan(d.amounts.platform)}</td><td class="num">${yuan(d.amounts.channel)}</td><td class="num">${yuan(d.amounts.his)}</td>
<td>${stateHtml(d)}${d.resolvedBy ? `<br><span class="muted">${esc(d.resolvedBy)}</span>` : ''}</td></tr>`,
    )
    .join('\n');
  const differences = `<div class="card"><h2>差异明细 / differences</h2>
<p class="filters">${filters}</p>
${
  m.differences.length
    ? `<div class="scroll"><table id="differences"><thead><tr><th>编号</th><th>支付方式</th><th>差异类型</th><th>方向</th><th>商户订单号</th><th class="num">平台金额</th><th class="num">渠道金额</th><th class="num">HIS 金额</th><th>状态</th></tr></thead>
<tbody>${diffRows}</tbody></table></div>`
    : '<p id="no-differences" class="muted">没有符合条件的差异 / no differences here.</p>'
}</div>`;

  return financePage(
    `对账 ${m.date} · hospay 财务对账`,
    `${flashHtml(m.flash)}
<div class="card">${picker}</div>
<div class="card"><h1>${esc(m.date)} 对账汇总 · ${esc(m.appName)}</h1>
${hisInterfaceHtml(m.his)}
${summary}
${m.runs.length ? `<h2 class="chart-heading">各支付方式收款对比</h2>${chartSvg(m.runs)}` : ''}
${actions}
</div>
${differences}`,
    m.viewer,
  );
}

// ------------------------------------------------------------------------------------------ one difference

export interface DifferenceDetailModel {
  viewer: Viewer;
  flash: Flash | null;
  id: number;
  appId: string;
  appName: string;
  date: string;
  payType: string;
  code: string;
  kind: string;
  outTradeNo: string;
  outRequestNo: string | null;
  detail: Record<string, unknown>;
  present: boolean;
  state: 'OPEN' | 'RESOLVED';
  resolvedBy: string | null;
  resolvedByName: string | null;
  resolvedNote: string | null;
  resolvedAt: Date | null;
  audit: Array<{ at: Date; actor: string; actorName: string | null; action: string; note: string | null }>;
  /** What the run asked of the channel and the HIS for this day and pay type (recon_evidence). */
  evidence: Array<{ source: string; request: string; records: number; fetchedAt: Date }>;
  /** The HIS's own rows for this order, as it answered them (from the kept raw answers). */
  hisExcerpts: string[];
  /** The note as typed, when it was refused. */
  noteDraft?: string;
  noteError?: string | null;
}

const KNOWN_DETAIL_KEYS = new Set([
  'code',
  'label',
  'action',
  'kind',
  'outTradeNo',
  'outRequestNo',
  'channelTradeNo',
  'side',
  'amounts',
  'fee',
  'statuses',
  'time',
  'pendingSince',
  'hisCheck',
]);

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}
function fenOf(v: unknown): Fen | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) ? fen(v) : undefined;
}
function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
function bilingual(v: unknown): { zh?: string; en?: string } {
  const o = obj(v);
  return { zh: str(o['zh']), en: str(o['en']) };
}

function hisCheckHtml(v: unknown): string {
  if (v === undefined) return '';
  const c = obj(v);
  const flows = Array.isArray(c['flows']) ? (c['flows'] as unknown[]).map(obj) : [];
  const s = bilingual(c['suggestion']);
  const error = str(c['error']);
  const flowRows = flows
    .map(
      (f) =>
        `<tr><td>${esc(str(f['hisFlowId']) ?? '')}</td><td class="num">${yuan(fenOf(f['amountFen']))}</td><td>${when(str(f['time']))}</td></tr>`,
    )
    .join('');
  return `<div class="card" id="his-check"><h2>HIS 单笔查询复核（${esc(str(c['checkedWith']) ?? 'HIS_IF_Query')}）</h2>
<dl>
<dt>HIS 是否查到该笔</dt><dd id="his-found">${error ? '查询失败' : c['found'] === true ? '查到' : '未查到'}</dd>
<dt>HIS 记录净额</dt><dd id="his-net">${yuan(fenOf(c['netFen']))}</dd>
${error ? `<dt>查询错误</dt><dd class="bad">${esc(error)}</dd>` : ''}
<dt>复核建议</dt><dd id="his-suggestion">${esc(s.zh ?? '')}${s.en ? `<br><span class="muted">${esc(s.en)}</span>` : ''}</dd>
</dl>
${
  flows.length
    ? `<h2>HIS 流水（退款为负）</h2><table id="his-flows"><thead><tr><th>HisFlowID</th><th class="num">金额</th><th>时间</th></tr></thead><tbody>${flowRows}</tbody></table>`
    : '<p class="muted">HIS 未返回任何流水 / no flows.</p>'
}</div>`;
}

const SOURCE_NAMES: Readonly<Record<string, string>> = {
  CHANNEL_BILL: '渠道对账单',
  HIS_TRADE_LIST: 'HIS 交易列表 (IF_Get_Hospital_Trade_List)',
};

function evidenceHtml(m: DifferenceDetailModel): string {
  if (m.evidence.length === 0 && m.hisExcerpts.length === 0) return '';
  const bySource = new Map<string, { calls: number; records: number }>();
  for (const e of m.evidence) {
    const t = bySource.get(e.source) ?? { calls: 0, records: 0 };
    t.calls++;
    t.records += e.records;
    bySource.set(e.source, t);
  }
  const summary = [...bySource]
    .map(([k, v]) => `${esc(SOURCE_NAMES[k] ?? k)}：${v.calls} 次请求，${v.records} 条记录`)
    .join('；');
  const rows = m.evidence
    .map(
      (e) =>
        `<tr><td>${esc(SOURCE_NAMES[e.source] ?? e.source)}</td><td><code>${esc(e.request)}</code></td><td class="num">${e.records}</td><td>${when(e.fetchedAt)}</td></tr>`,
    )
    .join('');
  return `<div class="card" id="run-evidence"><h2>本次对账取数 / what the run fetched</h2>
${summary ? `<p>${summary}</p>` : ''}
${
  m.hisExcerpts.length
    ? `<h2>HIS 交易列表中该订单的原始记录</h2>${m.hisExcerpts.map((x) => `<pre class="his-raw">${esc(x)}</pre>`).join('')}`
    : ''
}
${
  rows
    ? `<details><summary>逐次请求明细（${m.evidence.length}）</summary><div class="scroll"><table><thead><tr><th>来源</th><th>请求</th><th class="num">记录数</th><th>取数时间</th></tr></thead><tbody>${rows}</tbody></table></div></details>`
    : ''
}</div>`;
}

export function differenceView(m: DifferenceDetailModel): string {
  const d = m.detail;
  const info = codeInfo(m.code);
  const label = bilingual(d['label']);
  const action = bilingual(d['action']);
  const amounts = obj(d['amounts']);
  const statuses = obj(d['statuses']);
  const fee = obj(d['fee']);
  const side = str(d['side']);
  const sideRows = (['platform', 'channel', 'his'] as const)
    .filter((s) => amounts[s] !== undefined || statuses[s] !== undefined)
    .map(
      (s) =>
        `<tr data-side="${s}"><td>${SIDE_NAMES[s]}</td><td class="num">${yuan(fenOf(amounts[s]))}</td><td>${
          str(statuses[s])
            ? `${esc(STATUS_NAMES[str(statuses[s]) ?? ''] ?? '')} <code>${esc(str(statuses[s]) ?? '')}</code>`
            : '—'
        }</td></tr>`,
    )
    .join('');
  const other = Object.entries(d).filter(([k]) => !KNOWN_DETAIL_KEYS.has(k));
  const back = `/finance?${dayQuery(m.appId, m.date)}`;

  const resolution =
    m.state === 'RESOLVED'
      ? `<div class="card" id="resolution"><h2>处理结果</h2><dl>
<dt>状态</dt><dd class="state-resolved">已处理</dd>
<dt>处理人</dt><dd>${esc(m.resolvedByName ?? '')}${m.resolvedBy ? `（${esc(m.resolvedBy)}）` : ''}</dd>
<dt>处理时间</dt><dd>${when(m.resolvedAt)}</dd>
<dt>备注</dt><dd class="note">${esc(m.resolvedNote ?? '')}</dd></dl></div>`
      : m.viewer.canWrite === false
        ? ''
        : `<div class="card" id="resolution"><h2>标记为已处理 / resolve</h2>
${m.noteError ? `<div class="flash bad" id="note-error" role="alert">${esc(m.noteError)}</div>` : ''}
<form method="post" action="/finance/differences/${m.id}/resolve" id="resolve-form">${csrfField(m.viewer)}
<label for="note">处理说明（必填，1～500 字）</label>
<textarea id="note" name="note" rows="4" maxlength="500" required>${esc(m.noteDraft ?? '')}</textarea>
<p><button type="submit" id="resolve">标记为已处理</button></p></form></div>`;

  const auditRows = m.audit
    .map(
      (a) =>
        `<tr><td>${when(a.at)}</td><td>${esc(a.actorName ?? '')}（${esc(a.actor)}）</td><td>${a.action === 'RESOLVE' ? '标记已处理' : esc(a.action)} <code>${esc(a.action)}</code></td><td class="note">${esc(a.note ?? '')}</td></tr>`,
    )
    .join('');

  return financePage(
    `差异 #${m.id} · hospay 财务对账`,
    `${flashHtml(m.flash)}
<p><a href="${esc(back)}" id="back">← 返回 ${esc(m.date)} 对账</a></p>
<div class="card"><h1>差异 #${m.id}：${esc(label.zh ?? info?.label.zh ?? m.code)}</h1>
<dl id="evidence">
<dt>差异类型</dt><dd>${esc(codeName(m.code))} <code id="code">${esc(m.code)}</code>${label.en ? `<br><span class="muted">${esc(label.en)}</span>` : ''}</dd>
<dt>应用</dt><dd>${esc(m.appName)} <code>${esc(m.appId)}</code></dd>
<dt>业务日期</dt><dd>${esc(m.date)}</dd>
<dt>支付方式</dt><dd>${esc(payTypeName(m.payType))}</dd>
<dt>方向</dt><dd>${esc(KIND_NAMES[m.kind] ?? m.kind)}</dd>
<dt>商户订单号</dt><dd id="out-trade-no">${esc(m.outTradeNo)}</dd>
${m.outRequestNo ? `<dt>退款请求号</dt><dd>${esc(m.outRequestNo)}</dd>` : ''}
${str(d['channelTradeNo']) ? `<dt>渠道交易号</dt><dd>${esc(str(d['channelTradeNo']) ?? '')}</dd>` : ''}
${side ? `<dt>${m.code === 'DUPLICATE' ? '重复的一方' : '有记录的一方'}</dt><dd>${esc(SIDE_NAMES[side] ?? side)}</dd>` : ''}
<dt>发生时间</dt><dd>${when(str(d['time']))}</dd>
${str(d['pendingSince']) ? `<dt>挂账起始</dt><dd>${when(str(d['pendingSince']))}（跨日挂账后仍未匹配）</dd>` : ''}
<dt>状态</dt><dd>${stateHtml(m)}</dd>
</dl></div>
<div class="card"><h2>各方记录 / what each side has</h2>
${
  sideRows
    ? `<table id="sides"><thead><tr><th>一方</th><th class="num">金额</th><th>状态</th></tr></thead><tbody>${sideRows}</tbody></table>`
    : '<p class="muted">无金额记录</p>'
}
${
  fenOf(fee['expectedFen']) !== undefined
    ? `<p id="fee">手续费：应为 ${yuan(fenOf(fee['expectedFen']))}，账单为 ${yuan(fenOf(fee['actualFen']))}</p>`
    : ''
}
<h2>建议处理</h2><p id="action">${esc(action.zh ?? info?.action.zh ?? '')}${
      (action.en ?? info?.action.en)
        ? `<br><span class="muted">${esc(action.en ?? info?.action.en ?? '')}</span>`
        : ''
    }</p></div>
${hisCheckHtml(d['hisCheck'])}
${evidenceHtml(m)}
${
  other.length
    ? `<div class="card"><h2>其他记录 / other fields</h2><dl>${other
        .map(([k, v]) => `<dt>${esc(k)}</dt><dd><pre>${esc(JSON.stringify(v, null, 2) ?? '')}</pre></dd>`)
        .join('')}</dl></div>`
    : ''
}
${resolution}
<div class="card"><h2>处理记录 / audit trail</h2>
${
  m.audit.length
    ? `<table id="audit"><thead><tr><th>时间</th><th>操作人</th><th>操作</th><th>备注</th></tr></thead><tbody>${auditRows}</tbody></table>`
    : '<p class="muted" id="audit-empty">暂无处理记录 / nothing yet.</p>'
}</div>`,
    m.viewer,
  );
}
