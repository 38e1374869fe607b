import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { startTestPlatform, type TestPlatform } from '../support/platform.js';
import {
  adminDeskUser,
  get,
  hiddenValue,
  post,
  secretOnce,
  type AdminDeskUser,
} from '../support/desk-admin.js';

/**
 * The platform admin's desk pages through HTTP: apps (created with the AccessToken shown once, gateway key,
 * enable/disable proven at the offline door, maker–checker, reissue), channels (scoped and read-only for
 * hospital IT, the switch validated like the admin API), operators (scoped creation, a password shown once).
 */
describe('desk: apps, channels and operators pages', () => {
  let t: TestPlatform;
  let admin: AdminDeskUser;
  let it1: AdminDeskUser;
  let otherApp: string;

  before(async () => {
    t = await startTestPlatform();
    otherApp = (await t.platform.deps.apps.create({ name: '第二医院', hospitalId: 'H002' })).appId;
    admin = await adminDeskUser(t, 'plat.wang', 'platform_admin', 'all');
    it1 = await adminDeskUser(t, 'it.zhao', 'hospital_it', [t.appId]);
  });
  after(async () => {
    await t?.close();
  });

  /** The offline door's answer to the token: ACCESS_TOKEN_INVALID when refused. */
  const doorSubCode = async (token: string) =>
    (await t.offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: 'MZNOSUCHORDER1' }, { token })).rr.SubCode;

  async function createApp(name: string): Promise<{ appId: string; token: string; form: string }> {
    const page = await get(t, admin, '/desk/apps');
    assert.equal(page.status, 200);
    const form = hiddenValue(page.text, 'form');
    assert.match(form, /^[A-Za-z0-9_-]{16,}$/);
    const r = await post(t, admin, '/desk/apps', { name, hospital_id: 'H900', form });
    assert.equal(r.status, 201, r.text.slice(0, 500));
    const token = secretOnce(r.text);
    const appId = /应用号 app_id<\/dt><dd>(hp[0-9a-f]{16})</.exec(r.text)?.[1] ?? '';
    assert.ok(token.length > 20 && appId, r.text.slice(0, 2000));
    return { appId, token, form };
  }

  it('the admin creates an app: its AccessToken is shown once, works at the door, and is never shown again', async () => {
    const { appId, token, form } = await createApp('新建医院甲');
    assert.notEqual(await doorSubCode(token), 'ACCESS_TOKEN_INVALID');
    const appPage = await get(t, admin, `/desk/apps/${appId}`);
    assert.equal(appPage.status, 200);
    assert.match(appPage.text, /新建医院甲/);
    assert.ok(!appPage.text.includes(token), 'the app page shows the token');
    assert.equal(appPage.headers.get('cache-control'), 'no-store');
    const list = await get(t, admin, '/desk/apps');
    assert.ok(list.text.includes(appId) && !list.text.includes(token));
    // The same form again (a reload, the back button): nothing created, no token.
    const again = await post(t, admin, '/desk/apps', { name: '新建医院甲', hospital_id: 'H900', form });
    assert.equal(again.status, 409);
    assert.equal(secretOnce(again.text), '');
    assert.ok(!again.text.includes(token));
    assert.equal((await t.platform.deps.apps.list()).filter((a) => a.name === '新建医院甲').length, 1);
    // Audited without the token; never logged.
    const audit = await t.platform.deps.audit.list({ apps: null, action: 'app.create', limit: 10 });
    assert.ok(audit.some((e) => e.app_id === appId && e.actor === 'plat.wang' && e.outcome === 'ok'));
    assert.ok(!JSON.stringify(audit).includes(token));
    assert.ok(!t.logs().includes(token), 'the token reached the logs');
  });

  it('a bad name is refused with the admin API message; nothing is created', async () => {
    const before = (await t.platform.deps.apps.list()).length;
    const page = await get(t, admin, '/desk/apps');
    const r = await post(t, admin, '/desk/apps', { name: '   ', form: hiddenValue(page.text, 'form') });
    assert.equal(r.status, 400);
    assert.match(r.text, /名称必填，最多 64 字 \/ name is required/);
    assert.equal((await t.platform.deps.apps.list()).length, before);
  });

  it('registers a 2048-bit public key; a private key and a 1024-bit key are refused with the messages', async () => {
    const { appId } = await createApp('公钥医院');
    const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const privatePem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const refused = await post(t, admin, `/desk/apps/${appId}/public-key`, { public_key: privatePem });
    assert.equal(refused.status, 400);
    assert.match(refused.text, /public_key 是私钥：请只提交公钥/);
    assert.ok(!refused.text.includes(privatePem.split('\n')[1] ?? 'x'), 'the private key is echoed');
    assert.equal((await t.platform.deps.apps.get(appId))?.public_key, null);

    const short = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const shortPem = short.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const tooShort = await post(t, admin, `/desk/apps/${appId}/public-key`, { public_key: shortPem });
    assert.equal(tooShort.status, 400);
    assert.match(tooShort.text, /短于 2048 位/);
    assert.equal((await t.platform.deps.apps.get(appId))?.public_key, null);

    const publicPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const ok = await post(t, admin, `/desk/apps/${appId}/public-key`, { public_key: publicPem });
    assert.equal(ok.status, 303, ok.text.slice(0, 500));
    assert.equal(ok.location, `/desk/apps/${appId}?done=key`);
    const stored = await t.platform.deps.apps.get(appId);
    assert.equal(stored?.public_key?.trim(), publicPem.trim());
    assert.equal(stored?.legacy_sign, false);
    assert.match((await get(t, admin, ok.location)).text, /网关公钥已登记/);

    // A legacy HIS: 1024 bits with legacy signing chosen.
    const legacy = await post(t, admin, `/desk/apps/${appId}/public-key`, {
      public_key: shortPem,
      legacy_sign: '1',
    });
    assert.equal(legacy.status, 303);
    assert.equal((await t.platform.deps.apps.get(appId))?.legacy_sign, true);
    const audit = await t.platform.deps.audit.list({
      apps: null,
      appId,
      action: 'app.public_key',
      limit: 10,
    });
    assert.deepEqual(audit.map((e) => e.outcome).reverse(), ['refused', 'refused', 'ok', 'ok']);
    assert.ok(!JSON.stringify(audit).includes('PRIVATE'));
  });

  it('disabling the app stops its AccessToken at the offline door; enabling restores it', async () => {
    const { appId, token } = await createApp('停用医院');
    assert.notEqual(await doorSubCode(token), 'ACCESS_TOKEN_INVALID');
    const off = await post(t, admin, `/desk/apps/${appId}/status`, { status: 'disabled', back: 'app' });
    assert.equal(off.status, 303);
    assert.equal(await doorSubCode(token), 'ACCESS_TOKEN_INVALID');
    assert.match((await get(t, admin, off.location)).text, /应用已停用/);
    const on = await post(t, admin, `/desk/apps/${appId}/status`, { status: 'active' });
    assert.equal(on.status, 303);
    assert.notEqual(await doorSubCode(token), 'ACCESS_TOKEN_INVALID');
  });

  it('reissuing the AccessToken: the old one stops, the new one works, shown once', async () => {
    const { appId, token } = await createApp('换令牌医院');
    const r = await post(t, admin, `/desk/apps/${appId}/token`);
    assert.equal(r.status, 201);
    const fresh = secretOnce(r.text);
    assert.ok(fresh.length > 20 && fresh !== token);
    assert.equal(await doorSubCode(token), 'ACCESS_TOKEN_INVALID');
    assert.notEqual(await doorSubCode(fresh), 'ACCESS_TOKEN_INVALID');
    assert.ok(!(await get(t, admin, `/desk/apps/${appId}`)).text.includes(fresh));
    assert.ok(!t.logs().includes(fresh));
  });

  it('maker–checker is switched per app', async () => {
    assert.equal((await t.platform.deps.apps.get(t.appId))?.desk_approval, true);
    const off = await post(t, admin, `/desk/apps/${t.appId}/approval`, { on: '0' });
    assert.equal(off.status, 303);
    assert.equal((await t.platform.deps.apps.get(t.appId))?.desk_approval, false);
    await post(t, admin, `/desk/apps/${t.appId}/approval`, { on: '1' });
    assert.equal((await t.platform.deps.apps.get(t.appId))?.desk_approval, true);
  });

  it('POSTs without the CSRF token (or with another session’s) are refused and change nothing', async () => {
    const before = (await t.platform.deps.apps.list()).length;
    const page = await get(t, admin, '/desk/apps');
    const form = hiddenValue(page.text, 'form');
    const none = await post(t, admin, '/desk/apps', { name: 'CSRF医院', form }, null);
    assert.equal(none.status, 403);
    const wrong = await post(t, admin, '/desk/apps', { name: 'CSRF医院', form }, it1.csrf);
    assert.equal(wrong.status, 403);
    assert.equal((await t.platform.deps.apps.list()).length, before);
    const off = await post(t, admin, `/desk/apps/${otherApp}/status`, { status: 'disabled' }, null);
    assert.equal(off.status, 403);
    assert.equal((await t.platform.deps.apps.get(otherApp))?.status, 'active');
    const op = await post(
      t,
      admin,
      '/desk/operators',
      { username: 'csrf.op', display_name: 'x', role: 'finance' },
      null,
    );
    assert.equal(op.status, 403);
    assert.equal(await t.platform.deps.operators.get('csrf.op'), undefined);
    // Without a session at all: to the login.
    const anon = await get(t, null, '/desk/apps');
    assert.equal(anon.status, 303);
    assert.match(anon.location, /^\/finance\/login\?next=%2Fdesk%2Fapps$/);
  });

  it('hospital IT: 403 on the apps and operators pages and on every write; channels only for its hospital, read-only', async () => {
    assert.equal((await get(t, it1, '/desk/apps')).status, 403);
    assert.equal((await get(t, it1, `/desk/apps/${t.appId}`)).status, 403);
    assert.equal((await get(t, it1, '/desk/operators')).status, 403);
    const before = (await t.platform.deps.apps.list()).length;
    assert.equal(
      (await post(t, it1, '/desk/apps', { name: 'IT医院', form: 'abcdefghijklmnop1234' })).status,
      403,
    );
    assert.equal((await t.platform.deps.apps.list()).length, before);
    assert.equal((await post(t, it1, `/desk/apps/${t.appId}/status`, { status: 'disabled' })).status, 403);
    assert.equal((await t.platform.deps.apps.get(t.appId))?.status, 'active');
    const map = await post(t, it1, `/desk/channels/${t.appId}/map`, { pay_type: 'alipay', channel: 'none' });
    assert.equal(map.status, 403);
    assert.equal(
      (
        await post(t, it1, '/desk/operators', {
          username: 'it.made',
          display_name: 'x',
          role: 'platform_admin',
        })
      ).status,
      403,
    );
    assert.equal(await t.platform.deps.operators.get('it.made'), undefined);

    const page = await get(t, it1, '/desk/channels');
    assert.equal(page.status, 200);
    assert.ok(page.text.includes(t.appId), 'its hospital is missing');
    assert.ok(!page.text.includes(otherApp), 'another hospital is shown');
    assert.ok(!page.text.includes('第二医院'));
    assert.ok(!page.text.includes('/map"'), 'hospital IT gets the switch form');
    assert.ok(!page.text.includes('/status"'), 'hospital IT gets the enable/disable form');
    assert.match(page.text, /只读 read-only/);
    // Another hospital answers like a missing one.
    const other = await get(t, it1, `/desk/channels?app=${otherApp}`);
    const missing = await get(t, it1, '/desk/channels?app=hp0000000000000000');
    assert.equal(other.status, 404);
    assert.equal(missing.status, 404);
    assert.equal(other.text, missing.text);
  });

  it('channels: status per pay type, the switch validated like the admin API, secrets never shown', async () => {
    const page = await get(t, admin, `/desk/channels?app=${otherApp}`);
    assert.equal(page.status, 200);
    // An app with no real channel: every pay type on the simulator, live.
    const alipayRow = /<tr data-pay-type="alipay">([\s\S]*?)<\/tr>\n/.exec(page.text)?.[1] ?? '';
    assert.match(alipayRow, /<code>simulator<\/code>/);
    assert.match(alipayRow, /可用 live/);
    // Switching to Alipay without its configuration is refused, naming the missing fields.
    const early = await post(t, admin, `/desk/channels/${otherApp}/map`, {
      pay_type: 'alipay',
      channel: 'alipay',
    });
    assert.equal(early.status, 400);
    assert.match(early.text, /配置有误 \/ channel alipay configuration/);
    assert.match(early.text, /app_id/);
    assert.equal((await t.platform.deps.apps.get(otherApp))?.channel_map, '{}');
    // A channel that does not take the pay type.
    const wrong = await post(t, admin, `/desk/channels/${otherApp}/map`, {
      pay_type: 'unionpay',
      channel: 'alipay',
    });
    assert.equal(wrong.status, 400);
    assert.match(wrong.text, /不受理 unionpay/);

    // Configured (secrets sealed), the switch goes through; the page shows "set", never the key.
    const key = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const privatePem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const alipayPub = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    await t.platform.deps.channelConfigs.set(otherApp, 'alipay', {
      app_id: '2021000000000077',
      private_key: privatePem,
      alipay_public_key: alipayPub,
    });
    const ok = await post(t, admin, `/desk/channels/${otherApp}/map`, {
      pay_type: 'alipay',
      channel: 'alipay',
    });
    assert.equal(ok.status, 303, ok.text.slice(0, 800));
    assert.equal(
      JSON.parse((await t.platform.deps.apps.get(otherApp))?.channel_map ?? '{}').alipay,
      'alipay',
    );
    const after = await get(t, admin, ok.location);
    assert.match(after.text, /渠道已切换/);
    const row = /<tr data-pay-type="alipay">([\s\S]*?)<\/tr>\n/.exec(after.text)?.[1] ?? '';
    assert.match(row, /<code>alipay<\/code>/);
    assert.match(row, /2021000000000077/);
    assert.match(row, /已设置 set/);
    assert.ok(!after.text.includes('PRIVATE KEY') && !after.text.includes(privatePem.split('\n')[1] ?? 'x'));
    // The app now takes real money: weixin, unmapped, is not live.
    const weixin = /<tr data-pay-type="weixin">([\s\S]*?)<\/tr>\n/.exec(after.text)?.[1] ?? '';
    assert.match(weixin, /不可用 off/);
    assert.match(weixin, /未指定渠道/);
    const audit = await t.platform.deps.audit.list({
      apps: null,
      appId: otherApp,
      action: 'channel.map',
      limit: 10,
    });
    assert.deepEqual(audit.map((e) => e.outcome).reverse(), ['refused', 'refused', 'ok']);
  });

  it('operators: the admin creates one scoped to one hospital with a generated password shown once', async () => {
    const page = await get(t, admin, '/desk/operators');
    assert.equal(page.status, 200);
    assert.match(page.text, /it\.zhao/);
    const r = await post(t, admin, '/desk/operators', {
      username: 'cs.li',
      display_name: '李主管',
      role: 'cashier_supervisor',
      [`app.${t.appId}`]: '1',
    });
    assert.equal(r.status, 201, r.text.slice(0, 800));
    const password = secretOnce(r.text);
    assert.ok(password.length >= 20);
    const view = await t.platform.deps.operators.get('cs.li');
    assert.equal(view?.role, 'cashier_supervisor');
    assert.deepEqual(view?.apps, [t.appId]);
    const login = await t.platform.deps.operators.verify('cs.li', password);
    assert.equal(login.ok, true);
    assert.ok(!(await get(t, admin, '/desk/operators')).text.includes(password));
    assert.ok(!t.logs().includes(password));
    const audit = await t.platform.deps.audit.list({ apps: null, action: 'operator.create', limit: 5 });
    assert.ok(audit.some((e) => e.detail.includes('cs.li')) && !JSON.stringify(audit).includes(password));
    // The same username again: refused.
    const dup = await post(t, admin, '/desk/operators', {
      username: 'cs.li',
      display_name: 'x',
      role: 'finance',
    });
    assert.equal(dup.status, 409);
    assert.match(dup.text, /用户名已存在/);
    // An unknown hospital: refused.
    const unknown = await post(t, admin, '/desk/operators', {
      username: 'cs.wu',
      display_name: '吴',
      role: 'finance',
      'app.hp0000000000000000': '1',
    });
    assert.equal(unknown.status, 400);
    assert.equal(await t.platform.deps.operators.get('cs.wu'), undefined);
  });

  it('operators: role, hospitals, disable and password reset; never one’s own account', async () => {
    const role = await post(t, admin, '/desk/operators/cs.li/role', { role: 'finance' });
    assert.equal(role.status, 303);
    assert.equal((await t.platform.deps.operators.get('cs.li'))?.role, 'finance');
    const apps = await post(t, admin, '/desk/operators/cs.li/apps', {
      [`app.${otherApp}`]: '1',
      [`app.${t.appId}`]: '1',
    });
    assert.equal(apps.status, 303);
    assert.deepEqual((await t.platform.deps.operators.get('cs.li'))?.apps, [t.appId, otherApp].sort());
    const all = await post(t, admin, '/desk/operators/cs.li/apps', { all_apps: '1' });
    assert.equal(all.status, 303);
    assert.equal((await t.platform.deps.operators.get('cs.li'))?.apps, 'all');
    const reset = await post(t, admin, '/desk/operators/cs.li/password');
    assert.equal(reset.status, 201);
    const pw = secretOnce(reset.text);
    assert.equal((await t.platform.deps.operators.verify('cs.li', pw)).ok, true);
    const off = await post(t, admin, '/desk/operators/cs.li/status', { status: 'disabled' });
    assert.equal(off.status, 303);
    assert.equal((await t.platform.deps.operators.get('cs.li'))?.status, 'disabled');
    // One's own role or status: refused (an admin never locks themselves out).
    const self = await post(t, admin, '/desk/operators/plat.wang/role', { role: 'finance' });
    assert.equal(self.status, 403);
    assert.equal((await t.platform.deps.operators.get('plat.wang'))?.role, 'platform_admin');
    assert.equal(
      (await post(t, admin, '/desk/operators/plat.wang/status', { status: 'disabled' })).status,
      403,
    );
    assert.equal((await t.platform.deps.operators.get('plat.wang'))?.status, 'active');
    assert.equal((await post(t, admin, '/desk/operators/nobody.here/role', { role: 'finance' })).status, 404);
  });
});
