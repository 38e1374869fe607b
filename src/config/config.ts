import path from 'node:path';
import { parseMasterKey } from '../crypto/secret-box.js';
import { InvalidInputError } from '../domain/errors.js';

/** Typed configuration from the environment (and CLI flags). Fails fast, naming the key that is wrong. */
/** Which database the store opens (the store reads it; the configuration builds it). */
export type StoreConfig =
  | {
      kind: 'postgres';
      url: string;
      poolSize?: number;
      /** Named prepared statements (HOSPAY_DB_PREPARE, on by default; see prepared.ts). */
      prepare?: boolean;
      /** HOSPAY_READ_DATABASE_URL: a read replica for reads that may lag (store/db.ts openReadStore). */
      readUrl?: string;
      /** HOSPAY_READ_DB_POOL: the read pool's size (default: HOSPAY_DB_POOL). */
      readPoolSize?: number;
    }
  | { kind: 'embedded'; dataDir: string | null /* null = in memory */ };

export interface Config {
  host: string;
  port: number;
  publicBaseUrl: string;
  store: StoreConfig;
  /** Where the embedded database and local secrets live. */
  dataDir: string;
  /** Fastify's trustProxy: false, true, or the proxies' addresses (HOSPAY_TRUST_PROXY). */
  trustProxy: boolean | string;
  /** HOSPAY_MASTER_KEY (32 bytes), sealing secrets at rest; null = a key file in dataDir (embedded only). */
  masterKey: Buffer | null;
  logLevel: string;
  /** HOSPAY_ADMIN_LISTEN: the admin API and finance pages on their own address, not on the public port. */
  adminListen: { host: string; port: number } | null;
  /** A retired platform key is deleted this long after a rotation (HOSPAY_KEY_GRACE). */
  keyGraceMs: number;
  /** The SOAP door's paths: /linkingif.asmx, /HospitalWS.asmx and those of HOSPAY_SOAP_PATHS (src/http/soap/). */
  soapPaths: string[];
  /**
   * How long an authenticated app (AccessToken or gateway app_id) is reused without reading the database
   * (HOSPAY_APP_CACHE; 0 = read it on every request). A change made through this server is seen at once; one
   * made through another server or straight in the database, within this time.
   */
  appCacheMs: number;
  barcode: {
    /** An unpaid barcode trade older than this is cancelled at the channel by the background job. */
    deadlineMs: number;
    /** Default number of channel queries while the payer is confirming ("user paying"), when Cnt is absent. */
    defaultPolls: number;
    /** Cnt is capped at this. */
    maxPolls: number;
    pollIntervalMs: number;
  };
  /** Refunds are refused (TRADE_FINISHED) this long after payment. */
  refundWindowMs: number;
  /** Cancel is accepted only this long after creation; later, refund. */
  cancelWindowMs: number;
  jobs: { enabled: boolean; intervalMs: number; batchSize: number; leaseMs: number };
  /**
   * HOSPAY_WORKERS: how many processes `hospay serve` runs behind its port(s) (1..64); null: not set (the
   * number of cores on PostgreSQL, 1 on the embedded database; `serve --workers N` wins). See src/cli/cluster.ts.
   */
  workers: number | null;
  reconcile: {
    /** Daily reconciliation of the previous business day starts at this Asia/Shanghai time ('HH:mm'), or never. */
    dailyAt: string | null;
  };
  gateway: {
    /** Requests whose timestamp is further than this from the server's clock are refused as stale. */
    clockSkewMs: number;
  };
  /**
   * The built-in simulator (docs/simulator.md). enabled = HOSPAY_SIMULATOR (default on; off in production: the
   * simulator channel, simulated medicare and their pages are gone); allowMixed = HOSPAY_ALLOW_MIXED_SIMULATOR=1
   * (an app taking real money may map some pay types to the simulator explicitly).
   */
  simulator: { enabled: boolean; allowMixed: boolean };
  /**
   * How long records are kept before the expiry job purges them (null = forever): channel calls
   * (HOSPAY_CALL_RETENTION, also the counts of unverified notifications) and notification delivery attempts
   * (HOSPAY_ATTEMPT_RETENTION).
   */
  retention: {
    channelCallsMs: number | null;
    notifyAttemptsMs: number | null;
    /** recon_evidence (HOSPAY_EVIDENCE_RETENTION, default 365d); kept while an OPEN difference needs it. */
    reconEvidenceMs: number | null;
    /**
     * Spent gateway nonces: kept HOSPAY_NONCE_RETENTION after their request (default and minimum: the replay
     * window, 2 × HOSPAY_GATEWAY_CLOCK_SKEW); this is the part after the replay window.
     */
    nonceGraceMs: number;
  };
  /** Health, metrics and traces (docs/operations.md, "Monitoring"). */
  observability: {
    /**
     * HOSPAY_METRICS_TOKEN: a scraper's bearer token that reads GET /metrics only (at least 32 characters);
     * null: /metrics takes the admin token.
     */
    metricsToken: string | null;
    /** A running job whose last pass ended longer ago than this makes /readyz not ready (HOSPAY_READY_JOB_STALE). */
    jobStaleMs: number;
    /** HOSPAY_OTEL_ENABLED=1: OpenTelemetry traces to OTEL_EXPORTER_OTLP_ENDPOINT (off: no SDK is loaded). */
    otelEnabled: boolean;
    /** OTEL_EXPORTER_OTLP_ENDPOINT (the OTLP/HTTP base URL, e.g. http://collector:4318), or null: the SDK default. */
    otlpEndpoint: string | null;
  };
  notify: {
    /** How long one delivery attempt may take before it counts as failed. */
    timeoutMs: number;
    /** How often the delivery job looks for due notifications. */
    intervalMs: number;
    /** How many notifications are delivered at once (in flight) by one process; a backlog is drained back to back. */
    batchSize: number;
    /**
     * HOSPAY_NOTIFY_ALLOW_LOOPBACK=1: notify_url may reach loopback addresses (127/8, ::1, localhost). For
     * development and tests ONLY (a HIS simulator on the same machine); never in production: it lets a HIS make
     * hospay POST to services on hospay's own machine. Other internal addresses stay refused (docs/notifications.md).
     */
    allowLoopback: boolean;
  };
}

