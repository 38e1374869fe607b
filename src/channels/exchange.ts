import type { ChannelContext } from './channel.js';
import { HttpError, type HttpClient, type HttpRequest } from './http.js';
import { excerpt, scrubText } from '../formats/redact.js';
import { trace, SpanStatusCode } from '@opentelemetry/api';

/**
 * The exchange every channel shares: one request to the provider under its deadline, timed, and recorded for
 * operators through the one redaction module. A transport fault (timeout, network, answer too large) is a
 * value, never a throw: the adapter maps it to an unknown outcome ("query again"), never to success or decline.
 *
 * An adapter's operation is then: build the wire request, `send` it, verify and map the answer, `done` the
 * record with what it came to. Everything provider-specific (signing, verification, codes) stays in the
 * channel's folder; nothing here knows a provider.
 */

export type Transported =
  | { ok: true; status: number; headers: Record<string, string>; body: Buffer; latencyMs: number }
  | {
      ok: false;
      /** timeout: no complete answer within the deadline; network: refused, reset, TLS; too_large. */
      fault: HttpError['kind'];
      /** A short text for the record and the unknown outcome, e.g. "timeout after 10000 ms". */
      reason: string;
      latencyMs: number;
    };

/** Sends one request under its deadline (`req.timeoutMs`). Never throws. */
export async function send(http: HttpClient, req: HttpRequest): Promise<Transported> {
  const started = Date.now();
  try {
    const res = await http(req);
    return {
      ok: true,
      status: res.status,
      headers: res.headers,
      body: res.body,
      latencyMs: Date.now() - started,
    };
  } catch (e) {
    const fault: HttpError['kind'] = e instanceof HttpError ? e.kind : 'network';
    const message = scrubText(e instanceof Error ? e.message : String(e)).slice(0, 120);
    const reason =
      fault === 'timeout' ? `timeout after ${req.timeoutMs ?? 10_000} ms` : `${fault}: ${message}`;
    return { ok: false, fault, reason, latencyMs: Date.now() - started };
  }
}

/** What a call record shows besides its operation and outcome; every text is scrubbed and cut here. */
export interface RecordParts {
  /** The order, when known only once the call is done (a notification); else the recorder's own. */
  outTradeNo?: string | undefined;
  httpStatus?: number | undefined;
  request?: string | undefined;
  response?: string | undefined;
  error?: string | undefined;
}

/** Longest excerpt kept of a request or an answer in a call record. */
export const RECORD_EXCERPT = 3000;

/**
 * One call's record for operators (`hospay channel calls`), timed from its creation. The adapter removes what
 * it knows to be secret in its own wire format (field names) before handing texts over; here every text is
 * scrubbed of personal numbers and key material again and cut to size, and a failing recorder never changes
 * the call's outcome.
 */
export class CallRecorder {
  private readonly started = Date.now();

  constructor(
    private readonly ctx: ChannelContext,
    readonly operation: string,
    readonly outTradeNo?: string,
  ) {}

  get latencyMs(): number {
    return Date.now() - this.started;
  }

  done(outcome: string, parts: RecordParts = {}): void {
    // A span for the call (a no-op unless traces are on: src/tracing.ts), child of the request's span.
    const span = trace
      .getTracer('hospay')
      .startSpan(`channel ${this.operation}`, { startTime: this.started });
    span.setAttributes({
      'hospay.channel.operation': this.operation,
      'hospay.channel.outcome': outcome.split(/[\s:]/)[0] ?? '',
    });
    if (parts.httpStatus !== undefined) span.setAttribute('http.response.status_code', parts.httpStatus);
    if (/^(unknown|failed|rejected|unreadable)/.test(outcome)) span.setStatus({ code: SpanStatusCode.ERROR });
    span.end();
    const cut = (t: string | undefined, max: number) =>
      t === undefined ? undefined : excerpt(scrubText(t), max);
    try {
      this.ctx.record({
        operation: this.operation,
        outTradeNo: parts.outTradeNo ?? this.outTradeNo,
        httpStatus: parts.httpStatus,
        latencyMs: this.latencyMs,
        outcome,
        request: cut(parts.request, RECORD_EXCERPT),
        response: cut(parts.response, RECORD_EXCERPT),
        error: cut(parts.error, 300),
      });
    } catch {
      /* a recorder failure never changes the outcome */
    }
  }
}
