/**
 * The Alipay adapter against the fake Alipay gateway (test/fakes/alipay-server.ts), public-key mode, RSA2,
 * the app key given as a PKCS#1 PEM. Two targets:
 *  - direct: the hospital's own app (app_id, key and Alipay's public key per app);
 *  - third-party app (ISV): the service provider's app credentials set once for the platform, merged (as the
 *    platform merges them: services/channel-config.ts mergeChannelConfig) under an app configuration holding only
 *    the hospital's app_auth_token and auth_app_id; the fake knows that token and answers for that hospital.
 * Certificate mode runs in test/unit/channels/alipay.test.ts.
 */
import { generateKeyPairSync, randomBytes, randomInt } from 'node:crypto';
import { conformanceContext, type ConformanceTarget } from '../suite.js';
import { alipayDefinition } from '../../../src/channels/alipay/definition.js';
import { checkChannelConfig, withDefaults } from '../../../src/channels/definition.js';
import { httpRequest } from '../../../src/channels/http.js';
import { systemClock } from '../../../src/domain/clock.js';
import { mergeChannelConfig } from '../../../src/services/channel-config.js';
import { startAlipayFake } from '../../fakes/alipay-server.js';

const APP_ID = '2021000000000001';
const ISV_APP_ID = '2021000000000999';
const HOSPITAL_APP_ID = '2021000000000777';
const TIMEOUT_MS = 800;

const base = {
  id: 'alipay',
  payType: 'alipay',
  supports: {
    barcode: true,
    precreate: true,
    cancel: true,
    close: true,
    refund: true,
    notify: true,
    wap: true,
    bill: true,
  },
  timeoutMs: TIMEOUT_MS,
  // An Alipay payment code: 25–30 then 16 more digits (18 in all).
  authCode: () => `28${Array.from({ length: 16 }, () => randomInt(10)).join('')}`,
} as const satisfies Partial<ConformanceTarget>;

const direct: ConformanceTarget = {
  ...base,
  label: 'direct',
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

const isv: ConformanceTarget = {
  ...base,
  label: 'third-party app (app_auth_token)',
  async start() {
    const isvKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const token = `202401BB${randomBytes(16).toString('hex')}`;
    const fake = await startAlipayFake({
      appId: ISV_APP_ID,
      appPublicKey: isvKey.publicKey,
      appAuthTokens: {
        [token]: HOSPITAL_APP_ID,
        [`202401BB${randomBytes(16).toString('hex')}`]: '2021000000000888',
      },
    });
    const platform = {
      app_id: ISV_APP_ID,
      private_key: isvKey.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
      sign_type: 'RSA2',
      key_mode: 'public_key',
      alipay_public_key: fake.alipayPublicKey,
      gateway_url: fake.gatewayUrl,
      timeout_ms: String(TIMEOUT_MS),
    };
    const app = { app_auth_token: token, auth_app_id: HOSPITAL_APP_ID };
    const merged = mergeChannelConfig(alipayDefinition.fields, platform, app);
    const problems = checkChannelConfig(alipayDefinition.fields, merged);
    if (problems.length) throw new Error(`test configuration refused: ${JSON.stringify(problems)}`);
    const ctx = conformanceContext(withDefaults(alipayDefinition.fields, merged));
    const channel = alipayDefinition.create({ http: httpRequest, clock: systemClock, simulator: null });
    const requests = fake.requests.bind(fake);
    return {
      channel,
      ctx,
      // The suite's "correctly signed" also means: for this hospital (the fake knew its token).
      fake: Object.assign(fake, {
        requests: () =>
          requests().map((r) => ({
            ...r,
            signatureValid: r.signatureValid && r.authAppId === HOSPITAL_APP_ID,
          })),
      }),
    };
  },
};

export const targets: ConformanceTarget[] = [direct, isv];
