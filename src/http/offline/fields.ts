import { Errors } from '../../domain/errors.js';
import { parsePositiveYuan, type Fen } from '../../domain/money.js';
import { parseOrderType, parsePayType, type OrderType, type PayType } from '../../domain/trade.js';
import type { XmlFields } from './xml.js';

/** Reads and validates the head fields of one request; every refusal names the field. */
export class FieldReader {
  constructor(private readonly fields: XmlFields) {}

  private raw(name: string): string | undefined {
    const v = this.fields.get(name);
    return v === undefined || v === '' ? undefined : v;
  }

  optional(
    name: string,
    max: number,
    pattern?: RegExp,
    zhWhy = '格式不正确',
    enWhy = 'wrong format',
  ): string | undefined {
    const v = this.raw(name);
    if (v === undefined) return undefined;
    if ([...v].length > max) throw Errors.tooLong(name, max);
    if (pattern && !pattern.test(v)) throw Errors.invalidField(name, zhWhy, enWhy);
    if (hasControlCharacters(v))
      throw Errors.invalidField(name, '含有控制字符', 'contains control characters');
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

  amount(name: string): Fen {
    const v = this.required(name, 12);
    const fen = parsePositiveYuan(v);
    if (fen === null) {
      throw Errors.invalidField(
        name,
        '金额须为大于 0 的元，最多两位小数，如 88.88',
        'must be yuan above 0 with at most 2 decimals, e.g. 88.88',
      );
    }
    return fen;
  }

  orderType(name: string): OrderType {
    const v = this.required(name, 32);
    const t = parseOrderType(v);
    if (!t)
      throw Errors.invalidField(
        name,
        '不是有效的交易类型',
        'is not a known order type (APPOINTMENT, TREATMENT, ...)',
      );
    return t;
  }

  payType(name: string): PayType | undefined {
    const v = this.optional(name, 16);
    if (v === undefined) return undefined;
    const t = parsePayType(v);
    if (!t)
      throw Errors.invalidField(
        name,
        '支付类型须为 alipay、weixin 或 unionpay',
        'must be alipay, weixin or unionpay',
      );
    return t;
  }

  count(name: string, max: number): number | undefined {
    const v = this.optional(name, 3, /^[0-9]+$/, '须为非负整数', 'must be a whole number');
    if (v === undefined) return undefined;
    const n = Number(v);
    if (n > max) throw Errors.invalidField(name, `不能大于 ${max}`, `must be at most ${max}`);
    return n;
  }
}

/** TradeDetail (spec 5.5): a JSON array of goods, e.g. [{"goods_id":"apple-01","goods_name":"ipad","quantity":"1","price":"2000.00"}]. */
export function validateTradeDetail(text: string): void {
  const bad = (zh: string, en: string) => Errors.invalidField('TradeDetail', zh, en);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw bad('不是有效的 JSON', 'is not valid JSON');
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || parsed.length > 100) {
    throw bad('须为 1～100 个商品的 JSON 数组', 'must be a JSON array of 1 to 100 goods');
  }
  parsed.forEach((item, i) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item))
      throw bad(`第 ${i + 1} 项不是对象`, `item ${i + 1} is not an object`);
    const o = item as Record<string, unknown>;
    for (const key of ['goods_id', 'goods_name']) {
      const v = o[key];
      if (typeof v !== 'string' || v.trim() === '' || v.length > 64) {
        throw bad(`第 ${i + 1} 项的 ${key} 缺失或无效`, `item ${i + 1}: ${key} is missing or invalid`);
      }
    }
    const qty = o['quantity'];
    if (
      !(typeof qty === 'number' && Number.isInteger(qty) && qty > 0) &&
      !(typeof qty === 'string' && /^[1-9][0-9]{0,5}$/.test(qty.trim()))
    ) {
      throw bad(
        `第 ${i + 1} 项的 quantity 须为正整数`,
        `item ${i + 1}: quantity must be a positive whole number`,
      );
    }
    const price = o['price'];
    const priceOk =
      price === undefined ||
      (typeof price === 'string' && /^[0-9]{1,8}(\.[0-9]{1,2})?$/.test(price.trim())) ||
      (typeof price === 'number' &&
        Number.isFinite(price) &&
        price >= 0 &&
        /^[0-9]{1,8}(\.[0-9]{1,2})?$/.test(String(price)));
    if (!priceOk) {
      throw bad(
        `第 ${i + 1} 项的 price 须为元金额字符串`,
        `item ${i + 1}: price must be a yuan amount string`,
      );
    }
  });
}

/** C0 control characters other than tab, line feed and carriage return. */
function hasControlCharacters(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return true;
  }
  return false;
}
