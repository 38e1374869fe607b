/**
 * What an app's stored settings mean (its categories, its pay type → channel map), for the doors: the
 * app rows come from deps.apps, their JSON columns are read here (store/apps.ts). Also the checks every door
 * that creates an app or registers its key applies (the admin API and the desk), and the channel status of an
 * app per pay type (the desk's channels page).
 */
import { isPrivateKeyText, readPublicKey } from '../crypto/signing.js';
import { PAY_TYPES } from '../domain/trade.js';
import { CHANNEL_DEFINITIONS, MEDICARE_DEFINITIONS } from '../channels/registry.js';
import { chosenChannel, SIMULATOR } from '../channels/choice.js';
import type { ConfigProblem } from '../channels/definition.js';
import { appChannelMap } from '../store/apps.js';
import type { App } from '../store/schema.js';
import { channelOrNull, type ServiceDeps } from './deps.js';
import { fieldsOf } from './channel-config.js';

export { appCategories, appChannelMap } from '../store/apps.js';

/** Why an input was refused: a stable code and a message "中文 / English". */
export interface AppInputProblem {
  code: string;
  message: string;
}

export const MAX_APP_NAME_LENGTH = 64;
export const MAX_HOSPITAL_ID_LENGTH = 64;

/**
 * A new app's name and hospital id as given (JSON or a form): the name required (trimmed, at most 64
 * characters), the hospital id optional (at most 64; empty text = none).
 */
export function newAppInput(
  name: unknown,
  hospitalId: unknown,
): { name: string; hospitalId: string | null } | AppInputProblem {
  if (typeof name !== 'string' || name.trim() === '' || name.length > MAX_APP_NAME_LENGTH)
    return {
      code: 'INVALID_FIELD.name',
      message: '名称必填，最多 64 字 / name is required, at most 64 characters',
    };
  if (
    hospitalId !== undefined &&
    hospitalId !== null &&
    (typeof hospitalId !== 'string' || hospitalId.length > MAX_HOSPITAL_ID_LENGTH)
  )
    return {
      code: 'INVALID_FIELD.hospital_id',
      message: 'hospital_id 至多 64 字 / hospital_id is at most 64 characters',
    };
  const h = typeof hospitalId === 'string' ? hospitalId.trim() : '';
  return { name: name.trim(), hospitalId: h === '' ? null : h };
}

export const PRIVATE_KEY_REFUSED: AppInputProblem = {
  code: 'INVALID_FIELD.public_key',
  message:
    'public_key 是私钥：请只提交公钥，私钥须由医院自行保管（如已外泄请更换密钥） / public_key is a PRIVATE key: send the public key only and keep the private key to yourselves (replace the key pair if it has been exposed)',
};

/**
 * An app's gateway public key as given: refused when it is a private key, not an RSA public key (PEM or
 * Base64 SPKI, at least 1024 bits), or shorter than 2048 bits without legacy signing. Returns the key as SPKI
 * PEM, ready for AppRepository.setPublicKey.
 */
