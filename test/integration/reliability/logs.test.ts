import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { formatShanghai } from '../../../src/domain/clock.js';
import {
  authCode,
  barcodeFields,
  orderNo,
  qrFields,
  startTestPlatform,
  xmlDoc,
  type TestPlatform,
} from '../../support/platform.js';
import { LEGACY_APP_KEY, TEST_APP_KEY, gateway, signedForm } from '../../support/gateway.js';
import { GATEWAY_CORPUS, OFFLINE_CORPUS, hostileAmount, validYuan } from './corpus.js';
import { assertNoSecrets } from './log-check.js';
import { authoriseMedicare, userToken } from '../../support/medicare.js';

/**
 * Item 12 of the reliability battery: one platform runs a mix of the whole battery — the hostile corpus of both
 * doors, payments with every simulator outcome, refunds and cancels, tampered and replayed signed requests,
 * medical insurance with ID numbers, amount fuzzing, personal numbers put where the server does log (interface
 * names, methods, paths) — and its logs are then searched for private keys, payment codes, ID and phone numbers.
 * (Each other reliability file also checks its own platform's logs with the same checker.)
 */
describe('reliability 12: the logs of the battery hold no secrets', () => {
  let t: TestPlatform;
  const authCodes: string[] = [];
  const phones = ['13912345678', '15800001111', '18612340000', '+8613711112222'];
  const idNumbers = ['44010519800101123X', '110101199003078516', '32050119851212002X'];
  const values: string[] = ['欧阳秘密', '司马隐私'];
  const done: Record<string, number> = {};
  const tick = (what: string, n = 1) => (done[what] = (done[what] ?? 0) + n);

  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    await t.platform.deps.apps.setRedirectUris(t.appId, ['https://his.example.cn/mi/']);
    values.push(t.token);
  });
  after(async () => {
    await t?.close();
  });

  const code = (rule: string, payType: 'alipay' | 'weixin' | 'unionpay' = 'alipay') => {
    const c = authCode(rule, payType);
    authCodes.push(c);
    return c;
  };

  it('runs the hostile corpus of both doors', async () => {
    const offlineCtx = {
      token: t.token,
      validFields: () => ({
        AccessToken: t.token,
        ...(barcodeFields({ AuthCode: code('00') }) as Record<string, string>),
      }),
      doc: (f: Record<string, string>) => xmlDoc(f),
    };
    for (const c of OFFLINE_CORPUS) {
      const body = typeof c.body === 'function' ? c.body(offlineCtx) : c.body;
      const type = c.contentType === undefined ? 'text/xml' : c.contentType;
      const res = await fetch(`${t.url}/offline/${c.iface ?? 'FWC_IF_Barcode_Pay'}`, {
        method: 'POST',
        headers: type === null ? {} : { 'content-type': type },
        body: typeof body === 'string' ? Buffer.from(body) : body,
      });
      assert.ok(res.status < 500);
      await res.text();
      tick('offline corpus cases');
    }
    const gatewayCtx = {
      appId: t.appId,
      form: (biz: string, over: Record<string, string> = {}, method = 'lc.trade.h5.pay') =>
        new URLSearchParams(
          signedForm(
            {
              app_id: t.appId,
              method,
              timestamp: formatShanghai(t.clock.now()),
              nonce_str: randomUUID(),
              biz_content: biz,
              sign_type: 'RSA2',
              ...over,
            },
            TEST_APP_KEY.privateKey,
          ),
        ).toString(),
      h5: (over: Record<string, unknown> = {}) =>
        JSON.stringify({
          out_trade_no: orderNo('MZ'),
          total_amount: '1.00',
          subject: '门诊缴费',
          order_type: 'TREATMENT',
          ...over,
        }),
    };
    for (const c of GATEWAY_CORPUS) {
      const body = c.body(gatewayCtx);
      const type = c.contentType === undefined ? 'application/x-www-form-urlencoded' : c.contentType;
      const res = await fetch(`${t.url}/gateway`, {
        method: 'POST',
        headers: type === null ? {} : { 'content-type': type },
        body: typeof body === 'string' ? Buffer.from(body) : body,
      });
      assert.ok(res.status < 500);
      await res.text();
      tick('gateway corpus cases');
    }
  });

  it('pays, refunds, cancels and queries with every simulator outcome', async () => {
    const cases: Array<[string, 'alipay' | 'weixin' | 'unionpay', string]> = [
      ['00', 'alipay', '2'],
      ['01', 'alipay', '2'],
      ['03', 'alipay', '2'],
      ['04', 'alipay', '0'],
      ['05', 'alipay', '2'],
      ['06', 'alipay', '0'],
      ['00', 'weixin', '2'],
      ['00', 'unionpay', '2'],
    ];
    for (const [rule, payType, cnt] of cases) {
      const f = barcodeFields({ AuthCode: code(rule, payType), PatientName: '欧阳秘密', Cnt: cnt });
      const a = await t.offline('FWC_IF_Barcode_Pay', f);
      tick('barcode pays');
      await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: f.OutTradeNo });
      if (a.rr.IsSuccess === '1') {
        await t.offline('FWC_IF_Barcode_Pay_Refund', {
          TradeNo: a.result['TradeNo'],
          RefundAmount: '8.88',
          OutRequestNo: `R${rule}`,
          OutTradeNo: f.OutTradeNo,
          TotalAmount: '88.88',
        });
        tick('refunds');
      } else {
        await t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: f.OutTradeNo });
        await t.offline('FWC_IF_Barcode_Pay_Cancel', { OutTradeNo: f.OutTradeNo });
        tick('cancels', 2);
      }
      // The same order number with another payment code: a conflict, the new code never stored.
      await t.offline('FWC_IF_Barcode_Pay', { ...f, AuthCode: code('00') });
    }
    for (const tel of phones) {
      const a = await t.offline('FWC_IF_Qrcode_Pay', qrFields({ Tel: tel, PatientName: '司马隐私' }));
      assert.equal(a.rr.IsSuccess, '1', a.text);
      tick('QR pays with a phone number');
    }
    // Wrong token that looks like a phone or ID number.
    await t.offline('FWC_IF_Barcode_Pay', barcodeFields(), { token: phones[0] });
    await t.offline('FWC_IF_Barcode_Pay', barcodeFields(), { token: idNumbers[0] });
  });

  it('puts personal numbers where the server does log: paths, interface names, methods, app ids', async () => {
    for (const n of [...phones, ...idNumbers, ...authCodes.slice(0, 4)]) {
      await t.offline(n, barcodeFields());
      await fetch(`${t.url}/no/such/${n}`);
      await fetch(`${t.url}/offline/FWC_IF_Barcode_Pay_Query?AuthCode=${n}`, {
        method: 'POST',
        headers: { 'content-type': 'text/xml' },
        body: xmlDoc({ AccessToken: t.token, OutTradeNo: n }),
      });
      await gateway(t, n, { out_trade_no: n });
      await gateway(t, 'lc.trade.query', { out_trade_no: n }, { appId: n });
      await gateway(
        t,
        'lc.trade.query',
        { out_trade_no: n },
        { before: (p) => (p['nonce_str'] = n.replace('+', '')) },
      );
      tick('personal numbers in logged places');
    }
  });

  it('sends tampered, replayed and stale signed requests', async () => {
    const biz = {
      out_trade_no: orderNo('MZ'),
      total_amount: '12.00',
      subject: '门诊缴费',
      order_type: 'TREATMENT',
    };
    let captured: Record<string, string> = {};
    await gateway(t, 'lc.trade.h5.pay', biz, { after: (p) => (captured = { ...p }) });
    const raw = new URLSearchParams(captured).toString();
    await Promise.all(Array.from({ length: 20 }, () => gateway(t, 'lc.trade.h5.pay', biz, { rawBody: raw })));
    tick('replays', 20);
    for (const change of [
      (p: Record<string, string>) => (p['biz_content'] = (p['biz_content'] ?? '').replace('12.00', '0.01')),
      (p: Record<string, string>) => (p['sign'] = (p['sign'] ?? '').slice(4)),
      (p: Record<string, string>) => (p['sign_type'] = 'RSA'),
      (p: Record<string, string>) => (p['app_id'] = idNumbers[1] ?? ''),
    ]) {
      await gateway(t, 'lc.trade.h5.pay', biz, { after: change });
      tick('tampered');
    }
    await gateway(t, 'lc.trade.h5.pay', biz, { key: LEGACY_APP_KEY.privateKey });
    await gateway(t, 'lc.trade.h5.pay', biz, { signType: 'RSA', after: (p) => (p['sign_type'] = 'RSA2') });
    await gateway(t, 'lc.trade.h5.pay', biz, { before: (p) => (p['timestamp'] = '2026-11-25 08:00:00') });
    tick('wrong key, mix-up, stale', 3);
  });

  it('medical insurance with ID numbers: consent, token, mixed payment, refusals', async () => {
    for (const [i, card] of idNumbers.entries()) {
      const openId = `2088${String(i).padStart(12, '0')}`;
      const back = await authoriseMedicare(t, openId, {
        state: `s${i}`,
        redirectUri: 'https://his.example.cn/mi/cb',
      });
      const miCode = back.searchParams.get('auth_code') ?? '';
      values.push(miCode);
      const tok = await userToken(t, openId, miCode, { patient_card_no: card });
      assert.equal(tok.json.code, '10000', tok.raw);
      const payAuthNo = String(tok.biz['pay_auth_no']);
      values.push(payAuthNo);
      const pay = await gateway(t, 'lc.ssc.trade.pay', {
        out_trade_no: orderNo('MZ'),
        ssc_scene: 'TREATMENT',
        subject: '门诊医保缴费',
        notify_url: 'https://his.example.cn/mi/notify',
        return_url: 'https://his.example.cn/mi/return',
        total_amount: 100,
        cash_fee: '40.00',
        insurance_fee: '60.00',
        payment_type: 'alipay',
        user_id: openId,
        patient_name: '王医保',
        patient_card_no: card,
        org_name: '市第一人民医院',
        org_no: 'H44010100001',
        ssc_ins_type: 'YB',
        city_code: '440100',
        ssc_serial_no: i === 0 ? 'SIM_INSURANCE_FAIL' : `SSC${i}`,
        pay_auth_no: payAuthNo,
      });
      assert.ok(pay.status < 500);
      // Refusals that carry the ID number: a malformed one, a used token, a token of another user.
      await gateway(t, 'lc.ssc.user.token', {
        user_id: openId,
        payment_type: 'alipay',
        auth_code: miCode,
        patient_card_no: `${card}9`,
      });
      await gateway(t, 'lc.ssc.trade.pay', {
        out_trade_no: card,
        patient_card_no: card,
        pay_auth_no: payAuthNo,
        user_id: 'other',
      });
      tick('insurance flows');
    }
  });

  it('posts junk provider notifications (personal numbers, NUL) in a loop: counted, logged once', async () => {
    const before = t
      .logs()
      .split('\n')
      .filter((l) => /channel notifications? rejected/.test(l)).length;
    for (let i = 0; i < 100; i++)
      for (const channel of ['alipay', 'wechat', 'unionpay']) {
        const n = [...phones, ...idNumbers, ...authCodes][i % 10] ?? '';
        const res = await fetch(`${t.url}/channels/${channel}/notify/${t.appId}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: `sign=${n}&app_id=${n}&orderId=${n}&sign_type=${n}&x=\u0000${n}`,
        });
        await res.text();
      }
    tick('junk provider notifications', 300);
    const lines = t
      .logs()
      .split('\n')
      .filter((l) => /channel notifications? rejected/.test(l));
    // One line per app and channel a minute (the fake clock stands still), not one per notification.
    assert.ok(lines.length - before <= 3, `${lines.length - before} log lines for 300 notifications`);
  });

  it('fuzzes amounts through both doors', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(validYuan, hostileAmount), async (s) => {
        await t.offline('FWC_IF_Qrcode_Pay', qrFields({ TotalAmount: s, Tel: phones[1] }));
        await gateway(t, 'lc.trade.h5.pay', {
          out_trade_no: orderNo('MZ'),
          total_amount: s,
          subject: 'x',
          order_type: 'TREATMENT',
        });
        tick('amount cases');
      }),
      { numRuns: 40 },
    );
  });

  it('finds no private key, payment code, ID or phone number in any of it', async (tc) => {
    const logs = t.logs();
    const scan = assertNoSecrets(logs, {
      authCodes,
      idNumbers,
      phones: phones.map((p) => p.replace('+86', '')),
      values,
      privateKeys: [(await t.platform.deps.keys.active()).privateKey],
    });
    // The scan is not vacuous: the places that were fed personal numbers are in the logs, masked.
    assert.match(logs, /"path":"\/no\/such\/139\*\*\*\*678"/);
    assert.match(logs, /"iface":"440\*\*\*\*23X"/);
    tc.diagnostic(
      `mix: ${Object.entries(done)
        .map(([k, n]) => `${n} ${k}`)
        .join(', ')}`,
    );
    tc.diagnostic(
      `logs: ${scan.lines} lines, ${scan.bytes} bytes; ${authCodes.length} payment codes, ${idNumbers.length} ID numbers, ${phones.length} phone numbers, ${scan.searched} strings and patterns searched: none found`,
    );
  });
});
