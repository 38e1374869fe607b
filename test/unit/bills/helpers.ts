import assert from 'node:assert/strict';
import { BillFormatError, type BillLine } from '../../../src/domain/bill.js';
import { fen } from '../../../src/domain/money.js';

export const SAMPLE_LINES: BillLine[] = [
  {
    kind: 'payment',
    channelTradeNo: 'T0001',
    outTradeNo: 'H0001',
    amountFen: fen(1),
    feeFen: fen(0),
    time: '2024-03-01 00:00:00',
    payType: 'alipay',
  },
  {
    kind: 'payment',
    channelTradeNo: 'T0002',
    outTradeNo: 'H0002',
    amountFen: fen(1999),
    feeFen: fen(12),
    time: '2024-03-01 08:15:04',
    payType: 'alipay',
    subject: '门诊缴费-挂号费（西药）·彭医生',
  },
  {
    kind: 'payment',
    channelTradeNo: 'T0003',
    outTradeNo: 'H0003',
    amountFen: fen(9_999_999_999),
    feeFen: fen(60_000_000),
    time: '2024-03-01 12:00:00',
    payType: 'alipay',
    subject: '住院预交金',
  },
  {
    kind: 'refund',
    channelTradeNo: 'T0002',
    outTradeNo: 'H0002',
    outRequestNo: 'R0002-1',
    amountFen: fen(1999),
    feeFen: fen(12),
    time: '2024-03-01 16:20:45',
    payType: 'alipay',
    subject: '门诊缴费-挂号费（西药）·彭医生',
  },
  {
    kind: 'refund',
    channelTradeNo: 'T0003',
    outTradeNo: 'H0003',
    outRequestNo: 'R0003-1',
    amountFen: fen(1),
    feeFen: fen(0),
    time: '2024-03-01 23:59:59',
    payType: 'alipay',
  },
];

/** Asserts that fn throws a BillFormatError whose message matches every pattern. */
export function assertBillError(fn: () => unknown, ...patterns: RegExp[]): BillFormatError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof BillFormatError, `expected a BillFormatError, got ${String(caught)}`);
  for (const p of patterns) assert.match(caught.message, p);
  return caught;
}
