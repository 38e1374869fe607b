import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import { GATEWAY_METHODS, GatewayErrors } from '../../src/http/gateway/routes.js';
import { GATEWAY_CONTRACT, ENVELOPE_PARAMS } from '../../src/http/gateway/contract.js';
import { BizReader } from '../../src/http/gateway/biz.js';
import { ADMIN_SCHEMAS, applyAdminSchema, firstViolation } from '../../src/http/admin/schemas.js';
import { registerAdminRoutes } from '../../src/http/admin/routes.js';
import { buildOpenApiDocument, gatewayPathOf, openApiPath } from '../../src/http/openapi/document.js';
import { contractCodes, gatewaySubCodes } from '../../src/http/openapi/codes.js';
import { Errors, HospayError } from '../../src/domain/errors.js';
import type { ServiceDeps } from '../../src/services/deps.js';
import type { ReconcileDeps } from '../../src/reconcile/deps.js';
import { checkOpenApi31 } from '../support/openapi.js';

type Doc = Record<string, unknown> & {
  paths: Record<string, Record<string, Record<string, unknown>>>;
  'x-hospay-sub-codes': { sub_code: string; code: string; zh: string; en: string }[];
};
const doc = (admin: boolean) =>
  buildOpenApiDocument({ publicBaseUrl: 'https://pay.example-hospital.cn', admin }) as Doc;

/** The admin routes as Fastify registers them (a throwaway instance; handlers never run). */
async function registeredAdminRoutes(): Promise<string[]> {
  const app: FastifyInstance = Fastify();
  const routes: string[] = [];
  app.addHook('onRoute', (r) => {
    for (const m of [r.method].flat()) if (m !== 'HEAD') routes.push(`${m} ${r.url}`);
  });
  const fake = new Proxy({}, { get: () => new Proxy(() => undefined, { get: () => undefined }) });
  await registerAdminRoutes(app, fake as ServiceDeps, 'x'.repeat(32), fake as ReconcileDeps);
  await app.ready();
  await app.close();
  return routes;
}

describe('OpenAPI: the gateway contract', () => {
  it('every registered gateway method has a contract, and every contract a method', () => {
    assert.deepEqual(Object.keys(GATEWAY_CONTRACT).sort(), Object.keys(GATEWAY_METHODS).sort());
  });

  it('every gateway method is a documented POST with its biz_content schema and its answer', () => {
    const d = doc(false);
    for (const [method, m] of Object.entries(GATEWAY_CONTRACT)) {
      const op = d.paths[gatewayPathOf(method)]?.['post'];
      assert.ok(op, method);
      const text = JSON.stringify(op);
      for (const p of Object.keys(ENVELOPE_PARAMS)) assert.ok(text.includes(`"${p}"`), `${method}: ${p}`);
      const components = (d['components'] as { schemas: Record<string, { properties: object }> }).schemas;
      const biz = components[`${pascal(method)}Biz`];
      assert.ok(biz, `${method}: biz schema`);
      assert.deepEqual(Object.keys(biz.properties).sort(), Object.keys(m.fields).sort());
      const answer = components[`${pascal(method)}Answer`];
      assert.ok(answer);
      for (const f of Object.keys(m.answer)) assert.ok(f in answer.properties, `${method} answers ${f}`);
    }
  });

  it('the reader takes its limits from the contract, and refuses to read a field the contract does not describe', () => {
    const fields = GATEWAY_CONTRACT['lc.trade.h5.pay']!.fields;
    const long = 'x'.repeat(fields['subject']!.max + 1);
    assert.throws(
      () => new BizReader({ subject: long }, fields).req('subject'),
      (e: unknown) => e instanceof HospayError && e.code === 'INVALID_FIELD.subject' && /128/.test(e.en),
    );
    assert.equal(new BizReader({ subject: ' 门诊 ' }, fields).req('subject'), '门诊');
    assert.throws(() => new BizReader({ secret: 'x' }, fields).opt('secret'), /not described/);
    assert.throws(() => new BizReader({ subject: 'x' }, fields).amountField('subject'), /not described/);
    assert.throws(
      () => new BizReader({}, fields).req('out_trade_no'),
      (e: unknown) => e instanceof HospayError && e.code === 'MISSING_FIELD.out_trade_no',
    );
  });
});

