/**
 * UnionPay online gateway reconciliation file (全渠道 对账文件, fileTransfer txnType=76 fileType=00): the answer's
 * `fileContent` is Base64 of a zlib-deflated ZIP; in it, the merchant's general transaction file
 * `INN<yyMMdd><nn>ZM_<merId>` (流水文件, "ZM") holds one fixed-width line per transaction of the settlement day.
 *
 * Layout (《全渠道平台接入接口规范 第3部分 文件接口》 6.1, as UnionPay's SDK demo `parseZMFile` reads it): 42
 * fields of fixed byte widths, each followed by one separator byte; see ZM_COLUMNS. This module reads the columns
 * reconciliation needs and checks every line's length and every relied-upon field's form: a line that is not
 * such a line refuses the whole file (BillFormatError), a bill is never half-read. The ZIP's CRCs guard against a
 * file cut short (the ZM file itself has no totals line).
 */
import { deflateSync, inflateSync } from 'node:zlib';
import { addFen, fen, ZERO_FEN, type Fen } from '../../domain/money.js';
import { CANCEL_REQUEST_NO } from '../../domain/trade.js';
import {
  BILL_DATE_PATTERN,
  BillFormatError,
  summarize,
  type Bill,
  type BillLine,
  type ParseBillOptions,
} from '../../domain/bill.js';
import { buildGbkZip, readZip, ZipError } from '../../formats/zip.js';

/** The ZM file's fields: name (as the specification), byte width. */
export const ZM_COLUMNS = [
  ['交易代码', 3],
  ['代理机构标识码', 11],
  ['发送机构标识码', 11],
  ['系统跟踪号', 6],
  ['交易传输时间', 10],
  ['帐号', 19],
  ['交易金额', 12],
  ['商户类别', 4],
  ['终端类型', 2],
  ['查询流水号', 21],
  ['支付方式（旧）', 2],
  ['商户订单号', 32],
  ['支付卡类型', 2],
  ['原始交易的系统跟踪号', 6],
  ['原始交易日期时间', 10],
  ['商户手续费', 13],
  ['结算金额', 13],
  ['支付方式', 4],
  ['集团商户代码', 15],
  ['交易类型', 2],
  ['交易子类', 2],
  ['业务类型', 6],
  ['帐号类型', 2],
  ['账单类型', 4],
  ['账单号码', 32],
  ['交互方式', 1],
  ['原交易查询流水号', 21],
  ['商户代码', 15],
  ['分账入账方式', 1],
  ['二级商户代码', 15],
  ['二级商户简称', 32],
  ['二级商户分账入账金额', 13],
  ['清算净额', 13],
  ['终端号', 8],
  ['商户自定义域', 32],
  ['优惠金额', 13],
  ['发票金额', 13],
  ['分期付款附加手续费', 12],
  ['分期付款期数', 2],
  ['交易介质', 1],
  ['原始订单号', 32],
  ['保留使用', 98],
] as const satisfies ReadonlyArray<readonly [string, number]>;
export type ZmColumn = (typeof ZM_COLUMNS)[number][0];

/** Bytes of one line: every field plus one separator byte after each but the last. */
export const ZM_LINE_BYTES = ZM_COLUMNS.reduce((n, [, w]) => n + w, 0) + ZM_COLUMNS.length - 1;

/** The transactions a line may be, by its 交易类型 (acp txnType). */
const TXN_KIND: Readonly<Record<string, 'payment' | 'refund' | 'cancel'>> = {
  '01': 'payment',
  '04': 'refund',
  '31': 'cancel',
};

/** The ZM file's name in the ZIP: INN + settlement date (yyMMdd) + batch + ZM_ + merchant id. */
export const ZM_NAME = /^INN(\d{6})(\d{2})ZM_([0-9A-Za-z]{15})$/;

/** An out_trade_no as carried in 商户自定义域 (our reqReserved). */
const OUT_TRADE_NO = /^[A-Za-z0-9_-]{1,64}$/;

