/**
 * Service-provider mode through the real doors: Alipay configured once for the platform (a third-party app's
 * credentials) with the admin API and with the `hospay` command, two hospitals (two apps) each with only their
 * app_auth_token; barcode payments through the offline XML door reach the fake gateway with each hospital's own
 * token; a wrong or missing token is a clear error; secrets are never shown; a field in the wrong place (per app
 * or per platform) is refused with a clear message.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, type KeyPairKeyObjectResult } from 'node:crypto';
import { startTestPlatform, barcodeFields, type TestPlatform } from '../support/platform.js';
import { startAlipayFake, type AlipayFake } from '../fakes/alipay-server.js';
import { HospayHome, TEST_MASTER_KEY } from '../support/spawn.js';
import { CHANNEL_DEFINITIONS, MEDICARE_DEFINITIONS } from '../../src/channels/registry.js';

const ISV_APP_ID = '2021000000000999';
const HOSPITAL_A = '2021000000000111';
const HOSPITAL_B = '2021000000000222';
const token = () => `202401BB${randomBytes(16).toString('hex')}`;

describe('Alipay third-party app: platform-level credentials, one app_auth_token per hospital', () => {
  let t: TestPlatform;
  let fake: AlipayFake;
  let isvKey: KeyPairKeyObjectResult;
  let second: { appId: string; accessToken: string };
  const TOKEN_A = token();
  const TOKEN_B = token();
  let privatePem = '';

  before(async () => {
    isvKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
    privatePem = isvKey.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    t = await startTestPlatform();
    fake = await startAlipayFake({
      appId: ISV_APP_ID,
      appPublicKey: isvKey.publicKey,
      appAuthTokens: { [TOKEN_A]: HOSPITAL_A, [TOKEN_B]: HOSPITAL_B },
    });
    second = await t.platform.deps.apps.create({ name: '第二医院', hospitalId: 'H002' });
  });
  after(async () => {
    await fake?.close();
    await t?.close();
  });

  const secretsAbsent = (text: string) => {
    const keyBody = privatePem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    assert.ok(!text.replace(/\\n|\s/g, '').includes(keyBody.slice(40, 100)), 'the private key was shown');
    for (const tk of [TOKEN_A, TOKEN_B]) assert.ok(!text.includes(tk), 'an app_auth_token was shown');
  };

  it('the admin API sets the platform level once and shows it without its secrets', async () => {
    const set = await t.admin('PUT', '/admin/platform/channels/alipay', {
      values: {
        app_id: ISV_APP_ID,
        private_key: privatePem,
        alipay_public_key: fake.alipayPublicKey,
        gateway_url: fake.gatewayUrl,
        timeout_ms: '3000',
      },
    });
    assert.equal(set.status, 200, JSON.stringify(set.data));
    const values = set.data['values'] as Record<string, string>;
    assert.equal(values['app_id'], ISV_APP_ID);
    assert.equal(values['private_key'], '已设置 set');
    assert.deepEqual(set.data['problems'], []);
    const shown = await t.admin('GET', '/admin/platform/channels/alipay');
    assert.equal(shown.status, 200);
    assert.equal((shown.data['values'] as Record<string, string>)['private_key'], '已设置 set');
    secretsAbsent(JSON.stringify(shown.data));
    const all = await t.admin('GET', '/admin/platform/channels');
    assert.deepEqual(
      (all.data['configs'] as Array<{ channel: string }>).map((c) => c.channel),
      ['alipay'],
    );
    // Sealed at rest with its own context: the key is not in the table in clear.
    const row = await t.store.db
      .selectFrom('platform_channel_configs')
      .selectAll()
      .where('channel_id', '=', 'alipay')
      .executeTakeFirstOrThrow();
    secretsAbsent(JSON.stringify(row));
    assert.ok(row.secrets_sealed && row.secrets_sealed.length > 100);
  });

  it('each hospital is configured with only its app_auth_token (and auth_app_id), secrets not shown', async () => {
    for (const [appId, tk, hospital] of [
      [t.appId, TOKEN_A, HOSPITAL_A],
      [second.appId, TOKEN_B, HOSPITAL_B],
    ] as const) {
      const set = await t.admin('PUT', `/admin/apps/${appId}/channels/alipay`, {
        values: { app_auth_token: tk, auth_app_id: hospital },
      });
      assert.equal(set.status, 200, JSON.stringify(set.data));
      assert.deepEqual(set.data['problems'], []);
      assert.deepEqual(set.data['values'], { app_auth_token: '已设置 set', auth_app_id: hospital });
      const inherited = set.data['from_platform'] as Record<string, string>;
      assert.equal(inherited['app_id'], ISV_APP_ID);
      assert.equal(inherited['private_key'], '已设置 set');
      secretsAbsent(JSON.stringify(set.data));
      const use = await t.admin('PUT', `/admin/apps/${appId}/channel-map`, {
        pay_type: 'alipay',
        channel: 'alipay',
      });
      assert.equal(use.status, 200, JSON.stringify(use.data));
    }
    const shown = await t.admin('GET', `/admin/apps/${second.appId}/channels`);
    secretsAbsent(JSON.stringify(shown.data));
  });

  it("a barcode pay through the offline door, per hospital, reaches Alipay with that hospital's token", async () => {
    for (const [access, tk, hospital] of [
      [t.token, TOKEN_A, HOSPITAL_A],
      [second.accessToken, TOKEN_B, HOSPITAL_B],
    ] as const) {
      const f = barcodeFields({ TotalAmount: '12.34' });
      const before = fake.requests().length;
      const r = await t.offline('FWC_IF_Barcode_Pay', f, { token: access });
      assert.equal(r.rr.IsSuccess, '1', r.text);
      const seen = fake.requests().slice(before);
      const pay = seen.find((x) => x.op === 'pay');
      assert.ok(pay, 'the pay reached the fake');
      assert.equal(pay.signatureValid, true);
      assert.equal(pay.params['app_id'], ISV_APP_ID);
      assert.equal(pay.params['app_auth_token'], tk);
      assert.equal(pay.authAppId, hospital);
      assert.equal(fake.books(f.OutTradeNo ?? '')?.authAppId, hospital);
      assert.equal(fake.trade(f.OutTradeNo ?? '')?.amountFen, 1234);
    }
    // The tokens are secrets: in no call record, in no log line.
    const calls = await t.admin('GET', '/admin/channel-calls?limit=500');
    secretsAbsent(JSON.stringify(calls.data));
    secretsAbsent(t.logs());
  });

  it("a notification is accepted for its own hospital's app only (auth_app_id)", async () => {
    const f = barcodeFields({ TotalAmount: '1.00' });
    const r = await t.offline('FWC_IF_Barcode_Pay', f, { token: second.accessToken });
    assert.equal(r.rr.IsSuccess, '1', r.text);
    const body = fake.notification(f.OutTradeNo ?? '');
    const post = (appId: string) =>
      fetch(`${t.url}/channels/alipay/notify/${appId}`, {
        method: 'POST',
        headers: body.headers,
        body: body.body,
      }).then(async (res) => res.text());
    assert.equal(await post(second.appId), 'success');
    // Hospital B's notification posted to hospital A's address: not A's.
    assert.equal(await post(t.appId), 'fail');
  });

  it('a wrong token is a clear decline from Alipay; a per-app configuration cannot lose auth_app_id', async () => {
    const wrong = await t.admin('PUT', `/admin/apps/${second.appId}/channels/alipay`, {
      values: { app_auth_token: token() },
    });
    assert.equal(wrong.status, 200, JSON.stringify(wrong.data));
    const f = barcodeFields();
    const r = await t.offline('FWC_IF_Barcode_Pay', f, { token: second.accessToken });
    assert.notEqual(r.rr.IsSuccess, '1', r.text);
    assert.match(r.text, /无效的应用授权令牌|invalid-app-auth-token/);
    const t1 = await t.platform.deps.trades.byOutTradeNo(second.appId, f.OutTradeNo ?? '');
    assert.notEqual(t1?.status, 'paid');
    // Without its token an app would speak as the third-party app itself: refused by the check.
    const missing = await t.admin('PUT', `/admin/apps/${second.appId}/channels/alipay`, {
      values: { app_auth_token: null },
    });
    assert.equal(missing.status, 400, JSON.stringify(missing.data));
    assert.match(String(missing.data['message']), /auth_app_id/);
    // Put the right one back.
    const back = await t.admin('PUT', `/admin/apps/${second.appId}/channels/alipay`, {
      values: { app_auth_token: TOKEN_B },
    });
    assert.equal(back.status, 200);
  });

  it('a field in the wrong place is refused with a clear message (per app / per platform), medicare ids too', async () => {
    const appOnly = await t.admin('PUT', '/admin/platform/channels/alipay', {
      values: { app_auth_token: token() },
    });
    assert.equal(appOnly.status, 400, JSON.stringify(appOnly.data));
    assert.equal(appOnly.data['code'], 'CHANNEL_CONFIG_INVALID');
    assert.match(String(appOnly.data['message']), /app_auth_token.*per app/);
    // A platform change that would break an app that uses the channel is refused, naming the app.
    const breaking = await t.admin('PUT', '/admin/platform/channels/alipay', {
      values: { app_id: null },
    });
    assert.equal(breaking.status, 400, JSON.stringify(breaking.data));
    assert.match(String(breaking.data['message']), new RegExp(`app ${t.appId}: app_id`));
    assert.match(String(breaking.data['message']), new RegExp(`app ${second.appId}: app_id`));
    // Medical-insurance sides are "medicare:<id>" here too.
    const m = MEDICARE_DEFINITIONS[0];
    if (m) {
      const shown = await t.admin(
        'GET',
        `/admin/platform/channels/${encodeURIComponent(`medicare:${m.id}`)}`,
      );
      assert.equal(shown.status, 200, JSON.stringify(shown.data));
      assert.equal(shown.data['channel'], `medicare:${m.id}`);
    }
    assert.equal((await t.admin('GET', '/admin/platform/channels/nosuch')).status, 404);
    // A platform-scoped field (if a channel has one) cannot be set per app.
    const all = [
      ...CHANNEL_DEFINITIONS.map((d) => ({ id: d.id, fields: d.fields })),
      ...MEDICARE_DEFINITIONS.map((d) => ({ id: `medicare:${d.id}`, fields: d.fields })),
    ];
    for (const d of all)
      for (const f of d.fields.filter((x) => x.scope === 'platform')) {
        const r = await t.admin('PUT', `/admin/apps/${t.appId}/channels/${encodeURIComponent(d.id)}`, {
          values: { [f.name]: 'x' },
        });
        assert.equal(r.status, 400, `${d.id}.${f.name}: ${JSON.stringify(r.data)}`);
        assert.match(String(r.data['message']), /whole platform/);
      }
  });
});

describe('the hospay command: channel platform-set / platform-show', () => {
  let home: HospayHome;
  const key = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const alipayPub = generateKeyPairSync('rsa', { modulusLength: 2048 })
    .publicKey.export({ type: 'spki', format: 'der' })
    .toString('base64');
  const pem = key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();

  before(async () => {
    home = await HospayHome.create('hospay-isv', {
      env: { LOG_LEVEL: 'warn', HOSPAY_JOBS: 'off', HOSPAY_MASTER_KEY: TEST_MASTER_KEY },
    });
  });
  after(async () => {
    await home?.close();
  });

  it('sets and shows the platform level without revealing secrets; refuses a field in the wrong place', () => {
    const set = home.run(
      [
        'channel',
        'platform-set',
        'alipay',
        `app_id=${ISV_APP_ID}`,
        `alipay_public_key=${alipayPub}`,
        '--secret-stdin',
        'private_key',
      ],
      { input: pem },
    );
    assert.equal(set.status, 0, set.stdout + set.stderr);
    assert.match(set.stdout, /alipay \(平台级 platform level\)/);
    assert.match(set.stdout, /private_key\s+已设置 set/);
    const shown = home.run(['channel', 'platform-show', 'alipay', '--json']);
    assert.equal(shown.status, 0, shown.stderr);
    const view = JSON.parse(shown.stdout) as { values: Record<string, string> };
    assert.equal(view.values['app_id'], ISV_APP_ID);
    assert.equal(view.values['private_key'], '已设置 set');
    const keyBody = pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    for (const out of [set.stdout + set.stderr, shown.stdout])
      assert.ok(!out.replace(/\s+/g, '').includes(keyBody.slice(40, 100)), 'the key was printed');
    // An app with only its token passes the check (the platform has the rest).
    const created = home.run(['app', 'create', '--name', '第一医院', '--json']);
    assert.equal(created.status, 0, created.stderr);
    const appId = (JSON.parse(created.stdout) as { app_id: string }).app_id;
    const tk = token();
    const app = home.run(
      [
        'channel',
        'set',
        '--app',
        appId,
        '--channel',
        'alipay',
        '--set',
        `auth_app_id=${HOSPITAL_A}`,
        '--secret-stdin',
        'app_auth_token',
      ],
      { input: tk },
    );
    assert.equal(app.status, 0, app.stdout + app.stderr);
    assert.match(app.stdout, /app_id\s+2021000000000999\s+\(平台级 from the platform\)/);
    assert.ok(!app.stdout.includes(tk));
    // A per-app field at the platform level: refused, exit 1, a clear message.
    const wrong = home.run(['channel', 'platform-set', 'alipay', `auth_app_id=${HOSPITAL_A}`]);
    assert.equal(wrong.status, 1, wrong.stdout + wrong.stderr);
    assert.match(wrong.stderr, /auth_app_id.*per app/);
    const usage = home.run(['channel', 'platform-set']);
    assert.equal(usage.status, 2, usage.stdout + usage.stderr);
  });
});
