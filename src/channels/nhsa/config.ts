/**
 * An app's configuration of the national medical-insurance mobile-payment centre, read and checked. The
 * region-specific parts (gateway, paths, key derivation, SM2 user id, constant business fields, extra headers)
 * are all settings; docs/channels/nhsa.md explains each.
 */
import {
  deriveSm4Key,
  parsePrivateKey,
  parsePublicKey,
  publicKeyOf,
  type NhsaKeys,
  type Sm4KeyMode,
} from './envelope.js';
import { InvalidInputError } from '../../domain/errors.js';

export type NhsaOp = 'token' | '6201' | '6202' | '6203' | '6301' | '6401';
export const NHSA_OPS: readonly NhsaOp[] = ['token', '6201', '6202', '6203', '6301', '6401'];

export const NHSA_DEFAULTS = {
  sm2_user_id: '1234567812345678',
  sm4_key_mode: 'derived',
  api_version: '2.0.1',
  path_6201: '/org/local/api/hos/uldFeeInfo',
  path_6202: '/org/local/api/hos/pay_order',
  path_6203: '/org/local/api/hos/refund_Order',
  path_6301: '/org/local/api/hos/query_order_info',
  path_6401: '/org/local/api/hos/revoke_order',
  acct_used_flag: '1',
  settled_states: '4,5,6',
  refund_type: 'ALL',
  interface_extra: '{}',
  timeout_ms: '10000',
} as const;

export const AUTH_URL_PLACEHOLDERS = ['appId', 'orgCode', 'cityCode', 'redirect', 'state'] as const;

export interface NhsaConfig {
  keys: NhsaKeys;
  orgCode: string;
  orgName: string;
  apiBaseUrl: string;
  authUrl: string;
  paths: Record<NhsaOp, string>;
  cityCode: string;
  acctUsedFlag: '0' | '1';
  settledStates: ReadonlySet<string>;
  refundType: 'ALL' | 'HI';
  extra: Partial<Record<NhsaOp, Record<string, unknown>>>;
  headers: Record<string, string>;
  timeoutMs: number;
}

export class NhsaConfigError extends InvalidInputError {
  constructor(
    readonly field: string,
    readonly why: string,
  ) {
    super(`${field}: ${why}`);
    this.name = 'NhsaConfigError';
  }
}

const msg = (e: unknown) => (e instanceof Error ? e.message : String(e)).slice(0, 200);

/** A gateway or page address: https, or http only to this machine (test doubles). */
export function checkEndpointUrl(v: string): string | null {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return '不是完整的网址 / not an absolute URL';
  }
  if (u.username || u.password) return '网址不应包含用户名密码 / the URL must not carry credentials';
  if (u.protocol === 'https:') return null;
  if (u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) return null;
  return '须为 https 地址 / must be an https URL';
}

export function checkPath(v: string): string | null {
  return /^\/[A-Za-z0-9/_.~%-]{0,199}$/.test(v)
    ? null
    : '须为以“/”开头的接口路径 / must be an API path starting with “/”';
}

/** Fills the authorisation page template; every value is URL-encoded. */
export function fillAuthUrl(
  template: string,
  values: Record<(typeof AUTH_URL_PLACEHOLDERS)[number], string>,
) {
  return template.replace(/\{(appId|orgCode|cityCode|redirect|state)\}/g, (_m, k: keyof typeof values) =>
    encodeURIComponent(values[k]),
  );
}

export function checkAuthUrl(v: string): string | null {
  const unknown = [...v.matchAll(/\{([^}]*)\}/g)]
    .map((m) => m[1] ?? '')
    .filter((k) => !(AUTH_URL_PLACEHOLDERS as readonly string[]).includes(k));
  if (unknown.length)
    return `未知占位符 {${unknown[0]}}，可用 {appId} {orgCode} {cityCode} {redirect} {state} / unknown placeholder {${unknown[0]}}; use {appId} {orgCode} {cityCode} {redirect} {state}`;
  if (!v.includes('{redirect}') || !v.includes('{state}'))
    return '须包含 {redirect} 与 {state} / must contain {redirect} and {state}';
  return checkEndpointUrl(
    fillAuthUrl(v, {
      appId: 'A',
      orgCode: 'H',
      cityCode: '000000',
      redirect: 'https://hospay.example/x',
      state: 's',
    }),
  );
}

