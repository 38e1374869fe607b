import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { unzipSync, zipSync, type Zippable } from 'fflate';
import { TEST_DB } from '../support/db.js';
import {
  barcodeFields,
  postRaw,
  startTestPlatform,
  xmlDoc,
  type OfflineAnswer,
  type TestPlatform,
} from '../support/platform.js';
import { HospayHome, hospayEnv, randomPort, runHospayAsync, type HospayProcess } from '../support/spawn.js';
import { openStore } from '../../src/store/db.js';
import { SecretBox } from '../../src/crypto/secret-box.js';
import { BackupError, digestEntries, openBackup, type BackupEntry } from '../../src/store/backup.js';
import { hisTokenContext } from '../../src/reconcile/run.js';

/**
 * The restore drill of the embedded database (docs/operations.md, "Backups"): a server with paid and refunded
 * trades, a sealed HIS AccessToken and platform key is backed up WHILE it serves payments, stopped, restored
 * into a new data directory and started again: everything works. Plus the refusals: a restore while a server
 * runs, over a database without --force, a damaged or altered file, an entry named outside the data directory,
 * a wrong or missing master key. On
 * PostgreSQL, `hospay backup` and `restore` point at pg_dump / base backups instead.
 */

/** A loaded machine (other suites running) starts a child slowly. */
const SLOW = 240_000;
const HIS_TOKEN = 'his-token-for-the-drill-0123456789';

