import { promises as dns } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { Agent, request } from 'undici';
import { AgentPool, deadline, discard } from '../channels/http.js';
import { checkNotifyUrl, classifyAddress, refusal, type NotifyPolicy } from './notify-target.js';

/**
 * The notifier's HTTP client: POSTs a form to a notify_url and connects only to addresses the policy allows
 * (notify-target.ts). A host name is resolved here, every address it resolves to is checked, and the
 * connection goes to a checked address (the resolution is handed to the socket as its `lookup`), so a name
 * that resolves to a public address when checked and to 127.0.0.1 a moment later (DNS rebinding) cannot get
 * through. TLS keeps the host name for SNI and the certificate check; the Host header is the URL's host.
 * Connections are pooled and kept alive (undici, as the channels' client: some 15 % less CPU per POST than
 * node:http's) per origin AND per policy, so a connection made for one app's allow-list is never reused for
 * another's. A connection the HIS closed while idle is noticed before reuse (undici checks an idle socket
 * first); one that dies after the form was written fails the attempt, which the schedule repeats (the HIS
 * dedupes by notify_id).
 */

/** Resolves a host name to its addresses (dns.lookup by default; tests inject their own). */
export type NotifyResolver = (host: string) => Promise<Array<{ address: string; family: number }>>;

export const systemResolver: NotifyResolver = (host) => dns.lookup(host, { all: true, verbatim: true });

/** The target was refused by the policy: no connection was made. */
export class NotifyTargetRefused extends Error {
  readonly code = 'EHOSPAY_TARGET_REFUSED';
  constructor(message: string) {
    super(message);
    this.name = 'NotifyTargetRefused';
  }
}

/** The attempt took longer than the notifier's timeout. */
export class NotifyTimeout extends Error {
  constructor() {
    super('notification attempt timed out');
    this.name = 'TimeoutError';
  }
}

/** Idle time after which a kept-alive connection to a HIS is closed (its own shorter Keep-Alive hint wins). */
const KEEP_ALIVE_MS = 30_000;
/** Connections at most per HIS origin and policy: above the notifier's concurrency (HOSPAY_NOTIFY_BATCH). */
const CONNECTIONS_PER_ORIGIN = 64;
/** Pools (policy and resolver) kept at most; the least recently used one is closed. */
const MAX_POOLS = 64;
/** Every resolver its number: tests inject their own, and a pool resolves only through its own. */
const resolverIds = new WeakMap<NotifyResolver, number>();
let nextResolverId = 0;
const pools = new AgentPool(MAX_POOLS);

/**
 * The pool for a policy (and resolver): its connections are made only through guardedLookup under that
 * policy, and never serve another policy's requests (an allow-list changed, or another app's).
 */
function poolFor(policy: NotifyPolicy, resolve: NotifyResolver): Agent {
  let id = resolverIds.get(resolve);
  if (id === undefined) {
    id = ++nextResolverId;
    resolverIds.set(resolve, id);
  }
  return pools.get(
    `${id}|${policy.key}`,
    () =>
      new Agent({
        connections: CONNECTIONS_PER_ORIGIN,
        keepAliveTimeout: KEEP_ALIVE_MS,
        keepAliveMaxTimeout: KEEP_ALIVE_MS,
        keepAliveTimeoutThreshold: 1_000,
        // One request at a time per connection; a redirect is never followed.
        pipelining: 1,
        maxRedirections: 0,
        // Handed to net.connect / tls.connect: a host name is resolved and checked here, and the socket connects
        // to a checked address (an IP address is not looked up: checkNotifyUrl checked it). TLS keeps the name
        // for SNI and the certificate check.
        connect: { rejectUnauthorized: true, lookup: guardedLookup(policy, resolve) },
      }),
  );
}

/** Closes every notify pool (at shutdown): requests in flight finish (or are cut after a few seconds). */
export function closeNotifyPools(): Promise<void> {
  return pools.close();
}

/** A `lookup` for the socket: resolves, refuses unless every address is allowed, hands over the checked ones. */
function guardedLookup(policy: NotifyPolicy, resolve: NotifyResolver): LookupFunction {
  return (hostname, options, callback) => {
    const cb = callback as (
      err: NodeJS.ErrnoException | null,
      address: string | Array<{ address: string; family: number }>,
      family?: number,
    ) => void;
    resolve(hostname).then(
      (found) => {
        const f: unknown = options.family;
        const wanted = f === 4 || f === 'IPv4' ? 4 : f === 6 || f === 'IPv6' ? 6 : 0;
        const addresses = found.filter((a) => wanted === 0 || a.family === wanted);
        if (addresses.length === 0) {
          const err: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
          err.code = 'ENOTFOUND';
          return cb(err, '', 0);
        }
        for (const a of addresses) {
          const c = classifyAddress(a.address);
          const why = c
            ? refusal(c, policy, `${hostname} (${a.address})`)
            : { en: `${a.address} is not an IP address` };
          if (why) return cb(new NotifyTargetRefused(`refused: ${why.en}`), '', 0);
        }
        if (options.all) cb(null, addresses);
        else cb(null, addresses[0]?.address ?? '', addresses[0]?.family ?? 4);
      },
      (err: NodeJS.ErrnoException) => cb(err, '', 0),
    );
  };
}

export interface PostResult {
  httpStatus: number;
  body: Buffer;
}

/**
 * POSTs `body` to `url` under `policy`, at most `timeoutMs` for the whole exchange, reading at most
 * `maxBytes` of the answer. Rejects with NotifyTargetRefused (nothing was sent), NotifyTimeout, or the
 * network error.
 */
export async function postNotification(
  url: URL,
  body: string,
  o: {
    contentType: string;
    policy: NotifyPolicy;
    resolve: NotifyResolver;
    timeoutMs: number;
    maxBytes: number;
  },
): Promise<PostResult> {
  const refused = checkNotifyUrl(url, o.policy);
  if (refused) throw new NotifyTargetRefused(`refused: notify_url ${refused.en}`);
  const limit = deadline(o.timeoutMs);
  try {
    const res = await request(url, {
      method: 'POST',
      headers: { 'content-type': o.contentType },
      body,
      signal: limit.signal,
      dispatcher: poolFor(o.policy, o.resolve),
      maxRedirections: 0,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      chunks.push(size + chunk.length > o.maxBytes ? chunk.subarray(0, o.maxBytes - size) : chunk);
      size += chunk.length;
      if (size >= o.maxBytes) {
        // Enough read: the rest is not wanted, and the connection is not reused.
        discard(res.body);
        break;
      }
    }
    return { httpStatus: res.statusCode, body: Buffer.concat(chunks) };
  } catch (err) {
    if (err instanceof NotifyTargetRefused) throw err;
    const code = (err as { code?: unknown }).code;
    if (limit.expired || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
      throw new NotifyTimeout();
    throw err;
  } finally {
    limit.clear();
  }
}
