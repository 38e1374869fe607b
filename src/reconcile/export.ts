/**
 * The day report's exports: CSV (exact yuan strings) and XLSX (numbers, formatted), built from one table model so
 * both carry the same columns.
 *
 * CSV: UTF-8 with a BOM (so Excel opens the Chinese headers correctly), CRLF line ends, RFC 4180 quoting, and a
 * guard against formula injection: a text cell starting with = + - @ tab or CR gets a leading ' so a spreadsheet
 * shows it as text instead of running it. Amounts are yuan strings with exactly two decimals made from integer fen
 * (formatFen), never through a float, and are never prefixed (a negative net stays -12.00). The whole report is one
 * file of sections, each a title line, a header line and its rows (the groupings end with a 合计 total row),
 * separated by one blank line; reportToCsv(report, section) gives one section alone, header and rows only, without
 * a total row: a plain table for other programs.
 *
 * XLSX: one sheet per part, a title row (date, app), bold frozen header, amounts as numbers in yuan with the
 * format #,##0.00. Yuan = fen / 100 is computed only there, for display (exact to the cent as shown); the exact
 * strings are the CSV's.
 */
import ExcelJS from 'exceljs';
import { formatFen, type Fen } from '../domain/money.js';
import { formatShanghai } from '../domain/clock.js';
import { AMOUNT_KEYS, sumAmounts, type AmountKey, type DayReport, type ReportAmounts } from './report.js';

export type ReportSection = 'summary' | 'channel' | 'category' | 'cashier' | 'reconciliation' | 'differences';

export const REPORT_SECTIONS: readonly ReportSection[] = [
  'summary',
  'channel',
  'category',
  'cashier',
  'reconciliation',
  'differences',
];

export const SECTION_TITLES: Readonly<Record<ReportSection, string>> = {
  summary: '汇总 (summary)',
  channel: '按渠道 (by channel)',
  category: '按业务类别 (by business category)',
  cashier: '按终端操作员 日结 (cash-up by terminal and operator)',
  reconciliation: '对账状态 (reconciliation)',
  differences: '差异明细 (differences)',
};

export const AMOUNT_HEADERS: Readonly<Record<AmountKey, string>> = {
  paymentCount: '收款笔数(payments)',
  paymentFen: '收款金额(payment, 元)',
  paymentCashFen: '收款现金部分(payment cash, 元)',
  paymentInsuranceFen: '收款医保部分(payment insurance, 元)',
  refundCount: '退款笔数(refunds)',
  refundFen: '退款金额(refund, 元)',
  refundCashFen: '退款现金部分(refund cash, 元)',
  refundInsuranceFen: '退款医保部分(refund insurance, 元)',
  netFen: '净额(net, 元)',
  netCashFen: '现金净额(net cash, 元)',
  netInsuranceFen: '医保净额(net insurance, 元)',
  reducedFen: '减免(reduced, 元)',
};

/** A cell of the table model: text, an integer (count, id), or an amount in fen. */
export type Cell = string | number | { fen: Fen } | null;

export interface Table {
  section: ReportSection;
  title: string;
  headers: string[];
  rows: Cell[][];
  /** The 合计 row of a grouping (absent for the summary and the lists). */
  total?: Cell[];
}

const TOTAL_LABEL = '合计(total)';

/** A run's state as the finance page says it, with the stored word after it. */
const RUN_STATUS_LABELS: Readonly<Record<string, string>> = {
  DONE: '完成(DONE)',
  INCOMPLETE: '未完成(INCOMPLETE)',
  FAILED: '失败(FAILED)',
};

/** A difference's state as the finance page says it, with the stored word after it. */
const STATE_LABELS: Readonly<Record<string, string>> = {
  OPEN: '未处理(OPEN)',
  RESOLVED: '已处理(RESOLVED)',
};

function amountCells(a: ReportAmounts): Cell[] {
  return AMOUNT_KEYS.map((k) => (k === 'paymentCount' || k === 'refundCount' ? a[k] : { fen: a[k] }));
}

function local(iso: string | null): string {
  return iso ? formatShanghai(new Date(iso)) : '';
}

