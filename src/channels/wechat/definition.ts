import type { ChannelDefinition, ConfigField } from '../definition.js';
import { WechatChannel } from './channel.js';
import { clientTlsOf, parseCertBundle, parsePrivateKey, parsePublicKey } from './config.js';

const why = (e: unknown) => (e instanceof Error ? e.message : String(e)).slice(0, 200);

function pemCheck(parse: (pem: string) => unknown, zh: string, en: string) {
  return (v: string): string | null => {
    try {
      parse(v);
      return null;
    } catch (e) {
      return `${zh}：${why(e)} / ${en}: ${why(e)}`;
    }
  };
}

const oneOf =
  (values: readonly string[]) =>
  (v: string): string | null =>
    values.includes(v) ? null : `只能是 ${values.join(' 或 ')} / must be ${values.join(' or ')}`;

const urlCheck = (v: string): string | null => {
  try {
    const u = new URL(v);
    if ((u.protocol === 'https:' || u.protocol === 'http:') && (u.pathname === '/' || u.pathname === ''))
      return null;
  } catch {
    /* below */
  }
  return '应为 https://主机[:端口]，不带路径 / must be https://host[:port] without a path';
};

const appIdCheck = (v: string): string | null =>
  /^wx[0-9A-Za-z]{16}$/.test(v)
    ? null
    : 'AppID 应为 wx 加 16 位字母数字 / an AppID is wx and 16 letters or digits';

const appSecretCheck = (v: string): string | null =>
  /^[0-9A-Za-z]{32}$/.test(v) ? null : 'AppSecret 应为 32 位字母数字 / an AppSecret is 32 letters or digits';

/** The fields that only a partner-mode (服务商) configuration has. */
const PARTNER_ONLY = ['sub_mchid', 'sub_appid', 'sub_app_secret'] as const;

/**
 * Checks that span fields. `checkChannelConfig` calls a check only for a field that is set, so these hang on
 * mch_id, which is required: the verification keys the mode needs, one client certificate form, and the
 * service-provider fields that go with `mode`.
 */
function crossCheck(all: Readonly<Record<string, string>>): string | null {
  const has = (k: string) => (all[k] ?? '') !== '';
  const partner = all['mode'] === 'partner';
  if (partner && !has('sub_mchid'))
    return '服务商模式（mode=partner）须设置 sub_mchid（特约商户号） / mode partner needs sub_mchid';
  if (partner && all['sub_mchid'] === all['mch_id'])
    return (
      'sub_mchid 是特约商户号，不能与服务商商户号 mch_id 相同 / ' +
      'sub_mchid is the sub-merchant, not the service provider mch_id'
    );
  if (!partner) {
    const stray = PARTNER_ONLY.find(has);
    if (stray) return `${stray} 只用于服务商模式（mode=partner） / ${stray} is for mode partner only`;
  }
  if (has('sub_app_secret') && !has('sub_appid'))
    return 'sub_app_secret 须与 sub_appid 一起设置 / sub_app_secret needs sub_appid';
  if (all['jsapi_api'] === 'v2' && !has('api_v2_key'))
    return 'jsapi_api 为 v2 时须设置 api_v2_key / jsapi_api v2 needs api_v2_key';
  const mode = all['verify_mode'] || 'public_key';
  if (mode === 'public_key' && !(has('wechatpay_public_key') && has('wechatpay_public_key_id')))
    return (
      '验签方式为 public_key 时须设置 wechatpay_public_key 与 wechatpay_public_key_id / ' +
      'verify_mode public_key needs wechatpay_public_key and wechatpay_public_key_id'
    );
  if (mode === 'platform_cert' && !has('platform_certs'))
    return '验签方式为 platform_cert 时须设置 platform_certs / verify_mode platform_cert needs platform_certs';
  if (has('wechatpay_public_key') !== has('wechatpay_public_key_id'))
    return (
      'wechatpay_public_key 与 wechatpay_public_key_id 须同时设置 / ' +
      'wechatpay_public_key and wechatpay_public_key_id go together'
    );
  if (has('client_cert_p12') && has('client_cert_pem'))
    return 'client_cert_p12 与 client_cert_pem 只设其一 / set either client_cert_p12 or client_cert_pem, not both';
  if (has('client_key_pem') && !has('client_cert_pem'))
    return 'client_key_pem 须与 client_cert_pem 一起设置 / client_key_pem needs client_cert_pem';
  return null;
}

