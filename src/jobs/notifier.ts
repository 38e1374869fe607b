import { randomBytes } from 'node:crypto';
import type { ServiceDeps } from '../services/deps.js';
import {
  AttemptRecorder,
  claimDueNotifications,
  deliverOne,
  prepareAttempt,
  recordAndClaimNotifications,
  type DeliveryOutcome,
  type PreparedAttempt,
} from '../services/notify.js';
import { countNotifyDelivery, jobStarted, jobStopped, timedPass } from '../metrics.js';

type Counts = Record<DeliveryOutcome, number>;
/** A claimed notification, and its attempt once prepared (its form built and signed). */
type Claimed = Awaited<ReturnType<typeof claimDueNotifications>>[number] & {
  prepared?: Promise<PreparedAttempt>;
};

/**
 * The notification job: delivers due lc.trade.notify notifications (the outbox written with each trade
 * transition). Each claim takes due notifications with FOR UPDATE SKIP LOCKED and a lease longer than one HTTP
 * attempt, so any number of instances (or `serve --workers` processes) can run it on one PostgreSQL and never
 * deliver the same attempt twice at once; after a crash (kill -9) the lease runs out and the next pass, here or
 * on another instance, delivers it.
 *
 * A pass keeps HOSPAY_NOTIFY_BATCH deliveries running and up to twice as many claimed ahead, ready to start:
 * when one ends, the next starts at once. When the ready ones have dropped to one batch, one statement writes the
 * records of the deliveries that ended (attempt rows, outcomes, leases released) and claims enough new ones with
 * their trades to fill the queue again (NotificationRepository.recordAndClaim), while the running ones go on.
 * When a claim finds fewer due than it asked for, the pass lets its deliveries end and claims once more; it ends
 * when a claim finds nothing and nothing is running. A backlog is so drained back to back, always a whole batch
 * at once, at about one statement (one commit) per batch. The last deliveries of a pass, and those of tick(),
 * are recorded in groups as they end (AttemptRecorder). The next batch's forms are built and signed (on the thread
 * pool) while the running deliveries wait for their answers, so a delivery's slot is taken by its POST alone; at
 * most HOSPAY_NOTIFY_BATCH POSTs are in flight, as before.
 */
export class NotifyJob {
  readonly owner: string;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopping = false;
  private pass = 0;

  constructor(private readonly deps: ServiceDeps) {
    this.owner = `notifier-${randomBytes(6).toString('hex')}`;
  }

  /**
   * The lease of one claim: four times the HTTP timeout (waiting in the queue behind up to two batches of
   * deliveries, the attempt itself, then at most as long again for the deliveries beside it before its record
   * is written with the next claim) plus a minute for signing and the database.
   */
  get leaseMs(): number {
    return 4 * this.deps.config.notify.timeoutMs + 60_000;
  }

  /**
   * One claim of up to HOSPAY_NOTIFY_BATCH due notifications (with their trades, in one statement), delivered
   * concurrently; resolves when every one of them is delivered and recorded.
   */
  tick(): Promise<Counts> {
    return this.deliverDue(false);
  }

