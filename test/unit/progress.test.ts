/**
 * src/cli/progress.ts in its three modes: a bar on a terminal (a fake stream that says it is a TTY), plain lines
 * (at most one per interval, plus the last) and JSON lines; the numbers (done, total, rate, time left) and the
 * rule that nothing is written after done().
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  createProgress,
  formatDuration,
  progressInterval,
  type ProgressJsonLine,
} from '../../src/cli/progress.js';

/** A stream that records what is written; `tty` makes it say it is a terminal. */
function fakeStream(tty: boolean) {
  const chunks: string[] = [];
  const stream = {
    isTTY: tty,
    columns: 120,
    rows: 40,
    write(chunk: string | Uint8Array, ...rest: unknown[]) {
      chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      const cb = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
      cb?.();
      return true;
    },
    on() {
      return stream;
    },
    once() {
      return stream;
    },
    removeListener() {
      return stream;
    },
    off() {
      return stream;
    },
  };
  return { stream: stream as unknown as NodeJS.WriteStream, text: () => chunks.join(''), chunks };
}

/** A clock the test moves. */
function fakeNow(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

describe('progress: plain lines when not on a terminal', () => {
  it('prints at most one line per interval while working, then the final line with counts, rate and time', () => {
    const out = fakeStream(false);
    const clock = fakeNow();
    const p = createProgress({
      label: '对账 reconcile',
      total: 10,
      unit: 'days',
      stream: out.stream,
      now: clock.now,
      intervalMs: 5000,
    });
    for (let i = 0; i < 4; i++) {
      clock.advance(1000);
      p.tick();
    }
    assert.equal(out.text(), '', 'nothing before the first interval has passed');
    clock.advance(1000);
    p.tick(); // 5 done, 5 s: one line
    clock.advance(100);
    p.tick(); // 6 done, too soon for another
    const lines = out.text().trimEnd().split('\n');
    assert.equal(lines.length, 1);
    assert.equal(lines[0], '对账 reconcile: 5/10 days (50%), 1.0/s, 剩余 left 5s');
    for (let i = 0; i < 4; i++) {
      clock.advance(1000);
      p.tick();
    }
    p.done('3 open differences');
    p.tick(); // after done: nothing more
    p.done('again');
    const all = out.text().trimEnd().split('\n');
    assert.equal(
      all.at(-1),
      '对账 reconcile: 完成 done 10/10 days (100%) in 9s (1.1/s) — 3 open differences',
    );
    assert.ok(!out.text().includes('\x1b'), 'no terminal escapes in plain output');
    assert.equal(all.filter((l) => l.includes('完成 done')).length, 1);
  });

  it('work that ends within the interval prints the final line only; an unknown total shows the count alone', () => {
    const out = fakeStream(false);
    const clock = fakeNow();
    const p = createProgress({ label: 'fill', total: 0, unit: 'trades', stream: out.stream, now: clock.now });
    clock.advance(2000);
    p.tick(500);
    p.done();
    assert.equal(out.text(), 'fill: 完成 done 500 trades in 2s (250/s)\n');
  });

  it('setTotal changes the total shown', () => {
    const out = fakeStream(false);
    const clock = fakeNow();
    const p = createProgress({ label: 'x', total: 0, stream: out.stream, now: clock.now, intervalMs: 1 });
    p.setTotal(4);
    clock.advance(1000);
    p.tick(2);
    assert.equal(out.text(), 'x: 2/4 (50%), 2.0/s, 剩余 left 1s\n');
    p.done();
  });

  it('a label cannot break the line format', () => {
    const out = fakeStream(false);
    const p = createProgress({ label: 'a\nb', total: 1, stream: out.stream });
    p.tick();
    p.done();
    assert.equal(out.text().split('\n').length, 2);
  });
});

describe('progress: JSON lines with --json', () => {
  it('writes progress objects at most once per interval, then progress_done with the summary', () => {
    const out = fakeStream(true); // even on a terminal: --json means no bar
    const clock = fakeNow();
    const p = createProgress({
      label: 'reconcile',
      total: 3,
      unit: 'app-days',
      json: true,
      stream: out.stream,
      now: clock.now,
      intervalMs: 1000,
    });
    clock.advance(1500);
    p.tick();
    clock.advance(200);
    p.tick();
    clock.advance(1300);
    p.tick();
    p.done('ok');
    const lines = out
      .text()
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as ProgressJsonLine);
    assert.deepEqual(
      lines.map((l) => [l.type, l.done]),
      [
        ['progress', 1],
        ['progress', 3],
        ['progress_done', 3],
      ],
    );
    assert.deepEqual(lines[0], {
      type: 'progress',
      label: 'reconcile',
      done: 1,
      total: 3,
      unit: 'app-days',
      rate: 0.67,
      elapsed_s: 1.5,
      eta_s: 3,
    });
    assert.equal(lines[2]?.summary, 'ok');
    assert.equal(lines[2]?.eta_s, 0);
    assert.ok(!out.text().includes('\x1b'));
  });
});

describe('progress: a bar on a terminal', () => {
  it('draws a bar with counts, rate and time left in place, then clears it and leaves the final line', () => {
    const out = fakeStream(true);
    const p = createProgress({ label: '备份 backup', total: 4, unit: 'MiB', stream: out.stream });
    p.tick();
    p.tick(2);
    const during = out.text();
    assert.ok(during.includes('\x1b['), 'redrawn with terminal escapes');
    assert.match(during, /备份 backup \[[█░]{24}\] \d\/4 MiB \(\d+%\) \| [0-9.]+\/s \| 剩余 ETA/);
    p.tick();
    p.done('4 MiB written');
    const text = out.text();
    assert.match(text, /备份 backup: 完成 done 4\/4 MiB \(100%\) in \d+s \([0-9.]+\/s\) — 4 MiB written\n$/);
    // The bar's timer is stopped: nothing more is drawn after done().
    const length = text.length;
    p.tick();
    return new Promise<void>((resolve) =>
      setTimeout(() => {
        assert.equal(out.text().length, length);
        resolve();
      }, 400),
    );
  });
});

describe('formatDuration', () => {
  it('seconds, minutes, hours', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(45.4), '45s');
    assert.equal(formatDuration(185), '3m05s');
    assert.equal(formatDuration(7380), '2h03m');
  });
});

describe('HOSPAY_PROGRESS_INTERVAL', () => {
  it('a duration in ms, s or m; 5 s by default; anything else is refused naming the key', () => {
    assert.equal(progressInterval({}), 5000);
    assert.equal(progressInterval({ HOSPAY_PROGRESS_INTERVAL: '500ms' }), 500);
    assert.equal(progressInterval({ HOSPAY_PROGRESS_INTERVAL: '2s' }), 2000);
    assert.equal(progressInterval({ HOSPAY_PROGRESS_INTERVAL: '1m' }), 60_000);
    for (const bad of ['5', 'fast', '-1s', '1h'])
      assert.throws(() => progressInterval({ HOSPAY_PROGRESS_INTERVAL: bad }), /HOSPAY_PROGRESS_INTERVAL/);
  });
});
