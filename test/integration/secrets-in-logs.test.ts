import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SimulatorChannel } from '../../src/channels/simulator/simulator-channel.js';
import type { BarcodePayInput, ChannelContext } from '../../src/channels/channel.js';
import { SimulatorProvider } from '../../src/simulator/provider.js';
import type { Channel } from '../../src/channels/channel.js';
import {
  authCode,
  barcodeFields,
  qrFields,
  startTestPlatform,
  type TestPlatform,
} from '../support/platform.js';

/** A channel whose SDK puts the whole request, payment code included, into its error messages. */
class LeakyChannel extends SimulatorChannel {
  override async barcodePay(ctx: ChannelContext, input: BarcodePayInput) {
    if (input.subject === 'LEAK')
      throw new Error(`gateway timeout for request ${JSON.stringify(input)} phone 13912345678`);
    return super.barcodePay(ctx, input);
  }
}

describe('secrets and personal data never reach the logs', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
    const provider = new SimulatorProvider({ db: t.store.db, clock: t.clock, publicBaseUrl: t.url });
    (t.platform.deps.channels as unknown as { channels: Map<string, Channel> }).channels.set(
      'simulator',
      new LeakyChannel(provider),
    );
  });
  after(async () => {
    await t.close();
  });

  it('a full transcript logs none of: AccessToken, payment codes, patient names, phone numbers', async () => {
    const codes = [
      authCode('00'),
      authCode('01'),
      authCode('03'),
      authCode('00', 'weixin'),
      authCode('00', 'unionpay'),
    ];
    const secrets = [t.token, ...codes, '欧阳秘密', '13912345678', '13800001111'];
    for (const code of codes) {
      const f = barcodeFields({ AuthCode: code, PatientName: '欧阳秘密', Cnt: '2' });
      const a = await t.offline('FWC_IF_Barcode_Pay', f);
      if (a.rr.IsSuccess === '1') {
        await t.offline('FWC_IF_Barcode_Pay_Refund', {
          TradeNo: a.result.TradeNo,
          RefundAmount: '1.00',
          OutRequestNo: 'L1',
          OutTradeNo: f.OutTradeNo,
          TotalAmount: '88.88',
        });
      }
      await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
    }
    const leakCode = authCode('00');
    secrets.push(leakCode);
    const leak = await t.offline(
      'FWC_IF_Barcode_Pay',
      barcodeFields({ AuthCode: leakCode, Caption: 'LEAK', Cnt: '0' }),
    );
    assert.equal(leak.rr.IsSuccess, '2');
    await t.offline('FWC_IF_Qrcode_Pay', qrFields({ Tel: '13800001111', PatientName: '欧阳秘密' }));
    await t.offline('FWC_IF_Barcode_Pay', barcodeFields(), { token: 'wrong-token-that-is-secret-too' });
    secrets.push('wrong-token-that-is-secret-too');
    const logs = t.logs();
    assert.ok(logs.length > 1000, 'the transcript was logged');
    assert.match(logs, /channel call failed/, 'the channel failure itself is logged');
    for (const s of secrets) assert.ok(!logs.includes(s), `log contains a secret: ${s.slice(0, 4)}…`);
  });
});
