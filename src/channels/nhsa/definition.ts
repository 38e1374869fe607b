import type { ConfigField, MedicareDefinition } from '../definition.js';
import { NhsaMedicare } from './channel.js';
import {
  NHSA_DEFAULTS,
  checkAuthUrl,
  checkEndpointUrl,
  checkJsonObject,
  checkPath,
  checkSettledStates,
} from './config.js';
import { deriveSm4Key, parsePrivateKey, parsePublicKey } from './envelope.js';

const why = (e: unknown) => (e instanceof Error ? e.message : String(e)).slice(0, 200);

const oneOf =
  (values: readonly string[]) =>
  (v: string): string | null =>
    values.includes(v) ? null : `只能是 ${values.join(' 或 ')} / must be ${values.join(' or ')}`;

/** Errors thrown by the key parsers already read "中文 / English". */
const parses = (parse: (v: string) => unknown) => (v: string) => {
  try {
    parse(v);
    return null;
  } catch (e) {
    return why(e);
  }
};

/** The SM4 key can be derived from app_id and app_secret as the chosen mode needs. */
function derivable(all: Readonly<Record<string, string>>): string | null {
  const mode = all['sm4_key_mode'] || NHSA_DEFAULTS.sm4_key_mode;
  try {
    deriveSm4Key(all['app_id'] ?? '', all['app_secret'] ?? '', mode === 'secret16' ? 'secret16' : 'derived');
    return null;
  } catch {
    return mode === 'secret16'
      ? 'sm4_key_mode 为 secret16 时 app_secret 至少 16 位 / with sm4_key_mode secret16 app_secret needs 16 characters or more'
      : 'app_id 至少 16 位（SM4 密钥由其前 16 位派生） / app_id needs 16 characters or more (the SM4 key is derived from them)';
  }
}

const path = (op: string, zh: string, def?: string): ConfigField => ({
  name: `path_${op}`,
  secret: false,
  required: true,
  zh: `${op} ${zh}接口路径（拼在 api_base_url 后）`,
  en: `path of ${op} (appended to api_base_url)`,
  ...(def !== undefined ? { default: def } : {}),
  check: checkPath,
});

