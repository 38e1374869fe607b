import type { ChannelDefinition, ConfigField } from '../definition.js';
import { AlipayChannel } from './channel.js';
import {
  gatewayUrlProblem,
  prepareAlipay,
  readAlipayPrivateKey,
  readAlipayPublicKey,
  readCertificates,
  spkiBase64,
} from './keys.js';
import { ALIPAY_GATEWAY, DEFAULT_TIMEOUT_MS } from './wire.js';

const PID = /^2088[0-9]{12}$/;
const CERT_FIELDS = ['app_cert', 'alipay_cert', 'alipay_root_cert'] as const;

function mode(all: Readonly<Record<string, string>>): string {
  return all['key_mode']?.trim() || 'public_key';
}

/** The public key that goes with the configured private key, when it can be read. */
function appPublicKey(all: Readonly<Record<string, string>>): string | null {
  const priv = readAlipayPrivateKey(all['private_key'] ?? '');
  return priv ? spkiBase64(priv) : null;
}

/**
 * What the settings lack as a whole for their key mode (public_key: Alipay's public key; cert: the three
 * certificates), and whether the SDK can work with them. Checked with app_id, which every configuration has.
 */
function completeness(all: Readonly<Record<string, string>>): string | null {
  const m = mode(all);
  if (m === 'public_key') {
    if (!all['alipay_public_key']?.trim())
      return '公钥模式还需要 alipay_public_key（支付宝公钥） / key_mode public_key also needs alipay_public_key (the Alipay public key)';
    return null;
  }
  if (m !== 'cert') return null; // key_mode's own check names it
  const missing = CERT_FIELDS.filter((f) => !all[f]?.trim());
  if (missing.length)
    return `证书模式还需要 ${missing.join(', ')} / key_mode cert also needs ${missing.join(', ')}`;
  if (!readAlipayPrivateKey(all['private_key'] ?? '')) return null; // private_key's own check names it
  if (CERT_FIELDS.some((f) => readCertificates(all[f] ?? '').length === 0)) return null; // theirs do
  const p = prepareAlipay({ ...all, app_id: all['app_id'] ?? 'x' });
  return p.ok ? null : p.problem;
}

function certCheck(name: string, zh: string): ConfigField['check'] {
  return (v) => {
    const certs = readCertificates(v);
    if (certs.length === 0)
      return `${zh}不是 PEM 证书（-----BEGIN CERTIFICATE-----） / ${name} is not a PEM certificate (-----BEGIN CERTIFICATE-----)`;
    if (name !== 'alipay_root_cert' && certs[0]?.publicKey.asymmetricKeyType !== 'rsa')
      return `${zh}不是 RSA 证书 / ${name} is not an RSA certificate`;
    return null;
  };
}

