import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServiceDeps } from '../../services/deps.js';
import { CHANNEL_DEFINITIONS, MEDICARE_DEFINITIONS } from '../../channels/registry.js';
import {
  ChannelConfigError,
  UnknownChannelError,
  setChannelMap,
  ChannelMapError,
} from '../../services/channel-config.js';
import { appChannelMap } from '../../services/apps.js';
import type { NotifyRejectionRow } from '../../services/records.js';
import { formatShanghai } from '../../domain/clock.js';
import { seesApp } from '../../domain/access.js';
import { NO_APP, oneAppOf, principalOf, seesAppOr404 } from './access.js';

/** The Asia/Shanghai day `n` days before `now` ('yyyy-MM-dd'). */
function daysAgo(now: Date, n: number): string {
  return formatShanghai(new Date(now.getTime() - n * 86_400_000)).slice(0, 10);
}

function rejectionView(r: NotifyRejectionRow) {
  return {
    app_id: r.app_id,
    channel_id: r.channel_id,
    day: r.day,
    rejected: r.rejected,
    first_at: r.first_at.toISOString(),
    last_at: r.last_at.toISOString(),
    last_reason: r.last_reason,
  };
}

const BAD_VALUES = {
  code: 'INVALID_FIELD.values',
  message: 'values 须为 {字段: 字符串或 null} / values must be {field: string or null}',
};

/** A body's `values`: {field: string or null}, or null when it is not that. */
function valuesOf(body: unknown): Record<string, string | null> | null {
  const values = ((body ?? {}) as Record<string, unknown>)['values'];
  if (
    typeof values !== 'object' ||
    values === null ||
    Array.isArray(values) ||
    !Object.values(values).every((v) => v === null || typeof v === 'string')
  )
    return null;
  return values as Record<string, string | null>;
}

function describeFields(
  fields: readonly {
    name: string;
    secret: boolean;
    required: boolean;
    zh: string;
    en: string;
    default?: string;
    scope?: 'app' | 'platform' | 'either';
  }[],
) {
  return fields.map((f) => ({
    name: f.name,
    secret: f.secret,
    required: f.required,
    // app: per app; platform: once for the platform (PUT /admin/platform/channels/:channel); either: both.
    scope: f.scope ?? 'app',
    zh: f.zh,
    en: f.en,
    ...(f.default !== undefined ? { default: f.default } : {}),
  }));
}

function refuse(reply: FastifyReply, e: unknown): FastifyReply | null {
  if (e instanceof ChannelConfigError)
    return reply.code(400).send({ code: 'CHANNEL_CONFIG_INVALID', message: e.message, problems: e.problems });
  if (e instanceof UnknownChannelError)
    return reply.code(404).send({ code: 'CHANNEL_NOT_FOUND', message: e.message });
  if (e instanceof ChannelMapError)
    return reply.code(e.code === 'CHANNEL_NOT_FOUND' ? 404 : 400).send({ code: e.code, message: e.message });
  if (e instanceof Error && /HOSPAY_MASTER_KEY/.test(e.message))
    return reply.code(409).send({ code: 'MASTER_KEY', message: e.message });
  return null;
}

