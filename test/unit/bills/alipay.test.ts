import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { zipSync } from 'fflate';
import iconv from 'iconv-lite';
import { buildAlipayTradeBill, parseAlipayTradeBill } from '../../../src/channels/alipay/bill.js';
import { buildGbkZip, readZip } from '../../../src/formats/zip.js';
import { assertBillError, SAMPLE_LINES } from './helpers.js';
import { fen } from '../../../src/domain/money.js';

const FIXTURE = new URL('../../fixtures/bills/alipay-20240301.zip', import.meta.url);

/** Rebuilds a bill zip with its 业务明细 text changed by edit. */
function editDetail(zip: Buffer, edit: (text: string) => string): Buffer {
  const entries = readZip(zip).map((e) =>
    e.name.endsWith('业务明细.csv')
      ? {
          name: e.name,
          data: new Uint8Array(iconv.encode(edit(iconv.decode(Buffer.from(e.data), 'gbk')), 'gbk')),
        }
      : e,
  );
  return buildGbkZip(entries, new Date('2024-03-02T09:00:00+08:00'));
}

/** Replaces the value of column col (0-based) on the first data row. */
function editFirstRow(col: number, value: string) {
  return (text: string) => {
    const lines = text.split('\r\n');
    const i = lines.findIndex((l) => l.startsWith('T0001'));
    const cells = (lines[i] as string).split(',');
    cells[col] = value;
    lines[i] = cells.join(',');
    return lines.join('\r\n');
  };
}

