/**
 * Live check of the national medical-insurance mobile-payment adapter against a region's test gateway (npm run
 * test:remote; never part of `npm test`). The credentials come from the region's onboarding (渠道应用编号,
 * 应用密钥, the institution's SM2 key pair, the platform's SM2 public key, the gateway and its paths).
 *
 * Without a payment authorisation it only reverses a settlement that does not exist: the centre must accept our
 * envelope and answer with a refusal signed by the platform's key (a `failed` outcome, not an unreadable
 * `retry`). With HOSPAY_NHSA_PAY_AUTH_NO (a fresh payAuthNo from the region's test app, for a test patient) it
 * also settles a 0.01 yuan insurance-only order (6201, 6202) and reverses it (6301, 6203).
 *
 * Settings: HOSPAY_NHSA_APP_ID, HOSPAY_NHSA_APP_SECRET, HOSPAY_NHSA_ORG_CODE, HOSPAY_NHSA_ORG_NAME,
 *   HOSPAY_NHSA_PLATFORM_PUBLIC_KEY, HOSPAY_NHSA_ORG_PRIVATE_KEY, HOSPAY_NHSA_API_BASE_URL, HOSPAY_NHSA_AUTH_URL,
 *   HOSPAY_NHSA_PATH_TOKEN, HOSPAY_NHSA_CITY_CODE; optional HOSPAY_NHSA_<FIELD> for any other field of the
 *   definition (e.g. HOSPAY_NHSA_SM2_USER_ID, HOSPAY_NHSA_PATH_6201, HOSPAY_NHSA_INTERFACE_EXTRA) and
 *   HOSPAY_NHSA_PAY_AUTH_NO.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nhsaDefinition } from '../../src/channels/nhsa/definition.js';
import { checkChannelConfig, withDefaults } from '../../src/channels/definition.js';
import { httpRequest } from '../../src/channels/http.js';
import { systemClock } from '../../src/domain/clock.js';
import type { ChannelCall, ChannelContext } from '../../src/channels/channel.js';
import { fen } from '../../src/domain/money.js';

const env = (k: string) => process.env[`HOSPAY_NHSA_${k}`] ?? '';

const REQUIRED = [
  'APP_ID',
  'APP_SECRET',
  'ORG_CODE',
  'ORG_NAME',
  'PLATFORM_PUBLIC_KEY',
  'ORG_PRIVATE_KEY',
  'API_BASE_URL',
  'AUTH_URL',
  'PATH_TOKEN',
  'CITY_CODE',
];
const missing = REQUIRED.filter((k) => env(k) === '').map((k) => `HOSPAY_NHSA_${k}`);

describe(
  'national medical-insurance mobile payment live: signed refusal (and, with a payAuthNo, settle / reverse)',
  { skip: missing.length ? `not configured: set ${missing.join(', ')}` : false },
  () => {
    const values: Record<string, string> = {};
    for (const f of nhsaDefinition.fields) {
      const v = env(f.name.toUpperCase());
      if (v !== '') values[f.name] = v;
    }
    const merchant = withDefaults(nhsaDefinition.fields, values);
    const calls: ChannelCall[] = [];
    const ctx: ChannelContext = {
      appId: 'REMOTE',
      merchant,
      notifyUrl: 'https://hospay.example/channels/medicare%3Anhsa/notify/REMOTE',
      record: (c) => calls.push(c),
    };
    const channel = nhsaDefinition.create({
      http: httpRequest,
      clock: systemClock,
      simulator: null,
      publicBaseUrl: () => 'https://hospay.example',
    });

    it('the configuration is accepted', () => {
      assert.deepEqual(checkChannelConfig(nhsaDefinition.fields, values), []);
    });

    it('an unknown settlement is refused with a signed answer (our envelope and keys agree with the centre)', async () => {
      const r = await channel.reverseSettlement(ctx, {
        settlementNo: `HOSPAYNOSUCHORDER${Date.now()}`,
        outTradeNo: `HPREMOTE${Date.now()}`,
        insuranceFen: fen(1),
      });
      assert.equal(r.kind, 'failed', `${JSON.stringify(r)} ${JSON.stringify(calls.at(-1))}`);
      assert.match(calls.at(-1)?.outcome ?? '', /^(refused|ok)/, 'the answer verified');
    });

    it(
      'settles 0.01 yuan of insurance and reverses it',
      {
        skip:
          env('PAY_AUTH_NO') === '' ? 'set HOSPAY_NHSA_PAY_AUTH_NO to settle and reverse 0.01 yuan' : false,
      },
      async () => {
        const outTradeNo = `HPREMOTE${Date.now()}`;
        const r = await channel.preSettle(ctx, {
          payAuthNo: env('PAY_AUTH_NO'),
          outTradeNo,
          totalFen: fen(1),
          insuranceFen: fen(1),
          cashFen: fen(0),
        });
        assert.equal(r.kind, 'settled', `${JSON.stringify(r)} ${JSON.stringify(calls.slice(-3))}`);
        if (r.kind !== 'settled') return;
        const back = await channel.reverseSettlement(ctx, {
          settlementNo: r.settlementNo,
          outTradeNo,
          insuranceFen: fen(1),
        });
        assert.deepEqual(back, { kind: 'reversed' }, JSON.stringify(calls.slice(-2)));
      },
    );
  },
);
