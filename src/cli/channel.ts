import fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { Config } from '../config/config.js';
import { adminFetch, cliPlatform, readStdin, runningServer } from './running-server.js';
import { CHANNEL_DEFINITIONS, MEDICARE_DEFINITIONS } from '../channels/registry.js';
import {
  ChannelConfigError,
  ChannelMapError,
  UnknownChannelError,
  setChannelMap,
  type ChannelConfigView,
  type PlatformChannelConfigView,
} from '../services/channel-config.js';
import { appChannelMap } from '../store/apps.js';
import { chosenChannel } from '../channels/choice.js';
import { formatShanghai } from '../domain/clock.js';
import type { ChannelCallRow } from '../store/channel-calls.js';
import type { ServiceDeps } from '../services/deps.js';
import { NotFoundError, UsageError } from '../domain/errors.js';

export const CHANNEL_USAGE = `  hospay channel list                          the channels, their pay types and settings
  hospay channel show --app ID [--json]        the app's channels (secrets only as 已设置 set)
  hospay channel set --app ID --channel C [--set NAME=VALUE]... [--file NAME=PATH]...
                     [--secret-stdin NAME] [--unset NAME]... [--json]
                                               configure a channel for an app (medical insurance: C = medicare:ID);
                                               checked as a whole, secrets sealed at rest, never printed
  hospay channel platform-show [C] [--json]    the platform-level configuration (a service provider's credentials,
                                               shared by every app; secrets only as 已设置 set)
  hospay channel platform-set C [NAME=VALUE]... [--set NAME=VALUE]... [--file NAME=PATH]...
                     [--secret-stdin NAME] [--unset NAME]... [--json]
                                               set values once for the whole platform (fields of scope platform or
                                               either; an app's own value of an either field wins); checked, secrets
                                               sealed at rest, never printed
  hospay channel use --app ID --pay-type alipay|weixin|unionpay|elecny|medicare --channel C
                                               switch a pay type to a configured channel; C = none removes it,
                                               C = simulator chooses the built-in simulator (in an app with a
                                               real channel only with HOSPAY_ALLOW_MIXED_SIMULATOR=1)
  hospay channel calls [--app ID] [--out-trade-no NO] [--limit N] [--json]
                                               recent exchanges with the providers (redacted)`;

export class ChannelUsageError extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = 'ChannelUsageError';
  }
}

class AppMissing extends NotFoundError {
  constructor(appId: string) {
    super(`没有这个应用 / no such app: ${appId}`);
  }
}

interface ChannelAdmin {
  show(appId: string): Promise<{ channel_map: Record<string, string>; configs: ChannelConfigView[] } | null>;
  set(appId: string, channel: string, values: Record<string, string | null>): Promise<ChannelConfigView>;
  use(appId: string, payType: string, channel: string): Promise<Record<string, string> | null>;
  calls(filter: { appId?: string; outTradeNo?: string; limit: number }): Promise<ChannelCallRow[]>;
  platformShow(channel: string | null): Promise<PlatformChannelConfigView[]>;
  platformSet(channel: string, values: Record<string, string | null>): Promise<PlatformChannelConfigView>;
  close(): Promise<void>;
}

async function local(config: Config): Promise<ChannelAdmin> {
  const platform = await cliPlatform(config);
  const deps: ServiceDeps = platform.deps;
  return {
    async show(appId) {
      const app = await deps.apps.get(appId);
      if (!app) return null;
      return {
        channel_map: appChannelMap(app),
        configs: await deps.channelConfigs.viewAll(appId),
      };
    },
    async set(appId, channel, values) {
      if (!(await deps.apps.get(appId))) throw new AppMissing(appId);
      return deps.channelConfigs.set(appId, channel, values);
    },
    use: (appId, payType, channel) => setChannelMap(deps, appId, payType, channel),
    calls: (filter) => deps.channelCalls.list(filter),
    platformShow: async (channel) =>
      channel ? [await deps.channelConfigs.viewPlatform(channel)] : deps.channelConfigs.viewAllPlatform(),
    platformSet: (channel, values) => deps.channelConfigs.setPlatform(channel, values),
    close: () => platform.close(),
  };
}

