import { XMLParser, XMLValidator } from 'fast-xml-parser';
import iconv from 'iconv-lite';
import { parsePositiveYuan, parseSignedNonZeroYuan, type Fen } from '../../domain/money.js';
import { HisError, HisErrors } from './his-error.js';
import type { PayType } from '../../domain/trade.js';

/**
 * Parsers for the two HIS answers of chapter 7 (IF_Get_Hospital_Trade_List, HIS_IF_Query).
 * Same hardening as the offline door (src/formats/xml.ts): DOCTYPE/entities refused, strict decoding
 * (UTF-8, or GBK / GB2312 / GB18030 when the HTTP charset or the XML declaration says so), size limit, every
 * value a string. Unlike the door, the body holds repeated elements: only
 * body/GetHospitalTradeList and body/HisTradeStatus/TradeList may repeat; any other repetition is refused.
 */

/** Default largest answer accepted (one time slice of one pay type). */
export const MAX_HIS_ANSWER_BYTES = 16 * 1024 * 1024;

/** HIS pay types as the spec writes them for IF_Get_Hospital_Trade_List input. */
export const HIS_PAY_TYPES = { alipay: 'Alipay', weixin: 'WeiXin', unionpay: 'unionpay', dc: 'dc' } as const;
export type HisPayType = keyof typeof HIS_PAY_TYPES;

export type HisTradeStatusCode = 'PAID' | 'REFUNDED';

/** One row of IF_Get_Hospital_Trade_List, validated. */
export interface HisTradeRecord {
  outTradeNo: string;
  /** The payment platform's (Alipay, WeChat...) order number. */
  tradeNo: string;
  /** Positive integer fen, as written (a REFUNDED row's amount is not negated). */
  amountFen: Fen;
  /** OutTradeStatus [2] -> PAID, [3] -> REFUNDED. */
  status: HisTradeStatusCode;
  cardNo: string;
  patientName: string;
  costType: string;
  /** TradeOptDateTime, read as Asia/Shanghai. */
  time: Date;
}

export interface HisFlow {
  hisFlowId: string;
  /** Signed: positive for a charge, negative for a refund. */
  amountFen: Fen;
  time: Date;
  /** As written by the HIS (the spec's example writes 支付宝). */
  payType: string;
  /** payType understood, or null when the HIS wrote something else. */
  payTypeCode: HisPayType | null;
}

export interface HisQueryResult {
  /** True when the HIS knows the order and lists at least one flow. */
  found: boolean;
  outTradeNo: string;
  tradeNo: string;
  medicalCard: string;
  flows: HisFlow[];
}

export interface HisResponseResult {
  isSuccess: string;
  message: string;
  subCode: string;
  subMessage: string;
}

const parser = new XMLParser({
  ignoreAttributes: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  processEntities: true, // predefined entities and character references only; DOCTYPE refused before
  // Numeric character references (&#x4E2D;), as the offline door reads them: a HIS writing GBK uses them for
  // what GBK cannot encode.
  htmlEntities: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  maxNestedTags: 16,
  isArray: (_name, jpath) =>
    jpath === 'xml.body.GetHospitalTradeList' || jpath === 'xml.body.HisTradeStatus.TradeList',
});

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** How the bytes of a HIS answer are turned into text. */
export interface HisDecodeOptions {
  /** The charset parameter of the answer's HTTP Content-Type, if any. */
  httpCharset?: string;
  /**
   * The input is a string taken out of a SOAP envelope (already decoded with the envelope): whatever encoding
   * its own XML declaration names is moot and not checked.
   */
  fromEnvelope?: boolean;
}

type Charset = 'utf-8' | 'gbk' | 'gb18030' | 'utf-16le' | 'utf-16be';

