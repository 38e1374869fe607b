import pino, { type Logger } from 'pino';
import { scrubText } from './formats/redact.js';

export { scrubText };

/**
 * Paths never written to logs. Bodies are not logged at all; these catch anything that slips into a log call.
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  '*.AccessToken',
  '*.accessToken',
  '*.access_token',
  '*.his_access_token',
  '*.his_token_sealed',
  '*.AuthCode',
  '*.authCode',
  '*.auth_code',
  '*.token',
  '*.privateKey',
  '*.private_key',
  '*.Tel',
  '*.tel',
  '*.PatientName',
  '*.patientName',
  '*.patient_name',
  '*.patient_card_no',
  '*.BuyerLogonId',
  '*.buyer_logon_id',
  '*.password',
  '*.password_hash',
  '*.passwordHash',
  '*.csrf',
  '*.csrf_token',
  '*.csrfToken',
];

/**
 * URL paths whose segment is a capability: knowing the URL is enough to use it (the hosted cashier and goto
 * pages, a medical-insurance authorisation, the simulator's payer, consent and e-voucher pages).
 */
const CAPABILITY_PATHS =
  /^(\/(?:cashier\/qr|goto|oauth2\/medicareAuth|simulator\/pay|simulator\/medicare\/consent|simulator\/medicare\/qr)\/)([^/]+)/i;

/**
 * A request URL as it may be logged: without its query (it may carry codes and states) and with a capability
 * token cut to its first 4 characters and '…'.
 */
export function maskUrlPath(url: string): string {
  const path = url.split('?')[0] ?? '';
  return path.replace(CAPABILITY_PATHS, (_m, prefix: string, token: string) =>
    token.length > 4 ? `${prefix}${token.slice(0, 4)}…` : `${prefix}${token}`,
  );
}

function scrubValue(v: unknown, depth = 0): unknown {
  if (typeof v === 'string') return scrubText(v);
  if (depth > 4 || v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map((x) => scrubValue(x, depth + 1));
  if (v instanceof Error) return { type: v.name, message: scrubText(v.message) };
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = scrubValue(x, depth + 1);
  return out;
}

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * A child logger made only when it first logs at a level that is on (or is asked for a child of its own). The
 * HTTP server makes one per request (for its request id); making a pino child costs its bindings' serialising
 * and redaction, which a request that logs nothing (every request, at LOG_LEVEL=warn) need not pay: this one
 * costs one small object.
 */
class LazyChild {
  #real: Logger | undefined;
  constructor(
    private readonly parent: Logger,
    private readonly childBindings: pino.Bindings,
  ) {}

  private made(): Logger {
    return (this.#real ??= this.parent.child(this.childBindings));
  }
  private log(level: Level, args: unknown[]): void {
    if (!(this.#real ?? this.parent).isLevelEnabled(level)) return;
    (this.made()[level] as (...a: unknown[]) => void)(...args);
  }

  get level(): string {
    return (this.#real ?? this.parent).level;
  }
  set level(level: string) {
    this.made().level = level;
  }
  isLevelEnabled(level: string): boolean {
    return (this.#real ?? this.parent).isLevelEnabled(level);
  }
  child(bindings: pino.Bindings, options?: pino.ChildLoggerOptions): Logger {
    return this.made().child(bindings, options);
  }
  bindings(): pino.Bindings {
    return this.made().bindings();
  }
  silent(): void {}
  fatal(...args: unknown[]): void {
    this.log('fatal', args);
  }
  error(...args: unknown[]): void {
    this.log('error', args);
  }
  warn(...args: unknown[]): void {
    this.log('warn', args);
  }
  info(...args: unknown[]): void {
    this.log('info', args);
  }
  debug(...args: unknown[]): void {
    this.log('debug', args);
  }
  trace(...args: unknown[]): void {
    this.log('trace', args);
  }
}

/**
 * A child of `parent` with `bindings`, made when first needed (LazyChild); with options of its own (a route's
 * log level or serializers) it is made at once, as asked.
 */
export function lazyChild(
  parent: Logger,
  bindings: pino.Bindings,
  options: pino.ChildLoggerOptions = {},
): Logger {
  if (Object.keys(options).length > 0) return parent.child(bindings, options);
  return new LazyChild(parent, bindings) as unknown as Logger;
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: '***' },
      // Fastify's own request lines (if ever enabled) log `req`: its URL is masked like our request line.
      serializers: {
        req: (req: { method?: string; url?: string }) => ({
          method: req.method,
          url: maskUrlPath(req.url ?? ''),
        }),
      },
      base: { svc: 'hospay' },
      formatters: { log: (obj) => scrubValue(obj) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          const scrubbed = args.map((a) => (typeof a === 'string' ? scrubText(a) : a)) as typeof args;
          method.apply(this, scrubbed);
        },
      },
    },
    destination,
  );
}