describe('alipay trade bill', () => {
  it('round-trips lines exactly (0.01, 19.99, the largest amount, Chinese names through GBK)', () => {
    const zip = buildAlipayTradeBill('2024-03-01', SAMPLE_LINES);
    const bill = parseAlipayTradeBill(zip);
    assert.equal(bill.payType, 'alipay');
    assert.equal(bill.date, '2024-03-01');
    assert.deepEqual(bill.lines, SAMPLE_LINES);
    assert.deepEqual(bill.summary, {
      paymentCount: 3,
      refundCount: 2,
      paymentFen: 1 + 1999 + 9_999_999_999,
      refundFen: 2000,
    });
  });

  it('writes what Alipay serves: GBK names and text, # lines, trailing tabs, negative refunds', () => {
    const zip = buildAlipayTradeBill('2024-03-01', SAMPLE_LINES, { pid: '2088123412341234' });
    const files = readZip(zip);
    assert.deepEqual(
      files.map((f) => f.name),
      ['2088123412341234_20240301_业务明细.csv', '2088123412341234_20240301_业务明细(汇总).csv'],
    );
    const text = iconv.decode(Buffer.from(files[0]?.data ?? []), 'gbk');
    const lines = text.split('\r\n');
    assert.equal(lines[0], '#支付宝业务明细查询');
    assert.match(
      text,
      /\r\nT0002\t,H0002\t,退款\t,门诊缴费-挂号费（西药）·彭医生\t,.*,-19\.99\t,-19\.99\t,.*,R0002-1\t,0\.12\t,0\.00\t,\t\r\n/,
    );
    assert.match(text, /#交易合计：3笔，商家实收共100000019\.99元/);
    assert.match(text, /#退款合计：2笔，商家实收退款共-20\.00元/);
    // Latin-1 view of the raw zip holds no UTF-8 name: the names are GBK, as Alipay's.
    assert.ok(!zip.includes(Buffer.from('业务明细', 'utf8')));
    assert.ok(zip.includes(iconv.encode('业务明细', 'gbk')));
  });

  it('keeps the raw columns when asked', () => {
    const bill = parseAlipayTradeBill(buildAlipayTradeBill('2024-03-01', SAMPLE_LINES), { keepRaw: true });
    assert.equal(bill.lines[3]?.raw?.['订单金额（元）'], '-19.99');
    assert.equal(bill.lines[3]?.raw?.['业务类型'], '退款');
  });

  it('parses the hand-written fixture', () => {
    const bill = parseAlipayTradeBill(fs.readFileSync(FIXTURE));
    assert.equal(bill.date, '2024-03-01');
    assert.deepEqual(
      bill.lines.map((l) => [l.kind, l.outTradeNo, l.outRequestNo, l.amountFen, l.feeFen, l.time]),
      [
        ['payment', 'H20240301000001', undefined, 1999, 12, '2024-03-01 08:15:04'],
        ['payment', 'H20240301000002', undefined, 500000, 3000, '2024-03-01 10:40:13'],
        ['payment', 'H20240301000003', undefined, 1, 0, '2024-03-01 11:02:01'],
        ['refund', 'H20240301000002', 'R20240301000002-1', 120050, 720, '2024-03-01 16:20:45'],
      ],
    );
    assert.equal(bill.lines[0]?.subject, '门诊缴费-挂号费');
    assert.equal(bill.lines[3]?.channelTradeNo, '2024030122001400001000000002');
  });

  it('reads names flagged UTF-8 as well', () => {
    const gbk = readZip(fs.readFileSync(FIXTURE));
    const zip = zipSync(Object.fromEntries(gbk.map((f) => [f.name, f.data])));
    assert.equal(parseAlipayTradeBill(zip).lines.length, 4);
  });

  const zip = buildAlipayTradeBill('2024-03-01', SAMPLE_LINES);

  it('refuses a row with the wrong column count', () => {
    assertBillError(
      () => parseAlipayTradeBill(editDetail(zip, editFirstRow(3, '挂号,费\t'))),
      /业务明细\.csv line 6/,
      /26 columns, expected 25/,
    );
  });

  it('refuses a non-numeric amount, naming line and column', () => {
    assertBillError(
      () => parseAlipayTradeBill(editDetail(zip, editFirstRow(11, '1O.00\t'))),
      /line 6, column 12 订单金额（元）/,
      /"1O\.00"/,
    );
  });

  it('refuses a 3-decimal amount', () => {
    assertBillError(
      () => parseAlipayTradeBill(editDetail(zip, editFirstRow(22, '-0.001\t'))),
      /line 6, column 23 服务费（元）/,
    );
  });

  it('refuses a refund row with a positive amount and an unknown business type', () => {
    assertBillError(
      () => parseAlipayTradeBill(editDetail(zip, (t) => t.replace('-19.99\t,-19.99\t', '19.99\t,-19.99\t'))),
      /column 12 订单金额（元）/,
      /negative/,
    );
    assertBillError(
      () => parseAlipayTradeBill(editDetail(zip, editFirstRow(2, '转账\t'))),
      /column 3 业务类型/,
    );
  });

  it('refuses a file whose footer disagrees with its rows (a row cut out)', () => {
    assertBillError(
      () => parseAlipayTradeBill(editDetail(zip, (t) => t.replace(/\r\nT0001[^\r]*/, ''))),
      /footer says 3 交易 rows, the file has 2/,
    );
  });

  it('refuses a wrong header', () => {
    assertBillError(
      () => parseAlipayTradeBill(editDetail(zip, (t) => t.replace('服务费（元）', '手续费（元）'))),
      /line 5, column 23/,
      /header should be 服务费（元）/,
    );
  });

  it('refuses a zip without a 业务明细 file', () => {
    const onlySummary = readZip(zip).filter((f) => !f.name.endsWith('业务明细.csv'));
    assertBillError(
      () => parseAlipayTradeBill(buildGbkZip(onlySummary, new Date())),
      /alipay zip/,
      /exactly one file named …业务明细\.csv, found 0 among \[.*业务明细\(汇总\)\.csv\]/,
    );
  });

  it('refuses something that is not a zip, and a corrupted zip', () => {
    assertBillError(() => parseAlipayTradeBill(Buffer.from('<html>expired link</html>')), /not a zip/);
    const stored = zipSync({
      'x_20240301_业务明细.csv': [new Uint8Array(iconv.encode('#abc\r\n', 'gbk')), { level: 0 }],
    });
    const broken = Buffer.from(stored);
    const at = broken.indexOf(Buffer.from('abc'));
    broken[at] = 0x41;
    assertBillError(() => parseAlipayTradeBill(broken), /CRC mismatch/);
    assertBillError(() => parseAlipayTradeBill(Buffer.from(stored).subarray(0, 40)), /alipay zip/);
  });

  it('refuses to build what it could not parse back', () => {
    const bad = { ...SAMPLE_LINES[0]!, subject: 'a,b' };
    assert.throws(() => buildAlipayTradeBill('2024-03-01', [bad]), RangeError);
    assert.throws(
      () => buildAlipayTradeBill('2024-03-01', [{ ...SAMPLE_LINES[0]!, amountFen: fen(19.99) }]),
      RangeError,
    );
    assert.throws(() => buildAlipayTradeBill('2024-3-1', []), RangeError);
  });
});
