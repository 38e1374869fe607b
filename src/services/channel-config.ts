/**
 * Channel configuration: per app, and once for the whole platform (a service provider's own credentials, shared
 * by every app). Plain fields stored as JSON, secret fields (keys, certificates, API keys) sealed with the master
 * key. What an adapter is given (`load`) is the platform's values merged under the app's, by each field's scope
 * (ConfigField.scope: 'app' per app only, 'platform' the platform's value only, 'either' the app's value wins).
 * Read through a short cache, so a payment does not decrypt on every call; a change made through this process is
 * seen at once, one made elsewhere within CACHE_MS.
 */
import type { ChannelConfigRepository } from '../store/channel-config.js';
import type { SecretBox } from '../crypto/secret-box.js';
import type { Clock } from '../domain/clock.js';
import {
  checkChannelConfig,
  withDefaults,
  type ConfigField,
  type ConfigProblem,
} from '../channels/definition.js';
import { channelDefinition, medicareDefinition } from '../channels/registry.js';
import {
  MAP_KEYS,
  NO_CHANNEL,
  SIMULATOR,
  mixedSimulatorPayTypes,
  normaliseChannelMap,
  simulatorMapProblems,
  type SimulatorMapProblem,
  type SimulatorPolicy,
} from '../channels/choice.js';
import { PAY_TYPES } from '../domain/trade.js';
import { appChannelMap, type AppRepository } from '../store/apps.js';
import { InvalidInputError, NotFoundError } from '../domain/errors.js';

const CACHE_MS = 30_000;

export interface ChannelConfigView {
  app_id: string;
  channel: string;
  /** Plain values as set; secret ones only as "set" / absent. */
  values: Record<string, string>;
  /** What the app takes from the platform-level configuration (fields it does not set itself), shown the same way. */
  from_platform: Record<string, string>;
  /** Problems of the configuration the adapter is given: the platform's values merged under the app's. */
  problems: ConfigProblem[];
}

/** The platform-level configuration of a channel, as an operator may see it. */
export interface PlatformChannelConfigView {
  channel: string;
  /** Plain values as set; secret ones only as "set" / absent. */
  values: Record<string, string>;
  /** Problems of the values set (each checked; what an app must add is checked per app). */
  problems: ConfigProblem[];
}

type Scope = 'app' | 'platform' | 'either';
const scopeOf = (f: ConfigField): Scope => f.scope ?? 'app';

/**
 * The configuration an app's adapter works with: per field, by its scope, the app's value ('app'), the
 * platform's ('platform'), or the app's when it has one and else the platform's ('either'). Names no field
 * knows (left in the app's values) stay, so the check names them.
 */
export function mergeChannelConfig(
  fields: readonly ConfigField[],
  platform: Readonly<Record<string, string>>,
  app: Readonly<Record<string, string>>,
): Record<string, string> {
  const known = new Set(fields.map((f) => f.name));
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(app)) if (!known.has(k)) out[k] = v;
  const has = (m: Readonly<Record<string, string>>, k: string) => m[k] !== undefined && m[k] !== '';
  for (const f of fields) {
    const scope = scopeOf(f);
    const v =
      scope === 'app'
        ? app[f.name]
        : scope === 'platform'
          ? platform[f.name]
          : has(app, f.name)
            ? app[f.name]
            : platform[f.name];
    if (v !== undefined) out[f.name] = v;
  }
  return out;
}

const SET = '已设置 set';

function shown(
  fields: readonly ConfigField[],
  values: Readonly<Record<string, string>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fields) {
    const v = values[f.name];
    if (v === undefined || v === '') continue;
    out[f.name] = f.secret ? SET : v;
  }
  return out;
}

const problemKey = (p: ConfigProblem) => `${p.field}\u0000${p.en}`;

export class UnknownChannelError extends NotFoundError {
  constructor(readonly channelId: string) {
    super(`没有这个渠道 / no such channel: ${channelId}`);
    this.name = 'UnknownChannelError';
  }
}

export class ChannelConfigError extends InvalidInputError {
  constructor(
    readonly channelId: string,
    readonly problems: ConfigProblem[],
  ) {
    super(
      `渠道 ${channelId} 配置有误 / channel ${channelId} configuration: ` +
        problems.map((p) => `${p.field}: ${p.zh} / ${p.en}`).join('; '),
    );
    this.name = 'ChannelConfigError';
  }
}

