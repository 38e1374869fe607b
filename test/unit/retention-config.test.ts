import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { readTar, writeTar, TarError } from '../../src/formats/tar.js';

const DAY = 86_400_000;

describe('retention settings', () => {
  it('defaults: calls and attempts 90 days, evidence a year, nonces for their replay window only', () => {
    const c = loadConfig({});
    assert.equal(c.retention.channelCallsMs, 90 * DAY);
    assert.equal(c.retention.notifyAttemptsMs, 90 * DAY);
    assert.equal(c.retention.reconEvidenceMs, 365 * DAY);
    assert.equal(c.retention.nonceGraceMs, 0);
  });

  it('evidence: a duration of at least a day, or off', () => {
    assert.equal(loadConfig({ HOSPAY_EVIDENCE_RETENTION: '30d' }).retention.reconEvidenceMs, 30 * DAY);
    assert.equal(loadConfig({ HOSPAY_EVIDENCE_RETENTION: 'off' }).retention.reconEvidenceMs, null);
    assert.throws(() => loadConfig({ HOSPAY_EVIDENCE_RETENTION: '12h' }), /HOSPAY_EVIDENCE_RETENTION/);
    assert.throws(() => loadConfig({ HOSPAY_EVIDENCE_RETENTION: 'soon' }), ConfigError);
  });

  it('nonces: never shorter than the replay window (2 × the gateway clock skew); the rest is grace', () => {
    assert.equal(loadConfig({ HOSPAY_NONCE_RETENTION: '1h' }).retention.nonceGraceMs, 50 * 60_000);
    assert.equal(loadConfig({ HOSPAY_NONCE_RETENTION: '10m' }).retention.nonceGraceMs, 0);
    assert.throws(
      () => loadConfig({ HOSPAY_NONCE_RETENTION: '9m' }),
      /HOSPAY_NONCE_RETENTION.*replay window/,
    );
    // A wider skew widens the window: 30 minutes is then too short.
    assert.throws(
      () => loadConfig({ HOSPAY_GATEWAY_CLOCK_SKEW: '20m', HOSPAY_NONCE_RETENTION: '30m' }),
      /HOSPAY_NONCE_RETENTION/,
    );
  });
});

describe('backup archive (tar)', () => {
  it('round-trips files and directories, long paths included; a damaged header is refused', () => {
    const mtime = new Date('2026-12-01T00:00:00Z');
    const long = `pgdata/${'d'.repeat(120)}/${'f'.repeat(90)}`;
    const entries = [
      { path: 'pgdata', type: 'dir' as const, data: new Uint8Array(0), mode: 0o700, mtime },
      { path: 'pgdata/PG_VERSION', type: 'file' as const, data: Buffer.from('17\n'), mode: 0o600, mtime },
      { path: long, type: 'file' as const, data: Buffer.alloc(1500, 7), mode: 0o600, mtime },
      { path: 'pgdata/empty', type: 'file' as const, data: new Uint8Array(0), mode: 0o600, mtime },
    ];
    const tar = writeTar(entries);
    const back = readTar(tar);
    assert.deepEqual(
      back.map((e) => [e.path, e.type, e.data.length, e.mode]),
      entries.map((e) => [e.path, e.type, e.data.length, e.mode]),
    );
    assert.equal(Buffer.from(back[2]?.data ?? []).equals(Buffer.alloc(1500, 7)), true);
    const bad = Buffer.from(tar);
    bad[10] = (bad[10] ?? 0) ^ 1;
    assert.throws(() => readTar(bad), TarError);
    assert.throws(() => readTar(tar.subarray(0, 700)), TarError);
  });
});