  /**
   * Claims and delivers (see the class comment); with `drain`, claims again as deliveries end until no more is
   * due (or the job stops), else claims once.
   */
  private async deliverDue(drain: boolean): Promise<Counts> {
    const counts: Counts = { delivered: 0, retry: 0, failed: 0 };
    const size = this.deps.config.notify.batchSize;
    const recorder = new AttemptRecorder(this.deps.notifications);
    /** Claimed, not yet started. */
    const ready: Claimed[] = [];
    /**
     * Claimed and not yet done (ready, running, or ended and waiting for their record to be written), by
     * notification id: never claimed again by this pass while they are, even if their lease ran out meanwhile.
     */
    const busy = new Set<number>();
    /** Started and not yet ended (an ended one may still wait for its record). */
    let runningNow = 0;
    /** The last claim found fewer due than it asked for: wait for every delivery to end before the next. */
    let short = false;
    let wake: (() => void) | null = null;
    // Claim again when the ready ones have dropped to one batch: each claim then takes at least a batch, and
    // writes the records of about as many deliveries that ended, in the same statement.
    const due = () => this.stopping || (short ? runningNow === 0 : ready.length <= size);
    const check = () => {
      if (wake && due()) {
        wake();
        wake = null;
      }
    };
    const all: Array<Promise<void>> = [];
    const pump = () => {
      while (runningNow < size && ready.length > 0 && !this.stopping) {
        const c = ready.shift() as Claimed;
        runningNow++;
        all.push(
          this.deliver(c, recorder, () => {
            runningNow--;
            pump();
            check();
          }).then((o) => {
            counts[o]++;
            countNotifyDelivery(o);
            busy.delete(c.notification.id);
          }),
        );
      }
      // Sign ahead: the forms of the next batch to start, while the running ones wait for their answers. A form is
      // so sent at most one attempt's time limit after it was signed (its timestamp).
      for (let i = 0; i < ready.length && i < size && !this.stopping; i++) {
        const c = ready[i] as Claimed;
        if (c.prepared) continue;
        c.prepared = prepareAttempt(this.deps, c.notification, c.trade, c.notifyPrivateCidrs);
        // Awaited by its delivery; one never started (the job stops) must not be an unhandled rejection.
        c.prepared.catch(() => undefined);
      }
    };
    if (drain) recorder.hold(check);
    try {
      for (;;) {
        const taken = recorder.take();
        const want = drain ? 2 * size - ready.length : size;
        const claim = `${this.owner}:${++this.pass}`;
        const claimOnce = () =>
          recordAndClaimNotifications(this.deps, taken, claim, this.leaseMs, want, [...busy]);
        // Each claim is a pass of its own for the job's heartbeat (readiness, metrics): a long drain keeps beating.
        const claimed = await (drain ? timedPass(this.owner, 'notifier', claimOnce) : claimOnce());
        for (const c of claimed) busy.add(c.notification.id);
        ready.push(...claimed);
        pump();
        if (!drain || this.stopping) break;
        // Nothing more was due when this claim ran. The pass ends only when nothing is running either: its own
        // deliveries are never claimed again by it, so a claim can come up short while a backlog remains (and
        // some of it is due again, or newly due, by the time they end). Let them end, then claim once more
        // (with their records): a backlog is drained without waiting an interval.
        short = claimed.length < want;
        if (claimed.length === 0 && runningNow === 0 && ready.length === 0) break;
        if (!due()) await new Promise<void>((r) => (wake = r));
        if (this.stopping) break;
      }
    } finally {
      // Claimed and never started (the job stops) are left as they are: their leases run out and they are
      // delivered later.
      // The rest are recorded in groups as they end.
      recorder.release();
      await Promise.all(all);
    }
    return counts;
  }

  private async deliver(
    { notification: n, trade, notifyPrivateCidrs, prepared }: Claimed,
    recorder: AttemptRecorder,
    ended: () => void,
  ): Promise<DeliveryOutcome> {
    let told = false;
    const end = () => {
      if (told) return;
      told = true;
      ended();
    };
    try {
      return await deliverOne(this.deps, n, trade, notifyPrivateCidrs, recorder, end, prepared);
    } catch (err) {
      // The claim stays until its lease runs out; then the notification is tried again.
      this.deps.log.warn(
        { notifyId: n.notify_id, err: err instanceof Error ? err.message : String(err) },
        'notify: delivery pass failed',
      );
      return 'retry';
    } finally {
      end();
    }
  }

  start(): void {
    if (this.timer) return;
    this.stopping = false;
    jobStarted(this.owner, 'notifier', this.deps.config.notify.intervalMs);
    const loop = () => {
      this.running = this.deliverDue(true)
        .catch((err: unknown) =>
          this.deps.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'notify tick failed'),
        )
        .finally(() => {
          this.running = null;
          // Drained: nothing more is due now; look again after the interval.
          if (this.timer) this.timer = setTimeout(loop, this.deps.config.notify.intervalMs);
        });
    };
    this.timer = setTimeout(loop, this.deps.config.notify.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    jobStopped(this.owner);
    await this.running;
  }
}
