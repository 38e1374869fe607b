import type { PayType } from '../domain/trade.js';
import type { Channel, MedicareChannel } from './channel.js';
import type { HttpClient } from './http.js';
import type { Clock } from '../domain/clock.js';
import type { SimulatorApi } from './simulator/api.js';

/**
 * How a channel is described to the platform: its id, the pay types it takes, and the configuration fields
 * an app must give it (merchant ids, keys, certificates). Secret fields are sealed at rest and never shown.
 * The platform validates an app's configuration with `check` at start-up and when it is set, and names the
 * broken field.
 */
export interface ConfigField {
  name: string;
  /** Sealed at rest, never printed, never logged. */
  secret: boolean;
  required: boolean;
  zh: string;
  en: string;
  /** A default when not set (non-secret fields only). */
  default?: string;
  /**
   * Where the value may be set. 'app' (the default): per app. 'platform': once for the whole platform, e.g. a
   * service provider's own credentials (WeChat Pay 服务商 sp_mchid and keys, an Alipay third-party app's key),
   * shared by every app. 'either': once for the platform, and an app's own value wins.
   */
  scope?: 'app' | 'platform' | 'either';
  /** Returns what is wrong with the value (中文 / English), or null. `all` is the whole configuration. */
  check?: (value: string, all: Readonly<Record<string, string>>) => string | null;
}

/** What a channel factory is given. */
export interface ChannelDeps {
  /** Outgoing HTTP(S) with timeouts, client certificates and size limits. */
  http: HttpClient;
  clock: Clock;
  /** The built-in simulator's provider (only the simulator channel uses it; other channels ignore it). */
  simulator?: SimulatorApi | null | undefined;
}

export interface ChannelDefinition {
  id: string;
  zh: string;
  payTypes: readonly PayType[];
  fields: readonly ConfigField[];
  create(deps: ChannelDeps): Channel;
}

export interface MedicareDefinition {
  id: string;
  zh: string;
  fields: readonly ConfigField[];
  create(deps: ChannelDeps & { publicBaseUrl: () => string }): MedicareChannel;
}

export interface ConfigProblem {
  field: string;
  zh: string;
  en: string;
}

/**
 * Checks an app's configuration for a channel: required fields present, every value accepted by its check,
 * no unknown field. Returns every problem (empty = fine).
 */
export function checkChannelConfig(
  fields: readonly ConfigField[],
  values: Readonly<Record<string, string>>,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const known = new Set(fields.map((f) => f.name));
  for (const name of Object.keys(values))
    if (!known.has(name)) problems.push({ field: name, zh: '未知配置项', en: 'unknown setting' });
  for (const f of fields) {
    const v = values[f.name];
    if (v === undefined || v === '') {
      if (f.required && f.default === undefined)
        problems.push({ field: f.name, zh: '必填，未设置', en: 'required, not set' });
      continue;
    }
    const why = f.check?.(v, values);
    if (why) {
      const [zh = why, en = why] = why.split(' / ');
      problems.push({ field: f.name, zh, en });
    }
  }
  return problems;
}

/** The configuration with defaults filled in. */
export function withDefaults(
  fields: readonly ConfigField[],
  values: Readonly<Record<string, string>>,
): Record<string, string> {
  const out: Record<string, string> = { ...values };
  for (const f of fields) if (f.default !== undefined && (out[f.name] ?? '') === '') out[f.name] = f.default;
  return out;
}