export class ConfigError extends InvalidInputError {
  constructor(
    readonly key: string,
    why: string,
  ) {
    super(`configuration ${key}: ${why}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function onOff(env: Env, key: string, dflt: boolean): boolean {
  const raw = env[key];
  if (raw === undefined || raw === '') return dflt;
  if (raw === 'on') return true;
  if (raw === 'off') return false;
  throw new ConfigError(key, `must be on or off, got "${raw}"`);
}

function flag(env: Env, key: string): boolean {
  const raw = env[key];
  if (raw === undefined || raw === '' || raw === '0' || raw === 'false' || raw === 'off') return false;
  if (raw === '1' || raw === 'true' || raw === 'on') return true;
  throw new ConfigError(key, `must be 1 or 0, got "${raw}"`);
}

function int(env: Env, key: string, dflt: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return dflt;
  if (!/^[0-9]+$/.test(raw)) throw new ConfigError(key, `must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(key, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** Durations like "90s", "2m", "24h", "90d", or plain milliseconds. */
function duration(env: Env, key: string, dfltMs: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return dfltMs;
  const m = /^([0-9]+)(ms|s|m|h|d)?$/.exec(raw);
  if (!m) throw new ConfigError(key, `must be a duration like 90s, 2m, 24h or 90d, got "${raw}"`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit] ?? 1;
  return n * factor;
}

/** A retention: a duration of at least a day (a bare number would be milliseconds: refused), or off. */
function retention(env: Env, key: string, dfltMs: number): number | null {
  if (env[key] === 'off') return null;
  const ms = duration(env, key, dfltMs);
  if (ms < 86_400_000) throw new ConfigError(key, `must be at least 1d (e.g. 90d) or off, got "${env[key]}"`);
  return ms;
}

function observability(env: Env): Config['observability'] {
  const token = env['HOSPAY_METRICS_TOKEN'] || null;
  if (token !== null && token.length < 32)
    throw new ConfigError('HOSPAY_METRICS_TOKEN', 'must be at least 32 characters');
  const endpoint = env['OTEL_EXPORTER_OTLP_ENDPOINT'] || null;
  if (endpoint !== null && !/^https?:\/\/[^\s]+$/.test(endpoint))
    throw new ConfigError('OTEL_EXPORTER_OTLP_ENDPOINT', `must be an http(s) URL, got "${endpoint}"`);
  return {
    metricsToken: token,
    jobStaleMs: duration(env, 'HOSPAY_READY_JOB_STALE', 5 * 60_000),
    otelEnabled: flag(env, 'HOSPAY_OTEL_ENABLED'),
    otlpEndpoint: endpoint,
  };
}

/**
 * HOSPAY_NONCE_RETENTION: how long a spent gateway nonce is kept after its request; never shorter than the
 * replay window (a signed request is accepted up to the clock skew either way: 2 × skew). Returns the time kept
 * after the replay window.
 */
function nonceGrace(env: Env, clockSkewMs: number): number {
  const window = 2 * clockSkewMs;
  const keep = duration(env, 'HOSPAY_NONCE_RETENTION', window);
  if (keep < window)
    throw new ConfigError(
      'HOSPAY_NONCE_RETENTION',
      `must be at least the replay window (2 × HOSPAY_GATEWAY_CLOCK_SKEW = ${window / 1000}s), got "${env['HOSPAY_NONCE_RETENTION']}"`,
    );
  return keep - window;
}

function dailyAt(env: Env): string | null {
  const raw = env['HOSPAY_RECONCILE_AT'];
  if (raw === 'off') return null;
  const v = raw || '10:00';
  if (!/^([01][0-9]|2[0-3]):[0-5][0-9]$/.test(v))
    throw new ConfigError('HOSPAY_RECONCILE_AT', `must be HH:mm or off, got "${v}"`);
  return v;
}

function trustProxy(env: Env): boolean | string {
  const raw = env['HOSPAY_TRUST_PROXY'];
  if (raw === undefined || raw === '' || raw === 'false') return false;
  if (raw === 'true') return true;
  if (!/^[0-9a-fA-F.:/, ]+$/.test(raw))
    throw new ConfigError(
      'HOSPAY_TRUST_PROXY',
      `must be true, false or proxy addresses (CIDR list), got "${raw}"`,
    );
  return raw;
}

/** The SOAP door's default paths, where deployed HIS stubs call the HospitalWS service. */
export const DEFAULT_SOAP_PATHS = ['/linkingif.asmx', '/HospitalWS.asmx'] as const;

/** The paths of the other doors: never the SOAP door's. */
const OTHER_DOORS =
  /^\/(offline|gateway|admin|finance|cashier|goto|simulator|medicare|oauth2|channels|healthz)(\/|$)/i;

/** HOSPAY_SOAP_PATHS: more paths for the SOAP door, comma-separated (e.g. /LinkingIF.asmx,/ws/HospitalWS.asmx). */
function soapPaths(env: Env): string[] {
  const paths: string[] = [...DEFAULT_SOAP_PATHS];
  for (const raw of (env['HOSPAY_SOAP_PATHS'] ?? '').split(',')) {
    const p = raw.trim();
    if (p === '') continue;
    if (
      !/^\/[A-Za-z0-9._~/-]{1,200}$/.test(p) ||
      p.includes('//') ||
      /\/\.\.?(\/|$)/.test(p) ||
      p.endsWith('/')
    )
      throw new ConfigError('HOSPAY_SOAP_PATHS', `each path must look like /linkingif.asmx, got "${p}"`);
    if (OTHER_DOORS.test(p)) throw new ConfigError('HOSPAY_SOAP_PATHS', `"${p}" is another door's path`);
    if (!paths.includes(p)) paths.push(p);
  }
  return paths;
}

/** HOSPAY_ADMIN_LISTEN: "host:port" ("[::1]:8081" for IPv6), or unset. */
function adminListen(env: Env): { host: string; port: number } | null {
  const raw = env['HOSPAY_ADMIN_LISTEN'];
  if (raw === undefined || raw === '') return null;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):([0-9]{1,5})$/.exec(raw);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535)
    throw new ConfigError('HOSPAY_ADMIN_LISTEN', `must be host:port, e.g. 127.0.0.1:8081, got "${raw}"`);
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port };
}

/**
 * PUBLIC_BASE_URL when unset: the address hospay listens on (HOST, PORT), so that every URL in an answer is one
 * the server serves. A wildcard HOST (all interfaces) gives this machine's loopback address; `hospay serve`
 * says which address patients will get and how to give them one their phones can reach.
 */
export function defaultPublicBaseUrl(host: string, port: number): string {
  const h =
    host === '0.0.0.0' || host === ''
      ? '127.0.0.1'
      : host === '::'
        ? '[::1]'
        : host.includes(':') && !host.startsWith('[')
          ? `[${host}]`
          : host;
  return `http://${h}:${port}`;
}

/** HOSPAY_READ_DATABASE_URL: a postgres:// URL (its password is never repeated in the message). */
function readDatabaseUrl(raw: string): string {
  let ok: boolean;
  try {
    ok = /^postgres(ql)?:$/.test(new URL(raw).protocol);
  } catch {
    ok = false;
  }
  if (!ok) throw new ConfigError('HOSPAY_READ_DATABASE_URL', 'must be a postgres:// URL like DATABASE_URL');
  return raw;
}

/** The shortest HOSPAY_ADMIN_TOKEN accepted: the token guards every app, key and report. */
export const MIN_ADMIN_TOKEN_LENGTH = 32;

export function loadConfig(env: Env = process.env, overrides: { port?: number } = {}): Config {
  const adminToken = env['HOSPAY_ADMIN_TOKEN'];
  if (adminToken && adminToken.length < MIN_ADMIN_TOKEN_LENGTH)
    throw new ConfigError(
      'HOSPAY_ADMIN_TOKEN',
      `must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters (got ${adminToken.length}); e.g. openssl rand -base64 32`,
    );
  const port = overrides.port ?? int(env, 'PORT', 8080, 0, 65535);
  const host = env['HOST'] || '127.0.0.1';
  const dataDir = path.resolve(env['HOSPAY_DATA_DIR'] || 'data');
  const databaseUrl = env['DATABASE_URL'];
  const readUrl = env['HOSPAY_READ_DATABASE_URL'];
  if (readUrl && !databaseUrl)
    throw new ConfigError(
      'HOSPAY_READ_DATABASE_URL',
      'needs PostgreSQL (DATABASE_URL): the embedded database has no replica / 内嵌数据库不支持只读副本，请使用 PostgreSQL',
    );
  const poolSize = int(env, 'HOSPAY_DB_POOL', 10, 1, 200);
  const store: StoreConfig = databaseUrl
    ? {
        kind: 'postgres',
        url: databaseUrl,
        poolSize,
        prepare: onOff(env, 'HOSPAY_DB_PREPARE', true),
        ...(readUrl
          ? {
              readUrl: readDatabaseUrl(readUrl),
              readPoolSize: int(env, 'HOSPAY_READ_DB_POOL', poolSize, 1, 200),
            }
          : {}),
      }
    : { kind: 'embedded', dataDir };
  const publicBaseUrl = (env['PUBLIC_BASE_URL'] || defaultPublicBaseUrl(host, port)).replace(/\/+$/, '');
  try {
    new URL(publicBaseUrl);
  } catch {
    throw new ConfigError('PUBLIC_BASE_URL', `must be an absolute URL, got "${publicBaseUrl}"`);
  }
  const masterKeyText = env['HOSPAY_MASTER_KEY'];
  const masterKey = masterKeyText ? parseMasterKey(masterKeyText) : null;
  if (masterKeyText && !masterKey)
    throw new ConfigError('HOSPAY_MASTER_KEY', 'must be 32 bytes as 64 hex digits or base64');
  const defaultPolls = int(env, 'HOSPAY_BARCODE_POLLS', 5, 0, 100);
  const maxPolls = int(env, 'HOSPAY_BARCODE_MAX_POLLS', 10, 0, 100);
  if (defaultPolls > maxPolls)
    throw new ConfigError('HOSPAY_BARCODE_POLLS', `must not exceed HOSPAY_BARCODE_MAX_POLLS (${maxPolls})`);
  return {
    host,
    port,
    publicBaseUrl,
    store,
    dataDir,
    masterKey,
    trustProxy: trustProxy(env),
    logLevel: env['LOG_LEVEL'] || 'info',
    adminListen: adminListen(env),
    keyGraceMs: duration(env, 'HOSPAY_KEY_GRACE', 7 * 86_400_000),
    soapPaths: soapPaths(env),
    appCacheMs: duration(env, 'HOSPAY_APP_CACHE', 1_000),
    barcode: {
      deadlineMs: duration(env, 'HOSPAY_BARCODE_DEADLINE', 120_000),
      defaultPolls,
      maxPolls,
      pollIntervalMs: duration(env, 'HOSPAY_BARCODE_POLL_INTERVAL', 3_000),
    },
    refundWindowMs: duration(env, 'HOSPAY_REFUND_WINDOW', 90 * 86_400_000),
    cancelWindowMs: duration(env, 'HOSPAY_CANCEL_WINDOW', 24 * 3_600_000),
    workers: env['HOSPAY_WORKERS'] ? int(env, 'HOSPAY_WORKERS', 1, 1, 64) : null,
    jobs: {
      enabled: env['HOSPAY_JOBS'] !== 'off',
      intervalMs: duration(env, 'HOSPAY_JOB_INTERVAL', 5_000),
      batchSize: int(env, 'HOSPAY_JOB_BATCH', 50, 1, 1000),
      leaseMs: duration(env, 'HOSPAY_JOB_LEASE', 60_000),
    },
    gateway: { clockSkewMs: duration(env, 'HOSPAY_GATEWAY_CLOCK_SKEW', 5 * 60_000) },
    reconcile: { dailyAt: dailyAt(env) },
    simulator: {
      enabled: onOff(env, 'HOSPAY_SIMULATOR', true),
      allowMixed: flag(env, 'HOSPAY_ALLOW_MIXED_SIMULATOR'),
    },
    retention: {
      channelCallsMs: retention(env, 'HOSPAY_CALL_RETENTION', 90 * 86_400_000),
      notifyAttemptsMs: retention(env, 'HOSPAY_ATTEMPT_RETENTION', 90 * 86_400_000),
      reconEvidenceMs: retention(env, 'HOSPAY_EVIDENCE_RETENTION', 365 * 86_400_000),
      nonceGraceMs: nonceGrace(env, duration(env, 'HOSPAY_GATEWAY_CLOCK_SKEW', 5 * 60_000)),
    },
    observability: observability(env),
    notify: {
      timeoutMs: duration(env, 'HOSPAY_NOTIFY_TIMEOUT', 10_000),
      intervalMs: duration(env, 'HOSPAY_NOTIFY_INTERVAL', 1_000),
      batchSize: int(env, 'HOSPAY_NOTIFY_BATCH', 20, 1, 500),
      allowLoopback: flag(env, 'HOSPAY_NOTIFY_ALLOW_LOOPBACK'),
    },
  };
}
