import crypto, { X509Certificate, type KeyObject } from 'node:crypto';

/**
 * UnionPay online gateway ("全渠道", acp) protocol pieces, version 5.1.0 with signMethod 01 (RSA):
 *  - the signed text is every field except `signature`, sorted by name, joined as `k=v` with `&`, raw values;
 *  - signature = Base64( SHA256withRSA( UTF-8 bytes of the lower-case hex SHA-256 of that text ) );
 *  - requests carry certId, the merchant signing certificate's serial number in decimal;
 *  - answers and notices carry signPubKeyCert (PEM), which must chain to UnionPay's root and middle
 *    certificates and name UnionPay (the third '@'-part of its CN) before its key is trusted.
 * Pure functions: no I/O, no clock (the time is passed in).
 */

export const ACP_VERSION = '5.1.0';
export const SIGN_METHOD_RSA = '01';

/** The text that is signed: every field but `signature`, sorted by name, `k=v` joined with `&`. */
export function signingText(fields: Readonly<Record<string, string>>): string {
  return Object.keys(fields)
    .filter((k) => k !== 'signature')
    .sort()
    .map((k) => `${k}=${fields[k] ?? ''}`)
    .join('&');
}

function digestHex(fields: Readonly<Record<string, string>>): Buffer {
  return Buffer.from(crypto.createHash('sha256').update(signingText(fields), 'utf8').digest('hex'), 'utf8');
}

/** The signature (Base64) of `fields` with the merchant's private key. */
export function signFields(fields: Readonly<Record<string, string>>, key: KeyObject): string {
  return crypto.sign('sha256', digestHex(fields), key).toString('base64');
}

/** Whether `fields.signature` is a valid signature of the other fields under `key`. Never throws. */
export function verifyFields(fields: Readonly<Record<string, string>>, key: KeyObject): boolean {
  const sig = fields['signature'];
  if (!sig || !/^[A-Za-z0-9+/]+={0,2}$/.test(sig)) return false;
  try {
    return crypto.verify('sha256', digestHex(fields), key, Buffer.from(sig, 'base64'));
  } catch {
    return false;
  }
}

/** certId: the certificate's serial number as a decimal string. */
export function certIdOf(cert: X509Certificate): string {
  return BigInt(`0x${cert.serialNumber}`).toString(10);
}

/** The CN of a certificate's subject, or null. */
export function commonName(cert: X509Certificate): string | null {
  const lines = cert.subject.split('\n').filter((l) => l.startsWith('CN='));
  const last = lines[lines.length - 1];
  return last === undefined ? null : last.slice(3);
}

/**
 * The owner UnionPay's SDKs compare with 中国银联股份有限公司 (production) or 00040000:SIGN (test
 * environment): the third '@'-separated part of the CN, e.g. `041@Z12@中国银联股份有限公司@00000001`.
 */
export function cnIdentity(cert: X509Certificate): string | null {
  const cn = commonName(cert);
  if (cn === null) return null;
  const parts = cn.split('@');
  return parts.length > 2 ? (parts[2] ?? null) : null;
}

/** Form encoding of a request body (UTF-8, every value percent-encoded). */
export function encodeForm(fields: Readonly<Record<string, string>>): string {
  return Object.entries(fields)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
}

/**
 * Reads a synchronous answer: `k=v&k=v` with raw (not percent-encoded) values, where a value may hold
 * `&` inside `{…}` or `[…]` (UnionPay's own parsers work the same way). Returns null for anything that is
 * not such a text: empty, a key without `=`, a repeated or empty key, an unclosed bracket.
 */
export function parseAnswer(text: string): Record<string, string> | null {
  if (text.length === 0 || text.length > 1_000_000) return null;
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) return null;
    const key = text.slice(i, eq);
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(key) || key in out) return null;
    let j = eq + 1;
    let close: string | null = null;
    while (j < text.length) {
      const c = text[j];
      if (close !== null) {
        if (c === close) close = null;
      } else if (c === '{') close = '}';
      else if (c === '[') close = ']';
      else if (c === '&') break;
      j++;
    }
    if (close !== null) return null;
    out[key] = text.slice(eq + 1, j);
    i = j + 1;
  }
  return Object.keys(out).length > 0 ? { ...out } : null;
}

/** Reads a notice (form-encoded POST body). Null if malformed or a field repeats. */
export function parseForm(text: string): Record<string, string> | null {
  if (text.length === 0 || text.length > 1_000_000 || !text.includes('=')) return null;
  const out: Record<string, string> = {};
  let params: URLSearchParams;
  try {
    params = new URLSearchParams(text);
  } catch {
    return null;
  }
  for (const [k, v] of params) {
    if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(k) || Object.hasOwn(out, k)) return null;
    out[k] = v;
  }
  return Object.keys(out).length > 0 ? out : null;
}

/** UnionPay's verify chain, as configured per app. */
export interface VerifyChain {
  root: X509Certificate;
  middle: X509Certificate;
  /** The owner the signing certificate must name (third '@'-part of its CN). */
  expectedCn: string;
}

function within(cert: X509Certificate, now: Date): boolean {
  const from = new Date(cert.validFrom).getTime();
  const to = new Date(cert.validTo).getTime();
  return Number.isFinite(from) && Number.isFinite(to) && from <= now.getTime() && now.getTime() <= to;
}

