import type { ServiceDeps } from './deps.js';
import type { PurgeResult } from '../store/retention.js';

/**
 * What the platform forgets once it is no longer needed (run by the expiry job): old authorisation requests are
 * only needed while they could be replayed; a retired platform key, for its grace period (HOSPAY_KEY_GRACE).
 * Spent gateway nonces go once they can no longer be replayed and HOSPAY_NONCE_RETENTION is over (bounded
 * batches). Returns how many nonces went.
 */
export async function purgeSpent(
  deps: Pick<ServiceDeps, 'keys' | 'medicare' | 'retention' | 'config'>,
  now: Date,
): Promise<number> {
  await deps.keys.purgeRetired();
  const nonces = await deps.retention.purgeNonces(now, deps.config.retention.nonceGraceMs);
  await deps.medicare.purgeAuthorisations(new Date(now.getTime() - 86_400_000));
  return nonces.removed;
}

/**
 * Channel calls, notification attempts and reconciliation evidence past their retention
 * (HOSPAY_CALL_RETENTION, HOSPAY_ATTEMPT_RETENTION, HOSPAY_EVIDENCE_RETENTION), in
 * bounded batches (store/retention.ts); `more` when a pass left some. Trades, refunds, notifications, the
 * reconciliation's differences and the desk's audit and requests are never purged.
 */
export function purgeExpiredRecords(
  deps: Pick<ServiceDeps, 'retention' | 'config'>,
  now: Date,
): Promise<PurgeResult> {
  return deps.retention.purgeExpired(now, deps.config.retention);
}
