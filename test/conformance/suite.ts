/**
 * The channel conformance suite: every adapter to a real provider runs these cases offline, against a fake
 * server built to that provider's published protocol. The fake verifies our signatures and answers with
 * correctly signed responses, or misbehaves when told to. What every adapter must show:
 *  - a clear success is success; "user paying" is paying; a refusal is a decline with a code;
 *  - a system error, a timeout, an HTTP 5xx, an unparseable or wrongly signed answer is NEVER success: it is
 *    an unknown outcome (the platform then queries);
 *  - query, refund, cancel, close, precreate behave the same way;
 *  - notifications are verified (a tampered one is rejected), and a duplicate reads the same;
 *  - every exchange is recorded for operators, with no secret, auth code or key in the record.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Channel, ChannelCall, ChannelContext } from '../../src/channels/channel.js';
import type { PayType } from '../../src/domain/trade.js';
import { fen } from '../../src/domain/money.js';

export type Operation =
  'pay' | 'precreate' | 'wap' | 'inapp' | 'query' | 'refund' | 'cancel' | 'close' | 'bill';
export type Behaviour =
  'ok' | 'paying' | 'declined' | 'system_error' | 'timeout' | 'http_500' | 'malformed' | 'bad_signature';

export type FakeTradeState = 'paid' | 'waiting' | 'closed' | 'refunded';

export interface FakeProvider {
  /** The fake's base URL. */
  url: string;
  /** The next answer to `op` behaves like this (once; then back to normal). */
  script(op: Operation, behaviour: Behaviour): void;
  /** Sets the provider's state of a trade it knows (e.g. the payer confirmed on the phone). */
  setTrade(outTradeNo: string, state: FakeTradeState): void;
  /** The provider's books for a trade, or undefined if it never saw it. */
  trade(outTradeNo: string): { state: FakeTradeState; amountFen: number; refundedFen: number } | undefined;
  /** Every request received: which operation and whether our signature verified. */
  requests(): Array<{ op: Operation | string; signatureValid: boolean }>;
  /** The notification the provider would POST about a paid trade, correctly signed (or tampered with). */
  notification(
    outTradeNo: string,
    opts?: { tamper?: boolean },
  ): { headers: Record<string, string>; body: Buffer };
  /**
   * Checks the parameters an in-app payment hands to the app's JS bridge as the app would (WeChat verifies
   * paySign against the merchant's key before it shows the payer anything). Targets with `supports.inApp`.
   */
  verifyBridge?(bridge: Readonly<Record<string, string>>): boolean;
  /**
   * Confirms a mobile-web form payment as the payer would on the provider's cashier (targets whose `wapPay`
   * answers a form): the provider then holds the trade as paid.
   */
  payForm?(action: string, fields: Readonly<Record<string, string>>): Promise<void>;
  close(): Promise<void>;
}

export interface ConformanceTarget {
  /** The channel id in the registry. */
  id: string;
  /** Tells targets of one channel apart in the report (e.g. 'service provider'). */
  label?: string;
  payType: PayType;
  /** What the channel implements; the other cases are skipped (and say so). */
  supports: {
    barcode: boolean;
    precreate: boolean;
    cancel: boolean;
    close: boolean;
    refund: boolean;
    notify: boolean;
    /** Mobile-web payment (`wapPay`): a page URL, or a form to post. */
    wap?: boolean;
    /** In-app payment (`inAppPay`, WeChat JSAPI) and, with it, `payerIdAuthorizeUrl`/`payerIdFromCode`. */
    inApp?: boolean;
    /** The day's bill (`downloadBill`). */
    bill?: boolean;
  };
  /** A payer id (e.g. a WeChat openid) the fake provider knows, for in-app payment. */
  payerId?(): string;
  /**
   * Starts a fake provider and returns the channel, configured (ctx.merchant) to talk to it with a short
   * timeout (at most 1 s), and the fake. `ctx` must come from `conformanceContext`.
   */
  start(): Promise<{ channel: Channel; ctx: ChannelContext & { calls: ChannelCall[] }; fake: FakeProvider }>;
  /** A payment code the provider accepts (and the suite checks never reaches a call record). */
  authCode(): string;
  /** The adapter's timeout in ms as configured by start() (the timeout case checks the call ends soon after). */
  timeoutMs: number;
}

