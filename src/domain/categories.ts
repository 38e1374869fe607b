/**
 * Order-number categories (spec 4.1): finance wants outpatient and inpatient income apart even when they go
 * to the same merchant, so the HIS prefixes OutTradeNo. The longest matching prefix wins.
 */
export interface Category {
  prefix: string;
  name: string;
}

export const DEFAULT_CATEGORIES: readonly Category[] = [
  { prefix: 'MZ', name: '门诊' },
  { prefix: 'ZY', name: '住院' },
  { prefix: 'ZJMZ', name: '自助机门诊' },
  { prefix: 'ZHZY', name: '自助机住院' },
];

/** The category recorded when no prefix matches. */
export const OTHER_CATEGORY = 'OTHER';

export function categorize(outTradeNo: string, categories: readonly Category[]): string {
  let best: Category | undefined;
  for (const c of categories) {
    if (outTradeNo.startsWith(c.prefix) && (!best || c.prefix.length > best.prefix.length)) best = c;
  }
  return best ? best.prefix : OTHER_CATEGORY;
}

/** Validates a category list given by an operator: prefixes of letters/digits, unique, with a name. */
export function validateCategories(input: unknown): Category[] | null {
  if (!Array.isArray(input)) return null;
  const seen = new Set<string>();
  const out: Category[] = [];
  for (const item of input) {
    if (typeof item !== 'object' || item === null) return null;
    const { prefix, name } = item as Record<string, unknown>;
    if (typeof prefix !== 'string' || !/^[A-Za-z0-9]{1,16}$/.test(prefix) || seen.has(prefix)) return null;
    if (typeof name !== 'string' || name.length === 0 || name.length > 32) return null;
    seen.add(prefix);
    out.push({ prefix, name });
  }
  return out;
}
