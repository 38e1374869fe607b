import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { orderNo, startTestPlatform, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway } from '../support/gateway.js';
import { GATEWAY_CONTRACT } from '../../src/http/gateway/contract.js';
import { ADMIN_SCHEMAS } from '../../src/http/admin/schemas.js';
import { gatewayPathOf, openApiPath } from '../../src/http/openapi/document.js';
import { checkOpenApi31 } from '../support/openapi.js';

const TOKEN = 'test-admin-token-0123456789abcdef';

type Doc = {
  openapi: string;
  servers: { url: string }[];
  paths: Record<string, Record<string, unknown>>;
  'x-hospay-sub-codes': { sub_code: string }[];
};

async function getDoc(base: string): Promise<{ doc: Doc; text: string; res: Response }> {
  const res = await fetch(`${base}/openapi.json`);
  const text = await res.text();
  return { doc: JSON.parse(text) as Doc, text, res };
}

/** The answer's biz_content fields, checked against the method's contract. */
function assertAnswerMatches(method: string, biz: Record<string, unknown>): void {
  const answer = GATEWAY_CONTRACT[method]!.answer;
  for (const k of Object.keys(biz))
    assert.ok(k === 'sub_code' || k === 'sub_msg' || k in answer, `${method} answered an undocumented ${k}`);
  for (const [k, a] of Object.entries(answer))
    if (!a.optional) assert.ok(k in biz, `${method} did not answer ${k}`);
}

