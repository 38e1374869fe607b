/**
 * The Alipay adapter against Alipay's own sandbox (https://open.alipay.com → 开发工具 → 沙箱). Runs only with
 *   HOSPAY_ALIPAY_SANDBOX_APP_ID             the sandbox app's APPID
 *   HOSPAY_ALIPAY_SANDBOX_PRIVATE_KEY        the app private key (PEM or bare Base64), or a path to a file holding it
 *   HOSPAY_ALIPAY_SANDBOX_ALIPAY_PUBLIC_KEY  the sandbox's Alipay public key (PEM or bare Base64), or a path
 * and optionally HOSPAY_ALIPAY_SANDBOX_GATEWAY (default https://openapi-sandbox.dl.alipaydev.com/gateway.do).
 * Not part of `npm test`; `npm run test:remote` runs test/remote.
 *
 * A QR trade is created (precreate), queried (Alipay knows it only once the code is scanned: waiting or not
 * found), closed, and queried again.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { alipayDefinition } from '../../src/channels/alipay/definition.js';
import { ALIPAY_SANDBOX_GATEWAY } from '../../src/channels/alipay/wire.js';
import { checkChannelConfig, withDefaults } from '../../src/channels/definition.js';
import { httpRequest } from '../../src/channels/http.js';
import { systemClock } from '../../src/domain/clock.js';
import type { ChannelCall, ChannelContext } from '../../src/channels/channel.js';
import { fen } from '../../src/domain/money.js';

const VARS = [
  'HOSPAY_ALIPAY_SANDBOX_APP_ID',
  'HOSPAY_ALIPAY_SANDBOX_PRIVATE_KEY',
  'HOSPAY_ALIPAY_SANDBOX_ALIPAY_PUBLIC_KEY',
] as const;
const missing = VARS.filter((v) => !process.env[v]?.trim());
const skip = missing.length ? `Alipay sandbox not configured: set ${missing.join(', ')}` : false;

/** A value, or the content of the file it names. */
function valueOrFile(text: string): string {
  const t = text.trim();
  return !t.startsWith('-----') && t.length < 4096 && fs.existsSync(t) ? fs.readFileSync(t, 'utf8') : t;
}

describe('alipay sandbox (remote)', { skip }, () => {
  const merchant = () => ({
    app_id: process.env['HOSPAY_ALIPAY_SANDBOX_APP_ID']!.trim(),
    private_key: valueOrFile(process.env['HOSPAY_ALIPAY_SANDBOX_PRIVATE_KEY']!),
    alipay_public_key: valueOrFile(process.env['HOSPAY_ALIPAY_SANDBOX_ALIPAY_PUBLIC_KEY']!),
    gateway_url: process.env['HOSPAY_ALIPAY_SANDBOX_GATEWAY']?.trim() || ALIPAY_SANDBOX_GATEWAY,
    timeout_ms: '15000',
  });

  it('the sandbox settings pass the configuration checks', () => {
    assert.deepEqual(checkChannelConfig(alipayDefinition.fields, merchant()), []);
  });

  it('precreate gives a QR code; query; close; query again', { timeout: 90_000 }, async () => {
    const calls: ChannelCall[] = [];
    const ctx: ChannelContext = {
      appId: 'SANDBOX',
      merchant: withDefaults(alipayDefinition.fields, merchant()),
      notifyUrl: 'https://hospay.example/channels/alipay/notify/SANDBOX',
      record: (c) => calls.push(c),
    };
    const channel = alipayDefinition.create({ http: httpRequest, clock: systemClock, simulator: null });
    const ref = { outTradeNo: `HOSPAYSBX${Date.now()}`, payType: 'alipay' as const };
    const explain = () => JSON.stringify(calls, null, 1);
    try {
      const created = await channel.precreate!(ctx, {
        ...ref,
        amountFen: fen(1),
        subject: 'hospay sandbox test',
        expiresAt: new Date(Date.now() + 10 * 60_000),
      });
      assert.equal(created.kind, 'created', `${JSON.stringify(created)}\n${explain()}`);
      if (created.kind === 'created') assert.match(created.codeUrl, /^https:\/\//);

      const q1 = await channel.query(ctx, ref);
      assert.ok(q1.kind === 'waiting' || q1.kind === 'not_found', `${JSON.stringify(q1)}\n${explain()}`);

      const closed = await channel.close(ctx, ref);
      assert.equal(closed.kind, 'closed', `${JSON.stringify(closed)}\n${explain()}`);

      const q2 = await channel.query(ctx, ref);
      assert.ok(q2.kind === 'closed' || q2.kind === 'not_found', `${JSON.stringify(q2)}\n${explain()}`);
      assert.ok(
        calls.every((c) => c.httpStatus === 200),
        explain(),
      );
    } finally {
      const text = JSON.stringify(calls);
      assert.ok(
        !text.includes(ctx.merchant['private_key']!.replace(/-----[A-Z ]+-----|\s+/g, '').slice(0, 40)),
      );
    }
  });
});
