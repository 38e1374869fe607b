import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyStoreSnapshot,
  countRequest,
  jobLags,
  jobRan,
  jobStarted,
  jobStopped,
  observeChannelCall,
  observeTradeOutcome,
  renderMetrics,
  timedPass,
} from '../../src/metrics.js';
import { parseMetrics, sampleValue } from '../support/observability.js';

const samples = async () => parseMetrics(await renderMetrics());

describe('metrics: bounded labels', () => {
  it('an unexpected door, operation or outcome becomes "other"; odd text never becomes a label', async () => {
    countRequest('ftp', 'FWC_IF_Barcode_Pay', 'SUCCESS');
    countRequest('offline', 'name with spaces <script>', undefined);
    observeTradeOutcome('steal', 'alipay', 'simulator', 'paid');
    observeTradeOutcome('refund', 'alipay', 'simulator', 'great success');
    const s = await samples();
    assert.equal(
      sampleValue(s, 'hospay_requests_total', {
        door: 'other',
        interface: 'FWC_IF_Barcode_Pay',
        sub_code: 'SUCCESS',
      }),
      1,
    );
    assert.equal(
      sampleValue(s, 'hospay_requests_total', { door: 'offline', interface: 'other', sub_code: 'SUCCESS' }),
      1,
    );
    assert.equal(
      sampleValue(s, 'hospay_trade_outcomes_total', {
        operation: 'other',
        pay_type: 'alipay',
        channel: 'simulator',
        outcome: 'paid',
      }),
      1,
    );
    assert.equal(
      sampleValue(s, 'hospay_trade_outcomes_total', {
        operation: 'refund',
        pay_type: 'alipay',
        channel: 'simulator',
        outcome: 'other',
      }),
      1,
    );
    assert.doesNotMatch(await renderMetrics(), /<script>|great success/);
  });

  it('a channel call is filed under the first word of its outcome, its latency in seconds', async () => {
    observeChannelCall('alipay', {
      operation: 'alipay.trade.pay',
      outcome: 'declined ACQ.TRADE_HAS_CLOSE',
      latencyMs: 40,
    });
    observeChannelCall('alipay', {
      operation: 'alipay.trade.pay',
      outcome: 'unknown: timeout',
      latencyMs: 10_000,
    });
    const s = await samples();
    const labels = (outcome: string) => ({ channel: 'alipay', operation: 'alipay.trade.pay', outcome });
    assert.equal(sampleValue(s, 'hospay_channel_call_duration_seconds_count', labels('declined')), 1);
    assert.equal(sampleValue(s, 'hospay_channel_call_duration_seconds_sum', labels('declined')), 0.04);
    assert.equal(sampleValue(s, 'hospay_channel_call_duration_seconds_sum', labels('unknown')), 10);
    assert.equal(
      sampleValue(s, 'hospay_channel_call_duration_seconds_bucket', { ...labels('unknown'), le: '5' }),
      0,
    );
    assert.equal(
      sampleValue(s, 'hospay_channel_call_duration_seconds_bucket', { ...labels('unknown'), le: '10' }),
      1,
    );
  });
});

describe('metrics: jobs', () => {
  it('tracks each running job instance and reports the worst lag per job', async () => {
    const now = Date.now();
    jobStarted('a', 'notifier', 1_000);
    jobStarted('b', 'notifier', 1_000);
    jobRan('a', 'notifier', 5, true);
    const lag = jobLags(now + 60_000).find((l) => l.job === 'notifier');
    assert.ok(lag && lag.sinceLastMs > 59_000, JSON.stringify(lag)); // b never ran: counted from its start
    jobStopped('a');
    jobStopped('b');
    assert.equal(
      jobLags().find((l) => l.job === 'notifier'),
      undefined,
    );
  });

  it('timedPass counts ok and error passes and rethrows', async () => {
    await timedPass('x', 'expirer', async () => 1);
    await assert.rejects(
      timedPass('x', 'expirer', async () => {
        throw new Error('boom');
      }),
      /boom/,
    );
    const s = await samples();
    assert.equal(sampleValue(s, 'hospay_job_runs_total', { job_name: 'expirer', result: 'ok' }), 1);
    assert.equal(sampleValue(s, 'hospay_job_runs_total', { job_name: 'expirer', result: 'error' }), 1);
    assert.equal(sampleValue(s, 'hospay_job_run_duration_seconds_count', { job_name: 'expirer' }), 2);
  });
});

describe('metrics: store snapshot', () => {
  it('sets the gauges, and a missing part counts as a scrape error', async () => {
    applyStoreSnapshot({
      notify: { backlog: 3, oldestDueAgeSeconds: 12 },
      differences: null,
      pool: { total: 4, idle: 1, waiting: 2, max: 10 },
    });
    const s = await samples();
    assert.equal(sampleValue(s, 'hospay_notify_backlog'), 3);
    assert.equal(sampleValue(s, 'hospay_notify_oldest_due_age_seconds'), 12);
    assert.equal(sampleValue(s, 'hospay_db_pool_connections', { state: 'waiting' }), 2);
    assert.equal(sampleValue(s, 'hospay_scrape_errors_total', { part: 'differences' }), 1);
    assert.equal(sampleValue(s, 'hospay_scrape_store_ok'), 0);
  });
});
