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
    assert.equal(o?.state, 'uploaded');
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
    for (const op of ['nhsa.token', 'nhsa.6201', 'nhsa.6202', 'nhsa.6301', 'nhsa.6203'])
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
