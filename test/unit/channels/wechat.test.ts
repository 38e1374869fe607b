/**
 * The WeChat Pay adapter's specifics: signing known-answer vectors (v3 request signature, v2 MD5 and HMAC-SHA256
 * from WeChat's own documentation), answer and notification verification, AES-256-GCM decryption of a known
 * ciphertext, configuration checks, certificate handling, bill download with its hash, and answer mapping
 * against the fake WeChat Pay.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  buildV2Xml,
  decryptResource,
  parseV2Xml,
  v2Sign,
  v2SignString,
  v2Verify,
  v3Authorization,
  v3RequestMessage,
  verifyV3,
} from '../../../src/channels/wechat/crypto.js';
import { loadConfig, verifierKeys } from '../../../src/channels/wechat/config.js';
import { bridgeParams } from '../../../src/channels/wechat/keys.js';
import {
  authorizeUrl,
  billPath,
  closeCall,
  orderPath,
  orderRequest,
  queryPath,
  refundQueryPath,
  refundRequest,
  unifiedOrderRequest,
} from '../../../src/channels/wechat/wire.js';
import { wechatDefinition } from '../../../src/channels/wechat/definition.js';
import { WechatChannel } from '../../../src/channels/wechat/channel.js';
import { checkChannelConfig, withDefaults } from '../../../src/channels/definition.js';
import {
  httpRequest,
  type HttpClient,
  type HttpRequest,
  type HttpResponse,
} from '../../../src/channels/http.js';
import { systemClock } from '../../../src/domain/clock.js';
import { conformanceContext } from '../../conformance/suite.js';
import {
  makeWechatMaterial,
  startWechatFake,
  type WechatFake,
  type WechatFakeOptions,
} from '../../fakes/wechat-server.js';
import { fen } from '../../../src/domain/money.js';

const KEYS = new URL('../../fixtures/keys/', import.meta.url);
const TEST_KEY = fs.readFileSync(new URL('test-app-2048.pem', KEYS), 'utf8');
const TEST_PUB = fs.readFileSync(new URL('test-app-2048.pub.pem', KEYS), 'utf8');

const MCH_ID = '1900000109';
const APP_ID = 'wxd930ea5d5a258f4f';
const V3_KEY = 'hospayTestApiV3Key00000000000001';
const V2_KEY = '192006250b4c09247ec02edce69f6a2d';

describe('wechat v3 request signature (known answer)', () => {
  // Expected values computed independently with the OpenSSL CLI:
  //   printf 'POST\n/v3/pay/transactions/native\n1709259000\n593BEC0C930BF1AFEB40B4A08C8FB242\n<body>\n' |
  //     openssl dgst -sha256 -sign test/fixtures/keys/test-app-2048.pem | base64 -w0
  const body =
    '{"appid":"wxd930ea5d5a258f4f","mchid":"1900000109","description":"门诊缴费","out_trade_no":"MZ20240301000001",' +
    '"time_expire":"2024-03-01T10:30:00+08:00","notify_url":"https://hospay.example/channels/wechat/notify/APP1",' +
    '"amount":{"total":1234,"currency":"CNY"}}';
  const POST_SIG =
    'i4/l53bIo02QngxJJsWd+h7cNSIJoZEPKJkfcanmS4+ADo3SEpJoavYF5fgwLcGhxK5Pmm7d2TXTRHk/A8TVwEaQfR9AetugGMR6+vvatcWvyPWEZAqhRm1SI75bTBAVjeea27dVV9tbCynHdvbFCflsGoKaElsFASUkVwnR96ZIflWHUAmBdKPUCrlvlvb8jzWeCKJaDAXoxqA5zUxS+CYMNOYkHHUim4LSE9FucK+Jp9oEYvJTdnO3q5G01GQUEzvneLKu1RGa0pnRsATuY4rTxoITyKtowxPZnKAU8gwP3jZGK/kOmBdlUN6zZGn13szki09qW+eOUba0eSvZiA==';
  const GET_SIG =
    'nPcs9RFgOIl+357Iitpy1mtnWM6I4e/c1LtY3RpNcn3xd3iQuOLzAEYxUuw4899QK4mpiRN9Zyn4I8neZqADbL92JRd43PfdPny4eFTefetwTLFtA3gu3oGmDQw4vPlZQV+/B3v5ezKZSDAvTSxWIXj9aCEQg9za1Wm3fgDAtoT9bKOJXvlt3rrHks37t9xn32jIlgMOR5oOWWTBxtA7/PxsEiKWGqzVc/jJAIMeikL2HNNGdaSeVsilw6Zscwfp6vLOTfDMfVsZw5FrUePecgJ6BM+X8Gs5jClpEQxZ286lKdEQ3jI4cfcG3T9q7TTtR7s7JmxDO2zvjlbDGkUoOQ==';
  const base = {
    mchId: MCH_ID,
    serialNo: '5157F09EFDC096DE15EBE81A47057A7232F1B8E1',
    privateKey: crypto.createPrivateKey(TEST_KEY),
    timestamp: '1709259000',
    nonce: '593BEC0C930BF1AFEB40B4A08C8FB242',
  };

  it('builds the five-line message', () => {
    assert.equal(
      v3RequestMessage('GET', '/v3/certificates', '1554208460', '593BEC0C930BF1AFEB40B4A08C8FB242', ''),
      'GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n',
    );
  });

  it('POST: the exact Authorization header', () => {
    const h = v3Authorization({ ...base, method: 'POST', urlPath: '/v3/pay/transactions/native', body });
    assert.equal(
      h,
      `WECHATPAY2-SHA256-RSA2048 mchid="1900000109",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",` +
        `signature="${POST_SIG}",timestamp="1709259000",serial_no="5157F09EFDC096DE15EBE81A47057A7232F1B8E1"`,
    );
    const ok = crypto
      .createVerify('RSA-SHA256')
      .update(v3RequestMessage('POST', '/v3/pay/transactions/native', base.timestamp, base.nonce, body))
      .verify(TEST_PUB, Buffer.from(POST_SIG, 'base64'));
    assert.ok(ok);
  });

  it('GET with a query string: signed over path and query, empty body', () => {
    const h = v3Authorization({
      ...base,
      method: 'GET',
      urlPath: '/v3/pay/transactions/out-trade-no/MZ20240301000001?mchid=1900000109',
      body: '',
    });
    assert.ok(h.includes(`signature="${GET_SIG}"`));
  });
});

describe('wechat v2 sign (WeChat documentation example)', () => {
  const params = {
    appid: 'wxd930ea5d5a258f4f',
    mch_id: '10000100',
    device_info: '1000',
    body: 'test',
    nonce_str: 'ibuaiVcKdpRxkhJA',
  };

  it('signing string: sorted, k=v&…&key=', () => {
    assert.equal(
      v2SignString({ ...params, sign: 'X', empty: '' }, V2_KEY),
      'appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA' +
        '&key=192006250b4c09247ec02edce69f6a2d',
    );
  });

  it('MD5: 9A0A8659F005D6984697E2CA0A9CF3B7', () => {
    assert.equal(v2Sign(params, V2_KEY, 'MD5'), '9A0A8659F005D6984697E2CA0A9CF3B7');
  });

  it('HMAC-SHA256: 6A9AE165…DACD6', () => {
    assert.equal(
      v2Sign(params, V2_KEY, 'HMAC-SHA256'),
      '6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6',
    );
  });

  it('verifies a signed answer and refuses a changed one', () => {
    const signed = { ...params, sign: '9A0A8659F005D6984697E2CA0A9CF3B7' };
    assert.ok(v2Verify(signed, V2_KEY, 'MD5'));
    assert.ok(!v2Verify({ ...signed, body: 'test2' }, V2_KEY, 'MD5'));
    assert.ok(!v2Verify(signed, V2_KEY, 'HMAC-SHA256'));
    assert.ok(!v2Verify({ ...params }, V2_KEY, 'MD5'));
  });

  it('XML: built escaped, read back as strings; DOCTYPE, repeated and nested fields refused', () => {
    const xml = buildV2Xml({ body: '门诊 & <检查>', total_fee: '0010' });
    assert.equal(xml, '<xml><body>门诊 &amp; &lt;检查&gt;</body><total_fee>0010</total_fee></xml>');
    assert.deepEqual(parseV2Xml(xml), { body: '门诊 & <检查>', total_fee: '0010' });
    assert.deepEqual(parseV2Xml('<xml><a><![CDATA[0.10]]></a><b>00123</b><c></c></xml>'), {
      a: '0.10',
      b: '00123',
      c: '',
    });
    assert.throws(() => parseV2Xml('<!DOCTYPE x [<!ENTITY e "1">]><xml><a>&e;</a></xml>'), /DOCTYPE/);
    assert.throws(() => parseV2Xml('<xml><a>1</a><a>2</a></xml>'), /repeated/);
    assert.throws(() => parseV2Xml('<xml><a><b>1</b></a></xml>'), /nested/);
    assert.throws(() => parseV2Xml('<xml><a>1</a>'), /malformed/);
    assert.throws(() => parseV2Xml('<doc><a>1</a></doc>'), /root/);
  });
});

describe('wechat answer signatures and notification decryption', () => {
  const pair = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keys = new Map([['PUB_KEY_ID_0119000001092024', pair.publicKey]]);
  const now = 1_709_259_000;
  const signed = (body: string, ts = now, serial = 'PUB_KEY_ID_0119000001092024') => {
    const nonce = 'c5ac7061fccab6bf3e254dcf98995b8c';
    return {
      'Wechatpay-Timestamp': String(ts),
      'Wechatpay-Nonce': nonce,
      'Wechatpay-Serial': serial,
      'Wechatpay-Signature': crypto
        .createSign('RSA-SHA256')
        .update(`${ts}\n${nonce}\n${body}\n`)
        .sign(pair.privateKey, 'base64'),
    };
  };

  it('accepts a genuine answer (header names in any case)', () => {
    assert.equal(verifyV3(keys, signed('{"a":1}'), '{"a":1}', now + 10), null);
  });

  it('refuses a changed body, a stale or future timestamp, an unknown serial, a foreign type, missing headers', () => {
    assert.match(verifyV3(keys, signed('{"a":1}'), '{"a":2}', now) ?? '', /does not verify/);
    assert.match(verifyV3(keys, signed('{}', now - 301), '{}', now) ?? '', /stale/);
    assert.match(verifyV3(keys, signed('{}', now + 301), '{}', now) ?? '', /stale/);
    assert.equal(verifyV3(keys, signed('{}', now - 300), '{}', now), null);
    assert.match(
      verifyV3(keys, signed('{}', now, 'PUB_KEY_ID_OTHER'), '{}', now) ?? '',
      /unknown Wechatpay-Serial/,
    );
    assert.match(
      verifyV3(keys, { ...signed('{}'), 'Wechatpay-Signature-Type': 'WECHATPAY2-SM2-WITH-SM3' }, '{}', now) ??
        '',
      /unsupported signature type/,
    );
    assert.match(verifyV3(keys, {}, '{}', now) ?? '', /no Wechatpay/);
    const probe = { ...signed('{}'), 'Wechatpay-Signature': 'WECHATPAY/SIGNTEST/abcdef' };
    assert.match(verifyV3(keys, probe, '{}', now) ?? '', /does not verify/);
  });

  // Built independently with Python's cryptography (AESGCM, key V3_KEY, nonce fYbmXFTbEmEs, AAD "transaction").
  const CIPHERTEXT =
    'iEul1HFMcchIaEXYYgqjHvlhEaaUl1dS60++mIEdJl2rEUGqmKzt/X8Az6wCdnwVt8uPxsn06BAfAffZFSYq23ScfDLAHAdOzUudVqm3Lclt' +
    'rOH+6dnE//nTzxhkW8LhDZTDkbxM94APO7vBJDaZGjwTjtRrQxl6XIT7/xyGx6N+L2nvo4EH94+wHabDThmTxyPuGykwww/dsk1bBkiNdqXe' +
    '29qbdHiM8OPYVXWOrMalYyycA1/0gQBID6S3GQUpNIMoGbSuV0PzegpsckDJpeK0fYLiKv/p9pK0O23LqFJX0T8ufYhCoeEMibHOBdRdh2md' +
    'a0Q55+XpAuQv0i53Tmr/nngThhziE94+4EDfEExIU+z9tt04kJqBNB7FxYPOjLWnGkgNBDVkhr5ZjVgE0d2u/SJVBlWDAoZQ49lr/7gr53rjC' +
    '+/ii0pi4iuvSuEegIgaSamO9eSxybsWBeqPE6PCkLojHNKPYpmJpwJytUmhCcw=';
  const resource = {
    algorithm: 'AEAD_AES_256_GCM',
    ciphertext: CIPHERTEXT,
    nonce: 'fYbmXFTbEmEs',
    associated_data: 'transaction',
  };

  it('decrypts a known AEAD_AES_256_GCM resource', () => {
    const plain = JSON.parse(decryptResource(V3_KEY, resource).toString('utf8')) as Record<string, unknown>;
    assert.equal(plain['out_trade_no'], 'MZ20240301000001');
    assert.equal(plain['trade_state'], 'SUCCESS');
    assert.deepEqual(plain['amount'], {
      total: 1234,
      payer_total: 1234,
      currency: 'CNY',
      payer_currency: 'CNY',
    });
  });

  it('refuses a tampered tag or ciphertext, another AAD, nonce or key, another algorithm', () => {
    const raw = Buffer.from(CIPHERTEXT, 'base64');
    const flip = (i: number) => {
      const b = Buffer.from(raw);
      b[i] = (b[i] as number) ^ 1;
      return b.toString('base64');
    };
    assert.throws(() => decryptResource(V3_KEY, { ...resource, ciphertext: flip(raw.length - 1) }));
    assert.throws(() => decryptResource(V3_KEY, { ...resource, ciphertext: flip(0) }));
    assert.throws(() => decryptResource(V3_KEY, { ...resource, associated_data: 'refund' }));
    assert.throws(() => decryptResource(V3_KEY, { ...resource, nonce: 'fYbmXFTbEmEt' }));
    assert.throws(() => decryptResource(V3_KEY.replace(/1$/, '2'), resource));
    assert.throws(() => decryptResource(V3_KEY, { ...resource, algorithm: 'AES_128_CBC' }), /unsupported/);
  });
});

// ------------------------------------------------------------------ against the fake

type Rewrite = (req: HttpRequest, res: HttpResponse) => HttpResponse;

interface Rig {
  fake: WechatFake;
  channel: WechatChannel;
  merchant: Record<string, string>;
  ctx: ReturnType<typeof conformanceContext>;
  setRewrite(f: Rewrite | null): void;
}

async function rig(
  fakeOpts: Partial<WechatFakeOptions> = {},
  merchantOver: (m: Record<string, string>, fake: WechatFake) => Record<string, string> = (m) => m,
  channelOpts: ConstructorParameters<typeof WechatChannel>[2] = {},
): Promise<Rig> {
  const material = makeWechatMaterial(MCH_ID);
  const fake = await startWechatFake({
    mchId: MCH_ID,
    appId: APP_ID,
    apiV3Key: V3_KEY,
    apiV2Key: V2_KEY,
    signTypeV2: 'MD5',
    material,
    mode: 'public_key',
    tls: false,
    ...fakeOpts,
  });
  const base: Record<string, string> = {
    mch_id: MCH_ID,
    app_id: APP_ID,
    api_v3_key: V3_KEY,
    api_v2_key: V2_KEY,
    merchant_private_key: material.merchantKey,
    merchant_serial_no: material.merchantSerial,
    wechatpay_public_key: material.wechatPublicKey,
    wechatpay_public_key_id: material.wechatPublicKeyId,
    client_cert_pem: material.merchantCert,
    api_base_url: fake.url,
    timeout_ms: '1000',
    sign_type_v2: fakeOpts.signTypeV2 ?? 'MD5',
  };
  const merchant = merchantOver(base, fake);
  let rewrite: Rewrite | null = null;
  const http: HttpClient = async (req) => {
    const res = await httpRequest({ ...req, tls: { ...req.tls, ca: material.caCert } });
    return rewrite ? rewrite(req, res) : res;
  };
  const channel = new WechatChannel(http, systemClock, channelOpts);
  const ctx = conformanceContext(
    withDefaults(wechatDefinition.fields, merchant),
    'https://hospay.example/channels/wechat/notify/APP1',
  );
  return { fake, channel, merchant, ctx, setRewrite: (f) => (rewrite = f) };
}

let seq = 0;
const no = () => `MZUT${Date.now().toString(36).toUpperCase()}${String(++seq).padStart(3, '0')}`;
const code = () =>
  `134${String(crypto.randomInt(1e9)).padStart(9, '0')}${String(crypto.randomInt(1e6)).padStart(6, '0')}`;
const today = () => new Date(Date.now() + 8 * 3600_000).toISOString().slice(0, 10);

describe('wechat notifications (parseNotify)', () => {
  let r: Rig;
  before(async () => {
    r = await rig();
  });
  after(() => r.fake.close());

  const paidTrade = async () => {
    const n = no();
    const p = await r.channel.precreate(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(500),
      subject: '挂号费',
      expiresAt: new Date(Date.now() + 600_000),
    });
    assert.equal(p.kind, 'created');
    r.fake.setTrade(n, 'paid');
    return n;
  };

  it('a genuine TRANSACTION.SUCCESS names the trade and is answered 204 empty', async () => {
    const n = await paidTrade();
    const a = await r.channel.parseNotify(r.ctx, r.fake.notification(n));
    assert.deepEqual(a, {
      kind: 'trade',
      outTradeNo: n,
      ack: { status: 204, contentType: 'text/plain', body: '' },
    });
    const again = await r.channel.parseNotify(r.ctx, r.fake.notification(n));
    assert.equal(again.kind, 'trade');
  });

  const rejected = async (n: string, opts: Parameters<WechatFake['notification']>[1], why: RegExp) => {
    const a = await r.channel.parseNotify(r.ctx, r.fake.notification(n, opts));
    assert.equal(a.kind, 'rejected', JSON.stringify(a));
    if (a.kind === 'rejected') assert.match(a.reason, why);
    assert.equal(a.ack.status, 500);
    assert.equal(a.ack.contentType, 'application/json');
    const body = JSON.parse(a.ack.body) as { code: string; message: string };
    assert.equal(body.code, 'FAIL');
    assert.ok(body.message.length > 0);
  };

  it('a stale timestamp (over 5 minutes) is rejected', async () => {
    await rejected(await paidTrade(), { timestampOffsetS: -301 }, /stale/);
  });

  it('an unknown serial is rejected', async () => {
    await rejected(
      await paidTrade(),
      { serial: 'PUB_KEY_ID_0000000000000000000000000000' },
      /unknown Wechatpay-Serial/,
    );
  });

  it('a changed body is rejected', async () => {
    await rejected(await paidTrade(), { tamper: true }, /does not verify/);
  });

  it('a tampered GCM tag (signature intact) is rejected by decryption', async () => {
    await rejected(await paidTrade(), { tamperTag: true }, /decryption failed/);
  });

  it('a resource under another APIv3 key is rejected', async () => {
    await rejected(await paidTrade(), { apiV3Key: 'x'.repeat(32) }, /decryption failed/);
  });

  it('other event types are acknowledged and ignored', async () => {
    const a = await r.channel.parseNotify(
      r.ctx,
      r.fake.notification(await paidTrade(), { eventType: 'REFUND.SUCCESS' }),
    );
    assert.equal(a.kind, 'ignored');
    assert.equal(a.ack.status, 204);
  });

  it('notifications are recorded without the ciphertext, openid or AppID', () => {
    const notes = r.ctx.calls.filter((c) => c.operation.startsWith('notify'));
    assert.ok(notes.length >= 5);
    const text = JSON.stringify(notes);
    assert.ok(!text.includes('oUpF8uMuAJO_M2pxb1Q9zNjWeS6o'));
    assert.ok(!text.includes(APP_ID));
    assert.ok(notes.some((c) => c.outcome.startsWith('rejected')));
  });
});

describe('wechat configuration checks', () => {
  const material = makeWechatMaterial(MCH_ID);
  const good: Record<string, string> = {
    mch_id: MCH_ID,
    app_id: APP_ID,
    api_v3_key: V3_KEY,
    api_v2_key: V2_KEY,
    merchant_private_key: material.merchantKey,
    merchant_serial_no: material.merchantSerial,
    wechatpay_public_key: material.wechatPublicKey,
    wechatpay_public_key_id: material.wechatPublicKeyId,
    client_cert_p12: material.merchantP12Base64,
  };
  const problems = (values: Record<string, string>) => checkChannelConfig(wechatDefinition.fields, values);
  const fieldsWithProblems = (values: Record<string, string>) => problems(values).map((p) => p.field);

  it('a complete configuration (public key mode, p12) has no problem; defaults fill in', () => {
    assert.deepEqual(problems(good), []);
    const d = withDefaults(wechatDefinition.fields, good);
    assert.equal(d['verify_mode'], 'public_key');
    assert.equal(d['api_base_url'], 'https://api.mch.weixin.qq.com');
    assert.equal(d['timeout_ms'], '10000');
    assert.equal(d['sign_type_v2'], 'HMAC-SHA256');
    assert.deepEqual(wechatDefinition.payTypes, ['weixin']);
    assert.equal(wechatDefinition.zh, '微信支付');
  });

  it('platform certificate mode needs platform_certs, and reads them', () => {
    const { wechatpay_public_key: _k, wechatpay_public_key_id: _i, ...rest } = good;
    assert.deepEqual(fieldsWithProblems({ ...rest, verify_mode: 'platform_cert' }), ['mch_id']);
    assert.deepEqual(
      problems({ ...rest, verify_mode: 'platform_cert', platform_certs: material.platformCert }),
      [],
    );
    assert.deepEqual(
      fieldsWithProblems({ ...rest, verify_mode: 'platform_cert', platform_certs: 'nonsense' }),
      ['platform_certs'],
    );
  });

  it('public key mode (the default) needs the key and its id; messages are 中文 / English', () => {
    const { wechatpay_public_key: _k, ...rest } = good;
    const p = problems(rest);
    assert.deepEqual(
      p.map((x) => x.field),
      ['mch_id'],
    );
    assert.match(p[0]?.zh ?? '', /须设置 wechatpay_public_key/);
    assert.match(p[0]?.en ?? '', /needs wechatpay_public_key/);
  });

  it('each field refuses what is not its kind', () => {
    const cases: Array<[string, string]> = [
      ['mch_id', 'abc'],
      ['app_id', 'ww12345'],
      ['api_v3_key', 'x'.repeat(31)],
      ['api_v2_key', 'x'.repeat(33)],
      ['merchant_private_key', '-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----'],
      ['merchant_serial_no', 'not-hex'],
      ['verify_mode', 'both'],
      ['wechatpay_public_key', 'not a key'],
      ['wechatpay_public_key_id', 'KEY_1'],
      ['api_base_url', 'https://api.mch.weixin.qq.com/v3'],
      ['timeout_ms', '50'],
      ['sign_type_v2', 'SHA1'],
    ];
    for (const [field, value] of cases) {
      const p = problems({ ...good, client_cert_p12_passphrase: MCH_ID, [field]: value });
      assert.deepEqual(
        p.map((x) => x.field),
        [field],
        `${field}=${value}`,
      );
      assert.ok((p[0]?.zh ?? '') !== (p[0]?.en ?? ''), `${field}: both languages`);
    }
  });

  it('a 1024-bit merchant key is refused', () => {
    const legacy = fs.readFileSync(new URL('test-legacy-1024.pem', KEYS), 'utf8');
    const p = problems({ ...good, merchant_private_key: legacy });
    assert.deepEqual(
      p.map((x) => x.field),
      ['merchant_private_key'],
    );
    assert.match(p[0]?.en ?? '', /1024 bits/);
  });

  it('client certificates: p12 passphrase, legacy p12, PEM pair, not both', () => {
    assert.deepEqual(fieldsWithProblems({ ...good, client_cert_p12_passphrase: 'wrong' }), [
      'client_cert_p12',
    ]);
    assert.deepEqual(problems({ ...good, client_cert_p12_passphrase: MCH_ID }), []);
    const { client_cert_p12: _p, ...noP12 } = good;
    assert.deepEqual(problems({ ...noP12, client_cert_pem: material.merchantCert }), []); // key: the merchant key
    assert.deepEqual(
      problems({ ...noP12, client_cert_pem: material.merchantCert, client_key_pem: material.merchantKey }),
      [],
    );
    assert.deepEqual(
      fieldsWithProblems({ ...noP12, client_cert_pem: material.merchantCert, client_key_pem: TEST_KEY }),
      ['client_cert_pem'],
    );
    assert.deepEqual(fieldsWithProblems({ ...good, client_cert_pem: material.merchantCert }), ['mch_id']);
    assert.deepEqual(fieldsWithProblems({ ...noP12, client_key_pem: material.merchantKey }), ['mch_id']);
  });

  it('a legacy (RC2/3DES) p12, as older downloads are, is refused with what to do', (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-wx-p12-'));
    try {
      fs.writeFileSync(path.join(dir, 'c.pem'), material.merchantCert);
      fs.writeFileSync(path.join(dir, 'k.pem'), material.merchantKey);
      try {
        execFileSync(
          'openssl',
          [
            'pkcs12',
            '-export',
            '-legacy',
            '-in',
            path.join(dir, 'c.pem'),
            '-inkey',
            path.join(dir, 'k.pem'),
            '-out',
            path.join(dir, 'l.p12'),
            '-passout',
            `pass:${MCH_ID}`,
          ],
          { stdio: 'ignore' },
        );
      } catch {
        t.skip('this openssl cannot write a legacy PKCS#12');
        return;
      }
      const p = problems({
        ...good,
        client_cert_p12: fs.readFileSync(path.join(dir, 'l.p12')).toString('base64'),
      });
      assert.deepEqual(
        p.map((x) => x.field),
        ['client_cert_p12'],
      );
      assert.match(p[0]?.en ?? '', /legacy .*client_cert_pem/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('platform certificates are used while valid only', () => {
    const cfg = loadConfig({ ...good, verify_mode: 'platform_cert', platform_certs: material.platformCert });
    assert.equal(verifierKeys(cfg, new Date()).size, 1);
    assert.equal(verifierKeys(cfg, new Date(Date.now() + 5 * 86_400_000)).size, 0);
    // Public key mode keeps the platform certificate too (WeChat signs with either while a merchant switches).
    const both = loadConfig({ ...good, platform_certs: material.platformCert });
    assert.equal(verifierKeys(both, new Date()).size, 2);
  });
});

describe('wechat adapter against the fake (HTTP, MD5 v2 signing)', () => {
  let r: Rig;
  before(async () => {
    r = await rig({ signTypeV2: 'MD5' }, (m) => m, { refundPollMs: [100, 100, 100] });
  });
  after(() => r.fake.close());
  const ref = (n: string) => ({ outTradeNo: n, payType: 'weixin' as const });

  it('micropay with MD5: paid, our request verified, no auth code or openid in the record', async () => {
    const n = no();
    const c = code();
    const p = await r.channel.barcodePay(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(1999),
      authCode: c,
      subject: '药费',
    });
    assert.equal(p.kind, 'paid', JSON.stringify(p));
    assert.equal(r.fake.requests().at(-1)?.signatureValid, true);
    const text = JSON.stringify(r.ctx.calls);
    assert.ok(!text.includes(c));
    assert.ok(!text.includes('oUpF8uMuAJO_M2pxb1Q9zNjWeS6o'));
    assert.ok(!text.includes(APP_ID));
  });

  it('micropay: ORDERPAID (an earlier attempt paid) is unknown, so the platform queries', async () => {
    const n = no();
    await r.channel.barcodePay(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(100),
      authCode: code(),
      subject: 'x',
    });
    const again = await r.channel.barcodePay(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(100),
      authCode: code(),
      subject: 'x',
    });
    assert.deepEqual(again, { kind: 'unknown', reason: 'err_code ORDERPAID' });
  });

  it('micropay: an invalid code is a decline with WeChat’s message', async () => {
    const d = await r.channel.barcodePay(r.ctx, {
      outTradeNo: no(),
      payType: 'weixin',
      amountFen: fen(100),
      authCode: '99',
      subject: 'x',
    });
    assert.equal(d.kind, 'declined');
    if (d.kind === 'declined') {
      assert.equal(d.code, 'AUTH_CODE_INVALID');
      assert.equal(d.zh, '付款码无效，请重新扫码');
    }
  });

  it('micropay: a correctly signed SUCCESS for another amount is not taken as paid', async () => {
    r.setRewrite((req, res) => {
      if (!req.url.endsWith('/pay/micropay')) return res;
      const f = parseV2Xml(res.body.toString('utf8'));
      f['total_fee'] = '1';
      f['cash_fee'] = '1';
      f['sign'] = v2Sign(f, V2_KEY, 'MD5');
      return { ...res, body: Buffer.from(buildV2Xml(f)) };
    });
    try {
      const p = await r.channel.barcodePay(r.ctx, {
        outTradeNo: no(),
        payType: 'weixin',
        amountFen: fen(100),
        authCode: code(),
        subject: 'x',
      });
      assert.equal(p.kind, 'unknown');
      if (p.kind === 'unknown') assert.match(p.reason, /amount differs/);
    } finally {
      r.setRewrite(null);
    }
  });

  it('v3: a correctly signed but stale answer is unknown', async () => {
    const n = no();
    await r.channel.barcodePay(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(100),
      authCode: code(),
      subject: 'x',
    });
    r.setRewrite((_req, res) => {
      const old = r.fake.signHeaders(res.body.toString('utf8'), {
        timestamp: Math.floor(Date.now() / 1000) - 400,
      });
      const headers: Record<string, string> = { ...res.headers };
      for (const [k, v] of Object.entries(old)) headers[k.toLowerCase()] = v;
      return { ...res, headers };
    });
    try {
      const q = await r.channel.query(r.ctx, ref(n));
      assert.equal(q.kind, 'unknown');
      if (q.kind === 'unknown') assert.match(q.reason, /stale/);
    } finally {
      r.setRewrite(null);
    }
    assert.equal((await r.channel.query(r.ctx, ref(n))).kind, 'paid');
  });

  it('v3: an unsigned 2xx answer is unknown', async () => {
    r.setRewrite((_req, res) => ({ ...res, headers: { 'content-type': 'application/json' } }));
    try {
      const q = await r.channel.query(r.ctx, ref(no()));
      assert.equal(q.kind, 'unknown');
    } finally {
      r.setRewrite(null);
    }
  });

  it('an unsigned 4xx (WeChat leaves some unsigned): an order refusal is shown, a query is unknown', async () => {
    const unsigned =
      (status: number, code: string): Rewrite =>
      () => ({
        status,
        headers: { 'content-type': 'application/json' },
        body: Buffer.from(JSON.stringify({ code, message: '参数错误' })),
      });
    r.setRewrite(unsigned(400, 'PARAM_ERROR'));
    try {
      const p = await r.channel.precreate(r.ctx, {
        outTradeNo: no(),
        payType: 'weixin',
        amountFen: fen(1),
        subject: 'x',
        expiresAt: new Date(Date.now() + 600_000),
      });
      assert.deepEqual(p, {
        kind: 'failed',
        code: 'PARAM_ERROR',
        zh: '参数错误',
        en: 'WeChat Pay refused the order: PARAM_ERROR (unsigned answer)',
        retryable: false,
      });
      r.setRewrite(unsigned(404, 'ORDER_NOT_EXIST'));
      assert.equal((await r.channel.query(r.ctx, ref(no()))).kind, 'unknown');
      r.setRewrite(unsigned(403, 'NOT_ENOUGH'));
      const n = no();
      const f = await r.channel.refund(r.ctx, {
        ...ref(n),
        outRequestNo: `${n}R1`,
        amountFen: fen(1),
        totalFen: fen(1),
      });
      assert.equal(f.kind, 'unknown');
    } finally {
      r.setRewrite(null);
    }
  });

  it('refund: a signed ABNORMAL is failed, for the merchant platform to handle', async () => {
    const n = no();
    await r.channel.barcodePay(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(100),
      authCode: code(),
      subject: 'x',
    });
    r.setRewrite((req, res) => {
      if (!req.url.endsWith('/v3/refund/domestic/refunds')) return res;
      const j = JSON.parse(res.body.toString('utf8')) as Record<string, unknown>;
      const body = JSON.stringify({ ...j, status: 'ABNORMAL' });
      const headers: Record<string, string> = { ...res.headers };
      for (const [k, v] of Object.entries(r.fake.signHeaders(body))) headers[k.toLowerCase()] = v;
      return { ...res, headers, body: Buffer.from(body) };
    });
    try {
      const f = await r.channel.refund(r.ctx, {
        ...ref(n),
        outRequestNo: `${n}R1`,
        amountFen: fen(100),
        totalFen: fen(100),
      });
      assert.equal(f.kind, 'failed');
      if (f.kind === 'failed') assert.equal(f.code, 'ABNORMAL');
    } finally {
      r.setRewrite(null);
    }
  });

  it('cancel of a trade the payer never confirmed closes it (reverse, then query)', async () => {
    const n = no();
    r.fake.script('pay', 'paying');
    const p = await r.channel.barcodePay(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(100),
      authCode: code(),
      subject: 'x',
    });
    assert.equal(p.kind, 'paying');
    assert.equal((await r.channel.query(r.ctx, ref(n))).kind, 'waiting');
    const c = await r.channel.cancel(r.ctx, ref(n));
    assert.deepEqual(c, { kind: 'closed' });
    assert.equal(r.fake.trade(n)?.state, 'closed');
  });

  it('cancel: a reverse refused for good is failed with the code; recall=Y is retry', async () => {
    const n = no();
    await r.channel.barcodePay(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(100),
      authCode: code(),
      subject: 'x',
    });
    r.fake.script('cancel', 'declined');
    const c = await r.channel.cancel(r.ctx, ref(n));
    assert.equal(c.kind, 'failed');
    if (c.kind === 'failed') assert.equal(c.code, 'REVERSE_EXPIRE');
    r.fake.script('cancel', 'system_error');
    assert.equal((await r.channel.cancel(r.ctx, ref(n))).kind, 'retry');
  });

  it('cancel without a client certificate configured is a retry naming the setting, nothing sent', async () => {
    const { client_cert_pem: _c, ...noCert } = r.ctx.merchant;
    const ctx = conformanceContext(noCert);
    const before = r.fake.requests().length;
    const c = await r.channel.cancel(ctx, ref(no()));
    assert.equal(c.kind, 'retry');
    if (c.kind === 'retry') assert.match(c.reason, /client certificate/);
    assert.equal(r.fake.requests().length, before);
  });

  it('query: REVOKED with a payment time is refunded; REFUND is refunded; CLOSED is closed', async () => {
    const a = no();
    await r.channel.barcodePay(r.ctx, {
      outTradeNo: a,
      payType: 'weixin',
      amountFen: fen(100),
      authCode: code(),
      subject: 'x',
    });
    assert.equal((await r.channel.cancel(r.ctx, ref(a))).kind, 'refunded');
    assert.equal((await r.channel.query(r.ctx, ref(a))).kind, 'refunded');
    const b = no();
    await r.channel.barcodePay(r.ctx, {
      outTradeNo: b,
      payType: 'weixin',
      amountFen: fen(100),
      authCode: code(),
      subject: 'x',
    });
    r.fake.setTrade(b, 'refunded');
    assert.equal((await r.channel.query(r.ctx, ref(b))).kind, 'refunded');
  });

  it('close: 204 is confirmed by a query; an order WeChat never saw is closed', async () => {
    const n = no();
    await r.channel.precreate(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(300),
      subject: 'x',
      expiresAt: new Date(Date.now() + 600_000),
    });
    assert.deepEqual(await r.channel.close(r.ctx, ref(n)), { kind: 'closed' });
    assert.deepEqual(await r.channel.close(r.ctx, ref(no())), { kind: 'closed' });
    const ops = r.ctx.calls.slice(-2).map((c) => c.operation);
    assert.deepEqual(ops, ['v3/pay/transactions/out-trade-no/close', 'v3/pay/transactions/out-trade-no']);
  });

  it('native: time_expire in RFC 3339 (+08:00) and the notify URL reach WeChat', async () => {
    const n = no();
    r.setRewrite((req, res) => {
      if (req.url.endsWith('/native')) {
        const body = JSON.parse(String(req.body)) as Record<string, unknown>;
        assert.equal(body['time_expire'], '2030-01-01T08:00:00+08:00');
        assert.equal(body['notify_url'], 'https://hospay.example/channels/wechat/notify/APP1');
        assert.deepEqual(body['amount'], { total: 300, currency: 'CNY' });
      }
      return res;
    });
    try {
      const p = await r.channel.precreate(r.ctx, {
        outTradeNo: n,
        payType: 'weixin',
        amountFen: fen(300),
        subject: 'x',
        expiresAt: new Date('2030-01-01T00:00:00Z'),
      });
      assert.equal(p.kind, 'created');
      if (p.kind === 'created') assert.match(p.codeUrl, /^weixin:\/\/wxpay\/bizpayurl\?pr=/);
    } finally {
      r.setRewrite(null);
    }
  });

  it('H5: h5_url with redirect_url appended (encoded)', async () => {
    const w = await r.channel.wapPay(r.ctx, {
      outTradeNo: no(),
      payType: 'weixin',
      amountFen: fen(300),
      subject: 'x',
      expiresAt: new Date(Date.now() + 600_000),
      returnUrl: 'https://his.example/back?order=1&x=y',
    });
    assert.equal(w.kind, 'created');
    if (w.kind === 'created')
      assert.match(w.codeUrl, /&redirect_url=https%3A%2F%2Fhis\.example%2Fback%3Forder%3D1%26x%3Dy$/);
  });

  it('refund: PROCESSING then SUCCESS on the refund query; a refund that stays PROCESSING is unknown', async () => {
    const n = no();
    await r.channel.barcodePay(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(1000),
      authCode: code(),
      subject: 'x',
    });
    const ok = await r.channel.refund(r.ctx, {
      ...ref(n),
      outRequestNo: `${n}R1`,
      amountFen: fen(400),
      totalFen: fen(1000),
    });
    assert.equal(ok.kind, 'success');
    r.fake.script('refund_query', 'stays_processing');
    const slow = await r.channel.refund(r.ctx, {
      ...ref(n),
      outRequestNo: `${n}R2`,
      amountFen: fen(100),
      totalFen: fen(1000),
    });
    // The first query was scripted to stay PROCESSING; the next one succeeds.
    assert.equal(slow.kind, 'success');
    const stuck = await rig({}, (m) => m, { refundPollMs: [] });
    try {
      const m = no();
      await stuck.channel.barcodePay(stuck.ctx, {
        outTradeNo: m,
        payType: 'weixin',
        amountFen: fen(1000),
        authCode: code(),
        subject: 'x',
      });
      const u = await stuck.channel.refund(stuck.ctx, {
        ...ref(m),
        outRequestNo: `${m}R1`,
        amountFen: fen(100),
        totalFen: fen(1000),
      });
      assert.equal(u.kind, 'unknown');
      if (u.kind === 'unknown') assert.match(u.reason, /PROCESSING/);
    } finally {
      await stuck.fake.close();
    }
    const over = await r.channel.refund(r.ctx, {
      ...ref(n),
      outRequestNo: `${n}R3`,
      amountFen: fen(600),
      totalFen: fen(1000),
    });
    assert.equal(over.kind, 'failed');
  });
});

describe('wechat platform certificate mode', () => {
  it('answers signed with the platform certificate verify; with an unknown key they do not', async () => {
    const material = makeWechatMaterial(MCH_ID);
    const cert = await rig({ mode: 'platform_cert' }, (m) => {
      const { wechatpay_public_key: _k, wechatpay_public_key_id: _i, ...rest } = m;
      return { ...rest, verify_mode: 'platform_cert', platform_certs: material.platformCert };
    });
    try {
      assert.deepEqual(checkChannelConfig(wechatDefinition.fields, cert.merchant), []);
      const n = no();
      const p = await cert.channel.barcodePay(cert.ctx, {
        outTradeNo: n,
        payType: 'weixin',
        amountFen: fen(100),
        authCode: code(),
        subject: 'x',
      });
      assert.equal(p.kind, 'paid');
      assert.equal((await cert.channel.query(cert.ctx, { outTradeNo: n, payType: 'weixin' })).kind, 'paid');
      const genuine = await cert.channel.parseNotify(cert.ctx, cert.fake.notification(n));
      assert.equal(genuine.kind, 'trade');
    } finally {
      await cert.fake.close();
    }
    // The fake signs with its public key (PUB_KEY_ID_…), the merchant trusts only the platform certificate.
    const mismatch = await rig({ mode: 'public_key' }, (m) => {
      const { wechatpay_public_key: _k, wechatpay_public_key_id: _i, ...rest } = m;
      return { ...rest, verify_mode: 'platform_cert', platform_certs: material.platformCert };
    });
    try {
      const q = await mismatch.channel.query(mismatch.ctx, { outTradeNo: no(), payType: 'weixin' });
      assert.equal(q.kind, 'unknown');
      if (q.kind === 'unknown') assert.match(q.reason, /unknown Wechatpay-Serial/);
    } finally {
      await mismatch.fake.close();
    }
  });
});

describe('wechat trade bill', () => {
  let r: Rig;
  before(async () => {
    r = await rig({ refundImmediate: true });
  });
  after(() => r.fake.close());

  it('downloads, checks the SHA1 and reads the bill with the real parser', async () => {
    const n = no();
    await r.channel.barcodePay(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(8888),
      authCode: code(),
      subject: '门诊缴费',
    });
    const rf = await r.channel.refund(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      outRequestNo: `${n}R1`,
      amountFen: fen(888),
      totalFen: fen(8888),
    });
    assert.equal(rf.kind, 'success');
    const bill = await r.channel.downloadBill(r.ctx, { date: today(), payType: 'weixin' });
    assert.equal(bill.payType, 'weixin');
    assert.equal(bill.date, today());
    const mine = bill.lines.filter((l) => l.outTradeNo === n);
    assert.deepEqual(
      mine.map((l) => [l.kind, l.amountFen, l.outRequestNo ?? '']),
      [
        ['payment', 8888, ''],
        ['refund', 888, `${n}R1`],
      ],
    );
    const ops = r.fake.requests().slice(-2);
    assert.deepEqual(
      ops.map((x) => [x.op, x.signatureValid]),
      [
        ['bill', true],
        ['bill_file', true],
      ],
    );
  });

  it('a file that does not match the signed hash is refused', async () => {
    r.fake.script('bill', 'bad_hash');
    await assert.rejects(
      r.channel.downloadBill(r.ctx, { date: today(), payType: 'weixin' }),
      /SHA1 does not match/,
    );
    assert.ok(r.ctx.calls.some((c) => c.outcome === 'failed: hash mismatch'));
  });

  it('a download URL on another host is not followed', async () => {
    r.setRewrite((req, res) => {
      if (!req.url.includes('/v3/bill/tradebill')) return res;
      const j = JSON.parse(res.body.toString('utf8')) as Record<string, string>;
      j['download_url'] = 'https://evil.example/v3/billdownload/file?token=x';
      const body = JSON.stringify(j);
      const headers: Record<string, string> = { ...res.headers };
      for (const [k, v] of Object.entries(r.fake.signHeaders(body))) headers[k.toLowerCase()] = v;
      return { ...res, headers, body: Buffer.from(body) };
    });
    try {
      await assert.rejects(
        r.channel.downloadBill(r.ctx, { date: today(), payType: 'weixin' }),
        /unusable download_url/,
      );
    } finally {
      r.setRewrite(null);
    }
  });

  it('a day without trades (NO_STATEMENT_EXIST) is an empty bill', async () => {
    const bill = await r.channel.downloadBill(r.ctx, { date: '2020-01-01', payType: 'weixin' });
    assert.deepEqual(bill.lines, []);
    assert.deepEqual(bill.summary, { paymentCount: 0, refundCount: 0, paymentFen: 0, refundFen: 0 });
  });
});

describe('wechat v2 reverse over TLS with the client certificate', () => {
  it('the certificate is presented and checked; one from elsewhere is refused (retry)', async () => {
    const r = await rig({ tls: true, signTypeV2: 'HMAC-SHA256' });
    try {
      const n = no();
      await r.channel.barcodePay(r.ctx, {
        outTradeNo: n,
        payType: 'weixin',
        amountFen: fen(100),
        authCode: code(),
        subject: 'x',
      });
      assert.equal((await r.channel.cancel(r.ctx, { outTradeNo: n, payType: 'weixin' })).kind, 'refunded');
      const seen = r.fake.requests().filter((x) => x.op === 'cancel');
      assert.deepEqual(
        seen.map((x) => [x.signatureValid, x.clientCert]),
        [[true, true]],
      );

      // A self-signed certificate (not issued to this merchant) is refused by the fake: the cancel is a retry.
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-wx-self-'));
      try {
        execFileSync(
          'openssl',
          [
            'req',
            '-x509',
            '-newkey',
            'rsa:2048',
            '-nodes',
            '-days',
            '1',
            '-subj',
            `/CN=${MCH_ID}`,
            '-keyout',
            path.join(dir, 'k.pem'),
            '-out',
            path.join(dir, 'c.pem'),
          ],
          { stdio: 'ignore' },
        );
        const ctx = conformanceContext({
          ...r.ctx.merchant,
          client_cert_pem: fs.readFileSync(path.join(dir, 'c.pem'), 'utf8'),
          client_key_pem: fs.readFileSync(path.join(dir, 'k.pem'), 'utf8'),
        });
        const m = no();
        await r.channel.barcodePay(ctx, {
          outTradeNo: m,
          payType: 'weixin',
          amountFen: fen(100),
          authCode: code(),
          subject: 'x',
        });
        const c = await r.channel.cancel(ctx, { outTradeNo: m, payType: 'weixin' });
        assert.equal(c.kind, 'retry', JSON.stringify(c));
        assert.equal(
          r.fake
            .requests()
            .filter((x) => x.op === 'cancel')
            .at(-1)?.clientCert,
          false,
        );
        assert.equal(r.fake.trade(m)?.state, 'paid');
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      await r.fake.close();
    }
  });
});

// ------------------------------------------------------------------ JSAPI, OAuth2 and service-provider mode

const SP_MCH = '1900000109';
const SUB_MCH = '1900000209';
const SUB_APP = 'wxd678efh567hg6999';
const SECRET = '3a9c0d2f5e7b41c8a6d0f2e4b6c8d0e1';
const SUB_SECRET = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';

/** A complete configuration (the fake's keys) with the given changes. */
function configured(over: Record<string, string> = {}): Record<string, string> {
  const material = makeWechatMaterial(MCH_ID);
  return withDefaults(wechatDefinition.fields, {
    mch_id: MCH_ID,
    app_id: APP_ID,
    api_v3_key: V3_KEY,
    api_v2_key: V2_KEY,
    merchant_private_key: material.merchantKey,
    merchant_serial_no: material.merchantSerial,
    wechatpay_public_key: material.wechatPublicKey,
    wechatpay_public_key_id: material.wechatPublicKeyId,
    ...over,
  });
}

