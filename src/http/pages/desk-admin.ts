import { randomBytes } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import type { App } from '../../services/records.js';
import { appChannelStatus, gatewayPublicKey, isAppInputProblem, newAppInput } from '../../services/apps.js';
import { setChannelMap } from '../../services/channel-config.js';
import { OperatorError } from '../../domain/errors.js';
import { isRole, seesApp, visible, type Principal } from '../../domain/access.js';
import {
  deskMessage,
  deskScope,
  notFoundPage,
  requireDesk,
  requireDeskPost,
  sendHtml,
  type DeskFlash,
  type DeskViewer,
} from './desk-kit.js';
import {
  appsView,
  appView,
  channelsView,
  operatorsView,
  payTypeName,
  secretOnceView,
  type AppChannels,
} from './desk-admin-views.js';

/**
 * The platform admin's desk pages: apps (create, show the AccessToken once, gateway key, enable/disable,
 * maker–checker, reissue the token), channels (per hospital and pay type: which channel, what its
 * configuration lacks, live or not; read-only for hospital IT, scoped to their hospitals) and operators
 * (roles, hospitals, status, a generated password shown once). Every write is audited, never with a secret.
 */

type Body = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const bodyOf = (req: FastifyRequest): Body => (req.body ?? {}) as Body;

/** Fixed messages after a write (Post/Redirect/Get: ?done=<key>); nothing from the request is echoed. */
const DONE: Readonly<Record<string, string>> = {
  key: '网关公钥已登记 / the gateway public key is registered',
  enabled: '应用已启用 / the app is enabled',
  disabled:
    '应用已停用：其 AccessToken 立即不能再使用 / the app is disabled: its AccessToken no longer works',
  'approval-on': '退款复核已开启 / maker–checker is on',
  'approval-off': '退款复核已关闭：运维台上的退款与撤销将直接执行 / maker–checker is off',
  map: '渠道已切换 / the channel is switched',
  role: '角色已修改，该操作员需重新登录 / the role is changed; the operator logs in again',
  apps: '可见医院已修改 / the hospitals are changed',
  'op-enabled': '操作员已启用 / the operator is enabled',
  'op-disabled': '操作员已停用 / the operator is disabled',
};

function doneFlash(req: FastifyRequest): DeskFlash | null {
  const key = str(((req.query ?? {}) as Body)['done']);
  const text = Object.hasOwn(DONE, key) ? DONE[key] : undefined;
  return text ? { kind: 'ok', text } : null;
}

/** A strong password (24 base64url characters), shown once. */
function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

function audit(
  deps: ServiceDeps,
  p: Principal,
  action: string,
  outcome: string,
  extra: { appId?: string | null; detail?: Record<string, unknown> } = {},
): Promise<void> {
  return deps.audit.recordBy(p, deps.clock.now(), {
    action,
    outcome,
    appId: extra.appId ?? null,
    detail: extra.detail,
  });
}

/** The checked boxes of an apps form: all_apps, or the app.<id> fields. */
function grantsOf(body: Body): 'all' | string[] {
  if (str(body['all_apps']) === '1') return 'all';
  return Object.keys(body)
    .filter((k) => k.startsWith('app.') && str(body[k]) === '1')
    .map((k) => k.slice(4));
}

function bad(text: string): DeskFlash {
  return { kind: 'bad', text };
}

