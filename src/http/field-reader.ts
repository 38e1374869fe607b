import { Errors } from '../domain/errors.js';
import { parsePositiveYuan, parseYuanToFen, type Fen } from '../domain/money.js';
import {
  parseOrderType,
  parsePayType,
  unsupportedPayType,
  type OrderType,
  type PayType,
} from '../domain/trade.js';

/**
 * Reads and validates the fields of one request, whatever door it came through (offline XML head, gateway
 * biz_content); every refusal names the field. A door supplies only how to get a field's text.
 */
export abstract class FieldReaderBase {
  /** The field's text; undefined when absent or empty. */
  protected abstract text(name: string): string | undefined;

  optional(
    name: string,
    max: number,
    pattern?: RegExp,
    zhWhy = '格式不正确',
    enWhy = 'wrong format',
  ): string | undefined {
    const v = this.text(name);
    if (v === undefined) return undefined;
    if ([...v].length > max) throw Errors.tooLong(name, max);
    if (pattern && !pattern.test(v)) throw Errors.invalidField(name, zhWhy, enWhy);
    if (hasControlCharacters(v))
      throw Errors.invalidField(name, '含有控制字符', 'contains control characters');
    // A JSON escape such as "\ud800" gives a lone surrogate: not text, and the database would store U+FFFD.
    if (LONE_SURROGATE.test(v))
      throw Errors.invalidField(
        name,
        '含有无效的 Unicode 字符',
        'contains invalid Unicode (a lone surrogate)',
      );
    return v;
  }

  required(name: string, max: number, pattern?: RegExp, zhWhy?: string, enWhy?: string): string {
    const v = this.optional(name, max, pattern, zhWhy, enWhy);
    if (v === undefined) throw Errors.missingField(name);
    return v;
  }

  /** Order numbers: letters, digits, underscore and hyphen (what every channel accepts). */
  orderNo(name: string, max = 64): string {
    return this.required(
      name,
      max,
      /^[A-Za-z0-9_-]+$/,
      '只能包含字母、数字、下划线和连字符',
      'only letters, digits, _ and - are allowed',
    );
  }

  /** A yuan amount above zero, as integer fen. */
  amount(name: string): Fen {
    const fen = parsePositiveYuan(this.required(name, 12));
    if (fen === null) {
      throw Errors.invalidField(
        name,
        '金额须为大于 0 的元，最多两位小数，如 88.88',
        'must be yuan above 0 with at most 2 decimals, e.g. 88.88',
      );
    }
    return fen;
  }

  /** A yuan amount that may be zero (insurance_fee, cash_fee, reduced_fee). */
  amountOrZero(name: string, required: boolean): Fen | undefined {
    const v = required ? this.required(name, 12) : this.optional(name, 12);
    if (v === undefined) return undefined;
    const fen = parseYuanToFen(v);
    if (fen === null)
      throw Errors.invalidField(name, '金额须为元，最多两位小数', 'must be yuan with at most 2 decimals');
    return fen;
  }

  orderType(name: string): OrderType {
    const t = parseOrderType(this.required(name, 32));
    if (!t)
      throw Errors.invalidField(
        name,
        '不是有效的交易类型',
        'is not a known order type (APPOINTMENT, TREATMENT, ...)',
      );
    return t;
  }

  payType(name: string, required = false): PayType | undefined {
    const v = required ? this.required(name, 16) : this.optional(name, 16);
    if (v === undefined) return undefined;
    const t = parsePayType(v);
    const unsupported = t ? null : unsupportedPayType(v);
    if (unsupported) throw Errors.payTypeNotSupported(unsupported);
    if (!t)
      throw Errors.invalidField(
        name,
        '支付类型须为 alipay、weixin、unionpay 或 elecny（数字人民币）',
        'must be alipay, weixin, unionpay or elecny (e-CNY)',
      );
    return t;
  }
}

/** A UTF-16 surrogate that is not part of a pair. */
const LONE_SURROGATE = /\p{Cs}/u;

/** C0 control characters other than tab, line feed and carriage return. */
function hasControlCharacters(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return true;
  }
  return false;
}
