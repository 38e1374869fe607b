/**
 * WeChat Pay's signing and encryption rules, with node:crypto only (see docs/channels/wechat.md for why no SDK).
 *
 * v3 (JSON):
 *  - request: `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"`,
 *    signature = Base64(SHA256withRSA(merchant private key, `METHOD\nURL\nTIMESTAMP\nNONCE\nBODY\n`)), where URL is the
 *    path with its query string exactly as sent and BODY the exact JSON text sent (empty for GET);
 *  - responses and notifications: Base64 SHA256withRSA over `TIMESTAMP\nNONCE\nBODY\n` from the headers
 *    Wechatpay-Timestamp / -Nonce / -Signature, with the key named by Wechatpay-Serial: the "WeChat Pay public key"
 *    (serial `PUB_KEY_ID_…`) or a platform certificate (its serial number, hex);
 *  - notification resources: AEAD_AES_256_GCM, key = the 32-byte APIv3 key, IV = `nonce`, AAD = `associated_data`,
 *    ciphertext = Base64(encrypted ‖ 16-byte tag).
 * v2 (XML, payment-code "micropay" and reverse):
 *  - sign = upper-case hex of MD5(`k=v&…&key=APIKEY`) or HMAC-SHA256(APIKEY, `k=v&…&key=APIKEY`) over every
 *    non-empty parameter except `sign`, keys sorted by ASCII.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createSign,
  createVerify,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { XMLParser, XMLValidator } from 'fast-xml-parser';

export const V3_SCHEMA = 'WECHATPAY2-SHA256-RSA2048';
/** Responses and notifications older (or newer) than this are refused. */
export const MAX_SKEW_SECONDS = 300;

/** A random string for nonce_str / nonce: 32 upper-case hex characters. */
export function nonceStr(): string {
  return randomBytes(16).toString('hex').toUpperCase();
}

/** The v3 request signing message. */
export function v3RequestMessage(
  method: string,
  urlPath: string,
  timestamp: string,
  nonce: string,
  body: string,
): string {
  return `${method}\n${urlPath}\n${timestamp}\n${nonce}\n${body}\n`;
}

export interface V3AuthInput {
  mchId: string;
  serialNo: string;
  privateKey: KeyObject;
  method: string;
  /** Path and query as sent, e.g. `/v3/pay/transactions/out-trade-no/MZ1?mchid=1900000001`. */
  urlPath: string;
  body: string;
  timestamp: string;
  nonce: string;
}

/** The v3 Authorization header value. */
export function v3Authorization(a: V3AuthInput): string {
  const signature = createSign('RSA-SHA256')
    .update(v3RequestMessage(a.method, a.urlPath, a.timestamp, a.nonce, a.body))
    .sign(a.privateKey, 'base64');
  return (
    `${V3_SCHEMA} mchid="${a.mchId}",nonce_str="${a.nonce}",signature="${signature}",` +
    `timestamp="${a.timestamp}",serial_no="${a.serialNo}"`
  );
}

/** Normalises a certificate or key serial for comparison: upper case, hex leading zeros dropped. */
export function normalSerial(serial: string): string {
  const s = serial.trim().toUpperCase();
  return /^[0-9A-F]+$/.test(s) ? s.replace(/^0+(?=.)/, '') : s;
}

/** The keys that may have signed WeChat Pay's answers, by normalised serial. */
export type VerifierKeys = ReadonlyMap<string, KeyObject>;

/**
 * Verifies a v3 response or notification: the four Wechatpay-* headers, a known serial, a fresh timestamp and the
 * signature over the exact body. Returns null when genuine, else the reason. `headers` keys may be in any case.
 */
export function verifyV3(
  keys: VerifierKeys,
  headers: Readonly<Record<string, string>>,
  body: Buffer | string,
  nowSeconds: number,
): string | null {
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) h[k.toLowerCase()] = v;
  const timestamp = h['wechatpay-timestamp'];
  const nonce = h['wechatpay-nonce'];
  const signature = h['wechatpay-signature'];
  const serial = h['wechatpay-serial'];
  const type = h['wechatpay-signature-type'];
  if (!timestamp || !nonce || !signature || !serial) return 'no Wechatpay-Timestamp/Nonce/Signature/Serial';
  if (type !== undefined && type !== V3_SCHEMA) return `unsupported signature type ${type.slice(0, 40)}`;
  if (!/^[0-9]{1,12}$/.test(timestamp)) return 'Wechatpay-Timestamp is not a number';
  if (Math.abs(nowSeconds - Number(timestamp)) > MAX_SKEW_SECONDS)
    return `stale timestamp (${nowSeconds - Number(timestamp)} s off)`;
  const key = keys.get(normalSerial(serial));
  if (!key) return `unknown Wechatpay-Serial ${serial.slice(0, 64)}`;
  const text = typeof body === 'string' ? body : body.toString('utf8');
  let ok: boolean;
  try {
    ok = createVerify('RSA-SHA256')
      .update(`${timestamp}\n${nonce}\n${text}\n`)
      .verify(key, Buffer.from(signature, 'base64'));
  } catch {
    ok = false;
  }
  return ok ? null : 'signature does not verify';
}

