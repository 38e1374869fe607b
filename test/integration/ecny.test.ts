import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  barcodeFields,
  qrFields,
  startTestPlatform,
  type OfflineAnswer,
  type TestPlatform,
} from '../support/platform.js';
import { channelCharges } from '../support/books.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';
import { payAuthNo, sscPayBiz } from '../support/medicare.js';
import { startHisSimulator } from '../../src/reconcile/his/his-sim.js';
import { reconcileDay } from '../../src/reconcile/run.js';
import { SimulatorProvider } from '../../src/simulator/provider.js';
import { fen } from '../../src/domain/money.js';

/** An e-CNY (数字人民币) wallet payment code: 19 digits starting with 01; the last two digits pick the rule. */
function ecnyCode(rule = '00'): string {
  let body = '';
  for (let i = 0; i < 15; i++) body += Math.floor(Math.random() * 10).toString();
  return `01${body}${rule}`;
}

/** e-CNY (`elecny`) end to end through the real doors, on the simulator; `eshimin` refused precisely. */
describe('e-CNY (elecny) and eshimin', () => {
  let t: TestPlatform;
  let his: Awaited<ReturnType<typeof startHisSimulator>>;
  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    await t.platform.deps.apps.setRedirectUris(t.appId, ['https://his.example.cn/mi/']);
    his = await startHisSimulator(0);
    await t.store.db.updateTable('apps').set({ his_base_url: his.url }).where('id', '=', t.appId).execute();
  });
  after(async () => {
    await his.close();
    await t.close();
  });

  const query = (no: string | undefined) => t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: no });
  const refund = (a: OfflineAnswer, no: string | undefined, amount: string, total: string, req: string) =>
    t.offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: a.result.TradeNo,
      RefundAmount: amount,
      OutRequestNo: req,
      OutTradeNo: no,
      TotalAmount: total,
    });

  it('barcode pay with an e-CNY code: told from the code, stored as elecny, queried and refunded', async () => {
    const f = barcodeFields({ AuthCode: ecnyCode(), TotalAmount: '12.34' });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    assert.equal(a.result.TradeStatus, 'TRADE_SUCCESS');
    assert.equal(a.result.PayType, 'elecny');
    assert.match(a.result.TradeNo ?? '', /^[0-9]{26}$/, 'the simulated e-CNY order number');
    const row = await t.trade(f.OutTradeNo ?? '');
    assert.equal(row.pay_type, 'elecny');
    assert.equal(row.channel, 'simulator');
    assert.equal(await channelCharges(t.store.db, f.OutTradeNo ?? ''), 1);

    const q = await query(f.OutTradeNo);
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS');
    assert.equal(q.result.PayType, 'elecny');

    const part = await refund(a, f.OutTradeNo, '2.34', '12.34', 'EC-R1');
    assert.equal(part.rr.IsSuccess, '1', part.text);
    const rest = await refund(a, f.OutTradeNo, '10.00', '12.34', 'EC-R2');
    assert.equal(rest.rr.IsSuccess, '1', rest.text);
    const after = await query(f.OutTradeNo);
    assert.equal(after.result.TradeStatus, 'TRADE_CLOSED');
    assert.equal((await t.trade(f.OutTradeNo ?? '')).refunded_fen, 1234);
  });

  it('PayType elecny (any case) is accepted with an e-CNY code, and refused for another channel’s code', async () => {
    const f = barcodeFields({ AuthCode: ecnyCode(), PayType: 'ELECNY' });
    const a = await t.offline('FWC_IF_Barcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    assert.equal(a.result.PayType, 'elecny');
    // A code nobody's prefix claims, named e-CNY by the HIS: taken as e-CNY.
    const named = await t.offline(
      'FWC_IF_Barcode_Pay',
      barcodeFields({ AuthCode: '9912345678901234500', PayType: 'elecny' }),
    );
    assert.equal(named.rr.IsSuccess, '1', named.text);
    assert.equal(named.result.PayType, 'elecny');
    // An e-CNY code said to be Alipay, and a WeChat code said to be e-CNY: refused.
    const wrong = await t.offline(
      'FWC_IF_Barcode_Pay',
      barcodeFields({ AuthCode: ecnyCode(), PayType: 'alipay' }),
    );
    assert.equal(wrong.rr.SubCode, 'INVALID_FIELD.PayType', wrong.text);
    const wx = await t.offline(
      'FWC_IF_Barcode_Pay',
      barcodeFields({ AuthCode: '134567890123456700', PayType: 'elecny' }),
    );
    assert.equal(wx.rr.SubCode, 'INVALID_FIELD.PayType', wx.text);
  });

  it('cancel: an unpaid e-CNY payment is closed; a paid one is reversed in full', async () => {
    const waiting = barcodeFields({ AuthCode: ecnyCode('02'), Cnt: '0' });
    const w = await t.offline('FWC_IF_Barcode_Pay', waiting);
    assert.equal(w.rr.SubCode, 'USER_PAYING', w.text);
    const c1 = await t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: waiting.OutTradeNo });
    assert.equal(c1.rr.IsSuccess, '1', c1.text);
    assert.equal(c1.result.CancelAction, 'close');
    assert.equal(c1.result.TradeStatus, 'TRADE_CLOSED');

    const paid = barcodeFields({ AuthCode: ecnyCode() });
    assert.equal((await t.offline('FWC_IF_Barcode_Pay', paid)).rr.IsSuccess, '1');
    const c2 = await t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: paid.OutTradeNo });
    assert.equal(c2.rr.IsSuccess, '1', c2.text);
    assert.equal(c2.result.CancelAction, 'refund');
    assert.equal((await query(paid.OutTradeNo)).result.TradeStatus, 'TRADE_CLOSED');
  });

  it('rules by the last two digits work for e-CNY codes too (01: paid on the 2nd query; 03: declined)', async () => {
    const f = barcodeFields({ AuthCode: ecnyCode('01'), Cnt: '0' });
    assert.equal((await t.offline('FWC_IF_Barcode_Pay', f)).rr.SubCode, 'USER_PAYING');
    await query(f.OutTradeNo);
    assert.equal((await query(f.OutTradeNo)).result.TradeStatus, 'TRADE_SUCCESS');
    const poor = await t.offline('FWC_IF_Barcode_Pay', barcodeFields({ AuthCode: ecnyCode('03') }));
    assert.equal(poor.rr.SubCode, 'BUYER_BALANCE_NOT_ENOUGH');
  });

  it('QR pay with PayType elecny: the simulator payer page names the app 数字人民币', async () => {
    const f = qrFields({ PayType: 'elecny' });
    const a = await t.offline('FWC_IF_Qrcode_Pay', f);
    assert.equal(a.rr.IsSuccess, '1', a.text);
    const code = a.result.TwoDimensionCode ?? '';
    const html = await (await fetch(code)).text();
    assert.match(html, /数字人民币 \(e-CNY\) · 模拟收银台/);
    const paid = await fetch(code, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'action=pay',
    });
    assert.equal(paid.status, 200);
    const q = await query(f.OutTradeNo);
    assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS');
    assert.equal(q.result.PayType, 'elecny');
  });

  it('reconciles a day of e-CNY trades against the simulator bill and the HIS ([dc]); a planted difference shows', async () => {
    // Only this test's day: the trades above are on the same day, so the comparison is over all of them.
    const { trades, refunds } = await t.platform.recon.reconciliation.paidMovements();
    const flows = his.sim.loadFromTrades(trades, refunds);
    // The HIS keeps e-CNY movements under the spec's [dc] (数字货币).
    const dcFlows = flows.filter((f) => f.payType === 'dc');
    assert.ok(dcFlows.length >= 6, JSON.stringify(flows.map((f) => f.payType)));
    const app = (await t.platform.deps.apps.get(t.appId))!;
    const run = () => reconcileDay(t.platform.recon, { app, date: '2026-11-25', payTypes: ['elecny'] });
    const clean = await run();
    assert.equal(clean.length, 1);
    assert.equal(clean[0]?.payType, 'elecny');
    assert.equal(clean[0]?.skipped, undefined, JSON.stringify(clean));
    assert.equal(clean[0]?.status, 'DONE', JSON.stringify(clean));
    assert.equal(clean[0]?.differences, 0, JSON.stringify(clean));
    assert.ok((clean[0]?.matched ?? 0) > 0, JSON.stringify(clean));

    // The HIS lost one e-CNY payment (长款), and the provider took one the platform never recorded (漏单).
    const lost = dcFlows.find(
      (f) => f.kind === 'PAY' && dcFlows.filter((g) => g.outTradeNo === f.outTradeNo).length === 1,
    );
    assert.ok(lost);
    his.sim.faults.drop.add(lost.hisFlowId);
    const provider = new SimulatorProvider({ db: t.store.db, clock: t.clock, publicBaseUrl: t.url });
    await provider.barcodePay({
      merchant: t.appId,
      outTradeNo: 'MZECNYGHOST1',
      payType: 'elecny',
      amountFen: fen(4321),
      authCode: ecnyCode(),
      subject: 'ghost',
    });
    const faulty = await run();
    const rows = await t.platform.recon.reconciliation.differences({ date: '2026-11-25', present: true });
    const found = rows.filter((r) => r.pay_type === 'elecny').map((r) => `${r.code}:${r.out_trade_no}`);
    assert.deepEqual(
      found.sort(),
      [`HIS_MISSING:${lost.outTradeNo}`, 'CHANNEL_ONLY:MZECNYGHOST1', 'HIS_MISSING:MZECNYGHOST1'].sort(),
      JSON.stringify(rows),
    );
    assert.equal(faulty[0]?.differences, 3, JSON.stringify(faulty));
  });

  it('lc.ssc.trade.pay with payment_type elecny: the cash part is paid with e-CNY', async () => {
    const openId = '2088000000000077';
    const token = await payAuthNo(t, openId, { token: { payment_type: 'elecny' } });
    const a = await gateway(t, 'lc.ssc.trade.pay', sscPayBiz(openId, token, { payment_type: 'elecny' }));
    assert.equal(a.json.code, '10000', a.raw);
    const outTradeNo = String(a.biz['out_trade_no']);
    const row = await t.trade(outTradeNo);
    assert.equal(row.pay_type, 'elecny');
    const go = await fetch(String(a.biz['goto_url']), { redirect: 'manual' });
    assert.equal(go.status, 302);
    const cashier = go.headers.get('location') ?? '';
    const html = await (await fetch(cashier)).text();
    assert.match(html, /数字人民币 \(e-CNY\)/);
    assert.match(html, /40\.00/, 'only the cash part is paid at the channel');
  });

  it('eshimin is refused with PAY_TYPE_NOT_SUPPORTED, saying why, at the gateway and the offline door', async () => {
    const a = await gateway(
      t,
      'lc.ssc.trade.pay',
      sscPayBiz('2088000000000099', 'AUTH-X', { payment_type: 'eshimin' }),
    );
    assert.equal(a.biz['sub_code'], 'PAY_TYPE_NOT_SUPPORTED', a.raw);
    assert.match(String(a.biz['sub_msg']), /随申办.*没有公开的接口协议.*eshimin.*no public protocol/);
    const o = await t.offline(
      'FWC_IF_Barcode_Pay',
      barcodeFields({ PayType: 'eshimin', AuthCode: ecnyCode() }),
    );
    assert.equal(o.rr.IsSuccess, '0');
    assert.equal(o.rr.SubCode, 'PAY_TYPE_NOT_SUPPORTED', o.text);
  });
});
