import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import pg from 'pg';
import type { Config } from '../../src/config/config.js';
import { startPlatform, type Platform } from '../../src/main.js';
import { openStore, type Store } from '../../src/store/db.js';
import { createLogger } from '../../src/logging.js';
import { FakeClock } from './clock.js';
import { freshDatabase, type TestDatabase } from './db.js';
import { postRaw, testConfig, xmlDoc, type OfflineAnswer } from './platform.js';

const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

/**
 * A "replica" that lags on purpose: a second database on the local PostgreSQL holding a copy of the primary taken
 * when the test says (`sync`). Between two syncs it shows the primary as it was, as a replica behind would.
 */
export interface LaggingReplica {
  url: string;
  /** Copies the primary's rows now (schema on the first call), replacing what the copy held. */
  sync(): void;
  drop(): Promise<void>;
}

function sh(script: string): void {
  const r = spawnSync('bash', ['-o', 'pipefail', '-c', script], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`replica copy failed (${r.status}): ${r.stderr.slice(0, 2000)}`);
}

export async function laggingReplica(primaryUrl: string): Promise<LaggingReplica> {
  const primary = new URL(primaryUrl);
  const name = `${primary.pathname.slice(1)}_replica`;
  const adminUrl = new URL(primaryUrl);
  adminUrl.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: adminUrl.toString() });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(primaryUrl);
  url.pathname = `/${name}`;
  let copied = false;
  return {
    url: url.toString(),
    sync() {
      const from = `pg_dump --no-owner --no-privileges ${copied ? '--data-only --disable-triggers' : ''} --dbname='${primaryUrl}'`;
      const to = `psql -q -v ON_ERROR_STOP=1 --dbname='${url.toString()}'`;
      if (copied)
        // Empty every table of the copy, then load the primary's rows as they are now.
        sh(
          `${to} -c "DO \\$\\$ DECLARE r record; BEGIN FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP EXECUTE format('TRUNCATE %I CASCADE', r.tablename); END LOOP; END \\$\\$;" && ${from} | ${to}`,
        );
      else sh(`${from} | ${to}`);
      copied = true;
    },
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl.toString() });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export interface ReplicaPlatform {
  platform: Platform;
  url: string;
  clock: FakeClock;
  store: Store;
  appId: string;
  token: string;
  replica: LaggingReplica;
  /** The primary's store configuration (url), for a second platform or a read store of the test's own. */
  primaryUrl: string;
  logs: () => string;
  offline(name: string, fields: Record<string, string | undefined>): Promise<OfflineAnswer>;
  admin(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; data: Record<string, unknown> }>;
  /** Another platform on the same primary, listening, with this read URL (e.g. a replica that is down). */
  another(readUrl: string): Promise<{ platform: Platform; url: string; logs: () => string }>;
  close(): Promise<void>;
}

function sink() {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString('utf8');
      cb();
    },
  });
  return { stream, text: () => text };
}

async function start(config: Config, clock: FakeClock, store: Store, log: Writable): Promise<Platform> {
  return startPlatform({
    config,
    clock,
    store,
    log: createLogger('info', log),
    adminToken: ADMIN_TOKEN,
    demo: false,
  });
}

/**
 * The platform on a fresh PostgreSQL database with HOSPAY_READ_DATABASE_URL pointing at a lagging copy of it
 * (synced once after the test app was created). PostgreSQL only.
 */
export async function startReplicaPlatform(): Promise<ReplicaPlatform> {
  const db: TestDatabase = await freshDatabase();
  if (db.store.kind !== 'postgres') throw new Error('a replica needs PostgreSQL');
  const primaryUrl = db.store.url;
  const primaryStore = db.store;
  const replica = await laggingReplica(primaryUrl);
  const clock = new FakeClock();
  const logs = sink();
  const base = testConfig({ PORT: '0' });
  const config: Config = {
    ...base,
    store: { ...db.store, readUrl: replica.url, readPoolSize: 2 },
    dataDir: '/tmp/hospay-test-unused',
  };
  const store = await openStore(db.store);
  const platform = await start(config, clock, store, logs.stream);
  const addr = platform.server.server.address();
  const url = `http://127.0.0.1:${addr && typeof addr === 'object' ? addr.port : 0}`;
  platform.config.publicBaseUrl = url;
  (platform.simulator as unknown as { publicBaseUrl: string }).publicBaseUrl = url;
  const created = await platform.deps.apps.create({ name: '副本医院', hospitalId: 'H-R' });
  replica.sync();
  const others: Platform[] = [];
  const adminOf =
    (base: string) =>
    async (
      method: string,
      path: string,
      body?: unknown,
    ): Promise<{ status: number; data: Record<string, unknown> }> => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${ADMIN_TOKEN}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, data: (await res.json()) as Record<string, unknown> };
    };
  return {
    platform,
    url,
    clock,
    store,
    appId: created.appId,
    token: created.accessToken,
    replica,
    primaryUrl,
    logs: logs.text,
    offline: (name, fields) =>
      postRaw(`${url}/offline/${name}`, xmlDoc({ AccessToken: created.accessToken, ...fields })),
    admin: adminOf(url),
    async another(readUrl) {
      const s = sink();
      const p = await start(
        { ...config, port: 0, store: { ...primaryStore, readUrl } },
        clock,
        store,
        s.stream,
      );
      others.push(p);
      const a = p.server.server.address();
      return {
        platform: p,
        url: `http://127.0.0.1:${a && typeof a === 'object' ? a.port : 0}`,
        logs: s.text,
      };
    },
    async close() {
      for (const p of others) await p.close();
      await platform.close();
      await store.close();
      await replica.drop();
      await db.drop();
    },
  };
}
