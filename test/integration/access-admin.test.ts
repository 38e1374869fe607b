import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import { api, hospitalWithData, insertDifference, operatorWithToken } from '../support/access.js';

/**
 * The admin API with roles and hospital scope: personal operator tokens see and change only their hospitals
 * (another hospital's app, notification, report or difference answers 404 like a missing one, lists are
 * filtered), a role without the permission gets 403 ADMIN_FORBIDDEN, revoked / expired / disabled tokens get
 * 401, the admin token still sees everything, and every write is audited.
 */
describe('admin API: roles, hospital scope and personal tokens', () => {
  let t: TestPlatform;
  let b: Awaited<ReturnType<typeof hospitalWithData>>;
  let aOrder: string;
  let diffA: number;
  let diffB: number;
  let itA: string;
  let finA: string;
  let csA: string;

  before(async () => {
    t = await startTestPlatform();
    b = await hospitalWithData(t, '乙医院');
    // The test app is hospital A.
    aOrder = 'MZ-A-ORDER-0001';
    diffA = await insertDifference(t, t.appId, aOrder);
    diffB = await insertDifference(t, b.appId, b.outTradeNo);
    itA = await operatorWithToken(t, 'it.a', 'hospital_it', [t.appId]);
    finA = await operatorWithToken(t, 'fin.a', 'finance', [t.appId]);
    csA = await operatorWithToken(t, 'cs.a', 'cashier_supervisor', [t.appId]);
  });
  after(async () => {
    await t?.close();
  });

  it('whoami tells the token’s operator, role and hospitals; the admin token is the platform admin', async () => {
    const me = await api(t.url, finA, 'GET', '/admin/whoami');
    assert.equal(me.status, 200, me.text);
    assert.deepEqual(me.data, {
      username: 'fin.a',
      display_name: '测试 fin.a',
      role: 'finance',
      apps: [t.appId],
      via: 'token',
    });
    const admin = await t.admin('GET', '/admin/whoami');
    assert.equal(admin.data['role'], 'platform_admin');
    assert.equal(admin.data['apps'], 'all');
    assert.equal(admin.data['via'], 'admin-token');
  });

  it('apps: a scoped token lists only its hospitals and another hospital’s app is 404 like a missing one', async () => {
    const list = await api(t.url, itA, 'GET', '/admin/apps');
    assert.equal(list.status, 200, list.text);
    assert.deepEqual(
      (list.data as unknown as Array<{ app_id: string }>).map((x) => x.app_id),
      [t.appId],
    );
    const all = await t.admin('GET', '/admin/apps');
    const allIds = (all.data as unknown as Array<{ app_id: string }>).map((x) => x.app_id);
    assert.ok(allIds.includes(b.appId) && allIds.includes(t.appId), 'the admin token sees every hospital');

    const other = await api(t.url, itA, 'GET', `/admin/apps/${b.appId}/channels`);
    const missing = await api(t.url, itA, 'GET', '/admin/apps/NO_SUCH_APP/channels');
    assert.equal(other.status, 404);
    assert.deepEqual(other.data, missing.data, 'another hospital answers exactly like a missing app');
    assert.equal((await api(t.url, itA, 'GET', `/admin/apps/${t.appId}/channels`)).status, 200);
    assert.equal((await t.admin('GET', `/admin/apps/${b.appId}/channels`)).status, 200);
  });

  it('roles: hospital_it cannot create an app or change another role’s settings (403 ADMIN_FORBIDDEN)', async () => {
    const create = await api(t.url, itA, 'POST', '/admin/apps', { name: '不该有的医院' });
    assert.equal(create.status, 403, create.text);
    assert.equal(create.data['code'], 'ADMIN_FORBIDDEN');
    assert.match(String(create.data['message']), /无权限.* \/ forbidden/);
    const apps = await t.admin('GET', '/admin/apps');
    assert.ok(!(apps.data as unknown as Array<{ name: string }>).some((a) => a.name === '不该有的医院'));
    for (const [token, method, path, body] of [
      [itA, 'GET', '/admin/operators', undefined],
      [itA, 'POST', '/admin/keys/rotate', undefined],
      [itA, 'GET', `/admin/reports/day?date=2026-11-24&app=${t.appId}`, undefined],
      [finA, 'GET', '/admin/notifications', undefined],
      [finA, 'PUT', `/admin/apps/${t.appId}/status`, { status: 'disabled' }],
      [csA, 'GET', `/admin/apps/${t.appId}/channels`, undefined],
      [csA, 'POST', `/admin/operators/cs.a/tokens`, { label: 'more' }],
    ] as const) {
      const r = await api(t.url, token, method, path, body);
      assert.equal(r.status, 403, `${method} ${path}: ${r.text}`);
      assert.equal(r.data['code'], 'ADMIN_FORBIDDEN');
    }
    assert.equal((await t.admin('GET', '/admin/apps')).status, 200);
    const still = (await t.admin('GET', '/admin/apps')).data as unknown as Array<{
      app_id: string;
      status: string;
    }>;
    assert.equal(
      still.find((a) => a.app_id === t.appId)?.status,
      'active',
      'the refused change did not happen',
    );
  });

  it('notifications: a scoped token lists only its hospitals and cannot resend another hospital’s', async () => {
    const admin = await t.admin('GET', '/admin/notifications');
    const adminIds = (admin.data as unknown as Array<{ notify_id: string }>).map((n) => n.notify_id);
    assert.ok(adminIds.includes(b.notifyId), 'the admin token sees hospital B’s notification');

    const mine = await api(t.url, itA, 'GET', '/admin/notifications');
    assert.equal(mine.status, 200, mine.text);
    const rows = mine.data as unknown as Array<{ notify_id: string; app_id: string }>;
    assert.ok(
      rows.every((n) => n.app_id === t.appId),
      JSON.stringify(rows),
    );
    assert.ok(!rows.some((n) => n.notify_id === b.notifyId));
    const byApp = await api(t.url, itA, 'GET', `/admin/notifications?app_id=${b.appId}`);
    assert.equal(byApp.status, 404);
    assert.equal(byApp.data['code'], 'APP_NOT_FOUND');

    const resend = await api(t.url, itA, 'POST', `/admin/notifications/${b.notifyId}/resend`);
    assert.equal(resend.status, 404, resend.text);
    const row = await t.store.db
      .selectFrom('notifications')
      .select('status')
      .where('notify_id', '=', b.notifyId)
      .executeTakeFirstOrThrow();
    assert.equal(row.status, 'FAILED', 'the other hospital’s notification was not touched');
    const ok = await t.admin('POST', `/admin/notifications/${b.notifyId}/resend`);
    assert.equal(ok.status, 200);
  });

  it('reports and differences: another hospital’s are 404, its list is never shown', async () => {
    const report = await api(t.url, finA, 'GET', `/admin/reports/day?date=2026-11-24&app=${b.appId}`);
    assert.equal(report.status, 404, report.text);
    const own = await api(t.url, finA, 'GET', `/admin/reports/day?date=2026-11-24&app=${t.appId}`);
    assert.equal(own.status, 200, own.text);
    // Without app: a finance operator of one hospital gets that hospital's report, never all together.
    const implicit = await api(t.url, finA, 'GET', '/admin/reports/day?date=2026-11-24&format=csv');
    assert.equal(implicit.status, 200, implicit.text);
    assert.ok(!implicit.text.includes('乙医院'), 'hospital B is not in the CSV');

    const list = await api(
      t.url,
      finA,
      'GET',
      `/admin/reconciliation/differences?date=2026-11-24&app=${b.appId}`,
    );
    assert.equal(list.status, 404);
    const mine = await api(
      t.url,
      finA,
      'GET',
      `/admin/reconciliation/differences?date=2026-11-24&app=${t.appId}`,
    );
    assert.equal(mine.status, 200, mine.text);
    assert.deepEqual(
      (mine.data['differences'] as Array<{ id: number }>).map((d) => d.id),
      [diffA],
    );
    const one = await api(t.url, finA, 'GET', `/admin/reconciliation/differences/${diffB}`);
    const none = await api(t.url, finA, 'GET', '/admin/reconciliation/differences/999999');
    assert.equal(one.status, 404);
    assert.deepEqual(one.data, none.data, 'like a missing difference');
    const resolve = await api(t.url, finA, 'POST', `/admin/reconciliation/differences/${diffB}/resolve`, {
      note: '越权处理',
    });
    assert.equal(resolve.status, 404);
    const d = await t.admin('GET', `/admin/reconciliation/differences/${diffB}`);
    assert.equal(d.data['state'], 'OPEN', 'hospital B’s difference is untouched');
    assert.ok(JSON.stringify(d.data).includes(b.outTradeNo), 'the admin token sees it');

    // Its own difference: resolved in the operator's own name (no `by` needed, none can be forged).
    const mineResolved = await api(
      t.url,
      finA,
      'POST',
      `/admin/reconciliation/differences/${diffA}/resolve`,
      {
        note: '已核实',
        by: 'someone.else',
      },
    );
    assert.equal(mineResolved.status, 200, mineResolved.text);
    assert.equal(mineResolved.data['resolved_by'], 'admin:fin.a');
  });

  it('revoked, expired and disabled: the token gets 401 ADMIN_AUTH', async () => {
    const token = await operatorWithToken(t, 'it.rev', 'hospital_it', [t.appId]);
    assert.equal((await api(t.url, token, 'GET', '/admin/whoami')).status, 200);
    const list = await t.admin('GET', '/admin/operators/it.rev/tokens');
    const tokens = list.data['tokens'] as Array<{ id: string; state: string; last_used_at: string | null }>;
    assert.equal(tokens.length, 1);
    const [first] = tokens;
    assert.ok(first?.last_used_at, 'last use is recorded');
    assert.ok(
      !JSON.stringify(list.data).includes(token.split('_')[2] ?? 'x'),
      'the list never shows the secret',
    );
    const del = await t.admin('DELETE', `/admin/operators/it.rev/tokens/${first?.id ?? ''}`);
    assert.equal(del.status, 200, JSON.stringify(del.data));
    const after = await api(t.url, token, 'GET', '/admin/whoami');
    assert.equal(after.status, 401);
    assert.equal(after.data['code'], 'ADMIN_AUTH');

    const expiring = await operatorWithToken(t, 'it.exp', 'hospital_it', [t.appId], { expires_in_days: 1 });
    assert.equal((await api(t.url, expiring, 'GET', '/admin/whoami')).status, 200);
    t.clock.advance(86_400_000 + 1000);
    assert.equal((await api(t.url, expiring, 'GET', '/admin/whoami')).status, 401, 'expired');

    const disabled = await operatorWithToken(t, 'it.off', 'hospital_it', [t.appId]);
    assert.equal((await api(t.url, disabled, 'GET', '/admin/whoami')).status, 200);
    assert.equal(
      (await t.admin('PUT', '/admin/operators/it.off/status', { status: 'disabled' })).status,
      200,
    );
    assert.equal((await api(t.url, disabled, 'GET', '/admin/whoami')).status, 401, 'operator disabled');

    // A forged token of the right shape, and one with a real id but another secret.
    const forged = `hpo_${first?.id ?? 'AAAAAAAAAAAA'}_${'A'.repeat(43)}`;
    assert.equal((await api(t.url, forged, 'GET', '/admin/whoami')).status, 401);
  });

  it('grants change what a token sees at once; a platform admin is always every hospital', async () => {
    const token = await operatorWithToken(t, 'it.grant', 'hospital_it', [t.appId]);
    assert.equal((await api(t.url, token, 'GET', `/admin/apps/${b.appId}/channels`)).status, 404);
    const grant = await t.admin('PUT', '/admin/operators/it.grant/apps', { apps: [t.appId, b.appId] });
    assert.equal(grant.status, 200, JSON.stringify(grant.data));
    assert.deepEqual(grant.data['apps'], [t.appId, b.appId].sort());
    assert.equal((await api(t.url, token, 'GET', `/admin/apps/${b.appId}/channels`)).status, 200);

    const unknown = await t.admin('PUT', '/admin/operators/it.grant/apps', { apps: ['NO_SUCH_APP'] });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.data['code'], 'INVALID_FIELD.apps');

    const role = await t.admin('PUT', '/admin/operators/it.grant/role', { role: 'finance' });
    assert.equal(role.status, 200);
    assert.equal(role.data['role'], 'finance');
    assert.equal(
      (await api(t.url, token, 'GET', `/admin/apps/${b.appId}/channels`)).status,
      403,
      'no channels.read',
    );

    assert.equal(
      (await t.admin('PUT', '/admin/operators/it.grant/role', { role: 'platform_admin' })).status,
      200,
    );
    const who = await api(t.url, token, 'GET', '/admin/whoami');
    assert.equal(who.data['apps'], 'all');
    const narrow = await t.admin('PUT', '/admin/operators/it.grant/apps', { apps: [t.appId] });
    assert.equal(narrow.status, 400, 'a platform admin cannot be narrowed');
    assert.equal((await t.admin('PUT', '/admin/operators/it.grant/role', { role: 'emperor' })).status, 400);
    // Fails closed: creating an operator with a role but no hospitals named is refused, nothing is created.
    const unnamed = await t.admin('POST', '/admin/operators', {
      username: 'it.unnamed',
      display_name: '未授权',
      password: 'a-long-enough-password',
      role: 'hospital_it',
    });
    assert.equal(unnamed.status, 400);
    assert.equal(unnamed.data['code'], 'INVALID_FIELD.apps');
    const ops = (await t.admin('GET', '/admin/operators')).data as unknown as Array<{ username: string }>;
    assert.ok(!ops.some((o) => o.username === 'it.unnamed'), 'nothing created');
  });

  it('an operator lists and revokes only their own tokens; only a platform admin manages others’', async () => {
    const own = await api(t.url, itA, 'GET', '/admin/operators/it.a/tokens');
    assert.equal(own.status, 200, own.text);
    const others = await api(t.url, itA, 'GET', '/admin/operators/fin.a/tokens');
    assert.equal(others.status, 403);
    const finTokens = (await t.admin('GET', '/admin/operators/fin.a/tokens')).data['tokens'] as Array<{
      id: string;
    }>;
    const steal = await api(t.url, itA, 'DELETE', `/admin/operators/fin.a/tokens/${finTokens[0]?.id ?? ''}`);
    assert.equal(steal.status, 403);
    // A token id of someone else under one's own name: not found, nothing revoked.
    const sideways = await api(
      t.url,
      itA,
      'DELETE',
      `/admin/operators/it.a/tokens/${finTokens[0]?.id ?? ''}`,
    );
    assert.equal(sideways.status, 404);
    assert.equal((await api(t.url, finA, 'GET', '/admin/whoami')).status, 200, 'fin.a’s token still works');
  });

  it('every admin API write is audited with actor, via, action, app and outcome — never a secret', async () => {
    const c = await t.admin('POST', '/admin/operators/cs.a/tokens', { label: 'audit check' });
    assert.equal(c.status, 201);
    const secret = String(c.data['token']);
    await api(t.url, itA, 'POST', '/admin/apps', { name: '审计' });
    await api(t.url, itA, 'POST', `/admin/notifications/${b.notifyId}/resend`);
    const rows = await t.platform.deps.audit.list({ apps: null, limit: 500 });
    const text = JSON.stringify(rows);
    assert.ok(!text.includes(secret), 'no token in the audit trail');
    assert.ok(!text.includes(secret.split('_')[2] ?? 'x'));
    assert.ok(!text.includes('access test password'), 'no password in the audit trail');
    const refused = rows.find((r) => r.action === 'app.create' && r.actor === 'it.a');
    assert.ok(refused, text);
    assert.equal(refused.via, 'token');
    assert.equal(refused.role, 'hospital_it');
    assert.equal(refused.outcome, 'refused 403');
    const created = rows.find((r) => r.action === 'token.create' && r.actor === 'admin');
    assert.ok(created);
    assert.equal(created.via, 'admin-token');
    assert.equal(created.outcome, 'ok');
    const resend = rows.find((r) => r.action === 'notify.resend' && r.actor === 'it.a');
    assert.ok(resend);
    assert.equal(resend.app_id, b.appId);
    assert.equal(resend.outcome, 'refused 404');
    const roleChange = rows.find((r) => r.action === 'operator.role' && r.outcome === 'ok');
    assert.ok(roleChange, 'role changes are audited');
    // Reads are not written to the audit trail.
    assert.ok(!rows.some((r) => r.action.startsWith('admin.get')));
  });
});
