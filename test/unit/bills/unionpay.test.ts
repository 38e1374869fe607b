/**
 * The UnionPay reconciliation file (ZM): the hand-written fixture read by the real parser (amounts in fen, fees,
 * refunds and cancels, out_trade_no from 商户自定义域 or the order id), the fileContent envelope (Base64 of a
 * deflated zip), and refusal of anything malformed: never a partial bill read as complete.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { deflateSync } from 'node:zlib';
import { BillFormatError } from '../../../src/domain/bill.js';
import {
  ZM_LINE_BYTES,
  buildUnionPayFileContent,
  buildZmLine,
  parseUnionPayFileContent,
  parseUnionPayZm,
} from '../../../src/channels/unionpay/bill.js';
import { consumeOrderId } from '../../../src/channels/unionpay/wire.js';
import { buildGbkZip } from '../../../src/formats/zip.js';

const NAME = 'INN24030101ZM_777290058110097';
const FIXTURE = fs.readFileSync(new URL(`../../fixtures/bills/unionpay-${NAME}`, import.meta.url));
const OPTS = { date: '2024-03-01', merId: '777290058110097', orderIdOf: consumeOrderId };

const contentOf = (name: string, data: Buffer) =>
  deflateSync(buildGbkZip([{ name, data }], new Date('2024-03-02T00:00:00Z'))).toString('base64');

describe('UnionPay ZM file', () => {
  it('reads the hand-written fixture: payments, a refund and a cancel, in fen, with fees', () => {
    const bill = parseUnionPayZm(FIXTURE, NAME, OPTS);
    assert.equal(bill.payType, 'unionpay');
    assert.equal(bill.date, '2024-03-01');
    assert.deepEqual(
      bill.lines.map((l) => [l.kind, l.outTradeNo, l.amountFen, l.feeFen, l.time, l.outRequestNo ?? '']),
      [
        ['payment', 'ZJMZ20240301000001', 1999, 8, '2024-03-01 08:15:02', ''],
        ['payment', 'MZ20240301000002', 500000, 1900, '2024-03-01 10:40:11', ''],
        ['payment', 'ZY-2024-0301-03', 1, 0, '2024-03-01 11:02:00', ''],
        ['refund', 'MZ20240301000002', 120050, 456, '2024-03-01 16:20:45', ''],
        ['refund', 'ZJMZ20240301000001', 1999, 8, '2024-03-01 22:15:03', '#CANCEL'],
      ],
    );
    // A refund line names the refunded payment's queryId and carries its own as the refund number.
    const refund = bill.lines[3];
    assert.equal(refund?.channelTradeNo, '582403011040110100002');
    assert.equal(refund?.channelRefundNo, '582403011620450100004');
    assert.equal(bill.lines[0]?.channelTradeNo, '582403010815020100001');
    assert.deepEqual(bill.summary, {
      paymentCount: 3,
      refundCount: 2,
      paymentFen: 502000,
      refundFen: 122049,
    });
  });

  it('the out_trade_no: 商户自定义域, or the order id when the 32-byte field cut it and the id is ours', () => {
    const long = `MZ${'7'.repeat(38)}`; // 40: fits UnionPay's order ids, 商户自定义域 holds its first 32
    const line = buildZmLine({
      kind: 'payment',
      traceTime: '0301120000',
      amountFen: 100,
      feeFen: 0,
      queryId: '582403011200000100009',
      orderId: long.slice(0, 32),
      merId: OPTS.merId,
      reqReserved: long,
    });
    assert.equal(Buffer.byteLength(line, 'latin1'), ZM_LINE_BYTES);
    const bill = parseUnionPayZm(Buffer.from(`${line}\r\n`, 'latin1'), NAME, OPTS);
    assert.equal(bill.lines[0]?.outTradeNo, long.slice(0, 32));
  });

  it('reads the fileContent envelope: Base64 of a deflated zip holding the ZM file (and a ZME file)', () => {
    const zip = buildGbkZip(
      [
        { name: NAME, data: FIXTURE },
        { name: 'INN24030101ZME_777290058110097', data: Buffer.from('') },
      ],
      new Date('2024-03-02T00:00:00Z'),
    );
    const bill = parseUnionPayFileContent(deflateSync(zip).toString('base64'), OPTS);
    assert.equal(bill.lines.length, 5);
    // What the fake gateway builds reads back the same way.
    const built = buildUnionPayFileContent('2024-03-01', OPTS.merId, [
      {
        kind: 'payment',
        traceTime: '0301090000',
        amountFen: 8888,
        feeFen: 53,
        queryId: '582403010900000100001',
        orderId: 'MZ0000000001',
        merId: OPTS.merId,
        reqReserved: 'MZ0000000001',
      },
    ]);
    const b = parseUnionPayFileContent(built, OPTS);
    assert.deepEqual(
      b.lines.map((l) => [l.outTradeNo, l.amountFen, l.feeFen]),
      [['MZ0000000001', 8888, 53]],
    );
  });

  it('an empty file is an empty bill (no trades that day)', () => {
    const bill = parseUnionPayFileContent(contentOf(NAME, Buffer.alloc(0)), OPTS);
    assert.equal(bill.lines.length, 0);
  });

  const refuses = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof BillFormatError && pattern.test(e.message));

  it('refuses a malformed file whole, with a clear error naming the line and column', () => {
    const text = FIXTURE.toString('latin1');
    const lines = text.split('\r\n');
    // A line cut short (the file truncated mid-line).
    refuses(
      () => parseUnionPayZm(Buffer.from(text.slice(0, text.length - 100), 'latin1'), NAME, OPTS),
      /line 5: \d+ bytes, a ZM line has 607/,
    );
    // An amount that is not 12 digits.
    const badAmount = lines
      .map((l, i) => (i === 1 ? l.replace('000000500000', '0000005000.0') : l))
      .join('\r\n');
    refuses(() => parseUnionPayZm(Buffer.from(badAmount, 'latin1'), NAME, OPTS), /line 2, column 7 交易金额/);
    // An unknown transaction type.
    const badType = lines.map((l, i) => (i === 0 ? `${l.slice(0, 215)}99${l.slice(217)}` : l)).join('\r\n');
    refuses(() => parseUnionPayZm(Buffer.from(badType, 'latin1'), NAME, OPTS), /交易类型.*99/);
    // A refund without the payment's queryId.
    const noOrig = lines
      .map((l, i) => (i === 3 ? l.replace('582403011040110100002', ' '.repeat(21)) : l))
      .join('\r\n');
    refuses(() => parseUnionPayZm(Buffer.from(noOrig, 'latin1'), NAME, OPTS), /原交易查询流水号/);
    // Another merchant's file, another day's file.
    refuses(() => parseUnionPayZm(FIXTURE, NAME, { ...OPTS, merId: '777290058110098' }), /merchant/);
    refuses(() => parseUnionPayZm(FIXTURE, NAME, { ...OPTS, date: '2024-03-02' }), /not 2024-03-02/);
  });

  it('refuses an envelope that is not Base64, does not inflate, is not a zip, or holds no ZM file', () => {
    refuses(() => parseUnionPayFileContent('<html>', OPTS), /not Base64/);
    refuses(() => parseUnionPayFileContent(Buffer.from('plain').toString('base64'), OPTS), /inflate/);
    refuses(
      () => parseUnionPayFileContent(deflateSync(Buffer.from('PK not')).toString('base64'), OPTS),
      /zip/,
    );
    refuses(() => parseUnionPayFileContent(contentOf('readme.txt', FIXTURE), OPTS), /0 ZM files/);
    // A zip whose ZM entry is corrupt (CRC) is refused.
    const zip = buildGbkZip([{ name: NAME, data: FIXTURE }], new Date('2024-03-02T00:00:00Z'));
    const i = zip.indexOf(Buffer.from(NAME, 'latin1')) + NAME.length + 40;
    zip[i] = (zip[i] ?? 0) ^ 0xff;
    refuses(
      () => parseUnionPayFileContent(deflateSync(zip).toString('base64'), OPTS),
      /corrupt|zip|bytes|line/,
    );
  });
});
