/**
 * The national medical-insurance mobile-payment centre's message envelope (医保移动支付中心 接口规范, 安全规范):
 *
 *   { appId, encData, encType: "SM4", signData, signType: "SM2", timestamp, version }
 *
 * - encData: upper-case hex of SM4-ECB/PKCS#7 over the UTF-8 JSON of the business data. The SM4 key is derived
 *   from the app's credentials: the first 16 characters of the upper-case hex of SM4-ECB(appSecret) under the key
 *   "first 16 characters of appId" (`derived`, the national SDK's rule). Some provincial gateways document the
 *   first 16 characters of appSecret as the key itself (`secret16`).
 * - signData: Base64 of the raw 64-byte r‖s of SM3withSM2 (user id 1234567812345678 unless the region says
 *   otherwise) over the sign text: every top-level field except signData, encData and extra, with `data` (the
 *   business data as JSON with sorted keys and empty members removed), sorted by name, joined `k=v&…`, then
 *   `&key=<appSecret>`.
 *
 * An answer is read only after its signature verifies with the platform's public key; its numbers are kept as
 * their exact text (amounts never become floats).
 */
import { isLosslessNumber, parse as parseLossless } from 'lossless-json';
import { sm2, sm3, sm4 } from 'sm-crypto-v2';
import { parseZeroPaddedYuan, type Fen } from '../../domain/money.js';

export type Sm4KeyMode = 'derived' | 'secret16';

/** The decrypted and checked credentials of one app. Never log it. */
export interface NhsaKeys {
  appId: string;
  appSecret: string;
  /** 64 hex characters. */
  orgPrivateKeyHex: string;
  /** 130 hex characters, 04‖X‖Y (derived from the private key). */
  orgPublicKeyHex: string;
  /** 130 hex characters, 04‖X‖Y. */
  platformPublicKeyHex: string;
  sm2UserId: string;
  sm4Key: Uint8Array;
  version: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Primitives

const HEX = /^[0-9a-fA-F]+$/;
const B64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** The order n of the SM2 recommended curve. */
const SM2_N = BigInt('0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123');

const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));

/** SM3 digest (hex) of a UTF-8 text or bytes. */
export function sm3Hex(input: string | Uint8Array): string {
  return sm3(typeof input === 'string' ? bytes(input) : input);
}

/** SM4-ECB of exactly the given bytes (no padding), hex; for known-answer tests. */
export function sm4EcbBlockHex(plainHex: string, keyHex: string): string {
  return sm4.encrypt(
    new Uint8Array(Buffer.from(plainHex, 'hex')),
    new Uint8Array(Buffer.from(keyHex, 'hex')),
    {
      mode: 'ecb',
      padding: 'none',
    },
  );
}

/** SM4-ECB/PKCS#7 of a UTF-8 text, as upper-case hex. */
export function sm4EncryptHex(plain: string, key: Uint8Array): string {
  return sm4.encrypt(bytes(plain), key, { mode: 'ecb', padding: 'pkcs#7' }).toUpperCase();
}

/** Reverses sm4EncryptHex (either case of hex); throws on anything that is not a whole, well-padded message. */
export function sm4DecryptHex(hex: string, key: Uint8Array): string {
  if (hex.length === 0 || hex.length % 32 !== 0 || !HEX.test(hex))
    throw new Error('encData is not SM4 blocks');
  const out = sm4.decrypt(new Uint8Array(Buffer.from(hex, 'hex')), key, {
    mode: 'ecb',
    padding: 'pkcs#7',
    output: 'array',
  });
  // A wrong key or tampered blocks almost always fails the padding check inside decrypt; a text that is not
  // UTF-8 fails here.
  return new TextDecoder('utf-8', { fatal: true }).decode(out);
}

/** The envelope's SM4 key (16 bytes) for an app. */
export function deriveSm4Key(appId: string, appSecret: string, mode: Sm4KeyMode = 'derived'): Uint8Array {
  if (mode === 'secret16') {
    if (appSecret.length < 16) throw new Error('appSecret shorter than 16 characters');
    return bytes(appSecret.slice(0, 16));
  }
  if (appId.length < 16) throw new Error('appId shorter than 16 characters');
  const outer = sm4EncryptHex(appSecret, bytes(appId.slice(0, 16)));
  return bytes(outer.slice(0, 16));
}

