#!/usr/bin/env node
// Runs the test suite: unit tests once, integration tests on the embedded database AND on PostgreSQL.
//   npm test                       everything
//   npm test -- --db=embedded      integration tests on one database only
//   npm test -- test/integration/refund.test.ts   selected files (or directories)
//   npm run test:reliability       the reliability battery (test/reliability: slow, on both databases) plus its
//                                  quick parts (test/unit/reliability, test/integration/reliability)
//   HOSPAY_TEST_CONCURRENCY=1 npm test   integration files one at a time (default: 2 at a time)
// `npm test` leaves out test/reliability (slow) and test/remote (live sandboxes: npm run test:remote).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const dbArg = args.find((a) => a.startsWith('--db='))?.slice(5);
const picked = args.filter((a) => !a.startsWith('--'));

function find(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory()
        ? find(path.join(dir, e.name))
        : e.name.endsWith('.test.ts')
          ? [path.join(dir, e.name)]
          : [],
    );
}

const SLOW = `test${path.sep}reliability${path.sep}`;
const REMOTE = `test${path.sep}remote${path.sep}`;
const all = picked.length
  ? picked.flatMap((p) => (!fs.existsSync(p) ? [] : fs.statSync(p).isDirectory() ? find(p) : [p]))
  : find('test').filter((f) => !f.startsWith(SLOW) && !f.startsWith(REMOTE));
const onDatabases = (f) => f.includes(`${path.sep}integration${path.sep}`) || f.startsWith(SLOW);
const unit = all.filter((f) => !onDatabases(f));
const integration = all.filter(onDatabases);
const dbs = dbArg ? [dbArg] : ['embedded', 'postgres'];

let passed = 0;
let failed = 0;
let skipped = 0;

// Integration files run two at a time (HOSPAY_TEST_CONCURRENCY): each has its own database (or data directory)
// and its own ports, and much of their time is spent waiting on servers, child processes and PostgreSQL.
const concurrency = Math.max(1, Number(process.env.HOSPAY_TEST_CONCURRENCY ?? 2) || 1);

function run(label, files, env, parallel = 1) {
  if (files.length === 0) return;
  console.log(`\n=== ${label}: ${files.length} file(s)${parallel > 1 ? `, ${parallel} at a time` : ''} ===`);
  const tap = path.join(fs.mkdtempSync('/tmp/hospay-test-'), 'out.tap');
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      `--test-concurrency=${parallel}`,
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      '--test-reporter=tap',
      `--test-reporter-destination=${tap}`,
      ...files,
    ],
    { stdio: 'inherit', env: { ...process.env, ...env } },
  );
  const out = fs.existsSync(tap) ? fs.readFileSync(tap, 'utf8') : '';
  const count = (name) =>
    [...out.matchAll(new RegExp(`^# ${name} (\\d+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0);
  const p = count('pass');
  const f = count('fail') + count('cancelled');
  const s = count('skipped');
  passed += p;
  failed += f;
  skipped += s;
  if (r.status !== 0 && f === 0) failed++; // a crash outside any test still fails the run
}

run('unit', unit, {});
for (const db of dbs) run(`integration on ${db}`, integration, { HOSPAY_TEST_DB: db }, concurrency);

console.log(`\ntests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
