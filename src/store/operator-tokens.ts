import { randomBytes } from 'node:crypto';
import type { Db } from './db.js';
import type { Clock } from '../domain/clock.js';
import type { Principal } from '../domain/access.js';
import { sha256Hex } from '../crypto/tokens.js';
import { InvalidInputError } from '../domain/errors.js';

/** `hpo_<id>_<secret>`: id 12 alphanumerics (shown in lists), secret 32 random bytes in base64url (43). */
export const OPERATOR_TOKEN_PATTERN = /^hpo_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
export const MAX_TOKEN_LABEL_LENGTH = 64;
/** last_used_at is written at most this often per token (a busy script must not write on every request). */
export const LAST_USED_GRANULARITY_MS = 60_000;

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

function tokenId(): string {
  // 62 symbols: bytes >= 248 are dropped so that every symbol is equally likely.
  let out = '';
  while (out.length < 12) {
    for (const b of randomBytes(16)) {
      if (b < 248 && out.length < 12) out += ALPHANUMERIC[b % 62] ?? '';
    }
  }
  return out;
}

/** An operator's token as listed: never its secret nor its hash. */
export interface OperatorTokenView {
  id: string;
  username: string;
  label: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
  /** active, expired or revoked (at the time of the listing). */
  state: 'active' | 'expired' | 'revoked';
}

export class OperatorTokenInputError extends InvalidInputError {
  constructor(
    readonly field: 'label' | 'expires_at',
    message: string,
  ) {
    super(message);
    this.name = 'OperatorTokenInputError';
  }
}

/** Null when acceptable, otherwise why not (Chinese / English). */
export function tokenLabelProblem(label: string): string | null {
  const length = [...label.trim()].length;
  if (
    length < 1 ||
    length > MAX_TOKEN_LABEL_LENGTH ||
    [...label].some((ch) => (ch.codePointAt(0) ?? 0) < 0x20 || ch === '\u007f')
  )
    return `标签须为 1～${MAX_TOKEN_LABEL_LENGTH} 个字符 / the label must be 1 to ${MAX_TOKEN_LABEL_LENGTH} characters on one line`;
  return null;
}

/**
 * Operators' personal API tokens (operator_tokens): the admin API with the operator's own role and hospitals,
 * instead of a shared admin token. Only the sha256 of a token is stored; the token is returned once by create.
 */
export class OperatorTokenRepository {
  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {}

  /**
   * A new token for an existing operator (undefined when there is no such operator). The token is in the
   * answer only, never stored.
   */
  async create(
    username: string,
    label: string,
    expiresAt: Date | null,
  ): Promise<{ id: string; token: string } | undefined> {
    const problem = tokenLabelProblem(label);
    if (problem) throw new OperatorTokenInputError('label', problem);
    const now = this.clock.now();
    if (expiresAt !== null && !(expiresAt.getTime() > now.getTime()))
      throw new OperatorTokenInputError('expires_at', '到期时间须在将来 / the expiry must be in the future');
    const operator = await this.db
      .selectFrom('finance_operators')
      .select('username')
      .where('username', '=', username)
      .executeTakeFirst();
    if (!operator) return undefined;
    const id = tokenId();
    const token = `hpo_${id}_${randomBytes(32).toString('base64url')}`;
    await this.db
      .insertInto('operator_tokens')
      .values({
        id,
        token_hash: sha256Hex(token),
        username,
        label: label.trim(),
        created_at: now,
        expires_at: expiresAt,
        last_used_at: null,
        revoked_at: null,
      })
      .execute();
    return { id, token };
  }

  /** The tokens (of one operator, or everyone's), newest first; no secret. */
  async list(username?: string): Promise<OperatorTokenView[]> {
    let q = this.db
      .selectFrom('operator_tokens')
      .select(['id', 'username', 'label', 'created_at', 'expires_at', 'last_used_at', 'revoked_at'])
      .orderBy('created_at', 'desc')
      .orderBy('id');
    if (username !== undefined) q = q.where('username', '=', username);
    const now = this.clock.now().getTime();
    return (await q.execute()).map((r) => ({
      id: r.id,
      username: r.username,
      label: r.label,
      created_at: r.created_at.toISOString(),
      expires_at: r.expires_at?.toISOString() ?? null,
      last_used_at: r.last_used_at?.toISOString() ?? null,
      revoked_at: r.revoked_at?.toISOString() ?? null,
      state: r.revoked_at ? 'revoked' : r.expires_at && r.expires_at.getTime() <= now ? 'expired' : 'active',
    }));
  }

  /** One token's owner (for scoping), undefined when unknown. */
  async ownerOf(id: string): Promise<string | undefined> {
    if (!/^[A-Za-z0-9]{8,32}$/.test(id)) return undefined;
    const r = await this.db
      .selectFrom('operator_tokens')
      .select('username')
      .where('id', '=', id)
      .executeTakeFirst();
    return r?.username;
  }

  /** Revokes a token for good. False when unknown or already revoked. */
  async revoke(id: string): Promise<boolean> {
    if (!/^[A-Za-z0-9]{8,32}$/.test(id)) return false;
    const r = await this.db
      .updateTable('operator_tokens')
      .set({ revoked_at: this.clock.now() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  /**
   * The principal of a presented token (via 'token'), or null when it is malformed, unknown, revoked, expired,
   * or its operator is disabled. Found by the sha256 of the whole token (a unique index): the comparison is
   * the database's lookup of a hash, so no timing tells how much of a guess was right.
   */
  async principalOf(token: string): Promise<Principal | null> {
    if (!OPERATOR_TOKEN_PATTERN.test(token)) return null;
    const now = this.clock.now();
    const row = await this.db
      .selectFrom('operator_tokens')
      .innerJoin('finance_operators', 'finance_operators.username', 'operator_tokens.username')
      .select([
        'operator_tokens.id',
        'operator_tokens.expires_at',
        'operator_tokens.revoked_at',
        'operator_tokens.last_used_at',
        'finance_operators.username',
        'finance_operators.display_name',
        'finance_operators.status',
        'finance_operators.role',
        'finance_operators.all_apps',
      ])
      .where('operator_tokens.token_hash', '=', sha256Hex(token))
      .executeTakeFirst();
    if (!row || row.revoked_at !== null || row.status !== 'active') return null;
    if (row.expires_at !== null && row.expires_at.getTime() <= now.getTime()) return null;
    if (!row.last_used_at || now.getTime() - row.last_used_at.getTime() >= LAST_USED_GRANULARITY_MS)
      await this.db
        .updateTable('operator_tokens')
        .set({ last_used_at: now })
        .where('id', '=', row.id)
        .execute();
    let apps: 'all' | string[] = 'all';
    if (!row.all_apps && row.role !== 'platform_admin') {
      const granted = await this.db
        .selectFrom('operator_apps')
        .select('app_id')
        .where('username', '=', row.username)
        .orderBy('app_id')
        .execute();
      apps = granted.map((g) => g.app_id);
    }
    return {
      username: row.username,
      displayName: row.display_name,
      role: row.role,
      apps,
      via: 'token',
    };
  }

  /** The app a notification belongs to (for scoping the admin API's resend), undefined when unknown. */
  async appOfNotification(notifyId: string): Promise<string | undefined> {
    if (notifyId.length === 0 || notifyId.length > 128) return undefined;
    const r = await this.db
      .selectFrom('notifications')
      .select('app_id')
      .where('notify_id', '=', notifyId)
      .executeTakeFirst();
    return r?.app_id;
  }
}
