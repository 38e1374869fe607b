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
