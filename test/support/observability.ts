import net from 'node:net';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { startPlatform, type Platform } from '../../src/main.js';
import { openStore, type Store } from '../../src/store/db.js';
import { createLogger } from '../../src/logging.js';
import type { Config } from '../../src/config/config.js';
import { FakeClock } from './clock.js';
import { freshDatabase } from './db.js';
import { testConfig } from './platform.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';

/** One sample of the Prometheus text exposition: name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[l[1] ?? ''] = l[2] ?? '';
    out.push({ name: m[1] ?? '', labels, value: Number(m[3]) });
  }
  return out;
}

/**
 * The value of the sample with exactly these labels (undefined when absent). For a histogram give the
 * series name (e.g. …_count) and its labels without `le`.
 */
export function sampleValue(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  const want = Object.entries(labels);
  const s = samples.find(
    (x) =>
      x.name === name &&
      Object.keys(x.labels).length === want.length &&
      want.every(([k, v]) => x.labels[k] === v),
  );
  return s?.value;
}

/** Sum of every sample of `name` whose labels include `labels`. */
export function sampleSum(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))
    .reduce((s, x) => s + x.value, 0);
}

export async function scrape(
  baseUrl: string,
  token: string | null = ADMIN_TOKEN,
): Promise<{ status: number; text: string; samples: Sample[]; contentType: string }> {
  const res = await fetch(`${baseUrl}/metrics`, {
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  });
  const text = await res.text();
  return {
    status: res.status,
    text,
    samples: res.status === 200 ? parseMetrics(text) : [],
    contentType: res.headers.get('content-type') ?? '',
  };
}

export async function readyz(
  baseUrl: string,
): Promise<{ status: number; body: { status?: string; reasons?: string[] } }> {
  const res = await fetch(`${baseUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as { status?: string; reasons?: string[] } };
}

/** Polls until `check` holds (or throws after `ms`). */
export async function eventually<T>(
  what: string,
  ms: number,
  check: () => Promise<T | null | undefined | false>,
): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms${last ? ` (${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A TCP proxy in front of PostgreSQL, to take the database away from hospay and give it back: `cut()` resets
 * every open connection and refuses new ones (a reset at once), `restore()` forwards again.
 */
export class TcpProxy {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private open = true;
  port = 0;

  constructor(
    private readonly targetHost: string,
    private readonly targetPort: number,
  ) {}

  async start(): Promise<void> {
    this.server = net.createServer((client) => {
      if (!this.open) {
        client.resetAndDestroy();
        return;
      }
      const upstream = net.connect(this.targetPort, this.targetHost);
      this.sockets.add(client);
      this.sockets.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  cut(): void {
    this.open = false;
    for (const s of this.sockets) s.resetAndDestroy();
    this.sockets.clear();
  }

  restore(): void {
    this.open = true;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/**
 * The platform on a fresh PostgreSQL database reached through a TcpProxy (HOSPAY_TEST_DB=postgres only).
 */
export async function startBehindProxy(env: Record<string, string> = {}): Promise<{
  platform: Platform;
  url: string;
  proxy: TcpProxy;
  close: () => Promise<void>;
}> {
  const db = await freshDatabase();
  if (db.store.kind !== 'postgres') throw new Error('startBehindProxy needs PostgreSQL');
  const target = new URL(db.store.url);
  const proxy = new TcpProxy(target.hostname, Number(target.port || 5432));
  await proxy.start();
  const via = new URL(db.store.url);
  via.hostname = '127.0.0.1';
  via.port = String(proxy.port);
  const config: Config = {
    ...testConfig({ PORT: '0', ...env }),
    store: { ...db.store, url: via.toString() },
    dataDir: '/tmp/hospay-test-unused',
  };
  const store: Store = await openStore(config.store, { onConnectionError: () => undefined });
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const platform = await startPlatform({
    config,
    clock: new FakeClock(),
    store,
    log: createLogger('info', sink),
    adminToken: ADMIN_TOKEN,
    demo: false,
  });
  const addr = platform.server.server.address() as AddressInfo;
  return {
    platform,
    url: `http://127.0.0.1:${addr.port}`,
    proxy,
    async close() {
      proxy.restore();
      await platform.close();
      await store.close();
      await proxy.stop();
      await db.drop();
    },
  };
}