export function gatewayPublicKey(
  pem: unknown,
  legacySign: unknown,
): { publicPem: string; legacySign: boolean } | AppInputProblem {
  if (typeof pem === 'string' && isPrivateKeyText(pem)) return PRIVATE_KEY_REFUSED;
  const key = typeof pem === 'string' ? readPublicKey(pem) : null;
  if (!key)
    return {
      code: 'INVALID_FIELD.public_key',
      message:
        'public_key 须为 RSA 公钥（PEM 或 Base64，至少 1024 位） / public_key must be an RSA public key (PEM or Base64, 1024 bits or more)',
    };
  if (legacySign !== undefined && typeof legacySign !== 'boolean')
    return {
      code: 'INVALID_FIELD.legacy_sign',
      message: 'legacy_sign 须为 true 或 false / legacy_sign must be true or false',
    };
  if ((key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048 && legacySign !== true)
    return {
      code: 'INVALID_FIELD.public_key',
      message:
        'public_key 短于 2048 位：请登记 2048 位密钥，旧系统确需时加 legacy_sign: true / public_key is shorter than 2048 bits: register a 2048-bit key, or set legacy_sign: true for a legacy HIS that cannot',
    };
  return {
    publicPem: key.export({ type: 'spki', format: 'pem' }).toString(),
    legacySign: legacySign === true,
  };
}

export function isAppInputProblem(x: object): x is AppInputProblem {
  return 'code' in x && 'message' in x;
}

/** One configuration field of the channel serving a pay type, as an operator may see it (never a secret). */
export interface FieldStatus {
  name: string;
  zh: string;
  en: string;
  secret: boolean;
  required: boolean;
  /** app: the app's own value; platform: the platform-level value; default: the field's default; missing. */
  source: 'app' | 'platform' | 'default' | 'missing';
  /** The value of a plain field (null for a secret or a missing one). */
  shown: string | null;
}

/** How one pay type (or "medicare") of an app is served. */
export interface PayTypeStatus {
  payType: string;
  /** The channel written in the app's map for it, if any. */
  mapped: string | null;
  /** The channel serving it under the simulator settings (channels/choice.ts), null when none. */
  serving: string | null;
  /** The channels (or medical-insurance sides) that may serve it, by the registry. */
  choices: { id: string; zh: string }[];
  /** Every field of the serving channel's configuration (empty for the simulator or none). */
  fields: FieldStatus[];
  /** What is wrong with the serving channel's configuration for this app (platform values merged in). */
  problems: ConfigProblem[];
  /** The pay type takes payments now: app active, a registered channel serves it, its configuration complete. */
  live: boolean;
  /** Why it is not live, "中文 / English" (null when live). */
  why: string | null;
}

/**
 * The channel status of an app per pay type and for the medical-insurance side: which channel serves it, its
 * configuration fields (set by the app, by the platform, defaulted or missing: secrets never shown), its
 * problems, and whether it is live. The same facts as `hospay channel show` and GET /admin/apps/:id/channels.
 */
export async function appChannelStatus(
  deps: Pick<ServiceDeps, 'channels' | 'config' | 'channelConfigs'>,
  app: App,
): Promise<PayTypeStatus[]> {
  const map = appChannelMap(app);
  const out: PayTypeStatus[] = [];
  for (const payType of [...PAY_TYPES, 'medicare'] as const) {
    const mapped = Object.hasOwn(map, payType) ? (map[payType] ?? null) : null;
    const serving = chosenChannel(map, payType, deps.config.simulator);
    const choices =
      payType === 'medicare'
        ? MEDICARE_DEFINITIONS.map((d) => ({ id: d.id, zh: d.zh }))
        : CHANNEL_DEFINITIONS.filter((d) => (d.payTypes as readonly string[]).includes(payType)).map((d) => ({
            id: d.id,
            zh: d.zh,
          }));
    const registered =
      serving === null
        ? false
        : payType === 'medicare'
          ? deps.channels.medicare(serving) !== undefined
          : channelOrNull(deps, app, payType) !== null;
    let fields: FieldStatus[] = [];
    let problems: ConfigProblem[] = [];
    if (serving !== null && serving !== SIMULATOR) {
      const configId = payType === 'medicare' ? `medicare:${serving}` : serving;
      const defs = fieldsOf(configId) ?? [];
      try {
        const view = await deps.channelConfigs.view(app.id, configId);
        problems = view.problems;
        fields = defs.map((f) => {
          const own = view.values[f.name];
          const shared = view.from_platform[f.name];
          const source: FieldStatus['source'] =
            own !== undefined
              ? 'app'
              : shared !== undefined
                ? 'platform'
                : f.default !== undefined
                  ? 'default'
                  : 'missing';
          const value = own ?? shared ?? f.default ?? null;
          return {
            name: f.name,
            zh: f.zh,
            en: f.en,
            secret: f.secret,
            required: f.required,
            source,
            shown: f.secret || source === 'missing' ? null : value,
          };
        });
      } catch (e) {
        // An unknown channel in the map, or secrets that no longer open (another master key).
        problems = [
          {
            field: '(config)',
            zh: '配置无法读取',
            en:
              e instanceof Error && /master|key|decrypt/i.test(e.message)
                ? 'sealed values do not open'
                : 'unreadable',
          },
        ];
      }
    }
    const why =
      app.status !== 'active'
        ? '应用已停用 / the app is disabled'
        : serving === null
          ? mapped === null
            ? '未指定渠道 / no channel chosen'
            : `渠道 ${mapped} 不可用（模拟器设置） / ${mapped} may not serve it (simulator settings)`
          : !registered
            ? `渠道 ${serving} 未注册或不受理此方式 / ${serving} is not registered or does not take it`
            : problems.length > 0
              ? '渠道配置不完整 / the channel configuration is incomplete'
              : null;
    out.push({ payType, mapped, serving, choices, fields, problems, live: why === null, why });
  }
  return out;
}