describe('the API contract: /openapi.json and /docs/api', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
  });
  after(async () => {
    await t.close();
  });

  it('serves a valid OpenAPI 3.1 document with every gateway method and every admin route, and no secret', async () => {
    const { doc, text, res } = await getDoc(t.url);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    assert.equal(doc.openapi, '3.1.0');
    assert.deepEqual(checkOpenApi31(doc as unknown as Record<string, unknown>), []);
    assert.equal(doc.servers[0]?.url, t.url);
    for (const m of Object.keys(GATEWAY_CONTRACT)) assert.ok(doc.paths[gatewayPathOf(m)]?.['post'], m);
    for (const key of Object.keys(ADMIN_SCHEMAS)) {
      const [verb, path] = key.split(' ') as [string, string];
      assert.ok(doc.paths[openApiPath(path)]?.[verb.toLowerCase()], key);
    }
    // No secret: not the admin token, no key material, not the app's AccessToken.
    assert.ok(!text.includes(TOKEN));
    assert.ok(!text.includes(t.token));
    assert.ok(!/BEGIN [A-Z ]*KEY/.test(text));
    const platformKey = (await t.platform.deps.keys.active()).publicPem.split('\n')[1] ?? 'x';
    assert.ok(!text.includes(platformKey));
  });

  it('the human page lists every method, its fields and every code, without scripts or external assets', async () => {
    const res = await fetch(`${t.url}/docs/api`);
    assert.equal(res.status, 200);
    const html = await res.text();
    const csp = res.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline/);
    assert.ok(!/<(script|link|img)\b/i.test(html), 'no script, stylesheet link or image');
    for (const [m, c] of Object.entries(GATEWAY_CONTRACT)) {
      assert.ok(html.includes(`id="${m}"`), m);
      for (const f of Object.keys(c.fields)) assert.ok(html.includes(`<code>${f}</code>`), `${m} ${f}`);
    }
    for (const c of ['isv.invalid-signature', 'TRADE_NOT_EXIST', 'REFUND_PROCESSING', 'PAY_AUTH_NO_USED'])
      assert.ok(html.includes(c), c);
    for (const key of Object.keys(ADMIN_SCHEMAS)) assert.ok(html.includes(key), key);
  });

  it('the answers of real gateway calls have exactly the documented fields', async () => {
    const out = orderNo('OA');
    const pay = await gateway(t, 'lc.trade.h5.pay', {
      out_trade_no: out,
      total_amount: 12.34,
      subject: '门诊缴费',
      order_type: 'TREATMENT',
    });
    assert.equal(pay.json.code, '10000', JSON.stringify(pay.biz));
    assertAnswerMatches('lc.trade.h5.pay', pay.biz);
    const q = await gateway(t, 'lc.trade.query', { out_trade_no: out });
    assert.equal(q.json.code, '10000');
    assertAnswerMatches('lc.trade.query', q.biz);
    const c = await gateway(t, 'lc.trade.cancel', { out_trade_no: out });
    assert.equal(c.json.code, '10000', JSON.stringify(c.biz));
    assertAnswerMatches('lc.trade.cancel', c.biz);
    // A refusal's sub_code is one the document lists.
    const { doc } = await getDoc(t.url);
    const codes = new Set(doc['x-hospay-sub-codes'].map((x) => x.sub_code));
    const missing = await gateway(t, 'lc.trade.query', { out_trade_no: orderNo('NONE') });
    assert.equal(missing.biz['sub_code'], 'TRADE_NOT_EXIST');
    assert.ok(codes.has(String(missing.biz['sub_code'])));
    const bad = await gateway(t, 'lc.trade.refund', {
      out_trade_no: out,
      refund_amount: 1,
      out_request_no: 'a b',
    });
    assert.equal(bad.biz['sub_code'], 'INVALID_FIELD.out_request_no');
  });

  it('an admin request that breaks its schema is answered 400 INVALID_FIELD.<field> in both languages', async () => {
    const appsBefore = ((await t.admin('GET', '/admin/apps')).data as unknown as unknown[]).length;
    const cases: [string, string, unknown, string][] = [
      ['POST', '/admin/apps', { name: 42 }, 'INVALID_FIELD.name'],
      ['PUT', '/admin/operators/nobody/status', { status: 'gone' }, 'INVALID_FIELD.status'],
      ['PUT', '/admin/platform/channels/alipay', { values: { app_id: 5 } }, 'INVALID_FIELD.values'],
      [
        'POST',
        '/admin/operators/nobody/tokens',
        { label: 'ci', expires_in_days: 0 },
        'INVALID_FIELD.expires_in_days',
      ],
      ['PUT', '/admin/operators/nobody/role', { role: 'root' }, 'INVALID_FIELD.role'],
      ['POST', '/admin/operators', { username: 'ann', display_name: 'Ann' }, 'INVALID_FIELD.password'],
      ['GET', '/admin/notifications?limit=9999', undefined, 'INVALID_FIELD.limit'],
      ['GET', '/admin/reconciliation/differences/0', undefined, 'INVALID_FIELD.id'],
    ];
    for (const [method, path, body, code] of cases) {
      const r = await t.admin(method, path, body);
      assert.equal(r.status, 400, `${method} ${path}`);
      assert.equal(r.data['code'], code, `${method} ${path}`);
      assert.match(
        String(r.data['message']),
        /[\u4e00-\u9fff].* \/ [A-Za-z]/,
        `${method} ${path}: bilingual`,
      );
    }
    // Nothing was created or changed by the refused requests.
    const apps = await t.admin('GET', '/admin/apps');
    assert.equal((apps.data as unknown as unknown[]).length, appsBefore);
    assert.equal(((await t.admin('GET', '/admin/operators')).data as unknown as unknown[]).length, 0);
    // Schemas are not stricter than the handlers: extra fields are still accepted where they are ignored.
    const ok = await t.admin('PUT', `/admin/apps/${t.appId}/status`, { status: 'active', note: 'x' });
    assert.equal(ok.status, 200);
    // A wrong token is still refused before any validation.
    const res = await fetch(`${t.url}/admin/apps`, {
      method: 'POST',
      headers: { authorization: 'Bearer wrong', 'content-type': 'application/json' },
      body: JSON.stringify({ name: 42 }),
    });
    assert.equal(res.status, 401);
  });
});

describe('the API contract with the admin doors on their own address', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_ADMIN_LISTEN: '127.0.0.1:0' } });
  });
  after(async () => {
    await t.close();
  });

  it('the public port documents the gateway only; the admin address documents the admin API too', async () => {
    const pub = await getDoc(t.url);
    assert.ok(!Object.keys(pub.doc.paths).some((p) => p.startsWith('/admin')));
    assert.ok(!pub.text.includes('adminToken'));
    const page = await (await fetch(`${t.url}/docs/api`)).text();
    assert.ok(!page.includes('/admin/'));
    const admin = await getDoc(t.platform.adminUrl);
    assert.ok(admin.doc.paths['/admin/apps']?.['post']);
    assert.ok(admin.doc.paths[gatewayPathOf('lc.trade.query')]);
  });
});
