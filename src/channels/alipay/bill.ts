/**
 * Alipay trade bill (alipay.data.dataservice.bill.downloadurl.query, bill_type trade): a ZIP of GBK CSV files,
 * of which the one whose name ends in 业务明细.csv holds one row per payment or refund. See PROTOCOLS.md.
 *
 * The CSV never quotes: values are split on commas and carry a trailing tab. A value with a comma in it
 * (say a product name) would shift the columns, and the column count check refuses such a row loudly.
 */
import iconv from 'iconv-lite';
import {
  absFen,
  addFen,
  formatFen,
  negFen,
  parseSignedYuan,
  parseYuanTotal,
  subFen,
  ZERO_FEN,
  type Fen,
} from '../../domain/money.js';
import {
  BILL_DATE_PATTERN,
  BILL_TIME_PATTERN,
  BillFormatError,
  checkLineForBuild,
  summarize,
  type Bill,
  type BillLine,
  type ParseBillOptions,
} from '../../domain/bill.js';
import { buildGbkZip, readZip, ZipError } from '../../formats/zip.js';

export const ALIPAY_COLUMNS = [
  '支付宝交易号',
  '商户订单号',
  '业务类型',
  '商品名称',
  '创建时间',
  '完成时间',
  '门店编号',
  '门店名称',
  '操作员',
  '终端号',
  '对方账户',
  '订单金额（元）',
  '商家实收（元）',
  '支付宝红包（元）',
  '集分宝（元）',
  '支付宝优惠（元）',
  '商家优惠（元）',
  '券核销金额（元）',
  '券名称',
  '商家红包消费金额（元）',
  '卡消费金额（元）',
  '退款批次号/请求号',
  '服务费（元）',
  '分润（元）',
  '备注',
] as const;

type AlipayColumn = (typeof ALIPAY_COLUMNS)[number];

const AMOUNT_COLUMNS: readonly AlipayColumn[] = ALIPAY_COLUMNS.filter((c) => c.endsWith('（元）'));
const TYPE_PAYMENT = '交易';
const TYPE_REFUND = '退款';

export const ALIPAY_SUMMARY_COLUMNS = [
  '门店编号',
  '门店名称',
  '交易订单总笔数',
  '退款订单总笔数',
  '订单金额（元）',
  '商家实收（元）',
  '支付宝优惠（元）',
  '商家优惠（元）',
  '卡消费金额（元）',
  '服务费（元）',
  '分润（元）',
  '实收净额（元）',
] as const;

export interface AlipayBillOptions {
  /** The merchant's partner id (2088…), in the file names and the headers. */
  pid?: string;
  /** When the bill was exported ('yyyy-MM-dd HH:mm:ss'); default: the next day at 09:00:00. */
  exportedAt?: string;
}

function chineseDateTime(t: string): string {
  // '2024-01-02 09:00:00' -> '2024年01月02日 09:00:00'
  return `${t.slice(0, 4)}年${t.slice(5, 7)}月${t.slice(8, 10)}日${t.slice(10)}`;
}

function nextDay(date: string): string {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().slice(0, 10);
}

function rowText(values: readonly string[]): string {
  return values.map((v) => `${v}\t`).join(',');
}

