import http from 'node:http';
import https from 'node:https';

/**
 * Outgoing HTTP(S) for channel adapters: a deadline for the whole exchange (connect, send, answer), a size
 * limit on the answer, TLS verified (with the merchant's client certificate when the provider wants one),
 * never a redirect followed. Errors say what happened, so the caller can map them to "unknown".
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

export const httpRequest: HttpClient = (req) =>
  new Promise<HttpResponse>((resolve, reject) => {
    const url = new URL(req.url);
    const lib = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : null;
    if (!lib) {
      reject(new HttpError('network', `unsupported protocol ${url.protocol}`));
      return;
    }
    const timeoutMs = req.timeoutMs ?? 10_000;
    const maxBytes = req.maxBytes ?? 10 * 1024 * 1024;
    const body =
      req.body === undefined ? undefined : Buffer.isBuffer(req.body) ? req.body : Buffer.from(req.body);
    let settled = false;
    const done = (err: Error | null, res?: HttpResponse) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else if (res) resolve(res);
    };
    const r = lib.request(
      url,
      {
        method: req.method,
        headers: {
          ...(req.headers ?? {}),
          ...(body ? { 'content-length': String(body.length) } : {}),
        },
        agent: false,
        ...(req.tls?.pfx ? { pfx: req.tls.pfx } : {}),
        ...(req.tls?.passphrase !== undefined ? { passphrase: req.tls.passphrase } : {}),
        ...(req.tls?.cert ? { cert: req.tls.cert } : {}),
        ...(req.tls?.key ? { key: req.tls.key } : {}),
        ...(req.tls?.ca ? { ca: req.tls.ca } : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) {
            res.destroy();
            done(new HttpError('too_large', `answer larger than ${maxBytes} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('end', () => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(res.headers))
            if (v !== undefined) headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
          done(null, { status: res.statusCode ?? 0, headers, body: Buffer.concat(chunks) });
        });
        res.on('error', (e) => done(new HttpError('network', e.message)));
      },
    );
    const timer = setTimeout(() => {
      r.destroy();
      done(new HttpError('timeout', `no complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    r.on('error', (e) => done(new HttpError('network', e.message)));
    if (body) r.write(body);
    r.end();
  });

export { excerpt } from '../formats/redact.js';