describe(`backup and restore (${TEST_DB})`, { skip: TEST_DB !== 'embedded' }, () => {
  let home: HospayHome;
  let server: HospayProcess | null = null;
  const port = randomPort();
  const base = `http://127.0.0.1:${port}`;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-backup-'));
  const backupFile = path.join(tmp, 'drill.zip');
  let token = '';
  let appId = '';
  const paid: Array<{ outTradeNo: string; tradeNo: string }> = [];
  let refunded: { outTradeNo: string; tradeNo: string } | null = null;

  const offline = (name: string, fields: Record<string, string | undefined>, at = base) =>
    postRaw(`${at}/offline/${name}`, xmlDoc({ AccessToken: token, ...fields }));

  async function pay(at = base): Promise<OfflineAnswer & { outTradeNo: string }> {
    const f = barcodeFields({ TotalAmount: '12.34' });
    const a = await offline('FWC_IF_Barcode_Pay', f, at);
    return { ...a, outTradeNo: f.OutTradeNo ?? '' };
  }

  /** A data directory of its own, with the environment of a `hospay` child using it. */
  const otherHome = (name: string, env: NodeJS.ProcessEnv = {}) => {
    const dataDir = path.join(tmp, name);
    return { dataDir, env: hospayEnv({ dataDir, env: { LOG_LEVEL: 'warn', HOSPAY_JOBS: 'off', ...env } }) };
  };

  before(async () => {
    home = await HospayHome.create('hospay-backup', { env: { LOG_LEVEL: 'warn', HOSPAY_JOBS: 'off' } });
    server = await home.start(['serve', '--port', String(port)], { timeoutMs: 240_000 });
    token = /AccessToken: (\S+)/.exec(server.out())?.[1] ?? '';
    appId = /app_id:\s+(\S+)/.exec(server.out())?.[1] ?? '';
    assert.ok(token && appId, server.out());
    for (let i = 0; i < 3; i++) {
      const a = await pay();
      assert.equal(a.rr.IsSuccess, '1', a.text);
      const q = await offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: a.outTradeNo });
      assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS', q.text);
      paid.push({ outTradeNo: a.outTradeNo, tradeNo: q.result.TradeNo ?? '' });
    }
    refunded = paid[2] ?? null;
    const r = await offline('FWC_IF_Barcode_Pay_Refund', {
      TradeNo: refunded?.tradeNo,
      OutTradeNo: refunded?.outTradeNo,
      RefundAmount: '2.34',
      OutRequestNo: 'DRILL-R1',
      TotalAmount: '12.34',
    });
    assert.equal(r.rr.IsSuccess, '1', r.text);
    // A sealed secret of the app: the HIS's AccessToken (reconciliation), set through the admin API.
    const adminToken = fs.readFileSync(path.join(home.dataDir, 'admin-token'), 'utf8').trim();
    const his = await fetch(`${base}/admin/apps/${appId}/reconciliation`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        his_base_url: 'https://his.example.cn/HisService',
        his_access_token: HIS_TOKEN,
      }),
    });
    assert.equal(his.status, 200, await his.text());
  });

  after(async () => {
    await home?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('backs up WHILE the server takes payments: taken inside the server, the master key named, not included', async () => {
    // Payments keep coming while the backup is taken.
    let stop = false;
    const during: string[] = [];
    const load = (async () => {
      while (!stop) {
        const a = await pay();
        if (a.rr.IsSuccess === '1') during.push(a.outTradeNo);
      }
    })();
    const r = await runHospayAsync(['backup', '--out', backupFile], home.env, SLOW);
    stop = true;
    await load;
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /backup written/);
    assert.match(r.stdout, /inside the running server/);
    assert.match(r.stdout, /master key is NOT in the backup/);
    assert.ok(r.stdout.includes(path.join(home.dataDir, 'master-key')), 'says where the master key is');
    assert.ok(during.length > 0, 'payments were served during the backup');
    assert.equal(fs.statSync(backupFile).mode & 0o777, 0o600, 'the backup file is private');
    // The master key is not in the file (compressed or not).
    const key = fs.readFileSync(path.join(home.dataDir, 'master-key'), 'utf8').trim();
    const raw = Buffer.concat(Object.values(unzipSync(fs.readFileSync(backupFile))));
    assert.equal(raw.includes(Buffer.from(key)), false);
    assert.equal(raw.includes(Buffer.from(key, 'hex')), false);
    assert.equal(raw.includes(Buffer.from(HIS_TOKEN)), false, 'the HIS token is sealed, not in clear');
    const status = await fetch(`${base}/`);
    assert.equal(status.status, 200, 'the server kept serving');
    // --json on a second backup: the manifest's facts.
    const j = await runHospayAsync(
      ['backup', '--out', path.join(tmp, 'second.zip'), '--json'],
      home.env,
      SLOW,
    );
    assert.equal(j.status, 0, j.stderr);
    const facts = JSON.parse(j.stdout) as { via: string; migrations: string[]; master_key_ids: string[] };
    assert.equal(facts.via, 'running-server');
    assert.ok(facts.migrations.includes('001-initial'));
    assert.equal(facts.master_key_ids.length, 1);
  });

  it('only a platform administrator may take a backup through the admin API (a finance token: 403)', async () => {
    const adminToken = fs.readFileSync(path.join(home.dataDir, 'admin-token'), 'utf8').trim();
    const admin = (method: string, p: string, body?: unknown, bearer = adminToken) =>
      fetch(`${base}${p}`, {
        method,
        headers: {
          authorization: `Bearer ${bearer}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    const op = await admin('POST', '/admin/operators', {
      username: 'fin-backup',
      display_name: '财务',
      password: `Pw-${randomBytes(12).toString('hex')}`,
      role: 'finance',
      apps: 'all',
    });
    assert.ok(op.status === 200 || op.status === 201, await op.text());
    const tok = await admin('POST', '/admin/operators/fin-backup/tokens', { label: 'backup test' });
    assert.equal(tok.status, 201, await tok.clone().text());
    const finance = ((await tok.json()) as { token: string }).token;
    const refused = await admin('POST', '/admin/backup', undefined, finance);
    assert.equal(refused.status, 403);
    assert.equal(((await refused.json()) as { code: string }).code, 'ADMIN_FORBIDDEN');
    const forged = await admin('POST', '/admin/backup', undefined, 'not-a-token-0123456789abcdef0123');
    assert.equal(forged.status, 401);
  });

  it('refuses to restore while a server holds the data directory', async () => {
    const r = await runHospayAsync(['restore', backupFile, '--force'], home.env, SLOW);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /stop the server before restoring/);
  });

  it('refuses a damaged file, an altered file, a missing or wrong master key; nothing is written', async () => {
    const keyFile = path.join(home.dataDir, 'master-key');
    // Damaged: one byte flipped in the compressed stream.
    const damaged = Buffer.from(fs.readFileSync(backupFile));
    const i = Math.floor(damaged.length / 2);
    damaged[i] = (damaged[i] ?? 0) ^ 0xff;
    fs.writeFileSync(path.join(tmp, 'damaged.zip'), damaged);
    const d = otherHome('restore-damaged');
    const r1 = await runHospayAsync(
      ['restore', path.join(tmp, 'damaged.zip'), '--master-key', keyFile],
      d.env,
      SLOW,
    );
    assert.equal(r1.status, 1, r1.stdout + r1.stderr);
    assert.match(r1.stderr, /damaged|checksum/);
    assert.equal(fs.existsSync(path.join(d.dataDir, 'pgdata')), false);

    // Altered: a valid zip (same entries, same order, CRCs right), one data byte changed: the checksum says so.
    const files = unzipSync(fs.readFileSync(backupFile));
    const names = Object.keys(files);
    assert.equal(names[0], 'manifest.json', 'the manifest is the first entry');
    const version = files['pgdata/PG_VERSION'];
    assert.ok(version && version.length > 0);
    version[0] = (version[0] ?? 0) ^ 0x01;
    fs.writeFileSync(path.join(tmp, 'altered.zip'), zipSync(files));
    const a = otherHome('restore-altered');
    const r2 = await runHospayAsync(
      ['restore', path.join(tmp, 'altered.zip'), '--master-key', keyFile],
      a.env,
      SLOW,
    );
    assert.equal(r2.status, 1, r2.stdout + r2.stderr);
    assert.match(r2.stderr, /fails its checksum/);
    assert.equal(fs.existsSync(path.join(a.dataDir, 'pgdata')), false);

    // No master key at all.
    const n = otherHome('restore-nokey');
    const r3 = await runHospayAsync(['restore', backupFile], n.env, SLOW);
    assert.equal(r3.status, 1, r3.stdout + r3.stderr);
    assert.match(r3.stderr, /no master key/);
    assert.equal(fs.existsSync(path.join(n.dataDir, 'pgdata')), false);

    // A wrong master key (another key file).
    const wrongKey = path.join(tmp, 'wrong-key');
    fs.writeFileSync(wrongKey, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    const w = otherHome('restore-wrongkey');
    const r4 = await runHospayAsync(['restore', backupFile, '--master-key', wrongKey], w.env, SLOW);
    assert.equal(r4.status, 1, r4.stdout + r4.stderr);
    assert.match(r4.stderr, /wrong master key/);
    assert.equal(fs.existsSync(path.join(w.dataDir, 'pgdata')), false);
    assert.equal(fs.existsSync(path.join(w.dataDir, 'master-key')), false);
  });

  it('refuses an entry named outside the data directory (../, absolute, backslash); nothing is written', async () => {
    // A backup made as hospay makes them, its manifest and checksum right, with one more entry named `name`.
    const crafted = (name: string): Buffer => {
      const files = unzipSync(fs.readFileSync(backupFile));
      const entries: BackupEntry[] = Object.keys(files)
        .filter((n) => n !== 'manifest.json')
        .map((n) => {
          const dir = n.endsWith('/');
          const data = dir ? new Uint8Array(0) : (files[n] ?? new Uint8Array(0));
          return { path: dir ? n.slice(0, -1) : n, type: dir ? 'dir' : 'file', data, size: data.length };
        });
      const evil = Buffer.from('not a database file\n');
      entries.push({ path: name, type: 'file', data: evil, size: evil.length });
      const manifest = JSON.parse(Buffer.from(files['manifest.json'] ?? []).toString('utf8')) as object;
      const zippable: Zippable = {
        'manifest.json': Buffer.from(JSON.stringify({ ...manifest, ...digestEntries(entries) })),
      };
      for (const e of entries) zippable[e.type === 'dir' ? `${e.path}/` : e.path] = e.data;
      return Buffer.from(zipSync(zippable));
    };
    const keyFile = path.join(home.dataDir, 'master-key');
    const h = otherHome('restore-traversal');
    fs.mkdirSync(h.dataDir, { recursive: true });
    const file = path.join(tmp, 'traversal.zip');
    fs.writeFileSync(file, crafted('pgdata/../../escaped.txt'));
    const r = await runHospayAsync(['restore', file, '--master-key', keyFile], h.env, SLOW);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /unexpected path in the backup/);
    assert.deepEqual(
      fs.readdirSync(h.dataDir),
      [],
      'nothing written in the data directory (no pgdata, no key)',
    );
    assert.equal(fs.existsSync(path.join(tmp, 'escaped.txt')), false);
    assert.equal(fs.existsSync(path.join(h.dataDir, 'escaped.txt')), false);

    // The same check in process, for every way out: each is refused as a path, not as a checksum.
    for (const name of [
      '../escaped.txt',
      'pgdata/../escaped.txt',
      '/tmp/escaped.txt',
      'pgdata\\..\\x',
      'other/x',
    ]) {
      await assert.rejects(
        openBackup(crafted(name)),
        (e: unknown) => e instanceof BackupError && /unexpected path/.test(e.message),
        name,
      );
    }
    // The untouched backup opens.
    assert.ok((await openBackup(fs.readFileSync(backupFile))).entries.length > 100);
  });

  it('the drill: stop, restore into a new directory, start: trades, refunds, the HIS token and keys work', async () => {
    assert.equal(await server?.stop('SIGTERM'), 0);
    server = null;
    // The audit trail of the stopped server names both backups, and the finance operator's refused attempt.
    const own = await openStore({ kind: 'embedded', dataDir: home.dataDir });
    try {
      const audit = await own.db
        .selectFrom('desk_audit')
        .select(['actor', 'outcome'])
        .where('action', '=', 'backup.create')
        .orderBy('id')
        .execute();
      assert.deepEqual(
        audit.map((a) => `${a.actor}: ${a.outcome}`),
        ['admin: ok', 'admin: ok', 'fin-backup: refused 403'],
      );
    } finally {
      await own.close();
    }
    const keyFile = path.join(home.dataDir, 'master-key');
    const n = otherHome('restored');
    const r = await runHospayAsync(['restore', backupFile, '--master-key', keyFile, '--json'], n.env, SLOW);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const out = JSON.parse(r.stdout) as { files: number; master_key_id: string; previous: string | null };
    assert.ok(out.files > 100);
    assert.equal(out.previous, null);
    assert.equal(
      fs.readFileSync(path.join(n.dataDir, 'master-key'), 'utf8').trim(),
      fs.readFileSync(keyFile, 'utf8').trim(),
    );
    assert.equal(fs.statSync(path.join(n.dataDir, 'pgdata')).mode & 0o777, 0o700);

    // The sealed HIS AccessToken opens with the restored key.
    const store = await openStore({ kind: 'embedded', dataDir: n.dataDir });
    try {
      const app = await store.db
        .selectFrom('apps')
        .select('his_token_sealed')
        .where('id', '=', appId)
        .executeTakeFirst();
      const key = Buffer.from(fs.readFileSync(keyFile, 'utf8').trim(), 'hex');
      assert.equal(
        new SecretBox(() => key).open(app?.his_token_sealed ?? '', hisTokenContext(appId)),
        HIS_TOKEN,
      );
    } finally {
      await store.close();
    }

    // Started on the restored directory: the paid and refunded trades answer through the offline door.
    const port2 = randomPort();
    const base2 = `http://127.0.0.1:${port2}`;
    const restored = await home.start(['serve', '--port', String(port2)], { env: n.env, timeoutMs: 240_000 });
    try {
      for (const p of paid.slice(0, 2)) {
        const q = await offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: p.outTradeNo }, base2);
        assert.equal(q.result.TradeStatus, 'TRADE_SUCCESS', q.text);
        assert.equal(q.result.TradeNo, p.tradeNo);
      }
      const q = await offline('FWC_IF_Barcode_Pay_Query', { OutTradeNo: refunded?.outTradeNo }, base2);
      assert.equal(q.result.RefundFee, '2.34', q.text);
      // The refund is remembered: the same request again is the same refund, not a second one.
      const again = await offline(
        'FWC_IF_Barcode_Pay_Refund',
        {
          TradeNo: refunded?.tradeNo,
          OutTradeNo: refunded?.outTradeNo,
          RefundAmount: '2.34',
          OutRequestNo: 'DRILL-R1',
          TotalAmount: '12.34',
        },
        base2,
      );
      assert.equal(again.result.RefundFee, '2.34', again.text);
      // New payments work (the platform key opened at start; the app's AccessToken is the same).
      const a = await pay(base2);
      assert.equal(a.rr.IsSuccess, '1', a.text);
      const reconAdmin = fs.readFileSync(path.join(n.dataDir, 'admin-token'), 'utf8').trim();
      const settings = await fetch(`${base2}/admin/apps/${appId}/reconciliation`, {
        headers: { authorization: `Bearer ${reconAdmin}` },
      });
      assert.equal(settings.status, 200);
      assert.match(await settings.text(), /his\.example\.cn/);
    } finally {
      await restored.stop('SIGTERM');
    }
  });

  it('over an existing database only with --force, which keeps the old one aside', async () => {
    const n = otherHome('restored');
    const keyFile = path.join(home.dataDir, 'master-key');
    const r = await runHospayAsync(['restore', backupFile], n.env, SLOW);
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /already holds a database/);
    const f = await runHospayAsync(
      ['restore', backupFile, '--force', '--master-key', keyFile, '--json'],
      n.env,
      SLOW,
    );
    assert.equal(f.status, 0, f.stdout + f.stderr);
    const out = JSON.parse(f.stdout) as { previous: string };
    assert.match(out.previous, /pgdata\.before-restore-/);
    assert.ok(fs.existsSync(path.join(out.previous, 'PG_VERSION')), 'the old database is kept, not deleted');
  });

  it('backs up a stopped data directory itself (holding its lock)', async () => {
    const file = path.join(tmp, 'stopped.zip');
    const r = await runHospayAsync(['backup', '--out', file], home.env, SLOW);
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /from the stopped data directory/);
    const again = await runHospayAsync(['backup', '--out', file], home.env, SLOW);
    assert.equal(again.status, 1, 'never over an existing file');
    assert.match(again.stderr, /already exists/);
  });
});

