/**
 * An app's reconciliation settings, kept as JSON in apps.recon_settings. Every field is optional; what is
 * missing takes the default. Validation names the field that is wrong, in Chinese and English.
 */
import { PAY_TYPES, type PayType } from '../domain/trade.js';
import { HIS_PROTOCOLS, type HisProtocol } from './his/his-client.js';
import { DEFAULT_SOAP_NAMESPACE } from './his/soap.js';
import { InvalidInputError } from '../domain/errors.js';
import { fen, type Fen } from '../domain/money.js';

export interface ReconSettings {
  /** Minutes per IF_Get_Hospital_Trade_List call; must divide a day. Default 60. */
  hisSliceMinutes: number;
  /** Per HIS call, seconds. Default 10. */
  hisTimeoutSeconds: number;
  /** Extra attempts after a timeout / 5xx. Default 2. */
  hisRetries: number;
  /** The business day starts at this hour, Asia/Shanghai (0–23). Default 0. */
  cutoffHour: number;
  /** Days a one-sided movement near the cut-off waits before it is a difference. Default 3. */
  pendingDays: number;
  /** Expected channel fee in basis points of the payment (60 = 0.6 %), per pay type; absent = not checked. */
  feeRateBps: Partial<Record<PayType, number>>;
  /** Allowed difference between the expected and the billed fee, in fen. Default 1 (rounding). */
  feeToleranceFen: Fen;
  /** How the HIS serves chapter 7: plain XML over HTTP (default), or SOAP 1.1 / 1.2 operations. */
  hisProtocol: HisProtocol;
  /** The namespace of the HIS's SOAP service (operation elements, SOAPAction). Default http://tempuri.org/. */
  hisSoapNamespace: string;
}

export const DEFAULT_RECON_SETTINGS: ReconSettings = {
  hisSliceMinutes: 60,
  hisTimeoutSeconds: 10,
  hisRetries: 2,
  cutoffHour: 0,
  pendingDays: 3,
  feeRateBps: {},
  feeToleranceFen: fen(1),
  hisProtocol: 'xml',
  hisSoapNamespace: DEFAULT_SOAP_NAMESPACE,
};

/** Checks a SOAP namespace: an absolute URI (http(s) URL or urn:), at most 256 characters. */
function checkSoapNamespace(value: unknown): string {
  const bad = () =>
    new ReconSettingsError(
      'hisSoapNamespace',
      'SOAP 命名空间须为 http(s):// 或 urn: 开头的 URI（最多 256 个字符），如 http://tempuri.org/',
      'must be an http(s) or urn: URI of at most 256 characters, e.g. http://tempuri.org/',
    );
  if (typeof value !== 'string' || value.length > 256 || !/^[\x21-\x7e]+$/.test(value)) throw bad();
  if (/^urn:[a-z0-9][a-z0-9-]*:\S+$/i.test(value)) return value;
  try {
    const u = new URL(value);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw bad();
  } catch {
    throw bad();
  }
  return value;
}

export class ReconSettingsError extends InvalidInputError {
  constructor(
    readonly field: string,
    readonly zh: string,
    readonly en: string,
  ) {
    super(`${field}: ${zh}${en ? ` / ${en}` : ''}`);
    this.name = 'ReconSettingsError';
  }
}

const LIMITS: Record<
  Exclude<keyof ReconSettings, 'feeRateBps' | 'hisProtocol' | 'hisSoapNamespace'>,
  { min: number; max: number; zh: string; check?: (n: number) => boolean; why?: string }
> = {
  hisSliceMinutes: {
    min: 1,
    max: 1440,
    zh: '分片分钟数',
    check: (n) => 1440 % n === 0,
    why: 'must divide 1440 (a day)',
  },
  hisTimeoutSeconds: { min: 1, max: 300, zh: 'HIS 超时秒数' },
  hisRetries: { min: 0, max: 10, zh: 'HIS 重试次数' },
  cutoffHour: { min: 0, max: 23, zh: '日切时点' },
  pendingDays: { min: 0, max: 30, zh: '挂账天数' },
  feeToleranceFen: { min: 0, max: 10_000, zh: '手续费容差（分）' },
};

/**
 * Merges `patch` over `base`, validating every given field. Unknown fields are refused (a typo would otherwise
 * be silently ignored). `feeRateBps` entries set to null are removed.
 */
