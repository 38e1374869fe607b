import { Writable } from 'node:stream';
import { XMLParser } from 'fast-xml-parser';
import { loadConfig, type Config } from '../../src/config/config.js';
import { startPlatform, type Platform } from '../../src/main.js';
import { openStore, type Store } from '../../src/store/db.js';
import { createLogger } from '../../src/logging.js';
import type { Channel } from '../../src/channels/channel.js';
import type { Trade } from '../../src/store/schema.js';
import { FakeClock } from './clock.js';
import { freshDatabase, type TestDatabase } from './db.js';

export interface TestPlatform {
  platform: Platform;
  url: string;
  clock: FakeClock;
  token: string;
  appId: string;
  store: Store;
  /** Everything the platform logged, as text. */
  logs: () => string;
  /** Calls an offline interface with the given head fields (AccessToken defaults to the test app's). */
  offline: (
    name: string,
    fields: Record<string, string | undefined>,
    opts?: { token?: string | null },
  ) => Promise<OfflineAnswer>;
  /** Calls the admin API with the test admin token; the answer's status and JSON body. */
  admin: (
    method: string,
    path: string,
    body?: unknown,
  ) => Promise<{ status: number; data: Record<string, unknown> }>;
  /** The test app's trade with this order number, read through the platform's TradeRepository; throws if none. */
  trade: (outTradeNo: string) => Promise<Trade>;
  /** A second platform instance on the same database (as a second server would be). */
  second: (opts?: { channels?: Record<string, Channel> }) => Promise<Platform>;
  close: () => Promise<void>;
}

export interface OfflineAnswer {
  status: number;
  text: string;
  head: Record<string, string>;
  rr: { IsSuccess: string; Message: string; SubCode: string; SubMessage: string };
  result: Record<string, string>;
}

const parser = new XMLParser({ parseTagValue: false, ignoreDeclaration: true });

export function parseAnswer(status: number, text: string): OfflineAnswer {
  const doc = parser.parse(text) as { xml?: { head?: unknown; body?: Record<string, unknown> } };
  const body = doc.xml?.body ?? {};
  const rr = (body['ResponseResult'] ?? {}) as OfflineAnswer['rr'];
  const resultKey = Object.keys(body).find((k) => k !== 'ResponseResult');
  const result = (resultKey ? body[resultKey] : {}) as Record<string, string>;
  const head = (typeof doc.xml?.head === 'object' && doc.xml.head !== null ? doc.xml.head : {}) as Record<
    string,
    string
  >;
  return { status, text, head, rr, result };
}

export function xmlDoc(fields: Record<string, string | undefined>): string {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const inner = Object.entries(fields)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `    <${k}>${esc(v ?? '')}</${k}>`)
    .join('\n');
  return `<?xml version="1.0" encoding="utf-8" ?>\n<xml>\n  <head>\n${inner}\n  </head>\n  <body></body>\n  <sign></sign>\n</xml>`;
}

export async function postRaw(
  url: string,
  body: string | Buffer,
  contentType = 'text/xml',
): Promise<OfflineAnswer> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body });
  const text = await res.text();
  return parseAnswer(res.status, text);
}

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    HOSPAY_BARCODE_POLL_INTERVAL: '5',
    HOSPAY_JOBS: 'off',
    LOG_LEVEL: 'info',
    // Secrets at rest (HIS token, channel keys): PostgreSQL needs the master key from the environment.
    HOSPAY_MASTER_KEY: '5f'.repeat(32),
    // The tests' HIS receivers listen on 127.0.0.1 (test/integration/security-ssrf.test.ts turns this off).
    HOSPAY_NOTIFY_ALLOW_LOOPBACK: '1',
    ...env,
  });
}

