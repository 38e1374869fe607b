/**
 * Alipay's keys and certificates: an app's settings checked and turned into a ready instance of the official SDK
 * (alipay-sdk), which signs our requests (RSA2 / RSA with the app's private key), computes the certificate serial
 * numbers (certificate mode), and verifies the answers' and the notifications' signatures with Alipay's public
 * key or public-key certificate.
 */
import { createHash, createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { AlipaySdk, type AlipaySdkConfig } from 'alipay-sdk';
import { formatShanghai } from '../../domain/clock.js';
import { ALIPAY_GATEWAY, DEFAULT_TIMEOUT_MS, isRecord } from './wire.js';

export type AlipaySignType = 'RSA2' | 'RSA';
export type AlipayKeyMode = 'public_key' | 'cert';

// ---------------------------------------------------------------------------------------------------------
// Keys and certificates as integrators hand them over
// ---------------------------------------------------------------------------------------------------------

function rsaOnly(key: KeyObject): KeyObject | null {
  if (key.asymmetricKeyType !== 'rsa') return null;
  return (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 1024 ? key : null;
}

/**
 * The app's private key as integrators hand it over: PEM (PKCS#1 "RSA PRIVATE KEY" or PKCS#8 "PRIVATE KEY"),
 * or the bare Base64 of either DER (what Alipay's key tool writes). Null when it is not an RSA key of at
 * least 1024 bits.
 */
export function readAlipayPrivateKey(text: string): KeyObject | null {
  const t = text.trim();
  if (t === '') return null;
  if (t.startsWith('-----')) {
    try {
      return rsaOnly(createPrivateKey(t));
    } catch {
      return null;
    }
  }
  if (!/^[A-Za-z0-9+/=\s]+$/.test(t)) return null;
  const der = Buffer.from(t.replace(/\s+/g, ''), 'base64');
  for (const type of ['pkcs8', 'pkcs1'] as const) {
    try {
      return rsaOnly(createPrivateKey({ key: der, format: 'der', type }));
    } catch {
      // try the other encoding
    }
  }
  return null;
}

/**
 * Alipay's public key (public-key mode): PEM ("PUBLIC KEY" or "RSA PUBLIC KEY") or the bare Base64 the open
 * platform shows. A private key or a certificate is refused (createPublicKey would quietly take either).
 */
export function readAlipayPublicKey(text: string): KeyObject | null {
  const t = text.trim();
  if (t === '' || /PRIVATE KEY|CERTIFICATE/.test(t)) return null;
  if (t.startsWith('-----')) {
    try {
      return rsaOnly(createPublicKey(t));
    } catch {
      return null;
    }
  }
  if (!/^[A-Za-z0-9+/=\s]+$/.test(t)) return null;
  const der = Buffer.from(t.replace(/\s+/g, ''), 'base64');
  for (const type of ['spki', 'pkcs1'] as const) {
    try {
      return rsaOnly(createPublicKey({ key: der, format: 'der', type }));
    } catch {
      // try the other encoding
    }
  }
  return null;
}

/** Every certificate in a PEM text (Alipay's root certificate file holds several). */
export function readCertificates(text: string): X509Certificate[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const out: X509Certificate[] = [];
  for (const b of blocks) {
    try {
      out.push(new X509Certificate(b));
    } catch {
      return [];
    }
  }
  return out;
}

/** The bare Base64 of the public key's DER (SPKI); a private key gives its public half. */
export function spkiBase64(key: KeyObject): string {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return pub.export({ type: 'spki', format: 'der' }).toString('base64');
}

// ---------------------------------------------------------------------------------------------------------
// Configuration: an app's settings, checked and turned into an SDK instance (cached per distinct settings)
// ---------------------------------------------------------------------------------------------------------

export interface AlipaySettings {
  appId: string;
  signType: AlipaySignType;
  keyMode: AlipayKeyMode;
  gatewayUrl: string;
  timeoutMs: number;
  sellerId?: string | undefined;
  storeId?: string | undefined;
  sysServiceId?: string | undefined;
  /**
   * Third-party app (ISV) mode: the hospital's authorisation token, sent as the public parameter app_auth_token
   * with every request (a secret: never recorded, never logged), and the hospital's APPID its notifications name
   * as auth_app_id. Both absent in direct mode.
   */
  appAuthToken?: string | undefined;
  authAppId?: string | undefined;
}

export interface PreparedAlipay {
  settings: AlipaySettings;
  sdk: AlipaySdk;
  /** Certificate mode: the serial numbers the SDK computed (md5 of issuer + serial, Alipay's rule). */
  appCertSn?: string | undefined;
  alipayCertSn?: string | undefined;
  alipayRootCertSn?: string | undefined;
}

export type Prepared = { ok: true; value: PreparedAlipay } | { ok: false; problem: string };

const val = (m: Readonly<Record<string, string>>, k: string): string | undefined => {
  const v = m[k]?.trim();
  return v === undefined || v === '' ? undefined : v;
};

/** Is this a gateway URL we may talk to: https, or http on the loopback interface (tests, local fakes). */
export function gatewayUrlProblem(text: string): string | null {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return '不是有效的网址 / not a valid URL';
  }
  if (u.protocol === 'https:') return null;
  if (u.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) return null;
  return '必须是 https 网址 / must be an https URL';
}

/**
 * Turns an app's settings (ctx.merchant: decrypted, defaults filled in) into a ready SDK. Returns what is
 * wrong instead when the settings cannot work.
 */
export function prepareAlipay(merchant: Readonly<Record<string, string>>): Prepared {
  const fail = (problem: string): Prepared => ({ ok: false, problem });
  const appId = val(merchant, 'app_id');
  if (!appId) return fail('app_id 未设置 / app_id is not set');
  const signType = val(merchant, 'sign_type') ?? 'RSA2';
  if (signType !== 'RSA2' && signType !== 'RSA')
    return fail('sign_type 只能是 RSA2 或 RSA / must be RSA2 or RSA');
  const keyMode = val(merchant, 'key_mode') ?? 'public_key';
  if (keyMode !== 'public_key' && keyMode !== 'cert')
    return fail('key_mode 只能是 public_key 或 cert / must be public_key or cert');
  const gatewayUrl = val(merchant, 'gateway_url') ?? ALIPAY_GATEWAY;
  const urlProblem = gatewayUrlProblem(gatewayUrl);
  if (urlProblem) return fail(`gateway_url: ${urlProblem}`);
  if (val(merchant, 'app_auth_token') && !val(merchant, 'auth_app_id'))
    return fail('app_auth_token 需要 auth_app_id / app_auth_token needs auth_app_id');
  const timeoutText = val(merchant, 'timeout_ms') ?? String(DEFAULT_TIMEOUT_MS);
  const timeoutMs = Number(timeoutText);
  if (!/^[0-9]+$/.test(timeoutText) || timeoutMs < 100 || timeoutMs > 120_000)
    return fail('timeout_ms 应为 100–120000 的整数 / timeout_ms must be an integer from 100 to 120000');

  const privateKey = readAlipayPrivateKey(merchant['private_key'] ?? '');
  if (!privateKey) return fail('private_key 无法读取 / private_key cannot be read');
  const config: AlipaySdkConfig = {
    appId,
    // Handed over as the bare Base64 of PKCS#8, whatever form it was given in: the SDK wraps it itself.
    privateKey: privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64'),
    keyType: 'PKCS8',
    signType,
    gateway: gatewayUrl,
    timeout: timeoutMs,
    camelcase: false,
  };
  if (keyMode === 'public_key') {
    const pub = readAlipayPublicKey(merchant['alipay_public_key'] ?? '');
    if (!pub)
      return fail('alipay_public_key 未设置或无法读取 / alipay_public_key is missing or cannot be read');
    config.alipayPublicKey = spkiBase64(pub);
  } else {
    for (const name of ['app_cert', 'alipay_cert', 'alipay_root_cert'] as const) {
      if (readCertificates(merchant[name] ?? '').length === 0)
        return fail(`证书模式需要 ${name}（PEM 证书） / cert mode needs ${name} (a PEM certificate)`);
    }
    config.appCertContent = merchant['app_cert'] ?? '';
    config.alipayPublicCertContent = merchant['alipay_cert'] ?? '';
    config.alipayRootCertContent = merchant['alipay_root_cert'] ?? '';
  }
  let sdk: AlipaySdk;
  try {
    sdk = new AlipaySdk(config);
  } catch (e) {
    return fail(
      `支付宝 SDK 无法使用这些密钥或证书 / the Alipay SDK cannot use these keys or certificates (${
        e instanceof Error ? e.message.slice(0, 120) : 'error'
      })`,
    );
  }
  const c = sdk.config as Partial<
    Record<'appCertSn' | 'alipayCertSn' | 'alipayRootCertSn' | 'alipayPublicKey', string>
  >;
  if (!c.alipayPublicKey)
    return fail('没有支付宝公钥，无法验签 / no Alipay public key to verify answers with');
  if (keyMode === 'cert' && (!c.appCertSn || !c.alipayRootCertSn))
    return fail(
      '无法从证书计算 app_cert_sn 和 alipay_root_cert_sn（根证书里需要 RSA 证书） / cannot compute app_cert_sn and alipay_root_cert_sn (the root file needs an RSA-signed certificate)',
    );
  return {
    ok: true,
    value: {
      settings: {
        appId,
        signType,
        keyMode,
        gatewayUrl,
        timeoutMs,
        sellerId: val(merchant, 'seller_id'),
        storeId: val(merchant, 'store_id'),
        sysServiceId: val(merchant, 'sys_service_id'),
        appAuthToken: val(merchant, 'app_auth_token'),
        authAppId: val(merchant, 'auth_app_id'),
      },
      sdk,
      appCertSn: keyMode === 'cert' ? c.appCertSn : undefined,
      alipayCertSn: keyMode === 'cert' ? c.alipayCertSn : undefined,
      alipayRootCertSn: keyMode === 'cert' ? c.alipayRootCertSn : undefined,
    },
  };
}

const prepared = new Map<string, Prepared>();

/** prepareAlipay, cached by the settings' digest (keys are parsed once, not on every call). */
export function preparedFor(merchant: Readonly<Record<string, string>>): Prepared {
  const digest = createHash('sha256')
    .update(JSON.stringify(Object.entries(merchant).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))))
    .digest('base64');
  const hit = prepared.get(digest);
  if (hit) return hit;
  const p = prepareAlipay(merchant);
  if (prepared.size >= 64) prepared.delete(prepared.keys().next().value as string);
  prepared.set(digest, p);
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// Signing and verifying
// ---------------------------------------------------------------------------------------------------------