describe('wechat JSAPI bridge parameters (known answer)', () => {
  const PREPAY = 'wx201410272009395522657a690389285100';
  const NONCE = '593BEC0C930BF1AFEB40B4A08C8FB242';
  const AT = new Date(1709259000 * 1000);

  it('v3: signType RSA, paySign = SHA256withRSA over appId, timeStamp, nonceStr, package (each + \\n)', () => {
    // Expected value computed independently with the OpenSSL CLI:
    //   printf 'wxd930ea5d5a258f4f\n1709259000\n593BEC0C930BF1AFEB40B4A08C8FB242\nprepay_id=wx2014…5100\n' |
    //     openssl dgst -sha256 -sign test/fixtures/keys/test-app-2048.pem | base64 -w0
    const PAY_SIGN =
      'JIS0tYI2YtQmZBpnDELQJfBov0EPJH+kateE8c9dD9WLS3WpyFc1OMk/ykLrOdN/towgb9JiJxSfEKiLNxP7k21gQdyU8Jm6SKKyiB74HoL26Xxa2emnQK0nAeiyFXEB5ZrQFxBFv7po0HyItxCeotaftF039CbsOAa1jZOVXY+sS0xot0RsW8AbFa3LONQ6DttISFWlTDSpMFh9lS6z+trOcyOmRV+IM48UIQ6K1s16x7X5Sz3K9LmL+lMQ1+CS1elezu8lopIHvvrHd4g8TdQJxP3fFUg0RFT2XXx90FQjSL826T6DagGkxYySmyY1KsIf+I36t2zgpSgckXmzvg==';
    const cfg = loadConfig(configured({ merchant_private_key: TEST_KEY }));
    const b = bridgeParams(cfg, 'v3', APP_ID, PREPAY, AT, NONCE);
    assert.deepEqual(b, {
      appId: APP_ID,
      timeStamp: '1709259000',
      nonceStr: NONCE,
      package: `prepay_id=${PREPAY}`,
      signType: 'RSA',
      paySign: PAY_SIGN,
    });
    const message = `${APP_ID}\n1709259000\n${NONCE}\nprepay_id=${PREPAY}\n`;
    assert.ok(crypto.verify('sha256', Buffer.from(message), TEST_PUB, Buffer.from(PAY_SIGN, 'base64')));
  });

  it('v2: paySign = the v2 sign over exactly appId, nonceStr, package, signType, timeStamp (MD5, HMAC-SHA256)', () => {
    // The signing string written out by hand, hashed with node:crypto (and with the OpenSSL CLI: the same hex).
    const s = (type: string) =>
      `appId=${APP_ID}&nonceStr=${NONCE}&package=prepay_id=${PREPAY}&signType=${type}&timeStamp=1709259000` +
      `&key=${V2_KEY}`;
    const md5 = crypto.createHash('md5').update(s('MD5')).digest('hex').toUpperCase();
    const hmac = crypto.createHmac('sha256', V2_KEY).update(s('HMAC-SHA256')).digest('hex').toUpperCase();
    assert.equal(md5, '48EB5A45E9C7BA936F25ECB755F50BA2');
    assert.equal(hmac, 'EE1C3744A86BABD19D8E17D6C31DE7680B0679864B739B70536097EC053E4DF9');
    for (const [type, want] of [
      ['MD5', md5],
      ['HMAC-SHA256', hmac],
    ] as const) {
      const cfg = loadConfig(configured({ sign_type_v2: type }));
      const b = bridgeParams(cfg, { v2Key: V2_KEY }, APP_ID, PREPAY, AT, NONCE);
      assert.deepEqual(b, {
        appId: APP_ID,
        nonceStr: NONCE,
        package: `prepay_id=${PREPAY}`,
        signType: type,
        timeStamp: '1709259000',
        paySign: want,
      });
    }
  });
});

