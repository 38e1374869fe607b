import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { sql } from 'kysely';
import { verifyParams } from '../../src/crypto/signing.js';
import { orderNo, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { LEGACY_APP_KEY, TEST_APP_KEY, gateway, verifyAnswer } from '../support/gateway.js';

describe('online gateway (POST /gateway)', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
  });
  after(async () => {
    await t.close();
  });

  const platformKey = async () => (await t.platform.deps.keys.active()).publicKey;
  const h5 = (over: Record<string, unknown> = {}) => ({
    out_trade_no: orderNo('MZ'),
    total_amount: 88.88,
    subject: '门诊缴费',
    return_url: 'https://his.example.cn/pay/return',
    notify_url: 'https://his.example.cn/pay/notify',
    order_type: 'TREATMENT',
    ...over,
  });
  const counts = async () => {
    const r = await sql<{ trades: string; nonces: string }>`
      SELECT (SELECT count(*) FROM trades)::text AS trades, (SELECT count(*) FROM gateway_nonces)::text AS nonces`.execute(
      t.store.db,
    );
    return r.rows[0];
  };

  /** Pays an H5 trade the way a payer does: goto_url → choose Alipay → simulator cashier → pay. */
  async function payH5(gotoUrl: string, action: 'pay' | 'abandon' = 'pay'): Promise<URL> {
    const chosen = await fetch(gotoUrl, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'pay_type=alipay',
    });
    assert.equal(chosen.status, 302);
    const cashier = chosen.headers.get('location') ?? '';
    const paid = await fetch(cashier, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `action=${action}`,
    });
    assert.equal(paid.status, 303);
    const back = await fetch(paid.headers.get('location') ?? '', { redirect: 'manual' });
    assert.equal(back.status, 302);
    return new URL(back.headers.get('location') ?? '');
  }

  it('lc.trade.h5.pay answers a signed goto_url; paying sends the payer to return_url with signed parameters', async () => {
    const biz = h5();
    const a = await gateway(t, 'lc.trade.h5.pay', biz);
    assert.equal(a.status, 200);
    assert.equal(a.json.code, '10000', a.raw);
    assert.equal(a.json.msg, 'Success');
    assert.equal(a.json.method, 'lc.trade.h5.pay');
    assert.ok(verifyAnswer(a.raw, await platformKey()), 'the answer verifies with the platform key');
    const gotoUrl = String(a.biz['goto_url']);
    assert.match(gotoUrl, /\/goto\/[A-Za-z0-9_-]+$/);
    const back = await payH5(gotoUrl);
    assert.equal(back.origin + back.pathname, 'https://his.example.cn/pay/return');
    const params = Object.fromEntries(back.searchParams);
    assert.equal(params['method'], 'lc.trade.h5.pay.return');
    assert.equal(params['code'], '10000');
    assert.equal(params['msg'], '支付回调');
    assert.ok(verifyParams(params, await platformKey(), 'RSA2'), 'return_url parameters verify');
    const rb = JSON.parse(params['biz_content'] ?? '{}') as Record<string, unknown>;
    assert.equal(rb['trade_status'], 'TRADE_SUCCESS');
    assert.equal(rb['out_trade_no'], biz.out_trade_no);
    assert.match(params['biz_content'] ?? '', /"total_amount":88\.88/);
    // Query through the gateway.
    const q = await gateway(t, 'lc.trade.query', { out_trade_no: biz.out_trade_no });
    assert.equal(q.json.code, '10000');
    assert.equal(q.biz['trade_status'], 'TRADE_SUCCESS');
    assert.equal(q.biz['payment_type'], 'alipay');
    assert.match(q.raw, /"total_amount":88\.88/);
    // Refund part of it, twice with the same number.
    const r1 = await gateway(t, 'lc.trade.refund', {
      out_trade_no: biz.out_trade_no,
      refund_amount: '8.88',
      out_request_no: 'G1',
    });
    assert.equal(r1.json.code, '10000', r1.raw);
    assert.equal(r1.biz['fund_change'], 'Y');
    assert.match(r1.raw, /"refund_fee":8\.88/);
    const r2 = await gateway(t, 'lc.trade.refund', {
      out_trade_no: biz.out_trade_no,
      refund_amount: 8.88,
      out_request_no: 'G1',
    });
    assert.equal(r2.biz['fund_change'], 'N');
    const over = await gateway(t, 'lc.trade.refund', {
      out_trade_no: biz.out_trade_no,
      refund_amount: 80.01,
      out_request_no: 'G2',
    });
    assert.equal(over.json.code, '40004');
    assert.equal(over.biz['sub_code'], 'REFUND_AMOUNT_EXCEEDED');
    assert.ok(verifyAnswer(over.raw, await platformKey()));
  });

  it('the payer gives up: return_url carries TRADE_CLOSED with sub_code 5001', async () => {
    const biz = h5();
    const a = await gateway(t, 'lc.trade.h5.pay', biz);
    const back = await payH5(String(a.biz['goto_url']), 'abandon');
    const params = Object.fromEntries(back.searchParams);
    assert.ok(verifyParams(params, await platformKey(), 'RSA2'));
    const rb = JSON.parse(params['biz_content'] ?? '{}') as Record<string, unknown>;
    assert.equal(rb['trade_status'], 'TRADE_CLOSED');
    assert.equal(rb['sub_code'], '5001');
    assert.equal(rb['sub_msg'], '用户取消');
  });

  it('lc.trade.cancel closes an unpaid H5 trade and reverses a paid one', async () => {
    const unpaid = h5();
    await gateway(t, 'lc.trade.h5.pay', unpaid);
    const c1 = await gateway(t, 'lc.trade.cancel', {
      out_trade_no: unpaid.out_trade_no,
      operator_id: 'OP001',
      terminal_id: 'NJ_T_001',
    });
    assert.equal(c1.json.code, '10000', c1.raw);
    assert.equal(c1.biz['action'], 'close');
    assert.equal(c1.biz['retry_flag'], 'N');
    const paid = h5();
    const a = await gateway(t, 'lc.trade.h5.pay', paid);
    await payH5(String(a.biz['goto_url']));
    const c2 = await gateway(t, 'lc.trade.cancel', { out_trade_no: paid.out_trade_no });
    assert.equal(c2.biz['action'], 'refund');
    const q = await gateway(t, 'lc.trade.query', { out_trade_no: paid.out_trade_no });
    assert.equal(q.biz['trade_status'], 'TRADE_CLOSED');
  });

  it('is idempotent on out_trade_no, keeps amounts exact, and accepts order_type by number', async () => {
    const biz = h5({
      total_amount: '0.10',
      order_type: '1',
      business_params: { memo: '备注', biz_code: '20170408' },
      disable_pay_channels: 'credit_group',
    });
    const a = await gateway(t, 'lc.trade.h5.pay', biz);
    const b = await gateway(t, 'lc.trade.h5.pay', biz);
    assert.equal(b.biz['goto_url'], a.biz['goto_url']);
    const row = await t.trade(biz.out_trade_no);
    assert.equal(row.total_fen, 10);
    assert.equal(row.order_type, 'APPOINTMENT');
    assert.match(row.extra ?? '', /credit_group/);
    assert.match(row.extra ?? '', /备注/);
    const c = await gateway(t, 'lc.trade.h5.pay', { ...biz, total_amount: '0.11' });
    assert.equal(c.json.code, '40004');
    assert.equal(c.biz['sub_code'], 'OUT_TRADE_NO_CONFLICT');
    for (const amount of [88.888, '1e2', -1, 0, '0.00', '１']) {
      const x = await gateway(t, 'lc.trade.h5.pay', h5({ total_amount: amount }));
      assert.equal(x.json.code, '40002', `${amount}: ${x.raw}`);
      assert.equal(x.biz['sub_code'], 'INVALID_FIELD.total_amount');
    }
  });

  it('accepts RSA (SHA1withRSA) from a legacy app with a 1024-bit key, and sign_type in any case', async () => {
    const legacy = await t.platform.deps.apps.create({ name: '老系统医院' });
    await t.platform.deps.apps.setPublicKey(legacy.appId, LEGACY_APP_KEY.publicPem, true);
    const a = await gateway(t, 'lc.trade.h5.pay', h5(), {
      appId: legacy.appId,
      key: LEGACY_APP_KEY.privateKey,
      signType: 'RSA',
    });
    assert.equal(a.json.code, '10000', a.raw);
    assert.equal(a.json.sign_type, 'RSA');
    assert.ok(verifyAnswer(a.raw, await platformKey()));
    const lower = await gateway(t, 'lc.trade.h5.pay', h5(), { before: (p) => (p['sign_type'] = 'rsa2') });
    assert.equal(lower.json.code, '10000', lower.raw);
  });

  describe('refusals change nothing and each has its own code', () => {
    const cases: Array<
      [
        string,
        () => Promise<{ json: { code: string }; biz: Record<string, unknown>; raw: string }>,
        string,
        string,
      ]
    > = [];
    const add = (label: string, code: string, sub: string, call: () => ReturnType<typeof gateway>) =>
      cases.push([label, call, code, sub]);
    for (const p of ['app_id', 'method', 'timestamp', 'nonce_str', 'biz_content', 'sign_type', 'sign']) {
      add(`missing ${p}`, '40001', `isv.missing-${p.replace(/_/g, '-')}`, () =>
        gateway(t, 'lc.trade.h5.pay', h5(), { after: (x) => delete x[p] }),
      );
    }
    add('unknown app', '20001', 'isv.invalid-app-id', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { appId: 'hpnosuchapp' }),
    );
    add('tampered biz_content', '40002', 'isv.invalid-signature', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), {
        after: (x) => (x['biz_content'] = (x['biz_content'] ?? '').replace('88.88', '0.01')),
      }),
    );
    add('tampered timestamp', '40002', 'isv.invalid-signature', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { after: (x) => (x['nonce_str'] = 'other') }),
    );
    add('added parameter', '40002', 'isv.invalid-signature', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { after: (x) => (x['extra'] = '1') }),
    );
    add('wrong key', '40002', 'isv.invalid-signature', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { key: LEGACY_APP_KEY.privateKey }),
    );
    add('RSA signature sent as RSA2', '40002', 'isv.invalid-signature', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { signType: 'RSA', after: (x) => (x['sign_type'] = 'RSA2') }),
    );
    add('garbage signature', '40002', 'isv.invalid-signature', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { after: (x) => (x['sign'] = '!!!') }),
    );
    add('unknown sign_type', '40002', 'isv.invalid-signature-type', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { before: (x) => (x['sign_type'] = 'MD5') }),
    );
    add('stale timestamp', '40002', 'isv.stale-timestamp', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { before: (x) => (x['timestamp'] = '2026-11-25 09:54:00') }),
    );
    add('future timestamp', '40002', 'isv.stale-timestamp', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { before: (x) => (x['timestamp'] = '2026-11-25 10:06:00') }),
    );
    add('malformed timestamp', '40002', 'isv.invalid-timestamp', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { before: (x) => (x['timestamp'] = '2026/11/25 10:00:00') }),
    );
    add('unknown method', '40002', 'isv.invalid-method', () => gateway(t, 'lc.trade.pay.everything', h5()));
    add('biz_content not JSON', '40002', 'INVALID_FIELD.biz_content', () =>
      gateway(t, 'lc.trade.h5.pay', '{"out_trade_no":'),
    );
    add('biz_content an array', '40002', 'INVALID_FIELD.biz_content', () =>
      gateway(t, 'lc.trade.h5.pay', '[1,2]'),
    );
    add('duplicate key in biz_content', '40002', 'INVALID_FIELD.biz_content', () =>
      gateway(
        t,
        'lc.trade.h5.pay',
        '{"out_trade_no":"MZ1","out_trade_no":"MZ2","total_amount":1,"subject":"x","order_type":"TREATMENT"}',
      ),
    );
    add('missing biz field', '40001', 'MISSING_FIELD.subject', () =>
      gateway(t, 'lc.trade.h5.pay', h5({ subject: '' })),
    );
    add('bad return_url', '40002', 'INVALID_FIELD.return_url', () =>
      gateway(t, 'lc.trade.h5.pay', h5({ return_url: 'javascript:alert(1)' })),
    );
    add('JSON instead of a form', '40002', 'isv.invalid-content-type', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { contentType: 'application/json', rawBody: '{"app_id":"x"}' }),
    );
    add('repeated parameter', '40002', 'isv.repeated-parameter', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { rawBody: 'app_id=a&app_id=b&method=x' }),
    );
    add('huge body', '40002', 'isv.request-too-large', () =>
      gateway(t, 'lc.trade.h5.pay', h5(), { rawBody: `app_id=${'x'.repeat(70_000)}` }),
    );
    add('unknown trade (business)', '40004', 'TRADE_NOT_EXIST', () =>
      gateway(t, 'lc.trade.query', { out_trade_no: 'MZNOTHERE' }),
    );

    for (const [label, call, code, sub] of cases) {
      it(`${label} → ${code} ${sub}`, async () => {
        const before = await counts();
        const a = await call();
        assert.equal(a.json.code, code, a.raw);
        assert.equal(a.biz['sub_code'], sub);
        assert.match(String(a.biz['sub_msg']), / \/ /, 'bilingual message');
        // Refused before the caller's signature verified: not signed (the platform signs nothing for a caller
        // it does not know, issue 11). Refusals of an authenticated caller are signed.
        const preAuth =
          /^isv\.(missing-|invalid-app-id|invalid-signature|invalid-content-type|repeated-parameter|request-too-large)/.test(
            sub,
          );
        if (preAuth)
          assert.equal(
            (a.json as { sign?: string }).sign,
            undefined,
            'refused before authentication: not signed',
          );
        else
          assert.ok(
            verifyAnswer(a.raw, await platformKey()),
            'refusals of an authenticated caller are signed',
          );
        const now = await counts();
        assert.equal(now?.trades, before?.trades, 'no trade was created');
        // A request refused before it is authenticated spends no nonce; an authenticated one does (it was used).
        if (sub.startsWith('isv.') && sub !== 'isv.invalid-method')
          assert.equal(now?.nonces, before?.nonces, 'no nonce was spent');
      });
    }
  });

  it('a replayed request is refused; the nonce is spent once', async () => {
    const body = h5();
    let captured: Record<string, string> = {};
    const a = await gateway(t, 'lc.trade.h5.pay', body, { after: (x) => (captured = { ...x }) });
    assert.equal(a.json.code, '10000');
    const again = await gateway(t, 'lc.trade.h5.pay', body, {
      rawBody: new URLSearchParams(captured).toString(),
    });
    assert.equal(again.json.code, '40002');
    assert.equal(again.biz['sub_code'], 'isv.repeated-nonce');
    const replays = await Promise.all(
      Array.from({ length: 20 }, () =>
        gateway(
          t,
          'lc.trade.query',
          { out_trade_no: body.out_trade_no },
          { before: (x) => (x['nonce_str'] = 'same-nonce-20') },
        ),
      ),
    );
    assert.equal(replays.filter((r) => r.json.code === '10000').length, 1);
    assert.equal(replays.filter((r) => r.biz['sub_code'] === 'isv.repeated-nonce').length, 19);
  });

  it('registering a key: a private key pasted by mistake is refused with its own message, and nothing is stored', async () => {
    const other = await t.platform.deps.apps.create({ name: '私钥误传' });
    const privPem = fs.readFileSync('test/fixtures/keys/test-app-2048.pem', 'utf8');
    const r = await t.admin('PUT', `/admin/apps/${other.appId}/public-key`, { public_key: privPem });
    assert.equal(r.status, 400);
    assert.equal(r.data['code'], 'INVALID_FIELD.public_key');
    assert.match(String(r.data['message']), /私钥.*PRIVATE key/s);
    assert.equal((await t.platform.deps.apps.get(other.appId))?.public_key ?? null, null);
    const ok = await t.admin('PUT', `/admin/apps/${other.appId}/public-key`, {
      public_key: TEST_APP_KEY.publicPem,
    });
    assert.equal(ok.status, 200);
  });

  it('registering a key: under 2048 bits only with legacy_sign, which also allows RSA (SHA-1); re-registering turns it off', async () => {
    const app = await t.platform.deps.apps.create({ name: '旧式签名医院' });
    const path = `/admin/apps/${app.appId}/public-key`;
    const short = await t.admin('PUT', path, { public_key: LEGACY_APP_KEY.publicPem });
    assert.equal(short.status, 400);
    assert.equal(short.data['code'], 'INVALID_FIELD.public_key');
    assert.match(String(short.data['message']), /2048/);
    assert.equal((await t.platform.deps.apps.get(app.appId))?.public_key ?? null, null, 'nothing stored');
    const bad = await t.admin('PUT', path, { public_key: LEGACY_APP_KEY.publicPem, legacy_sign: 'yes' });
    assert.equal(bad.data['code'], 'INVALID_FIELD.legacy_sign');
    const ok = await t.admin('PUT', path, { public_key: LEGACY_APP_KEY.publicPem, legacy_sign: true });
    assert.equal(ok.status, 200);
    assert.equal(ok.data['legacy_sign'], true);
    const rsa = await gateway(
      t,
      'lc.trade.query',
      { out_trade_no: 'X1' },
      {
        appId: app.appId,
        key: LEGACY_APP_KEY.privateKey,
        signType: 'RSA',
      },
    );
    assert.equal(rsa.biz['sub_code'], 'TRADE_NOT_EXIST', rsa.raw);
    assert.equal(rsa.json.sign_type, 'RSA');
    // A 2048-bit key registered without legacy_sign: RSA is refused from then on.
    assert.equal((await t.admin('PUT', path, { public_key: TEST_APP_KEY.publicPem })).status, 200);
    const sha1 = await gateway(
      t,
      'lc.trade.query',
      { out_trade_no: 'X1' },
      { appId: app.appId, signType: 'RSA' },
    );
    assert.equal(sha1.biz['sub_code'], 'isv.invalid-signature-type');
    assert.match(String(sha1.biz['sub_msg']), /RSA2/);
  });

  it('an app without a registered key, or disabled, cannot use the gateway', async () => {
    const nokey = await t.platform.deps.apps.create({ name: '无公钥医院' });
    const a = await gateway(t, 'lc.trade.query', { out_trade_no: 'X1' }, { appId: nokey.appId });
    assert.equal(a.json.code, '20001');
    assert.equal(a.biz['sub_code'], 'isv.missing-app-public-key');
    await t.platform.deps.apps.setPublicKey(nokey.appId, TEST_APP_KEY.publicPem);
    await t.platform.deps.apps.setStatus(nokey.appId, 'disabled');
    const b = await gateway(t, 'lc.trade.query', { out_trade_no: 'X1' }, { appId: nokey.appId });
    assert.equal(b.biz['sub_code'], 'isv.invalid-app-id');
  });
});
