import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, ConfigError } from '../../src/config/config.js';
import { startPlatform, type Platform } from '../../src/main.js';
import { createLogger } from '../../src/logging.js';
import { startTestPlatform, testConfig, type TestPlatform } from '../support/platform.js';
import { TEST_DB } from '../support/db.js';
import { hospayEnv, runHospayAsync } from '../support/spawn.js';

const TOKEN = 'test-admin-token-0123456789abcdef';

const get = (url: string, token: string | null = TOKEN, headers: Record<string, string> = {}) =>
  fetch(url, {
    redirect: 'manual',
    headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), ...headers },
  });

describe('admin API and finance pages on their own address (HOSPAY_ADMIN_LISTEN)', () => {
  let t: TestPlatform;
  let adminUrl = '';
  before(async () => {
    t = await startTestPlatform({ env: { HOSPAY_ADMIN_LISTEN: '127.0.0.1:0' } });
    adminUrl = t.platform.adminUrl;
  });
  after(async () => {
    await t.close();
  });

  it('the public port answers 404 for /admin and /finance; the admin address serves them, and only them', async () => {
    assert.notEqual(adminUrl, t.url);
    for (const p of ['/admin/apps', '/admin/keys/platform', '/finance', '/finance/login']) {
      const r = await get(`${t.url}${p}`);
      assert.equal(r.status, 404, `public ${p}`);
    }
    const rotate = await fetch(`${t.url}/admin/keys/rotate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(rotate.status, 404);

    const apps = await get(`${adminUrl}/admin/apps`);
    assert.equal(apps.status, 200);
    assert.ok(((await apps.json()) as Array<{ app_id: string }>).some((a) => a.app_id === t.appId));
    assert.equal((await get(`${adminUrl}/admin/apps`, null)).status, 401);
    assert.equal((await get(`${adminUrl}/finance/login`, null)).status, 200);

    // The public doors are not on the admin address.
    assert.equal((await get(`${adminUrl}/`, null)).status, 404);
    const offline = await fetch(`${adminUrl}/offline/FWC_IF_Barcode_Pay`, { method: 'POST', body: '<xml/>' });
    assert.equal(offline.status, 404);
    assert.equal((await fetch(`${adminUrl}/gateway`, { method: 'POST', body: '' })).status, 404);
    // ... and still on the public port.
    const door = await t.offline('FWC_IF_Trade_Query', { OutTradeNo: 'MZNOTHERE' });
    assert.equal(door.status, 200);
    assert.equal((await get(`${t.url}/healthz`, null)).status, 200);
  });

  it('HOSPAY_ADMIN_LISTEN is checked: host:port', () => {
    assert.deepEqual(loadConfig({ HOSPAY_ADMIN_LISTEN: '127.0.0.1:8081' }).adminListen, {
      host: '127.0.0.1',
      port: 8081,
    });
    assert.deepEqual(loadConfig({ HOSPAY_ADMIN_LISTEN: '[::1]:8081' }).adminListen, {
      host: '::1',
      port: 8081,
    });
    assert.equal(loadConfig({}).adminListen, null);
    for (const bad of ['8081', '127.0.0.1', '127.0.0.1:99999', 'a b:1'])
      assert.throws(
        () => loadConfig({ HOSPAY_ADMIN_LISTEN: bad }),
        (e: unknown) => e instanceof ConfigError && e.key === 'HOSPAY_ADMIN_LISTEN',
        bad,
      );
  });
});

describe('the CLI reaches a running server split in two', { skip: TEST_DB !== 'embedded' }, () => {
  let dataDir = '';
  let platform: Platform | null = null;
  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-admin-split-'));
    platform = await startPlatform({
      config: testConfig({ HOSPAY_DATA_DIR: dataDir, PORT: '0', HOSPAY_ADMIN_LISTEN: '127.0.0.1:0' }),
      log: createLogger('silent'),
      demo: false,
    });
    await platform.deps.apps.create({ name: '分离医院', hospitalId: 'H-SPLIT' });
  });
  after(async () => {
    await platform?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('hospay app list and hospay keys platform go to the admin address from the lock file', async () => {
    // No admin token in the environment: the CLI reads the data directory's.
    const env = hospayEnv({ dataDir, env: { LOG_LEVEL: 'warn' } });
    // The split is in force: the public port has no admin API.
    assert.ok(platform);
    const pub = await get(`${platform.url}/admin/apps`);
    assert.equal(pub.status, 404);
    const list = await runHospayAsync(['app', 'list', '--json'], env);
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /H-SPLIT/);
    const key = await runHospayAsync(['keys', 'platform'], env);
    assert.equal(key.status, 0, key.stderr);
    assert.match(key.stdout, /BEGIN PUBLIC KEY/);
  });
});

describe('admin token strength', () => {
  it('HOSPAY_ADMIN_TOKEN shorter than 32 characters is refused at start, naming the key', async () => {
    assert.throws(
      () => loadConfig({ HOSPAY_ADMIN_TOKEN: 'short-admin-token' }),
      (e: unknown) => e instanceof ConfigError && e.key === 'HOSPAY_ADMIN_TOKEN' && /32/.test(e.message),
    );
    assert.doesNotThrow(() => loadConfig({ HOSPAY_ADMIN_TOKEN: 'x'.repeat(32) }));
    const unused = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-short-'));
    await assert.rejects(
      startPlatform({
        config: {
          ...testConfig({ PORT: '0', HOSPAY_DATA_DIR: unused }),
          store: { kind: 'embedded', dataDir: null },
        },
        log: createLogger('silent'),
        demo: false,
        listen: false,
        adminToken: 'x'.repeat(31),
      }),
      (e: unknown) => e instanceof ConfigError && e.key === 'HOSPAY_ADMIN_TOKEN',
    );
    fs.rmSync(unused, { recursive: true, force: true });
    // Through the real command: it stops before serving and says which setting.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-short-token-'));
    try {
      const env = hospayEnv({ dataDir: dir, env: { HOSPAY_ADMIN_TOKEN: 'changeme' } });
      const r = await runHospayAsync(['serve', '--port', '0'], env);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /HOSPAY_ADMIN_TOKEN/);
      assert.ok(!/hospay is serving/.test(r.stdout));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the generated token is at least 32 characters; a short token file is refused', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-admin-token-'));
    const saved = process.env['HOSPAY_ADMIN_TOKEN'];
    delete process.env['HOSPAY_ADMIN_TOKEN'];
    try {
      const config = testConfig({ HOSPAY_DATA_DIR: dir, PORT: '0' });
      const p = await startPlatform({ config, log: createLogger('silent'), demo: false, listen: false });
      await p.close();
      const token = fs.readFileSync(path.join(dir, 'admin-token'), 'utf8').trim();
      assert.ok(token.length >= 32, token);
      assert.equal(p.adminToken, token);
      fs.writeFileSync(path.join(dir, 'admin-token'), 'short\n');
      await assert.rejects(
        startPlatform({ config, log: createLogger('silent'), demo: false, listen: false }),
        (e: unknown) => e instanceof ConfigError && e.key.endsWith('admin-token'),
      );
    } finally {
      if (saved !== undefined) process.env['HOSPAY_ADMIN_TOKEN'] = saved;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('failed admin tokens are throttled per source address', () => {
  let t: TestPlatform;
  before(async () => {
    // Behind a trusted proxy the source address is X-Forwarded-For's: several addresses over one connection.
    t = await startTestPlatform({ env: { HOSPAY_TRUST_PROXY: '127.0.0.1' } });
  });
  after(async () => {
    await t.close();
  });

  const from = (address: string, token: string) =>
    get(`${t.url}/admin/apps`, token, { 'x-forwarded-for': address });

  it('429 with Retry-After after 5 failures from one address, growing; the real token works from another address', async () => {
    const attacker = '203.0.113.7';
    for (let i = 0; i < 5; i++)
      assert.equal((await from(attacker, `wrong-${i}`)).status, 401, `attempt ${i + 1}`);
    const blocked = await from(attacker, 'wrong-again');
    assert.equal(blocked.status, 429);
    assert.equal(blocked.headers.get('retry-after'), '1');
    assert.equal(((await blocked.json()) as { code: string }).code, 'ADMIN_THROTTLED');
    // While it waits, even the right token is refused from that address (guessing cannot skip the wait) ...
    assert.equal((await from(attacker, TOKEN)).status, 429);
    // ... but the operator's own address is not affected.
    assert.equal((await from('198.51.100.2', TOKEN)).status, 200);
    assert.equal((await from('198.51.100.3', 'wrong')).status, 401);

    // Back-off: after the wait, one more failure means a longer wait.
    t.clock.advance(1_000);
    assert.equal((await from(attacker, 'wrong-6')).status, 401);
    const longer = await from(attacker, 'wrong-7');
    assert.equal(longer.status, 429);
    assert.equal(longer.headers.get('retry-after'), '2');
    t.clock.advance(2_000);
    assert.equal((await from(attacker, 'wrong-8')).status, 401);
    assert.equal((await from(attacker, TOKEN)).headers.get('retry-after'), '4');

    // Once the wait is over, the right token works and clears the address's count.
    t.clock.advance(4_000);
    assert.equal((await from(attacker, TOKEN)).status, 200);
    assert.equal((await from(attacker, 'wrong-9')).status, 401);
    assert.equal((await from(attacker, TOKEN)).status, 200);
  });
});