/**
 * Every parameter of a request, signed by the SDK (method, app_id, charset utf-8, version 1.0, sign_type,
 * timestamp in Beijing time, the certificate serial numbers in cert mode, app_auth_token in third-party app
 * mode, biz_content as the exact JSON sent, and sign). `extra` are further public parameters (notify_url,
 * return_url). The result holds the token: it is sent, never recorded.
 */
export function signedRequestParams(
  p: PreparedAlipay,
  method: string,
  biz: object,
  extra: Readonly<Record<string, string>>,
  now: Date,
): Record<string, string> {
  const query = p.sdk.sdkExecute(
    method,
    {
      ...extra,
      ...(p.settings.appAuthToken ? { app_auth_token: p.settings.appAuthToken } : {}),
      timestamp: formatShanghai(now),
      bizContent: biz,
    },
    { bizContentAutoSnakeCase: false },
  );
  return Object.fromEntries(new URLSearchParams(query));
}

export type VerifiedAnswer =
  { ok: true; data: Record<string, unknown> } | { ok: false; reason: string; code?: string | undefined };

/**
 * Reads a gateway answer: `{"<method>_response": {...}, "sign": "..."}`. The signature covers the response
 * object's raw text exactly as received (the SDK cuts it out and verifies it); only that verified text is
 * read, and it must say the same as the parsed whole. Anything else is not an answer.
 */
