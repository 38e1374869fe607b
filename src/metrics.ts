import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The platform's Prometheus metrics (prom-client): one registry per process, read by GET /metrics on the admin
 * door (http/health.ts). Every layer may record here; nothing here imports the project.
 *
 * Labels are bounded: door, interface, sub_code, pay_type, channel, operation, outcome, job_name (not `job`:
 * Prometheus gives every target a `job` label of its own). No app id, trade
 * number or other unbounded value is ever a label; an unexpected value becomes "other".
 */
export const registry = new Registry();

collectDefaultMetrics({ register: registry, prefix: 'hospay_' });

/** Seconds, 1 ms – 30 s: suits a channel call (tens of ms to a 10 s deadline) and a job pass. */
export const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30];

const LABEL = /^[A-Za-z0-9_.:-]{1,64}$/;

/** A label value from a bounded vocabulary, or "other" (never an unbounded or odd string). */
function bounded(value: string | undefined | null, allowed?: ReadonlySet<string>): string {
  if (!value) return 'none';
  if (allowed) return allowed.has(value) ? value : 'other';
  return LABEL.test(value) ? value : 'other';
}

// --- doors --------------------------------------------------------------------------------------------------

const DOORS = new Set(['offline', 'soap', 'gateway']);

export const requests = new Counter({
  name: 'hospay_requests_total',
  help: 'HIS requests answered, by door (offline, soap, gateway), interface and SubCode (SUCCESS when none)',
  labelNames: ['door', 'interface', 'sub_code'] as const,
  registers: [registry],
});

/**
 * One HIS request answered. `iface` must already be a known interface or method name (the door passes
 * "unknown" for anything else); `subCode` is the answer's SubCode (HospayError codes: a fixed vocabulary).
 */
export function countRequest(door: string, iface: string, subCode: string | undefined): void {
  requests.inc({
    door: bounded(door, DOORS),
    interface: bounded(iface),
    sub_code: bounded(subCode || 'SUCCESS'),
  });
}

// --- trades -------------------------------------------------------------------------------------------------

/** The channel answers a use case acts on (channels/channel.ts outcome kinds). */
const OUTCOMES = new Set([
  'paid',
  'paying',
  'declined',
  'unknown',
  'created',
  'form',
  'failed',
  'success',
  'waiting',
  'closed',
  'refunded',
  'not_found',
  'retry',
]);
const TRADE_OPERATIONS = new Set(['barcode_pay', 'qr_pay', 'h5_pay', 'in_app_pay', 'query', 'refund']);

/**
 * The batched statements of the payment paths (store/batcher.ts): statements run and the items they carried, by
 * statement (a fixed vocabulary: the batchers' names). items ÷ statements is the mean batch; 1 on a quiet server.
 */
export const dbBatchStatements = new Counter({
  name: 'hospay_db_batch_statements_total',
  help: 'Batched statements run, by statement (a batch of one is the one-row statement)',
  labelNames: ['statement'] as const,
  registers: [registry],
});
export const dbBatchItems = new Counter({
  name: 'hospay_db_batch_items_total',
  help: 'Items carried by batched statements, by statement (items / statements = mean batch size)',
  labelNames: ['statement'] as const,
  registers: [registry],
});
export const dbBatchRetried = new Counter({
  name: 'hospay_db_batch_retried_total',
  help: 'Items of a failed batch run again one by one, by statement',
  labelNames: ['statement'] as const,
  registers: [registry],
});

export const tradeOutcomes = new Counter({
  name: 'hospay_trade_outcomes_total',
  help:
    'Channel answers a payment use case acted on, by operation (barcode_pay, qr_pay, h5_pay, query, refund), ' +
    'pay type, channel and outcome (paid, paying, declined, unknown, created, failed, success, ...)',
  labelNames: ['operation', 'pay_type', 'channel', 'outcome'] as const,
  registers: [registry],
});

