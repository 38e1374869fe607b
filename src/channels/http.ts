import { createHash } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';

/**
 * Outgoing HTTP(S) for channel adapters: a deadline for the whole exchange (connect, send, answer), a size
 * limit on the answer, TLS verified (with the merchant's client certificate when the provider wants one),
 * never a redirect followed. Errors say what happened, so the caller can map them to "unknown".
 *
 * Connections are pooled and kept alive (undici): a barcode pay and its polls, or a burst of refunds, reuse one
 * TLS connection instead of a TCP and TLS handshake each. A pool is keyed by the TLS identity of the request
 * (client certificate, key, passphrase, trusted roots: a hash of them), so a connection opened with one
 * merchant's certificate, or trusting one set of roots, is never used for a request that asked for another.
 * Pools are made on first use, at most `maxIdentities` of them (the least recently used is closed), each with at
 * most `connectionsPerOrigin` connections per provider origin, closed after `keepAliveMs` idle (or sooner when
 * the provider's Keep-Alive hint says so).
 *
 * Retries: none. undici's `request` never repeats a request that was written to a connection; a connection
 * that the provider (or a middlebox) closed while it was idle is noticed before reuse (undici checks an idle
 * socket for a pending FIN or reset before writing) and a fresh one is opened. If the connection dies after
 * the request was written, the request fails ('network') and the channel maps it to "unknown, query again":
 * a POST that may have reached the provider is never sent twice by the transport (docs/performance.md).
 */
export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Whole exchange; default 10 s. */
  timeoutMs?: number;
  /** Largest answer accepted; default 10 MiB. */
  maxBytes?: number;
  /** Client certificate (WeChat Pay v2 reverse/refund, UnionPay) and extra trusted roots (test servers). */
  tls?: {
    pfx?: Buffer;
    passphrase?: string;
    cert?: string;
    key?: string;
    ca?: string | string[];
  };
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export class HttpError extends Error {
  constructor(
    readonly kind: 'timeout' | 'network' | 'too_large',
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export type HttpClient = (req: HttpRequest) => Promise<HttpResponse>;

export interface HttpPoolOptions {
  /** Idle time after which a kept-alive connection is closed (default 30 s; a provider's shorter hint wins). */
  keepAliveMs?: number;
  /** Connections at most per provider origin and TLS identity (default 32); more requests wait their turn. */
  connectionsPerOrigin?: number;
  /** TLS identities (pools) kept at most (default 32); the least recently used one is closed. */
  maxIdentities?: number;
}

/** An HTTP client with its own pools, and `close` to end them (shutdown). */
export interface PooledHttpClient {
  request: HttpClient;
  /** Closes every pool: requests in flight finish (or are cut after a few seconds), idle connections end. */
  close(): Promise<void>;
  /** How many TLS identities have a pool now. */
  readonly pools: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_BYTES = 10 * 1024 * 1024;
/** How long `close` lets requests in flight finish before cutting them. */
const CLOSE_GRACE_MS = 5_000;

type TlsOptions = NonNullable<HttpRequest['tls']>;

/** Stops reading an answer: its connection is closed (not reused), its late error ignored. */
export function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => {});
  body.destroy();
}

/**
 * A deadline for a whole exchange: `signal` aborts once `ms` have passed, and `expired` tells whether it has (a
 * failure after that is a timeout, whatever the client calls it). `clear()` once the exchange is over.
 */
export function deadline(ms: number): { signal: AbortSignal; readonly expired: boolean; clear: () => void } {
  const aborter = new AbortController();
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    aborter.abort();
  }, ms);
  return {
    signal: aborter.signal,
    get expired() {
      return expired;
    },
    clear: () => clearTimeout(timer),
  };
}

/** Closes an agent: requests in flight finish, or are cut after CLOSE_GRACE_MS; idle connections end. */
export async function closeAgent(agent: Agent): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const cut = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      agent.destroy().then(resolve, resolve);
    }, CLOSE_GRACE_MS);
    timer.unref();
  });
  await Promise.race([agent.close().catch(() => agent.destroy().catch(() => {})), cut]);
  clearTimeout(timer);
}

/**
 * Undici agents by key (a TLS identity, a notify policy), made on first use, at most `max` of them: the least
 * recently used one is closed. A connection of one key's agent never serves another key's request.
 */
export class AgentPool {
  /** Insertion order is recency: a hit is moved to the end, the first is the least recently used. */
  private readonly agents = new Map<string, Agent>();

  constructor(private readonly max: number) {}

  get(key: string, make: () => Agent): Agent {
    const found = this.agents.get(key);
    if (found) {
      this.agents.delete(key);
      this.agents.set(key, found);
      return found;
    }
    const agent = make();
    this.agents.set(key, agent);
    while (this.agents.size > Math.max(1, this.max)) {
      const [oldKey, oldAgent] = this.agents.entries().next().value as [string, Agent];
      this.agents.delete(oldKey);
      void closeAgent(oldAgent);
    }
    return agent;
  }