describe('wechat service-provider (partner) request shapes', () => {
  const input = {
    outTradeNo: 'MZ20240301000009',
    payType: 'weixin' as const,
    amountFen: fen(2020),
    subject: '住院预交金',
    expiresAt: new Date('2024-03-01T02:30:00Z'),
  };
  const partner = loadConfig(
    configured({ mode: 'partner', sub_mchid: SUB_MCH, sub_appid: SUB_APP, sub_app_secret: SUB_SECRET }),
  );
  const partnerNoSubApp = loadConfig(configured({ mode: 'partner', sub_mchid: SUB_MCH }));
  const direct = loadConfig(configured());

  it('JSAPI: partner with sub_appid sends sub_openid; without it sp_openid; direct sends openid', () => {
    assert.equal(orderPath(partner, 'jsapi'), '/v3/pay/partner/transactions/jsapi');
    assert.deepEqual(
      orderRequest(partner, input, 'https://h.example/n', 'jsapi', '203.0.113.7', 'oSUB_openid_1'),
      {
        sp_appid: APP_ID,
        sp_mchid: SP_MCH,
        sub_appid: SUB_APP,
        sub_mchid: SUB_MCH,
        description: '住院预交金',
        out_trade_no: 'MZ20240301000009',
        time_expire: '2024-03-01T10:30:00+08:00',
        notify_url: 'https://h.example/n',
        amount: { total: 2020, currency: 'CNY' },
        scene_info: { payer_client_ip: '203.0.113.7' },
        payer: { sub_openid: 'oSUB_openid_1' },
      },
    );
    const sp = orderRequest(
      partnerNoSubApp,
      input,
      'https://h.example/n',
      'jsapi',
      undefined,
      'oSP_openid_1',
    );
    assert.deepEqual((sp as { payer?: unknown }).payer, { sp_openid: 'oSP_openid_1' });
    assert.ok(!('sub_appid' in sp) && !('scene_info' in sp) && !('appid' in sp) && !('mchid' in sp));
    assert.equal(orderPath(direct, 'jsapi'), '/v3/pay/transactions/jsapi');
    const d = orderRequest(direct, input, 'https://h.example/n', 'jsapi', undefined, 'oDIRECT_1');
    assert.deepEqual((d as { payer?: unknown }).payer, { openid: 'oDIRECT_1' });
    assert.ok(!('sp_mchid' in d) && !('sub_mchid' in d));
  });

  it('native and H5 go to the partner endpoints with the sub-merchant, no payer', () => {
    assert.equal(orderPath(partner, 'native'), '/v3/pay/partner/transactions/native');
    assert.equal(orderPath(partner, 'h5'), '/v3/pay/partner/transactions/h5');
    const h5 = orderRequest(partner, input, 'https://h.example/n', 'h5', '203.0.113.7');
    assert.deepEqual((h5 as { scene_info?: unknown }).scene_info, {
      payer_client_ip: '203.0.113.7',
      h5_info: { type: 'Wap' },
    });
    assert.ok(!('payer' in h5));
    assert.equal((h5 as { sub_mchid?: string }).sub_mchid, SUB_MCH);
  });

  it('query, close, refund, refund query and bill name the sub-merchant', () => {
    assert.equal(
      queryPath(partner, 'MZ/1'),
      `/v3/pay/partner/transactions/out-trade-no/MZ%2F1?sp_mchid=${SP_MCH}&sub_mchid=${SUB_MCH}`,
    );
    assert.equal(queryPath(direct, 'MZ1'), `/v3/pay/transactions/out-trade-no/MZ1?mchid=${MCH_ID}`);
    assert.deepEqual(closeCall(partner, 'MZ1'), {
      path: '/v3/pay/partner/transactions/out-trade-no/MZ1/close',
      body: { sp_mchid: SP_MCH, sub_mchid: SUB_MCH },
    });
    assert.deepEqual(closeCall(direct, 'MZ1').body, { mchid: MCH_ID });
    const refund = { ...input, outRequestNo: 'MZ1R1', totalFen: fen(2020), amountFen: fen(20) };
    assert.deepEqual(refundRequest(refund, partner), {
      sub_mchid: SUB_MCH,
      out_trade_no: input.outTradeNo,
      out_refund_no: 'MZ1R1',
      amount: { refund: 20, total: 2020, currency: 'CNY' },
    });
    assert.ok(!('sub_mchid' in refundRequest(refund, direct)));
    assert.equal(refundQueryPath(partner, 'MZ1R1'), `/v3/refund/domestic/refunds/MZ1R1?sub_mchid=${SUB_MCH}`);
    assert.equal(refundQueryPath(direct, 'MZ1R1'), '/v3/refund/domestic/refunds/MZ1R1');
    assert.equal(
      billPath(partner, '2024-03-01'),
      `/v3/bill/tradebill?bill_date=2024-03-01&sub_mchid=${SUB_MCH}&bill_type=ALL`,
    );
    assert.equal(billPath(direct, '2024-03-01'), '/v3/bill/tradebill?bill_date=2024-03-01&bill_type=ALL');
  });

  it('v2 unifiedorder JSAPI: sub_openid with sub_appid, openid otherwise; time_expire yyyyMMddHHmmss Beijing', () => {
    const x = unifiedOrderRequest(
      partner,
      { ...input, payerId: 'oSUB_openid_1', payerClientIp: '203.0.113.7' },
      'https://h.example/n',
    );
    assert.deepEqual(x, {
      body: '住院预交金',
      out_trade_no: 'MZ20240301000009',
      total_fee: '2020',
      fee_type: 'CNY',
      spbill_create_ip: '203.0.113.7',
      time_expire: '20240301103000',
      notify_url: 'https://h.example/n',
      trade_type: 'JSAPI',
      sub_openid: 'oSUB_openid_1',
    });
    const y = unifiedOrderRequest(
      partnerNoSubApp,
      { ...input, payerId: 'oSP_openid_1' },
      'https://h.example/n',
    );
    assert.equal(y.openid, 'oSP_openid_1');
    assert.ok(!('sub_openid' in y));
  });
});

