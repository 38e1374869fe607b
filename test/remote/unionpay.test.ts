/**
 * Live check of the UnionPay QuickPass adapter against UnionPay's gateway (npm run test:remote; never part of
 * `npm test`). Meant for UnionPay's test environment (gateway.test.95516.com, owner 00040000:SIGN), with the
 * test merchant's certificates from open.unionpay.com.
 *
 * Without a payment code it only asks for an order that does not exist: UnionPay must accept our signature
 * (certId) and answer "34 查无此交易", signed by a certificate that chains to the configured root and middle
 * certificates and names the expected owner. With HOSPAY_UNIONPAY_QR_NO (a fresh payment code from the
 * test environment's app) it also pays 0.01 yuan, queries the payment and cancels it.
 *
 * Settings (PEM values may be given as a file path):
 *   HOSPAY_UNIONPAY_MER_ID, HOSPAY_UNIONPAY_SIGN_KEY_PEM, HOSPAY_UNIONPAY_SIGN_CERT_PEM,
 *   HOSPAY_UNIONPAY_ROOT_CERT, HOSPAY_UNIONPAY_MIDDLE_CERT; optional HOSPAY_UNIONPAY_GATEWAY_URL (default
 *   https://gateway.test.95516.com), HOSPAY_UNIONPAY_EXPECTED_CN (default 00040000:SIGN),
 *   HOSPAY_UNIONPAY_QR_NO, HOSPAY_UNIONPAY_NOTIFY_URL.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { unionpayDefinition } from '../../src/channels/unionpay/definition.js';
import { checkChannelConfig, withDefaults } from '../../src/channels/definition.js';
import { httpRequest } from '../../src/channels/http.js';
import { systemClock } from '../../src/domain/clock.js';
import { conformanceContext } from '../conformance/suite.js';
import { fen } from '../../src/domain/money.js';

const env = (k: string) => process.env[`HOSPAY_UNIONPAY_${k}`] ?? '';
const pem = (k: string) => {
  const v = env(k);
  return v !== '' && !v.includes('-----BEGIN') && fs.existsSync(v) ? fs.readFileSync(v, 'utf8') : v;
};

const missing = ['MER_ID', 'SIGN_KEY_PEM', 'SIGN_CERT_PEM', 'ROOT_CERT', 'MIDDLE_CERT']
  .filter((k) => env(k) === '')
  .map((k) => `HOSPAY_UNIONPAY_${k}`);

describe(
  'UnionPay QuickPass live: signed query (and, with a payment code, pay / query / cancel)',
  { skip: missing.length ? `not configured: set ${missing.join(', ')}` : false },
  () => {
    const merchant = () =>
      withDefaults(unionpayDefinition.fields, {
        mer_id: env('MER_ID'),
        sign_key_pem: pem('SIGN_KEY_PEM'),
        sign_cert_pem: pem('SIGN_CERT_PEM'),
        root_cert: pem('ROOT_CERT'),
        middle_cert: pem('MIDDLE_CERT'),
        gateway_url: env('GATEWAY_URL') || 'https://gateway.test.95516.com',
        expected_cn: env('EXPECTED_CN') || '00040000:SIGN',
      });
    const setup = () => {
      const values = merchant();
      assert.deepEqual(
        checkChannelConfig(unionpayDefinition.fields, values),
        [],
        'the configuration is accepted',
      );
      const channel = unionpayDefinition.create({ http: httpRequest, clock: systemClock, simulator: null });
      const ctx = conformanceContext(
        values,
        env('NOTIFY_URL') || 'https://hospay.example/channels/unionpay/notify/REMOTE',
      );
      return { channel, ctx };
    };
    const orderNo = () => `HPREMOTE${Date.now()}`;

    it('an order that does not exist is not_found: our signature accepted, the answer verified', async () => {
      const { channel, ctx } = setup();
      const q = await channel.query(ctx, { outTradeNo: orderNo(), payType: 'unionpay' });
      assert.equal(q.kind, 'not_found', `${JSON.stringify(q)}\n${JSON.stringify(ctx.calls, null, 2)}`);
    });

    it(
      'pays 0.01 with a payment code, finds it, cancels it',
      { skip: env('QR_NO') === '' && 'set HOSPAY_UNIONPAY_QR_NO to a fresh test payment code' },
      async () => {
        const { channel, ctx } = setup();
        const no = orderNo();
        // As the platform calls it: the trade's creation time, sent as the consume's txnTime.
        const createdAt = new Date();
        const ref = { outTradeNo: no, payType: 'unionpay' as const, createdAt };
        const paid = await channel.barcodePay(ctx, {
          outTradeNo: no,
          payType: 'unionpay',
          amountFen: fen(1),
          authCode: env('QR_NO'),
          subject: 'hospay remote test',
          createdAt,
        });
        assert.ok(paid.kind === 'paid' || paid.kind === 'paying', JSON.stringify(paid));
        let q = await channel.query(ctx, ref);
        for (let i = 0; i < 6 && q.kind === 'waiting'; i++) {
          await new Promise((r) => setTimeout(r, 5_000));
          q = await channel.query(ctx, ref);
        }
        assert.ok(q.kind === 'paid' || q.kind === 'closed', JSON.stringify(q));
        const c = await channel.cancel(ctx, ref);
        assert.equal(c.kind, q.kind === 'paid' ? 'refunded' : 'closed', JSON.stringify(c));
        const text = JSON.stringify(ctx.calls);
        assert.ok(!text.includes(env('QR_NO')), 'the payment code reached a call record');
      },
    );
  },
);
