import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyPairKeyObjectResult } from 'node:crypto';
import { startAlipayFake, type AlipayFake } from '../fakes/alipay-server.js';
import { startFakeUnionPay, type FakeUnionPay } from '../fakes/unionpay-server.js';
import { startTestPlatform, type TestPlatform } from './platform.js';

/** The test platform beside a fake Alipay gateway (test/fakes/alipay-server.ts). */
export interface PlatformWithFakeAlipay {
  t: TestPlatform;
  fake: AlipayFake;
  /** The app id the fake knows the test app by at Alipay. */
  alipayAppId: string;
  /** The test app's key pair at Alipay (the fake holds its public half). */
  appKey: KeyPairKeyObjectResult;
  /** The values of the test app's Alipay channel configuration (PUT /admin/apps/:id/channels/alipay). */
  alipayValues: () => Record<string, string>;
  /** Configures the test app's Alipay channel against the fake, through the admin API, and maps `alipay` to it. */
  useAlipay: () => Promise<void>;
  close: () => Promise<void>;
}

/** Starts the test platform (with `env`) and a fake Alipay gateway; the app still uses the simulator. */
export async function startPlatformWithFakeAlipay(o: {
  alipayAppId: string;
  env?: Record<string, string>;
}): Promise<PlatformWithFakeAlipay> {
  const appKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const t = await startTestPlatform(o.env ? { env: o.env } : {});
  const fake = await startAlipayFake({ appId: o.alipayAppId, appPublicKey: appKey.publicKey });
  const alipayValues = () => ({
    app_id: o.alipayAppId,
    private_key: appKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    sign_type: 'RSA2',
    alipay_public_key: fake.alipayPublicKey,
    gateway_url: fake.gatewayUrl,
    timeout_ms: '3000',
  });
  return {
    t,
    fake,
    alipayAppId: o.alipayAppId,
    appKey,
    alipayValues,
    async useAlipay() {
      const set = await t.admin('PUT', `/admin/apps/${t.appId}/channels/alipay`, { values: alipayValues() });
      assert.equal(set.status, 200, JSON.stringify(set.data));
      const use = await t.admin('PUT', `/admin/apps/${t.appId}/channel-map`, {
        pay_type: 'alipay',
        channel: 'alipay',
      });
      assert.equal(use.status, 200, JSON.stringify(use.data));
    },
    async close() {
      await fake.close();
      await t.close();
    },
  };
}

/**
 * Maps the test platform's app's unionpay pay type to the real UnionPay adapter, configured through the admin API
 * to talk to a fresh fake UnionPay gateway that books by the platform's clock. The fake's certificates are valid
 * from the moment they are made, so the platform's clock is set after that: to now, plus `clockAheadMs`.
 */
export async function useFakeUnionPay(t: TestPlatform, clockAheadMs = 0): Promise<FakeUnionPay> {
  const fake = await startFakeUnionPay({ now: () => t.clock.now() });
  t.clock.set(new Date(Date.now() + clockAheadMs));
  const set = await t.admin('PUT', `/admin/apps/${t.appId}/channels/unionpay`, {
    values: {
      mer_id: fake.merId,
      sign_key_pem: fake.certs.merchantKey,
      sign_cert_pem: fake.certs.merchantCert,
      root_cert: fake.certs.root,
      middle_cert: fake.certs.middle,
      gateway_url: fake.url,
      file_url: `${fake.url}/`,
      timeout_ms: '3000',
    },
  });
  assert.equal(set.status, 200, JSON.stringify(set.data));
  const use = await t.admin('PUT', `/admin/apps/${t.appId}/channel-map`, {
    pay_type: 'unionpay',
    channel: 'unionpay',
  });
  assert.equal(use.status, 200, JSON.stringify(use.data));
  return fake;
}
