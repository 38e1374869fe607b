import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  PAY_TYPES,
  PAY_TYPE_NAMES,
  parsePayType,
  payTypeFromAuthCode,
  unsupportedPayType,
} from '../../src/domain/trade.js';
import { MAP_KEYS, chosenChannel } from '../../src/channels/choice.js';
import { hisPayTypeOf, understandPayType } from '../../src/reconcile/his/his-xml.js';
import { channelLabel } from '../../src/reconcile/report.js';
import { Errors } from '../../src/domain/errors.js';

describe('e-CNY (elecny) as a pay type', () => {
  it('tells an e-CNY payment code (19 digits starting with 01) from the others', () => {
    // An operating bank's published sample code (docs/channels/ecny.md).
    assert.equal(payTypeFromAuthCode('0100320229316139647'), 'elecny');
    assert.equal(payTypeFromAuthCode('0112345678901234567'), 'elecny');
    // Wrong length or another prefix: not e-CNY.
    assert.equal(payTypeFromAuthCode('010032022931613964'), null, '18 digits');
    assert.equal(payTypeFromAuthCode('01003202293161396471'), null, '20 digits');
    assert.equal(payTypeFromAuthCode('0200320229316139647'), null, 'prefix 02');
    assert.equal(payTypeFromAuthCode('0010032022931613964'), null, 'prefix 00');
    // The others are unchanged: WeChat 10–15 (18 digits), Alipay 25–30 (16–24 digits), UnionPay 62.
    for (const p of ['10', '11', '12', '13', '14', '15'])
      assert.equal(payTypeFromAuthCode(`${p}3456789012345678`), 'weixin', p);
    assert.equal(
      payTypeFromAuthCode('1034567890123456789'),
      null,
      'a 19-digit code starting with 10 is not WeChat',
    );
    for (const p of ['25', '26', '27', '28', '29', '30']) {
      assert.equal(payTypeFromAuthCode(`${p}34567890123456`), 'alipay', `${p} (16)`);
      assert.equal(payTypeFromAuthCode(`${p}34567890123456789`), 'alipay', `${p} (19)`);
    }
    assert.equal(payTypeFromAuthCode('6234567890123456789'), 'unionpay');
    assert.equal(payTypeFromAuthCode('01a3202293161396x7'), null, 'digits only');
  });

  it('is a pay type of every list: parsing (any case), names, the channel map, the HIS [dc]', () => {
    assert.ok((PAY_TYPES as readonly string[]).includes('elecny'));
    assert.equal(parsePayType('ElecNY'), 'elecny');
    assert.deepEqual(PAY_TYPE_NAMES.elecny, { zh: '数字人民币', en: 'e-CNY' });
    assert.equal(channelLabel('elecny'), '数字人民币');
    assert.ok(MAP_KEYS.includes('elecny'));
    const policy = { enabled: true, allowMixed: false };
    assert.equal(chosenChannel({}, 'elecny', policy), 'simulator', 'the demo (no real channel) takes e-CNY');
    assert.equal(
      chosenChannel({ alipay: 'alipay' }, 'elecny', policy),
      null,
      'never simulated beside real money',
    );
    assert.equal(chosenChannel({ elecny: 'somebank' }, 'elecny', policy), 'somebank');
    assert.equal(hisPayTypeOf('elecny'), 'dc');
    assert.equal(hisPayTypeOf('weixin'), 'weixin');
    assert.equal(understandPayType('elecny'), 'dc');
    assert.equal(understandPayType('[数字人民币]'), 'dc');
  });

  it('eshimin is a known but unsupported pay type, refused with a stable code and the reason', () => {
    assert.equal(parsePayType('eshimin'), null);
    const r = unsupportedPayType('ESHIMIN');
    assert.ok(r);
    const e = Errors.payTypeNotSupported(r);
    assert.equal(e.code, 'PAY_TYPE_NOT_SUPPORTED');
    assert.match(e.zh, /随申办.*没有公开的接口协议/);
    assert.match(e.en, /eshimin.*no public protocol/);
    assert.equal(unsupportedPayType('elecny'), null);
    assert.equal(unsupportedPayType('toString'), null, 'no inherited names');
  });
});
