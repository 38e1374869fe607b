import { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import type { ReconcileDeps } from '../../reconcile/deps.js';
import type { DeskStatusFilter, TradeSearch, TradeSearchRow } from '../../services/records.js';
import {
  TRADE_STATUS_LABELS,
  categoryChoices,
  tradePage,
  visibleApps,
  type DeskApp,
} from '../../services/desk-timeline.js';
import { appScope, type Principal } from '../../domain/access.js';
import { fen, formatFen, parseYuanToFen, type Fen } from '../../domain/money.js';
import { formatShanghai, isCalendarDate } from '../../domain/clock.js';
import { parsePayType } from '../../domain/trade.js';
import { deskScope, notFoundPage, requireDesk, sendHtml } from './desk-kit.js';
import { actionFlash, actionPanel } from './desk-action-views.js';
import { auditPage, searchPage, tradePageHtml, type AuditForm, type SearchForm } from './desk-trade-views.js';

/**
 * The desk's trade pages (permission trades.read): the search (GET /desk), its CSV export
 * (GET /desk/trades.csv), a trade's page with its timeline and action panel (GET /desk/trades/:appId/:outTradeNo)
 * and the audit trail (GET /desk/audit). Every read is limited to the viewer's hospitals in its SQL; another
 * hospital's trade answers 404 exactly like a missing one.
 */

export const PAGE_SIZE = 50;
/** At most this many lines in one CSV export (the file says so when cut). */
export const EXPORT_MAX_ROWS = 50_000;
/** At most this many days in one search or export. */
export const MAX_RANGE_DAYS = 366;
/** The longest text filter (order numbers are at most 64 characters at the doors). */
const MAX_FIELD = 64;

const DAY_MS = 86_400_000;

const SEARCH_FIELDS = [
  'app',
  'out_trade_no',
  'number',
  'inhospital_no',
  'patient',
  'pay_type',
  'channel',
  'status',
  'category',
  'terminal',
  'operator',
  'min',
  'max',
  'from',
  'to',
] as const;

const AUDIT_FIELDS = ['app', 'actor', 'action', 'trade', 'from', 'to'] as const;

/** A query parameter as text: a repeated one (an array) or anything else counts as absent. */
function param(q: Record<string, unknown>, name: string): string {
  const v = q[name];
  return typeof v === 'string' ? v : '';
}

/** The Asia/Shanghai day of an instant, 'yyyy-MM-dd'. */
export function shanghaiToday(now: Date): string {
  return formatShanghai(now).slice(0, 10);
}

/** The start of an Asia/Shanghai day. */
function dayStart(day: string): Date {
  return new Date(`${day}T00:00:00+08:00`);
}

/** Text a filter may hold: printable, no control characters, at most MAX_FIELD characters. */
function textProblem(label: string, value: string): string | null {
  if ([...value].length > MAX_FIELD)
    return `${label}过长（至多 ${MAX_FIELD} 个字符）/ ${label}: too long (at most ${MAX_FIELD} characters)`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return `${label}含有无效字符 / ${label}: invalid characters`;
  return null;
}

interface DayRange {
  from: string;
  to: string;
  fromAt: Date;
  toAt: Date;
}

/** from / to days ('yyyy-MM-dd', Asia/Shanghai, both included); today when empty. */
function readDays(from: string, to: string, today: string, problems: string[]): DayRange | null {
  const f = from === '' ? today : from;
  const t = to === '' ? (from === '' ? today : f) : to;
  let ok = true;
  if (!isCalendarDate(f)) {
    problems.push(`开始日期无效：应为 yyyy-MM-dd / from: not a date (yyyy-MM-dd)`);
    ok = false;
  }
  if (!isCalendarDate(t)) {
    problems.push(`结束日期无效：应为 yyyy-MM-dd / to: not a date (yyyy-MM-dd)`);
    ok = false;
  }
  if (!ok) return null;
  const fromAt = dayStart(f);
  const toAt = new Date(dayStart(t).getTime() + DAY_MS);
  if (toAt <= fromAt) {
    problems.push('结束日期早于开始日期 / to is before from');
    return null;
  }
  if (toAt.getTime() - fromAt.getTime() > MAX_RANGE_DAYS * DAY_MS) {
    problems.push(`日期范围至多 ${MAX_RANGE_DAYS} 天 / at most ${MAX_RANGE_DAYS} days at once`);
    return null;
  }
  return { from: f, to: t, fromAt, toAt };
}

function readAmount(label: string, text: string, problems: string[]): Fen | undefined {
  if (text === '') return undefined;
  const v = parseYuanToFen(text.trim());
  if (v === null) {
    problems.push(
      `${label}无效：请填写元，如 88.88 / ${label}: not an amount in yuan (e.g. 88.88), got "${[...text].slice(0, 20).join('')}"`,
    );
    return undefined;
  }
  return v;
}

export interface ReadSearch {
  form: SearchForm;
  problems: string[];
  /** Null when a problem was found. */
  search: Omit<TradeSearch, 'limit' | 'before'> | null;
  allDays: boolean;
}

/** Reads and checks the search's filters (query parameters) for a viewer. */
export function readSearch(
  q: Record<string, unknown>,
  viewer: Principal,
  apps: readonly DeskApp[],
  channels: readonly string[],
  now: Date,
): ReadSearch {
  const form = Object.fromEntries(SEARCH_FIELDS.map((k) => [k, param(q, k).trim()])) as SearchForm;
  const problems: string[] = [];
  const labels: Partial<Record<keyof SearchForm, string>> = {
    out_trade_no: '订单号',
    number: '交易号',
    inhospital_no: '住院号',
    patient: '患者姓名',
    terminal: '终端',
    operator: '收费员',
    min: '最小金额',
    max: '最大金额',
    app: '医院',
    channel: '渠道',
    category: '分类',
  };
  for (const k of SEARCH_FIELDS) {
    const p = textProblem(labels[k] ?? k, form[k]);
    if (p) problems.push(p);
  }
  if (problems.length) return { form, problems, search: null, allDays: false };

  const s: Omit<TradeSearch, 'limit' | 'before'> = { apps: appScope(viewer), from: null, to: null };
  if (form.app !== '') {
    if (!apps.some((a) => a.id === form.app)) problems.push('没有该医院 / no such hospital');
    else s.appId = form.app;
  }
  let exact = false;
  if (form.out_trade_no !== '') {
    const prefix = form.out_trade_no.endsWith('*');
    const value = prefix ? form.out_trade_no.slice(0, -1) : form.out_trade_no;
    if (value === '' || value.includes('*') || /\s/.test(value))
      problems.push('订单号无效（前缀查询请以 * 结尾）/ OutTradeNo: invalid (a prefix ends with *)');
    else s.outTradeNo = { value, prefix };
    exact ||= !prefix;
  }
  if (form.number !== '') {
    s.number = form.number;
    exact = true;
  }
  if (form.inhospital_no !== '') s.inhospitalNo = form.inhospital_no;
  if (form.patient !== '') s.patientName = form.patient;
  if (form.pay_type !== '') {
    const pt = parsePayType(form.pay_type);
    if (pt === null) problems.push('支付方式无效 / unknown pay type');
    else s.payType = pt;
  }
  if (form.channel !== '') {
    if (!channels.includes(form.channel)) problems.push('渠道无效 / unknown channel');
    else s.channel = form.channel;
  }
  if (form.status !== '') {
    if (!(form.status in TRADE_STATUS_LABELS)) problems.push('状态无效 / unknown status');
    else s.status = form.status as DeskStatusFilter;
  }
  if (form.category !== '') {
    if (!/^[A-Za-z0-9]{1,16}$/.test(form.category)) problems.push('分类无效 / unknown category');
    else s.category = form.category;
  }
  if (form.terminal !== '') s.terminalId = form.terminal;
  if (form.operator !== '') s.operatorId = form.operator;
  const min = readAmount('最小金额', form.min, problems);
  const max = readAmount('最大金额', form.max, problems);
  if (min !== undefined) s.minFen = min;
  if (max !== undefined) s.maxFen = max;
  if (min !== undefined && max !== undefined && min > max)
    problems.push('最小金额大于最大金额 / min is above max');
  const today = shanghaiToday(now);
  if (exact) {
    // An exact number finds its trade on any day; the days typed are still checked.
    if (form.from !== '' || form.to !== '') readDays(form.from, form.to, today, problems);
  } else {
    const days = readDays(form.from, form.to, today, problems);
    if (days) {
      form.from = days.from;
      form.to = days.to;
      s.from = days.fromAt;
      s.to = days.toAt;
    }
  }
  return { form, problems, search: problems.length ? null : s, allDays: exact };
}

/** The query string of a form's non-empty values, plus extra parameters. */
function queryOf(form: Readonly<Record<string, string>>, extra: Record<string, string> = {}): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(form)) if (v !== '') u.set(k, v);
  for (const [k, v] of Object.entries(extra)) u.set(k, v);
  return u.toString();
}

