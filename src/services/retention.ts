import type { ServiceDeps } from './deps.js';
import type { PurgeResult } from '../store/retention.js';

/**
 * What the platform forgets once it is no longer needed (run by the expiry job): spent gateway nonces and old
 * authorisation requests are only needed while they could be replayed; a retired platform key, for its grace
 * period (HOSPAY_KEY_GRACE).
 */
export async function purgeSpent(
  deps: Pick<ServiceDeps, 'keys' | 'nonces' | 'medicare'>,
  now: Date,
): Promise<void> {
  await deps.keys.purgeRetired();
  await deps.nonces.purgeExpired(now);
  await deps.medicare.purgeAuthorisations(new Date(now.getTime() - 86_400_000));
}

/**
 * Channel calls and notification attempts past their retention (HOSPAY_CALL_RETENTION,
 * HOSPAY_ATTEMPT_RETENTION), in bounded batches (store/retention.ts); `more` when a pass left some.
 */
export function purgeExpiredRecords(
  deps: Pick<ServiceDeps, 'retention' | 'config'>,
  now: Date,
): Promise<PurgeResult> {
  return deps.retention.purgeExpired(now, deps.config.retention);
}