export function verifyAnswer(p: PreparedAlipay, method: string, text: string): VerifiedAnswer {
  const key = `${method.replaceAll('.', '_')}_response`;
  let whole: unknown;
  try {
    whole = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'unparseable answer' };
  }
  if (!isRecord(whole)) return { ok: false, reason: 'answer is not a JSON object' };
  const body = whole[key];
  if (!isRecord(body)) {
    const err = whole['error_response'];
    if (isRecord(err))
      return {
        ok: false,
        reason:
          `unverified error_response ${String(err['code'] ?? '')} ${String(err['sub_code'] ?? '')}`.trim(),
      };
    return { ok: false, reason: `answer without ${key}` };
  }
  const sign = whole['sign'];
  if (typeof sign !== 'string' || sign === '') return { ok: false, reason: 'unsigned answer' };
  let signed: string;
  try {
    signed = p.sdk.getSignStr(text, key);
    p.sdk.checkResponseSign(text, key, sign, '');
  } catch {
    const sn = whole['alipay_cert_sn'];
    const rotated =
      p.alipayCertSn && typeof sn === 'string' && sn !== '' && sn !== p.alipayCertSn
        ? ` (answer signed with Alipay certificate ${sn}, configured ${p.alipayCertSn}: download Alipay's new public-key certificate and set alipay_cert)`
        : '';
    return { ok: false, reason: `bad signature${rotated}` };
  }
  let data: unknown;
  try {
    data = JSON.parse(signed);
  } catch {
    return { ok: false, reason: 'signed text is not JSON' };
  }
  if (!isRecord(data) || JSON.stringify(data) !== JSON.stringify(body))
    return { ok: false, reason: 'signed text differs from the answer' };
  return { ok: true, data };
}

/**
 * A notification's signature, by Alipay's rule: values as received (already form-decoded), never decoded
 * again; the SDK tries the rule without sign_type (Alipay's notify rule) and with it.
 */
export function notifySignatureValid(p: PreparedAlipay, params: Readonly<Record<string, string>>): boolean {
  try {
    return p.sdk.checkNotifySignV2(params);
  } catch {
    return false;
  }
}
