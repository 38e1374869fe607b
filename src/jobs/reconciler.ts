import { randomBytes } from 'node:crypto';
import type { ServiceDeps } from '../services/deps.js';
import { reconcileApps } from '../reconcile/run.js';
import { formatShanghai } from '../domain/clock.js';

/**
 * The daily reconciliation: at HOSPAY_RECONCILE_AT (default 10:00, after WeChat's bills are ready) the previous
 * business day is reconciled for every active app. The day is claimed in job_claims first, so with several
 * instances exactly one runs it.
 */
export class ReconcileJob {
  readonly owner = `reconciler-${randomBytes(6).toString('hex')}`;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;

  constructor(
    private readonly deps: ServiceDeps,
    private readonly intervalMs = 60_000,
  ) {}

  /** Runs yesterday's reconciliation if it is time and nobody has; returns the date run, or null. */
  async tick(): Promise<string | null> {
    const at = this.deps.config.reconcile.dailyAt;
    if (!at) return null;
    const now = this.deps.clock.now();
    const local = formatShanghai(now); // 'yyyy-MM-dd HH:mm:ss'
    if (local.slice(11, 16) < at) return null;
    const yesterday = formatShanghai(new Date(now.getTime() - 86_400_000)).slice(0, 10);
    const claimed = await this.deps.db
      .insertInto('job_claims')
      .values({
        job: 'daily-reconcile',
        key: yesterday,
        owner: this.owner,
        claimed_at: now,
        finished_at: null,
        result: null,
      })
      .onConflict((oc) => oc.columns(['job', 'key']).doNothing())
      .returning('key')
      .executeTakeFirst();
    if (!claimed) return null;
    const run = await reconcileApps(this.deps, { date: yesterday });
    const open = run.open;
    const errors = run.outcomes.filter((o) => o.error).map((o) => `${o.appId}: ${o.error ?? ''}`);
    await this.deps.db
      .updateTable('job_claims')
      .set({ finished_at: this.deps.clock.now(), result: JSON.stringify({ open, errors }) })
      .where('job', '=', 'daily-reconcile')
      .where('key', '=', yesterday)
      .execute();
    this.deps.log.info({ date: yesterday, open, errors: errors.length }, 'daily reconciliation done');
    return yesterday;
  }

  start(): void {
    if (this.timer) return;
    const loop = () => {
      this.running = this.tick()
        .catch((err: unknown) =>
          this.deps.log.warn(
            { err: err instanceof Error ? err.message : String(err) },
            'reconcile tick failed',
          ),
        )
        .finally(() => {
          this.running = null;
          if (this.timer) this.timer = setTimeout(loop, this.intervalMs);
        });
    };
    this.timer = setTimeout(loop, this.intervalMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}
