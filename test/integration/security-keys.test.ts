import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Migrator, sql, type Migration, type MigrationProvider } from 'kysely';
import { loadConfig, ConfigError, type Config } from '../../src/config/config.js';
import { startPlatform, type Platform } from '../../src/main.js';
import { openStore, type Store } from '../../src/store/db.js';
import { createLogger } from '../../src/logging.js';
import { newRsaKeyPair, readPublicKey, signParams, verifyParams } from '../../src/crypto/signing.js';
import { FakeClock } from '../support/clock.js';
import { freshDatabase, TEST_DB, type TestDatabase } from '../support/db.js';
import { startTestPlatform, testConfig, type TestPlatform } from '../support/platform.js';
import { TEST_APP_KEY, gateway, verifyAnswer } from '../support/gateway.js';

const DAY = 86_400_000;
const ADMIN = 'security-keys-admin-token-0123456789';

/** Every file under dir (recursively), with its mode, for the permission and content checks. */
function walk(dir: string): Array<{ path: string; mode: number; dir: boolean }> {
  const out: Array<{ path: string; mode: number; dir: boolean }> = [];
  const visit = (d: string) => {
    out.push({ path: d, mode: fs.statSync(d).mode & 0o777, dir: true });
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) visit(p);
      else if (e.isFile()) out.push({ path: p, mode: fs.statSync(p).mode & 0o777, dir: false });
    }
  };
  visit(dir);
  return out;
}

/** The files under dir that hold a private key in PEM (the WAL and table files included). */
function filesWithPrivateKey(dir: string): string[] {
  return walk(dir)
    .filter((f) => !f.dir && fs.readFileSync(f.path).includes('PRIVATE KEY-----'))
    .map((f) => f.path);
}

function loose(dir: string): string[] {
  return walk(dir)
    .filter((f) => f.mode !== (f.dir ? 0o700 : 0o600))
    .map((f) => `${f.mode.toString(8)} ${f.path}`);
}

/** SQL on purpose: the platform's keys as stored at rest (sealed or not). */
async function keyRows(store: Store) {
  return store.db.selectFrom('platform_keys').selectAll().orderBy('id').execute();
}

/** The migrations an older version had: everything before 011-sealed-platform-keys. */
class OlderMigrations implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    const dir = path.resolve('src/store/migrations');
    const out: Record<string, Migration> = {};
    for (const f of fs.readdirSync(dir).sort()) {
      const name = f.replace(/\.ts$/, '');
      if (name >= '011') continue;
      out[name] = (await import(path.join(dir, f))) as Migration;
    }
    return out;
  }
}

