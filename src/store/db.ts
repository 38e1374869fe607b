import fs from 'node:fs';
import path from 'node:path';
import { Kysely, Migrator, PostgresDialect, type Migration, type MigrationProvider } from 'kysely';
import pg from 'pg';
import type { StoreConfig } from '../config/config.js';
import { PGlite, types as pgliteTypes } from '@electric-sql/pglite';
import { PGliteDialect } from 'kysely-pglite-dialect';
import type { Database } from './schema.js';
import { usePreparedStatements } from './prepared.js';
import { secureDataDir } from '../runtime/local-files.js';
import * as m001 from './migrations/001-initial.js';
import * as m002 from './migrations/002-gateway.js';
import * as m003 from './migrations/003-medicare.js';
import * as m004 from './migrations/004-insurance-state.js';
import * as m005 from './migrations/005-reconciliation.js';
import * as m006 from './migrations/006-job-claims.js';
import * as m007 from './migrations/007-finance-operators.js';
import * as m008 from './migrations/008-recon-settings.js';
import * as m009 from './migrations/009-channels.js';
import * as m010 from './migrations/010-notify-allowlist.js';
import * as m013 from './migrations/013-notify-records.js';
import * as m014 from './migrations/014-legacy-sign.js';
import * as m011 from './migrations/011-sealed-platform-keys.js';
import * as m012 from './migrations/012-login-throttle.js';
import * as m017 from './migrations/017-recon-incomplete.js';
import * as m020 from './migrations/020-medicare-details.js';
import * as m018 from './migrations/018-platform-channel-configs.js';
import * as m019 from './migrations/019-ecny.js';
import * as m021 from './migrations/021-desk.js';
import * as m022 from './migrations/022-desk-search.js';
import * as m023 from './migrations/023-history-indexes.js';

export type Db = Kysely<Database>;

/** The migrations, in order. A new one is one more line here. */
const MIGRATIONS: Record<string, Migration> = {
  '001-initial': m001,
  '002-gateway': m002,
  '003-medicare': m003,
  '004-insurance-state': m004,
  '005-reconciliation': m005,
  '006-job-claims': m006,
  '007-finance-operators': m007,
  '008-recon-settings': m008,
  '009-channels': m009,
  '010-notify-allowlist': m010,
  '013-notify-records': m013,
  '014-legacy-sign': m014,
  '011-sealed-platform-keys': m011,
  '012-login-throttle': m012,
  '017-recon-incomplete': m017,
  '020-medicare-details': m020,
  '018-platform-channel-configs': m018,
  '019-ecny': m019,
  '021-desk': m021,
  '022-desk-search': m022,
  '023-history-indexes': m023,
};

/** The names of the migrations this build knows (readiness compares them with the applied ones). */
export const MIGRATION_NAMES: readonly string[] = Object.keys(MIGRATIONS);

class StaticMigrationProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return MIGRATIONS;
  }
}

export type { StoreConfig };

export interface Store {
  db: Db;
  kind: StoreConfig['kind'];
  close(): Promise<void>;
  /** PostgreSQL's connection pool right now (metrics); absent on the embedded database. */
  poolStats?: () => { total: number; idle: number; waiting: number; max: number };
}

const INT8_OID = 20;

export interface StoreOptions {
  /** A pooled PostgreSQL connection failed (the server restarted, the network dropped it). */
  onConnectionError?: (err: Error) => void;
  /** Something worth an operator's attention (the data directory could not be made private). */
  onWarning?: (message: string) => void;
}

