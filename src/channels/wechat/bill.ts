/**
 * WeChat Pay trade bill (GET /v3/bill/tradebill, bill_type ALL): UTF-8 CSV with a BOM, a header row, one row
 * per payment (交易状态 SUCCESS) or refund (REFUND), every data value prefixed by a backtick, then a summary
 * block (a header line and one values line). See PROTOCOLS.md.
 *
 * The CSV never quotes: values are split on commas. A value holding a comma would shift the columns, and the
 * column count / backtick checks refuse such a row loudly.
 */
import {
  absFen,
  addFen,
  formatFen,
  negFen,
  parseSignedYuan,
  parseYuanTotal,
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

export const WECHAT_COLUMNS = [
  '交易时间',
  '公众账号ID',
  '商户号',
  '特约商户号',
  '设备号',
  '微信订单号',
  '商户订单号',
  '用户标识',
  '交易类型',
  '交易状态',
  '付款银行',
  '货币种类',
  '应结订单金额',
  '代金券金额',
  '微信退款单号',
  '商户退款单号',
  '退款金额',
  '充值券退款金额',
  '退款类型',
  '退款状态',
  '商品名称',
  '商户数据包',
  '手续费',
  '费率',
  '订单金额',
  '申请退款金额',
  '费率备注',
] as const;
type WechatColumn = (typeof WECHAT_COLUMNS)[number];

export const WECHAT_SUMMARY_COLUMNS = [
  '总交易单数',
  '应结订单总金额',
  '退款总金额',
  '充值券退款总金额',
  '手续费总金额',
  '订单总金额',
  '申请退款总金额',
] as const;

/** Unsigned amount columns, and the column each summary total adds up. 手续费 is signed. */
const UNSIGNED: readonly WechatColumn[] = [
  '应结订单金额',
  '代金券金额',
  '退款金额',
  '充值券退款金额',
  '订单金额',
  '申请退款金额',
];
const TOTAL_OF: ReadonlyArray<[(typeof WECHAT_SUMMARY_COLUMNS)[number], WechatColumn]> = [
  ['应结订单总金额', '应结订单金额'],
  ['退款总金额', '退款金额'],
  ['充值券退款总金额', '充值券退款金额'],
  ['手续费总金额', '手续费'],
  ['订单总金额', '订单金额'],
  ['申请退款总金额', '申请退款金额'],
];

const BOM = '\uFEFF';

export interface WechatBillOptions {
  appId?: string;
  mchId?: string;
  /** 特约商户号 (service-provider mode), written on every row. */
  subMchId?: string;
  /** 交易类型 written on every row (JSAPI, NATIVE, MICROPAY, …). */
  tradeType?: string;
  /** 费率 written on every row. */
  rate?: string;
}

/** Builds one day's WeChat trade bill. Lines are written in the order given. */
export function buildWechatTradeBill(
  date: string,
  lines: readonly BillLine[],
  opts: WechatBillOptions = {},
): Buffer {
  if (!BILL_DATE_PATTERN.test(date)) throw new RangeError(`bill date is not yyyy-MM-dd: ${date}`);
  const totals: Record<WechatColumn, Fen> = Object.fromEntries(
    WECHAT_COLUMNS.map((c) => [c, ZERO_FEN]),
  ) as Record<WechatColumn, Fen>;
  const rows = lines.map((l, i) => {
    checkLineForBuild(l, i);
    const refund = l.kind === 'refund';
    const amounts: Partial<Record<WechatColumn, Fen>> = {
      应结订单金额: refund ? ZERO_FEN : l.amountFen,
      代金券金额: ZERO_FEN,
      退款金额: refund ? l.amountFen : ZERO_FEN,
      充值券退款金额: ZERO_FEN,
      手续费: refund ? negFen(l.feeFen) : l.feeFen,
      订单金额: refund ? ZERO_FEN : l.amountFen,
      申请退款金额: refund ? l.amountFen : ZERO_FEN,
    };
    const v: Record<WechatColumn, string> = {
      交易时间: l.time,
      公众账号ID: opts.appId ?? 'wx0000000000000000',
      商户号: opts.mchId ?? '1900000000',
      特约商户号: opts.subMchId ?? '',
      设备号: '',
      微信订单号: l.channelTradeNo,
      商户订单号: l.outTradeNo,
      用户标识: '',
      交易类型: opts.tradeType ?? 'MICROPAY',
      交易状态: refund ? 'REFUND' : 'SUCCESS',
      付款银行: 'OTHERS',
      货币种类: 'CNY',
      应结订单金额: '',
      代金券金额: '',
      微信退款单号: refund ? (l.channelRefundNo ?? '') : '',
      商户退款单号: refund ? (l.outRequestNo ?? '') : '',
      退款金额: '',
      充值券退款金额: '',
      退款类型: refund ? 'ORIGINAL' : '',
      退款状态: refund ? 'SUCCESS' : '',
      商品名称: l.subject ?? '',
      商户数据包: '',
      手续费: '',
      费率: opts.rate ?? '0.60%',
      订单金额: '',
      申请退款金额: '',
      费率备注: '',
    };
    for (const [c, amount] of Object.entries(amounts) as Array<[WechatColumn, Fen]>) {
      v[c] = formatFen(amount);
      totals[c] = addFen(totals[c], amount);
    }
    return WECHAT_COLUMNS.map((c) => `\`${v[c]}`).join(',');
  });
  const summaryValues = [String(lines.length), ...TOTAL_OF.map(([, c]) => formatFen(totals[c]))];
  const text = [
    WECHAT_COLUMNS.join(','),
    ...rows,
    WECHAT_SUMMARY_COLUMNS.join(','),
    summaryValues.map((v) => `\`${v}`).join(','),
  ];
  return Buffer.from(`${BOM}${text.join('\r\n')}\r\n`, 'utf8');
}

export interface WechatParseOptions extends ParseBillOptions {
  /** The bill date asked for ('yyyy-MM-dd'); the file does not carry it. Default: the first row's date. */
  date?: string;
  /** A name for the file in error messages. */
  fileName?: string;
}

/** Parses a WeChat trade bill. Throws BillFormatError for anything it cannot read entirely. */
export function parseWechatTradeBill(buf: Uint8Array, opts: WechatParseOptions = {}): Bill {
  const file = opts.fileName ?? '(wechat trade bill)';
  function fail(line: number | null, column: string | null, reason: string): never {
    throw new BillFormatError(file, line, column, reason);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(buf);
  } catch {
    fail(null, null, 'not valid UTF-8 text');
  }
  if (text.startsWith(BOM)) text = text.slice(1);
  const physical = text.split(/\r?\n/);
  while (physical.length > 0 && physical[physical.length - 1]?.trim() === '') physical.pop();
  const col = (c: string, list: readonly string[]) => `${list.indexOf(c) + 1} ${c}`;

  const headerCells = (physical[0] ?? '').split(',').map((s) => s.trim());
  WECHAT_COLUMNS.forEach((c, i) => {
    if (headerCells[i] !== c)
      fail(1, `${i + 1}`, `header should be ${c}, found ${headerCells[i] ?? '(nothing)'}`);
  });
  if (headerCells.length !== WECHAT_COLUMNS.length) {
    fail(1, null, `header has ${headerCells.length} columns, expected ${WECHAT_COLUMNS.length}`);
  }

  /** Splits a data line; every value must start with a backtick. */
  function values(raw: string, n: number, columns: readonly string[]): string[] {
    const cells = raw.split(',');
    if (cells.length !== columns.length) fail(n, null, `${cells.length} columns, expected ${columns.length}`);
    return cells.map((cell, i) => {
      if (!cell.startsWith('`'))
        fail(n, `${i + 1} ${columns[i]}`, `value does not start with a backtick: "${cell}"`);
      return cell.slice(1).trim();
    });
  }

  const summaryHeaderText = WECHAT_SUMMARY_COLUMNS.join(',');
  const lines: BillLine[] = [];
  const totals = new Map<WechatColumn, Fen>(TOTAL_OF.map(([, c]) => [c, ZERO_FEN]));
  let n = 1;
  for (; n < physical.length; n++) {
    const raw = physical[n] as string;
    if (raw.trim() === '') continue;
    if (raw.trim() === summaryHeaderText) break;
    const cells = values(raw, n + 1, WECHAT_COLUMNS);
    const row = Object.fromEntries(WECHAT_COLUMNS.map((c, i) => [c, cells[i] ?? ''])) as Record<
      WechatColumn,
      string
    >;
    const amounts = new Map<WechatColumn, Fen>();
    for (const c of [...UNSIGNED, '手续费' as const]) {
      const fen = parseSignedYuan(row[c]);
      if (fen === null || (fen < 0 && c !== '手续费')) {
        fail(n + 1, col(c, WECHAT_COLUMNS), `not a yuan amount with at most 2 decimals: "${row[c]}"`);
      }
      amounts.set(c, fen);
      if (totals.has(c)) totals.set(c, addFen(totals.get(c) ?? ZERO_FEN, fen));
    }
    const state = row['交易状态'];
    let refund: boolean;
    if (state === 'SUCCESS') refund = false;
    else if (state === 'REFUND') refund = true;
    else fail(n + 1, col('交易状态', WECHAT_COLUMNS), `unexpected state "${state}" (SUCCESS or REFUND)`);
    if (refund !== (row['商户退款单号'] !== '')) {
      fail(
        n + 1,
        col('商户退款单号', WECHAT_COLUMNS),
        `a ${state} row ${refund ? 'needs' : 'has'} a refund number`,
      );
    }
    const amountColumn: WechatColumn = refund ? '申请退款金额' : '订单金额';
    const amountFen = amounts.get(amountColumn) ?? ZERO_FEN;
    if (amountFen <= 0)
      fail(n + 1, col(amountColumn, WECHAT_COLUMNS), `a ${state} row needs a positive amount`);
    for (const c of ['微信订单号', '商户订单号'] as const)
      if (row[c] === '') fail(n + 1, col(c, WECHAT_COLUMNS), 'empty');
    if (!BILL_TIME_PATTERN.test(row['交易时间'])) {
      fail(n + 1, col('交易时间', WECHAT_COLUMNS), `not yyyy-MM-dd HH:mm:ss: "${row['交易时间']}"`);
    }
    const line: BillLine = {
      kind: refund ? 'refund' : 'payment',
      channelTradeNo: row['微信订单号'],
      outTradeNo: row['商户订单号'],
      amountFen,
      feeFen: absFen(amounts.get('手续费') ?? ZERO_FEN),
      time: row['交易时间'],
      payType: 'weixin',
    };
    if (refund) {
      line.outRequestNo = row['商户退款单号'];
      if (row['微信退款单号'] !== '') line.channelRefundNo = row['微信退款单号'];
    }
    if (row['商品名称'] !== '') line.subject = row['商品名称'];
    if (opts.keepRaw) line.raw = { ...row };
    lines.push(line);
  }

  // The summary block: its header, exactly one values line, then nothing.
  if (n >= physical.length) fail(null, null, 'no summary block (总交易单数,…): the file may be cut short');
  const valueLine = n + 1;
  const rest = physical.slice(valueLine).filter((l) => l.trim() !== '');
  if (rest.length !== 1) fail(valueLine + 1, null, `expected one summary values line, found ${rest.length}`);
  const sv = values(physical[valueLine] ?? '', valueLine + 1, WECHAT_SUMMARY_COLUMNS);
  const summaryCol = (c: string) => col(c, WECHAT_SUMMARY_COLUMNS);
  const countText = sv[0] ?? '';
  if (!/^(0|[1-9]\d*)$/.test(countText))
    fail(valueLine + 1, summaryCol('总交易单数'), `not a count: "${countText}"`);
  if (Number(countText) !== lines.length) {
    fail(
      valueLine + 1,
      summaryCol('总交易单数'),
      `summary says ${countText} rows, the file has ${lines.length}`,
    );
  }
  TOTAL_OF.forEach(([total, c], i) => {
    const text = sv[i + 1] ?? '';
    const fen = parseYuanTotal(text);
    if (fen === null)
      fail(valueLine + 1, summaryCol(total), `not a yuan amount with at most 2 decimals: "${text}"`);
    const sum = totals.get(c) ?? ZERO_FEN;
    if (fen !== sum) {
      fail(
        valueLine + 1,
        summaryCol(total),
        `summary says ${formatFen(fen)}, the ${c} column adds up to ${formatFen(sum)}`,
      );
    }
  });

  const date = opts.date ?? lines[0]?.time.slice(0, 10);
  if (date === undefined || !BILL_DATE_PATTERN.test(date))
    fail(null, null, 'bill date unknown: pass opts.date');
  return { payType: 'weixin', date, lines, summary: summarize(lines) };
}