export const alipayDefinition: ChannelDefinition = {
  id: 'alipay',
  zh: '支付宝',
  payTypes: ['alipay'],
  fields: [
    {
      name: 'app_id',
      scope: 'either',
      secret: false,
      required: true,
      zh: '支付宝开放平台应用 APPID',
      en: "the app's APPID on the Alipay open platform",
      check: (v, all) => {
        if (!/^[0-9]{8,32}$/.test(v.trim()))
          return 'APPID 应为数字（通常 16 位） / APPID is a number (usually 16 digits)';
        return completeness(all);
      },
    },
    {
      name: 'private_key',
      scope: 'either',
      secret: true,
      required: true,
      zh: '应用私钥（PKCS#1 或 PKCS#8，PEM 或纯 Base64）',
      en: 'the app private key (PKCS#1 or PKCS#8, PEM or bare Base64)',
      check: (v, all) => {
        const key = readAlipayPrivateKey(v);
        if (!key)
          return '无法读取应用私钥（需 RSA 私钥，PKCS#1/PKCS#8 PEM 或纯 Base64） / cannot read the app private key (an RSA key, PKCS#1/PKCS#8 PEM or bare Base64)';
        if (mode(all) === 'cert') {
          const cert = readCertificates(all['app_cert'] ?? '')[0];
          if (cert && spkiBase64(cert.publicKey) !== appPublicKey(all))
            return '应用私钥与应用公钥证书 app_cert 不匹配 / the private key does not match the app certificate app_cert';
        }
        return null;
      },
    },
    {
      name: 'sign_type',
      scope: 'either',
      secret: false,
      required: false,
      default: 'RSA2',
      zh: '签名算法：RSA2（SHA256withRSA，推荐）或 RSA（SHA1withRSA，旧应用）',
      en: 'signature algorithm: RSA2 (SHA256withRSA, recommended) or RSA (SHA1withRSA, legacy apps)',
      check: (v) => (v === 'RSA2' || v === 'RSA' ? null : '只能是 RSA2 或 RSA / must be RSA2 or RSA'),
    },
    {
      name: 'key_mode',
      scope: 'either',
      secret: false,
      required: false,
      default: 'public_key',
      zh: '密钥模式：public_key（公钥）或 cert（公钥证书）',
      en: 'key mode: public_key (public keys) or cert (public-key certificates)',
      check: (v) =>
        v === 'public_key' || v === 'cert' ? null : '只能是 public_key 或 cert / must be public_key or cert',
    },
    {
      name: 'alipay_public_key',
      scope: 'either',
      secret: false,
      required: false,
      zh: '支付宝公钥（公钥模式必填；PEM 或纯 Base64）',
      en: 'the Alipay public key (public_key mode; PEM or bare Base64)',
      check: (v, all) => {
        const key = readAlipayPublicKey(v);
        if (!key)
          return '无法读取支付宝公钥（需 RSA 公钥，PEM 或纯 Base64） / cannot read the Alipay public key (an RSA public key, PEM or bare Base64)';
        if (spkiBase64(key) === appPublicKey(all))
          return '这是应用公钥，不是支付宝公钥（在开放平台“接口加签方式”里查看支付宝公钥） / this is the app public key, not the Alipay public key (see “接口加签方式” on the open platform)';
        return null;
      },
    },
    {
      name: 'app_cert',
      scope: 'either',
      secret: false,
      required: false,
      zh: '应用公钥证书 appCertPublicKey_<APPID>.crt（证书模式必填）',
      en: 'the app public-key certificate appCertPublicKey_<APPID>.crt (cert mode)',
      check: certCheck('app_cert', '应用公钥证书'),
    },
    {
      name: 'alipay_cert',
      scope: 'either',
      secret: false,
      required: false,
      zh: '支付宝公钥证书 alipayCertPublicKey_RSA2.crt（证书模式必填）',
      en: 'the Alipay public-key certificate alipayCertPublicKey_RSA2.crt (cert mode)',
      check: certCheck('alipay_cert', '支付宝公钥证书'),
    },
    {
      name: 'alipay_root_cert',
      scope: 'either',
      secret: false,
      required: false,
      zh: '支付宝根证书 alipayRootCert.crt（证书模式必填）',
      en: 'the Alipay root certificate alipayRootCert.crt (cert mode)',
      check: certCheck('alipay_root_cert', '支付宝根证书'),
    },
    {
      name: 'gateway_url',
      scope: 'either',
      secret: false,
      required: false,
      default: ALIPAY_GATEWAY,
      zh: '支付宝网关地址（沙箱：https://openapi-sandbox.dl.alipaydev.com/gateway.do）',
      en: 'the Alipay gateway (sandbox: https://openapi-sandbox.dl.alipaydev.com/gateway.do)',
      check: (v) => gatewayUrlProblem(v),
    },
    {
      name: 'timeout_ms',
      scope: 'either',
      secret: false,
      required: false,
      default: String(DEFAULT_TIMEOUT_MS),
      zh: '每次调用的超时（毫秒）',
      en: 'timeout of each call (ms)',
      check: (v) =>
        /^[0-9]+$/.test(v) && Number(v) >= 100 && Number(v) <= 120_000
          ? null
          : '应为 100–120000 的整数 / must be an integer from 100 to 120000',
    },
    {
      name: 'seller_id',
      secret: false,
      required: false,
      zh: '收款支付宝账号的 PID（2088 开头，可选）',
      en: "the receiving account's PID (2088…, optional)",
      check: (v) =>
        PID.test(v) ? null : '应为 2088 开头的 16 位数字 / must be 16 digits starting with 2088',
    },
    {
      name: 'store_id',
      secret: false,
      required: false,
      zh: '商户门店编号（可选）',
      en: 'store id (optional)',
      check: (v) =>
        /^[A-Za-z0-9_-]{1,32}$/.test(v)
          ? null
          : '最多 32 位字母、数字、_ 或 - / up to 32 letters, digits, _ or -',
    },
    {
      name: 'sys_service_id',
      scope: 'either',
      secret: false,
      required: false,
      zh: '服务商 PID（返佣，extend_params.sys_service_id，可选）',
      en: "the service provider's PID (extend_params.sys_service_id, optional)",
      check: (v) =>
        PID.test(v) ? null : '应为 2088 开头的 16 位数字 / must be 16 digits starting with 2088',
    },
    {
      name: 'app_auth_token',
      secret: true,
      required: false,
      scope: 'app',
      zh: '应用授权令牌 app_auth_token（第三方应用代医院调用：医院授权后 alipay.open.auth.token.app 返回）',
      en: "the app authorisation token (a third-party app calling for the hospital: from alipay.open.auth.token.app after the hospital's authorisation)",
      check: (v, all) => {
        if (!/^[A-Za-z0-9._-]{8,128}$/.test(v.trim()))
          return 'app_auth_token 应为 8–128 位字母、数字、. _ - / app_auth_token is 8–128 letters, digits, . _ -';
        if (!all['auth_app_id']?.trim())
          return "设置 app_auth_token 时还需要 auth_app_id（授权医院的 APPID） / app_auth_token also needs auth_app_id (the authorising hospital's APPID)";
        return null;
      },
    },
    {
      name: 'auth_app_id',
      secret: false,
      required: false,
      scope: 'app',
      zh: '授权方（医院）的 APPID（与 app_auth_token 一同返回；通知里的 auth_app_id）',
      en: "the authorising hospital's APPID (returned with app_auth_token; auth_app_id in notifications)",
      check: (v, all) => {
        if (!/^[0-9]{8,32}$/.test(v.trim()))
          return 'APPID 应为数字（通常 16 位） / APPID is a number (usually 16 digits)';
        if (!all['app_auth_token']?.trim())
          return 'auth_app_id 只用于第三方应用模式，还需要 app_auth_token / auth_app_id is for third-party app mode and needs app_auth_token';
        return null;
      },
    },
  ],
  create: (deps) => new AlipayChannel(deps),
};