export interface UnionPayBillOptions extends ParseBillOptions {
  /** The settlement day asked for ('yyyy-MM-dd'): the file's name must say it. */
  date: string;
  /** The merchant the file must be for (商户代码 of every line, and the file name). */
  merId?: string;
  /** A name for the file in error messages. */
  fileName?: string;
  /** How an order id of ours maps back (consumeOrderId): a 商户自定义域 cut at 32 is accepted only if it maps. */
  orderIdOf?: (outTradeNo: string) => string;
}

const p2 = (n: number) => String(n).padStart(2, '0');

/** The year of an MMDDhhmmss time on a settlement day `date` (UnionPay's day starts the evening before). */
function timeOf(mmddhhmmss: string, date: string): string | null {
  const m = /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)$/.exec(mmddhhmmss);
  if (!m) return null;
  const [, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number];
  const settleYear = Number(date.slice(0, 4));
  const settleMonth = Number(date.slice(5, 7));
  // A December time on a January settlement day is the year before; the other way round the year after.
  const year = mo - settleMonth > 6 ? settleYear - 1 : settleMonth - mo > 6 ? settleYear + 1 : settleYear;
  const t = new Date(Date.UTC(year, mo - 1, d, h, mi, s));
  if (
    t.getUTCMonth() !== mo - 1 ||
    t.getUTCDate() !== d ||
    h > 23 ||
    mi > 59 ||
    s > 59 ||
    !Number.isFinite(t.getTime())
  )
    return null;
  return `${year}-${p2(mo)}-${p2(d)} ${p2(h)}:${p2(mi)}:${p2(s)}`;
}

/** Splits one line (its bytes as latin1: one character per byte) into fields, trimmed. */
function fieldsOfLine(line: string): Record<ZmColumn, string> {
  const out = {} as Record<ZmColumn, string>;
  let at = 0;
  for (const [name, width] of ZM_COLUMNS) {
    out[name] = line.slice(at, at + width).trim();
    at += width + 1;
  }
  return out;
}

/**
 * Parses the ZM file of one settlement day. `name` is its name in the ZIP. Throws BillFormatError for anything it
 * cannot read entirely: a line of another length, a non-ASCII byte in a field relied upon, a bad amount or time,
 * an unknown transaction type, another merchant.
 */