describe('wechat OAuth2 snsapi_base: the authorize URL', () => {
  const ctxOf = (m: Record<string, string>) => conformanceContext(m);
  const channel = new WechatChannel(httpRequest, systemClock);

  it('exact shape: parameters in WeChat’s order, redirect_uri and state encoded, #wechat_redirect', () => {
    const redirectUri = 'https://hospay.example/goto/T0K/payer?x=1&y=a b#frag';
    const url = channel.payerIdAuthorizeUrl(ctxOf(configured({ app_secret: SECRET })), {
      redirectUri,
      state: 'S1_a.b~c',
    });
    assert.equal(
      url,
      `https://open.weixin.qq.com/connect/oauth2/authorize?appid=${APP_ID}` +
        '&redirect_uri=https%3A%2F%2Fhospay.example%2Fgoto%2FT0K%2Fpayer%3Fx%3D1%26y%3Da%20b%23frag' +
        '&response_type=code&scope=snsapi_base&state=S1_a.b~c#wechat_redirect',
    );
    assert.equal(new URL(url ?? '').searchParams.get('redirect_uri'), redirectUri);
    assert.equal(
      authorizeUrl('https://o.example', 'wx1', 'https://a/b', 's'),
      'https://o.example/connect/oauth2/authorize?appid=wx1&redirect_uri=https%3A%2F%2Fa%2Fb&response_type=code&scope=snsapi_base&state=s#wechat_redirect',
    );
  });

  it('null without the AppSecret; partner mode uses sub_appid (and sub_app_secret) when set, else sp_appid', () => {
    const args = { redirectUri: 'https://hospay.example/p', state: 'S' };
    assert.equal(channel.payerIdAuthorizeUrl(ctxOf(configured()), args), null);
    const sub = channel.payerIdAuthorizeUrl(
      ctxOf(
        configured({ mode: 'partner', sub_mchid: SUB_MCH, sub_appid: SUB_APP, sub_app_secret: SUB_SECRET }),
      ),
      args,
    );
    assert.equal(new URL(sub ?? '').searchParams.get('appid'), SUB_APP);
    // sub_appid without its secret: the openid would be sub_appid's, which only its secret can ask for.
    assert.equal(
      channel.payerIdAuthorizeUrl(
        ctxOf(configured({ mode: 'partner', sub_mchid: SUB_MCH, sub_appid: SUB_APP, app_secret: SECRET })),
        args,
      ),
      null,
    );
    const sp = channel.payerIdAuthorizeUrl(
      ctxOf(configured({ mode: 'partner', sub_mchid: SUB_MCH, app_secret: SECRET })),
      args,
    );
    assert.equal(new URL(sp ?? '').searchParams.get('appid'), APP_ID);
  });

  it('a redirect that is not an absolute http(s) URL, or an unusual state, is refused', () => {
    const ctx = ctxOf(configured({ app_secret: SECRET }));
    assert.throws(
      () => channel.payerIdAuthorizeUrl(ctx, { redirectUri: 'javascript:alert(1)', state: 'S' }),
      RangeError,
    );
    assert.throws(() => channel.payerIdAuthorizeUrl(ctx, { redirectUri: '/goto/x', state: 'S' }), RangeError);
    assert.throws(
      () => channel.payerIdAuthorizeUrl(ctx, { redirectUri: 'https://h.example/', state: 'a&b=c' }),
      RangeError,
    );
  });
});

