/**
 * The national medical-insurance adapter: known-answer vectors of SM3, SM4 and SM2 (cross-checked with OpenSSL
 * and node:crypto), the envelope, tampering, and the adapter against the fake centre (test/fakes/nhsa-server.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { sm2 } from 'sm-crypto-v2';
import {
  canonicalJson,
  deriveSm4Key,
  openAnswer,
  parsePrivateKey,
  parsePublicKey,
  publicKeyOf,
  sealRequest,
  signText,
  sm2SignBase64,
  sm2VerifyBase64,
  sm3Hex,
  sm4DecryptHex,
  sm4EcbBlockHex,
  sm4EncryptHex,
  yuanTextToFen,
  type NhsaKeys,
} from '../../../src/channels/nhsa/envelope.js';
import { NHSA_FIELDS, nhsaDefinition } from '../../../src/channels/nhsa/definition.js';
import { NhsaMedicare } from '../../../src/channels/nhsa/channel.js';
import { readConfig } from '../../../src/channels/nhsa/config.js';
import { checkChannelConfig, withDefaults } from '../../../src/channels/definition.js';
import { httpRequest } from '../../../src/channels/http.js';
import type { ChannelCall, ChannelContext } from '../../../src/channels/channel.js';
import { MEDICARE_DEFINITIONS } from '../../../src/channels/registry.js';
import { FakeClock } from '../../support/clock.js';
import { startNhsaFake, type NhsaBehaviour, type NhsaFake } from '../../fakes/nhsa-server.js';
import { fen } from '../../../src/domain/money.js';

// --- fixed vectors ----------------------------------------------------------------------------------------------

/** A test key pair made with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:SM2` (test use only). */
const KAT_PRIVATE = 'c4477f47d8ffbba45b916879e84d54530d0b2282fb056f40b88e9fbc5b0ee480';
const KAT_PUBLIC =
  '04b09638ffe7a6dc8181b9d882a463be1ac4291a528acb15a32c619998b6ad9e4b' +
  '99953e49458851b4a0dd445f87f2d7e97363ad7d41f1b21899118e0ae6104d78';
/** The same key as OpenSSL writes it: PKCS#8 and SubjectPublicKeyInfo DER, Base64. */
const KAT_PRIVATE_PKCS8 =
  'MIGHAgEAMBMGByqGSM49AgEGCCqBHM9VAYItBG0wawIBAQQgxEd/R9j/u6RbkWh56E1UUw0LIoL7BW9AuI6fvFsO5IChRANCAASwljj/' +
  '56bcgYG52IKkY74axCkaUorLFaMsYZmYtq2eS5mVPklFiFG0oN1EX4fy1+lzY619QfGyGJkRjgrmEE14';
const KAT_PUBLIC_SPKI =
  'MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAEsJY4/+em3IGBudiCpGO+GsQpGlKKyxWjLGGZmLatnkuZlT5JRYhRtKDdRF+H8tfpc2OtfUHxshiZEY4K5hBNeA==';
const KAT_MESSAGE =
  'appId=NHSA-KAT&data={"a":"1"}&encType=SM4&signType=SM2&timestamp=1700000000000&version=2.0.1&key=secret';
/** `openssl pkeyutl -sign -rawin -digest sm3 -pkeyopt distid:1234567812345678` of KAT_MESSAGE (r‖s). */
const OPENSSL_SIGNATURE_RS =
  '5ed39ad6231ac05e63ec9a4cd8dfb92ed7fbd450208fa8dae393dd0b220925a5' +
  '9d07b825314aee30cd19e760bd7b346e0dc0fdb78b59bff212838f2636bf2159';
/** sm-crypto-v2's signature of KAT_MESSAGE, verified by `openssl pkeyutl -verify` (as DER, Base64). */
const JS_SIGNATURE_DER_B64 =
  'MEUCIQD6o0buQn1KFhQNI73aYXE1ie7qGfTjSl64zgoAdHxjhAIgMm2y6WZTONyB/mgSHa2kPRVFKlSPW6wDNbpqLmHUjms=';
const JS_SIGNATURE_RS =
  'faa346ee427d4a16140d23bdda61713589eeea19f4e34a5eb8ce0a00747c6384' +
  '326db2e9665338dc81fe68121dada43d15452a548f5bac0335ba6a2e61d48e6b';

