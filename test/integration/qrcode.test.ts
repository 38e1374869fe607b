import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { qrFields, startTestPlatform, type TestPlatform } from '../support/platform.js';

describe('FWC_IF_Qrcode_Pay', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t.close();
  });

  const query = (no: string | undefined) => t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: no });
  const form = (url: string, data: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams(data).toString(),
    });

  it('with PayType: the code is the channel payer page; paying there makes the trade TRADE_SUCCESS', async () => {
    const f = qrFields({
      PayType: 'Alipay',
      TradeDetail:
        '[{"goods_id":"apple-01","goods_name":"挂号费","goods_category":"7788 230","price":" 20.00","quantity":"1","body":"商品描述"}]',
    });
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    assert.equal(a.result.OutTradeNo, f.OutTradeNo);
    const code = a.result.TwoDimensionCode ?? '';
    assert.match(code, /\/simulator\/pay\/[0-9]{28}$/);
    const page = await fetch(code);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /25\.50/);
    assert.match(html, /确认支付/);
    const q0 = await query(f.OutTradeNo);
    assert.equal(q0.result.TradeStatus, 'WAIT_BUYER_PAY');
    const paid = await form(code, { action: 'pay' });
    assert.equal(paid.status, 200);
    assert.match(await paid.text(), /支付成功/);
    const q = await query(f.OutTradeNo);
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS');
    assert.equal(q.result.PayType, 'alipay');
    assert.equal(q.result.Category, 'ZJMZ');
    // Idempotent: the same request answers the paid trade, not a new code.
    const again = await t.offline('FWC_IF_Qrcode_Pay', f);
    assert.equal(again.rr.SubCode, 'TRADE_HAS_SUCCESS');
  });

  it('a repeat before payment returns the same code; other content is refused', async () => {
    const f = qrFields({ PayType: 'weixin' });
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    const b = await t.offline('FWC_IF_Qrcode_Pay', f);
    assert.equal(b.result.TwoDimensionCode, a.result.TwoDimensionCode);
    const c = await t.offline('FWC_IF_Qrcode_Pay', { ...f, TotalAmount: '25.51' });
    assert.equal(c.rr.SubCode, 'OUT_TRADE_NO_CONFLICT');
  });

  it('the payer abandons on the payer page: the trade ends TRADE_CLOSED', async () => {
    const f = qrFields({ PayType: 'unionpay' });
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    const r = await form(a.result.TwoDimensionCode ?? '', { action: 'abandon' });
    assert.match(await r.text(), /放弃/);
    const q = await query(f.OutTradeNo);
    assert.equal(q.result.TradeStatus, 'TRADE_CLOSED');
  });

  it('aggregated (no PayType): the code is our cashier page, which follows the scanning app', async () => {
    const f = qrFields();
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    const code = a.result.TwoDimensionCode ?? '';
    assert.match(code, /\/cashier\/qr\/[A-Za-z0-9_-]+$/);
    // A plain browser gets a choice.
    const choice = await fetch(code);
    const html = await choice.text();
    assert.match(html, /支付宝/);
    assert.match(html, /微信支付/);
    // Scanned with WeChat: sent on to WeChat's code.
    const wx = await fetch(code, {
      redirect: 'manual',
      headers: { 'user-agent': 'Mozilla/5.0 (iPhone) MicroMessenger/8.0.50' },
    });
    assert.equal(wx.status, 302);
    const target = wx.headers.get('location') ?? '';
    assert.match(target, /\/simulator\/pay\/4200[0-9]{24}$/);
    // Then with Alipay: refused, the first choice sticks (never open at two channels).
    const ali = await fetch(code, { headers: { 'user-agent': 'Mozilla/5.0 AlipayClient/10.5' } });
    assert.match(await ali.text(), /已选择微信支付/);
    const q0 = await query(f.OutTradeNo);
    assert.equal(q0.result.TradeStatus, 'WAIT_BUYER_PAY');
    assert.equal(q0.result.PayType, 'weixin');
    await form(target, { action: 'pay' });
    const q = await query(f.OutTradeNo);
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS');
    const after = await fetch(code);
    assert.match(await after.text(), /已支付/);
  });

  it('aggregated: choosing on the page (form post) works the same', async () => {
    const f = qrFields();
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    const r = await form(a.result.TwoDimensionCode ?? '', { pay_type: 'alipay' });
    assert.equal(r.status, 302);
    assert.match(r.headers.get('location') ?? '', /\/simulator\/pay\/[0-9]{28}$/);
    const bad = await form(a.result.TwoDimensionCode ?? '', { pay_type: 'paypal' });
    assert.equal(bad.status, 400);
  });

  it('validates TimeoutExpress and TradeDetail', async () => {
    for (const te of ['0m', '16d', '1.5h', '90', 'abc', '2c']) {
      const a = await t.offline('FWC_IF_Qrcode_Pay', qrFields({ TimeoutExpress: te }));
      assert.equal(a.rr.IsSuccess, '0', te);
      assert.equal(a.rr.SubCode, 'INVALID_FIELD.TimeoutExpress', te);
    }
    for (const te of ['1m', '90m', '15d', '1c', '24h']) {
      const a = await t.offline('FWC_IF_Qrcode_Pay', qrFields({ TimeoutExpress: te }));
      assert.equal(a.rr.IsSuccess, '1', te);
    }
    for (const td of [
      'not json',
      '{"a":1}',
      '[]',
      '[{"goods_name":"x","quantity":"1"}]',
      '[{"goods_id":"a","goods_name":"x","quantity":"0"}]',
      '[{"goods_id":"a","goods_name":"x","quantity":"1","price":"1.234"}]',
    ]) {
      const a = await t.offline('FWC_IF_Qrcode_Pay', qrFields({ TradeDetail: td }));
      assert.equal(a.rr.SubCode, 'INVALID_FIELD.TradeDetail', td);
    }
  });

  it('1c closes at the next midnight in Asia/Shanghai', async () => {
    const f = qrFields({ TimeoutExpress: '1c', PayType: 'alipay' });
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    // The fake clock starts at 2026-11-25 10:00 Shanghai: midnight is 2026-11-26 00:00:00.
    assert.equal(a.result.ExpireTime?.slice(11), '00:00:00');
  });

  it('the expiry job closes unpaid codes at the channel when they expire, and closes unscanned aggregated codes', async () => {
    const direct = qrFields({ PayType: 'alipay', TimeoutExpress: '5m' });
    const agg = qrFields({ TimeoutExpress: '5m' });
    const late = qrFields({ PayType: 'alipay', TimeoutExpress: '5m' });
    const d = await t.offline('FWC_IF_Qrcode_Pay', direct);
    await t.offline('FWC_IF_Qrcode_Pay', agg);
    const l = await t.offline('FWC_IF_Qrcode_Pay', late);
    await form(l.result.TwoDimensionCode ?? '', { action: 'pay' }); // paid, but nobody queried yet
    t.clock.advance(4 * 60_000);
    await t.platform.expiry.tick();
    assert.equal((await query(direct.OutTradeNo)).result.TradeStatus, 'WAIT_BUYER_PAY');
    t.clock.advance(2 * 60_000);
    await t.platform.expiry.tick();
    assert.equal((await query(direct.OutTradeNo)).result.TradeStatus, 'TRADE_CLOSED');
    assert.equal((await query(agg.OutTradeNo)).result.TradeStatus, 'TRADE_CLOSED');
    assert.equal(
      (await query(late.OutTradeNo)).result.TradeStatus,
      'TRADE_SUCCESS',
      'a paid code is found, not closed',
    );
    // The closed code can no longer be paid at the channel.
    const r = await form(d.result.TwoDimensionCode ?? '', { action: 'pay' });
    assert.doesNotMatch(await r.text(), /支付成功/);
    assert.equal((await query(direct.OutTradeNo)).result.TradeStatus, 'TRADE_CLOSED');
  });

  it('cancel closes an unscanned aggregated code without a channel', async () => {
    const f = qrFields();
    await t.offline('FWC_IF_Qrcode_Pay', f);
    const c = await t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: f.OutTradeNo });
    assert.equal(c.rr.IsSuccess, '1');
    assert.equal(c.result.CancelAction, 'close');
  });

  it('an OutTradeNo used for a barcode pay cannot be reused for a QR code (paid: answered as paid)', async () => {
    for (const [rule, expected] of [
      ['02', 'OUT_TRADE_NO_CONFLICT'], // still waiting for the payer
      ['11', 'TRADE_HAS_SUCCESS'], // paid at once
    ] as const) {
      const f = qrFields({ PayType: 'alipay' });
      await t.offline('FWC_IF_Barcode_Pay', {
        OutTradeNo: f.OutTradeNo,
        AuthCode: `2800000000000000${rule}`,
        TotalAmount: '1.00',
        Caption: 'x',
        PatientName: 'x',
        InhospitalNo: 'x',
        OrderType: 'TREATMENT',
        Cnt: '0',
      });
      const a = await t.offline('FWC_IF_Qrcode_Pay', f);
      assert.equal(a.rr.SubCode, expected, a.text);
      assert.equal(a.rr.IsSuccess, '0');
    }
  });
});
