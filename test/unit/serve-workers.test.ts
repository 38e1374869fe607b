import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import {
  CLUSTER_AGGREGATORS,
  DEATH_LIMIT,
  DeathWindow,
  aggregateMetrics,
  requestTracker,
  resolveWorkers,
  workerPoolSize,
} from '../../src/cli/cluster.js';
import { loadConfig } from '../../src/config/config.js';
import { UsageError } from '../../src/domain/errors.js';
import { registry } from '../../src/metrics.js';

const pg = { workers: null, store: { kind: 'postgres', url: 'postgres://x/y' } } as const;
const embedded = { workers: null, store: { kind: 'embedded', dataDir: null } } as const;

describe('serve --workers: how many', () => {
  it('defaults to the cores on PostgreSQL and to 1 on the embedded database', () => {
    assert.equal(resolveWorkers(undefined, pg, 8), 8);
    assert.equal(resolveWorkers(undefined, pg, 1), 1);
    assert.equal(resolveWorkers(undefined, pg, 200), 64);
    assert.equal(resolveWorkers(undefined, embedded, 8), 1);
  });

  it('takes --workers over HOSPAY_WORKERS', () => {
    assert.equal(resolveWorkers('3', { ...pg, workers: 5 }, 8), 3);
    assert.equal(resolveWorkers(undefined, { ...pg, workers: 5 }, 8), 5);
    assert.equal(resolveWorkers('1', embedded, 8), 1);
    assert.equal(resolveWorkers(undefined, { ...embedded, workers: 1 }, 8), 1);
  });

  it('refuses a count outside 1..64 and more than one on the embedded database (usage errors)', () => {
    for (const bad of ['0', '65', '-1', '2.5', 'two', '', '0064x'])
      assert.throws(() => resolveWorkers(bad, pg, 8), UsageError, bad);
    assert.throws(
      () => resolveWorkers('2', embedded, 8),
      (e: unknown) => {
        assert.ok(e instanceof UsageError);
        assert.match(e.message, /--workers=2/);
        assert.match(e.message, /DATABASE_URL/);
        assert.match(e.message, /内嵌数据库/);
        return true;
      },
    );
    assert.throws(() => resolveWorkers(undefined, { ...embedded, workers: 4 }, 8), /HOSPAY_WORKERS=4/);
  });

  it('reads HOSPAY_WORKERS (1..64) from the environment', () => {
    assert.equal(loadConfig({}).workers, null);
    assert.equal(loadConfig({ HOSPAY_WORKERS: '4' }).workers, 4);
    assert.throws(() => loadConfig({ HOSPAY_WORKERS: '0' }), /HOSPAY_WORKERS/);
    assert.throws(() => loadConfig({ HOSPAY_WORKERS: 'many' }), /HOSPAY_WORKERS/);
  });

  it('gives each worker a smaller pool when many would pass the connection budget', () => {
    assert.equal(workerPoolSize(2, {}), 10);
    assert.equal(workerPoolSize(8, {}), 10);
    assert.equal(workerPoolSize(16, {}), 5);
    assert.equal(workerPoolSize(64, {}), 2);
    assert.equal(workerPoolSize(16, { HOSPAY_DB_POOL: '20' }), null);
  });
});

describe('serve --workers: deaths', () => {
  it('replaces at once, then backs off, and stops after more than DEATH_LIMIT deaths in the window', () => {
    const w = new DeathWindow();
    const first = w.record(1_000);
    assert.deepEqual(first, { recent: 1, stop: false, delayMs: 0 });
    let last = first;
    for (let i = 2; i <= DEATH_LIMIT; i++) last = w.record(1_000 + i);
    assert.equal(last.stop, false);
    assert.ok(last.delayMs > 0);
    assert.equal(w.record(2_000).stop, true);
  });

  it('forgets deaths older than the window', () => {
    const w = new DeathWindow(5, 30_000);
    for (let i = 0; i < 5; i++) w.record(i * 1_000);
    assert.equal(w.record(40_000).stop, false);
    assert.equal(w.record(40_001).recent, 2);
  });
});

describe('serve --workers: metrics across workers', () => {
  it('names only metrics that exist', async () => {
    const names = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
    for (const name of Object.keys(CLUSTER_AGGREGATORS)) assert.ok(names.has(name), name);
  });

  it('sums counters, takes the answering worker’s store gauges and the worst job lag', async () => {
    const one = async (requests: number, backlog: number, lag: number) => {
      const r = new Registry();
      new Counter({ name: 'hospay_requests_total', help: 'h', registers: [r] }).inc(requests);
      new Gauge({ name: 'hospay_notify_backlog', help: 'h', registers: [r] }).set(backlog);
      new Gauge({ name: 'hospay_job_lag_seconds', help: 'h', registers: [r] }).set(lag);
      return r.getMetricsAsJSON();
    };
    const text = await aggregateMetrics([await one(3, 7, 1), await one(4, 2, 9), await one(5, 0, 2)]);
    assert.match(text, /^hospay_requests_total 12$/m);
    assert.match(text, /^hospay_notify_backlog 7$/m);
    assert.match(text, /^hospay_job_lag_seconds 9$/m);
  });
});

describe('serve --workers: a worker’s graceful stop', () => {
  it('stops listening, closes keep-alive connections after their answer, and lets requests finish', async () => {
    let release: () => void = () => {};
    const slow = new Promise<void>((r) => (release = r));
    const server = http.createServer((req, res) => {
      if (req.url === '/slow') void slow.then(() => res.end('slow'));
      else res.end('ok');
    });
    server.keepAliveTimeout = 60_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    const tracker = requestTracker([server]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
    const get = (path: string) =>
      new Promise<{ body: string; connection: string | undefined }>((resolve, reject) =>
        http
          .get({ port, host: '127.0.0.1', path, agent }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ body, connection: res.headers.connection }));
          })
          .on('error', reject),
      );
    assert.equal((await get('/')).connection, 'keep-alive');
    const inFlight = get('/slow');
    await new Promise((r) => setTimeout(r, 50));
    const drained = tracker.drain(5_000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.listening, false);
    release();
    const answer = await inFlight;
    assert.equal(answer.body, 'slow');
    assert.equal(answer.connection, 'close');
    const started = Date.now();
    await drained;
    assert.ok(Date.now() - started < 4_000, 'the idle connection was closed');
    agent.destroy();
  });
});
