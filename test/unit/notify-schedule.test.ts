import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  NOTIFY_MAX_ATTEMPTS,
  NOTIFY_SCHEDULE_MS,
  nextAttemptDelayMs,
  parseNotifyStatus,
} from '../../src/services/notify.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('notification retry schedule (Alipay)', () => {
  it('attempt 1 at once, then 4m, 10m, 10m, 1h, 2h, 6h, 15h after the previous one', () => {
    assert.deepEqual(
      [...NOTIFY_SCHEDULE_MS],
      [0, 4 * MIN, 10 * MIN, 10 * MIN, 1 * HOUR, 2 * HOUR, 6 * HOUR, 15 * HOUR],
    );
    assert.equal(NOTIFY_MAX_ATTEMPTS, 8);
    assert.equal(nextAttemptDelayMs(0), 0);
    assert.equal(nextAttemptDelayMs(1), 4 * MIN);
    assert.equal(nextAttemptDelayMs(2), 10 * MIN);
    assert.equal(nextAttemptDelayMs(3), 10 * MIN);
    assert.equal(nextAttemptDelayMs(4), 1 * HOUR);
    assert.equal(nextAttemptDelayMs(5), 2 * HOUR);
    assert.equal(nextAttemptDelayMs(6), 6 * HOUR);
    assert.equal(nextAttemptDelayMs(7), 15 * HOUR);
  });

  it('gives up after the 8th attempt', () => {
    assert.equal(nextAttemptDelayMs(8), null);
    assert.equal(nextAttemptDelayMs(9), null, 'a resend after the schedule is over: one attempt only');
    assert.equal(nextAttemptDelayMs(1000), null);
  });

  it('the whole schedule spans 24 h 24 min from the first attempt to the last', () => {
    let total = 0;
    for (let made = 1; nextAttemptDelayMs(made) !== null; made++) total += nextAttemptDelayMs(made) ?? 0;
    assert.equal(total, 24 * HOUR + 24 * MIN);
  });

  it('refuses nonsense', () => {
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => nextAttemptDelayMs(bad), RangeError, String(bad));
    }
    assert.throws(() => (NOTIFY_SCHEDULE_MS as number[]).push(1), TypeError, 'the schedule is frozen');
  });

  it('parses a status filter', () => {
    assert.equal(parseNotifyStatus('pending'), 'PENDING');
    assert.equal(parseNotifyStatus('DELIVERED'), 'DELIVERED');
    assert.equal(parseNotifyStatus('FAILED'), 'FAILED');
    assert.equal(parseNotifyStatus('DONE'), null);
    assert.equal(parseNotifyStatus(undefined), null);
  });
});