/** The paging cursor "<created_at ms>_<id>". */
function readCursor(text: string): { at: Date; id: number } | null {
  const m = /^(\d{1,15})_(\d{1,15})$/.exec(text);
  if (!m) return null;
  const at = new Date(Number(m[1]));
  const id = Number(m[2]);
  return Number.isNaN(at.getTime()) || !Number.isSafeInteger(id) ? null : { at, id };
}

// --------------------------------------------------------------------------------------------------- CSV

/** A CSV cell: quoted, quotes doubled; a text a spreadsheet would run as a formula gets a leading '. */
export function csvCell(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return `"${safe.replace(/"/g, '""')}"`;
}

export const CSV_COLUMNS = [
  '创建时间 created',
  '医院 app_id',
  '医院名称 hospital',
  '订单号 OutTradeNo',
  '平台交易号 TradeNo',
  '渠道交易号 channel_trade_no',
  '分类 category',
  '支付方式 pay_type',
  '渠道 channel',
  '状态 status',
  '金额(元) amount',
  '已退款(元) refunded',
  '支付时间 paid',
  '患者 patient',
  '住院号 InhospitalNo',
  '终端 terminal',
  '收费员 operator',
] as const;

function csvLine(r: TradeSearchRow, appName: ReadonlyMap<string, string>): string {
  return [
    formatShanghai(r.created_at),
    r.app_id,
    appName.get(r.app_id) ?? '',
    r.out_trade_no,
    r.trade_no,
    r.channel_trade_no ?? '',
    r.category,
    r.pay_type ?? '',
    r.channel ?? '',
    r.kind === 'void' ? 'VOID' : r.status,
    formatFen(r.total_fen),
    formatFen(fen(r.refunded_fen)),
    r.paid_at ? formatShanghai(r.paid_at) : '',
    r.patient ?? '',
    r.inhospital_no ?? '',
    r.terminal_id ?? '',
    r.operator_id ?? '',
  ]
    .map(csvCell)
    .join(',');
}

