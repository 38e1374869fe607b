/**
 * Conformance target: the UnionPay QuickPass adapter against the fake UnionPay gateway
 * (test/fakes/unionpay-server.ts), with its own throwaway certificate chain.
 */
import crypto from 'node:crypto';
import { conformanceContext, type ConformanceTarget } from '../suite.js';
import { unionpayDefinition } from '../../../src/channels/unionpay/definition.js';
import { httpRequest } from '../../../src/channels/http.js';
import { systemClock } from '../../../src/domain/clock.js';
import { startFakeUnionPay } from '../../fakes/unionpay-server.js';

const TIMEOUT_MS = 800;

export const target: ConformanceTarget = {
  id: 'unionpay',
  payType: 'unionpay',
  // No close: acp has no close for a consume (a QR order lapses at its payTimeout; 撤销 only reverses a paid one).
  supports: {
    barcode: true,
    precreate: true,
    cancel: true,
    close: false,
    refund: true,
    notify: true,
    wap: true,
    bill: true,
  },
  timeoutMs: TIMEOUT_MS,
  // A UnionPay QuickPass payment code: 19 digits starting with 62.
  authCode: () =>
    `62${String(crypto.randomInt(0, 10 ** 9)).padStart(9, '0')}${String(crypto.randomInt(0, 10 ** 8)).padStart(8, '0')}`,
  async start() {
    const fake = await startFakeUnionPay();
    const channel = unionpayDefinition.create({ http: httpRequest, clock: systemClock, simulator: null });
    const ctx = conformanceContext(
      {
        mer_id: fake.merId,
        sign_key_pem: fake.certs.merchantKey,
        sign_cert_pem: fake.certs.merchantCert,
        root_cert: fake.certs.root,
        middle_cert: fake.certs.middle,
        gateway_url: fake.url,
        file_url: `${fake.url}/`,
        timeout_ms: String(TIMEOUT_MS),
      },
      'https://hospay.example/channels/unionpay/notify/APP1',
    );
    return { channel, ctx, fake };
  },
};
