import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A request the receiver got. */
export interface Received {
  path: string;
  method: string;
  contentType: string;
  raw: string;
  /** The form fields (a notification: method, notify_id, biz_content, sign, …). */
  form: Record<string, string>;
  notifyId: string;
  /** From biz_content ('undefined' when it has none). */
  tradeStatus: string;
  outTradeNo: string;
  /** When it arrived, by the receiver's clock (real time unless given one). */
  at: number;
  /** When it arrived, in real time. */
  realAt: number;
  /** The connection closed before the answer was written (the platform gave up, or was killed). */
  cut: boolean;
}

export interface Answer {
  status?: number;
  /** Default: "success". */
  body?: string;
  /** Answer this late (real ms): longer than HOSPAY_NOTIFY_TIMEOUT is a timeout. */
  delayMs?: number;
  headers?: Record<string, string>;
}

/** How a path answers: by the index of the request on that path (0 = the first), and the request. */
export type Behaviour = (index: number, r: Received) => Promise<Answer> | Answer;

export const always =
  (a: Answer): Behaviour =>
  () =>
    a;

function bizOf(form: Record<string, string>): Record<string, unknown> {
  try {
    const biz: unknown = JSON.parse(form['biz_content'] ?? '{}');
    return typeof biz === 'object' && biz !== null ? (biz as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/**
 * A HIS's notification endpoint on 127.0.0.1 (the platform needs HOSPAY_NOTIFY_ALLOW_LOOPBACK=1 to reach it):
 * records every request; each path answers as its behaviour says, "success" at once unless told otherwise.
 */
export class NotifyReceiver {
  readonly got: Received[] = [];
  private readonly behaviours = new Map<string, Behaviour>();
  private server: http.Server | null = null;
  base = '';

  constructor(private readonly clock: () => number = Date.now) {}

  async start(): Promise<void> {
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const form = Object.fromEntries(new URLSearchParams(raw));
        const biz = bizOf(form);
        const path = (req.url ?? '/').split('?')[0] ?? '/';
        const r: Received = {
          path,
          method: req.method ?? '',
          contentType: req.headers['content-type'] ?? '',
          raw,
          form,
          notifyId: form['notify_id'] ?? '',
          tradeStatus: String(biz['trade_status']),
          outTradeNo: String(biz['out_trade_no']),
          at: this.clock(),
          realAt: Date.now(),
          cut: false,
        };
        const index = this.on(path).length;
        this.got.push(r);
        res.on('close', () => {
          if (!res.writableFinished) r.cut = true;
        });
        const behaviour = this.behaviours.get(path) ?? always({});
        void Promise.resolve(behaviour(index, r)).then((a: Answer) => {
          const send = () => {
            if (res.destroyed) return;
            res.writeHead(a.status ?? 200, {
              'content-type': 'text/plain; charset=utf-8',
              ...(a.headers ?? {}),
            });
            res.end(a.body ?? 'success');
          };
          if (a.delayMs) setTimeout(send, a.delayMs);
          else send();
        });
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** The URL of `path`, which answers as `behaviour` says from now on. */
  url(path: string, behaviour: Behaviour = always({})): string {
    this.behaviours.set(path, behaviour);
    return `${this.base}${path}`;
  }

  /** What arrived on `path`, in order. */
  on(path: string): Received[] {
    return this.got.filter((r) => r.path === path);
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
