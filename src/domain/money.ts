/**
 * Money is integer fen (1 yuan = 100 fen) everywhere inside hospay.
 * Yuan strings exist only at the doors (XML, gateway JSON) and in channel wire and bill files; this module is the
 * one place that turns them into fen and back.
 */

declare const fenBrand: unique symbol;

/**
 * An amount in integer fen. Branded: only fen() (and the parsers below) make one, so a yuan number, a count or
 * any other integer cannot pass as an amount by accident. At run time it is a plain number.
 */
export type Fen = number & { readonly [fenBrand]: true };

/** The one constructor of Fen: n must be a safe integer (throws RangeError otherwise). */
export function fen(n: number): Fen {
  if (!Number.isSafeInteger(n)) throw new RangeError(`not an integer amount of fen: ${n}`);
  return n as Fen;
}

export const ZERO_FEN: Fen = fen(0);

export function addFen(a: Fen, b: Fen): Fen {
  return fen(a + b);
}

export function subFen(a: Fen, b: Fen): Fen {
  return fen(a - b);
}

export function negFen(a: Fen): Fen {
  return fen(-a);
}

export function absFen(a: Fen): Fen {
  return fen(Math.abs(a));
}

export function sumFen(amounts: Iterable<Fen>): Fen {
  let total = 0;
  for (const a of amounts) total += a;
  return fen(total);
}

/** The largest amount accepted: 99,999,999.99 yuan (the gateway's Price(11)). */
export const MAX_FEN: Fen = fen(9_999_999_999);

// ---------------------------------------------------------------------------------------------------------------
// Yuan text -> fen. One rule with explicit variants; never through floating point. Every variant refuses signs
// other than the one it allows, leading zeros (except "0.xx"), exponents, separators, spaces and full-width digits.

interface YuanRule {
  /** A leading "-" is allowed ("-0" and "-0.00" give 0). */
  signed: boolean;
  /** Digits allowed before the point. */
  wholeDigits: number;
  /** Digits allowed after the point; those past the second must be zeros. */
  decimals: number;
  /** The largest magnitude accepted; beyond it (or beyond a safe integer) the text is refused. */
  max: number;
}

function parseYuan(text: string, rule: YuanRule): Fen | null {
  const negative = rule.signed && text.startsWith('-');
  const body = negative ? text.slice(1) : text;
  const m = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/.exec(body);
  if (!m) return null;
  const whole = m[1] ?? '';
  const frac = m[2] ?? '';
  if (whole.length > rule.wholeDigits || frac.length > rule.decimals || /[1-9]/.test(frac.slice(2)))
    return null;
  const abs = Number(whole) * 100 + Number(frac.slice(0, 2).padEnd(2, '0'));
  if (!Number.isSafeInteger(abs) || abs > rule.max) return null;
  return fen(negative && abs !== 0 ? -abs : abs);
}

const DOOR_RULE: YuanRule = { signed: false, wholeDigits: 8, decimals: 2, max: MAX_FEN };
const SIGNED_RULE: YuanRule = { ...DOOR_RULE, signed: true };
const TOTAL_RULE: YuanRule = { signed: true, wholeDigits: 14, decimals: 2, max: Number.MAX_SAFE_INTEGER };
const PADDED_RULE: YuanRule = { signed: false, wholeDigits: 12, decimals: 6, max: Number.MAX_SAFE_INTEGER };

/**
 * The doors' rule: a plain yuan amount ("88.88", "5", "0.01") into fen, up to MAX_FEN, at most 2 decimals.
 * Returns null for anything else: empty, negative, "1e3", "0x10", "1,000", "12.345", " 1", full-width digits.
 */
export function parseYuanToFen(text: string): Fen | null {
  return parseYuan(text, DOOR_RULE);
}

/** The doors' rule, and the amount must be positive (> 0). */
export function parsePositiveYuan(text: string): Fen | null {
  const amount = parseYuanToFen(text);
  return amount === null || amount <= 0 ? null : amount;
}

/**
 * A signed amount, as bill lines print it ("-19.99", "0.00", "5"): the doors' rule after an optional "-"
 * ("-0" is 0).
 */
export function parseSignedYuan(text: string): Fen | null {
  return parseYuan(text, SIGNED_RULE);
}

/** A signed amount that may not be zero (a HIS flow's TotalAmount: "-0.01", "99999999.99"; "0.00" is refused). */
export function parseSignedNonZeroYuan(text: string): Fen | null {
  const amount = parseSignedYuan(text);
  return amount === 0 ? null : amount;
}

/**
 * A signed yuan total (a bill's footer or summary sum), which may exceed a single amount's MAX_FEN: up to 14
 * digits before the point, at most 2 decimals, within a safe integer of fen.
 */
export function parseYuanTotal(text: string): Fen | null {
  return parseYuan(text, TOTAL_RULE);
}

/**
 * A non-negative yuan amount whose decimals may be padded with zeros up to 6 places ("60", "60.5", "19.9900"), as
 * the medical-insurance centre writes it; up to 12 digits before the point. "19.991" is refused (not whole fen).
 */
export function parseZeroPaddedYuan(text: string): Fen | null {
  return parseYuan(text, PADDED_RULE);
}

// ---------------------------------------------------------------------------------------------------------------
// Fen -> yuan text.

/** Formats fen as a yuan string with exactly two decimals: 8888 -> "88.88", 5 -> "0.05", -5000 -> "-50.00". */
export function formatFen(amount: Fen): string {
  if (!Number.isSafeInteger(amount)) throw new RangeError(`not an integer amount of fen: ${amount}`);
  const sign = amount < 0 ? '-' : '';
  const abs = Math.abs(amount);
  const whole = Math.floor(abs / 100);
  const frac = abs % 100;
  return `${sign}${whole}.${frac.toString().padStart(2, '0')}`;
}

/** For display on pages: ¥ and yuan with thousands separators, "¥12,345.67"; "-¥20.00" for a negative amount. */
export function formatFenForDisplay(amount: Fen): string {
  const text = formatFen(fen(Math.abs(amount)));
  const dot = text.indexOf('.');
  const whole = text.slice(0, dot).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${amount < 0 ? '-' : ''}¥${whole}${text.slice(dot)}`;
}