/** A context that keeps the call records, for targets to hand to the suite. */
export function conformanceContext(
  merchant: Record<string, string>,
  notifyUrl = 'https://hospay.example/channels/x/notify/APP1',
): ChannelContext & { calls: ChannelCall[] } {
  const calls: ChannelCall[] = [];
  return { appId: 'APP1', merchant, notifyUrl, record: (c) => calls.push(c), calls };
}

let seq = 0;
const orderNo = () => `MZCONF${Date.now().toString(36).toUpperCase()}${String(++seq).padStart(4, '0')}`;

export function describeConformance(t: ConformanceTarget): void {
  describe(`channel conformance: ${t.id} (${t.payType})${t.label ? ` — ${t.label}` : ''}`, () => {
    let channel: Channel;
    let ctx: ChannelContext & { calls: ChannelCall[] };
    let fake: FakeProvider;
    let authCodes: string[] = [];
    const code = () => {
      const c = t.authCode();
      authCodes.push(c);
      return c;
    };
    before(async () => {
      ({ channel, ctx, fake } = await t.start());
      authCodes = [];
    });
    after(async () => {
      await fake?.close();
    });

    const pay = (no: string, amountFen = 1234) =>
      channel.barcodePay(ctx, {
        outTradeNo: no,
        payType: t.payType,
        amountFen: fen(amountFen),
        authCode: code(),
        subject: '门诊缴费',
      });
    const paid = async (no: string, amountFen = 1234) => {
      const r = await pay(no, amountFen);
      assert.equal(r.kind, 'paid', JSON.stringify(r));
      return r;
    };
    const expiresAt = () => new Date(Date.now() + 15 * 60_000);
    const lastValid = (op: string) => {
      const r = fake.requests().filter((x) => x.op === op);
      assert.ok(r.length > 0, `the fake saw a ${op} request`);
      assert.equal(r[r.length - 1]?.signatureValid, true, `our ${op} request is correctly signed`);
    };

    const b = { skip: !t.supports.barcode && 'no barcode pay' };
    it('barcode pay: success is paid, correctly signed, the provider holds the amount', b, async () => {
      const no = orderNo();
      const r = await paid(no, 8888);
      if (r.kind === 'paid') assert.ok(r.channelTradeNo.length > 0);
      lastValid('pay');
      assert.equal(fake.trade(no)?.state, 'paid');
      assert.equal(fake.trade(no)?.amountFen, 8888);
    });

    it('barcode pay: "user paying" is paying; after the payer confirms, query says paid', b, async () => {
      const no = orderNo();
      fake.script('pay', 'paying');
      const r = await pay(no);
      assert.equal(r.kind, 'paying', JSON.stringify(r));
      fake.setTrade(no, 'paid');
      const q = await channel.query(ctx, { outTradeNo: no, payType: t.payType });
      assert.equal(q.kind, 'paid', JSON.stringify(q));
    });

    it('barcode pay: a refusal is a decline with a code and a message', b, async () => {
      fake.script('pay', 'declined');
      const r = await pay(orderNo());
      assert.equal(r.kind, 'declined', JSON.stringify(r));
      if (r.kind === 'declined') {
        assert.ok(r.code.length > 0);
        assert.ok(r.zh.length > 0 && r.en.length > 0);
      }
    });

    for (const bad of ['system_error', 'http_500', 'malformed', 'bad_signature'] as const) {
      it(`barcode pay: ${bad} is never success (unknown, so the platform queries)`, b, async () => {
        fake.script('pay', bad);
        const r = await pay(orderNo());
        assert.ok(r.kind === 'unknown' || r.kind === 'paying', `${bad} → ${JSON.stringify(r)}`);
      });
    }

    it('barcode pay: a timeout is unknown, and the call ends soon after the timeout', b, async () => {
      fake.script('pay', 'timeout');
      const started = Date.now();
      const r = await pay(orderNo());
      assert.equal(r.kind, 'unknown', JSON.stringify(r));
      assert.ok(Date.now() - started < t.timeoutMs + 3_000, `took ${Date.now() - started} ms`);
    });

    it('query: paid, not found, and unknown on a wrongly signed or unparseable answer', b, async () => {
      const no = orderNo();
      await paid(no);
      assert.equal((await channel.query(ctx, { outTradeNo: no, payType: t.payType })).kind, 'paid');
      lastValid('query');
      assert.equal(
        (await channel.query(ctx, { outTradeNo: orderNo(), payType: t.payType })).kind,
        'not_found',
      );
      for (const bad of ['bad_signature', 'malformed', 'system_error', 'timeout'] as const) {
        fake.script('query', bad);
        const q = await channel.query(ctx, { outTradeNo: no, payType: t.payType });
        assert.equal(q.kind, 'unknown', `${bad} → ${JSON.stringify(q)}`);
      }
    });

    const r = { skip: !(t.supports.barcode && t.supports.refund) && 'no refund' };
    it('refund: success once per request number; never success on a bad answer', r, async () => {
      const no = orderNo();
      await paid(no, 10_000);
      const ref = { outTradeNo: no, payType: t.payType, totalFen: fen(10_000) };
      const ok = await channel.refund(ctx, { ...ref, outRequestNo: `${no}R1`, amountFen: fen(2_500) });
      assert.equal(ok.kind, 'success', JSON.stringify(ok));
      lastValid('refund');
      assert.equal(fake.trade(no)?.refundedFen, 2_500);
      for (const bad of ['bad_signature', 'malformed', 'system_error', 'timeout', 'http_500'] as const) {
        fake.script('refund', bad);
        const x = await channel.refund(ctx, { ...ref, outRequestNo: `${no}R-${bad}`, amountFen: fen(100) });
        assert.equal(x.kind, 'unknown', `${bad} → ${JSON.stringify(x)}`);
      }
      fake.script('refund', 'declined');
      const d = await channel.refund(ctx, { ...ref, outRequestNo: `${no}R9`, amountFen: fen(100) });
      assert.equal(d.kind, 'failed', JSON.stringify(d));
    });

    const c = { skip: !(t.supports.barcode && t.supports.cancel) && 'no cancel' };
    it('cancel: a paid trade is refunded in full; a bad answer asks for a retry', c, async () => {
      const no = orderNo();
      await paid(no);
      const x = await channel.cancel(ctx, { outTradeNo: no, payType: t.payType });
      assert.equal(x.kind, 'refunded', JSON.stringify(x));
      lastValid('cancel');
      const other = orderNo();
      await paid(other);
      fake.script('cancel', 'system_error');
      const y = await channel.cancel(ctx, { outTradeNo: other, payType: t.payType });
      assert.equal(y.kind, 'retry', JSON.stringify(y));
      fake.script('cancel', 'bad_signature');
      const z = await channel.cancel(ctx, { outTradeNo: other, payType: t.payType });
      assert.equal(z.kind, 'retry', JSON.stringify(z));
    });

    const p = { skip: !t.supports.precreate && 'no QR precreate' };
    it('precreate: a code URL; a bad answer is a failure to retry, never a code', p, async () => {
      const no = orderNo();
      const x = await channel.precreate!(ctx, {
        outTradeNo: no,
        payType: t.payType,
        amountFen: fen(2550),
        subject: '自助机缴费',
        expiresAt: expiresAt(),
      });
      assert.equal(x.kind, 'created', JSON.stringify(x));
      if (x.kind === 'created') assert.ok(x.codeUrl.length > 0);
      lastValid('precreate');
      assert.equal(fake.trade(no)?.state, 'waiting');
      for (const bad of ['bad_signature', 'malformed', 'system_error'] as const) {
        fake.script('precreate', bad);
        const y = await channel.precreate!(ctx, {
          outTradeNo: orderNo(),
          payType: t.payType,
          amountFen: fen(100),
          subject: 'x',
          expiresAt: expiresAt(),
        });
        assert.equal(y.kind, 'failed', `${bad} → ${JSON.stringify(y)}`);
      }
    });

    const cl = { skip: !(t.supports.precreate && t.supports.close) && 'no close' };
    it('close: an unpaid trade is closed; one paid meanwhile is reported paid', cl, async () => {
      const no = orderNo();
      await channel.precreate!(ctx, {
        outTradeNo: no,
        payType: t.payType,
        amountFen: fen(300),
        subject: 'x',
        expiresAt: expiresAt(),
      });
      const x = await channel.close(ctx, { outTradeNo: no, payType: t.payType });
      assert.equal(x.kind, 'closed', JSON.stringify(x));
      lastValid('close');
      assert.equal(fake.trade(no)?.state, 'closed');
      const other = orderNo();
      await channel.precreate!(ctx, {
        outTradeNo: other,
        payType: t.payType,
        amountFen: fen(300),
        subject: 'x',
        expiresAt: expiresAt(),
      });
      fake.setTrade(other, 'paid');
      const y = await channel.close(ctx, { outTradeNo: other, payType: t.payType });
      assert.ok(y.kind === 'paid' || y.kind === 'retry', JSON.stringify(y));
      fake.script('close', 'bad_signature');
      const z = await channel.close(ctx, { outTradeNo: orderNo(), payType: t.payType });
      assert.equal(z.kind, 'retry', JSON.stringify(z));
    });

    const n = { skip: !t.supports.notify && 'no notifications' };
    it(
      'notify: a genuine one names the trade; a duplicate reads the same; a tampered one is rejected',
      n,
      async () => {
        const no = orderNo();
        if (t.supports.precreate) {
          await channel.precreate!(ctx, {
            outTradeNo: no,
            payType: t.payType,
            amountFen: fen(500),
            subject: 'x',
            expiresAt: expiresAt(),
          });
          fake.setTrade(no, 'paid');
        } else await paid(no, 500);
        assert.ok(channel.parseNotify, 'parseNotify is implemented');
        const genuine = fake.notification(no);
        const a = await channel.parseNotify!(ctx, genuine);
        assert.deepEqual({ kind: a.kind, no: a.kind === 'trade' ? a.outTradeNo : '' }, { kind: 'trade', no });
        assert.ok(a.ack.status >= 200 && a.ack.status < 300);
        const again = await channel.parseNotify!(ctx, fake.notification(no));
        assert.equal(again.kind, 'trade');
        const tampered = await channel.parseNotify!(ctx, fake.notification(no, { tamper: true }));
        assert.equal(tampered.kind, 'rejected', JSON.stringify(tampered));
        const garbage = await channel.parseNotify!(ctx, {
          headers: {},
          body: Buffer.from('<<not a notification>>'),
        });
        assert.equal(garbage.kind, 'rejected');
      },
    );

    const w = { skip: !t.supports.wap && 'no mobile-web payment' };
    it('wap: a page URL or a signed form; a bad answer is a failure, never a page', w, async () => {
      const no = orderNo();
      const input = {
        outTradeNo: no,
        payType: t.payType,
        amountFen: fen(1880),
        subject: '门诊缴费',
        expiresAt: expiresAt(),
        returnUrl: 'https://hospay.example/goto/TOKEN0123456789/return',
        payerClientIp: '203.0.113.7',
      };
      const before = fake.requests().length;
      const x = await channel.wapPay!(ctx, input);
      // Whether the channel asked the provider (a page URL made there) or signed a form locally.
      const contacted = fake.requests().length > before;
      assert.ok(x.kind === 'created' || x.kind === 'form', JSON.stringify(x));
      if (x.kind === 'created') assert.match(x.codeUrl, /^https?:\/\//);
      if (x.kind === 'form') {
        assert.match(x.action, /^https?:\/\//);
        assert.ok(Object.keys(x.fields).length > 0);
        // Signed locally: asking again gives the same order (the cashier may ask each time the page opens).
        const again = await channel.wapPay!(ctx, input);
        assert.equal(again.kind, 'form');
        if (again.kind === 'form') assert.equal(again.action, x.action);
        if (fake.payForm) {
          await fake.payForm(x.action, x.fields);
          const q = await channel.query(ctx, { outTradeNo: no, payType: t.payType });
          assert.equal(q.kind, 'paid', JSON.stringify(q));
          assert.equal(fake.trade(no)?.amountFen, 1880);
        }
      }
      if (contacted) {
        lastValid('wap');
        for (const bad of ['bad_signature', 'malformed', 'system_error'] as const) {
          fake.script('wap', bad);
          const y = await channel.wapPay!(ctx, { ...input, outTradeNo: orderNo() });
          assert.equal(y.kind, 'failed', `${bad} → ${JSON.stringify(y)}`);
        }
      }
    });

    const ia = { skip: !t.supports.inApp && 'no in-app payment' };
    it(
      'in-app: bridge parameters the app accepts; the provider holds the order; paid after the payer confirms',
      ia,
      async () => {
        assert.ok(channel.inAppPay && t.payerId && fake.verifyBridge, 'inAppPay, payerId and verifyBridge');
        const no = orderNo();
        const input = {
          outTradeNo: no,
          payType: t.payType,
          amountFen: fen(2020),
          subject: '住院预交金',
          expiresAt: expiresAt(),
          payerId: t.payerId(),
          payerClientIp: '203.0.113.7',
        };
        const x = await channel.inAppPay(ctx, input);
        assert.equal(x.kind, 'created', JSON.stringify(x));
        if (x.kind !== 'created') return;
        lastValid('inapp');
        assert.ok(fake.verifyBridge(x.bridge), 'the app accepts the bridge parameters');
        const forged = { ...x.bridge, package: `${x.bridge['package'] ?? ''}0` };
        assert.equal(fake.verifyBridge(forged), false, 'a changed parameter is refused by the app');
        assert.equal(fake.trade(no)?.state, 'waiting');
        assert.equal(fake.trade(no)?.amountFen, 2020);
        fake.setTrade(no, 'paid');
        const q = await channel.query(ctx, { outTradeNo: no, payType: t.payType });
        assert.equal(q.kind, 'paid', JSON.stringify(q));
        for (const bad of ['bad_signature', 'malformed', 'system_error'] as const) {
          fake.script('inapp', bad);
          const y = await channel.inAppPay(ctx, { ...input, outTradeNo: orderNo() });
          assert.equal(y.kind, 'failed', `${bad} → ${JSON.stringify(y)}`);
        }
      },
    );

    it(
      'in-app: the payer-id OAuth URL goes to the provider and comes back to our redirect only',
      ia,
      async () => {
        assert.ok(channel.payerIdAuthorizeUrl && channel.payerIdFromCode);
        const redirectUri = 'https://hospay.example/goto/TOKEN0123456789/payer';
        const url = channel.payerIdAuthorizeUrl(ctx, { redirectUri, state: 'S1' });
        assert.ok(url, 'configured: an authorize URL');
        const u = new URL(url);
        assert.equal(u.searchParams.get('redirect_uri'), redirectUri);
        assert.equal(u.searchParams.get('state'), 'S1');
        const bad = await channel.payerIdFromCode(ctx, { code: 'not-a-code-the-provider-gave' });
        assert.equal(bad.kind, 'failed', JSON.stringify(bad));
      },
    );

    const bl = { skip: !t.supports.bill && 'no bill' };
    it(
      "bill: the day's file, read by the real parser, holds the day's trades and refunds in fen",
      bl,
      async () => {
        assert.ok(channel.downloadBill);
        const no = orderNo();
        await paid(no, 4321);
        const refund = await channel.refund(ctx, {
          outTradeNo: no,
          payType: t.payType,
          totalFen: fen(4321),
          outRequestNo: `${no}RB`,
          amountFen: fen(321),
        });
        assert.equal(refund.kind, 'success', JSON.stringify(refund));
        const date = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai' }).format(new Date());
        const bill = await channel.downloadBill(ctx, { date, payType: t.payType });
        lastValid('bill');
        const mine = bill.lines.filter((l) => l.outTradeNo === no);
        assert.ok(
          mine.some((l) => l.kind === 'payment' && l.amountFen === 4321),
          `the payment is in the bill: ${JSON.stringify(mine)}`,
        );
        assert.ok(
          mine.some((l) => l.kind === 'refund' && l.amountFen === 321),
          `the refund is in the bill: ${JSON.stringify(mine)}`,
        );
        // A file that is not what its format says is refused whole, never read in part.
        fake.script('bill', 'malformed');
        await assert.rejects(() => channel.downloadBill!(ctx, { date, payType: t.payType }));
      },
    );

    it('every exchange was recorded, with no auth code, key or secret in the records', async () => {
      assert.ok(ctx.calls.length > 0, 'calls were recorded');
      for (const call of ctx.calls) {
        assert.ok(call.operation.length > 0);
        assert.ok(call.latencyMs >= 0);
      }
      const text = JSON.stringify(ctx.calls);
      for (const c of authCodes) assert.ok(!text.includes(c), 'an auth code reached a call record');
      for (const [k, v] of Object.entries(ctx.merchant)) {
        if (v.length < 12 || /^https?:/.test(v) || /^[0-9]+$/.test(v)) continue; // ids and URLs may appear
        const probe = v
          .replace(/-----[A-Z ]+-----/g, '')
          .replace(/\s+/g, '')
          .slice(0, 40);
        assert.ok(
          !text.replace(/\s+/g, '').includes(probe),
          `the merchant setting ${k} reached a call record`,
        );
      }
    });
  });
}
