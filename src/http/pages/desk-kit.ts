import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import type { FinanceSession } from '../../services/records.js';
import { can, ROLE_LABELS, type Permission, type Principal } from '../../domain/access.js';
import { sameText } from '../../crypto/tokens.js';
import { readCookie } from '../cookies.js';
import { cspWithStyle, esc, usePageHeaders } from '../../formats/html.js';

/**
 * The operators' desk (/desk): the frame, the session and permission checks shared by its pages — the trades
 * (desk-trades.ts), the money actions and approvals (desk-actions.ts) and the platform admin's apps, channels
 * and operators (desk-admin.ts). Server-rendered, no script; every POST carries the session's CSRF token.
 *
 * One login for the desk and the finance page (/finance/login): the session cookie is set for both paths.
 */

/** The session cookie (the finance page's; the login sets it with Path=/finance and with Path=/desk). */
export const DESK_SESSION_COOKIE = 'hospay_finance';

const CSS = `
body { font-family: -apple-system, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif; margin: 0; background: #f4f6f8; color: #1f2d3d; font-size: 14px; overflow-wrap: anywhere; }
header.top { display: flex; flex-wrap: wrap; align-items: center; gap: 8px 16px; padding: 10px 20px; background: #1f2d3d; color: #fff; }
header.top .brand { font-weight: 600; font-size: 16px; }
header.top nav { flex: 1; display: flex; flex-wrap: wrap; gap: 4px 14px; }
header.top nav a { color: #c9d6e3; text-decoration: none; white-space: nowrap; } header.top nav a.current { color: #fff; font-weight: 600; border-bottom: 2px solid #1677ff; }
header.top form { margin: 0; } header.top button { background: #3a4a5c; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 16px; }
.card { background: #fff; border-radius: 8px; padding: 16px 20px; margin-bottom: 16px; box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h1 { font-size: 20px; margin: 0 0 12px; } h2 { font-size: 16px; margin: 0 0 10px; }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid #e6eaef; padding: 6px 8px; text-align: left; vertical-align: top; }
th { background: #f7f9fb; font-weight: 600; white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; }
.muted { color: #6b7b8c; } .ok { color: #0a8a3a; } .bad { color: #c0392b; } .warn { color: #8a5300; }
.flash { padding: 10px 14px; border-radius: 6px; margin-bottom: 16px; }
.flash.ok { background: #e7f6ec; color: #0a6b2e; } .flash.warn { background: #fff4e0; color: #8a5300; } .flash.bad { background: #fdecea; color: #a12a1e; }
button, .button { font-size: 14px; padding: 7px 14px; border: 0; border-radius: 6px; cursor: pointer; background: #1677ff; color: #fff; text-decoration: none; display: inline-block; }
.button.secondary, button.secondary { background: #e8ecf1; color: #1f2d3d; } button.danger { background: #c0392b; }
code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; background: #f1f3f5; padding: 1px 4px; border-radius: 3px; }
pre { background: #f7f9fb; padding: 10px; border-radius: 6px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; font-size: 12px; }
dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 6px 16px; margin: 0; } dt { color: #6b7b8c; } dd { margin: 0; min-width: 0; }
input, select, textarea { font: inherit; padding: 5px 8px; max-width: 100%; box-sizing: border-box; }
textarea { width: 100%; }
label { display: inline-flex; flex-direction: column; gap: 2px; font-size: 12px; color: #6b7b8c; }
form.filters { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px 12px; align-items: end; }
form.inline { display: inline; } form.stack { display: flex; flex-direction: column; gap: 10px; max-width: 520px; }
.toolbar { display: flex; flex-wrap: wrap; gap: 10px 12px; align-items: center; margin: 10px 0; }
.pager { display: flex; gap: 12px; align-items: center; margin-top: 10px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; background: #e8ecf1; white-space: nowrap; }
.badge.ok { background: #e7f6ec; } .badge.bad { background: #fdecea; } .badge.warn { background: #fff4e0; }
ol.timeline { list-style: none; margin: 0; padding: 0 0 0 14px; border-left: 2px solid #d8dee6; }
ol.timeline li { position: relative; margin: 0 0 12px; padding-left: 10px; }
ol.timeline li::before { content: ""; position: absolute; left: -21px; top: 4px; width: 10px; height: 10px; border-radius: 50%; background: #1677ff; }
ol.timeline li.bad::before { background: #c0392b; } ol.timeline li.warn::before { background: #e59a00; } ol.timeline li.ok::before { background: #0a8a3a; }
ol.timeline .when { color: #6b7b8c; font-size: 12px; font-variant-numeric: tabular-nums; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; }
.secret-once { background: #fff4e0; padding: 12px; border-radius: 6px; word-break: break-all; font-family: ui-monospace, Menlo, Consolas, monospace; }
@media (max-width: 600px) { main { padding: 12px 8px; } .card { padding: 12px; } th, td { padding: 5px 4px; } }
`;