export function checkJsonObject(v: string, what: 'extra' | 'headers'): string | null {
  let o: unknown;
  try {
    o = JSON.parse(v);
  } catch {
    return '不是 JSON / not JSON';
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o))
    return '须为 JSON 对象 / must be a JSON object';
  if (v.length > 8192) return '过长（最多 8192 字符） / too long (at most 8192 characters)';
  for (const [k, x] of Object.entries(o as Record<string, unknown>)) {
    if (what === 'extra') {
      if (!(NHSA_OPS as readonly string[]).includes(k))
        return `键须为 ${NHSA_OPS.join('、')} / keys must be ${NHSA_OPS.join(', ')}`;
      if (typeof x !== 'object' || x === null || Array.isArray(x))
        return `${k} 须为 JSON 对象 / ${k} must be a JSON object`;
    } else {
      if (!/^[A-Za-z0-9-]{1,64}$/.test(k)) return `请求头名无效：${k.slice(0, 40)} / bad header name`;
      if (['content-type', 'content-length', 'host'].includes(k.toLowerCase()))
        return `不能设置 ${k} / ${k} cannot be set`;
      if (typeof x !== 'string' || /[\r\n]/.test(x))
        return `${k} 的值须为单行文字 / ${k} must be one line of text`;
    }
  }
  return null;
}

export function checkSettledStates(v: string): string | null {
  const parts = v.split(',').map((s) => s.trim());
  return parts.length > 0 && parts.every((p) => /^[0-9]{1,2}$/.test(p))
    ? null
    : '须为逗号分隔的订单状态码，如 4,5,6 / must be comma-separated order states, e.g. 4,5,6';
}

/** The SM2 user id as configured: a literal, or {appId} / {appSecret} for regions that sign with those. */
function sm2UserId(v: string, appId: string, appSecret: string): string {
  if (v === '{appId}') return appId;
  if (v === '{appSecret}') return appSecret;
  return v;
}

/** Reads ctx.merchant (defaults filled in where missing). Throws NhsaConfigError naming the broken field. */
export function readConfig(m: Readonly<Record<string, string>>): NhsaConfig {
  const get = (k: string): string => {
    const v = m[k];
    if (v !== undefined && v !== '') return v;
    const d = (NHSA_DEFAULTS as Record<string, string>)[k];
    if (d !== undefined) return d;
    throw new NhsaConfigError(k, 'not set');
  };
  const appId = get('app_id');
  const appSecret = get('app_secret');
  const mode = get('sm4_key_mode');
  if (mode !== 'derived' && mode !== 'secret16')
    throw new NhsaConfigError('sm4_key_mode', 'must be derived or secret16');
  let sm4Key: Uint8Array;
  try {
    sm4Key = deriveSm4Key(appId, appSecret, mode as Sm4KeyMode);
  } catch (e) {
    throw new NhsaConfigError(mode === 'derived' ? 'app_id' : 'app_secret', msg(e));
  }
  let orgPrivateKeyHex: string;
  let platformPublicKeyHex: string;
  try {
    orgPrivateKeyHex = parsePrivateKey(get('org_private_key'));
  } catch (e) {
    throw new NhsaConfigError('org_private_key', msg(e));
  }
  try {
    platformPublicKeyHex = parsePublicKey(get('platform_public_key'));
  } catch (e) {
    throw new NhsaConfigError('platform_public_key', msg(e));
  }
  const checked = (k: string, check: (v: string) => string | null) => {
    const v = get(k);
    const why = check(v);
    if (why) throw new NhsaConfigError(k, why);
    return v;
  };
  const paths = {
    token: checked('path_token', checkPath),
    '6201': checked('path_6201', checkPath),
    '6202': checked('path_6202', checkPath),
    '6203': checked('path_6203', checkPath),
    '6301': checked('path_6301', checkPath),
    '6401': checked('path_6401', checkPath),
  };
  const acct = get('acct_used_flag');
  const refundType = get('refund_type');
  const timeoutMs = Number(get('timeout_ms'));
  if (!Number.isInteger(timeoutMs) || timeoutMs < 100 || timeoutMs > 60_000)
    throw new NhsaConfigError('timeout_ms', 'must be 100–60000');
  const extraText = checked('interface_extra', (v) => checkJsonObject(v, 'extra'));
  const headersText = m['extra_headers']
    ? checked('extra_headers', (v) => checkJsonObject(v, 'headers'))
    : '{}';
  return {
    keys: {
      appId,
      appSecret,
      orgPrivateKeyHex,
      orgPublicKeyHex: publicKeyOf(orgPrivateKeyHex),
      platformPublicKeyHex,
      sm2UserId: sm2UserId(get('sm2_user_id'), appId, appSecret),
      sm4Key,
      version: get('api_version'),
    },
    orgCode: get('org_code'),
    orgName: get('org_name'),
    apiBaseUrl: checked('api_base_url', checkEndpointUrl).replace(/\/+$/, ''),
    authUrl: checked('auth_url', checkAuthUrl),
    paths,
    cityCode: checked('city_code', (v) => (/^[0-9]{6}$/.test(v) ? null : 'must be 6 digits')),
    acctUsedFlag: acct === '0' ? '0' : '1',
    settledStates: new Set(
      checked('settled_states', checkSettledStates)
        .split(',')
        .map((s) => s.trim()),
    ),
    refundType: refundType === 'HI' ? 'HI' : 'ALL',
    extra: JSON.parse(extraText) as NhsaConfig['extra'],
    headers: JSON.parse(headersText) as Record<string, string>,
    timeoutMs,
  };
}
