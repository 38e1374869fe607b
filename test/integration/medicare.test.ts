import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';
import { authoriseMedicare, sscPayBiz, userToken } from '../support/medicare.js';
import { postForm } from '../support/payer.js';

describe('medical insurance: authorisation, token, mixed payment', () => {
  let t: TestPlatform;
  const redirect = 'https://his.example.cn/mi/callback';
  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    await t.platform.deps.apps.setRedirectUris(t.appId, ['https://his.example.cn/mi/']);
  });
  after(async () => {
    await t.close();
  });

  const form = postForm;

  /** The patient's side of spec 6.4: returns the URL the patient lands on at the HIS. */
  const authorise = (openId: string, decision: 'grant' | 'decline', state = 'st-1') =>
    authoriseMedicare(t, openId, { decision, state, redirectUri: redirect });

  async function token(openId: string, extra: Record<string, string> = {}) {
    const back = await authorise(openId, 'grant');
    return userToken(t, openId, back.searchParams.get('auth_code') ?? '', extra);
  }

  // The amount as a number: the spec's example writes it so.
  const sscPay = (openId: string, payAuthNo: string, over: Record<string, unknown> = {}) =>
    gateway(t, 'lc.ssc.trade.pay', sscPayBiz(openId, payAuthNo, { total_amount: 100, ...over }));

  it('authorisation → auth_code (single use) → pay_auth_no', async () => {
    const back = await authorise('2088000000000001', 'grant', 'state-xyz');
    assert.equal(back.origin + back.pathname, redirect);
    assert.equal(back.searchParams.get('state'), 'state-xyz');
    const code = back.searchParams.get('auth_code') ?? '';
    assert.match(code, /^[0-9a-f]{32}$/);
    const biz = {
      user_id: '2088000000000001',
      payment_type: 'alipay',
      auth_code: code,
      patient_name: '王医保',
      patient_card_no: '44010519800101123X',
      biz_city_code: '440100',
      ssc_ins_type: 'YB',
    };
    const a = await gateway(t, 'lc.ssc.user.token', biz);
    assert.equal(a.json.code, '10000', a.raw);
    assert.match(String(a.biz['pay_auth_no']), /^AUTH440100/);
    assert.equal(a.biz['city_code'], '440100');
    assert.ok(a.biz['qr_code'] && a.biz['card_info']);
    const again = await gateway(t, 'lc.ssc.user.token', biz);
    assert.equal(again.biz['sub_code'], 'AUTH_CODE_INVALID');
  });

  it('a declined authorisation comes back as error=access_denied', async () => {
    const back = await authorise('2088000000000002', 'decline');
    assert.equal(back.searchParams.get('error'), 'access_denied');
    assert.equal(back.searchParams.get('auth_code'), null);
  });

  it('refuses a redirect_uri the app did not register, and unknown apps', async () => {
    const q = new URLSearchParams({
      app_id: t.appId,
      open_id: 'u1',
      state: 's',
      redirect_uri: 'https://evil.example.com/steal',
    });
    const r = await fetch(`${t.url}/oauth2/medicareAuth?${q.toString()}`, { redirect: 'manual' });
    assert.equal(r.status, 400);
    assert.match(await r.text(), /INVALID_FIELD\.redirect_uri/);
    const q2 = new URLSearchParams({ app_id: 'hpnope', open_id: 'u1', state: 's', redirect_uri: redirect });
    assert.equal(
      (await fetch(`${t.url}/oauth2/medicareAuth?${q2.toString()}`, { redirect: 'manual' })).status,
      400,
    );
  });

  it("lc.ssc.user.token: the spec's conditions for alipay, another user's code, no insurance", async () => {
    const back = await authorise('2088000000000003', 'grant');
    const code = back.searchParams.get('auth_code') ?? '';
    const missing = await gateway(t, 'lc.ssc.user.token', {
      user_id: '2088000000000003',
      payment_type: 'alipay',
      auth_code: code,
    });
    assert.equal(missing.json.code, '40001');
    assert.equal(missing.biz['sub_code'], 'MISSING_FIELD.patient_name');
    const other = await gateway(t, 'lc.ssc.user.token', {
      user_id: 'someone-else',
      payment_type: 'weixin',
      auth_code: code,
    });
    assert.equal(other.biz['sub_code'], 'AUTH_CODE_USER_MISMATCH');
    const none = await token('2088000000000004', { patient_card_no: '440105198001010000' });
    assert.equal(none.biz['sub_code'], 'NO_INSURANCE');
  });

  it('lc.ssc.trade.pay: insurance + cash; the cash part is paid on the channel; refunds return cash only', async () => {
    const tok = await token('2088000000000005');
    const payAuthNo = String(tok.biz['pay_auth_no']);
    const a = await sscPay('2088000000000005', payAuthNo);
    assert.equal(a.json.code, '10000', a.raw);
    assert.ok(a.biz['paystr']);
    const outTradeNo = String(a.biz['out_trade_no']);
    // The payer's app is already known (payment_type): the goto page goes straight to the channel.
    const go = await fetch(String(a.biz['goto_url']), { redirect: 'manual' });
    assert.equal(go.status, 302);
    const cashier = go.headers.get('location') ?? '';
    assert.match(await (await fetch(cashier)).text(), /40\.00/, 'only the cash part is paid at the channel');
    const paid = await form(cashier, 'action=pay');
    assert.equal(paid.status, 303);
    const q = await gateway(t, 'lc.trade.query', { out_trade_no: outTradeNo });
    assert.equal(q.biz['trade_status'], 'TRADE_SUCCESS');
    assert.match(q.raw, /"insurance_fee":60\.00/);
    assert.match(q.raw, /"cash_fee":40\.00/);
    const over = await gateway(t, 'lc.trade.refund', {
      out_trade_no: outTradeNo,
      refund_amount: '40.01',
      out_request_no: 'R1',
    });
    assert.equal(over.biz['sub_code'], 'REFUND_AMOUNT_EXCEEDED');
    const cash = await gateway(t, 'lc.trade.refund', {
      out_trade_no: outTradeNo,
      refund_amount: '40.00',
      out_request_no: 'R1',
    });
    assert.equal(cash.json.code, '10000', cash.raw);
    assert.equal(cash.biz['trade_status'], 'TRADE_CLOSED');
    const ins = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: outTradeNo,
      out_request_no: 'MI1',
      insurance_refund_fee: '60.00',
    });
    assert.equal(ins.json.code, '10000', ins.raw);
    assert.equal(ins.biz['recorded'], 'Y');
    // Through the simulated centre by default (its refund number kept), apart from the cash refund.
    assert.equal(ins.biz['insurance_refund_mode'], 'CENTRE');
    assert.match(String(ins.biz['insurance_refund_no']), /^SIMRF/);
    const insAgain = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: outTradeNo,
      out_request_no: 'MI1',
      insurance_refund_fee: '60.00',
    });
    assert.equal(insAgain.biz['recorded'], 'N');
    const insOver = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: outTradeNo,
      out_request_no: 'MI2',
      insurance_refund_fee: '0.01',
    });
    assert.equal(insOver.biz['sub_code'], 'REFUND_AMOUNT_EXCEEDED');
    const rows = await t.store.db
      .selectFrom('refunds')
      .select(['out_request_no', 'kind', 'status', 'amount_fen', 'channel_refund_no'])
      .where('trade_id', '=', (await t.trade(outTradeNo)).id)
      .orderBy('id')
      .execute();
    assert.deepEqual(
      rows.map((r) => [
        r.out_request_no,
        r.kind,
        r.status,
        r.amount_fen,
        r.channel_refund_no?.slice(0, 5) ?? null,
      ]),
      [
        ['R1', 'refund', 'SUCCESS', 4000, rows[0]?.channel_refund_no?.slice(0, 5) ?? null],
        ['MI1', 'insurance', 'SUCCESS', 6000, 'SIMRF'],
      ],
    );
    // The pay_auth_no paid one trade; it cannot pay another.
    const reuse = await sscPay('2088000000000005', payAuthNo);
    assert.equal(reuse.biz['sub_code'], 'PAY_AUTH_NO_USED');
  });

  it('lc.ssc.insurance.refund: a refusal of the simulated centre frees the amount; RECORD records a partial refund', async () => {
    const tok = await token('2088000000000009');
    const a = await sscPay('2088000000000009', String(tok.biz['pay_auth_no']), {
      cash_fee: '0.00',
      insurance_fee: '100.00',
    });
    assert.equal(a.json.code, '10000', a.raw);
    const no = String(a.biz['out_trade_no']);
    const refused = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: no,
      out_request_no: 'SIM_INSURANCE_REFUND_FAIL',
      insurance_refund_fee: '100.00',
    });
    assert.equal(refused.biz['sub_code'], 'INSURANCE_REFUND_FAILED', refused.raw);
    const partial = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: no,
      out_request_no: 'MI-P1',
      insurance_refund_fee: '30.00',
      insurance_refund_mode: 'RECORD',
    });
    assert.deepEqual([partial.biz['recorded'], partial.biz['insurance_refund_mode']], ['Y', 'RECORD']);
    assert.equal(partial.biz['insurance_refund_no'], undefined);
    const rest = await gateway(t, 'lc.ssc.insurance.refund', {
      out_trade_no: no,
      out_request_no: 'MI-P2',
      insurance_refund_fee: '70.00',
    });
    assert.deepEqual([rest.biz['recorded'], rest.biz['insurance_refund_mode']], ['Y', 'CENTRE'], rest.raw);
    assert.match(rest.raw, /"insurance_refund_fee":100\.00/);
  });

  it('refusals: sums that do not add up, unknown or foreign pay_auth_no, settlement failure; full insurance pays at once', async () => {
    const tok = await token('2088000000000006');
    const payAuthNo = String(tok.biz['pay_auth_no']);
    const sum = await sscPay('2088000000000006', payAuthNo, { total_amount: '100.01' });
    assert.equal(sum.json.code, '40002');
    assert.equal(sum.biz['sub_code'], 'INVALID_FIELD.total_amount');
    const unknown = await sscPay('2088000000000006', 'AUTH000');
    assert.equal(unknown.biz['sub_code'], 'PAY_AUTH_NO_INVALID');
    const foreign = await sscPay('someone-else', payAuthNo);
    assert.equal(foreign.biz['sub_code'], 'PAY_AUTH_NO_USER_MISMATCH');
    const failed = await sscPay('2088000000000006', payAuthNo, { ssc_serial_no: 'SIM_INSURANCE_FAIL' });
    assert.equal(failed.biz['sub_code'], 'INSURANCE_SETTLE_FAILED');
    const noSerial = await sscPay('2088000000000006', payAuthNo, { ssc_serial_no: '' });
    assert.equal(noSerial.biz['sub_code'], 'MISSING_FIELD.ssc_serial_no');
    const full = await sscPay('2088000000000006', payAuthNo, {
      total_amount: '60.00',
      cash_fee: '0',
      insurance_fee: '60.00',
    });
    assert.equal(full.json.code, '10000', full.raw);
    assert.equal(full.biz['trade_status'], 'TRADE_SUCCESS');
  });

  it('the insurance settlement is reversed when a mixed trade ends unpaid or is cancelled, not when only its cash is refunded', async () => {
    const state = async (no: string) => {
      const row = await t.trade(no);
      return {
        insurance_state: row.insurance_state,
        insurance_refunded_fen: row.insurance_refunded_fen,
        status: row.status,
      };
    };
    const payCash = async (gotoUrl: string) => {
      const go = await fetch(gotoUrl, { redirect: 'manual' });
      await form(go.headers.get('location') ?? '', 'action=pay');
    };
    // 1. Ends unpaid: expires, closed by the job, insurance reversed.
    const t1 = await token('2088000000000011');
    const unpaid = await sscPay('2088000000000011', String(t1.biz['pay_auth_no']), { timeout_express: '5m' });
    const n1 = String(unpaid.biz['out_trade_no']);
    assert.equal((await state(n1)).insurance_state, 'SETTLED');
    t.clock.advance(6 * 60_000);
    await t.platform.expiry.tick();
    await t.platform.expiry.tick();
    assert.deepEqual(await state(n1), {
      insurance_state: 'REVERSED',
      insurance_refunded_fen: 6000,
      status: 'TRADE_CLOSED',
    });
    // 2. Paid, then cancelled: cash reversed at the channel, insurance by the job.
    const t2 = await token('2088000000000012');
    const paid = await sscPay('2088000000000012', String(t2.biz['pay_auth_no']));
    const n2 = String(paid.biz['out_trade_no']);
    await payCash(String(paid.biz['goto_url']));
    const c = await gateway(t, 'lc.trade.cancel', { out_trade_no: n2 });
    assert.equal(c.biz['action'], 'refund', c.raw);
    await t.platform.expiry.tick();
    assert.equal((await state(n2)).insurance_state, 'REVERSED');
    // 3. All insurance, cancelled: closed without a channel.
    const t3 = await token('2088000000000013');
    const full = await sscPay('2088000000000013', String(t3.biz['pay_auth_no']), {
      total_amount: '60.00',
      cash_fee: '0',
      insurance_fee: '60.00',
    });
    const n3 = String(full.biz['out_trade_no']);
    const c3 = await gateway(t, 'lc.trade.cancel', { out_trade_no: n3 });
    assert.equal(c3.biz['action'], 'refund', c3.raw);
    await t.platform.expiry.tick();
    assert.equal((await state(n3)).insurance_state, 'REVERSED');
    // 4. Paid and its cash refunded: the insurance part is the hospital's national process, left as it is.
    const t4 = await token('2088000000000014');
    const p4 = await sscPay('2088000000000014', String(t4.biz['pay_auth_no']));
    const n4 = String(p4.biz['out_trade_no']);
    await payCash(String(p4.biz['goto_url']));
    await gateway(t, 'lc.trade.refund', { out_trade_no: n4, refund_amount: '40.00', out_request_no: 'C1' });
    await t.platform.expiry.tick();
    assert.deepEqual(await state(n4), {
      insurance_state: 'SETTLED',
      insurance_refunded_fen: 0,
      status: 'TRADE_CLOSED',
    });
    // The simulated e-voucher page exists.
    assert.equal((await fetch(String(t4.biz['qr_code']))).status, 200);
  });
});
