import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { formatShanghai } from '../../src/domain/clock.js';
import { signingContent, verifyParams, type SignType } from '../../src/crypto/signing.js';
import { buildNotifyForm } from '../../src/services/notify.js';
import { GATEWAY_METHODS } from '../../src/http/gateway/routes.js';
import { orderNo, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway, signedForm, type GatewayAnswer } from '../support/gateway.js';

/**
 * Issue 11 §1: nobody can make the platform sign text of their choosing. The construction: a parameter value
 * holding `&k=v&…` is signed as part of the k=v&k=v content, and the same signature then verifies over other
 * parameters (a forged lc.trade.notify saying TRADE_SUCCESS), plus one extra parameter (`~`) that soaks up the
 * rest of the content.
 */

/** Reads the signed content out of an answer as an integrator's verifier does (biz_content as its raw text). */
function answerParams(a: GatewayAnswer) {
  const start = a.raw.indexOf('"biz_content":') + '"biz_content":'.length;
  const end = a.raw.lastIndexOf(',"sign_type":');
  return {
    app_id: a.json.app_id,
    method: a.json.method,
    timestamp: a.json.timestamp,
    nonce_str: a.json.nonce_str,
    code: a.json.code,
    msg: a.json.msg,
    biz_content: a.raw.slice(start, end),
    sign_type: a.json.sign_type,
  };
}

/**
 * Re-reads signed content the way an attacker would: split at every `&`; a piece whose key sorts after the
 * previous key starts a new parameter, any other piece is glued onto the previous value. The result's content
 * is the same text, so the same signature verifies over it.
 */
function resplit(content: string): Record<string, string> {
  const out: Record<string, string> = {};
  let last = '';
  for (const piece of content.split('&')) {
    const eq = piece.indexOf('=');
    const key = eq > 0 ? piece.slice(0, eq) : '';
    if (key && key > last && !Object.hasOwn(out, key)) {
      out[key] = piece.slice(eq + 1);
      last = key;
    } else {
      out[last] = `${out[last] ?? ''}&${piece}`;
    }
  }
  return out;
}

