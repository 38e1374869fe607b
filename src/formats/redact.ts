/**
 * The one redaction module: what may be shown of a text or a value in a log line or in a channel call record.
 * The logger (logging.ts) and every channel's call records (channels/exchange.ts) go through these functions,
 * so a personal number or a key is masked the same way wherever it would appear.
 */

// Runs of 11–24 digits are phone numbers, payment codes, ID and bank-card numbers; an ID number may end in X.
// Longer runs (28-digit channel trade numbers) and our own HP… numbers stay readable.
const PERSONAL_DIGITS = /(?<![0-9A-Za-z])([0-9]{3})[0-9]{5,18}([0-9]{3}|[0-9]{2}[Xx])(?![0-9A-Za-z])/g;
// PEM blocks and long base64 runs (keys, tokens, signatures).
const PEM = /-----BEGIN [A-Z ]+-----[\s\S]*?-----END [A-Z ]+-----/g;
const LONG_SECRET = /(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{40,}={0,2}/g;

/** A URL path such as /simulator/pay/2026…: short segments of URL-safe characters. */
function isUrlPath(text: string): boolean {
  return (
    text.startsWith('/') && text.split('/').every((seg) => seg.length < 40 && /^[A-Za-z0-9_-]*$/.test(seg))
  );
}

/** Masks personal numbers and secrets inside free text (error messages from SDKs and peers, answers). */
export function scrubText(text: string): string {
  return text
    .replace(PEM, '-----REDACTED KEY-----')
    .replace(LONG_SECRET, (m) => (/^[0-9]+$/.test(m) || isUrlPath(m) ? m : '***'))
    .replace(PERSONAL_DIGITS, '$1****$2');
}

/** Masks personal numbers only (keeps long tokens readable where a caller has already removed secrets). */
export function scrubDigits(text: string): string {
  return text.replace(PERSONAL_DIGITS, '$1****$2');
}

/** Cuts a text for a record: at most `max` characters, saying how long it was. */
export function excerpt(text: string, max = 2000): string {
  return text.length > max ? `${text.slice(0, max)}…(${text.length} chars)` : text;
}

/**
 * A value with the fields named secret replaced by '***' and every string scrubbed (scrubText), at any depth
 * (at most `maxDepth` levels; deeper values are dropped as '…').
 */
export function redactValue(
  value: unknown,
  isSecret: (key: string) => boolean,
  key = '',
  depth = 0,
  maxDepth = 8,
): unknown {
  if (key !== '' && isSecret(key) && value !== undefined && value !== null && value !== '') return '***';
  if (typeof value === 'string') return scrubText(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= maxDepth) return '…';
  if (Array.isArray(value)) return value.map((v) => redactValue(v, isSecret, key, depth + 1, maxDepth));
  if (value instanceof Error) return { type: value.name, message: scrubText(value.message) };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactValue(v, isSecret, k, depth + 1, maxDepth);
  return out;
}
