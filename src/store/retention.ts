import { sql } from 'kysely';
import type { Db } from './db.js';

/** Rows one DELETE removes at most, and DELETEs one purge runs at most: a purge is bounded work. */
export const PURGE_BATCH = 1000;
export const PURGE_MAX_BATCHES = 10;

export interface RetentionSettings {
  /** channel_calls (and the counts of unverified notifications) older than this go; null = kept forever. */
  channelCallsMs: number | null;
  /** notify_attempts older than this go, unless their notification is still being delivered; null = forever. */
  notifyAttemptsMs: number | null;
  /**
   * recon_evidence (what a reconciliation run asked of the channel and the HIS) older than this goes, unless its
   * day and pay type still have an OPEN difference; null = kept forever.
   */
  reconEvidenceMs: number | null;
  /**
   * How long a spent gateway nonce is kept after it could last be replayed (its expires_at): 0 = forgotten as
   * soon as it cannot be replayed. Never negative: a nonce is never forgotten while it could be replayed.
   */
  nonceGraceMs: number;
}

export interface PurgeResult {
  channelCalls: number;
  notifyAttempts: number;
  notifyRejections: number;
  reconEvidence: number;
  /** A table had more to purge than this pass took (the next pass goes on). */
  more: boolean;
}

/** Runs DELETE batches until one removes less than a full batch, or the pass's limit is reached. */
async function inBatches(
  batch: (limit: number) => Promise<number>,
): Promise<{ removed: number; more: boolean }> {
  let removed = 0;
  for (let i = 0; i < PURGE_MAX_BATCHES; i++) {
    const n = await batch(PURGE_BATCH);
    removed += n;
    if (n < PURGE_BATCH) return { removed, more: false };
  }
  return { removed, more: true };
}

const affected = (r: { rows: unknown[] }) => r.rows.length;

/**
 * Deletes records past their retention, in bounded batches. Safe on several instances at once: each batch
 * picks its rows with FOR UPDATE SKIP LOCKED, so two instances delete different rows and never wait for each
 * other.
 *
 * Kept whatever their age: the channel calls of an order that is not settled yet (a trade still waiting for
 * payment, a refund still processing, an insurance part still to reverse) or has an open reconciliation
 * difference — an operator may still need them — and the attempts of a notification still being delivered.
 * (Nothing else reads channel_calls: reconciliation works from bills, the HIS and the trades.) Reconciliation
 * evidence is kept while its day and pay type have an OPEN difference. (Spent gateway nonces: purgeSpentNonces.)
 *
 * Never purged, whatever the settings: trades, refunds, notifications themselves, the reconciliation's runs,
 * differences and audit, the desk's audit trail and maker-checker requests, apps, operators and keys.
 */
export async function purgeExpiredRecords(
  db: Db,
  now: Date,
  settings: RetentionSettings,
): Promise<PurgeResult> {
  const out: PurgeResult = {
    channelCalls: 0,
    notifyAttempts: 0,
    notifyRejections: 0,
    reconEvidence: 0,
    more: false,
  };
  if (settings.channelCallsMs !== null) {
    const before = new Date(now.getTime() - settings.channelCallsMs);
    const calls = await inBatches(async (limit) =>
      affected(
        await sql`
          DELETE FROM channel_calls WHERE id IN (
            SELECT c.id FROM channel_calls c
            WHERE c.started_at < ${before}
              AND (c.out_trade_no IS NULL OR (
                NOT EXISTS (
                  SELECT 1 FROM trades t
                  WHERE t.app_id = c.app_id AND t.out_trade_no = c.out_trade_no
                    AND (t.status = 'WAIT_BUYER_PAY'
                      OR (t.status = 'TRADE_CLOSED' AND t.insurance_state = 'SETTLED')
                      OR EXISTS (SELECT 1 FROM refunds r WHERE r.trade_id = t.id AND r.status = 'PROCESSING')))
                AND NOT EXISTS (
                  SELECT 1 FROM recon_differences d
                  WHERE d.app_id = c.app_id AND d.out_trade_no = c.out_trade_no AND d.state = 'OPEN')))
            ORDER BY c.id
            LIMIT ${limit}
            FOR UPDATE OF c SKIP LOCKED)
          RETURNING id`.execute(db),
      ),
    );
    out.channelCalls = calls.removed;
    out.more ||= calls.more;
    // The counts are one row per app, channel and day: one statement.
    const day = new Date(before.getTime() + 8 * 3_600_000).toISOString().slice(0, 10);
    out.notifyRejections = (
      await db.deleteFrom('notify_rejections').where('day', '<', day).returning('day').execute()
    ).length;
  }
  if (settings.notifyAttemptsMs !== null) {
    const before = new Date(now.getTime() - settings.notifyAttemptsMs);
    const attempts = await inBatches(async (limit) =>
      affected(
        await sql`
          DELETE FROM notify_attempts WHERE id IN (
            SELECT a.id FROM notify_attempts a
            WHERE a.started_at < ${before}
              AND NOT EXISTS (
                SELECT 1 FROM notifications n WHERE n.id = a.notification_id AND n.status = 'PENDING')
            ORDER BY a.id
            LIMIT ${limit}
            FOR UPDATE OF a SKIP LOCKED)
          RETURNING id`.execute(db),
      ),
    );
    out.notifyAttempts = attempts.removed;
    out.more ||= attempts.more;
  }
  if (settings.reconEvidenceMs !== null) {
    const before = new Date(now.getTime() - settings.reconEvidenceMs);
    const evidence = await inBatches(async (limit) =>
      affected(
        await sql`
          DELETE FROM recon_evidence WHERE id IN (
            SELECT e.id FROM recon_evidence e
            WHERE e.fetched_at < ${before}
              AND NOT EXISTS (
                SELECT 1 FROM recon_differences d
                WHERE d.app_id = e.app_id AND d.business_date = e.business_date AND d.pay_type = e.pay_type
                  AND d.state = 'OPEN')
            ORDER BY e.id
            LIMIT ${limit}
            FOR UPDATE OF e SKIP LOCKED)
          RETURNING id`.execute(db),
      ),
    );
    out.reconEvidence = evidence.removed;
    out.more ||= evidence.more;
  }
  return out;
}

/**
 * Spent gateway nonces that can no longer be replayed (expires_at passed) and whose grace is over, in bounded
 * batches (FOR UPDATE SKIP LOCKED: safe on several instances). Run on every expiry tick: a nonce goes soon
 * after its request went stale.
 */
export async function purgeSpentNonces(
  db: Db,
  now: Date,
  graceMs: number,
): Promise<{ removed: number; more: boolean }> {
  const before = new Date(now.getTime() - Math.max(0, graceMs));
  return inBatches(async (limit) =>
    affected(
      await sql`
        DELETE FROM gateway_nonces WHERE (app_id, nonce) IN (
          SELECT n.app_id, n.nonce FROM gateway_nonces n
          WHERE n.expires_at < ${before}
          ORDER BY n.expires_at
          LIMIT ${limit}
          FOR UPDATE SKIP LOCKED)
        RETURNING nonce`.execute(db),
    ),
  );
}

/** purgeExpiredRecords on the platform's database (for ServiceDeps). */
export class RetentionRepository {
  constructor(private readonly db: Db) {}

  purgeExpired(now: Date, settings: RetentionSettings): Promise<PurgeResult> {
    return purgeExpiredRecords(this.db, now, settings);
  }

  purgeNonces(now: Date, graceMs: number): Promise<{ removed: number; more: boolean }> {
    return purgeSpentNonces(this.db, now, graceMs);
  }
}
