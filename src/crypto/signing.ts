import {
  createPrivateKey,
  createPublicKey,
  createSign,
  generateKeyPairSync,
  sign as cryptoSign,
  verify as cryptoVerify,
  type KeyObject,
} from 'node:crypto';

/**
 * The one signing rule of the gateway, used for requests, responses, notifications and return_url redirects
 * (it is Alipay's, so integrators can verify with the tools they already have):
 *
 * - content: every parameter except `sign` (sign_type included); parameters with empty values left out;
 *   keys sorted by ASCII; `key=value` joined with `&`; raw values, not URL-encoded; biz_content as the exact
 *   JSON text sent.
 * - sign_type `RSA2` = SHA256withRSA (default), `RSA` = SHA1withRSA (legacy merchants; 1024-bit keys accepted
 *   for verifying). Case-insensitive. The signature is Base64.
 */
export type SignType = 'RSA' | 'RSA2';

export function parseSignType(text: string | undefined): SignType | null {
  const upper = (text ?? '').toUpperCase();
  return upper === 'RSA' || upper === 'RSA2' ? upper : null;
}

const ALGORITHM: Record<SignType, string> = { RSA: 'RSA-SHA1', RSA2: 'RSA-SHA256' };

export function signingContent(params: Readonly<Record<string, string | undefined | null>>): string {
  return Object.keys(params)
    .filter((k) => k !== 'sign' && params[k] !== undefined && params[k] !== null && params[k] !== '')
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((k) => `${k}=${params[k] ?? ''}`)
    .join('&');
}

/**
 * JSON text that can be signed by the k=v&k=v rule without ever splitting into extra parameters: `&` inside
 * strings is written as the JSON escape \u0026 (the same value to any JSON parser). In JSON text `&` can only
 * occur inside strings, so a plain replacement is exact.
 */
export function splitProofJson(json: string): string {
  return json.replace(/&/g, '\\u0026');
}

/** A parameter key the platform signs: letters, digits and _ only (no `&`, no `=`). */
const SAFE_KEY = /^[A-Za-z0-9_]{1,64}$/;

/**
 * Why a parameter set must not be signed by the platform, or null when it may: a key outside [A-Za-z0-9_], or a
 * value containing `&`. The content joins `k=v` with `&`, so a value with `&` could be re-read as more
 * parameters: an attacker who gets `x&method=lc.trade.notify&…&~=` into a signed value could present the
 * signature as one over a notification. (`=` in a value is harmless: only a piece's first `=` ends its key.)
 */
export function unsignableReason(params: Readonly<Record<string, string | undefined | null>>): string | null {
  for (const [k, v] of Object.entries(params)) {
    if (k === 'sign') continue;
    if (!SAFE_KEY.test(k)) return `key ${JSON.stringify(k.slice(0, 64))} is not [A-Za-z0-9_]`;
    if (typeof v === 'string' && v.includes('&')) return `the value of ${k} holds &`;
  }
  return null;
}

/**
 * Signs a parameter set the platform produces (answers, notifications, return redirects). Refuses (rejects) a
 * set that could be re-split into other parameters; callers make values split-proof first (splitProofJson for
 * JSON, format checks for everything else).
 */
export function signPlatformParamsAsync(
  params: Readonly<Record<string, string | undefined | null>>,
  key: KeyObject,
  type: SignType,
): Promise<string> {
  const why = unsignableReason(params);
  if (why) return Promise.reject(new Error(`refusing to sign: ${why}`));
  return signContentAsync(signingContent(params), key, type);
}

export function signContent(content: string, key: KeyObject, type: SignType): string {
  return createSign(ALGORITHM[type]).update(content, 'utf8').sign(key, 'base64');
}

/**
 * The signature's bytes if it is canonical Base64 (standard alphabet, padded, unused bits zero: the one spelling
 * a signer produces), else null. Node's decoder is lenient; without this, several spellings of one signature
 * would all be accepted.
 */
function signatureBytes(signature: string): Buffer | null {
  if (signature.length > 2048 || signature.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(signature))
    return null;
  const bytes = Buffer.from(signature, 'base64');
  return bytes.toString('base64') === signature ? bytes : null;
}

/**
 * Verifies on the calling thread: an RSA verification costs some 0.03 ms of CPU, less than handing it to the thread
 * pool and back (verifyContentAsync), which the gateway therefore does not use.
 */
