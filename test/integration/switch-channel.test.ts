import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authCode, barcodeFields, qrFields, type TestPlatform } from '../support/platform.js';
import type { AlipayFake } from '../fakes/alipay-server.js';
import { startPlatformWithFakeAlipay, type PlatformWithFakeAlipay } from '../support/fakes-platform.js';

/**
 * Switching an app from the simulator to a real channel is configuration only: the same offline requests give
 * the same answers through the Alipay adapter (against the fake Alipay gateway) as through the simulator;
 * the provider's notification pays a QR trade; trades keep the channel they were made on.
 */
describe('switching an app from the simulator to Alipay is configuration only', () => {
  let p: PlatformWithFakeAlipay;
  let t: TestPlatform;
  let fake: AlipayFake;
  const APP_ID = '2021000000000042';

  before(async () => {
    p = await startPlatformWithFakeAlipay({ alipayAppId: APP_ID });
    ({ t, fake } = p);
  });
  after(async () => {
    await p.close();
  });

  const admin = (method: string, path: string, body?: unknown) => t.admin(method, path, body);

  /** A pay, query, partial refund, repeat of the refund, and cancel of another payment; answers normalised. */
  async function flow(): Promise<{ answers: string[]; orders: string[] }> {
    const answers: string[] = [];
    const pick = (a: Awaited<ReturnType<TestPlatform['offline']>>, ...keys: string[]) =>
      [a.rr.IsSuccess, a.rr.SubCode, ...keys.map((k) => `${k}=${a.result[k] ?? ''}`)].join(' ');
    const f = barcodeFields({ AuthCode: authCode('00', 'alipay'), TotalAmount: '100.00' });
    const no = f.OutTradeNo ?? '';
    answers.push(pick(await t.offline('FWC_IF_Barcode_Pay', f), 'TradeStatus', 'TotalAmount'));
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: no });
    answers.push(pick(q, 'TradeStatus', 'TotalAmount'));
    const refund = {
      OutTradeNo: no,
      TradeNo: q.result['TradeNo'],
      RefundAmount: '30.00',
      OutRequestNo: `${no}R1`,
      TotalAmount: '100.00',
    };
    answers.push(pick(await t.offline('FWC_IF_Barcode_Pay_Refund', refund), 'RefundChange', 'RefundFee'));
    answers.push(pick(await t.offline('FWC_IF_Barcode_Pay_Refund', refund), 'RefundChange', 'RefundFee'));
    const g = barcodeFields({ AuthCode: authCode('00', 'alipay'), TotalAmount: '12.34' });
    await t.offline('FWC_IF_Barcode_Pay', g);
    answers.push(
      pick(await t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: g.OutTradeNo }), 'RetryFlag', 'Action'),
    );
    answers.push(
      pick(await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: g.OutTradeNo }), 'TradeStatus'),
    );
    return { answers, orders: [no, g.OutTradeNo ?? ''] };
  }

  let onSimulator: Awaited<ReturnType<typeof flow>>;

  it('the flow on the simulator', async () => {
    onSimulator = await flow();
    assert.match(onSimulator.answers[0] ?? '', /^1 .*TradeStatus=TRADE_SUCCESS/);
  });

  it('the switch is refused until the configuration is complete, then accepted', async () => {
    const early = await admin('PUT', `/admin/apps/${t.appId}/channel-map`, {
      pay_type: 'alipay',
      channel: 'alipay',
    });
    assert.equal(early.status, 400);
    assert.equal(early.data['code'], 'CHANNEL_CONFIG_INVALID');
    const wrong = await admin('PUT', `/admin/apps/${t.appId}/channels/alipay`, {
      values: { app_id: APP_ID, private_key: 'not a key' },
    });
    assert.equal(wrong.status, 400);
    assert.ok((wrong.data['problems'] as Array<{ field: string }>).some((p) => p.field === 'private_key'));
    const set = await admin('PUT', `/admin/apps/${t.appId}/channels/alipay`, { values: p.alipayValues() });
    assert.equal(set.status, 200, JSON.stringify(set.data));
    assert.equal((set.data['values'] as Record<string, string>)['private_key'], '已设置 set');
    assert.ok(!JSON.stringify(set.data).includes('PRIVATE KEY'));
    // SQL on purpose: the configuration as stored at rest.
    const stored = await t.store.db
      .selectFrom('channel_configs')
      .selectAll()
      .where('app_id', '=', t.appId)
      .where('channel_id', '=', 'alipay')
      .executeTakeFirstOrThrow();
    assert.ok(!stored.settings.includes('PRIVATE KEY'), 'the key is not stored in the clear');
    assert.match(stored.secrets_sealed ?? '', /^v1:/);
    const use = await admin('PUT', `/admin/apps/${t.appId}/channel-map`, {
      pay_type: 'alipay',
      channel: 'alipay',
    });
    assert.equal(use.status, 200, JSON.stringify(use.data));
  });

  it('the same flow through the Alipay adapter gives the same answers; the money moved at Alipay', async () => {
    const before = fake.requests().length;
    const onAlipay = await flow();
    assert.deepEqual(onAlipay.answers, onSimulator.answers);
    assert.ok(fake.requests().length > before, 'the requests went to Alipay');
    assert.ok(
      fake.requests().every((r) => r.signatureValid),
      'every request was correctly signed',
    );
    const [paid, cancelled] = onAlipay.orders;
    assert.equal(fake.trade(paid ?? '')?.state, 'paid');
    assert.equal(fake.trade(paid ?? '')?.refundedFen, 3000);
    assert.ok(['refunded', 'closed'].includes(fake.trade(cancelled ?? '')?.state ?? ''));
    const trade = await t.platform.deps.trades.byOutTradeNo(t.appId, paid ?? '');
    assert.equal(trade?.channel, 'alipay');
    // The exchanges are recorded for operators.
    const calls = await admin('GET', `/admin/channel-calls?out_trade_no=${paid ?? ''}`);
    const ops = (calls.data as unknown as Array<{ operation: string }>).map((c) => c.operation);
    assert.ok(
      ops.some((o) => o.includes('alipay.trade.pay')),
      ops.join(' '),
    );
  });

  it('a QR trade at Alipay is paid by the provider’s notification', async () => {
    const f = qrFields({ TotalAmount: '25.50' });
    const created = await t.offline('FWC_IF_Qrcode_Pay', { ...f, PayType: 'alipay' });
    assert.equal(created.rr.IsSuccess, '1', created.text);
    const no = f.OutTradeNo ?? '';
    assert.equal(fake.trade(no)?.state, 'waiting');
    fake.setTrade(no, 'paid');
    const n = fake.notification(no);
    const res = await fetch(`${t.url}/channels/alipay/notify/${t.appId}`, {
      method: 'POST',
      headers: n.headers,
      body: n.body,
    });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'success');
    const trade = await t.platform.deps.trades.byOutTradeNo(t.appId, no);
    assert.equal(trade?.status, 'TRADE_SUCCESS');
    // A forged notification is refused and changes nothing.
    const forged = fake.notification(no, { tamper: true });
    const bad = await fetch(`${t.url}/channels/alipay/notify/${t.appId}`, {
      method: 'POST',
      headers: forged.headers,
      body: forged.body,
    });
    assert.equal(await bad.text(), 'fail');
  });

  it('switching back: new trades go to the simulator, older ones stay with Alipay', async () => {
    const back = await admin('PUT', `/admin/apps/${t.appId}/channel-map`, {
      pay_type: 'alipay',
      channel: 'simulator',
    });
    assert.equal(back.status, 200);
    const f = barcodeFields({ AuthCode: authCode('00', 'alipay') });
    assert.equal((await t.offline('FWC_IF_Barcode_Pay', f)).rr.IsSuccess, '1');
    assert.equal(
      (await t.platform.deps.trades.byOutTradeNo(t.appId, f.OutTradeNo ?? ''))?.channel,
      'simulator',
    );
    // A refund of a trade made at Alipay still goes to Alipay.
    // Set-up: any trade the earlier tests made at Alipay that is still paid (no repository lists by channel).
    const old = await t.store.db
      .selectFrom('trades')
      .selectAll()
      .where('channel', '=', 'alipay')
      .where('status', '=', 'TRADE_SUCCESS')
      .executeTakeFirstOrThrow();
    const before = fake.trade(old.out_trade_no)?.refundedFen ?? 0;
    const r = await t.offline('FWC_IF_Barcode_Pay_Refund', {
      OutTradeNo: old.out_trade_no,
      TradeNo: old.channel_trade_no ?? '',
      TotalAmount: (old.total_fen / 100).toFixed(2),
      RefundAmount: '1.00',
      OutRequestNo: `${old.out_trade_no}R9`,
    });
    assert.equal(r.rr.IsSuccess, '1', r.text);
    assert.equal(fake.trade(old.out_trade_no)?.refundedFen, before + 100);
  });
});