/** SM3withSM2 signature, as Base64 of the raw 64-byte r‖s. */
export function sm2SignBase64(
  text: string,
  privateKeyHex: string,
  publicKeyHex: string,
  userId: string,
): string {
  const rs = sm2.doSignature(bytes(text), privateKeyHex, {
    hash: true,
    der: false,
    publicKey: publicKeyHex,
    userId,
  });
  return Buffer.from(rs.padStart(128, '0'), 'hex').toString('base64');
}

/** The 128-hex r‖s of a signature given as Base64 of r‖s (64 bytes) or of DER; null if it is neither. */
function signatureRs(signData: string): string | null {
  if (!B64.test(signData)) return null;
  const raw = Buffer.from(signData, 'base64');
  if (raw.length === 64) return raw.toString('hex');
  // DER: SEQUENCE { INTEGER r, INTEGER s }
  if (raw.length < 8 || raw[0] !== 0x30 || raw[1] !== raw.length - 2) return null;
  const ints: string[] = [];
  let i = 2;
  for (let k = 0; k < 2; k++) {
    if (raw[i] !== 0x02) return null;
    const len = raw[i + 1] ?? 0;
    const v = raw.subarray(i + 2, i + 2 + len);
    if (len === 0 || len > 33 || v.length !== len) return null;
    ints.push(
      v
        .toString('hex')
        .replace(/^(00)+/, '')
        .padStart(64, '0'),
    );
    i += 2 + len;
  }
  if (i !== raw.length || ints.some((h) => h.length !== 64)) return null;
  return ints.join('');
}