const KAT_APP_ID = 'HOSPAYNHSAKAT0000000000000000001';
const KAT_APP_SECRET = 'KATSECRET0123456789ABCDEFGHIJKLM';
/** First 16 hex of SM4-ECB(appSecret, key = appId[0..16]) as computed with node:crypto. */
const KAT_SM4_KEY = '5D1DF8E4D45FB1C7';
const KAT_PLAIN = '{"medOrgOrd":"MZ0001","medfeeSumamt":"100.00","userName":"王医保"}';
const KAT_ENC_DATA =
  'C64AB38930EE6F6066B2F5F5D4B2054D28A45464FDB1F8D2DB4490DE529ED3268A88AA142F090F4EE91260A825A5A34C' +
  '3554EB191CB1E9A8EF3B6E9452455890144D7D42AD6B3F4DC9674876F565132E';

/** A second fixed pair (the "platform" of the envelope tests). */
const PLATFORM = {
  privateKey: 'bc6fe9bb3eb5d611fa81489f35a0851b3b1959aa437bb28a9b90680424881567',
  publicKey:
    '0417dec2f647f2bcd65956d3e55d880c14995bc76a136a54215058f0bfd84d43c1' +
    '2ccc984a3d1a396cc3d30eccfc0f806b8d6ae545c2f12b53536f1b34ffee2969',
};

const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');
const USER_ID = '1234567812345678';

describe('nhsa: known-answer vectors', () => {
  it('SM3 of "abc" is the GB/T 32905 digest (and node:crypto agrees)', () => {
    const want = '66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0';
    assert.equal(sm3Hex('abc'), want);
    assert.equal(createHash('sm3').update('abc').digest('hex'), want);
  });

  it('SM4-ECB of the GB/T 32907 block (and node:crypto agrees)', () => {
    const k = '0123456789abcdeffedcba9876543210';
    assert.equal(sm4EcbBlockHex(k, k), '681edf34d206965e86b3e94f536e4246');
    const c = createCipheriv('sm4-ecb', Buffer.from(k, 'hex'), null).setAutoPadding(false);
    assert.equal(
      Buffer.concat([c.update(Buffer.from(k, 'hex')), c.final()]).toString('hex'),
      '681edf34d206965e86b3e94f536e4246',
    );
  });

  it('SM2: the fixed key pair, an OpenSSL signature verifies, ours verifies with OpenSSL (fixed vector)', () => {
    assert.equal(publicKeyOf(KAT_PRIVATE), KAT_PUBLIC);
    assert.equal(sm2VerifyBase64(KAT_MESSAGE, b64(OPENSSL_SIGNATURE_RS), KAT_PUBLIC, USER_ID), true);
    assert.equal(sm2VerifyBase64(KAT_MESSAGE, b64(JS_SIGNATURE_RS), KAT_PUBLIC, USER_ID), true);
    // The same signature as DER is accepted too.
    assert.equal(sm2VerifyBase64(KAT_MESSAGE, JS_SIGNATURE_DER_B64, KAT_PUBLIC, USER_ID), true);
    // Another user id, message or key: no.
    assert.equal(
      sm2VerifyBase64(KAT_MESSAGE, b64(OPENSSL_SIGNATURE_RS), KAT_PUBLIC, '1234567812345679'),
      false,
    );
    assert.equal(sm2VerifyBase64(`${KAT_MESSAGE} `, b64(OPENSSL_SIGNATURE_RS), KAT_PUBLIC, USER_ID), false);
    assert.equal(sm2VerifyBase64(KAT_MESSAGE, b64(OPENSSL_SIGNATURE_RS), PLATFORM.publicKey, USER_ID), false);
    assert.equal(sm2VerifyBase64(KAT_MESSAGE, 'not base64!', KAT_PUBLIC, USER_ID), false);
    assert.equal(sm2VerifyBase64(KAT_MESSAGE, b64('00'.repeat(64)), KAT_PUBLIC, USER_ID), false);
  });

  it('SM2 sign/verify round trip with the fixed keys (randomised signatures, both verify)', () => {
    const a = sm2SignBase64(KAT_MESSAGE, KAT_PRIVATE, KAT_PUBLIC, USER_ID);
    const b = sm2SignBase64(KAT_MESSAGE, KAT_PRIVATE, KAT_PUBLIC, USER_ID);
    assert.equal(Buffer.from(a, 'base64').length, 64);
    assert.notEqual(a, b);
    assert.equal(sm2VerifyBase64(KAT_MESSAGE, a, KAT_PUBLIC, USER_ID), true);
    assert.equal(sm2VerifyBase64(KAT_MESSAGE, b, KAT_PUBLIC, USER_ID), true);
  });

  it('the envelope key and encData of a fixed message (computed independently with node:crypto)', () => {
    const key = deriveSm4Key(KAT_APP_ID, KAT_APP_SECRET);
    assert.equal(Buffer.from(key).toString('utf8'), KAT_SM4_KEY);
    assert.equal(sm4EncryptHex(KAT_PLAIN, key), KAT_ENC_DATA);
    assert.equal(sm4DecryptHex(KAT_ENC_DATA.toLowerCase(), key), KAT_PLAIN);
    assert.throws(() => sm4DecryptHex(KAT_ENC_DATA.slice(0, -2), key));
    assert.equal(
      Buffer.from(deriveSm4Key(KAT_APP_ID, KAT_APP_SECRET, 'secret16')).toString(),
      'KATSECRET0123456',
    );
  });

  it('the sign text: sorted, empties left out, data as sorted JSON, &key= last', () => {
    const text = signText(
      {
        version: '2.0.1',
        appId: 'A1',
        signData: 'x',
        encData: 'y',
        extra: 'z',
        timestamp: '1700000000000',
        encType: 'SM4',
        signType: 'SM2',
        empty: '',
        data: { b: '2', a: '王', n: null, e: '', list: [{ z: '1', y: '' }] },
      },
      'S3CRET',
    );
    assert.equal(
      text,
      'appId=A1&data={"a":"王","b":"2","list":[{"z":"1"}]}&encType=SM4&signType=SM2&timestamp=1700000000000' +
        '&version=2.0.1&key=S3CRET',
    );
    assert.equal(canonicalJson({ x: {}, y: [], z: null }), '');
  });

  it('keys as the regions hand them out: hex, Base64, DER', () => {
    assert.equal(parsePrivateKey(KAT_PRIVATE.toUpperCase()), KAT_PRIVATE);
    assert.equal(parsePrivateKey(b64(KAT_PRIVATE)), KAT_PRIVATE);
    assert.equal(parsePrivateKey(KAT_PRIVATE_PKCS8), KAT_PRIVATE);
    assert.equal(parsePublicKey(KAT_PUBLIC), KAT_PUBLIC);
    assert.equal(parsePublicKey(KAT_PUBLIC.slice(2)), KAT_PUBLIC);
    assert.equal(parsePublicKey(b64(KAT_PUBLIC)), KAT_PUBLIC);
    assert.equal(parsePublicKey(KAT_PUBLIC_SPKI), KAT_PUBLIC);
    assert.throws(() => parsePrivateKey('abc'), /SM2/);
    assert.throws(() => parsePrivateKey('00'.repeat(32)), /out of range/);
    assert.throws(() => parsePublicKey(`04${'11'.repeat(64)}`), /curve/);
  });

  it('yuan amounts become fen without floating point', () => {
    assert.equal(yuanTextToFen('60.00'), 6000);
    assert.equal(yuanTextToFen('60'), 6000);
    assert.equal(yuanTextToFen('0.1'), 10);
    assert.equal(yuanTextToFen('19.99'), 1999);
    assert.equal(yuanTextToFen('19.9900'), 1999);
    for (const bad of ['19.991', '-1', '1e3', '', ' ', '01.00', 'abc'])
      assert.equal(yuanTextToFen(bad), null, bad);
  });
});

