import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { insertParams, newRowParams } from '../../src/store/trades.js';
import { newTradeRow, type TradeRowFields } from '../../src/store/trade-row.js';
import { fen, ZERO_FEN } from '../../src/domain/money.js';

/**
 * The payment paths insert a new trade from its fields (TradeRepository.insertNewOrGet) without building
 * newTradeRow's object: the statement's parameters must be exactly those of newTradeRow's row.
 */
describe('a new trade inserted from its fields', () => {
  const now = new Date('2026-12-06T08:00:00.123Z');
  const base: TradeRowFields = {
    trade_no: 'HP202612061600001234567890',
    app_id: 'app1',
    out_trade_no: 'MZ1',
    kind: 'barcode',
    category: 'MZ',
    order_type: 'TREATMENT',
    total_fen: fen(8888),
    subject: '门诊缴费',
    fingerprint: 'f'.repeat(64),
    created_at: now,
    expires_at: new Date(now.getTime() + 60_000),
  };
  const cases: Array<[string, TradeRowFields]> = [
    ['only the required fields', base],
    [
      'a barcode pay',
      {
        ...base,
        pay_type: 'alipay',
        channel: 'simulator',
        body: null,
        operator_id: 'op',
        patient_name: '张三',
      },
    ],
    [
      'an h5 pay, undefined fields keeping their defaults',
      {
        ...base,
        kind: 'h5',
        body: undefined,
        timeout_express: '2h',
        code_url: 'https://h/c',
        cashier_token: 'tok',
        notify_url: 'https://his/n',
        return_url: undefined,
        extra: '{}',
        insurance_fen: ZERO_FEN,
        reduced_fen: fen(100),
      },
    ],
    ['an updated_at of its own', { ...base, updated_at: new Date(now.getTime() + 5) }],
    [
      'a closed void trade',
      { ...base, kind: 'void', status: 'TRADE_CLOSED', closed_at: now, cancel_action: 'close' },
    ],
  ];
  for (const [name, fields] of cases)
    it(`${name}: the same parameters as newTradeRow's row`, () => {
      const fromFields = newRowParams(fields);
      assert.ok(fromFields);
      assert.deepEqual(fromFields, insertParams(newTradeRow(fields)));
    });

  it('a column the fixed insert does not name: no parameters (inserted as newTradeRow makes it)', () => {
    const fields = { ...base, insurance_state: 'SETTLED' } as TradeRowFields;
    assert.equal(newRowParams(fields), null);
    assert.equal(insertParams(newTradeRow(fields)), null);
  });
});