// ------------------------------------------------------------------------------------------------- routes

export async function registerDeskTradePages(
  app: FastifyInstance,
  deps: ServiceDeps,
  _recon: ReconcileDeps,
): Promise<void> {
  await deskScope(app, (scope) => {
    scope.get('/desk', async (req, reply) => {
      const viewer = await requireDesk(deps, req, reply, 'trades.read');
      if (!viewer) return reply;
      const q = (req.query ?? {}) as Record<string, unknown>;
      const apps = await visibleApps(deps, viewer.principal);
      const channels = deps.channels.ids();
      const r = readSearch(q, viewer.principal, apps, channels, deps.clock.now());
      const before = param(q, 'before');
      const cursor = before === '' ? undefined : readCursor(before);
      if (cursor === null) r.problems.push('分页参数无效 / invalid page');
      let rows: TradeSearchRow[] | null = null;
      let nextQuery: string | null = null;
      if (r.search && cursor !== null) {
        const found = await deps.desk.search({
          ...r.search,
          limit: PAGE_SIZE + 1,
          ...(cursor ? { before: cursor } : {}),
        });
        rows = found.slice(0, PAGE_SIZE);
        const last = rows[rows.length - 1];
        if (found.length > PAGE_SIZE && last)
          nextQuery = queryOf(r.form, { before: `${last.created_at.getTime()}_${last.id}` });
      }
      const html = searchPage({
        viewer,
        apps,
        channels,
        categories: categoryChoices(apps),
        form: r.form,
        problems: r.problems,
        rows,
        nextQuery,
        paged: cursor !== undefined && cursor !== null,
        firstQuery: queryOf(r.form),
        allDays: r.allDays,
        pageSize: PAGE_SIZE,
      });
      return sendHtml(reply, html, r.problems.length ? 400 : 200);
    });

    scope.get('/desk/trades.csv', async (req, reply) => {
      const viewer = await requireDesk(deps, req, reply, 'trades.read');
      if (!viewer) return reply;
      const q = (req.query ?? {}) as Record<string, unknown>;
      const apps = await visibleApps(deps, viewer.principal);
      const channels = deps.channels.ids();
      const r = readSearch(q, viewer.principal, apps, channels, deps.clock.now());
      if (!r.search) {
        const html = searchPage({
          viewer,
          apps,
          channels,
          categories: categoryChoices(apps),
          form: r.form,
          problems: r.problems,
          rows: null,
          nextQuery: null,
          paged: false,
          firstQuery: '',
          allDays: false,
          pageSize: PAGE_SIZE,
        });
        return sendHtml(reply, html, 400);
      }
      const p = viewer.principal;
      const scope1 = appScope(p);
      await deps.audit.record({
        at: deps.clock.now(),
        actor: p.username,
        role: p.role,
        via: p.via,
        action: 'trades.export',
        appId: r.search.appId ?? (scope1 && scope1.length === 1 ? (scope1[0] ?? null) : null),
        outcome: 'ok',
        // The filters, without the patient's name (personal data): only whether one was given.
        detail: {
          filters: { ...r.form, patient: r.form.patient === '' ? '' : '***' },
          max_rows: EXPORT_MAX_ROWS,
        },
      });
      const appName = new Map(apps.map((a) => [a.id, a.name]));
      const search = r.search;
      async function* lines(): AsyncGenerator<string> {
        yield `\uFEFF${CSV_COLUMNS.map(csvCell).join(',')}\r\n`;
        let chunk = '';
        for await (const row of deps.desk.exportRows(search, EXPORT_MAX_ROWS)) {
          if ('truncated' in row) {
            chunk += `${csvCell(`# 仅导出前 ${EXPORT_MAX_ROWS} 行，请缩小范围 / truncated at ${EXPORT_MAX_ROWS} rows: narrow the search`)}\r\n`;
            break;
          }
          chunk += `${csvLine(row, appName)}\r\n`;
          if (chunk.length > 64 * 1024) {
            yield chunk;
            chunk = '';
          }
        }
        if (chunk) yield chunk;
      }
      const name = `trades-${r.form.from || 'all'}-${r.form.to || 'all'}.csv`.replace(/[^A-Za-z0-9._-]/g, '');
      return reply
        .code(200)
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="${name}"`)
        .send(Readable.from(lines()));
    });

    scope.get('/desk/trades/:appId/:outTradeNo', async (req, reply) => {
      const viewer = await requireDesk(deps, req, reply, 'trades.read');
      if (!viewer) return reply;
      const { appId, outTradeNo } = req.params as { appId: string; outTradeNo: string };
      if (appId.length > MAX_FIELD || outTradeNo.length > MAX_FIELD) return notFoundPage(reply, viewer);
      const page = await tradePage(deps, viewer.principal, appId, outTradeNo);
      if (!page) return notFoundPage(reply, viewer);
      const appRow = await deps.apps.get(appId);
      const panel = await actionPanel(deps, viewer, appId, outTradeNo);
      // No flash text from the query string: a crafted link must not put words on this page.
      // The result of an action (desk-actions.ts redirects here with fixed codes only, mapped to fixed messages).
      return sendHtml(
        reply,
        tradePageHtml(viewer, page, appRow?.name ?? appId, panel, actionFlash(req.query)),
      );
    });

    scope.get('/desk/audit', async (req, reply) => {
      const viewer = await requireDesk(deps, req, reply, 'trades.read');
      if (!viewer) return reply;
      const q = (req.query ?? {}) as Record<string, unknown>;
      const apps = await visibleApps(deps, viewer.principal);
      const form = Object.fromEntries(AUDIT_FIELDS.map((k) => [k, param(q, k).trim()])) as AuditForm;
      const problems: string[] = [];
      for (const k of AUDIT_FIELDS) {
        const p = textProblem(k, form[k]);
        if (p) problems.push(p);
      }
      if (form.app !== '' && !apps.some((a) => a.id === form.app))
        problems.push('没有该医院 / no such hospital');
      let from: Date | undefined;
      let to: Date | undefined;
      if (form.from !== '' || form.to !== '') {
        const days = readDays(form.from, form.to, shanghaiToday(deps.clock.now()), problems);
        if (days) {
          from = days.fromAt;
          to = days.toAt;
        }
      }
      const before = param(q, 'before');
      const beforeId = before === '' ? undefined : /^\d{1,15}$/.test(before) ? Number(before) : null;
      if (beforeId === null) problems.push('分页参数无效 / invalid page');
      let entries = null;
      let nextQuery: string | null = null;
      if (problems.length === 0) {
        const found = await deps.desk.audit({
          apps: appScope(viewer.principal),
          ...(form.app ? { appId: form.app } : {}),
          ...(form.actor ? { actor: form.actor } : {}),
          ...(form.action ? { action: form.action } : {}),
          ...(form.trade ? { outTradeNo: form.trade } : {}),
          ...(from ? { from } : {}),
          ...(to ? { to } : {}),
          ...(beforeId !== undefined && beforeId !== null ? { beforeId } : {}),
          limit: PAGE_SIZE + 1,
        });
        entries = found.slice(0, PAGE_SIZE);
        const last = entries[entries.length - 1];
        if (found.length > PAGE_SIZE && last) nextQuery = queryOf(form, { before: String(last.id) });
      }
      const html = auditPage({
        viewer,
        apps,
        form,
        problems,
        entries,
        nextQuery,
        firstQuery: queryOf(form),
        paged: beforeId !== undefined,
        pageSize: PAGE_SIZE,
      });
      return sendHtml(reply, html, problems.length ? 400 : 200);
    });
  });
}
