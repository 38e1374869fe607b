import http from 'node:http';
import https from 'node:https';
import { promises as dns } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { bareHost, checkNotifyUrl, classifyAddress, refusal, type NotifyPolicy } from './notify-target.js';

/**
 * The notifier's HTTP client: POSTs a form to a notify_url and connects only to addresses the policy allows
 * (notify-target.ts). A host name is resolved here, every address it resolves to is checked, and the
 * connection goes to a checked address (the resolution is handed to the socket as its `lookup`), so a name
 * that resolves to a public address when checked and to 127.0.0.1 a moment later (DNS rebinding) cannot get
 * through. TLS keeps the host name for SNI and the certificate check; the Host header is the URL's host.
 * Connections are kept alive per origin AND per policy, so a connection made for one app's allow-list is never
 * reused for another's.
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

interface PolicyOptions {
  hospayPolicy?: string;
}

/** Keeps connections apart per policy: the pool name is the origin's plus the policy's key. */
class PolicyHttpAgent extends http.Agent {
  override getName(options?: http.ClientRequestArgs & PolicyOptions): string {
    return `${super.getName(options)}|${options?.hospayPolicy ?? ''}`;
  }
}
class PolicyHttpsAgent extends https.Agent {
  override getName(options?: https.RequestOptions & PolicyOptions): string {
    return `${super.getName(options)}|${options?.hospayPolicy ?? ''}`;
  }
}

const AGENT_OPTIONS = {
  keepAlive: true,
  keepAliveMsecs: 1_000,
  timeout: 30_000,
  scheduling: 'lifo' as const,
};
const httpAgent = new PolicyHttpAgent(AGENT_OPTIONS);
const httpsAgent = new PolicyHttpsAgent(AGENT_OPTIONS);

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
  const host = bareHost(url);
  const literal = isIP(host) !== 0;
  const deadline = AbortSignal.timeout(o.timeoutMs);
  const attempt = () => once(url, body, o, literal ? host : url.hostname, literal, deadline);
  try {
    return await attempt();
  } catch (err) {
    // A kept-alive connection the HIS closed just as it was reused: the request never reached it; once more
    // on a new connection (the HIS dedupes by notify_id anyway).
    if (err instanceof StaleConnection && !deadline.aborted) return attempt();
    throw err instanceof StaleConnection ? err.cause : err;
  }
}

class StaleConnection extends Error {
  constructor(override readonly cause: unknown) {
    super('stale kept-alive connection');
  }
}

function once(
  url: URL,
  body: string,
  o: { contentType: string; policy: NotifyPolicy; resolve: NotifyResolver; maxBytes: number },
  hostname: string,
  literal: boolean,
  deadline: AbortSignal,
): Promise<PostResult> {
  return new Promise<PostResult>((resolve, reject) => {
    if (deadline.aborted) return reject(new NotifyTimeout());
    const isHttps = url.protocol === 'https:';
    const payload = Buffer.from(body, 'utf8');
    const options: https.RequestOptions & PolicyOptions = {
      method: 'POST',
      hostname,
      port: url.port === '' ? (isHttps ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
      headers: { 'content-type': o.contentType, 'content-length': payload.length, host: url.host },
      agent: isHttps ? httpsAgent : httpAgent,
      hospayPolicy: o.policy.key,
      // An IP address is not looked up (and was checked above); a name is resolved and checked here.
      ...(literal ? {} : { lookup: guardedLookup(o.policy, o.resolve) }),
      // SNI and the certificate check use the host name (none for an IP address).
      ...(isHttps && !literal ? { servername: url.hostname.replace(/\.+$/, '') } : {}),
    };
    let settled = false;
    let answered = false;
    const finish = (err: unknown, result?: PostResult) => {
      if (settled) return;
      settled = true;
      deadline.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else if (result) resolve(result);
    };
    const req = (isHttps ? https : http).request(options, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      let size = 0;
      const done = () => finish(null, { httpStatus: res.statusCode ?? 0, body: Buffer.concat(chunks) });
      res.on('data', (chunk: Buffer) => {
        if (size >= o.maxBytes) return;
        chunks.push(chunk.subarray(0, o.maxBytes - size));
        size += chunk.length;
        if (size >= o.maxBytes) {
          done();
          res.destroy();
        }
      });
      res.on('end', done);
      res.on('error', (err) => finish(err));
      res.on('aborted', () => finish(new Error('the connection closed before the answer was complete')));
    });
    const onAbort = () => {
      finish(new NotifyTimeout());
      req.destroy();
    };
    deadline.addEventListener('abort', onAbort);
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (!answered && req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE'))
        finish(new StaleConnection(err));
      else finish(err);
    });
    req.end(payload);
  });
}
