import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TEST_DB } from '../support/db.js';
import { HospayHome, randomPort, type HospayProcess } from '../support/spawn.js';
import { api } from '../support/access.js';

/**
 * `hospay operator` with roles, hospital grants and personal tokens: straight on the database, then through
 * the running server's admin API (the embedded database is the server's); the printed token works on the
 * admin API with exactly the operator's scope, and revoking it ends it.
 */
describe(`hospay operator: roles, grants, tokens (CLI, ${TEST_DB})`, () => {
  let home: HospayHome;
  let server: HospayProcess | null = null;
  const port = randomPort();
  const base = `http://127.0.0.1:${port}`;
  let appA = '';
  let appB = '';

  before(async () => {
    home = await HospayHome.create('hospay-access-cli', { env: { LOG_LEVEL: 'info', HOSPAY_JOBS: 'off' } });
  });
  after(async () => {
    await server?.stop('SIGTERM');
    await home.close();
  });

  // Generous: each command is a process of its own, and the machine may be busy.
  const run = (args: string[], input?: string) =>
    home.run(args, { timeout: 240_000, ...(input === undefined ? {} : { input }) });
  const appOf = (name: string) => {
    const r = run(['app', 'create', '--name', name, '--json']);
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { app_id: string }).app_id;
  };

  it('create with a role and grants; list shows them; bad roles, unknown apps and bad flags are refused', () => {
    appA = appOf('甲医院');
    appB = appOf('乙医院');
    const c = run([
      'operator',
      'create',
      '--username',
      'it.a',
      '--name',
      '信息科',
      '--role',
      'hospital_it',
      '--apps',
      appA,
      '--json',
    ]);
    assert.equal(c.status, 0, c.stderr);
    const view = JSON.parse(c.stdout) as { role: string; apps: string[] };
    assert.equal(view.role, 'hospital_it');
    assert.deepEqual(view.apps, [appA]);
    const list = run(['operator', 'list']);
    assert.match(list.stdout, new RegExp(`it\\.a {2}active {2}信息科 {2}hospital_it {2}${appA}`));

    const badRole = run(['operator', 'create', '--username', 'x.y', '--name', 'x', '--role', 'king']);
    assert.equal(badRole.status, 2);
    assert.match(badRole.stderr, /--role must be one of/);
    // Fails closed: a role without the hospitals named is a usage error, not "every hospital".
    const noApps = run(['operator', 'create', '--username', 'x.w', '--name', 'x', '--role', 'hospital_it']);
    assert.equal(noApps.status, 2, noApps.stderr);
    assert.match(noApps.stderr, /--role needs --apps/);
    const unknownApp = run(['operator', 'create', '--username', 'x.y', '--name', 'x', '--apps', 'NOPE']);
    assert.equal(unknownApp.status, 1, unknownApp.stderr);
    assert.match(unknownApp.stderr, /unknown app ids: NOPE/);
    assert.equal(
      run(['operator', 'create', '--username', 'x.z', '--name', 'x', '--apps', appA, '--all-apps']).status,
      2,
    );
    assert.ok(!run(['operator', 'list']).stdout.includes('x.y'), 'nothing half-created');

    const grant = run(['operator', 'grant', '--username', 'it.a', '--apps', appB, '--json']);
    assert.equal(grant.status, 0, grant.stderr);
    assert.deepEqual((JSON.parse(grant.stdout) as { apps: string[] }).apps, [appA, appB].sort());
    const revoke = run(['operator', 'revoke', '--username', 'it.a', '--apps', appB, '--json']);
    assert.deepEqual((JSON.parse(revoke.stdout) as { apps: string[] }).apps, [appA]);
    const role = run(['operator', 'role', '--username', 'it.a', '--role', 'finance']);
    assert.equal(role.status, 0, role.stderr);
    assert.match(run(['operator', 'list']).stdout, /it\.a {2}active {2}信息科 {2}finance/);
    assert.equal(run(['operator', 'role', '--username', 'it.a', '--role', 'hospital_it']).status, 0);
  });

  it('token create (shown once) works on the running server with the operator’s scope; revoke ends it', async () => {
    const local = run(['operator', 'token', 'create', '--username', 'it.a', '--label', '脚本', '--json']);
    assert.equal(local.status, 0, local.stderr);
    const localToken = (JSON.parse(local.stdout) as { token: string }).token;
    assert.match(localToken, /^hpo_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}$/);

    server = await home.start(['serve', '--port', String(port)]);
    const me = await api(base, localToken, 'GET', '/admin/whoami');
    assert.equal(me.status, 200, me.text);
    assert.equal(me.data['username'], 'it.a');
    assert.deepEqual(me.data['apps'], [appA]);
    const apps = await api(base, localToken, 'GET', '/admin/apps');
    assert.deepEqual(
      (apps.data as unknown as Array<{ app_id: string }>).map((a) => a.app_id),
      [appA],
    );
    assert.equal((await api(base, localToken, 'GET', `/admin/apps/${appB}/channels`)).status, 404);

    // Through the running server (it holds the embedded database).
    const remote = run([
      'operator',
      'token',
      'create',
      '--username',
      'it.a',
      '--label',
      'ci',
      '--days',
      '30',
    ]);
    assert.equal(remote.status, 0, remote.stderr);
    const token = /token: (hpo_\S+)/.exec(remote.stdout)?.[1] ?? '';
    assert.ok(token, remote.stdout);
    assert.match(remote.stdout, /shown only this once/);
    assert.equal((await api(base, token, 'GET', '/admin/whoami')).status, 200);
    const created = run([
      'operator',
      'create',
      '--username',
      'fin.b',
      '--name',
      '财务乙',
      '--role',
      'finance',
      '--apps',
      appB,
      '--json',
    ]);
    assert.equal(created.status, 0, created.stderr);
    assert.deepEqual((JSON.parse(created.stdout) as { apps: string[] }).apps, [appB]);

    const list = run(['operator', 'token', 'list', '--username', 'it.a', '--json']);
    assert.equal(list.status, 0, list.stderr);
    const tokens = JSON.parse(list.stdout) as Array<{ id: string; label: string; state: string }>;
    assert.equal(tokens.length, 2);
    assert.ok(!list.stdout.includes(token.split('_')[2] ?? 'x'), 'no secret in the list');
    const id = tokens.find((x) => x.label === 'ci')?.id ?? '';
    const rev = run(['operator', 'token', 'revoke', '--username', 'it.a', '--id', id]);
    assert.equal(rev.status, 0, rev.stderr);
    assert.equal((await api(base, token, 'GET', '/admin/whoami')).status, 401, 'revoked');
    assert.equal(
      (await api(base, localToken, 'GET', '/admin/whoami')).status,
      200,
      'the other one still works',
    );
    assert.equal(
      run(['operator', 'token', 'revoke', '--username', 'it.a', '--id', id]).status,
      1,
      'already revoked',
    );
    assert.ok(!(server.out() ?? '').includes(token), 'the token never reached the server log');
    await server.stop('SIGTERM');
    server = null;
  });
});