/** Starts the whole platform on a fresh database, listening on a free port, with a fake clock. */
export async function startTestPlatform(
  opts: {
    env?: Record<string, string>;
    channels?: Record<string, Channel>;
    /** What the platform is given instead of the store itself (e.g. the store with its statements counted). */
    wrapStore?: (store: Store) => Store;
  } = {},
): Promise<TestPlatform> {
  const db: TestDatabase = await freshDatabase();
  const clock = new FakeClock();
  let logText = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logText += chunk.toString('utf8');
      cb();
    },
  });
  const baseConfig = testConfig({ PORT: '0', ...(opts.env ?? {}) });
  const config: Config = { ...baseConfig, store: db.store, dataDir: '/tmp/hospay-test-unused' };
  const store = await openStore(config.store);
  const platform = await startPlatform({
    config,
    clock,
    store: opts.wrapStore ? opts.wrapStore(store) : store,
    log: createLogger('info', sink),
    adminToken: 'test-admin-token-0123456789abcdef',
    demo: false,
    ...(opts.channels ? { channels: opts.channels } : {}),
  });
  const addr = platform.server.server.address();
  const port = addr && typeof addr === 'object' ? addr.port : 0;
  const url = `http://127.0.0.1:${port}`;
  // Payer pages and cashier links point at this server.
  platform.config.publicBaseUrl = url;
  (platform.simulator as unknown as { publicBaseUrl: string }).publicBaseUrl = url;
  const created = await platform.deps.apps.create({ name: '测试医院', hospitalId: 'H001' });
  const extra: Platform[] = [];
  const extraStores: Store[] = [];
  return {
    platform,
    url,
    clock,
    token: created.accessToken,
    appId: created.appId,
    store,
    logs: () => logText,
    async offline(name, fields, o = {}) {
      const token = o.token === undefined ? created.accessToken : o.token;
      const all = token === null ? fields : { AccessToken: token, ...fields };
      return postRaw(`${url}/offline/${name}`, xmlDoc(all));
    },
    async admin(method, path, body) {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: {
          authorization: 'Bearer test-admin-token-0123456789abcdef',
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      return { status: res.status, data: (await res.json()) as Record<string, unknown> };
    },
    async trade(outTradeNo) {
      const trade = await platform.deps.trades.byOutTradeNo(created.appId, outTradeNo);
      if (!trade) throw new Error(`no trade ${outTradeNo} of the test app`);
      return trade;
    },
    async second(o = {}) {
      // On PostgreSQL a second instance has its own connection pool; the embedded database is one process's.
      const s = config.store.kind === 'postgres' ? await openStore(config.store) : store;
      if (s !== store) extraStores.push(s);
      const p = await startPlatform({
        config: { ...config, port: 0 },
        clock,
        store: s,
        log: createLogger('info', sink),
        adminToken: 'test-admin-token-0123456789abcdef',
        demo: false,
        listen: false,
        ...(o.channels ? { channels: o.channels } : {}),
      });
      extra.push(p);
      return p;
    },
    async close() {
      for (const p of extra) await p.close();
      for (const s of extraStores) await s.close();
      await platform.close();
      await store.close();
      await db.drop();
    },
  };
}

let seq = 0;
/** A unique order number with a category prefix. */
export function orderNo(prefix = 'MZ'): string {
  seq++;
  return `${prefix}${Date.now().toString(36).toUpperCase()}${seq.toString().padStart(5, '0')}${Math.floor(Math.random() * 1e6)}`;
}

/** A payment code for the simulator: channel prefix + digits, ending in the rule's two digits. */
export function authCode(rule = '00', payType: 'alipay' | 'weixin' | 'unionpay' = 'alipay'): string {
  const rnd = () => Math.floor(Math.random() * 10).toString();
  const body = (n: number) => Array.from({ length: n }, rnd).join('');
  if (payType === 'weixin') return `13${body(14)}${rule}`; // 18 digits
  if (payType === 'unionpay') return `62${body(15)}${rule}`; // 19 digits
  return `28${body(14)}${rule}`; // 18 digits
}

export function barcodeFields(
  over: Record<string, string | undefined> = {},
): Record<string, string | undefined> {
  return {
    OutTradeNo: orderNo(),
    AuthCode: authCode(),
    TotalAmount: '88.88',
    Caption: '门诊缴费',
    PatientName: '张三',
    InhospitalNo: 'MZ0001',
    OrderType: 'TREATMENT',
    ...over,
  };
}

export function qrFields(over: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    OutTradeNo: orderNo('ZJMZ'),
    TotalAmount: '25.50',
    Caption: '自助机缴费',
    OrderType: 'TREATMENT',
    PatientName: '李四',
    InhospitalNo: 'ZJ0001',
    ...over,
  };
}