export function fieldsOf(channelId: string): readonly ConfigField[] | null {
  if (channelId.startsWith('medicare:')) return medicareDefinition(channelId.slice(9))?.fields ?? null;
  return channelDefinition(channelId)?.fields ?? null;
}

export class ChannelConfigs {
  private readonly cache = new Map<string, { at: number; values: Record<string, string> }>();

  constructor(
    private readonly store: ChannelConfigRepository,
    private readonly secrets: SecretBox,
    private readonly clock: Clock,
  ) {}

  private static sealContext(appId: string, channelId: string): string {
    return `app:${appId}:channel:${channelId}`;
  }

  private static platformSealContext(channelId: string): string {
    return `platform:channel:${channelId}`;
  }

  /** The platform-level values of a channel, secrets opened. */
  private async platformRaw(channelId: string): Promise<Record<string, string>> {
    const row = await this.store.getPlatform(channelId);
    if (!row) return {};
    const plain = JSON.parse(row.settings) as Record<string, string>;
    const secret = row.secrets_sealed
      ? (JSON.parse(
          this.secrets.open(row.secrets_sealed, ChannelConfigs.platformSealContext(channelId)),
        ) as Record<string, string>)
      : {};
    return { ...plain, ...secret };
  }

  /** An app's values merged with the platform's, by scope (without defaults). */
  private async merged(
    appId: string,
    channelId: string,
    fields: readonly ConfigField[],
    app?: Record<string, string>,
  ): Promise<Record<string, string>> {
    return mergeChannelConfig(
      fields,
      await this.platformRaw(channelId),
      app ?? (await this.raw(appId, channelId)),
    );
  }

  /** The stored values, secrets opened, without defaults. */
  private async raw(appId: string, channelId: string): Promise<Record<string, string>> {
    const row = await this.store.get(appId, channelId);
    if (!row) return {};
    const plain = JSON.parse(row.settings) as Record<string, string>;
    const secret = row.secrets_sealed
      ? (JSON.parse(
          this.secrets.open(row.secrets_sealed, ChannelConfigs.sealContext(appId, channelId)),
        ) as Record<string, string>)
      : {};
    return { ...plain, ...secret };
  }

  /**
   * The configuration an adapter is given (ctx.merchant): decrypted, defaults filled in. Channel ids of the
   * medical-insurance side are "medicare:<id>".
   */
  async load(appId: string, channelId: string): Promise<Record<string, string>> {
    const key = `${appId}\u0000${channelId}`;
    const hit = this.cache.get(key);
    const now = this.clock.now().getTime();
    if (hit && now - hit.at < CACHE_MS) return hit.values;
    const fields = fieldsOf(channelId) ?? [];
    const values = withDefaults(fields, await this.merged(appId, channelId, fields));
    this.cache.set(key, { at: now, values });
    return values;
  }