export function parseUnionPayZm(data: Uint8Array, name: string, opts: UnionPayBillOptions): Bill {
  const file = opts.fileName ?? name;
  const fail = (line: number | null, column: string | null, reason: string): never => {
    throw new BillFormatError(file, line, column, reason);
  };
  if (!BILL_DATE_PATTERN.test(opts.date)) fail(null, null, `bill date is not yyyy-MM-dd: ${opts.date}`);
  const base = name.split('/').pop() ?? name;
  const nm = ZM_NAME.exec(base);
  if (!nm) fail(null, null, `not a ZM file name (INN<yyMMdd><nn>ZM_<merId>): ${base}`);
  const [, yymmdd = '', , fileMer = ''] = nm ?? [];
  if (`20${yymmdd.slice(0, 2)}-${yymmdd.slice(2, 4)}-${yymmdd.slice(4, 6)}` !== opts.date)
    fail(null, null, `the file is for settlement day 20${yymmdd}, not ${opts.date}`);
  if (opts.merId !== undefined && fileMer !== opts.merId)
    fail(null, null, `the file is for merchant ${fileMer}, not ${opts.merId}`);

  const text = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('latin1');
  const physical = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  while (physical.length > 0 && physical[physical.length - 1] === '') physical.pop();
  const col = (c: ZmColumn) => `${ZM_COLUMNS.findIndex(([n]) => n === c) + 1} ${c}`;
  const lines: BillLine[] = [];
  physical.forEach((raw, i) => {
    const n = i + 1;
    if (raw.length !== ZM_LINE_BYTES)
      fail(
        n,
        null,
        `${raw.length} bytes, a ZM line has ${ZM_LINE_BYTES}: the file is not a ZM file or is cut`,
      );
    const row = fieldsOfLine(raw);
    const ascii = (c: ZmColumn, pattern: RegExp, what: string) => {
      if (!pattern.test(row[c])) fail(n, col(c), `${what}: "${row[c].replace(/[^\x20-\x7e]/g, '?')}"`);
      return row[c];
    };
    const kindCode = ascii('交易类型', /^\d\d$/, 'not a transaction type');
    const kind = TXN_KIND[kindCode];
    if (!kind) fail(n, col('交易类型'), `transaction type ${kindCode} is not 01, 04 or 31`);
    const amount = Number(ascii('交易金额', /^\d{12}$/, 'not 12 digits of fen'));
    if (amount <= 0) fail(n, col('交易金额'), 'amount must be positive');
    // The fee: C (credit) / D (debit) and 12 digits of fen, or 13 digits; its magnitude is kept.
    const feeText = ascii('商户手续费', /^([CD]\d{12}|\d{13}|)$/, 'not a fee (C/D and 12 digits of fen)');
    const feeFen = feeText === '' ? ZERO_FEN : fen(Number(feeText.replace(/^[CD]/, '')));
    const queryId = ascii('查询流水号', /^[0-9A-Za-z]{6,21}$/, 'not a queryId');
    const orderId = ascii('商户订单号', /^[0-9A-Za-z]{1,32}$/, 'not an order id');
    const merId = ascii('商户代码', /^[0-9A-Za-z]{15}$/, 'not a merchant id');
    if (opts.merId !== undefined && merId !== opts.merId)
      fail(n, col('商户代码'), `a line for merchant ${merId}, not ${opts.merId}`);
    const time = timeOf(ascii('交易传输时间', /^\d{10}$/, 'not MMDDhhmmss'), opts.date);
    if (time === null) fail(n, col('交易传输时间'), `not a time: "${row['交易传输时间']}"`);
    const reserved = ascii('商户自定义域', /^[\x20-\x7e]*$/, 'not ASCII');
    const origQryId =
      kind === 'payment'
        ? ''
        : ascii('原交易查询流水号', /^[0-9A-Za-z]{6,21}$/, 'a reversal without the queryId');

    // Our out_trade_no: 商户自定义域 (we send it as reqReserved with every order) unless the 32-byte field cut it;
    // else the payment's own order id (the out_trade_no itself when it fits UnionPay's order ids).
    let outTradeNo: string;
    const fits = OUT_TRADE_NO.test(reserved);
    const maps = opts.orderIdOf !== undefined && kind === 'payment' && opts.orderIdOf(reserved) === orderId;
    if (fits && (reserved.length < 32 || maps)) outTradeNo = reserved;
    else if (kind === 'payment' && (opts.orderIdOf === undefined || opts.orderIdOf(orderId) === orderId))
      outTradeNo = orderId;
    else if (fits) outTradeNo = reserved;
    else outTradeNo = fail(n, col('商户自定义域'), 'no order number of ours (商户自定义域 empty)');

    const line: BillLine = {
      kind: kind === 'payment' ? 'payment' : 'refund',
      channelTradeNo: kind === 'payment' ? queryId : origQryId,
      outTradeNo,
      amountFen: fen(amount),
      feeFen,
      time: time ?? '',
      payType: 'unionpay',
    };
    if (kind === 'cancel') line.outRequestNo = CANCEL_REQUEST_NO;
    if (kind !== 'payment') line.channelRefundNo = queryId;
    if (opts.keepRaw) line.raw = { ...row };
    lines.push(line);
  });
  return { payType: 'unionpay', date: opts.date, lines, summary: summarize(lines) };
}

/**
 * Reads a fileTransfer answer's `fileContent`: Base64 → zlib inflate → ZIP → the one ZM file. A missing, doubled
 * or unreadable file refuses the whole bill.
 */