export const NHSA_FIELDS: readonly ConfigField[] = [
  {
    name: 'app_id',
    secret: false,
    required: true,
    zh: '渠道应用编号 appId（医保移动支付中心分配）',
    en: 'channel application id (appId, issued by the mobile-payment centre)',
    check: (v, all) =>
      /^[A-Za-z0-9_-]{1,64}$/.test(v) ? derivable(all) : 'appId 应为字母数字 / appId is letters and digits',
  },
  {
    name: 'app_secret',
    secret: true,
    required: true,
    zh: '应用密钥 appSecret（签名串末尾 &key=，并派生 SM4 密钥）',
    en: 'application secret (appended to the sign text as &key=, and the source of the SM4 key)',
    check: (v) =>
      v.length >= 8 && v.length <= 128 && !/\s/.test(v)
        ? null
        : '长度 8～128 且无空白 / 8–128 characters, no spaces',
  },
  {
    name: 'org_code',
    secret: false,
    required: true,
    zh: '定点医药机构编码（如 H44010100001）',
    en: 'designated medical institution code (e.g. H44010100001)',
    check: (v) => (/^[A-Za-z0-9]{4,30}$/.test(v) ? null : '应为 4～30 位字母数字 / 4–30 letters or digits'),
  },
  {
    name: 'org_name',
    secret: false,
    required: true,
    zh: '定点医药机构名称',
    en: 'designated medical institution name',
    check: (v) => (v.length <= 100 ? null : '最多 100 字 / at most 100 characters'),
  },
  {
    name: 'platform_public_key',
    secret: false,
    required: true,
    zh: '医保平台 SM2 公钥（04 开头 130 位十六进制，或 Base64），用于验签应答',
    en: "the centre's SM2 public key (04… 130 hex characters, or Base64), verifies answers",
    check: parses(parsePublicKey),
  },
  {
    name: 'org_private_key',
    secret: true,
    required: true,
    zh: '本机构 SM2 私钥（64 位十六进制，或 Base64），用于签名请求',
    en: "the institution's SM2 private key (64 hex characters, or Base64), signs requests",
    check: parses(parsePrivateKey),
  },
  {
    name: 'sm2_user_id',
    secret: false,
    required: false,
    zh: 'SM2 签名用户标识（默认 1234567812345678；个别地区用 {appId} 或 {appSecret}）',
    en: 'SM2 signer id (default 1234567812345678; some regions use {appId} or {appSecret})',
    default: NHSA_DEFAULTS.sm2_user_id,
    check: (v) =>
      /^[\x21-\x7e]{1,64}$/.test(v) ? null : '1～64 个可见 ASCII 字符 / 1–64 printable ASCII characters',
  },
  {
    name: 'sm4_key_mode',
    secret: false,
    required: false,
    zh: 'SM4 密钥：derived（以 appId 前 16 位加密 appSecret，取密文十六进制前 16 位，国家规范）或 secret16（appSecret 前 16 位）',
    en: 'SM4 key: derived (appSecret encrypted under the first 16 characters of appId, first 16 hex of that; national rule) or secret16 (first 16 characters of appSecret)',
    default: NHSA_DEFAULTS.sm4_key_mode,
    check: (v, all) => oneOf(['derived', 'secret16'])(v) ?? derivable(all),
  },
  {
    name: 'api_version',
    secret: false,
    required: false,
    zh: '报文版本 version（默认 2.0.1）',
    en: 'envelope version (default 2.0.1)',
    default: NHSA_DEFAULTS.api_version,
    check: (v) => (/^[0-9A-Za-z.]{1,16}$/.test(v) ? null : '如 2.0.1 / e.g. 2.0.1'),
  },
  {
    name: 'api_base_url',
    secret: false,
    required: true,
    zh: '地区医保移动支付网关地址（https）',
    en: "the region's mobile-payment gateway (https)",
    check: checkEndpointUrl,
  },
  {
    name: 'auth_url',
    secret: false,
    required: true,
    zh: '地区医保电子凭证授权页地址模板，占位符 {appId} {orgCode} {cityCode} {redirect} {state}',
    en: "the region's e-voucher authorisation page, a template with {appId} {orgCode} {cityCode} {redirect} {state}",
    check: checkAuthUrl,
  },
  path('token', '医保授权查询（授权码/身份 → payAuthNo，各地不同，无默认值）'),
  path('6201', '费用明细上传', NHSA_DEFAULTS.path_6201),
  path('6202', '支付下单', NHSA_DEFAULTS.path_6202),
  path('6203', '医保退费', NHSA_DEFAULTS.path_6203),
  path('6301', '医保订单结算结果查询', NHSA_DEFAULTS.path_6301),
  path('6401', '费用明细上传撤销', NHSA_DEFAULTS.path_6401),
  {
    name: 'city_code',
    secret: false,
    required: true,
    zh: '就医地医保区划（6 位，如 440100），参保地未知时亦作参保地',
    en: 'insurance area of the hospital (6 digits, e.g. 440100), also the insured area when none is given',
    check: (v) => (/^[0-9]{6}$/.test(v) ? null : '应为 6 位数字 / must be 6 digits'),
  },
  {
    name: 'acct_used_flag',
    secret: false,
    required: false,
    zh: '个人账户使用标志（1 使用，0 不使用；默认 1）',
    en: 'use the personal account (1) or not (0); default 1',
    default: NHSA_DEFAULTS.acct_used_flag,
    check: oneOf(['0', '1']),
  },
  {
    name: 'settled_states',
    secret: false,
    required: false,
    zh: '视为医保已结算的订单状态（默认 4,5,6）',
    en: 'order states taken as the insurance part settled (default 4,5,6)',
    default: NHSA_DEFAULTS.settled_states,
    check: checkSettledStates,
  },
  {
    name: 'refund_type',
    secret: false,
    required: false,
    zh: '撤销结算时 6203 的退费类型（ALL 全部，HI 只退医保；默认 ALL）',
    en: 'refund type of the 6203 reversal (ALL, or HI for the insurance part only; default ALL)',
    default: NHSA_DEFAULTS.refund_type,
    check: oneOf(['ALL', 'HI']),
  },
  {
    name: 'interface_extra',
    secret: false,
    required: false,
    zh: '各接口的地区固定字段（JSON，键为 token/6201/6202/6203/6301/6401），如 {"6201":{"deptCode":"A01"}}',
    en: 'region-specific constant fields per interface (JSON keyed by token/6201/6202/6203/6301/6401)',
    default: NHSA_DEFAULTS.interface_extra,
    check: (v) => checkJsonObject(v, 'extra'),
  },
  {
    name: 'extra_headers',
    secret: true,
    required: false,
    zh: '地区网关要求的额外请求头（JSON 对象，如 {"x-paas-id":"…"}）',
    en: "extra HTTP headers the region's gateway wants (JSON object)",
    check: (v) => checkJsonObject(v, 'headers'),
  },
  {
    name: 'timeout_ms',
    secret: false,
    required: false,
    zh: '每次调用的超时（毫秒，默认 10000）',
    en: 'timeout of each call in ms (default 10000)',
    default: NHSA_DEFAULTS.timeout_ms,
    check: (v) =>
      /^[0-9]{3,5}$/.test(v) && Number(v) >= 100 && Number(v) <= 60_000
        ? null
        : '100～60000 之间的整数 / an integer from 100 to 60000',
  },
];

/** The national medical-insurance mobile-payment centre (6201/6202/6203/6301/6401). */
export const nhsaDefinition: MedicareDefinition = {
  id: 'nhsa',
  zh: '国家医保移动支付',
  fields: NHSA_FIELDS,
  create: (deps) =>
    new NhsaMedicare({ http: deps.http, clock: deps.clock, publicBaseUrl: deps.publicBaseUrl }),
};
