/**
 * Live check of the WeChat Pay adapter against WeChat Pay itself (npm run test:remote; never part of `npm test`).
 * WeChat Pay v3 has no sandbox: this runs against the real API with a real merchant, and only opens a 0.01-yuan
 * native (QR) order that nobody pays, queries it and closes it. No money moves.
 *
 * Settings (PEM values may be given as a file path):
 *   HOSPAY_WECHAT_MCH_ID, HOSPAY_WECHAT_APP_ID, HOSPAY_WECHAT_API_V3_KEY, HOSPAY_WECHAT_PRIVATE_KEY,
 *   HOSPAY_WECHAT_SERIAL_NO, and either HOSPAY_WECHAT_PUBLIC_KEY + HOSPAY_WECHAT_PUBLIC_KEY_ID
 *   or HOSPAY_WECHAT_PLATFORM_CERTS; optional HOSPAY_WECHAT_BASE_URL, HOSPAY_WECHAT_NOTIFY_URL.
 * Service-provider mode (服务商): HOSPAY_WECHAT_MODE=partner with HOSPAY_WECHAT_SUB_MCHID (and optionally
 *   HOSPAY_WECHAT_SUB_APPID); MCH_ID/APP_ID/keys are then the provider's.
 * JSAPI (in-app): with HOSPAY_WECHAT_OPENID (a payer's openid under APP_ID, or under SUB_APPID when set) a
 *   0.01-yuan JSAPI order is opened, its bridge parameters checked for shape, then it is closed unpaid.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { wechatDefinition } from '../../src/channels/wechat/definition.js';
import { checkChannelConfig, withDefaults } from '../../src/channels/definition.js';
import { httpRequest } from '../../src/channels/http.js';
import { systemClock } from '../../src/domain/clock.js';
import { conformanceContext } from '../conformance/suite.js';
import { fen } from '../../src/domain/money.js';

const env = (k: string) => process.env[`HOSPAY_WECHAT_${k}`] ?? '';
const pem = (k: string) => {
  const v = env(k);
  return v !== '' && !v.includes('-----BEGIN') && fs.existsSync(v) ? fs.readFileSync(v, 'utf8') : v;
};

const required = ['MCH_ID', 'APP_ID', 'API_V3_KEY', 'PRIVATE_KEY', 'SERIAL_NO'];
const platformMode = env('PLATFORM_CERTS') !== '';
const missing = [
  ...required.filter((k) => env(k) === ''),
  ...(platformMode ? [] : ['PUBLIC_KEY', 'PUBLIC_KEY_ID'].filter((k) => env(k) === '')),
].map((k) => `HOSPAY_WECHAT_${k}`);

describe(
  'WeChat Pay live: native precreate, query, close',
  {
    skip: missing.length ? `not configured: set ${missing.join(', ')}` : false,
  },
  () => {
    it('opens a 0.01 QR order, finds it unpaid, closes it', async () => {
      const merchant: Record<string, string> = {
        mch_id: env('MCH_ID'),
        app_id: env('APP_ID'),
        api_v3_key: env('API_V3_KEY'),
        merchant_private_key: pem('PRIVATE_KEY'),
        merchant_serial_no: env('SERIAL_NO'),
        ...(platformMode
          ? { verify_mode: 'platform_cert', platform_certs: pem('PLATFORM_CERTS') }
          : { wechatpay_public_key: pem('PUBLIC_KEY'), wechatpay_public_key_id: env('PUBLIC_KEY_ID') }),
        ...(env('BASE_URL') ? { api_base_url: env('BASE_URL') } : {}),
        ...(env('MODE') === 'partner'
          ? {
              mode: 'partner',
              sub_mchid: env('SUB_MCHID'),
              ...(env('SUB_APPID') ? { sub_appid: env('SUB_APPID') } : {}),
            }
          : {}),
      };
      assert.deepEqual(checkChannelConfig(wechatDefinition.fields, merchant), []);
      const channel = wechatDefinition.create({ http: httpRequest, clock: systemClock, simulator: null });
      const ctx = conformanceContext(
        withDefaults(wechatDefinition.fields, merchant),
        env('NOTIFY_URL') || 'https://hospay.example/channels/wechat/notify/REMOTE',
      );
      const outTradeNo = `HPLIVE${Date.now()}`;
      const ref = { outTradeNo, payType: 'weixin' as const };
      try {
        const p = await channel.precreate!(ctx, {
          outTradeNo,
          payType: 'weixin',
          amountFen: fen(1),
          subject: 'hospay 接口联调（请勿支付）',
          expiresAt: new Date(Date.now() + 10 * 60_000),
        });
        assert.equal(p.kind, 'created', JSON.stringify(p));
        if (p.kind === 'created') assert.match(p.codeUrl, /^weixin:\/\//);
        const q = await channel.query(ctx, ref);
        assert.equal(q.kind, 'waiting', JSON.stringify(q));
        const c = await channel.close(ctx, ref);
        assert.equal(c.kind, 'closed', JSON.stringify(c));
        assert.equal((await channel.query(ctx, ref)).kind, 'closed');
        if (env('OPENID')) {
          const jsapiNo = `HPLIVEJ${Date.now()}`;
          const j = await channel.inAppPay!(ctx, {
            outTradeNo: jsapiNo,
            payType: 'weixin',
            amountFen: fen(1),
            subject: 'hospay 接口联调（请勿支付）',
            expiresAt: new Date(Date.now() + 10 * 60_000),
            payerId: env('OPENID'),
          });
          assert.equal(j.kind, 'created', JSON.stringify(j));
          if (j.kind === 'created') {
            assert.deepEqual(Object.keys(j.bridge).sort(), [
              'appId',
              'nonceStr',
              'package',
              'paySign',
              'signType',
              'timeStamp',
            ]);
            assert.match(j.bridge['package'] ?? '', /^prepay_id=wx\w+$/);
          }
          const jc = await channel.close(ctx, { outTradeNo: jsapiNo, payType: 'weixin' });
          assert.equal(jc.kind, 'closed', JSON.stringify(jc));
        }
      } finally {
        for (const call of ctx.calls)
          console.log(`${call.operation} ${call.httpStatus ?? '-'} ${call.latencyMs} ms → ${call.outcome}`); // eslint-disable-line no-console
      }
    });
  },
);