describe('wechat OAuth2 and JSAPI against the fake', () => {
  let r: Rig;
  before(async () => {
    r = await rig(
      { oauthApps: { [APP_ID]: SECRET }, oauthDomains: ['hospay.example'], signTypeV2: 'MD5' },
      (m, f) => ({
        ...m,
        app_secret: SECRET,
        oauth_base_url: f.url,
        sns_base_url: f.url,
      }),
    );
  });
  after(() => r.fake.close());

  /** Opens the authorize URL as the WeChat browser would and returns where WeChat sends it back. */
  const visit = async (url: string): Promise<URL> => {
    const res = await fetch(url, { redirect: 'manual' });
    assert.equal(res.status, 302, await res.text());
    return new URL(res.headers.get('location') ?? '');
  };

  it('authorize → our redirect with code and state → the payer’s openid, once per code', async () => {
    r.fake.asUser('alice');
    const url = r.channel.payerIdAuthorizeUrl(r.ctx, {
      redirectUri: 'https://hospay.example/goto/T1/payer?a=1',
      state: 'ST1',
    });
    const back = await visit(url ?? '');
    assert.equal(back.origin + back.pathname, 'https://hospay.example/goto/T1/payer');
    assert.equal(back.searchParams.get('a'), '1');
    assert.equal(back.searchParams.get('state'), 'ST1');
    assert.deepEqual(
      { ...r.fake.oauthVisits().at(-1), redirectUri: '' },
      {
        appid: APP_ID,
        scope: 'snsapi_base',
        redirectUri: '',
        state: 'ST1',
        order: 'appid,redirect_uri,response_type,scope,state',
        redirected: true,
      },
    );
    const code = back.searchParams.get('code') ?? '';
    const ok = await r.channel.payerIdFromCode(r.ctx, { code });
    assert.deepEqual(ok, { kind: 'ok', payerId: r.fake.openidFor(APP_ID, 'alice') });
    const again = await r.channel.payerIdFromCode(r.ctx, { code });
    assert.equal(again.kind, 'failed');
    if (again.kind === 'failed') assert.equal(again.code, '40163');
    // Neither the secret, the code, the access token nor the openid reaches a record.
    const text = JSON.stringify(r.ctx.calls);
    for (const secret of [SECRET, code, r.fake.openidFor(APP_ID, 'alice')])
      assert.ok(!text.includes(secret), secret);
    assert.ok(!/access_token"\s*:\s*"[^*]/.test(text), 'an access token reached a record');
    assert.ok(text.includes('sns/oauth2/access_token'), 'the exchange is recorded');
  });

  it('errors: 40029 invalid code is failed with its code; a wrong secret is 40125; a timeout is CHANNEL_UNKNOWN', async () => {
    const bad = await r.channel.payerIdFromCode(r.ctx, { code: 'NOT-A-CODE-0123' });
    assert.deepEqual(bad.kind === 'failed' && [bad.code, bad.zh.length > 0, bad.en.length > 0], [
      '40029',
      true,
      true,
    ]);
    const wrong = conformanceContext({ ...r.ctx.merchant, app_secret: SUB_SECRET });
    const back = await visit(
      r.channel.payerIdAuthorizeUrl(wrong, { redirectUri: 'https://hospay.example/p', state: 'S' }) ?? '',
    );
    const w = await r.channel.payerIdFromCode(wrong, { code: back.searchParams.get('code') ?? '' });
    assert.equal(w.kind === 'failed' && w.code, '40125');
    assert.ok(!JSON.stringify(wrong.calls).includes(SUB_SECRET));
    for (const behaviour of ['timeout', 'http_500', 'malformed'] as const) {
      r.fake.script('oauth_token', behaviour);
      const t = await r.channel.payerIdFromCode(r.ctx, { code: 'abcdef0123456789' });
      assert.equal(t.kind === 'failed' && t.code, 'CHANNEL_UNKNOWN', behaviour);
    }
    const none = await r.channel.payerIdFromCode(conformanceContext(configured()), { code: 'abcdef' });
    assert.equal(none.kind === 'failed' && none.code, 'CHANNEL_CONFIG');
  });

  it('a redirect_uri outside the 网页授权域名 gets WeChat’s error page, not a code', async () => {
    const url = r.channel.payerIdAuthorizeUrl(r.ctx, { redirectUri: 'https://evil.example/p', state: 'S' });
    const res = await fetch(url ?? '', { redirect: 'manual' });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /10003/);
  });

  it('v3 JSAPI: the bridge verifies; the openid never reaches a record; an openid of another AppID is refused', async () => {
    const openid = r.fake.openidFor(APP_ID, 'bob');
    const n = no();
    const x = await r.channel.inAppPay(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(2020),
      subject: '住院预交金',
      expiresAt: new Date(Date.now() + 600_000),
      payerId: openid,
    });
    assert.equal(x.kind, 'created', JSON.stringify(x));
    if (x.kind === 'created') {
      assert.equal(x.bridge['signType'], 'RSA');
      assert.equal(x.bridge['appId'], APP_ID);
      assert.ok(r.fake.verifyBridge(x.bridge));
    }
    assert.deepEqual(r.fake.payerOf(n), { field: 'openid', openid });
    assert.ok(!JSON.stringify(r.ctx.calls).includes(openid), 'the openid reached a call record');
    const other = await r.channel.inAppPay(r.ctx, {
      outTradeNo: no(),
      payType: 'weixin',
      amountFen: fen(1),
      subject: 'x',
      expiresAt: new Date(Date.now() + 600_000),
      payerId: r.fake.openidFor('wx0000000000000001', 'bob'),
    });
    assert.deepEqual(other.kind === 'failed' && [other.code, other.retryable], ['PARAM_ERROR', false]);
  });

  it('v2 JSAPI (jsapi_api v2, MD5): unifiedorder, an MD5 bridge, the v2 notification; failures mapped', async () => {
    const v2ctx = conformanceContext({ ...r.ctx.merchant, jsapi_api: 'v2' }, r.ctx.notifyUrl);
    const openid = r.fake.openidFor(APP_ID, 'carol');
    const input = (outTradeNo: string) => ({
      outTradeNo,
      payType: 'weixin' as const,
      amountFen: fen(3030),
      subject: '门诊缴费',
      expiresAt: new Date(Date.now() + 600_000),
      payerId: openid,
      payerClientIp: '203.0.113.9',
    });
    const n = no();
    const x = await v2ctxPay(r, v2ctx, input(n));
    assert.equal(x.kind, 'created', JSON.stringify(x));
    if (x.kind === 'created') {
      assert.equal(x.bridge['signType'], 'MD5');
      assert.ok(r.fake.verifyBridge(x.bridge));
      assert.equal(
        r.fake.verifyBridge({ ...x.bridge, timeStamp: String(Number(x.bridge['timeStamp']) + 1) }),
        false,
      );
    }
    assert.equal(r.fake.requests().at(-1)?.path, '/pay/unifiedorder');
    assert.equal(r.fake.requests().at(-1)?.signatureValid, true);
    assert.ok(!JSON.stringify(v2ctx.calls).includes(openid));
    r.fake.setTrade(n, 'paid');
    const note = await r.channel.parseNotify(v2ctx, r.fake.v2Notification(n));
    assert.equal(note.kind, 'trade');
    assert.equal(note.ack.status, 200);
    assert.match(note.ack.body, /<return_code><!\[CDATA\[SUCCESS\]\]><\/return_code>/);
    const tampered = await r.channel.parseNotify(v2ctx, r.fake.v2Notification(n, { tamper: true }));
    assert.equal(tampered.kind, 'rejected');
    assert.match(tampered.ack.body, /FAIL/);
    for (const [behaviour, code, retryable] of [
      ['system_error', 'SYSTEMERROR', true],
      ['declined', 'ORDERCLOSED', false],
      ['bad_signature', 'CHANNEL_UNKNOWN', true],
      ['malformed', 'CHANNEL_UNKNOWN', true],
      ['http_500', 'CHANNEL_UNKNOWN', true],
    ] as const) {
      r.fake.script('inapp', behaviour);
      const y = await v2ctxPay(r, v2ctx, input(no()));
      assert.deepEqual(y.kind === 'failed' && [y.code, y.retryable], [code, retryable], behaviour);
    }
  });
});