export const WECHAT_FIELDS: readonly ConfigField[] = [
  {
    name: 'mch_id',
    secret: false,
    required: true,
    scope: 'either',
    zh: '商户号（商户平台 › 账户中心 › 商户信息）；服务商模式下为服务商商户号 sp_mchid',
    en: 'merchant id (merchant platform › Account › Merchant information); in partner mode the provider sp_mchid',
    check: (v, all) =>
      /^[0-9]{6,32}$/.test(v) ? crossCheck(all) : '商户号应为数字 / the merchant id is digits',
  },
  {
    name: 'app_id',
    secret: false,
    required: true,
    scope: 'either',
    zh: '与商户号绑定的公众号/小程序/移动应用 AppID（wx 开头）；服务商模式下为服务商 AppID sp_appid',
    en: 'the AppID (wx…) of the official account, mini program or app bound to the merchant id; in partner mode the provider sp_appid',
    check: appIdCheck,
  },
  {
    name: 'api_v3_key',
    secret: true,
    required: true,
    scope: 'either',
    zh: 'APIv3 密钥（32 位，商户平台 › API安全 › 设置APIv3密钥），用于解密回调',
    en: 'APIv3 key (32 characters, merchant platform › API security), decrypts notifications',
    check: (v) =>
      /^[0-9A-Za-z]{32}$/.test(v)
        ? null
        : 'APIv3 密钥应为 32 位字母数字 / the APIv3 key is 32 letters or digits',
  },
  {
    name: 'api_v2_key',
    secret: true,
    required: false,
    scope: 'either',
    zh: 'API 密钥（v2，32 位），付款码支付与撤销须设置',
    en: 'API key (v2, 32 characters), needed for payment-code pay and reverse',
    check: (v) =>
      /^[0-9A-Za-z]{32}$/.test(v) ? null : 'API 密钥应为 32 位字母数字 / the API key is 32 letters or digits',
  },
  {
    name: 'merchant_private_key',
    secret: true,
    required: true,
    scope: 'either',
    zh: '商户 API 私钥（apiclient_key.pem，PEM）',
    en: 'merchant API private key (apiclient_key.pem, PEM)',
    check: pemCheck(parsePrivateKey, '私钥无法读取', 'the private key does not load'),
  },
  {
    name: 'merchant_serial_no',
    secret: false,
    required: true,
    scope: 'either',
    zh: '商户 API 证书序列号（API安全 › 管理证书）',
    en: 'serial number of the merchant API certificate (API security › certificates)',
    check: (v) =>
      /^[0-9A-Fa-f]{8,40}$/.test(v) ? null : '证书序列号应为十六进制 / the serial number is hexadecimal',
  },
  {
    name: 'verify_mode',
    secret: false,
    required: false,
    scope: 'either',
    default: 'public_key',
    zh: '验签方式：public_key（微信支付公钥，默认）或 platform_cert（平台证书）',
    en: 'how answers are verified: public_key (WeChat Pay public key, default) or platform_cert',
    check: oneOf(['public_key', 'platform_cert']),
  },
  {
    name: 'wechatpay_public_key',
    secret: false,
    required: false,
    scope: 'either',
    zh: '微信支付公钥（pub_key.pem，API安全 › 微信支付公钥）',
    en: 'WeChat Pay public key (pub_key.pem, API security › WeChat Pay public key)',
    check: pemCheck(parsePublicKey, '公钥无法读取', 'the public key does not load'),
  },
  {
    name: 'wechatpay_public_key_id',
    secret: false,
    required: false,
    scope: 'either',
    zh: '微信支付公钥 ID（PUB_KEY_ID_ 开头）',
    en: 'WeChat Pay public key id (PUB_KEY_ID_…)',
    check: (v) =>
      /^PUB_KEY_ID_[0-9A-Za-z]+$/.test(v)
        ? null
        : '公钥 ID 应以 PUB_KEY_ID_ 开头 / the public key id starts with PUB_KEY_ID_',
  },
  {
    name: 'platform_certs',
    secret: false,
    required: false,
    scope: 'either',
    zh: '微信支付平台证书（PEM，可多张，用于平台证书验签）',
    en: 'WeChat Pay platform certificates (PEM, one or more, for platform_cert mode)',
    check: pemCheck(parseCertBundle, '平台证书无法读取', 'the platform certificates do not load'),
  },
  {
    name: 'client_cert_p12',
    secret: true,
    required: false,
    scope: 'either',
    zh: '商户 API 证书 apiclient_cert.p12（base64），v2 撤销须用',
    en: 'merchant API certificate apiclient_cert.p12 (base64), for the v2 reverse',
    check: (v, all) => {
      try {
        clientTlsOf({ ...all, client_cert_p12: v, client_cert_pem: '' });
        return null;
      } catch (e) {
        return `证书无法读取：${why(e)} / the certificate does not load: ${why(e)}`;
      }
    },
  },
  {
    name: 'client_cert_p12_passphrase',
    secret: true,
    required: false,
    scope: 'either',
    zh: 'apiclient_cert.p12 的密码（默认为商户号）',
    en: 'password of apiclient_cert.p12 (default: the merchant id)',
  },
  {
    name: 'client_cert_pem',
    secret: false,
    required: false,
    scope: 'either',
    zh: '商户 API 证书 apiclient_cert.pem（代替 p12）',
    en: 'merchant API certificate apiclient_cert.pem (instead of the p12)',
    check: (v, all) => {
      try {
        clientTlsOf({ ...all, client_cert_p12: '', client_cert_pem: v });
        return null;
      } catch (e) {
        return `证书与私钥不能配对：${why(e)} / certificate and key do not load together: ${why(e)}`;
      }
    },
  },
  {
    name: 'client_key_pem',
    secret: true,
    required: false,
    scope: 'either',
    zh: 'apiclient_cert.pem 的私钥（默认为商户 API 私钥）',
    en: 'key of apiclient_cert.pem (default: the merchant API private key)',
    check: pemCheck(parsePrivateKey, '私钥无法读取', 'the key does not load'),
  },
  {
    name: 'api_base_url',
    secret: false,
    required: false,
    scope: 'either',
    default: 'https://api.mch.weixin.qq.com',
    zh: '接口地址（默认 https://api.mch.weixin.qq.com）',
    en: 'API address (default https://api.mch.weixin.qq.com)',
    check: urlCheck,
  },
  {
    name: 'timeout_ms',
    secret: false,
    required: false,
    scope: 'either',
    default: '10000',
    zh: '每次调用的超时（毫秒，默认 10000）',
    en: 'timeout of each call (ms, default 10000)',
    check: (v) =>
      /^[0-9]{3,6}$/.test(v) && Number(v) >= 100 && Number(v) <= 120_000
        ? null
        : '应为 100～120000 的整数 / must be a whole number from 100 to 120000',
  },
  {
    name: 'sign_type_v2',
    secret: false,
    required: false,
    scope: 'either',
    default: 'HMAC-SHA256',
    zh: 'v2 签名类型：HMAC-SHA256（默认）或 MD5',
    en: 'v2 sign type: HMAC-SHA256 (default) or MD5',
    check: oneOf(['HMAC-SHA256', 'MD5']),
  },
  // ------------------------------------------------------------ service provider (服务商) mode
  {
    name: 'mode',
    secret: false,
    required: false,
    default: 'direct',
    zh: '接入方式：direct（普通商户，默认）或 partner（服务商模式，本应用为特约商户）',
    en: 'how the app is connected: direct (a merchant of its own, default) or partner (a sub-merchant of a service provider)',
    check: oneOf(['direct', 'partner']),
  },
  {
    name: 'sub_mchid',
    secret: false,
    required: false,
    zh: '特约商户号 sub_mchid（服务商模式必填）',
    en: 'the sub-merchant id sub_mchid (partner mode, required there)',
    check: (v) => (/^[0-9]{6,32}$/.test(v) ? null : '特约商户号应为数字 / the sub-merchant id is digits'),
  },
  {
    name: 'sub_appid',
    secret: false,
    required: false,
    zh: '特约商户自己的公众号 AppID sub_appid（服务商模式，可选；设置后付款人 openid 属于它）',
    en: "the sub-merchant's own official account AppID sub_appid (partner mode, optional; the payer's openid is then its)",
    check: appIdCheck,
  },
  // ------------------------------------------------------------ in-app (JSAPI) and the payer's openid
  {
    name: 'jsapi_api',
    secret: false,
    required: false,
    scope: 'either',
    default: 'v3',
    zh: '公众号支付（JSAPI）下单接口：v3（默认）或 v2 统一下单（须 api_v2_key）',
    en: 'which API creates JSAPI (official account) orders: v3 (default) or the v2 unifiedorder (needs api_v2_key)',
    check: oneOf(['v3', 'v2']),
  },
  {
    name: 'app_secret',
    secret: true,
    required: false,
    scope: 'either',
    zh: 'app_id 对应公众号的 AppSecret（公众平台 › 设置与开发 › 基本配置），用于网页授权获取 openid；不设则不能在公众号内支付',
    en: "AppSecret of app_id's official account (mp.weixin.qq.com › basic configuration), for OAuth2 to learn the payer's openid; without it no in-app pay",
    check: appSecretCheck,
  },
  {
    name: 'sub_app_secret',
    secret: true,
    required: false,
    zh: 'sub_appid 对应公众号的 AppSecret（服务商模式设置 sub_appid 时用于网页授权）',
    en: "AppSecret of sub_appid's official account (partner mode with sub_appid: OAuth2 runs under it)",
    check: appSecretCheck,
  },
  {
    name: 'oauth_base_url',
    secret: false,
    required: false,
    scope: 'either',
    default: 'https://open.weixin.qq.com',
    zh: '网页授权地址（默认 https://open.weixin.qq.com）',
    en: 'OAuth2 authorize address (default https://open.weixin.qq.com)',
    check: urlCheck,
  },
  {
    name: 'sns_base_url',
    secret: false,
    required: false,
    scope: 'either',
    default: 'https://api.weixin.qq.com',
    zh: '网页授权换取 openid 的接口地址（默认 https://api.weixin.qq.com）',
    en: 'OAuth2 code exchange address (default https://api.weixin.qq.com)',
    check: urlCheck,
  },
];

export const wechatDefinition: ChannelDefinition = {
  id: 'wechat',
  zh: '微信支付',
  payTypes: ['weixin'],
  fields: WECHAT_FIELDS,
  create: (deps) => new WechatChannel(deps.http, deps.clock),
};