/** Verifies SM3withSM2; false (never an exception) for anything malformed. */
export function sm2VerifyBase64(
  text: string,
  signData: string,
  publicKeyHex: string,
  userId: string,
): boolean {
  const rs = signatureRs(signData);
  if (!rs) return false;
  try {
    return sm2.doVerifySignature(bytes(text), rs, publicKeyHex, { hash: true, der: false, userId });
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Keys as the regions hand them out: hex, or Base64 (raw, or DER SubjectPublicKeyInfo / PKCS#8 / SEC1)

/** A private key given as 64 hex characters or Base64 (raw 32 bytes, PKCS#8 or SEC1 DER): 64 lower-case hex. */
export function parsePrivateKey(text: string): string {
  const v = text.trim();
  let hex: string | null = null;
  if (HEX.test(v) && v.length === 64) hex = v.toLowerCase();
  else if (B64.test(v)) {
    const raw = Buffer.from(v, 'base64');
    if (raw.length === 32) hex = raw.toString('hex');
    else {
      // ECPrivateKey ::= SEQUENCE { version INTEGER 1, privateKey OCTET STRING (32), ... }
      const at = raw.indexOf(Buffer.from([0x02, 0x01, 0x01, 0x04, 0x20]));
      if (at >= 0 && raw.length >= at + 5 + 32) hex = raw.subarray(at + 5, at + 5 + 32).toString('hex');
    }
  }
  if (!hex)
    throw new Error(
      '不是 SM2 私钥（64 位十六进制或 Base64） / not an SM2 private key (64 hex characters or Base64)',
    );
  const d = BigInt(`0x${hex}`);
  if (d <= 0n || d >= SM2_N - 1n) throw new Error('SM2 私钥超出范围 / the SM2 private key is out of range');
  return hex;
}

/** A public key given as hex (04‖X‖Y or X‖Y) or Base64 (raw point or DER SubjectPublicKeyInfo). */
export function parsePublicKey(text: string): string {
  const v = text.trim();
  let hex: string | null = null;
  if (HEX.test(v) && v.length === 130 && v.startsWith('04')) hex = v;
  else if (HEX.test(v) && v.length === 128) hex = `04${v}`;
  else if (B64.test(v)) {
    const raw = Buffer.from(v, 'base64');
    if (raw.length === 65 && raw[0] === 0x04) hex = raw.toString('hex');
    else if (raw.length === 64) hex = `04${raw.toString('hex')}`;
    else if (
      raw.length > 65 &&
      raw[0] === 0x30 &&
      raw[raw.length - 65] === 0x04 &&
      raw[raw.length - 66] === 0x00
    )
      hex = raw.subarray(raw.length - 65).toString('hex'); // SPKI: BIT STRING 00 ‖ 04‖X‖Y at the end
  }
  if (!hex)
    throw new Error(
      '不是 SM2 公钥（04 开头 130 位十六进制或 Base64） / not an SM2 public key (04… 130 hex or Base64)',
    );
  hex = hex.toLowerCase();
  let ok: boolean;
  try {
    ok = sm2.verifyPublicKey(hex);
  } catch {
    ok = false;
  }
  if (!ok) throw new Error('SM2 公钥不在曲线上 / the SM2 public key is not on the curve');
  return hex;
}

const derivedPublic = new Map<string, string>();

/** The public key of a private key (kept: deriving it is an elliptic-curve multiplication). */
export function publicKeyOf(privateKeyHex: string): string {
  const key = sm3Hex(privateKeyHex);
  let pub = derivedPublic.get(key);
  if (!pub) {
    pub = sm2.getPublicKeyFromPrivateKey(privateKeyHex);
    if (derivedPublic.size > 256) derivedPublic.clear();
    derivedPublic.set(key, pub);
  }
  return pub;
}

// ---------------------------------------------------------------------------------------------------------------
// Canonical JSON and the sign text

/** A value's text as signed: strings as they are, exact numbers as written, booleans as true/false. */
export function scalarText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isLosslessNumber(v)) return v.toString();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return undefined;
}

/** Drops null, undefined and '' members, and objects or arrays left empty; keeps everything else. */
function clean(v: unknown): unknown {
  if (v === null || v === undefined || v === '') return undefined;
  if (Array.isArray(v)) {
    const items = v.map(clean).filter((x) => x !== undefined);
    return items.length ? items : undefined;
  }
  if (typeof v === 'object' && !isLosslessNumber(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
      const c = clean(x);
      if (c !== undefined) out[k] = c;
    }
    return Object.keys(out).length ? out : undefined;
  }
  return v;
}

function stringifySorted(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stringifySorted).join(',')}]`;
  if (typeof v === 'object' && v !== null && !isLosslessNumber(v)) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stringifySorted(o[k])}`)
      .join(',')}}`;
  }
  if (typeof v === 'string') return JSON.stringify(v);
  const t = scalarText(v);
  if (t === undefined) throw new Error('a value that JSON cannot carry');
  return t;
}

/** JSON with keys sorted at every level and empty members removed ('' for nothing left). */
export function canonicalJson(value: unknown): string {
  const c = clean(value);
  return c === undefined ? '' : stringifySorted(c);
}

/** The text that is signed for an envelope (its `data` given as the business object). */
export function signText(fields: Readonly<Record<string, unknown>>, appSecret: string): string {
  const parts: string[] = [];
  for (const k of Object.keys(fields).sort()) {
    if (k === 'signData' || k === 'encData' || k === 'extra') continue;
    const v = fields[k];
    const text =
      typeof v === 'object' && v !== null && !isLosslessNumber(v) ? canonicalJson(v) : scalarText(v);
    if (text === undefined || text === '') continue;
    parts.push(`${k}=${text}`);
  }
  return `${parts.join('&')}&key=${appSecret}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Requests and answers

export interface SealedRequest {
  /** The JSON body to POST. */
  body: string;
  /** The envelope without its business data, for the call record. */
  outer: Record<string, string>;
}