describe('platform private key at rest', () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
    await t.platform.deps.apps.setPublicKey(t.appId, TEST_APP_KEY.publicPem);
  });
  after(async () => {
    await t.close();
  });

  it('after start and after rotate the table holds the private key only sealed, never as PEM', async () => {
    const first = await keyRows(t.store);
    assert.equal(first.length, 1);
    assert.equal(first[0]?.private_pem, null);
    assert.match(first[0]?.private_sealed ?? '', /^v1:[0-9a-f]{8}:/);
    assert.ok(!JSON.stringify(first).includes('PRIVATE KEY'), 'no PEM private key in the row');

    const rotated = await t.admin('POST', '/admin/keys/rotate');
    assert.equal(rotated.status, 200);
    const rows = await keyRows(t.store);
    assert.equal(rows.length, 2);
    assert.ok(!JSON.stringify(rows).includes('PRIVATE KEY'), 'no PEM private key after rotate');
    assert.ok(rows.every((r) => r.private_pem === null && r.private_sealed?.startsWith('v1:')));
    const [old, current] = rows;
    assert.equal(old?.active, false);
    assert.deepEqual(old?.retired_at, t.clock.now());
    assert.equal(current?.active, true);
    assert.equal(current?.public_pem, rotated.data['public_key']);
  });

  it('gateway answers are signed with the sealed key and verify with the published public key', async () => {
    const published = await t.admin('GET', '/admin/keys/platform');
    const pub = readPublicKey(String(published.data['public_key']));
    assert.ok(pub);
    const a = await gateway(t, 'lc.trade.query', { out_trade_no: 'MZNOSUCHTRADE' });
    assert.ok(verifyAnswer(a.raw, pub), a.raw);
  });

  it('the database refuses a plain PEM private key, or a key without its sealed form', async () => {
    const pair = newRsaKeyPair(2048);
    await assert.rejects(
      t.store.db
        .insertInto('platform_keys')
        .values({
          private_pem: pair.privatePem,
          private_sealed: null,
          public_pem: pair.publicPem,
          active: false,
          created_at: t.clock.now(),
        })
        .execute(),
      /platform_keys_sealed/,
    );
    await assert.rejects(
      t.store.db
        .insertInto('platform_keys')
        .values({
          private_pem: null,
          private_sealed: null,
          public_pem: pair.publicPem,
          active: false,
          created_at: t.clock.now(),
        })
        .execute(),
      /platform_keys_sealed/,
    );
  });

  it('a retired key is deleted by the expiry job once its grace period (default 7 days) is over', async () => {
    await t.admin('POST', '/admin/keys/rotate');
    const retired = (await keyRows(t.store)).filter((r) => !r.active);
    assert.ok(retired.length >= 1);
    const last = retired.at(-1);
    t.clock.advance(7 * DAY - 60_000);
    await t.platform.expiry.tick();
    assert.ok(
      (await keyRows(t.store)).some((r) => r.id === last?.id),
      'kept within the grace period',
    );
    t.clock.advance(2 * 60_000);
    await t.platform.expiry.tick();
    const rows = await keyRows(t.store);
    assert.deepEqual(
      rows.map((r) => r.active),
      [true],
      'only the active key is left',
    );
    // The active key still signs.
    const a = await gateway(t, 'lc.trade.query', { out_trade_no: 'MZNOSUCHTRADE' });
    assert.ok(verifyAnswer(a.raw, (await t.platform.deps.keys.active()).publicKey));
  });

  it('HOSPAY_KEY_GRACE sets the grace period; a rotation also deletes keys past it', async () => {
    assert.equal(loadConfig({}).keyGraceMs, 7 * DAY);
    assert.equal(loadConfig({ HOSPAY_KEY_GRACE: '1h' }).keyGraceMs, 3_600_000);
    assert.throws(() => loadConfig({ HOSPAY_KEY_GRACE: 'soon' }), /HOSPAY_KEY_GRACE/);
    await t.admin('POST', '/admin/keys/rotate');
    t.clock.advance(7 * DAY + 1);
    await t.admin('POST', '/admin/keys/rotate');
    const rows = await keyRows(t.store);
    assert.equal(rows.length, 2, 'the key retired 7 days ago is gone, the one retired now is kept');
    assert.deepEqual(rows.map((r) => r.active).sort(), [false, true]);
  });

  it('with PostgreSQL, a start without HOSPAY_MASTER_KEY is refused, naming the key', async () => {
    const config: Config = {
      ...testConfig({ HOSPAY_MASTER_KEY: '' }),
      store: { kind: 'postgres', url: 'postgres://nobody@127.0.0.1:1/none' },
    };
    await assert.rejects(
      startPlatform({ config, log: createLogger('silent'), listen: false, demo: false }),
      (e: unknown) => e instanceof ConfigError && e.key === 'HOSPAY_MASTER_KEY',
    );
  });
});