/** What the channel said to a payment operation (one line in each service where an outcome is decided). */
export function observeTradeOutcome(
  operation: string,
  payType: string | null | undefined,
  channel: string | null | undefined,
  outcome: string,
): void {
  tradeOutcomes.inc({
    operation: bounded(operation, TRADE_OPERATIONS),
    pay_type: bounded(payType),
    channel: bounded(channel),
    outcome: bounded(outcome, OUTCOMES),
  });
}

// --- channel calls ------------------------------------------------------------------------------------------

export const channelCallSeconds = new Histogram({
  name: 'hospay_channel_call_duration_seconds',
  help: 'Exchanges with the providers, by channel, operation and outcome kind (the first word of the record)',
  labelNames: ['channel', 'operation', 'outcome'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

const CALL_OUTCOMES = new Set([
  ...OUTCOMES,
  'ok',
  'rejected',
  'unreadable',
  'no',
  'download_url',
  'error',
  'ignored',
]);

/**
 * One recorded exchange with a provider (the CallRecorder's record): its latency and the first word of its
 * outcome text ("declined ACQ.X" → declined, "unknown: timeout" → unknown).
 */
export function observeChannelCall(
  channel: string,
  call: { operation: string; outcome: string; latencyMs: number },
): void {
  const kind = /^[a-z_]+/.exec(call.outcome)?.[0];
  channelCallSeconds.observe(
    {
      channel: bounded(channel),
      operation: bounded(call.operation),
      outcome: bounded(kind, CALL_OUTCOMES),
    },
    Math.max(0, call.latencyMs) / 1000,
  );
}

// --- notifications ------------------------------------------------------------------------------------------

export const notifyDeliveries = new Counter({
  name: 'hospay_notify_deliveries_total',
  help: 'Notification delivery attempts to the HIS, by outcome (delivered, retry, failed: given up)',
  labelNames: ['outcome'] as const,
  registers: [registry],
});

export function countNotifyDelivery(outcome: string): void {
  notifyDeliveries.inc({ outcome: bounded(outcome, new Set(['delivered', 'retry', 'failed'])) });
}

// --- jobs ---------------------------------------------------------------------------------------------------

const JOBS = new Set(['expirer', 'notifier', 'reconciler']);

export const jobRuns = new Counter({
  name: 'hospay_job_runs_total',
  help: 'Background job passes, by job and result (ok, error)',
  labelNames: ['job_name', 'result'] as const,
  registers: [registry],
});

export const jobRunSeconds = new Histogram({
  name: 'hospay_job_run_duration_seconds',
  help: 'How long one pass of a background job took',
  labelNames: ['job_name'] as const,
  buckets: LATENCY_BUCKETS,
  registers: [registry],
});

interface Beat {
  job: string;
  intervalMs: number;
  startedAt: number;
  lastRunAt: number | null;
}

/** The running jobs of this process, by owner (a job instance): their last finished pass (wall clock). */
const beats = new Map<string, Beat>();

/** A job started: its passes are expected every `intervalMs`. */
export function jobStarted(owner: string, job: string, intervalMs: number): void {
  beats.set(owner, { job: bounded(job, JOBS), intervalMs, startedAt: Date.now(), lastRunAt: null });
}

/** A job stopped: no longer expected to run. */
export function jobStopped(owner: string): void {
  beats.delete(owner);
}

/** One pass of a job ended (ok or with an error), `ms` after it began. */
export function jobRan(owner: string, job: string, ms: number, ok: boolean): void {
  const name = bounded(job, JOBS);
  jobRuns.inc({ job_name: name, result: ok ? 'ok' : 'error' });
  jobRunSeconds.observe({ job_name: name }, Math.max(0, ms) / 1000);
  const beat = beats.get(owner);
  if (beat) beat.lastRunAt = Date.now();
}

/** Runs one pass of a job, timing it and recording its heartbeat (ok or not); the pass's result or error. */
export async function timedPass<T>(owner: string, job: string, pass: () => Promise<T>): Promise<T> {
  const started = Date.now();
  let ok = false;
  try {
    const r = await pass();
    ok = true;
    return r;
  } finally {
    jobRan(owner, job, Date.now() - started, ok);
  }
}

export interface JobLag {
  job: string;
  intervalMs: number;
  /** Milliseconds since the last pass ended (since the start, before the first). */
  sinceLastMs: number;
}

/** The running jobs' lag, the worst instance of each job (readiness and hospay_job_lag_seconds). */
export function jobLags(now = Date.now()): JobLag[] {
  const worst = new Map<string, JobLag>();
  for (const b of beats.values()) {
    const since = now - (b.lastRunAt ?? b.startedAt);
    const prev = worst.get(b.job);
    if (!prev || since > prev.sinceLastMs)
      worst.set(b.job, { job: b.job, intervalMs: b.intervalMs, sinceLastMs: since });
  }
  return [...worst.values()];
}

new Gauge({
  name: 'hospay_job_lag_seconds',
  help: 'Seconds since a running background job last finished a pass (its interval is the normal value)',
  labelNames: ['job_name'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const l of jobLags()) this.set({ job_name: l.job }, l.sinceLastMs / 1000);
  },
});

// --- scrape-time gauges (read from the store by the /metrics route) -----------------------------------------

/** What the store says at scrape time (store/health.ts); each part null when it could not be read. */
export interface StoreSnapshot {
  notify: { backlog: number; oldestDueAgeSeconds: number } | null;
  /** Open differences, and the age in days of the oldest one's business date (0 when none is open). */
  differences: { open: number; oldestOpenDays: number } | null;
  pool: { total: number; idle: number; waiting: number; max: number } | null;
}

const notifyBacklog = new Gauge({
  name: 'hospay_notify_backlog',
  help: 'Notifications not yet delivered and not given up (due now or waiting for their next attempt)',
  registers: [registry],
});
const notifyOldestDue = new Gauge({
  name: 'hospay_notify_oldest_due_age_seconds',
  help: 'Age of the oldest due notification (0 when none is due)',
  registers: [registry],
});
const openDifferences = new Gauge({
  name: 'hospay_recon_open_differences',
  help: 'Open reconciliation differences (all apps)',
  registers: [registry],
});
const oldestOpenDifference = new Gauge({
  name: 'hospay_recon_oldest_open_difference_days',
  help: 'Days from the business date of the oldest open difference to today (Asia/Shanghai); 0 when none',
  registers: [registry],
});
const dbPool = new Gauge({
  name: 'hospay_db_pool_connections',
  help: 'PostgreSQL connection pool: total, idle, waiting (queued requests), max (absent on the embedded db)',
  labelNames: ['state'] as const,
  registers: [registry],
});
export const scrapeErrors = new Counter({
  name: 'hospay_scrape_errors_total',
  help: 'Scrape-time reads of the store that failed or timed out, by part (notify, differences, pool)',
  labelNames: ['part'] as const,
  registers: [registry],
});
const scrapeOk = new Gauge({
  name: 'hospay_scrape_store_ok',
  help: '1 when the last scrape read every store gauge, 0 when a part failed',
  registers: [registry],
});
export const ready = new Gauge({
  name: 'hospay_ready',
  help: '1 when the last readiness check passed (GET /readyz), 0 when not',
  registers: [registry],
});

/** Puts a store snapshot into the gauges; a part that could not be read counts as a scrape error. */
export function applyStoreSnapshot(s: StoreSnapshot): void {
  let ok = true;
  if (s.notify) {
    notifyBacklog.set(s.notify.backlog);
    notifyOldestDue.set(s.notify.oldestDueAgeSeconds);
  } else {
    ok = false;
    scrapeErrors.inc({ part: 'notify' });
  }
  if (s.differences) {
    openDifferences.set(s.differences.open);
    oldestOpenDifference.set(s.differences.oldestOpenDays);
  } else {
    ok = false;
    scrapeErrors.inc({ part: 'differences' });
  }
  dbPool.reset();
  if (s.pool) for (const [state, v] of Object.entries(s.pool)) dbPool.set({ state }, v);
  scrapeOk.set(ok ? 1 : 0);
}

/** The text exposition (Content-Type: registry.contentType). */
export function renderMetrics(): Promise<string> {
  return registry.metrics();
}
