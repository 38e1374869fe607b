/**
 * An app's WeChat Pay configuration (ctx.merchant), read once into key objects and cached by content: keys are
 * parsed once, not on every call (PROTOCOLS.md). Also the checks the definition runs on each field.
 */
import { createHash, createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import tls from 'node:tls';
import { normalSerial, type V2SignType, type VerifierKeys } from './crypto.js';
import { InvalidInputError } from '../../domain/errors.js';

export const DEFAULT_BASE_URL = 'https://api.mch.weixin.qq.com';
/** Where the payer's browser is sent for OAuth2 (网页授权). */
export const DEFAULT_OAUTH_BASE_URL = 'https://open.weixin.qq.com';
/** Where the OAuth2 code is exchanged for the payer's openid. */
export const DEFAULT_SNS_BASE_URL = 'https://api.weixin.qq.com';
export const DEFAULT_TIMEOUT_MS = 10_000;

export type VerifyMode = 'public_key' | 'platform_cert';

/**
 * direct: a 普通商户 (mch_id and app_id are the merchant's own). partner: a sub-merchant (特约商户, sub_mchid) of a
 * service provider (服务商); mch_id and app_id are then the provider's sp_mchid and sp_appid, and every key is
 * the provider's.
 */
export type WechatMode = 'direct' | 'partner';

/** The service-provider side of a partner-mode configuration. */
export interface PartnerIds {
  subMchId: string;
  /** The sub-merchant's own AppID (official account), or null: the provider's sp_appid serves the payer. */
  subAppId: string | null;
}

/**
 * The official account the payer's id (openid) belongs to, and its AppSecret for OAuth2 (snsapi_base): sub_appid
 * (with sub_app_secret) when a partner-mode app has one, else app_id (with app_secret). `secret` null: the
 * configuration cannot ask WeChat who the payer is.
 */
export interface PayerApp {
  appId: string;
  secret: string | null;
  /** Which payer field of a partner order the openid goes in (direct mode: openid). */
  kind: 'openid' | 'sp_openid' | 'sub_openid';
}

export interface PlatformCert {
  serial: string;
  key: KeyObject;
  notBefore: number;
  notAfter: number;
}

export interface ClientTls {
  pfx?: Buffer;
  passphrase?: string;
  cert?: string;
  key?: string;
}

export interface WechatConfig {
  mchId: string;
  appId: string;
  apiV3Key: string;
  apiV2Key: string | null;
  signTypeV2: V2SignType;
  privateKey: KeyObject;
  serialNo: string;
  verifyMode: VerifyMode;
  publicKey: { id: string; key: KeyObject } | null;
  certs: PlatformCert[];
  /** The merchant's TLS client certificate for v2 /secapi/ calls, or null when not configured. */
  clientTls: ClientTls | null;
  baseUrl: string;
  timeoutMs: number;
  mode: WechatMode;
  /** Partner mode only (null in direct mode). */
  partner: PartnerIds | null;
  payerApp: PayerApp;
  /** Which API creates JSAPI orders: v3 (default) or v2 unifiedorder (needs api_v2_key). */
  jsapiApi: 'v3' | 'v2';
  oauthBaseUrl: string;
  snsBaseUrl: string;
}

/** A configuration the adapter cannot use; the message names the field (中文 / English). */
export class WechatConfigError extends InvalidInputError {
  override readonly name = 'WechatConfigError';
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

export function parsePrivateKey(pem: string): KeyObject {
  const key = createPrivateKey({ key: pem, format: 'pem' });
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`not an RSA key (${key.asymmetricKeyType})`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < 2048) throw new Error(`RSA key of ${bits} bits; WeChat Pay uses 2048`);
  return key;
}

export function parsePublicKey(pem: string): KeyObject {
  const key = createPublicKey({ key: pem, format: 'pem' });
  if (key.asymmetricKeyType !== 'rsa') throw new Error(`not an RSA key (${key.asymmetricKeyType})`);
  return key;
}

/** Every certificate of a PEM bundle; throws if there is none or one does not parse. */
export function parseCertBundle(pem: string): PlatformCert[] {
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new Error('no -----BEGIN CERTIFICATE----- block');
  return blocks.map((b) => {
    const c = new X509Certificate(b);
    if (c.publicKey.asymmetricKeyType !== 'rsa') throw new Error('a certificate without an RSA key');
    return {
      serial: normalSerial(c.serialNumber),
      key: c.publicKey,
      notBefore: Date.parse(c.validFrom),
      notAfter: Date.parse(c.validTo),
    };
  });
}

/** The TLS client certificate options from the configuration; throws with the reason when they do not load. */
export function clientTlsOf(m: Readonly<Record<string, string>>): ClientTls | null {
  const p12 = m['client_cert_p12'] ?? '';
  const pem = m['client_cert_pem'] ?? '';
  if (p12 !== '') {
    const pfx = Buffer.from(p12.replace(/\s+/g, ''), 'base64');
    if (pfx.length < 100) throw new Error('not a base64 PKCS#12 file');
    const passphrase = m['client_cert_p12_passphrase'] || (m['mch_id'] ?? '');
    try {
      tls.createSecureContext({ pfx, passphrase });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      if (/unsupported/i.test(why))
        throw new Error(
          `${why}: a legacy (RC2/3DES) PKCS#12 file that OpenSSL 3 does not read; re-export it, or set ` +
            'client_cert_pem (apiclient_cert.pem) instead',
          { cause: e },
        );
      throw new Error(why, { cause: e });
    }
    return { pfx, passphrase };
  }
  if (pem !== '') {
    const key = m['client_key_pem'] || (m['merchant_private_key'] ?? '');
    tls.createSecureContext({ cert: pem, key });
    return { cert: pem, key };
  }
  return null;
}

const cache = new Map<string, WechatConfig>();

function fingerprint(m: Readonly<Record<string, string>>): string {
  const h = createHash('sha256');
  for (const k of Object.keys(m).sort()) h.update(`${k}\u0000${m[k]}\u0000`);
  return h.digest('hex');
}

/** Reads ctx.merchant into a usable configuration (cached). Throws WechatConfigError naming the field. */
export function loadConfig(m: Readonly<Record<string, string>>): WechatConfig {
  const fp = fingerprint(m);
  const hit = cache.get(fp);
  if (hit) return hit;
  const need = (name: string): string => {
    const v = m[name] ?? '';
    if (v === '') throw new WechatConfigError(`${name}: 未设置 / not set`);
    return v;
  };
  const parse = <T>(name: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      throw new WechatConfigError(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const verifyMode: VerifyMode = m['verify_mode'] === 'platform_cert' ? 'platform_cert' : 'public_key';
  const publicKeyPem = m['wechatpay_public_key'] ?? '';
  const publicKey =
    publicKeyPem !== ''
      ? {
          id: need('wechatpay_public_key_id'),
          key: parse('wechatpay_public_key', () => parsePublicKey(publicKeyPem)),
        }
      : null;
  const certsPem = m['platform_certs'] ?? '';
  const certs = certsPem !== '' ? parse('platform_certs', () => parseCertBundle(certsPem)) : [];
  if (verifyMode === 'public_key' && !publicKey) need('wechatpay_public_key');
  if (verifyMode === 'platform_cert' && certs.length === 0) need('platform_certs');
  const timeoutMs = Number(m['timeout_ms'] || DEFAULT_TIMEOUT_MS);
  const mode: WechatMode = m['mode'] === 'partner' ? 'partner' : 'direct';
  const appId = need('app_id');
  const subAppId = m['sub_appid'] || null;
  const partner: PartnerIds | null = mode === 'partner' ? { subMchId: need('sub_mchid'), subAppId } : null;
  const payerApp: PayerApp = partner?.subAppId
    ? { appId: partner.subAppId, secret: m['sub_app_secret'] || null, kind: 'sub_openid' }
    : { appId, secret: m['app_secret'] || null, kind: partner ? 'sp_openid' : 'openid' };
  const jsapiApi = m['jsapi_api'] === 'v2' ? 'v2' : 'v3';
  if (jsapiApi === 'v2' && !m['api_v2_key']) need('api_v2_key');
  const cfg: WechatConfig = {
    mchId: need('mch_id'),
    appId,
    apiV3Key: need('api_v3_key'),
    apiV2Key: m['api_v2_key'] || null,
    signTypeV2: m['sign_type_v2'] === 'MD5' ? 'MD5' : 'HMAC-SHA256',
    privateKey: parse('merchant_private_key', () => parsePrivateKey(need('merchant_private_key'))),
    serialNo: need('merchant_serial_no'),
    verifyMode,
    publicKey,
    certs,
    clientTls: parse('client_cert_p12', () => clientTlsOf(m)),
    baseUrl: (m['api_base_url'] || DEFAULT_BASE_URL).replace(/\/+$/, ''),
    timeoutMs: Number.isInteger(timeoutMs) && timeoutMs > 0 ? timeoutMs : DEFAULT_TIMEOUT_MS,
    mode,
    partner,
    payerApp,
    jsapiApi,
    oauthBaseUrl: (m['oauth_base_url'] || DEFAULT_OAUTH_BASE_URL).replace(/\/+$/, ''),
    snsBaseUrl: (m['sns_base_url'] || DEFAULT_SNS_BASE_URL).replace(/\/+$/, ''),
  };
  if (cache.size >= 64) cache.delete(cache.keys().next().value as string);
  cache.set(fp, cfg);
  return cfg;
}

/**
 * The keys WeChat Pay's answers may be signed with now. Public-key mode: the WeChat Pay public key, plus any
 * platform certificates still configured (WeChat signs with either while a merchant switches over).
 * Platform-certificate mode: the certificates valid at `now` only.
 */
export function verifierKeys(cfg: WechatConfig, now: Date): VerifierKeys {
  const keys = new Map<string, KeyObject>();
  const t = now.getTime();
  for (const c of cfg.certs) if (c.notBefore <= t && t <= c.notAfter) keys.set(c.serial, c.key);
  if (cfg.verifyMode === 'public_key' && cfg.publicKey)
    keys.set(normalSerial(cfg.publicKey.id), cfg.publicKey.key);
  return keys;
}
