/**
 * The platform with an app whose medical-insurance side is the national mobile-payment centre (here the fake
 * centre, test/fakes/nhsa-server.ts), driven through the real doors: the authorisation decision, the gateway's
 * lc.ssc.user.token and lc.ssc.trade.pay, the cash part paid on the patient's channel (the simulator), and the
 * expiry job reversing the insurance part (6203) of a cancelled mixed payment.
 * The app takes real money (medicare → nhsa), so its simulated cash part is chosen explicitly (alipay →
 * simulator), which HOSPAY_ALLOW_MIXED_SIMULATOR=1 allows (docs/simulator.md).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sm2 } from 'sm-crypto-v2';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';
import { startNhsaFake, type NhsaFake } from '../fakes/nhsa-server.js';
import { postForm } from '../support/payer.js';
import { sscPayBiz } from '../support/medicare.js';

describe('medical insurance through the national mobile-payment centre (nhsa)', () => {
  let t: TestPlatform;
  let fake: NhsaFake;
  const org = sm2.generateKeyPairHex();
  const appSecret = 'INTEGRATIONSECRET0123456789abcdef';
  const nhsaAppId = 'HOSPAYNHSAINTEG0000000000000001';
  const orgCode = 'H44010100001';
  const redirect = 'https://his.example.cn/mi/callback';
  const patient = { name: '王医保', idNo: '44010519800101123X' };

  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_ALLOW_MIXED_SIMULATOR: '1' } });
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    await t.platform.deps.apps.setRedirectUris(t.appId, ['https://his.example.cn/mi/']);
    fake = await startNhsaFake({ appId: nhsaAppId, appSecret, orgPublicKeyHex: org.publicKey, orgCode });
    await t.platform.deps.channelConfigs.set(t.appId, 'medicare:nhsa', {
      app_id: nhsaAppId,
      app_secret: appSecret,
      org_code: orgCode,
      org_name: '市第一人民医院',
      platform_public_key: fake.publicKeyHex,
      org_private_key: org.privateKey,
      api_base_url: fake.url,
      auth_url: fake.authUrl,
      path_token: fake.paths.token,
      city_code: '440100',
      timeout_ms: '2000',
    });
    await t.store.db
      .updateTable('apps')
      .set({ channel_map: JSON.stringify({ medicare: 'nhsa', alipay: 'simulator' }) })
      .where('id', '=', t.appId)
      .execute();
  });
  after(async () => {
    await t.close();
    await fake.close();
  });

  /**
   * The patient's authorisation through the real doors: the platform's start door sends the patient to the
   * region's page (the fake centre's), which comes back with its own code to the platform's decision door
   * (GET), which sends the patient on to the HIS with that code as auth_code.
   */
  async function authorise(openId: string): Promise<string> {
    const start = new URL(`${t.url}/oauth2/medicareAuth`);
    start.searchParams.set('app_id', t.appId);
    start.searchParams.set('open_id', openId);
    start.searchParams.set('state', 'st-1');
    start.searchParams.set('redirect_uri', redirect);
    const toRegion = await fetch(start, { redirect: 'manual' });
    assert.equal(toRegion.status, 302, await toRegion.text());
    const page = new URL(toRegion.headers.get('location') ?? '');
    assert.equal(page.origin, fake.url);
    const decisionUrl = page.searchParams.get('redirect') ?? '';
    assert.match(decisionUrl, new RegExp(`^${t.url}/oauth2/medicareAuth/[A-Za-z0-9_-]+/decision$`));
    page.searchParams.set('decision', 'grant');
    const back = await fetch(page, { redirect: 'manual' });
    const decision = new URL(back.headers.get('location') ?? '');
    assert.equal(decision.origin + decision.pathname, decisionUrl);
    const regionCode = decision.searchParams.get('authCode') ?? '';
    assert.ok(regionCode.length > 0);
    const decided = await fetch(decision, { redirect: 'manual' });
    assert.equal(decided.status, 302);
    const his = new URL(decided.headers.get('location') ?? '');
    assert.equal(his.searchParams.get('state'), 'st-1');
    assert.equal(his.searchParams.get('auth_code'), regionCode, "the region's code is the HIS's auth_code");
    // The decision door is good once, and only for its own state.
    assert.equal((await fetch(decision, { redirect: 'manual' })).status, 410);
    const wrongState = new URL(decision);
    wrongState.searchParams.set('state', 'other');
    assert.equal((await fetch(wrongState, { redirect: 'manual' })).status, 404);
    return regionCode;
  }

  async function payAuthNo(openId: string): Promise<string> {
    const a = await gateway(t, 'lc.ssc.user.token', {
      user_id: openId,
      payment_type: 'alipay',
      auth_code: await authorise(openId),
      patient_name: patient.name,
      patient_card_no: patient.idNo,
      biz_city_code: '440100',
      ssc_ins_type: 'YB',
    });
    assert.equal(a.json.code, '10000', a.raw);
    return String(a.biz['pay_auth_no']);
  }

  const sscPay = (openId: string, pan: string, over: Record<string, unknown> = {}) =>
    gateway(
      t,
      'lc.ssc.trade.pay',
      sscPayBiz(openId, pan, {
        patient_name: patient.name,
        patient_card_no: patient.idNo,
        org_no: orgCode,
        ...over,
      }),
    );

  const trade = (no: string) => t.trade(no);

  it('lc.ssc.user.token: the pay_auth_no comes from the centre', async () => {
    const pan = await payAuthNo('2088000000000101');
    assert.match(pan, /^AUTH440100/);
    assert.ok(fake.tokens().some((x) => x.payAuthNo === pan && x.appUserId === '2088000000000101'));
  });

  it('a mixed payment: insurance settled by the centre (6201, 6202), cash paid on the simulator; cancelled → 6203 by the expiry job', async () => {
    const openId = '2088000000000102';
    const a = await sscPay(openId, await payAuthNo(openId));
    assert.equal(a.json.code, '10000', a.raw);
    const no = String(a.biz['out_trade_no']);
    const o = fake.order(no);
    assert.ok(o, 'the centre has the order');
    assert.equal(o.state, 'paid');
    assert.equal(o.fundFen + o.acctFen, 6000);
    assert.equal(o.cashFen, 4000);
    const settled = await trade(no);
    assert.equal(settled.insurance_state, 'SETTLED');
    assert.ok(settled.settlement_no?.startsWith(`${o.payOrdId}.`));
    assert.equal(settled.channel, 'simulator', "the cash part goes through the patient's channel");

    // The cash part on the simulator's cashier: 40.00 only.
    const go = await fetch(String(a.biz['goto_url']), { redirect: 'manual' });
    assert.equal(go.status, 302);
    const cashier = go.headers.get('location') ?? '';
    assert.match(await (await fetch(cashier)).text(), /40\.00/);
    assert.equal((await postForm(cashier, 'action=pay')).status, 303);
    const q = await gateway(t, 'lc.trade.query', { out_trade_no: no });
    assert.equal(q.biz['trade_status'], 'TRADE_SUCCESS', q.raw);
    assert.match(q.raw, /"insurance_fee":60\.00/);
    assert.match(q.raw, /"cash_fee":40\.00/);

    // Cancelled: the cash part is refunded at the channel, the insurance part reversed by the job (6301, 6203).
    const c = await gateway(t, 'lc.trade.cancel', { out_trade_no: no });
    assert.equal(c.biz['action'], 'refund', c.raw);
    assert.equal(fake.order(no)?.state, 'paid');
    await t.platform.expiry.tick();
    assert.equal((await trade(no)).insurance_state, 'REVERSED');
    const after6203 = fake.order(no);
    assert.equal(after6203?.state, 'refunded');
    assert.equal(after6203?.refunds.length, 1);
    assert.ok(
      fake
        .requests()
        .filter((r) => r.op === '6203')
        .every((r) => r.signatureValid),
    );
  });

  it('an unpaid mixed payment that expires: the job reverses its insurance part; a failing centre is retried', async () => {
    const openId = '2088000000000103';
    const a = await sscPay(openId, await payAuthNo(openId), { timeout_express: '5m' });
    const no = String(a.biz['out_trade_no']);
    assert.equal((await trade(no)).insurance_state, 'SETTLED');
    t.clock.advance(6 * 60_000);
    fake.script('6203', 'timeout');
    await t.platform.expiry.tick();
    await t.platform.expiry.tick();
    assert.equal((await trade(no)).status, 'TRADE_CLOSED');
    assert.equal((await trade(no)).insurance_state, 'SETTLED', 'an unanswered 6203 is not a reversal');
    assert.equal(fake.order(no)?.state, 'paid');
    t.clock.advance(2 * 60_000); // past the retry lease
    await t.platform.expiry.tick();
    assert.equal((await trade(no)).insurance_state, 'REVERSED');
    assert.equal(fake.order(no)?.state, 'refunded');
  });

  it('a settlement the centre declines closes the trade with its code; nothing is paid', async () => {
    const openId = '2088000000000104';
    const pan = await payAuthNo(openId);
    fake.script('6202', 'declined');
    const a = await sscPay(openId, pan);
    assert.equal(a.biz['sub_code'], 'NHSA_3001', a.raw);
    const o = fake.orders().find((x) => x.payAuthNo === pan);
    // The upload the centre kept for the unpaid order is revoked at once (6301, then 6401).
    assert.equal(o?.state, 'revoked');
    assert.equal(o?.ordStas, '12');
    const revoke = fake.requests().filter((r) => r.op === '6401' && r.data['payOrdId'] === o?.payOrdId);
    assert.equal(revoke.length, 1);
    assert.ok(revoke.every((r) => r.signatureValid));
    assert.equal((await trade(String(o?.medOrgOrd))).status, 'TRADE_CLOSED');
  });

  it('fee_details: the items reach the centre in 6201 (feedetailList); bad items are refused before anything is sent', async () => {
    const openId = '2088000000000111';
    const pan = await payAuthNo(openId);
    const item = (over: Record<string, unknown> = {}) => ({
      feedetl_sn: 'FD01',
      med_list_codg: 'XA01BAA123A001010100000',
      medins_list_codg: 'YP0001',
      medins_list_name: '阿莫西林胶囊',
      det_item_fee_sumamt: '64.00',
      cnt: '4',
      pric: '16.00',
      fee_ocur_time: '2026-11-24 09:30:00',
      bilg_dept_codg: 'A03',
      ...over,
    });
    const requestsBefore = fake.requests().length;
    for (const [details, why] of [
      [[item()], /total_amount/],
      [
        [item(), item({ feedetl_sn: 'FD02', det_item_fee_sumamt: 36, cnt: 1, pric: 35 })],
        /item 2 det_item_fee_sumamt is not cnt × pric/,
      ],
      [[item(), item({ det_item_fee_sumamt: '36.00', cnt: '2', pric: '18' })], /item 2 repeats feedetl_sn/],
      [[item({ id_no: '44010519800101123X' })], /unknown field id_no/],
      ['[{"feedetl_sn":', /not valid JSON/],
    ] as const) {
      const bad = await sscPay(openId, pan, { fee_details: details });
      assert.equal(bad.biz['sub_code'], 'INVALID_FIELD.fee_details', bad.raw);
      assert.match(String(bad.biz['sub_msg']), why, bad.raw);
    }
    assert.equal(fake.requests().length, requestsBefore, 'nothing reached the centre');
    const a = await sscPay(openId, pan, {
      fee_details: [item(), item({ feedetl_sn: 'FD02', det_item_fee_sumamt: 36, cnt: 2, pric: '18.000000' })],
    });
    assert.equal(a.json.code, '10000', a.raw);
    const o = fake.order(String(a.biz['out_trade_no']));
    assert.equal(o?.state, 'paid');
    assert.deepEqual(
      o?.feedetailList.map((x) => [
        x['feedetlSn'],
        x['medListCodg'],
        x['detItemFeeSumamt'],
        x['cnt'],
        x['pric'],
        x['feeOcurTime'],
        x['bilgDeptCodg'],
      ]),
      [
        ['FD01', 'XA01BAA123A001010100000', '64.00', '4', '16.00', '2026-11-24 09:30:00', 'A03'],
        ['FD02', 'XA01BAA123A001010100000', '36.00', '2', '18.000000', '2026-11-24 09:30:00', 'A03'],
      ],
    );
  });

  it('an upload whose revocation fails is kept and revoked by the expiry job (6401 retried)', async () => {
    const openId = '2088000000000112';
    const pan = await payAuthNo(openId);
    fake.script('6202', 'declined');
    fake.script('6401', 'http_500');
    const a = await sscPay(openId, pan);
    assert.equal(a.biz['sub_code'], 'NHSA_3001', a.raw);
    const o = fake.orders().find((x) => x.payAuthNo === pan);
    assert.equal(o?.state, 'uploaded', 'the first 6401 failed');
    const kept = await t.platform.deps.medicare.openRevocations(t.appId);
    assert.ok(
      kept.some(
        (r) => r.out_trade_no === o?.medOrgOrd && r.status === 'PENDING' && r.last_error?.includes('6401'),
      ),
    );
    await t.platform.expiry.tick();
    assert.equal(fake.order(String(o?.medOrgOrd))?.state, 'uploaded', 'not before its backoff');
    t.clock.advance(15_000);
    await t.platform.expiry.tick();
    assert.equal(fake.order(String(o?.medOrgOrd))?.state, 'revoked');
    assert.ok(
      !(await t.platform.deps.medicare.openRevocations(t.appId)).some((r) => r.out_trade_no === o?.medOrgOrd),
    );
  });

  it('a settlement whose outcome was unknown is undone from its upload: 6301 shows it settled, 6203 refunds it', async () => {
    const openId = '2088000000000113';
    const pan = await payAuthNo(openId);
    fake.script('6202', 'http_500', { effect: true });
    fake.script('6301', 'http_500');
    const a = await sscPay(openId, pan);
    assert.equal(a.biz['sub_code'], 'UNKNOWN', a.raw);
    const o = fake.orders().find((x) => x.payAuthNo === pan);
    assert.equal(o?.state, 'refunded', 'the immediate revocation found it settled and refunded it');
    assert.equal(o?.refunds.length, 1);
    const row = await trade(String(o?.medOrgOrd));
    assert.deepEqual([row.status, row.insurance_state, row.paid_at], ['TRADE_CLOSED', 'NONE', null]);
  });

  it('lc.ssc.insurance.refund through the centre: 6203 HI, idempotent, an unknown outcome asked again; RECORD only records', async () => {
    const openId = '2088000000000114';
    const a = await sscPay(openId, await payAuthNo(openId), { cash_fee: '0.00', insurance_fee: '100.00' });
    assert.equal(a.json.code, '10000', a.raw);
    const no = String(a.biz['out_trade_no']);
    assert.equal((await trade(no)).status, 'TRADE_SUCCESS', 'all insurance: paid at once');
    const partial = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: no,
      out_request_no: 'MIP',
      insurance_refund_fee: '30.00',
    });
    assert.equal(partial.biz['sub_code'], 'NHSA_PARTIAL_REFUND', partial.raw);
    fake.script('6203', 'http_500', { effect: true });
    const lost = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: no,
      out_request_no: 'MI1',
      insurance_refund_fee: '100.00',
    });
    assert.equal(lost.biz['sub_code'], 'REFUND_PROCESSING', lost.raw);
    assert.equal(fake.order(no)?.refunds.length, 1, 'the centre refunded; its answer was lost');
    assert.equal((await trade(no)).insurance_refunded_fen, 0, 'not recorded on an unknown outcome');
    const other = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: no,
      out_request_no: 'MI2',
      insurance_refund_fee: '100.00',
    });
    assert.equal(
      other.biz['sub_code'],
      'REFUND_AMOUNT_EXCEEDED',
      'the unknown refund keeps its amount reserved',
    );
    const again = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: no,
      out_request_no: 'MI1',
      insurance_refund_fee: '100.00',
    });
    assert.equal(again.json.code, '10000', again.raw);
    assert.deepEqual([again.biz['recorded'], again.biz['insurance_refund_mode']], ['Y', 'CENTRE']);
    assert.match(again.raw, /"insurance_refund_fee":100\.00/);
    assert.ok(String(again.biz['insurance_refund_no']).length > 0);
    assert.equal(fake.order(no)?.refunds.length, 1, 'one refund at the centre');
    assert.equal(fake.order(no)?.refunds[0]?.refdType, 'HI');
    const repeat = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: no,
      out_request_no: 'MI1',
      insurance_refund_fee: '100.00',
    });
    assert.deepEqual([repeat.biz['recorded'], repeat.biz['insurance_refund_mode']], ['N', 'CENTRE']);
    const rows = await t.store.db
      .selectFrom('refunds')
      .selectAll()
      .where('trade_id', '=', (await trade(no)).id)
      .execute();
    assert.deepEqual(rows.map((r) => [r.out_request_no, r.kind, r.status, r.amount_fen]).sort(), [
      ['MI1', 'insurance', 'SUCCESS', 10000],
      ['MIP', 'insurance', 'FAILED', 3000],
    ]);

    // A partial refund made through the national process is recorded only.
    const openId2 = '2088000000000115';
    const b = await sscPay(openId2, await payAuthNo(openId2), { cash_fee: '0.00', insurance_fee: '100.00' });
    const no2 = String(b.biz['out_trade_no']);
    const rec = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: no2,
      out_request_no: 'MR1',
      insurance_refund_fee: '30.00',
      insurance_refund_mode: 'RECORD',
    });
    assert.deepEqual([rec.biz['recorded'], rec.biz['insurance_refund_mode']], ['Y', 'RECORD']);
    assert.match(rec.raw, /"insurance_refund_fee":30\.00/);
    assert.equal(fake.order(no2)?.refunds.length, 0, 'no money moved at the centre');
    const badMode = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: no2,
      out_request_no: 'MR2',
      insurance_refund_fee: '1.00',
      insurance_refund_mode: 'BOTH',
    });
    assert.equal(badMode.biz['sub_code'], 'INVALID_FIELD.insurance_refund_mode');
  });

  it('concurrent insurance refunds of one trade: the insurance part is refunded once', async () => {
    const openId = '2088000000000118';
    const a = await sscPay(openId, await payAuthNo(openId), { cash_fee: '0.00', insurance_fee: '100.00' });
    const no = String(a.biz['out_trade_no']);
    const answers = await Promise.all(
      ['MC1', 'MC2', 'MC3', 'MC4'].map((r) =>
        gateway(t, 'lc.ssc.insurance.refund', {
          out_trade_no: no,
          out_request_no: r,
          insurance_refund_fee: '100.00',
        }),
      ),
    );
    const codes = answers.map((x) => (x.json.code === '10000' ? 'OK' : String(x.biz['sub_code']))).sort();
    assert.deepEqual(codes, [
      'OK',
      'REFUND_AMOUNT_EXCEEDED',
      'REFUND_AMOUNT_EXCEEDED',
      'REFUND_AMOUNT_EXCEEDED',
    ]);
    assert.equal(fake.order(no)?.refunds.length, 1);
    assert.equal((await trade(no)).insurance_refunded_fen, 10000);
  });

  it("the centre's notifications: verified like answers, synced with 6301, acknowledged; forged ones refused", async () => {
    const notifyUrl = `${t.url}/channels/medicare/nhsa/notify/${t.appId}`;
    // An upload whose revocation failed: the notification makes the platform sync it now.
    const openId = '2088000000000116';
    const pan = await payAuthNo(openId);
    fake.script('6202', 'declined');
    fake.script('6401', 'http_500');
    await sscPay(openId, pan);
    const o = fake.orders().find((x) => x.payAuthNo === pan);
    const no = String(o?.medOrgOrd);
    assert.equal(o?.state, 'uploaded');
    for (const spoil of ['unsigned', 'bad_signature', 'tampered'] as const) {
      const r = await fake.notify(notifyUrl, no, spoil);
      assert.equal(r.status, 400, spoil);
      assert.equal((JSON.parse(r.body) as { success: boolean }).success, false);
      assert.equal(fake.order(no)?.state, 'uploaded', `${spoil}: nothing changes`);
    }
    const genuine = await fake.notify(notifyUrl, no);
    assert.equal(genuine.status, 200, genuine.body);
    assert.deepEqual(JSON.parse(genuine.body), { code: 0, message: '成功', success: true });
    assert.equal(fake.order(no)?.state, 'revoked', 'synced: the upload is revoked now');
    // A paid trade: the notification is acknowledged after a 6301; nothing changes.
    const paid = await sscPay('2088000000000117', await payAuthNo('2088000000000117'));
    const paidNo = String(paid.biz['out_trade_no']);
    const before6301 = fake.requests().filter((r) => r.op === '6301').length;
    assert.equal((await fake.notify(notifyUrl, paidNo)).status, 200);
    assert.equal(fake.requests().filter((r) => r.op === '6301').length, before6301 + 1);
    assert.equal((await trade(paidNo)).insurance_state, 'SETTLED');
    // The centre cannot be asked: the retry answer, so it sends the notification again.
    fake.script('6301', 'http_500');
    assert.equal((await fake.notify(notifyUrl, paidNo)).status, 503);
    // Unknown orders are acknowledged and ignored; unknown apps and sides are 404.
    assert.equal((await fake.notify(notifyUrl, 'MZNOSUCHORDER')).status, 200);
    assert.equal(
      (await fake.notify(`${t.url}/channels/medicare/simulator/notify/${t.appId}`, paidNo)).status,
      404,
    );
    assert.equal((await fake.notify(`${t.url}/channels/medicare/nhsa/notify/hpnope`, paidNo)).status, 404);
    const calls = (await t.platform.deps.channelCalls.list({ appId: t.appId, limit: 1000 })).filter(
      (r) => r.operation === 'nhsa.notify',
    );
    assert.ok(calls.some((c) => c.outcome.startsWith('rejected: signature does not verify')));
    assert.ok(calls.some((c) => c.outcome.startsWith('rejected: answer is not signed')));
    assert.ok(calls.some((c) => c.outcome.startsWith('ok ordStas=')));
  });

  it('a settlement answered with a forged signature is never taken as settled', async () => {
    const openId = '2088000000000105';
    const pan = await payAuthNo(openId);
    fake.script('6202', 'bad_signature');
    const a = await sscPay(openId, pan);
    assert.notEqual(a.json.code, '10000', a.raw);
    assert.equal(a.biz['sub_code'], 'NHSA_NOT_SETTLED', a.raw);
  });

  it('the exchanges are recorded for operators without secrets or personal data', async () => {
    let rows: Array<{
      operation: string;
      request: string | null;
      response: string | null;
      error: string | null;
    }> = [];
    for (let i = 0; i < 50; i++) {
      rows = (await t.platform.deps.channelCalls.list({ appId: t.appId, limit: 1000 })).filter(
        (r) => r.channel_id === 'medicare:nhsa',
      );
      if (rows.some((r) => r.operation === 'nhsa.6203')) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const ops = new Set(rows.map((r) => r.operation));
    for (const op of [
      'nhsa.token',
      'nhsa.6201',
      'nhsa.6202',
      'nhsa.6301',
      'nhsa.6203',
      'nhsa.6401',
      'nhsa.notify',
    ])
      assert.ok(ops.has(op), op);
    const text = JSON.stringify(rows);
    for (const s of [
      appSecret,
      org.privateKey,
      patient.name,
      patient.idNo,
      ...fake.orders().map((o) => o.payToken),
    ])
      assert.ok(!text.includes(s), `a record holds ${s.slice(0, 4)}…`);
  });
});