  /**
   * Changes an app's configuration of a channel: each value set (null removes it), the result merged with the
   * platform-level values and checked as a whole before anything is stored. A field set for the whole platform
   * only (scope 'platform') is refused. Throws ChannelConfigError naming every broken field.
   */
  async set(
    appId: string,
    channelId: string,
    patch: Record<string, string | null>,
  ): Promise<ChannelConfigView> {
    const fields = fieldsOf(channelId);
    if (!fields) throw new UnknownChannelError(channelId);
    const platformOnly = Object.keys(patch).filter(
      (k) => patch[k] !== null && fields.some((f) => f.name === k && scopeOf(f) === 'platform'),
    );
    if (platformOnly.length)
      throw new ChannelConfigError(
        channelId,
        platformOnly.map((field) => ({
          field,
          zh: `只能在平台级设置（hospay channel platform-set ${channelId}），不能按应用设置`,
          en: `set once for the whole platform (hospay channel platform-set ${channelId}), not per app`,
        })),
      );
    const current = await this.raw(appId, channelId);
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete current[k];
      else current[k] = v;
    }
    const problems = checkChannelConfig(fields, await this.merged(appId, channelId, fields, current));
    if (problems.length) throw new ChannelConfigError(channelId, problems);
    const plain: Record<string, string> = {};
    const secret: Record<string, string> = {};
    for (const f of fields) {
      const v = current[f.name];
      if (v === undefined) continue;
      (f.secret ? secret : plain)[f.name] = v;
    }
    const sealed = Object.keys(secret).length
      ? this.secrets.seal(JSON.stringify(secret), ChannelConfigs.sealContext(appId, channelId))
      : null;
    const now = this.clock.now();
    await this.store.put(appId, channelId, { settings: JSON.stringify(plain), secretsSealed: sealed, now });
    this.cache.delete(`${appId}\u0000${channelId}`);
    return this.view(appId, channelId);
  }

  /** What an operator may see: plain values, and which secrets are set. */
  async view(appId: string, channelId: string): Promise<ChannelConfigView> {
    const fields = fieldsOf(channelId);
    if (!fields) throw new UnknownChannelError(channelId);
    const current = await this.raw(appId, channelId);
    const merged = await this.merged(appId, channelId, fields, current);
    const values = shown(fields, current);
    const from_platform: Record<string, string> = {};
    for (const [k, v] of Object.entries(shown(fields, merged))) if (values[k] !== v) from_platform[k] = v;
    return {
      app_id: appId,
      channel: channelId,
      values,
      from_platform,
      problems: checkChannelConfig(fields, merged),
    };
  }

  /** The fields the platform may hold (scope 'platform' or 'either'), for checking what it holds. */
  private static platformFields(fields: readonly ConfigField[]): ConfigField[] {
    return fields.filter((f) => scopeOf(f) !== 'app').map((f) => ({ ...f, required: false }));
  }

  /** The platform-level configuration of a channel as an operator may see it. */
  async viewPlatform(channelId: string): Promise<PlatformChannelConfigView> {
    const fields = fieldsOf(channelId);
    if (!fields) throw new UnknownChannelError(channelId);
    const current = await this.platformRaw(channelId);
    return {
      channel: channelId,
      values: shown(fields, current),
      problems: checkChannelConfig(ChannelConfigs.platformFields(fields), current),
    };
  }

  /** The views of every channel with a platform-level configuration. */
  async viewAllPlatform(): Promise<PlatformChannelConfigView[]> {
    const ids = await this.store.platformChannels();
    return Promise.all(ids.map((id) => this.viewPlatform(id)));
  }

  /**
   * Changes the platform-level configuration of a channel: each value set (null removes it). Only fields that
   * may be set for the platform (scope 'platform' or 'either'); each value held is checked (what an app must add
   * is checked per app). Refused too when the change would break an app that uses the channel (a problem its
   * merged configuration did not have before), naming the app. Throws ChannelConfigError.
   */
  async setPlatform(
    channelId: string,
    patch: Record<string, string | null>,
  ): Promise<PlatformChannelConfigView> {
    const fields = fieldsOf(channelId);
    if (!fields) throw new UnknownChannelError(channelId);
    const appOnly = Object.keys(patch).filter(
      (k) => patch[k] !== null && fields.some((f) => f.name === k && scopeOf(f) === 'app'),
    );
    if (appOnly.length)
      throw new ChannelConfigError(
        channelId,
        appOnly.map((field) => ({
          field,
          zh: `只能按应用设置（hospay channel set --app ID --channel ${channelId}），不能在平台级设置`,
          en: `set per app (hospay channel set --app ID --channel ${channelId}), not for the platform`,
        })),
      );
    const before = await this.platformRaw(channelId);
    const current = { ...before };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete current[k];
      else current[k] = v;
    }
    const problems = checkChannelConfig(ChannelConfigs.platformFields(fields), current);
    if (problems.length) throw new ChannelConfigError(channelId, problems);
    // The apps that use this channel must still work with the new platform values.
    const broken: ConfigProblem[] = [];
    for (const appId of await this.appsUsing(channelId)) {
      const own = await this.raw(appId, channelId);
      const had = new Set(
        checkChannelConfig(fields, mergeChannelConfig(fields, before, own)).map(problemKey),
      );
      for (const p of checkChannelConfig(fields, mergeChannelConfig(fields, current, own)))
        if (!had.has(problemKey(p))) broken.push({ ...p, field: `app ${appId}: ${p.field}` });
    }
    if (broken.length) throw new ChannelConfigError(channelId, broken);
    const plain: Record<string, string> = {};
    const secret: Record<string, string> = {};
    for (const f of fields) {
      const v = current[f.name];
      if (v === undefined) continue;
      (f.secret ? secret : plain)[f.name] = v;
    }
    const sealed = Object.keys(secret).length
      ? this.secrets.seal(JSON.stringify(secret), ChannelConfigs.platformSealContext(channelId))
      : null;
    await this.store.putPlatform(channelId, {
      settings: JSON.stringify(plain),
      secretsSealed: sealed,
      now: this.clock.now(),
    });
    // Every app's merged configuration of this channel changes.
    for (const key of [...this.cache.keys()]) if (key.endsWith(`\u0000${channelId}`)) this.cache.delete(key);
    return this.viewPlatform(channelId);
  }

  /** The active apps that have a configuration of a channel or map a pay type to it. */
  private async appsUsing(channelId: string): Promise<string[]> {
    const out = new Set(await this.store.appsWith(channelId));
    for (const app of await this.store.appMaps()) {
      if (app.status !== 'active') continue;
      for (const [payType, id] of Object.entries(appChannelMap(app)))
        if ((payType === 'medicare' ? `medicare:${id}` : id) === channelId) out.add(app.id);
    }
    return [...out].sort();
  }

  /** The views of every channel the app has a configuration of, by channel id. */
  async viewAll(appId: string): Promise<ChannelConfigView[]> {
    const channelIds = await this.store.channelsOf(appId);
    return Promise.all(channelIds.map((channelId) => this.view(appId, channelId)));
  }

  /**
   * Start-up check: for every app, every channel it uses (its pay types' channels and its medical-insurance
   * side) and every channel it has configured, the configuration must be complete and valid, and its secrets
   * must open. Returns the problems, each naming the app, the channel and the field.
   */
  async problems(): Promise<Array<{ appId: string; channelId: string; problems: ConfigProblem[] }>> {
    const out: Array<{ appId: string; channelId: string; problems: ConfigProblem[] }> = [];
    const apps = await this.store.appMaps();
    const configured = await this.store.all();
    // The platform-level configurations: their secrets must open, their values be valid.
    const platform = new Map<string, Record<string, string> | null>();
    for (const channelId of await this.store.platformChannels()) {
      const fields = fieldsOf(channelId);
      const unreadable = (why: string) => {
        platform.set(channelId, null);
        out.push({
          appId: '(platform)',
          channelId,
          problems: [{ field: '(secrets)', zh: '平台级配置的密钥无法解开', en: why }],
        });
      };
      if (!fields) {
        out.push({
          appId: '(platform)',
          channelId,
          problems: [{ field: '(channel)', zh: '没有这个渠道', en: 'no such channel' }],
        });
        continue;
      }
      try {
        const values = await this.platformRaw(channelId);
        platform.set(channelId, values);
        const problems = checkChannelConfig(ChannelConfigs.platformFields(fields), values);
        if (problems.length) out.push({ appId: '(platform)', channelId, problems });
      } catch (e) {
        unreadable(e instanceof Error ? e.message : String(e));
      }
    }
    for (const app of apps) {
      if (app.status !== 'active') continue;
      const used = new Set<string>(configured.filter((c) => c.app_id === app.id).map((c) => c.channel_id));
      for (const [payType, id] of Object.entries(appChannelMap(app))) {
        if (id === SIMULATOR) continue;
        if (payType === 'medicare') used.add(`medicare:${id}`);
        else if ((PAY_TYPES as readonly string[]).includes(payType)) used.add(id);
      }
      for (const channelId of used) {
        const fields = fieldsOf(channelId);
        if (!fields) {
          out.push({
            appId: app.id,
            channelId,
            problems: [{ field: '(channel)', zh: '没有这个渠道', en: 'no such channel' }],
          });
          continue;
        }
        let values: Record<string, string>;
        try {
          values = await this.raw(app.id, channelId);
        } catch (e) {
          out.push({
            appId: app.id,
            channelId,
            problems: [
              { field: '(secrets)', zh: '密钥无法解开', en: e instanceof Error ? e.message : String(e) },
            ],
          });
          continue;
        }
        const shared = platform.get(channelId);
        if (shared === null) continue; // the platform's own problem is reported once, above
        const problems = checkChannelConfig(fields, mergeChannelConfig(fields, shared ?? {}, values));
        if (problems.length) out.push({ appId: app.id, channelId, problems });
      }
    }
    return out;
  }
}

