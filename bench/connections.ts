/**
 * Connection benchmark of the channels' transport (src/channels/http.ts; docs/performance.md, "Connections to
 * providers"). Not part of `npm test`.
 *
 * A barcode pay with polling, as services/barcode-pay.ts runs it: the WeChat Pay adapter against the fake WeChat
 * Pay (test/fakes/wechat-server.ts) over HTTPS with a throwaway CA; the pay answers USERPAYING, the adapter's
 * query is polled every --interval ms, and the payer confirms so that poll number --polls answers SUCCESS. Each
 * run is done with two transports, alternately (the order swaps every run):
 *
 *   fresh    a new TCP and TLS connection per request (node:https with `agent: false`: the transport before
 *            pooling, kept here as the baseline)
 *   pooled   the platform's transport (createHttpClient: undici keep-alive pools per TLS identity)
 *
 * and reports, per transport: the latency of a whole pay (first request to SUCCESS) at p50/p95, the time spent
 * in the channel (the whole pay less the poll intervals) at p50/p95, and the connections the fake accepted per
 * pay (TLS handshakes).
 *
 *   npm run bench:connections
 *   npm run bench:connections -- --runs=50 --polls=3 --interval=200 --tls=false
 *
 * Flags: --runs=40 (pays per transport), --warmup=3, --polls=3 (the poll that answers SUCCESS), --interval=200
 * (ms between polls; the platform's default is 3000), --tls=true (false: plain HTTP).
 */
import crypto from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { wechatDefinition } from '../src/channels/wechat/definition.js';
import { withDefaults } from '../src/channels/definition.js';
import { createHttpClient, HttpError, type HttpClient, type HttpRequest } from '../src/channels/http.js';
import type { Channel, ChannelContext } from '../src/channels/channel.js';
import { systemClock } from '../src/domain/clock.js';
import { fen } from '../src/domain/money.js';
import { makeWechatMaterial, startWechatFake, type WechatFake } from '../test/fakes/wechat-server.js';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k ?? '', v ?? 'true'];
  }),
);
const num = (k: string, d: number) => {
  const v = Number(args[k] ?? d);
  if (!Number.isFinite(v) || v < 0) throw new Error(`--${k} must be a number`);
  return v;
};
const RUNS = num('runs', 40);
const WARMUP = num('warmup', 3);
const POLLS = Math.max(1, num('polls', 3));
const INTERVAL = num('interval', 200);
const TLS = args['tls'] !== 'false';

/** The transport before pooling: one TCP (and TLS) connection per request, closed after it. */
const fresh: HttpClient = (req: HttpRequest) =>
  new Promise((resolve, reject) => {
    const url = new URL(req.url);
    const lib = url.protocol === 'https:' ? https : http;
    const body = req.body === undefined ? undefined : Buffer.from(req.body);
    const r = lib.request(
      url,
      {
        method: req.method,
        headers: { ...(req.headers ?? {}), ...(body ? { 'content-length': String(body.length) } : {}) },
        agent: false,
        ...(req.tls?.pfx ? { pfx: req.tls.pfx } : {}),
        ...(req.tls?.passphrase !== undefined ? { passphrase: req.tls.passphrase } : {}),
        ...(req.tls?.cert ? { cert: req.tls.cert } : {}),
        ...(req.tls?.key ? { key: req.tls.key } : {}),
        ...(req.tls?.ca ? { ca: req.tls.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers))
            if (v !== undefined) headers[k] = Array.isArray(v) ? v.join(', ') : v;
          clearTimeout(timer);
          resolve({ status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks) });
        });
      },
    );
    const timer = setTimeout(() => {
      r.destroy();
      reject(new HttpError('timeout', 'timeout'));
    }, req.timeoutMs ?? 10_000);
    r.on('error', (e) => {
      clearTimeout(timer);
      reject(new HttpError('network', e.message));
    });
    if (body) r.write(body);
    r.end();
  });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
};
const authCode = () =>
  `13${String(crypto.randomInt(1e8)).padStart(8, '0')}${String(crypto.randomInt(1e8)).padStart(8, '0')}`;

interface Sample {
  totalMs: number;
  channelMs: number;
  connections: number;
  requests: number;
}