/** The CSP of every desk page: its own style block only, forms to itself, no script. */
export const DESK_CSP = cspWithStyle(CSS, ["form-action 'self'"]);

/** The desk's sections (the top navigation), each shown only to a role that has its permission. */
export type DeskSection = 'trades' | 'approvals' | 'apps' | 'channels' | 'operators' | 'audit';

const SECTIONS: readonly { id: DeskSection; href: string; label: string; needs: Permission }[] = [
  { id: 'trades', href: '/desk', label: '交易查询', needs: 'trades.read' },
  { id: 'approvals', href: '/desk/approvals', label: '退款审批', needs: 'money.request' },
  { id: 'apps', href: '/desk/apps', label: '应用', needs: 'apps.write' },
  { id: 'channels', href: '/desk/channels', label: '渠道', needs: 'channels.read' },
  { id: 'operators', href: '/desk/operators', label: '操作员', needs: 'platform.admin' },
  { id: 'audit', href: '/desk/audit', label: '操作记录', needs: 'trades.read' },
];

export interface DeskViewer {
  principal: Principal;
  csrfToken: string;
}

export interface DeskFlash {
  kind: 'ok' | 'warn' | 'bad';
  text: string;
}

export function principalOfSession(s: FinanceSession): Principal {
  return { username: s.username, displayName: s.displayName, role: s.role, apps: s.apps, via: 'session' };
}

export function csrfInput(v: DeskViewer): string {
  return `<input type="hidden" name="csrf" value="${esc(v.csrfToken)}">`;
}

/** The frame of every desk page: navigation for the viewer's role, who is logged in, logout. */
export function deskPage(
  title: string,
  viewer: DeskViewer | null,
  active: DeskSection | null,
  body: string,
  flash?: DeskFlash | null,
): string {
  const nav = viewer
    ? `<nav>${SECTIONS.filter((s) => can(viewer.principal, s.needs))
        .map(
          (s) =>
            `<a href="${s.href}"${s.id === active ? ' class="current" aria-current="page"' : ''}>${esc(s.label)}</a>`,
        )
        .join('')}${
        can(viewer.principal, 'recon.read') ? '<a href="/finance">对账</a>' : ''
      }</nav><span id="who">${esc(viewer.principal.displayName)}（${esc(viewer.principal.username)} · ${esc(
        ROLE_LABELS[viewer.principal.role].split(' / ')[0] ?? '',
      )}）</span><form method="post" action="/finance/logout">${csrfInput(viewer)}<button type="submit" id="logout">退出</button></form>`
    : '<nav></nav>';
  const flashHtml = flash
    ? `<div class="flash ${flash.kind}" id="flash" role="status">${esc(flash.text)}</div>`
    : '';
  return `<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${esc(title)} · hospay 运维台</title>
<style>${CSS}</style>
</head>
<body>
<header class="top"><span class="brand">hospay 运维台</span>${nav}</header>
<main>
${flashHtml}${body}
</main>
</body>
</html>`;
}

export function deskMessage(
  title: string,
  text: string,
  viewer: DeskViewer | null,
  status = 200,
): {
  status: number;
  html: string;
} {
  return {
    status,
    html: deskPage(
      title,
      viewer,
      null,
      `<div class="card"><h1>${esc(title)}</h1><p>${esc(text)}</p><p><a href="/desk">返回运维台 / back to the desk</a></p></div>`,
    ),
  };
}

