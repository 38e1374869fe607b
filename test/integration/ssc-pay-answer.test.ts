import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { orderNo, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway, verifyAnswer } from '../support/gateway.js';
import { payAuthNo as grantedPayAuthNo } from '../support/medicare.js';

/** Issue 12 §3: what lc.ssc.trade.pay answers — the spec's paystr keys, and a paid order answered as paid. */
describe('lc.ssc.trade.pay answers', () => {
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

  /** The patient authorises (spec 6.4) and the HIS exchanges the code for a pay_auth_no (6.5). */
  const payAuthNo = (openId: string) => grantedPayAuthNo(t, openId, { redirectUri: redirect });

  const sscBiz = (openId: string, auth: string, over: Record<string, unknown> = {}) => ({
    out_trade_no: orderNo('MZ'),
    ssc_scene: 'TREATMENT',
    subject: '门诊医保缴费',
    notify_url: 'https://his.example.cn/mi/notify',
    return_url: 'https://his.example.cn/mi/return',
    total_amount: 100,
    cash_fee: '40.00',
    insurance_fee: '60.00',
    payment_type: 'weixin',
    user_id: openId,
    patient_name: '王医保',
    patient_card_no: '44010519800101123X',
    org_name: '市第一人民医院',
    org_no: 'H44010100001',
    ssc_ins_type: 'YB',
    city_code: '440100',
    ssc_serial_no: 'SSC0001',
    pay_auth_no: auth,
    ...over,
  });

  it("paystr carries the spec's keys (timestamp, partnerId, prepayId, appId, package, noncestr, sign) and pay_url", async () => {
    const openId = '2088000000000101';
    const a = await gateway(t, 'lc.ssc.trade.pay', sscBiz(openId, await payAuthNo(openId)));
    assert.equal(a.json.code, '10000', a.raw);
    const paystr = a.biz['paystr'];
    assert.equal(typeof paystr, 'string', 'a JSON string, as in the spec');
    const p = JSON.parse(String(paystr)) as Record<string, unknown>;
    assert.deepEqual(Object.keys(p), [
      'timestamp',
      'partnerId',
      'prepayId',
      'appId',
      'package',
      'noncestr',
      'sign',
      'pay_url',
    ]);
    for (const v of Object.values(p)) assert.equal(typeof v, 'string');
    assert.equal(p['timestamp'], String(Math.floor(t.clock.now().getTime() / 1000)));
    assert.match(String(p['noncestr']), /^[0-9A-F]{32}$/);
    // No channel has given prepay data yet (the channel trade is opened on goto_url): nothing made up.
    for (const k of ['partnerId', 'prepayId', 'appId', 'package', 'sign']) assert.equal(p[k], '', k);
    assert.equal(p['pay_url'], a.biz['goto_url']);
    const again = JSON.parse(
      String((await gateway(t, 'lc.ssc.trade.pay', sscBiz(openId, await payAuthNo(openId)))).biz['paystr']),
    ) as Record<string, unknown>;
    assert.notEqual(again['noncestr'], p['noncestr'], 'a fresh noncestr each time');
  });

  it('a paid mixed-payment order submitted again → 40004 TRADE_HAS_SUCCESS with the paid trade', async () => {
    const openId = '2088000000000102';
    // All insurance: the trade is paid at once.
    const biz = sscBiz(openId, await payAuthNo(openId), { cash_fee: '0', insurance_fee: '100.00' });
    const a = await gateway(t, 'lc.ssc.trade.pay', biz);
    assert.equal(a.json.code, '10000', a.raw);
    assert.equal(a.biz['trade_status'], 'TRADE_SUCCESS');
    const again = await gateway(t, 'lc.ssc.trade.pay', biz);
    assert.equal(again.json.code, '40004', again.raw);
    assert.ok(verifyAnswer(again.raw, (await t.platform.deps.keys.active()).publicKey));
    assert.equal(again.biz['sub_code'], 'TRADE_HAS_SUCCESS');
    assert.equal(again.biz['trade_status'], 'TRADE_SUCCESS');
    assert.equal(again.biz['out_trade_no'], biz.out_trade_no);
    assert.equal(again.biz['platform_trade_no'], a.biz['platform_trade_no']);
    assert.match(again.raw, /"total_amount":100\.00/);
    assert.match(again.raw, /"insurance_fee":100\.00/);
  });
});