export interface EncryptedResource {
  algorithm?: string;
  ciphertext: string;
  nonce: string;
  associated_data?: string;
}

/** Decrypts a notification resource (AEAD_AES_256_GCM). Throws when the key, tag or data are wrong. */
export function decryptResource(apiV3Key: string, r: EncryptedResource): Buffer {
  if (r.algorithm !== undefined && r.algorithm !== 'AEAD_AES_256_GCM')
    throw new Error(`unsupported algorithm ${r.algorithm}`);
  const key = Buffer.from(apiV3Key, 'utf8');
  if (key.length !== 32) throw new Error('the APIv3 key is not 32 bytes');
  const data = Buffer.from(r.ciphertext, 'base64');
  if (data.length < 17) throw new Error('ciphertext too short');
  const d = createDecipheriv('aes-256-gcm', key, Buffer.from(r.nonce, 'utf8'));
  d.setAuthTag(data.subarray(data.length - 16));
  d.setAAD(Buffer.from(r.associated_data ?? '', 'utf8'));
  return Buffer.concat([d.update(data.subarray(0, data.length - 16)), d.final()]);
}

/** Encrypts like WeChat Pay does (for tests and the fake provider). */
export function encryptResource(apiV3Key: string, plaintext: string, nonce: string, aad: string): string {
  const c = createCipheriv('aes-256-gcm', Buffer.from(apiV3Key, 'utf8'), Buffer.from(nonce, 'utf8'));
  c.setAAD(Buffer.from(aad, 'utf8'));
  const enc = Buffer.concat([c.update(plaintext, 'utf8'), c.final()]);
  return Buffer.concat([enc, c.getAuthTag()]).toString('base64');
}

export type V2SignType = 'MD5' | 'HMAC-SHA256';

/** The v2 signing string: non-empty parameters except `sign`, sorted by key, `k=v&…&key=APIKEY`. */
export function v2SignString(params: Readonly<Record<string, string>>, apiKey: string): string {
  const parts = Object.keys(params)
    .filter((k) => k !== 'sign' && (params[k] ?? '') !== '')
    .sort()
    .map((k) => `${k}=${params[k]}`);
  return `${parts.join('&')}&key=${apiKey}`;
}

/** The v2 sign: upper-case hex MD5 or HMAC-SHA256. */
export function v2Sign(params: Readonly<Record<string, string>>, apiKey: string, type: V2SignType): string {
  const s = v2SignString(params, apiKey);
  const hex =
    type === 'MD5'
      ? createHash('md5').update(s, 'utf8').digest('hex')
      : createHmac('sha256', apiKey).update(s, 'utf8').digest('hex');
  return hex.toUpperCase();
}

/** Checks a v2 answer's `sign` (constant-time compare of the hex). */
export function v2Verify(
  params: Readonly<Record<string, string>>,
  apiKey: string,
  type: V2SignType,
): boolean {
  const given = params['sign'];
  if (!given || !/^[0-9A-Fa-f]+$/.test(given)) return false;
  const want = v2Sign(params, apiKey, type);
  if (given.length !== want.length) return false;
  let diff = 0;
  for (let i = 0; i < want.length; i++) diff |= want.charCodeAt(i) ^ given.toUpperCase().charCodeAt(i);
  return diff === 0;
}

const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** `<xml><k>v</k>…</xml>` with the values escaped, in the order given. */
export function buildV2Xml(params: Readonly<Record<string, string>>): string {
  return `<xml>${Object.entries(params)
    .map(([k, v]) => `<${k}>${escapeXml(v)}</${k}>`)
    .join('')}</xml>`;
}

const v2Parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false, // "0.10" and "00123" stay strings
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true, // predefined entities only; any DOCTYPE is refused before parsing
  htmlEntities: false,
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: 4,
});

/**
 * Parses a v2 answer `<xml>…</xml>` into its fields. Throws on anything else: DOCTYPE or entity declarations,
 * malformed XML, another root, repeated or nested fields.
 */
export function parseV2Xml(text: string): Record<string, string> {
  if (/<!DOCTYPE|<!ENTITY/i.test(text)) throw new Error('DOCTYPE or ENTITY in the answer');
  const valid = XMLValidator.validate(text);
  if (valid !== true) throw new Error(`malformed XML: ${valid.err.msg}`);
  const doc = v2Parser.parse(text) as unknown;
  if (typeof doc !== 'object' || doc === null) throw new Error('no <xml> root');
  const roots = Object.keys(doc);
  const xml = (doc as Record<string, unknown>)['xml'];
  if (roots.length !== 1 || typeof xml !== 'object' || xml === null || Array.isArray(xml))
    throw new Error('no <xml> root');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(xml)) {
    if (typeof v === 'string') out[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else if (v === '' || v === undefined || v === null) out[k] = '';
    else throw new Error(`field ${k} is repeated or nested`);
  }
  return out;
}
