/**
 * Conformance targets: the WeChat Pay adapter against the fake WeChat Pay (test/fakes/wechat-server.ts), over
 * HTTPS with a throwaway CA, the merchant's client certificate for the v2 reverse, answers verified with the
 * "WeChat Pay public key". Two configurations run the whole suite: a direct merchant (普通商户), and a
 * sub-merchant of a service provider (服务商 mode partner, with its own sub_appid, so that the payer's openid is
 * the sub_appid's and the bridge names sub_appid).
 */
import crypto from 'node:crypto';
import { wechatDefinition } from '../../../src/channels/wechat/definition.js';
import { checkChannelConfig, withDefaults } from '../../../src/channels/definition.js';
import { httpRequest, type HttpClient } from '../../../src/channels/http.js';
import { systemClock } from '../../../src/domain/clock.js';
import { conformanceContext, type ConformanceTarget } from '../suite.js';
import { makeWechatMaterial, startWechatFake, type WechatFake } from '../../fakes/wechat-server.js';

const TIMEOUT_MS = 1000;

const authCode = () =>
  `13${String(crypto.randomInt(1e8)).padStart(8, '0')}${String(crypto.randomInt(1e8)).padStart(8, '0')}`;

interface Variant {
  label?: string;
  /** Service-provider mode: the sub-merchant and its own official account. */
  partner?: { subMchId: string; subAppId: string };
}

function wechatTarget(v: Variant): ConformanceTarget {
  let fake: WechatFake | undefined;
  // The official account the payer opens the cashier in: the sub-merchant's own in partner mode.
  const mchId = '1900000109';
  const appId = 'wx8888888888888888';
  const payerAppId = v.partner?.subAppId ?? appId;
  return {
    id: 'wechat',
    ...(v.label ? { label: v.label } : {}),
    payType: 'weixin',
    supports: {
      barcode: true,
      precreate: true,
      cancel: true,
      close: true,
      refund: true,
      notify: true,
      wap: true,
      inApp: true,
      bill: true,
    },
    timeoutMs: TIMEOUT_MS,
    authCode,
    payerId: () => {
      if (!fake) throw new Error('start() first');
      return fake.openidFor(payerAppId, 'conformance-payer');
    },
    async start() {
      const apiV3Key = crypto.randomBytes(16).toString('hex');
      const apiV2Key = crypto.randomBytes(16).toString('hex');
      const appSecret = crypto.randomBytes(16).toString('hex');
      const material = makeWechatMaterial(mchId);
      fake = await startWechatFake({
        mchId,
        appId,
        apiV3Key,
        apiV2Key,
        signTypeV2: 'HMAC-SHA256',
        material,
        mode: 'public_key',
        tls: true,
        refundImmediate: false,
        oauthApps: { [payerAppId]: appSecret },
        oauthDomains: ['hospay.example'],
        ...(v.partner ? { partner: v.partner } : {}),
      });
      const merchant: Record<string, string> = {
        mch_id: mchId,
        app_id: appId,
        api_v3_key: apiV3Key,
        api_v2_key: apiV2Key,
        merchant_private_key: material.merchantKey,
        merchant_serial_no: material.merchantSerial,
        wechatpay_public_key: material.wechatPublicKey,
        wechatpay_public_key_id: material.wechatPublicKeyId,
        client_cert_p12: material.merchantP12Base64,
        api_base_url: fake.url,
        oauth_base_url: fake.url,
        sns_base_url: fake.url,
        timeout_ms: String(TIMEOUT_MS),
        ...(v.partner
          ? {
              mode: 'partner',
              sub_mchid: v.partner.subMchId,
              sub_appid: v.partner.subAppId,
              sub_app_secret: appSecret,
            }
          : { app_secret: appSecret }),
      };
      const problems = checkChannelConfig(wechatDefinition.fields, merchant);
      if (problems.length) throw new Error(`test configuration refused: ${JSON.stringify(problems)}`);
      // The fake's certificate comes from the test CA: trust it, as a deployment trusts the public roots.
      const http: HttpClient = (req) => httpRequest({ ...req, tls: { ...req.tls, ca: material.caCert } });
      const channel = wechatDefinition.create({ http, clock: systemClock, simulator: null });
      const ctx = conformanceContext(
        withDefaults(wechatDefinition.fields, merchant),
        'https://hospay.example/channels/wechat/notify/APP1',
      );
      return { channel, ctx, fake };
    },
  };
}

export const targets: ConformanceTarget[] = [
  wechatTarget({}),
  wechatTarget({
    label: 'service provider (服务商 partner mode)',
    partner: { subMchId: '1900000209', subAppId: 'wxd678efh567hg6999' },
  }),
];