// --- the envelope ------------------------------------------------------------------------------------------------

const orgKeys: NhsaKeys = {
  appId: KAT_APP_ID,
  appSecret: KAT_APP_SECRET,
  orgPrivateKeyHex: KAT_PRIVATE,
  orgPublicKeyHex: KAT_PUBLIC,
  platformPublicKeyHex: PLATFORM.publicKey,
  sm2UserId: USER_ID,
  sm4Key: deriveSm4Key(KAT_APP_ID, KAT_APP_SECRET),
  version: '2.0.1',
};

/** An answer as the platform would send it (signed with PLATFORM's key). */
function platformAnswer(
  fields: Record<string, unknown>,
  data?: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...fields };
  if (data) out['encData'] = sm4EncryptHex(canonicalJson(data), orgKeys.sm4Key);
  out['signData'] = sm2SignBase64(
    signText({ ...fields, data }, KAT_APP_SECRET),
    PLATFORM.privateKey,
    PLATFORM.publicKey,
    USER_ID,
  );
  return out;
}

describe('nhsa: the envelope', () => {
  const head = {
    code: 0,
    message: '成功',
    success: true,
    appId: KAT_APP_ID,
    timestamp: '1700000000000',
    encType: 'SM4',
    signType: 'SM2',
    version: '2.0.1',
  };
  const data = { payOrdId: 'ORD1', ordStas: '4', feeSumamt: '100.00', ownPayAmt: '40.00' };

  it('a request round trip: the platform side decrypts and verifies what we seal', () => {
    const sealed = sealRequest(orgKeys, { medOrgOrd: 'MZ1', userName: '王医保', empty: '' }, '1700000000000');
    const body = JSON.parse(sealed.body) as Record<string, string>;
    assert.deepEqual(Object.keys(body).sort(), [
      'appId',
      'encData',
      'encType',
      'signData',
      'signType',
      'timestamp',
      'version',
    ]);
    assert.match(body['encData'] ?? '', /^[0-9A-F]+$/);
    const plain = sm4DecryptHex(body['encData'] ?? '', orgKeys.sm4Key);
    assert.equal(plain, '{"medOrgOrd":"MZ1","userName":"王医保"}');
    const text = signText({ ...body, data: JSON.parse(plain) }, KAT_APP_SECRET);
    assert.equal(sm2VerifyBase64(text, body['signData'] ?? '', KAT_PUBLIC, USER_ID), true);
    // The same request answered by the platform reads back.
    const opened = openAnswer(orgKeys, JSON.stringify(platformAnswer(head, data)));
    assert.ok(opened.ok, opened.ok ? '' : opened.reason);
    assert.equal(opened.data['payOrdId'], 'ORD1');
  });

  it('numbers in an answer are kept exact (never floats) and signed as written', () => {
    const raw = JSON.stringify(platformAnswer(head, data)).replace('"code":0', '"code":0.10');
    assert.equal(openAnswer(orgKeys, raw).ok, false, 'a changed number breaks the signature');
    const fields = { ...head, amount: 19.99 };
    const opened = openAnswer(orgKeys, JSON.stringify(platformAnswer(fields, data)));
    assert.ok(opened.ok);
    assert.equal(String(opened.fields['amount']), '19.99');
  });

  it('tampering with any field of an answer, or the wrong platform key, is never accepted', () => {
    const good = platformAnswer(head, data);
    assert.equal(openAnswer(orgKeys, JSON.stringify(good)).ok, true);
    const variants: Array<[string, Record<string, unknown>]> = [];
    for (const k of Object.keys(good)) {
      const v = good[k];
      const changed =
        typeof v === 'number'
          ? v + 1
          : typeof v === 'boolean'
            ? !v
            : k === 'encData' || k === 'signData'
              ? `${String(v).slice(0, 10)}${String(v)[10] === 'A' ? 'B' : 'A'}${String(v).slice(11)}`
              : `${String(v)}x`;
      variants.push([`${k} changed`, { ...good, [k]: changed }]);
      const { [k]: _gone, ...without } = good;
      variants.push([`${k} removed`, without]);
    }
    variants.push(['a field added', { ...good, extraFlag: 'Y' }]);
    variants.push(['plain data added', { ...good, data: { ordStas: '4' } }]);
    variants.push([
      'encData of other data',
      { ...good, encData: sm4EncryptHex('{"ordStas":"4"}', orgKeys.sm4Key) },
    ]);
    variants.push(['lower-case signType', { ...good, signType: 'sm2' }]);
    for (const [what, v] of variants) {
      // extra never takes part in the signature (the published rule), so adding it changes nothing read.
      assert.equal(openAnswer(orgKeys, JSON.stringify(v)).ok, false, what);
    }
    const wrongKey = { ...orgKeys, platformPublicKeyHex: KAT_PUBLIC };
    assert.equal(openAnswer(wrongKey, JSON.stringify(good)).ok, false, 'wrong platform key');
    for (const junk of ['', 'null', '[]', '{"code":0}', '<html>', '{"code":0,"signData":"AAAA"}'])
      assert.equal(openAnswer(orgKeys, junk).ok, false, junk);
  });
});

