import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import { startPlatform, type Platform } from '../../../src/main.js';
import { openStore, type Store, type StoreConfig } from '../../../src/store/db.js';
import { createLogger } from '../../../src/logging.js';
import { formatShanghai } from '../../../src/domain/clock.js';
import { FakeClock } from '../../support/clock.js';
import { freshDatabase, TEST_DB, type TestDatabase } from '../../support/db.js';
import { orderNo, testConfig } from '../../support/platform.js';
import { TEST_APP_KEY, signedForm } from '../../support/gateway.js';
import { assertNoSecrets } from './log-check.js';

/**
 * Item 10 of the reliability battery: one nonce sent many times, at once and one after the other, on one and on
 * two instances, is accepted exactly once; timestamps at the configured clock skew pass and beyond it fail; a
 * spent nonce is remembered for as long as its request could be replayed; and a restart forgets nothing.
 */

interface Instance {
  platform: Platform;
  store: Store;
  url: string;
}
interface Answer {
  code: string;
  sub: string;
  raw: string;
}

describe(`reliability 10: replay (${TEST_DB})`, () => {
  let db: TestDatabase | null = null;
  let dataDir = '';
  let storeConfig: StoreConfig;
  let a: Instance | null = null;
  const clock = new FakeClock();
  let logText = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logText += chunk.toString('utf8');
      cb();
    },
  });
  let appId = '';
  let otherApp = '';
  let known = '';
  const figures: string[] = [];

  /** Starts a whole platform on the store, as `hospay serve` would after a restart. */
  async function start(env: Record<string, string> = {}): Promise<Instance> {
    const config = { ...testConfig({ PORT: '0', ...env }), store: storeConfig, dataDir };
    const store = await openStore(storeConfig);
    const platform = await startPlatform({
      config,
      clock,
      store,
      log: createLogger('info', sink),
      adminToken: 'test-admin-token-0123456789abcdef',
      demo: false,
    });
    const addr = platform.server.server.address();
    const port = addr && typeof addr === 'object' ? addr.port : 0;
    return { platform, store, url: `http://127.0.0.1:${port}` };
  }
  async function stop(i: Instance): Promise<void> {
    await i.platform.close();
    await i.store.close();
  }

  before(async () => {
    if (TEST_DB === 'postgres') {
      db = await freshDatabase();
      storeConfig = db.store;
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-replay-'));
    } else {
      // On disk, so that a restart really reopens the database instead of sharing an object in memory.
      dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-replay-'));
      storeConfig = { kind: 'embedded', dataDir: path.join(dataDir, 'db') };
    }
    a = await start();
    appId = (await a.platform.deps.apps.create({ name: '重放测试医院' })).appId;
    await a.platform.deps.apps.setPublicKey(appId, TEST_APP_KEY.publicPem);
    otherApp = (await a.platform.deps.apps.create({ name: '另一家医院' })).appId;
    await a.platform.deps.apps.setPublicKey(otherApp, TEST_APP_KEY.publicPem);
    known = orderNo('MZ');
    const r = await post(a.url, form({ method: 'lc.trade.h5.pay', biz: h5(known) }));
    assert.equal(r.code, '10000', r.raw);
  });
  after(async () => {
    if (a) await stop(a);
    await db?.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  const inst = () => {
    assert.ok(a);
    return a;
  };
  const skewMs = () => inst().platform.config.gateway.clockSkewMs;
  const h5 = (no = orderNo('MZ')) =>
    JSON.stringify({ out_trade_no: no, total_amount: '9.99', subject: '门诊缴费', order_type: 'TREATMENT' });

  function form(
    o: { app?: string; method?: string; biz?: string; nonce?: string; timestamp?: string } = {},
  ): string {
    const p = {
      app_id: o.app ?? appId,
      method: o.method ?? 'lc.trade.query',
      timestamp: o.timestamp ?? formatShanghai(clock.now()),
      nonce_str: o.nonce ?? randomUUID(),
      biz_content: o.biz ?? JSON.stringify({ out_trade_no: known }),
      sign_type: 'RSA2',
    };
    return new URLSearchParams(signedForm(p, TEST_APP_KEY.privateKey)).toString();
  }

  async function post(url: string, body: string): Promise<Answer> {
    const res = await fetch(`${url}/gateway`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    assert.ok(res.status < 500, `HTTP ${res.status}`);
    const raw = await res.text();
    const json = JSON.parse(raw) as { code: string; biz_content: Record<string, unknown> };
    return { code: json.code, sub: String(json.biz_content['sub_code'] ?? ''), raw };
  }

  const tally = (answers: Answer[]) => {
    const m: Record<string, number> = {};
    for (const x of answers) {
      const k = x.code === '10000' ? 'accepted' : x.sub;
      m[k] = (m[k] ?? 0) + 1;
    }
    return m;
  };
  const count = async (table: 'trades' | 'gateway_nonces', nonce?: string) => {
    const q = nonce
      ? sql<{ n: string }>`SELECT count(*)::text AS n FROM gateway_nonces WHERE nonce = ${nonce}`
      : sql<{ n: string }>`SELECT count(*)::text AS n FROM ${sql.table(table)}`;
    return Number((await q.execute(inst().store.db)).rows[0]?.n ?? 0);
  };

  const captured: string[] = [];

  it('one nonce, 200 identical requests at once: exactly one accepted', async (tc) => {
    const body = form();
    captured.push(body);
    const nonces = await count('gateway_nonces');
    const answers = await Promise.all(Array.from({ length: 200 }, () => post(inst().url, body)));
    assert.deepEqual(tally(answers), { accepted: 1, 'isv.repeated-nonce': 199 });
    assert.equal(await count('gateway_nonces'), nonces + 1);
    figures.push(`200 identical at once: ${JSON.stringify(tally(answers))}`);
    tc.diagnostic(figures.at(-1) ?? '');
  });

  it('one nonce, 200 different payments at once: one accepted, one trade made', async (tc) => {
    const nonce = randomUUID();
    const bodies = Array.from({ length: 200 }, () => form({ method: 'lc.trade.h5.pay', biz: h5(), nonce }));
    captured.push(...bodies.slice(0, 3));
    const trades = await count('trades');
    const answers = await Promise.all(bodies.map((b) => post(inst().url, b)));
    assert.deepEqual(tally(answers), { accepted: 1, 'isv.repeated-nonce': 199 });
    assert.equal(await count('trades'), trades + 1, 'exactly one trade');
    figures.push(`200 different payments, one nonce, at once: ${JSON.stringify(tally(answers))}, +1 trade`);
    tc.diagnostic(figures.at(-1) ?? '');
  });

  it('one nonce, 200 requests one after the other: the first accepted', async (tc) => {
    const body = form();
    captured.push(body);
    const answers: Answer[] = [];
    for (let i = 0; i < 200; i++) answers.push(await post(inst().url, body));
    assert.equal(answers[0]?.code, '10000');
    assert.deepEqual(tally(answers), { accepted: 1, 'isv.repeated-nonce': 199 });
    figures.push(`200 one after the other: ${JSON.stringify(tally(answers))}`);
    tc.diagnostic(figures.at(-1) ?? '');
  });

  it('one nonce on two instances at once (100 + 100): one accepted', async (tc) => {
    // A second instance on the same database (its own connection pool on PostgreSQL), as a second server.
    const store2 = storeConfig.kind === 'postgres' ? await openStore(storeConfig) : inst().store;
    const second = await startPlatform({
      config: { ...inst().platform.config, port: 0 },
      clock,
      store: store2,
      log: createLogger('info', sink),
      adminToken: 'test-admin-token-0123456789abcdef',
      demo: false,
      listen: false,
    });
    try {
      const body = form();
      captured.push(body);
      const viaSecond = () =>
        second.server
          .inject({
            method: 'POST',
            url: '/gateway',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            payload: body,
          })
          .then((r) => {
            const json = JSON.parse(r.body) as { code: string; biz_content: Record<string, unknown> };
            return { code: json.code, sub: String(json.biz_content['sub_code'] ?? ''), raw: r.body };
          });
      const answers = await Promise.all(
        Array.from({ length: 200 }, (_, i) => (i % 2 ? viaSecond() : post(inst().url, body))),
      );
      assert.deepEqual(tally(answers), { accepted: 1, 'isv.repeated-nonce': 199 });
      figures.push(`100 + 100 on two instances: ${JSON.stringify(tally(answers))}`);
      tc.diagnostic(figures.at(-1) ?? '');
    } finally {
      await second.close();
      if (store2 !== inst().store) await store2.close();
    }
  });

  it('a nonce is per app: two apps may use one value, each once', async () => {
    const nonce = `shared-${randomUUID()}`;
    const mine = await post(inst().url, form({ nonce }));
    const theirs = await post(inst().url, form({ app: otherApp, nonce, biz: '{"out_trade_no":"MZNONE"}' }));
    assert.equal(mine.code, '10000');
    assert.equal(theirs.sub, 'TRADE_NOT_EXIST', 'authenticated (a business answer), not a replay');
    assert.equal((await post(inst().url, form({ app: otherApp, nonce }))).sub, 'isv.repeated-nonce');
  });

  it('timestamps: at the configured skew accepted, one second beyond refused, either way', async (tc) => {
    const s = skewMs();
    const now = clock.now().getTime();
    const at = (ms: number) => formatShanghai(new Date(now + ms));
    const nonces = await count('gateway_nonces');
    const accepted: Array<[string, number]> = [
      ['now', 0],
      ['skew in the past', -s],
      ['skew in the future', s],
      ['skew − 1 s in the past', -s + 1000],
      ['skew − 1 s in the future', s - 1000],
    ];
    for (const [label, ms] of accepted) {
      const r = await post(inst().url, form({ timestamp: at(ms) }));
      assert.equal(r.code, '10000', `${label}: ${r.raw}`);
    }
    const stale: Array<[string, string]> = [
      ['skew + 1 s in the past', at(-s - 1000)],
      ['skew + 1 s in the future', at(s + 1000)],
      ['one hour ago', at(-3_600_000)],
      ['one hour ahead', at(3_600_000)],
      ['UTC instead of Shanghai time (8 hours behind)', at(-8 * 3_600_000)],
      ['8 hours ahead', at(8 * 3_600_000)],
      ['yesterday', at(-86_400_000)],
      ['next year', at(365 * 86_400_000)],
      ['the epoch', '1970-01-01 08:00:00'],
      ['the end of the century', '2099-12-31 23:59:59'],
    ];
    for (const [label, ts] of stale) {
      const r = await post(inst().url, form({ timestamp: ts }));
      assert.equal(r.sub, 'isv.stale-timestamp', `${label}: ${r.raw}`);
    }
    assert.equal(await count('gateway_nonces'), nonces + accepted.length, 'stale requests spend no nonce');
    // The same with the server's clock moving instead of the timestamp.
    for (const [dir, sign] of [
      ['server clock ahead', 1],
      ['server clock behind', -1],
    ] as const) {
      const edge = form();
      const beyond = form();
      clock.advance(sign * s);
      assert.equal((await post(inst().url, edge)).code, '10000', `${dir} by the skew`);
      clock.advance(sign * 1000);
      assert.equal((await post(inst().url, beyond)).sub, 'isv.stale-timestamp', `${dir} by skew + 1 s`);
      clock.set(new Date(now));
    }
    figures.push(
      `skew ${s / 1000} s: ${accepted.length + 2} timestamps at or within it accepted, ${stale.length + 2} beyond refused`,
    );
    tc.diagnostic(figures.at(-1) ?? '');
  });

  it('after a restart on the same database, every spent nonce is still refused', async (tc) => {
    assert.ok(captured.length >= 5);
    const signedBefore = form(); // signed, never sent: still good after the restart
    const refusedBefore = form({ nonce: `r-${randomUUID()}` });
    const tampered = refusedBefore.replace(/biz_content=[^&]*/, `biz_content=${encodeURIComponent('{}')}`);
    assert.equal((await post(inst().url, tampered)).sub, 'isv.invalid-signature');
    await stop(inst());
    a = null;
    // Restarted with another clock skew, to check the edges of a configured (not default) value too.
    a = await start({ HOSPAY_GATEWAY_CLOCK_SKEW: '90s' });
    assert.equal(skewMs(), 90_000);
    const answers = await Promise.all(captured.map((b) => post(inst().url, b)));
    assert.deepEqual(tally(answers), { 'isv.repeated-nonce': captured.length });
    assert.equal((await post(inst().url, signedBefore)).code, '10000', 'a request signed before, sent after');
    assert.equal((await post(inst().url, refusedBefore)).code, '10000', 'a refused request spent nothing');
    assert.equal((await post(inst().url, signedBefore)).sub, 'isv.repeated-nonce');
    const now = clock.now().getTime();
    for (const [ms, want] of [
      [90_000, '10000'],
      [-90_000, '10000'],
      [91_000, 'isv.stale-timestamp'],
      [-91_000, 'isv.stale-timestamp'],
    ] as const) {
      const r = await post(inst().url, form({ timestamp: formatShanghai(new Date(now + ms)) }));
      assert.equal(r.code === '10000' ? '10000' : r.sub, want, `${ms / 1000} s with a 90 s skew`);
    }
    figures.push(`after a restart: ${captured.length} replays of spent nonces all refused`);
    tc.diagnostic(figures.at(-1) ?? '');
  });

  it('a spent nonce is kept as long as its request could be replayed, then purged', async (tc) => {
    const s = skewMs();
    const t0 = clock.now().getTime();
    try {
      // Runs last but the log check: the clock goes back to t0 afterwards, and a clock that goes back after a
      // purge would make purged nonces look fresh again (real clocks do not go back by minutes).
      // The most a request can live: a timestamp `skew` ahead, replayed when the clock is `skew` past it.
      const nonce = randomUUID();
      const body = form({ nonce, timestamp: formatShanghai(new Date(t0 + s)) });
      assert.equal((await post(inst().url, body)).code, '10000');
      clock.set(new Date(t0 + 2 * s));
      await inst().platform.expiry.tick(); // purges nonces that expired
      assert.equal(await count('gateway_nonces', nonce), 1, 'still remembered at 2 × skew');
      assert.equal((await post(inst().url, body)).sub, 'isv.repeated-nonce');
      clock.set(new Date(t0 + 2 * s + 1000));
      await inst().platform.expiry.tick();
      assert.equal(await count('gateway_nonces', nonce), 0, 'purged after 2 × skew');
      assert.equal(
        (await post(inst().url, body)).sub,
        'isv.stale-timestamp',
        'and the request is stale by then',
      );
      tc.diagnostic(`nonce kept for 2 × ${s / 1000} s; purged 1 s later, when its request is already stale`);
    } finally {
      clock.set(new Date(t0));
    }
  });

  it('logs: no private keys, payment codes, ID or phone numbers', async (tc) => {
    const scan = assertNoSecrets(logText, {
      privateKeys: [(await inst().platform.deps.keys.active()).privateKey],
    });
    tc.diagnostic(`logs: ${scan.lines} lines, ${scan.searched} secrets/patterns searched, none found`);
    tc.diagnostic(`figures: ${figures.join('; ')}`);
  });
});
