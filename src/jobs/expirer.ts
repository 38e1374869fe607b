import { randomBytes } from 'node:crypto';
import { channelContext, medicareFor, type ServiceDeps } from '../services/deps.js';
import { expireTrade, type ExpireResult } from '../services/expire.js';
import { purgeExpiredRecords, purgeSpent } from '../services/retention.js';
import { revokeUploads } from '../services/medicare.js';
import { jobStarted, jobStopped, timedPass } from '../metrics.js';

/**
 * The expiry job: unpaid barcode trades past their deadline are cancelled at the channel, expired QR trades
 * closed. Each tick claims a batch with FOR UPDATE SKIP LOCKED and a lease, so any number of instances can run
 * it on one PostgreSQL without doing the same work twice; a crashed instance's lease runs out and another
 * instance takes over.
 */
export class ExpiryJob {
  readonly owner: string;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  /** When the retention purge runs next (null = on the next tick). */
  private retentionDueAt: number | null = null;
  /** Spent nonces purged since the last retention log line. */
  private noncesPurged = 0;

  constructor(private readonly deps: ServiceDeps) {
    this.owner = `expirer-${randomBytes(6).toString('hex')}`;
  }

  /** One pass; returns what happened to each claimed trade. */
  async tick(): Promise<Record<ExpireResult, number>> {
    const counts: Record<ExpireResult, number> = { paid: 0, closed: 0, reversed: 0, retry: 0, failed: 0 };
    const { config, clock, trades } = this.deps;
    await this.purge();
    const claimed = await trades.claimExpired(
      clock.now(),
      this.owner,
      config.jobs.leaseMs,
      config.jobs.batchSize,
    );
    for (const trade of claimed) {
      let result: ExpireResult;
      try {
        result = await expireTrade(this.deps, trade);
      } catch (err) {
        this.deps.log.warn(
          { err: err instanceof Error ? err.message : String(err), tradeNo: trade.trade_no },
          'expiry failed',
        );
        result = 'retry';
      }
      counts[result]++;
      // Retry with backoff (10 s, 20 s, ... up to 10 min); an operator case waits an hour between attempts.
      const backoffMs =
        result === 'failed'
          ? 3_600_000
          : Math.min(10_000 * 2 ** Math.min(Math.max(trade.job_attempts - 1, 0), 6), 600_000);
      const retryAt =
        result === 'retry' || result === 'failed' ? new Date(clock.now().getTime() + backoffMs) : null;
      await trades.releaseLease(trade.id, this.owner, retryAt);
    }
    await this.reverseInsurance();
    // Fee uploads a mixed payment left at the medical-insurance centre unsettled: revoked (6401) or refunded.
    await revokeUploads(this.deps).catch((err: unknown) =>
      this.deps.log.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'upload revocation failed',
      ),
    );
    return counts;
  }

  /** Undoes the insurance settlement of mixed payments that ended unpaid or were cancelled. */
  private async reverseInsurance(): Promise<void> {
    const { config, clock, trades, log } = this.deps;
    const claimed = await trades.claimInsuranceReversals(
      clock.now(),
      this.owner,
      config.jobs.leaseMs,
      config.jobs.batchSize,
    );
    for (const t of claimed) {
      let ok = false;
      try {
        const app = await this.deps.apps.get(t.app_id);
        if (!app) throw new Error(`no app ${t.app_id}`);
        const mi = medicareFor(this.deps, app);
        const r = await mi.channel.reverseSettlement(await channelContext(this.deps, app.id, mi.ctxId), {
          settlementNo: t.settlement_no ?? '',
          outTradeNo: t.out_trade_no,
          insuranceFen: t.insurance_fen,
        });
        if (r.kind === 'reversed') ok = await trades.markInsuranceReversed(t.id, clock.now());
        else if (r.kind === 'failed')
          log.error({ tradeNo: t.trade_no, code: r.code }, 'insurance reversal refused; needs an operator');
      } catch (err) {
        log.warn(
          { err: err instanceof Error ? err.message : String(err), tradeNo: t.trade_no },
          'insurance reversal failed',
        );
      }
      if (!ok) await trades.releaseLease(t.id, this.owner, new Date(clock.now().getTime() + 60_000));
    }
  }

  /**
   * Old authorisation requests are only needed while they could be replayed; a retired platform key, for its
   * grace period (HOSPAY_KEY_GRACE); spent gateway nonces once they cannot be replayed (+ HOSPAY_NONCE_RETENTION).
   */
  private async purge(): Promise<void> {
    const now = this.deps.clock.now();
    this.noncesPurged += await purgeSpent(this.deps, now);
    await this.purgeRecords(now);
  }

  /**
   * Channel calls, notification attempts and reconciliation evidence past their retention (HOSPAY_CALL_RETENTION,
   * HOSPAY_ATTEMPT_RETENTION, HOSPAY_EVIDENCE_RETENTION), in bounded batches (services/retention.ts); at most once
   * a minute unless the last pass left more. The line also counts the spent nonces purged since the last one.
   */
  private async purgeRecords(now: Date): Promise<void> {
    if (this.retentionDueAt !== null && now.getTime() < this.retentionDueAt) return;
    let r;
    try {
      r = await purgeExpiredRecords(this.deps, now);
    } catch (err) {
      // Never in the way of expiring trades; tried again in a minute.
      this.retentionDueAt = now.getTime() + 60_000;
      this.deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'retention purge failed');
      return;
    }
    this.retentionDueAt = r.more ? null : now.getTime() + 60_000;
    const nonces = this.noncesPurged;
    this.noncesPurged = 0;
    if (r.channelCalls + r.notifyAttempts + r.notifyRejections + r.reconEvidence + nonces > 0)
      this.deps.log.info(
        {
          channelCalls: r.channelCalls,
          notifyAttempts: r.notifyAttempts,
          notifyRejections: r.notifyRejections,
          reconEvidence: r.reconEvidence,
          nonces,
          more: r.more,
        },
        'records past their retention purged',
      );
  }

  start(): void {
    if (this.timer) return;
    jobStarted(this.owner, 'expirer', this.deps.config.jobs.intervalMs);
    const loop = () => {
      this.running = timedPass(this.owner, 'expirer', () => this.tick())
        .catch((err: unknown) =>
          this.deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'expiry tick failed'),
        )
        .finally(() => {
          this.running = null;
          if (this.timer) this.timer = setTimeout(loop, this.deps.config.jobs.intervalMs);
        });
    };
    this.timer = setTimeout(loop, this.deps.config.jobs.intervalMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    jobStopped(this.owner);
    await this.running;
  }
}
