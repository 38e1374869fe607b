/**
 * The configured merchant's keys at work: config.ts reads them once, crypto.ts holds WeChat Pay's rules, and
 * these apply the one to the other for a call — sign a v3 request now, verify a v3 answer or notification now,
 * sign and verify v2 parameters.
 */
import { createSign } from 'node:crypto';
import { nonceStr, v2Sign, v2Verify, v3Authorization, verifyV3 } from './crypto.js';
import { verifierKeys, type WechatConfig } from './config.js';

const seconds = (d: Date): number => Math.floor(d.getTime() / 1000);

/** The v3 Authorization header for one request: `urlPath` and `body` exactly as sent. */
export function authorization(
  cfg: WechatConfig,
  method: string,
  urlPath: string,
  body: string,
  now: Date,
): string {
  return v3Authorization({
    mchId: cfg.mchId,
    serialNo: cfg.serialNo,
    privateKey: cfg.privateKey,
    method,
    urlPath,
    body,
    timestamp: String(seconds(now)),
    nonce: nonceStr(),
  });
}

/** Null when a v3 answer or notification is WeChat Pay's own, signed with a key valid now; else why not. */
export function verifyAnswer(
  cfg: WechatConfig,
  headers: Readonly<Record<string, string>>,
  body: Buffer,
  now: Date,
): string | null {
  return verifyV3(verifierKeys(cfg, now), headers, body, seconds(now));
}

/** The v2 parameters with their `sign` added last. */
export function signV2(
  cfg: WechatConfig,
  apiV2Key: string,
  params: Record<string, string>,
): Record<string, string> {
  return { ...params, sign: v2Sign(params, apiV2Key, cfg.signTypeV2) };
}

/** Whether a v2 answer's `sign` is right. */
export function verifyV2(
  cfg: WechatConfig,
  apiV2Key: string,
  fields: Readonly<Record<string, string>>,
): boolean {
  return v2Verify(fields, apiV2Key, cfg.signTypeV2);
}

/**
 * The getBrandWCPayRequest parameters for a prepay_id (JSAPI), signed for the app as WeChat Pay documents it.
 * v3: signType RSA, paySign = Base64 SHA256withRSA (merchant private key) over `appId\ntimeStamp\nnonceStr\npackage\n`.
 * v2: signType MD5 or HMAC-SHA256 (sign_type_v2), paySign = the v2 sign over exactly appId, nonceStr, package,
 * signType and timeStamp with the API v2 key.
 */
export function bridgeParams(
  cfg: WechatConfig,
  api: 'v3' | { v2Key: string },
  appId: string,
  prepayId: string,
  now: Date,
  nonce: string = nonceStr(),
): Record<string, string> {
  const timeStamp = String(seconds(now));
  const pkg = `prepay_id=${prepayId}`;
  if (api === 'v3') {
    const paySign = createSign('RSA-SHA256')
      .update(`${appId}\n${timeStamp}\n${nonce}\n${pkg}\n`)
      .sign(cfg.privateKey, 'base64');
    return { appId, timeStamp, nonceStr: nonce, package: pkg, signType: 'RSA', paySign };
  }
  const params = { appId, nonceStr: nonce, package: pkg, signType: cfg.signTypeV2, timeStamp };
  return { ...params, paySign: v2Sign(params, api.v2Key, cfg.signTypeV2) };
}