/** A pg pool with the store's conventions: bigint as numbers, errors reported, prepared statements. */
function postgresPool(
  config: { url: string; max: number; prepare?: boolean; readOnly?: boolean; connectTimeoutMs?: number },
  opts: StoreOptions,
): pg.Pool {
  const pool = new pg.Pool({
    connectionString: config.url,
    max: config.max,
    ...(config.connectTimeoutMs ? { connectionTimeoutMillis: config.connectTimeoutMs } : {}),
    // A read pool's sessions refuse every write: a write sent there by mistake fails loudly, even on a server
    // that would accept it (the primary, when the replica is down).
    ...(config.readOnly ? { options: '-c default_transaction_read_only=on' } : {}),
    // bigint (fen) as JS numbers: amounts are far below 2^53; anything larger is a bug worth failing on.
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID
          ? parseSafeInt
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // When PostgreSQL drops a connection (stopped, restarted, a network cut), pg emits 'error' on that client,
  // and on the pool for an idle one; an 'error' event nobody listens to throws and ends the process. The query
  // in flight fails on its own (its request answers a system error); the broken client is left out of the pool
  // when released, and new connections are made once PostgreSQL is back, so the process recovers by itself.
  const onError = (err: Error) => opts.onConnectionError?.(err);
  pool.on('error', onError);
  pool.on('connect', (client) => {
    client.on('error', onError);
    if (config.prepare !== false) usePreparedStatements(client);
  });
  return pool;
}

export async function openStore(config: StoreConfig, opts: StoreOptions = {}): Promise<Store> {
  if (config.kind === 'postgres') {
    const pool = postgresPool(
      {
        url: config.url,
        max: config.poolSize ?? 10,
        ...(config.prepare === false ? { prepare: false } : {}),
      },
      opts,
    );
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return {
      db,
      kind: 'postgres',
      close: () => db.destroy(),
      poolStats: () => ({
        total: pool.totalCount,
        idle: pool.idleCount,
        waiting: pool.waitingCount,
        max: config.poolSize ?? 10,
      }),
    };
  }
  if (config.dataDir) fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const lite = await PGlite.create({
    ...(config.dataDir ? { dataDir: path.join(config.dataDir, 'pgdata') } : {}),
    parsers: { [pgliteTypes.INT8]: (v: string) => parseSafeInt(v) },
  });
  // PGlite unpacks a new database readable by all (0644/0755); the data directory is its owner's only.
  if (config.dataDir)
    for (const problem of secureDataDir(config.dataDir))
      (opts.onWarning ?? ((m: string) => process.emitWarning(m)))(problem);
  const db = new Kysely<Database>({ dialect: new PGliteDialect(lite) });
  return { db, kind: 'embedded', close: () => db.destroy() };
}

/** After the replica failed to connect, reads go to the primary for this long before the replica is tried again. */
export const REPLICA_RETRY_MS = 30_000;
/** How long a read waits for a connection to the replica before it goes to the primary. */
const REPLICA_CONNECT_TIMEOUT_MS = 3_000;

export interface ReadStoreOptions extends StoreOptions {
  /** The replica could not be reached: this read, and those of the next REPLICA_RETRY_MS, go to the primary. */
  onFallback?: (err: Error) => void;
  /** The clock of the retry pause (tests); default Date.now. */
  now?: () => number;
}

/**
 * The read store: a connection pool to a read replica (HOSPAY_READ_DATABASE_URL, PostgreSQL only), for reads that
 * may be a little behind the primary (reports and exports, the platform's side of a past reconciliation day,
 * the desk's searches; the list is in docs/operations.md "Reading from a replica"). Null when no replica is set:
 * the callers then read the primary.
 *
 * Its sessions are read-only (default_transaction_read_only): nothing is ever written through it. When the
 * replica cannot be reached (refused, timed out after 3 s), the read goes to the primary instead, on a
 * read-only pool of its own, `onFallback` says so, and the replica is tried again after REPLICA_RETRY_MS: a
 * replica outage slows nothing and loses nothing, and the primary only carries the reads while it lasts.
 */
export async function openReadStore(config: StoreConfig, opts: ReadStoreOptions = {}): Promise<Store | null> {
  if (config.kind !== 'postgres' || !config.readUrl) return null;
  const max = config.readPoolSize ?? config.poolSize ?? 10;
  const prepare = config.prepare === false ? { prepare: false } : {};
  const replica = postgresPool(
    { url: config.readUrl, max, readOnly: true, connectTimeoutMs: REPLICA_CONNECT_TIMEOUT_MS, ...prepare },
    opts,
  );
  // Connects only when used: while the replica answers, this pool holds no connection to the primary.
  const primary = postgresPool({ url: config.url, max, readOnly: true, ...prepare }, opts);
  const now = opts.now ?? Date.now;
  let replicaAfter = 0;
  const pool = {
    async connect() {
      if (now() >= replicaAfter) {
        try {
          return await replica.connect();
        } catch (e) {
          replicaAfter = now() + REPLICA_RETRY_MS;
          opts.onFallback?.(e instanceof Error ? e : new Error(String(e)));
        }
      }
      return primary.connect();
    },
    async end() {
      await Promise.all([replica.end(), primary.end()]);
    },
  };
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    kind: 'postgres',
    close: () => db.destroy(),
    poolStats: () => ({
      total: replica.totalCount,
      idle: replica.idleCount,
      waiting: replica.waitingCount,
      max,
    }),
  };
}

function parseSafeInt(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new RangeError(`bigint value out of safe range: ${text}`);
  return n;
}

export async function migrate(db: Db): Promise<string[]> {
  const migrator = new Migrator({ db, provider: new StaticMigrationProvider() });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

export function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

export function isCheckViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23514';
}
