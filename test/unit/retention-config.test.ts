import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../src/config/config.js';

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
