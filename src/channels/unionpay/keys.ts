import crypto, { X509Certificate, type KeyObject } from 'node:crypto';
import { ACP_VERSION, SIGN_METHOD_RSA, type AnswerFields, type Merchant } from './wire.js';

/**
 * UnionPay's keys and certificates (acp 5.1.0, signMethod 01 = RSA):
 *  - the signed text is every field except `signature`, sorted by name, joined as `k=v` with `&`, raw values;
 *  - signature = Base64( SHA256withRSA( UTF-8 bytes of the lower-case hex SHA-256 of that text ) );
 *  - requests carry certId, the merchant signing certificate's serial number in decimal;
 *  - answers and notices carry signPubKeyCert (PEM), which must chain to UnionPay's root and middle
 *    certificates and name UnionPay (the third '@'-part of its CN) before its key is trusted.
 * And an app's configuration, read once into keys and certificates.
 */

// ---- signing ---------------------------------------------------------------------------------------------------

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

// ---- certificates ----------------------------------------------------------------------------------------------

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

// ---- an app's configuration ------------------------------------------------------------------------------------

export const UNIONPAY_DEFAULTS = {
  expected_cn: '中国银联股份有限公司',
  gateway_url: 'https://gateway.95516.com',
  file_url: 'https://filedownload.95516.com/',
  timeout_ms: '10000',
  access_type: '0',
  lookback_days: '90',
} as const;

/** An app's UnionPay configuration, its key and certificates read. Never log it. */
export interface UnionPayConfig extends Merchant {
  key: KeyObject;
  chain: VerifyChain;
  gateway: string;
  /** Where fileTransfer (the reconciliation file) is asked for: another host than the gateway. */
  fileUrl: string;
  timeoutMs: number;
  termId: string;
  lookbackDays: number;
  /** signPubKeyCerts already checked against the chain (PEM → key and validity). */
  trusted: Map<string, { key: KeyObject; from: number; to: number }>;
}

/** Reads an app's configuration (ctx.merchant), or says what is unusable. */
function readConfig(m: Readonly<Record<string, string>>): UnionPayConfig | { error: string } {
  const v = (name: keyof typeof UNIONPAY_DEFAULTS | string): string =>
    m[name] || (UNIONPAY_DEFAULTS as Record<string, string>)[name] || '';
  try {
    const merId = v('mer_id');
    if (!/^\d{15}$/.test(merId)) return { error: 'mer_id' };
    const key = crypto.createPrivateKey(v('sign_key_pem'));
    const cert = new X509Certificate(v('sign_cert_pem'));
    const timeoutMs = Number(v('timeout_ms'));
    const lookbackDays = Number(v('lookback_days'));
    const cfg: UnionPayConfig = {
      merId,
      key,
      certId: certIdOf(cert),
      chain: {
        root: new X509Certificate(v('root_cert')),
        middle: new X509Certificate(v('middle_cert')),
        expectedCn: v('expected_cn'),
      },
      gateway: v('gateway_url').replace(/\/+$/, ''),
      fileUrl: v('file_url'),
      timeoutMs: Number.isInteger(timeoutMs) && timeoutMs >= 100 ? Math.min(timeoutMs, 60_000) : 10_000,
      accessType: v('access_type'),
      acqInsCode: v('acq_ins_code'),
      termId: v('term_id'),
      lookbackDays: Number.isInteger(lookbackDays) && lookbackDays >= 1 ? Math.min(lookbackDays, 400) : 90,
      trusted: new Map(),
    };
    new URL(cfg.gateway);
    new URL(cfg.fileUrl);
    return cfg;
  } catch {
    return { error: 'unreadable key, certificate or gateway_url' };
  }
}

/** Configurations read once per content (at most 32 kept), so keys and certificates are parsed once. */
export class PreparedConfigs {
  private readonly byContent = new Map<string, UnionPayConfig>();

  get(m: Readonly<Record<string, string>>): UnionPayConfig | { error: string } {
    const cacheKey = crypto
      .createHash('sha256')
      .update(JSON.stringify(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : 1))))
      .digest('hex');
    const hit = this.byContent.get(cacheKey);
    if (hit) return hit;
    const cfg = readConfig(m);
    if ('error' in cfg) return cfg;
    if (this.byContent.size >= 32) this.byContent.clear();
    this.byContent.set(cacheKey, cfg);
    return cfg;
  }
}

// ---- verifying answers and notices -----------------------------------------------------------------------------

function trust(
  cfg: UnionPayConfig,
  pem: string,
  now: Date,
): { ok: true; key: KeyObject } | { ok: false; reason: string } {
  const hit = cfg.trusted.get(pem);
  if (hit && hit.from <= now.getTime() && now.getTime() <= hit.to) return { ok: true, key: hit.key };
  const r = checkSigningCert(pem, cfg.chain, now);
  if (r.ok) {
    const c = new X509Certificate(pem);
    if (cfg.trusted.size >= 16) cfg.trusted.clear();
    cfg.trusted.set(pem, {
      key: r.key,
      from: new Date(c.validFrom).getTime(),
      to: new Date(c.validTo).getTime(),
    });
  }
  return r;
}

/**
 * Why a signed field set (answer or notice) is not to be believed, or null: it must be RSA-signed, of our
 * version, carry a signPubKeyCert that chains to the app's root and names UnionPay, verify under it, and be
 * about this merchant.
 */
export function distrust(cfg: UnionPayConfig, f: Readonly<Record<string, string>>, now: Date): string | null {
  const a: Readonly<AnswerFields> = f;
  if (a.signMethod !== SIGN_METHOD_RSA) return `not RSA-signed (signMethod ${a.signMethod ?? 'missing'})`;
  if (a.version !== undefined && a.version !== ACP_VERSION) return `version ${a.version}`;
  const pem = a.signPubKeyCert;
  if (!pem) return 'no signPubKeyCert';
  const t = trust(cfg, pem, now);
  if (!t.ok) return t.reason;
  if (!verifyFields(f, t.key)) return 'signature invalid';
  if (a.merId !== undefined && a.merId !== cfg.merId) return 'for another merchant';
  return null;
}