  get size(): number {
    return this.agents.size;
  }

  /** Closes every agent (shutdown); later requests make new ones. */
  async close(): Promise<void> {
    const all = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(all.map(closeAgent));
  }
}

/**
 * The key of a TLS identity: a hash of everything that decides whom a connection authenticates as and whom it
 * trusts. The material itself is never a map key (nor logged); only its SHA-256.
 */
function identityKey(tls: TlsOptions | undefined): string {
  if (!tls) return 'none';
  const h = createHash('sha256');
  const part = (tag: string, v: string | Buffer | undefined) => {
    if (v === undefined) {
      h.update(`${tag}:-;`);
      return;
    }
    const b = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    h.update(`${tag}:${b.length}:`);
    h.update(b);
    h.update(';');
  };
  part('pfx', tls.pfx);
  part('passphrase', tls.passphrase);
  part('cert', tls.cert);
  part('key', tls.key);
  const cas = tls.ca === undefined ? [] : Array.isArray(tls.ca) ? tls.ca : [tls.ca];
  h.update(`ca:${cas.length};`);
  for (const ca of cas) part('ca', ca);
  return h.digest('hex');
}

/** Makes an HTTP client with its own connection pools. Most code uses `httpRequest` (one shared client). */
export function createHttpClient(opts: HttpPoolOptions = {}): PooledHttpClient {
  const keepAliveMs = opts.keepAliveMs ?? 30_000;
  const connections = opts.connectionsPerOrigin ?? 32;
  const agents = new AgentPool(opts.maxIdentities ?? 32);

  const agentFor = (tls: TlsOptions | undefined): Dispatcher =>
    agents.get(
      identityKey(tls),
      () =>
        new Agent({
          connections,
          keepAliveTimeout: keepAliveMs,
          keepAliveMaxTimeout: keepAliveMs,
          // A provider's Keep-Alive hint, less 1 s (undici's default margin, 2 s, turns the common 5 s hint into 3 s:
          // the default poll interval, so each poll found its connection just closed).
          keepAliveTimeoutThreshold: 1_000,
          // One request at a time per connection (no pipelining: a POST never waits behind another on a socket).
          pipelining: 1,
          maxRedirections: 0,
          connect: {
            rejectUnauthorized: true,
            ...(tls?.pfx ? { pfx: tls.pfx } : {}),
            ...(tls?.passphrase !== undefined ? { passphrase: tls.passphrase } : {}),
            ...(tls?.cert ? { cert: tls.cert } : {}),
            ...(tls?.key ? { key: tls.key } : {}),
            ...(tls?.ca ? { ca: tls.ca } : {}),
          },
        }),
    );

  const send: HttpClient = async (req) => {
    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      throw new HttpError('network', 'invalid URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:')
      throw new HttpError('network', `unsupported protocol ${url.protocol}`);
    const timeoutMs = req.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const maxBytes = req.maxBytes ?? DEFAULT_MAX_BYTES;
    const limit = deadline(timeoutMs);
    const tooLarge = () => new HttpError('too_large', `answer larger than ${maxBytes} bytes`);
    try {
      const res = await request(url, {
        method: req.method,
        headers: req.headers ?? {},
        ...(req.body !== undefined ? { body: req.body } : {}),
        signal: limit.signal,
        dispatcher: agentFor(req.tls),
        maxRedirections: 0,
      });
      const declared = Number(res.headers['content-length']);
      if (Number.isFinite(declared) && declared > maxBytes) {
        discard(res.body);
        throw tooLarge();
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const c of res.body as AsyncIterable<Buffer>) {
        size += c.length;
        if (size > maxBytes) {
          discard(res.body);
          throw tooLarge();
        }
        chunks.push(c);
      }
      // Let undici mark the connection idle before the caller's next request (else that request, sent at once,
      // finds the connection still busy and opens another).
      await new Promise<void>((resolve) => setImmediate(resolve));
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(res.headers))
        if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
      return { status: res.statusCode, headers, body: Buffer.concat(chunks) };
    } catch (e) {
      if (e instanceof HttpError) throw e;
      const code = (e as { code?: unknown }).code;
      if (
        limit.expired ||
        code === 'UND_ERR_CONNECT_TIMEOUT' ||
        code === 'UND_ERR_HEADERS_TIMEOUT' ||
        code === 'UND_ERR_BODY_TIMEOUT'
      )
        throw new HttpError('timeout', `no complete answer within ${timeoutMs} ms`);
      throw new HttpError('network', e instanceof Error ? e.message : String(e));
    } finally {
      limit.clear();
    }
  };

  return {
    request: send,
    close: () => agents.close(),
    get pools() {
      return agents.size;
    },
  };
}

const shared = createHttpClient();

/** The platform's HTTP client (pooled keep-alive connections, one pool per TLS identity). */
export const httpRequest: HttpClient = shared.request;

/** Closes the shared client's pools (at shutdown); later requests open new ones. */
export const closeHttpPools = (): Promise<void> => shared.close();

export { excerpt } from '../formats/redact.js';