/** A charset label as HIS write it -> the decoder used, or null when not supported. */
export function charsetOf(label: string): Charset | null {
  const l = label
    .trim()
    .toLowerCase()
    .replace(/^["']|["']$/g, '');
  if (l === 'utf-8' || l === 'utf8' || l === 'us-ascii' || l === 'ascii') return 'utf-8';
  // GB2312 is a subset of GBK: every GB2312 document decodes the same as GBK (and .NET sends GBK as gb2312).
  if (['gbk', 'gb2312', 'gb_2312-80', 'cp936', 'x-gbk', 'euc-cn', 'windows-936', 'ms936'].includes(l))
    return 'gbk';
  if (l === 'gb18030') return 'gb18030';
  return null; // UTF-16 only with its byte-order mark (a declaration read as ASCII cannot be UTF-16)
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

function decodeAs(bytes: Uint8Array, charset: Charset): string | null {
  try {
    if (charset === 'utf-8') return strictUtf8.decode(bytes);
    if (charset === 'utf-16le' || charset === 'utf-16be')
      return new TextDecoder(charset, { fatal: true }).decode(bytes);
    // iconv-lite replaces what it cannot read with U+FFFD (GBK cannot encode U+FFFD itself): refuse those.
    const text = iconv.decode(Buffer.from(bytes), charset);
    return text.includes('\uFFFD') ? null : text;
  } catch {
    return null;
  }
}

/**
 * The bytes of a HIS answer (plain XML or a SOAP envelope) as text: a byte-order mark first, then the HTTP
 * charset, then the encoding the XML declaration names, else UTF-8. When the HTTP header says UTF-8 but the
 * bytes are not, while the declaration names another supported encoding (a HIS that writes GBK behind a
 * default header), the declaration is used. Undecodable bytes, an unsupported encoding or a NUL character are
 * HIS_MALFORMED.
 */
export function decodeHisBytes(bytes: Uint8Array, httpCharset?: string): string {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
    const text = decodeAs(bytes.subarray(3), 'utf-8');
    if (text === null) throw HisErrors.malformed('不是有效的 UTF-8', 'not valid UTF-8');
    return noNul(text);
  }
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    const text = decodeAs(bytes.subarray(2), bytes[0] === 0xff ? 'utf-16le' : 'utf-16be');
    if (text === null) throw HisErrors.malformed('不是有效的 UTF-16', 'not valid UTF-16');
    return noNul(text);
  }
  const head = Buffer.from(bytes.subarray(0, 256)).toString('latin1');
  const declared = /^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']+)["']/i.exec(head)?.[1];
  const label = httpCharset || declared || 'utf-8';
  const charset = charsetOf(label);
  if (charset === null)
    throw HisErrors.malformed(`不支持的编码 ${label}`, `unsupported encoding ${label} (use UTF-8 or GBK)`);
  let text = decodeAs(bytes, charset);
  if (text === null && httpCharset && declared) {
    const fallback = charsetOf(declared);
    if (fallback !== null && fallback !== charset) text = decodeAs(bytes, fallback);
  }
  if (text === null)
    throw HisErrors.malformed(
      charset === 'utf-8' ? '不是有效的 UTF-8' : `不是有效的 ${label} 编码`,
      charset === 'utf-8' ? 'not valid UTF-8' : `not valid ${label}`,
    );
  return noNul(text);
}

function noNul(text: string): string {
  if (text.includes('\u0000')) throw HisErrors.malformed('包含 NUL 字符', 'contains a NUL character');
  return text;
}

/** Bytes or text -> the <xml><body> object of a HIS answer. Throws HIS_MALFORMED. */
function parseDocument(
  input: Uint8Array | string,
  maxBytes: number,
  options: HisDecodeOptions,
): { text: string; body: Obj } {
  let text: string;
  if (typeof input === 'string') {
    if (Buffer.byteLength(input, 'utf8') > maxBytes) throw tooLarge(maxBytes, input);
    text = input;
  } else {
    if (input.byteLength > maxBytes) throw tooLarge(maxBytes);
    text = decodeHisBytes(input, options.httpCharset);
  }
  const bad = (zh: string, en: string) => HisErrors.malformed(zh, en, text);
  if (text.includes('\u0000')) throw bad('包含 NUL 字符', 'contains a NUL character');
  if (text.trim().length === 0) throw bad('应答为空', 'the answer is empty');
  if (/<!DOCTYPE|<!ENTITY/i.test(text))
    throw bad('不允许 DOCTYPE 或实体声明', 'DOCTYPE and entity declarations are not allowed');
  // Text handed in as a string (not bytes, not from a SOAP envelope) is taken as UTF-8, as it always was.
  const decl = /^\s*<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']/i.exec(text);
  if (typeof input === 'string' && !options.fromEnvelope && decl && !/^utf-?8$/i.test(decl[1] ?? ''))
    throw bad(`编码 ${decl[1]} 不是 UTF-8`, `encoding ${decl[1]} is not UTF-8`);
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    const why = `${valid.err.msg} (line ${valid.err.line})`;
    throw bad(why, why);
  }
  let doc: unknown;
  try {
    doc = parser.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message.slice(0, 120) : 'unreadable';
    throw bad(why, why);
  }
  if (!isObj(doc) || Object.keys(doc).length !== 1 || !isObj(doc['xml'])) {
    throw bad('根元素必须是 <xml>', 'the root element must be <xml>');
  }
  const xml = doc['xml'];
  const body = xml['body'];
  if (Array.isArray(body)) throw bad('<body> 重复出现', '<body> appears more than once');
  if (!isObj(body)) throw bad('缺少 <body>', '<body> is missing');
  return { text, body };
}

