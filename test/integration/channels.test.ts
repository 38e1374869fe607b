import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  authCode,
  barcodeFields,
  qrFields,
  startTestPlatform,
  type TestPlatform,
} from '../support/platform.js';
import { startPlatform, ChannelStartupError } from '../../src/main.js';
import type { Channel, NotifyParse } from '../../src/channels/channel.js';
import { createLogger } from '../../src/logging.js';

/**
 * The channel framework through its doors: call records, the providers' notification endpoint, channel
 * administration (admin API), and the start-up check of every app's channel configuration.
 */
describe('channels: records, notifications, administration, start-up check', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t.close();
  });

  const admin = (method: string, path: string, body?: unknown) => t.admin(method, path, body);

  it('every exchange with the channel is recorded, without the payment code', async () => {
    const code = authCode('00', 'alipay');
    const f = barcodeFields({ AuthCode: code });
    assert.equal((await t.offline('FWC_IF_Barcode_Pay', f)).rr.IsSuccess, '1');
    // Records are written after the answer, without delaying it.
    let rows: Array<Record<string, unknown>> = [];
    for (let i = 0; i < 50 && rows.length === 0; i++) {
      const r = await admin('GET', `/admin/channel-calls?app=${t.appId}&out_trade_no=${f.OutTradeNo ?? ''}`);
      rows = r.data as unknown as Array<Record<string, unknown>>;
      if (rows.length === 0) await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(rows.length >= 1, 'recorded');
    assert.equal(rows[0]?.['operation'], 'simulator.barcodePay');
    assert.equal(rows[0]?.['outcome'], 'paid');
    assert.equal(rows[0]?.['channel_id'], 'simulator');
    assert.ok(!JSON.stringify(rows).includes(code));
  });

  it('a provider notification is verified by the channel, then the trade is queried; duplicates change nothing', async () => {
    const sim = t.platform.deps.channels.get('simulator') as Channel;
    const seen: string[] = [];
    const ack = { status: 200, contentType: 'text/plain', body: 'success' };
    (sim as { parseNotify?: Channel['parseNotify'] }).parseNotify = async (
      ctx,
      input,
    ): Promise<NotifyParse> => {
      seen.push(ctx.notifyUrl);
      const text = input.body.toString('utf8');
      const m = /^PAID:(\S+)$/.exec(text);
      if (!m)
        return {
          kind: 'rejected',
          reason: 'bad body',
          ack: { status: 400, contentType: 'text/plain', body: 'fail' },
        };
      return { kind: 'trade', outTradeNo: m[1] ?? '', ack };
    };
    try {
      const f = qrFields();
      const created = await t.offline('FWC_IF_Qrcode_Pay', { ...f, PayType: 'alipay' });
      assert.equal(created.rr.IsSuccess, '1', created.text);
      const trade = await t.platform.deps.trades.byOutTradeNo(t.appId, f.OutTradeNo ?? '');
      assert.equal(trade?.status, 'WAIT_BUYER_PAY');
      // The payer pays at the provider; the provider notifies.
      await t.platform.simulator.payerAction(trade?.channel_trade_no ?? '', 'pay');
      const url = `${t.url}/channels/simulator/notify/${t.appId}`;
      const post = (body: string, type = 'text/plain') =>
        fetch(url, { method: 'POST', headers: { 'content-type': type }, body });
      const r1 = await post(`PAID:${f.OutTradeNo ?? ''}`);
      assert.equal(r1.status, 200);
      assert.equal(await r1.text(), 'success');
      assert.equal(seen[0], url, 'the channel is given its notify URL');
      const after1 = await t.platform.deps.trades.byOutTradeNo(t.appId, f.OutTradeNo ?? '');
      assert.equal(after1?.status, 'TRADE_SUCCESS');
      const r2 = await post(`PAID:${f.OutTradeNo ?? ''}`, 'application/x-www-form-urlencoded');
      assert.equal(await r2.text(), 'success');
      const after2 = await t.platform.deps.trades.byOutTradeNo(t.appId, f.OutTradeNo ?? '');
      assert.deepEqual(after2?.paid_at, after1?.paid_at, 'the duplicate changed nothing');
      // A notification the channel cannot verify: its refusal is answered, nothing changes.
      const bad = await post('forged');
      assert.equal(bad.status, 400);
      assert.equal(await bad.text(), 'fail');
      // A notification about an order nobody has is acknowledged and ignored.
      assert.equal((await post('PAID:MZ-NOBODY')).status, 200);
      assert.equal(
        (await fetch(`${t.url}/channels/simulator/notify/NOPE`, { method: 'POST', body: 'x' })).status,
        404,
      );
      assert.equal(
        (await fetch(`${t.url}/channels/nosuch/notify/${t.appId}`, { method: 'POST', body: 'x' })).status,
        404,
      );
    } finally {
      delete (sim as { parseNotify?: unknown }).parseNotify;
    }
  });

  it('the services give the channel what they stored: the trade’s creation time and number, the refund’s first request time', async () => {
    const sim = t.platform.deps.channels.get('simulator') as Channel;
    const seen: Array<{ op: string; input: Record<string, unknown> }> = [];
    let failNextRefund = true;
    const own = sim as unknown as Record<string, unknown>;
    for (const op of ['barcodePay', 'query', 'cancel', 'close', 'refund'] as const) {
      const original = sim[op].bind(sim) as (c: unknown, i: unknown) => Promise<unknown>;
      own[op] = async (c: unknown, input: Record<string, unknown>) => {
        seen.push({ op, input });
        if (op === 'refund' && failNextRefund) {
          failNextRefund = false;
          throw new Error('answer lost');
        }
        return original(c, input);
      };
    }
    const tradeOf = (outTradeNo: string) => t.trade(outTradeNo);
    const of = (op: string, outTradeNo: string) =>
      seen.filter((x) => x.op === op && x.input['outTradeNo'] === outTradeNo).map((x) => x.input);
    try {
      // Barcode pay (paid on the second query): the pay call and the queries carry the creation time.
      const f = barcodeFields({ AuthCode: authCode('01') });
      assert.equal((await t.offline('FWC_IF_Barcode_Pay', f)).rr.IsSuccess, '1');
      const no = f.OutTradeNo ?? '';
      const trade = await tradeOf(no);
      assert.equal((of('barcodePay', no)[0]?.['createdAt'] as Date).getTime(), trade.created_at.getTime());
      const queries = of('query', no);
      assert.ok(queries.length >= 1);
      for (const q of queries) assert.equal((q['createdAt'] as Date).getTime(), trade.created_at.getTime());
      assert.ok(trade.channel_trade_no);

      // Refund: the first answer is lost (unknown); the repeat carries the same first request time.
      const refund = {
        OutTradeNo: no,
        TradeNo: trade.trade_no,
        RefundAmount: '1.00',
        OutRequestNo: 'R1',
        TotalAmount: f.TotalAmount,
      };
      assert.equal((await t.offline('FWC_IF_Barcode_Pay_Refund', refund)).rr.IsSuccess, '2', 'processing');
      t.clock.advance(60_000);
      assert.equal((await t.offline('FWC_IF_Barcode_Pay_Refund', refund)).rr.IsSuccess, '1');
      const row = await t.platform.deps.refunds.byRequestNo(trade.id, 'R1');
      assert.ok(row, 'the refund is recorded');
      const refunds = of('refund', no);
      assert.equal(refunds.length, 2);
      for (const r of refunds) {
        assert.equal((r['requestedAt'] as Date).getTime(), row.created_at.getTime());
        assert.equal((r['createdAt'] as Date).getTime(), trade.created_at.getTime());
        assert.equal(r['channelTradeNo'], trade.channel_trade_no);
      }

      // Cancel of a paid trade.
      const g = barcodeFields();
      await t.offline('FWC_IF_Barcode_Pay', g);
      const paid = await tradeOf(g.OutTradeNo ?? '');
      assert.equal(
        (await t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: paid.out_trade_no })).rr.IsSuccess,
        '1',
      );
      const cancel = of('cancel', paid.out_trade_no)[0];
      assert.equal((cancel?.['createdAt'] as Date).getTime(), paid.created_at.getTime());
      assert.equal(cancel?.['channelTradeNo'], paid.channel_trade_no);

      // The expiry job: query, then cancel, of a trade never paid.
      const h = barcodeFields({ AuthCode: authCode('02'), Cnt: '0' });
      await t.offline('FWC_IF_Barcode_Pay', h);
      const stuck = await tradeOf(h.OutTradeNo ?? '');
      t.clock.advance(3 * 60_000);
      await t.platform.expiry.tick();
      for (const op of ['query', 'cancel']) {
        const x = of(op, stuck.out_trade_no);
        assert.ok(x.length >= 1, op);
        for (const i of x) assert.equal((i['createdAt'] as Date).getTime(), stuck.created_at.getTime(), op);
      }
    } finally {
      for (const op of ['barcodePay', 'query', 'cancel', 'close', 'refund']) delete own[op];
    }
  });

  it('administration: the channels and their fields, an app’s configuration checked, the pay-type switch guarded', async () => {
    const list = await admin('GET', '/admin/channels');
    const channels = list.data['channels'] as Array<{ id: string; fields: Array<{ name: string }> }>;
    assert.ok(channels.some((c) => c.id === 'simulator' && c.fields.some((f) => f.name === 'merchant_id')));
    assert.ok(Array.isArray(list.data['medicare']));

    const unknownField = await admin('PUT', `/admin/apps/${t.appId}/channels/simulator`, {
      values: { colour: 'red' },
    });
    assert.equal(unknownField.status, 400);
    assert.equal(unknownField.data['code'], 'CHANNEL_CONFIG_INVALID');
    assert.deepEqual(
      (unknownField.data['problems'] as Array<{ field: string }>).map((p) => p.field),
      ['colour'],
    );
    assert.equal((await admin('PUT', `/admin/apps/${t.appId}/channels/nosuch`, { values: {} })).status, 404);
    assert.equal((await admin('PUT', `/admin/apps/NOPE/channels/simulator`, { values: {} })).status, 404);
    assert.equal(
      (await admin('PUT', `/admin/apps/${t.appId}/channels/simulator`, { values: [1] })).status,
      400,
    );

    const set = await admin('PUT', `/admin/apps/${t.appId}/channels/simulator`, {
      values: { merchant_id: t.appId },
    });
    assert.equal(set.status, 200, JSON.stringify(set.data));
    assert.deepEqual(set.data['values'], { merchant_id: t.appId });
    const shown = await admin('GET', `/admin/apps/${t.appId}/channels`);
    assert.equal((shown.data['configs'] as unknown[]).length, 1);

    const noSuch = await admin('PUT', `/admin/apps/${t.appId}/channel-map`, {
      pay_type: 'alipay',
      channel: 'nosuch',
    });
    assert.equal(noSuch.status, 404);
    const badType = await admin('PUT', `/admin/apps/${t.appId}/channel-map`, {
      pay_type: 'paypal',
      channel: 'simulator',
    });
    assert.equal(badType.status, 400);
    const ok = await admin('PUT', `/admin/apps/${t.appId}/channel-map`, {
      pay_type: 'weixin',
      channel: 'simulator',
    });
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.data['channel_map'], {});
    // Payments still work after the (no-op) switch.
    assert.equal((await t.offline('FWC_IF_Barcode_Pay', barcodeFields())).rr.IsSuccess, '1');
  });

  it('a server does not start while an app uses a channel it cannot work with, and says which', async () => {
    await t.store.db
      .updateTable('apps')
      .set({ channel_map: JSON.stringify({ alipay: 'nosuch' }) })
      .where('id', '=', t.appId)
      .execute();
    try {
      await assert.rejects(
        startPlatform({
          config: { ...t.platform.config, port: 0 },
          store: t.store,
          clock: t.clock,
          log: createLogger('silent'),
          adminToken: 'x'.repeat(32),
          demo: false,
        }),
        (e: unknown) =>
          e instanceof ChannelStartupError && e.message.includes(t.appId) && e.message.includes('nosuch'),
      );
    } finally {
      await t.store.db.updateTable('apps').set({ channel_map: '{}' }).where('id', '=', t.appId).execute();
    }
  });
});
