import { isLosslessNumber, parse as parseLossless, stringify as stringifyLossless } from 'lossless-json';
import { Errors, HospayError } from '../../domain/errors.js';
import { FieldReaderBase } from '../field-reader.js';
import type { Fen } from '../../domain/money.js';
import type { OrderType } from '../../domain/trade.js';
import type { BizField, BizKind } from './contract.js';

/**
 * biz_content is read without losing numbers: amounts may arrive as JSON numbers (the spec's examples write
 * "total_amount":88.88), and a float must never touch them. A key repeated with
 * another value is refused.
 */
export function parseBizContent(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = parseLossless(text);
  } catch (e) {
    const why = e instanceof Error ? e.message.slice(0, 80) : 'unreadable';
    throw new HospayError(
      'INVALID_FIELD.biz_content',
      'invalid',
      `biz_content 不是有效的 JSON：${why}`,
      `biz_content is not valid JSON: ${why}`,
      {
        field: 'biz_content',
      },
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw Errors.invalidField('biz_content', '须为 JSON 对象', 'must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/**
 * Reads biz_content fields; every refusal names the field. The contract readers (req, opt, amountField, …) take
 * every limit from the method's contract (contract.ts): a field the contract does not describe, or describes as
 * another kind, cannot be read (a programming error, answered SYSTEM_ERROR and caught by the gateway tests).
 */
export class BizReader extends FieldReaderBase {
  constructor(
    private readonly biz: Record<string, unknown>,
    private readonly contract: Readonly<Record<string, BizField>> = {},
  ) {
    super();
  }

  private spec(name: string, kinds: readonly BizKind[]): BizField {
    const f = Object.hasOwn(this.contract, name) ? this.contract[name] : undefined;
    if (!f || !kinds.includes(f.kind))
      throw new Error(`gateway contract: ${name} is not described as a ${kinds.join(' or ')} field`);
    return f;
  }

  /** A required text field or order number (or one required under a condition that holds), as described. */
  req(name: string): string {
    const f = this.spec(name, ['text', 'orderNo']);
    if (!f.required && !f.requiredWhen) throw new Error(`gateway contract: ${name} is described as optional`);
    if (f.kind === 'orderNo') return this.orderNo(name, f.max);
    return this.required(name, f.max, f.pattern?.re, f.pattern?.zh, f.pattern?.en);
  }

  /** An optional text field (or one required only under a condition the handler decides), as described. */
  opt(name: string): string | undefined {
    const f = this.spec(name, ['text']);
    return this.optional(name, f.max, f.pattern?.re, f.pattern?.zh, f.pattern?.en);
  }

  /** A field required under a condition (requiredWhen): required when `when`, else optional. */
  reqWhen(name: string, when: boolean): string | undefined {
    return when ? this.req(name) : this.opt(name);
  }

  /** A yuan amount above zero, as integer fen. */
  amountField(name: string): Fen {
    this.spec(name, ['amount']);
    return this.amount(name);
  }

  /** A yuan amount that may be zero; undefined when optional and absent. */
  amountOrZeroField(name: string): Fen | undefined {
    const f = this.spec(name, ['amountOrZero']);
    return this.amountOrZero(name, f.required);
  }

  /** An http(s) URL, as described (required or optional). */
  urlField(name: string): string | undefined {
    const f = this.spec(name, ['url']);
    return this.url(name, f.required);
  }

  /** An object field kept as JSON text, at most the described length. */
  jsonField(name: string): string | undefined {
    const f = this.spec(name, ['json']);
    return this.json(name, f.max);
  }

  orderTypeField(name: string): OrderType {
    this.spec(name, ['orderType']);
    return this.orderType(name);
  }

  private raw(name: string): unknown {
    return Object.hasOwn(this.biz, name) ? this.biz[name] : undefined;
  }

  /** A scalar as text: strings trimmed, numbers as written; null and "" count as absent. */
  protected text(name: string): string | undefined {
    const v = this.raw(name);
    if (v === undefined || v === null || v === '') return undefined;
    let text: string;
    if (typeof v === 'string') text = v.trim();
    else if (isLosslessNumber(v)) text = v.value;
    else if (typeof v === 'boolean') text = String(v);
    else throw Errors.invalidField(name, '须为字符串', 'must be a string');
    return text === '' ? undefined : text;
  }

  url(name: string, required = false): string | undefined {
    const v = required ? this.required(name, 512) : this.optional(name, 512);
    if (v === undefined) return undefined;
    let u: URL;
    try {
      u = new URL(v);
    } catch {
      throw Errors.invalidField(name, '须为完整的 http(s) 地址', 'must be an absolute http(s) URL');
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:')
      throw Errors.invalidField(name, '须为 http(s) 地址', 'must be an http(s) URL');
    // `https://his.example.cn@evil.com/` reads as the HIS but goes to evil.com.
    if (u.username !== '' || u.password !== '')
      throw Errors.invalidField(name, '不得包含用户信息（user@）', 'must not contain userinfo (user@)');
    return v;
  }

  /** An object field kept as its JSON text (business_params, agreement_sign_params); strings are kept as they are. */
  json(name: string, max: number): string | undefined {
    const v = this.raw(name);
    if (v === undefined || v === null || v === '') return undefined;
    const text = typeof v === 'string' ? v : (stringifyLossless(v) ?? '');
    if (text.length > max) throw Errors.tooLong(name, max);
    return text;
  }
}