function tooLarge(maxBytes: number, raw?: string): HisError {
  return HisErrors.malformed(`应答超过 ${maxBytes} 字节`, `the answer is larger than ${maxBytes} bytes`, raw);
}

/** Reads the flat text fields of one element; refuses repeated or nested fields. */
function flatFields(
  el: unknown,
  where: string,
  raw: string,
  allowNested: readonly string[] = [],
): Map<string, string> {
  const fields = new Map<string, string>();
  if (el === '' || el === undefined) return fields;
  if (!isObj(el)) throw HisErrors.malformed(`${where} 不是元素`, `${where} is not an element`, raw);
  for (const [name, value] of Object.entries(el)) {
    if (allowNested.includes(name)) continue;
    if (Array.isArray(value)) {
      throw HisErrors.malformed(`${where}/${name} 重复出现`, `${where}/${name} appears more than once`, raw);
    }
    if (isObj(value)) {
      throw HisErrors.malformed(`${where}/${name} 不能包含子元素`, `${where}/${name} must be text`, raw);
    }
    fields.set(name, String(value ?? ''));
  }
  return fields;
}

function required(
  fields: Map<string, string>,
  name: string,
  where: string,
  raw: string,
  nonEmpty: boolean,
): string {
  const v = fields.get(name);
  if (v === undefined) throw HisErrors.malformed(`${where} 缺少 ${name}`, `${where} has no ${name}`, raw);
  if (nonEmpty && v === '')
    throw HisErrors.malformed(`${where}/${name} 为空`, `${where}/${name} is empty`, raw);
  return v;
}

/** Checks ResponseResult; IsSuccess other than "1" is HIS_REFUSED. */
function responseResult(body: Obj, raw: string): HisResponseResult {
  if (Array.isArray(body['ResponseResult'])) {
    throw HisErrors.malformed('ResponseResult 重复出现', 'ResponseResult appears more than once', raw);
  }
  if (!Object.hasOwn(body, 'ResponseResult')) {
    throw HisErrors.malformed('缺少 ResponseResult', 'ResponseResult is missing', raw);
  }
  const f = flatFields(body['ResponseResult'], 'ResponseResult', raw);
  const rr: HisResponseResult = {
    isSuccess: required(f, 'IsSuccess', 'ResponseResult', raw, false),
    message: f.get('Message') ?? '',
    subCode: f.get('SubCode') ?? '',
    subMessage: f.get('SubMessage') ?? '',
  };
  if (rr.isSuccess !== '1') {
    throw HisErrors.refused(rr.isSuccess, rr.subMessage || rr.message || rr.subCode, rr.subCode, raw);
  }
  return rr;
}

const SHANGHAI_TIME = /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$/;

/** 'yyyy-MM-dd HH:mm:ss' in Asia/Shanghai (UTC+8, no DST) -> Date; null when not a real time. */
export function parseShanghai(text: string): Date | null {
  const m = SHANGHAI_TIME.exec(text);
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const utc = Date.UTC(y, mo - 1, d, h, mi, s);
  const check = new Date(utc);
  if (check.getUTCDate() !== d || check.getUTCMonth() !== mo - 1) return null; // 2026-02-30
  return new Date(utc - 8 * 3600 * 1000);
}

const PAY_TYPE_WORDS: Record<string, HisPayType> = {
  alipay: 'alipay',
  支付宝: 'alipay',
  weixin: 'weixin',
  wechat: 'weixin',
  微信: 'weixin',
  unionpay: 'unionpay',
  云闪付: 'unionpay',
  银联: 'unionpay',
  dc: 'dc',
  数字货币: 'dc',
  elecny: 'dc',
  数字人民币: 'dc',
};

/** The HIS's PayType code (IF_Get_Hospital_Trade_List) for a platform pay type: e-CNY (elecny) is the spec's [dc]. */
export function hisPayTypeOf(payType: PayType): HisPayType {
  return payType === 'elecny' ? 'dc' : payType;
}

export function understandPayType(text: string): HisPayType | null {
  return PAY_TYPE_WORDS[text.replace(/^\[|\]$/g, '').toLowerCase()] ?? null;
}

