import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { scrubText } from '../../src/logging.js';

describe('log scrubbing', () => {
  it('masks phone, ID, bank-card and payment-code numbers', () => {
    assert.equal(scrubText('tel 13812345678'), 'tel 138****678');
    assert.equal(scrubText('id 11010519491231002X ok'), 'id 110****02X ok');
    assert.equal(scrubText('code=280012345678901234'), 'code=280****234');
    assert.equal(scrubText('card 6222021234567890123'), 'card 622****123');
  });
  it('keeps trade numbers readable', () => {
    assert.equal(scrubText('trade 2026112522001035119755530988'), 'trade 2026112522001035119755530988');
    assert.equal(scrubText('HP202611260412384386402936'), 'HP202611260412384386402936');
    assert.equal(scrubText('amount 8888 fen'), 'amount 8888 fen');
  });
  it('masks keys and long tokens', () => {
    assert.equal(
      scrubText('-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----'),
      '-----REDACTED KEY-----',
    );
    assert.equal(scrubText('token SGxzdjyLFB1OJWRGQYnf3whRyFptbL8S8uwmjQ7yQ5o'), 'token ***');
  });
});