// --- the configuration ----------------------------------------------------------------------------------------

describe('nhsa: configuration', () => {
  const base = {
    app_id: KAT_APP_ID,
    app_secret: KAT_APP_SECRET,
    org_code: 'H44010100001',
    org_name: '市第一人民医院',
    platform_public_key: PLATFORM.publicKey,
    org_private_key: KAT_PRIVATE,
    api_base_url: 'https://fsi.example.gov.cn/mobile',
    auth_url: 'https://auth.example.gov.cn/ec?appId={appId}&redirect={redirect}&state={state}',
    path_token: '/org/local/api/hos/payAuthNo',
    city_code: '440100',
  };

  it('is registered, and a complete configuration has no problem', () => {
    assert.ok(MEDICARE_DEFINITIONS.some((d) => d.id === 'nhsa' && d === nhsaDefinition));
    assert.equal(nhsaDefinition.zh, '国家医保移动支付');
    assert.deepEqual(checkChannelConfig(NHSA_FIELDS, base), []);
    const cfg = readConfig(withDefaults(NHSA_FIELDS, base));
    assert.equal(cfg.paths['6201'], '/org/local/api/hos/uldFeeInfo');
    assert.equal(cfg.keys.sm2UserId, '1234567812345678');
    assert.equal(cfg.timeoutMs, 10_000);
    const secrets = NHSA_FIELDS.filter((f) => f.secret).map((f) => f.name);
    assert.deepEqual(secrets.sort(), ['app_secret', 'extra_headers', 'org_private_key']);
  });

  it('names each broken field', () => {
    const problems = (patch: Record<string, string>) =>
      checkChannelConfig(NHSA_FIELDS, { ...base, ...patch }).map((p) => p.field);
    assert.deepEqual(problems({ org_private_key: 'xyz' }), ['org_private_key']);
    assert.deepEqual(problems({ platform_public_key: `04${'11'.repeat(64)}` }), ['platform_public_key']);
    assert.deepEqual(problems({ app_id: 'SHORT' }), ['app_id']);
    assert.deepEqual(problems({ api_base_url: 'http://fsi.example.gov.cn' }), ['api_base_url']);
    assert.deepEqual(problems({ auth_url: 'https://auth.example.gov.cn/?state={state}' }), ['auth_url']);
    assert.deepEqual(problems({ auth_url: 'https://a.example/?r={redirect}&s={state}&x={nope}' }), [
      'auth_url',
    ]);
    assert.deepEqual(problems({ path_6202: 'pay_order' }), ['path_6202']);
    assert.deepEqual(problems({ city_code: '4401' }), ['city_code']);
    assert.deepEqual(problems({ interface_extra: '{"6209":{}}' }), ['interface_extra']);
    assert.deepEqual(problems({ extra_headers: '{"Host":"x"}' }), ['extra_headers']);
    assert.deepEqual(problems({ timeout_ms: '99' }), ['timeout_ms']);
    const { path_token: _p, ...noToken } = base;
    assert.deepEqual(
      checkChannelConfig(NHSA_FIELDS, noToken).map((p) => p.field),
      ['path_token'],
    );
  });
});