/** Builds the ZIP Alipay serves for one day's trade bill. Lines are written in the order given. */
export function buildAlipayTradeBill(
  date: string,
  lines: readonly BillLine[],
  opts: AlipayBillOptions = {},
): Buffer {
  if (!BILL_DATE_PATTERN.test(date)) throw new RangeError(`bill date is not yyyy-MM-dd: ${date}`);
  const pid = opts.pid ?? '2088000000000000';
  const exportedAt = opts.exportedAt ?? `${nextDay(date)} 09:00:00`;
  const compact = date.replaceAll('-', '');
  const period = `#起始日期：[${chineseDateTime(`${date} 00:00:00`)}]   终止日期：[${chineseDateTime(`${nextDay(date)} 00:00:00`)}]`;

  let payCount = 0;
  let payReceived = ZERO_FEN;
  let refundCount = 0;
  let refundReceived = ZERO_FEN;
  let fees = ZERO_FEN;
  const rows = lines.map((l, i) => {
    checkLineForBuild(l, i);
    const refund = l.kind === 'refund';
    const amount = formatFen(refund ? negFen(l.amountFen) : l.amountFen);
    const fee = refund ? l.feeFen : negFen(l.feeFen);
    if (refund) {
      refundCount++;
      refundReceived = subFen(refundReceived, l.amountFen);
    } else {
      payCount++;
      payReceived = addFen(payReceived, l.amountFen);
    }
    fees = addFen(fees, fee);
    const v: Record<AlipayColumn, string> = {
      支付宝交易号: l.channelTradeNo,
      商户订单号: l.outTradeNo,
      业务类型: refund ? TYPE_REFUND : TYPE_PAYMENT,
      商品名称: l.subject ?? '',
      创建时间: l.time,
      完成时间: l.time,
      门店编号: '',
      门店名称: '',
      操作员: '',
      终端号: '',
      对方账户: '',
      '订单金额（元）': amount,
      '商家实收（元）': amount,
      '支付宝红包（元）': '0.00',
      '集分宝（元）': '0.00',
      '支付宝优惠（元）': '0.00',
      '商家优惠（元）': '0.00',
      '券核销金额（元）': '0.00',
      券名称: '',
      '商家红包消费金额（元）': '0.00',
      '卡消费金额（元）': '0.00',
      '退款批次号/请求号': refund ? (l.outRequestNo ?? '') : '',
      '服务费（元）': formatFen(fee),
      '分润（元）': '0.00',
      备注: '',
    };
    return rowText(ALIPAY_COLUMNS.map((c) => v[c]));
  });

  const detail = [
    '#支付宝业务明细查询',
    `#账号：[${pid}0156]`,
    period,
    '#-----------------------------------------业务明细列表----------------------------------------',
    ALIPAY_COLUMNS.join(','),
    ...rows,
    '#-----------------------------------------业务明细列表结束------------------------------------',
    `#交易合计：${payCount}笔，商家实收共${formatFen(payReceived)}元，商家优惠共0.00元`,
    `#退款合计：${refundCount}笔，商家实收退款共${formatFen(refundReceived)}元，商家优惠退款共0.00元`,
    `#导出时间：[${chineseDateTime(exportedAt)}]`,
  ];
  const net = addFen(payReceived, refundReceived);
  const summary = [
    '#支付宝业务汇总查询',
    `#账号：[${pid}0156]`,
    period,
    '#-----------------------------------------业务汇总列表----------------------------------------',
    ALIPAY_SUMMARY_COLUMNS.join(','),
    rowText([
      '',
      '合计',
      String(payCount),
      String(refundCount),
      formatFen(net),
      formatFen(net),
      '0.00',
      '0.00',
      '0.00',
      formatFen(fees),
      '0.00',
      formatFen(addFen(net, fees)),
    ]),
    '#-----------------------------------------业务汇总列表结束------------------------------------',
    `#导出时间：[${chineseDateTime(exportedAt)}]`,
  ];
  const gbk = (text: string[]) => new Uint8Array(iconv.encode(`${text.join('\r\n')}\r\n`, 'gbk'));
  const mtime = new Date(`${exportedAt.replace(' ', 'T')}+08:00`);
  return buildGbkZip(
    [
      { name: `${pid}_${compact}_业务明细.csv`, data: gbk(detail) },
      { name: `${pid}_${compact}_业务明细(汇总).csv`, data: gbk(summary) },
    ],
    mtime,
  );
}

/** Splits one unquoted CSV line and strips each value's trailing tab (and padding spaces). */
function splitRow(line: string): string[] {
  return line.split(',').map((v) => v.replace(/[\t ]+$/, '').replace(/^[\t ]+/, ''));
}

