import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import ExcelJS from 'exceljs';
import {
  assertTotals,
  isReportDate,
  reportCutoffHour,
  sumAmounts,
  zeroAmounts,
  type DayReport,
  type ReportAmounts,
} from '../../src/reconcile/report.js';
import { csvText, displayWidth, reportToCsv, reportToXlsx } from '../../src/reconcile/export.js';
import { contentDisposition } from '../../src/http/admin/reports.js';
import { fen } from '../../src/domain/money.js';

function amounts(over: Partial<ReportAmounts>): ReportAmounts {
  return { ...zeroAmounts(), ...over };
}

/** A small report, built by hand: two cashiers, one with a hostile operator id. */
function sample(): DayReport {
  const a = amounts({
    paymentCount: 2,
    paymentFen: fen(123456789),
    paymentCashFen: fen(123456788),
    paymentInsuranceFen: fen(1),
    refundCount: 1,
    refundFen: fen(5),
    refundCashFen: fen(5),
    netFen: fen(123456784),
    netCashFen: fen(123456783),
    netInsuranceFen: fen(1),
  });
  const b = amounts({
    refundCount: 1,
    refundFen: fen(1200),
    refundCashFen: fen(1200),
    netFen: fen(-1200),
    netCashFen: fen(-1200),
  });
  const summary = sumAmounts([a, b]);
  return {
    date: '2026-11-24',
    cutoffHour: 0,
    period: {
      from: '2026-11-23T16:00:00.000Z',
      to: '2026-11-24T16:00:00.000Z',
      fromLocal: '2026-11-24 00:00:00',
      toLocal: '2026-11-25 00:00:00',
    },
    app: { id: 'hp0001', name: '市一医院, "本部"' },
    generatedAt: '2026-11-25T02:00:00.000Z',
    summary,
    byChannel: [{ payType: 'alipay', label: '支付宝', ...summary }],
    byCategory: [{ category: 'MZ', name: '门诊', ...summary }],
    byCashier: [
      {
        terminalId: 'T1',
        operatorId: '=HYPERLINK("http://x")',
        terminal: 'T1',
        operator: '=HYPERLINK("http://x")',
        ...a,
      },
      { terminalId: '', operatorId: '@op', terminal: '(未填)', operator: '@op', ...b },
    ],
    reconciliation: [
      {
        appId: 'hp0001',
        payType: 'alipay',
        label: '支付宝',
        status: 'DONE',
        matched: 3,
        differences: 1,
        open: 1,
        hisError: '-HIS_TIMEOUT',
        finishedAt: '2026-11-25T02:00:00.000Z',
      },
    ],
    differences: [
      {
        id: 7,
        appId: 'hp0001',
        payType: 'alipay',
        code: 'AMOUNT_MISMATCH',
        label: { zh: '金额不符', en: 'Amount mismatch' },
        action: { zh: '核对各方金额', en: 'Compare' },
        kind: 'payment',
        outTradeNo: 'MZ001',
        outRequestNo: null,
        state: 'OPEN',
        amounts: { platformFen: fen(1000), hisFen: fen(999) },
        suggestion: null,
        pendingSince: null,
        resolvedBy: null,
        resolvedNote: 'line one\r\nline two',
        resolvedAt: null,
      },
    ],
  };
}

/** An RFC 4180 reader, to check what a spreadsheet would see. */
function parseCsv(csv: string): string[][] {
  const text = csv.replace(/^\uFEFF/, '');
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(cell);
      cell = '';
    } else if (ch === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else cell += ch;
  }
  assert.equal(cell, '', 'the text ends with CRLF');
  assert.equal(row.length, 0);
  return rows;
}