function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return issuer.ca && cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * Checks a signPubKeyCert: readable, valid now, issued by the middle certificate that the root issued (or by
 * the root itself), naming the expected owner. Returns its public key, or why it is not to be trusted.
 */
export function checkSigningCert(
  pem: string,
  chain: VerifyChain,
  now: Date,
): { ok: true; key: KeyObject } | { ok: false; reason: string } {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    return { ok: false, reason: 'signPubKeyCert unreadable' };
  }
  if (!within(cert, now)) return { ok: false, reason: 'signPubKeyCert not valid now' };
  const viaMiddle =
    issuedBy(cert, chain.middle) && issuedBy(chain.middle, chain.root) && within(chain.middle, now);
  if (!viaMiddle && !issuedBy(cert, chain.root))
    return { ok: false, reason: 'signPubKeyCert does not chain to the configured root' };
  const owner = cnIdentity(cert);
  if (owner !== chain.expectedCn)
    return { ok: false, reason: `signPubKeyCert owner is not ${chain.expectedCn}` };
  return { ok: true, key: cert.publicKey };
}

/**
 * UnionPay order ids are 8–40 letters and digits; ours are up to 64 of letters, digits, `_` and `-`. An order
 * number that fits is used as it is; any other key becomes `H` + 31 hex digits of its SHA-256 (refunds and
 * cancels always do, so they can never meet a trade's own number).
 */
export function orderIdFor(key: string, natural = false): string {
  if (natural && /^[A-Za-z0-9]{8,40}$/.test(key)) return key;
  return `H${crypto.createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 31)}`;
}

export const consumeOrderId = (outTradeNo: string) => orderIdFor(outTradeNo, true);
export const cancelOrderId = (outTradeNo: string) => orderIdFor(`cancel\u0000${outTradeNo}`);
export const refundOrderId = (outTradeNo: string, outRequestNo: string) =>
  orderIdFor(`refund\u0000${outTradeNo}\u0000${outRequestNo}`);

const BEIJING_MS = 8 * 3_600_000;
const p2 = (n: number) => n.toString().padStart(2, '0');

/**
 * txnTime of a stored instant: that second in Beijing, `yyyyMMddHHmmss` (milliseconds dropped). Orders are sent
 * with the time the platform stored for them (a trade's or a refund's created_at), so a later call finds the
 * same order with one exact query (see docs/channels/unionpay.md).
 */
export function exactTxnTime(at: Date): string {
  const d = new Date(at.getTime() + BEIJING_MS);
  return (
    `${d.getUTCFullYear()}${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}` +
    `${p2(d.getUTCHours())}${p2(d.getUTCMinutes())}${p2(d.getUTCSeconds())}`
  );
}

/**
 * txnTime of an order sent on the Beijing day `daysBack` days before `now`: that day at 00:00:00. The earlier
 * convention (no stored time given): such an order is found again by its order id and the day it was sent.
 */
export function dayTxnTime(now: Date, daysBack = 0): string {
  const d = new Date(now.getTime() + BEIJING_MS - daysBack * 86_400_000);
  return `${d.getUTCFullYear()}${p2(d.getUTCMonth() + 1)}${p2(d.getUTCDate())}000000`;
}

/** How many Beijing days `later` is after `earlier` (0 on the same day; negative if it is before). */
export function beijingDaysBetween(earlier: Date, later: Date): number {
  const day = (d: Date) => Math.floor((d.getTime() + BEIJING_MS) / 86_400_000);
  return day(later) - day(earlier);
}

/**
 * When a trade was settled, from an answer's traceTime (MMDDhhmmss, Beijing) and txnTime (its year);
 * `fallback` when absent or unreadable.
 */
export function tradeTime(fields: Readonly<Record<string, string>>, fallback: Date): Date {
  const trace = fields['traceTime'] ?? '';
  const txn = fields['txnTime'] ?? '';
  const m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)$/.exec(trace);
  const y = /^(\d{4})(\d\d)/.exec(txn);
  if (!m || !y) return fallback;
  const [, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number];
  let year = Number(y[1]);
  if (mo < Number(y[2])) year += 1;
  const t = Date.UTC(year, mo - 1, d, h, mi, s) - 8 * 3_600_000;
  return Number.isFinite(t) && mo >= 1 && mo <= 12 ? new Date(t) : fallback;
}

/** A card number shown as 621626******0018; anything else shown as ***. */
export function maskAccount(acc: string): string {
  return /^\d{12,19}$/.test(acc) ? `${acc.slice(0, 6)}${'*'.repeat(acc.length - 10)}${acc.slice(-4)}` : '***';
}

/** A field set as kept in a call record: no signature or certificate, no payment code, card numbers masked. */
export function redactFields(fields: Readonly<Record<string, string>>): string {
  return Object.keys(fields)
    .sort()
    .filter((k) => k !== 'signature' && k !== 'signPubKeyCert')
    .map((k) => {
      const v = fields[k] ?? '';
      if (k === 'qrNo' || k === 'customerInfo' || k === 'cardTransData' || k === 'payerInfo')
        return `${k}=***`;
      if (k === 'accNo' || k === 'payCardNo') return `${k}=${maskAccount(v)}`;
      return `${k}=${v}`;
    })
    .join('&');
}