export function mergeReconSettings(base: ReconSettings, patch: unknown): ReconSettings {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch))
    throw new ReconSettingsError('settings', '须为对象', 'must be an object');
  const out: ReconSettings = { ...base, feeRateBps: { ...base.feeRateBps } };
  for (const [field, value] of Object.entries(patch as Record<string, unknown>)) {
    if (field === 'feeRateBps') {
      if (typeof value !== 'object' || value === null || Array.isArray(value))
        throw new ReconSettingsError(field, '须为 {支付方式: 基点}', 'must be {payType: basis points}');
      for (const [pt, bps] of Object.entries(value as Record<string, unknown>)) {
        if (!(PAY_TYPES as readonly string[]).includes(pt))
          throw new ReconSettingsError(
            `feeRateBps.${pt}`,
            `未知支付方式，可用 ${PAY_TYPES.join('/')}`,
            `unknown pay type; use ${PAY_TYPES.join('/')}`,
          );
        if (bps === null) {
          delete out.feeRateBps[pt as PayType];
          continue;
        }
        if (typeof bps !== 'number' || !Number.isInteger(bps) || bps < 0 || bps > 1000)
          throw new ReconSettingsError(
            `feeRateBps.${pt}`,
            '费率须为 0～1000 的整数基点（60 = 0.6%）',
            'must be whole basis points 0–1000 (60 = 0.6%)',
          );
        out.feeRateBps[pt as PayType] = bps;
      }
      continue;
    }
    if (field === 'hisProtocol') {
      if (typeof value !== 'string' || !(HIS_PROTOCOLS as readonly string[]).includes(value))
        throw new ReconSettingsError(
          field,
          `HIS 接口协议须为 ${HIS_PROTOCOLS.join('、')} 之一`,
          `must be one of ${HIS_PROTOCOLS.join(', ')}`,
        );
      out.hisProtocol = value as HisProtocol;
      continue;
    }
    if (field === 'hisSoapNamespace') {
      out.hisSoapNamespace = checkSoapNamespace(value);
      continue;
    }
    const limit = LIMITS[field as keyof typeof LIMITS] as (typeof LIMITS)[keyof typeof LIMITS] | undefined;
    if (!limit) throw new ReconSettingsError(field, '未知设置项', 'unknown setting');
    if (
      typeof value !== 'number' ||
      !Number.isInteger(value) ||
      value < limit.min ||
      value > limit.max ||
      (limit.check && !limit.check(value))
    )
      throw new ReconSettingsError(
        field,
        `${limit.zh}须为 ${limit.min}～${limit.max} 的整数${limit.why ? '，且能整除 1440' : ''}`,
        `must be a whole number ${limit.min}–${limit.max}${limit.why ? `, ${limit.why}` : ''}`,
      );
    (out as unknown as Record<string, number>)[field] = field === 'feeToleranceFen' ? fen(value) : value;
  }
  return out;
}

/** The settings stored for an app (JSON text); a damaged value falls back to the defaults field by field. */
export function readReconSettings(json: string | null | undefined): ReconSettings {
  if (!json) return DEFAULT_RECON_SETTINGS;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return DEFAULT_RECON_SETTINGS;
  }
  if (typeof parsed !== 'object' || parsed === null) return DEFAULT_RECON_SETTINGS;
  let out = DEFAULT_RECON_SETTINGS;
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    try {
      out = mergeReconSettings(out, { [k]: v });
    } catch {
      /* keep the default for a field that no longer validates */
    }
  }
  return out;
}

/** "alipay=0.6%,weixin=60" → { alipay: 60, weixin: 60 } (percent or basis points; "-" removes). */
export function parseFeeRates(text: string): Record<string, number | null> {
  const out: Record<string, number | null> = {};
  for (const part of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([a-z]+)=(-|[0-9]+(?:\.[0-9]{1,2})?%|[0-9]+)$/.exec(part);
    if (!m)
      throw new ReconSettingsError(
        'fee-rate',
        `无法识别 "${part}"，格式如 alipay=0.6% 或 alipay=60`,
        `cannot read "${part}"; use alipay=0.6% or alipay=60 (basis points)`,
      );
    const [, pt = '', v = ''] = m;
    if (v === '-') out[pt] = null;
    else if (v.endsWith('%')) {
      // Percent with at most two decimals → basis points, by string arithmetic (no float rounding).
      const [int = '0', frac = ''] = v.slice(0, -1).split('.');
      out[pt] = Number(int) * 100 + Number(frac.padEnd(2, '0'));
    } else out[pt] = Number(v);
  }
  return out;
}