async function main(): Promise<void> {
  const mchId = '1900000109';
  const appId = 'wx8888888888888888';
  const apiV3Key = crypto.randomBytes(16).toString('hex');
  const apiV2Key = crypto.randomBytes(16).toString('hex');
  const material = makeWechatMaterial(mchId);
  const fake: WechatFake = await startWechatFake({
    mchId,
    appId,
    apiV3Key,
    apiV2Key,
    signTypeV2: 'HMAC-SHA256',
    material,
    mode: 'public_key',
    tls: TLS,
  });
  // The fake's server is private to it: count the connections it accepts (TLS handshakes done, for HTTPS).
  let accepted = 0;
  (fake['server'] as net.Server).on(TLS ? 'secureConnection' : 'connection', () => accepted++);

  const merchant = withDefaults(wechatDefinition.fields, {
    mch_id: mchId,
    app_id: appId,
    api_v3_key: apiV3Key,
    api_v2_key: apiV2Key,
    merchant_private_key: material.merchantKey,
    merchant_serial_no: material.merchantSerial,
    wechatpay_public_key: material.wechatPublicKey,
    wechatpay_public_key_id: material.wechatPublicKeyId,
    client_cert_p12: material.merchantP12Base64,
    api_base_url: fake.url,
    timeout_ms: '5000',
  });
  const ctx: ChannelContext = {
    appId: 'APP1',
    merchant,
    notifyUrl: 'https://hospay.example/channels/wechat/notify/APP1',
    record: () => {},
  };
  const pooled = createHttpClient();
  const make = (client: HttpClient): { channel: Channel; requests: () => number } => {
    let n = 0;
    const counted: HttpClient = (req) => {
      n++;
      return client({ ...req, tls: { ...req.tls, ca: material.caCert } });
    };
    return {
      channel: wechatDefinition.create({ http: counted, clock: systemClock, simulator: null }),
      requests: () => n,
    };
  };
  const transports = { fresh: make(fresh), pooled: make(pooled.request) };

  let seq = 0;
  const payOnce = async (t: { channel: Channel; requests: () => number }): Promise<Sample> => {
    const outTradeNo = `MZBENCH${Date.now().toString(36).toUpperCase()}${String(++seq).padStart(5, '0')}`;
    const conns0 = accepted;
    const req0 = t.requests();
    let slept = 0;
    const started = performance.now();
    fake.script('pay', 'paying');
    const paid = await t.channel.barcodePay(ctx, {
      outTradeNo,
      payType: 'weixin',
      amountFen: fen(1),
      authCode: authCode(),
      subject: 'bench',
    });
    if (paid.kind !== 'paying') throw new Error(`pay answered ${JSON.stringify(paid)}`);
    for (let i = 1; ; i++) {
      const s0 = performance.now();
      await sleep(INTERVAL);
      slept += performance.now() - s0;
      if (i === POLLS) fake.setTrade(outTradeNo, 'paid'); // the payer confirms: this poll answers SUCCESS
      const q = await t.channel.query(ctx, { outTradeNo, payType: 'weixin' });
      if (q.kind === 'paid') break;
      if (q.kind !== 'waiting') throw new Error(`poll ${i} answered ${JSON.stringify(q)}`);
      if (i > POLLS) throw new Error('never paid');
    }
    const totalMs = performance.now() - started;
    return {
      totalMs,
      channelMs: totalMs - slept,
      connections: accepted - conns0,
      requests: t.requests() - req0,
    };
  };

  console.log(
    `barcode pay + ${POLLS} polls (every ${INTERVAL} ms) against the fake WeChat Pay over ${TLS ? 'HTTPS' : 'HTTP'}: ` +
      `${RUNS} runs per transport after ${WARMUP} warm-up runs`,
  );
  for (let i = 0; i < WARMUP; i++) {
    await payOnce(transports.fresh);
    await payOnce(transports.pooled);
  }
  const samples: Record<'fresh' | 'pooled', Sample[]> = { fresh: [], pooled: [] };
  for (let i = 0; i < RUNS; i++) {
    const order: Array<'fresh' | 'pooled'> = i % 2 ? ['pooled', 'fresh'] : ['fresh', 'pooled'];
    for (const name of order) samples[name].push(await payOnce(transports[name]));
  }

  const rows = (['fresh', 'pooled'] as const).map((name) => {
    const s = samples[name];
    const f = (x: number) => x.toFixed(1);
    return {
      transport: name,
      'pay p50 ms': f(
        pct(
          s.map((x) => x.totalMs),
          50,
        ),
      ),
      'pay p95 ms': f(
        pct(
          s.map((x) => x.totalMs),
          95,
        ),
      ),
      'channel p50 ms': f(
        pct(
          s.map((x) => x.channelMs),
          50,
        ),
      ),
      'channel p95 ms': f(
        pct(
          s.map((x) => x.channelMs),
          95,
        ),
      ),
      'requests/pay': (s.reduce((a, x) => a + x.requests, 0) / s.length).toFixed(1),
      'connections/pay': (s.reduce((a, x) => a + x.connections, 0) / s.length).toFixed(2),
      'connections total': s.reduce((a, x) => a + x.connections, 0),
    };
  });
  console.table(rows);
  await pooled.close();
  await fake.close();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
