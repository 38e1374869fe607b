/**
 * The Alipay adapter against the fake Alipay gateway (test/fakes/alipay-server.ts), public-key mode, RSA2,
 * the app key given as a PKCS#1 PEM. Certificate mode runs in test/unit/channels/alipay.test.ts.
 */
import { generateKeyPairSync, randomInt } from 'node:crypto';
import { conformanceContext, type ConformanceTarget } from '../suite.js';
import { alipayDefinition } from '../../../src/channels/alipay/definition.js';
import { httpRequest } from '../../../src/channels/http.js';
import { systemClock } from '../../../src/domain/clock.js';
import { startAlipayFake } from '../../fakes/alipay-server.js';

const APP_ID = '2021000000000001';
const TIMEOUT_MS = 800;

export const target: ConformanceTarget = {
  id: 'alipay',
  payType: 'alipay',
  supports: { barcode: true, precreate: true, cancel: true, close: true, refund: true, notify: true },
  timeoutMs: TIMEOUT_MS,
  // An Alipay payment code: 25–30 then 16 more digits (18 in all).
  authCode: () => `28${Array.from({ length: 16 }, () => randomInt(10)).join('')}`,
  async start() {
    const app = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const fake = await startAlipayFake({ appId: APP_ID, appPublicKey: app.publicKey });
    const ctx = conformanceContext({
      app_id: APP_ID,
      private_key: app.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
      sign_type: 'RSA2',
      key_mode: 'public_key',
      alipay_public_key: fake.alipayPublicKey,
      gateway_url: fake.gatewayUrl,
      timeout_ms: String(TIMEOUT_MS),
    });
    const channel = alipayDefinition.create({ http: httpRequest, clock: systemClock, simulator: null });
    return { channel, ctx, fake };
  },
};
