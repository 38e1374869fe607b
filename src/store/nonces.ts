import type { QueryCreator } from 'kysely';
import { isUniqueViolation, type Db } from './db.js';
import type { Database } from './schema.js';

/**
 * The gateway's spent nonces (gateway_nonces): a signed request's nonce_str is good once per app while its
 * timestamp could still be accepted. The gateway door decides when a request's nonce is stored (before the
 * method runs, or with the method's first write: see TradeRepository.insertOrGet); this module only stores and
 * forgets them.
 */

/** A gateway request's nonce_str, to be stored before the method runs or with the request's first write. */
export interface GatewayNonce {
  appId: string;
  nonce: string;
  expiresAt: Date;
  /** Set once the nonce is stored. */
  consumed: boolean;
}

/** The nonce was used before: the request is a replay. */
export class NonceReplayError extends Error {
  constructor() {
    super('gateway nonce replayed');
    this.name = 'NonceReplayError';
  }
}

export class NonceRepository {
  constructor(private readonly db: Db) {}

  /**
   * Stores a request's nonce (one statement); false when it was used before: the request is a replay. Either
   * way the nonce is `consumed` afterwards (it has been spent, by this request or an earlier one).
   */
  async claim(n: GatewayNonce): Promise<boolean> {
    const stored = await this.db
      .insertInto('gateway_nonces')
      .values({ app_id: n.appId, nonce: n.nonce, expires_at: n.expiresAt })
      .onConflict((oc) => oc.columns(['app_id', 'nonce']).doNothing())
      .returning('nonce')
      .executeTakeFirst();
    n.consumed = true;
    return stored !== undefined;
  }

  // Spent nonces are purged with the other records, in bounded batches (store/retention.ts).
}

/**
 * The nonce's INSERT as a CTE of another statement (a request's first write): a nonce used before fails the
 * statement with a unique violation that isNonceReplay recognises, and nothing is written.
 */
export function insertNonce(db: QueryCreator<Database>, n: GatewayNonce) {
  return db
    .insertInto('gateway_nonces')
    .values({ app_id: n.appId, nonce: n.nonce, expires_at: n.expiresAt })
    .returning('nonce');
}

/** Whether a statement failed because its nonce (insertNonce) was used before. */
export function isNonceReplay(e: unknown): boolean {
  return isUniqueViolation(e) && /gateway_nonces/.test(violated(e));
}

/** Which constraint or table a unique violation names (pg and PGlite both give these fields). */
function violated(e: unknown): string {
  const x = e as { constraint?: unknown; table?: unknown; detail?: unknown; message?: unknown };
  return [x.constraint, x.table, x.detail, x.message].filter((v) => typeof v === 'string').join(' ');
}
