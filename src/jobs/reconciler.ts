import { randomBytes } from 'node:crypto';
import type { ReconcileDeps } from '../reconcile/deps.js';
import { isIncomplete, reconcileApps, type AppDayOutcome } from '../reconcile/run.js';
import { formatShanghai } from '../domain/clock.js';
import { jobStarted, jobStopped, timedPass } from '../metrics.js';

const JOB = 'daily-reconcile';
/** An incomplete or failed day is tried again this long after the previous attempt ended… */
export const RECONCILE_RETRY_MS = 30 * 60_000;
/** …at most this many times (so for about three hours after HOSPAY_RECONCILE_AT). */
export const RECONCILE_RETRIES = 6;

/** What an attempt left in job_claims.result (JSON). */
interface AttemptResult {
  open: number;
  /** `APP: error` of the apps that could not be reconciled at all. */
  errors: string[];
  /** `APP/payType: HIS error` of the runs left INCOMPLETE. */
  incomplete?: string[];
  /** The apps to try again (failed or incomplete), empty when the day is complete. */
  retry?: string[];
  attempt?: number;
}

/**
 * The daily reconciliation: at HOSPAY_RECONCILE_AT (default 10:00, after WeChat's bills are ready) the previous
 * business day is reconciled for every active app. The day is claimed in job_claims first (key = the date), so
 * with several instances exactly one runs it.
 *
 * A day that is not complete — an app failed, or a run is INCOMPLETE because the HIS could not be read — is
 * logged as a warning and tried again for those apps only, every RECONCILE_RETRY_MS, at most RECONCILE_RETRIES
 * times; each retry is claimed too (key `date#n`), so it also runs once. The runs themselves say INCOMPLETE
 * (recon_runs.status) until a retry completes them.
 */
export class ReconcileJob {
  readonly owner = `reconciler-${randomBytes(6).toString('hex')}`;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;

  constructor(
    private readonly deps: ReconcileDeps,
    private readonly intervalMs = 60_000,
  ) {}

  /** Runs (or retries) yesterday's reconciliation if it is time and nobody has; returns the key run, or null. */
  async tick(): Promise<string | null> {
    const at = this.deps.config.reconcile.dailyAt;
    if (!at) return null;
    const now = this.deps.clock.now();
    const local = formatShanghai(now); // 'yyyy-MM-dd HH:mm:ss'
    if (local.slice(11, 16) < at) return null;
    const yesterday = formatShanghai(new Date(now.getTime() - 86_400_000)).slice(0, 10);
    if (await this.claim(yesterday, now)) return this.attempt(yesterday, yesterday, 0, undefined);

    // The day was claimed before: is a retry due?
    const attempts = await this.deps.jobClaims.attempts(JOB, yesterday);
    const last = attempts
      .map((a) => ({ ...a, n: a.key === yesterday ? 0 : Number(a.key.slice(yesterday.length + 1)) }))
      .sort((a, b) => b.n - a.n)[0];
    if (!last || !last.finished_at || last.n >= RECONCILE_RETRIES) return null;
    if (now.getTime() - last.finished_at.getTime() < RECONCILE_RETRY_MS) return null;
    const retry = readResult(last.result).retry ?? [];
    if (retry.length === 0) return null;
    const key = `${yesterday}#${last.n + 1}`;
    if (!(await this.claim(key, now))) return null;
    return this.attempt(yesterday, key, last.n + 1, retry);
  }

  private claim(key: string, now: Date): Promise<boolean> {
    return this.deps.jobClaims.claim(JOB, key, this.owner, now);
  }

  /** One attempt: every active app (attempt 0) or the apps left to retry. */
  private async attempt(
    date: string,
    key: string,
    attempt: number,
    apps: readonly string[] | undefined,
  ): Promise<string> {
    const outcomes: AppDayOutcome[] = [];
    let open = 0;
    if (apps === undefined) {
      const run = await reconcileApps(this.deps, { date });
      outcomes.push(...run.outcomes);
      open = run.open;
    } else
      for (const appId of apps) {
        try {
          const run = await reconcileApps(this.deps, { date, appId });
          outcomes.push(...run.outcomes);
          open += run.open;
        } catch (e) {
          // The app is gone since the first attempt: nothing to retry.
          outcomes.push({
            appId,
            date,
            payType: 'alipay',
            skipped: 'failed',
            error: e instanceof Error ? e.message : String(e),
            matched: 0,
            differences: 0,
            open: 0,
            pending: 0,
          });
        }
      }
    const failed = outcomes.filter((o) => o.error);
    const incomplete = outcomes.filter((o) => !o.error && isIncomplete(o));
    const retry = [...new Set([...failed, ...incomplete].map((o) => o.appId))];
    const result: AttemptResult = {
      open,
      errors: failed.map((o) => `${o.appId}: ${o.error ?? ''}`),
      incomplete: incomplete.map((o) => `${o.appId}/${o.payType}: ${o.hisError ?? ''}`),
      retry,
      attempt,
    };
    await this.deps.jobClaims.finish(JOB, key, this.deps.clock.now(), JSON.stringify(result));
    if (retry.length === 0) this.deps.log.info({ date, attempt, open }, 'daily reconciliation done');
    else
      this.deps.log.warn(
        {
          date,
          attempt,
          open,
          failed: result.errors,
          incomplete: result.incomplete,
          nextRetry:
            attempt < RECONCILE_RETRIES
              ? formatShanghai(new Date(this.deps.clock.now().getTime() + RECONCILE_RETRY_MS))
              : null,
        },
        attempt < RECONCILE_RETRIES
          ? 'daily reconciliation incomplete: will retry'
          : 'daily reconciliation incomplete: no retries left, run the day again by hand',
      );
    return key;
  }

  start(): void {
    if (this.timer) return;
    jobStarted(this.owner, 'reconciler', this.intervalMs);
    const loop = () => {
      this.running = timedPass(this.owner, 'reconciler', () => this.tick())
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
    jobStopped(this.owner);
    await this.running;
  }
}

function readResult(text: string | null): AttemptResult {
  try {
    const v: unknown = JSON.parse(text ?? '');
    if (typeof v === 'object' && v !== null) {
      const r = v as Partial<AttemptResult>;
      return {
        open: typeof r.open === 'number' ? r.open : 0,
        errors: Array.isArray(r.errors) ? r.errors.filter((x) => typeof x === 'string') : [],
        retry: Array.isArray(r.retry) ? r.retry.filter((x): x is string => typeof x === 'string') : [],
      };
    }
  } catch {
    // fall through
  }
  return { open: 0, errors: [] };
}
