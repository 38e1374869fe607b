/**
 * The channels' HTTP transport (src/channels/http.ts) against local HTTP and HTTPS servers: pooled keep-alive
 * connections (one per TLS identity, never shared across client certificates or trusted roots), and the contract
 * every channel relies on: a deadline for the whole exchange, a size limit, TLS verified, no redirect followed,
 * no silent retry of a POST, errors as HttpError.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type tls from 'node:tls';
import { spawnSync } from 'node:child_process';
import {
  HttpError,
  closeHttpPools,
  createHttpClient,
  httpRequest,
  type HttpRequest,
} from '../../../src/channels/http.js';
import { makeWechatMaterial, type WechatMaterial } from '../../fakes/wechat-server.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse, socketId: number) => void;

interface TestServer {
  url: string;
  /** Connections accepted (TLS handshakes done, for HTTPS). */
  connections: number;
  /** Per connection: the client certificate's CN ('' without one), in order of arrival. */
  peers: string[];
  /** Connections closed so far. */
  closed: number;
  /** Requests seen per path. */
  hits: Map<string, number>;
  server: http.Server;
  close(): Promise<void>;
}

async function startServer(
  handler: Handler,
  o: { tls?: WechatMaterial & { extraCa?: string[] }; keepAliveTimeout?: number } = {},
): Promise<TestServer> {
  const ids = new WeakMap<net.Socket, number>();
  const s: TestServer = {
    url: '',
    connections: 0,
    peers: [],
    closed: 0,
    hits: new Map(),
    server: undefined as unknown as http.Server,
    close: async () => {},
  };
  const wrapped = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const p = new URL(req.url ?? '/', 'http://x').pathname;
    s.hits.set(p, (s.hits.get(p) ?? 0) + 1);
    req.resume();
    req.on('end', () => handler(req, res, ids.get(req.socket) ?? -1));
  };
  const server = o.tls
    ? https.createServer(
        {
          key: o.tls.serverKey,
          cert: o.tls.serverCert,
          ca: [o.tls.caCert, ...(o.tls.extraCa ?? [])],
          requestCert: true,
          rejectUnauthorized: false,
        },
        wrapped,
      )
    : http.createServer(wrapped);
  const onSocket = (socket: net.Socket) => {
    ids.set(socket, s.connections++);
    if (o.tls) {
      const cert = (socket as tls.TLSSocket).getPeerCertificate();
      s.peers.push(cert && typeof cert.subject?.CN === 'string' ? cert.subject.CN : '');
    }
    socket.on('close', () => s.closed++);
  };
  server.on(o.tls ? 'secureConnection' : 'connection', onSocket);
  if (o.keepAliveTimeout !== undefined) server.keepAliveTimeout = o.keepAliveTimeout;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  s.url = `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  s.server = server;
  s.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return s;
}

const ok: Handler = (req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'x-Mixed-Case': 'yes' }).end(`hello ${req.method}`);
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rejects(p: Promise<unknown>, kind: HttpError['kind']): Promise<HttpError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HttpError, `an HttpError, got ${String(e)}`);
    assert.equal(e.kind, kind, e.message);
    return e;
  }
  assert.fail(`expected HttpError ${kind}`);
}

/** Waits until `f` holds (the server's view of a close arrives a moment after the client's). */
async function until(f: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!f() && Date.now() < end) await sleep(10);
  assert.ok(f(), 'condition not reached in time');
}

let m1: WechatMaterial;
let m2: WechatMaterial;
/** Merchant 1 as a .p12 (pfx + passphrase), merchant 2 as PEM cert + key; both trust the test CA only. */
let asMerchant1: NonNullable<HttpRequest['tls']>;
let asMerchant2: NonNullable<HttpRequest['tls']>;

before(() => {
  m1 = makeWechatMaterial('1900000101');
  m2 = makeWechatMaterial('1900000102');
  asMerchant1 = {
    pfx: Buffer.from(m1.merchantP12Base64, 'base64'),
    passphrase: '1900000101',
    ca: m1.caCert,
  };
  asMerchant2 = { cert: m2.merchantCert, key: m2.merchantKey, ca: m1.caCert };
});

after(async () => {
  await closeHttpPools();
});

describe('http transport: pooled keep-alive connections', () => {
  it('sequential requests to one origin reuse one connection (HTTP)', async () => {
    const s = await startServer(ok);
    try {
      for (let i = 0; i < 5; i++) {
        const r = await httpRequest({
          method: i % 2 ? 'POST' : 'GET',
          url: `${s.url}/a`,
          body: i % 2 ? 'x' : undefined,
        });
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), `hello ${i % 2 ? 'POST' : 'GET'}`);
        assert.equal(r.headers['x-mixed-case'], 'yes');
      }
      assert.equal(s.connections, 1, 'one TCP connection for five requests');
    } finally {
      await s.close();
    }
  });

  it('sequential requests with a client certificate reuse one TLS connection (HTTPS)', async () => {
    const s = await startServer(ok, { tls: m1 });
    try {
      for (let i = 0; i < 4; i++) {
        const r = await httpRequest({
          method: 'POST',
          url: `${s.url}/pay`,
          body: '<xml/>',
          tls: asMerchant1,
        });
        assert.equal(r.status, 200);
      }
      assert.equal(s.connections, 1, 'one TLS handshake for four requests');
      assert.deepEqual(s.peers, ['1900000101']);
    } finally {
      await s.close();
    }
  });

  it('different client certificates never share a connection', async () => {
    const seen: Array<{ path: string; socket: number }> = [];
    const s = await startServer(
      (req, res, socket) => {
        seen.push({ path: req.url ?? '', socket });
        res.end('ok');
      },
      { tls: { ...m1, extraCa: [m2.caCert] } },
    );
    try {
      const order = [asMerchant1, asMerchant1, asMerchant2, asMerchant2, asMerchant1, asMerchant2];
      for (const [i, id] of order.entries())
        await httpRequest({ method: 'POST', url: `${s.url}/r${i}`, body: 'b', tls: id });
      // A request with no client certificate (trusting the same CA) is a third identity.
      await httpRequest({ method: 'GET', url: `${s.url}/anon`, tls: { ca: m1.caCert } });
      assert.equal(s.connections, 3, 'one connection per identity');
      assert.deepEqual(s.peers, ['1900000101', '1900000102', '']);
      const cnOf = (path: string) => s.peers[seen.find((x) => x.path === path)?.socket ?? -1];
      assert.deepEqual(
        order.map((_, i) => cnOf(`/r${i}`)),
        order.map((id) => (id === asMerchant1 ? '1900000101' : '1900000102')),
        'each request arrived on a connection authenticated with its own certificate',
      );
      assert.equal(cnOf('/anon'), '');
    } finally {
      await s.close();
    }
  });

  it('a verified connection is not reused for a request that trusts other roots', async () => {
    const s = await startServer(ok, { tls: m1 });
    try {
      const r = await httpRequest({ method: 'GET', url: `${s.url}/a`, tls: { ca: m1.caCert } });
      assert.equal(r.status, 200);
      // Same origin, without the test CA: the server's certificate is not trusted, whatever is pooled.
      await rejects(httpRequest({ method: 'GET', url: `${s.url}/a` }), 'network');
      await rejects(httpRequest({ method: 'GET', url: `${s.url}/a`, tls: { ca: m2.caCert } }), 'network');
    } finally {
      await s.close();
    }
  });

  it('a connection the server closed while idle is replaced: the next request succeeds on a fresh one', async () => {
    // No Keep-Alive hint (keepAliveTimeout 0), and the socket is dropped 300 ms after each answer, as a provider
    // or a middlebox might do without telling.
    const s = await startServer(
      (req, res) => {
        res.end('ok');
        res.on('finish', () => setTimeout(() => req.socket.destroy(), 300).unref());
      },
      { keepAliveTimeout: 0 },
    );
    try {
      assert.equal((await httpRequest({ method: 'POST', url: `${s.url}/a`, body: '1' })).status, 200);
      await until(() => s.closed === 1);
      await sleep(50);
      assert.equal((await httpRequest({ method: 'POST', url: `${s.url}/a`, body: '2' })).status, 200);
      assert.equal((await httpRequest({ method: 'POST', url: `${s.url}/a`, body: '3' })).status, 200);
      assert.equal(s.connections, 2, 'the second and third requests shared the fresh connection');
      assert.equal(s.hits.get('/a'), 3, 'each request reached the server exactly once');
    } finally {
      await s.close();
    }
  });

  it("a provider's short Keep-Alive hint is kept, less a margin of 1 s", async () => {
    // The server closes idle connections after 2 s and says so (Keep-Alive: timeout=2): the connection is kept
    // about 1 s, so a request 300 ms later reuses it.
    const s = await startServer(ok, { keepAliveTimeout: 2000 });
    try {
      assert.equal(
        (await httpRequest({ method: 'GET', url: `${s.url}/1` })).headers['keep-alive'],
        'timeout=2',
      );
      await sleep(300);
      assert.equal((await httpRequest({ method: 'GET', url: `${s.url}/2` })).status, 200);
      assert.equal(s.connections, 1);
    } finally {
      await s.close();
    }
  });

  it('a POST whose connection dies after it was sent fails as network and is not sent again', async () => {
    const s = await startServer((req, res) => {
      if (req.url === '/drop') req.socket.destroy();
      else res.end('ok');
    });
    try {
      assert.equal((await httpRequest({ method: 'GET', url: `${s.url}/warm` })).status, 200);
      // On the reused connection, then on a new one.
      await rejects(httpRequest({ method: 'POST', url: `${s.url}/drop`, body: 'pay' }), 'network');
      await rejects(httpRequest({ method: 'POST', url: `${s.url}/drop`, body: 'pay' }), 'network');
      await sleep(200);
      assert.equal(s.hits.get('/drop'), 2, 'each POST reached the server once: no retry');
    } finally {
      await s.close();
    }
  });

  it('connections per origin are bounded; more requests wait their turn', async () => {
    const client = createHttpClient({ connectionsPerOrigin: 2 });
    const s = await startServer((_req, res) => {
      setTimeout(() => res.end('slow'), 50);
    });
    try {
      const all = await Promise.all(
        Array.from({ length: 8 }, () => client.request({ method: 'GET', url: `${s.url}/x` })),
      );
      assert.ok(all.every((r) => r.status === 200));
      assert.equal(s.connections, 2);
    } finally {
      await client.close();
      await s.close();
    }
  });

  it('the least recently used identity is closed when there are too many', async () => {
    const client = createHttpClient({ maxIdentities: 2 });
    const s = await startServer(ok, { tls: { ...m1, extraCa: [m2.caCert] } });
    try {
      await client.request({ method: 'GET', url: `${s.url}/1`, tls: asMerchant1 });
      await client.request({ method: 'GET', url: `${s.url}/2`, tls: asMerchant2 });
      assert.equal(client.pools, 2);
      await client.request({ method: 'GET', url: `${s.url}/3`, tls: { ca: m1.caCert } });
      assert.equal(client.pools, 2);
      await until(() => s.closed === 1); // merchant 1's connection, the least recently used
      await client.request({ method: 'GET', url: `${s.url}/4`, tls: asMerchant1 });
      assert.equal(s.connections, 4, 'merchant 1 connects again');
      assert.deepEqual(s.peers, ['1900000101', '1900000102', '', '1900000101']);
    } finally {
      await client.close();
      await s.close();
    }
  });

  it('close() ends the idle connections; a request afterwards opens a new pool', async () => {
    const client = createHttpClient();
    const s = await startServer(ok);
    try {
      await client.request({ method: 'GET', url: `${s.url}/1` });
      await client.close();
      assert.equal(client.pools, 0);
      await until(() => s.closed === 1);
      assert.equal((await client.request({ method: 'GET', url: `${s.url}/2` })).status, 200);
      assert.equal(s.connections, 2);
    } finally {
      await client.close();
      await s.close();
    }
  });

  it('idle pooled connections do not keep a process alive', () => {
    const script = `
      import http from 'node:http';
      import { httpRequest } from './src/channels/http.ts';
      const server = http.createServer((q, r) => r.end('ok'));
      server.keepAliveTimeout = 60_000;
      server.on('connection', (socket) => socket.unref()); // only the client's side may hold the process
      server.listen(0, '127.0.0.1', async () => {
        const r = await httpRequest({ method: 'GET', url: 'http://127.0.0.1:' + server.address().port + '/' });
        console.log('status', r.status);
        server.unref();
      });
    `;
    const started = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(r.stdout.trim(), 'status 200', r.stderr);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(Date.now() - started < 15_000, 'exited without waiting for the keep-alive timeout');
  });
});

describe('http transport: the contract', () => {
  it('the deadline covers a body that stops half-way: timeout, and the connection is not reused', async () => {
    const s = await startServer((req, res) => {
      if (req.url === '/stall') {
        res.writeHead(200, { 'content-length': '1000' });
        res.write('x'.repeat(500)); // and never the rest
      } else res.end('ok');
    });
    try {
      assert.equal((await httpRequest({ method: 'GET', url: `${s.url}/warm` })).status, 200);
      const t0 = Date.now();
      const e = await rejects(
        httpRequest({ method: 'POST', url: `${s.url}/stall`, body: 'b', timeoutMs: 300 }),
        'timeout',
      );
      const took = Date.now() - t0;
      assert.ok(took >= 250 && took < 2000, `aborted at the deadline (${took} ms)`);
      assert.match(e.message, /300 ms/);
      await until(() => s.closed === 1);
      assert.equal((await httpRequest({ method: 'GET', url: `${s.url}/after` })).status, 200);
      assert.equal(s.connections, 2, 'the stalled connection was dropped, a new one opened');
    } finally {
      await s.close();
    }
  });

  it('the deadline covers a server that never answers (HTTPS)', async () => {
    const s = await startServer(() => {}, { tls: m1 });
    try {
      await rejects(
        httpRequest({ method: 'GET', url: `${s.url}/never`, timeoutMs: 200, tls: { ca: m1.caCert } }),
        'timeout',
      );
    } finally {
      await s.close();
    }
  });

  it('an answer beyond maxBytes is too_large, with or without a content-length', async () => {
    const s = await startServer((req, res) => {
      if (req.url === '/declared') res.writeHead(200, { 'content-length': '20000' }).end('y'.repeat(20_000));
      else if (req.url === '/chunked') {
        res.writeHead(200);
        for (let i = 0; i < 20; i++) res.write('z'.repeat(1000));
        res.end();
      } else res.end('small');
    });
    try {
      await rejects(httpRequest({ method: 'GET', url: `${s.url}/declared`, maxBytes: 10_000 }), 'too_large');
      await rejects(httpRequest({ method: 'GET', url: `${s.url}/chunked`, maxBytes: 10_000 }), 'too_large');
      const r = await httpRequest({ method: 'GET', url: `${s.url}/fine`, maxBytes: 10_000 });
      assert.equal(r.body.toString(), 'small');
    } finally {
      await s.close();
    }
  });

  it('a redirect is answered as it is, never followed', async () => {
    const s = await startServer((req, res) => {
      if (req.url === '/from') res.writeHead(302, { location: '/to' }).end();
      else res.end('followed');
    });
    try {
      const r = await httpRequest({ method: 'POST', url: `${s.url}/from`, body: 'x' });
      assert.equal(r.status, 302);
      assert.equal(r.headers['location'], '/to');
      assert.equal(s.hits.get('/to'), undefined);
    } finally {
      await s.close();
    }
  });

  it('a refused connection, a bad protocol and an untrusted certificate are network errors', async () => {
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    await rejects(httpRequest({ method: 'POST', url: `http://127.0.0.1:${port}/`, body: 'x' }), 'network');
    await rejects(httpRequest({ method: 'GET', url: 'ftp://127.0.0.1/' }), 'network');
    const s = await startServer(ok, { tls: m1 });
    try {
      await rejects(httpRequest({ method: 'GET', url: `${s.url}/` }), 'network');
    } finally {
      await s.close();
    }
  });
});
