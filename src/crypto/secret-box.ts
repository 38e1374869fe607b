import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { InvalidInputError } from '../domain/errors.js';

/**
 * Secrets at rest (the HIS's AccessToken, channel keys): AES-256-GCM under the master key, bound to where the
 * secret belongs (the associated data, e.g. "app:A1:his_token") so a sealed value copied to another row does
 * not open. Format: `v1:<key id>:<iv>:<ciphertext+tag>` (base64url), the key id being the first 8 hex digits of
 * SHA-256 of the key, so a wrong master key is reported as such rather than as corruption.
 */
export class SecretBoxError extends InvalidInputError {
  constructor(message: string) {
    super(message);
    this.name = 'SecretBoxError';
  }
}

export class SecretBox {
  private key: Buffer | null = null;

  /** `loadKey` is called on first use: a deployment that stores no secret never needs a master key. */
  constructor(private readonly loadKey: () => Buffer) {}

  private master(): Buffer {
    if (!this.key) {
      const k = this.loadKey();
      if (k.length !== 32) throw new SecretBoxError('the master key must be 32 bytes');
      this.key = k;
    }
    return this.key;
  }

  private keyId(): string {
    return createHash('sha256').update(this.master()).digest('hex').slice(0, 8);
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.master(), iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `v1:${this.keyId()}:${iv.toString('base64url')}:${body.toString('base64url')}`;
  }

  open(sealed: string, context: string): string {
    const parts = sealed.split(':');
    if (parts.length !== 4 || parts[0] !== 'v1') throw new SecretBoxError('not a sealed secret');
    const [, keyId, ivText, bodyText] = parts as [string, string, string, string];
    if (keyId !== this.keyId())
      throw new SecretBoxError(
        `the secret was sealed with another master key (${keyId}); set HOSPAY_MASTER_KEY to that key`,
      );
    const iv = Buffer.from(ivText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    if (iv.length !== 12 || body.length < 16) throw new SecretBoxError('sealed secret is damaged');
    const decipher = createDecipheriv('aes-256-gcm', this.master(), iv);
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(body.subarray(body.length - 16));
    try {
      return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw new SecretBoxError(`sealed secret does not open for ${context} (damaged or moved)`);
    }
  }
}

/** A master key from its text form: 64 hex digits or base64/base64url of 32 bytes. */
export function parseMasterKey(text: string): Buffer | null {
  const t = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(t)) return Buffer.from(t, 'hex');
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(t)) {
    const b = Buffer.from(t.replace(/\+/g, '-').replace(/\//g, '_').replace(/=$/, ''), 'base64url');
    return b.length === 32 ? b : null;
  }
  return null;
}