/** Channel administration behind the admin token (registered in routes.ts). */
export function registerChannelAdminRoutes(scope: FastifyInstance, deps: ServiceDeps): void {
  scope.get('/admin/channels', async () => ({
    channels: CHANNEL_DEFINITIONS.map((d) => ({
      id: d.id,
      zh: d.zh,
      pay_types: d.payTypes,
      fields: describeFields(d.fields),
    })),
    medicare: MEDICARE_DEFINITIONS.map((d) => ({ id: d.id, zh: d.zh, fields: describeFields(d.fields) })),
  }));

  scope.get('/admin/apps/:id/channels', async (req, reply) => {
    const { id } = req.params as { id: string };
    if (!seesAppOr404(req, reply, id)) return reply;
    const app = await deps.apps.get(id);
    if (!app) return reply.code(404).send(NO_APP);
    return {
      app_id: id,
      channel_map: appChannelMap(app),
      configs: await deps.channelConfigs.viewAll(id),
      // Unverified provider notifications of the last 7 days (per channel and day): junk or a wrong key.
      rejected_notifications: (
        await deps.channelCalls.rejections({ appId: id, sinceDay: daysAgo(deps.clock.now(), 6) })
      ).map(rejectionView),
    };
  });

  scope.put('/admin/apps/:id/channels/:channel', async (req, reply) => {
    const { id, channel } = req.params as { id: string; channel: string };
    if (!seesAppOr404(req, reply, id)) return reply;
    if (!(await deps.apps.get(id))) return reply.code(404).send(NO_APP);
    const values = valuesOf(req.body);
    if (!values) return reply.code(400).send(BAD_VALUES);
    try {
      return await deps.channelConfigs.set(id, channel, values);
    } catch (e) {
      const r = refuse(reply, e);
      if (r) return r;
      throw e;
    }
  });

  // Platform-level configuration (a service provider's credentials, shared by every app): secrets never shown.
  scope.get('/admin/platform/channels', async () => ({
    configs: await deps.channelConfigs.viewAllPlatform(),
  }));

  scope.get('/admin/platform/channels/:channel', async (req, reply) => {
    const { channel } = req.params as { channel: string };
    try {
      return await deps.channelConfigs.viewPlatform(channel);
    } catch (e) {
      const r = refuse(reply, e);
      if (r) return r;
      throw e;
    }
  });

  scope.put('/admin/platform/channels/:channel', async (req, reply) => {
    const { channel } = req.params as { channel: string };
    const values = valuesOf(req.body);
    if (!values) return reply.code(400).send(BAD_VALUES);
    try {
      return await deps.channelConfigs.setPlatform(channel, values);
    } catch (e) {
      const r = refuse(reply, e);
      if (r) return r;
      throw e;
    }
  });

  scope.put('/admin/apps/:id/channel-map', async (req, reply) => {
    const { id } = req.params as { id: string };
    if (!seesAppOr404(req, reply, id)) return reply;
    const body = (req.body ?? {}) as Record<string, unknown>;
    const payType = body['pay_type'];
    const channel = body['channel'];
    if (typeof payType !== 'string' || typeof channel !== 'string')
      return reply.code(400).send({
        code: 'INVALID_FIELD.pay_type',
        message: 'pay_type 与 channel 必填 / pay_type and channel are required',
      });
    try {
      const map = await setChannelMap(deps, id, payType, channel);
      if (!map) return reply.code(404).send(NO_APP);
      return { app_id: id, channel_map: map };
    } catch (e) {
      const r = refuse(reply, e);
      if (r) return r;
      throw e;
    }
  });

  // Unverified provider notifications, counted per app, channel and day (channel calls keep only a sample).
  scope.get('/admin/channel-notify-rejections', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const days = q['days'] === undefined ? 7 : Number(q['days']);
    if (!Number.isInteger(days) || days < 1 || days > 3660)
      return reply
        .code(400)
        .send({ code: 'INVALID_FIELD.days', message: 'days 须为 1–3660 的整数 / days must be 1–3660' });
    if (q['app'] && !seesAppOr404(req, reply, q['app'])) return reply;
    const rows = await deps.channelCalls.rejections({
      sinceDay: daysAgo(deps.clock.now(), days - 1),
      ...(q['app'] ? { appId: q['app'] } : {}),
      ...(q['channel'] ? { channelId: q['channel'] } : {}),
    });
    const p = principalOf(req);
    return { rejections: rows.filter((r) => seesApp(p, r.app_id)).map(rejectionView) };
  });

  scope.get('/admin/channel-calls', async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const limit = Math.min(Math.max(Number(q['limit'] ?? 50) || 50, 1), 500);
    const one = oneAppOf(req, reply, q['app'] || undefined, 'app');
    if (one.answered) return reply;
    return deps.channelCalls.list({
      limit,
      ...(one.appId ? { appId: one.appId } : {}),
      ...(q['out_trade_no'] ? { outTradeNo: q['out_trade_no'] } : {}),
    });
  });
}