// --- against the fake centre --------------------------------------------------------------------------------------

describe('nhsa: the adapter against the fake centre', () => {
  const org = sm2.generateKeyPairHex();
  const appId = 'HOSPAYNHSATEST00000000000000001';
  const appSecret = 'TESTSECRETabcdefghijklmnop012345';
  const orgCode = 'H44010100001';
  const PUBLIC_BASE = 'https://hospay.example';
  const clock = new FakeClock();
  let fake: NhsaFake;
  let channel: NhsaMedicare;
  let merchant: Record<string, string>;
  let calls: ChannelCall[] = [];
  const ctx = (over: Record<string, string> = {}): ChannelContext => ({
    appId: 'APP1',
    merchant: { ...merchant, ...over },
    notifyUrl: `${PUBLIC_BASE}/channels/medicare%3Anhsa/notify/APP1`,
    record: (c) => calls.push(c),
  });
  let seq = 0;
  const orderNo = () => `MZNHSA${Date.now().toString(36)}${++seq}`;
  const PATIENT = { name: '王医保', idNo: '44010519800101123X' };

  before(async () => {
    fake = await startNhsaFake({ appId, appSecret, orgPublicKeyHex: org.publicKey, orgCode, hangMs: 5_000 });
    merchant = withDefaults(NHSA_FIELDS, {
      app_id: appId,
      app_secret: appSecret,
      org_code: orgCode,
      org_name: '市第一人民医院',
      platform_public_key: fake.publicKeyHex,
      org_private_key: org.privateKey,
      api_base_url: fake.url,
      auth_url: fake.authUrl,
      path_token: fake.paths.token,
      city_code: '440100',
      timeout_ms: '400',
    });
    assert.deepEqual(checkChannelConfig(NHSA_FIELDS, merchant), []);
    channel = new NhsaMedicare({ http: httpRequest, clock, publicBaseUrl: () => PUBLIC_BASE });
  });
  after(async () => {
    await fake.close();
  });

  async function token(c = ctx()): Promise<string> {
    const r = await channel.issueToken(c, {
      userId: '2088000000000001',
      paymentType: 'alipay',
      cityCode: '440100',
      patientName: PATIENT.name,
      patientCardNo: PATIENT.idNo,
    });
    assert.equal(r.kind, 'issued', JSON.stringify(r));
    return r.kind === 'issued' ? r.payAuthNo : '';
  }

  const settle = async (payAuthNo: string, outTradeNo = orderNo(), c = ctx()) =>
    ({
      outTradeNo,
      r: await channel.preSettle(c, {
        payAuthNo,
        outTradeNo,
        totalFen: fen(10000),
        insuranceFen: fen(6000),
        cashFen: fen(4000),
        serialNo: 'SSC0001',
      }),
    }) as const;

  it('the authorisation page: the region URL from the template, back to the platform with the auth code', async () => {
    assert.throws(() => channel.authorisationUrl('auth-id-0001'), /context/);
    const url = new URL(channel.authorisationUrl('auth-id-0001', ctx()));
    assert.equal(url.origin + url.pathname, `${fake.url}/auth`);
    assert.equal(url.searchParams.get('appId'), appId);
    assert.equal(url.searchParams.get('state'), 'auth-id-0001');
    assert.equal(
      url.searchParams.get('redirect'),
      `${PUBLIC_BASE}/oauth2/medicareAuth/auth-id-0001/decision`,
    );
    url.searchParams.set('decision', 'grant');
    const back = await fetch(url, { redirect: 'manual' });
    assert.equal(back.status, 302);
    const loc = new URL(back.headers.get('location') ?? '');
    assert.equal(loc.pathname, '/oauth2/medicareAuth/auth-id-0001/decision');
    const code = loc.searchParams.get('authCode') ?? '';
    assert.ok(code);
    // The token step with the region's auth code (once the platform passes it): single use.
    const input = { userId: 'u1', paymentType: 'weixin', authCode: code };
    assert.equal((await channel.issueToken(ctx(), input)).kind, 'issued');
    const again = await channel.issueToken(ctx(), input);
    assert.deepEqual(again.kind === 'failed' ? again.code : again.kind, 'NHSA_2102');
  });

  it('issueToken: identity → payAuthNo; no insurance is a refusal; misbehaviour never issues', async () => {
    const payAuthNo = await token();
    assert.match(payAuthNo, /^AUTH440100/);
    const none = await channel.issueToken(ctx(), {
      userId: 'u2',
      paymentType: 'alipay',
      patientName: '李四',
      patientCardNo: '440105198001010000',
    });
    assert.deepEqual(none.kind === 'failed' ? none.code : none.kind, 'NHSA_2103');
    for (const b of [
      'system_error',
      'timeout',
      'http_500',
      'malformed',
      'bad_signature',
    ] as NhsaBehaviour[]) {
      fake.script('token', b, { effect: true });
      const r = await channel.issueToken(ctx(), { userId: 'u3', paymentType: 'alipay' });
      assert.equal(r.kind, 'failed', b);
    }
  });

  it('preSettle: 6201 then 6202, settled with the centre books matching the HIS split', async () => {
    const payAuthNo = await token();
    const { outTradeNo, r } = await settle(payAuthNo);
    assert.equal(r.kind, 'settled', JSON.stringify(r));
    const o = fake.order(outTradeNo);
    assert.ok(o);
    assert.equal(o.state, 'paid');
    assert.equal(o.fundFen + o.acctFen, 6000);
    assert.equal(o.cashFen, 4000);
    assert.ok(r.kind === 'settled' && r.settlementNo.startsWith(`${o.payOrdId}.`));
    const sent = fake
      .requests()
      .filter((q) => q.op === '6201')
      .at(-1);
    assert.equal(sent?.signatureValid, true);
    assert.equal(sent?.data['inscpScpAmt'], '60.00');
    assert.equal(sent?.data['medOrgOrd'], outTradeNo);
    assert.equal(sent?.data['orgCodg'], orgCode);
  });

  it('a declined order fails with the centre code and nothing is paid', async () => {
    const payAuthNo = await token();
    fake.script('6202', 'declined');
    const { outTradeNo, r } = await settle(payAuthNo);
    assert.deepEqual(r.kind === 'failed' ? r.code : r.kind, 'NHSA_3001');
    assert.equal(fake.order(outTradeNo)?.state, 'uploaded');
  });

  it('every misbehaviour of 6202 (not processed) ends not settled, resolved by 6301', async () => {
    for (const b of [
      'system_error',
      'timeout',
      'http_500',
      'malformed',
      'bad_signature',
    ] as NhsaBehaviour[]) {
      const payAuthNo = await token();
      const before = fake.requests().length;
      fake.script('6202', b);
      const started = Date.now();
      const { outTradeNo, r } = await settle(payAuthNo);
      assert.equal(r.kind, 'failed', `${b}: ${JSON.stringify(r)}`);
      assert.notEqual(r.kind, 'settled');
      if (r.kind === 'failed') assert.match(r.code, /^(NHSA_NOT_SETTLED|NHSA_-1)$/, b);
      assert.equal(fake.order(outTradeNo)?.state, 'uploaded', b);
      assert.ok(
        fake
          .requests()
          .slice(before)
          .some((q) => q.op === '6301'),
        `${b}: the centre's books were asked`,
      );
      if (b === 'timeout') assert.ok(Date.now() - started < 2_000, 'the call ends at its timeout');
    }
  });

  it('an answer lost after the centre settled is resolved by 6301 as settled', async () => {
    for (const b of [
      'timeout',
      'http_500',
      'malformed',
      'bad_signature',
      'system_error',
    ] as NhsaBehaviour[]) {
      const payAuthNo = await token();
      fake.script('6202', b, { effect: true });
      const { outTradeNo, r } = await settle(payAuthNo);
      assert.equal(r.kind, 'settled', `${b}: ${JSON.stringify(r)}`);
      assert.equal(fake.order(outTradeNo)?.state, 'paid');
    }
  });

  it('when neither 6202 nor 6301 can be read, the outcome is UNKNOWN, never settled', async () => {
    for (const b of ['timeout', 'malformed', 'bad_signature', 'http_500'] as NhsaBehaviour[]) {
      const payAuthNo = await token();
      fake.script('6202', b, { effect: true });
      fake.script('6301', b);
      const { r } = await settle(payAuthNo);
      assert.deepEqual(r.kind === 'failed' ? r.code : r.kind, 'UNKNOWN', b);
    }
  });

  it('6201 misbehaving: a refusal keeps its code, anything else is UNKNOWN; 6202 is never sent', async () => {
    for (const b of [
      'declined',
      'system_error',
      'timeout',
      'http_500',
      'malformed',
      'bad_signature',
    ] as NhsaBehaviour[]) {
      const payAuthNo = await token();
      const before = fake.requests().length;
      fake.script('6201', b);
      const { r } = await settle(payAuthNo);
      assert.equal(r.kind, 'failed', b);
      if (r.kind === 'failed')
        assert.equal(
          r.code,
          b === 'declined' ? 'NHSA_3001' : b === 'system_error' ? 'NHSA_-1' : 'UNKNOWN',
          b,
        );
      assert.ok(
        !fake
          .requests()
          .slice(before)
          .some((q) => q.op === '6202'),
        b,
      );
    }
  });

  it('a split other than the HIS declared is refused and refunded at once', async () => {
    const payAuthNo = await token();
    fake.script('6202', 'ok', { cashFen: 5000 });
    const { outTradeNo, r } = await settle(payAuthNo);
    assert.deepEqual(r.kind === 'failed' ? r.code : r.kind, 'NHSA_SPLIT_MISMATCH');
    assert.equal(fake.order(outTradeNo)?.state, 'refunded');
  });

  it('the wrong platform key: answers never verify, nothing is settled', async () => {
    const payAuthNo = await token();
    const wrong = ctx({ platform_public_key: KAT_PUBLIC });
    const { outTradeNo, r } = await settle(payAuthNo, orderNo(), wrong);
    assert.deepEqual(r.kind === 'failed' ? r.code : r.kind, 'UNKNOWN');
    assert.notEqual(fake.order(outTradeNo)?.state, 'paid');
  });

  it('reverseSettlement: 6301 then 6203 ALL; repeated, it is already reversed', async () => {
    const payAuthNo = await token();
    const { outTradeNo, r } = await settle(payAuthNo);
    assert.ok(r.kind === 'settled');
    const input = { settlementNo: r.settlementNo, outTradeNo, insuranceFen: fen(6000) };
    assert.deepEqual(await channel.reverseSettlement(ctx(), input), { kind: 'reversed' });
    const o = fake.order(outTradeNo);
    assert.equal(o?.state, 'refunded');
    assert.equal(o?.ordStas, '7');
    assert.equal(o?.refunds.length, 1);
    assert.equal(o?.refunds[0]?.refdType, 'ALL');
    assert.deepEqual(await channel.reverseSettlement(ctx(), input), { kind: 'reversed' });
    assert.equal(fake.order(outTradeNo)?.refunds.length, 1);
  });

  it('reverseSettlement: unclear answers are retried; a lost answer is not refunded twice', async () => {
    for (const b of ['timeout', 'http_500', 'malformed', 'bad_signature'] as NhsaBehaviour[]) {
      const payAuthNo = await token();
      const { outTradeNo, r } = await settle(payAuthNo);
      assert.ok(r.kind === 'settled');
      const input = { settlementNo: r.settlementNo, outTradeNo, insuranceFen: fen(6000) };
      fake.script('6203', b);
      assert.equal((await channel.reverseSettlement(ctx(), input)).kind, 'retry', b);
      assert.equal(fake.order(outTradeNo)?.state, 'paid', b);
      fake.script('6301', b);
      assert.equal((await channel.reverseSettlement(ctx(), input)).kind, 'retry', b);
      fake.script('6203', b, { effect: true });
      assert.equal((await channel.reverseSettlement(ctx(), input)).kind, 'retry', b);
      assert.equal(fake.order(outTradeNo)?.state, 'refunded', b);
      assert.deepEqual(await channel.reverseSettlement(ctx(), input), { kind: 'reversed' }, b);
      assert.equal(fake.order(outTradeNo)?.refunds.length, 1, b);
    }
  });

  it('reverseSettlement: a refusal is failed (the job retries and an operator is told); cash-only refunded → HI', async () => {
    const payAuthNo = await token();
    const { outTradeNo, r } = await settle(payAuthNo);
    assert.ok(r.kind === 'settled');
    const input = { settlementNo: r.settlementNo, outTradeNo, insuranceFen: fen(6000) };
    fake.script('6203', 'declined');
    assert.deepEqual((await channel.reverseSettlement(ctx(), input)).kind, 'failed');
    const o = fake.order(outTradeNo);
    assert.ok(o);
    fake.setOrderState(o.payOrdId, '9');
    assert.deepEqual(await channel.reverseSettlement(ctx(), input), { kind: 'reversed' });
    assert.equal(fake.order(outTradeNo)?.refunds[0]?.refdType, 'HI');
    const unknown = await channel.reverseSettlement(ctx(), { ...input, settlementNo: 'ORDNOPE.00' });
    assert.deepEqual(unknown.kind === 'failed' ? unknown.code : unknown.kind, 'NHSA_2401');
  });

  it('a broken configuration is a failure naming the field, not an exception', async () => {
    const r = await channel.preSettle(ctx({ org_private_key: 'nope' }), {
      payAuthNo: 'AUTH1',
      outTradeNo: orderNo(),
      totalFen: fen(1),
      insuranceFen: fen(1),
      cashFen: fen(0),
    });
    assert.deepEqual(r.kind === 'failed' ? [r.code, r.en] : r, [
      'NHSA_CONFIG',
      'the nhsa channel is misconfigured: org_private_key',
    ]);
  });

  it('every call is recorded, without keys, secrets, tokens, names or ID numbers', async () => {
    calls = [];
    const payAuthNo = await token();
    const { outTradeNo, r } = await settle(payAuthNo);
    assert.ok(r.kind === 'settled');
    await channel.reverseSettlement(ctx(), {
      settlementNo: r.settlementNo,
      outTradeNo,
      insuranceFen: fen(6000),
    });
    fake.script('6301', 'malformed');
    await channel.reverseSettlement(ctx(), {
      settlementNo: r.settlementNo,
      outTradeNo,
      insuranceFen: fen(6000),
    });
    assert.deepEqual(
      calls.map((c) => c.operation),
      ['nhsa.token', 'nhsa.6201', 'nhsa.6202', 'nhsa.6301', 'nhsa.6203', 'nhsa.6301'],
    );
    assert.ok(calls.every((c) => c.latencyMs >= 0 && c.outcome && c.request));
    assert.match(calls[2]?.outcome ?? '', /^ok ordStas=4$/);
    assert.match(calls.at(-1)?.outcome ?? '', /^unknown: answer is not a JSON object$/);
    const text = JSON.stringify(calls);
    const o = fake.order(outTradeNo);
    for (const secret of [
      appSecret,
      org.privateKey,
      PATIENT.name,
      PATIENT.idNo,
      payAuthNo,
      o?.payToken ?? 'no-token',
      Buffer.from(deriveSm4Key(appId, appSecret)).toString(),
    ])
      assert.ok(!text.includes(secret), `the record holds ${secret.slice(0, 6)}…`);
    assert.ok(!/"encData":"[0-9A-F]{32,}"/.test(text), 'no ciphertext, and never the decrypted payload');
    assert.ok(!text.includes('cardInfo') && !text.includes('idNo') && !text.includes('userName'));
    assert.ok(
      text.includes(outTradeNo) && text.includes(o?.payOrdId ?? '?'),
      'what an operator needs is there',
    );
  });
});