export async function registerDeskAdminPages(app: FastifyInstance, deps: ServiceDeps): Promise<void> {
  /** An app the viewer sees, or a 404 page (another hospital's app answers like a missing one). */
  const appFor = async (viewer: DeskViewer, reply: FastifyReply, id: string): Promise<App | null> => {
    const found = id.length <= 64 ? await deps.apps.get(id) : undefined;
    if (!found || !seesApp(viewer.principal, found.id)) {
      await notFoundPage(reply, viewer);
      return null;
    }
    return found;
  };

  const appsPage = async (
    reply: FastifyReply,
    viewer: DeskViewer,
    flash: DeskFlash | null,
    status = 200,
    form: { name?: string; hospitalId?: string } = {},
  ) => {
    const apps = visible(viewer.principal, await deps.apps.list(), (a) => a.id);
    return sendHtml(
      reply,
      appsView(viewer, apps, { nonce: randomBytes(16).toString('base64url'), ...form }, flash),
      status,
    );
  };

  await deskScope(app, (scope) => {
    // ------------------------------------------------------------------------------------------- apps
    scope.get('/desk/apps', async (req, reply) => {
      const viewer = await requireDesk(deps, req, reply, 'apps.write');
      if (!viewer) return reply;
      return appsPage(reply, viewer, doneFlash(req));
    });

    scope.post('/desk/apps', async (req, reply) => {
      const viewer = await requireDeskPost(deps, req, reply, 'apps.write');
      if (!viewer) return reply;
      const body = bodyOf(req);
      const p = viewer.principal;
      const input = newAppInput(body['name'], body['hospital_id']);
      if (isAppInputProblem(input))
        return appsPage(reply, viewer, bad(input.message), 400, {
          name: str(body['name']).slice(0, 64),
          hospitalId: str(body['hospital_id']).slice(0, 64),
        });
      // The form's one-time id: a resubmitted form (reload, back) creates nothing and shows no token.
      const form = str(body['form']);
      if (!/^[A-Za-z0-9_-]{16,64}$/.test(form))
        return appsPage(reply, viewer, bad('表单无效 / invalid form'), 400);
      const recent = await deps.audit.list({
        apps: null,
        actor: p.username,
        action: 'app.create',
        limit: 100,
      });
      const again = recent.find((e) => {
        try {
          return (JSON.parse(e.detail) as Body)['form'] === form;
        } catch {
          return false;
        }
      });
      if (again) {
        const m = deskMessage(
          '已提交过 / already submitted',
          `此表单已创建过应用 ${again.app_id ?? ''}；AccessToken 只显示一次，如未保存请在应用页重新签发。This form already created the app; its AccessToken was shown once: reissue it on the app's page if it was not kept.`,
          viewer,
          409,
        );
        return sendHtml(reply, m.html, m.status);
      }
      const created = await deps.apps.create({ name: input.name, hospitalId: input.hospitalId });
      await audit(deps, p, 'app.create', 'ok', {
        appId: created.appId,
        detail: { name: created.name, hospital_id: created.hospitalId, form },
      });
      deps.log.info({ desk: 'app.create', app: created.appId, operator: p.username }, 'desk: app created');
      return sendHtml(
        reply,
        secretOnceView(viewer, {
          title: '应用已创建 / app created',
          section: 'apps',
          lead: '请把下面的应用号与 AccessToken 交给医院 HIS 的管理员。Hand the app id and AccessToken to the hospital HIS administrator.',
          facts: [
            ['名称 name', created.name],
            ['医院编号 hospital_id', created.hospitalId ?? '—'],
            ['应用号 app_id', created.appId],
          ],
          secretLabel: 'AccessToken',
          secret: created.accessToken,
          back: {
            href: `/desk/apps/${encodeURIComponent(created.appId)}`,
            text: '我已保存，前往应用页 / saved: open the app',
          },
        }),
        201,
      );
    });

    scope.get('/desk/apps/:id', async (req, reply) => {
      const viewer = await requireDesk(deps, req, reply, 'apps.write');
      if (!viewer) return reply;
      const a = await appFor(viewer, reply, (req.params as { id: string }).id);
      if (!a) return reply;
      return sendHtml(reply, appView(viewer, a, doneFlash(req)));
    });

    scope.post('/desk/apps/:id/public-key', async (req, reply) => {
      const viewer = await requireDeskPost(deps, req, reply, 'apps.write');
      if (!viewer) return reply;
      const a = await appFor(viewer, reply, (req.params as { id: string }).id);
      if (!a) return reply;
      const body = bodyOf(req);
      const key = gatewayPublicKey(body['public_key'], str(body['legacy_sign']) === '1');
      if (isAppInputProblem(key)) {
        await audit(deps, viewer.principal, 'app.public_key', 'refused', {
          appId: a.id,
          detail: { code: key.code },
        });
        // The text given is never shown again (it may be a private key).
        return sendHtml(reply, appView(viewer, a, bad(key.message)), 400);
      }
      await deps.apps.setPublicKey(a.id, key.publicPem, key.legacySign);
      await audit(deps, viewer.principal, 'app.public_key', 'ok', {
        appId: a.id,
        detail: { legacy_sign: key.legacySign },
      });
      return reply.redirect(`/desk/apps/${encodeURIComponent(a.id)}?done=key`, 303);
    });

    scope.post('/desk/apps/:id/status', async (req, reply) => {
      const viewer = await requireDeskPost(deps, req, reply, 'channels.write');
      if (!viewer) return reply;
      const a = await appFor(viewer, reply, (req.params as { id: string }).id);
      if (!a) return reply;
      const body = bodyOf(req);
      const status = str(body['status']);
      if (status !== 'active' && status !== 'disabled')
        return sendHtml(
          reply,
          appView(viewer, a, bad('status 须为 active 或 disabled / status must be active or disabled')),
          400,
        );
      await deps.apps.setStatus(a.id, status);
      await audit(deps, viewer.principal, status === 'active' ? 'app.enable' : 'app.disable', 'ok', {
        appId: a.id,
      });
      const done = status === 'active' ? 'enabled' : 'disabled';
      return reply.redirect(
        str(body['back']) === 'channels'
          ? `/desk/channels?app=${encodeURIComponent(a.id)}&done=${done}`
          : `/desk/apps/${encodeURIComponent(a.id)}?done=${done}`,
        303,
      );
    });

    scope.post('/desk/apps/:id/approval', async (req, reply) => {
      const viewer = await requireDeskPost(deps, req, reply, 'apps.write');
      if (!viewer) return reply;
      const a = await appFor(viewer, reply, (req.params as { id: string }).id);
      if (!a) return reply;
      const on = str(bodyOf(req)['on']);
      if (on !== '1' && on !== '0')
        return sendHtml(reply, appView(viewer, a, bad('on 须为 1 或 0 / on must be 1 or 0')), 400);
      await deps.apps.setDeskApproval(a.id, on === '1');
      await audit(deps, viewer.principal, 'app.desk_approval', 'ok', {
        appId: a.id,
        detail: { desk_approval: on === '1' },
      });
      return reply.redirect(
        `/desk/apps/${encodeURIComponent(a.id)}?done=${on === '1' ? 'approval-on' : 'approval-off'}`,
        303,
      );
    });

    scope.post('/desk/apps/:id/token', async (req, reply) => {
      const viewer = await requireDeskPost(deps, req, reply, 'apps.write');
      if (!viewer) return reply;
      const a = await appFor(viewer, reply, (req.params as { id: string }).id);
      if (!a) return reply;
      const token = await deps.apps.reissueToken(a.id);
      if (token === null) return notFoundPage(reply, viewer);
      await audit(deps, viewer.principal, 'app.token.reissue', 'ok', { appId: a.id });
      deps.log.info(
        { desk: 'app.token.reissue', app: a.id, operator: viewer.principal.username },
        'desk: token reissued',
      );
      return sendHtml(
        reply,
        secretOnceView(viewer, {
          title: 'AccessToken 已重新签发 / reissued',
          section: 'apps',
          lead: '旧令牌已失效。请把新令牌交给医院 HIS 的管理员。The old token no longer works; hand the new one to the HIS administrator.',
          facts: [
            ['名称 name', a.name],
            ['应用号 app_id', a.id],
          ],
          secretLabel: 'AccessToken',
          secret: token,
          back: {
            href: `/desk/apps/${encodeURIComponent(a.id)}`,
            text: '我已保存，返回应用页 / saved: back to the app',
          },
        }),
        201,
      );
    });

    // --------------------------------------------------------------------------------------- channels
    const channelsPage = async (
      req: FastifyRequest,
      reply: FastifyReply,
      viewer: DeskViewer,
      flash: DeskFlash | null,
      status = 200,
    ) => {
      const seen = visible(viewer.principal, await deps.apps.list(), (a) => a.id);
      const wanted = str(((req.query ?? {}) as Body)['app']);
      if (wanted !== '' && !seen.some((a) => a.id === wanted)) return notFoundPage(reply, viewer);
      const shown = wanted === '' ? seen : seen.filter((a) => a.id === wanted);
      const rows: AppChannels[] = [];
      for (const a of shown) rows.push({ app: a, status: await appChannelStatus(deps, a) });
      const platform = viewer.principal.apps === 'all' ? await deps.channelConfigs.viewAllPlatform() : [];
      return sendHtml(
        reply,
        channelsView(viewer, rows, platform, { filterApp: wanted || null, choices: seen }, flash),
        status,
      );
    };

    scope.get('/desk/channels', async (req, reply) => {
      const viewer = await requireDesk(deps, req, reply, 'channels.read');
      if (!viewer) return reply;
      return channelsPage(req, reply, viewer, doneFlash(req));
    });

    scope.post('/desk/channels/:id/map', async (req, reply) => {
      const viewer = await requireDeskPost(deps, req, reply, 'channels.write');
      if (!viewer) return reply;
      const a = await appFor(viewer, reply, (req.params as { id: string }).id);
      if (!a) return reply;
      const body = bodyOf(req);
      const payType = str(body['pay_type']).slice(0, 32);
      const channel = str(body['channel']).slice(0, 64);
      req.query = { app: a.id };
      try {
        await setChannelMap(deps, a.id, payType, channel);
      } catch (e) {
        if (!(e instanceof OperatorError)) throw e;
        await audit(deps, viewer.principal, 'channel.map', 'refused', {
          appId: a.id,
          detail: { pay_type: payType, channel },
        });
        return channelsPage(
          req,
          reply,
          viewer,
          bad(`${payTypeName(payType)} → ${channel}：${e.message}`),
          400,
        );
      }
      await audit(deps, viewer.principal, 'channel.map', 'ok', {
        appId: a.id,
        detail: { pay_type: payType, channel },
      });
      return reply.redirect(`/desk/channels?app=${encodeURIComponent(a.id)}&done=map`, 303);
    });

    // -------------------------------------------------------------------------------------- operators
    const operatorsPage = async (
      reply: FastifyReply,
      viewer: DeskViewer,
      flash: DeskFlash | null,
      status = 200,
      form: Parameters<typeof operatorsView>[3] = {},
    ) =>
      sendHtml(
        reply,
        operatorsView(viewer, await deps.operators.list(), await deps.apps.list(), form, flash),
        status,
      );

    scope.get('/desk/operators', async (req, reply) => {
      const viewer = await requireDesk(deps, req, reply, 'platform.admin');
      if (!viewer) return reply;
      return operatorsPage(reply, viewer, doneFlash(req));
    });

    scope.post('/desk/operators', async (req, reply) => {
      const viewer = await requireDeskPost(deps, req, reply, 'platform.admin');
      if (!viewer) return reply;
      const body = bodyOf(req);
      const username = str(body['username']).trim().slice(0, 64);
      const displayName = str(body['display_name']).slice(0, 128);
      const role = str(body['role']);
      const form = { username, displayName, ...(isRole(role) ? { role } : {}) };
      if (!isRole(role)) return operatorsPage(reply, viewer, bad('请选择角色 / choose a role'), 400, form);
      const apps = grantsOf(body);
      const password = generatePassword();
      try {
        await deps.operators.create({ username, displayName, password, role, apps });
      } catch (e) {
        if (!(e instanceof OperatorError)) throw e;
        return operatorsPage(reply, viewer, bad(e.message), e.operatorKind === 'conflict' ? 409 : 400, form);
      }
      await audit(deps, viewer.principal, 'operator.create', 'ok', {
        detail: { username, role, apps },
      });
      return sendHtml(
        reply,
        secretOnceView(viewer, {
          title: '操作员已创建 / operator created',
          section: 'operators',
          lead: '请把用户名与初始密码当面或经安全渠道交给本人。Hand the username and password to the person over a safe channel.',
          facts: [
            ['用户名 username', username],
            ['显示名 display name', displayName.trim()],
            ['角色 role', role],
            ['医院 hospitals', apps === 'all' || role === 'platform_admin' ? 'all' : apps.join(', ') || '—'],
          ],
          secretLabel: '初始密码 password',
          secret: password,
          back: { href: '/desk/operators', text: '我已保存，返回操作员列表 / saved: back' },
        }),
        201,
      );
    });

    /** The operator named in the path, other than the viewer; null when it answered. */
    const otherOperator = async (
      req: FastifyRequest,
      reply: FastifyReply,
      viewer: DeskViewer,
    ): Promise<string | null> => {
      const username = (req.params as { username: string }).username;
      const found = username.length <= 64 ? await deps.operators.get(username) : undefined;
      if (!found) {
        await notFoundPage(reply, viewer);
        return null;
      }
      if (username === viewer.principal.username) {
        // An admin never locks themselves out (nor ends their own session here): another platform admin does it.
        await operatorsPage(
          reply,
          viewer,
          bad(
            '不能修改自己的角色、医院或状态，请让另一位平台管理员操作 / you cannot change your own role, hospitals or status: ask another platform admin',
          ),
          403,
        );
        return null;
      }
      return username;
    };

    scope.post('/desk/operators/:username/role', async (req, reply) => {
      const viewer = await requireDeskPost(deps, req, reply, 'platform.admin');
      if (!viewer) return reply;
      const username = await otherOperator(req, reply, viewer);
      if (!username) return reply;
      const role = str(bodyOf(req)['role']);
      if (!isRole(role)) return operatorsPage(reply, viewer, bad('请选择角色 / choose a role'), 400);
      await deps.operators.setRole(username, role);
      await audit(deps, viewer.principal, 'operator.role', 'ok', { detail: { username, role } });
      return reply.redirect('/desk/operators?done=role', 303);
    });

    scope.post('/desk/operators/:username/apps', async (req, reply) => {
      const viewer = await requireDeskPost(deps, req, reply, 'platform.admin');
      if (!viewer) return reply;
      const username = await otherOperator(req, reply, viewer);
      if (!username) return reply;
      const apps = grantsOf(bodyOf(req));
      try {
        await deps.operators.setApps(username, apps);
      } catch (e) {
        if (!(e instanceof OperatorError)) throw e;
        return operatorsPage(reply, viewer, bad(e.message), 400);
      }
      await audit(deps, viewer.principal, 'operator.apps', 'ok', { detail: { username, apps } });
      return reply.redirect('/desk/operators?done=apps', 303);
    });

    scope.post('/desk/operators/:username/status', async (req, reply) => {
      const viewer = await requireDeskPost(deps, req, reply, 'platform.admin');
      if (!viewer) return reply;
      const username = await otherOperator(req, reply, viewer);
      if (!username) return reply;
      const status = str(bodyOf(req)['status']);
      if (status !== 'active' && status !== 'disabled')
        return operatorsPage(
          reply,
          viewer,
          bad('status 须为 active 或 disabled / status must be active or disabled'),
          400,
        );
      await deps.operators.setStatus(username, status);
      await audit(
        deps,
        viewer.principal,
        status === 'active' ? 'operator.enable' : 'operator.disable',
        'ok',
        {
          detail: { username },
        },
      );
      return reply.redirect(
        `/desk/operators?done=${status === 'active' ? 'op-enabled' : 'op-disabled'}`,
        303,
      );
    });

    scope.post('/desk/operators/:username/password', async (req, reply) => {
      const viewer = await requireDeskPost(deps, req, reply, 'platform.admin');
      if (!viewer) return reply;
      const username = await otherOperator(req, reply, viewer);
      if (!username) return reply;
      const password = generatePassword();
      await deps.operators.setPassword(username, password);
      await audit(deps, viewer.principal, 'operator.password', 'ok', { detail: { username } });
      return sendHtml(
        reply,
        secretOnceView(viewer, {
          title: '密码已重置 / password reset',
          section: 'operators',
          lead: '旧密码已失效，该操作员的登录会话已结束。The old password no longer works; the operator logs in again.',
          facts: [['用户名 username', username]],
          secretLabel: '新密码 new password',
          secret: password,
          back: { href: '/desk/operators', text: '我已保存，返回操作员列表 / saved: back' },
        }),
        201,
      );
    });
  });
}