export function verifyContent(content: string, signature: string, key: KeyObject, type: SignType): boolean {
  const bytes = signatureBytes(signature);
  if (!bytes) return false;
  try {
    return cryptoVerify(DIGEST[type], Buffer.from(content, 'utf8'), key, bytes);
  } catch {
    return false;
  }
}

const DIGEST: Record<SignType, string> = { RSA: 'sha1', RSA2: 'sha256' };

/**
 * The same signature as signContent, computed on libuv's thread pool (crypto.sign with a callback), so an
 * RSA-2048 signature (about a millisecond of CPU) does not hold up the event loop.
 */
export function signContentAsync(content: string, key: KeyObject, type: SignType): Promise<string> {
  return new Promise((resolve, reject) => {
    cryptoSign(DIGEST[type], Buffer.from(content, 'utf8'), key, (err, sig) => {
      if (err) reject(err);
      else resolve(sig.toString('base64'));
    });
  });
}

/** verifyContent on the thread pool. */
export function verifyContentAsync(
  content: string,
  signature: string,
  key: KeyObject,
  type: SignType,
): Promise<boolean> {
  const bytes = signatureBytes(signature);
  if (!bytes) return Promise.resolve(false);
  return new Promise((resolve) => {
    try {
      cryptoVerify(DIGEST[type], Buffer.from(content, 'utf8'), key, bytes, (err, ok) => resolve(!err && ok));
    } catch {
      resolve(false);
    }
  });
}

export function signParamsAsync(
  params: Readonly<Record<string, string | undefined | null>>,
  key: KeyObject,
  type: SignType,
): Promise<string> {
  return signContentAsync(signingContent(params), key, type);
}

export async function verifyParamsAsync(
  params: Readonly<Record<string, string | undefined | null>>,
  key: KeyObject,
  type: SignType,
): Promise<boolean> {
  const sig = params['sign'];
  return typeof sig === 'string' && (await verifyContentAsync(signingContent(params), sig, key, type));
}

export function signParams(
  params: Readonly<Record<string, string | undefined | null>>,
  key: KeyObject,
  type: SignType,
): string {
  return signContent(signingContent(params), key, type);
}

export function verifyParams(
  params: Readonly<Record<string, string | undefined | null>>,
  key: KeyObject,
  type: SignType,
): boolean {
  const sig = params['sign'];
  return typeof sig === 'string' && verifyContent(signingContent(params), sig, key, type);
}

/**
 * Reads a public key as integrators hand it over: PEM ("-----BEGIN PUBLIC KEY-----"), or the bare Base64 of the
 * DER (what Alipay's key tool prints). Returns null when it is not an RSA public key of at least 1024 bits.
 */
export function readPublicKey(text: string): KeyObject | null {
  const t = text.trim();
  // Node derives a public key from a private one; a private key handed over by mistake is refused, not used.
  if (isPrivateKeyText(t)) return null;
  try {
    const key = t.startsWith('-----')
      ? createPublicKey(t)
      : createPublicKey({ key: Buffer.from(t.replace(/\s+/g, ''), 'base64'), format: 'der', type: 'spki' });
    if (key.asymmetricKeyType !== 'rsa') return null;
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    return bits >= 1024 ? key : null;
  } catch {
    return null;
  }
}

/**
 * Whether the text is a private key (PEM of any kind, or the bare Base64 of a PKCS#8 or PKCS#1 DER): what an
 * integrator must never send, and what is refused with its own message where a public key is asked for.
 */
export function isPrivateKeyText(text: string): boolean {
  const t = text.trim();
  if (t.startsWith('-----')) return /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(t);
  const der = Buffer.from(t.replace(/\s+/g, ''), 'base64');
  for (const type of ['pkcs8', 'pkcs1'] as const) {
    try {
      createPrivateKey({ key: der, format: 'der', type });
      return true;
    } catch {
      // not this kind
    }
  }
  return false;
}

export function readPrivateKey(text: string): KeyObject | null {
  const t = text.trim();
  try {
    const key = t.startsWith('-----')
      ? createPrivateKey(t)
      : createPrivateKey({ key: Buffer.from(t.replace(/\s+/g, ''), 'base64'), format: 'der', type: 'pkcs8' });
    return key.asymmetricKeyType === 'rsa' ? key : null;
  } catch {
    return null;
  }
}

export function newRsaKeyPair(bits = 2048): { privatePem: string; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** The bare Base64 of a public key's DER (SPKI), the form Alipay's tools show. */
export function publicKeyBase64(key: KeyObject): string {
  return key.export({ type: 'spki', format: 'der' }).toString('base64');
}