function v2ctxPay(
  r: Rig,
  ctx: ReturnType<typeof conformanceContext>,
  input: Parameters<WechatChannel['inAppPay']>[1],
) {
  return r.channel.inAppPay(ctx, input);
}

describe('wechat service-provider mode against the fake', () => {
  let r: Rig;
  before(async () => {
    r = await rig(
      {
        partner: { subMchId: SUB_MCH, subAppId: SUB_APP },
        oauthApps: { [SUB_APP]: SUB_SECRET },
        signTypeV2: 'HMAC-SHA256',
      },
      (m, f) => ({
        ...m,
        mode: 'partner',
        sub_mchid: SUB_MCH,
        sub_appid: SUB_APP,
        sub_app_secret: SUB_SECRET,
        sign_type_v2: 'HMAC-SHA256',
        oauth_base_url: f.url,
        sns_base_url: f.url,
      }),
    );
  });
  after(() => r.fake.close());

  it('the payer’s openid is sub_appid’s; the order carries sub_openid; the bridge names sub_appid', async () => {
    const back = await fetch(
      r.channel.payerIdAuthorizeUrl(r.ctx, { redirectUri: 'https://hospay.example/p', state: 'S' }) ?? '',
      { redirect: 'manual' },
    );
    const code = new URL(back.headers.get('location') ?? '').searchParams.get('code') ?? '';
    const payer = await r.channel.payerIdFromCode(r.ctx, { code });
    assert.equal(payer.kind, 'ok');
    if (payer.kind !== 'ok') return;
    assert.equal(payer.payerId, r.fake.openidFor(SUB_APP, 'patient-1'));
    const n = no();
    const x = await r.channel.inAppPay(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(5000),
      subject: '住院预交金',
      expiresAt: new Date(Date.now() + 600_000),
      payerId: payer.payerId,
    });
    assert.equal(x.kind, 'created', JSON.stringify(x));
    if (x.kind === 'created') {
      assert.equal(x.bridge['appId'], SUB_APP);
      assert.ok(r.fake.verifyBridge(x.bridge));
    }
    assert.equal(r.fake.requests().at(-1)?.path, '/v3/pay/partner/transactions/jsapi');
    assert.deepEqual(r.fake.payerOf(n), { field: 'sub_openid', openid: payer.payerId });
    r.fake.setTrade(n, 'paid');
    const q = await r.channel.query(r.ctx, { outTradeNo: n, payType: 'weixin' });
    assert.equal(q.kind, 'paid', JSON.stringify(q));
    assert.ok(!JSON.stringify(r.ctx.calls).includes(payer.payerId));
    assert.ok(!JSON.stringify(r.ctx.calls).includes(SUB_SECRET));
  });

  it('v2 micropay and v2 JSAPI carry sub_mch_id and sub_appid, and are accepted', async () => {
    const p = await r.channel.barcodePay(r.ctx, {
      outTradeNo: no(),
      payType: 'weixin',
      amountFen: fen(100),
      authCode: code(),
      subject: '药费',
    });
    assert.equal(p.kind, 'paid', JSON.stringify(p));
    const v2ctx = conformanceContext({ ...r.ctx.merchant, jsapi_api: 'v2' }, r.ctx.notifyUrl);
    const n = no();
    const x = await r.channel.inAppPay(v2ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(700),
      subject: '门诊缴费',
      expiresAt: new Date(Date.now() + 600_000),
      payerId: r.fake.openidFor(SUB_APP, 'dave'),
    });
    assert.equal(x.kind, 'created', JSON.stringify(x));
    if (x.kind === 'created') {
      assert.deepEqual([x.bridge['appId'], x.bridge['signType']], [SUB_APP, 'HMAC-SHA256']);
      assert.ok(r.fake.verifyBridge(x.bridge));
    }
    assert.deepEqual(r.fake.payerOf(n)?.field, 'sub_openid');
    r.fake.setTrade(n, 'paid');
    assert.equal((await r.channel.parseNotify(v2ctx, r.fake.v2Notification(n))).kind, 'trade');
    const other = await r.channel.parseNotify(v2ctx, r.fake.v2Notification(n, { subMchId: '1900000999' }));
    assert.equal(other.kind, 'rejected');
  });

  it('a notification naming another sub-merchant is rejected; ours names the trade', async () => {
    const n = no();
    await r.channel.precreate(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(300),
      subject: 'x',
      expiresAt: new Date(Date.now() + 600_000),
    });
    r.fake.setTrade(n, 'paid');
    assert.equal((await r.channel.parseNotify(r.ctx, r.fake.notification(n))).kind, 'trade');
    const other = await r.channel.parseNotify(r.ctx, r.fake.notification(n, { subMchId: '1900000999' }));
    assert.equal(other.kind, 'rejected');
    if (other.kind === 'rejected') assert.match(other.reason, /sub-merchant/);
  });

  it('a query answer for another sub-merchant is unknown, never paid', async () => {
    const n = no();
    await r.channel.precreate(r.ctx, {
      outTradeNo: n,
      payType: 'weixin',
      amountFen: fen(300),
      subject: 'x',
      expiresAt: new Date(Date.now() + 600_000),
    });
    r.fake.setTrade(n, 'paid');
    // The same configuration with another sub_mchid: the fake refuses the query (not its sub-merchant).
    const wrong = conformanceContext({ ...r.ctx.merchant, sub_mchid: '1900000999' });
    const q = await r.channel.query(wrong, { outTradeNo: n, payType: 'weixin' });
    assert.notEqual(q.kind, 'paid');
  });
});