/** One part of the report as a table (the same columns in CSV, XLSX and the CLI's text). */
export function sectionTable(report: DayReport, section: ReportSection): Table {
  const amountHeaders = AMOUNT_KEYS.map((k) => AMOUNT_HEADERS[k]);
  const base = { section, title: SECTION_TITLES[section] };
  switch (section) {
    case 'summary':
      return {
        ...base,
        headers: ['项目(item)', ...amountHeaders],
        rows: [[TOTAL_LABEL, ...amountCells(report.summary)]],
      };
    case 'channel':
      return {
        ...base,
        headers: ['渠道(pay type)', '渠道名称(channel)', ...amountHeaders],
        rows: report.byChannel.map((r) => [r.payType, r.label, ...amountCells(r)]),
        total: [TOTAL_LABEL, '', ...amountCells(sumAmounts(report.byChannel))],
      };
    case 'category':
      return {
        ...base,
        headers: ['类别(category)', '类别名称(category name)', ...amountHeaders],
        rows: report.byCategory.map((r) => [r.category, r.name, ...amountCells(r)]),
        total: [TOTAL_LABEL, '', ...amountCells(sumAmounts(report.byCategory))],
      };
    case 'cashier':
      return {
        ...base,
        headers: ['终端(terminal)', '操作员(operator)', ...amountHeaders],
        rows: report.byCashier.map((r) => [r.terminal, r.operator, ...amountCells(r)]),
        total: [TOTAL_LABEL, '', ...amountCells(sumAmounts(report.byCashier))],
      };
    case 'reconciliation':
      return {
        ...base,
        headers: [
          '应用(app)',
          '渠道(pay type)',
          '渠道名称(channel)',
          '状态(status)',
          '已匹配(matched)',
          '差异(differences)',
          '未处理(open)',
          'HIS错误(HIS error)',
          '完成时间(finished, 北京时间)',
        ],
        rows: report.reconciliation.map((r) => [
          r.appId,
          r.payType,
          r.label,
          RUN_STATUS_LABELS[r.status] ?? r.status,
          r.matched,
          r.differences,
          r.open,
          r.hisError ?? '',
          local(r.finishedAt),
        ]),
      };
    case 'differences':
      return {
        ...base,
        headers: [
          '编号(id)',
          '应用(app)',
          '渠道(pay type)',
          '差异类型(code)',
          '说明(label)',
          '收退(kind)',
          '商户订单号(out_trade_no)',
          '退款请求号(out_request_no)',
          '平台金额(platform, 元)',
          '渠道金额(channel, 元)',
          'HIS金额(HIS, 元)',
          '处理状态(state)',
          '建议(suggestion)',
          '处理人(resolved by)',
          '处理说明(note)',
          '处理时间(resolved at, 北京时间)',
        ],
        rows: report.differences.map((d) => [
          d.id,
          d.appId,
          d.payType,
          d.code,
          d.label.zh,
          d.kind === 'payment' ? '收款(payment)' : d.kind === 'refund' ? '退款(refund)' : d.kind,
          d.outTradeNo,
          d.outRequestNo ?? '',
          d.amounts.platformFen === undefined ? null : { fen: d.amounts.platformFen },
          d.amounts.channelFen === undefined ? null : { fen: d.amounts.channelFen },
          d.amounts.hisFen === undefined ? null : { fen: d.amounts.hisFen },
          STATE_LABELS[d.state] ?? d.state,
          (d.suggestion ?? d.action).zh,
          d.resolvedBy ?? '',
          d.resolvedNote ?? '',
          local(d.resolvedAt),
        ]),
      };
  }
}

/** The report's title: date and app. */
export function reportTitle(report: DayReport): string {
  const who = report.app ? `${report.app.name} (${report.app.id})` : '全部应用 (all apps)';
  return `hospay 日报 (day report) ${report.date} · ${who}`;
}

/** The business day and when the report was made, in Beijing time. */
export function reportSubtitle(report: DayReport): string {
  return (
    `业务日 (business day) ${report.period.fromLocal} – ${report.period.toLocal} 北京时间 (Asia/Shanghai)` +
    ` · 生成 (generated) ${local(report.generatedAt)}`
  );
}

// --- CSV ----------------------------------------------------------------------------------------------------

const FORMULA_START = /^[=+\-@\t\r]/;

/** A text cell for CSV: formula-injection guard, then RFC 4180 quoting. */
export function csvText(value: string): string {
  const guarded = FORMULA_START.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(guarded) ? `"${guarded.replace(/"/g, '""')}"` : guarded;
}

function csvCell(c: Cell): string {
  if (c === null) return '';
  if (typeof c === 'number') return String(c);
  if (typeof c === 'object') return formatFen(c.fen);
  return csvText(c);
}

function csvLine(cells: readonly Cell[]): string {
  return `${cells.map(csvCell).join(',')}\r\n`;
}

const BOM = '\uFEFF';

/**
 * The report as CSV text (starting with a BOM; encode it as UTF-8). Without `section`: every part, each as a title
 * line, header and rows (+ a 合计 row for the groupings), parts separated by a blank line, after a first line with
 * the date and app. With `section`: that part only, header and rows, no title and no total row.
 */
