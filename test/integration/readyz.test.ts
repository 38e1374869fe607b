import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_DB } from '../support/db.js';
import { eventually, readyz, sampleValue, scrape, startBehindProxy } from '../support/observability.js';

describe('GET /healthz and /readyz', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t.close();
  });

  it('is ready on a started platform, open (no token), and says so in hospay_ready', async () => {
    const r = await readyz(t.url);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { status: 'ready' });
    assert.equal((await fetch(`${t.url}/healthz`)).status, 200);
    assert.equal(sampleValue((await scrape(t.url)).samples, 'hospay_ready'), 1);
  });

  it('is not ready while a migration this build knows is not applied, and names it', async () => {
    const row = await sql<{
      name: string;
      timestamp: string;
    }>`SELECT name, timestamp FROM kysely_migration WHERE name = '021-desk'`.execute(t.store.db);
    const saved = row.rows[0];
    assert.ok(saved);
    await sql`DELETE FROM kysely_migration WHERE name = '021-desk'`.execute(t.store.db);
    try {
      const r = await readyz(t.url);
      assert.equal(r.status, 503);
      assert.equal(r.body.status, 'not ready');
      assert.deepEqual(r.body.reasons, ['migration 021-desk not applied / 数据库迁移未执行']);
      assert.equal(sampleValue((await scrape(t.url)).samples, 'hospay_ready'), 0);
    } finally {
      await sql`INSERT INTO kysely_migration (name, timestamp) VALUES (${saved.name}, ${saved.timestamp})`.execute(
        t.store.db,
      );
    }
    assert.equal((await readyz(t.url)).status, 200);
  });

  it('is not ready when the platform key does not load; the reason carries no secret', async () => {
    const keys = t.platform.deps.keys;
    const original = keys.active.bind(keys);
    keys.active = () => Promise.reject(new Error('secret box: wrong master key 5f5f5f'));
    try {
      const r = await readyz(t.url);
      assert.equal(r.status, 503);
      assert.deepEqual(r.body.reasons, ['platform key not loaded / 平台密钥未加载']);
      assert.doesNotMatch(JSON.stringify(r.body), /5f5f|master key|stack/i);
    } finally {
      keys.active = original;
    }
    assert.equal((await readyz(t.url)).status, 200);
  });

  it('is not ready when the database does not answer in time', async () => {
    const health = t.platform.deps.health;
    const original = health.ping.bind(health);
    health.ping = () => Promise.reject(new Error('SELECT 1: no answer within 2000 ms'));
    try {
      const r = await readyz(t.url);
      assert.equal(r.status, 503);
      assert.deepEqual(r.body.reasons, ['database unreachable / 数据库不可达']);
    } finally {
      health.ping = original;
    }
  });
});

describe('/readyz and the background jobs', () => {
  let t: TestPlatform;
  /** The notifier's hung claims, answered (empty) when the test lets them go. */
  const hung: Array<() => void> = [];
  let stuck = false;
  const unstick = () => {
    stuck = false;
    for (const go of hung.splice(0)) go();
  };
  before(async () => {
    t = await startTestPlatform({
      env: {
        HOSPAY_JOBS: 'on',
        HOSPAY_JOB_INTERVAL: '100ms',
        HOSPAY_NOTIFY_INTERVAL: '100ms',
        HOSPAY_READY_JOB_STALE: '1s',
        HOSPAY_RECONCILE_AT: 'off',
      },
    });
  });
  after(async () => {
    unstick();
    await t.close();
  });

  it('goes not ready when a job stops finishing its passes, naming the job and its lag, and back', async () => {
    await eventually('ready with jobs running', 5_000, async () => (await readyz(t.url)).status === 200);
    const lag = await scrape(t.url);
    const notifierLag = sampleValue(lag.samples, 'hospay_job_lag_seconds', { job_name: 'notifier' });
    assert.ok(notifierLag !== undefined && notifierLag < 1, `notifier lag ${notifierLag}`);
    await eventually('an expirer pass counted', 5_000, async () => {
      const runs = (await scrape(t.url)).samples;
      return (sampleValue(runs, 'hospay_job_runs_total', { job_name: 'expirer', result: 'ok' }) ?? 0) >= 1;
    });

    // The notifier's claim hangs (a stuck statement): its passes stop finishing.
    const n = t.platform.deps.notifications;
    const original = n.claimDueWithTrades.bind(n);
    n.claimDueWithTrades = (...args) =>
      stuck ? new Promise((resolve) => hung.push(() => resolve([]))) : original(...args);
    stuck = true;
    const down = await eventually('not ready', 8_000, async () => {
      const r = await readyz(t.url);
      return r.status === 503 ? r : null;
    });
    assert.ok(hung.length >= 1);
    assert.equal(down.body.reasons?.length, 1, JSON.stringify(down.body));
    assert.match(down.body.reasons?.[0] ?? '', /^job notifier last ran \d+ s ago/);
    const stale = sampleValue((await scrape(t.url)).samples, 'hospay_job_lag_seconds', {
      job_name: 'notifier',
    });
    assert.ok(stale !== undefined && stale > 1, `notifier lag ${stale}`);

    unstick();
    n.claimDueWithTrades = original;
    await eventually('ready again', 5_000, async () => (await readyz(t.url)).status === 200);
  });
});

describe('/readyz when PostgreSQL goes away (TCP proxy cut)', { skip: TEST_DB !== 'postgres' }, () => {
  it('is not ready while the database is unreachable and ready again when it returns', async () => {
    const p = await startBehindProxy();
    try {
      assert.equal((await readyz(p.url)).status, 200);
      p.proxy.cut();
      const down = await readyz(p.url);
      assert.equal(down.status, 503);
      assert.deepEqual(down.body.reasons, ['database unreachable / 数据库不可达']);
      // /healthz stays alive; a scrape still answers, the store part as an error metric.
      assert.equal((await fetch(`${p.url}/healthz`)).status, 200);
      const s = await scrape(p.url);
      assert.equal(s.status, 200);
      assert.equal(sampleValue(s.samples, 'hospay_scrape_store_ok'), 0);
      p.proxy.restore();
      await eventually('ready again', 10_000, async () => (await readyz(p.url)).status === 200);
      assert.equal(sampleValue((await scrape(p.url)).samples, 'hospay_scrape_store_ok'), 1);
    } finally {
      await p.close();
    }
  });
});
