import { isLosslessNumber, parse as parseLossless, stringify as stringifyLossless } from 'lossless-json';
import { Errors, HospayError } from '../../domain/errors.js';
import { FieldReaderBase } from '../field-reader.js';

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

/** Reads biz_content fields; every refusal names the field. */
export class BizReader extends FieldReaderBase {
  constructor(private readonly biz: Record<string, unknown>) {
    super();
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
