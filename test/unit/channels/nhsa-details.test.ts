/**
 * The national mobile-payment centre beyond settle-and-reverse: item-level fee details in 6201, 6401 (revoking an
 * upload never paid), insurance refunds through 6203 HI, the centre's notifications (verified like answers) and
 * the 6301 sync; the HIS's fee_details checked at the door (readFeeDetails).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { sm2 } from 'sm-crypto-v2';
import {
  canonicalJson,
  deriveSm4Key,
  sealRequest,
  signText,
  sm2SignBase64,
  sm2VerifyBase64,
  sm4EncryptHex,
  type NhsaKeys,
} from '../../../src/channels/nhsa/envelope.js';
import { NHSA_FIELDS } from '../../../src/channels/nhsa/definition.js';
import {
  NhsaMedicare,
  feedetailList,
  refundSerial,
  reversalSerial,
} from '../../../src/channels/nhsa/channel.js';
import { withDefaults } from '../../../src/channels/definition.js';
import { httpRequest } from '../../../src/channels/http.js';
import type { ChannelCall, ChannelContext, MedicareFeeDetail } from '../../../src/channels/channel.js';
import { FakeClock } from '../../support/clock.js';
import { startNhsaFake, type NhsaFake } from '../../fakes/nhsa-server.js';
import { fen } from '../../../src/domain/money.js';
import { HospayError } from '../../../src/domain/errors.js';
import { readFeeDetails } from '../../../src/services/medicare.js';

const KAT_APP_ID = 'HOSPAYNHSAKAT0000000000000000001';
const KAT_APP_SECRET = 'KATSECRET0123456789ABCDEFGHIJKLM';
const KAT_PRIVATE = 'c4477f47d8ffbba45b916879e84d54530d0b2282fb056f40b88e9fbc5b0ee480';

const ITEM: MedicareFeeDetail = {
  serialNo: 'FD0001',
  listCode: 'XA01BAA123A001010100000',
  institutionCode: 'YP0001',
  institutionName: '阿莫西林胶囊',
  amountFen: fen(3600),
  count: '2',
  price: '18.000000',
  occurredAt: '2026-11-24 09:30:00',
  extra: { bilg_dept_codg: 'A03', rxno: 'RX001' },
};

/** One item as the HIS writes it in fee_details. */
const hisItem = (over: Record<string, unknown> = {}) => ({
  feedetl_sn: 'FD0001',
  med_list_codg: 'XA01BAA123A001010100000',
  medins_list_codg: 'YP0001',
  det_item_fee_sumamt: '36.00',
  cnt: '2',
  pric: '18.000000',
  fee_ocur_time: '2026-11-24 09:30:00',
  ...over,
});

const codeOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return e instanceof HospayError ? `${e.code} ${e.en}` : String(e);
  }
  return 'accepted';
};