function remote(server: { base: string; token: string }): ChannelAdmin {
  const call = async <T>(method: string, path: string, body?: unknown) => {
    const r = await adminFetch(server, method, path, body);
    const data = (r.data ?? {}) as T & {
      code?: string;
      message?: string;
      problems?: ChannelConfigError['problems'];
    };
    return { status: r.status, data };
  };
  const fail = (
    r: {
      status: number;
      data: { code?: string; message?: string; problems?: ChannelConfigError['problems'] };
    },
    channel = '',
  ) => {
    if (r.data.code === 'CHANNEL_CONFIG_INVALID')
      return new ChannelConfigError(channel, r.data.problems ?? []);
    if (r.data.code === 'CHANNEL_NOT_FOUND') return new UnknownChannelError(channel);
    if (r.status === 400) return new ChannelMapError(r.data.code ?? 'INVALID', r.data.message ?? '');
    return new Error(`the running server refused: HTTP ${r.status} ${r.data.message ?? ''}`);
  };
  const app = (id: string) => `/admin/apps/${encodeURIComponent(id)}`;
  return {
    async show(appId) {
      const r = await call<{ channel_map: Record<string, string>; configs: ChannelConfigView[] }>(
        'GET',
        `${app(appId)}/channels`,
      );
      if (r.status === 404) return null;
      if (r.status !== 200) throw fail(r);
      return r.data;
    },
    async set(appId, channel, values) {
      const r = await call<ChannelConfigView>(
        'PUT',
        `${app(appId)}/channels/${encodeURIComponent(channel)}`,
        { values },
      );
      if (r.status === 404 && r.data.code === 'APP_NOT_FOUND') throw new AppMissing(appId);
      if (r.status !== 200) throw fail(r, channel);
      return r.data;
    },
    async use(appId, payType, channel) {
      const r = await call<{ channel_map: Record<string, string> }>('PUT', `${app(appId)}/channel-map`, {
        pay_type: payType,
        channel,
      });
      if (r.status === 404 && r.data.code === 'APP_NOT_FOUND') return null;
      if (r.status !== 200) throw fail(r, channel);
      return r.data.channel_map;
    },
    async calls(filter) {
      const q = new URLSearchParams({ limit: String(filter.limit) });
      if (filter.appId) q.set('app', filter.appId);
      if (filter.outTradeNo) q.set('out_trade_no', filter.outTradeNo);
      const r = await call<ChannelCallRow[]>('GET', `/admin/channel-calls?${q.toString()}`);
      if (r.status !== 200) throw fail(r);
      return r.data;
    },
    async platformShow(channel) {
      if (channel) {
        const r = await call<PlatformChannelConfigView>(
          'GET',
          `/admin/platform/channels/${encodeURIComponent(channel)}`,
        );
        if (r.status !== 200) throw fail(r, channel);
        return [r.data];
      }
      const r = await call<{ configs: PlatformChannelConfigView[] }>('GET', '/admin/platform/channels');
      if (r.status !== 200) throw fail(r);
      return r.data.configs;
    },
    async platformSet(channel, values) {
      const r = await call<PlatformChannelConfigView>(
        'PUT',
        `/admin/platform/channels/${encodeURIComponent(channel)}`,
        { values },
      );
      if (r.status !== 200) throw fail(r, channel);
      return r.data;
    },
    close: async () => {},
  };
}

function pairs(list: string[] | undefined, flag: string): Array<[string, string]> {
  return (list ?? []).map((text) => {
    const i = text.indexOf('=');
    if (i <= 0) throw new ChannelUsageError(`${flag} takes NAME=VALUE, got "${text.slice(0, 40)}"`);
    return [text.slice(0, i), text.slice(i + 1)];
  });
}