/** Parses the ZIP of an Alipay trade bill. Throws BillFormatError for anything it cannot read entirely. */
export function parseAlipayTradeBill(zip: Uint8Array, opts: ParseBillOptions = {}): Bill {
  let entries;
  try {
    entries = readZip(zip);
  } catch (e) {
    if (e instanceof ZipError) throw new BillFormatError('(alipay zip)', null, null, e.message);
    throw e;
  }
  const details = entries.filter((e) => e.name.endsWith('业务明细.csv'));
  const detail = details[0];
  if (detail === undefined || details.length > 1) {
    throw new BillFormatError(
      '(alipay zip)',
      null,
      null,
      `expected exactly one file named …业务明细.csv, found ${details.length} among [${entries.map((e) => e.name).join(', ')}]`,
    );
  }
  const file = detail.name;
  function fail(line: number | null, column: string | null, reason: string): never {
    throw new BillFormatError(file, line, column, reason);
  }

  const text = iconv.decode(Buffer.from(detail.data), 'gbk');
  if (text.includes('\uFFFD')) fail(null, null, 'not valid GBK text');
  const physical = text.split(/\r?\n/);

  let date: string | null = null;
  const fromName = /_(\d{4})(\d{2})(\d{2})_业务明细\.csv$/.exec(file);
  if (fromName) date = `${fromName[1]}-${fromName[2]}-${fromName[3]}`;

  let header: string[] | null = null;
  let payFooter: { count: number; received: Fen; line: number } | null = null;
  let refundFooter: { count: number; received: Fen; line: number } | null = null;
  const lines: BillLine[] = [];
  const received = { payment: ZERO_FEN, refund: ZERO_FEN };

  for (const [idx, raw] of physical.entries()) {
    const n = idx + 1;
    if (raw.trim() === '') continue;
    if (raw.startsWith('#')) {
      const d = /^#起始日期：\[(\d{4})年(\d{2})月(\d{2})日/.exec(raw);
      if (d && date === null) date = `${d[1]}-${d[2]}-${d[3]}`;
      const f = /^#(交易|退款)合计：(\d+)笔，商家实收(?:退款)?共(-?[0-9.]+)元/.exec(raw);
      if (f) {
        const amount = parseYuanTotal(f[3] as string);
        if (amount === null) fail(n, null, `footer amount is not yuan: ${f[3]}`);
        const footer = { count: Number(f[2]), received: amount, line: n };
        if (f[1] === TYPE_PAYMENT) payFooter = footer;
        else refundFooter = footer;
      }
      continue;
    }
    const cells = splitRow(raw);
    if (header === null) {
      // The first line that is not a comment is the header row.
      header = cells;
      ALIPAY_COLUMNS.forEach((c, i) => {
        if (cells[i] !== c) fail(n, `${i + 1}`, `header should be ${c}, found ${cells[i] ?? '(nothing)'}`);
      });
      if (cells.length !== ALIPAY_COLUMNS.length) {
        fail(n, null, `header has ${cells.length} columns, expected ${ALIPAY_COLUMNS.length}`);
      }
      continue;
    }
    if (cells.length !== ALIPAY_COLUMNS.length) {
      fail(n, null, `${cells.length} columns, expected ${ALIPAY_COLUMNS.length}`);
    }
    const row = Object.fromEntries(ALIPAY_COLUMNS.map((c, i) => [c, cells[i] ?? ''])) as Record<
      AlipayColumn,
      string
    >;
    const col = (c: AlipayColumn) => `${ALIPAY_COLUMNS.indexOf(c) + 1} ${c}`;
    const amounts = {} as Record<AlipayColumn, Fen>;
    for (const c of AMOUNT_COLUMNS) {
      const fen = parseSignedYuan(row[c]);
      if (fen === null) fail(n, col(c), `not a yuan amount with at most 2 decimals: "${row[c]}"`);
      amounts[c] = fen;
    }
    const type = row['业务类型'];
    if (type !== TYPE_PAYMENT && type !== TYPE_REFUND)
      fail(n, col('业务类型'), `unknown business type "${type}"`);
    const refund = type === TYPE_REFUND;
    const amount = amounts['订单金额（元）'];
    if (refund ? amount >= 0 : amount <= 0) {
      fail(
        n,
        col('订单金额（元）'),
        `a ${type} row needs a ${refund ? 'negative' : 'positive'} amount: ${row['订单金额（元）']}`,
      );
    }
    for (const c of ['支付宝交易号', '商户订单号'] as const) if (row[c] === '') fail(n, col(c), 'empty');
    if (!BILL_TIME_PATTERN.test(row['完成时间']))
      fail(n, col('完成时间'), `not yyyy-MM-dd HH:mm:ss: "${row['完成时间']}"`);
    if (refund) received.refund = addFen(received.refund, amounts['商家实收（元）']);
    else received.payment = addFen(received.payment, amounts['商家实收（元）']);

    const line: BillLine = {
      kind: refund ? 'refund' : 'payment',
      channelTradeNo: row['支付宝交易号'],
      outTradeNo: row['商户订单号'],
      amountFen: absFen(amount),
      feeFen: absFen(amounts['服务费（元）']),
      time: row['完成时间'],
      payType: 'alipay',
    };
    if (refund && row['退款批次号/请求号'] !== '') line.outRequestNo = row['退款批次号/请求号'];
    if (row['商品名称'] !== '') line.subject = row['商品名称'];
    if (opts.keepRaw) line.raw = { ...row };
    lines.push(line);
  }

  if (header === null) fail(null, null, 'no header row (is this the 业务明细 file?)');
  if (date === null) fail(null, null, 'no bill date in the file name or the 起始日期 header');
  const summary = summarize(lines);
  // The footers, when present, must agree with the rows: a cut or doctored file is refused.
  const checkFooter = (
    f: { count: number; received: Fen; line: number } | null,
    count: number,
    sum: Fen,
    what: string,
  ) => {
    if (f === null) return;
    if (f.count !== count) fail(f.line, null, `footer says ${f.count} ${what} rows, the file has ${count}`);
    if (f.received !== sum) {
      fail(
        f.line,
        null,
        `footer says ${formatFen(f.received)} yuan for ${what}, the rows add up to ${formatFen(sum)}`,
      );
    }
  };
  checkFooter(payFooter, summary.paymentCount, received.payment, TYPE_PAYMENT);
  checkFooter(refundFooter, summary.refundCount, received.refund, TYPE_REFUND);
  return { payType: 'alipay', date, lines, summary };
}