/** Encrypts and signs business data for the centre. */
export function sealRequest(
  keys: NhsaKeys,
  data: Readonly<Record<string, unknown>>,
  timestamp: string,
): SealedRequest {
  const plain = canonicalJson(data);
  const head = { appId: keys.appId, encType: 'SM4', signType: 'SM2', timestamp, version: keys.version };
  const text = signText({ ...head, data: plain }, keys.appSecret);
  const signData = sm2SignBase64(text, keys.orgPrivateKeyHex, keys.orgPublicKeyHex, keys.sm2UserId);
  const encData = sm4EncryptHex(plain === '' ? '{}' : plain, keys.sm4Key);
  const outer = { ...head, encData, signData };
  return { body: JSON.stringify(outer), outer };
}

export type OpenedAnswer =
  /** Signed by the platform: `fields` are the top-level fields (numbers as exact text), `data` the business data. */
  | { ok: true; fields: Record<string, unknown>; data: Record<string, unknown> }
  | { ok: false; reason: string; fields?: Record<string, unknown> };

function parseJsonObject(text: string): Record<string, unknown> | null {
  let v: unknown;
  try {
    v = parseLossless(text);
  } catch {
    return null;
  }
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !isLosslessNumber(v)
    ? (v as Record<string, unknown>)
    : null;
}

/**
 * Reads an answer of the centre. Nothing in it is used unless the platform's signature over all its fields and
 * its (decrypted) data verifies: an unsigned, wrongly signed, undecryptable or unparseable answer is `ok: false`.
 */
export function openAnswer(keys: NhsaKeys, body: string): OpenedAnswer {
  const fields = parseJsonObject(body);
  if (!fields) return { ok: false, reason: 'answer is not a JSON object' };
  const signData = scalarText(fields['signData']);
  if (!signData) return { ok: false, reason: 'answer is not signed', fields };
  const signType = scalarText(fields['signType']);
  if (signType !== undefined && signType.toUpperCase() !== 'SM2')
    return { ok: false, reason: `unexpected signType ${signType.slice(0, 20)}`, fields };
  const appId = scalarText(fields['appId']);
  if (appId !== undefined && appId !== keys.appId)
    return { ok: false, reason: 'answer is for another appId', fields };
  let data: Record<string, unknown> = {};
  const enc = fields['encData'];
  if (enc !== undefined && enc !== null && enc !== '') {
    const encType = scalarText(fields['encType']);
    if (encType !== undefined && encType.toUpperCase() !== 'SM4')
      return { ok: false, reason: `unexpected encType ${encType.slice(0, 20)}`, fields };
    if (typeof enc !== 'string') return { ok: false, reason: 'encData is not text', fields };
    let plain: string;
    try {
      plain = sm4DecryptHex(enc, keys.sm4Key);
    } catch {
      return { ok: false, reason: 'encData does not decrypt', fields };
    }
    const d = parseJsonObject(plain);
    if (!d) return { ok: false, reason: 'encData is not a JSON object', fields };
    data = d;
    if (fields['data'] !== undefined)
      return { ok: false, reason: 'answer has both encData and data', fields };
  } else if (typeof fields['data'] === 'object' && fields['data'] !== null) {
    const d = fields['data'];
    if (Array.isArray(d) || isLosslessNumber(d))
      return { ok: false, reason: 'data is not an object', fields };
    data = d as Record<string, unknown>;
  }
  const { data: _plainData, ...rest } = fields;
  const text = signText({ ...rest, data }, keys.appSecret);
  if (!sm2VerifyBase64(text, signData, keys.platformPublicKeyHex, keys.sm2UserId))
    return { ok: false, reason: 'signature does not verify', fields };
  return { ok: true, fields, data };
}

// ---------------------------------------------------------------------------------------------------------------
// Amounts

/**
 * Fen from a yuan amount as the centre writes it ("60", "60.5", "60.00", 60.00 kept exact), a JSON string or
 * number kept as text, surrounding spaces ignored (parseZeroPaddedYuan). Null for anything else (negative,
 * exponent, more than two significant decimals).
 */
export function yuanTextToFen(v: unknown): Fen | null {
  const t = scalarText(v);
  return t === undefined ? null : parseZeroPaddedYuan(t.trim());
}
