/**
 * The UnionPay QuickPass adapter's own rules: the signing rule (known answers computed with the openssl CLI),
 * certId, the verify chain and owner checks, answer parsing, order ids and txnTime, the configuration checks,
 * and the adapter against the fake gateway where the conformance suite does not reach (rogue chains, wrong
 * owners, old trades, repeats, cancels of unpaid trades).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto, { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import {
  beijingDaysBetween,
  cancelOrderId,
  consumeOrderId,
  dayTxnTime,
  exactTxnTime,
  maskAccount,
  parseAnswer,
  parseForm,
  redactFields,
  refundOrderId,
  tradeTime,
} from '../../../src/channels/unionpay/wire.js';
import {
  certIdOf,
  checkSigningCert,
  cnIdentity,
  signFields,
  signingText,
  verifyFields,
} from '../../../src/channels/unionpay/keys.js';
import { unionpayDefinition } from '../../../src/channels/unionpay/definition.js';
import { checkChannelConfig } from '../../../src/channels/definition.js';
import { httpRequest } from '../../../src/channels/http.js';
import type { Channel, ChannelCall, ChannelContext } from '../../../src/channels/channel.js';
import { conformanceContext } from '../../conformance/suite.js';
import {
  MERCHANT_SERIAL,
  startFakeUnionPay,
  unionPayCerts,
  type FakeUnionPay,
} from '../../fakes/unionpay-server.js';
import { fen } from '../../../src/domain/money.js';

const KEY = fs.readFileSync('test/fixtures/keys/test-app-2048.pem', 'utf8');

describe('unionpay: signing rule (acp 5.1.0, signMethod 01)', () => {
  const consume: Record<string, string> = {
    version: '5.1.0',
    encoding: 'UTF-8',
    signMethod: '01',
    certId: '68759663125',
    txnType: '01',
    txnSubType: '06',
    bizType: '000000',
    accessType: '0',
    merId: '777290058110097',
    orderId: 'MZ20260101000001',
    txnTime: '20260101000000',
    channelType: '08',
    txnAmt: '1234',
    currencyCode: '156',
    qrNo: '6225881234567890123',
    reqReserved: 'MZ20260101000001',
  };

  it('signs the sorted k=v text of every field but signature (known answer from the openssl CLI)', () => {
    assert.equal(
      signingText({ ...consume, signature: 'ignored' }),
      'accessType=0&bizType=000000&certId=68759663125&channelType=08&currencyCode=156&encoding=UTF-8' +
        '&merId=777290058110097&orderId=MZ20260101000001&qrNo=6225881234567890123' +
        '&reqReserved=MZ20260101000001&signMethod=01&txnAmt=1234&txnSubType=06&txnTime=20260101000000' +
        '&txnType=01&version=5.1.0',
    );
    // printf '%s' "$(printf '%s' TEXT | openssl dgst -sha256 -r | cut -d' ' -f1)" \
    //   | openssl dgst -sha256 -sign test/fixtures/keys/test-app-2048.pem | base64 -w0
    const expected =
      'Ge9GDibKgOHIgambDs6xhHQs5JTdrqqrjg4uiR7JVtLfNvHUxjZ1Kkt7ZY6o1iehDNZh+JwVWQL96GOCjN5ExS0rrYGPzkJdXZ/KBIpd' +
      'GN+HTyGVXixeKupXC3KvruyeXuWXuU7NrkNV7sut7qXj+4lj2V2E4OJwB6IuBDiJLfBX2jDeEm2MgVhpFnQvCRh0TbiSbEVz+CfP3wgq' +
      'vdGoh1c+hLGU2WnjCYkMDgiuvU4tfMCELJKnxolUF5/8+iCs3y3I+vkovzk0JsHRGmKgTZgbA4IJT5vMf/v7WQLHm2hH8uTx1vDMAPu9' +
      'UjdlwhlgQ8jhB611CR1OlhkRO3oKMA==';
    const key = crypto.createPrivateKey(KEY);
    assert.equal(signFields(consume, key), expected);
    assert.equal(signFields({ ...consume, signature: 'anything' }, key), expected, 'signature is not signed');
  });

  it('values are signed raw (UTF-8, brackets, no URL encoding): a second known answer', () => {
    const f = { txnType: '00', respCode: '00', respMsg: '成功[0000000]', bizType: '000000' };
    assert.equal(signingText(f), 'bizType=000000&respCode=00&respMsg=成功[0000000]&txnType=00');
    assert.equal(
      signFields(f, crypto.createPrivateKey(KEY)),
      'MGDtMxpJQhAGs6M//sW8u1EIPLdyFuNX92dAU6+kMLy9rvrUeBJx/D39IGwumbhAKNv9fkFxqMaaBrUbmVd3etyRbZCurnPDNMI2OSRu' +
        'Hoz6YdRfHggy4NbgxIzfDmQBQMfFiPifejuFuVRBb5FKVXT3NS0iwXrqB530arRX5oho97V0NFoxNiYVIrtgy6FXwmq0zDeA+aNweDBs' +
        'oc4/xL9YR3oOXK5RZcXvc/eFkwPo5NfJndg4XJ04+Y1JxuO16HrAWuHidvk/pNVjnME7mwQ4+iChVrnYBmxSKtgHdm0yfW2CIGIt5ZGi' +
        '3H5hfDn4Y2szFa/0PHQ5aRXbBK5rYQ==',
    );
  });

  it('verifies its own signatures and nothing altered', () => {
    const key = crypto.createPrivateKey(KEY);
    const pub = crypto.createPublicKey(key);
    const signed = { ...consume, signature: signFields(consume, key) };
    assert.equal(verifyFields(signed, pub), true);
    assert.equal(verifyFields({ ...signed, txnAmt: '1235' }, pub), false);
    assert.equal(verifyFields({ ...signed, extra: '' }, pub), false, 'an added field changes the text');
    assert.equal(verifyFields({ ...signed, signature: 'not base64!' }, pub), false);
    const { signature: _drop, ...unsigned } = signed;
    assert.equal(verifyFields(unsigned, pub), false);
  });
});

describe('unionpay: certificates', () => {
  const certs = unionPayCerts();
  const chain = {
    root: new X509Certificate(certs.root),
    middle: new X509Certificate(certs.middle),
    expectedCn: '中国银联股份有限公司',
  };
  const now = new Date();

  it('certId is the signing certificate serial number in decimal', () => {
    assert.equal(certIdOf(new X509Certificate(certs.merchantCert)), MERCHANT_SERIAL);
    const c = new X509Certificate(certs.signCert);
    assert.equal(certIdOf(c), BigInt(`0x${c.serialNumber}`).toString());
    assert.match(certIdOf(c), /^\d+$/);
  });

  it("the owner is the third '@'-part of the CN", () => {
    assert.equal(cnIdentity(new X509Certificate(certs.signCert)), '中国银联股份有限公司');
    assert.equal(cnIdentity(new X509Certificate(certs.wrongCnCert)), '某某科技有限公司');
    assert.equal(cnIdentity(new X509Certificate(certs.root)), null, 'a CN without @ names nobody');
  });

  it('trusts a signPubKeyCert only through the configured chain, valid now, naming UnionPay', () => {
    const ok = checkSigningCert(certs.signCert, chain, now);
    assert.equal(ok.ok, true);
    if (ok.ok) assert.ok(ok.key.equals(new X509Certificate(certs.signCert).publicKey));
    const bad = (pem: string, c = chain, at = now) => {
      const r = checkSigningCert(pem, c, at);
      return r.ok ? 'trusted' : r.reason;
    };
    assert.match(bad(certs.wrongCnCert), /owner/);
    assert.match(bad(certs.rogueCert), /chain/);
    assert.match(bad(certs.signCert, { ...chain, expectedCn: '00040000:SIGN' }), /owner/);
    assert.match(bad(certs.signCert, { ...chain, middle: new X509Certificate(certs.rogueMiddle) }), /chain/);
    assert.match(bad(certs.signCert, chain, new Date(now.getTime() + 2 * 365 * 86_400_000)), /not valid now/);
    assert.match(bad(certs.signCert, chain, new Date(now.getTime() - 86_400_000)), /not valid now/);
    assert.match(bad('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'), /unreadable/);
    // The middle certificate itself is a CA of the chain, not a signing certificate naming UnionPay.
    assert.match(bad(certs.middle), /owner|chain/);
  });
});

describe('unionpay: answers, notices, order ids, times, records', () => {
  it('reads raw k=v answers, with & inside {…} and [..], and refuses anything else', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB+/=\n-----END CERTIFICATE-----\n';
    assert.deepEqual(
      parseAnswer(`respCode=00&respMsg=成功[00&00]&reserved={a=1&b=2}&signPubKeyCert=${pem}&x=`),
      {
        respCode: '00',
        respMsg: '成功[00&00]',
        reserved: '{a=1&b=2}',
        signPubKeyCert: pem,
        x: '',
      },
    );
    for (const bad of ['', '<html>502</html>', 'a=1&a=2', 'a=1&=2', 'a={1&b=2', 'a=1&b', '1a=2'])
      assert.equal(parseAnswer(bad), null, bad);
  });

  it('reads form notices and refuses repeated fields', () => {
    assert.deepEqual(parseForm('a=%E6%88%90+1&b=x%2By'), { a: '成 1', b: 'x+y' });
    assert.equal(parseForm('a=1&a=2'), null);
    assert.equal(parseForm('<<not a notification>>'), null);
  });

  it('order ids: a fitting outTradeNo as it is, anything else hashed; refunds and cancels never natural', () => {
    assert.equal(consumeOrderId('MZ20260101000001'), 'MZ20260101000001');
    for (const no of ['MZ-2026_01', 'SHORT1', 'A'.repeat(41), '挂号']) {
      const id = consumeOrderId(no);
      assert.match(id, /^H[0-9a-f]{31}$/);
      assert.equal(consumeOrderId(no), id, 'deterministic');
    }
    const c = cancelOrderId('MZ20260101000001');
    const r1 = refundOrderId('MZ20260101000001', 'R1');
    const r2 = refundOrderId('MZ20260101000001', 'R2');
    assert.equal(new Set([c, r1, r2, consumeOrderId('MZ20260101000001')]).size, 4);
    for (const id of [c, r1, r2]) assert.match(id, /^H[0-9a-f]{31}$/);
  });

  it('txnTime: a stored instant to the second in Beijing; days between Beijing days', () => {
    assert.equal(exactTxnTime(new Date('2026-03-01T15:59:59.999Z')), '20260301235959');
    assert.equal(exactTxnTime(new Date('2026-03-01T16:00:00.000Z')), '20260302000000');
    assert.equal(exactTxnTime(new Date('2025-12-31T16:00:01.500Z')), '20260101000001');
    assert.equal(beijingDaysBetween(new Date('2026-03-01T15:59:59Z'), new Date('2026-03-01T16:00:00Z')), 1);
    assert.equal(beijingDaysBetween(new Date('2026-03-01T16:00:00Z'), new Date('2026-03-02T15:59:59Z')), 0);
    assert.equal(beijingDaysBetween(new Date('2026-03-01T00:00:00Z'), new Date('2026-03-04T00:00:00Z')), 3);
  });

  it('txnTime is 00:00:00 of the Beijing day; traceTime gives the payment time', () => {
    assert.equal(dayTxnTime(new Date('2026-03-01T15:59:59Z')), '20260301000000');
    assert.equal(dayTxnTime(new Date('2026-03-01T16:00:00Z')), '20260302000000');
    assert.equal(dayTxnTime(new Date('2026-03-01T16:00:00Z'), 1), '20260301000000');
    assert.equal(dayTxnTime(new Date('2026-01-01T00:00:00Z'), 1), '20251231000000');
    const fallback = new Date(0);
    assert.equal(
      tradeTime({ traceTime: '0301080910', txnTime: '20260301000000' }, fallback).toISOString(),
      '2026-03-01T00:09:10.000Z',
    );
    assert.equal(
      tradeTime({ traceTime: '0101000001', txnTime: '20251231000000' }, fallback).toISOString(),
      '2025-12-31T16:00:01.000Z',
      'across new year',
    );
    assert.equal(tradeTime({ traceTime: 'x' }, fallback), fallback);
  });

  it('records hide the payment code, signatures and certificates, and mask card numbers', () => {
    const text = redactFields({
      qrNo: '6225881234567890123',
      accNo: '6216261000000000018',
      signature: 'SIG',
      signPubKeyCert: 'PEM',
      orderId: 'MZ1',
    });
    assert.equal(text, 'accNo=621626*********0018&orderId=MZ1&qrNo=***');
    assert.equal(maskAccount('12'), '***');
  });
});

describe('unionpay: configuration checks', () => {
  const certs = unionPayCerts();
  const good = {
    mer_id: '777290058110097',
    sign_key_pem: certs.merchantKey,
    sign_cert_pem: certs.merchantCert,
    root_cert: certs.root,
    middle_cert: certs.middle,
  };
  const problems = (values: Record<string, string>) =>
    checkChannelConfig(unionpayDefinition.fields, values).map((p) => `${p.field}: ${p.en}`);

  it('the definition', () => {
    assert.equal(unionpayDefinition.id, 'unionpay');
    assert.equal(unionpayDefinition.zh, '银联云闪付');
    assert.deepEqual(unionpayDefinition.payTypes, ['unionpay']);
    const secret = unionpayDefinition.fields.filter((f) => f.secret).map((f) => f.name);
    assert.deepEqual(secret, ['sign_key_pem']);
    const defaults = Object.fromEntries(unionpayDefinition.fields.map((f) => [f.name, f.default]));
    assert.equal(defaults['expected_cn'], '中国银联股份有限公司');
    assert.equal(defaults['gateway_url'], 'https://gateway.95516.com');
    assert.equal(defaults['timeout_ms'], '10000');
  });

  it('a complete configuration passes; each broken field is named (中文 / English)', () => {
    assert.deepEqual(problems(good), []);
    assert.deepEqual(problems({}).sort(), [
      'mer_id: required, not set',
      'middle_cert: required, not set',
      'root_cert: required, not set',
      'sign_cert_pem: required, not set',
      'sign_key_pem: required, not set',
    ]);
    assert.deepEqual(problems({ ...good, mer_id: '12345' }), ['mer_id: must be 15 digits']);
    assert.deepEqual(problems({ ...good, sign_key_pem: certs.signKey }), [
      'sign_key_pem: the key does not match sign_cert_pem',
    ]);
    assert.deepEqual(problems({ ...good, sign_key_pem: 'nope' }), [
      'sign_key_pem: not a readable PEM private key',
    ]);
    const encrypted = crypto
      .createPrivateKey(certs.merchantKey)
      .export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'x' })
      .toString();
    assert.match(problems({ ...good, sign_key_pem: encrypted })[0] ?? '', /encrypted/);
    assert.deepEqual(problems({ ...good, sign_cert_pem: 'x' }), [
      'sign_cert_pem: not a PEM X.509 certificate',
    ]);
    assert.deepEqual(problems({ ...good, middle_cert: certs.rogueMiddle }), [
      'middle_cert: middle_cert is not issued by root_cert',
    ]);
    assert.deepEqual(problems({ ...good, root_cert: certs.signCert, middle_cert: certs.middle }).sort(), [
      'middle_cert: middle_cert is not issued by root_cert',
      'root_cert: not a CA certificate',
    ]);
    assert.deepEqual(problems({ ...good, expected_cn: 'a@b' }), ['expected_cn: must be non-empty, no @']);
    assert.deepEqual(problems({ ...good, gateway_url: 'http://gateway.95516.com' }), [
      'gateway_url: must be https',
    ]);
    assert.deepEqual(problems({ ...good, gateway_url: 'http://127.0.0.1:9999' }), []);
    assert.deepEqual(problems({ ...good, timeout_ms: '50' }), [
      'timeout_ms: must be an integer from 100 to 60000',
    ]);
    assert.deepEqual(problems({ ...good, access_type: '1' }), [
      'access_type: access type 1 needs acq_ins_code',
    ]);
    assert.deepEqual(problems({ ...good, access_type: '1', acq_ins_code: '48020000' }), []);
    assert.deepEqual(problems({ ...good, term_id: '123' }), ['term_id: must be 8 letters or digits']);
    assert.deepEqual(problems({ ...good, pfx: 'x' }), ['pfx: unknown setting']);
  });
});

describe('unionpay adapter against the fake gateway: beyond the conformance suite', () => {
  let fake: FakeUnionPay;
  let channel: Channel;
  let ctx: ChannelContext & { calls: ChannelCall[] };
  let clockOffset = 0;
  let n = 0;
  const no = () => `MZUNIT${Date.now().toString(36).toUpperCase()}${String(++n).padStart(3, '0')}`;
  const code = () =>
    `62${String(crypto.randomInt(0, 10 ** 9)).padStart(9, '0')}${String(n).padStart(8, '0')}`;
  const pay = (outTradeNo: string, amountFen = 1000) =>
    channel.barcodePay(ctx, {
      outTradeNo,
      payType: 'unionpay',
      amountFen: fen(amountFen),
      authCode: code(),
      subject: '门诊',
    });
  const ref = (outTradeNo: string) => ({ outTradeNo, payType: 'unionpay' as const });

  before(async () => {
    fake = await startFakeUnionPay();
    channel = unionpayDefinition.create({
      http: httpRequest,
      clock: { now: () => new Date(Date.now() + clockOffset) },
      simulator: null,
    });
    ctx = conformanceContext({
      mer_id: fake.merId,
      sign_key_pem: fake.certs.merchantKey,
      sign_cert_pem: fake.certs.merchantCert,
      root_cert: fake.certs.root,
      middle_cert: fake.certs.middle,
      gateway_url: fake.url,
      timeout_ms: '800',
      lookback_days: '10',
    });
  });
  after(async () => {
    await fake?.close();
  });

  it('the consume request is the payment-code consume (01/06, bizType 000000, channelType 08), signed', async () => {
    const o = no();
    const r = await pay(o, 2550);
    assert.equal(r.kind, 'paid', JSON.stringify(r));
    if (r.kind === 'paid') assert.equal(r.buyerLogonId, '621626*********0018');
    const sent = fake.received().find((x) => x.op === 'pay' && x.fields['orderId'] === o);
    assert.ok(sent);
    assert.equal(sent.signatureValid, true);
    const f = sent.fields;
    assert.deepEqual(
      [f['version'], f['signMethod'], f['txnType'], f['txnSubType'], f['bizType'], f['channelType']],
      ['5.1.0', '01', '01', '06', '000000', '08'],
    );
    assert.deepEqual(
      [f['txnAmt'], f['currencyCode'], f['certId'], f['merId']],
      ['2550', '156', MERCHANT_SERIAL, fake.merId],
    );
    assert.equal(f['backUrl'], ctx.notifyUrl);
    assert.match(f['txnTime'] ?? '', /^\d{8}000000$/);
  });

  for (const bad of ['rogue_chain', 'wrong_cn', 'no_cert', 'other_order'] as const) {
    it(`an answer ${bad.replace('_', ' ')} is never success: pay, query, refund, cancel, notify`, async () => {
      fake.script('pay', bad);
      const p = await pay(no());
      assert.equal(p.kind, 'unknown', JSON.stringify(p));
      const o = no();
      assert.equal((await pay(o)).kind, 'paid');
      fake.script('query', bad);
      const q = await channel.query(ctx, ref(o));
      assert.equal(q.kind, 'unknown', JSON.stringify(q));
      fake.script('refund', bad);
      const r = await channel.refund(ctx, {
        ...ref(o),
        outRequestNo: 'R1',
        amountFen: fen(100),
        totalFen: fen(1000),
      });
      assert.equal(r.kind, 'unknown', JSON.stringify(r));
      fake.script('cancel', bad);
      const c = await channel.cancel(ctx, ref(o));
      assert.equal(c.kind, 'retry', JSON.stringify(c));
    });
  }

  it('a notice signed by a certificate of another chain or owner is rejected', async () => {
    const o = no();
    await pay(o);
    for (const signer of ['rogue', 'wrong_cn'] as const) {
      const x = await channel.parseNotify!(ctx, fake.notification(o, { signer }));
      assert.equal(x.kind, 'rejected', signer);
      assert.ok(x.ack.status >= 400);
    }
    const ok = await channel.parseNotify!(ctx, fake.notification(o));
    assert.deepEqual([ok.kind, ok.ack.status, ok.ack.body], ['trade', 200, 'ok']);
  });

  it('an outTradeNo UnionPay cannot take as it is travels hashed, and comes back through reqReserved', async () => {
    const o = `MZ-${no()}_1`;
    assert.equal((await pay(o)).kind, 'paid');
    const sent = fake.received().find((x) => x.op === 'pay' && x.fields['reqReserved'] === o);
    assert.match(sent?.fields['orderId'] ?? '', /^H[0-9a-f]{31}$/);
    assert.equal((await channel.query(ctx, ref(o))).kind, 'paid');
    const n2 = await channel.parseNotify!(ctx, fake.notification(o));
    assert.equal(n2.kind === 'trade' ? n2.outTradeNo : n2.kind, o);
  });

  it('a refund finds a payment of days ago; a repeated request number refunds once; refunds add up', async () => {
    const o = no();
    await pay(o, 1000);
    fake.age(o, 4);
    const a = await channel.refund(ctx, {
      ...ref(o),
      outRequestNo: 'R1',
      amountFen: fen(300),
      totalFen: fen(1000),
    });
    assert.equal(a.kind, 'success', JSON.stringify(a));
    const again = await channel.refund(ctx, {
      ...ref(o),
      outRequestNo: 'R1',
      amountFen: fen(300),
      totalFen: fen(1000),
    });
    assert.equal(again.kind, 'success');
    if (a.kind === 'success' && again.kind === 'success')
      assert.equal(again.channelRefundNo, a.channelRefundNo);
    assert.equal(fake.received().filter((x) => x.op === 'refund' && x.fields['reqReserved'] === o).length, 1);
    assert.equal(fake.trade(o)?.refundedFen, 300);
    const b = await channel.refund(ctx, {
      ...ref(o),
      outRequestNo: 'R2',
      amountFen: fen(700),
      totalFen: fen(1000),
    });
    assert.equal(b.kind, 'success');
    assert.equal(fake.trade(o)?.state, 'refunded');
    const over = await channel.refund(ctx, {
      ...ref(o),
      outRequestNo: 'R3',
      amountFen: fen(1),
      totalFen: fen(1000),
    });
    assert.equal(over.kind, 'failed', JSON.stringify(over));
  });

  it('a refund of a payment UnionPay never saw fails, after looking back lookback_days', async () => {
    const before = fake.requests().length;
    const r = await channel.refund(ctx, {
      ...ref(no()),
      outRequestNo: 'R1',
      amountFen: fen(1),
      totalFen: fen(1),
    });
    assert.equal(r.kind, 'failed');
    if (r.kind === 'failed') assert.equal(r.code, 'UNIONPAY_TRADE_NOT_FOUND');
    assert.equal(
      fake.requests().length - before,
      2 + 10,
      'two looks for the refund, ten days for the payment',
    );
  });

  it('a refund whose answer was lost is read back on the repeat, not sent twice', async () => {
    const o = no();
    await pay(o, 500);
    fake.script('refund', 'timeout');
    const lost = await channel.refund(ctx, {
      ...ref(o),
      outRequestNo: 'R1',
      amountFen: fen(200),
      totalFen: fen(500),
    });
    assert.equal(lost.kind, 'unknown');
    // The fake did not process the timed-out request: the repeat sends it (once).
    const again = await channel.refund(ctx, {
      ...ref(o),
      outRequestNo: 'R1',
      amountFen: fen(200),
      totalFen: fen(500),
    });
    assert.equal(again.kind, 'success', JSON.stringify(again));
    fake.script('refund', 'bad_signature');
    const unverified = await channel.refund(ctx, {
      ...ref(o),
      outRequestNo: 'R2',
      amountFen: fen(100),
      totalFen: fen(500),
    });
    assert.equal(unverified.kind, 'unknown');
    // It was processed: the repeat finds it and does not refund again.
    const read = await channel.refund(ctx, {
      ...ref(o),
      outRequestNo: 'R2',
      amountFen: fen(100),
      totalFen: fen(500),
    });
    assert.equal(read.kind, 'success');
    assert.equal(fake.trade(o)?.refundedFen, 300);
  });

  it('cancel: unpaid and still confirming is retried, failed or unseen is closed; query then says refunded', async () => {
    const waiting = no();
    fake.script('pay', 'paying');
    assert.equal((await pay(waiting)).kind, 'paying');
    assert.equal((await channel.cancel(ctx, ref(waiting))).kind, 'retry');
    assert.equal((await channel.close(ctx, ref(waiting))).kind, 'retry');
    fake.setTrade(waiting, 'closed');
    assert.equal((await channel.query(ctx, ref(waiting))).kind, 'closed');
    assert.equal((await channel.cancel(ctx, ref(waiting))).kind, 'closed');
    assert.equal((await channel.close(ctx, ref(waiting))).kind, 'closed');
    assert.equal((await channel.cancel(ctx, ref(no()))).kind, 'closed');

    const paid = no();
    await pay(paid);
    assert.equal((await channel.close(ctx, ref(paid))).kind, 'paid');
    const c = await channel.cancel(ctx, ref(paid));
    assert.equal(c.kind, 'refunded');
    assert.equal((await channel.query(ctx, ref(paid))).kind, 'refunded');
    assert.equal(
      (await channel.cancel(ctx, ref(paid))).kind,
      'refunded',
      'a repeated cancel reads the first',
    );
    assert.equal(
      fake.received().filter((x) => x.op === 'cancel' && x.fields['reqReserved'] === paid).length,
      1,
    );
  });

  it('a cancel refused by UnionPay (not the same day) is final', async () => {
    const o = no();
    await pay(o);
    fake.age(o, 1);
    const c = await channel.cancel(ctx, ref(o));
    assert.equal(c.kind, 'failed', JSON.stringify(c));
  });

  it('query looks at today and yesterday (a payment just before midnight)', async () => {
    const o = no();
    await pay(o);
    fake.age(o, 1);
    assert.equal((await channel.query(ctx, ref(o))).kind, 'paid');
    fake.age(o, 1);
    assert.equal((await channel.query(ctx, ref(o))).kind, 'not_found');
  });

  it('an answer whose certificate expired is not believed', async () => {
    const o = no();
    await pay(o);
    clockOffset = 2 * 365 * 86_400_000;
    try {
      const q = await channel.query(ctx, ref(o));
      assert.equal(q.kind, 'unknown');
    } finally {
      clockOffset = 0;
    }
  });

  it("precreate is the QR consume (01/07), at the trade's created_at, with payTimeout = expiresAt", async () => {
    const o = no();
    const createdAt = new Date(Date.now() - 5_000);
    const expiresAt = new Date(Date.now() + 20 * 60_000);
    const input = {
      outTradeNo: o,
      payType: 'unionpay' as const,
      amountFen: fen(2550),
      subject: '自助机',
      expiresAt,
    };
    const p = await channel.precreate!(ctx, { ...input, createdAt } as typeof input);
    assert.equal(p.kind, 'created', JSON.stringify(p));
    if (p.kind !== 'created') return;
    assert.match(p.codeUrl, /^https:\/\/qr\.95516\.com\//);
    const sent = fake
      .received()
      .filter((r) => r.op === 'precreate')
      .pop();
    assert.ok(sent?.signatureValid);
    const f = sent?.fields ?? {};
    assert.deepEqual(
      [f['txnType'], f['txnSubType'], f['bizType'], f['channelType'], f['txnAmt'], f['currencyCode']],
      ['01', '07', '000000', '08', '2550', '156'],
    );
    assert.equal(f['txnTime'], beijing(createdAt));
    assert.equal(f['payTimeout'], beijing(expiresAt));
    assert.equal(f['reqReserved'], o);
    assert.equal(f['backUrl'], ctx.notifyUrl);
    // Waiting until the payer scans; paid after; one exact question with the stored created_at.
    const before = fake.requests().length;
    assert.equal((await channel.query(ctx, { ...ref(o), createdAt })).kind, 'waiting');
    assert.equal(fake.requests().length - before, 1);
    fake.payQr(p.codeUrl);
    const q = await channel.query(ctx, { ...ref(o), createdAt });
    assert.equal(q.kind, 'paid', JSON.stringify(q));
    // A code past its payTimeout is closed by UnionPay: close answers closed.
    const late = no();
    const short = await channel.precreate!(ctx, {
      ...input,
      outTradeNo: late,
      expiresAt: new Date(Date.now() + 1000),
    });
    assert.equal(short.kind, 'created');
    assert.equal((await channel.close(ctx, ref(late))).kind, 'retry');
    await new Promise((r) => setTimeout(r, 2100));
    assert.equal((await channel.close(ctx, ref(late))).kind, 'closed');
  });

  it('precreate refuses an expired trade, another pay type, a refused order; never a code on a bad answer', async () => {
    const input = {
      outTradeNo: no(),
      payType: 'unionpay' as const,
      amountFen: fen(1),
      subject: 'x',
      expiresAt: new Date(Date.now() - 1),
    };
    const before = fake.requests().length;
    const expired = await channel.precreate!(ctx, input);
    assert.deepEqual(expired.kind === 'failed' ? [expired.code, expired.retryable] : expired, [
      'TRADE_EXPIRED',
      false,
    ]);
    const alipay = await channel.precreate!(ctx, {
      ...input,
      payType: 'alipay',
      expiresAt: new Date(Date.now() + 60_000),
    });
    assert.equal(alipay.kind === 'failed' && alipay.code, 'PAY_TYPE_UNSUPPORTED');
    assert.equal(fake.requests().length, before, 'nothing was sent');
    fake.script('precreate', 'declined');
    const refused = await channel.precreate!(ctx, { ...input, expiresAt: new Date(Date.now() + 60_000) });
    assert.deepEqual(refused.kind === 'failed' ? [refused.code, refused.retryable] : refused, [
      'UNIONPAY_01',
      false,
    ]);
    for (const bad of ['rogue_chain', 'wrong_cn', 'no_cert', 'other_order'] as const) {
      fake.script('precreate', bad);
      const x = await channel.precreate!(ctx, {
        ...input,
        outTradeNo: no(),
        expiresAt: new Date(Date.now() + 60_000),
      });
      assert.deepEqual(x.kind === 'failed' ? [x.code, x.retryable] : x, ['CHANNEL_ERROR', true], bad);
    }
  });

  it('wap: a signed front-channel form (000201, 01/01) the cashier verifies; paying it notifies backUrl', async () => {
    const o = no();
    const createdAt = new Date(Date.now() - 2_000);
    const input = {
      outTradeNo: o,
      payType: 'unionpay' as const,
      amountFen: fen(1880),
      subject: '门诊缴费',
      expiresAt: new Date(Date.now() + 15 * 60_000),
      returnUrl: 'https://hospay.example/goto/TOKEN/return',
      createdAt,
    };
    const before = fake.requests().length;
    const x = await channel.wapPay!(ctx, input);
    assert.equal(x.kind, 'form', JSON.stringify(x));
    if (x.kind !== 'form') return;
    assert.equal(fake.requests().length, before, 'no call to UnionPay');
    assert.equal(x.action, `${fake.url}/gateway/api/frontTransReq.do`);
    const f = x.fields;
    assert.deepEqual(
      [
        f['bizType'],
        f['txnType'],
        f['txnSubType'],
        f['channelType'],
        f['txnAmt'],
        f['orderId'],
        f['txnTime'],
      ],
      ['000201', '01', '01', '08', '1880', o, beijing(createdAt)],
    );
    assert.equal(f['frontUrl'], input.returnUrl);
    assert.equal(f['backUrl'], ctx.notifyUrl);
    assert.ok(f['signature'] && f['certId']);
    // Asked again: the same order, the same signed fields.
    const again = await channel.wapPay!(ctx, input);
    assert.deepEqual(again, x);
    // The form is recorded without its signature.
    const rec = ctx.calls.filter((c) => c.operation === 'unionpay.wap.form').pop();
    assert.ok(rec && !JSON.stringify(rec).includes(f['signature'] ?? '-'));
    // A tampered form is refused by the cashier.
    const forged = await fetch(x.action, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ ...f, txnAmt: '1' }).toString(),
    });
    assert.equal(forged.status, 400);
    await fake.payForm(x.action, x.fields);
    const q = await channel.query(ctx, { ...ref(o), createdAt });
    assert.equal(q.kind, 'paid', JSON.stringify(q));
    const notice = fake.sentNotices().find((s) => s.outTradeNo === o);
    assert.equal(notice?.url, ctx.notifyUrl);
    // An unusable return URL is refused.
    const bad = await channel.wapPay!(ctx, { ...input, returnUrl: 'javascript:alert(1)' });
    assert.equal(bad.kind === 'failed' && bad.code, 'INVALID_RETURN_URL');
  });

  it('bill: fileTransfer 76/01, settleDate MMDD, fileType 00 at file_url; refused whole when unclear', async () => {
    const billCtx = { ...ctx, merchant: { ...ctx.merchant, file_url: `${fake.url}/` } };
    const o = no();
    await pay(o, 7000);
    const date = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai' }).format(new Date());
    const bill = await channel.downloadBill!(billCtx, { date, payType: 'unionpay' });
    const sent = fake
      .received()
      .filter((r) => r.op === 'bill')
      .pop();
    assert.ok(sent?.signatureValid);
    assert.deepEqual(
      [
        sent?.fields['txnType'],
        sent?.fields['txnSubType'],
        sent?.fields['fileType'],
        sent?.fields['settleDate'],
      ],
      ['76', '01', '00', date.slice(5, 7) + date.slice(8, 10)],
    );
    assert.ok(bill.lines.some((l) => l.outTradeNo === o && l.amountFen === 7000 && l.kind === 'payment'));
    const rec = billCtx.calls.filter((c) => c.operation === 'unionpay.bill.download').pop();
    assert.ok(rec && !JSON.stringify(rec).includes('fileContent=UE'), 'the file content is not recorded');
    for (const bad of ['bad_signature', 'system_error', 'http_500', 'rogue_chain'] as const) {
      fake.script('bill', bad);
      await assert.rejects(() => channel.downloadBill!(billCtx, { date, payType: 'unionpay' }), bad);
    }
    await assert.rejects(() => channel.downloadBill!(billCtx, { date, payType: 'alipay' }));
  });

  it('a broken configuration never pays', async () => {
    const broken = { ...ctx, merchant: { ...ctx.merchant, sign_key_pem: 'garbage' } };
    const p = await channel.precreate!(broken, {
      outTradeNo: no(),
      payType: 'unionpay',
      amountFen: fen(1),
      subject: 'x',
      expiresAt: new Date(Date.now() + 60_000),
    });
    assert.equal(p.kind === 'failed' && p.code, 'CHANNEL_CONFIG_INVALID');
    const r = await channel.barcodePay(broken, {
      outTradeNo: no(),
      payType: 'unionpay',
      amountFen: fen(1),
      authCode: code(),
      subject: 'x',
    });
    assert.equal(r.kind, 'declined');
    assert.equal((await channel.query(broken, ref(no()))).kind, 'unknown');
  });

  it('our request refused for its signature (respCode 11) is a decline, never success', async () => {
    const other = unionPayCerts();
    const wrongKey = { ...ctx, merchant: { ...ctx.merchant, sign_key_pem: other.signKey } };
    const r = await channel.barcodePay(wrongKey, {
      outTradeNo: no(),
      payType: 'unionpay',
      amountFen: fen(1),
      authCode: code(),
      subject: 'x',
    });
    assert.equal(r.kind, 'declined', JSON.stringify(r));
    if (r.kind === 'declined') assert.equal(r.code, 'UNIONPAY_11');
  });

  // ---- with the stored facts the services pass (trade created_at, channel_trade_no, refund created_at) ----

  /** A Beijing yyyyMMddHHmmss written out here, apart from the adapter's own helper. */
  const beijing = (d: Date) =>
    new Date(d.getTime() + 8 * 3_600_000).toISOString().replace(/\D/g, '').slice(0, 14);
  const payAt = (outTradeNo: string, createdAt: Date, amountFen = 1000) =>
    channel.barcodePay(ctx, {
      outTradeNo,
      payType: 'unionpay',
      amountFen: fen(amountFen),
      authCode: code(),
      subject: '门诊',
      createdAt,
    });
  const sentSince = (from: number) => fake.received().slice(from);

  it('the consume is sent with the trade’s creation second (Beijing), not midnight', async () => {
    const o = no();
    const createdAt = new Date(Date.now() - 1_234);
    assert.equal((await payAt(o, createdAt)).kind, 'paid');
    const sent = fake.received().filter((x) => x.fields['orderId'] === o);
    assert.deepEqual(
      sent.map((x) => [x.op, x.fields['txnTime']]),
      [
        ['pay', beijing(createdAt)],
        ['query', beijing(createdAt)],
      ],
    );
  });

  it('given the creation time, a query finds the payment with one question', async () => {
    const waiting = no();
    const createdAt = new Date();
    fake.script('pay', 'paying');
    assert.equal((await payAt(waiting, createdAt)).kind, 'paying');
    let from = fake.received().length;
    assert.equal((await channel.query(ctx, { ...ref(waiting), createdAt })).kind, 'waiting');
    assert.deepEqual(
      sentSince(from).map((x) => [x.op, x.fields['orderId'], x.fields['txnTime']]),
      [['query', waiting, beijing(createdAt)]],
    );

    // Paid: the payment (one question), then our cancel order at the payment's txnTime.
    const paid = no();
    await payAt(paid, createdAt);
    from = fake.received().length;
    assert.equal((await channel.query(ctx, { ...ref(paid), createdAt })).kind, 'paid');
    assert.deepEqual(
      sentSince(from).map((x) => [x.fields['orderId'], x.fields['txnTime']]),
      [
        [paid, beijing(createdAt)],
        [cancelOrderId(paid), beijing(createdAt)],
      ],
    );

    // A cancel finds it the same way, and is sent with the payment's txnTime; query then sees it.
    from = fake.received().length;
    assert.equal((await channel.cancel(ctx, { ...ref(paid), createdAt })).kind, 'refunded');
    assert.deepEqual(
      sentSince(from).map((x) => [x.op, x.fields['txnTime']]),
      [
        ['query', beijing(createdAt)],
        ['query', beijing(createdAt)],
        ['cancel', beijing(createdAt)],
        ['query', beijing(createdAt)],
      ],
    );
    assert.equal((await channel.query(ctx, { ...ref(paid), createdAt })).kind, 'refunded');
  });

  it('upgrade: a payment sent by the midnight convention is still found, through the fallback', async () => {
    const o = no();
    const createdAt = new Date();
    assert.equal((await pay(o)).kind, 'paid', 'sent without a creation time: txnTime yyyyMMdd000000');
    const from = fake.received().length;
    assert.equal((await channel.query(ctx, { ...ref(o), createdAt })).kind, 'paid');
    const asked = sentSince(from).map((x) => x.fields['txnTime']);
    assert.equal(asked[0], beijing(createdAt), 'the exact time first');
    assert.equal(asked[1], dayTxnTime(createdAt), 'then the creation day’s midnight, where it is');
    // A refund of it, given the creation time but no stored queryId, finds it the same way.
    const r = await channel.refund(ctx, {
      ...ref(o),
      createdAt,
      requestedAt: new Date(),
      outRequestNo: 'R1',
      amountFen: fen(100),
      totalFen: fen(1000),
    });
    assert.equal(r.kind, 'success', JSON.stringify(r));
    assert.equal(fake.trade(o)?.refundedFen, 100);
  });

  it('a refund with an unknown outcome, repeated 3 days later, finds the first refund order: no second refund', async () => {
    const o = no();
    const createdAt = new Date();
    const paid = await payAt(o, createdAt, 1000);
    assert.equal(paid.kind, 'paid');
    const channelTradeNo = paid.kind === 'paid' ? paid.channelTradeNo : '';
    const requestedAt = new Date();
    const input = {
      ...ref(o),
      createdAt,
      channelTradeNo,
      requestedAt,
      outRequestNo: 'R1',
      amountFen: fen(300),
      totalFen: fen(1000),
    };
    // Processed by UnionPay, but the answer cannot be believed: unknown.
    fake.script('refund', 'bad_signature');
    let from = fake.received().length;
    assert.equal((await channel.refund(ctx, input)).kind, 'unknown');
    const first = sentSince(from);
    assert.ok(
      !first.some((x) => x.op === 'query' && x.fields['orderId'] === o),
      'the stored queryId is used: no look for the payment',
    );
    const sent = first.find((x) => x.op === 'refund');
    assert.equal(sent?.fields['origQryId'], channelTradeNo);
    assert.equal(sent?.fields['txnTime'], beijing(requestedAt), 'sent with the first request’s second');

    clockOffset = 3 * 86_400_000;
    try {
      from = fake.received().length;
      const again = await channel.refund(ctx, input);
      assert.equal(again.kind, 'success', JSON.stringify(again));
      assert.deepEqual(
        sentSince(from).map((x) => [x.op, x.fields['orderId'], x.fields['txnTime']]),
        [['query', refundOrderId(o, 'R1'), beijing(requestedAt)]],
        'one exact question',
      );
    } finally {
      clockOffset = 0;
    }
    assert.equal(fake.received().filter((x) => x.op === 'refund' && x.fields['reqReserved'] === o).length, 1);
    assert.equal(fake.trade(o)?.refundedFen, 300, 'refunded once');
  });

  it('upgrade: a refund first sent by the midnight convention is found by a repeat days later', async () => {
    const o = no();
    await pay(o, 1000);
    const requestedAt = new Date();
    const base = { ...ref(o), outRequestNo: 'R1', amountFen: fen(400), totalFen: fen(1000) };
    fake.script('refund', 'bad_signature');
    assert.equal((await channel.refund(ctx, base)).kind, 'unknown', 'sent by the previous version');
    clockOffset = 3 * 86_400_000;
    try {
      const again = await channel.refund(ctx, { ...base, createdAt: requestedAt, requestedAt });
      assert.equal(again.kind, 'success', JSON.stringify(again));
    } finally {
      clockOffset = 0;
    }
    assert.equal(fake.received().filter((x) => x.op === 'refund' && x.fields['reqReserved'] === o).length, 1);
    assert.equal(fake.trade(o)?.refundedFen, 400);
  });

  it('a refund whose first attempt never reached UnionPay is sent later with its first request time', async () => {
    const o = no();
    const createdAt = new Date();
    const paid = await payAt(o, createdAt, 500);
    const channelTradeNo = paid.kind === 'paid' ? paid.channelTradeNo : '';
    const requestedAt = new Date();
    const input = {
      ...ref(o),
      createdAt,
      channelTradeNo,
      requestedAt,
      outRequestNo: 'R1',
      amountFen: fen(200),
      totalFen: fen(500),
    };
    fake.script('refund', 'timeout');
    assert.equal((await channel.refund(ctx, input)).kind, 'unknown');
    clockOffset = 86_400_000;
    try {
      assert.equal((await channel.refund(ctx, input)).kind, 'success');
    } finally {
      clockOffset = 0;
    }
    const sent = fake.received().filter((x) => x.op === 'refund' && x.fields['reqReserved'] === o);
    assert.deepEqual(
      sent.map((x) => x.fields['txnTime']),
      [beijing(requestedAt), beijing(requestedAt)],
    );
    assert.equal(fake.trade(o)?.refundedFen, 200);
  });

  it('records: every call, redacted', () => {
    const text = JSON.stringify(ctx.calls);
    assert.ok(ctx.calls.some((c) => c.operation === 'unionpay.consume'));
    assert.ok(ctx.calls.some((c) => c.operation === 'unionpay.query'));
    assert.ok(ctx.calls.some((c) => c.operation === 'unionpay.refund'));
    assert.ok(ctx.calls.some((c) => c.operation === 'unionpay.cancel'));
    assert.ok(ctx.calls.some((c) => c.operation === 'unionpay.notify'));
    assert.ok(!/qrNo=62/.test(text), 'no payment code');
    assert.ok(!text.includes('6216261000000000018'), 'card numbers masked');
    assert.ok(!text.includes('BEGIN CERTIFICATE'), 'no certificates');
    assert.ok(!/signature=/.test(text), 'no signatures');
  });
});
