/**
 * Money is integer fen (1 yuan = 100 fen) everywhere inside hospay.
 * Yuan strings exist only at the doors (XML, gateway JSON) and in channel wire files.
 */
export type Fen = number;

/** The largest amount accepted: 99,999,999.99 yuan (the gateway's Price(11)). */
export const MAX_FEN: Fen = 9_999_999_999;

// Plain decimal yuan: no sign, no leading zeros (except "0.xx"), no exponent, at most 2 decimals.
const YUAN_PATTERN = /^(0|[1-9][0-9]{0,7})(?:\.([0-9]{1,2}))?$/;

/**
 * Parses a yuan amount string ("88.88", "5", "0.01") into fen, exactly, without floating point.
 * Returns null for anything else: empty, negative, "1e3", "0x10", "1,000", "12.345", " 1", full-width digits.
 */
export function parseYuanToFen(text: string): Fen | null {
  const m = YUAN_PATTERN.exec(text);
  if (!m) return null;
  const whole = Number(m[1]);
  const frac = m[2] === undefined ? 0 : Number(m[2].padEnd(2, '0'));
  const fen = whole * 100 + frac;
  if (!Number.isSafeInteger(fen) || fen > MAX_FEN) return null;
  return fen;
}

/** Parses a positive yuan amount (> 0). */
export function parsePositiveYuan(text: string): Fen | null {
  const fen = parseYuanToFen(text);
  return fen === null || fen <= 0 ? null : fen;
}

/** Formats fen as a yuan string with exactly two decimals: 8888 -> "88.88", 5 -> "0.05". */
export function formatFen(fen: Fen): string {
  if (!Number.isSafeInteger(fen)) throw new RangeError(`not an integer amount of fen: ${fen}`);
  const sign = fen < 0 ? '-' : '';
  const abs = Math.abs(fen);
  const whole = Math.floor(abs / 100);
  const frac = abs % 100;
  return `${sign}${whole}.${frac.toString().padStart(2, '0')}`;
}