export function reportToCsv(report: DayReport, section?: ReportSection): string {
  if (section !== undefined) {
    const t = sectionTable(report, section);
    return BOM + csvLine(t.headers) + t.rows.map(csvLine).join('');
  }
  let out =
    BOM +
    csvLine([
      'hospay 日报 (day report)',
      report.date,
      report.app ? `${report.app.name} (${report.app.id})` : '全部应用 (all apps)',
      `${report.period.fromLocal} – ${report.period.toLocal} 北京时间 (Asia/Shanghai)`,
    ]);
  for (const s of REPORT_SECTIONS) {
    const t = sectionTable(report, s);
    out += '\r\n' + csvLine([t.title]) + csvLine(t.headers) + t.rows.map(csvLine).join('');
    if (t.total) out += csvLine(t.total);
  }
  return out;
}

// --- XLSX ---------------------------------------------------------------------------------------------------

/** The sheets, in order, and the parts each shows. */
export const XLSX_SHEETS: ReadonlyArray<{ name: string; sections: readonly ReportSection[] }> = [
  { name: '汇总', sections: ['summary', 'reconciliation'] },
  { name: '按渠道', sections: ['channel'] },
  { name: '按业务类别', sections: ['category'] },
  { name: '按终端操作员 (日结)', sections: ['cashier'] },
  { name: '差异明细', sections: ['differences'] },
];

const YUAN_FORMAT = '#,##0.00';

/** Display width in a monospaced sense: CJK and full-width characters count 2. */
export function displayWidth(text: string): number {
  let w = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0;
    w +=
      (cp >= 0x1100 && cp <= 0x115f) ||
      (cp >= 0x2e80 && cp <= 0xa4cf) ||
      (cp >= 0xac00 && cp <= 0xd7a3) ||
      (cp >= 0xf900 && cp <= 0xfaff) ||
      (cp >= 0xfe30 && cp <= 0xfe4f) ||
      (cp >= 0xff00 && cp <= 0xff60) ||
      (cp >= 0xffe0 && cp <= 0xffe6)
        ? 2
        : 1;
  }
  return w;
}

function xlsxValue(c: Cell): string | number | null {
  if (c === null) return null;
  if (typeof c === 'object') return c.fen / 100; // display only: the exact amount is the CSV's string
  return c;
}

function cellText(c: Cell): string {
  if (c === null) return '';
  if (typeof c === 'object') return formatFen(c.fen);
  return String(c);
}

/**
 * The report as an XLSX workbook: sheets 汇总 (summary and reconciliation status) / 按渠道 / 按业务类别 /
 * 按终端操作员 (日结) / 差异明细. Text is written as text (never as a formula), amounts as numbers in yuan.
 */
export async function reportToXlsx(report: DayReport): Promise<Buffer> {
  const wb = new ExcelJS.Workbook();
  wb.creator = 'hospay';
  wb.created = new Date(report.generatedAt);
  for (const sheet of XLSX_SHEETS) {
    const ws = wb.addWorksheet(sheet.name);
    const widths: number[] = [];
    const fit = (col: number, text: string) => {
      widths[col] = Math.max(widths[col] ?? 8, Math.min(displayWidth(text) + 2, 48));
    };
    ws.addRow([reportTitle(report)]).font = { bold: true, size: 14 };
    ws.addRow([reportSubtitle(report)]);
    let frozen = 0;
    sheet.sections.forEach((section, i) => {
      const t = sectionTable(report, section);
      if (i > 0) {
        ws.addRow([]);
        ws.addRow([t.title]).font = { bold: true };
      }
      const header = ws.addRow(t.headers);
      header.font = { bold: true };
      header.alignment = { vertical: 'middle', wrapText: true };
      header.eachCell((cell) => {
        cell.fill = { type: 'pattern', pattern: 'solid', fgColor: { argb: 'FFE8EEF5' } };
        cell.border = { bottom: { style: 'thin' } };
      });
      if (i === 0) frozen = header.number;
      // Headers wrap: they widen a column only so far.
      t.headers.forEach(
        (h, col) => (widths[col] = Math.max(widths[col] ?? 8, Math.min(displayWidth(h), 22))),
      );
      const rows = t.rows.length ? t.rows : [['无 (none)']];
      const all = t.total ? [...rows, t.total] : rows;
      all.forEach((cells, n) => {
        const row = ws.addRow(cells.map(xlsxValue));
        cells.forEach((c, col) => {
          if (c !== null && typeof c === 'object') row.getCell(col + 1).numFmt = YUAN_FORMAT;
          else if (typeof c === 'number') row.getCell(col + 1).numFmt = '0';
          fit(col, cellText(c));
        });
        if (t.total && n === all.length - 1) {
          row.font = { bold: true };
          row.eachCell((cell) => (cell.border = { top: { style: 'thin' } }));
        }
      });
    });
    ws.views = [{ state: 'frozen', ySplit: frozen, xSplit: 0 }];
    widths.forEach((w, col) => (ws.getColumn(col + 1).width = w));
  }
  const data = await wb.xlsx.writeBuffer();
  return Buffer.from(data as ArrayBuffer);
}
