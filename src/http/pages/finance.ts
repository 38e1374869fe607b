import { randomBytes } from 'node:crypto';
import { sameText } from '../../crypto/tokens.js';
import { readCookie } from '../cookies.js';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import type { FinanceSession } from '../../services/records.js';
import type { ReconcileDeps } from '../../reconcile/deps.js';
import { formatShanghai } from '../../domain/clock.js';
import { isIncomplete, reconcileDay, resolveDifference } from '../../reconcile/run.js';
import { NOTE_MAX, readResolveNote } from '../../reconcile/differences.js';
import { buildDayReport, ReportAppNotFoundError } from '../../reconcile/report.js';
import { reportToCsv, reportToXlsx } from '../../reconcile/export.js';
import { readReconSettings } from '../../reconcile/settings.js';
import { FinanceLogin } from '../../services/finance-login.js';
import { usePageHeaders } from '../../formats/html.js';
import {
  dayQuery,
  dayView,
  differenceView,
  FINANCE_CSP,
  loginView,
  messageView,
  PAY_TYPE_ORDER,
  type DayViewModel,
  type DifferenceRow,
  type DiffFilter,
  type Flash,
  type PendingView,
  type RunTotals,
  type RunView,
  type Viewer,
} from './finance-views.js';
import { fen, type Fen } from '../../domain/money.js';
import { can, permissionsOf, seesApp, type Permission, type Role } from '../../domain/access.js';
import { principalOfSession, safeDeskNext } from './desk-kit.js';

/**
 * The finance page (/finance): log in with an operator account (hospay operator create), see a business day's
 * reconciliation per pay type with a chart, the differences and their evidence, resolve one, re-run the day,
 * download the exports. Server-rendered, no script; every POST carries the session's CSRF token.
 */

export const SESSION_COOKIE = 'hospay_finance';
/** Before login: the double-submit token of the login form. */
export const LOGIN_COOKIE = 'hospay_finance_login';
const DAY_MS = 86_400_000;
const SESSION_COOKIE_MAX_AGE_S = 12 * 3600;

const FLASHES: Readonly<Record<string, Flash>> = {
  resolved: { kind: 'ok', text: '已标记为已处理 / resolved' },
  already: { kind: 'warn', text: '该差异此前已被处理，本次未作更改 / this difference was already resolved' },
  rerun: { kind: 'ok', text: '已重新对账，以下为最新结果 / reconciled again: the latest results' },
  rerun_failed: { kind: 'bad', text: '重新对账失败，请稍后再试或联系管理员 / the re-run failed' },
  rerun_incomplete: {
    kind: 'warn',
    text: '已重新对账，但未完成：HIS 仍无法读取，未与 HIS 核对，请稍后再试 / re-run incomplete: the HIS still could not be read',
  },
  bad_date: { kind: 'warn', text: '日期无效，已显示默认日期 / invalid date: showing the default day' },
};

function sameToken(a: string, b: string): boolean {
  return sameText(a, b) && a.length > 0 && b.length > 0;
}