describe('embedded database in a real data directory', { skip: TEST_DB !== 'embedded' }, () => {
  let dataDir = '';
  let platform: Platform | null = null;
  before(() => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-keys-'));
  });
  after(async () => {
    await platform?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('the directory is 0700 and its files 0600 (an existing loose one is tightened); no file holds the PEM private key after start and rotate', async () => {
    fs.chmodSync(dataDir, 0o755);
    fs.writeFileSync(path.join(dataDir, 'admin-token'), `${ADMIN}\n`, { mode: 0o644 });
    const config = testConfig({ HOSPAY_MASTER_KEY: '', HOSPAY_DATA_DIR: dataDir, PORT: '0' });
    platform = await startPlatform({ config, log: createLogger('silent'), demo: false });
    const url = platform.url;
    assert.ok(fs.existsSync(path.join(dataDir, 'master-key')), 'the master key file was made');
    assert.ok(fs.existsSync(path.join(dataDir, 'pgdata')));
    assert.deepEqual(loose(dataDir), []);

    const rotate = await fetch(`${url}/admin/keys/rotate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    assert.equal(rotate.status, 200);
    await platform.store.db.selectFrom('platform_keys').select('id').execute();
    assert.deepEqual(filesWithPrivateKey(dataDir), []);
    await platform.close();
    platform = null;
    assert.deepEqual(loose(dataDir), []);
    assert.deepEqual(filesWithPrivateKey(dataDir), [], 'nothing on disk after close either (WAL included)');
  });
});

describe('upgrade: a platform key stored as plain PEM by an older version', () => {
  let db: TestDatabase;
  let dataDir = '';
  let platform: Platform | null = null;
  const clock = new FakeClock();
  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-upgrade-'));
    db = await freshDatabase();
  });
  after(async () => {
    await platform?.close();
    await db.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('is sealed at the next start, the same key stays in use, and no plaintext is left in the table or its files', async () => {
    const storeConfig = db.store.kind === 'postgres' ? db.store : ({ kind: 'embedded', dataDir } as const);
    // The older version: its migrations, a retired and an active key stored in plain PEM.
    const old = await openStore(storeConfig);
    const { error } = await new Migrator({ db: old.db, provider: new OlderMigrations() }).migrateToLatest();
    assert.equal(error, undefined);
    const retired = newRsaKeyPair(2048);
    const current = newRsaKeyPair(2048);
    const insert = (pem: string, pub: string, active: boolean, at: string) =>
      sql`INSERT INTO platform_keys (private_pem, public_pem, active, created_at)
          VALUES (${pem}, ${pub}, ${active}, ${new Date(at)})`.execute(old.db);
    await insert(retired.privatePem, retired.publicPem, false, '2026-01-01T00:00:00Z');
    await insert(current.privatePem, current.publicPem, true, '2026-06-01T00:00:00Z');
    await old.close();
    if (storeConfig.kind === 'embedded')
      assert.notDeepEqual(filesWithPrivateKey(dataDir), [], 'the old version left the PEM on disk');

    const config: Config = {
      ...testConfig({ HOSPAY_DATA_DIR: dataDir, PORT: '0', HOSPAY_ADMIN_TOKEN: ADMIN }),
      store: storeConfig,
    };
    platform = await startPlatform({
      config,
      clock,
      log: createLogger('silent'),
      demo: false,
      adminToken: ADMIN,
    });
    const rows = await keyRows(platform.store);
    assert.equal(rows.length, 2);
    assert.ok(!JSON.stringify(rows).includes('PRIVATE KEY'), 'no PEM private key left in the table');
    assert.ok(rows.every((r) => r.private_pem === null && r.private_sealed?.startsWith('v1:')));
    // The retired key is dated by the key that replaced it; the active key is the same key as before.
    assert.deepEqual(rows[0]?.retired_at, new Date('2026-06-01T00:00:00Z'));
    assert.equal(rows[1]?.public_pem, current.publicPem);
    const key = await platform.deps.keys.active();
    const legacyPublic = readPublicKey(current.publicPem);
    assert.ok(legacyPublic);
    const p = { a: '1', b: '2' };
    assert.ok(verifyParams({ ...p, sign: signParams(p, key.privateKey, 'RSA2') }, legacyPublic, 'RSA2'));

    // The retired key was past its grace period already (retired in June, now November): the job deletes it.
    await platform.expiry.tick();
    assert.equal((await keyRows(platform.store)).length, 1);

    if (storeConfig.kind === 'embedded') {
      assert.deepEqual(filesWithPrivateKey(dataDir), [], 'table files and WAL are clean');
      await platform.close();
      platform = null;
      assert.deepEqual(filesWithPrivateKey(dataDir), []);
    }
  });
});
