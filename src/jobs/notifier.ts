import { randomBytes } from 'node:crypto';
import type { ServiceDeps } from '../services/deps.js';
import { claimDueNotifications, deliverOne, type DeliveryOutcome } from '../services/notify.js';
import { countNotifyDelivery, jobStarted, jobStopped, timedPass } from '../metrics.js';

/**
 * The notification job: delivers due lc.trade.notify notifications (the outbox written with each trade
 * transition). Each tick claims a batch with FOR UPDATE SKIP LOCKED and a lease longer than one HTTP attempt,
 * so any number of instances can run it on one PostgreSQL and never deliver the same attempt twice at once;
 * after a crash (kill -9) the lease runs out and the next tick, here or on another instance, delivers it.
 */
export class NotifyJob {
  readonly owner: string;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private pass = 0;

  constructor(private readonly deps: ServiceDeps) {
    this.owner = `notifier-${randomBytes(6).toString('hex')}`;
  }

  /** The lease of one claim: the HTTP timeout plus a minute for signing and the database. */
  get leaseMs(): number {
    return this.deps.config.notify.timeoutMs + 60_000;
  }

  /**
   * One pass: claims due notifications (with their trades, in one statement) and delivers them concurrently;
   * each delivery records its outcome (one statement) as soon as it ends, not when the whole batch has.
   */
  async tick(): Promise<Record<DeliveryOutcome, number>> {
    const counts: Record<DeliveryOutcome, number> = { delivered: 0, retry: 0, failed: 0 };
    const { config, log } = this.deps;
    const claim = `${this.owner}:${++this.pass}`;
    const claimed = await claimDueNotifications(this.deps, claim, this.leaseMs, config.notify.batchSize);
    const outcomes = await Promise.all(
      claimed.map(async ({ notification: n, trade, notifyPrivateCidrs }) => {
        try {
          return await deliverOne(this.deps, n, trade, notifyPrivateCidrs);
        } catch (err) {
          // The claim stays until its lease runs out; then the notification is tried again.
          log.warn(
            { notifyId: n.notify_id, err: err instanceof Error ? err.message : String(err) },
            'notify: delivery pass failed',
          );
          return 'retry' as const;
        }
      }),
    );
    for (const o of outcomes) {
      counts[o]++;
      countNotifyDelivery(o);
    }
    return counts;
  }

  start(): void {
    if (this.timer) return;
    jobStarted(this.owner, 'notifier', this.deps.config.notify.intervalMs);
    const loop = () => {
      let full = false;
      this.running = timedPass(this.owner, 'notifier', () => this.tick())
        .then((c) => {
          full = c.delivered + c.retry + c.failed >= this.deps.config.notify.batchSize;
        })
        .catch((err: unknown) =>
          this.deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'notify tick failed'),
        )
        .finally(() => {
          this.running = null;
          // A full batch means more may be due: go on at once.
          if (this.timer) this.timer = setTimeout(loop, full ? 0 : this.deps.config.notify.intervalMs);
        });
    };
    this.timer = setTimeout(loop, this.deps.config.notify.intervalMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    jobStopped(this.owner);
    await this.running;
  }
}
