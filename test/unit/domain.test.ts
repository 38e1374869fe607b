import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fen, formatFen, parsePositiveYuan, parseYuanToFen, type Fen } from '../../src/domain/money.js';
import { parseTimeoutExpress } from '../../src/domain/timeout-express.js';
import { canTransition, parsePayType, payTypeFromAuthCode } from '../../src/domain/trade.js';
import { categorize, DEFAULT_CATEGORIES, validateCategories } from '../../src/domain/categories.js';
import { formatShanghai } from '../../src/domain/clock.js';

describe('money', () => {
  it('parses yuan strings to exact fen', () => {
    const cases: Array<[string, number]> = [
      ['0.01', 1],
      ['0.1', 10],
      ['0.10', 10],
      ['19.99', 1999],
      ['88.88', 8888],
      ['5', 500],
      ['99999999.99', 9_999_999_999],
      ['200.12', 20012],
    ];
    for (const [s, fen] of cases) assert.equal(parseYuanToFen(s), fen, s);
  });
  it('refuses anything that is not plain yuan', () => {
    for (const s of [
      '',
      ' 1',
      '1 ',
      '-1',
      '+1',
      '1.234',
      '1e3',
      '01',
      '00.10',
      '.5',
      '5.',
      '1,000',
      '１２',
      '0x1f',
      'NaN',
      '100000000',
      '12345678901234567890',
    ]) {
      assert.equal(parseYuanToFen(s), null, JSON.stringify(s));
    }
    assert.equal(parsePositiveYuan('0.00'), null);
    assert.equal(parsePositiveYuan('0'), null);
  });
  it('round-trips every cent of a range exactly (no floating point)', () => {
    for (let n = 0; n < 100_000; n += 7) assert.equal(parseYuanToFen(formatFen(fen(n))), n);
    assert.equal(formatFen(fen(1998)), '19.98');
    assert.equal(formatFen(fen(5)), '0.05');
    assert.equal(formatFen(fen(-5000)), '-50.00');
    assert.throws(() => formatFen(1.5 as Fen)); // the run-time guard, past the type
  });
});

describe('TimeoutExpress', () => {
  const now = new Date('2026-11-25T02:00:00Z'); // 10:00 in Shanghai
  it('accepts 1m–15d and 1c', () => {
    assert.equal(parseTimeoutExpress('1m', now)?.toISOString(), '2026-11-25T02:01:00.000Z');
    assert.equal(parseTimeoutExpress('90m', now)?.toISOString(), '2026-11-25T03:30:00.000Z');
    assert.equal(parseTimeoutExpress('2h', now)?.toISOString(), '2026-11-25T04:00:00.000Z');
    assert.equal(parseTimeoutExpress('15d', now)?.toISOString(), '2026-12-10T02:00:00.000Z');
    assert.equal(parseTimeoutExpress('1c', now)?.toISOString(), '2026-11-25T16:00:00.000Z');
    assert.equal(
      parseTimeoutExpress('1c', new Date('2026-11-25T16:30:00Z'))?.toISOString(),
      '2026-11-26T16:00:00.000Z',
    );
  });
  it('refuses the rest', () => {
    for (const s of ['0m', '16d', '361h', '21601m', '1.5h', '90', 'm', '2c', '-1m', '01m', '1M'])
      assert.equal(parseTimeoutExpress(s, now), null, s);
  });
});

describe('trades', () => {
  it('pay types: case-insensitive names, and detection from the payment code', () => {
    assert.equal(parsePayType('WeiXin'), 'weixin');
    assert.equal(parsePayType('Alipay'), 'alipay');
    assert.equal(parsePayType('UNIONPAY'), 'unionpay');
    assert.equal(parsePayType('wechat'), null);
    assert.equal(payTypeFromAuthCode('280012345678901234'), 'alipay');
    assert.equal(payTypeFromAuthCode('2500123456789012'), 'alipay');
    assert.equal(payTypeFromAuthCode('301234567890123456789012'), 'alipay');
    assert.equal(payTypeFromAuthCode('134567890123456789'), 'weixin');
    assert.equal(payTypeFromAuthCode('1345678901234567'), null, 'WeChat codes have 18 digits');
    assert.equal(payTypeFromAuthCode('6212345678901234567'), 'unionpay');
    assert.equal(payTypeFromAuthCode('99123456789012345'), null);
    assert.equal(payTypeFromAuthCode('28abc'), null);
  });
  it('state machine: nothing leaves TRADE_CLOSED or TRADE_FINISHED', () => {
    assert.ok(canTransition('WAIT_BUYER_PAY', 'TRADE_SUCCESS'));
    assert.ok(canTransition('TRADE_SUCCESS', 'TRADE_CLOSED'));
    assert.ok(!canTransition('TRADE_CLOSED', 'TRADE_SUCCESS'));
    assert.ok(!canTransition('TRADE_FINISHED', 'TRADE_CLOSED'));
    assert.ok(!canTransition('WAIT_BUYER_PAY', 'TRADE_FINISHED'));
  });
  it('categories: longest prefix wins', () => {
    assert.equal(categorize('MZ2026001', DEFAULT_CATEGORIES), 'MZ');
    assert.equal(categorize('ZJMZ2026001', DEFAULT_CATEGORIES), 'ZJMZ');
    assert.equal(categorize('ZHZY2026001', DEFAULT_CATEGORIES), 'ZHZY');
    assert.equal(categorize('ZY2026001', DEFAULT_CATEGORIES), 'ZY');
    assert.equal(categorize('2026001', DEFAULT_CATEGORIES), 'OTHER');
    assert.equal(
      validateCategories([
        { prefix: 'A', name: 'x' },
        { prefix: 'A', name: 'y' },
      ]),
      null,
    );
    assert.equal(validateCategories([{ prefix: 'A-1', name: 'x' }]), null);
    assert.deepEqual(validateCategories([{ prefix: 'TJ', name: '体检' }]), [{ prefix: 'TJ', name: '体检' }]);
  });
  it('formats times in Asia/Shanghai', () => {
    assert.equal(formatShanghai(new Date('2026-11-25T16:30:05Z')), '2026-11-26 00:30:05');
  });
});