export function parseUnionPayFileContent(fileContent: string, opts: UnionPayBillOptions): Bill {
  const file = opts.fileName ?? '(unionpay fileContent)';
  const fail = (reason: string): never => {
    throw new BillFormatError(file, null, null, reason);
  };
  if (!/^[A-Za-z0-9+/\r\n]+={0,2}\s*$/.test(fileContent)) fail('fileContent is not Base64');
  let zip: Buffer = Buffer.alloc(0);
  try {
    zip = inflateSync(Buffer.from(fileContent, 'base64'), { maxOutputLength: 256 * 1024 * 1024 });
  } catch (e) {
    fail(`fileContent does not inflate: ${(e as Error).message}`);
  }
  let entries: ReturnType<typeof readZip> = [];
  try {
    entries = readZip(zip);
  } catch (e) {
    fail(e instanceof ZipError ? e.message : `not a zip: ${(e as Error).message}`);
  }
  const zm = entries.filter((e) => ZM_NAME.test(e.name.split('/').pop() ?? ''));
  if (zm.length !== 1)
    fail(`the zip holds ${zm.length} ZM files (${entries.map((e) => e.name).join(', ') || 'nothing'})`);
  const entry = zm[0] as (typeof zm)[number];
  return parseUnionPayZm(entry.data, entry.name, opts);
}

// ---- building (the fake gateway and the fixture) -----------------------------------------------------------------

export interface ZmLineInput {
  kind: 'payment' | 'refund' | 'cancel';
  /** MMDDhhmmss, Beijing. */
  traceTime: string;
  amountFen: number;
  feeFen: number;
  queryId: string;
  orderId: string;
  /** For refunds and cancels: the payment's queryId. */
  origQryId?: string;
  merId: string;
  /** 商户自定义域 (cut to 32). */
  reqReserved: string;
  traceNo?: string;
  /** Masked card number. */
  accNo?: string;
}

/** One ZM line (ASCII; fields padded to their widths: numbers with zeros on the left, text with spaces). */
export function buildZmLine(l: ZmLineInput): string {
  const v: Partial<Record<ZmColumn, string>> = {
    交易代码: l.kind === 'payment' ? 'S22' : l.kind === 'refund' ? 'S30' : 'S31',
    代理机构标识码: '00000000',
    发送机构标识码: '00000000',
    系统跟踪号: l.traceNo ?? l.queryId.slice(-6),
    交易传输时间: l.traceTime,
    帐号: l.accNo ?? '',
    交易金额: String(l.amountFen).padStart(12, '0'),
    商户类别: '8062',
    终端类型: '08',
    查询流水号: l.queryId,
    商户订单号: l.orderId,
    商户手续费: `${l.kind === 'payment' ? 'D' : 'C'}${String(l.feeFen).padStart(12, '0')}`,
    结算金额: `${l.kind === 'payment' ? 'C' : 'D'}${String(l.amountFen - l.feeFen).padStart(12, '0')}`,
    交易类型: l.kind === 'payment' ? '01' : l.kind === 'refund' ? '04' : '31',
    交易子类: l.kind === 'payment' ? '07' : '00',
    业务类型: '000000',
    原交易查询流水号: l.origQryId ?? '',
    商户代码: l.merId,
    商户自定义域: l.reqReserved.slice(0, 32),
  };
  return ZM_COLUMNS.map(([name, width]) => {
    const value = v[name] ?? '';
    if (value.length > width || !/^[\x20-\x7e]*$/.test(value))
      throw new RangeError(`ZM field ${name} does not fit: ${value}`);
    return value.padEnd(width, ' ');
  }).join(' ');
}

/** A ZM file name for a settlement day ('yyyy-MM-dd') and merchant. */
export function zmFileName(date: string, merId: string): string {
  return `INN${date.slice(2, 4)}${date.slice(5, 7)}${date.slice(8, 10)}01ZM_${merId}`;
}

/** A whole fileTransfer `fileContent`: the ZM file (CRLF lines) in a ZIP, deflated, Base64. */
export function buildUnionPayFileContent(date: string, merId: string, lines: readonly ZmLineInput[]): string {
  const text = lines.map((l) => `${buildZmLine(l)}\r\n`).join('');
  const zip = buildGbkZip(
    [{ name: zmFileName(date, merId), data: Buffer.from(text, 'latin1') }],
    new Date(`${date}T00:00:00Z`),
  );
  return deflateSync(zip).toString('base64');
}

/** Sum of the payments' amounts minus the refunds', for tests. */
export function netFen(bill: Bill): Fen {
  return bill.lines.reduce(
    (s, l) => addFen(s, l.kind === 'payment' ? l.amountFen : fen(-l.amountFen)),
    ZERO_FEN,
  );
}
