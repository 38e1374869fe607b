/**
 * The Fen type's one constructor and its helpers, and the family of yuan parsers and formatters in
 * src/domain/money.ts: each variant's accepted and refused inputs, as its callers rely on them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  absFen,
  addFen,
  fen,
  formatFen,
  formatFenForDisplay,
  MAX_FEN,
  negFen,
  parsePositiveYuan,
  parseSignedNonZeroYuan,
  parseSignedYuan,
  parseYuanToFen,
  parseYuanTotal,
  parseZeroPaddedYuan,
  subFen,
  sumFen,
  ZERO_FEN,
} from '../../src/domain/money.js';

/** Inputs no variant accepts: signs it does not allow, exponents, separators, spaces, full-width digits. */
const REFUSED_BY_ALL = [
  '',
  ' ',
  '.',
  '-',
  '+1',
  '1.',
  '.5',
  '01',
  '00.5',
  '1e3',
  '0x10',
  '1,000',
  ' 1',
  '1 ',
  '１',
  'abc',
  'NaN',
  'Infinity',
  '--1',
];

function accepts(parse: (s: string) => number | null, cases: ReadonlyArray<[string, number]>): void {
  for (const [s, expected] of cases) assert.equal(parse(s), expected, JSON.stringify(s));
}

function refuses(parse: (s: string) => number | null, inputs: readonly string[]): void {
  for (const s of inputs) assert.equal(parse(s), null, JSON.stringify(s));
}

describe('money: Fen', () => {
  it('fen() takes safe integers, negative ones and zero included', () => {
    assert.equal(fen(0), 0);
    assert.equal(fen(8888), 8888);
    assert.equal(fen(-5000), -5000);
    assert.equal(fen(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
  });

  it('fen() refuses 1.5, NaN, 2**53 and the infinities with a RangeError', () => {
    for (const n of [1.5, 0.1, NaN, 2 ** 53, -(2 ** 53), Infinity, -Infinity])
      assert.throws(() => fen(n), RangeError, String(n));
  });

  it('the arithmetic helpers stay in whole fen', () => {
    assert.equal(addFen(fen(150), fen(250)), 400);
    assert.equal(subFen(fen(150), fen(250)), -100);
    assert.equal(negFen(fen(150)), -150);
    assert.equal(absFen(fen(-150)), 150);
    assert.equal(sumFen([fen(1), fen(2), fen(3)]), 6);
    assert.equal(sumFen([]), 0);
    assert.equal(ZERO_FEN, 0);
    assert.equal(MAX_FEN, 9_999_999_999);
    assert.throws(() => addFen(fen(Number.MAX_SAFE_INTEGER), fen(1)), RangeError);
  });
});

describe('money: yuan parsers', () => {
  it('parseYuanToFen (the doors): unsigned, up to 8 digits and 2 decimals, at most MAX_FEN', () => {
    accepts(parseYuanToFen, [
      ['0', 0],
      ['0.00', 0],
      ['0.01', 1],
      ['5', 500],
      ['0.5', 50],
      ['88.88', 8888],
      ['99999999.99', 9_999_999_999],
    ]);
    refuses(parseYuanToFen, [...REFUSED_BY_ALL, '-1', '-0.01', '12.345', '1.000', '100000000', '123456789']);
  });

  it('parsePositiveYuan: the doors rule, above zero', () => {
    accepts(parsePositiveYuan, [
      ['0.01', 1],
      ['19.99', 1999],
      ['99999999.99', 9_999_999_999],
    ]);
    refuses(parsePositiveYuan, [...REFUSED_BY_ALL, '0', '0.0', '0.00', '-1', '12.345', '100000000']);
  });

  it('parseSignedYuan (bill lines): the doors rule after an optional minus; "-0" is 0', () => {
    accepts(parseSignedYuan, [
      ['0.00', 0],
      ['-0', 0],
      ['-0.00', 0],
      ['5', 500],
      ['-19.99', -1999],
      ['-99999999.99', -9_999_999_999],
    ]);
    assert.ok(Object.is(parseSignedYuan('-0.00'), 0), 'zero without a sign');
    refuses(parseSignedYuan, [...REFUSED_BY_ALL, '-100000000', '100000000', '-12.345', '- 1', '-+1']);
  });

  it('parseSignedNonZeroYuan (HIS TotalAmount): signed, never zero', () => {
    accepts(parseSignedNonZeroYuan, [
      ['100', 10_000],
      ['-50', -5000],
      ['88.88', 8888],
      ['-0.01', -1],
      ['99999999.99', 9_999_999_999],
    ]);
    refuses(parseSignedNonZeroYuan, [...REFUSED_BY_ALL, '0', '0.00', '-0', '-0.00', '12.345', '100000000']);
  });

  it('parseYuanTotal (bill footers and summaries): signed, up to 14 digits, within a safe integer', () => {
    accepts(parseYuanTotal, [
      ['0.00', 0],
      ['-0.00', 0],
      ['-12.00', -1200],
      ['100000000.00', 10_000_000_000],
      ['90071992547409.91', Number.MAX_SAFE_INTEGER],
      ['-90071992547409.91', -Number.MAX_SAFE_INTEGER],
    ]);
    refuses(parseYuanTotal, [
      ...REFUSED_BY_ALL,
      '90071992547409.92',
      '99999999999999.99',
      '100000000000000',
      '1.234',
    ]);
  });

  it('parseZeroPaddedYuan (the insurance centre): unsigned, up to 12 digits, decimals padded with zeros to 6', () => {
    accepts(parseZeroPaddedYuan, [
      ['60', 6000],
      ['60.5', 6050],
      ['60.00', 6000],
      ['19.9900', 1999],
      ['0.100000', 10],
      ['999999999999.99', 99_999_999_999_999],
    ]);
    refuses(parseZeroPaddedYuan, [
      ...REFUSED_BY_ALL,
      '-1',
      '19.991',
      '19.9900001',
      '1.0000000',
      '1000000000000',
    ]);
  });
});

describe('money: formatting', () => {
  it('formatFen: exactly two decimals, a minus for a negative amount', () => {
    assert.equal(formatFen(fen(8888)), '88.88');
    assert.equal(formatFen(fen(5)), '0.05');
    assert.equal(formatFen(fen(0)), '0.00');
    assert.equal(formatFen(fen(-5000)), '-50.00');
    assert.equal(formatFen(MAX_FEN), '99999999.99');
  });

  it('formatFenForDisplay: ¥, thousands separators, the minus before the ¥', () => {
    assert.equal(formatFenForDisplay(fen(0)), '¥0.00');
    assert.equal(formatFenForDisplay(fen(5)), '¥0.05');
    assert.equal(formatFenForDisplay(fen(99_999)), '¥999.99');
    assert.equal(formatFenForDisplay(fen(100_000)), '¥1,000.00');
    assert.equal(formatFenForDisplay(fen(1_234_567)), '¥12,345.67');
    assert.equal(formatFenForDisplay(fen(-2000)), '-¥20.00');
    assert.equal(formatFenForDisplay(fen(-123_456_789_012)), '-¥1,234,567,890.12');
  });
});