describe('nhsa: fee details (known answers)', () => {
  it("feedetailList: the HIS's items in the centre's names, amounts in yuan", () => {
    assert.deepEqual(feedetailList([ITEM]), [
      {
        bilgDeptCodg: 'A03',
        rxno: 'RX001',
        feedetlSn: 'FD0001',
        medListCodg: 'XA01BAA123A001010100000',
        medinsListCodg: 'YP0001',
        medinsListName: '阿莫西林胶囊',
        detItemFeeSumamt: '36.00',
        cnt: '2',
        pric: '18.000000',
        feeOcurTime: '2026-11-24 09:30:00',
      },
    ]);
  });

  it('a 6201 with fee details: encData is SM4 of the canonical JSON (computed independently with node:crypto)', () => {
    const keys: NhsaKeys = {
      appId: KAT_APP_ID,
      appSecret: KAT_APP_SECRET,
      orgPrivateKeyHex: KAT_PRIVATE,
      orgPublicKeyHex: sm2.getPublicKeyFromPrivateKey(KAT_PRIVATE),
      platformPublicKeyHex: sm2.getPublicKeyFromPrivateKey(KAT_PRIVATE),
      sm2UserId: '1234567812345678',
      sm4Key: deriveSm4Key(KAT_APP_ID, KAT_APP_SECRET),
      version: '2.0.1',
    };
    const data = { medOrgOrd: 'MZ0001', medfeeSumamt: '36.00', feedetailList: feedetailList([ITEM]) };
    const sealed = sealRequest(keys, data, '1700000000000');
    const plain =
      '{"feedetailList":[{"bilgDeptCodg":"A03","cnt":"2","detItemFeeSumamt":"36.00","feeOcurTime":"2026-11-24 09:30:00",' +
      '"feedetlSn":"FD0001","medListCodg":"XA01BAA123A001010100000","medinsListCodg":"YP0001","medinsListName":"阿莫西林胶囊",' +
      '"pric":"18.000000","rxno":"RX001"}],"medOrgOrd":"MZ0001","medfeeSumamt":"36.00"}';
    assert.equal(canonicalJson(data), plain);
    // The envelope key, derived with node:crypto: SM4-ECB(appSecret) under appId[0..16], upper hex, 16 chars.
    const outer = createCipheriv('sm4-ecb', Buffer.from(KAT_APP_ID.slice(0, 16)), null);
    const k = Buffer.concat([outer.update(KAT_APP_SECRET), outer.final()])
      .toString('hex')
      .toUpperCase()
      .slice(0, 16);
    assert.equal(k, '5D1DF8E4D45FB1C7');
    const c = createCipheriv('sm4-ecb', Buffer.from(k), null);
    const expected = Buffer.concat([c.update(plain, 'utf8'), c.final()])
      .toString('hex')
      .toUpperCase();
    assert.equal(sealed.outer['encData'], expected);
    const text = signText(
      {
        appId: KAT_APP_ID,
        encType: 'SM4',
        signType: 'SM2',
        timestamp: '1700000000000',
        version: '2.0.1',
        data: plain,
      },
      KAT_APP_SECRET,
    );
    assert.ok(
      sm2VerifyBase64(text, sealed.outer['signData'] ?? '', keys.orgPublicKeyHex, '1234567812345678'),
    );
  });

  it('the refund numbers are fixed per order (and per out_request_no): a retry is the same refund', () => {
    assert.equal(reversalSerial('H44010100001', 'ORD1'), reversalSerial('H44010100001', 'ORD1'));
    assert.match(reversalSerial('H44010100001', 'ORD1'), /^RV[0-9A-F]{30}$/);
    assert.match(refundSerial('H44010100001', 'ORD1', 'MI1'), /^HI[0-9A-F]{30}$/);
    assert.notEqual(refundSerial('H44010100001', 'ORD1', 'MI1'), refundSerial('H44010100001', 'ORD1', 'MI2'));
  });
});

