import crypto, { X509Certificate } from 'node:crypto';
import type { ChannelDefinition, ConfigField } from '../definition.js';
import { UnionPayChannel } from './channel.js';
import { UNIONPAY_DEFAULTS } from './keys.js';

/**
 * UnionPay QuickPass (云闪付) through UnionPay's online gateway (全渠道 acp 5.1.0, RSA certificates).
 * The merchant signing key and certificate are given as PEM (converted once from UnionPay's .pfx with
 * `openssl pkcs12`): node:crypto reads no PKCS#12, and the runtime depends on no CLI. See
 * docs/channels/unionpay.md.
 */

function readCert(pem: string): X509Certificate | null {
  try {
    return new X509Certificate(pem);
  } catch {
    return null;
  }
}

function checkCa(pem: string): string | null {
  const c = readCert(pem);
  if (!c) return '不是 PEM 格式的 X.509 证书 / not a PEM X.509 certificate';
  if (!c.ca) return '不是 CA 证书 / not a CA certificate';
  return null;
}

/** An https URL (plain http only to this machine, for tests). */
function checkHttpsUrl(v: string): string | null {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return '不是网址 / not a URL';
  }
  const local = u.hostname === '127.0.0.1' || u.hostname === 'localhost';
  if (u.protocol !== 'https:' && !(local && u.protocol === 'http:')) return '须为 https 网址 / must be https';
  return null;
}

const fields: readonly ConfigField[] = [
  {
    name: 'mer_id',
    secret: false,
    required: true,
    zh: '银联商户号（15 位数字）',
    en: 'UnionPay merchant id (15 digits)',
    check: (v) => (/^\d{15}$/.test(v) ? null : '须为 15 位数字 / must be 15 digits'),
  },
  {
    name: 'sign_key_pem',
    secret: true,
    required: true,
    zh: '商户签名私钥（PEM，由签名证书 .pfx 转出）',
    en: 'merchant signing private key (PEM, taken out of the signing .pfx)',
    check: (v, all) => {
      if (/ENCRYPTED/.test(v))
        return '私钥已加密，请用 openssl pkcs12 -nodes 导出 / the key is encrypted: export it with openssl pkcs12 -nodes';
      let key: crypto.KeyObject;
      try {
        key = crypto.createPrivateKey(v);
      } catch {
        return '不是可读的 PEM 私钥 / not a readable PEM private key';
      }
      if (key.asymmetricKeyType !== 'rsa') return '须为 RSA 私钥 / must be an RSA key';
      const cert = readCert(all['sign_cert_pem'] ?? '');
      if (cert) {
        const mine = crypto.createPublicKey(key).export({ type: 'spki', format: 'der' });
        if (!mine.equals(cert.publicKey.export({ type: 'spki', format: 'der' })))
          return '私钥与签名证书不匹配 / the key does not match sign_cert_pem';
      }
      return null;
    },
  },
  {
    name: 'sign_cert_pem',
    secret: false,
    required: true,
    zh: '商户签名证书（PEM，certId 取其序列号）',
    en: 'merchant signing certificate (PEM; certId is its serial number)',
    check: (v) => (readCert(v) ? null : '不是 PEM 格式的 X.509 证书 / not a PEM X.509 certificate'),
  },
  {
    name: 'root_cert',
    secret: false,
    required: true,
    zh: '银联验签根证书（PEM，acp_prod_root.cer）',
    en: "UnionPay's verify root certificate (PEM, acp_prod_root.cer)",
    check: checkCa,
  },
  {
    name: 'middle_cert',
    secret: false,
    required: true,
    zh: '银联验签中级证书（PEM，acp_prod_middle.cer）',
    en: "UnionPay's verify middle certificate (PEM, acp_prod_middle.cer)",
    check: (v, all) => {
      const why = checkCa(v);
      if (why) return why;
      const root = readCert(all['root_cert'] ?? '');
      const middle = readCert(v);
      if (root && middle && !(middle.checkIssued(root) && middle.verify(root.publicKey)))
        return '中级证书不是由根证书签发 / middle_cert is not issued by root_cert';
      return null;
    },
  },
  {
    name: 'expected_cn',
    secret: false,
    required: false,
    default: UNIONPAY_DEFAULTS.expected_cn,
    zh: '验签证书所有者（CN 第三段；测试环境为 00040000:SIGN）',
    en: "the verify certificate's owner (third part of its CN; 00040000:SIGN in the test environment)",
    check: (v) => (v.trim() !== '' && !v.includes('@') ? null : '不能为空或含 @ / must be non-empty, no @'),
  },
  {
    name: 'gateway_url',
    secret: false,
    required: false,
    default: UNIONPAY_DEFAULTS.gateway_url,
    zh: '银联网关地址（测试环境 https://gateway.test.95516.com）',
    en: 'UnionPay gateway (test environment: https://gateway.test.95516.com)',
    check: (v) => checkHttpsUrl(v),
  },
  {
    name: 'file_url',
    secret: false,
    required: false,
    default: UNIONPAY_DEFAULTS.file_url,
    zh: '对账文件下载地址（测试环境 https://filedownload.test.95516.com/）',
    en: 'reconciliation file download address (test environment: https://filedownload.test.95516.com/)',
    check: (v) => checkHttpsUrl(v),
  },
  {
    name: 'timeout_ms',
    secret: false,
    required: false,
    default: UNIONPAY_DEFAULTS.timeout_ms,
    zh: '每次调用的超时（毫秒）',
    en: 'timeout of each call (ms)',
    check: (v) =>
      /^\d+$/.test(v) && Number(v) >= 100 && Number(v) <= 60_000
        ? null
        : '须为 100 到 60000 的整数 / must be an integer from 100 to 60000',
  },
  {
    name: 'access_type',
    secret: false,
    required: false,
    default: UNIONPAY_DEFAULTS.access_type,
    zh: '接入类型：0 商户直连，1 收单机构接入',
    en: 'access type: 0 merchant direct, 1 through an acquirer',
    check: (v, all) => {
      if (v !== '0' && v !== '1') return '须为 0 或 1 / must be 0 or 1';
      if (v === '1' && !(all['acq_ins_code'] ?? ''))
        return '收单机构接入须设置 acq_ins_code / access type 1 needs acq_ins_code';
      return null;
    },
  },
  {
    name: 'acq_ins_code',
    secret: false,
    required: false,
    zh: '收单机构代码（接入类型 1 时必填）',
    en: 'acquirer institution code (required with access type 1)',
    check: (v) =>
      /^[A-Za-z0-9]{8,11}$/.test(v) ? null : '须为 8–11 位字母或数字 / must be 8–11 letters or digits',
  },
  {
    name: 'term_id',
    secret: false,
    required: false,
    zh: '默认终端号（8 位；收银终端号不是 8 位时使用）',
    en: "default terminal id (8 characters; used when the cashier's terminal id is not 8 characters)",
    check: (v) => (/^[A-Za-z0-9]{8}$/.test(v) ? null : '须为 8 位字母或数字 / must be 8 letters or digits'),
  },
  {
    name: 'lookback_days',
    secret: false,
    required: false,
    default: UNIONPAY_DEFAULTS.lookback_days,
    zh: '退款时向前查找原交易的天数',
    en: 'how many days back a refund looks for the original payment',
    check: (v) =>
      /^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= 400
        ? null
        : '须为 1 到 400 的整数 / must be an integer from 1 to 400',
  },
];

export const unionpayDefinition: ChannelDefinition = {
  id: 'unionpay',
  zh: '银联云闪付',
  payTypes: ['unionpay'],
  fields,
  create: (deps) => new UnionPayChannel(deps),
};
