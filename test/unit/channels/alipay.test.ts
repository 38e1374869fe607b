/**
 * The Alipay adapter's specifics: request signing (known-answer vectors), answer verification (a known signed
 * answer), notification verification (every field tampered with), certificate serial numbers (Alipay's
 * published known answer), configuration checks, bills through the fake, wap pay URLs, redaction and the
 * mapping of the answers that the shared conformance suite does not reach.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import {
  createPrivateKey,
  createPublicKey,
  createSign,
  generateKeyPairSync,
  randomInt,
  type KeyObject,
} from 'node:crypto';
import { alipayDefinition } from '../../../src/channels/alipay/definition.js';
import { AlipayChannel } from '../../../src/channels/alipay/channel.js';
import {
  prepareAlipay,
  readAlipayPrivateKey,
  readAlipayPublicKey,
  signedRequestParams,
  verifyAnswer,
  type PreparedAlipay,
} from '../../../src/channels/alipay/keys.js';
import { checkChannelConfig, withDefaults } from '../../../src/channels/definition.js';
import { httpRequest } from '../../../src/channels/http.js';
import { systemClock, formatShanghai } from '../../../src/domain/clock.js';
import type { ChannelCall, ChannelContext } from '../../../src/channels/channel.js';
import {
  alipayCertSn,
  alipaySigningContent,
  generateAlipayCerts,
  KNOWN_APP_CERT,
  rsaSign,
  rsaVerify,
  startAlipayFake,
  type AlipayFake,
} from '../../fakes/alipay-server.js';
import { fen } from '../../../src/domain/money.js';

const APP_ID = '2021000000000001';
const KEY_2048 = fs.readFileSync('test/fixtures/keys/test-app-2048.pem', 'utf8');
const PUB_2048 = fs.readFileSync('test/fixtures/keys/test-app-2048.pub.pem', 'utf8');
const KEY_1024 = fs.readFileSync('test/fixtures/keys/test-legacy-1024.pem', 'utf8');
const PUB_1024 = fs.readFileSync('test/fixtures/keys/test-legacy-1024.pub.pem', 'utf8');

let seq = 0;
const orderNo = () => `MZALI${Date.now().toString(36).toUpperCase()}${String(++seq).padStart(4, '0')}`;
const authCode = () => `28${Array.from({ length: 16 }, () => randomInt(10)).join('')}`;
const channel = new AlipayChannel({ http: httpRequest, clock: systemClock });

function context(merchant: Record<string, string>): ChannelContext & { calls: ChannelCall[] } {
  const calls: ChannelCall[] = [];
  return {
    appId: 'APP1',
    merchant: withDefaults(alipayDefinition.fields, merchant),
    notifyUrl: 'https://hospay.example/channels/alipay/notify/APP1',
    record: (c) => calls.push(c),
    calls,
  };
}

function prepared(merchant: Record<string, string>): PreparedAlipay {
  const p = prepareAlipay(merchant);
  assert.ok(p.ok, p.ok ? '' : p.problem);
  return p.value;
}

describe('alipay: request signing (known-answer vectors)', () => {
  const biz = {
    out_trade_no: '20150320010101001',
    scene: 'bar_code',
    auth_code: '28763443825664394',
    subject: '门诊缴费',
    total_amount: '88.88',
  };
  const extra = { notify_url: 'https://hospay.example/channels/alipay/notify/APP1' };
  // 2014-07-24 03:07:50 in Beijing, the time of Alipay's documented example.
  const at = new Date('2014-07-23T19:07:50Z');
  const content = (signType: string) =>
    'app_id=2014072300007148&biz_content={"out_trade_no":"20150320010101001","scene":"bar_code",' +
    '"auth_code":"28763443825664394","subject":"门诊缴费","total_amount":"88.88"}&charset=utf-8' +
    '&method=alipay.trade.pay&notify_url=https://hospay.example/channels/alipay/notify/APP1' +
    `&sign_type=${signType}&timestamp=2014-07-24 03:07:50&version=1.0`;

  const vectors = [
    {
      signType: 'RSA2',
      key: KEY_2048,
      pub: PUB_2048,
      sign:
        'hT0nVTrT5wE0r5tkGq6QOVHBDkuakSi6rtRxNN28ZNJdgFiyHeNxjJlrI2VKwDRsCxFOidXw4R54u2OPDqtg9wHATSFo841PjU5ekixxsoKW' +
        'Ps4WQrM19ZZlRddGtGkcvll17h38sJgkfA5hVzbgwgQlWde5vEs93+f8FLHBzDNkMgNk4c7dInsXebL3BpzzW9xir4MZc6zhTuMun7xgAxBA' +
        'mXGe2+4qbixUeTDlvgBTLCcTZf6g/DGaKLDfZBUJ+pobZbAB4QA/VGq8fqglRGKtIWgqNBUyEcUiLcsPiKrHz7C0LQCzTLY4zclK95Do8mTP' +
        'fisX/TVMvvCFNunA1g==',
    },
    {
      signType: 'RSA',
      key: KEY_1024,
      pub: PUB_1024,
      sign:
        'dJRcy+xQxt5/kl7JLrox9fRpHGjGixWFeELAmRs2A4GmkTmeQgqsElzJXYPOgx/WGozhzA0v3anqldEb9d9AJfclxTiOa0adq5RK+WijEEEm' +
        'il/CFEIdJwrSPvMsGOWjNdjass6XiDWhCdtbNBStIvHD1ANpALrLNpWcvCLjTW0=',
    },
  ] as const;

  for (const v of vectors) {
    it(`${v.signType}: the documented string-to-sign, a stable signature that verifies`, () => {
      const p = prepared({
        app_id: '2014072300007148',
        private_key: v.key,
        sign_type: v.signType,
        alipay_public_key: PUB_1024,
      });
      const params = signedRequestParams(p, 'alipay.trade.pay', biz, extra, at);
      assert.equal(alipaySigningContent(params, ['sign']), content(v.signType));
      assert.equal(params['sign'], v.sign);
      assert.ok(rsaVerify(content(v.signType), v.sign, createPublicKey(v.pub), v.signType));
    });
  }

  it('the key may be PKCS#8 or PKCS#1, PEM or bare Base64: the same signature', () => {
    const key = createPrivateKey(KEY_2048);
    const forms = [
      key.export({ type: 'pkcs8', format: 'pem' }).toString(),
      key.export({ type: 'pkcs1', format: 'pem' }).toString(),
      key.export({ type: 'pkcs8', format: 'der' }).toString('base64'),
      key.export({ type: 'pkcs1', format: 'der' }).toString('base64'),
      // As copied from a key tool: wrapped at 64 columns, Windows line ends, surrounding blanks.
      `  ${key.export({ type: 'pkcs1', format: 'pem' }).toString().replace(/\n/g, '\r\n')}  `,
    ];
    for (const f of forms) {
      const p = prepared({ app_id: '2014072300007148', private_key: f, alipay_public_key: PUB_1024 });
      assert.equal(signedRequestParams(p, 'alipay.trade.pay', biz, extra, at)['sign'], vectors[0].sign);
    }
  });

  it('empty optional values are never sent (Alipay leaves them out of the content)', () => {
    const p = prepared({ app_id: '2014072300007148', private_key: KEY_2048, alipay_public_key: PUB_1024 });
    const params = signedRequestParams(p, 'alipay.trade.query', { out_trade_no: 'X1' }, {}, at);
    assert.ok(Object.values(params).every((v) => v !== ''));
    assert.deepEqual(Object.keys(params).sort(), [
      'app_id',
      'biz_content',
      'charset',
      'method',
      'sign',
      'sign_type',
      'timestamp',
      'version',
    ]);
  });
});

describe('alipay: answer verification', () => {
  // Signed with the 2048-bit test key standing in for Alipay's; slashes escaped as Alipay writes them.
  const text =
    '{"code":"10000","msg":"Success","out_trade_no":"6823789339978248","qr_code":"https:\\/\\/qr.alipay.com\\/bavh4wjlxf12tper3a"}';
  const sign =
    'EQEFE5FKZ3JGzDK6NogXFw1/OpRMxYQjsf0Vtqg1+LGb1ePGqBRdrdObrP65Mkuzw687eUnXpmXqY7Z9i6m36XTbAbFfOVIuj8GP7C6xbH82' +
    'meH3qSWcGSbHP/VSa79jgCeXAYn1varzFkwqMZmV9qC/IrdcEFrkxxtXPHBrFfijAaJg57WJcurCzFEsCIySDteb+fO/5MPcBY82H8cRnEmr' +
    '5gct5gY7l686945812To8KKTv/T8j+HS09olsVoFbLxiDTUGXqDmHVEFMoCOWdyhdaHoNH3FNdXrtr4LrR3ntVh304/fgl4YsKlk6SgOHqAIE' +
    'zSpegWge88rKTAZpw==';
  const body = `{"alipay_trade_precreate_response":${text},"sign":"${sign}"}`;
  const p = () => prepared({ app_id: APP_ID, private_key: KEY_1024, alipay_public_key: PUB_2048 });

  it('a known signed answer verifies and reads as sent', () => {
    const v = verifyAnswer(p(), 'alipay.trade.precreate', body);
    assert.ok(v.ok, JSON.stringify(v));
    if (v.ok) assert.equal(v.data['qr_code'], 'https://qr.alipay.com/bavh4wjlxf12tper3a');
    // Certificate mode adds alipay_cert_sn beside the sign: still the same signed text.
    const withSn = body.replace('},"sign"', '},"alipay_cert_sn":"7513daaaa48aa3ba2e4018d84402479c","sign"');
    assert.ok(verifyAnswer(p(), 'alipay.trade.precreate', withSn).ok);
  });

  it('the signature covers the raw text: a re-serialised, altered, unsigned or foreign answer is refused', () => {
    const bad = [
      body.replaceAll('\\/', '/'), // the same JSON, written without the escapes
      body.replace('"10000"', '"10001"'),
      body.replace('bavh4wjlxf12tper3a', 'bavh4wjlxf12tper3b'),
      body.replace(`,"sign":"${sign}"`, ''),
      body.replace(sign, sign.replace('EQEF', 'EQEG')),
      body.replace('alipay_trade_precreate_response', 'alipay_trade_pay_response'),
      body.slice(0, 80),
      `{"error_response":{"code":"10000","msg":"Success"},"sign":"${sign}"}`,
      'Service Temporarily Unavailable',
    ];
    for (const b of bad) {
      const v = verifyAnswer(p(), 'alipay.trade.precreate', b);
      assert.equal(v.ok, false, b);
    }
    // The right text verified with another key (the app's own public key put in by mistake) is refused too.
    const wrong = prepared({ app_id: APP_ID, private_key: KEY_2048, alipay_public_key: PUB_1024 });
    assert.equal(verifyAnswer(wrong, 'alipay.trade.precreate', body).ok, false);
  });

  it('a second copy of the answer object after the signed one cannot smuggle another reading in', () => {
    const twice = `{"alipay_trade_precreate_response":${text},"alipay_trade_precreate_response":${text.replace('bavh4', 'evil0')},"sign":"${sign}"}`;
    assert.equal(verifyAnswer(p(), 'alipay.trade.precreate', twice).ok, false);
  });
});

describe('alipay: against the fake gateway (public-key mode)', () => {
  let fake: AlipayFake;
  let alipayKey: KeyObject;
  let app: { privateKey: KeyObject; publicKey: KeyObject };
  let ctx: ReturnType<typeof context>;

  before(async () => {
    app = generateKeyPairSync('rsa', { modulusLength: 2048 });
    alipayKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    fake = await startAlipayFake({ appId: APP_ID, appPublicKey: app.publicKey, alipayPrivateKey: alipayKey });
    ctx = context({
      app_id: APP_ID,
      private_key: app.privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64'),
      alipay_public_key: fake.alipayPublicKey,
      gateway_url: fake.gatewayUrl,
      timeout_ms: '800',
    });
  });
  after(async () => {
    await fake.close();
  });

  const pay = async (no: string, amountFen = 1000) => {
    const r = await channel.barcodePay(ctx, {
      outTradeNo: no,
      payType: 'alipay',
      amountFen: fen(amountFen),
      authCode: authCode(),
      subject: '门诊缴费',
    });
    assert.equal(r.kind, 'paid', JSON.stringify(r));
    return r;
  };

  describe('notifications', () => {
    const notify = (params: Record<string, string>) => channel.parseNotify(ctx, fake.notifyRequest(params));

    it('a genuine one names the trade and is answered "success"; a duplicate reads the same', async () => {
      const no = orderNo();
      await pay(no, 500);
      for (let i = 0; i < 2; i++) {
        const r = await notify(fake.notifyParams(no));
        assert.equal(r.kind, 'trade');
        if (r.kind === 'trade') assert.equal(r.outTradeNo, no);
        assert.deepEqual(r.ack, { status: 200, contentType: 'text/plain', body: 'success' });
      }
    });

    it('each field tampered with, removed or added: rejected and answered "fail"', async () => {
      const no = orderNo();
      await pay(no, 700);
      const genuine = fake.notifyParams(no);
      let cases = 0;
      for (const k of Object.keys(genuine)) {
        if (k === 'sign') continue;
        const changed = { ...genuine, [k]: k === 'sign_type' ? 'RSA' : `${genuine[k]}0` };
        const r = await notify(changed);
        assert.equal(r.kind, 'rejected', `${k} changed`);
        assert.equal(r.ack.body, 'fail');
        cases++;
        if (k === 'sign_type') continue; // not part of the signed content (Alipay's notify rule)
        const removed = { ...genuine };
        delete removed[k];
        assert.equal((await notify(removed)).kind, 'rejected', `${k} removed`);
      }
      assert.ok(cases >= 20, `${cases} fields`);
      assert.equal((await notify({ ...genuine, refund_fee: '7.00' })).kind, 'rejected', 'a field added');
      assert.equal((await notify({ ...genuine, sign: genuine['sign']!.slice(4) })).kind, 'rejected');
      const { sign: _sign, ...unsigned } = genuine;
      assert.equal((await notify(unsigned)).kind, 'rejected');
    });

    it("Alipay's other rule (sign_type inside the content) verifies too; another app's is rejected", async () => {
      const no = orderNo();
      await pay(no, 300);
      const v2 = fake.notifyParams(no);
      v2['sign'] = rsaSign(alipaySigningContent(v2, ['sign']), alipayKey, 'RSA2');
      assert.equal((await notify(v2)).kind, 'trade');
      const other: Record<string, string> = {
        ...fake.notifyParams(no),
        app_id: '2021000000009999',
        auth_app_id: '2021000000009999',
      };
      other['sign'] = rsaSign(alipaySigningContent(other, ['sign', 'sign_type']), alipayKey, 'RSA2');
      const r = await notify(other);
      assert.equal(r.kind, 'rejected');
      if (r.kind === 'rejected') assert.match(r.reason, /app_id/);
    });

    it('a genuine notification without a trade status is acknowledged and ignored', async () => {
      const no = orderNo();
      await pay(no, 300);
      const params = fake.notifyParams(no);
      delete params['trade_status'];
      params['notify_type'] = 'open_app_auth_notify';
      params['sign'] = rsaSign(alipaySigningContent(params, ['sign', 'sign_type']), alipayKey, 'RSA2');
      const r = await notify(params);
      assert.equal(r.kind, 'ignored');
      assert.equal(r.ack.body, 'success');
    });
  });

  it('bill: the download URL, the ZIP through our transport, read by the Alipay bill parser', async () => {
    const paidA = orderNo();
    const paidB = orderNo();
    await pay(paidA, 12_345);
    await pay(paidB, 2_000);
    const refund = await channel.refund(ctx, {
      outTradeNo: paidB,
      payType: 'alipay',
      outRequestNo: `${paidB}R1`,
      amountFen: fen(500),
      totalFen: fen(2_000),
    });
    assert.equal(refund.kind, 'success');
    const today = formatShanghai(new Date()).slice(0, 10);
    const bill = await channel.downloadBill!(ctx, { date: today, payType: 'alipay' });
    assert.equal(bill.date, today);
    assert.equal(bill.payType, 'alipay');
    const a = bill.lines.find((l) => l.outTradeNo === paidA && l.kind === 'payment');
    assert.equal(a?.amountFen, 12_345);
    assert.equal(a?.channelTradeNo, fake.books(paidA)?.tradeNo);
    const r = bill.lines.find((l) => l.outTradeNo === paidB && l.kind === 'refund');
    assert.deepEqual([r?.amountFen, r?.outRequestNo], [500, `${paidB}R1`]);
    assert.ok(bill.lines.every((l) => l.payType === 'alipay'));
    assert.equal(fake.billDownloads().length, 1);
    assert.ok(ctx.calls.some((c) => c.operation === 'alipay.data.dataservice.bill.downloadurl.query'));
    assert.ok(ctx.calls.some((c) => c.operation === 'alipay.bill.download' && c.outcome.startsWith('ok')));
    await assert.rejects(
      channel.downloadBill!(ctx, { date: '2099-01-01', payType: 'alipay' }),
      /bill_not_exist/,
    );
  });

  it('wap pay: a signed cashier URL on the gateway that the fake accepts', async () => {
    const no = orderNo();
    const expiresAt = new Date(Date.now() + 10 * 60_000);
    const r = await channel.wapPay(ctx, {
      outTradeNo: no,
      payType: 'alipay',
      amountFen: fen(1_999),
      subject: 'H5 缴费',
      expiresAt,
      returnUrl: 'https://hospital.example/paid?order=1',
    });
    assert.equal(r.kind, 'created', JSON.stringify(r));
    if (r.kind !== 'created') return;
    const url = new URL(r.codeUrl);
    assert.equal(`${url.origin}${url.pathname}`, fake.gatewayUrl);
    const params = Object.fromEntries(url.searchParams);
    assert.equal(params['method'], 'alipay.trade.wap.pay');
    assert.equal(params['return_url'], 'https://hospital.example/paid?order=1');
    assert.equal(params['notify_url'], ctx.notifyUrl);
    const biz = JSON.parse(params['biz_content'] ?? '{}') as Record<string, string>;
    assert.deepEqual(
      [biz['product_code'], biz['total_amount'], biz['time_expire']],
      ['QUICK_WAP_WAY', '19.99', formatShanghai(expiresAt)],
    );
    assert.ok(rsaVerify(alipaySigningContent(params, ['sign']), params['sign'] ?? '', app.publicKey, 'RSA2'));
    // The payer's browser opens it: the fake checks the signature and opens the trade.
    const page = await httpRequest({ method: 'GET', url: r.codeUrl });
    assert.equal(page.status, 200);
    assert.match(page.body.toString('utf8'), /收银台/);
    const seen = fake.requests().filter((x) => x.op === 'wap');
    assert.equal(seen[seen.length - 1]?.signatureValid, true);
    assert.equal(fake.trade(no)?.state, 'waiting');
    // Any change to the URL breaks the signature.
    url.searchParams.set('biz_content', params['biz_content']!.replace('19.99', '0.01'));
    await httpRequest({ method: 'GET', url: url.toString() });
    assert.equal(fake.requests()[fake.requests().length - 1]?.signatureValid, false);
    assert.ok(ctx.calls.some((c) => c.operation === 'alipay.trade.wap.pay' && c.outTradeNo === no));
  });

  describe('answers the conformance suite does not reach', () => {
    it('a repeated pay of a paid order (ACQ.TRADE_HAS_SUCCESS) is unknown, and the query says paid', async () => {
      const no = orderNo();
      await pay(no);
      const again = await channel.barcodePay(ctx, {
        outTradeNo: no,
        payType: 'alipay',
        amountFen: fen(1000),
        authCode: authCode(),
        subject: 'x',
      });
      assert.equal(again.kind, 'unknown');
      assert.equal((await channel.query(ctx, { outTradeNo: no, payType: 'alipay' })).kind, 'paid');
    });

    it('query: fully refunded reads refunded; cancelled unpaid reads closed', async () => {
      const no = orderNo();
      await pay(no, 800);
      const full = await channel.refund(ctx, {
        outTradeNo: no,
        payType: 'alipay',
        outRequestNo: `${no}R1`,
        amountFen: fen(800),
        totalFen: fen(800),
      });
      assert.equal(full.kind, 'success');
      const q = await channel.query(ctx, { outTradeNo: no, payType: 'alipay' });
      assert.equal(q.kind, 'refunded', JSON.stringify(q));
      const unpaid = orderNo();
      await channel.precreate(ctx, {
        outTradeNo: unpaid,
        payType: 'alipay',
        amountFen: fen(100),
        subject: 'x',
        expiresAt: new Date(Date.now() + 600_000),
      });
      assert.equal((await channel.cancel(ctx, { outTradeNo: unpaid, payType: 'alipay' })).kind, 'closed');
      assert.equal((await channel.query(ctx, { outTradeNo: unpaid, payType: 'alipay' })).kind, 'closed');
    });

    it('cancel of an order Alipay never saw closes it; close of one it never saw is closed', async () => {
      const never = orderNo();
      assert.equal((await channel.cancel(ctx, { outTradeNo: never, payType: 'alipay' })).kind, 'closed');
      assert.equal(fake.trade(never)?.state, 'closed');
      assert.equal((await channel.close(ctx, { outTradeNo: orderNo(), payType: 'alipay' })).kind, 'closed');
    });

    it('cancel refusal with retry_flag N is failed; a cancel with no usable answer is retry', async () => {
      const no = orderNo();
      await pay(no);
      fake.script('cancel', 'declined');
      const x = await channel.cancel(ctx, { outTradeNo: no, payType: 'alipay' });
      assert.equal(x.kind, 'failed', JSON.stringify(x));
      for (const bad of ['timeout', 'http_500', 'malformed'] as const) {
        fake.script('cancel', bad);
        assert.equal((await channel.cancel(ctx, { outTradeNo: no, payType: 'alipay' })).kind, 'retry', bad);
      }
    });

    it('refund: repeat of a done request is success (fund_change N, confirmed by refund query)', async () => {
      const no = orderNo();
      await pay(no, 5_000);
      const input = {
        outTradeNo: no,
        payType: 'alipay' as const,
        outRequestNo: `${no}R1`,
        amountFen: fen(1_000),
        totalFen: fen(5_000),
      };
      assert.equal((await channel.refund(ctx, input)).kind, 'success');
      const again = await channel.refund(ctx, input);
      assert.equal(again.kind, 'success', JSON.stringify(again));
      assert.equal(fake.trade(no)?.refundedFen, 1_000);
      const ops = fake
        .requests()
        .slice(-2)
        .map((r) => r.op);
      assert.deepEqual(ops, ['refund', 'refund_query']);
    });

    it('refund: a system error after the refund was done is confirmed by the refund query', async () => {
      const no = orderNo();
      await pay(no, 5_000);
      const input = {
        outTradeNo: no,
        payType: 'alipay' as const,
        outRequestNo: `${no}R1`,
        amountFen: fen(1_000),
        totalFen: fen(5_000),
      };
      assert.equal((await channel.refund(ctx, input)).kind, 'success');
      fake.script('refund', 'system_error');
      const r = await channel.refund(ctx, input);
      assert.equal(r.kind, 'success', JSON.stringify(r));
    });

    it('refund: more than is left fails; the same number with another amount is unknown, never success', async () => {
      const no = orderNo();
      await pay(no, 1_000);
      const over = await channel.refund(ctx, {
        outTradeNo: no,
        payType: 'alipay',
        outRequestNo: `${no}R1`,
        amountFen: fen(1_001),
        totalFen: fen(1_000),
      });
      assert.equal(over.kind, 'failed');
      if (over.kind === 'failed') assert.equal(over.code, 'ACQ.REFUND_AMT_NOT_EQUAL_TOTAL');
      const base = {
        outTradeNo: no,
        payType: 'alipay' as const,
        outRequestNo: `${no}R2`,
        totalFen: fen(1_000),
      };
      assert.equal((await channel.refund(ctx, { ...base, amountFen: fen(300) })).kind, 'success');
      const other = await channel.refund(ctx, { ...base, amountFen: fen(400) });
      assert.equal(other.kind, 'unknown', JSON.stringify(other));
    });

    it('an unusable configuration is an unknown outcome, recorded, and never reaches Alipay', async () => {
      const broken = context({
        app_id: APP_ID,
        private_key: 'not a key',
        alipay_public_key: fake.alipayPublicKey,
      });
      const before = fake.requests().length;
      const r = await channel.query(broken, { outTradeNo: 'X', payType: 'alipay' });
      assert.equal(r.kind, 'unknown');
      assert.equal(fake.requests().length, before);
      assert.match(broken.calls[0]?.error ?? '', /private_key/);
    });

    it('the records: no auth code, buyer account, key or signature; short excerpts', async () => {
      const code = authCode();
      const no = orderNo();
      const r = await channel.barcodePay(ctx, {
        outTradeNo: no,
        payType: 'alipay',
        amountFen: fen(100),
        authCode: code,
        subject: '手机 13812345678 身份证 11010119900307123X',
      });
      assert.equal(r.kind, 'paid');
      const call = ctx.calls.filter((c) => c.outTradeNo === no).pop();
      assert.ok(call);
      assert.equal(call.operation, 'alipay.trade.pay');
      assert.equal(call.httpStatus, 200);
      assert.equal(call.outcome, 'paid');
      // Unverified answers are recorded too: redacted, marked, without their signature.
      fake.script('query', 'bad_signature');
      assert.equal((await channel.query(ctx, { outTradeNo: no, payType: 'alipay' })).kind, 'unknown');
      assert.match(ctx.calls[ctx.calls.length - 1]?.response ?? '', /^\(unverified\)/);
      fake.script('pay', 'malformed');
      await channel.barcodePay(ctx, {
        outTradeNo: orderNo(),
        payType: 'alipay',
        amountFen: fen(1),
        authCode: code,
        subject: 'x',
      });
      const text = JSON.stringify(ctx.calls);
      for (const secret of [code, '13812345678', '11010119900307123X', '2088102122524333', '159****5620'])
        assert.ok(!text.includes(secret), `${secret} reached a record`);
      assert.ok(!text.includes(ctx.merchant['private_key']!.slice(0, 40)));
      assert.ok(!/"sign"/.test(text), 'no signature in the records');
      assert.match(call.request ?? '', /out_trade_no/);
      assert.match(call.response ?? '', /trade_no/);
      assert.ok(ctx.calls.every((c) => (c.request ?? '').length < 2100 && (c.response ?? '').length < 2100));
    });
  });
});

describe('alipay: certificate mode', () => {
  const certs = generateAlipayCerts();
  const skip = certs ? false : 'the openssl command is not installed';

  it(
    "serial numbers: Alipay's published known answer, and the root file's RSA certificates only",
    { skip },
    () => {
      assert.ok(certs);
      const p = prepared({
        app_id: APP_ID,
        private_key: certs.appKeyPem,
        key_mode: 'cert',
        app_cert: certs.appCertPem,
        alipay_cert: certs.alipayCertPem,
        alipay_root_cert: certs.rootCertPem,
      });
      // The app certificate carries the issuer DN and serial of the one in alipay-sdk's tests, whose SN is
      // published there: md5("CN=Ant Financial Certification Authority Class 1 R1,OU=…,O=Ant Financial,C=CN" +
      // "42701552708448241360226107228231049510").
      assert.equal(p.appCertSn, KNOWN_APP_CERT.sn);
      assert.equal(p.appCertSn, alipayCertSn(certs.appCertPem));
      assert.equal(p.alipayCertSn, certs.alipayCertSn);
      // The EC root beside the RSA one is left out (as Alipay's SM2 root is): one SN, no "_".
      assert.equal(p.alipayRootCertSn, certs.alipayRootCertSn);
      assert.ok(!p.alipayRootCertSn?.includes('_'));
    },
  );

  it(
    'pay, query, refund, notify against the fake in cert mode; a wrong Alipay certificate is unknown',
    { skip },
    async () => {
      assert.ok(certs);
      const fake = await startAlipayFake({
        appId: APP_ID,
        appPublicKey: createPublicKey(certs.appKeyPem),
        alipayPrivateKey: certs.alipayKeyPem,
        cert: {
          appCertSn: certs.appCertSn,
          alipayRootCertSn: certs.alipayRootCertSn,
          alipayCertSn: certs.alipayCertSn,
        },
      });
      try {
        const merchant = {
          app_id: APP_ID,
          private_key: certs.appKeyPem,
          key_mode: 'cert',
          app_cert: certs.appCertPem,
          alipay_cert: certs.alipayCertPem,
          alipay_root_cert: certs.rootCertPem,
          gateway_url: fake.gatewayUrl,
          timeout_ms: '800',
        };
        assert.deepEqual(checkChannelConfig(alipayDefinition.fields, merchant), []);
        const ctx = context(merchant);
        const no = orderNo();
        const paid = await channel.barcodePay(ctx, {
          outTradeNo: no,
          payType: 'alipay',
          amountFen: fen(4_321),
          authCode: authCode(),
          subject: 'x',
        });
        assert.equal(paid.kind, 'paid', JSON.stringify(paid));
        assert.equal((await channel.query(ctx, { outTradeNo: no, payType: 'alipay' })).kind, 'paid');
        const refund = await channel.refund(ctx, {
          outTradeNo: no,
          payType: 'alipay',
          outRequestNo: `${no}R1`,
          amountFen: fen(321),
          totalFen: fen(4_321),
        });
        assert.equal(refund.kind, 'success');
        assert.ok(
          fake.requests().every((r) => r.signatureValid),
          'app_cert_sn, alipay_root_cert_sn and sign all right',
        );
        assert.equal(fake.requests()[0]?.params['app_cert_sn'], KNOWN_APP_CERT.sn);
        const n = await channel.parseNotify(ctx, fake.notification(no));
        assert.equal(n.kind, 'trade');
        assert.equal(
          (await channel.parseNotify(ctx, fake.notification(no, { tamper: true }))).kind,
          'rejected',
        );
        // Alipay's certificate replaced by another one: its answers no longer verify.
        const wrong = context({ ...merchant, alipay_cert: certs.appCertPem });
        const q = await channel.query(wrong, { outTradeNo: no, payType: 'alipay' });
        assert.equal(q.kind, 'unknown');
        if (q.kind === 'unknown') assert.match(q.reason, /bad signature.*alipay_cert/);
      } finally {
        await fake.close();
      }
    },
  );
});

describe('alipay: configuration checks', () => {
  const app = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const alipay = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const alipayPub = alipay.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  const good = {
    app_id: APP_ID,
    private_key: app.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    alipay_public_key: alipayPub,
  };
  const problems = (values: Record<string, string>) => checkChannelConfig(alipayDefinition.fields, values);
  const fields = (values: Record<string, string>) => problems(values).map((p) => p.field);

  it('the definition: id, name, pay types, secret private key, defaults', () => {
    assert.equal(alipayDefinition.id, 'alipay');
    assert.equal(alipayDefinition.zh, '支付宝');
    assert.deepEqual(alipayDefinition.payTypes, ['alipay']);
    const byName = new Map(alipayDefinition.fields.map((f) => [f.name, f]));
    assert.equal(byName.get('private_key')?.secret, true);
    assert.deepEqual(
      alipayDefinition.fields.filter((f) => f.secret).map((f) => f.name),
      ['private_key', 'app_auth_token'],
    );
    assert.equal(byName.get('sign_type')?.default, 'RSA2');
    assert.equal(byName.get('key_mode')?.default, 'public_key');
    assert.equal(byName.get('gateway_url')?.default, 'https://openapi.alipay.com/gateway.do');
    assert.equal(byName.get('timeout_ms')?.default, '10000');
  });

  it('a good configuration passes, with the key in any of its forms', () => {
    assert.deepEqual(problems(good), []);
    for (const f of [
      app.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      app.privateKey.export({ type: 'pkcs8', format: 'der' }).toString('base64'),
      app.privateKey.export({ type: 'pkcs1', format: 'der' }).toString('base64'),
    ])
      assert.deepEqual(problems({ ...good, private_key: f }), []);
    assert.deepEqual(
      problems({
        ...good,
        alipay_public_key: alipay.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      }),
      [],
    );
    assert.deepEqual(
      problems({
        ...good,
        sign_type: 'RSA',
        gateway_url: 'https://openapi-sandbox.dl.alipaydev.com/gateway.do',
        seller_id: '2088101106499364',
        store_id: 'MZ-01',
        sys_service_id: '2088511833207846',
        timeout_ms: '5000',
      }),
      [],
    );
  });

  it('missing or wrong keys are named, in Chinese and English', () => {
    const { private_key: _p, ...noKey } = good;
    assert.deepEqual(fields(noKey), ['private_key']);
    const { alipay_public_key: _a, ...noAlipayKey } = good;
    const missing = problems(noAlipayKey);
    assert.equal(missing.length, 1);
    assert.match(`${missing[0]?.zh} ${missing[0]?.en}`, /alipay_public_key/);
    assert.deepEqual(fields({ ...good, private_key: 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSj' }), [
      'private_key',
    ]);
    assert.deepEqual(fields({ ...good, private_key: good.alipay_public_key }), ['private_key']);
    assert.deepEqual(fields({ ...good, alipay_public_key: 'not base64 at all!' }), ['alipay_public_key']);
    const own = problems({
      ...good,
      alipay_public_key: app.publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
    });
    assert.equal(own[0]?.field, 'alipay_public_key');
    assert.match(own[0]?.en ?? '', /app public key, not the Alipay public key/);
    assert.deepEqual(fields({ ...good, alipay_public_key: good.private_key }), ['alipay_public_key']);
    const ec = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    assert.deepEqual(
      fields({ ...good, private_key: ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }),
      ['private_key'],
    );
    for (const p of problems({ ...good, private_key: 'x', sign_type: 'MD5' })) {
      assert.ok(p.zh.length > 0 && p.en.length > 0 && p.zh !== p.en, JSON.stringify(p));
    }
  });

  it('other settings are checked', () => {
    assert.deepEqual(fields({ ...good, sign_type: 'MD5' }), ['sign_type']);
    assert.deepEqual(fields({ ...good, key_mode: 'both' }), ['key_mode']);
    assert.deepEqual(fields({ ...good, app_id: 'abc' }), ['app_id']);
    assert.deepEqual(fields({ ...good, gateway_url: 'http://openapi.alipay.com/gateway.do' }), [
      'gateway_url',
    ]);
    assert.deepEqual(fields({ ...good, gateway_url: 'http://127.0.0.1:9/gateway.do' }), []);
    assert.deepEqual(fields({ ...good, timeout_ms: '10s' }), ['timeout_ms']);
    assert.deepEqual(fields({ ...good, seller_id: '12345' }), ['seller_id']);
    assert.deepEqual(fields({ ...good, sys_service_id: '2088' }), ['sys_service_id']);
    assert.deepEqual(fields({ ...good, store_id: 'a b' }), ['store_id']);
    assert.deepEqual(fields({ ...good, partner_key: 'x' }), ['partner_key']);
  });

  it('cert mode without certificates, with a bad one, or with a key that does not match', () => {
    const { alipay_public_key: _a, ...base } = good;
    const none = problems({ ...base, key_mode: 'cert' });
    assert.equal(none.length, 1);
    for (const f of ['app_cert', 'alipay_cert', 'alipay_root_cert'])
      assert.match(none[0]?.en ?? '', new RegExp(f));
    assert.deepEqual(
      fields({ ...base, key_mode: 'cert', app_cert: 'x', alipay_cert: 'y', alipay_root_cert: 'z' }),
      ['app_cert', 'alipay_cert', 'alipay_root_cert'],
    );
    const certs = generateAlipayCerts();
    if (!certs) return;
    const cert = {
      key_mode: 'cert',
      app_cert: certs.appCertPem,
      alipay_cert: certs.alipayCertPem,
      alipay_root_cert: certs.rootCertPem,
    };
    assert.deepEqual(problems({ app_id: APP_ID, private_key: certs.appKeyPem, ...cert }), []);
    const mismatch = problems({ ...base, ...cert });
    assert.deepEqual(
      mismatch.map((p) => p.field),
      ['private_key'],
    );
    assert.match(mismatch[0]?.en ?? '', /does not match the app certificate/);
    // A root file with only a non-RSA certificate gives no alipay_root_cert_sn.
    const ecOnly = certs.rootCertPem.slice(certs.rootCertPem.indexOf('-----BEGIN', 10));
    const noRsaRoot = problems({
      app_id: APP_ID,
      private_key: certs.appKeyPem,
      ...cert,
      alipay_root_cert: ecOnly,
    });
    assert.equal(noRsaRoot.length, 1);
    assert.match(noRsaRoot[0]?.en ?? '', /alipay_root_cert_sn/);
  });

  it('key readers refuse what is not the right kind of key', () => {
    assert.equal(readAlipayPrivateKey(''), null);
    assert.equal(readAlipayPrivateKey(PUB_2048), null);
    assert.ok(readAlipayPrivateKey(KEY_1024));
    assert.equal(readAlipayPublicKey(KEY_2048), null);
    assert.ok(readAlipayPublicKey(PUB_2048));
    assert.ok(
      readAlipayPublicKey(createPublicKey(PUB_2048).export({ type: 'pkcs1', format: 'pem' }).toString()),
    );
  });
});

describe('alipay: third-party app (ISV) mode, app_auth_token', () => {
  const ISV_APP_ID = '2021000000000999';
  const HOSPITAL_APP_ID = '2021000000000777';
  const TOKEN = '202401BB8c1a2e3f4d5b6c7d8e9f0a1b2c3d4e5f';
  const at = new Date('2014-07-23T19:07:50Z');
  const biz = { out_trade_no: '20150320010101001', scene: 'bar_code', auth_code: '28763443825664394' };

  it('known answer: app_auth_token is a signed public parameter, in its sorted place', () => {
    const p = prepared({
      app_id: '2014072300007148',
      private_key: KEY_2048,
      alipay_public_key: PUB_1024,
      app_auth_token: TOKEN,
      auth_app_id: HOSPITAL_APP_ID,
    });
    const params = signedRequestParams(p, 'alipay.trade.pay', biz, {}, at);
    // Written out by hand, Alipay's rule: every parameter but sign, sorted by name, raw values.
    const expected =
      `app_auth_token=${TOKEN}&app_id=2014072300007148` +
      '&biz_content={"out_trade_no":"20150320010101001","scene":"bar_code","auth_code":"28763443825664394"}' +
      '&charset=utf-8&method=alipay.trade.pay&sign_type=RSA2&timestamp=2014-07-24 03:07:50&version=1.0';
    assert.equal(alipaySigningContent(params, ['sign']), expected);
    // RSA PKCS#1 v1.5 is deterministic: the signature computed here with node:crypto, not by the SDK.
    const independent = createSign('RSA-SHA256')
      .update(expected, 'utf8')
      .sign(createPrivateKey(KEY_2048), 'base64');
    assert.equal(params['sign'], independent);
    assert.equal(params['app_auth_token'], TOKEN);
    // Without the token the same request signs differently (the token is covered by the signature).
    const direct = signedRequestParams(
      prepared({ app_id: '2014072300007148', private_key: KEY_2048, alipay_public_key: PUB_1024 }),
      'alipay.trade.pay',
      biz,
      {},
      at,
    );
    assert.equal(direct['app_auth_token'], undefined);
    assert.notEqual(direct['sign'], params['sign']);
  });

  it('configuration: the token needs auth_app_id and the reverse; both per app, the credentials either', () => {
    const scope = (n: string) => alipayDefinition.fields.find((f) => f.name === n)?.scope ?? 'app';
    assert.equal(scope('app_auth_token'), 'app');
    assert.equal(scope('auth_app_id'), 'app');
    assert.equal(alipayDefinition.fields.find((f) => f.name === 'app_auth_token')?.secret, true);
    for (const n of ['app_id', 'private_key', 'alipay_public_key', 'app_cert', 'alipay_cert', 'gateway_url'])
      assert.equal(scope(n), 'either', n);
    const base = { app_id: ISV_APP_ID, private_key: KEY_2048, alipay_public_key: PUB_1024 };
    assert.deepEqual(
      checkChannelConfig(alipayDefinition.fields, {
        ...base,
        app_auth_token: TOKEN,
        auth_app_id: HOSPITAL_APP_ID,
      }),
      [],
    );
    const noId = checkChannelConfig(alipayDefinition.fields, { ...base, app_auth_token: TOKEN });
    assert.deepEqual(
      noId.map((p) => p.field),
      ['app_auth_token'],
    );
    assert.match(noId[0]?.en ?? '', /auth_app_id/);
    const noToken = checkChannelConfig(alipayDefinition.fields, { ...base, auth_app_id: HOSPITAL_APP_ID });
    assert.deepEqual(
      noToken.map((p) => p.field),
      ['auth_app_id'],
    );
  });

  describe('against the fake gateway told the authorised hospitals', () => {
    let fake: AlipayFake;
    let isvKey: { privateKey: KeyObject; publicKey: KeyObject };
    let alipayKey: KeyObject;
    let ctx: ReturnType<typeof context>;
    const merchant = (token: string | null) => ({
      app_id: ISV_APP_ID,
      private_key: isvKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      alipay_public_key: fake.alipayPublicKey,
      gateway_url: fake.gatewayUrl,
      timeout_ms: '800',
      ...(token === null ? {} : { app_auth_token: token, auth_app_id: HOSPITAL_APP_ID }),
    });

    before(async () => {
      isvKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
      alipayKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      fake = await startAlipayFake({
        appId: ISV_APP_ID,
        appPublicKey: isvKey.publicKey,
        alipayPrivateKey: alipayKey,
        appAuthTokens: { [TOKEN]: HOSPITAL_APP_ID, '202401BBother000000000000000000': '2021000000000888' },
      });
      ctx = context(merchant(TOKEN));
    });
    after(async () => {
      await fake.close();
    });

    it('every operation carries the token (pay, precreate, wap, query, cancel, close, refund, bill); never recorded', async () => {
      const before = fake.requests().length;
      const no = orderNo();
      const paid = await channel.barcodePay(ctx, {
        outTradeNo: no,
        payType: 'alipay',
        amountFen: fen(1200),
        authCode: authCode(),
        subject: '门诊缴费',
      });
      assert.equal(paid.kind, 'paid', JSON.stringify(paid));
      assert.equal((await channel.query(ctx, { outTradeNo: no, payType: 'alipay' })).kind, 'paid');
      const refunded = await channel.refund(ctx, {
        outTradeNo: no,
        payType: 'alipay',
        totalFen: fen(1200),
        outRequestNo: `${no}R1`,
        amountFen: fen(200),
      });
      assert.equal(refunded.kind, 'success', JSON.stringify(refunded));
      const qr = orderNo();
      const pre = await channel.precreate(ctx, {
        outTradeNo: qr,
        payType: 'alipay',
        amountFen: fen(300),
        subject: '自助机缴费',
        expiresAt: new Date(Date.now() + 600_000),
      });
      assert.equal(pre.kind, 'created', JSON.stringify(pre));
      assert.equal((await channel.close(ctx, { outTradeNo: qr, payType: 'alipay' })).kind, 'closed');
      assert.equal((await channel.cancel(ctx, { outTradeNo: orderNo(), payType: 'alipay' })).kind, 'closed');
      const date = new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Shanghai' }).format(new Date());
      const bill = await channel.downloadBill(ctx, { date, payType: 'alipay' });
      assert.ok(bill.lines.some((l) => l.outTradeNo === no && l.kind === 'payment'));
      const wap = await channel.wapPay(ctx, {
        outTradeNo: orderNo(),
        payType: 'alipay',
        amountFen: fen(100),
        subject: 'H5 缴费',
        expiresAt: new Date(Date.now() + 600_000),
        returnUrl: 'https://hospital.example/paid',
      });
      assert.equal(wap.kind, 'created');
      if (wap.kind === 'created') await httpRequest({ method: 'GET', url: wap.codeUrl });
      const seen = fake.requests().slice(before);
      assert.deepEqual([...new Set(seen.map((r) => r.op))].sort(), [
        'bill',
        'cancel',
        'close',
        'pay',
        'precreate',
        'query',
        'refund',
        'wap',
      ]);
      for (const r of seen) {
        assert.equal(r.params['app_auth_token'], TOKEN, r.method);
        assert.equal(r.authAppId, HOSPITAL_APP_ID, r.method);
        assert.equal(r.signatureValid, true, r.method);
        assert.equal(r.params['app_id'], ISV_APP_ID);
      }
      // The token is a secret: in no call record.
      const records = JSON.stringify(ctx.calls);
      assert.ok(ctx.calls.length >= 8);
      assert.ok(
        !records.includes(TOKEN) && !records.includes(TOKEN.slice(8, 30)),
        'the token reached a record',
      );
    });

    it('an unknown token is refused by Alipay (aop.invalid-app-auth-token), a missing one too: a decline, never paid', async () => {
      const wrong = context(merchant('202401BBnot-a-token-of-ours-000'));
      const r = await channel.barcodePay(wrong, {
        outTradeNo: orderNo(),
        payType: 'alipay',
        amountFen: fen(100),
        authCode: authCode(),
        subject: '门诊缴费',
      });
      assert.equal(r.kind, 'declined', JSON.stringify(r));
      if (r.kind === 'declined') {
        // Alipay's sub_code aop.invalid-app-auth-token, read without the gateway's "aop." prefix.
        assert.equal(r.code, 'invalid-app-auth-token');
        assert.match(r.zh, /无效的应用授权令牌/);
      }
      const none = context(merchant(null));
      const m = await channel.barcodePay(none, {
        outTradeNo: orderNo(),
        payType: 'alipay',
        amountFen: fen(100),
        authCode: authCode(),
        subject: '门诊缴费',
      });
      assert.equal(m.kind, 'declined', JSON.stringify(m));
      if (m.kind === 'declined') assert.equal(m.code, 'isv.insufficient-isv-permissions');
    });

    it("another hospital's trade is not this one's: its token sees no such trade", async () => {
      const no = orderNo();
      const p = await channel.barcodePay(ctx, {
        outTradeNo: no,
        payType: 'alipay',
        amountFen: fen(100),
        authCode: authCode(),
        subject: '门诊缴费',
      });
      assert.equal(p.kind, 'paid');
      const other = context({
        ...merchant('202401BBother000000000000000000'),
        auth_app_id: '2021000000000888',
      });
      assert.equal((await channel.query(other, { outTradeNo: no, payType: 'alipay' })).kind, 'not_found');
    });

    it('notifications: app_id the third-party app and auth_app_id this hospital, else rejected', async () => {
      const no = orderNo();
      const p = await channel.barcodePay(ctx, {
        outTradeNo: no,
        payType: 'alipay',
        amountFen: fen(100),
        authCode: authCode(),
        subject: '门诊缴费',
      });
      assert.equal(p.kind, 'paid');
      const genuine = fake.notifyParams(no);
      assert.equal(genuine['app_id'], ISV_APP_ID);
      assert.equal(genuine['auth_app_id'], HOSPITAL_APP_ID);
      const ok = await channel.parseNotify(ctx, fake.notifyRequest(genuine));
      assert.equal(ok.kind, 'trade');
      const resigned = (over: Record<string, string>) => {
        const x: Record<string, string> = { ...genuine, ...over };
        x['sign'] = rsaSign(alipaySigningContent(x, ['sign', 'sign_type']), alipayKey, 'RSA2');
        return fake.notifyRequest(x);
      };
      for (const over of <Array<Record<string, string>>>[
        { auth_app_id: '2021000000000888' }, // another hospital of the same third-party app
        { app_id: HOSPITAL_APP_ID }, // the hospital's own app, not through the third-party app
        { app_id: '2021000000000888', auth_app_id: '2021000000000888' },
      ]) {
        const r = await channel.parseNotify(ctx, resigned(over));
        assert.equal(r.kind, 'rejected', JSON.stringify(over));
        if (r.kind === 'rejected') assert.match(r.reason, /app_id/);
      }
    });
  });
});
