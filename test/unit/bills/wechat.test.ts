import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import type { BillLine } from '../../../src/domain/bill.js';
import { buildWechatTradeBill, parseWechatTradeBill } from '../../../src/channels/wechat/bill.js';
import { assertBillError, SAMPLE_LINES } from './helpers.js';

const FIXTURE = new URL('../../fixtures/bills/wechat-20240301.csv', import.meta.url);
const LINES: BillLine[] = SAMPLE_LINES.map((l, i) => ({
  ...l,
  payType: 'weixin',
  ...(l.kind === 'refund' ? { channelRefundNo: `5030000${i}` } : {}),
}));

function edit(buf: Buffer, f: (text: string) => string): Buffer {
  return Buffer.from(f(buf.toString('utf8')), 'utf8');
}

/** Replaces the value of column col (0-based) on data row `row` (1-based, after the header). */
function editCell(buf: Buffer, row: number, col: number, value: string): Buffer {
  return edit(buf, (t) => {
    const lines = t.split('\r\n');
    const cells = (lines[row] as string).split(',');
    cells[col] = value;
    lines[row] = cells.join(',');
    return lines.join('\r\n');
  });
}

describe('wechat trade bill', () => {
  const bill = buildWechatTradeBill('2024-03-01', LINES);

  it('round-trips lines exactly (0.01, 19.99, the largest amount, Chinese names)', () => {
    const parsed = parseWechatTradeBill(bill, { date: '2024-03-01' });
    assert.equal(parsed.payType, 'weixin');
    assert.equal(parsed.date, '2024-03-01');
    assert.deepEqual(parsed.lines, LINES);
    assert.deepEqual(parsed.summary, {
      paymentCount: 3,
      refundCount: 2,
      paymentFen: 10_000_001_999,
      refundFen: 2000,
    });
  });

  it('writes the WeChat layout: BOM, header, backticks, summary block', () => {
    const text = bill.toString('utf8');
    assert.ok(text.startsWith('\uFEFF交易时间,公众账号ID,商户号,'));
    const lines = text.split('\r\n');
    assert.equal(lines.length, 1 + 5 + 2 + 1);
    assert.match(
      lines[4] ?? '',
      /^`2024-03-01 16:20:45,.*,`REFUND,.*,`R0002-1,`19\.99,.*,`-0\.12,`0\.60%,`0\.00,`19\.99,`$/,
    );
    assert.equal(
      lines[6],
      '总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额',
    );
    assert.equal(lines[7], '`5,`100000019.99,`20.00,`0.00,`600000.00,`100000019.99,`20.00');
  });

  it('takes the date from the first row when not given, and keeps raw columns when asked', () => {
    const parsed = parseWechatTradeBill(bill, { keepRaw: true });
    assert.equal(parsed.date, '2024-03-01');
    assert.equal(parsed.lines[3]?.raw?.['交易状态'], 'REFUND');
    assert.deepEqual(
      parseWechatTradeBill(buildWechatTradeBill('2024-03-01', []), { date: '2024-03-01' }).lines,
      [],
    );
  });

  it('parses the hand-written fixture', () => {
    const parsed = parseWechatTradeBill(fs.readFileSync(FIXTURE), { date: '2024-03-01' });
    assert.deepEqual(
      parsed.lines.map((l) => [
        l.kind,
        l.channelTradeNo,
        l.outTradeNo,
        l.outRequestNo,
        l.amountFen,
        l.feeFen,
      ]),
      [
        ['payment', '4200002024030112345678901234', 'H20240301100001', undefined, 1999, 12],
        ['payment', '4200002024030112345678905678', 'H20240301100002', undefined, 30000, 180],
        ['refund', '4200002024030112345678905678', 'H20240301100002', 'R20240301100002-1', 10000, 60],
      ],
    );
    assert.equal(parsed.lines[2]?.channelRefundNo, '50300002024030100112233445');
    assert.equal(parsed.lines[1]?.subject, '住院预交金');
  });

  it('refuses a row with the wrong column count', () => {
    assertBillError(
      () => parseWechatTradeBill(editCell(bill, 2, 20, '`挂号,费')),
      /line 3: 28 columns, expected 27/,
    );
  });

  it('refuses a value without its backtick', () => {
    assertBillError(
      () => parseWechatTradeBill(editCell(bill, 1, 6, 'H0001')),
      /line 2, column 7 商户订单号/,
      /backtick/,
    );
  });

  it('refuses a non-numeric amount and a 3-decimal amount, naming line and column', () => {
    assertBillError(
      () => parseWechatTradeBill(editCell(bill, 1, 24, '`abc')),
      /line 2, column 25 订单金额/,
      /"abc"/,
    );
    assertBillError(() => parseWechatTradeBill(editCell(bill, 2, 22, '`0.120')), /line 3, column 23 手续费/);
  });

  it('refuses a state it does not know and a refund row without a refund number', () => {
    assertBillError(
      () => parseWechatTradeBill(editCell(bill, 1, 9, '`REVOKED')),
      /line 2, column 10 交易状态/,
    );
    assertBillError(() => parseWechatTradeBill(editCell(bill, 4, 15, '`')), /line 5, column 16 商户退款单号/);
  });

  it('refuses a summary that disagrees with the rows', () => {
    assertBillError(
      () => parseWechatTradeBill(edit(bill, (t) => t.replace('`5,`100000019.99', '`4,`100000019.99'))),
      /line 8, column 1 总交易单数/,
      /summary says 4 rows, the file has 5/,
    );
    assertBillError(
      () =>
        parseWechatTradeBill(
          edit(bill, (t) => t.replace('`600000.00,`100000019.99', '`600000.01,`100000019.99')),
        ),
      /line 8, column 5 手续费总金额/,
      /summary says 600000\.01, the 手续费 column adds up to 600000\.00/,
    );
    // A row cut out: the totals no longer agree.
    assertBillError(
      () =>
        parseWechatTradeBill(
          edit(bill, (t) =>
            t
              .split('\r\n')
              .filter((_, i) => i !== 2)
              .join('\r\n'),
          ),
        ),
      /总交易单数/,
    );
  });

  it('refuses a file cut short (no summary) and one with lines after the summary', () => {
    const cut = edit(bill, (t) => t.split('\r\n').slice(0, 5).join('\r\n'));
    assertBillError(() => parseWechatTradeBill(cut), /no summary block/);
    assertBillError(
      () => parseWechatTradeBill(edit(bill, (t) => `${t}\`1,\`2\r\n`)),
      /one summary values line, found 2/,
    );
  });

  it('refuses a wrong header and text that is not UTF-8', () => {
    assertBillError(
      () => parseWechatTradeBill(Buffer.from('hello\r\n')),
      /line 1, column 1/,
      /header should be 交易时间/,
    );
    assertBillError(
      () => parseWechatTradeBill(Buffer.from([0xef, 0xbb, 0xbf, 0xd6, 0xd0])),
      /not valid UTF-8/,
    );
  });
});