describe('wechat configuration: mode, sub-merchant, AppSecret, JSAPI API', () => {
  const problems = (values: Record<string, string>) =>
    checkChannelConfig(wechatDefinition.fields, values).map((p) => `${p.field}: ${p.en}`);
  const base = () => {
    const m = configured();
    return Object.fromEntries(
      Object.entries(m).filter(([k]) => !['mode', 'jsapi_api', 'oauth_base_url', 'sns_base_url'].includes(k)),
    );
  };

  it('a direct configuration stored before this change is still valid and loads as direct', () => {
    assert.deepEqual(problems(base()), []);
    const cfg = loadConfig(base());
    assert.equal(cfg.mode, 'direct');
    assert.equal(cfg.partner, null);
    assert.deepEqual(cfg.payerApp, { appId: APP_ID, secret: null, kind: 'openid' });
    assert.equal(cfg.jsapiApi, 'v3');
    assert.equal(cfg.oauthBaseUrl, 'https://open.weixin.qq.com');
    assert.equal(cfg.snsBaseUrl, 'https://api.weixin.qq.com');
  });

  it('partner needs sub_mchid (not the provider’s own); direct refuses the sub-merchant fields', () => {
    assert.match(problems({ ...base(), mode: 'partner' }).join(), /mode partner needs sub_mchid/);
    assert.match(
      problems({ ...base(), mode: 'partner', sub_mchid: MCH_ID }).join(),
      /not the service provider/,
    );
    assert.deepEqual(problems({ ...base(), mode: 'partner', sub_mchid: SUB_MCH }), []);
    assert.match(problems({ ...base(), sub_mchid: SUB_MCH }).join(), /sub_mchid is for mode partner only/);
    assert.match(problems({ ...base(), sub_appid: SUB_APP }).join(), /sub_appid is for mode partner only/);
    assert.match(
      problems({ ...base(), mode: 'partner', sub_mchid: SUB_MCH, sub_app_secret: SUB_SECRET }).join(),
      /sub_app_secret needs sub_appid/,
    );
    assert.match(problems({ ...base(), mode: 'agent' }).join(), /^mode:/);
    assert.match(problems({ ...base(), mode: 'partner', sub_mchid: 'x1' }).join(), /sub_mchid:/);
    assert.match(problems({ ...base(), app_secret: 'short' }).join(), /app_secret:/);
  });

  it('jsapi_api v2 needs api_v2_key', () => {
    const { api_v2_key: _k, ...noV2 } = base();
    assert.match(problems({ ...noV2, jsapi_api: 'v2' }).join(), /jsapi_api v2 needs api_v2_key/);
    assert.deepEqual(problems({ ...base(), jsapi_api: 'v2' }), []);
  });

  it('scopes: the provider’s credentials once for the platform (or the app’s own), the sub-merchant per app', () => {
    const scope = (n: string) => wechatDefinition.fields.find((f) => f.name === n)?.scope ?? 'app';
    for (const n of [
      'mch_id',
      'app_id',
      'api_v3_key',
      'api_v2_key',
      'merchant_private_key',
      'merchant_serial_no',
      'wechatpay_public_key',
      'wechatpay_public_key_id',
      'client_cert_p12',
      'client_cert_pem',
      'app_secret',
    ])
      assert.equal(scope(n), 'either', n);
    for (const n of ['mode', 'sub_mchid', 'sub_appid', 'sub_app_secret']) assert.equal(scope(n), 'app', n);
    for (const n of ['app_secret', 'sub_app_secret'])
      assert.equal(wechatDefinition.fields.find((f) => f.name === n)?.secret, true, n);
  });
});
