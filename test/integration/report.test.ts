import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ExcelJS from 'exceljs';
import {
  authCode,
  barcodeFields,
  orderNo,
  qrFields,
  startTestPlatform,
  type TestPlatform,
} from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';
import { TEST_DB } from '../support/db.js';
import { hospayEnv, runHospayAsync } from '../support/spawn.js';
import { payAuthNo, sscPayBiz } from '../support/medicare.js';
import {
  AMOUNT_KEYS,
  buildDayReport,
  sumAmounts,
  type DayReport,
  type ReportAmounts,
} from '../../src/reconcile/report.js';
import { reconcileDay, resolveDifference } from '../../src/reconcile/run.js';
import { SimulatorProvider } from '../../src/simulator/provider.js';
import { postForm } from '../support/payer.js';
import { fen } from '../../src/domain/money.js';

const DAY = '2026-11-24';

/** Amounts in the order of a row: payments (count, cash, insurance), refunds (count, cash, insurance), reduced. */
function amounts(
  paymentCount: number,
  paymentCashFen: number,
  paymentInsuranceFen: number,
  refundCount: number,
  refundCashFen: number,
  refundInsuranceFen: number,
  reducedFen = 0,
): ReportAmounts {
  return {
    paymentCount,
    paymentFen: fen(paymentCashFen + paymentInsuranceFen),
    paymentCashFen: fen(paymentCashFen),
    paymentInsuranceFen: fen(paymentInsuranceFen),
    refundCount,
    refundFen: fen(refundCashFen + refundInsuranceFen),
    refundCashFen: fen(refundCashFen),
    refundInsuranceFen: fen(refundInsuranceFen),
    netFen: fen(paymentCashFen + paymentInsuranceFen - refundCashFen - refundInsuranceFen),
    netCashFen: fen(paymentCashFen - refundCashFen),
    netInsuranceFen: fen(paymentInsuranceFen - refundInsuranceFen),
    reducedFen: fen(reducedFen),
  };
}

function pick<T extends ReportAmounts>(row: T | undefined): ReportAmounts {
  assert.ok(row, 'row exists');
  return Object.fromEntries(AMOUNT_KEYS.map((k) => [k, row[k]])) as unknown as ReportAmounts;
}

