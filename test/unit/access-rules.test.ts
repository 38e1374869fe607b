import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_ROUTE_RULES, allowedBy } from '../../src/http/admin/access.js';
import { ADMIN_TOKEN_PRINCIPAL, PERMISSIONS, type Principal, type Role } from '../../src/domain/access.js';

const as = (role: Role): Principal => ({ username: 'u', displayName: 'u', role, apps: ['A'], via: 'token' });

describe('admin API route rules (http/admin/access.ts)', () => {
  it('every write has an audit action; every permission named exists', () => {
    for (const [key, rule] of Object.entries(ADMIN_ROUTE_RULES)) {
      const [method] = key.split(' ');
      if (method !== 'GET') assert.ok(rule.action, `${key} has no audit action`);
      if (rule.permission !== 'any' && rule.permission !== 'self')
        assert.ok((PERMISSIONS as readonly string[]).includes(rule.permission), key);
    }
  });

  it('a route without a rule is refused to everyone, even the admin token (fails closed)', () => {
    assert.equal(allowedBy(ADMIN_TOKEN_PRINCIPAL, undefined), false);
  });

  it('the roles of issue 15: who may create apps, change channels, read reports, manage operators', () => {
    const rule = (k: string) => ADMIN_ROUTE_RULES[k];
    const cases: Array<[string, Role, boolean]> = [
      ['POST /admin/apps', 'platform_admin', true],
      ['POST /admin/apps', 'hospital_it', false],
      ['POST /admin/apps', 'finance', false],
      ['GET /admin/apps/:id/channels', 'hospital_it', true],
      ['GET /admin/apps/:id/channels', 'cashier_supervisor', false],
      ['PUT /admin/apps/:id/channels/:channel', 'hospital_it', false],
      ['POST /admin/notifications/:notifyId/resend', 'hospital_it', true],
      ['POST /admin/notifications/:notifyId/resend', 'finance', false],
      ['GET /admin/reports/day', 'finance', true],
      ['GET /admin/reports/day', 'hospital_it', false],
      ['POST /admin/reconciliation/differences/:id/resolve', 'finance', true],
      ['POST /admin/reconciliation/differences/:id/resolve', 'cashier_supervisor', false],
      ['GET /admin/operators', 'finance', false],
      ['POST /admin/operators/:username/tokens', 'hospital_it', false],
      ['PUT /admin/operators/:username/apps', 'platform_admin', true],
      ['GET /admin/whoami', 'cashier_supervisor', true],
    ];
    for (const [key, role, expected] of cases)
      assert.equal(allowedBy(as(role), rule(key)), expected, `${role} ${key}`);
  });
});