export class ChannelMapError extends InvalidInputError {
  constructor(
    override readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ChannelMapError';
  }
}

/**
 * Switches an app's pay type (alipay, weixin, unionpay, or medicare for the medical-insurance side) to a
 * channel, or removes it from the map with the channel "none". Refused when the channel does not take that pay
 * type or the app's configuration of it is incomplete, so a switch never leaves an app that cannot pay; refused
 * too when it would use the simulator where it may not (HOSPAY_SIMULATOR=off, or beside a real channel without
 * HOSPAY_ALLOW_MIXED_SIMULATOR=1: see channels/choice.ts). "simulator" is written into the map (the explicit
 * choice) only in an app that takes real money; otherwise it is the same as no entry. Returns the new map, or
 * null for an unknown app.
 */
export async function setChannelMap(
  deps: { apps: AppRepository; channelConfigs: ChannelConfigs; config: { simulator: SimulatorPolicy } },
  appId: string,
  payType: string,
  channelId: string,
): Promise<Record<string, string> | null> {
  const app = await deps.apps.get(appId);
  if (!app) return null;
  if (!MAP_KEYS.includes(payType))
    throw new ChannelMapError(
      'INVALID_FIELD.pay_type',
      `pay_type 须为 ${PAY_TYPES.join(' / ')} 或 medicare / pay_type must be ${PAY_TYPES.join(', ')} or medicare`,
    );
  const old = appChannelMap(app);
  if (channelId === NO_CHANNEL) {
    const map = normaliseChannelMap(Object.fromEntries(Object.entries(old).filter(([k]) => k !== payType)));
    await deps.apps.setChannelMap(appId, map);
    return map;
  }
  if (payType === 'medicare') {
    if (!medicareDefinition(channelId))
      throw new ChannelMapError(
        'CHANNEL_NOT_FOUND',
        `没有这个医保渠道 / no such medical-insurance side: ${channelId}`,
      );
  } else {
    const def = channelDefinition(channelId);
    if (!def) throw new ChannelMapError('CHANNEL_NOT_FOUND', `没有这个渠道 / no such channel: ${channelId}`);
    if (!(def.payTypes as readonly string[]).includes(payType))
      throw new ChannelMapError(
        'CHANNEL_PAY_TYPE',
        `渠道 ${channelId} 不受理 ${payType} / channel ${channelId} does not take ${payType}`,
      );
  }
  if (channelId === SIMULATOR && !deps.config.simulator.enabled)
    throw new ChannelMapError(
      'SIMULATOR_OFF',
      `模拟器已关闭（HOSPAY_SIMULATOR=off），不能把 ${payType} 指向模拟器 / the simulator is off (HOSPAY_SIMULATOR=off): ${payType} cannot use it`,
    );
  const configId = payType === 'medicare' ? `medicare:${channelId}` : channelId;
  if (channelId !== SIMULATOR) {
    const view = await deps.channelConfigs.view(appId, configId);
    if (view.problems.length) throw new ChannelConfigError(configId, view.problems);
  }
  const map = normaliseChannelMap({ ...old, [payType]: channelId });
  // A switch may leave an already allowed mix as it is (or reduce it), never make a new one.
  const before = mixedSimulatorPayTypes(old);
  const added = mixedSimulatorPayTypes(map).filter((p) => !before.includes(p));
  if (added.length > 0 && !deps.config.simulator.allowMixed) {
    const real = Object.entries(map)
      .filter(([k, id]) => MAP_KEYS.includes(k) && id !== SIMULATOR)
      .map(([k, id]) => `${k} → ${id}`)
      .join(', ');
    throw new ChannelMapError(
      'SIMULATOR_MIXED',
      `应用 ${appId} 已接入真实渠道（${real}），不能再把 ${added.join('、')} 指向模拟器（模拟支付不收钱）；` +
        `如确需混用，请在服务端设置 HOSPAY_ALLOW_MIXED_SIMULATOR=1 / app ${appId} takes real money (${real}): ` +
        `${added.join(', ')} cannot be mapped to the simulator, which takes no money; set ` +
        `HOSPAY_ALLOW_MIXED_SIMULATOR=1 on the server if this is really wanted (or use --channel none to remove the pay type)`,
    );
  }
  await deps.apps.setChannelMap(appId, map);
  return map;
}

/**
 * Start-up check of every active app's map against the simulator settings: the simulator mapped while it is
 * off, or beside a real channel without HOSPAY_ALLOW_MIXED_SIMULATOR (channels/choice.ts).
 */
export async function simulatorProblems(
  apps: AppRepository,
  policy: SimulatorPolicy,
): Promise<SimulatorMapProblem[]> {
  return (await apps.list())
    .filter((a) => a.status === 'active')
    .flatMap((a) => simulatorMapProblems(a.id, appChannelMap(a), policy));
}