describe(`finance day report (${TEST_DB})`, () => {
  let t: TestPlatform;
  const nos: Record<string, string> = {};
  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    await t.platform.deps.apps.setRedirectUris(t.appId, ['https://his.example.cn/mi/']);
    await t.platform.deps.apps.setCategories(t.appId, [
      { prefix: 'MZ', name: '门诊收费' },
      { prefix: 'ZY', name: '住院' },
      { prefix: 'ZJMZ', name: '自助机门诊' },
      { prefix: 'ZHZY', name: '自助机住院' },
    ]);
  });
  after(async () => {
    await t.close();
  });

  const at = (iso: string) => t.clock.set(iso);

  async function pay(
    key: string,
    prefix: string,
    amount: string,
    payType: 'alipay' | 'weixin' | 'unionpay',
    extra: Record<string, string | undefined> = {},
  ) {
    const f = barcodeFields({
      OutTradeNo: orderNo(prefix),
      AuthCode: authCode('00', payType),
      TotalAmount: amount,
      ...extra,
    });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    assert.equal(a.result.TradeStatus, 'TRADE_SUCCESS', a.text);
    nos[key] = f.OutTradeNo ?? '';
    return { outTradeNo: f.OutTradeNo ?? '', tradeNo: a.result.TradeNo ?? '', amount };
  }

  async function refund(
    p: { outTradeNo: string; tradeNo: string; amount: string },
    amount: string,
    requestNo: string,
    terminal?: string,
  ) {
    const a = await t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: p.tradeNo,
      RefundAmount: amount,
      OutRequestNo: requestNo,
      OutTradeNo: p.outTradeNo,
      TotalAmount: p.amount,
      ...(terminal ? { TerminalID: terminal } : {}),
    });
    assert.equal(a.rr.IsSuccess, '1', a.text);
  }

  /** A mixed payment (spec 6.6): total 100.00 = 60.00 insurance + 40.00 cash, the cash paid on the cashier page. */
  async function mixedPayment(openId: string, prefix: string, reduced: string): Promise<string> {
    const auth = await payAuthNo(t, openId);
    const outTradeNo = orderNo(prefix);
    const a = await gateway(
      t,
      'lc.ssc.trade.pay',
      sscPayBiz(openId, auth, { out_trade_no: outTradeNo, reduced_fee: reduced, operator_id: 'OP9' }),
    );
    assert.equal(a.json.code, '10000', a.raw);
    const go = await fetch(String(a.biz['goto_url']), { redirect: 'manual' });
    const paid = await postForm(go.headers.get('location') ?? '', 'action=pay');
    assert.equal(paid.status, 303);
    const q2 = await gateway(t, 'lc.trade.query', { out_trade_no: outTradeNo });
    assert.equal(q2.biz['trade_status'], 'TRADE_SUCCESS', q2.raw);
    return outTradeNo;
  }

  it('makes the trades of three days', async () => {
    // 2026-11-23 18:00 Shanghai: paid the day before, refunded on the day.
    at('2026-11-23T10:00:00Z');
    const t7 = await pay('t7', 'ZY', '40.00', 'alipay', { OperatorID: 'OP3', TerminalID: 'T3' });

    // 2026-11-24 from 09:00 Shanghai.
    at('2026-11-24T01:00:00Z');
    const t1 = await pay('t1', 'MZ', '100.00', 'alipay', { OperatorID: 'OP1', TerminalID: 'T1' });
    await pay('t2', 'ZY', '50.00', 'alipay', { OperatorID: 'OP1', TerminalID: 'T1' });
    const t3 = await pay('t3', 'MZ', '20.00', 'weixin', { OperatorID: 'OP2', TerminalID: 'T2' });
    await pay('t4', 'ZJMZ', '8.88', 'unionpay', { OperatorID: undefined, TerminalID: undefined });
    await pay('t8', 'XX', '3.00', 'alipay', { OperatorID: 'OP1', TerminalID: 'T1' });
    await pay('t9', 'MZ', '5.00', 'weixin', { OperatorID: 'OP2', TerminalID: 'T2' });
    // Never paid: not in any report.
    const qr = await t.offline('FWC_IF_Qrcode_Pay', qrFields({ TotalAmount: '77.77' }));
    assert.equal(qr.rr.IsSuccess, '1', qr.text);

    at('2026-11-24T01:10:00Z');
    await refund(t1, '30.01', 'R1', 'T1');
    await refund(t3, '20.00', 'R3', 'T9'); // full refund: the trade closes, still a payment of the day
    const c = await t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: nos['t9'] });
    assert.equal(c.result.CancelAction, 'refund', c.text);
    at('2026-11-24T03:00:00Z');
    await refund(t7, '15.00', 'R7', 'T3');

    // Mixed payments: one partly refunded (cash and insurance), one cancelled (cash reversed, insurance reversed).
    at('2026-11-24T04:00:00Z');
    const m1 = await mixedPayment('2088000000000101', 'MZ', '5.00');
    nos['m1'] = m1;
    const r1 = await gateway(t, 'lc.trade.refund', {
      out_trade_no: m1,
      refund_amount: '10.00',
      out_request_no: 'M1R',
    });
    assert.equal(r1.json.code, '10000', r1.raw);
    const ins = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: m1,
      out_request_no: 'M1I',
      insurance_refund_fee: '20.00',
    });
    assert.equal(ins.biz['recorded'], 'Y', ins.raw);
    const m2 = await mixedPayment('2088000000000102', 'ZY', '0');
    nos['m2'] = m2;
    const cancel = await gateway(t, 'lc.trade.cancel', { out_trade_no: m2 });
    assert.equal(cancel.biz['action'], 'refund', cancel.raw);
    await t.platform.expiry.tick();
    const m2row = await t.trade(m2);
    assert.deepEqual(
      { insurance_state: m2row.insurance_state, status: m2row.status },
      { insurance_state: 'REVERSED', status: 'TRADE_CLOSED' },
    );

    // 23:59:30 Shanghai: still the 24th.
    at('2026-11-24T15:59:30Z');
    await pay('t5', 'MZ', '12.34', 'alipay', { OperatorID: 'OP1', TerminalID: 'T1' });
    // 00:00:00 on the 25th: the next day, and so is this refund of a payment of the 24th.
    at('2026-11-24T16:00:00Z');
    await pay('t6', 'MZ', '7.00', 'alipay', { OperatorID: 'OP1', TerminalID: 'T1' });
    await refund(t1, '1.00', 'R1b', 'T1');
  });

  let report: DayReport;

  it('totals the day exactly: summary, channels, categories, terminals and operators', async () => {
    report = await buildDayReport(t.platform.recon, { date: DAY, appId: t.appId, now: t.clock.now() });
    assert.deepEqual(report.app, { id: t.appId, name: '测试医院' });
    assert.deepEqual(report.period, {
      from: '2026-11-23T16:00:00.000Z',
      to: '2026-11-24T16:00:00.000Z',
      fromLocal: '2026-11-24 00:00:00',
      toLocal: '2026-11-25 00:00:00',
    });
    // Payments: 100 + 50 + 20 + 8.88 + 3 + 5 + 12.34 cash, two mixed 40 cash + 60 insurance each (5.00 reduced).
    // Refunds: 30.01, 20 (T9), 5 (cancel), 15 (paid the day before), mixed 10 cash + 20 insurance, mixed
    // cancel 40 cash + the insurance reversal 60.
    assert.deepEqual(report.summary, amounts(9, 27922, 12000, 8, 12001, 8000, 500));

    assert.deepEqual(
      report.byChannel.map((r) => [r.payType, r.label]),
      [
        ['alipay', '支付宝'],
        ['weixin', '微信支付'],
        ['unionpay', '云闪付'],
        ['elecny', '数字人民币'],
      ],
    );
    assert.deepEqual(pick(report.byChannel[0]), amounts(6, 24534, 12000, 6, 9501, 8000, 500));
    assert.deepEqual(pick(report.byChannel[1]), amounts(2, 2500, 0, 2, 2500, 0));
    assert.deepEqual(pick(report.byChannel[2]), amounts(1, 888, 0, 0, 0, 0));

    assert.deepEqual(
      report.byCategory.map((r) => [r.category, r.name]),
      [
        ['MZ', '门诊收费'],
        ['ZY', '住院'],
        ['ZJMZ', '自助机门诊'],
        ['ZHZY', '自助机住院'],
        ['OTHER', '其他'],
      ],
    );
    assert.deepEqual(pick(report.byCategory[0]), amounts(5, 17734, 6000, 5, 6501, 2000, 500));
    assert.deepEqual(pick(report.byCategory[1]), amounts(2, 9000, 6000, 3, 5500, 6000));
    assert.deepEqual(pick(report.byCategory[2]), amounts(1, 888, 0, 0, 0, 0));
    assert.deepEqual(pick(report.byCategory[3]), amounts(0, 0, 0, 0, 0, 0));
    assert.deepEqual(pick(report.byCategory[4]), amounts(1, 300, 0, 0, 0, 0));

    assert.deepEqual(
      report.byCashier.map((r) => [r.terminal, r.operator]),
      [
        ['T1', 'OP1'],
        ['T2', 'OP2'],
        ['T3', 'OP3'],
        ['T9', 'OP2'],
        ['(未填)', 'OP9'],
        ['(未填)', '(未填)'],
      ],
    );
    const cashier = (terminal: string, operator: string) =>
      pick(report.byCashier.find((r) => r.terminal === terminal && r.operator === operator));
    assert.deepEqual(cashier('T1', 'OP1'), amounts(4, 16534, 0, 1, 3001, 0));
    // The cancel named no terminal: it is counted at the payment's terminal.
    assert.deepEqual(cashier('T2', 'OP2'), amounts(2, 2500, 0, 1, 500, 0));
    // The refund request named terminal T9: the refund is T9's, the operator the payment's.
    assert.deepEqual(cashier('T9', 'OP2'), amounts(0, 0, 0, 1, 2000, 0));
    assert.deepEqual(cashier('T3', 'OP3'), amounts(0, 0, 0, 1, 1500, 0));
    assert.deepEqual(cashier('(未填)', 'OP9'), amounts(2, 8000, 12000, 4, 5000, 8000, 500));
    assert.deepEqual(cashier('(未填)', '(未填)'), amounts(1, 888, 0, 0, 0, 0));
    assert.equal(report.byCashier[5]?.terminalId, '');

    // Every grouping adds up to the summary, exactly.
    for (const rows of [report.byChannel, report.byCategory, report.byCashier])
      assert.deepEqual(sumAmounts(rows), report.summary);
  });

  it('the neighbouring days: the payment at 00:00 and the refund after midnight are the 25th', async () => {
    const next = await buildDayReport(t.platform.recon, { date: '2026-11-25', appId: t.appId });
    assert.deepEqual(next.summary, amounts(1, 700, 0, 1, 100, 0));
    assert.deepEqual(pick(next.byCashier[0]), amounts(1, 700, 0, 1, 100, 0));
    const before = await buildDayReport(t.platform.recon, { date: '2026-11-23', appId: t.appId });
    assert.deepEqual(before.summary, amounts(1, 4000, 0, 0, 0, 0));
    // All apps together: only this app has trades.
    const all = await buildDayReport(t.platform.recon, { date: DAY });
    assert.equal(all.app, null);
    assert.deepEqual(all.summary, report.summary);
    // Another app's report is empty, with the platform's default category names.
    const other = await t.platform.deps.apps.create({ name: '分院' });
    const empty = await buildDayReport(t.platform.recon, { date: DAY, appId: other.appId });
    assert.deepEqual(empty.summary, amounts(0, 0, 0, 0, 0, 0));
    assert.equal(empty.byCategory[0]?.name, '门诊');
    // With a cut-off at 22:00, the business day 2026-11-24 runs from 22:00 on the 24th to 22:00 on the 25th.
    const late = await buildDayReport(t.platform.recon, { date: DAY, appId: t.appId, cutoffHour: 22 });
    assert.equal(late.cutoffHour, 22);
    assert.equal(late.period.fromLocal, '2026-11-24 22:00:00');
    assert.deepEqual(late.summary, amounts(2, 1934, 0, 1, 100, 0));
    await assert.rejects(buildDayReport(t.platform.recon, { date: '2026-02-30' }), RangeError);
    await assert.rejects(buildDayReport(t.platform.recon, { date: DAY, appId: 'hpnosuch' }), /no such app/);
  });

  it("carries the day's reconciliation status and differences", async () => {
    assert.deepEqual(report.reconciliation, []);
    assert.deepEqual(report.differences, []);
    at('2026-11-24T05:00:00Z');
    const provider = new SimulatorProvider({ db: t.store.db, clock: t.clock, publicBaseUrl: t.url });
    await provider.barcodePay({
      merchant: t.appId,
      outTradeNo: 'MZGHOST0001',
      payType: 'alipay',
      amountFen: fen(1234),
      authCode: authCode('00'),
      subject: 'ghost',
    });
    at('2026-11-25T02:00:00Z');
    const app = (await t.platform.deps.apps.get(t.appId))!;
    const outcome = await reconcileDay(t.platform.recon, { app, date: DAY, payTypes: ['alipay', 'weixin'] });
    const rows = await t.platform.recon.reconciliation.differences({ date: DAY, present: true });
    const ghost = rows.find((r) => r.out_trade_no === 'MZGHOST0001');
    assert.equal(ghost?.code, 'CHANNEL_ONLY', JSON.stringify(rows));
    assert.ok(await resolveDifference(t.platform.recon, ghost.id, 'finance-01', '已补录 / recorded'));

    const r = await buildDayReport(t.platform.recon, { date: DAY, appId: t.appId });
    assert.deepEqual(
      r.reconciliation.map((x) => [x.payType, x.status, x.matched, x.differences, x.open]),
      outcome.map((o) => [
        o.payType,
        'DONE',
        o.matched,
        o.differences,
        o.open - (o.payType === 'alipay' ? 1 : 0),
      ]),
    );
    assert.equal(r.differences.length, rows.length);
    const d = r.differences.find((x) => x.outTradeNo === 'MZGHOST0001');
    assert.deepEqual(d && { ...d, id: 0 }, {
      id: 0,
      appId: t.appId,
      payType: 'alipay',
      code: 'CHANNEL_ONLY',
      label: { zh: '漏单（渠道有、平台无）', en: 'Missing on the platform (channel only)' },
      action: {
        zh: '向渠道查询该交易并补录平台记录；如确属误收，原路退款',
        en: 'Query the channel and record the movement on the platform; refund it if it was taken by mistake',
      },
      kind: 'payment',
      outTradeNo: 'MZGHOST0001',
      outRequestNo: null,
      state: 'RESOLVED',
      amounts: { channelFen: 1234 },
      suggestion: null,
      pendingSince: null,
      resolvedBy: 'finance-01',
      resolvedNote: '已补录 / recorded',
      resolvedAt: '2026-11-25T02:00:00.000Z',
    });
    // The money totals are the platform's: the channel-only payment is not in them.
    assert.deepEqual(r.summary, report.summary);
    report = r;
  });

  const admin = (query: string, token = 'test-admin-token-0123456789abcdef') =>
    fetch(`${t.url}/admin/reports/day?${query}`, { headers: { authorization: `Bearer ${token}` } });

  it('GET /admin/reports/day: JSON, CSV and XLSX downloads; bad input is refused', async () => {
    const json = await admin(`date=${DAY}&app=${t.appId}`);
    assert.equal(json.status, 200);
    assert.match(json.headers.get('content-type') ?? '', /^application\/json/);
    const body = (await json.json()) as DayReport;
    assert.deepEqual({ ...body, generatedAt: '' }, { ...report, generatedAt: '' });

    const csv = await admin(`date=${DAY}&app=${t.appId}&format=csv`);
    assert.equal(csv.status, 200);
    assert.equal(csv.headers.get('content-type'), 'text/csv; charset=utf-8');
    assert.equal(
      csv.headers.get('content-disposition'),
      `attachment; filename="hospay-report-${DAY}-${t.appId}.csv"; filename*=UTF-8''hospay-report-${DAY}-${encodeURIComponent('测试医院')}.csv`,
    );
    const bytes = Buffer.from(await csv.arrayBuffer());
    assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf], 'UTF-8 BOM');
    const text = bytes.toString('utf8').slice(1);
    assert.ok(text.endsWith('\r\n'));
    assert.ok(!/[^\r]\n/.test(text), 'CRLF only');
    const lines = text.split('\r\n');
    assert.ok(
      lines.includes('alipay,支付宝,6,365.34,245.34,120.00,6,175.01,95.01,80.00,190.33,150.33,40.00,5.00'),
      text,
    );
    assert.ok(lines.includes('T9,OP2,0,0.00,0.00,0.00,1,20.00,20.00,0.00,-20.00,-20.00,0.00,0.00'), text);
    assert.ok(
      lines.includes('合计(total),9,399.22,279.22,120.00,8,200.01,120.01,80.00,199.21,159.21,40.00,5.00'),
      text,
    );

    const xlsx = await admin(`date=${DAY}&app=${t.appId}&format=xlsx`);
    assert.equal(xlsx.status, 200);
    assert.equal(
      xlsx.headers.get('content-type'),
      'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    );
    assert.match(
      xlsx.headers.get('content-disposition') ?? '',
      /filename="hospay-report-2026-11-24-hp[0-9a-f]+\.xlsx"/,
    );
    const wb = new ExcelJS.Workbook();
    await wb.xlsx.load(await xlsx.arrayBuffer());
    assert.deepEqual(
      wb.worksheets.map((w) => w.name),
      ['汇总', '按渠道', '按业务类别', '按终端操作员 (日结)', '差异明细'],
    );
    const summary = wb.getWorksheet('汇总')!;
    assert.match(String(summary.getCell('A1').value), /2026-11-24.*测试医院/);
    assert.equal(summary.getCell('A3').value, '项目(item)');
    assert.equal(summary.getCell('A3').font?.bold, true);
    assert.equal(summary.getCell('C4').value, 399.22);
    assert.equal(summary.getCell('C4').numFmt, '#,##0.00');
    assert.equal(summary.views[0]?.state, 'frozen');
    assert.equal((summary.views[0] as { ySplit?: number }).ySplit, 3);
    const channels = wb.getWorksheet('按渠道')!;
    assert.equal(channels.getCell('B4').value, '支付宝');
    assert.equal(channels.getCell('D4').value, 365.34);
    assert.equal(channels.getCell('K6').value, 8.88);
    assert.equal(channels.getCell('A7').value, 'elecny');
    assert.equal(channels.getCell('D7').value, 0);
    assert.equal(channels.getCell('A8').value, '合计(total)');
    assert.equal(channels.getCell('D8').value, 399.22);
    const cashiers = wb.getWorksheet('按终端操作员 (日结)')!;
    assert.deepEqual(
      [4, 5, 6, 7, 8, 9].map(
        (r) => `${String(cashiers.getCell(`A${r}`).value)}/${String(cashiers.getCell(`B${r}`).value)}`,
      ),
      ['T1/OP1', 'T2/OP2', 'T3/OP3', 'T9/OP2', '(未填)/OP9', '(未填)/(未填)'],
    );
    assert.equal(cashiers.getCell('K7').value, -20);
    const diffs = wb.getWorksheet('差异明细')!;
    const ghostRow = diffs.getRows(4, diffs.rowCount - 3)?.find((r) => r.getCell(7).value === 'MZGHOST0001');
    assert.ok(ghostRow);
    assert.equal(ghostRow.getCell(10).value, 12.34);
    assert.equal(ghostRow.getCell(14).value, 'finance-01');

    const bad = await admin(`date=2026-13-01`);
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), {
      code: 'INVALID_FIELD.date',
      message: 'date 须为 yyyy-MM-dd 格式的日期 / date must be a date written yyyy-MM-dd',
    });
    assert.equal((await admin('')).status, 400);
    assert.equal((await admin(`date=${DAY}&format=pdf`)).status, 400);
    const unknown = await admin(`date=${DAY}&app=hpnosuch`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { code: string }).code, 'APP_NOT_FOUND');
    assert.equal((await admin(`date=${DAY}`, 'wrong')).status, 401);
    const all = await admin(`date=${DAY}&format=csv`);
    assert.match(all.headers.get('content-disposition') ?? '', /filename="hospay-report-2026-11-24\.csv"/);
  });

  it('hospay report: csv and text on standard output, xlsx to a file; usage errors', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-report-'));
    try {
      // With PostgreSQL straight on the database (with no master key: reports need none).
      const store = t.platform.config.store;
      const env = hospayEnv({
        dataDir,
        store,
        masterKey: null,
        env: { LOG_LEVEL: 'warn', HOSPAY_JOBS: 'off' },
      });
      if (store.kind !== 'postgres') {
        // The embedded database is this process's: the CLI goes through the "running server"'s admin API.
        const port = new URL(t.url).port;
        fs.writeFileSync(
          path.join(dataDir, 'hospay.lock'),
          JSON.stringify({ pid: process.pid, port: Number(port), host: '127.0.0.1' }),
        );
        env['HOSPAY_ADMIN_TOKEN'] = 'test-admin-token-0123456789abcdef';
      }
      const csv = await runHospayAsync(['report', '--date', DAY, '--app', t.appId, '--format', 'csv'], env);
      assert.equal(csv.status, 0, csv.stderr);
      assert.ok(csv.stdout.startsWith('\uFEFFhospay 日报'), csv.stdout.slice(0, 80));
      assert.ok(
        csv.stdout.includes(
          '\r\nalipay,支付宝,6,365.34,245.34,120.00,6,175.01,95.01,80.00,190.33,150.33,40.00,5.00\r\n',
        ),
        csv.stdout,
      );

      const text = await runHospayAsync(['report', '--date', DAY, '--app', t.appId], env);
      assert.equal(text.status, 0, text.stderr);
      assert.match(text.stdout, /hospay 日报 \(day report\) 2026-11-24 · 测试医院/);
      assert.match(text.stdout, /日结/);
      assert.match(
        text.stdout,
        /^T9\s+OP2\s+0\s+0\.00\s+0\.00\s+0\.00\s+1\s+20\.00\s+20\.00\s+0\.00\s+-20\.00\s+-20\.00\s+0\.00\s+0\.00$/m,
      );
      assert.match(text.stdout, /^合计\(total\)\s+9\s+399\.22\s+279\.22\s+120\.00\s+8\s+200\.01/m);
      assert.match(text.stdout, /MZGHOST0001.*RESOLVED \(finance-01/);

      const file = path.join(dataDir, 'day.xlsx');
      const xlsx = await runHospayAsync(
        ['report', '--date', DAY, '--app', t.appId, '--format', 'xlsx', '--out', file],
        env,
      );
      assert.equal(xlsx.status, 0, xlsx.stderr);
      const wb = new ExcelJS.Workbook();
      await wb.xlsx.readFile(file);
      assert.equal(wb.getWorksheet('按渠道')?.getCell('D4').value, 365.34);

      const noOut = await runHospayAsync(['report', '--date', DAY, '--format', 'xlsx'], env);
      assert.equal(noOut.status, 2);
      assert.match(noOut.stderr, /--out/);
      const badDate = await runHospayAsync(['report', '--date', '2026-11-31'], env);
      assert.equal(badDate.status, 2);
      const badFormat = await runHospayAsync(['report', '--date', DAY, '--format', 'pdf'], env);
      assert.equal(badFormat.status, 2);
      const unknown = await runHospayAsync(['report', '--date', DAY, '--app', 'hpnosuch'], env);
      assert.equal(unknown.status, 1);
      assert.match(unknown.stderr, /no such app/);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