describe('fee_details at the door (readFeeDetails)', () => {
  const read =
    (items: unknown, total = 3600) =>
    () =>
      readFeeDetails(JSON.stringify(items), fen(total));

  it('reads items into fen and the decimal text the HIS wrote; a JSON text of the array is accepted too', () => {
    const two = readFeeDetails(
      JSON.stringify([
        hisItem(),
        hisItem({ feedetl_sn: 'FD0002', det_item_fee_sumamt: 4.01, cnt: '3', pric: '1.336667', rxno: 'RX9' }),
      ]),
      fen(4001),
    );
    assert.equal(two.length, 2);
    assert.deepEqual(
      two.map((d) => [d.serialNo, d.amountFen, d.count, d.price, d.extra]),
      [
        ['FD0001', 3600, '2', '18.000000', {}],
        ['FD0002', 401, '3', '1.336667', { rxno: 'RX9' }],
      ],
    );
    assert.equal(readFeeDetails(JSON.stringify(JSON.stringify([hisItem()])), fen(3600)).length, 1);
  });

  it('refuses, naming the item and field: INVALID_FIELD.fee_details', () => {
    const cases: Array<[() => unknown, RegExp]> = [
      [() => readFeeDetails('{"a":1}', fen(1)), /non-empty JSON array/],
      [() => readFeeDetails('[', fen(1)), /not valid JSON/],
      [read([]), /non-empty/],
      [read([hisItem({ feedetl_sn: undefined })]), /item 1 lacks feedetl_sn/],
      [read([hisItem({ feedetl_sn: 'X'.repeat(31) })]), /item 1 feedetl_sn is too long/],
      [read([hisItem(), hisItem()], 7200), /item 2 repeats feedetl_sn/],
      [
        read([hisItem({ det_item_fee_sumamt: '36.001' })]),
        /item 1 det_item_fee_sumamt must be a yuan amount/,
      ],
      [read([hisItem({ det_item_fee_sumamt: '-1' })]), /det_item_fee_sumamt must be a yuan amount/],
      [read([hisItem({ cnt: '0' })]), /item 1 cnt must be positive/],
      [read([hisItem({ cnt: '1.00001' })]), /cnt must be positive \(at most 4 decimals\)/],
      [read([hisItem({ pric: '1e3' })]), /pric must be non-negative/],
      [read([hisItem({ pric: '18.010000' })]), /item 1 det_item_fee_sumamt is not cnt × pric/],
      [
        read([hisItem({ fee_ocur_time: '2026-02-30 09:30:00' })]),
        /fee_ocur_time must be yyyy-MM-dd HH:mm:ss/,
      ],
      [read([hisItem({ fee_ocur_time: '2026-11-24T09:30:00' })]), /fee_ocur_time/],
      [read([hisItem({ idNo: '44010519800101123X' })]), /item 1 has an unknown field idNo/],
      [read([hisItem({ rxno: { a: 1 } })]), /item 1 rxno must be a string or a number/],
      [read([hisItem({ bilg_dr_name: 'a\u0000b' })]), /control characters/],
      [read([hisItem()], 3601), /add up to 36\.00 yuan, not total_amount \(36\.01\)/],
      [read([1]), /item 1 must be a JSON object/],
    ];
    for (const [f, why] of cases) {
      const got = codeOf(f);
      assert.match(got, /^INVALID_FIELD\.fee_details /, got);
      assert.match(got, why, got);
    }
    assert.match(
      codeOf(read(Array.from({ length: 501 }, (_, i) => hisItem({ feedetl_sn: `F${i}` })))),
      /at most 500/,
    );
  });

  it('det_item_fee_sumamt may differ from cnt × pric by less than one fen (rounding), not by one fen', () => {
    // 3 × 1.336667 = 4.010001 yuan: 4.01 (rounded, floor) and 4.02 (ceiling) are within a fen; 4.00 and 4.03 not.
    for (const [amount, ok] of [
      ['4.01', true],
      ['4.02', true],
      ['4.00', false],
      ['4.03', false],
    ] as const) {
      const got = codeOf(
        read(
          [hisItem({ det_item_fee_sumamt: amount, cnt: '3', pric: '1.336667' })],
          Number(amount.replace('.', '')),
        ),
      );
      if (ok) assert.equal(got, 'accepted', amount);
      else assert.match(got, /cnt × pric/, amount);
    }
    // 0.3333 × 3 = 0.9999 yuan → 1.00 rounds up, 0.99 is 0.0099 short: both within a fen.
    assert.equal(
      codeOf(read([hisItem({ det_item_fee_sumamt: '1.00', cnt: '0.3333', pric: '3' })], 100)),
      'accepted',
    );
    assert.equal(
      codeOf(read([hisItem({ det_item_fee_sumamt: '0.99', cnt: '0.3333', pric: '3' })], 99)),
      'accepted',
    );
  });
});