function printView(v: ChannelConfigView | PlatformChannelConfigView): void {
  console.log('app_id' in v ? `${v.channel}` : `${v.channel} (平台级 platform level)`);
  for (const [k, val] of Object.entries(v.values)) console.log(`  ${k.padEnd(24)} ${val}`);
  if ('from_platform' in v)
    for (const [k, val] of Object.entries(v.from_platform ?? {}))
      console.log(`  ${k.padEnd(24)} ${val}  (平台级 from the platform)`);
  for (const p of v.problems) console.log(`  ! ${p.field}: ${p.zh} / ${p.en}`);
}

interface PatchFlags {
  set?: string[] | undefined;
  file?: string[] | undefined;
  'secret-file'?: string[] | undefined;
  'secret-stdin'?: string | undefined;
  unset?: string[] | undefined;
}

/** The values to set (NAME=VALUE pairs, --set, --file, --secret-stdin) and to remove (--unset). */
async function readPatch(values: PatchFlags, more: string[]): Promise<Record<string, string | null>> {
  const patch: Record<string, string | null> = {};
  for (const [k, v] of pairs(more, 'NAME=VALUE')) patch[k] = v;
  for (const [k, v] of pairs(values.set, '--set')) patch[k] = v;
  for (const [k, p] of [...pairs(values.file, '--file'), ...pairs(values['secret-file'], '--secret-file')]) {
    try {
      patch[k] = fs.readFileSync(p, 'utf8').trim();
    } catch {
      throw new ChannelUsageError(`--file ${k}: cannot read ${p}`);
    }
  }
  if (values['secret-stdin']) patch[values['secret-stdin']] = await readStdin();
  for (const k of values.unset ?? []) patch[k] = null;
  if (Object.keys(patch).length === 0)
    throw new ChannelUsageError('nothing to set (NAME=VALUE, --set, --file, --secret-stdin, --unset)');
  return patch;
}

/** `hospay channel platform-show [C]` and `hospay channel platform-set C NAME=VALUE…`. */
async function platformCommand(
  sub: 'platform-show' | 'platform-set',
  positionals: string[],
  values: PatchFlags & { channel?: string | undefined; json?: boolean | undefined },
  server: { base: string; token: string } | null,
  config: Config,
): Promise<number> {
  const [first, ...more] = positionals;
  const channel = values.channel ?? (first !== undefined && !first.includes('=') ? first : undefined);
  const rest = channel === first || first === undefined ? more : positionals;
  if (sub === 'platform-show' && rest.length)
    throw new ChannelUsageError(
      `platform-show takes at most a channel, got "${rest[0]?.slice(0, 40) ?? ''}"`,
    );
  if (sub === 'platform-set' && !channel)
    throw new ChannelUsageError('platform-set needs the channel: hospay channel platform-set C NAME=VALUE…');
  // Read what is needed from files and stdin before touching the database.
  const patch = sub === 'platform-set' ? await readPatch(values, rest) : {};
  const admin = server ? remote(server) : await local(config);
  try {
    if (sub === 'platform-set') {
      const v = await admin.platformSet(channel ?? '', patch);
      if (values.json) console.log(JSON.stringify(v));
      else printView(v);
      return 0;
    }
    const views = await admin.platformShow(channel ?? null);
    if (values.json) console.log(JSON.stringify(channel ? views[0] : views));
    else if (views.length === 0) console.log('(没有平台级配置 no platform-level configuration)');
    else for (const v of views) printView(v);
    return 0;
  } finally {
    await admin.close();
  }
}

