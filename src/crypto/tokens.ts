import { createHash, hash, randomBytes, timingSafeEqual } from 'node:crypto';

/** A new AccessToken: 32 random bytes, base64url (43 characters). Shown once; only its hash is stored. */
export function newAccessToken(): string {
  return randomBytes(32).toString('base64url');
}

/** The stored form of an AccessToken: its SHA-256, hex (one-shot `crypto.hash`: no Hash object per request). */
export function hashToken(token: string): string {
  return hash('sha256', token, 'hex');
}

/** Constant-time comparison of two hex digests of equal length. */
export function sameDigest(a: string, b: string): boolean {
  const ba = Buffer.from(a, 'hex');
  const bb = Buffer.from(b, 'hex');
  return ba.length === bb.length && ba.length > 0 && timingSafeEqual(ba, bb);
}

/** Constant-time comparison of two texts of any length (their SHA-256 digests are compared). */
export function sameText(a: string, b: string): boolean {
  return timingSafeEqual(
    createHash('sha256').update(a, 'utf8').digest(),
    createHash('sha256').update(b, 'utf8').digest(),
  );
}

export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}

/** Random id made of digits, for trade numbers. */
export function randomDigits(n: number): string {
  const bytes = randomBytes(n);
  let s = '';
  for (let i = 0; i < n; i++) s += ((bytes[i] ?? 0) % 10).toString();
  return s;
}