describe(
  `backup and restore on PostgreSQL point at pg_dump (${TEST_DB})`,
  { skip: TEST_DB !== 'postgres' },
  () => {
    let home: HospayHome;
    before(async () => {
      home = await HospayHome.create('hospay-backup-pg', { env: { LOG_LEVEL: 'warn' } });
    });
    after(async () => {
      await home?.close();
    });

    it('hospay backup and restore refuse and name the PostgreSQL tools', () => {
      const b = home.run(['backup']);
      assert.equal(b.status, 2, b.stdout + b.stderr);
      assert.match(b.stderr, /pg_dump/);
      const r = home.run(['restore', 'x.zip']);
      assert.equal(r.status, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /pg_restore/);
    });
  },
);

describe(`POST /admin/backup without an embedded data directory (${TEST_DB})`, () => {
  let t: TestPlatform;
  before(async () => {
    t = await startTestPlatform();
  });
  after(async () => {
    await t?.close();
  });

  it('answers 409 BACKUP_NOT_EMBEDDED, pointing at pg_dump (PostgreSQL, or an in-memory database)', async () => {
    const r = await t.admin('POST', '/admin/backup');
    assert.equal(r.status, 409);
    assert.equal(r.data['code'], 'BACKUP_NOT_EMBEDDED');
    assert.match(String(r.data['message']), /pg_dump/);
  });
});