/** `hospay channel …` */
export async function channelCommand(args: string[], config: Config): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'list') {
    for (const d of CHANNEL_DEFINITIONS) {
      console.log(`${d.id}  ${d.zh}  (${d.payTypes.join(', ')})`);
      for (const f of d.fields)
        console.log(
          `    ${f.name.padEnd(24)} ${f.secret ? '[secret] ' : ''}${f.required ? '[required] ' : ''}${f.zh} / ${f.en}${f.default !== undefined ? ` (default ${f.default})` : ''}`,
        );
    }
    for (const d of MEDICARE_DEFINITIONS) {
      console.log(`medicare:${d.id}  ${d.zh}  (medicare)`);
      for (const f of d.fields)
        console.log(
          `    ${f.name.padEnd(24)} ${f.secret ? '[secret] ' : ''}${f.required ? '[required] ' : ''}${f.zh} / ${f.en}`,
        );
    }
    return 0;
  }
  if (!['show', 'set', 'use', 'calls', 'platform-show', 'platform-set'].includes(sub ?? ''))
    throw new ChannelUsageError(
      `unknown channel command "${sub ?? ''}" (list, show, set, use, calls, platform-show, platform-set)`,
    );
  const platformLevel = sub === 'platform-show' || sub === 'platform-set';
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      app: { type: 'string' },
      channel: { type: 'string' },
      'pay-type': { type: 'string' },
      set: { type: 'string', multiple: true },
      'secret-file': { type: 'string', multiple: true },
      file: { type: 'string', multiple: true },
      'secret-stdin': { type: 'string' },
      unset: { type: 'string', multiple: true },
      'out-trade-no': { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    },
    strict: true,
    allowPositionals: platformLevel,
  });
  const server = runningServer(config);
  if (platformLevel) {
    if (values.app)
      throw new ChannelUsageError(
        `${sub} is for the whole platform: no --app (per app: hospay channel set --app)`,
      );
    return platformCommand(sub, positionals, values, server, config);
  }
  if (sub !== 'calls' && !values.app) throw new ChannelUsageError('--app ID is required');
  const appId = values.app ?? '';
  // Read what is needed from files and stdin before touching the database.
  let patch: Record<string, string | null> = {};
  if (sub === 'set') {
    if (!values.channel) throw new ChannelUsageError('--channel is required');
    patch = await readPatch(values, []);
  }
  const admin = server ? remote(server) : await local(config);
  try {
    switch (sub) {
      case 'show': {
        const r = await admin.show(appId);
        if (!r) throw new AppMissing(appId);
        if (values.json) console.log(JSON.stringify(r));
        else {
          // As this command's environment sees the simulator settings (HOSPAY_SIMULATOR, ..._ALLOW_MIXED_...).
          const map = ['alipay', 'weixin', 'unionpay', 'elecny', 'medicare'].map(
            (pt) => `${pt} → ${chosenChannel(r.channel_map, pt, config.simulator) ?? '(未开通 not enabled)'}`,
          );
          console.log(`app ${appId}: ${map.join(', ')}`);
          for (const v of r.configs) printView(v);
        }
        return 0;
      }
      case 'set': {
        const v = await admin.set(appId, values.channel ?? '', patch);
        if (values.json) console.log(JSON.stringify(v));
        else printView(v);
        return 0;
      }
      case 'use': {
        if (!values['pay-type'] || !values.channel)
          throw new ChannelUsageError('--pay-type and --channel are required');
        const map = await admin.use(appId, values['pay-type'], values.channel);
        if (!map) throw new AppMissing(appId);
        console.log(
          values.json ? JSON.stringify(map) : `app ${appId}: ${values['pay-type']} → ${values.channel}`,
        );
        return 0;
      }
      default: {
        const limit = values.limit === undefined ? 20 : Number(values.limit);
        if (!Number.isInteger(limit) || limit < 1 || limit > 500)
          throw new ChannelUsageError('--limit must be 1–500');
        const rows = await admin.calls({
          limit,
          ...(values.app ? { appId: values.app } : {}),
          ...(values['out-trade-no'] ? { outTradeNo: values['out-trade-no'] } : {}),
        });
        if (values.json) console.log(JSON.stringify(rows));
        else
          for (const r of rows)
            console.log(
              `${formatShanghai(new Date(r.started_at))}  ${r.app_id}  ${r.channel_id}  ${r.operation}  ${r.out_trade_no ?? '-'}  ${r.http_status ?? '-'}  ${r.latency_ms} ms  ${r.outcome}${r.error ? `  (${r.error})` : ''}`,
            );
        return 0;
      }
    }
  } finally {
    await admin.close();
  }
}

export { AppMissing as ChannelAppMissingError };