describe('nhsa: 6401, insurance refunds, notifications (adapter against the fake centre)', () => {
  const org = sm2.generateKeyPairHex();
  const appId = 'HOSPAYNHSATEST00000000000000002';
  const appSecret = 'TESTSECRETabcdefghijklmnop012345';
  const orgCode = 'H44010100001';
  const clock = new FakeClock();
  let fake: NhsaFake;
  let channel: NhsaMedicare;
  let merchant: Record<string, string>;
  let calls: ChannelCall[] = [];
  const ctx = (over: Record<string, string> = {}): ChannelContext => ({
    appId: 'APP1',
    merchant: { ...merchant, ...over },
    notifyUrl: 'https://hospay.example/channels/medicare/nhsa/notify/APP1',
    record: (c) => calls.push(c),
  });
  let seq = 0;
  const orderNo = () => `MZD${Date.now().toString(36)}${++seq}`;

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
    channel = new NhsaMedicare({ http: httpRequest, clock, publicBaseUrl: () => 'https://hospay.example' });
  });
  after(async () => {
    await fake.close();
  });

  async function token(): Promise<string> {
    const r = await channel.issueToken(ctx(), {
      userId: '2088000000000001',
      paymentType: 'alipay',
      cityCode: '440100',
    });
    assert.equal(r.kind, 'issued');
    return r.kind === 'issued' ? r.payAuthNo : '';
  }
  const settle = async (payAuthNo: string, o: { cash?: number; details?: MedicareFeeDetail[] } = {}) => {
    const outTradeNo = orderNo();
    const cash = o.cash ?? 4000;
    return {
      outTradeNo,
      r: await channel.preSettle(ctx(), {
        payAuthNo,
        outTradeNo,
        totalFen: fen(10000),
        insuranceFen: fen(10000 - cash),
        cashFen: fen(cash),
        serialNo: 'SSC0001',
        feeDetails: o.details,
      }),
    };
  };

  it('6201 carries feedetailList when the HIS gave details, and none without', async () => {
    const details: MedicareFeeDetail[] = [
      { ...ITEM, amountFen: fen(6400), count: '4', price: '16' },
      { ...ITEM, serialNo: 'FD0002', amountFen: fen(3600), extra: {} },
    ];
    const { outTradeNo, r } = await settle(await token(), { details });
    assert.equal(r.kind, 'settled');
    const list = fake.order(outTradeNo)?.feedetailList ?? [];
    assert.deepEqual(
      list.map((x) => [
        x['feedetlSn'],
        x['detItemFeeSumamt'],
        x['cnt'],
        x['pric'],
        x['bilgDeptCodg'] ?? null,
      ]),
      [
        ['FD0001', '64.00', '4', '16', 'A03'],
        ['FD0002', '36.00', '2', '18.000000', null],
      ],
    );
    const plain = await settle(await token());
    assert.equal(fake.order(plain.outTradeNo)?.feedetailList.length, 0);
  });

  it('a refused order names its upload; reverseSettlement revokes it with 6401 (6301 first), once', async () => {
    fake.script('6202', 'declined');
    const { outTradeNo, r } = await settle(await token());
    assert.ok(r.kind === 'failed' && r.uploaded, JSON.stringify(r));
    const uploaded = r.kind === 'failed' ? (r.uploaded ?? '') : '';
    assert.ok(uploaded.startsWith(`${fake.order(outTradeNo)?.payOrdId}.`));
    calls = [];
    const input = { settlementNo: uploaded, outTradeNo, insuranceFen: fen(6000) };
    assert.deepEqual(await channel.reverseSettlement(ctx(), input), { kind: 'reversed' });
    assert.equal(fake.order(outTradeNo)?.state, 'revoked');
    assert.deepEqual(
      calls.map((c) => c.operation),
      ['nhsa.6301', 'nhsa.6401'],
    );
    const sent = fake
      .requests()
      .filter((x) => x.op === '6401')
      .at(-1);
    assert.equal(sent?.signatureValid, true);
    assert.equal(sent?.data['payOrdId'], fake.order(outTradeNo)?.payOrdId);
    assert.equal(sent?.data['orgCodg'], orgCode);
    assert.equal(
      sent?.data['payToken'],
      fake.order(outTradeNo)?.payToken,
      'the sealed token is opened for the centre',
    );
    // Again: 6301 shows it revoked (12): nothing more is sent.
    calls = [];
    assert.deepEqual(await channel.reverseSettlement(ctx(), input), { kind: 'reversed' });
    assert.deepEqual(
      calls.map((c) => c.operation),
      ['nhsa.6301'],
    );
  });

  it('6401 unanswered is a retry, refused is a failure for an operator; never a revocation', async () => {
    fake.script('6202', 'declined');
    const { outTradeNo, r } = await settle(await token());
    const input = {
      settlementNo: r.kind === 'failed' ? (r.uploaded ?? '') : '',
      outTradeNo,
      insuranceFen: fen(6000),
    };
    for (const b of ['timeout', 'http_500', 'malformed', 'bad_signature', 'system_error'] as const) {
      fake.script('6401', b);
      const got = await channel.reverseSettlement(ctx(), input);
      assert.equal(got.kind, b === 'system_error' ? 'failed' : 'retry', `${b}: ${JSON.stringify(got)}`);
      assert.equal(fake.order(outTradeNo)?.state, 'uploaded', b);
    }
    assert.deepEqual(await channel.reverseSettlement(ctx(), input), { kind: 'reversed' });
  });

  it('refundInsurance: 6301 then 6203 HI for the whole insurance part; a partial amount is refused', async () => {
    const { outTradeNo, r } = await settle(await token());
    assert.ok(r.kind === 'settled');
    const base = {
      settlementNo: r.kind === 'settled' ? r.settlementNo : '',
      outTradeNo,
      outRequestNo: 'MI1',
      insuranceFen: fen(6000),
      refundedFen: fen(0),
    };
    const partial = await channel.refundInsurance(ctx(), { ...base, amountFen: fen(3000) });
    assert.deepEqual(partial.kind === 'failed' ? partial.code : partial.kind, 'NHSA_PARTIAL_REFUND');
    assert.equal(fake.order(outTradeNo)?.refunds.length, 0);
    calls = [];
    const done = await channel.refundInsurance(ctx(), { ...base, amountFen: fen(6000) });
    assert.equal(done.kind, 'refunded', JSON.stringify(done));
    assert.deepEqual(
      calls.map((c) => c.operation),
      ['nhsa.6301', 'nhsa.6203'],
    );
    const o = fake.order(outTradeNo);
    assert.deepEqual(
      o?.refunds.map((x) => [x.refdType, x.totalFen]),
      [['HI', 6000]],
    );
    assert.equal(o?.ordStas, '8');
    const sent =
      fake
        .requests()
        .filter((x) => x.op === '6203')
        .at(-1)?.data ?? {};
    assert.deepEqual(
      [
        sent['refdType'],
        sent['totlRefdAmt'],
        sent['fundRefdAmt'],
        sent['psnAcctRefdAmt'],
        sent['cashRefdAmt'],
      ],
      ['HI', '60.00', '42.00', '18.00', '0.00'],
    );
    assert.equal(sent['appRefdSn'], refundSerial(orgCode, o?.payOrdId ?? '', 'MI1'));
    // The same refund again (its answer lost): the centre answers it as done; no second refund.
    const again = await channel.refundInsurance(ctx(), { ...base, amountFen: fen(6000) });
    assert.equal(again.kind, 'refunded');
    assert.equal(fake.order(outTradeNo)?.refunds.length, 1);
  });

  it('refundInsurance: unclear answers are unknown, never refunded; a lost answer is found done', async () => {
    const { outTradeNo, r } = await settle(await token());
    const input = {
      settlementNo: r.kind === 'settled' ? r.settlementNo : '',
      outTradeNo,
      outRequestNo: 'MI7',
      amountFen: fen(6000),
      insuranceFen: fen(6000),
      refundedFen: fen(0),
    };
    for (const b of ['timeout', 'http_500', 'malformed', 'bad_signature'] as const) {
      fake.script('6301', b);
      assert.equal((await channel.refundInsurance(ctx(), input)).kind, 'unknown', `6301 ${b}`);
      fake.script('6203', b);
      assert.equal((await channel.refundInsurance(ctx(), input)).kind, 'unknown', `6203 ${b}`);
    }
    assert.equal(fake.order(outTradeNo)?.refunds.length, 0);
    fake.script('6203', 'http_500', { effect: true });
    assert.equal((await channel.refundInsurance(ctx(), input)).kind, 'unknown');
    assert.equal(fake.order(outTradeNo)?.refunds.length, 1, 'the centre refunded; the answer was lost');
    assert.equal((await channel.refundInsurance(ctx(), input)).kind, 'refunded');
    assert.equal(fake.order(outTradeNo)?.refunds.length, 1);
    // Never settled: refused without a 6203.
    fake.script('6202', 'declined');
    const unpaid = await settle(await token());
    const nope = await channel.refundInsurance(ctx(), {
      ...input,
      outTradeNo: unpaid.outTradeNo,
      settlementNo: unpaid.r.kind === 'failed' ? (unpaid.r.uploaded ?? '') : '',
    });
    assert.deepEqual(nope.kind === 'failed' ? nope.code : nope.kind, 'NHSA_NOT_SETTLED');
  });

  it("querySettlement: the centre's state", async () => {
    const { outTradeNo, r } = await settle(await token());
    const settlementNo = r.kind === 'settled' ? r.settlementNo : '';
    assert.deepEqual(await channel.querySettlement(ctx(), { settlementNo, outTradeNo }), {
      kind: 'state',
      state: 'settled',
      code: '4',
    });
    fake.script('6301', 'bad_signature');
    assert.equal((await channel.querySettlement(ctx(), { settlementNo, outTradeNo })).kind, 'unknown');
  });

  it('a notification is read only when the centre signed it; tampered, unsigned, foreign ones are rejected', () => {
    // A notification built apart from the fake: the centre's answer envelope, signed with a known key pair.
    const centre = sm2.generateKeyPairHex();
    const keys = deriveSm4Key(appId, appSecret);
    const data = { payOrdId: 'ORD9', medOrgOrd: 'MZ9', ordStas: '4', feeSumamt: '100.00' };
    const head = { appId, timestamp: '1700000000000', encType: 'SM4', signType: 'SM2', version: '2.0.1' };
    const make = (d: Record<string, unknown>, signer = centre, over: Record<string, unknown> = {}) => {
      const fields: Record<string, unknown> = { ...head, ...over };
      const enc = sm4EncryptHex(canonicalJson(d), keys);
      fields['signData'] = sm2SignBase64(
        signText({ ...fields, data: d }, appSecret),
        signer.privateKey,
        signer.publicKey,
        '1234567812345678',
      );
      fields['encData'] = enc;
      return Buffer.from(JSON.stringify(fields));
    };
    const c = ctx({ platform_public_key: centre.publicKey });
    calls = [];
    const ok = channel.parseSettlementNotify(c, make(data));
    assert.equal(ok.kind, 'settlement');
    if (ok.kind === 'settlement') {
      assert.deepEqual([ok.outTradeNo, ok.orderId], ['MZ9', 'ORD9']);
      assert.deepEqual(
        [ok.ack.status, JSON.parse(ok.ack.body)],
        [200, { code: 0, message: '成功', success: true }],
      );
      assert.equal(ok.retryAck.status, 503);
    }
    assert.equal(calls.at(-1)?.operation, 'nhsa.notify');
    const tampered = JSON.parse(make(data).toString()) as Record<string, unknown>;
    tampered['encData'] = sm4EncryptHex(canonicalJson({ ...data, ordStas: '7' }), keys);
    const unsigned = JSON.parse(make(data).toString()) as Record<string, unknown>;
    delete unsigned['signData'];
    const rejected = [
      Buffer.from(JSON.stringify(tampered)),
      Buffer.from(JSON.stringify(unsigned)),
      make(data, sm2.generateKeyPairHex()),
      make(data, centre, { appId: 'HOSPAYOTHERAPP00000000000000009' }),
      make({ payOrdId: 'ORD9', ordStas: '4' }),
      Buffer.from('not json'),
      Buffer.from([0xff, 0xfe]),
    ];
    for (const [i, body] of rejected.entries()) {
      const r = channel.parseSettlementNotify(c, body);
      assert.equal(r.kind, 'rejected', `case ${i}`);
      assert.equal(r.ack.status, 400);
      assert.equal((JSON.parse(r.ack.body) as { success: boolean }).success, false);
    }
    assert.ok(calls.filter((x) => x.outcome.startsWith('rejected')).length === rejected.length);
    assert.ok(!JSON.stringify(calls).includes(appSecret));
    assert.ok(sm2VerifyBase64('x', 'AAAA', centre.publicKey, '1') === false);
  });
});
