/**
 * Channel bills (对账单) as normalised lines, for reconciliation.
 *
 * A parser either returns every line of a bill or throws BillFormatError: a malformed file is never half-read.
 * Amounts are integer fen (see src/domain/money.ts); yuan strings exist only inside the bill files.
 */
import { addFen, formatFen, ZERO_FEN, type Fen } from './money.js';
import type { PayType } from './trade.js';

export type BillLineKind = 'payment' | 'refund';

export interface BillLine {
  kind: BillLineKind;
  /** The channel's trade number (支付宝交易号 / 微信订单号); on a refund line, the refunded trade's. */
  channelTradeNo: string;
  /** Our out_trade_no (商户订单号). */
  outTradeNo: string;
  /** Refund lines: our out_request_no (退款批次号/请求号, 商户退款单号). Absent on payments. */
  outRequestNo?: string;
  /** Refund lines: the channel's refund number (WeChat's 微信退款单号), when the bill carries one. */
  channelRefundNo?: string;
  /** Positive for both kinds: the amount paid, or the amount refunded. */
  amountFen: Fen;
  /**
   * The channel's service fee on this line, as a magnitude (>= 0): charged on a payment, returned on a refund.
   * Bills print it with a sign of their own; the builders here write payments' fees as Alipay -x / WeChat +x
   * and refunds' as Alipay +x / WeChat -x, and the parsers accept either sign.
   */
  feeFen: Fen;
  /** 'yyyy-MM-dd HH:mm:ss', Beijing time, as in the bill (Alipay: 完成时间; WeChat: 交易时间). */
  time: string;
  payType: PayType;
  /** 商品名称, when not empty. */
  subject?: string;
  /** Every column of the row by its header name (values stripped of tabs/backticks); only with keepRaw. */
  raw?: Record<string, string>;
}

/** Totals of a bill. Parsers fill it only after checking it against the lines. */
export interface BillSummary {
  paymentCount: number;
  refundCount: number;
  /** Sum of amountFen over payment lines. */
  paymentFen: Fen;
  /** Sum of amountFen over refund lines (positive). */
  refundFen: Fen;
}

export interface Bill {
  payType: PayType;
  /** The bill date, 'yyyy-MM-dd'. */
  date: string;
  lines: BillLine[];
  summary: BillSummary;
}

export interface ParseBillOptions {
  /** Keep every row's columns in BillLine.raw (off by default). */
  keepRaw?: boolean;
}

/** A bill file that is not what its format says. The message names the file, line (1-based) and column. */
export class BillFormatError extends Error {
  override readonly name = 'BillFormatError';
  constructor(
    readonly file: string,
    readonly line: number | null,
    readonly column: string | null,
    readonly reason: string,
  ) {
    super(
      `bill ${file}${line === null ? '' : ` line ${line}`}${column === null ? '' : `, column ${column}`}: ${reason}`,
    );
  }
}

export function summarize(lines: readonly BillLine[]): BillSummary {
  const s: BillSummary = { paymentCount: 0, refundCount: 0, paymentFen: ZERO_FEN, refundFen: ZERO_FEN };
  for (const l of lines) {
    if (l.kind === 'payment') {
      s.paymentCount++;
      s.paymentFen = addFen(s.paymentFen, l.amountFen);
    } else {
      s.refundCount++;
      s.refundFen = addFen(s.refundFen, l.amountFen);
    }
  }
  return s;
}

export const BILL_TIME_PATTERN =
  /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]) ([01]\d|2[0-3]):[0-5]\d:[0-5]\d$/;
export const BILL_DATE_PATTERN = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;

/**
 * Checks what a builder is about to write. The bill formats never quote, so a value may not hold the
 * separator, a line break, a tab or a backtick; amounts must be whole fen.
 */
export function checkLineForBuild(line: BillLine, index: number): void {
  const where = `bill line ${index + 1}`;
  for (const [name, v] of Object.entries({
    channelTradeNo: line.channelTradeNo,
    outTradeNo: line.outTradeNo,
    outRequestNo: line.outRequestNo ?? '',
    channelRefundNo: line.channelRefundNo ?? '',
    subject: line.subject ?? '',
  })) {
    if (/[,\r\n\t`"]/.test(v))
      throw new RangeError(`${where}: ${name} holds a character the bill cannot carry`);
  }
  if (line.channelTradeNo === '' || line.outTradeNo === '')
    throw new RangeError(`${where}: empty trade number`);
  if (!BILL_TIME_PATTERN.test(line.time)) throw new RangeError(`${where}: time is not yyyy-MM-dd HH:mm:ss`);
  if (!Number.isSafeInteger(line.amountFen) || line.amountFen <= 0) {
    throw new RangeError(`${where}: amountFen must be a positive integer`);
  }
  if (!Number.isSafeInteger(line.feeFen) || line.feeFen < 0) {
    throw new RangeError(`${where}: feeFen must be a non-negative integer`);
  }
  if (line.kind === 'refund' && !line.outRequestNo)
    throw new RangeError(`${where}: a refund needs outRequestNo`);
  formatFen(line.amountFen);
}
