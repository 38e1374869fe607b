import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorChannel } from '../../src/channels/simulator/simulator-channel.js';
import type { Channel, ChannelContext, TradeRef } from '../../src/channels/channel.js';
import { SimulatorProvider } from '../../src/simulator/provider.js';
import {
  authCode,
  barcodeFields,
  qrFields,
  startTestPlatform,
  type TestPlatform,
} from '../support/platform.js';

/** Counts the calls that end a trade at the channel, and makes each one slow enough to overlap. */
class CountingChannel extends SimulatorChannel {
  cancels = 0;
  closes = 0;
  override async cancel(ctx: ChannelContext, ref: TradeRef) {
    this.cancels++;
    await new Promise((r) => setTimeout(r, 5));
    return super.cancel(ctx, ref);
  }
  override async close(ctx: ChannelContext, ref: TradeRef) {
    this.closes++;
    await new Promise((r) => setTimeout(r, 5));
    return super.close(ctx, ref);
  }
}

describe('background jobs on two instances', () => {
  let t: TestPlatform;
  let one: CountingChannel;
  let two: CountingChannel;
  before(async () => {
    // Both instances' channels talk to one simulated provider on the shared database.
    t = await startTestPlatform({ env: { HOSPAY_JOB_BATCH: '4' } });
    const provider = new SimulatorProvider({ db: t.store.db, clock: t.clock, publicBaseUrl: t.url });
    one = new CountingChannel(provider);
    two = new CountingChannel(provider);
    (t.platform.deps.channels as unknown as { channels: Map<string, Channel> }).channels.set(
      'simulator',
      one,
    );
  });
  after(async () => {
    await t.close();
  });

  it('two instances ticking at once cancel each stuck trade exactly once', async () => {
    const other = await t.second({ channels: { simulator: two } });
    const stuck: string[] = [];
    for (let i = 0; i < 20; i++) {
      const f = barcodeFields({ AuthCode: authCode('02'), Cnt: '0' });
      await t.offline('FWC_IF_Barcode_Pay', f);
      stuck.push(f.OutTradeNo ?? '');
    }
    const qrs: string[] = [];
    for (let i = 0; i < 10; i++) {
      const f = qrFields({ PayType: 'alipay', TimeoutExpress: '1m' });
      await t.offline('FWC_IF_Qrcode_Pay', f);
      qrs.push(f.OutTradeNo ?? '');
    }
    one.cancels = two.cancels = one.closes = two.closes = 0;
    t.clock.advance(3 * 60_000);
    // Small batches, both instances ticking at once, round after round, until no work is left.
    let closedByOne = 0;
    let closedByTwo = 0;
    for (let round = 0; round < 20; round++) {
      const [a, b] = await Promise.all([t.platform.expiry.tick(), other.expiry.tick()]);
      closedByOne += a.closed;
      closedByTwo += b.closed;
      if (a.closed + b.closed === 0) break;
    }
    assert.equal(closedByOne + closedByTwo, 30);
    assert.ok(closedByOne > 0 && closedByTwo > 0, `both instances worked: ${closedByOne}/${closedByTwo}`);
    assert.equal(one.cancels + two.cancels, 20);
    assert.equal(one.closes + two.closes, 10);
    for (const no of [...stuck, ...qrs]) {
      const row = await t.trade(no);
      assert.equal(row.status, 'TRADE_CLOSED');
    }
    // Nothing left to do: further ticks claim nothing.
    const again = await Promise.all([t.platform.expiry.tick(), other.expiry.tick()]);
    assert.equal(
      again.reduce((s, c) => s + c.closed + c.retry + c.paid, 0),
      0,
    );
  });

  it('a transient cancel failure is retried later with backoff, not lost', async () => {
    const f = barcodeFields({ AuthCode: authCode('06'), Cnt: '0' });
    await t.offline('FWC_IF_Barcode_Pay', f);
    t.clock.advance(3 * 60_000);
    const first = await t.platform.expiry.tick();
    assert.equal(first.retry, 1);
    // Within the backoff, nobody takes it again.
    const soon = await t.platform.expiry.tick();
    assert.equal(soon.retry + soon.closed, 0);
    t.clock.advance(60_000);
    const later = await t.platform.expiry.tick();
    assert.equal(later.closed, 1);
    const q = await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    assert.equal(q.result.TradeStatus, 'TRADE_CLOSED');
  });

  it("a crashed instance's claim runs out and another instance finishes the work", async () => {
    const f = barcodeFields({ AuthCode: authCode('02'), Cnt: '0' });
    await t.offline('FWC_IF_Barcode_Pay', f);
    t.clock.advance(3 * 60_000);
    // An instance claims it and dies before doing anything.
    const claimed = await t.platform.deps.trades.claimExpired(t.clock.now(), 'dead-instance', 60_000, 50);
    assert.equal(claimed.length, 1);
    assert.equal((await t.platform.expiry.tick()).closed, 0, 'still leased');
    t.clock.advance(61_000);
    assert.equal((await t.platform.expiry.tick()).closed, 1);
  });
});