function isDate(text: string): boolean {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return false;
  const d = new Date(`${text}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 10) === text;
}

/** Only our own pages (the finance page's or the desk's), as a path: never another host. */
function safeNext(text: string | undefined): string | null {
  if (!text) return null;
  if (text.startsWith('/desk')) return safeDeskNext(text);
  if (!/^\/finance(?:\/[A-Za-z0-9/_-]*)?(?:\?[A-Za-z0-9=&%._-]*)?$/.test(text)) return null;
  if (text.startsWith('/finance/login') || text.startsWith('/finance/logout')) return null;
  return text;
}

/** The <GetHospitalTradeList> elements of a HIS answer that name the order (the HIS's own words, as text). */
export function hisRowsOf(raw: string, outTradeNo: string): string[] {
  const out: string[] = [];
  const re = /<GetHospitalTradeList>[\s\S]*?<\/GetHospitalTradeList>/g;
  for (const m of raw.matchAll(re)) {
    if (m[0].includes(`<OutTradeNo>${outTradeNo}</OutTradeNo>`)) out.push(m[0]);
    if (out.length >= 10) break;
  }
  return out;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function int(v: unknown): number {
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : 0;
}

/** An amount read like int(): 0 when missing or not an integer. */
function amount(v: unknown): Fen {
  return fen(int(v));
}

function countFen(v: unknown): { count: number; fen: Fen } {
  const o = obj(v);
  return { count: int(o['count']), fen: amount(o['fen']) };
}

function sideTotals(v: unknown): {
  payment: { count: number; fen: Fen };
  refund: { count: number; fen: Fen };
} {
  const o = obj(v);
  return { payment: countFen(o['payment']), refund: countFen(o['refund']) };
}

/** recon_runs.totals, read defensively (a missing side is zeros; a missing HIS side means no HIS comparison). */
function readTotals(json: string): RunTotals {
  const o = obj(parseJson(json));
  const channel = obj(o['channel']);
  return {
    platform: sideTotals(o['platform']),
    channel: { ...sideTotals(channel), feeFen: amount(channel['feeFen']) },
    ...(o['his'] === undefined ? {} : { his: sideTotals(o['his']) }),
  };
}

function readPending(json: string): PendingView[] {
  const rows = parseJson(json);
  if (!Array.isArray(rows)) return [];
  return rows.map((r) => {
    const o = obj(r);
    return {
      pair: str(o['pair']) ?? '',
      side: str(o['side']) ?? '',
      kind: str(o['kind']) ?? '',
      outTradeNo: str(o['outTradeNo']) ?? '',
      ...(str(o['outRequestNo']) ? { outRequestNo: str(o['outRequestNo']) } : {}),
      amountFen: amount(o['amountFen']),
      time: str(o['time']) ?? '',
      sinceDayStart: str(o['sinceDayStart']) ?? '',
    };
  });
}

function readAmounts(detail: string): DifferenceRow['amounts'] {
  const a = obj(obj(parseJson(detail))['amounts']);
  const out: DifferenceRow['amounts'] = {};
  for (const s of ['platform', 'channel', 'his'] as const) {
    const v = a[s];
    if (typeof v === 'number' && Number.isSafeInteger(v)) out[s] = fen(v);
  }
  return out;
}

export async function registerFinancePages(
  app: FastifyInstance,
  deps: ServiceDeps,
  recon: ReconcileDeps,
): Promise<void> {
  const operators = deps.operators;
  const login = new FinanceLogin(deps);
  const secure = () => deps.config.publicBaseUrl.startsWith('https:');
  const cookie = (name: string, value: string, maxAgeS: number, path = '/finance') =>
    `${name}=${value}; Path=${path}; HttpOnly; SameSite=Strict${secure() ? '; Secure' : ''}; Max-Age=${maxAgeS}`;
  // One login for the finance page and the desk: the session cookie is sent to both paths.
  const sessionCookies = (value: string, maxAgeS: number) => [
    cookie(SESSION_COOKIE, value, maxAgeS, '/finance'),
    cookie(SESSION_COOKIE, value, maxAgeS, '/desk'),
  ];
  /** Where a login lands without `next`: the finance page when the role reads reconciliation, else the desk. */
  const home = (s: { role: Role }) => (permissionsOf(s.role).includes('recon.read') ? '/finance' : '/desk');
  const allowed = (s: FinanceSession, permission: Permission) => can(principalOfSession(s), permission);
  const sees = (s: FinanceSession, appId: string) => seesApp(principalOfSession(s), appId);
  const audit = (
    s: FinanceSession,
    action: string,
    appId: string | null,
    outcome: string,
    detail: Record<string, unknown> = {},
  ) =>
    deps.audit
      .record({
        at: deps.clock.now(),
        actor: s.username,
        role: s.role,
        via: 'session',
        action,
        appId,
        outcome,
        detail,
      })
      .catch((e: unknown) =>
        deps.log.error(
          { err: e instanceof Error ? e.message : String(e), action },
          'audit entry not written',
        ),
      );
  const html = (reply: FastifyReply, body: string, status = 200) =>
    reply.code(status).type('text/html; charset=utf-8').send(body);
  const viewerOf = (s: FinanceSession): Viewer => ({
    username: s.username,
    displayName: s.displayName,
    csrfToken: s.csrfToken,
    canWrite: allowed(s, 'recon.write'),
  });
  const today = () => formatShanghai(deps.clock.now()).slice(0, 10);
  const defaultDate = () => formatShanghai(new Date(deps.clock.now().getTime() - DAY_MS)).slice(0, 10);

  async function session(req: FastifyRequest): Promise<FinanceSession | undefined> {
    const token = readCookie(req, SESSION_COOKIE);
    return token ? operators.lookupSession(token) : undefined;
  }

  /**
   * The session of a page request, or a 303 to the login page (coming back here afterwards); a role without
   * recon.read is sent to the desk (303).
   */
  async function requireSession(req: FastifyRequest, reply: FastifyReply): Promise<FinanceSession | null> {
    const s = await session(req);
    if (s && !allowed(s, 'recon.read')) {
      await reply.redirect('/desk', 303);
      return null;
    }
    if (s) return s;
    const next = req.method === 'GET' ? safeNext(req.url) : null;
    await reply.redirect(
      `/finance/login${next ? `?${new URLSearchParams({ next }).toString()}` : '?m=expired'}`,
      303,
    );
    return null;
  }

  /** The 403 page of a role without the permission of a write. */
  const notAllowed = (reply: FastifyReply, s: FinanceSession) =>
    html(
      reply,
      messageView(
        '无权限 / not allowed',
        '您的角色不能执行此操作（需要对账写权限）。Your role may not do this (recon.write).',
        viewerOf(s),
        { href: '/finance', text: '返回对账首页' },
      ),
      403,
    );

  /** A POST's session and CSRF token; answers (303 to login, or 403) and returns null when either fails. */
  async function requirePost(req: FastifyRequest, reply: FastifyReply): Promise<FinanceSession | null> {
    const s = await session(req);
    if (!s) {
      await reply.redirect('/finance/login?m=expired', 303);
      return null;
    }
    const csrf = str((req.body as Record<string, unknown> | undefined)?.['csrf']) ?? '';
    if (!sameToken(csrf, s.csrfToken)) {
      await html(
        reply,
        messageView(
          '请求无效 / forbidden',
          '页面已过期或请求来源不明（CSRF 校验失败），请返回重新操作。The form is stale or did not come from this site.',
          viewerOf(s),
          { href: '/finance', text: '返回对账首页' },
        ),
        403,
      );
      return null;
    }
    return s;
  }

  await app.register(async (scope) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: 16 * 1024 },
      (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      },
    );
    usePageHeaders(scope, { csp: FINANCE_CSP, referrerPolicy: 'same-origin', noStore: true });

    // ------------------------------------------------------------------------------------------- login
    // The login form's token is kept while its cookie lives, so two open login tabs both work.
    const loginPage = (
      req: FastifyRequest,
      reply: FastifyReply,
      opts: { next: string | null; username?: string; error?: string | null; info?: string | null },
      status = 200,
    ) => {
      const existing = readCookie(req, LOGIN_COOKIE);
      const csrf =
        existing && /^[A-Za-z0-9_-]{32}$/.test(existing) ? existing : randomBytes(24).toString('base64url');
      reply.header('set-cookie', cookie(LOGIN_COOKIE, csrf, 3600));
      return html(reply, loginView({ csrf, ...opts }), status);
    };

    scope.get('/finance/login', async (req, reply) => {
      const q = (req.query ?? {}) as Record<string, unknown>;
      const next = safeNext(str(q['next']));
      const existing = await session(req);
      if (existing) return reply.redirect(next ?? home(existing), 303);
      const m = str(q['m']);
      return loginPage(req, reply, {
        next,
        info:
          m === 'bye'
            ? '已退出登录 / logged out'
            : m === 'expired'
              ? '登录已过期，请重新登录 / please log in again'
              : null,
      });
    });

    scope.post('/finance/login', async (req, reply) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const next = safeNext(str(body['next']));
      const formToken = str(body['csrf']) ?? '';
      const cookieToken = readCookie(req, LOGIN_COOKIE) ?? '';
      if (!sameToken(formToken, cookieToken))
        return html(
          reply,
          messageView(
            '请求无效 / forbidden',
            '登录页已过期或请求来源不明，请重新打开登录页。The login form is stale or did not come from this site.',
            null,
            { href: '/finance/login', text: '重新登录' },
          ),
          403,
        );
      const username = (str(body['username']) ?? '').trim();
      const password = str(body['password']) ?? '';
      if (!username || !password || username.length > 64 || password.length > 1024)
        return loginPage(
          req,
          reply,
          { next, username, error: '请输入用户名和密码 / enter a username and password' },
          400,
        );
      // Every refused credential gets one answer, every throttled attempt another: neither tells an unknown
      // user, a wrong password, a disabled account or a slowed-down source apart (services/finance-login.ts).
      const r = await login.attempt(username, password, req.ip);
      if (r.kind === 'wait') {
        deps.log.info({ finance: 'login throttled', reason: r.reason }, 'finance login throttled');
        reply.header('retry-after', String(r.retryAfterS));
        return loginPage(
          req,
          reply,
          {
            next,
            username,
            error: `登录尝试过于频繁或系统繁忙，请稍后再试（约 ${r.retryAfterS} 秒后）/ too many attempts or too busy: try again in ${r.retryAfterS} s`,
          },
          429,
        );
      }
      if (r.kind === 'refused') {
        deps.log.info({ finance: 'login refused', reason: r.reason }, 'finance login refused');
        return loginPage(
          req,
          reply,
          { next, username, error: '用户名或密码错误 / wrong username or password' },
          401,
        );
      }
      const created = await operators.createSession(r.username);
      deps.log.info({ finance: 'login', operator: r.username }, 'finance login');
      reply.header('set-cookie', [
        ...sessionCookies(created.token, SESSION_COOKIE_MAX_AGE_S),
        cookie(LOGIN_COOKIE, '', 0),
      ]);
      const who = await operators.get(r.username);
      return reply.redirect(next ?? (who ? home(who) : '/finance'), 303);
    });

    scope.post('/finance/logout', async (req, reply) => {
      const s = await requirePost(req, reply);
      if (!s) return reply;
      const token = readCookie(req, SESSION_COOKIE);
      if (token) await operators.deleteSession(token);
      reply.header('set-cookie', sessionCookies('', 0));
      return reply.redirect('/finance/login?m=bye', 303);
    });

    // ----------------------------------------------------------------------------------------- the day
    scope.get('/finance', async (req, reply) => {
      const s = await requireSession(req, reply);
      if (!s) return reply;
      const q = (req.query ?? {}) as Record<string, unknown>;
      // Only the hospitals granted to the operator: another hospital's app is treated as one that does not exist.
      const apps = (await deps.apps.list()).filter((a) => sees(s, a.id));
      if (apps.length === 0)
        return html(
          reply,
          messageView(
            '尚无应用',
            '没有可对账的应用（您尚未被授予任何医院）。No apps to reconcile (none granted to you).',
            viewerOf(s),
          ),
        );
      const chosen = apps.find((a) => a.id === str(q['app'])) ?? apps[0];
      if (!chosen) return html(reply, messageView('尚无应用', 'No apps yet.', viewerOf(s)));
      const dateText = str(q['date']);
      const date = dateText && isDate(dateText) ? dateText : defaultDate();
      const filterText = str(q['filter']);
      const filter: DiffFilter = filterText === 'resolved' || filterText === 'all' ? filterText : 'open';
      const flashKey = dateText && !isDate(dateText) ? 'bad_date' : str(q['flash']);

      const runRows = await recon.reconciliation.runs(date, chosen.id);
      const diffs = await recon.reconciliation.differences({ date, appId: chosen.id });
      const order = (p: string) => {
        const i = PAY_TYPE_ORDER.indexOf(p);
        return i < 0 ? PAY_TYPE_ORDER.length : i;
      };
      const runs: RunView[] = runRows
        .sort((a, b) => order(a.pay_type) - order(b.pay_type) || a.pay_type.localeCompare(b.pay_type))
        .map((r) => ({
          payType: r.pay_type,
          status: r.status,
          matched: r.matched,
          differences: r.differences,
          open: diffs.filter((d) => d.pay_type === r.pay_type && d.present && d.state === 'OPEN').length,
          pending: readPending(r.pending),
          totals: readTotals(r.totals),
          error: r.error,
          finishedAt: r.finished_at,
        }));
      const isOpen = (d: { present: boolean; state: string }) => d.present && d.state === 'OPEN';
      const counts = {
        open: diffs.filter(isOpen).length,
        resolved: diffs.filter((d) => d.state === 'RESOLVED').length,
        all: diffs.length,
      };
      const shown = diffs
        .filter((d) =>
          filter === 'open' ? isOpen(d) : filter === 'resolved' ? d.state === 'RESOLVED' : true,
        )
        .sort((a, b) => order(a.pay_type) - order(b.pay_type) || a.id - b.id)
        .map((d): DifferenceRow => ({
          id: d.id,
          payType: d.pay_type,
          code: d.code,
          kind: d.kind,
          outTradeNo: d.out_trade_no,
          outRequestNo: d.out_request_no,
          amounts: readAmounts(d.detail),
          state: d.state,
          present: d.present,
          resolvedBy: d.resolved_by,
        }));
      const model: DayViewModel = {
        viewer: viewerOf(s),
        apps: apps.map((a) => ({ id: a.id, name: a.name, status: a.status })),
        appId: chosen.id,
        appName: chosen.name,
        date,
        filter,
        runs,
        counts,
        differences: shown,
        flash: (flashKey && FLASHES[flashKey]) || null,
        exports: true,
        his: chosen.his_base_url
          ? {
              protocol: readReconSettings(chosen.recon_settings).hisProtocol,
              soapNamespace: readReconSettings(chosen.recon_settings).hisSoapNamespace,
            }
          : null,
      };
      return html(reply, dayView(model));
    });

    scope.post('/finance/rerun', async (req, reply) => {
      const s = await requirePost(req, reply);
      if (!s) return reply;
      const body = (req.body ?? {}) as Record<string, unknown>;
      const date = str(body['date']) ?? '';
      if (!allowed(s, 'recon.write')) {
        void audit(s, 'recon.run', null, 'refused 403', { date });
        return notAllowed(reply, s);
      }
      const asked = str(body['app']) ?? '';
      const target = sees(s, asked) ? await deps.apps.get(asked) : undefined;
      if (!target || !isDate(date) || date > today())
        return html(
          reply,
          messageView(
            '无法对账',
            '应用或日期无效（不能对未来的日期对账）/ unknown app or invalid date',
            viewerOf(s),
            {
              href: '/finance',
              text: '返回',
            },
          ),
          400,
        );
      let flash = 'rerun';
      try {
        const outcomes = await reconcileDay(recon, { app: target, date });
        if (outcomes.some(isIncomplete)) flash = 'rerun_incomplete';
        await audit(s, 'recon.run', target.id, flash === 'rerun' ? 'ok' : 'incomplete', { date });
        deps.log.info({ finance: 'rerun', operator: s.username, app: target.id, date }, 'finance re-run');
      } catch (e) {
        flash = 'rerun_failed';
        await audit(s, 'recon.run', target.id, 'failed', { date });
        deps.log.warn(
          { err: e instanceof Error ? e.message : String(e), app: target.id, date },
          'finance re-run failed',
        );
      }
      return reply.redirect(`/finance?${dayQuery(target.id, date, { flash })}`, 303);
    });

    // --------------------------------------------------------------------------------------- exports
    scope.get('/finance/export', async (req, reply) => {
      const s = await requireSession(req, reply);
      if (!s) return reply;
      const q = (req.query ?? {}) as Record<string, unknown>;
      const date = str(q['date']) ?? '';
      const appId = str(q['app']) ?? '';
      const format = str(q['format']);
      const bad = (text: string) =>
        html(reply, messageView('无法下载', text, viewerOf(s), { href: '/finance', text: '返回' }), 400);
      if (!isDate(date)) return bad('日期无效 / invalid date');
      if (format !== 'csv' && format !== 'xlsx')
        return bad('格式须为 csv 或 xlsx / format must be csv or xlsx');
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(appId)) return bad('应用无效 / unknown app');
      // Another hospital's report is answered like a missing app's.
      if (!sees(s, appId)) return bad('没有这个应用 / no such app');
      let report;
      try {
        report = await buildDayReport(recon, { date, appId, now: deps.clock.now() });
      } catch (e) {
        if (e instanceof ReportAppNotFoundError) return bad('没有这个应用 / no such app');
        throw e;
      }
      deps.log.info({ finance: 'export', operator: s.username, app: appId, date, format }, 'finance export');
      reply.header('content-disposition', `attachment; filename="hospay-report-${date}-${appId}.${format}"`);
      if (format === 'csv')
        return reply.type('text/csv; charset=utf-8').send(Buffer.from(reportToCsv(report), 'utf8'));
      return reply
        .type('application/vnd.openxmlformats-officedocument.spreadsheetml.sheet')
        .send(await reportToXlsx(report));
    });

    // ------------------------------------------------------------------------------- one difference
    const loadDifference = (id: number) => recon.reconciliation.difference(id);

    const showDifference = async (
      reply: FastifyReply,
      s: FinanceSession,
      id: number,
      opts: { flash?: Flash | null; noteDraft?: string; noteError?: string | null; status?: number } = {},
    ) => {
      const found = await loadDifference(id);
      // Another hospital's difference answers exactly like a missing one.
      const d = found && sees(s, found.app_id) ? found : undefined;
      if (!d)
        return html(
          reply,
          messageView('差异不存在', '没有这个差异 / no such difference', viewerOf(s), {
            href: '/finance',
            text: '返回对账首页',
          }),
          404,
        );
      const owner = await deps.apps.get(d.app_id);
      const audit = await recon.reconciliation.audit(id);
      const evidence = await recon.reconciliation.evidence(d.app_id, d.business_date, d.pay_type);
      // The HIS's own rows for this order, from the answers kept with the run (found by the database).
      const raws = await recon.reconciliation.hisAnswersContaining(
        d.app_id,
        d.business_date,
        d.pay_type,
        d.out_trade_no,
      );
      const names = await operators.displayNames([
        ...audit.map((a) => a.actor),
        ...(d.resolved_by ? [d.resolved_by] : []),
      ]);
      return html(
        reply,
        differenceView({
          viewer: viewerOf(s),
          flash: opts.flash ?? null,
          id: d.id,
          appId: d.app_id,
          appName: owner?.name ?? d.app_id,
          date: d.business_date,
          payType: d.pay_type,
          code: d.code,
          kind: d.kind,
          outTradeNo: d.out_trade_no,
          outRequestNo: d.out_request_no,
          detail: obj(parseJson(d.detail)),
          present: d.present,
          state: d.state,
          resolvedBy: d.resolved_by,
          resolvedByName: d.resolved_by ? (names.get(d.resolved_by) ?? null) : null,
          resolvedNote: d.resolved_note,
          resolvedAt: d.resolved_at,
          audit: audit.map((a) => ({
            at: a.at,
            actor: a.actor,
            actorName: names.get(a.actor) ?? null,
            action: a.action,
            note: a.note,
          })),
          evidence: evidence.map((e) => ({
            source: e.source,
            request: e.request,
            records: e.records,
            fetchedAt: e.fetched_at,
          })),
          hisExcerpts: raws.flatMap((r) => hisRowsOf(r.raw ?? '', d.out_trade_no)).slice(0, 10),
          ...(opts.noteDraft !== undefined ? { noteDraft: opts.noteDraft } : {}),
          noteError: opts.noteError ?? null,
        }),
        opts.status ?? 200,
      );
    };

    const differenceId = (req: FastifyRequest): number | null => {
      const { id } = req.params as { id: string };
      return /^[0-9]{1,15}$/.test(id) ? Number(id) : null;
    };

    scope.get('/finance/differences/:id', async (req, reply) => {
      const s = await requireSession(req, reply);
      if (!s) return reply;
      const id = differenceId(req);
      const flashKey = str(((req.query ?? {}) as Record<string, unknown>)['flash']);
      return showDifference(reply, s, id ?? -1, { flash: (flashKey && FLASHES[flashKey]) || null });
    });

    scope.post('/finance/differences/:id/resolve', async (req, reply) => {
      const s = await requirePost(req, reply);
      if (!s) return reply;
      const id = differenceId(req) ?? -1;
      const target = await loadDifference(id);
      if (!target || !sees(s, target.app_id)) return showDifference(reply, s, id);
      if (!allowed(s, 'recon.write')) {
        void audit(s, 'difference.resolve', target.app_id, 'refused 403', { difference: id });
        return notAllowed(reply, s);
      }
      const raw = str((req.body as Record<string, unknown> | undefined)?.['note']) ?? '';
      const checked = readResolveNote(raw);
      if ('error' in checked)
        return showDifference(reply, s, id, {
          noteDraft: raw,
          noteError:
            checked.error === 'empty'
              ? '请填写处理说明（1～500 字）/ a note is required'
              : `处理说明至多 ${NOTE_MAX} 字，且不能含控制字符 / the note is at most ${NOTE_MAX} characters`,
          status: 400,
        });
      const note = checked.note;
      if (await resolveDifference(recon, id, s.username, note)) {
        await audit(s, 'difference.resolve', target.app_id, 'ok', { difference: id });
        deps.log.info({ finance: 'resolve', operator: s.username, difference: id }, 'difference resolved');
        return reply.redirect(`/finance/differences/${id}?flash=resolved`, 303);
      }
      const d = await loadDifference(id);
      if (d?.state === 'RESOLVED') return reply.redirect(`/finance/differences/${id}?flash=already`, 303);
      return showDifference(reply, s, id);
    });
  });
}
