/**
 * Per-app channel configuration: plain fields stored as JSON, secret fields (keys, certificates, API keys)
 * sealed with the master key. Read through a short cache, so a payment does not decrypt on every call; a
 * change made through this process is seen at once, one made elsewhere within CACHE_MS.
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
  problems: ConfigProblem[];
}

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
    const values = withDefaults(fieldsOf(channelId) ?? [], await this.raw(appId, channelId));
    this.cache.set(key, { at: now, values });
    return values;
  }

  /**
   * Changes an app's configuration of a channel: each value set (null removes it), the result checked as a
   * whole before anything is stored. Throws ChannelConfigError naming every broken field.
   */
  async set(
    appId: string,
    channelId: string,
    patch: Record<string, string | null>,
  ): Promise<ChannelConfigView> {
    const fields = fieldsOf(channelId);
    if (!fields) throw new UnknownChannelError(channelId);
    const current = await this.raw(appId, channelId);
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete current[k];
      else current[k] = v;
    }
    const problems = checkChannelConfig(fields, current);
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
    const values: Record<string, string> = {};
    for (const f of fields) {
      const v = current[f.name];
      if (v === undefined || v === '') continue;
      values[f.name] = f.secret ? '已设置 set' : v;
    }
    return { app_id: appId, channel: channelId, values, problems: checkChannelConfig(fields, current) };
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
        const problems = checkChannelConfig(fields, values);
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
