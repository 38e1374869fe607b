/**
 * `hospay reconcile --from … --to …` through the real command: progress on stderr (plain lines when not on a
 * terminal, JSON lines with --json, a bar on a terminal: a pseudo-terminal made by `script`), stdout unchanged
 * (the days' outcomes, or one JSON array), and the range's usage errors.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { TEST_DB } from '../support/db.js';
import { HOSPAY_CLI, HospayHome } from '../support/spawn.js';

const FROM = '2026-11-20';
const TO = '2026-11-24';
const DAYS = ['2026-11-20', '2026-11-21', '2026-11-22', '2026-11-23', '2026-11-24'];
const LABEL = `对账 reconcile ${FROM}…${TO}`;

describe(`hospay reconcile over several days: progress on stderr (${TEST_DB})`, () => {
  let home: HospayHome;
  let appId = '';
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) => home.run(args, { env, timeout: 180_000 });

  before(async () => {
    home = await HospayHome.create('hospay-cli-progress', {
      env: { LOG_LEVEL: 'warn', HOSPAY_JOBS: 'off' },
    });
    const created = run(['app', 'create', '--name', '进度医院', '--json']);
    assert.equal(created.status, 0, created.stderr);
    appId = (JSON.parse(created.stdout) as { app_id: string }).app_id;
  });
  after(async () => {
    await home.close();
  });

  it('not on a terminal: plain progress lines and the final line on stderr; stdout carries the days only', () => {
    const r = run(['reconcile', '--from', FROM, '--to', TO, '--app', appId], {
      HOSPAY_PROGRESS_INTERVAL: '1ms',
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    // stdout: each day's outcome, in order, and the verdict; no progress.
    const dates = [...r.stdout.matchAll(/^业务日期 \/ business date (\S+) \(Asia\/Shanghai\)$/gm)].map(
      (m) => m[1],
    );
    assert.deepEqual(dates, DAYS);
    assert.match(r.stdout, /^无未处理差异 \/ no open differences$/m);
    assert.ok(!r.stdout.includes('对账 reconcile'), r.stdout);
    // stderr: lines while working, then the final line; never a terminal escape.
    const lines = r.stderr.split('\n').filter((l) => l.startsWith(LABEL));
    const working = lines.filter((l) => !l.includes('完成 done'));
    assert.ok(working.length >= 1, r.stderr);
    for (const l of working)
      assert.match(l, /: [1-5]\/5 app-days \(\d+%\), [0-9.]+\/s(, 剩余 left \d+[smh])/, l);
    assert.match(
      lines.at(-1) ?? '',
      /: 完成 done 5\/5 app-days \(100%\) in \d+s \([0-9.]+\/s\) — 5 天 days, 未处理差异 open 0$/,
    );
    assert.ok(!r.stderr.includes('\x1b'), 'no escapes when not on a terminal');
  });

  it('with --json: stdout is the one JSON array; stderr is JSON lines ending with progress_done', () => {
    const r = run(['reconcile', '--from', FROM, '--to', TO, '--app', appId, '--json'], {
      HOSPAY_PROGRESS_INTERVAL: '1ms',
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const outcomes = JSON.parse(r.stdout) as Array<{ appId: string; date: string; payType: string }>;
    assert.deepEqual([...new Set(outcomes.map((o) => o.date))], DAYS);
    assert.ok(outcomes.every((o) => o.appId === appId));
    const events = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map(
        (l) => JSON.parse(l) as { type: string; label: string; done: number; total: number; unit: string },
      );
    assert.ok(events.length >= 2, r.stderr);
    assert.ok(events.every((e) => e.label === LABEL && e.total === 5 && e.unit === 'app-days'));
    const last = events.at(-1);
    assert.equal(last?.type, 'progress_done');
    assert.equal(last?.done, 5);
    assert.ok(events.slice(0, -1).every((e) => e.type === 'progress'));
  });

  it('on a terminal: a bar drawn in place on stderr, then the final line; stdout unchanged', () => {
    const which = spawnSync('which', ['script'], { encoding: 'utf8' });
    if (which.status !== 0) return; // no `script` to make a pseudo-terminal
    const out = path.join(home.dataDir, 'stdout.txt');
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const command = [process.execPath, ...HOSPAY_CLI, 'reconcile', '--from', FROM, '--to', TO, '--app', appId]
      .map(q)
      .join(' ');
    const r = spawnSync('script', ['-qec', `${command} > ${q(out)}`, '/dev/null'], {
      env: home.env,
      encoding: 'utf8',
      timeout: 180_000,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const terminal = r.stdout;
    assert.ok(terminal.includes('\x1b['), 'redrawn in place');
    assert.match(terminal, new RegExp(`${LABEL} \\[[█░]{24}\\] [0-5]/5 app-days`));
    assert.match(terminal, /完成 done 5\/5 app-days \(100%\)/);
    const stdout = fs.readFileSync(out, 'utf8');
    assert.equal([...stdout.matchAll(/^业务日期 /gm)].length, 5);
    assert.ok(!stdout.includes('\x1b') && !stdout.includes('对账 reconcile'), stdout);
  });

  it('the range: both ends, in order, at most 366 days, not with --date (exit 2)', () => {
    for (const args of [
      ['--from', FROM],
      ['--from', TO, '--to', FROM],
      ['--from', '2024-01-01', '--to', '2025-12-31'],
      ['--from', FROM, '--to', TO, '--date', FROM],
    ]) {
      const r = run(['reconcile', ...args, '--app', appId]);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr.slice(0, 300)}`);
      assert.match(r.stderr, /--from|--to/);
    }
    const bad = run(['reconcile', '--from', FROM, '--to', FROM, '--app', appId], {
      HOSPAY_PROGRESS_INTERVAL: 'often',
    });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /HOSPAY_PROGRESS_INTERVAL/);
  });
});