describe('security: the platform never signs what an unauthenticated caller chose (issue 11 §1)', () => {
  let t: TestPlatform;
  let platformKey: KeyObject;
  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
    platformKey = (await t.platform.deps.keys.active()).publicKey;
  });
  after(async () => {
    await t.close();
  });

  /** The forged notification text for the victim app: TRADE_SUCCESS for an order nobody paid. */
  const forgedTail = (signType: SignType) =>
    `&biz_content={"out_trade_no":"MZ_UNPAID_1","trade_no":"2026","trade_status":"TRADE_SUCCESS","total_amount":8888.00}` +
    `&charset=utf-8&method=lc.trade.notify&nonce_str=x&notify_id=forged&sign_type=${signType}` +
    `&timestamp=${formatShanghai(t.clock.now())}&version=1.0&~=1`;

  async function post(params: Record<string, string>): Promise<GatewayAnswer> {
    const res = await fetch(`${t.url}/gateway`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      body: new URLSearchParams(params).toString(),
    });
    const raw = await res.text();
    const json = JSON.parse(raw) as GatewayAnswer['json'];
    return { status: res.status, raw, json, biz: json.biz_content };
  }

  /** Asserts that no parameter set other than the answer's own verifies with the answer's signature. */
  function assertUnforgeable(a: GatewayAnswer, what: string) {
    if (a.json.sign === undefined) {
      assert.equal(a.json.sign_type, undefined, `${what}: an unsigned answer has no sign_type`);
      return;
    }
    const own: Record<string, string> = answerParams(a);
    const type: SignType = own.sign_type === 'RSA' ? 'RSA' : 'RSA2';
    assert.ok(verifyParams({ ...own, sign: a.json.sign }, platformKey, type), `${what}: the answer verifies`);
    const re = resplit(signingContent(own));
    assert.deepEqual(
      Object.keys(re).sort(),
      Object.keys(own)
        .filter((k) => own[k] !== '')
        .sort(),
      what,
    );
    assert.notEqual(re['method'], 'lc.trade.notify', what);
  }

  for (const signType of ['RSA2', 'RSA'] as const) {
    it(`the issue's construction, ${signType}: a refusal echoing app_id cannot be replayed as a paid notification`, async () => {
      const forged = `${t.appId}${forgedTail(signType)}`;
      const a = await post({
        app_id: forged,
        method: 'lc.trade.query',
        timestamp: formatShanghai(t.clock.now()),
        nonce_str: 'n1',
        biz_content: '{}',
        sign_type: signType,
        sign: 'AAAA',
      });
      assert.equal(a.biz['sub_code'], 'isv.invalid-app-id');
      assert.equal(a.json.sign, undefined, 'a refusal before authentication is not signed');
      assert.equal(a.json.app_id, '', 'an app_id that names no app is not echoed');
      // Whatever an attacker does with the answer, the forged notification does not verify.
      const notify = resplit(
        signingContent({ ...answerParams(a), app_id: forged, sign_type: signType } as Record<string, string>),
      );
      assert.equal(notify['method'], 'lc.trade.notify');
      assert.equal(verifyParams({ ...notify, sign: a.json.sign ?? '' }, platformKey, signType), false);
      assertUnforgeable(a, 'invalid app_id');
    });

    for (const field of ['method', 'nonce_str', 'timestamp', 'sign_type', 'biz_content'] as const) {
      it(`${signType}: text injected into ${field} is neither signed nor echoed for an unauthenticated caller`, async () => {
        const params: Record<string, string> = {
          app_id: t.appId,
          method: 'lc.trade.query',
          timestamp: formatShanghai(t.clock.now()),
          nonce_str: randomUUID(),
          biz_content: '{"out_trade_no":"MZ1"}',
          sign_type: signType,
          sign: 'AAAA',
        };
        params[field] = `${params[field]}${forgedTail(signType)}`;
        const a = await post(params);
        assert.notEqual(a.json.code, '10000');
        assert.equal(a.json.sign, undefined, `${field}: refused before authentication, so not signed`);
        assert.ok(!a.raw.includes('lc.trade.notify'), `${field}: the injected text is not echoed`);
        assertUnforgeable(a, field);
      });
    }
  }

  it('an authenticated caller cannot smuggle parameters either: unknown methods and nonces are not echoed', async () => {
    for (const [field, value] of [
      ['method', `lc.trade.query${forgedTail('RSA2')}`],
      ['nonce_str', `n${forgedTail('RSA2')}`],
    ] as const) {
      const a = await gateway(
        t,
        'lc.trade.query',
        { out_trade_no: 'MZ1' },
        {
          before: (p) => {
            p[field] = value;
          },
        },
      );
      assert.equal(typeof a.json.sign, 'string', `${field}: an authenticated refusal is signed`);
      assert.equal(a.json[field], '', `${field}: an ill-formed value is not echoed`);
      assertUnforgeable(a, `authenticated ${field}`);
    }
  });

  it('biz_content values holding & are signed as \\u0026: the content never splits', async () => {
    // sub_msg of an unknown method echoes the (authenticated) caller's text, & included.
    const a = await gateway(
      t,
      'lc.trade.query',
      { out_trade_no: 'MZ1' },
      {
        before: (p) => {
          p['method'] = 'x&method=lc.trade.notify';
        },
      },
    );
    assert.equal(a.biz['sub_code'], 'isv.invalid-method');
    assert.ok(String(a.biz['sub_msg']).includes('x&method'), 'JSON readers see the & as it was');
    assert.ok(!answerParams(a).biz_content.includes('&'), 'the signed text holds no raw &');
    assertUnforgeable(a, 'biz_content with &');
  });

  it('every signed answer of a real flow is unforgeable (h5 pay, query)', async () => {
    const out = orderNo('MZ');
    const pay = await gateway(t, 'lc.trade.h5.pay', {
      out_trade_no: out,
      total_amount: 1.0,
      subject: 'A&B=C 门诊',
      return_url: 'https://his.example.cn/pay/return?visit=42',
      notify_url: 'https://his.example.cn/pay/notify?a=1&b=2',
      order_type: 'TREATMENT',
    });
    assert.equal(pay.json.code, '10000', JSON.stringify(pay.biz));
    assertUnforgeable(pay, 'h5 pay');
    assertUnforgeable(await gateway(t, 'lc.trade.query', { out_trade_no: out }), 'query');
  });

  it("return_url's own parameters cannot carry & or the redirect's parameter names", async () => {
    for (const returnUrl of [
      `https://his.example.cn/r?x=1%26method%3Dlc.trade.notify`,
      'https://his.example.cn/r?method=lc.trade.notify',
      'https://his.example.cn/r?sign=abc',
      'https://his.example.cn/r?a%26b=1',
      'https://his.example.cn/r?v=1&v=2',
    ]) {
      const a = await gateway(t, 'lc.trade.h5.pay', {
        out_trade_no: orderNo('MZ'),
        total_amount: 1.0,
        subject: '门诊',
        return_url: returnUrl,
        notify_url: 'https://his.example.cn/pay/notify',
        order_type: 'TREATMENT',
      });
      assert.equal(a.biz['sub_code'], 'INVALID_FIELD.return_url', returnUrl);
      assert.equal(a.json.code, '40002');
    }
  });

  it('notifications: biz_content with & is signed split-proof, and the signer refuses unsafe values', async () => {
    const key = (await t.platform.deps.keys.active()).privateKey;
    const form = await buildNotifyForm({
      notification: { notify_id: 'n1', app_id: t.appId, trade_status: 'TRADE_SUCCESS' },
      trade: {
        out_trade_no: 'MZ1',
        trade_no: 'P1',
        channel_trade_no: 'C&method=lc.trade.h5.pay.return',
        buyer_user_id: 'u&x=1',
        total_fen: 100,
        insurance_fen: 0,
        refunded_fen: 0,
        paid_at: t.clock.now(),
        closed_at: null,
        pay_type: 'alipay',
        extra: '{}',
      } as never,
      now: t.clock.now(),
      privateKey: key,
    });
    assert.ok(!form['biz_content']?.includes('&'));
    assert.equal((JSON.parse(form['biz_content'] ?? '{}') as Record<string, string>)['user_id'], 'u&x=1');
    assert.ok(verifyParams(form, platformKey, 'RSA2'));
    const re = resplit(signingContent(form));
    assert.deepEqual(
      Object.keys(re).sort(),
      Object.keys(form)
        .filter((k) => k !== 'sign')
        .sort(),
    );
    // The signer itself refuses a value with & (defence in depth).
    await assert.rejects(
      buildNotifyForm({
        notification: { notify_id: 'n&method=x', app_id: t.appId, trade_status: 'TRADE_SUCCESS' },
        trade: { out_trade_no: 'MZ1', total_fen: 1, insurance_fen: 0, refunded_fen: 0, extra: '{}' } as never,
        now: t.clock.now(),
        privateKey: key,
      }),
      /refusing to sign/,
    );
  });

  it('the three kinds of signed message are told apart by method: no request method is a notification or return', () => {
    assert.ok(!Object.hasOwn(GATEWAY_METHODS, 'lc.trade.notify'));
    assert.ok(!Object.hasOwn(GATEWAY_METHODS, 'lc.trade.h5.pay.return'));
    for (const m of Object.keys(GATEWAY_METHODS)) assert.match(m, /^[a-z0-9.]+$/);
  });

  it('a well-formed request from the app is still answered signed, echoing its values', async () => {
    const params = signedForm(
      {
        app_id: t.appId,
        method: 'lc.trade.query',
        timestamp: formatShanghai(t.clock.now()),
        nonce_str: 'abc-123_X',
        biz_content: '{"out_trade_no":"MZ_NONE"}',
      },
      TEST_APP_KEY.privateKey,
    );
    const a = await post(params);
    assert.equal(a.json.app_id, t.appId);
    assert.equal(a.json.method, 'lc.trade.query');
    assert.equal(a.json.nonce_str, 'abc-123_X');
    assert.equal(typeof a.json.sign, 'string');
    assertUnforgeable(a, 'plain query');
  });
});
