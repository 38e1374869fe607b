import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SecretBox, SecretBoxError, parseMasterKey } from '../../src/crypto/secret-box.js';
import { masterKeyLoader } from '../../src/runtime/local-files.js';
import {
  DEFAULT_RECON_SETTINGS,
  ReconSettingsError,
  mergeReconSettings,
  parseFeeRates,
  readReconSettings,
} from '../../src/reconcile/settings.js';

describe('SecretBox (AES-256-GCM under the master key)', () => {
  const key = Buffer.alloc(32, 7);
  const box = new SecretBox(() => key);

  it('round-trips; each seal differs; bound to its context', () => {
    const a = box.seal('s3cret-令牌', 'app:A:his_token');
    const b = box.seal('s3cret-令牌', 'app:A:his_token');
    assert.notEqual(a, b, 'random IV');
    assert.equal(box.open(a, 'app:A:his_token'), 's3cret-令牌');
    assert.ok(!a.includes('s3cret'));
    assert.throws(() => box.open(a, 'app:B:his_token'), SecretBoxError);
  });

  it('a tampered or foreign value never opens', () => {
    const sealed = box.seal('x', 'c');
    const parts = sealed.split(':');
    const body = Buffer.from(parts[3] ?? '', 'base64url');
    body[0] = (body[0] ?? 0) ^ 1;
    assert.throws(() => box.open([parts[0], parts[1], parts[2], body.toString('base64url')].join(':'), 'c'));
    assert.throws(() => box.open('plain text', 'c'), /not a sealed secret/);
    const other = new SecretBox(() => Buffer.alloc(32, 8));
    assert.throws(() => other.open(sealed, 'c'), /another master key/);
  });

  it('master keys: 64 hex digits or base64 of 32 bytes; anything else refused', () => {
    assert.equal(parseMasterKey('ab'.repeat(32))?.length, 32);
    assert.equal(parseMasterKey(Buffer.alloc(32, 1).toString('base64'))?.length, 32);
    assert.equal(parseMasterKey(Buffer.alloc(32, 1).toString('base64url'))?.length, 32);
    assert.equal(parseMasterKey('short'), null);
    assert.equal(parseMasterKey('ab'.repeat(31)), null);
  });

  it('embedded: a key file is made once (0600) and reused; PostgreSQL without HOSPAY_MASTER_KEY says so', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hospay-mk-'));
    try {
      const k1 = masterKeyLoader({ fromEnv: null, embedded: true, dataDir: dir })();
      const k2 = masterKeyLoader({ fromEnv: null, embedded: true, dataDir: dir })();
      assert.deepEqual(k1, k2);
      assert.equal(fs.statSync(path.join(dir, 'master-key')).mode & 0o777, 0o600);
      assert.throws(
        () => masterKeyLoader({ fromEnv: null, embedded: false, dataDir: dir })(),
        /HOSPAY_MASTER_KEY/,
      );
      const env = Buffer.alloc(32, 9);
      assert.equal(masterKeyLoader({ fromEnv: env, embedded: false, dataDir: dir })(), env);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('reconciliation settings', () => {
  it('merges valid fields and refuses the rest by name', () => {
    const s = mergeReconSettings(DEFAULT_RECON_SETTINGS, {
      hisSliceMinutes: 15,
      feeRateBps: { alipay: 60, weixin: 38 },
    });
    assert.equal(s.hisSliceMinutes, 15);
    assert.deepEqual(s.feeRateBps, { alipay: 60, weixin: 38 });
    assert.equal(s.pendingDays, 3);
    const removed = mergeReconSettings(s, { feeRateBps: { weixin: null } });
    assert.deepEqual(removed.feeRateBps, { alipay: 60 });
    for (const [patch, field] of [
      [{ hisSliceMinutes: 0 }, 'hisSliceMinutes'],
      [{ hisSliceMinutes: 50 }, 'hisSliceMinutes'],
      [{ hisSliceMinutes: 1.5 }, 'hisSliceMinutes'],
      [{ cutoffHour: -1 }, 'cutoffHour'],
      [{ pendingDays: '3' }, 'pendingDays'],
      [{ feeRateBps: [60] }, 'feeRateBps'],
      [{ nope: 1 }, 'nope'],
    ] as const) {
      assert.throws(
        () => mergeReconSettings(DEFAULT_RECON_SETTINGS, patch),
        (e: unknown) => e instanceof ReconSettingsError && e.field === field,
        JSON.stringify(patch),
      );
    }
    assert.throws(() => mergeReconSettings(DEFAULT_RECON_SETTINGS, null));
  });

  it('reads stored JSON, falling back to defaults field by field', () => {
    assert.deepEqual(readReconSettings('{}'), DEFAULT_RECON_SETTINGS);
    assert.deepEqual(readReconSettings('not json'), DEFAULT_RECON_SETTINGS);
    const s = readReconSettings('{"cutoffHour": 2, "hisSliceMinutes": 7}');
    assert.equal(s.cutoffHour, 2);
    assert.equal(s.hisSliceMinutes, 60);
  });

  it('fee rates from the command line: percent or basis points, exactly', () => {
    assert.deepEqual(parseFeeRates('alipay=0.6%,weixin=38,unionpay=-'), {
      alipay: 60,
      weixin: 38,
      unionpay: null,
    });
    assert.deepEqual(parseFeeRates('alipay=0.55%'), { alipay: 55 });
    assert.deepEqual(parseFeeRates('alipay=1%'), { alipay: 100 });
    assert.throws(() => parseFeeRates('alipay=0.555%'), ReconSettingsError);
    assert.throws(() => parseFeeRates('alipay'), ReconSettingsError);
  });
});