/** Parses an IF_Get_Hospital_Trade_List answer. Throws HisError (HIS_MALFORMED / HIS_REFUSED). */
export function parseTradeListAnswer(
  input: Uint8Array | string,
  maxBytes = MAX_HIS_ANSWER_BYTES,
  options: HisDecodeOptions = {},
): { text: string; result: HisResponseResult; records: HisTradeRecord[] } {
  const { text, body } = parseDocument(input, maxBytes, options);
  const result = responseResult(body, text);
  for (const name of Object.keys(body)) {
    if (name !== 'ResponseResult' && name !== 'GetHospitalTradeList') {
      throw HisErrors.malformed(`body 中有未知元素 ${name}`, `unexpected element ${name} in body`, text);
    }
  }
  const rows = (body['GetHospitalTradeList'] ?? []) as unknown[];
  const records = rows.map((row, i) => {
    const where = `GetHospitalTradeList[${i + 1}]`;
    const f = flatFields(row, where, text);
    const need = (name: string, nonEmpty = true) => required(f, name, where, text, nonEmpty);
    const bad = (name: string, value: string, why: string) =>
      HisErrors.malformed(`${where}/${name}「${value}」${why}`, `${where}/${name} "${value}" ${why}`, text);
    const statusText = need('OutTradeStatus');
    const status = statusText === '2' ? 'PAID' : statusText === '3' ? 'REFUNDED' : null;
    if (status === null) throw bad('OutTradeStatus', statusText, 'is not 2 (paid) or 3 (refunded)');
    const amountText = need('Amount');
    const amountFen = parsePositiveYuan(amountText);
    if (amountFen === null) throw bad('Amount', amountText, 'is not a positive yuan amount');
    const timeText = need('TradeOptDateTime');
    const time = parseShanghai(timeText);
    if (time === null) throw bad('TradeOptDateTime', timeText, 'is not yyyy-MM-dd HH:mm:ss');
    const record: HisTradeRecord = {
      outTradeNo: need('OutTradeNo'),
      tradeNo: need('TradeNo'),
      amountFen,
      status,
      cardNo: need('CardNo', false),
      patientName: need('PatientName', false),
      costType: need('CostType', false),
      time,
    };
    return record;
  });
  return { text, result, records };
}

/** Parses a HIS_IF_Query answer. Throws HisError (HIS_MALFORMED / HIS_REFUSED). */
export function parseQueryAnswer(
  input: Uint8Array | string,
  maxBytes = MAX_HIS_ANSWER_BYTES,
  options: HisDecodeOptions = {},
): { text: string; result: HisResponseResult; query: HisQueryResult } {
  const { text, body } = parseDocument(input, maxBytes, options);
  const result = responseResult(body, text);
  for (const name of Object.keys(body)) {
    if (name !== 'ResponseResult' && name !== 'HisTradeStatus') {
      throw HisErrors.malformed(`body 中有未知元素 ${name}`, `unexpected element ${name} in body`, text);
    }
  }
  const statusEl = body['HisTradeStatus'];
  if (Array.isArray(statusEl)) {
    throw HisErrors.malformed('HisTradeStatus 重复出现', 'HisTradeStatus appears more than once', text);
  }
  if (statusEl === undefined || statusEl === '') {
    return { text, result, query: { found: false, outTradeNo: '', tradeNo: '', medicalCard: '', flows: [] } };
  }
  const f = flatFields(statusEl, 'HisTradeStatus', text, ['TradeList']);
  const rows = (isObj(statusEl) ? (statusEl['TradeList'] ?? []) : []) as unknown[];
  const flows = rows.map((row, i): HisFlow => {
    const where = `HisTradeStatus/TradeList[${i + 1}]`;
    const g = flatFields(row, where, text);
    const need = (name: string) => required(g, name, where, text, true);
    const bad = (name: string, value: string, why: string) =>
      HisErrors.malformed(`${where}/${name}「${value}」${why}`, `${where}/${name} "${value}" ${why}`, text);
    const amountText = need('TotalAmount');
    const amountFen = parseSignedNonZeroYuan(amountText);
    if (amountFen === null) throw bad('TotalAmount', amountText, 'is not a non-zero yuan amount');
    const timeText = need('DateTime');
    const time = parseShanghai(timeText);
    if (time === null) throw bad('DateTime', timeText, 'is not yyyy-MM-dd HH:mm:ss');
    const payType = need('PayType');
    return {
      hisFlowId: need('HisFlowID'),
      amountFen,
      time,
      payType,
      payTypeCode: understandPayType(payType),
    };
  });
  const seen = new Set<string>();
  for (const flow of flows) {
    if (seen.has(flow.hisFlowId)) {
      throw HisErrors.malformed(
        `HisFlowID ${flow.hisFlowId} 重复（应唯一）`,
        `HisFlowID ${flow.hisFlowId} appears twice (it must be unique)`,
        text,
      );
    }
    seen.add(flow.hisFlowId);
  }
  return {
    text,
    result,
    query: {
      found: flows.length > 0,
      outTradeNo: f.get('OutTradeNo') ?? '',
      tradeNo: f.get('TradeNo') ?? '',
      medicalCard: f.get('MedicalCard') ?? '',
      flows,
    },
  };
}