export function sendHtml(reply: FastifyReply, html: string, status = 200): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').send(html);
}

/** The viewer of a request: its session (cookie), undefined when none or ended. */
export async function deskViewer(deps: ServiceDeps, req: FastifyRequest): Promise<DeskViewer | undefined> {
  const token = readCookie(req, DESK_SESSION_COOKIE);
  const s = token ? await deps.operators.lookupSession(token) : undefined;
  return s ? { principal: principalOfSession(s), csrfToken: s.csrfToken } : undefined;
}

/** Only our own desk pages, as a path: the login comes back here. */
export function safeDeskNext(url: string): string | null {
  return /^\/desk(?:\/[A-Za-z0-9/_.-]*)?(?:\?[A-Za-z0-9=&%._+-]*)?$/.test(url) ? url : null;
}

function forbidden(reply: FastifyReply, viewer: DeskViewer): FastifyReply {
  const m = deskMessage(
    '无权限 / not allowed',
    `您的角色（${ROLE_LABELS[viewer.principal.role]}）不能使用此功能。Your role cannot use this page or action.`,
    viewer,
    403,
  );
  return sendHtml(reply, m.html, m.status);
}

/**
 * A GET page's viewer with `permission`: a 303 to the login (coming back here) without a session, a 403 page
 * without the permission; null when it answered.
 */
export async function requireDesk(
  deps: ServiceDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  permission: Permission,
): Promise<DeskViewer | null> {
  const viewer = await deskViewer(deps, req);
  if (!viewer) {
    const next = req.method === 'GET' ? safeDeskNext(req.url) : null;
    await reply.redirect(
      `/finance/login${next ? `?${new URLSearchParams({ next }).toString()}` : '?m=expired'}`,
      303,
    );
    return null;
  }
  if (!can(viewer.principal, permission)) {
    await forbidden(reply, viewer);
    return null;
  }
  return viewer;
}

/** A POST's viewer: session, CSRF token (form field `csrf`) and `permission`; null when it answered. */
export async function requireDeskPost(
  deps: ServiceDeps,
  req: FastifyRequest,
  reply: FastifyReply,
  permission: Permission,
): Promise<DeskViewer | null> {
  const viewer = await deskViewer(deps, req);
  if (!viewer) {
    await reply.redirect('/finance/login?m=expired', 303);
    return null;
  }
  const body = (req.body ?? {}) as Record<string, unknown>;
  const csrf = typeof body['csrf'] === 'string' ? body['csrf'] : '';
  if (!(csrf.length > 0 && sameText(csrf, viewer.csrfToken))) {
    const m = deskMessage(
      '请求无效 / forbidden',
      '页面已过期或请求来源不明（CSRF 校验失败），请返回重新操作。The form is stale or did not come from this site.',
      viewer,
      403,
    );
    await sendHtml(reply, m.html, m.status);
    return null;
  }
  if (!can(viewer.principal, permission)) {
    await forbidden(reply, viewer);
    return null;
  }
  return viewer;
}

/**
 * A trade, request or app of a hospital the viewer does not see answers exactly like one that does not exist
 * (404): never "forbidden", which would tell that it exists.
 */
export function notFoundPage(reply: FastifyReply, viewer: DeskViewer): FastifyReply {
  const m = deskMessage('未找到 / not found', '没有找到该记录。No such record.', viewer, 404);
  return sendHtml(reply, m.html, m.status);
}

/**
 * An encapsulated scope for desk routes: url-encoded forms (16 KiB), the page security headers with DESK_CSP,
 * no caching.
 */
export async function deskScope(
  app: FastifyInstance,
  register: (scope: FastifyInstance) => void | Promise<void>,
): Promise<void> {
  await app.register(async (scope) => {
    scope.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: 16 * 1024 },
      (_req, body, done) => {
        done(null, Object.fromEntries(new URLSearchParams(body as string)));
      },
    );
    usePageHeaders(scope, { csp: DESK_CSP, referrerPolicy: 'same-origin', noStore: true });
    await register(scope);
  });
}