describe('report CSV', () => {
  it('starts with a UTF-8 BOM and ends every line with CRLF', () => {
    const csv = reportToCsv(sample());
    assert.equal(csv.charCodeAt(0), 0xfeff);
    assert.deepEqual([...Buffer.from(csv, 'utf8').subarray(0, 3)], [0xef, 0xbb, 0xbf]);
    assert.ok(csv.endsWith('\r\n'));
    // No bare LF or CR outside quoted cells: every line break of the file is CRLF.
    const outside = csv.replace(/"(?:[^"]|"")*"/g, '');
    assert.equal(outside.replace(/\r\n/g, '').search(/[\r\n]/), -1);
  });

  it('quotes as RFC 4180 says', () => {
    assert.equal(csvText('plain'), 'plain');
    assert.equal(csvText('a,b'), '"a,b"');
    assert.equal(csvText('say "hi"'), '"say ""hi"""');
    assert.equal(csvText('two\r\nlines'), '"two\r\nlines"');
    assert.equal(csvText('lf\nonly'), '"lf\nonly"');
    assert.equal(csvText(''), '');
    const rows = parseCsv(reportToCsv(sample()));
    assert.deepEqual(rows[0], [
      'hospay 日报 (day report)',
      '2026-11-24',
      '市一医院, "本部" (hp0001)',
      '2026-11-24 00:00:00 – 2026-11-25 00:00:00 北京时间 (Asia/Shanghai)',
    ]);
    const diff = rows.find((r) => r[0] === '7');
    assert.equal(diff?.[14], 'line one\r\nline two');
  });

  it('guards against formula injection: = + - @ tab CR get a leading quote; amounts never do', () => {
    for (const bad of ['=1+1', '+1', '-1', '@SUM(A1)', '\tx', '\rx'])
      assert.ok(csvText(bad).replace(/^"/, '').startsWith(`'${bad[0]}`), bad);
    assert.equal(csvText('=A1,B1'), `"'=A1,B1"`);
    assert.equal(csvText('a=b'), 'a=b');
    const rows = parseCsv(reportToCsv(sample(), 'cashier'));
    assert.equal(rows[1]?.[1], `'=HYPERLINK("http://x")`);
    assert.equal(rows[2]?.[1], `'@op`);
    // The negative net is a number, not text: no quote.
    assert.deepEqual(rows[2]?.slice(10, 13), ['-12.00', '-12.00', '0.00']);
    const recon = parseCsv(reportToCsv(sample(), 'reconciliation'));
    assert.equal(recon[1]?.[7], `'-HIS_TIMEOUT`);
  });

  it('writes amounts as exact yuan strings with two decimals, counts as integers', () => {
    const rows = parseCsv(reportToCsv(sample(), 'cashier'));
    assert.deepEqual(rows[0]?.slice(0, 4), [
      '终端(terminal)',
      '操作员(operator)',
      '收款笔数(payments)',
      '收款金额(payment, 元)',
    ]);
    assert.equal(rows[0]?.length, 14);
    assert.deepEqual(rows[1], [
      'T1',
      `'=HYPERLINK("http://x")`,
      '2',
      '1234567.89',
      '1234567.88',
      '0.01',
      '1',
      '0.05',
      '0.05',
      '0.00',
      '1234567.84',
      '1234567.83',
      '0.01',
      '0.00',
    ]);
    assert.equal(rows[2]?.[0], '(未填)');
  });

  it('one section alone is a plain table; the whole report has titled sections with totals, a blank line apart', () => {
    const only = parseCsv(reportToCsv(sample(), 'channel'));
    assert.equal(only.length, 2, 'header and one row, no title and no total');
    assert.equal(only[1]?.[0], 'alipay');
    const all = reportToCsv(sample()).slice(1).split('\r\n\r\n');
    assert.equal(all.length, 7, 'the title line and six sections');
    assert.deepEqual(
      all.slice(1).map((s) => s.split('\r\n')[0]),
      [
        '汇总 (summary)',
        '按渠道 (by channel)',
        '按业务类别 (by business category)',
        '按终端操作员 日结 (cash-up by terminal and operator)',
        '对账状态 (reconciliation)',
        '差异明细 (differences)',
      ],
    );
    const cashier = parseCsv(`${all[4]}`.replace(/\r\n$/, '') + '\r\n');
    assert.deepEqual(cashier.at(-1)?.slice(0, 4), ['合计(total)', '', '2', '1234567.89']);
    assert.equal(cashier.at(-1)?.[10], '1234555.84');
    const diffs = parseCsv(`${all[6]}`);
    assert.deepEqual(diffs[2]?.slice(8, 11), ['10.00', '', '9.99']);
  });
});

describe('report totals', () => {
  it('assertTotals refuses groupings that do not add up to the summary', () => {
    const r = sample();
    assert.doesNotThrow(() => assertTotals(r));
    const broken = { ...r, byCashier: r.byCashier.slice(0, 1) };
    assert.throws(() => assertTotals(broken), /byCashier\.refundCount/);
  });

  it("the business day's cut-off is the apps' reconciliation setting, or midnight when they disagree", () => {
    assert.equal(reportCutoffHour([{ id: 'a' }]), 0);
    assert.equal(reportCutoffHour([{ id: 'a', recon_settings: '{"cutoffHour":22}' }]), 22);
    assert.equal(
      reportCutoffHour([
        { id: 'a', recon_settings: '{"cutoffHour":22}' },
        { id: 'b', recon_settings: '{"cutoffHour":22,"pendingDays":5}' },
      ]),
      22,
    );
    assert.equal(
      reportCutoffHour([
        { id: 'a', recon_settings: '{"cutoffHour":22}' },
        { id: 'b', recon_settings: '{}' },
      ]),
      0,
    );
    assert.equal(reportCutoffHour([]), 0);
  });

  it('isReportDate takes real calendar dates only', () => {
    assert.equal(isReportDate('2026-11-24'), true);
    assert.equal(isReportDate('2028-02-29'), true);
    for (const bad of ['2026-02-29', '2026-13-01', '2026-11-24T00:00', '24/11/2026', '', '2026-1-5'])
      assert.equal(isReportDate(bad), false, bad);
  });
});

describe('report XLSX', () => {
  it('has the five sheets, a title, a bold frozen header and amounts as formatted yuan numbers', async () => {
    const buf = await reportToXlsx(sample());
    assert.ok(Buffer.isBuffer(buf));
    const wb = new ExcelJS.Workbook();
    await wb.xlsx.load(Uint8Array.from(buf).buffer);
    assert.deepEqual(
      wb.worksheets.map((w) => w.name),
      ['汇总', '按渠道', '按业务类别', '按终端操作员 (日结)', '差异明细'],
    );
    const ws = wb.getWorksheet('按终端操作员 (日结)')!;
    assert.equal(ws.getCell('A1').value, 'hospay 日报 (day report) 2026-11-24 · 市一医院, "本部" (hp0001)');
    assert.equal(ws.getCell('A3').value, '终端(terminal)');
    assert.equal(ws.getCell('A3').font?.bold, true);
    assert.deepEqual(
      ws.views.map((v) => [v.state, (v as { ySplit?: number }).ySplit]),
      [['frozen', 3]],
    );
    // Text stays text, never a formula.
    assert.equal(ws.getCell('B4').value, '=HYPERLINK("http://x")');
    assert.equal(ws.getCell('B4').type, ExcelJS.ValueType.String);
    assert.equal(ws.getCell('C4').value, 2);
    assert.equal(ws.getCell('D4').value, 1234567.89);
    assert.equal(ws.getCell('D4').numFmt, '#,##0.00');
    assert.equal(ws.getCell('K5').value, -12);
    assert.equal(ws.getCell('A6').value, '合计(total)');
    assert.equal(ws.getCell('A6').font?.bold, true);
    assert.ok((ws.getColumn(4).width ?? 0) >= 10);
    const summary = wb.getWorksheet('汇总')!;
    const titles = summary.getColumn(1).values.filter((v) => typeof v === 'string');
    assert.ok(
      titles.includes('对账状态 (reconciliation)'),
      'the reconciliation status is on the summary sheet',
    );
    const diffs = wb.getWorksheet('差异明细')!;
    assert.equal(diffs.getCell('I4').value, 10);
    assert.equal(diffs.getCell('J4').value, null);
    assert.equal(diffs.getCell('K4').value, 9.99);
  });

  it('an empty part says so instead of leaving a bare header', async () => {
    const r = { ...sample(), differences: [] };
    const wb = new ExcelJS.Workbook();
    await wb.xlsx.load(Uint8Array.from(await reportToXlsx(r)).buffer);
    assert.equal(wb.getWorksheet('差异明细')?.getCell('A4').value, '无 (none)');
  });
});

describe('report download names', () => {
  it('content-disposition has an ASCII filename and the UTF-8 name as RFC 5987 filename*', () => {
    assert.equal(
      contentDisposition(
        'hospay-report-2026-11-24-hp01.xlsx',
        'hospay-report-2026-11-24-市一医院 (本部).xlsx',
      ),
      `attachment; filename="hospay-report-2026-11-24-hp01.xlsx"; filename*=UTF-8''hospay-report-2026-11-24-${encodeURIComponent('市一医院')}%20%28${encodeURIComponent('本部')}%29.xlsx`,
    );
    assert.match(contentDisposition('a"b\\c.csv', 'x'), /filename="a_b_c\.csv"/);
  });

  it('displayWidth counts CJK as two columns', () => {
    assert.equal(displayWidth('abc'), 3);
    assert.equal(displayWidth('支付宝'), 6);
    assert.equal(displayWidth('（未填）'), 8);
  });
});
