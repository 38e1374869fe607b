import { Errors } from '../../domain/errors.js';
import { FieldReaderBase } from '../field-reader.js';
import type { XmlFields } from '../../formats/xml.js';

/** Reads and validates the head fields of one offline request; every refusal names the field. */
export class FieldReader extends FieldReaderBase {
  constructor(private readonly fields: XmlFields) {
    super();
  }

  protected text(name: string): string | undefined {
    const v = this.fields.get(name);
    return v === undefined || v === '' ? undefined : v;
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