describe('OpenAPI: every error code the gateway can answer is documented', () => {
  const documented = () => new Set(doc(false)['x-hospay-sub-codes'].map((c) => c.sub_code));

  it('the transport and authentication codes (GatewayErrors), with their gateway code and messages', () => {
    const d = documented();
    const all = doc(false)['x-hospay-sub-codes'];
    for (const [name, make] of Object.entries(GatewayErrors)) {
      const e = (make as (a: string & number) => HospayError)('app_id' as string & number);
      assert.ok(d.has(e.code), `${name}: ${e.code}`);
    }
    for (const p of Object.keys(ENVELOPE_PARAMS)) assert.ok(d.has(GatewayErrors.missing(p).code), p);
    const sig = all.find((c) => c.sub_code === 'isv.invalid-signature');
    assert.deepEqual(sig, {
      sub_code: 'isv.invalid-signature',
      code: '40002',
      zh: '验签失败',
      en: 'the signature does not verify',
      stage: 'request',
    });
  });

  it('the business and system codes of the error vocabulary and of the services', () => {
    const d = documented();
    // Offline-door-only codes: the AccessToken, the barcode's AuthCode, REPEATED_FIELD of the XML head.
    const offlineOnly = new Set(['ACCESS_TOKEN_INVALID', 'INVALID_FIELD.AuthCode', 'REPEATED_FIELD.x']);
    for (const [name, make] of Object.entries(Errors)) {
      const e = (make as (...a: unknown[]) => HospayError)('x', 'x', 'x');
      const code = e.code.replace(/\.x$/, '.<field>');
      if (offlineOnly.has(e.code)) continue;
      assert.ok(d.has(code), `Errors.${name}: ${code}`);
    }
    // Literal codes written by the services the gateway calls.
    const files = ['medicare', 'cancel', 'refund', 'h5-pay', 'query', 'qr-pay'].map((f) =>
      fs.readFileSync(`src/services/${f}.ts`, 'utf8'),
    );
    const literal = /(?:new HospayError\(|\bbad\()\s*'([A-Z][A-Z0-9_.]+)'/g;
    let found = 0;
    for (const text of files)
      for (const m of text.matchAll(literal)) {
        found++;
        assert.ok(d.has(m[1]!), `service code ${m[1]}`);
      }
    assert.ok(found >= 9, `found ${found} literal codes`);
    for (const c of contractCodes()) assert.ok(d.has(c), `a method names ${c}`);
  });

  it('each code has its gateway code by kind and a bilingual message', () => {
    for (const c of gatewaySubCodes()) {
      assert.match(c.code, /^(40001|40002|40004|20000|20001)$/, c.sub_code);
      assert.ok(c.zh && c.en, c.sub_code);
    }
    assert.equal(gatewaySubCodes().find((c) => c.sub_code === 'REFUND_PROCESSING')?.code, '20000');
    assert.equal(gatewaySubCodes().find((c) => c.sub_code === 'TRADE_NOT_EXIST')?.code, '40004');
    assert.equal(gatewaySubCodes().find((c) => c.sub_code === 'MISSING_FIELD.<field>')?.code, '40001');
  });
});

describe('OpenAPI: the admin API', () => {
  it('every registered admin route has a schema, and is in the document with bearer auth', async () => {
    const routes = await registeredAdminRoutes();
    assert.ok(routes.length >= 30, `${routes.length} routes`);
    const d = doc(true);
    for (const r of routes) {
      assert.ok(ADMIN_SCHEMAS[r], `no schema for ${r}`);
      const [verb, path] = r.split(' ') as [string, string];
      const op = d.paths[openApiPath(path)]?.[verb.toLowerCase()];
      assert.ok(op, `not documented: ${r}`);
      assert.deepEqual(op['security'], [{ adminToken: [] }]);
    }
    for (const key of Object.keys(ADMIN_SCHEMAS))
      assert.ok(routes.includes(key), `schema without a route: ${key}`);
  });

  it('the public document has no admin path; the admin one names the bearer scheme', () => {
    assert.ok(!Object.keys(doc(false).paths).some((p) => p.startsWith('/admin')));
    assert.ok(!JSON.stringify(doc(false)).includes('adminToken'));
    const admin = doc(true) as Doc & { components: { securitySchemes: Record<string, { scheme: string }> } };
    assert.equal(admin.components.securitySchemes['adminToken']?.scheme, 'bearer');
  });

  it('both documents are structurally valid OpenAPI 3.1', () => {
    assert.deepEqual(checkOpenApi31(doc(false)), []);
    assert.deepEqual(checkOpenApi31(doc(true)), []);
  });

  it('the structural check finds real faults (a broken $ref, a path parameter not declared, a duplicate id)', () => {
    const broken = structuredClone(doc(true));
    const op = broken.paths['/admin/apps/{id}/status']!['put']!;
    op['parameters'] = [];
    op['operationId'] = 'admin_get_apps';
    (broken.paths[gatewayPathOf('lc.trade.query')]!['post']!['responses'] as Record<string, unknown>)['200'] =
      {
        description: 'x',
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Nope' } } },
      };
    const problems = checkOpenApi31(broken).join('\n');
    assert.match(problems, /Nope/);
    assert.match(problems, /\{id\}/);
    assert.match(problems, /admin_get_apps/);
  });
});

describe('admin schemas validate requests (through Fastify)', () => {
  async function withRoute(key: string) {
    const app = Fastify();
    app.addHook('onRoute', applyAdminSchema);
    app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) =>
      reply.code(err.statusCode ?? 500).send({ code: err.code, message: err.message }),
    );
    const [verb, path] = key.split(' ') as [string, string];
    app.route({ method: verb as 'POST', url: path, handler: async () => ({ reached: true }) });
    await app.ready();
    return app;
  }

  it('a violation is answered 400 INVALID_FIELD.<field> with the bilingual message, before the handler', async () => {
    const app = await withRoute('POST /admin/apps');
    const bad = await app.inject({ method: 'POST', url: '/admin/apps', payload: { name: 5 } });
    assert.equal(bad.statusCode, 400);
    assert.deepEqual(bad.json(), {
      code: 'INVALID_FIELD.name',
      message: '名称必填，最多 64 字 / name is required, at most 64 characters',
    });
    const missing = await app.inject({ method: 'POST', url: '/admin/apps', payload: {} });
    assert.equal(missing.json().code, 'INVALID_FIELD.name');
    const blank = await app.inject({ method: 'POST', url: '/admin/apps', payload: { name: '   ' } });
    assert.equal(blank.statusCode, 400);
    const hosp = await app.inject({
      method: 'POST',
      url: '/admin/apps',
      payload: { name: 'A', hospital_id: 7 },
    });
    assert.equal(hosp.json().code, 'INVALID_FIELD.hospital_id');
    const good = await app.inject({ method: 'POST', url: '/admin/apps', payload: { name: 'A', extra: 1 } });
    assert.deepEqual(good.json(), { reached: true });
    await app.close();
  });

  it('query, path, numbers and x-code: notifications limit, a difference id, a token lifetime', async () => {
    const n = await withRoute('GET /admin/notifications');
    assert.equal((await n.inject('/admin/notifications?limit=501')).json().code, 'INVALID_FIELD.limit');
    assert.equal((await n.inject('/admin/notifications?limit=0')).json().code, 'INVALID_FIELD.limit');
    assert.equal((await n.inject('/admin/notifications?status=nope')).json().code, 'INVALID_FIELD.status');
    assert.deepEqual((await n.inject('/admin/notifications?limit=500&status=failed')).json(), {
      reached: true,
    });
    assert.deepEqual((await n.inject('/admin/notifications?limit=&status=')).json(), { reached: true });
    await n.close();
    const d = await withRoute('GET /admin/reconciliation/differences/:id');
    assert.equal((await d.inject('/admin/reconciliation/differences/0')).json().code, 'INVALID_FIELD.id');
    assert.equal((await d.inject('/admin/reconciliation/differences/1234567890123456')).statusCode, 400);
    assert.deepEqual((await d.inject('/admin/reconciliation/differences/007')).json(), { reached: true });
    await d.close();
    const tk = await withRoute('POST /admin/operators/:username/tokens');
    const days = await tk.inject({
      method: 'POST',
      url: '/admin/operators/ann/tokens',
      payload: { label: 'ci', expires_in_days: 3661 },
    });
    assert.equal(days.json().code, 'INVALID_FIELD.expires_in_days');
    const ok = await tk.inject({
      method: 'POST',
      url: '/admin/operators/ann/tokens',
      payload: { label: 'ci', expires_in_days: 30 },
    });
    assert.deepEqual(ok.json(), { reached: true });
    await tk.close();
    // x-code: a property reported under another field's code, as a handler did.
    const e = firstViolation(
      {
        type: 'object',
        properties: { b: { type: 'string', 'x-code': 'INVALID_FIELD.a', 'x-message': 'm' } },
      },
      { b: 1 },
    );
    assert.equal(e?.code, 'INVALID_FIELD.a');
  });

  it('documentation-only properties are not enforced (the handler keeps its own order and messages)', () => {
    const s = ADMIN_SCHEMAS['PUT /admin/apps/:id/public-key']!.body as Record<string, unknown>;
    assert.equal(firstViolation(s, { public_key: 5, legacy_sign: 'yes' }), null);
    // Per-app writes answer another hospital's app 404 before looking at the body: not enforced here.
    for (const key of [
      'PUT /admin/apps/:id/status',
      'PUT /admin/apps/:id/channel-map',
      'PUT /admin/apps/:id/categories',
    ])
      assert.equal(firstViolation(ADMIN_SCHEMAS[key]!.body as Record<string, unknown>, {}), null, key);
  });
});

function pascal(method: string): string {
  return method
    .split('.')
    .map((p) => (p[0] ?? '').toUpperCase() + p.slice(1))
    .join('');
}
